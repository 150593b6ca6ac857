//! Draining the outbox: claim due rows under a lease, send each outside any transaction,
//! record the result (fenced by the lease token). Knows nothing about rituals or templates:
//! it sends the stored bytes, so a retry is byte-identical to the first attempt (a row's first
//! attempt has its message rendered by `render_queue`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{App, render_queue};

use crate::channel::{Handover, Outgoing, SendFailure};
use crate::config::{AllowedHours, InDoubtPolicy};
use crate::domain::Channel;
use crate::plan::next_allowed;
use crate::store::{ClaimedDelivery, Urgency};

/// How long a row whose send window cannot be read waits before it is looked at again.
const UNREADABLE_WINDOW_WAIT_SECS: i64 = 3600;

/// A batch with more messages than this to compose is composed and sent in parts of this
/// many rows, each part composed while the one before it is sent.
const PART: usize = 250;

/// Parts with at least this many messages to compose are composed in two halves at once, on
/// two of the blocking threads.
const PARALLEL_FROM: usize = 64;

/// A batch claimed and readied to send ([`App::claim_step`]).
#[derive(Default)]
pub(super) struct Claimed {
    /// `claimed`, and the rows deferred to their send window.
    pub(super) report: DispatchReport,
    /// Channels paused when the batch was claimed.
    paused: Vec<Channel>,
    /// The moment the batch was claimed: its messages' date.
    pub(super) now: Timestamp,
    facts: Arc<std::collections::HashMap<i64, crate::plan::CustomerFacts>>,
    /// The first part, composed; the others, to compose.
    first: Vec<ClaimedDelivery>,
    parts: std::collections::VecDeque<Vec<ClaimedDelivery>>,
}

impl Claimed {
    /// The rows to send, the first part's first.
    pub(super) fn rows(&self) -> impl Iterator<Item = &ClaimedDelivery> {
        self.first.iter().chain(self.parts.iter().flatten())
    }

    /// The batch's lease: its rows' ids and their token (`None` without rows to send).
    pub(super) fn lease(&self) -> Option<(Vec<i64>, String)> {
        let token = self.rows().next()?.lease_token.clone();
        Some((self.rows().map(|r| r.id).collect(), token))
    }

    /// The rows to send, in order.
    pub(super) fn into_rows(self) -> Vec<ClaimedDelivery> {
        self.first
            .into_iter()
            .chain(self.parts.into_iter().flatten())
            .collect()
    }

    /// Takes the rows of `channels` out of the batch.
    pub(super) fn take_channels(&mut self, channels: &[Channel]) -> Vec<ClaimedDelivery> {
        let mut taken = Vec::new();
        for part in std::iter::once(&mut self.first).chain(self.parts.iter_mut()) {
            let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(part)
                .into_iter()
                .partition(|r| channels.contains(&r.channel));
            *part = keep;
            taken.extend(out);
        }
        taken
    }
}

/// When a row's send window (`<zone> HH:MM-HH:MM`) is closed at `now`, when it opens.
///
/// A window that cannot be read (an unknown zone, malformed hours) fails closed: the row is
/// quiet for [`UNREADABLE_WINDOW_WAIT_SECS`] and a warning says why, rather than a message
/// going out at 3 a.m.
pub fn quiet_until(window: &str, now: Timestamp) -> Option<Timestamp> {
    match parse_window(window) {
        Some((zone, hours)) => {
            let next = next_allowed(now, &zone, Some(hours));
            (next > now).then_some(next)
        }
        None => {
            tracing::warn!(
                window,
                "the row's send window cannot be read: not sending it now (checked again in {UNREADABLE_WINDOW_WAIT_SECS} s)"
            );
            Some(
                Timestamp::from_second(now.as_second() + UNREADABLE_WINDOW_WAIT_SECS)
                    .unwrap_or(Timestamp::MAX),
            )
        }
    }
}

