//! Finding the customers a window of time may concern, and loading what the engine needs to
//! decide about them, chunk by chunk so memory stays flat whatever the customer count.
//!
//! Yearly dates, inactivity and orders are index probes (month-day columns, last order time,
//! order time). Holidays and schedules are due zone by zone: only the customers of zones where
//! one can fall due in the window are read, by keyset paging on (zone, id).

use std::collections::{BTreeSet, HashMap};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::{App, AppError};
use crate::plan::{
    Consent, CustomerFacts, Engine, Probed, Recorded, probe_may_be_due, probe_ranges,
    yearly_month_days, zone_may_be_due,
};
use crate::ritual::{Trigger, YearlyField};
use crate::store::{CustomerRow, HistoryRow, MonthDayColumn, Probe};

/// Customers per chunk.
const CHUNK: u32 = 2000;

/// One customer, ready for [`Engine::decide`].
pub struct Candidate {
    pub facts: CustomerFacts,
    pub consent: Consent,
    pub history: Vec<Recorded>,
    /// Arrived (or ordered) since the last tick: decided over the whole grace window.
    pub fresh: bool,
}

pub fn recorded_from(h: &HistoryRow) -> Recorded {
    Recorded {
        ritual: h.ritual.clone(),
        occurrence: h.occurrence.clone(),
        message: h.status.is_message(),
        due: Timestamp::from_second(h.due_at).unwrap_or(Timestamp::UNIX_EPOCH),
    }
}

pub struct CandidateScan<'a> {
    app: &'a App,
    builder: super::FactsBuilder,
    /// Zones read whole, and where the paging is.
    zones: Vec<String>,
    zone_pos: usize,
    after: i64,
    /// Ids found by index probes (sorted), and where the paging is.
    probe: Vec<i64>,
    probe_pos: usize,
    /// Customers new or changed since the last tick (sorted), and where the paging is.
    fresh: Vec<i64>,
    fresh_pos: usize,
    orders_from: Option<i64>,
    order_ids: BTreeSet<i64>,
    orders_to: i64,
    history_since: i64,
    pub total: u64,
    pub done: u64,
}

