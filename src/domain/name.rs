//! A person's name as the door accepts it and the channel writes it into a header.
//!
//! Names travel into `To:` display names and, through templates, into subjects, so they may
//! hold no line break and no control character. The rule is the same at the CSV import, the
//! ingest API and the email channel:
//!
//! | in the value | what happens |
//! |---|---|
//! | CR, LF, TAB, VT, FF, NEL, U+2028/2029, any other Unicode space | becomes one space; runs of spaces collapse; trimmed |
//! | another control character (C0, DEL, C1) | refused |
//! | a bidirectional override or isolate (U+202A–202E, U+2066–2069) | refused |
//! | more than [`Name::MAX_CHARS`] characters (after normalising) | refused |
//! | quotes, `<`, `@`, `=?`, any other letter or symbol | kept as written (encoded on the wire) |

use std::fmt;

use super::DomainError;

/// A first or last name: no control characters, whitespace normalised, at most
/// [`Name::MAX_CHARS`] characters, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Longest name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Normalises whitespace and checks the rest; `Ok(None)` when nothing but whitespace is
    /// left. Compare [`Name::as_str`] with the trimmed input to know whether it was changed.
    pub fn parse(s: &str) -> Result<Option<Self>, DomainError> {
        let err = |why| Err(DomainError::Name(super::shown(s), why));
        let mut out = String::with_capacity(s.len());
        let mut space = false;
        for c in s.chars() {
            if c.is_whitespace() {
                space = true;
                continue;
            }
            if c.is_control() {
                return err("contains a control character: remove it");
            }
            if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
                return err("contains a bidirectional override character: remove it");
            }
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
        if out.chars().count() > Self::MAX_CHARS {
            return err("longer than 100 characters");
        }
        Ok((!out.is_empty()).then_some(Name(out)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Result<Option<String>, String> {
        Name::parse(s)
            .map(|n| n.map(Name::into_string))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whitespace_is_normalised() {
        for (input, want) in [
            ("Ana", "Ana"),
            ("Ana\nMaria", "Ana Maria"),
            ("Ana\r\nMaria", "Ana Maria"),
            ("  Ana \t\t Maria  ", "Ana Maria"),
            ("Ana\u{2028}Maria\u{85}Ion", "Ana Maria Ion"),
            ("Ana\u{a0}Maria", "Ana Maria"),
            ("\"Ana\" <ana@evil.example>", "\"Ana\" <ana@evil.example>"),
            ("=?utf-8?q?Bcc:?=", "=?utf-8?q?Bcc:?="),
            ("Ștefan Țurcanu", "Ștefan Țurcanu"),
            ("Мария", "Мария"),
            ("O'Brien-Smith", "O'Brien-Smith"),
        ] {
            assert_eq!(name(input), Ok(Some(want.to_string())), "{input:?}");
        }
        assert_eq!(name(" \r\n\t "), Ok(None));
        assert_eq!(
            name(&"я".repeat(100)).unwrap().unwrap().chars().count(),
            100
        );
    }

    #[test]
    fn control_characters_and_lengths_are_refused() {
        for bad in [
            "Ana\0Maria",
            "Ana\u{7}",
            "Ana\u{1b}[31m",
            "Ana\u{7f}",
            "Ana\u{9b}",
            "Ana\u{202e}airaM",
            "Ana\u{2066}x",
        ] {
            let e = name(bad).unwrap_err();
            assert!(e.starts_with("invalid name"), "{bad:?}: {e}");
            assert!(!e.contains('\0') && !e.contains('\u{1b}'), "{e:?}");
        }
        assert!(
            name(&"a".repeat(101))
                .unwrap_err()
                .contains("100 characters")
        );
    }
}
