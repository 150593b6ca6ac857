//! `ritualist report`: per ritual (and optionally per month) what the ledger says — due,
//! sent, failed, suppressed by reason —, the opt-outs the ritual's messages caused, survey
//! answers with NPS, and the outcome: repeat-purchase rate and revenue per customer within N
//! days after the occurrence, recipients versus the holdout group.
//!
//! [`compute`] is a pure function over rows the store fetched ([`App::report`] fetches them),
//! so every number can be checked by hand in a unit test.
//!
//! Definitions (docs/marketer.md, "ritualist report", says the same):
//! - A ledger row belongs to the period of its `due_at`. `due` counts rows (one per
//!   occurrence and channel; one per suppressed occurrence).
//! - Recipients: customers with a `sent` row; holdout: rows `suppressed` with reason
//!   `holdout`. Each customer counts once per group, at their first occurrence in the period;
//!   its time is the row's `due_at` (for a holdout, the instant it was decided due). Only
//!   occurrences whose window (`due_at` + N days) has closed by `now` are measured; the others
//!   are counted as `window_open`.
//! - A repeat purchase is an order in `(due_at, due_at + N days]`; revenue is the sum of those
//!   orders in the stored minor units, per currency, divided by the group's size.
//! - An opt-out (link, one-click, SMS keyword) is caused by the ritual of the last message sent
//!   to that customer before it that the opt-out's scope covers (its channel, its category or
//!   a parent category, its ritual, or everything).
//! - NPS: answers first given in the period; % promoters (9–10) minus % detractors (0–6).

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use serde::Serialize;

use super::lift::{Counts, MeanLift, MeanStats, ProportionLift, repeat_lift, welch};
use crate::store::{LedgerFact, OptOutFact, OrderFact, SentFact, Status, SurveyResponse};

/// Everything [`compute`] needs, as fetched.
#[derive(Debug, Clone, Default)]
pub struct ReportInput {
    pub ledger: Vec<LedgerFact>,
    pub orders: Vec<OrderFact>,
    pub opt_outs: Vec<OptOutFact>,
    pub sent_before_opt_outs: Vec<SentFact>,
    pub responses: Vec<SurveyResponse>,
}

/// How rows are grouped in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Periods {
    /// One row per ritual for the whole period.
    Whole,
    /// One row per ritual and calendar month in this zone (`2027-03`).
    Month(TimeZone),
}

#[derive(Debug, Clone)]
pub struct ReportParams {
    pub window_days: u32,
    /// Outcome windows ending after this are still open.
    pub now: i64,
    pub periods: Periods,
    /// Only this ritual.
    pub ritual: Option<String>,
}

/// One group's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Group {
    /// Customers measured.
    pub n: u64,
    /// Customers with at least one order in the window.
    pub repeat_customers: u64,
    /// `repeat_customers / n`, in percent (0.1 precision); `null` when n = 0.
    pub repeat_rate_pct: Option<f64>,
    /// Revenue in the window, per currency, in the stored minor units.
    pub revenue_minor: BTreeMap<String, i64>,
    /// `revenue_minor / n` (0.01 precision).
    pub revenue_per_customer_minor: BTreeMap<String, f64>,
    /// The same in major units (`RON 43.06` is `{"RON": 43.06}`), rounded to the currency's
    /// decimals: what people read.
    pub revenue_per_customer: BTreeMap<String, f64>,
    /// Per currency: each customer's revenue in the window (0 without an order), summarised
    /// for Welch's interval. Not printed.
    #[serde(skip)]
    pub revenue_stats: BTreeMap<String, MeanStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outcome {
    pub window_days: u32,
    pub recipients: Group,
    pub holdout: Group,
    /// Recipients minus holdout, in percentage points; `null` unless both have customers.
    pub repeat_rate_diff_pts: Option<f64>,
    /// Recipients minus holdout, per currency either group has; empty unless both have customers.
    pub revenue_per_customer_diff_minor: BTreeMap<String, f64>,
    /// The same in major units.
    pub revenue_per_customer_diff: BTreeMap<String, f64>,
    /// Occurrences (recipients and holdout) whose window has not closed yet: not measured.
    pub window_open: u64,
    /// Repeat purchase, recipients minus holdout, with its 95 % interval and verdict
    /// (`app/lift.rs`); `null` unless both groups have customers.
    pub repeat_lift: Option<ProportionLift>,
    /// Revenue per customer, recipients minus holdout, per currency in minor units, with
    /// Welch's 95 % interval; a currency is left out while a group has fewer than two customers.
    pub revenue_lift: BTreeMap<String, MeanLift>,
    /// The plain verdict on repeat purchase ("lifts repeat purchase by 4.1–9.0 points",
    /// "no evidence yet — 214 more customers needed"); `null` without both groups.
    pub verdict: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Nps {
    pub responses: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    /// % promoters − % detractors (0.1 precision); `null` without answers.
    pub nps: Option<f64>,
}

/// One row of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReportRow {
    pub ritual: String,
    /// `all` (the whole period) or the month, `YYYY-MM`.
    pub period: String,
    pub due: u64,
    pub sent: u64,
    pub failed: u64,
    /// Not final yet: pending, claimed, waiting for a retry.
    pub in_flight: u64,
    pub cancelled: u64,
    /// Suppressed rows by reason (`opted_out:category:x` counts as `opted_out`,
    /// `capped_by:x` as `capped_by`).
    pub suppressed: BTreeMap<String, u64>,
    pub opt_outs: u64,
    pub survey: Nps,
    pub outcome: Outcome,
}

