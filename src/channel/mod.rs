//! Delivery channels: the only home of `lettre` (email) and `reqwest` (SMS over HTTP).
//!
//! | transport | channel | what it does |
//! |---|---|---|
//! | [`Outbox`] | email, sms | writes `.eml` files and `sms.jsonl` lines into a folder: no server needed |
//! | discard | email, sms | accepts and drops every message (load tests, dry runs) |
//! | [`SmtpPool`] | email | SMTP through connections it opens itself (TCP_NODELAY), reused, every step under a timeout |
//! | [`SmsProviders`] | sms | HTTP gateways tried in order: [`Twilio`], a generic [`HttpGateway`] described in YAML, [`Kannel`] (`sendsms`, UCS-2 for text outside GSM-7) |
//!
//! Every transport answers with a [`SendFailure`]: one case per thing the dispatcher does about
//! it (retry, not even tried, in doubt, refused us, failed, bounced), and after an HTTP
//! `Retry-After` how long to wait at least.

mod address;
mod email;
mod fetch;
mod headers;
mod outbox;
mod rate;
mod sms;
pub mod tls;

use std::sync::Once;
use std::time::Duration;

pub use email::{
    DKIM_SIGNED_HEADERS, DkimSigner, EmailParts, Rejection, SmtpPhase, SmtpPool, build_email,
    classify_rejection, normalize_crlf,
};
pub use fetch::get_small;
pub use headers::readable_headers;
pub use outbox::Outbox;
pub use rate::{DailyQuota, Pacer, RateBook, RateLimiter, Take, Taken};
pub use sms::{HttpGateway, Kannel, ReceiptUrls, SmsProviders, Twilio, probe_gateway};

use crate::clock::SharedClock;
use crate::config::{Config, EmailTransport, SmsTransport};
use crate::render::sms_length;

/// How a send failed, one case per thing the dispatcher does about it (its `settle` matches
/// on this exhaustively). Transports return it; impossible combinations (a hard bounce that is
/// also in doubt) cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// The [`Handover`] refused (the lease was lost to another worker): nothing was handed over
    /// and this worker must not record any result.
    #[error("{message}")]
    LeaseLost { message: String },
    /// Not even tried (the relay's circuit breaker is open, the provider's daily quota is
    /// spent): back to the queue for `wait`, the attempt not counted.
    #[error("{message}")]
    Untried { message: String, wait: Duration },
    /// Handed over (body being written, or the HTTP request sent), then the connection broke
    /// or went silent: the provider may or may not hold the message.
    #[error("{message}")]
    InDoubt { message: String },
    /// The provider refused *us* (SMTP 530/535 AUTH, 5.7.x policy, a 5xx to MAIL FROM or at
    /// the greeting; an SMS gateway's 401/403): the channel pauses until the operator fixes the
    /// configuration. Never the recipient's fault.
    #[error("{message}")]
    AboutUs { message: String },
    /// May succeed later (4xx, a dropped connection, a timeout, HTTP 429/5xx); never sooner
    /// than `retry_after` (HTTP `Retry-After`).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (5xx, a malformed address, HTTP 4xx).
    #[error("{message}")]
    Permanent { message: String },
    /// Permanent, and about the recipient's address itself (SMTP 5.1.1 user unknown, a
    /// carrier STOP): the address must not be written to again.
    #[error("{message}")]
    HardBounce { message: String },
}

impl SendFailure {
    /// The provider's (or our) words, as stored in the ledger row.
    pub fn message(&self) -> &str {
        match self {
            SendFailure::LeaseLost { message }
            | SendFailure::Untried { message, .. }
            | SendFailure::InDoubt { message }
            | SendFailure::AboutUs { message }
            | SendFailure::Transient { message, .. }
            | SendFailure::Permanent { message }
            | SendFailure::HardBounce { message } => message,
        }
    }
}

