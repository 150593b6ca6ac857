//! Bounces without a delivery-status part, recognised by the sentences their software always
//! writes (formats learnt from Sisimai's lhost modules; the fixtures are our own):
//! - qmail: "Hi. This is the qmail-send program at …" (and Yahoo's old "Sorry, we were unable
//!   to deliver your message to the following address."), `<address>:` then the reason;
//! - Exim: "This message was created automatically by mail delivery software." with
//!   `X-Failed-Recipients`, the address indented, then the reason;
//! - Exchange: "… did not reach the following recipient(s):", `address on date`, then the
//!   reason with `#5.1.1`;
//! - Gmail: "Delivery to the following recipient failed permanently:", the address indented,
//!   then "Technical details of permanent failure".
//!
//! Each address line opens a block; the lines after it, to the next address line, are its
//! diagnostic. The status is the code in the diagnostic; without one, a known phrase; without
//! either the failure is still a failure (a soft bounce: counted, never an opt-out at once).

use mail_parser::Message;

use super::dsn::returned;
use super::headers::{self, addresses_in, one_line, status_in};
use super::status::{kind_of_failure, phrase_reason};
use super::{Format, Report};
use crate::domain::FeedbackKind;

/// One recognised format: the sentences that announce a failure (or a delay), and the
/// sentence after which the returned copy of the message starts.
struct Shape {
    format: Format,
    failed: &'static [&'static str],
    delayed: &'static [&'static str],
    copy: &'static [&'static str],
}

const SHAPES: [Shape; 4] = [
    Shape {
        format: Format::Qmail,
        failed: &[
            "this is the qmail-send program",
            "sorry, we were unable to deliver your message to the following address",
        ],
        delayed: &[],
        copy: &[
            "--- below this line is a copy of the message",
            "--- enclosed are the original headers",
        ],
    },
    Shape {
        format: Format::Exim,
        failed: &["the following address(es) failed:"],
        delayed: &["has not yet been delivered to the following addresses"],
        copy: &["------ this is a copy of the message", "------ the headers"],
    },
    Shape {
        format: Format::Exchange,
        failed: &[
            "did not reach the following recipient(s):",
            "the following recipient(s) cannot be reached:",
            "the following recipient(s) could not be reached:",
            "delivery has failed to these recipients or groups:",
        ],
        delayed: &["delivery to the following recipients has been delayed"],
        copy: &["original message headers:"],
    },
    Shape {
        format: Format::Gmail,
        failed: &[
            "delivery to the following recipient failed permanently:",
            "delivery to the following recipients failed permanently:",
        ],
        delayed: &["delivery to the following recipient has been delayed:"],
        copy: &[
            "----- original message -----",
            "----- message header follows -----",
        ],
    },
];

/// The reports of a non-standard bounce, `None` when no known format's sentences are there.
pub(super) fn non_standard(msg: &Message<'_>, addresses: &mut Vec<String>) -> Option<Vec<Report>> {
    let body = msg.body_text(0)?.into_owned();
    // ASCII only: the offsets found in `lower` index `body` (every sentence sought is ASCII).
    let lower = body.to_ascii_lowercase();
    for shape in &SHAPES {
        if let Some(at) = find_any(&lower, shape.delayed) {
            return Some(vec![Report {
                kind: Some(FeedbackKind::Ignored),
                format: shape.format,
                status: None,
                recipient: addresses_in(&body[at..]).into_iter().next(),
                message_id: returned_id(msg, &body, &lower, shape),
                detail: "delayed: the sending server keeps trying".into(),
            }]);
        }
        let Some(at) = find_any(&lower, shape.failed) else {
            continue;
        };
        let copy_at = find_start(&lower[at..], shape.copy).map_or(body.len(), |c| at + c);
        let copy = &body[copy_at..];
        let message_id = returned_id(msg, &body, &lower, shape);
        if let Some(rp) = line_value(copy, "return-path").or_else(|| returned(msg).return_path) {
            addresses.push(rp);
        }
        let mut blocks = recipient_blocks(&body[at..copy_at]);
        if blocks.is_empty() {
            for v in headers::all(msg, "X-Failed-Recipients") {
                blocks.extend(
                    addresses_in(&v)
                        .into_iter()
                        .map(|a| (a, body[at..copy_at].to_string())),
                );
            }
        }
        if blocks.is_empty() {
            blocks.push((String::new(), body[at..copy_at].to_string()));
        }
        return Some(
            blocks
                .into_iter()
                .map(|(rcpt, diag)| block_report(shape.format, rcpt, &diag, message_id.clone()))
                .collect(),
        );
    }
    None
}

/// The offset just past the first of `needles` found in `hay` (both lower case).
fn find_any(hay: &str, needles: &[&str]) -> Option<usize> {
    needles
        .iter()
        .filter_map(|n| hay.find(n).map(|i| i + n.len()))
        .min()
}

/// The offset of the first of `needles` found in `hay` (both lower case).
fn find_start(hay: &str, needles: &[&str]) -> Option<usize> {
    needles.iter().filter_map(|n| hay.find(n)).min()
}

/// The returned message's Message-ID: an attached message, else the copy in the text.
fn returned_id(msg: &Message<'_>, body: &str, lower: &str, shape: &Shape) -> Option<String> {
    returned(msg).message_id.or_else(|| {
        let from = find_any(lower, shape.copy).unwrap_or(0);
        headers::message_id_line(&body[from..])
    })
}

/// The address of a `name: <address>` line in a block of header text.
fn line_value(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .and_then(|(_, v)| addresses_in(v).into_iter().next())
}

/// `(recipient, diagnostic)` per line that starts with an address.
fn recipient_blocks(section: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in section.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        let leading = first.trim_matches(|c| matches!(c, '<' | '>' | ':' | '\'' | '"'));
        let is_address = leading.contains('@')
            && addresses_in(leading).first().map(String::as_str)
                == Some(leading.to_ascii_lowercase().as_str());
        if is_address {
            blocks.push((leading.to_ascii_lowercase(), String::new()));
        } else if let Some((_, diag)) = blocks.last_mut() {
            diag.push(' ');
            diag.push_str(line.trim());
        }
    }
    blocks
}

/// The report of one recipient block.
fn block_report(format: Format, rcpt: String, diag: &str, message_id: Option<String>) -> Report {
    let diag = one_line(diag, 300);
    let (kind, status) = match status_in(&diag) {
        Some(s) if !s.starts_with('2') => (kind_of_failure(&s, &diag), Some(s)),
        _ => match phrase_reason(&diag) {
            Some(r) => (kind_of_failure(r.status(), &diag), None),
            // A failure the format announced, with no reason given.
            None => (Some(FeedbackKind::SoftBounce), None),
        },
    };
    Report {
        kind,
        format,
        status: status.clone(),
        recipient: (!rcpt.is_empty()).then_some(rcpt),
        message_id,
        detail: one_line(
            &format!("failed {} {diag}", status.as_deref().unwrap_or("-")),
            300,
        ),
    }
}
