//! SMS over HTTP: Twilio's Messages API, a generic gateway described in YAML, and Kannel's
//! `sendsms`, tried in the configured order.
//!
//! Each provider sorts its answer into one of four outcomes:
//!
//! | outcome | examples | next provider? | the message |
//! |---|---|---|---|
//! | accepted | Twilio 201 with a `sid`, Kannel 202, a 2xx matching `accepted:` | — | sent |
//! | not taken, may work later | connection refused, connect timeout, 408, 429, 5xx | yes | transient (with `Retry-After`) |
//! | refused because of *us* | 401/403/404 (credentials, account, URL), Twilio's sender/account codes | yes | permanent |
//! | refused because of *the message* | Twilio 21211 invalid `To`, 21610 unsubscribed, a gateway's 400 | **no** | permanent |
//! | in doubt | no (complete) answer after the request was written | **no** | transient |
//!
//! In doubt is not passed to the next provider: the first may have taken the message, and a
//! second gateway would send it again (docs/delivery-guarantee.md §1: SMS prefers a possible loss to a
//! possible duplicate). Provider replies quoted in errors never carry the credential, and the
//! recipient's number is replaced by `<to>` (errors reach the logs).
//!
//! Delivery receipts: with [`ReceiptUrls`] set (the daemon has an `http:` section), every
//! message of a ledger row asks its provider to report back to the public server: Kannel's
//! `dlr-mask`/`dlr-url` (`/sms/kannel/dlr/<token>`), Twilio's `StatusCallback`
//! (`/sms/twilio/status/<token>`), and the generic gateway's `{receipt_url}` placeholder
//! (`/sms/receipt/<token>`), `<token>` being the delivery's signed token.

mod http;
mod kannel;
mod twilio;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use http::HttpGateway;
pub use kannel::Kannel;
pub use twilio::Twilio;

use super::rate::RateLimiter;
use super::{Handover, SendFailure};
use crate::clock::{Clock, SharedClock};
use crate::config::SmsProvider;

/// A provider's reply body is read up to this many bytes (docs/delivery-guarantee.md §4: a size cap).
const BODY_CAP: usize = 64 * 1024;
/// Characters of a reply quoted in a message.
const EXCERPT_CHARS: usize = 200;
/// A `Retry-After` longer than this is taken as this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// Why one provider did not take one message, and whether the next one may be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: SendFailure,
    /// The provider did not take the message and the reason is not the message itself.
    pub try_next: bool,
}

impl Failure {
    /// Not taken; the next provider may be tried.
    fn next(error: SendFailure) -> Failure {
        Failure {
            error,
            try_next: true,
        }
    }
    /// Stop here: the message itself is refused, or the provider may have taken it.
    fn stop(error: SendFailure) -> Failure {
        Failure {
            error,
            try_next: false,
        }
    }
}

/// What one provider made of one message: `Ok` carries its reply (a message id).
pub type Attempt = Result<String, Failure>;

/// Where a gateway reports what became of a message: the daemon's public URL and each
/// delivery's signed token (made by the App's link keys, which the channel does not know).
#[derive(Clone)]
pub struct ReceiptUrls {
    base: String,
    token: Arc<dyn Fn(i64) -> String + Send + Sync>,
}

impl ReceiptUrls {
    /// `public_url` without a trailing slash; `token(id)` the delivery's signed token.
    pub fn new(public_url: &str, token: impl Fn(i64) -> String + Send + Sync + 'static) -> Self {
        ReceiptUrls {
            base: public_url.trim_end_matches('/').to_string(),
            token: Arc::new(token),
        }
    }

    /// `<public_url><path>/<token of delivery_id>`.
    pub fn url(&self, path: &str, delivery_id: i64) -> String {
        format!("{}{path}/{}", self.base, (self.token)(delivery_id))
    }
}

impl std::fmt::Debug for ReceiptUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptUrls")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// One message's receipt request: the URLs and the delivery they name.
#[derive(Debug, Clone, Copy)]
pub(super) struct Receipt<'a> {
    urls: &'a ReceiptUrls,
    delivery_id: i64,
}

impl Receipt<'_> {
    /// The callback URL under `path` (`/sms/twilio/status`).
    pub(super) fn url(&self, path: &str) -> String {
        self.urls.url(path, self.delivery_id)
    }
}

#[derive(Debug)]
enum Provider {
    Twilio(Twilio),
    Http(HttpGateway),
    Kannel(Kannel),
}

