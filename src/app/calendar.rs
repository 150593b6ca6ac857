//! The marketer's calendar of upcoming sends: per local day, the messages per ritual and
//! channel, the skipped ones by reason, and the customers two rituals would both reach that
//! day.
//!
//! Each day is exactly `ritualist plan --date DAY --days 1` ([`App::plan_each`], the same scan
//! and decision function as the daemon): the page's day opens the same decisions
//! ([`App::calendar_day`]), and no count is computed a second way. [`tally`] is pure: it folds
//! one chunk of a day's decisions into that day's counts (a customer's decisions all arrive in
//! one chunk, so overlaps are found chunk by chunk and memory stays flat).

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::Date;
use serde::Serialize;

use super::{App, AppError, PlanRequest, PlannedDecision};

/// The most days one calendar shows.
pub const CALENDAR_MAX_DAYS: u32 = 92;

/// Which days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarRequest {
    pub from: Date,
    pub days: u32,
}

/// Messages planned for one ritual on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendCount {
    pub ritual: String,
    pub channel: String,
    pub count: u64,
}

/// One local day of the calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CalendarDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Every decision of the day (sends and suppressions).
    pub decisions: u64,
    pub sends: u64,
    /// Per ritual and channel, by ritual then channel.
    pub by_ritual: Vec<SendCount>,
    /// Suppressions by the reason's kind (`opted_out:category:x` counts as `opted_out`).
    pub skipped: BTreeMap<String, u64>,
    /// Customers who would get messages of two or more rituals this day.
    pub overlap_customers: u64,
    /// External ids of the first few of them (at most [`OVERLAP_SAMPLE`]).
    pub overlap_sample: Vec<String>,
}

/// How many overlapping customers a day names.
pub const OVERLAP_SAMPLE: usize = 20;

/// The calendar: one entry per day, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendCalendar {
    pub from: String,
    pub days: Vec<CalendarDay>,
}

