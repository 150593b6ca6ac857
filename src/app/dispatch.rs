//! Draining the outbox: claim due rows under a lease, send each outside any transaction,
//! record the result (fenced by the lease token). Knows nothing about rituals or templates:
//! it sends the stored bytes, so a retry is byte-identical to the first attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::App;
use super::message::{ComposeError, compose_with};
use super::tokens::LinkMode;

use crate::channel::{Handover, Outgoing, SendFailure};
use crate::config::{AllowedHours, InDoubtPolicy};
use crate::domain::{Channel, Email, Phone};
use crate::plan::{CustomerFacts, Occasion, next_allowed};
use crate::store::{ClaimedDelivery, RenderedMessage, Urgency};

/// How a message that could not be composed is logged (its reason always goes on the row).
#[derive(Debug, Clone, Copy)]
enum Logged {
    /// With the reason.
    Text,
    /// Without it (it may quote the address).
    Hidden,
    /// Already logged where it happened (a caught panic).
    Already,
}

/// When a row's send window (`<zone> HH:MM-HH:MM`) is closed at `now`, when it opens.
pub fn quiet_until(window: &str, now: Timestamp) -> Option<Timestamp> {
    let (zone, hours) = window.rsplit_once(' ')?;
    let hours: AllowedHours = hours.parse().ok()?;
    let zone = TimeZone::get(zone).ok()?;
    let next = next_allowed(now, &zone, Some(hours));
    (next > now).then_some(next)
}

/// When the row's send window is closed at the clock's moment, when it opens.
fn quiet_now(row: &ClaimedDelivery, clock: &DrainClock) -> Option<Timestamp> {
    row.send_window
        .as_deref()
        .and_then(|w| quiet_until(w, clock.now()))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DispatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Results not recorded because the lease had been lost (another worker took over).
    pub lease_lost: usize,
    /// Put back until the recipient's quiet hours end.
    pub deferred: usize,
    /// Hard bounces that opted the customer out of email.
    pub bounced: usize,
    /// Handed over without a definite answer (resent or kept by the channel's policy).
    pub in_doubt: usize,
    /// Refused "about us": the message waits, the channel is paused.
    pub paused: usize,
    /// Given back untried because the daemon was stopping.
    pub released: usize,
}

impl DispatchReport {
    /// Adds the counts of `o` (the report of a later batch or drain).
    pub fn add(&mut self, o: DispatchReport) {
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retrying += o.retrying;
        self.failed += o.failed;
        self.lease_lost += o.lease_lost;
        self.deferred += o.deferred;
        self.bounced += o.bounced;
        self.in_doubt += o.in_doubt;
        self.paused += o.paused;
        self.released += o.released;
    }
}

/// Seconds to wait before attempt `attempt + 1` after a transient failure: exponential from
/// 60 s, capped at one hour, with full jitter in the upper half (`jitter` in [0, 1)).
pub fn retry_delay_secs(attempt: u32, jitter: f64) -> i64 {
    let base = 60i64
        .saturating_mul(1i64 << attempt.saturating_sub(1).min(16))
        .min(3600);
    let j = jitter.clamp(0.0, 1.0);
    base / 2 + ((base / 2) as f64 * j) as i64
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b) as f64 / (u32::MAX as f64 + 1.0)
}

/// The dispatcher's clock: the `now` a drain was given, moving on with the time the drain has
/// taken since. A drain of a long queue (a rate-limited provider, a slow relay) can outlast a
/// lease: every lease it sets and every result it records is stamped with the moment it
/// happens, so a second daemon's reaper never finds a fresh lease already expired (and puts a
/// message in doubt that this one is still sending).
#[derive(Debug, Clone, Copy)]
struct DrainClock {
    base: i64,
    started: std::time::Instant,
}

impl DrainClock {
    fn starting_at(now: Timestamp) -> DrainClock {
        DrainClock {
            base: now.as_second(),
            started: std::time::Instant::now(),
        }
    }

    /// `now` plus the whole seconds elapsed since the drain began.
    fn now_s(&self) -> i64 {
        self.base + self.started.elapsed().as_secs() as i64
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_second(self.now_s()).unwrap_or(Timestamp::MAX)
    }
}