impl Provider {
    fn name(&self) -> &str {
        match self {
            Provider::Twilio(p) => p.name(),
            Provider::Http(p) => p.name(),
            Provider::Kannel(p) => p.name(),
        }
    }
    async fn attempt(
        &self,
        to: &str,
        text: &str,
        clock: &dyn Clock,
        receipt: Option<Receipt<'_>>,
    ) -> Attempt {
        match self {
            Provider::Twilio(p) => p.attempt(to, text, clock, receipt).await,
            Provider::Http(p) => p.attempt(to, text, clock, receipt).await,
            Provider::Kannel(p) => p.attempt(to, text, clock, receipt).await,
        }
    }
}

/// The configured SMS providers in their fallback order, each with its own HTTP client
/// (built once: connections are reused).
#[derive(Debug)]
pub struct SmsProviders {
    providers: Vec<Provider>,
    /// Each provider's `rate:` (None: unlimited), in the same order.
    limits: Vec<Option<RateLimiter>>,
    /// Where `Retry-After` dates and the daily limits' UTC day are read.
    clock: SharedClock,
    /// Where receipts are asked to go (unset: none are asked for).
    receipts: OnceLock<ReceiptUrls>,
}

impl SmsProviders {
    pub fn new(list: &[SmsProvider], clock: SharedClock) -> Result<SmsProviders, SendFailure> {
        let providers = list
            .iter()
            .map(|p| {
                Ok(match p {
                    SmsProvider::Twilio(c) => Provider::Twilio(Twilio::new(c.clone())?),
                    SmsProvider::Http(c) => Provider::Http(HttpGateway::new(c.clone())?),
                    SmsProvider::Kannel(c) => Provider::Kannel(Kannel::new(c.clone())?),
                })
            })
            .collect::<Result<Vec<_>, SendFailure>>()?;
        if providers.is_empty() {
            return Err(SendFailure::permanent("no SMS provider is configured"));
        }
        let limits = list
            .iter()
            .map(|p| {
                let rate = p.rate();
                rate.is_limited()
                    .then(|| RateLimiter::new(p.name(), rate, clock.clone()))
            })
            .collect();
        Ok(SmsProviders {
            providers,
            limits,
            clock,
            receipts: OnceLock::new(),
        })
    }

    /// Every later message of a ledger row asks for a delivery receipt at `urls` (the first
    /// call wins).
    pub fn set_receipts(&self, urls: ReceiptUrls) {
        let _ = self.receipts.set(urls);
    }

    /// Counts SMS an earlier run sent today against every provider's daily limit (the ledger
    /// does not say which provider took them: the conservative reading).
    pub fn seed_today(&self, sent: u64) {
        for l in self.limits.iter().flatten() {
            l.seed_today(sent);
        }
    }

    /// Every provider's `rate` counted and paced with the other daemons on the database.
    pub fn share_limits(&self, book: &std::sync::Arc<dyn crate::channel::RateBook>) {
        for l in self.limits.iter().flatten() {
            l.share(book.clone(), "sms");
        }
    }

    /// Tries each provider in order until one takes the message. `Ok` names it:
    /// `twilio SM0123…`, `smsro 200 {"status":"ok"}`, `kannel 202 0: Accepted for delivery`.
    ///
    /// Each provider's rate limit is waited for before its request; a provider whose daily
    /// limit is spent is skipped. `handover` is committed once, right before the first request.
    pub async fn send(
        &self,
        to: &str,
        text: &str,
        handover: Option<&dyn Handover>,
    ) -> Result<String, SendFailure> {
        self.send_with_receipt(to, text, handover, None).await
    }

    /// [`SmsProviders::send`] for ledger row `delivery_id`: with receipts set, each provider
    /// is asked to report what became of the message.
    pub async fn send_with_receipt(
        &self,
        to: &str,
        text: &str,
        handover: Option<&dyn Handover>,
        delivery_id: Option<i64>,
    ) -> Result<String, SendFailure> {
        let receipt = match (self.receipts.get(), delivery_id) {
            (Some(urls), Some(delivery_id)) => Some(Receipt { urls, delivery_id }),
            _ => None,
        };
        let mut failures = Vec::new();
        let mut handed = false;
        for (i, p) in self.providers.iter().enumerate() {
            if let Some(limit) = &self.limits[i]
                && let Err(e) = limit.admit().await
            {
                failures.push(Failure::next(e));
                continue;
            }
            if !handed {
                super::hand_over(handover).await?;
                handed = true;
            }
            match p.attempt(to, text, self.clock.as_ref(), receipt).await {
                Ok(reply) => return Ok(format!("{} {reply}", p.name())),
                Err(f) => {
                    let stop = !f.try_next;
                    if !stop && let Some(next) = self.providers.get(i + 1) {
                        tracing::warn!(
                            provider = p.name(),
                            next = next.name(),
                            "SMS provider failed, trying the next one: {}",
                            f.error
                        );
                    }
                    failures.push(f);
                    if stop {
                        break;
                    }
                }
            }
        }
        Err(combine(failures))
    }
}