impl<'a> CandidateScan<'a> {
    /// Everyone the occurrences due in `(from, to]` can concern; with `only`, that customer.
    /// With `local_days` `[first, end)`, only occurrences due on those local dates of each
    /// customer's zone count (what `plan` shows).
    /// `fresh` customers come first, with the orders and history of the wider window that
    /// starts at `fresh_from`.
    pub async fn new(
        app: &'a App,
        engine: Engine<'a>,
        from: Timestamp,
        to: Timestamp,
        only: Option<i64>,
        (fresh, fresh_from): (Vec<i64>, Timestamp),
        local_days: Option<(jiff::civil::Date, jiff::civil::Date)>,
    ) -> Result<CandidateScan<'a>, AppError> {
        // The window as seen from one zone.
        let zone_window = |tz: &TimeZone| match local_days {
            None => (from, to),
            Some((first, end)) => {
                let second = SignedDuration::from_secs(1);
                (
                    (crate::plan::day_start(first, tz) - second).max(from),
                    (crate::plan::day_start(end, tz) - second).min(to),
                )
            }
        };
        let store = &app.store;
        let days = |n: i64| SignedDuration::from_hours(24 * n);
        let mut probe = BTreeSet::new();
        let mut zones = BTreeSet::new();
        let mut all_zones: Option<Vec<String>> = None;
        let mut orders_from: Option<i64> = None;
        let mut zone_cache: HashMap<String, TimeZone> = HashMap::new();
        let mut probed: HashMap<(bool, i64, i64), Vec<Probe>> = HashMap::new();
        // Customers with an order an event ritual may be due for: the only ones (with the
        // fresh) whose orders are read.
        let mut order_ids = BTreeSet::new();
        // Keeps the probed customers the ritual can have something due for in the window.
        let keep = |r: &crate::ritual::Ritual,
                    found: Vec<Probe>,
                    probed: fn(i64) -> Option<Probed>,
                    probe: &mut BTreeSet<i64>,
                    zone_cache: &mut HashMap<String, TimeZone>| {
            for p in found {
                if probe.contains(&p.id) {
                    continue;
                }
                let tz = zone_cache
                    .entry(p.zone)
                    .or_insert_with_key(|name| app.zone(name));
                let (zf, zt) = zone_window(tz);
                if probed(p.value).is_none_or(|v| probe_may_be_due(r, tz, v, zf, zt)) {
                    probe.insert(p.id);
                }
            }
        };
        let last_order: fn(i64) -> Option<Probed> =
            |v| Timestamp::from_second(v).ok().map(Probed::LastOrder);
        let order: fn(i64) -> Option<Probed> =
            |v| Timestamp::from_second(v).ok().map(Probed::Order);
        for r in engine.rituals {
            match &r.trigger {
                Trigger::Yearly { date, .. } => {
                    // The month-days due in the window, zone by zone: a one-minute tick
                    // probes only the dates whose send time is in that minute somewhere.
                    if all_zones.is_none() {
                        all_zones = Some(store.customer_zones().await?);
                    }
                    let mut due: HashMap<&str, Vec<i32>> = HashMap::new();
                    let mut mds = BTreeSet::new();
                    for z in all_zones.iter().flatten() {
                        let tz = zone_cache
                            .entry(z.clone())
                            .or_insert_with_key(|name| app.zone(name));
                        let (zf, zt) = zone_window(tz);
                        let m = yearly_month_days(r, tz, zf, zt);
                        mds.extend(m.iter().copied());
                        due.insert(z, m);
                    }
                    let mds: Vec<i32> = mds.into_iter().collect();
                    let found = match date {
                        YearlyField::Birthday => {
                            store.probe_month_day(MonthDayColumn::Birth, &mds).await?
                        }
                        YearlyField::Signup => {
                            store.probe_month_day(MonthDayColumn::Signup, &mds).await?
                        }
                        YearlyField::FirstPurchase => {
                            store
                                .probe_month_day(MonthDayColumn::FirstOrder, &mds)
                                .await?
                        }
                        YearlyField::Custom(name) => {
                            store.probe_custom_month_day(name, &mds).await?
                        }
                    };
                    for p in found {
                        if due
                            .get(p.zone.as_str())
                            .is_some_and(|m| m.contains(&(p.value as i32)))
                        {
                            probe.insert(p.id);
                        }
                    }
                }
                Trigger::Inactivity { .. } | Trigger::Order { .. } => {
                    let is_order = matches!(r.trigger, Trigger::Order { .. });
                    for (lo, hi) in probe_ranges(r, from, to) {
                        let (lo, hi) = (lo.as_second(), hi.as_second());
                        // Rituals with the same range (thank-you and reward) share a probe.
                        let found = match probed.get(&(is_order, lo, hi)) {
                            Some(found) => found.clone(),
                            None => {
                                let found = if is_order {
                                    store.probe_order_time(lo, hi).await?
                                } else {
                                    store.probe_last_order(lo, hi).await?
                                };
                                probed.insert((is_order, lo, hi), found.clone());
                                found
                            }
                        };
                        if is_order {
                            keep(r, found, order, &mut order_ids, &mut zone_cache);
                            orders_from = Some(orders_from.map_or(lo, |o| o.min(lo)));
                        } else {
                            keep(r, found, last_order, &mut probe, &mut zone_cache);
                        }
                    }
                }
                Trigger::Holiday { .. } | Trigger::Schedule { .. } => {
                    if all_zones.is_none() {
                        all_zones = Some(store.customer_zones().await?);
                    }
                    for z in all_zones.iter().flatten() {
                        if zones.contains(z) {
                            continue;
                        }
                        let tz = app.zone(z);
                        let (zf, zt) = zone_window(&tz);
                        if zone_may_be_due(&engine, r, &tz, zf, zt) {
                            zones.insert(z.clone());
                        }
                    }
                }
            }
        }
        probe.extend(order_ids.iter().copied());
        let history_since = (from.min(fresh_from) - days(history_days(&engine) + 2)).as_second();
        if !fresh.is_empty() {
            orders_from = orders_from.map(|o| o.min((fresh_from - days(366)).as_second()));
        }
        let (zones, probe, fresh): (Vec<String>, Vec<i64>, Vec<i64>) = match only {
            Some(id) => (Vec::new(), vec![id], Vec::new()),
            None => (
                zones.into_iter().collect(),
                probe.into_iter().collect(),
                fresh,
            ),
        };
        let in_zones = if zones.is_empty() {
            0
        } else {
            store.count_in_zones(&zones).await?
        };
        let probe: Vec<i64> = probe
            .into_iter()
            .filter(|id| fresh.binary_search(id).is_err())
            .collect();
        Ok(CandidateScan {
            app,
            builder: app.facts_builder(),
            total: in_zones + probe.len() as u64 + fresh.len() as u64,
            fresh,
            fresh_pos: 0,
            done: 0,
            zones,
            zone_pos: 0,
            after: 0,
            probe,
            probe_pos: 0,
            orders_from,
            order_ids,
            orders_to: to.as_second(),
            history_since,
        })
    }

    /// The next chunk of candidates; `None` when done.
    pub async fn next(&mut self) -> Result<Option<Vec<Candidate>>, AppError> {
        let store = &self.app.store;
        let mut is_fresh = false;
        let rows: Vec<CustomerRow> = loop {
            if self.fresh_pos < self.fresh.len() {
                let end = (self.fresh_pos + CHUNK as usize).min(self.fresh.len());
                let ids = &self.fresh[self.fresh_pos..end];
                self.fresh_pos = end;
                let rows = store.customers_by_ids(ids).await?;
                self.done += (ids.len() - rows.len()) as u64;
                if rows.is_empty() {
                    continue;
                }
                is_fresh = true;
                break rows;
            }
            if self.zone_pos < self.zones.len() {
                let zone = &self.zones[self.zone_pos];
                let rows = store.customers_in_zone(zone, self.after, CHUNK).await?;
                match rows.last() {
                    Some(last) => {
                        self.after = last.id;
                        let n = rows.len();
                        let rows: Vec<CustomerRow> = rows
                            .into_iter()
                            .filter(|r| self.fresh.binary_search(&r.id).is_err())
                            .collect();
                        self.done += (n - rows.len()) as u64;
                        if rows.is_empty() {
                            continue;
                        }
                        break rows;
                    }
                    None => {
                        self.zone_pos += 1;
                        self.after = 0;
                        continue;
                    }
                }
            }
            if self.probe_pos < self.probe.len() {
                let end = (self.probe_pos + CHUNK as usize).min(self.probe.len());
                let ids = &self.probe[self.probe_pos..end];
                self.probe_pos = end;
                let rows: Vec<CustomerRow> = store
                    .customers_by_ids(ids)
                    .await?
                    .into_iter()
                    // Customers of zones read whole were decided there.
                    .filter(|r| self.zones.binary_search(&r.time_zone).is_err())
                    .collect();
                self.done += (ids.len() - rows.len()) as u64;
                if rows.is_empty() {
                    continue;
                }
                break rows;
            }
            return Ok(None);
        };
        self.done += rows.len() as u64;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // Only customers with an order an event ritual may be due for need their orders
        // (custom dates come with the row).
        let mut orders = match self.orders_from {
            Some(lo) => {
                let with_orders: Vec<i64> = rows
                    .iter()
                    .filter(|r| {
                        (is_fresh || self.order_ids.contains(&r.id))
                            && r.last_order_at.is_some_and(|t| t >= lo)
                    })
                    .map(|r| r.id)
                    .collect();
                if with_orders.is_empty() {
                    HashMap::new()
                } else {
                    store
                        .orders_between(&with_orders, lo, self.orders_to)
                        .await?
                }
            }
            None => HashMap::new(),
        };
        let mut opt_outs = store.opt_outs(&ids).await?;
        let mut history = store.history(&ids, self.history_since).await?;
        let out = rows
            .iter()
            .map(|row| Candidate {
                facts: self
                    .builder
                    .facts(row, orders.remove(&row.id).unwrap_or_default()),
                consent: Consent {
                    opted_out: opt_outs.remove(&row.id).unwrap_or_default(),
                },
                history: history
                    .remove(&row.id)
                    .unwrap_or_default()
                    .iter()
                    .map(recorded_from)
                    .collect(),
                fresh: is_fresh,
            })
            .collect();
        Ok(Some(out))
    }
}

impl App {
    /// A time zone by name (unknown names fall back to the default zone, then UTC).
    pub fn zone(&self, name: &str) -> TimeZone {
        TimeZone::get(name)
            .or_else(|_| TimeZone::get(&self.cfg.defaults.time_zone))
            .unwrap_or(TimeZone::UTC)
    }

    pub fn facts_builder(&self) -> super::FactsBuilder {
        super::FactsBuilder::new(&self.cfg)
    }
}

/// How many days of a customer's ledger the decision needs: the longest frequency cap and,
/// when a survey ritual exists, the survey window (one survey per customer per window).
pub(super) fn history_days(engine: &crate::plan::Engine) -> i64 {
    let caps = engine
        .config
        .frequency_caps
        .iter()
        .map(|c| c.days as i64)
        .max()
        .unwrap_or(0);
    let surveys = if engine.rituals.iter().any(|r| r.survey.is_some()) {
        engine.config.survey_window_days as i64
    } else {
        0
    };
    caps.max(surveys)
}
