//! What a mail system or an SMS gateway reports *after* a message left: a delivery, a bounce,
//! a spam complaint, an SMS receipt. Every way in (a DSN on stdin or over LMTP, a provider's
//! webhook, a gateway's receipt) turns what it received into one [`Feedback`]; the App matches
//! it to its delivery and applies the policy (docs/delivery-guarantee.md §6).

use std::fmt;

use super::Channel;

/// What the report says happened to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// The recipient's server (or the handset) took it.
    Delivered,
    /// Permanently refused: the address does not exist or takes no mail (a 5.x.x status).
    HardBounce,
    /// Failed for now or for a reason that may pass (mailbox full, a 4.x.x status the relay
    /// finally gave up on): counted, and only repeated ones suppress the address.
    SoftBounce,
    /// The recipient marked it as spam (an ARF report, a provider's complaint event).
    Complaint,
    /// An SMS the carrier did not deliver, for a reason that may pass.
    Undelivered,
    /// An SMS to a number that cannot take messages (unknown or unreachable handset,
    /// landline): suppressed like a hard bounce.
    DeadNumber,
    /// Recognised and deliberately not counted: a vacation auto-reply (RFC 3834), a "delayed"
    /// DSN that promises more tries.
    Ignored,
    /// Not recognised: no delivery status and no known format. Never counted, never matched;
    /// kept whole for a person to review (`ritualist bounces`).
    Unclassified,
}

impl FeedbackKind {
    pub const ALL: [FeedbackKind; 8] = [
        FeedbackKind::Delivered,
        FeedbackKind::HardBounce,
        FeedbackKind::SoftBounce,
        FeedbackKind::Complaint,
        FeedbackKind::Undelivered,
        FeedbackKind::DeadNumber,
        FeedbackKind::Ignored,
        FeedbackKind::Unclassified,
    ];

    /// The code stored in `feedback_events.kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Delivered => "delivered",
            FeedbackKind::HardBounce => "hard_bounce",
            FeedbackKind::SoftBounce => "soft_bounce",
            FeedbackKind::Complaint => "complaint",
            FeedbackKind::Undelivered => "undelivered",
            FeedbackKind::DeadNumber => "dead_number",
            FeedbackKind::Ignored => "ignored",
            FeedbackKind::Unclassified => "unclassified",
        }
    }

    pub fn from_code(code: &str) -> Option<FeedbackKind> {
        FeedbackKind::ALL.into_iter().find(|k| k.as_str() == code)
    }

    /// The later outcome this report gives its delivery (`deliveries.outcome`), if any.
    pub const fn outcome(self) -> Option<Outcome> {
        match self {
            FeedbackKind::Delivered => Some(Outcome::Delivered),
            FeedbackKind::HardBounce | FeedbackKind::SoftBounce => Some(Outcome::Bounced),
            FeedbackKind::Complaint => Some(Outcome::Complained),
            FeedbackKind::Undelivered | FeedbackKind::DeadNumber => Some(Outcome::Undelivered),
            FeedbackKind::Ignored | FeedbackKind::Unclassified => None,
        }
    }
}

impl fmt::Display for FeedbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A delivery's later outcome, next to `sent`. A later report replaces an earlier one only
/// when it ranks higher (a complaint after a delivery receipt wins; a late "delivered" after
/// a bounce does not undo it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Delivered,
    Undelivered,
    Bounced,
    Complained,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Delivered,
        Outcome::Undelivered,
        Outcome::Bounced,
        Outcome::Complained,
    ];

    /// The code stored in `deliveries.outcome`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Undelivered => "undelivered",
            Outcome::Bounced => "bounced",
            Outcome::Complained => "complained",
        }
    }

    /// Higher wins (see the type's doc).
    pub const fn rank(self) -> i32 {
        match self {
            Outcome::Delivered => 1,
            Outcome::Undelivered => 2,
            Outcome::Bounced => 3,
            Outcome::Complained => 4,
        }
    }

    pub fn from_code(code: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == code)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a report came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackSource {
    /// A delivery status notification or ARF report mailed to the return path (stdin, LMTP,
    /// SMTP or a polled mailbox).
    Mail,
    Ses,
    Postmark,
    Sendgrid,
    Mailgun,
    Kannel,
    Twilio,
    /// The generic HTTP SMS provider's callback.
    Http,
}

