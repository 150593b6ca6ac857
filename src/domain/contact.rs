use std::fmt;
use std::str::FromStr;

use super::DomainError;

/// A syntactically valid email address (one `@`, a dotted domain, no spaces), lower-cased domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let err = |why| Err(DomainError::Email(s.to_string(), why));
        if s.is_empty() {
            return err("empty");
        }
        if s.len() > 254 {
            return err("longer than 254 characters");
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return err("contains a space, a control character or angle brackets");
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return err("missing `@`");
        };
        if local.is_empty() || local.contains('@') {
            return err("the part before `@` is empty or holds another `@`");
        }
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return err("the domain needs a dot, as in `example.com`");
        }
        Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Email {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Email::parse(s)
    }
}

/// A phone number in E.164 form: `+` followed by 8 to 15 digits, the first not 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a number written by a person: spaces, dashes, dots and parentheses are dropped,
    /// a leading `00` becomes `+`. A number without a country code is completed with
    /// `default_country_code` (digits only, e.g. "40" for Romania) when one is given; a single
    /// national trunk `0` is dropped first.
    pub fn parse(s: &str, default_country_code: Option<&str>) -> Result<Self, DomainError> {
        let raw = s.trim();
        let err = |why| Err(DomainError::Phone(raw.to_string(), why));
        let mut digits = String::with_capacity(raw.len());
        let mut plus = false;
        for (i, c) in raw.chars().enumerate() {
            match c {
                '+' if i == 0 => plus = true,
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                _ => {
                    return err(
                        "only digits, spaces, dashes, dots, parentheses and a leading + are allowed",
                    );
                }
            }
        }
        if digits.is_empty() {
            return err("no digits");
        }
        let international = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_string()
        } else if let Some(cc) = default_country_code
            && digits.starts_with(cc)
            && digits.len() >= 11
            && !digits.starts_with('0')
        {
            // Already international, written without `+` (e.g. 40721234567).
            digits
        } else if let Some(cc) = default_country_code {
            // Drop one national trunk prefix: `0` in most of Europe, `8` in Russia and Kazakhstan.
            let trunk = if cc == "7" && digits.len() == 11 {
                '8'
            } else {
                '0'
            };
            let national = digits.strip_prefix(trunk).unwrap_or(&digits);
            format!("{cc}{national}")
        } else {
            return err(
                "no country code: write it as +<country><number> or configure a default country code",
            );
        };
        if international.starts_with('0') {
            return err("a country code cannot start with 0");
        }
        if !(8..=15).contains(&international.len()) {
            return err("an international number has 8 to 15 digits");
        }
        Ok(Phone(format!("+{international}")))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A language tag such as `en`, `ru`, `ro-MD`: a 2–3 letter language, optionally a region.
/// Stored normalised: language lower case, region upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locale(String);

impl Locale {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim().replace('_', "-");
        let mut parts = s.split('-');
        let lang = parts.next().unwrap_or("");
        if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(DomainError::Locale(s));
        }
        let mut out = lang.to_ascii_lowercase();
        for p in parts {
            if p.is_empty() || p.len() > 8 || !p.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(DomainError::Locale(s));
            }
            out.push('-');
            if p.len() == 2 {
                out.push_str(&p.to_ascii_uppercase());
            } else {
                out.push_str(p);
            }
        }
        Ok(Locale(out))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The language alone: `ro` for `ro-MD`.
    pub fn language(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
    /// The lookup chain for templates: `ro-MD` → [`ro-MD`, `ro`], then the caller adds its default.
    pub fn fallback_chain(&self) -> Vec<String> {
        let mut chain = vec![self.0.clone()];
        let mut cur = self.0.as_str();
        while let Some((head, _)) = cur.rsplit_once('-') {
            chain.push(head.to_string());
            cur = head;
        }
        chain
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A delivery channel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "email" | "e-mail" | "mail" => Ok(Channel::Email),
            "sms" | "phone" | "text" => Ok(Channel::Sms),
            other => Err(DomainError::Channel(other.to_string())),
        }
    }
}

/// What a customer said about channels: one of them, or nothing (the ritual's order decides).
pub type PreferredChannel = Option<Channel>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "Ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@localhost",
            "a b@x.com",
            "ana@x..com",
            "<a@x.com>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            Phone::parse("+40 721 234 567", None).unwrap().as_str(),
            "+40721234567"
        );
        assert_eq!(
            Phone::parse("0040-721-234-567", None).unwrap().as_str(),
            "+40721234567"
        );
        assert_eq!(
            Phone::parse("0721 234 567", Some("40")).unwrap().as_str(),
            "+40721234567"
        );
        assert_eq!(
            Phone::parse("8 (916) 123-45-67", Some("7"))
                .unwrap()
                .as_str(),
            "+79161234567"
        );
        assert_eq!(
            Phone::parse("40721234567", Some("40")).unwrap().as_str(),
            "+40721234567"
        );
        assert!(Phone::parse("0721234567", None).is_err());
        assert!(Phone::parse("+40 72x", None).is_err());
        assert!(Phone::parse("+123", None).is_err());
    }

    #[test]
    fn locales_and_fallbacks() {
        let l = Locale::parse("ro_md").unwrap();
        assert_eq!(l.as_str(), "ro-MD");
        assert_eq!(l.fallback_chain(), vec!["ro-MD", "ro"]);
        assert_eq!(l.language(), "ro");
        assert!(Locale::parse("russian").is_err());
        assert!(Locale::parse("").is_err());
    }
}