const DAY: i64 = 86_400;

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn period_of(p: &Periods, t: i64) -> String {
    match p {
        Periods::Whole => "all".into(),
        Periods::Month(tz) => jiff::Timestamp::from_second(t)
            .map(|ts| ts.to_zoned(tz.clone()).strftime("%Y-%m").to_string())
            .unwrap_or_else(|_| "?".into()),
    }
}

/// The reason's kind: the part before the first `:`.
fn reason_kind(reason: Option<&str>) -> String {
    reason
        .map(|r| r.split(':').next().unwrap_or(r).to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether an opt-out of `scope` covers a message of this ritual, category and channel.
fn covers(scope: &str, m: &SentFact) -> bool {
    if scope == "all" {
        return true;
    }
    if let Some(ch) = scope.strip_prefix("channel:") {
        return m.channel == ch;
    }
    if let Some(r) = scope.strip_prefix("ritual:") {
        return m.ritual == r;
    }
    if let Some(c) = scope.strip_prefix("category:") {
        return m.category == c
            || m.category
                .strip_prefix(c)
                .is_some_and(|rest| rest.starts_with('.'));
    }
    false
}

fn group(
    units: &BTreeMap<i64, i64>,
    orders: &BTreeMap<i64, Vec<&OrderFact>>,
    window: i64,
) -> Group {
    let mut g = Group {
        n: units.len() as u64,
        ..Group::default()
    };
    // Per currency, each customer's revenue in the window (those without one are zeros).
    let mut each: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (customer, t) in units {
        let mut bought = false;
        let mut mine: BTreeMap<&str, i64> = BTreeMap::new();
        for o in orders.get(customer).into_iter().flatten() {
            if o.ordered_at > *t && o.ordered_at <= t + window {
                bought = true;
                *g.revenue_minor.entry(o.currency.clone()).or_default() += o.amount_minor;
                *mine.entry(o.currency.as_str()).or_default() += o.amount_minor;
            }
        }
        for (c, v) in mine {
            each.entry(c.to_string()).or_default().push(v as f64);
        }
        g.repeat_customers += bought as u64;
    }
    for (c, mut values) in each {
        values.resize(units.len(), 0.0);
        g.revenue_stats.insert(c, MeanStats::of(&values));
    }
    if g.n > 0 {
        g.repeat_rate_pct = Some(round(100.0 * g.repeat_customers as f64 / g.n as f64, 1));
        g.revenue_per_customer_minor = g
            .revenue_minor
            .iter()
            .map(|(c, v)| (c.clone(), round(*v as f64 / g.n as f64, 2)))
            .collect();
        g.revenue_per_customer = major(&g.revenue_per_customer_minor);
    }
    g
}

/// Minor-unit amounts per currency in major units, rounded to each currency's decimals.
fn major(minor: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    minor
        .iter()
        .map(|(c, v)| {
            let digits = crate::domain::money::minor_digits(c) as i32;
            (
                c.clone(),
                round(crate::domain::money::to_major(c, *v), digits),
            )
        })
        .collect()
}

/// (ritual, period): the key of a report row.
type RowKey = (String, String);
/// Per row key, customer → first occurrence time, for one group.
type Units = BTreeMap<RowKey, BTreeMap<i64, i64>>;

/// What the ledger says per row key, before the outcome is measured.
#[derive(Default)]
struct LedgerTally {
    recipients: Units,
    holdout: Units,
    /// Recipients and holdouts (`true`: a recipient) whose window is still open.
    open: BTreeMap<RowKey, BTreeSet<(i64, bool)>>,
}

/// The report rows, by ritual then period.
pub fn compute(input: &ReportInput, p: &ReportParams) -> Vec<ReportRow> {
    let mut rows: BTreeMap<RowKey, ReportRow> = BTreeMap::new();
    let tally = tally_ledger(input, p, &mut rows);
    add_outcomes(input, p, tally, &mut rows);
    add_opt_outs(input, p, &mut rows);
    add_surveys(input, p, &mut rows);
    rows.into_values().collect()
}

/// Whether the report covers `ritual`.
fn wanted(p: &ReportParams, ritual: &str) -> bool {
    p.ritual.as_deref().is_none_or(|w| w == ritual)
}

/// Counts every ledger row in its report row, and sorts recipients and holdouts into their
/// groups (or as `open` while their window is).
fn tally_ledger(
    input: &ReportInput,
    p: &ReportParams,
    rows: &mut BTreeMap<RowKey, ReportRow>,
) -> LedgerTally {
    let window = p.window_days as i64 * DAY;
    let mut t = LedgerTally::default();
    for l in input.ledger.iter().filter(|l| wanted(p, &l.ritual)) {
        let key = (l.ritual.clone(), period_of(&p.periods, l.due_at));
        let r = entry(rows, &key, p.window_days);
        r.due += 1;
        match l.status {
            Status::Sent => r.sent += 1,
            Status::Failed => r.failed += 1,
            Status::Cancelled => r.cancelled += 1,
            Status::Suppressed => {
                *r.suppressed
                    .entry(reason_kind(l.reason.as_deref()))
                    .or_default() += 1
            }
            Status::Pending
            | Status::Claimed
            | Status::Sending
            | Status::InDoubt
            | Status::RetryWait => r.in_flight += 1,
        }
        let units = match (l.status, l.reason.as_deref()) {
            (Status::Sent, _) => &mut t.recipients,
            (Status::Suppressed, Some("holdout")) => &mut t.holdout,
            _ => continue,
        };
        if l.due_at + window > p.now {
            t.open
                .entry(key)
                .or_default()
                .insert((l.customer_id, l.status == Status::Sent));
            continue;
        }
        let first = units
            .entry(key)
            .or_default()
            .entry(l.customer_id)
            .or_insert(l.due_at);
        *first = (*first).min(l.due_at);
    }
    t
}

/// The outcome of each report row: repeat purchases and revenue, recipients versus holdout.
fn add_outcomes(
    input: &ReportInput,
    p: &ReportParams,
    tally: LedgerTally,
    rows: &mut BTreeMap<RowKey, ReportRow>,
) {
    let window = p.window_days as i64 * DAY;
    let LedgerTally {
        recipients,
        holdout,
        open,
    } = tally;
    let mut orders: BTreeMap<i64, Vec<&OrderFact>> = BTreeMap::new();
    for o in &input.orders {
        orders.entry(o.customer_id).or_default().push(o);
    }
    let keys: BTreeSet<RowKey> = recipients
        .keys()
        .chain(holdout.keys())
        .chain(open.keys())
        .cloned()
        .collect();
    for key in keys {
        let empty = BTreeMap::new();
        let rec = group(recipients.get(&key).unwrap_or(&empty), &orders, window);
        let hold = group(holdout.get(&key).unwrap_or(&empty), &orders, window);
        let r = entry(rows, &key, p.window_days);
        let o = &mut r.outcome;
        o.window_open = open.get(&key).map_or(0, |s| s.len() as u64);
        if rec.n > 0 && hold.n > 0 {
            compare(o, &rec, &hold);
        }
        o.recipients = rec;
        o.holdout = hold;
    }
}

/// The differences, recipients minus holdout, of two non-empty groups.
fn compare(o: &mut Outcome, rec: &Group, hold: &Group) {
    o.repeat_rate_diff_pts = rec
        .repeat_rate_pct
        .zip(hold.repeat_rate_pct)
        .map(|(a, b)| round(a - b, 1));
    let currencies: BTreeSet<&String> = rec
        .revenue_minor
        .keys()
        .chain(hold.revenue_minor.keys())
        .collect();
    for c in currencies {
        let a = rec
            .revenue_per_customer_minor
            .get(c)
            .copied()
            .unwrap_or(0.0);
        let b = hold
            .revenue_per_customer_minor
            .get(c)
            .copied()
            .unwrap_or(0.0);
        o.revenue_per_customer_diff_minor
            .insert(c.clone(), round(a - b, 2));
    }
    o.revenue_per_customer_diff = major(&o.revenue_per_customer_diff_minor);
    lifts(o, rec, hold);
}

/// The intervals and the verdict of two non-empty groups (`app/lift.rs`).
fn lifts(o: &mut Outcome, rec: &Group, hold: &Group) {
    let counts = |g: &Group| Counts {
        n: g.n,
        x: g.repeat_customers,
    };
    if let Ok(l) = repeat_lift(counts(rec), counts(hold)) {
        o.verdict = Some(l.verdict.clone());
        o.repeat_lift = Some(l);
    }
    let zeros = |g: &Group| MeanStats {
        n: g.n,
        mean: 0.0,
        variance: 0.0,
    };
    for c in o.revenue_per_customer_diff_minor.keys() {
        let a = rec.revenue_stats.get(c).copied().unwrap_or(zeros(rec));
        let b = hold.revenue_stats.get(c).copied().unwrap_or(zeros(hold));
        if let Ok(m) = welch(a, b) {
            o.revenue_lift.insert(c.clone(), m);
        }
    }
}

/// Opt-outs: each counted for the ritual of the last covered message before it.
fn add_opt_outs(input: &ReportInput, p: &ReportParams, rows: &mut BTreeMap<RowKey, ReportRow>) {
    let mut sent: BTreeMap<i64, Vec<&SentFact>> = BTreeMap::new();
    for s in &input.sent_before_opt_outs {
        sent.entry(s.customer_id).or_default().push(s);
    }
    for e in &input.opt_outs {
        let cause = sent
            .get(&e.customer_id)
            .into_iter()
            .flatten()
            .filter(|m| m.sent_at <= e.changed_at && covers(&e.scope, m))
            .max_by_key(|m| m.sent_at);
        if let Some(m) = cause
            && wanted(p, &m.ritual)
        {
            let key = (m.ritual.clone(), period_of(&p.periods, e.changed_at));
            entry(rows, &key, p.window_days).opt_outs += 1;
        }
    }
}

/// Survey answers and NPS per report row.
fn add_surveys(input: &ReportInput, p: &ReportParams, rows: &mut BTreeMap<RowKey, ReportRow>) {
    for s in input.responses.iter().filter(|s| wanted(p, &s.ritual)) {
        let key = (s.ritual.clone(), period_of(&p.periods, s.first_at));
        let n = &mut entry(rows, &key, p.window_days).survey;
        n.responses += 1;
        match s.score {
            9..=10 => n.promoters += 1,
            7..=8 => n.passives += 1,
            _ => n.detractors += 1,
        }
    }
    for r in rows.values_mut() {
        let n = &mut r.survey;
        if n.responses > 0 {
            n.nps = Some(round(
                100.0 * (n.promoters as f64 - n.detractors as f64) / n.responses as f64,
                1,
            ));
        }
    }
}

fn entry<'a>(
    rows: &'a mut BTreeMap<(String, String), ReportRow>,
    key: &(String, String),
    window_days: u32,
) -> &'a mut ReportRow {
    rows.entry(key.clone()).or_insert_with(|| ReportRow {
        ritual: key.0.clone(),
        period: key.1.clone(),
        outcome: Outcome {
            window_days,
            ..Outcome::default()
        },
        ..ReportRow::default()
    })
}

