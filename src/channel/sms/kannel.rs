//! SMS through Kannel's HTTP `sendsms` interface (smsbox).
//!
//! Request: `GET <url>?username=…&password=…&to=<E.164>&text=<UTF-8>&charset=UTF-8&coding=<0|2>`
//! (`from` when configured). `coding=2` (UCS-2) is chosen for any text outside GSM-7 —
//! Cyrillic, Romanian ș/ț — so the handset shows it intact. Kannel answers `202` with
//! `0: Accepted for delivery` or `3: Queued for later delivery`; `403` (bad credentials) lets
//! the next provider try, other `4xx` (a bad number) cannot succeed anywhere; `5xx`, timeouts
//! and refused connections can succeed later.
//!
//! With receipts ([`ReceiptUrls`](super::ReceiptUrls)), each request also carries
//! `dlr-mask=27` (1 delivered to the phone, 2 not delivered, 8 taken by the SMSC, 16 refused
//! by the SMSC) and `dlr-url=<public_url>/sms/kannel/dlr/<token>?status=%d&answer=%A`: smsbox
//! fetches that URL with `%d` replaced by the report's type and `%A` by the SMSC's words.

use super::{Attempt, Receipt, Reply, excerpt, request_failed, status_failure};
use crate::channel::SendFailure;
use crate::clock::Clock;
use crate::config::KannelConfig;
use crate::render::{SmsEncoding, sms_length};

/// The reports asked for: delivered (1), not delivered (2), taken by the SMSC (8), refused by
/// the SMSC (16).
pub const DLR_MASK: &str = "27";

/// The `dlr-url` of one message: smsbox replaces `%d` (the report's type) and `%A` (the
/// SMSC's answer) and fetches it.
fn dlr_url(receipt: Receipt<'_>) -> String {
    format!("{}?status=%d&answer=%A", receipt.url("/sms/kannel/dlr"))
}

#[derive(Debug)]
pub struct Kannel {
    cfg: KannelConfig,
    http: reqwest::Client,
}

impl Kannel {
    pub fn new(cfg: KannelConfig) -> Result<Kannel, SendFailure> {
        Ok(Kannel {
            http: super::client_trusting(cfg.timeout_secs, Some(&cfg.tls), "sms.kannel")?,
            cfg,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Sends one SMS; `Ok` is Kannel's status and reply (`202 0: Accepted for delivery`).
    /// Alone, outside [`SmsProviders`](super::SmsProviders): an HTTP-date `Retry-After` is
    /// counted on the system clock.
    pub async fn send(&self, to: &str, text: &str) -> Result<String, SendFailure> {
        self.attempt(to, text, &crate::clock::SystemClock, None)
            .await
            .map_err(|f| f.error)
    }

    pub(super) async fn attempt(
        &self,
        to: &str,
        text: &str,
        clock: &dyn Clock,
        receipt: Option<Receipt<'_>>,
    ) -> Attempt {
        let coding = match sms_length(text).encoding {
            SmsEncoding::Gsm7 => "0",
            SmsEncoding::Ucs2 => "2",
        };
        let mut query: Vec<(&str, &str)> = vec![
            ("username", self.cfg.username.as_str()),
            ("password", self.cfg.password.expose()),
            ("to", to),
            ("text", text),
            ("charset", "UTF-8"),
            ("coding", coding),
        ];
        if let Some(from) = &self.cfg.from {
            query.push(("from", from.as_str()));
        }
        let dlr_url = receipt.map(dlr_url);
        if let Some(url) = &dlr_url {
            query.extend([("dlr-mask", DLR_MASK), ("dlr-url", url.as_str())]);
        }
        // The URL carries the password: `request_failed` never lets it reach a message.
        let resp = self
            .http
            .get(&self.cfg.url)
            .query(&query)
            .send()
            .await
            .map_err(|e| request_failed(&self.cfg.name, e))?;
        let reply = Reply::read(resp, clock).await;
        let quoted = excerpt(&reply.body, self.cfg.password.expose(), to);
        if (200..=299).contains(&reply.status) {
            Ok(format!("{} {quoted}", reply.status))
        } else {
            Err(status_failure(&self.cfg.name, &reply, &quoted))
        }
    }
}