/// One error for the whole chain. A failure that stopped the chain decides; when every provider
/// was tried, the message may succeed later if any failure was transient, and the earliest
/// moment is the shortest `Retry-After` (none when a provider gave no `Retry-After`).
fn combine(failures: Vec<Failure>) -> SendFailure {
    let message = failures
        .iter()
        .map(|f| f.error.message())
        .collect::<Vec<_>>()
        .join("; ");
    let Some(last) = failures.last() else {
        return SendFailure::permanent("no SMS provider is configured");
    };
    if !last.try_next {
        return last.error.clone().with_message(message);
    }
    let transient: Vec<&SendFailure> = failures
        .iter()
        .map(|f| &f.error)
        .filter(|e| e.is_transient())
        .collect();
    if transient.is_empty() {
        // Every provider refused ritualist itself: the channel pauses.
        let about_us = |f: &Failure| matches!(f.error, SendFailure::AboutUs { .. });
        return if failures.iter().all(about_us) {
            SendFailure::about_us(message)
        } else {
            SendFailure::permanent(message)
        };
    }
    let wait = transient
        .iter()
        .map(|e| e.retry_after())
        .collect::<Option<Vec<Duration>>>()
        .and_then(|v| v.into_iter().min());
    // No provider was asked (each one's daily limit is spent): the message waits untried.
    if let Some(d) = wait
        && failures
            .iter()
            .all(|f| matches!(f.error, SendFailure::Untried { .. }))
    {
        return SendFailure::untried(message, d);
    }
    SendFailure::transient_after(message, wait)
}

// ---------------------------------------------------------------------------------------------
// Shared by the providers.
// ---------------------------------------------------------------------------------------------

/// One client per provider: a timeout on every request, connecting within half of it
/// (at most 10 s), no redirects.
fn client(timeout_secs: u32) -> Result<reqwest::Client, SendFailure> {
    client_trusting(timeout_secs, None, "")
}

/// [`client`] with the provider's TLS trust (`ca_file`, client certificate,
/// `accept_invalid_certs`; `section` names its config keys in errors and the warning).
fn client_trusting(
    timeout_secs: u32,
    trust: Option<&crate::config::TlsTrust>,
    section: &str,
) -> Result<reqwest::Client, SendFailure> {
    client_builder_trusting(timeout_secs, trust, section)?
        .build()
        .map_err(|e| SendFailure::permanent(format!("cannot build the HTTP client: {e}")))
}

