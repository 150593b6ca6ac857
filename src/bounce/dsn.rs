//! The standard reports: RFC 3464 delivery status notifications and RFC 5965 ARF complaints,
//! both a `multipart/report` whose machine-readable part is a block of `name: value` fields
//! and whose last part returns the original message (or its headers).

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::headers::{self, field, field_groups, one_line, typed_address};
use super::status::{kind_of_failure, phrase_reason, refine};
use super::{Format, Report};
use crate::domain::FeedbackKind;

/// What the returned message (or its headers) tells.
#[derive(Debug, Default)]
pub(super) struct Returned {
    pub message_id: Option<String>,
    pub return_path: Option<String>,
    pub to: Option<String>,
}

fn is_type(part: &MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| subtypes.iter().any(|t| s.eq_ignore_ascii_case(t)))
    })
}

/// The decoded text of the first part of type `ctype/subtype`.
fn part_text(msg: &Message<'_>, ctype: &str, subtypes: &[&str]) -> Option<String> {
    msg.parts
        .iter()
        .find(|p| is_type(p, ctype, subtypes))
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
}

/// The original message a report returns: a `message/rfc822` part, or `text/rfc822-headers`.
pub(super) fn returned(msg: &Message<'_>) -> Returned {
    for part in msg.parts.iter().skip(1) {
        if let PartType::Message(inner) = &part.body {
            return returned_of(inner, &String::from_utf8_lossy(inner.raw_message()));
        }
        if is_type(part, "text", &["rfc822-headers"])
            || is_type(part, "message", &["rfc822-headers"])
        {
            let text = String::from_utf8_lossy(part.contents()).into_owned();
            return match MessageParser::new().parse_headers(text.as_bytes()) {
                Some(inner) => returned_of(&inner, &text),
                None => Returned {
                    message_id: headers::message_id_line(&text),
                    ..Returned::default()
                },
            };
        }
    }
    Returned::default()
}

fn returned_of(inner: &Message<'_>, text: &str) -> Returned {
    Returned {
        message_id: inner
            .message_id()
            .map(headers::bare_id)
            .filter(|id| !id.is_empty())
            .or_else(|| headers::message_id_line(text)),
        return_path: headers::first(inner, "Return-Path")
            .and_then(|v| headers::addresses_in(&v).into_iter().next()),
        to: headers::first(inner, "To").and_then(|v| headers::addresses_in(&v).into_iter().next()),
    }
}

/// An RFC 3464 DSN: one report per recipient group of its `message/delivery-status` part.
/// `None` when the message has no such part.
pub(super) fn delivery_status(
    msg: &Message<'_>,
    addresses: &mut Vec<String>,
) -> Option<Vec<Report>> {
    let body = part_text(
        msg,
        "message",
        &["delivery-status", "global-delivery-status"],
    )?;
    let ret = returned(msg);
    addresses.extend(ret.return_path.clone());
    let groups = field_groups(&body);
    let reports: Vec<Report> = groups
        .iter()
        .filter(|g| field(g, "final-recipient").is_some() || field(g, "action").is_some())
        .map(|g| recipient_report(g, &ret))
        .collect();
    if reports.is_empty() {
        return Some(vec![Report {
            kind: None,
            format: Format::Dsn,
            status: None,
            recipient: None,
            message_id: ret.message_id,
            detail: "unclassified: a delivery status without recipient fields".into(),
        }]);
    }
    Some(reports)
}

/// One recipient group of a DSN.
fn recipient_report(group: &[(String, String)], ret: &Returned) -> Report {
    let action = field(group, "action").unwrap_or("").to_ascii_lowercase();
    let diagnostic = field(group, "diagnostic-code").unwrap_or("");
    let given = field(group, "status").and_then(headers::status_in);
    let recipient = field(group, "final-recipient")
        .or_else(|| field(group, "original-recipient"))
        .and_then(typed_address);
    let (kind, status) = match (action.as_str(), given) {
        ("delayed", s) => (Some(FeedbackKind::Ignored), s),
        ("delivered", Some(s)) if s.starts_with('2') => (Some(FeedbackKind::Delivered), Some(s)),
        ("relayed" | "expanded", s) => (Some(FeedbackKind::Ignored), s),
        ("failed", Some(s)) => {
            let s = refine(&s, diagnostic);
            (kind_of_failure(&s, diagnostic), Some(s))
        }
        // Action is required; without it only a permanent status says it failed.
        ("", Some(s)) if s.starts_with('5') => {
            let s = refine(&s, diagnostic);
            (kind_of_failure(&s, diagnostic), Some(s))
        }
        ("failed", None) => match phrase_reason(diagnostic) {
            Some(r) => (kind_of_failure(r.status(), diagnostic), None),
            None => (None, None),
        },
        (_, s) => (None, s),
    };
    let mut detail = one_line(
        &format!(
            "{} {} {}",
            if action.is_empty() { "?" } else { &action },
            status.as_deref().unwrap_or("-"),
            diagnostic
        ),
        300,
    );
    if kind.is_none() {
        detail = format!("unclassified: {detail}");
    }
    Report {
        kind,
        format: Format::Dsn,
        status,
        recipient,
        message_id: ret.message_id.clone(),
        detail,
    }
}

/// An RFC 5965 ARF report (a feedback loop: Yahoo, Outlook.com, …): `abuse` is a complaint;
/// `not-spam` and `auth-failure` (DMARC forensics) are recognised and ignored; `fraud`,
/// `virus` and `other` are left unclassified for a person to read.
pub(super) fn feedback_report(
    msg: &Message<'_>,
    addresses: &mut Vec<String>,
) -> Option<Vec<Report>> {
    let body = part_text(msg, "message", &["feedback-report"])?;
    let fields: Vec<(String, String)> = field_groups(&body).into_iter().flatten().collect();
    let ret = returned(msg);
    let mail_from = field(&fields, "original-mail-from").and_then(typed_address);
    addresses.extend(mail_from);
    addresses.extend(ret.return_path.clone());
    let ftype = field(&fields, "feedback-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let kind = match ftype.as_str() {
        "abuse" => Some(FeedbackKind::Complaint),
        "not-spam" | "auth-failure" => Some(FeedbackKind::Ignored),
        _ => None,
    };
    let agent = field(&fields, "user-agent").unwrap_or("");
    let mut detail = one_line(&format!("feedback-type {ftype} ({agent})"), 300);
    if kind.is_none() {
        detail = format!("unclassified: {detail}");
    }
    Some(vec![Report {
        kind,
        format: Format::Arf,
        status: None,
        recipient: field(&fields, "original-rcpt-to")
            .and_then(typed_address)
            .or(ret.to),
        message_id: ret.message_id,
        detail,
    }])
}
