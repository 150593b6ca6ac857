//! The SMTP pool: reused connections (at most `connections` at once, fewer while the relay
//! refuses more), the rate limiter and the circuit breaker around each message, one fresh try
//! when a pooled connection turns out to be closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use tokio::sync::{Mutex, Semaphore};

use super::breaker::Breaker;
use super::transaction::{Failed, transaction};
use crate::channel::SendFailure;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{SmtpConfig, SmtpSecurity};

/// An open SMTP session, whether the relay offered PIPELINING (RFC 2920) on it, and the gate
/// that can hold its final dot while the body is on the wire (`None` under STARTTLS).
pub(super) struct Conn {
    pub(super) smtp: AsyncSmtpConnection,
    pub(super) pipelining: bool,
    pub(super) gate: Option<super::stream::DotGate>,
    /// Counted among the pool's open connections until dropped.
    pub(super) _open: OpenConn,
}

/// One of the pool's open connections, busy or idle: counted from the relay's greeting until
/// the connection is dropped.
pub(super) struct OpenConn(Arc<AtomicUsize>);

impl OpenConn {
    pub(super) fn count(open: &Arc<AtomicUsize>) -> OpenConn {
        open.fetch_add(1, Ordering::SeqCst);
        OpenConn(open.clone())
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many slots the pool gave up because the relay turned a connection away beyond those
/// open, when it last did, and whether that was logged at WARN yet.
#[derive(Debug, Default)]
struct Lowered {
    slots: usize,
    since: Option<Timestamp>,
    warned: bool,
}

/// After this long without another refusal, one slot given up is taken back (and if the relay
/// still allows no more, given up again: one connection turned away a minute).
const REGROW_AFTER: Duration = Duration::from_secs(60);

/// A handover committed at most once across the tries of one message: the `sending` commit
/// runs beside the envelope, so a pooled connection found closed at MAIL FROM may come after
/// it, and the fresh connection's try must not commit the row again (its fence would refuse).
struct Once<'a> {
    inner: &'a dyn crate::channel::Handover,
    done: AtomicBool,
}

impl crate::channel::Handover for Once<'_> {
    fn commit(&self) -> futures_util::future::BoxFuture<'_, Result<(), SendFailure>> {
        Box::pin(async move {
            if self.done.load(Ordering::SeqCst) {
                return Ok(());
            }
            self.inner.commit().await?;
            self.done.store(true, Ordering::SeqCst);
            Ok(())
        })
    }
}

struct Idle {
    conn: Conn,
    since: Timestamp,
}

/// Reused SMTP connections, at most `connections` at once.
pub struct SmtpPool {
    pub(super) cfg: SmtpConfig,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
    /// Connections open now (see [`OpenConn`]).
    pub(super) open: Arc<AtomicUsize>,
    /// Slots given up to the relay's own connection limit.
    lowered: std::sync::Mutex<Lowered>,
    /// `smtp.rate` (None: unlimited).
    rate: Option<crate::channel::RateLimiter>,
    breaker: std::sync::Mutex<Breaker>,
    /// Where the breaker, the idle connections and the daily limit read the time.
    clock: SharedClock,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("host", &self.cfg.host)
            .field("port", &self.cfg.port)
            .finish()
    }
}

/// A connection idle longer than this is probed with NOOP before reuse.
const PROBE_AFTER: Duration = Duration::from_secs(5);

impl SmtpPool {
    /// A pool on the system clock (`ritualist doctor`'s probe, tests of the wire).
    pub fn new(cfg: SmtpConfig) -> Self {
        SmtpPool::with_clock(cfg, SystemClock::shared())
    }

    /// A pool whose circuit breaker, idle connections and daily limit read `clock`.
    pub fn with_clock(cfg: SmtpConfig, clock: SharedClock) -> Self {
        crate::channel::init_tls();
        if cfg.security != SmtpSecurity::Plain && cfg.accept_invalid_certs {
            tracing::warn!(
                host = %cfg.host,
                "email.smtp.accept_invalid_certs is true: the relay's certificate is NOT \
                 verified, anyone on the path can read and change mail; give its CA as \
                 `email.smtp.ca_file` instead"
            );
        }
        let slots = Semaphore::new(cfg.connections as usize);
        let rate = cfg
            .rate
            .is_limited()
            .then(|| crate::channel::RateLimiter::new("smtp", cfg.rate, clock.clone()));
        let breaker = std::sync::Mutex::new(Breaker::new(
            cfg.breaker_failures,
            Duration::from_secs(cfg.breaker_secs as u64),
        ));
        SmtpPool {
            cfg,
            idle: Mutex::new(Vec::new()),
            slots,
            open: Arc::new(AtomicUsize::new(0)),
            lowered: std::sync::Mutex::new(Lowered::default()),
            rate,
            breaker,
            clock,
        }
    }

    /// The most connections the pool opens.
    pub fn connections(&self) -> usize {
        self.cfg.connections.max(1) as usize
    }

    /// Counts emails an earlier run sent today against `smtp.rate.per_day`.
    pub fn seed_today(&self, sent: u64) {
        if let Some(r) = &self.rate {
            r.seed_today(sent);
        }
    }