/// The builder behind [`client_trusting`], for a caller that adds to it (the doctor's probe).
fn client_builder_trusting(
    timeout_secs: u32,
    trust: Option<&crate::config::TlsTrust>,
    section: &str,
) -> Result<reqwest::ClientBuilder, SendFailure> {
    super::init_tls();
    let timeout = Duration::from_secs(timeout_secs.max(1) as u64);
    let mut builder = reqwest::Client::builder();
    if let Some(trust) = trust.filter(|t| **t != crate::config::TlsTrust::default()) {
        if trust.accept_invalid_certs {
            tracing::warn!(
                "{section}.accept_invalid_certs is true: the gateway's certificate is NOT \
                 verified; give its CA as `{section}.ca_file` instead"
            );
        }
        let config = super::tls::client_config(trust, section, |p| {
            std::sync::Arc::new(super::tls::NoVerify(p))
        })
        .map_err(|e| SendFailure::permanent(format!("TLS setup: {e}")))?;
        builder = builder.tls_backend_preconfigured(config);
    }
    Ok(builder
        .timeout(timeout)
        .connect_timeout((timeout / 2).clamp(Duration::from_secs(1), Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ritualist/", env!("CARGO_PKG_VERSION"))))
}

/// Opens one connection to the origin of `url` (TCP, TLS with `trust`) and asks `HEAD /`:
/// any HTTP reply means reachable and, over https, verified. The path and query of `url`
/// (which may carry credentials) are never sent. For `ritualist doctor`.
pub async fn probe_gateway(
    name: &str,
    url: &str,
    trust: Option<&crate::config::TlsTrust>,
    timeout_secs: u32,
) -> Result<String, SendFailure> {
    let mut origin = reqwest::Url::parse(url)
        .map_err(|e| SendFailure::permanent(format!("{name}: invalid url: {e}")))?;
    origin.set_path("/");
    origin.set_query(None);
    let _ = origin.set_username("");
    let _ = origin.set_password(None);
    let https = origin.scheme() == "https";
    // The daemon's trust, plus the peer's certificate on the response (who issued it, until
    // when).
    let client = client_builder_trusting(timeout_secs, trust, &format!("sms.{name}"))?
        .tls_info(https)
        .build()
        .map_err(|e| SendFailure::permanent(format!("cannot build the HTTP client: {e}")))?;
    let reply = client
        .head(origin)
        .send()
        .await
        .map_err(|e| request_failed(name, e).error)?;
    let tls = match (https, trust.is_some_and(|t| t.accept_invalid_certs)) {
        (false, _) => "no TLS (http)".to_string(),
        (true, true) => "TLS NOT verified (accept_invalid_certs)".to_string(),
        (true, false) => match reply
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .and_then(super::tls::describe_certificate)
        {
            Some(cert) => format!("TLS verified ({cert})"),
            None => "TLS verified".to_string(),
        },
    };
    Ok(format!(
        "reachable, {tls} (HTTP {} to HEAD /)",
        reply.status().as_u16()
    ))
}

/// The request failed before a status arrived. A failed connection means the provider never
/// saw the message (try the next one); anything later — a timeout or a dropped connection
/// after the request was written — is in doubt. The URL (it may carry a secret) is left out.
fn request_failed(name: &str, e: reqwest::Error) -> Failure {
    let connect = e.is_connect();
    let builder = e.is_builder();
    let timeout = e.is_timeout();
    let detail = error_chain(&e.without_url());
    if builder {
        Failure::next(SendFailure::permanent(format!(
            "{name}: cannot build the request: {detail}"
        )))
    } else if connect && super::tls::is_tls_failure(&detail) {
        Failure::next(SendFailure::transient(super::tls::explain(
            name,
            &format!("sms.{name}"),
            &detail,
        )))
    } else if connect {
        Failure::next(SendFailure::transient(format!(
            "{name} unreachable: {detail}"
        )))
    } else {
        let what = if timeout {
            "no answer in time"
        } else {
            "connection lost"
        };
        Failure::stop(SendFailure::in_doubt(format!(
            "{name}: {what} after the request was sent ({detail}); in doubt: the provider may have taken the message, so no other provider is tried"
        )))
    }
}

/// `error sending request: client error (Connect): tcp connect error: Connection refused`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

/// A reply: its status, `Retry-After`, and up to [`BODY_CAP`] bytes of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
    /// False when reading the body failed (a timeout or a dropped connection).
    complete: bool,
}

impl Reply {
    /// The reply to a request; an HTTP-date `Retry-After` is counted from `clock`'s now.
    async fn read(mut resp: reqwest::Response, clock: &dyn Clock) -> Reply {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, clock.now()));
        let mut bytes = Vec::new();
        let mut complete = true;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = BODY_CAP - bytes.len();
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if bytes.len() >= BODY_CAP {
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        Reply {
            status,
            retry_after,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            complete,
        }
    }
}

/// `Retry-After: 7` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`, capped at a day; a date
/// in the past is no wait at all.
fn parse_retry_after(v: &str, now: jiff::Timestamp) -> Option<Duration> {
    let v = v.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse().unwrap_or(u64::MAX))
    } else {
        let at = jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(v)
            .ok()?;
        let secs = at.as_second().saturating_sub(now.as_second()).max(0);
        Duration::from_secs(secs as u64)
    };
    Some(d.min(RETRY_AFTER_CAP))
}

/// What a transient failure status looks like: 408, 425, 429 and 5xx.
fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..=599).contains(&status)
}

/// Statuses that are about our side (credentials, account, URL, method): another provider
/// may well take the message.
fn is_about_us(status: u16) -> bool {
    matches!(status, 401 | 402 | 403 | 404 | 405 | 407 | 410) || (300..=399).contains(&status)
}

/// A failure from a status that did not mean "accepted", for providers that know nothing more.
fn status_failure(name: &str, reply: &Reply, detail: &str) -> Failure {
    let message = format!("{name} {}: {detail}", reply.status);
    if is_transient_status(reply.status) {
        Failure::next(SendFailure::transient_after(message, reply.retry_after))
    } else if is_about_us(reply.status) {
        Failure::next(SendFailure::about_us(message))
    } else {
        Failure::stop(SendFailure::permanent(message))
    }
}