/// The dispatcher's [`Handover`]: commits the row as `sending` (renewing its lease from the
/// moment of the commit) at the last moment before the provider can hold the message.
struct RowHandover<'a> {
    store: &'a crate::store::Store,
    id: i64,
    token: &'a str,
    clock: &'a DrainClock,
    lease_secs: u32,
}

impl Handover for RowHandover<'_> {
    fn commit(&self) -> BoxFuture<'_, Result<(), SendFailure>> {
        Box::pin(async move {
            match self
                .store
                .mark_sending(self.id, self.token, self.clock.now_s(), self.lease_secs)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(SendFailure::lease_lost(
                    "the lease was lost before the handover (another worker owns the message)",
                )),
                Err(e) => Err(SendFailure::transient(format!(
                    "cannot record the handover: {e}"
                ))),
            }
        })
    }
}

/// A claimed row as its transport takes it: the stored bytes, sent as they are.
fn outgoing<'a>(
    row: &'a ClaimedDelivery,
    from: &'a str,
    handover: Option<&'a dyn Handover>,
) -> Outgoing<'a> {
    Outgoing {
        channel: &row.channel,
        recipient: &row.recipient,
        payload: row.payload.as_deref().unwrap_or_default(),
        message_id: row.message_id.as_deref(),
        from,
        handover,
    }
}

/// The first pause of a channel refused "about us" is `base` seconds; each strike doubles it,
/// up to a day.
pub fn pause_secs(base: u32, strikes: i64) -> i64 {
    let doubling = strikes.saturating_sub(1).clamp(0, 16) as u32;
    (base as i64).saturating_mul(1i64 << doubling).min(86_400)
}

impl App {
    /// Asks dispatch to stop: no further claims; in-flight sends get
    /// `delivery.shutdown_timeout_secs` to finish. The daemon calls it on SIGTERM.
    pub fn request_stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn stop_requested(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Completes once a stop was requested.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// One step: claim a batch of due rows and send them. `claimed == 0` means nothing is due.
    pub async fn dispatch_batch(&self, now: Timestamp) -> Result<DispatchReport, super::AppError> {
        self.dispatch_step(&DrainClock::starting_at(now)).await
    }

    /// [`App::dispatch_batch`] at the clock's current moment. The leases of the batch's rows
    /// are renewed every third of `lease_secs` while it is out: a row waiting its turn (a big
    /// batch, a slow or rate-limited provider) or on a relay slow to answer keeps its lease,
    /// so no reaper takes a row this worker is about to send or is sending.
    async fn dispatch_step(&self, clock: &DrainClock) -> Result<DispatchReport, super::AppError> {
        let now = clock.now();
        let now_s = now.as_second();
        let d = &self.cfg.delivery;
        let claimed = self
            .store
            .claim_due(now_s, d.batch_size, d.lease_secs)
            .await?;
        crate::failpoint::hit("after_claim");
        let mut report = DispatchReport {
            claimed: claimed.len(),
            ..Default::default()
        };
        if claimed.is_empty() {
            return Ok(report);
        }
        let paused: Vec<String> = self
            .store
            .channel_pauses()
            .await?
            .into_iter()
            .map(|p| p.channel)
            .collect();
        // Never inside quiet hours: a row whose window is closed now waits, untried.
        let mut batch = Vec::with_capacity(claimed.len());
        for row in claimed {
            if let Some(next) = row.send_window.as_deref().and_then(|w| quiet_until(w, now)) {
                self.store
                    .defer(row.id, &row.lease_token, next.as_second(), now_s, None)
                    .await?;
                report.deferred += 1;
                continue;
            }
            batch.push(row);
        }
        // First attempts: render now, and keep the bytes so every retry sends the same.
        self.render_claimed(&mut batch, now, &mut report).await?;
        let batch: Vec<ClaimedDelivery> =
            batch.into_iter().filter(|r| r.payload.is_some()).collect();
        // Each channel goes one by one or, with `handover_batch` > 1, ahead; both at once.
        let (ahead, one_by_one): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| d.handover_batch.of(&r.channel) > 1);
        let (email_ahead, sms_ahead): (Vec<_>, Vec<_>) =
            ahead.into_iter().partition(|r| r.channel != "sms");
        let paused = &paused;
        let out: Vec<i64> = one_by_one
            .iter()
            .chain(&email_ahead)
            .chain(&sms_ahead)
            .map(|r| r.id)
            .collect();
        let Some(token) = one_by_one
            .first()
            .or(email_ahead.first())
            .or(sms_ahead.first())
            .map(|r| r.lease_token.clone())
        else {
            return Ok(report);
        };
        let sends = futures_util::future::join3(
            self.send_one_by_one(one_by_one, clock, paused),
            self.send_ahead(email_ahead, clock, paused),
            self.send_ahead(sms_ahead, clock, paused),
        );
        let (a, b, c) = tokio::select! {
            r = sends => r,
            _ = self.keep_leases(&out, &token, clock) => unreachable!("the lease keeper never ends"),
        };
        report.add(a?);
        report.add(b?);
        report.add(c?);
        Ok(report)
    }

