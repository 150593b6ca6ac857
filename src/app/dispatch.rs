//! Draining the outbox: claim due rows under a lease, send each outside any transaction,
//! record the result (fenced by the lease token). Knows nothing about rituals or templates:
//! it sends the stored bytes, so a retry is byte-identical to the first attempt.

use jiff::Timestamp;

use std::collections::HashMap;

use jiff::tz::TimeZone;

use super::App;
use super::message::compose_with;
use crate::channel::Outgoing;
use crate::config::AllowedHours;
use crate::domain::{Channel, Email, Phone};
use crate::plan::{CustomerFacts, Occasion, next_allowed};
use crate::store::ClaimedDelivery;

/// When a row's send window (`<zone> HH:MM-HH:MM`) is closed at `now`, when it opens.
pub fn quiet_until(window: &str, now: Timestamp) -> Option<Timestamp> {
    let (zone, hours) = window.rsplit_once(' ')?;
    let hours: AllowedHours = hours.parse().ok()?;
    let zone = TimeZone::get(zone).ok()?;
    let next = next_allowed(now, &zone, Some(hours));
    (next > now).then_some(next)
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
}

impl DispatchReport {
    fn add(&mut self, o: DispatchReport) {
        self.claimed += o.claimed;
        self.sent += o.sent;
        self.retrying += o.retrying;
        self.failed += o.failed;
        self.lease_lost += o.lease_lost;
        self.deferred += o.deferred;
        self.bounced += o.bounced;
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

impl App {
    /// One step: claim a batch of due rows and send them. `claimed == 0` means nothing is due.
    pub async fn dispatch_batch(&self, now: Timestamp) -> Result<DispatchReport, super::AppError> {
        let now_s = now.as_second();
        let d = &self.cfg.delivery;
        let claimed = self
            .store
            .claim_due(now_s, d.batch_size, d.lease_secs)
            .await?;
        let mut report = DispatchReport {
            claimed: claimed.len(),
            ..Default::default()
        };
        // Never inside quiet hours: a row whose window is closed now waits, untried.
        let mut batch = Vec::with_capacity(claimed.len());
        for row in claimed {
            if let Some(next) = row.send_window.as_deref().and_then(|w| quiet_until(w, now)) {
                self.store
                    .defer(row.id, &row.lease_token, next.as_second(), now_s)
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
        let from = self.cfg.shop.from_email.clone();
        let sends = batch.iter().map(|row| {
            let from = from.as_str();
            async move {
                let msg = Outgoing {
                    channel: &row.channel,
                    recipient: &row.recipient,
                    payload: row.payload.as_deref().unwrap_or_default(),
                    message_id: row.message_id.as_deref(),
                    from,
                };
                (
                    row,
                    self.metrics
                        .timed(&row.channel, self.channels.send(&msg))
                        .await,
                )
            }
        });
        // Sends of one batch run concurrently (the SMTP pool caps connections).
        let results = futures_util::future::join_all(sends).await;
        for (row, result) in results {
            let recorded = match result {
                Ok(reply) => {
                    tracing::info!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, channel = %row.channel, "sent: {reply}");
                    report.sent += 1;
                    self.store
                        .mark_sent(row.id, &row.lease_token, now_s)
                        .await?
                }
                Err(e) if e.is_transient() && (row.attempts as u32) < d.max_attempts => {
                    // Never sooner than the provider asked (HTTP Retry-After).
                    let backoff = retry_delay_secs(row.attempts as u32, jitter());
                    let asked = e.retry_after.map_or(0, |d| d.as_secs_f64().ceil() as i64);
                    let next = now_s + backoff.max(asked);
                    tracing::warn!(
                        delivery = row.id,
                        customer = row.customer_id,
                        attempt = row.attempts,
                        "transient failure, retrying: {e}"
                    );
                    report.retrying += 1;
                    self.store
                        .mark_retry(row.id, &row.lease_token, next, &e.message, now_s)
                        .await?
                }
                Err(e) => {
                    tracing::error!(
                        delivery = row.id,
                        customer = row.customer_id,
                        attempt = row.attempts,
                        "failed: {e}"
                    );
                    report.failed += 1;
                    // A hard bounce: no future email goes to this address.
                    if e.hard_bounce
                        && row.channel == "email"
                        && self
                            .store
                            .record_bounce(row.customer_id, &row.recipient, now_s)
                            .await?
                    {
                        report.bounced += 1;
                        tracing::warn!(
                            delivery = row.id,
                            customer = row.customer_id,
                            "hard bounce: the customer is opted out of email (source bounce)"
                        );
                    }
                    self.store
                        .mark_failed(row.id, &row.lease_token, &e.message, now_s)
                        .await?
                }
            };
            if !recorded {
                report.lease_lost += 1;
            }
        }
        Ok(report)
    }

    /// Renders the rows claimed for their first attempt. A row that cannot be rendered (its
    /// ritual was removed, a template fails for this customer) fails with the reason.
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
        for row in batch.iter_mut().filter(|r| r.payload.is_none()) {
            let composed = (|| {
                let c = facts
                    .get(&row.customer_id)
                    .ok_or("the customer no longer exists".to_string())?;
                let ritual = defs
                    .rituals
                    .iter()
                    .find(|r| r.name == row.ritual)
                    .ok_or_else(|| format!("ritual `{}` no longer exists", row.ritual))?;
                let occasion: Occasion = row
                    .occasion
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok())
                    .ok_or("the occasion is missing".to_string())?;
                let channel: Channel = row.channel.parse().map_err(|e| format!("{e}"))?;
                let mut c = c.clone();
                // The address decided at planning time is the one written to.
                match channel {
                    Channel::Email => c.email = Email::parse(&row.recipient).ok(),
                    Channel::Sms => c.phone = Phone::parse(&row.recipient, None).ok(),
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
                )
                .map_err(|e| format!("render: {e}"))
            })();
            match composed {
                Ok(m) => {
                    if self
                        .store
                        .set_message(
                            row.id,
                            &row.lease_token,
                            m.subject.as_deref(),
                            &m.payload,
                            m.message_id.as_deref(),
                        )
                        .await?
                    {
                        row.message_id = m.message_id;
                        row.subject = m.subject;
                        row.payload = Some(m.payload);
                    } else {
                        report.lease_lost += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(delivery = row.id, customer = row.customer_id, ritual = %row.ritual, "cannot render: {e}");
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
        Ok(())
    }

    /// Sends until nothing is due at `now` (rows waiting for a later retry stay waiting).
    /// First returns rows whose worker died (expired lease) to the queue.
    pub async fn drain(&self, now: Timestamp) -> Result<DispatchReport, super::AppError> {
        self.store.release_expired_leases(now.as_second()).await?;
        let mut total = DispatchReport::default();
        loop {
            let r = self.dispatch_batch(now).await?;
            if r.claimed == 0 {
                return Ok(total);
            }
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
