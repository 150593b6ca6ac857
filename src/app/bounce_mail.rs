//! Bounce mail in: a delivery status notification, an ARF complaint or an auto-reply that
//! reached the return path, read by `bounce/` and recorded through
//! [`App::record_feedback`]. Every way in for mail (`ritualist bounce` on stdin, the inbound
//! listener) calls [`App::ingest_report`].
//!
//! Matching, strongest first: the VERP return path the report was delivered to
//! (`envelope_to`, else an address of the report — `X-Original-To`, `Delivered-To`, `To`, the
//! returned message's `Return-Path`, ARF's `Original-Mail-From` — or its `Final-Recipient`)
//! with a valid signature; else the returned message's `Message-ID`. A report nothing
//! classifies is never counted: it is recorded unmatched, with its bytes, for review.

use sha2::{Digest, Sha256};

use crate::bounce::{self, Parsed, Report};
use crate::domain::{Channel, DeliveryRef, Feedback, FeedbackKind, FeedbackSource};

use super::{App, AppError, FeedbackResult};

impl App {
    /// Reads one bounce mail and records one report per recipient it names. `envelope_to` is
    /// the address it was delivered to (the VERP return path) when the way in knows it.
    /// Recording is idempotent: the same mail again gives
    /// [`Recorded::Duplicate`](crate::store::Recorded::Duplicate) results and changes nothing.
    pub async fn ingest_report(
        &self,
        raw: &[u8],
        envelope_to: Option<&str>,
    ) -> Result<Vec<FeedbackResult>, AppError> {
        let parsed = bounce::parse(raw);
        let text = String::from_utf8_lossy(raw);
        let mut results = Vec::with_capacity(parsed.reports.len());
        for report in &parsed.reports {
            let fb = self
                .feedback_of(&parsed, report, envelope_to, raw)
                .with_raw(&text);
            results.push(self.record_feedback(fb).await?);
        }
        Ok(results)
    }

    /// The [`Feedback`] one report of a bounce mail stands for.
    fn feedback_of(
        &self,
        parsed: &Parsed,
        report: &Report,
        envelope_to: Option<&str>,
        raw: &[u8],
    ) -> Feedback {
        let verp = envelope_to
            .into_iter()
            .map(str::to_string)
            .chain(parsed.addresses.iter().cloned())
            .chain(report.recipient.iter().cloned())
            .find_map(|a| self.delivery_of_return_path(&a));
        let (kind, delivery, detail) = match report.kind {
            Some(kind) => {
                let delivery = match (verp, &report.message_id) {
                    (Some(id), _) => DeliveryRef::Delivery(id),
                    (None, Some(mid)) => DeliveryRef::MessageId(mid.clone()),
                    (None, None) => DeliveryRef::Unknown,
                };
                (kind, delivery, report.detail.clone())
            }
            // Not classified: never counted, so never matched; kept whole for a person.
            None => {
                let hint = match verp {
                    Some(id) => format!(" [return path of delivery {id}]"),
                    None => String::new(),
                };
                (
                    FeedbackKind::Unclassified,
                    DeliveryRef::Unknown,
                    format!("{}{hint}", report.detail),
                )
            }
        };
        Feedback {
            kind,
            source: FeedbackSource::Mail,
            delivery,
            channel: Channel::Email,
            recipient: report.recipient.clone(),
            detail: format!("{}: {detail}", report.format.as_str()),
            dedupe_key: dedupe_key(envelope_to, parsed.message_id.as_deref(), raw, report),
            raw: None,
        }
    }
}

/// `mail:` and the SHA-256 of the envelope recipient, the report's Message-ID (its bytes when
/// it has none) and the recipient: the same mail delivered twice is one report; two
/// recipients of one DSN are two.
fn dedupe_key(
    envelope_to: Option<&str>,
    message_id: Option<&str>,
    raw: &[u8],
    report: &Report,
) -> String {
    let mut h = Sha256::new();
    h.update(
        envelope_to
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_bytes(),
    );
    h.update([0]);
    match message_id.filter(|m| !m.is_empty()) {
        Some(mid) => {
            h.update(b"id:");
            h.update(mid.as_bytes());
        }
        None => {
            h.update(b"bytes:");
            h.update(raw);
        }
    }
    h.update([0]);
    h.update(report.recipient.as_deref().unwrap_or("").as_bytes());
    format!("mail:{}", hex::encode(h.finalize()))
}