/// What `ritualist report` asks for. Dates are local dates in `defaults.time_zone`; `until`
/// is inclusive.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub since: Option<jiff::civil::Date>,
    pub until: Option<jiff::civil::Date>,
    pub ritual: Option<String>,
    pub window_days: u32,
    pub by_month: bool,
}

/// The report over `store`'s rows; `now` closes outcome windows.
pub async fn report(
    store: &crate::store::Store,
    cfg: &crate::config::Config,
    req: &ReportRequest,
    now: i64,
) -> Result<Vec<ReportRow>, super::AppError> {
    let tz = TimeZone::get(&cfg.defaults.time_zone).unwrap_or(TimeZone::UTC);
    let start = |d: jiff::civil::Date| -> Result<i64, super::AppError> {
        d.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_second())
            .map_err(|e| super::AppError::Other(format!("date {d}: {e}")))
    };
    let since = req.since.map(start).transpose()?.unwrap_or(i64::MIN / 2);
    let until = match req.until {
        Some(d) => start(
            d.tomorrow()
                .map_err(|e| super::AppError::Other(format!("date {d}: {e}")))?,
        )?,
        None => i64::MAX / 2,
    };
    let ritual = req.ritual.as_deref();
    let window = req.window_days as i64 * DAY;
    let ledger = store.report_ledger(since, until, ritual).await?;
    let orders = store
        .report_orders(since, until, until.saturating_add(window), ritual)
        .await?;
    let (opt_outs, sent_before_opt_outs) = store.report_opt_outs(since, until).await?;
    let responses = store.survey_responses(Some(since), Some(until)).await?;
    let input = ReportInput {
        ledger,
        orders,
        opt_outs,
        sent_before_opt_outs,
        responses,
    };
    Ok(compute(
        &input,
        &ReportParams {
            window_days: req.window_days,
            now,
            periods: if req.by_month {
                Periods::Month(tz)
            } else {
                Periods::Whole
            },
            ritual: req.ritual.clone(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    fn ledger(
        ritual: &str,
        c: i64,
        status: Status,
        reason: Option<&str>,
        due_at: i64,
    ) -> LedgerFact {
        LedgerFact {
            ritual: ritual.into(),
            category: ritual.into(),
            customer_id: c,
            occurrence: format!("o{c}"),
            channel: "email".into(),
            status,
            reason: reason.map(String::from),
            due_at,
        }
    }

    fn order(c: i64, at: i64, amount: i64) -> OrderFact {
        OrderFact {
            customer_id: c,
            ordered_at: at,
            amount_minor: amount,
            currency: "EUR".into(),
        }
    }

    fn params() -> ReportParams {
        ReportParams {
            window_days: 10,
            now: 100 * DAY,
            periods: Periods::Whole,
            ritual: None,
        }
    }

    #[test]
    fn recipients_versus_holdout_by_hand() {
        let t = DAY;
        let input = ReportInput {
            ledger: vec![
                ledger("w", 1, Status::Sent, None, t),
                // The same customer's second occurrence: still one customer, at the first.
                ledger("w", 1, Status::Sent, None, 5 * t),
                ledger("w", 2, Status::Sent, None, t),
                ledger("w", 3, Status::Suppressed, Some("holdout"), t),
                ledger("w", 4, Status::Suppressed, Some("opted_out:category:w"), t),
                ledger("w", 5, Status::Suppressed, Some("capped_by:birthday"), t),
                ledger("w", 6, Status::Pending, None, t),
                // Its window (day 95 + 10) is still open on day 100.
                ledger("w", 7, Status::Sent, None, 95 * t),
            ],
            orders: vec![
                order(1, t, 999),          // at the occurrence itself: not after it
                order(1, 11 * t, 300),     // the last second of the window
                order(2, 11 * t + 1, 500), // one second too late
                order(3, 2 * t, 200),
                order(3, 3 * t, 100),
            ],
            ..ReportInput::default()
        };
        let rows = compute(&input, &params());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.due, r.sent, r.in_flight), (8, 4, 1));
        assert_eq!(
            r.suppressed,
            [
                ("capped_by".to_string(), 1),
                ("holdout".into(), 1),
                ("opted_out".into(), 1)
            ]
            .into()
        );
        let o = &r.outcome;
        assert_eq!((o.recipients.n, o.recipients.repeat_customers), (2, 1));
        assert_eq!(o.recipients.repeat_rate_pct, Some(50.0));
        assert_eq!(
            o.recipients.revenue_per_customer_minor,
            [("EUR".to_string(), 150.0)].into()
        );
        assert_eq!((o.holdout.n, o.holdout.repeat_customers), (1, 1));
        assert_eq!(o.holdout.revenue_minor, [("EUR".to_string(), 300)].into());
        assert_eq!(o.repeat_rate_diff_pts, Some(-50.0));
        assert_eq!(
            o.revenue_per_customer_diff_minor,
            [("EUR".to_string(), -150.0)].into()
        );
        assert_eq!(o.window_open, 1);
    }

    /// #28: the report says whether the lift is real: the repeat-purchase interval and its
    /// verdict, and Welch's interval on revenue per customer with each customer's revenue
    /// (zeros included), checked against a hand computation.
    #[test]
    fn the_outcome_carries_the_lift_interval_and_its_verdict() {
        let t = DAY;
        let mut input = ReportInput::default();
        for c in 0..80 {
            let (status, reason) = if c < 40 {
                (Status::Sent, None)
            } else {
                (Status::Suppressed, Some("holdout"))
            };
            input.ledger.push(ledger("w", c, status, reason, t));
            // 30 of 40 recipients buy, 10 of 40 in the holdout; 100 each.
            if c < 30 || (40..50).contains(&c) {
                input.orders.push(order(c, 2 * t, 100));
            }
        }
        let rows = compute(&input, &params());
        let o = &rows[0].outcome;
        let lift = o.repeat_lift.as_ref().expect("both groups have customers");
        assert!((lift.difference - 0.5).abs() < 1e-12);
        assert!(lift.low > 0.0 && lift.high < 1.0, "{lift:?}");
        assert!(
            o.verdict
                .as_deref()
                .is_some_and(|v| v.starts_with("lifts repeat purchase by ")),
            "{o:?}"
        );
        // Each group: 100 × k and 0 × (40 − k); sample variance by hand.
        let var = |k: f64| {
            let mean = 100.0 * k / 40.0;
            (k * (100.0 - mean).powi(2) + (40.0 - k) * mean * mean) / 39.0
        };
        let (v1, v0) = (var(30.0) / 40.0, var(10.0) / 40.0);
        let df = (v1 + v0).powi(2) / (v1 * v1 / 39.0 + v0 * v0 / 39.0);
        let half = crate::app::lift::t_975(df) * (v1 + v0).sqrt();
        let m = &o.revenue_lift["EUR"];
        assert!((m.difference - 50.0).abs() < 1e-9, "{m:?}");
        assert!((m.low - (50.0 - half)).abs() < 1e-9, "{m:?}");
        assert!((m.high - (50.0 + half)).abs() < 1e-9, "{m:?}");
        assert!((m.df - 78.0).abs() < 1e-9, "{m:?}");
    }

    #[test]
    fn opt_outs_go_to_the_last_message_their_scope_covers() {
        let sent = |ritual: &str, category: &str, channel: Channel, at: i64| SentFact {
            ritual: ritual.into(),
            category: category.into(),
            customer_id: 1,
            channel,
            sent_at: at,
        };
        let out = |scope: &str, at: i64| OptOutFact {
            customer_id: 1,
            scope: scope.into(),
            source: "link".into(),
            changed_at: at,
        };
        let input = ReportInput {
            sent_before_opt_outs: vec![
                sent("holidays", "holidays.mothers_day", Channel::Email, 10),
                sent("birthday", "birthday", Channel::Sms, 20),
                sent("survey", "survey", Channel::Email, 30),
                // After every opt-out: never the cause.
                sent("digest", "digest", Channel::Email, 99),
            ],
            opt_outs: vec![
                out("category:holidays", 40), // parent category → holidays
                out("channel:sms", 40),       // → birthday
                out("all", 40),               // the last message → survey
                out("channel:email", 5),      // nothing sent before it
            ],
            ..ReportInput::default()
        };
        let got: Vec<(String, u64)> = compute(&input, &params())
            .into_iter()
            .map(|r| (r.ritual, r.opt_outs))
            .collect();
        assert_eq!(
            got,
            [
                ("birthday".to_string(), 1),
                ("holidays".into(), 1),
                ("survey".into(), 1)
            ]
        );
    }

    #[test]
    fn nps_is_promoters_minus_detractors_and_months_split_rows() {
        let resp = |score: i32, first_at: i64| SurveyResponse {
            ritual: "survey".into(),
            customer_id: score as i64,
            occurrence: "o".into(),
            score,
            comment: None,
            first_at,
            updated_at: first_at,
        };
        let march = jiff::Timestamp::from_second(0).unwrap().as_second() + 70 * DAY; // 1970-03-12
        let input = ReportInput {
            responses: vec![
                resp(10, march),
                resp(6, march),
                resp(0, march),
                resp(8, march + 30 * DAY),
            ],
            ..ReportInput::default()
        };
        let whole = compute(&input, &params());
        assert_eq!(whole[0].survey.nps, Some(-25.0));
        let by_month = compute(
            &input,
            &ReportParams {
                periods: Periods::Month(TimeZone::UTC),
                ..params()
            },
        );
        let got: Vec<(String, u64, Option<f64>)> = by_month
            .iter()
            .map(|r| (r.period.clone(), r.survey.responses, r.survey.nps))
            .collect();
        assert_eq!(
            got,
            [
                ("1970-03".to_string(), 3, Some(-33.3)),
                ("1970-04".to_string(), 1, Some(0.0))
            ]
        );
    }
}