/// Constructors and questions for the transports (the dispatcher matches on the variants).
impl SendFailure {
    /// May succeed later, no `Retry-After`.
    pub fn transient(message: impl Into<String>) -> Self {
        SendFailure::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
    /// May succeed later, never sooner than `d`.
    pub fn transient_after(message: impl Into<String>, d: Option<Duration>) -> Self {
        SendFailure::Transient {
            message: message.into(),
            retry_after: d,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        SendFailure::Permanent {
            message: message.into(),
        }
    }
    /// Not tried: the provider is known to be unavailable for another `wait`.
    pub fn untried(message: impl Into<String>, wait: Duration) -> Self {
        SendFailure::Untried {
            message: message.into(),
            wait,
        }
    }
    /// Handed over, then no definite answer: the provider may hold the message.
    pub fn in_doubt(message: impl Into<String>) -> Self {
        SendFailure::InDoubt {
            message: message.into(),
        }
    }
    /// A refusal of ritualist itself (credentials, sender, policy): pause the channel.
    pub fn about_us(message: impl Into<String>) -> Self {
        SendFailure::AboutUs {
            message: message.into(),
        }
    }
    /// A permanent failure that is a hard bounce of the recipient's address.
    pub fn hard_bounce(message: impl Into<String>) -> Self {
        SendFailure::HardBounce {
            message: message.into(),
        }
    }
    /// The handover was refused: this worker no longer owns the message.
    pub fn lease_lost(message: impl Into<String>) -> Self {
        SendFailure::LeaseLost {
            message: message.into(),
        }
    }

    /// Whether a later attempt may succeed without the operator doing anything: transient,
    /// untried, in doubt (and a lost lease: another worker has the message). A refusal of us
    /// waits for the operator: not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SendFailure::Transient { .. }
                | SendFailure::Untried { .. }
                | SendFailure::InDoubt { .. }
                | SendFailure::LeaseLost { .. }
        )
    }
    /// Retrying cannot help: permanent or a hard bounce.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SendFailure::Permanent { .. } | SendFailure::HardBounce { .. }
        )
    }
    /// The least wait before the next attempt: a `Retry-After`, or an untried message's wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendFailure::Transient { retry_after, .. } => *retry_after,
            SendFailure::Untried { wait, .. } => Some(*wait),
            _ => None,
        }
    }
    /// The same failure in other words.
    pub fn with_message(mut self, text: String) -> Self {
        match &mut self {
            SendFailure::LeaseLost { message }
            | SendFailure::Untried { message, .. }
            | SendFailure::InDoubt { message }
            | SendFailure::AboutUs { message }
            | SendFailure::Transient { message, .. }
            | SendFailure::Permanent { message }
            | SendFailure::HardBounce { message } => *message = text,
        }
        self
    }
}

/// The last step before a transport hands a message over: the dispatcher commits the row as
/// `sending` (docs/delivery-guarantee.md §1). SMTP queues it as MAIL FROM goes out and holds
/// the final dot until it is durable (the envelope and the body go out meanwhile); SMS calls it
/// right before the request; the outbox before writing the file. If it fails, nothing is
/// handed over and the transport returns that error.
pub trait Handover: Send + Sync {
    fn commit(&self) -> futures_util::future::BoxFuture<'_, Result<(), SendFailure>>;
}

/// Calls the handover, if any.
async fn hand_over(h: Option<&dyn Handover>) -> Result<(), SendFailure> {
    match h {
        Some(h) => h.commit().await,
        None => Ok(()),
    }
}

/// One message ready to go, exactly as stored in the ledger.
#[derive(Clone)]
pub struct Outgoing<'a> {
    pub channel: &'a str,
    /// Email address or E.164 number.
    pub recipient: &'a str,
    /// The whole RFC 5322 message (email) or the text (SMS).
    pub payload: &'a str,
    pub message_id: Option<&'a str>,
    /// Envelope sender (email).
    pub from: &'a str,
    /// Committed right before the message is handed over (`None`: nothing to commit, e.g. a
    /// test send from `preview`).
    pub handover: Option<&'a dyn Handover>,
    /// The ledger row this message is, for the SMS gateways' delivery-receipt callback URL
    /// ([`ReceiptUrls`]); `None` (a test send): no receipt is asked for.
    pub delivery_id: Option<i64>,
}

impl std::fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("channel", &self.channel)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum EmailSender {
    Discard,
    Outbox(Outbox),
    Smtp(Box<SmtpPool>),
}

#[derive(Debug)]
enum SmsSender {
    Discard,
    Outbox(Outbox),
    Providers(SmsProviders),
}

/// The configured transports, built once and shared so connections are reused.
#[derive(Debug)]
pub struct Channels {
    email: EmailSender,
    sms: SmsSender,
    sms_concurrency: usize,
}