    /// Puts a row back, untried, until its send window opens at `next`.
    async fn defer_quiet(
        &self,
        row: &ClaimedDelivery,
        next: Timestamp,
        now_s: i64,
    ) -> Result<DispatchReport, super::AppError> {
        self.store
            .defer(row.id, &row.lease_token, next.as_second(), now_s, None)
            .await?;
        Ok(DispatchReport {
            deferred: 1,
            ..Default::default()
        })
    }

    /// Renews the leases of the rows `ids` of the batch claimed under `token` (those still
    /// `claimed` or `sending`) every third of `lease_secs`, from the clock's moment; never
    /// completes.
    async fn keep_leases(&self, ids: &[i64], token: &str, clock: &DrainClock) {
        let lease = self.cfg.delivery.lease_secs;
        let every = Duration::from_secs((lease as u64 / 3).max(1));
        loop {
            tokio::time::sleep(every).await;
            let until = clock.now_s() + lease as i64;
            match self.store.renew_leases(ids, token, until).await {
                Ok(n) => tracing::debug!(renewed = n, "leases of the batch out renewed"),
                Err(e) => tracing::warn!("cannot renew the leases of the batch out: {e}"),
            }
        }
    }

    /// Completes `delivery.shutdown_timeout_secs` after a stop was requested: how long sends
    /// in flight may still take.
    fn grace_after_stop(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut stopping = self.stopping.subscribe();
        let grace = Duration::from_secs(self.cfg.delivery.shutdown_timeout_secs as u64);
        async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        }
    }

    /// Sends rows committing each one `sending` by itself, at the last moment (after `354`,
    /// right before the request): at most one unsettled message per connection.
    async fn send_one_by_one(
        &self,
        batch: Vec<ClaimedDelivery>,
        clock: &DrainClock,
        paused: &[String],
    ) -> Result<DispatchReport, super::AppError> {
        let mut report = DispatchReport::default();
        if batch.is_empty() {
            return Ok(report);
        }
        let d = &self.cfg.delivery;
        let from = self.cfg.shop.from_email.clone();
        let handovers: Vec<RowHandover<'_>> = batch
            .iter()
            .map(|row| RowHandover {
                store: &self.store,
                id: row.id,
                token: &row.lease_token,
                clock,
                lease_secs: d.lease_secs,
            })
            .collect();
        // A message holds its channel's permit from its send until its result is recorded,
        // so at most `concurrency(channel)` messages of a channel are unsettled at any moment
        // (what a crash can leave in doubt).
        let email_permits = Semaphore::new(self.channels.concurrency("email"));
        let sms_permits = Semaphore::new(self.channels.concurrency("sms"));
        let (email_permits, sms_permits) = (&email_permits, &sms_permits);
        // SMS of this batch whose result is not yet on its way to the ledger.
        let sms_left = AtomicUsize::new(batch.iter().filter(|r| r.channel == "sms").count());
        let sms_left = &sms_left;
        let sends = batch.iter().zip(&handovers).map(|(row, handover)| {
            let from = from.as_str();
            async move {
                let sms = row.channel == "sms";
                let permits = if sms { sms_permits } else { email_permits };
                let permit = permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                // A batch can take a while: its send window may have closed since it was
                // claimed.
                if let Some(next) = quiet_now(row, clock) {
                    if sms {
                        sms_left.fetch_sub(1, Ordering::SeqCst);
                    }
                    return self.defer_quiet(row, next, clock.now_s()).await;
                }
                let msg = outgoing(row, from, Some(handover));
                let result = self
                    .metrics
                    .timed(&row.channel, self.channels.send(&msg))
                    .await;
                // Recorded as soon as it is known: a crash now leaves at most the messages
                // still on the wire in doubt, not the whole batch.
                if !sms {
                    let r = self
                        .settle(row, result, clock.now_s(), paused, Urgency::Now, None)
                        .await;
                    drop(permit);
                    return r;
                }
                // An SMS is handed over right before its request, so the next one's handover
                // may share the commit of this result: the permit goes back once the result is
                // queued, and the handover queued after it never commits before it (at most
                // one unsettled SMS per permit still). The result lingers for that handover
                // while more SMS of the batch are to come.
                let urgency = if sms_left.fetch_sub(1, Ordering::SeqCst) > 1 {
                    Urgency::Linger
                } else {
                    Urgency::Now
                };
                self.settle(row, result, clock.now_s(), paused, urgency, Some(permit))
                    .await
            }
        });
        // Sends of one batch run concurrently (the SMTP pool caps connections). A stop request
        // gives them `shutdown_timeout_secs`; what is not done by then is released.
        let all = futures_util::future::join_all(sends);
        let results = tokio::select! {
            r = all => r,
            _ = self.grace_after_stop() => {
                return self.abandon(&batch, None, clock.now_s(), report).await;
            }
        };
        for r in results {
            report.add(r?);
        }
        Ok(report)
    }

    /// Sends a batch with `delivery.handover_batch` = N > 1: rows are committed `sending` N per
    /// statement *before* their envelope or request (so a message waits for no commit of its
    /// own before it goes out), and at most `2 × N` rows are unsettled at once — what a crash
    /// may leave in doubt (RELIABILITY.md §1, "batches widen the in-doubt window"). A channel's
    /// permit is held only while its transport works, and results are group-committed while
    /// the next messages go out. A row whose transport says it never handed the message over
    /// (connection refused, 4xx before the body, the breaker open) is settled as untried, as
    /// on the one-by-one path.
    ///
    /// `batch`: rows of one channel.
    async fn send_ahead(
        &self,
        batch: Vec<ClaimedDelivery>,
        clock: &DrainClock,
        paused: &[String],
    ) -> Result<DispatchReport, super::AppError> {
        use std::sync::atomic::AtomicBool;

        use futures_util::StreamExt;

        let mut report = DispatchReport::default();
        let Some(first) = batch.first() else {
            return Ok(report);
        };
        let d = &self.cfg.delivery;
        let chunk = d.handover_batch.of(&first.channel) as usize;
        // Free places among the unsettled rows (2 × N): a chunk is committed once all of
        // its places are free, so the next chunk is ready while the previous one is sending.
        let unsettled = Semaphore::new(2 * chunk);
        let concurrency = self.channels.concurrency(&first.channel);
        let permits = Semaphore::new(concurrency);
        // Set when a row's transport starts: a stop gives back the rows never started.
        let started: Vec<AtomicBool> = batch.iter().map(|_| AtomicBool::new(false)).collect();
        let from = self.cfg.shop.from_email.as_str();
        // Places the feed waits for before it commits its next chunk (0: not waiting), and
        // results queued to linger, not yet committed: their places come back with them.
        let (wanted, lingering) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<(usize, bool)>();
        let (batch_ref, unsettled_ref) = (&batch, &unsettled);
        let (wanted_ref, lingering_ref) = (&wanted, &lingering);
        let mut deferred = DispatchReport::default();
        let deferred_ref = &mut deferred;
        let feed = async move {
            for (c, rows) in batch_ref.chunks(chunk).enumerate() {
                wanted_ref.store(rows.len(), Ordering::SeqCst);
                unsettled_ref
                    .acquire_many(rows.len() as u32)
                    .await
                    .expect("the semaphore is never closed")
                    .forget();
                wanted_ref.store(0, Ordering::SeqCst);
                // Rows whose send window closed since the batch was claimed wait, untried;
                // their places come back at once.
                let mut open = Vec::with_capacity(rows.len());
                for (i, row) in rows.iter().enumerate() {
                    match quiet_now(row, clock) {
                        Some(next) => {
                            deferred_ref.add(self.defer_quiet(row, next, clock.now_s()).await?);
                            unsettled_ref.add_permits(1);
                        }
                        None => open.push((c * chunk + i, row)),
                    }
                }
                if open.is_empty() {
                    continue;
                }
                // Issued together, so they share one group commit.
                let now_s = clock.now_s();
                let marked = futures_util::future::join_all(open.iter().map(|(_, row)| {
                    self.store
                        .mark_sending(row.id, &row.lease_token, now_s, d.lease_secs)
                }))
                .await;
                crate::failpoint::hit("after_handover_batch");
                for ((i, _), m) in open.iter().zip(marked) {
                    let _ = ready_tx.send((*i, m?));
                }
            }
            Ok::<(), super::AppError>(())
        };
        let (started_ref, permits_ref) = (&started, &permits);
        let send = futures_util::stream::poll_fn(move |cx| ready.poll_recv(cx))
            .map(|(i, handed_over)| async move {
                let row = &batch_ref[i];
                let r = if !handed_over {
                    tracing::warn!(
                        delivery = row.id,
                        "not sent: the lease was lost before the handover"
                    );
                    Ok(DispatchReport {
                        lease_lost: 1,
                        ..Default::default()
                    })
                } else {
                    let permit = permits_ref.acquire().await;
                    started_ref[i].store(true, Ordering::SeqCst);
                    // Committed already, with its chunk.
                    let msg = outgoing(row, from, None);
                    let result = self
                        .metrics
                        .timed(&row.channel, self.channels.send(&msg))
                        .await;
                    drop(permit);
                    // With nothing else on the wire no result is coming to share the commit
                    // (the end of a batch, an instant transport): record it now. Nor when the
                    // next chunk waits only for this result and those lingering: its places
                    // are free once they commit, and a linger would idle the connections.
                    let on_the_wire = permits_ref.available_permits() < concurrency;
                    let want = wanted_ref.load(Ordering::SeqCst);
                    let freed = unsettled_ref.available_permits()
                        + lingering_ref.load(Ordering::SeqCst)
                        + 1;
                    let linger = on_the_wire && (want == 0 || freed < want);
                    if linger {
                        lingering_ref.fetch_add(1, Ordering::SeqCst);
                    }
                    let urgency = if linger {
                        Urgency::Linger
                    } else {
                        Urgency::Now
                    };
                    let r = self
                        .settle(row, result, clock.now_s(), paused, urgency, None)
                        .await;
                    if linger {
                        lingering_ref.fetch_sub(1, Ordering::SeqCst);
                    }
                    r
                };
                unsettled_ref.add_permits(1);
                r
            })
            .buffer_unordered(2 * chunk)
            .fold(Ok(DispatchReport::default()), |acc, r| async move {
                let mut acc = acc?;
                acc.add(r?);
                Ok::<DispatchReport, super::AppError>(acc)
            });
        // Rows committed ahead may wait for a connection longer than their lease: the batch's
        // leases are renewed while it is out (`dispatch_step`).
        let all = futures_util::future::join(feed, send);
        let (fed, sent) = tokio::select! {
            r = all => r,
            _ = self.grace_after_stop() => {
                return self.abandon(&batch, Some(&started), clock.now_s(), report).await;
            }
        };
        fed?;
        report.add(sent?);
        report.add(deferred);
        Ok(report)
    }

    /// Records one send's result (fenced by the lease token). `permit`, if any, is given
    /// back once the result is on its way: as soon as a `sent` is queued to the group commit
    /// (whatever is queued after it commits no earlier), otherwise once the result is recorded.
    async fn settle(
        &self,
        row: &ClaimedDelivery,
        result: Result<String, SendFailure>,
        now_s: i64,
        paused: &[String],
        urgency: Urgency,
        permit: Option<SemaphorePermit<'_>>,
    ) -> Result<DispatchReport, super::AppError> {
        let d = &self.cfg.delivery;
        let mut r = DispatchReport::default();
        let recorded = match result {
            Ok(reply) => {
                crate::failpoint::hit("after_accept");
                // One line per message only at DEBUG: a mass day logs per batch at INFO.
                tracing::debug!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, channel = %row.channel, "sent: {reply}");
                r.sent += 1;
                if paused.contains(&row.channel)
                    && self.store.clear_channel_pause(&row.channel).await?
                {
                    tracing::warn!(channel = %row.channel, "the channel works again: pause lifted");
                }
                let committed = self
                    .store
                    .mark_sent(row.id, &row.lease_token, now_s, urgency);
                drop(permit);
                committed.await?
            }
            Err(e @ SendFailure::LeaseLost { .. }) => {
                tracing::warn!(delivery = row.id, "not sent: {e}");
                false
            }
            Err(e @ SendFailure::Untried { .. }) => {
                // The relay is down (circuit breaker open) or the provider's daily limit is
                // spent: back to the queue, the attempt not counted, until the breaker lets
                // the next probe through or the next UTC day.
                let wait = e
                    .retry_after()
                    .map_or(30, |d| d.as_secs_f64().ceil() as i64);
                tracing::debug!(delivery = row.id, "deferred: {e}");
                r.deferred += 1;
                self.store
                    .defer(
                        row.id,
                        &row.lease_token,
                        now_s + wait.max(1),
                        now_s,
                        Some(e.message()),
                    )
                    .await?
            }
            Err(e @ SendFailure::InDoubt { .. }) => {
                r.in_doubt += 1;
                let resend = d.in_doubt_policy(&row.channel) == InDoubtPolicy::Resend
                    && (row.attempts as u32) < d.max_attempts;
                let resend_at =
                    resend.then(|| now_s + retry_delay_secs(row.attempts as u32, jitter()));
                tracing::warn!(
                    delivery = row.id,
                    customer = row.customer_id,
                    channel = %row.channel,
                    "in doubt ({}): {e}",
                    if resend { "will resend with the same Message-ID" } else { "kept, not resent" }
                );
                self.store
                    .mark_in_doubt(row.id, &row.lease_token, e.message(), resend_at, now_s)
                    .await?
            }
            Err(e @ SendFailure::AboutUs { .. }) => {
                // Never the customer's fault: the message waits for the channel, which pauses.
                let (strikes, until) = self
                    .store
                    .pause_channel(&row.channel, e.message(), now_s, |strikes| {
                        now_s + pause_secs(d.pause_secs, strikes)
                    })
                    .await?;
                r.paused += 1;
                tracing::error!(
                    channel = %row.channel,
                    delivery = row.id,
                    "ALERT: the {} provider refused ritualist itself ({e}); the channel is paused for {} s (strike {strikes}); fix the configuration, then `ritualist outbox resume {}`",
                    row.channel,
                    until - now_s,
                    row.channel
                );
                self.store
                    .mark_retry(row.id, &row.lease_token, until, e.message(), now_s)
                    .await?
            }
            Err(e) if e.is_transient() && (row.attempts as u32) < d.max_attempts => {
                // Never sooner than the provider asked (HTTP Retry-After).
                let backoff = retry_delay_secs(row.attempts as u32, jitter());
                let asked = e.retry_after().map_or(0, |d| d.as_secs_f64().ceil() as i64);
                let next = now_s + backoff.max(asked);
                tracing::warn!(
                    delivery = row.id,
                    customer = row.customer_id,
                    attempt = row.attempts,
                    "transient failure, retrying: {e}"
                );
                r.retrying += 1;
                self.store
                    .mark_retry(row.id, &row.lease_token, next, e.message(), now_s)
                    .await?
            }
            Err(e) => {
                tracing::error!(
                    delivery = row.id,
                    customer = row.customer_id,
                    attempt = row.attempts,
                    "failed: {e}"
                );
                r.failed += 1;
                // A hard bounce (email) or a carrier STOP (Twilio 21610): no future message
                // on this channel goes to this address.
                if matches!(e, SendFailure::HardBounce { .. })
                    && let Ok(channel) = row.channel.parse::<Channel>()
                    && self
                        .store
                        .record_bounce(row.customer_id, channel, &row.recipient, now_s)
                        .await?
                {
                    r.bounced += 1;
                    tracing::warn!(
                        delivery = row.id,
                        customer = row.customer_id,
                        "the address takes no more messages: the customer is opted out of {}",
                        row.channel
                    );
                }
                self.store
                    .mark_failed(row.id, &row.lease_token, e.message(), now_s)
                    .await?
            }
        };
        if !recorded {
            r.lease_lost += 1;
        }
        Ok(r)
    }

    /// The stop's grace ran out with sends in flight: rows not yet handed over go back to
    /// `pending`; rows handed over are in doubt now (their channel's policy applies) rather
    /// than after their lease.
    ///
    /// `started` (rows committed `sending` ahead of their send): which rows a transport got;
    /// the others go back to `pending` whatever their status.
    async fn abandon(
        &self,
        batch: &[ClaimedDelivery],
        started: Option<&[std::sync::atomic::AtomicBool]>,
        now: i64,
        mut report: DispatchReport,
    ) -> Result<DispatchReport, super::AppError> {
        let d = &self.cfg.delivery;
        for (i, row) in batch.iter().enumerate() {
            let released = match started {
                // One by one: still `claimed` means not handed over.
                None => {
                    self.store
                        .release_claimed(row.id, &row.lease_token, now)
                        .await?
                }
                Some(s) if !s[i].load(std::sync::atomic::Ordering::SeqCst) => {
                    self.store
                        .release_untried(row.id, &row.lease_token, now)
                        .await?
                }
                // Its transport had it: in doubt, below.
                Some(_) => false,
            };
            if released {
                report.released += 1;
                continue;
            }
            let resend = (d.in_doubt_policy(&row.channel) == InDoubtPolicy::Resend).then_some(now);
            if self
                .store
                .mark_in_doubt(
                    row.id,
                    &row.lease_token,
                    "the daemon stopped while the provider had not answered",
                    resend,
                    now,
                )
                .await?
            {
                report.in_doubt += 1;
            }
        }
        tracing::warn!(
            released = report.released,
            in_doubt = report.in_doubt,
            "stopping: sends still in flight after {} s were abandoned",
            d.shutdown_timeout_secs
        );
        Ok(report)
    }

    /// Renders the rows claimed for their first attempt. A row whose message cannot be
    /// composed (its ritual was removed, a template fails for this customer, the email cannot
    /// carry its address or name, or composing it panicked: [`compose_with`] catches that) is
    /// `failed` with the reason, alone: the rest of the batch goes on.
    async fn render_claimed(
        &self,
        batch: &mut [ClaimedDelivery],
        now: Timestamp,
        report: &mut DispatchReport,
    ) -> Result<(), super::AppError> {
        let ids: Vec<i64> = batch
            .iter()
            .filter(|r| r.payload.is_none())
            .map(|r| r.customer_id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows = self.store.customers_by_ids(&ids).await?;
        let mut builder = self.facts_builder();
        let facts: HashMap<i64, CustomerFacts> = rows
            .iter()
            .map(|r| (r.id, builder.facts(r, Vec::new())))
            .collect();
        let defs = self.defs();
        let mut rendered = Vec::new();
        for (i, row) in batch
            .iter()
            .enumerate()
            .filter(|(_, r)| r.payload.is_none())
        {
            let composed = (|| {
                let c = facts
                    .get(&row.customer_id)
                    .ok_or(("the customer no longer exists".to_string(), Logged::Text))?;
                let ritual = defs
                    .rituals
                    .iter()
                    .find(|r| r.name == row.ritual)
                    .ok_or_else(|| {
                        (
                            format!("ritual `{}` no longer exists", row.ritual),
                            Logged::Text,
                        )
                    })?;
                let occasion: Occasion = row
                    .occasion
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok())
                    .ok_or(("the occasion is missing".to_string(), Logged::Text))?;
                let channel: Channel = row
                    .channel
                    .parse()
                    .map_err(|e| (format!("{e}"), Logged::Text))?;
                let mut c = c.clone();
                // The address decided at planning time is the one written to. One queued by an
                // older version may be refused by today's rules: say so (the reason quotes the
                // address, so it stays on the row and out of the log).
                let refused = |e: crate::domain::DomainError| {
                    (
                        format!(
                            "the queued {channel} address is not accepted any more ({e}); correct the customer's contact, then `ritualist outbox retry`"
                        ),
                        Logged::Hidden,
                    )
                };
                match channel {
                    Channel::Email => {
                        c.email = Some(Email::parse(&row.recipient).map_err(refused)?)
                    }
                    Channel::Sms => {
                        c.phone = Some(Phone::parse(&row.recipient, None).map_err(refused)?)
                    }
                }
                compose_with(
                    &self.cfg,
                    &defs.templates,
                    &self.key,
                    ritual,
                    &c,
                    &occasion,
                    &row.occurrence,
                    channel,
                    now.as_second(),
                    None,
                    self.dkim.as_ref(),
                    LinkMode::Live,
                )
                .map_err(|e| {
                    // A build error's text may quote the address: the ledger keeps it, the log
                    // does not; a panic was logged by `compose_with` as a bug.
                    let logged = match e {
                        ComposeError::Render(_) => Logged::Text,
                        ComposeError::Build(_) => Logged::Hidden,
                        ComposeError::Panicked(_) => Logged::Already,
                    };
                    (e.to_string(), logged)
                })
            })();
            match composed {
                Ok(m) => rendered.push((i, m)),
                Err((e, logged)) => {
                    match logged {
                        Logged::Text => {
                            tracing::error!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, "cannot compose the message: {e}")
                        }
                        Logged::Hidden => {
                            tracing::error!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, "the message cannot be built (the reason is on the row: `ritualist outbox`)")
                        }
                        Logged::Already => {}
                    }
                    report.failed += 1;
                    if !self
                        .store
                        .mark_failed(row.id, &row.lease_token, &e, now.as_second())
                        .await?
                    {
                        report.lease_lost += 1;
                    }
                }
            }
        }
        // Every rendered message of the batch stored in one transaction.
        let stored = self
            .store
            .set_messages(
                &rendered
                    .iter()
                    .map(|(i, m)| RenderedMessage {
                        id: batch[*i].id,
                        token: &batch[*i].lease_token,
                        subject: m.subject.as_deref(),
                        payload: &m.payload,
                        message_id: m.message_id.as_deref(),
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
        for ((i, m), ok) in rendered.into_iter().zip(stored) {
            if ok {
                let row = &mut batch[i];
                row.message_id = m.message_id;
                row.subject = m.subject;
                row.payload = Some(m.payload);
            } else {
                report.lease_lost += 1;
            }
        }
        Ok(())
    }

    /// Sends until nothing is due at `now` (rows waiting for a later retry stay waiting), or
    /// until a stop is requested. First returns rows whose worker died (expired lease) to the
    /// queue: `claimed` ones to `pending`, `sending` ones to `in_doubt` (or, under a resend
    /// policy, to `retry_wait`).
    pub async fn drain(&self, now: Timestamp) -> Result<DispatchReport, super::AppError> {
        let resend = self.cfg.delivery.resend_channels();
        let (_, doubt) = self
            .store
            .release_expired_leases(now.as_second(), &resend)
            .await?;
        if doubt > 0 {
            tracing::warn!(
                rows = doubt,
                "messages found in flight from a worker that died: in doubt (email resent with the same Message-ID unless `delivery.in_doubt` says skip)"
            );
        }
        let mut total = DispatchReport {
            in_doubt: doubt as usize,
            ..Default::default()
        };
        let clock = DrainClock::starting_at(now);
        loop {
            if self.stop_requested() {
                return Ok(total);
            }
            let r = self.dispatch_step(&clock).await?;
            if r.claimed == 0 {
                return Ok(total);
            }
            tracing::info!(
                claimed = r.claimed,
                sent = r.sent,
                retrying = r.retrying,
                failed = r.failed,
                deferred = r.deferred,
                in_doubt = r.in_doubt,
                "batch sent"
            );
            total.add(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_table() {
        // (attempt, jitter) → delay
        for (attempt, j, want) in [
            (1, 0.0, 30),
            (1, 0.999, 59),
            (2, 0.0, 60),
            (3, 0.0, 120),
            (7, 0.0, 1800),
            (8, 0.0, 1800),
            (20, 1.0, 3600),
        ] {
            assert_eq!(
                retry_delay_secs(attempt, j),
                want,
                "attempt {attempt} jitter {j}"
            );
        }
    }
}