/// The kind of a suppression's reason: the part before the first `:`.
pub fn reason_kind(reason: Option<&str>) -> String {
    reason
        .map(|r| r.split(':').next().unwrap_or(r).to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Running counts of one day, before they are laid out.
#[derive(Debug, Default)]
pub struct DayTally {
    decisions: u64,
    sends: u64,
    by_ritual: BTreeMap<(String, String), u64>,
    skipped: BTreeMap<String, u64>,
    overlap_customers: u64,
    overlap_sample: Vec<String>,
}

/// Folds one chunk of a day's decisions into its tally. Every decision of a customer is in
/// the same chunk (chunks are of customers), so a customer reached by two rituals is seen
/// here whole.
pub fn tally(t: &mut DayTally, chunk: &[PlannedDecision]) {
    let mut rituals: BTreeMap<i64, (&str, BTreeSet<&str>)> = BTreeMap::new();
    for d in chunk {
        t.decisions += 1;
        if d.decision == "send" {
            t.sends += 1;
            let channel = d.channel.clone().unwrap_or_default();
            *t.by_ritual.entry((d.ritual.clone(), channel)).or_default() += 1;
            rituals
                .entry(d.customer_id)
                .or_insert_with(|| (d.customer.as_str(), BTreeSet::new()))
                .1
                .insert(d.ritual.as_str());
        } else {
            *t.skipped
                .entry(reason_kind(d.reason.as_deref()))
                .or_default() += 1;
        }
    }
    for (customer, set) in rituals.values() {
        if set.len() > 1 {
            t.overlap_customers += 1;
            if t.overlap_sample.len() < OVERLAP_SAMPLE {
                t.overlap_sample.push(customer.to_string());
            }
        }
    }
}

impl DayTally {
    /// The day's counts as shown.
    pub fn finish(self, date: Date) -> CalendarDay {
        CalendarDay {
            date: date.to_string(),
            decisions: self.decisions,
            sends: self.sends,
            by_ritual: self
                .by_ritual
                .into_iter()
                .map(|((ritual, channel), count)| SendCount {
                    ritual,
                    channel,
                    count,
                })
                .collect(),
            skipped: self.skipped,
            overlap_customers: self.overlap_customers,
            overlap_sample: self.overlap_sample,
        }
    }
}

/// The requested days, or why not: at least one, at most [`CALENDAR_MAX_DAYS`], inside the
/// supported years.
pub fn calendar_dates(req: &CalendarRequest) -> Result<Vec<Date>, String> {
    if req.days == 0 || req.days > CALENDAR_MAX_DAYS {
        return Err(format!(
            "days must be between 1 and {CALENDAR_MAX_DAYS}, not {}",
            req.days
        ));
    }
    let mut out = Vec::with_capacity(req.days as usize);
    let mut d = super::supported_date(req.from)?;
    for i in 0..req.days {
        if i > 0 {
            d = d
                .tomorrow()
                .map_err(|e| format!("{d}: {e}"))
                .and_then(super::supported_date)?;
        }
        out.push(d);
    }
    Ok(out)
}

impl App {
    /// The calendar of `req`: each day what `plan --date DAY --days 1` decides, counted.
    /// An invalid range is an [`AppError::Other`] saying why.
    pub async fn calendar(&self, req: &CalendarRequest) -> Result<SendCalendar, AppError> {
        let dates = calendar_dates(req).map_err(AppError::Other)?;
        let mut days = Vec::with_capacity(dates.len());
        for date in dates {
            let mut t = DayTally::default();
            self.plan_each(&day_request(date), |_, _| {}, |chunk| tally(&mut t, chunk))
                .await?;
            days.push(t.finish(date));
        }
        Ok(SendCalendar {
            from: req.from.to_string(),
            days,
        })
    }

    /// Every decision of one day, by send time: `plan --date DAY --days 1`.
    pub async fn calendar_day(&self, date: Date) -> Result<Vec<PlannedDecision>, AppError> {
        let date = super::supported_date(date).map_err(AppError::Other)?;
        self.plan(&day_request(date), |_, _| {}).await
    }
}

fn day_request(date: Date) -> PlanRequest {
    PlanRequest {
        date,
        days: 1,
        ritual: None,
        customer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(
        ritual: &str,
        customer: i64,
        send: bool,
        channel: &str,
        reason: Option<&str>,
    ) -> PlannedDecision {
        PlannedDecision {
            ritual: ritual.into(),
            customer: format!("c{customer}"),
            customer_id: customer,
            decision: if send { "send" } else { "suppress" },
            channel: Some(channel.into()),
            send_at: send.then(|| "2027-03-01T10:00:00+02:00".into()),
            send_at_utc: send.then(|| "2027-03-01T08:00:00Z".into()),
            occurrence: "2027".into(),
            category: ritual.into(),
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn a_day_counts_sends_per_ritual_and_channel_skips_by_reason_and_overlaps() {
        let mut t = DayTally::default();
        tally(
            &mut t,
            &[
                d("birthday", 1, true, "email", None),
                d("birthday", 1, true, "sms", None),
                d("holidays", 1, true, "email", None),
                d("birthday", 2, true, "email", None),
                d("holidays", 2, false, "email", Some("capped_by:birthday")),
            ],
        );
        tally(
            &mut t,
            &[
                d(
                    "holidays",
                    3,
                    false,
                    "email",
                    Some("opted_out:category:holidays"),
                ),
                d("holidays", 4, false, "email", Some("holdout")),
                d("winback", 5, true, "sms", None),
            ],
        );
        let day = t.finish(jiff::civil::date(2027, 3, 1));
        assert_eq!((day.decisions, day.sends), (8, 5));
        let got: Vec<(&str, &str, u64)> = day
            .by_ritual
            .iter()
            .map(|s| (s.ritual.as_str(), s.channel.as_str(), s.count))
            .collect();
        assert_eq!(
            got,
            [
                ("birthday", "email", 2),
                ("birthday", "sms", 1),
                ("holidays", "email", 1),
                ("winback", "sms", 1)
            ]
        );
        assert_eq!(
            day.skipped,
            BTreeMap::from([
                ("capped_by".to_string(), 1),
                ("holdout".to_string(), 1),
                ("opted_out".to_string(), 1)
            ])
        );
        // c1 gets birthday and holidays; c2's holiday was capped: one overlap.
        assert_eq!(day.overlap_customers, 1);
        assert_eq!(day.overlap_sample, ["c1"]);
    }

    #[test]
    fn ranges_are_bounded_and_dates_supported() {
        let from = jiff::civil::date(2027, 2, 27);
        let days = calendar_dates(&CalendarRequest { from, days: 3 }).unwrap();
        assert_eq!(
            days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            ["2027-02-27", "2027-02-28", "2027-03-01"]
        );
        assert!(calendar_dates(&CalendarRequest { from, days: 0 }).is_err());
        assert!(calendar_dates(&CalendarRequest { from, days: 93 }).is_err());
        let far = jiff::civil::date(9999, 12, 30);
        assert!(calendar_dates(&CalendarRequest { from: far, days: 5 }).is_err());
    }
}