    /// `smtp.rate` counted and paced with the other daemons on the database.
    pub fn share_limits(&self, book: &std::sync::Arc<dyn crate::channel::RateBook>) {
        if let Some(r) = &self.rate {
            r.share(book.clone(), "email");
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs as u64)
    }

    /// A pooled connection that still answers (`true`: reused), or a new one.
    async fn checkout(&self) -> Result<(Conn, bool), super::connect::NotOpened> {
        loop {
            let candidate = self.idle.lock().await.pop();
            let Some(mut idle) = candidate else { break };
            if idle.conn.smtp.has_broken() {
                continue;
            }
            // A clock that stepped back counts as no idle time (a stale one fails at MAIL
            // FROM, before any handover, and is replaced once).
            let idle_for = Duration::try_from(self.clock.now().duration_since(idle.since));
            if idle_for.unwrap_or(Duration::ZERO) < PROBE_AFTER {
                return Ok((idle.conn, true));
            }
            let alive = tokio::time::timeout(self.timeout(), idle.conn.smtp.test_connected())
                .await
                .unwrap_or(false);
            if alive {
                return Ok((idle.conn, true));
            }
        }
        Ok((self.open_conn().await?, false))
    }

    /// Sends `message` (already CRLF-normalised) from `from` to `to`; returns the server's reply.
    /// `handover` is committed beside the envelope and the body (queued as MAIL goes out) and
    /// is durable before the final dot (under STARTTLS: after `354`, before the body): a
    /// failure before `354` and the commit is "not sent", a reply code to the dot is
    /// "accepted" or "rejected", and a broken or silent connection after both is "in doubt"
    /// ([`SendFailure::InDoubt`]). It is committed once per message, whatever the tries.
    ///
    /// A pooled connection the relay closed while it sat idle (its idle timeout is shorter
    /// than ours, or it restarted) fails at MAIL FROM, before anything is handed over: the
    /// message is then tried once more on a fresh connection instead of waiting for a retry.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        message: &[u8],
        handover: Option<&dyn crate::channel::Handover>,
    ) -> Result<String, SendFailure> {
        if let Some(d) = self.breaker_state().open(self.clock.now()) {
            return Err(SendFailure::untried(
                format!(
                    "not tried: {}:{} failed {} times in a row; the circuit breaker is open for another {} s",
                    self.cfg.host,
                    self.cfg.port,
                    self.cfg.breaker_failures,
                    d.as_secs_f64().ceil()
                ),
                d,
            ));
        }
        let (result, relay_down) = match self.attempt(from, to, message, handover).await {
            Ok(reply) => (Ok(reply), false),
            Err((e, down)) => (Err(e), down),
        };
        let mut b = self.breaker_state();
        if relay_down {
            if let Some(d) = b.failure(self.clock.now()) {
                tracing::warn!(
                    "SMTP relay {}:{} failed {} times in a row: circuit breaker open for {} s",
                    self.cfg.host,
                    self.cfg.port,
                    self.cfg.breaker_failures,
                    d.as_secs()
                );
            }
        } else if result.is_ok() {
            if b.has_opened() {
                tracing::info!(
                    "SMTP relay {}:{} answers again: circuit breaker closed",
                    self.cfg.host,
                    self.cfg.port
                );
            }
            b.success();
        }
        result
    }

    fn breaker_state(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One message; on failure also whether it was the relay itself (it could not be reached,
    /// closed the connection, answered 421, or went silent).
    async fn attempt(
        &self,
        from: &str,
        to: &str,
        message: &[u8],
        handover: Option<&dyn crate::channel::Handover>,
    ) -> Result<String, (SendFailure, bool)> {
        let mine = |e: SendFailure| (e, false);
        // Paced before a connection is taken: the wait never holds a slot.
        if let Some(r) = &self.rate {
            r.admit().await.map_err(mine)?;
        }
        let slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| mine(SendFailure::transient("pool closed")))?;
        let envelope = lettre::address::Envelope::new(
            Some(from.parse().map_err(|e| {
                mine(SendFailure::permanent(format!(
                    "invalid sender `{from}`: {e}"
                )))
            })?),
            vec![to.parse().map_err(|e| {
                mine(SendFailure::permanent(format!(
                    "invalid recipient `{to}`: {e}"
                )))
            })?],
        )
        .map_err(|e| mine(SendFailure::permanent(e.to_string())))?;
        // Committed once: a fresh try after a stale connection does not commit again.
        let once = handover.map(|inner| Once {
            inner,
            done: AtomicBool::new(false),
        });
        let handover = once.as_ref().map(|o| o as &dyn crate::channel::Handover);
        let (mut conn, mut reused, _slot) = self.checkout_within_limit(slot).await?;
        loop {
            let handed = AtomicBool::new(false);
            let sent = tokio::time::timeout(
                self.timeout(),
                transaction(&mut conn, &envelope, message, handover, &handed),
            )
            .await;
            return match sent {
                Ok(Ok(resp)) => {
                    self.regrow();
                    let reply = format!(
                        "{} {}",
                        resp.code(),
                        resp.message().collect::<Vec<_>>().join(" ")
                    );
                    self.idle.lock().await.push(Idle {
                        conn,
                        since: self.clock.now(),
                    });
                    Ok(reply)
                }
                Ok(Err(Failed::Stale(e))) if reused => {
                    tracing::debug!(
                        "a pooled SMTP connection was closed by the relay ({e}); reconnecting"
                    );
                    conn = self.connect().await.map_err(relay_down)?;
                    reused = false;
                    continue;
                }
                Ok(Err(Failed::Stale(e) | Failed::Down(e))) => Err((e, true)),
                Ok(Err(Failed::Other(e))) => Err((e, false)),
                Err(_) if handed.load(Ordering::SeqCst) => Err((
                    SendFailure::in_doubt(format!(
                        "no reply to the message within {} s; in doubt: the relay may have taken it",
                        self.cfg.timeout_secs
                    )),
                    true,
                )),
                Err(_) => Err((
                    SendFailure::transient(format!("no reply within {} s", self.cfg.timeout_secs)),
                    true,
                )),
            };
        }
    }

    /// [`SmtpPool::checkout`] holding `slot`, within the relay's connection limit: a connection
    /// turned away while others are open gives the slot up (until [`REGROW_AFTER`] passes
    /// without a refusal) and waits for one of the open connections to come back
    /// ([`SmtpPool::at_the_relays_limit`]). Errors as [`SmtpPool::attempt`]'s.
    async fn checkout_within_limit<'a>(
        &'a self,
        mut slot: tokio::sync::SemaphorePermit<'a>,
    ) -> Result<(Conn, bool, tokio::sync::SemaphorePermit<'a>), (SendFailure, bool)> {
        loop {
            match self.checkout().await {
                Ok((conn, reused)) => return Ok((conn, reused, slot)),
                Err(n) if n.turned_away && self.at_the_relays_limit(&n.failure) => {
                    slot.forget();
                    slot = self
                        .slots
                        .acquire()
                        .await
                        .map_err(|_| (SendFailure::transient("pool closed"), false))?;
                }
                Err(n) => return Err(relay_down(n.failure)),
            }
        }
    }

    /// Whether a connection the relay turned away (a 4xx greeting, such as Postfix's "421 …
    /// too many connections") is its connection limit: other connections of this pool are
    /// open. Then the pool gives up a slot instead of failing the message, and the refusal
    /// does not count towards the circuit breaker: a relay that allows 20 connections takes 20
    /// at a time, with no message sent back to wait for a retry. With no other connection open
    /// it is an ordinary failure, as is a connection that could not be made at all (a relay
    /// that is down gives no greeting).
    fn at_the_relays_limit(&self, e: &SendFailure) -> bool {
        let open = self.open.load(Ordering::SeqCst);
        let mut lowered = self.lowered_state();
        // One slot is always kept, whatever the counts say: a pool with none would never send
        // again (a slot comes back only after a send).
        if open == 0 || lowered.slots + 1 >= self.connections() {
            return false;
        }
        lowered.slots += 1;
        lowered.since = Some(self.clock.now());
        // One line at WARN for the pool's life (a burst of refusals, or a slot tried again each
        // minute, would otherwise log one each); the rest at DEBUG.
        if !lowered.warned {
            lowered.warned = true;
            tracing::warn!(
                "SMTP relay {}:{} turned a connection away with {open} open ({e}): using only \
                 the connections it allows (email.smtp.connections is {}; set it to the \
                 relay's limit)",
                self.cfg.host,
                self.cfg.port,
                self.cfg.connections
            );
        } else {
            tracing::debug!(
                "SMTP relay {}:{} still allows no more than {open} connections ({e})",
                self.cfg.host,
                self.cfg.port
            );
        }
        true
    }

    /// Takes back one slot given up to the relay's limit once [`REGROW_AFTER`] has passed
    /// without another refusal (the limit may have been other clients' connections).
    fn regrow(&self) {
        let mut lowered = self.lowered_state();
        let Some(since) = lowered.since else { return };
        let quiet = Duration::try_from(self.clock.now().duration_since(since))
            .is_ok_and(|d| d >= REGROW_AFTER);
        if quiet {
            lowered.slots -= 1;
            lowered.since = (lowered.slots > 0).then(|| self.clock.now());
            self.slots.add_permits(1);
        }
    }

    fn lowered_state(&self) -> std::sync::MutexGuard<'_, Lowered> {
        self.lowered.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn close(&self) {
        let mut idle = self.idle.lock().await;
        for mut i in idle.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), i.conn.smtp.quit()).await;
        }
    }
}

/// A failure to connect (refused, timed out, greeting or STARTTLS refused) is the relay's
/// (`true`: it counts towards the circuit breaker); a refusal of our credentials is about us
/// (the channel pauses instead).
fn relay_down(e: SendFailure) -> (SendFailure, bool) {
    let about_us = matches!(e, SendFailure::AboutUs { .. });
    (e, !about_us)
}
