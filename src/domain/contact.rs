use std::fmt;
use std::str::FromStr;

use super::DomainError;

/// An email address the SMTP side can put on the wire: what the door (CSV import, ingest API)
/// accepts and what the channel checks again before it builds a message.
///
/// Accepted: `local@domain` where the local part is an ASCII dot-atom of at most 64 bytes
/// (letters, digits and ``! # $ % & ' * + - / = ? ^ _ ` { | } ~``, dots between them) and the
/// domain a name of at most 253 bytes with at least two labels of 1 to 63 bytes (letters,
/// digits, inner hyphens), the whole at most 254 bytes (RFC 5321 §4.5.3.1). An
/// internationalised domain (`ana@пример.рф`) is stored in its ASCII form
/// (`ana@xn--e1afmkfd.xn--p1ai`, IDNA/UTS 46), which every relay takes. Refused: a non-ASCII
/// local part (it needs a relay offering SMTPUTF8, which many lack), quoted local parts
/// (`"a b"@x.com`), comments, address literals (`a@[192.0.2.1]`), a numeric top-level label
/// (`a@192.0.2.1`), `_` in a domain, spaces and control characters. Every address accepted here
/// is accepted by lettre's `Address` and is ASCII (a test in `channel/` walks the edge cases
/// and a property test the rest). Stored with the domain in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// The characters of an RFC 5322 atom besides letters and digits.
const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";

impl Email {
    /// Longest address (RFC 5321: a path is at most 256 octets with its angle brackets).
    pub const MAX_LEN: usize = 254;
    /// Longest local part, in bytes (RFC 5321 §4.5.3.1.1).
    pub const MAX_LOCAL: usize = 64;
    /// Longest domain label, in bytes (RFC 1035 §2.3.4).
    pub const MAX_LABEL: usize = 63;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let err = |why| Err(DomainError::Email(super::shown(s), why));
        if s.is_empty() {
            return err("empty");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("contains a space or a control character");
        }
        if s.contains(['<', '>']) {
            return err("angle brackets: give the bare address, as in `ana@example.com`");
        }
        if s.len() > Self::MAX_LEN {
            return err("longer than 254 bytes (RFC 5321)");
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return err("missing `@`");
        };
        if local.is_empty() || local.contains('@') {
            return err("the part before `@` is empty or holds another `@`");
        }
        if local.len() > Self::MAX_LOCAL {
            return err("the part before `@` is longer than 64 bytes (RFC 5321)");
        }
        if local.starts_with('"') || local.contains(['"', '\\']) {
            return err("quoted local parts such as `\"ana maria\"@…` are not accepted");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return err("a dot cannot start or end the part before `@`, or follow another dot");
        }
        if !local.is_ascii() {
            return err(
                "letters outside ASCII before `@` need a relay offering SMTPUTF8, which many lack: not accepted",
            );
        }
        if !local
            .chars()
            .all(|c| c == '.' || c.is_ascii_alphanumeric() || ATEXT.contains(c))
        {
            return err(
                "the part before `@` may hold letters, digits, dots and ! # $ % & ' * + - / = ? ^ _ ` { | } ~ only",
            );
        }
        if domain.starts_with('[') {
            return err(
                "address literals such as `[192.0.2.1]` are not accepted: use the domain name",
            );
        }
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return err("the domain needs a dot, as in `example.com`");
        }
        // An internationalised domain becomes its ASCII form (punycode), lower case.
        let domain = if domain.is_ascii() {
            domain.to_ascii_lowercase()
        } else {
            match idna::domain_to_ascii_strict(domain) {
                Ok(ascii) => ascii,
                Err(_) => return err("the domain is not a valid internationalised domain name"),
            }
        };
        if domain.len() > 253 {
            return err("the domain is longer than 253 bytes (RFC 1035)");
        }
        for label in domain.split('.') {
            if label.len() > Self::MAX_LABEL {
                return err("a label of the domain is longer than 63 bytes (RFC 1035)");
            }
            if !label.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()) {
                return err("the domain may hold letters, digits, hyphens and dots only");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return err("a label of the domain cannot start or end with a hyphen");
            }
        }
        if domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return err("the domain looks like an IP address: use the domain name");
        }
        let address = format!("{local}@{domain}");
        if address.len() > Self::MAX_LEN {
            return err("longer than 254 bytes (RFC 5321) in its ASCII form");
        }
        Ok(Email(address))
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
        let err = |why| Err(DomainError::Phone(super::shown(raw), why));
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
    /// Every channel, in the order they are listed to people.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];

    /// The channel's code, as stored, signed into links and shown in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// The channel of an exact code (`email`, `sms`); unlike `parse`, no other spelling.
    pub fn from_code(code: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Compares with a channel's stored name (`pause.channel == "email"` in tests).
impl PartialEq<&str> for Channel {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
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
    fn internationalised_domains_are_stored_in_ascii() {
        for (input, want) in [
            ("ana@пример.рф", "ana@xn--e1afmkfd.xn--p1ai"),
            ("Ana@MÜNCHEN.de", "Ana@xn--mnchen-3ya.de"),
            ("ana@bălți.md", "ana@xn--bli-9oa51l.md"),
        ] {
            assert_eq!(Email::parse(input).unwrap().as_str(), want, "{input}");
        }
        let e = Email::parse("анна@пример.рф").unwrap_err().to_string();
        assert!(e.contains("SMTPUTF8"), "{e}");
        assert!(Email::parse("ana@exa\u{2028}mple.com").is_err());
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
