//! `ritualist plan`: every decision the daemon will take for a span of days, written nowhere.
//! It runs the same scan and the same [`crate::plan::Engine`] as the tick, taking each
//! decision at its due instant as a daemon ticking through the span would.
//!
//! [`App::plan_each`] hands each chunk of customers' decisions to a sink as soon as they
//! are made (memory stays flat whatever the base); [`App::plan`] collects them all.

use jiff::SignedDuration;
use jiff::civil::Date;

use super::scan::CandidateScan;
use super::{App, AppError};
use crate::plan::{Decision, Outcome};

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// First local date.
    pub date: Date,
    /// Number of local days.
    pub days: u32,
    pub ritual: Option<String>,
    /// External id, email or phone.
    pub customer: Option<String>,
}

/// One planned decision, as `plan` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedDecision {
    pub ritual: String,
    /// External id.
    pub customer: String,
    pub customer_id: i64,
    /// `send` or `suppress`.
    pub decision: &'static str,
    pub channel: Option<String>,
    /// Local send time, RFC 3339 with the customer's offset.
    pub send_at: Option<String>,
    pub send_at_utc: Option<String>,
    pub occurrence: String,
    pub category: String,
    pub reason: Option<String>,
}

impl PlannedDecision {
    fn new(c: &crate::plan::CustomerFacts, d: &Decision) -> Self {
        let (decision, channel, at, reason) = match &d.outcome {
            Outcome::Send {
                channel, due_at, ..
            } => ("send", Some(channel.to_string()), Some(*due_at), None),
            Outcome::Suppress { channel, reason } => (
                "suppress",
                channel.map(|c| c.to_string()),
                None,
                Some(reason.clone()),
            ),
        };
        PlannedDecision {
            ritual: d.ritual.clone(),
            customer: c.external_id.clone(),
            customer_id: c.id,
            decision,
            channel,
            send_at: at.map(|t| {
                t.to_zoned(c.zone.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            }),
            send_at_utc: at.map(|t| t.to_string()),
            occurrence: d.occurrence.clone(),
            category: d.category.clone(),
            reason,
        }
    }
}

/// What a plan decided, in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub decisions: u64,
    pub sends: u64,
}

/// The order decisions are written in (within a chunk, for [`App::plan_each`]; overall, for
/// [`App::plan`]): by UTC send time, then ritual, customer and channel.
fn by_send_time(a: &PlannedDecision, b: &PlannedDecision) -> std::cmp::Ordering {
    (
        a.send_at_utc.as_deref(),
        &a.ritual,
        a.customer_id,
        &a.channel,
    )
        .cmp(&(
            b.send_at_utc.as_deref(),
            &b.ritual,
            b.customer_id,
            &b.channel,
        ))
}

impl App {
    /// Plans `req`, every decision collected and sorted by send time. For a whole base, see
    /// [`App::plan_each`], which holds one chunk at a time.
    pub async fn plan(
        &self,
        req: &PlanRequest,
        progress: impl FnMut(u64, u64),
    ) -> Result<Vec<PlannedDecision>, AppError> {
        let mut out = Vec::new();
        self.plan_each(req, progress, |chunk| out.extend_from_slice(chunk))
            .await?;
        out.sort_by(by_send_time);
        Ok(out)
    }

    /// Plans `req`, handing each chunk of customers' decisions (sorted by send time within
    /// the chunk) to `sink` as soon as they are made, then returns the counts.
    /// `progress(done, total)` is called after every chunk of customers.
    pub async fn plan_each(
        &self,
        req: &PlanRequest,
        mut progress: impl FnMut(u64, u64),
        mut sink: impl FnMut(&[PlannedDecision]),
    ) -> Result<PlanSummary, AppError> {
        let defs = self.defs();
        if let Some(r) = &req.ritual {
            super::Known::from_parts(&defs.rituals, &[]).ritual(r)?;
        }
        let only = match &req.customer {
            None => None,
            Some(key) => Some(
                self.store
                    .find_customer(key)
                    .await?
                    .ok_or_else(|| AppError::Other(format!("no customer `{key}`")))?
                    .id,
            ),
        };
        let end = req
            .date
            .checked_add(jiff::Span::new().days(req.days.max(1) as i64))
            .map_err(|e| AppError::Other(e.to_string()))?;
        // Local dates [date, end) somewhere on Earth (UTC+14 … UTC−12).
        let utc = |d: Date| {
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp())
                .map_err(|e| AppError::Other(e.to_string()))
        };
        let from = utc(req.date)? - SignedDuration::from_hours(14) - SignedDuration::from_secs(1);
        let to = utc(end)? + SignedDuration::from_hours(12);
        let engine = defs.engine(&self.cfg);
        let mut scan = CandidateScan::new(
            self,
            engine,
            from,
            to,
            only,
            (Vec::new(), from),
            Some((req.date, end)),
        )
        .await?;
        let mut summary = PlanSummary::default();
        let mut out = Vec::new();
        progress(0, scan.total);
        while let Some(chunk) = scan.next().await? {
            out.clear();
            for cand in &chunk {
                for d in engine.plan(&cand.facts, &cand.consent, &cand.history, from, to) {
                    let local = cand.facts.zone.to_datetime(d.due).date();
                    if local < req.date || local >= end {
                        continue;
                    }
                    if req.ritual.as_ref().is_some_and(|r| r != &d.ritual) {
                        continue;
                    }
                    out.push(PlannedDecision::new(&cand.facts, &d));
                }
            }
            out.sort_by(by_send_time);
            summary.decisions += out.len() as u64;
            summary.sends += out.iter().filter(|p| p.decision == "send").count() as u64;
            sink(&out);
            progress(scan.done, scan.total);
        }
        // The scan's last steps may skip customers already decided (a probe's, in a zone read
        // whole) after the last chunk: the bar ends full.
        progress(scan.done, scan.total);
        Ok(summary)
    }
}