/// A send window's zone and hours, `None` when either cannot be read.
fn parse_window(window: &str) -> Option<(TimeZone, AllowedHours)> {
    let (zone, hours) = window.rsplit_once(' ')?;
    let hours: AllowedHours = hours.parse().ok()?;
    let zone = TimeZone::get(zone).ok()?;
    Some((zone, hours))
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
pub(super) struct DrainClock {
    base: i64,
    started: std::time::Instant,
}

impl DrainClock {
    pub(super) fn starting_at(now: Timestamp) -> DrainClock {
        DrainClock {
            base: now.as_second(),
            started: std::time::Instant::now(),
        }
    }

    /// `now` plus the whole seconds elapsed since the drain began.
    pub(super) fn now_s(&self) -> i64 {
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
    row: &'a ClaimedDelivery,
    clock: &'a DrainClock,
    lease_secs: u32,
}

impl Handover for RowHandover<'_> {
    fn commit(&self) -> BoxFuture<'_, Result<(), SendFailure>> {
        Box::pin(async move {
            match self
                .store
                .mark_sending(
                    self.row.id,
                    &self.row.lease_token,
                    self.clock.now_s(),
                    self.lease_secs,
                    self.row.unstored(),
                )
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

impl App {
    /// The envelope sender of `row`: its own return path for an email when
    /// `bounces.return_path` is set (a later bounce names its delivery), else `from`.
    fn envelope_from(&self, row: &ClaimedDelivery, from: &str) -> String {
        match (&self.cfg.bounces.return_path, row.channel) {
            (Some(_), Channel::Email) => self.return_path(row.id),
            _ => from.to_string(),
        }
    }
}

/// A claimed row as its transport takes it: the stored bytes, sent as they are.
fn outgoing<'a>(
    row: &'a ClaimedDelivery,
    from: &'a str,
    handover: Option<&'a dyn Handover>,
) -> Outgoing<'a> {
    Outgoing {
        channel: row.channel.as_str(),
        recipient: &row.recipient,
        payload: row.payload.as_deref().unwrap_or_default(),
        message_id: row.message_id.as_deref(),
        from,
        handover,
        delivery_id: Some(row.id),
    }
}

/// The first pause of a channel refused "about us" is `base` seconds; each strike doubles it,
/// up to a day.
pub fn pause_secs(base: u32, strikes: i64) -> i64 {
    let doubling = strikes.saturating_sub(1).clamp(0, 16) as u32;
    (base as i64).saturating_mul(1i64 << doubling).min(86_400)
}

/// The shared state of one [`App::send_ahead`] batch of one channel.
struct Ahead<'a> {
    batch: &'a [ClaimedDelivery],
    /// `delivery.handover_batch` of the channel: rows committed `sending` per statement.
    chunk: usize,
    /// Free places among the unsettled rows (2 × `chunk`).
    unsettled: Semaphore,
    /// The channel's concurrency, and its permits: held only while a transport works.
    concurrency: usize,
    permits: Semaphore,
    /// Set when a row's transport starts: a stop gives back the rows never started.
    started: Vec<AtomicBool>,
    /// Places the feed waits for before it commits its next chunk (0: not waiting).
    wanted: AtomicUsize,
    /// Results queued to linger, not yet committed: their places come back with them.
    lingering: AtomicUsize,
    from: &'a str,
}

impl Ahead<'_> {
    /// Whether a result just known may linger for others to share its commit. Not with
    /// nothing else on the wire (the end of a batch, an instant transport): no result is
    /// coming to share it. Nor when the next chunk waits only for this result and those
    /// lingering: its places are free once they commit, and a linger would idle the
    /// connections.
    fn should_linger(&self) -> bool {
        let on_the_wire = self.permits.available_permits() < self.concurrency;
        let want = self.wanted.load(Ordering::SeqCst);
        let freed = self.unsettled.available_permits() + self.lingering.load(Ordering::SeqCst) + 1;
        on_the_wire && (want == 0 || freed < want)
    }
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

    /// [`App::dispatch_batch`] at the clock's current moment.
    async fn dispatch_step(&self, clock: &DrainClock) -> Result<DispatchReport, super::AppError> {
        let claimed = self.claim_step(clock).await?;
        self.send_claimed(claimed, clock).await
    }

    /// Claims a batch of due rows and readies it: rows whose send window is closed wait,
    /// untried; the customers' facts are read; the first part's messages are composed.
    /// `report.claimed == 0` means nothing is due.
    pub(super) async fn claim_step(&self, clock: &DrainClock) -> Result<Claimed, super::AppError> {
        let now = clock.now();
        let now_s = now.as_second();
        let d = &self.cfg.delivery;
        let claimed = self
            .store
            .claim_due(now_s, d.batch_size, d.lease_secs)
            .await?;
        crate::failpoint::hit("after_claim");
        let mut c = Claimed {
            report: DispatchReport {
                claimed: claimed.len(),
                ..Default::default()
            },
            ..Default::default()
        };
        if claimed.is_empty() {
            return Ok(c);
        }
        c.paused = self
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
                c.report.deferred += 1;
                continue;
            }
            batch.push(row);
        }
        if batch.is_empty() {
            return Ok(c);
        }
        c.now = now;
        c.facts = Arc::new(self.facts_for(&batch).await?);
        let to_compose = batch.iter().filter(|r| r.payload.is_none()).count();
        if to_compose > PART {
            let mut rows = batch.into_iter().peekable();
            while rows.peek().is_some() {
                c.parts
                    .push_back(rows.by_ref().take(PART).collect::<Vec<_>>());
            }
        } else {
            c.parts.push_back(batch);
        }
        let first = c.parts.pop_front().unwrap_or_default();
        let first = self.compose_beside(&c.facts, now, first).await?;
        c.first = self.settle_composed(first, now, &mut c.report).await?;
        Ok(c)
    }

    /// Composes `part` of a batch (its customers' `facts`, its moment `now`) on the blocking
    /// threads: a part with [`PARALLEL_FROM`] messages or more to compose in two halves at
    /// once, so composing (the drain's biggest cost on a mass day: templates, MIME, DKIM) has
    /// both cores. The pool's threads live on between parts (a thread started for each part
    /// cost its start and a fresh allocator heap each time). A part whose messages are all
    /// stored already (retries) is ready as it is, without a thread.
    fn compose_beside(
        &self,
        facts: &Arc<std::collections::HashMap<i64, crate::plan::CustomerFacts>>,
        now: Timestamp,
        mut part: Vec<ClaimedDelivery>,
    ) -> impl std::future::Future<Output = Result<render_queue::ComposedPart, super::AppError>> + 'static
    {
        let (kit, defs, facts) = (self.kit.clone(), self.defs(), facts.clone());
        async move {
            let to_compose = part.iter().filter(|r| r.payload.is_none()).count();
            if to_compose == 0 {
                return Ok(render_queue::compose_part(&kit, &defs, &facts, part, now));
            }
            let half = |rows: Vec<ClaimedDelivery>| {
                let (kit, defs, facts) = (kit.clone(), defs.clone(), facts.clone());
                async move {
                    tokio::task::spawn_blocking(move || {
                        render_queue::compose_part(&kit, &defs, &facts, rows, now)
                    })
                    .await
                    .map_err(|e| {
                        super::AppError::Other(format!("composing a part of the batch: {e}"))
                    })
                }
            };
            if to_compose < PARALLEL_FROM {
                return half(part).await;
            }
            let second = part.split_off(part.len() / 2);
            let (first, second) = futures_util::future::join(half(part), half(second)).await;
            Ok(first?.then(second?))
        }
    }

    /// Sends a claimed batch, its leases renewed every third of `lease_secs` while it is out:
    /// a row waiting its turn (a big batch, a slow or rate-limited provider) or on a relay
    /// slow to answer keeps its lease, so no reaper takes a row this worker is about to send
    /// or is sending.
    pub(super) async fn send_claimed(
        &self,
        c: Claimed,
        clock: &DrainClock,
    ) -> Result<DispatchReport, super::AppError> {
        // The batch claimed, nothing of it sent, nothing of the batch before it in flight.
        crate::failpoint::hit("before_sends");
        let Some((ids, token)) = c.lease() else {
            return Ok(c.report);
        };
        let mut report = c.report;
        let parts = self.send_in_parts(c, clock);
        let sent = tokio::select! {
            r = parts => r?,
            _ = self.keep_leases(&ids, &token, clock) => unreachable!("the lease keeper never ends"),
        };
        report.add(sent);
        Ok(report)
    }

    /// Sends a readied batch a part at a time, each part after the first composed on the
    /// blocking threads while the one before it is sent, so composing (the biggest cost on a
    /// mass day) and the ledger's commits use the cores at once (issue #26). Once a stop is
    /// requested, the parts not yet sent go back to the queue untried.
    async fn send_in_parts(
        &self,
        mut c: Claimed,
        clock: &DrainClock,
    ) -> Result<DispatchReport, super::AppError> {
        let mut report = DispatchReport::default();
        let mut ready = std::mem::take(&mut c.first);
        loop {
            let composing = c
                .parts
                .pop_front()
                .map(|part| self.compose_beside(&c.facts, c.now, part));
            let paused = &c.paused;
            let Some(composing) = composing else {
                report.add(self.send_ready(ready, clock, paused).await?);
                return Ok(report);
            };
            let (sent, part) =
                futures_util::future::join(self.send_ready(ready, clock, paused), composing).await;
            report.add(sent?);
            ready = self.settle_composed(part?, c.now, &mut report).await?;
            if self.stop_requested() {
                let rest: Vec<ClaimedDelivery> = ready
                    .into_iter()
                    .chain(std::mem::take(&mut c.parts).into_iter().flatten())
                    .collect();
                let released = self.release_rows(&rest, clock).await?;
                tracing::info!(
                    released,
                    "stopping: the parts of the batch not yet sent go back to the queue untried"
                );
                report.released += released;
                return Ok(report);
            }
        }
    }

    /// Gives `rows` (claimed, never handed over) back to the queue untried; how many were.
    pub(super) async fn release_rows(
        &self,
        rows: &[ClaimedDelivery],
        clock: &DrainClock,
    ) -> Result<usize, super::AppError> {
        let mut released = 0;
        for row in rows {
            if self
                .store
                .release_claimed(row.id, &row.lease_token, clock.now_s())
                .await?
            {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Sends rows whose messages are ready: each channel one by one or, with `handover_batch`
    /// > 1, ahead; all at once.
    async fn send_ready(
        &self,
        rows: Vec<ClaimedDelivery>,
        clock: &DrainClock,
        paused: &[Channel],
    ) -> Result<DispatchReport, super::AppError> {
        let d = &self.cfg.delivery;
        let (ahead, one_by_one): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|r| d.handover_batch.of(r.channel) > 1);
        let (email_ahead, sms_ahead): (Vec<_>, Vec<_>) =
            ahead.into_iter().partition(|r| r.channel != Channel::Sms);
        let (a, b, c) = futures_util::future::join3(
            self.send_one_by_one(one_by_one, clock, paused),
            self.send_ahead(email_ahead, clock, paused),
            self.send_ahead(sms_ahead, clock, paused),
        )
        .await;
        let mut report = a?;
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
    pub(super) async fn keep_leases(&self, ids: &[i64], token: &str, clock: &DrainClock) {
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

    /// Sends rows committing each one `sending` by itself, at the last moment it can be waited
    /// for (SMTP: beside the envelope and body, durable before the final dot; HTTP: right
    /// before the request): at most one unsettled message per connection.
    async fn send_one_by_one(
        &self,
        batch: Vec<ClaimedDelivery>,
        clock: &DrainClock,
        paused: &[Channel],
    ) -> Result<DispatchReport, super::AppError> {
        let mut report = DispatchReport::default();
        if batch.is_empty() {
            return Ok(report);
        }
        let d = &self.cfg.delivery;
        let handovers: Vec<RowHandover<'_>> = batch
            .iter()
            .map(|row| RowHandover {
                store: &self.store,
                row,
                clock,
                lease_secs: d.lease_secs,
            })
            .collect();
        // A message holds its channel's permit from its send until its result is recorded,
        // so at most `concurrency(channel)` messages of a channel are unsettled at any moment
        // (what a crash can leave in doubt).
        let email_permits = Semaphore::new(self.channels.concurrency(Channel::Email.as_str()));
        let sms_permits = Semaphore::new(self.channels.concurrency(Channel::Sms.as_str()));
        let (email_permits, sms_permits) = (&email_permits, &sms_permits);
        // SMS of this batch whose result is not yet on its way to the ledger.
        let sms_left = AtomicUsize::new(batch.iter().filter(|r| r.channel == Channel::Sms).count());
        let sms_left = &sms_left;
        // Emails of this batch whose result is not yet on its way to the ledger.
        let email_left =
            AtomicUsize::new(batch.iter().filter(|r| r.channel != Channel::Sms).count());
        let email_left = &email_left;
        let sends = batch.iter().zip(&handovers).map(|(row, handover)| {
            async move {
                let from = self.envelope_from(row, &self.cfg.shop.from_email);
                let sms = row.channel == Channel::Sms;
                let permits = if sms { sms_permits } else { email_permits };
                let permit = permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                // A batch can take a while: its send window may have closed since it was
                // claimed.
                let left = if sms { sms_left } else { email_left };
                if let Some(next) = quiet_now(row, clock) {
                    left.fetch_sub(1, Ordering::SeqCst);
                    return self.defer_quiet(row, next, clock.now_s()).await;
                }
                let msg = outgoing(row, &from, Some(handover));
                let result = self
                    .metrics
                    .timed(row.channel, self.channels.send(&msg))
                    .await;
                // Recorded as soon as it is known: a crash now leaves at most the messages
                // still on the wire in doubt, not the whole batch. The permit goes back once
                // the result is queued, and the next message on it is handed over by a commit
                // queued after that result — so the result is durable no later than the next
                // handover (the next email's dot, the next SMS's request): at most one
                // unsettled message per permit still. The result lingers for that handover
                // while more messages of the channel are to come, so the two share one commit
                // (issue #26: one durable commit per email on its connection's path, not two).
                let urgency = if left.fetch_sub(1, Ordering::SeqCst) > 1 {
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
    /// may leave in doubt (docs/delivery-guarantee.md §1, "batches widen the in-doubt window"). A channel's
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
        paused: &[Channel],
    ) -> Result<DispatchReport, super::AppError> {
        use futures_util::StreamExt;

        let report = DispatchReport::default();
        let Some(first) = batch.first() else {
            return Ok(report);
        };
        let chunk = self.cfg.delivery.handover_batch.of(first.channel) as usize;
        let concurrency = self.channels.concurrency(first.channel.as_str());
        let ahead = Ahead {
            batch: &batch,
            chunk,
            unsettled: Semaphore::new(2 * chunk),
            concurrency,
            permits: Semaphore::new(concurrency),
            started: batch.iter().map(|_| AtomicBool::new(false)).collect(),
            wanted: AtomicUsize::new(0),
            lingering: AtomicUsize::new(0),
            from: self.cfg.shop.from_email.as_str(),
        };
        let ahead = &ahead;
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<(usize, bool)>();
        let mut deferred = DispatchReport::default();
        let feed = self.feed_ahead(ahead, clock, ready_tx, &mut deferred);
        let send = futures_util::stream::poll_fn(move |cx| ready.poll_recv(cx))
            .map(|(i, handed_over)| self.send_committed(ahead, i, handed_over, clock, paused))
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
                return self.abandon(&batch, Some(&ahead.started), clock.now_s(), report).await;
            }
        };
        fed?;
        let mut report = report;
        report.add(sent?);
        report.add(deferred);
        Ok(report)
    }

    /// The feed of [`App::send_ahead`]: commits the batch `sending` a chunk at a time, each
    /// once all of its places among the unsettled rows are free (so the next chunk is ready
    /// while the previous one is sending), and sends each row's index with whether its
    /// handover held to `ready`. Rows whose send window closed since the batch was claimed
    /// wait, untried (counted in `deferred`); their places come back at once.
    async fn feed_ahead(
        &self,
        ahead: &Ahead<'_>,
        clock: &DrainClock,
        ready: tokio::sync::mpsc::UnboundedSender<(usize, bool)>,
        deferred: &mut DispatchReport,
    ) -> Result<(), super::AppError> {
        let lease_secs = self.cfg.delivery.lease_secs;
        for (c, rows) in ahead.batch.chunks(ahead.chunk).enumerate() {
            ahead.wanted.store(rows.len(), Ordering::SeqCst);
            ahead
                .unsettled
                .acquire_many(rows.len() as u32)
                .await
                .expect("the semaphore is never closed")
                .forget();
            ahead.wanted.store(0, Ordering::SeqCst);
            let mut open = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                match quiet_now(row, clock) {
                    Some(next) => {
                        deferred.add(self.defer_quiet(row, next, clock.now_s()).await?);
                        ahead.unsettled.add_permits(1);
                    }
                    None => open.push((c * ahead.chunk + i, row)),
                }
            }
            if open.is_empty() {
                continue;
            }
            // Issued together, so they share one group commit.
            let now_s = clock.now_s();
            let marked = futures_util::future::join_all(open.iter().map(|(_, row)| {
                self.store
                    .mark_sending(row.id, &row.lease_token, now_s, lease_secs, row.unstored())
            }))
            .await;
            crate::failpoint::hit("after_handover_batch");
            for ((i, _), m) in open.iter().zip(marked) {
                let _ = ready.send((*i, m?));
            }
        }
        Ok(())
    }

    /// Sends row `i` of a [`App::send_ahead`] batch, committed already with its chunk (unless
    /// the lease was lost: `handed_over` false), and records its result; its place among the
    /// unsettled rows comes back after.
    async fn send_committed(
        &self,
        ahead: &Ahead<'_>,
        i: usize,
        handed_over: bool,
        clock: &DrainClock,
        paused: &[Channel],
    ) -> Result<DispatchReport, super::AppError> {
        let row = &ahead.batch[i];
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
            let permit = ahead.permits.acquire().await;
            ahead.started[i].store(true, Ordering::SeqCst);
            let from = self.envelope_from(row, ahead.from);
            let msg = outgoing(row, &from, None);
            let result = self
                .metrics
                .timed(row.channel, self.channels.send(&msg))
                .await;
            drop(permit);
            let linger = ahead.should_linger();
            if linger {
                ahead.lingering.fetch_add(1, Ordering::SeqCst);
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
                ahead.lingering.fetch_sub(1, Ordering::SeqCst);
            }
            r
        };
        ahead.unsettled.add_permits(1);
        r
    }

    /// Records one send's result (fenced by the lease token). `permit`, if any, is given
    /// back once the result is on its way: as soon as a `sent` is queued to the group commit
    /// (whatever is queued after it commits no earlier), otherwise once the result is recorded.
    async fn settle(
        &self,
        row: &ClaimedDelivery,
        result: Result<String, SendFailure>,
        now_s: i64,
        paused: &[Channel],
        urgency: Urgency,
        permit: Option<SemaphorePermit<'_>>,
    ) -> Result<DispatchReport, super::AppError> {
        let attempts_left = (row.attempts as u32) < self.cfg.delivery.max_attempts;
        let mut r = DispatchReport::default();
        let recorded = match result {
            Ok(reply) => {
                r.sent += 1;
                self.settle_sent(row, &reply, now_s, paused, urgency, permit)
                    .await?
            }
            Err(SendFailure::LeaseLost { message }) => {
                tracing::warn!(delivery = row.id, "not sent: {message}");
                false
            }
            Err(SendFailure::Untried { message, wait }) => {
                r.deferred += 1;
                self.settle_untried(row, &message, wait, now_s).await?
            }
            Err(SendFailure::InDoubt { message }) => {
                r.in_doubt += 1;
                self.settle_in_doubt(row, &message, now_s).await?
            }
            Err(SendFailure::AboutUs { message }) => {
                r.paused += 1;
                self.settle_about_us(row, &message, now_s).await?
            }
            Err(SendFailure::Transient {
                message,
                retry_after,
            }) if attempts_left => {
                r.retrying += 1;
                self.settle_transient(row, &message, retry_after, now_s)
                    .await?
            }
            // A transient failure with no attempt left fails as a permanent one does.
            Err(SendFailure::Transient { message, .. } | SendFailure::Permanent { message }) => {
                r.failed += 1;
                self.settle_failed(row, &message, false, now_s, &mut r)
                    .await?
            }
            Err(SendFailure::HardBounce { message }) => {
                r.failed += 1;
                self.settle_failed(row, &message, true, now_s, &mut r)
                    .await?
            }
        };
        if !recorded {
            r.lease_lost += 1;
        }
        Ok(r)
    }

    /// `sent`: the message went through (a paused channel works again).
    async fn settle_sent(
        &self,
        row: &ClaimedDelivery,
        reply: &str,
        now_s: i64,
        paused: &[Channel],
        urgency: Urgency,
        permit: Option<SemaphorePermit<'_>>,
    ) -> Result<bool, super::AppError> {
        crate::failpoint::hit("after_accept");
        // One line per message only at DEBUG: a mass day logs per batch at INFO.
        tracing::debug!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, channel = %row.channel, "sent: {reply}");
        if paused.contains(&row.channel) && self.store.clear_channel_pause(row.channel).await? {
            tracing::warn!(channel = %row.channel, "the channel works again: pause lifted");
        }
        let committed = self
            .store
            .mark_sent(row.id, &row.lease_token, now_s, urgency);
        drop(permit);
        Ok(committed.await?)
    }

    /// Not tried: the relay is down (circuit breaker open) or the provider's daily limit is
    /// spent: back to the queue, the attempt not counted, until the breaker lets the next
    /// probe through or the next UTC day.
    async fn settle_untried(
        &self,
        row: &ClaimedDelivery,
        message: &str,
        wait: Duration,
        now_s: i64,
    ) -> Result<bool, super::AppError> {
        let wait = wait.as_secs_f64().ceil() as i64;
        tracing::debug!(delivery = row.id, "deferred: {message}");
        Ok(self
            .store
            .defer(
                row.id,
                &row.lease_token,
                now_s + wait.max(1),
                now_s,
                Some(message),
            )
            .await?)
    }

    /// Handed over without a definite answer: kept, or resent under the channel's policy.
    async fn settle_in_doubt(
        &self,
        row: &ClaimedDelivery,
        message: &str,
        now_s: i64,
    ) -> Result<bool, super::AppError> {
        let d = &self.cfg.delivery;
        let resend = d.in_doubt_policy(row.channel) == InDoubtPolicy::Resend
            && (row.attempts as u32) < d.max_attempts;
        let resend_at = resend.then(|| now_s + retry_delay_secs(row.attempts as u32, jitter()));
        tracing::warn!(
            delivery = row.id,
            customer = row.customer_id,
            channel = %row.channel,
            "in doubt ({}): {message}",
            if resend { "will resend with the same Message-ID" } else { "kept, not resent" }
        );
        Ok(self
            .store
            .mark_in_doubt(row.id, &row.lease_token, message, resend_at, now_s)
            .await?)
    }

    /// Refused "about us": never the customer's fault, the message waits for the channel,
    /// which pauses.
    async fn settle_about_us(
        &self,
        row: &ClaimedDelivery,
        message: &str,
        now_s: i64,
    ) -> Result<bool, super::AppError> {
        let base = self.cfg.delivery.pause_secs;
        let (strikes, until) = self
            .store
            .pause_channel(row.channel, message, now_s, |strikes| {
                now_s + pause_secs(base, strikes)
            })
            .await?;
        tracing::error!(
            channel = %row.channel,
            delivery = row.id,
            "ALERT: the {} provider refused ritualist itself ({message}); the channel is paused for {} s (strike {strikes}); fix the configuration, then `ritualist outbox resume {}`",
            row.channel,
            until - now_s,
            row.channel
        );
        Ok(self
            .store
            .mark_retry(row.id, &row.lease_token, until, message, now_s)
            .await?)
    }

    /// A transient failure with attempts left: retried after a backoff, never sooner than the
    /// provider asked (HTTP `Retry-After`).
    async fn settle_transient(
        &self,
        row: &ClaimedDelivery,
        message: &str,
        retry_after: Option<Duration>,
        now_s: i64,
    ) -> Result<bool, super::AppError> {
        let backoff = retry_delay_secs(row.attempts as u32, jitter());
        let asked = retry_after.map_or(0, |d| d.as_secs_f64().ceil() as i64);
        let next = now_s + backoff.max(asked);
        tracing::warn!(
            delivery = row.id,
            customer = row.customer_id,
            attempt = row.attempts,
            "transient failure, retrying: {message}"
        );
        Ok(self
            .store
            .mark_retry(row.id, &row.lease_token, next, message, now_s)
            .await?)
    }

    /// `failed`: retrying cannot help. After a hard bounce (`bounce`) the customer is opted
    /// out of the channel too (counted in `r`).
    async fn settle_failed(
        &self,
        row: &ClaimedDelivery,
        message: &str,
        bounce: bool,
        now_s: i64,
        r: &mut DispatchReport,
    ) -> Result<bool, super::AppError> {
        tracing::error!(
            delivery = row.id,
            customer = row.customer_id,
            attempt = row.attempts,
            "failed: {message}"
        );
        if bounce && self.opt_out_bounced(row, now_s).await? {
            r.bounced += 1;
        }
        Ok(self
            .store
            .mark_failed(row.id, &row.lease_token, message, now_s)
            .await?)
    }

    /// A hard bounce (email) or a carrier STOP (Twilio 21610): no future message on this
    /// channel goes to this address. `true` when the customer was opted out now.
    async fn opt_out_bounced(
        &self,
        row: &ClaimedDelivery,
        now_s: i64,
    ) -> Result<bool, super::AppError> {
        let bounced = self
            .store
            .record_bounce(row.customer_id, row.channel, &row.recipient, now_s)
            .await?;
        if bounced {
            tracing::warn!(
                delivery = row.id,
                customer = row.customer_id,
                "the address takes no more messages: the customer is opted out of {}",
                row.channel
            );
        }
        Ok(bounced)
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
            let resend = (d.in_doubt_policy(row.channel) == InDoubtPolicy::Resend).then_some(now);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_send_window_is_quiet() {
        let now: Timestamp = "2027-03-01T12:00:00Z".parse().unwrap();
        for window in ["Nowhere/Atlantis 09:00-21:00", "UTC 9-21", "UTC", ""] {
            let next = quiet_until(window, now).expect(window);
            assert!(next > now, "{window}");
        }
        // A readable window still opens and closes as before.
        assert_eq!(quiet_until("UTC 09:00-21:00", now), None);
        let night: Timestamp = "2027-03-01T23:00:00Z".parse().unwrap();
        assert_eq!(
            quiet_until("UTC 09:00-21:00", night),
            Some("2027-03-02T09:00:00Z".parse().unwrap())
        );
    }

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