impl FeedbackSource {
    pub const ALL: [FeedbackSource; 8] = [
        FeedbackSource::Mail,
        FeedbackSource::Ses,
        FeedbackSource::Postmark,
        FeedbackSource::Sendgrid,
        FeedbackSource::Mailgun,
        FeedbackSource::Kannel,
        FeedbackSource::Twilio,
        FeedbackSource::Http,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FeedbackSource::Mail => "mail",
            FeedbackSource::Ses => "ses",
            FeedbackSource::Postmark => "postmark",
            FeedbackSource::Sendgrid => "sendgrid",
            FeedbackSource::Mailgun => "mailgun",
            FeedbackSource::Kannel => "kannel",
            FeedbackSource::Twilio => "twilio",
            FeedbackSource::Http => "http",
        }
    }

    pub fn from_code(code: &str) -> Option<FeedbackSource> {
        FeedbackSource::ALL.into_iter().find(|s| s.as_str() == code)
    }
}

impl fmt::Display for FeedbackSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a report names the message it is about, strongest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryRef {
    /// The delivery's id, from a signed token ritualist put in the message's return path
    /// (VERP) or in a receipt callback URL; already verified.
    Delivery(i64),
    /// The `Message-ID` ritualist gave the email (with or without angle brackets).
    MessageId(String),
    /// Nothing to match on: kept for review.
    Unknown,
}

/// One report, as every way in hands it to the App.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub kind: FeedbackKind,
    pub source: FeedbackSource,
    /// Which delivery; when a report carries several keys, the strongest.
    pub delivery: DeliveryRef,
    /// The channel the report is about (email for mail and email providers, SMS for
    /// gateways).
    pub channel: Channel,
    /// The address the report names (`Final-Recipient`, a webhook's `email`, the number), if
    /// any: informative; the policy acts on the address the delivery was sent to.
    pub recipient: Option<String>,
    /// What the report said, one line: status code and diagnostic, a carrier's error code.
    pub detail: String,
    /// Unique per report: a provider's event id, or a hash of the report's bytes. A second
    /// report with the same key changes nothing.
    pub dedupe_key: String,
    /// The report as received, kept only when it cannot be matched or classified (for a
    /// person to review); at most [`RAW_KEPT`] bytes.
    pub raw: Option<String>,
}

/// How much of an unmatched report is kept for review.
pub const RAW_KEPT: usize = 64 * 1024;

impl Feedback {
    /// `raw` cut to [`RAW_KEPT`] bytes on a character boundary.
    pub fn with_raw(mut self, raw: &str) -> Self {
        let mut end = raw.len().min(RAW_KEPT);
        while !raw.is_char_boundary(end) {
            end -= 1;
        }
        self.raw = Some(raw[..end].to_string());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in FeedbackKind::ALL {
            assert_eq!(FeedbackKind::from_code(k.as_str()), Some(k));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_code(o.as_str()), Some(o));
        }
        for s in FeedbackSource::ALL {
            assert_eq!(FeedbackSource::from_code(s.as_str()), Some(s));
        }
        assert_eq!(FeedbackKind::from_code("bounce"), None);
    }

    #[test]
    fn a_complaint_outranks_a_delivery_and_a_bounce_is_not_undone() {
        assert!(Outcome::Complained.rank() > Outcome::Delivered.rank());
        assert!(Outcome::Bounced.rank() > Outcome::Delivered.rank());
        let ranks: Vec<i32> = Outcome::ALL.iter().map(|o| o.rank()).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn raw_is_cut_on_a_character_boundary() {
        let f = Feedback {
            kind: FeedbackKind::Ignored,
            source: FeedbackSource::Mail,
            delivery: DeliveryRef::Unknown,
            channel: Channel::Email,
            recipient: None,
            detail: String::new(),
            dedupe_key: "k".into(),
            raw: None,
        };
        let long = "é".repeat(RAW_KEPT);
        let kept = f.with_raw(&long).raw.unwrap();
        assert!(kept.len() <= RAW_KEPT);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
