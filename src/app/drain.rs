//! The drain loop: batch after batch until nothing is due, each batch claimed and readied
//! while the one before it is sent.
//!
//! A batch is claimed (one statement), its customers' facts read and its first part composed
//! ([`App::claim_step`]) before anything of it can go out, and its last part is sent with
//! nothing left to compose. Done one batch after another, those steps kept either the sends
//! or the composing waiting for 35 ms of every 83 ms per batch of 1,000 on a mass day (issue
//! #26, measured at 100,000). So the next batch is claimed and readied beside the sends of
//! the one before it, and waits, its leases kept, until they are done. Nothing of the
//! guarantee changes: the rows claimed ahead are `claimed`, never handed over, so a crash
//! gives them back untried like any claimed row, and a stop gives them back at once. A crash
//! right after such a claim may find the earlier batch's last messages on the wire, as a
//! crash at any moment of its sends may (the crash matrix's `after_claim`).
//!
//! A batch claimed ahead is one batch older when it goes out: a channel that was paused in
//! the meantime (a provider refused ritualist itself) gets its rows back to the queue, so the
//! pause holds for them as it would have at their claim.

use jiff::Timestamp;
use tokio::sync::watch;

use super::dispatch::{Claimed, DrainClock};
use super::{App, AppError, DispatchReport};
use crate::domain::Channel;

/// A batch claimed ahead, with whether the tick had finished before it was claimed (then an
/// empty claim ends the drain).
type ClaimedAhead = (bool, Claimed);

impl App {
    /// Sends until nothing is due at `now` (rows waiting for a later retry stay waiting), or
    /// until a stop is requested. First returns rows whose worker died (expired lease) to the
    /// queue: `claimed` ones to `pending`, `sending` ones to `in_doubt` (or, under a resend
    /// policy, to `retry_wait`).
    pub async fn drain(&self, now: Timestamp) -> Result<DispatchReport, AppError> {
        let (_done, done) = watch::channel(true);
        self.drain_beside(now, done).await
    }

    /// [`App::drain`] beside a tick that is still recording (`tick_done` turns `true` when it
    /// has finished): when nothing is due yet it waits for the tick's next chunk (polling
    /// every 50 ms) instead of returning, and it returns once a claim made after the tick
    /// finished finds nothing.
    pub(super) async fn drain_beside(
        &self,
        now: Timestamp,
        mut tick_done: watch::Receiver<bool>,
    ) -> Result<DispatchReport, AppError> {
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
        let mut ahead: Option<ClaimedAhead> = None;
        loop {
            if self.stop_requested() {
                if let Some((_, c)) = ahead.take() {
                    total.released += self.release_rows(&c.into_rows(), &clock).await?;
                }
                return Ok(total);
            }
            let (tick_was_done, claimed) = match ahead.take() {
                Some(a) => a,
                None => self.claim_noting_tick(&clock, &mut tick_done).await?,
            };
            if claimed.report.claimed == 0 {
                if tick_was_done {
                    return Ok(total);
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                    _ = tick_done.changed() => {}
                    _ = self.stopped() => {}
                }
                continue;
            }
            let (r, next) = self
                .send_claiming_next(claimed, &clock, &mut tick_done)
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    // The batch claimed ahead goes back untried now rather than when its
                    // lease ends (best effort: the database may be what failed).
                    if let Ok((_, c)) = next {
                        let _ = self.release_rows(&c.into_rows(), &clock).await;
                    }
                    return Err(e);
                }
            };
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
            let (tick_was_done, mut next) = next?;
            self.release_newly_paused(&mut next, &clock).await?;
            ahead = Some((tick_was_done, next));
        }
    }

    /// Claims and readies a batch, having read first whether the tick had finished: a chunk
    /// recorded just before the tick ends is claimed by the step after the one that saw it
    /// end.
    async fn claim_noting_tick(
        &self,
        clock: &DrainClock,
        tick_done: &mut watch::Receiver<bool>,
    ) -> Result<ClaimedAhead, AppError> {
        let tick_was_done = *tick_done.borrow_and_update();
        Ok((tick_was_done, self.claim_step(clock).await?))
    }

    /// Sends batch `c` and, beside it, claims and readies the next one, whose leases are kept
    /// until the sends of `c` are done.
    async fn send_claiming_next(
        &self,
        c: Claimed,
        clock: &DrainClock,
        tick_done: &mut watch::Receiver<bool>,
    ) -> (
        Result<DispatchReport, AppError>,
        Result<ClaimedAhead, AppError>,
    ) {
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
        let sending = async move {
            let r = self.send_claimed(c, clock).await;
            let _ = sent_tx.send(());
            r
        };
        let claiming = async move {
            let next = self.claim_noting_tick(clock, tick_done).await?;
            if let Some((ids, token)) = next.1.lease() {
                tokio::select! {
                    _ = sent_rx => {}
                    _ = self.keep_leases(&ids, &token, clock) => unreachable!("the lease keeper never ends"),
                }
            }
            Ok(next)
        };
        futures_util::future::join(sending, claiming).await
    }

    /// Gives back to the queue, untried, the rows of `c` (claimed ahead) whose channel was
    /// paused since `c` was claimed, counted in its report.
    async fn release_newly_paused(
        &self,
        c: &mut Claimed,
        clock: &DrainClock,
    ) -> Result<(), AppError> {
        // Nothing to send (nothing due, or every row deferred to its send window): nothing
        // to give back, and `c.now` was never set.
        if c.rows().next().is_none() {
            return Ok(());
        }
        let claimed_at = c.now.as_second();
        let now_s = clock.now_s();
        let paused: Vec<Channel> = self
            .store
            .channel_pauses()
            .await?
            .into_iter()
            .filter(|p| p.paused_at >= claimed_at && p.until > now_s)
            .map(|p| p.channel)
            .collect();
        if !paused.is_empty() {
            let rows = c.take_channels(&paused);
            c.report.released += self.release_rows(&rows, clock).await?;
        }
        Ok(())
    }
}
