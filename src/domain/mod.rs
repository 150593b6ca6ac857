//! Plain value types shared by every other module: contact data (email, E.164 phone, names),
//! locales, channels, yearly dates and occurrence keys.
//!
//! "Parse, don't validate": each type is built only through `parse`/`FromStr`, so once a
//! value exists it is valid. This module depends on nothing else in the crate and on no
//! foreign crate but `jiff` (dates), `idna` (internationalised domains to ASCII), `strsim`
//! (did-you-mean, in [`suggest`]) and `thiserror`.

mod contact;
mod dates;
mod feedback;
mod keys;
pub mod money;
mod name;
pub mod suggest;

pub use contact::{Channel, Email, Locale, Phone, PreferredChannel};
pub use dates::{Feb29Policy, YearlyDate, parse_zone};
pub use feedback::{DeliveryRef, Feedback, FeedbackKind, FeedbackSource, Outcome, RAW_KEPT};
pub use keys::OccurrenceKey;
pub use name::Name;

/// Why a value could not be parsed: said in words a marketer understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("invalid email address `{0}`: {1}")]
    Email(String, &'static str),
    #[error("invalid name `{0}`: {1}")]
    Name(String, &'static str),
    #[error("invalid phone number `{0}`: {1}")]
    Phone(String, &'static str),
    #[error("invalid locale `{0}`: expected a language tag such as `en`, `ru` or `ro-MD`")]
    Locale(String),
    #[error("unknown time zone `{0}`: expected an IANA name such as `Europe/Bucharest`")]
    Zone(String),
    #[error("invalid date `{0}`: {1}")]
    Date(String, &'static str),
    #[error("unknown channel `{0}`: expected `email` or `sms`")]
    Channel(String),
}

/// A value as an error message shows it: control characters escaped (a message is one line
/// and never carries a raw control character to a terminal or a log), at most 80 characters.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(80) {
        if c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}
