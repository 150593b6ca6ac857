//! Bounce mail: what a mail system sends back to the return path after a message left, read
//! into [`Report`]s. The one home of the `mail-parser` crate. Pure: bytes in, reports out; the
//! App matches them to deliveries and applies the policy (`app/bounce_mail.rs`).
//!
//! Recognised, in this order (the first that fits wins):
//! 1. RFC 3464 delivery status notifications (`multipart/report; report-type=delivery-status`,
//!    or any `message/delivery-status` part): one report per recipient group, classified by
//!    its `Action` and `Status` ([`status`]);
//! 2. RFC 5965 ARF reports (`report-type=feedback-report`): `Feedback-Type: abuse` is a
//!    complaint;
//! 3. the non-standard bounces of qmail (Yahoo's old ones too), Exim without a DSN, old
//!    Exchange NDRs and Gmail's text ones ([`text`]);
//! 4. RFC 3834 auto-replies (vacation, out of office) — recognised and ignored ([`autoreply`]);
//! 5. anything else: *unclassified* (`kind: None`), never counted, kept for a person to review.
//!
//! Never a guess: a report is a hard bounce only on a status (or, in a non-standard format
//! without one, a phrase) that says the address does not exist or is disabled.

mod autoreply;
mod dsn;
mod headers;
pub mod status;
#[cfg(test)]
mod tests;
mod text;

use mail_parser::{Message, MessageParser};

use crate::domain::FeedbackKind;

/// The format a report was recognised in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// RFC 3464 delivery status notification (Postfix, Exim with DSN, Exchange/Outlook, Gmail,
    /// Yahoo, SES, …).
    Dsn,
    /// RFC 5965 abuse reporting format (a feedback loop's complaint).
    Arf,
    /// qmail's "Hi. This is the qmail-send program" (and Yahoo's copy of it).
    Qmail,
    /// Exim's "Mail delivery failed" without a DSN part.
    Exim,
    /// An Exchange non-delivery report without a DSN part.
    Exchange,
    /// Gmail's text bounce ("Delivery to the following recipient failed permanently").
    Gmail,
    /// An RFC 3834 auto-reply (vacation, out of office).
    AutoReply,
    /// Nothing recognised.
    Unknown,
}

impl Format {
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Dsn => "dsn",
            Format::Arf => "arf",
            Format::Qmail => "qmail",
            Format::Exim => "exim",
            Format::Exchange => "exchange",
            Format::Gmail => "gmail",
            Format::AutoReply => "auto_reply",
            Format::Unknown => "unknown",
        }
    }
}

/// What a bounce mail says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `None`: not classified (no status and no phrase that says what happened): kept for
    /// review, never counted.
    pub kind: Option<FeedbackKind>,
    pub format: Format,
    /// The enhanced status code (`5.1.1`), when the report gives one.
    pub status: Option<String>,
    /// The recipient the report is about (`Final-Recipient`, ARF's `Original-Rcpt-To`, the
    /// address a text bounce lists), lower-cased.
    pub recipient: Option<String>,
    /// The `Message-ID` of the message it returns (without angle brackets).
    pub message_id: Option<String>,
    /// One line for people: the status and diagnostic, or why it was ignored.
    pub detail: String,
}

/// A bounce mail read whole: its own identity, the addresses that may be ritualist's VERP
/// return path, and one report per recipient (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The report's own `Message-ID` (without angle brackets).
    pub message_id: Option<String>,
    /// Addresses that may be the VERP return path the message went out with, strongest
    /// first: the report's `X-Original-To`, `Delivered-To`, `Envelope-To` (Exim), `To`, then
    /// an ARF `Original-Mail-From` and the returned message's `Return-Path`; without repeats.
    pub addresses: Vec<String>,
    pub reports: Vec<Report>,
}

/// The reports a bounce mail carries (at least one; see [`parse`]).
pub fn classify(raw: &[u8]) -> Vec<Report> {
    parse(raw).reports
}

/// Reads one bounce mail. Never fails: what cannot be parsed is one unclassified report —
/// even a panic in the parser of hostile input, so the mail is kept for review instead of
/// being refused again on every retry of the MTA.
pub fn parse(raw: &[u8]) -> Parsed {
    std::panic::catch_unwind(|| parse_message(raw)).unwrap_or_else(|_| Parsed {
        message_id: None,
        addresses: Vec::new(),
        reports: vec![unclassified("unclassified: the mail could not be parsed")],
    })
}

fn parse_message(raw: &[u8]) -> Parsed {
    let Some(msg) = MessageParser::new().parse(raw) else {
        return Parsed {
            message_id: None,
            addresses: Vec::new(),
            reports: vec![unclassified("not a mail message (no headers)")],
        };
    };
    let mut addresses = own_addresses(&msg);
    let reports = reports_of(&msg, &mut addresses);
    let mut seen = std::collections::HashSet::new();
    addresses.retain(|a| seen.insert(a.clone()));
    Parsed {
        message_id: msg.message_id().map(headers::bare_id),
        addresses,
        reports,
    }
}

/// The reports of a parsed message, in the order of the module's doc; `addresses` gains the
/// returned message's return path.
fn reports_of(msg: &Message<'_>, addresses: &mut Vec<String>) -> Vec<Report> {
    if let Some(found) = dsn::delivery_status(msg, addresses) {
        return found;
    }
    if let Some(found) = dsn::feedback_report(msg, addresses) {
        return found;
    }
    if let Some(found) = text::non_standard(msg, addresses) {
        return found;
    }
    if let Some(why) = autoreply::auto_reply(msg) {
        return vec![Report {
            kind: Some(FeedbackKind::Ignored),
            format: Format::AutoReply,
            status: None,
            recipient: None,
            message_id: headers::in_reply_to(msg),
            detail: format!("auto-reply ({why})"),
        }];
    }
    let subject = msg.subject().unwrap_or("").trim();
    vec![Report {
        message_id: headers::in_reply_to(msg),
        ..unclassified(&format!(
            "unclassified: no delivery status and no known bounce format (subject `{}`)",
            headers::one_line(subject, 120)
        ))
    }]
}

fn unclassified(detail: &str) -> Report {
    Report {
        kind: None,
        format: Format::Unknown,
        status: None,
        recipient: None,
        message_id: None,
        detail: detail.to_string(),
    }
}

/// The report's own addresses that may be a VERP return path.
fn own_addresses(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["X-Original-To", "Delivered-To", "Envelope-To"] {
        for v in headers::all(msg, name) {
            out.extend(headers::addresses_in(&v));
        }
    }
    for v in headers::all(msg, "To") {
        out.extend(headers::addresses_in(&v));
    }
    out
}