/// Installs ring as the process-wide rustls provider (once; one TLS provider for everything).
pub fn init_tls() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Channels {
    /// The transports of `cfg`; their circuit breakers, pools and rate limits read `clock`.
    pub fn from_config(cfg: &Config, clock: SharedClock) -> Result<Channels, SendFailure> {
        init_tls();
        let outbox = || Outbox::new(&cfg.delivery.outbox_dir);
        let email = match &cfg.delivery.email {
            EmailTransport::Outbox => EmailSender::Outbox(outbox()),
            EmailTransport::Discard => EmailSender::Discard,
            EmailTransport::Smtp(s) => {
                EmailSender::Smtp(Box::new(SmtpPool::with_clock(s.clone(), clock.clone())))
            }
        };
        let sms = match &cfg.delivery.sms {
            SmsTransport::Outbox => SmsSender::Outbox(outbox()),
            SmsTransport::Discard => SmsSender::Discard,
            SmsTransport::Providers(p) => {
                SmsSender::Providers(SmsProviders::new(p, clock.clone())?)
            }
        };
        Ok(Channels {
            email,
            sms,
            sms_concurrency: cfg.delivery.sms_concurrency as usize,
        })
    }

    /// Sends one message; `Ok` carries the provider's reply (or where the file went).
    pub async fn send(&self, msg: &Outgoing<'_>) -> Result<String, SendFailure> {
        match msg.channel {
            "email" => match &self.email {
                EmailSender::Discard => {
                    hand_over(msg.handover).await?;
                    Ok("discarded".into())
                }
                EmailSender::Outbox(o) => {
                    hand_over(msg.handover).await?;
                    o.write_email(msg).await
                }
                EmailSender::Smtp(p) => {
                    p.send(
                        msg.from,
                        msg.recipient,
                        msg.payload.as_bytes(),
                        msg.handover,
                    )
                    .await
                }
            },
            "sms" => match &self.sms {
                SmsSender::Discard => {
                    hand_over(msg.handover).await?;
                    Ok("discarded".into())
                }
                SmsSender::Outbox(o) => {
                    hand_over(msg.handover).await?;
                    o.write_sms(msg, &sms_length(msg.payload)).await
                }
                SmsSender::Providers(p) => {
                    p.send_with_receipt(msg.recipient, msg.payload, msg.handover, msg.delivery_id)
                        .await
                }
            },
            other => Err(SendFailure::permanent(format!("unknown channel `{other}`"))),
        }
    }

    /// How many messages of `channel` may be in flight at once: the SMTP pool's connections;
    /// `sms.concurrency` SMS requests (default 8); 4 outbox writes; 256 discarded messages (a
    /// group commit's most: `discard` measures the ledger, not a provider).
    pub fn concurrency(&self, channel: &str) -> usize {
        match (channel, &self.email, &self.sms) {
            ("email", EmailSender::Smtp(p), _) => p.connections(),
            ("sms", _, SmsSender::Providers(_)) => self.sms_concurrency,
            ("email", EmailSender::Discard, _) | ("sms", _, SmsSender::Discard) => 256,
            _ => 4,
        }
    }

    /// Counts what an earlier run sent today (UTC) on `channel` against the daily limits.
    pub fn seed_today(&self, channel: &str, sent: u64) {
        match (channel, &self.email, &self.sms) {
            ("email", EmailSender::Smtp(p), _) => p.seed_today(sent),
            ("sms", _, SmsSender::Providers(p)) => p.seed_today(sent),
            _ => {}
        }
    }

    /// Every provider's rate limits counted and paced through `book` (the daemons sharing a
    /// PostgreSQL database share the limits too).
    pub fn share_limits(&self, book: std::sync::Arc<dyn RateBook>) {
        if let EmailSender::Smtp(p) = &self.email {
            p.share_limits(&book);
        }
        if let SmsSender::Providers(p) = &self.sms {
            p.share_limits(&book);
        }
    }

    /// Where the SMS providers ask for delivery receipts (the daemon's public server): set
    /// once, when the App has its link keys; unset, no receipt is asked for.
    pub fn set_sms_receipts(&self, urls: ReceiptUrls) {
        if let SmsSender::Providers(p) = &self.sms {
            p.set_receipts(urls);
        }
    }

    /// Closes pooled connections politely (QUIT).
    pub async fn close(&self) {
        if let EmailSender::Smtp(p) = &self.email {
            p.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the transports' helpers build, as the dispatcher reads it: one case each, and only
    /// a refusal of us is neither transient nor permanent (it waits for the operator).
    #[test]
    fn each_failure_is_one_case_with_its_wait() {
        let s = Duration::from_secs;
        let cases = [
            (SendFailure::transient("t"), true, false, None),
            (
                SendFailure::transient_after("t", Some(s(7))),
                true,
                false,
                Some(s(7)),
            ),
            (SendFailure::untried("u", s(30)), true, false, Some(s(30))),
            (SendFailure::in_doubt("d"), true, false, None),
            (SendFailure::lease_lost("l"), true, false, None),
            (SendFailure::about_us("a"), false, false, None),
            (SendFailure::permanent("p"), false, true, None),
            (SendFailure::hard_bounce("b"), false, true, None),
        ];
        for (e, transient, permanent, wait) in cases {
            assert_eq!(
                (e.is_transient(), e.is_permanent(), e.retry_after()),
                (transient, permanent, wait),
                "{e:?}"
            );
            let kind = std::mem::discriminant(&e);
            let reworded = e.with_message("x; y".into());
            assert_eq!(std::mem::discriminant(&reworded), kind, "{reworded:?}");
            assert_eq!(
                (reworded.message(), reworded.to_string()),
                ("x; y", "x; y".into())
            );
        }
    }
}