/// A reply quoted in a message: credentials and the recipient's number replaced, whitespace
/// folded, at most [`EXCERPT_CHARS`] characters.
fn excerpt(body: &str, secret: &str, to: &str) -> String {
    let mut s = body.to_string();
    if !secret.is_empty() {
        s = s.replace(secret, "***");
    }
    let digits = to.trim_start_matches('+');
    if digits.len() >= 5 {
        s = s.replace(to, "<to>").replace(digits, "<to>");
    }
    let folded = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = folded.chars().take(EXCERPT_CHARS).collect();
    if folded.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty reply)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now: jiff::Timestamp = "2026-10-21T07:28:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999999", now), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn excerpts_hide_the_secret_and_the_number() {
        let e = excerpt(
            "{\"error\": \"key s3cr3t-key invalid for\n  +40721000002 (40721000002)\"}",
            "s3cr3t-key",
            "+40721000002",
        );
        assert_eq!(e, "{\"error\": \"key *** invalid for <to> (<to>)\"}");
        assert_eq!(excerpt("", "", "+1"), "(empty reply)");
        let long = "é".repeat(500);
        assert_eq!(excerpt(&long, "", "").chars().count(), EXCERPT_CHARS + 1);
    }

    fn reply(status: u16, retry_after: Option<u64>) -> Reply {
        Reply {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: String::new(),
            complete: true,
        }
    }

    #[test]
    fn statuses_without_provider_knowledge() {
        // (status, transient, try the next provider)
        for (status, transient, next) in [
            (429, true, true),
            (500, true, true),
            (503, true, true),
            (408, true, true),
            (401, false, true),
            (403, false, true),
            (404, false, true),
            (301, false, true),
            (400, false, false),
            (422, false, false),
        ] {
            let f = status_failure("gw", &reply(status, None), "x");
            assert_eq!(f.error.is_transient(), transient, "{status}");
            assert_eq!(f.try_next, next, "{status}");
            assert!(f.error.message().starts_with(&format!("gw {status}: ")));
        }
        let f = status_failure("gw", &reply(429, Some(7)), "slow down");
        assert_eq!(f.error.retry_after(), Some(Duration::from_secs(7)));
    }

    fn t(msg: &str, after: Option<u64>, next: bool) -> Failure {
        let e = SendFailure::transient_after(msg, after.map(Duration::from_secs));
        Failure {
            error: e,
            try_next: next,
        }
    }
    fn p(msg: &str, next: bool) -> Failure {
        Failure {
            error: SendFailure::permanent(msg),
            try_next: next,
        }
    }

    #[test]
    fn the_chain_result() {
        // All down: transient; the shortest Retry-After when every provider gave one.
        let e = combine(vec![t("a 429", Some(7), true), t("b 429", Some(3), true)]);
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.message(), "a 429; b 429");
        // One without Retry-After may be back at the next regular attempt.
        let e = combine(vec![t("a 429", Some(7), true), t("b 500", None, true)]);
        assert_eq!(e.retry_after(), None);
        // Misconfigured everywhere: permanent.
        let e = combine(vec![p("a 401", true), p("b 403", true)]);
        assert!(e.is_permanent());
        // One misconfigured, one down: it may work later.
        let e = combine(vec![p("a 401", true), t("b 503", Some(60), true)]);
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        // The message itself refused after a provider was down: permanent.
        let e = combine(vec![
            t("a 500", None, true),
            p("b 400 invalid number", false),
        ]);
        assert!(e.is_permanent());
        assert_eq!(e.message(), "a 500; b 400 invalid number");
        // In doubt: transient, whatever came before.
        let e = combine(vec![p("a 401", true), t("b in doubt", None, false)]);
        assert!(e.is_transient());
        let doubt = Failure::stop(SendFailure::in_doubt("b in doubt"));
        let e = combine(vec![p("a 401", true), doubt]);
        assert!(e.is_transient() && matches!(e, SendFailure::InDoubt { .. }));
        // Every daily limit spent: nobody was asked; untried until the first one renews.
        let quota =
            |msg: &str, secs| Failure::next(SendFailure::untried(msg, Duration::from_secs(secs)));
        let e = combine(vec![quota("a daily", 7200), quota("b daily", 3600)]);
        assert!(
            matches!(e, SendFailure::Untried { .. }) && e.is_transient(),
            "{e:?}"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
        // One spent, the other asked and down: a real attempt, counted.
        let e = combine(vec![quota("a daily", 7200), t("b 503", Some(60), true)]);
        assert!(
            !matches!(e, SendFailure::Untried { .. }) && e.is_transient(),
            "{e:?}"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    }
}
