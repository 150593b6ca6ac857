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
use crate::plan::{Consent, CustomerFacts, Engine, Recorded, month_days_between, zone_may_be_due};
use crate::ritual::{Trigger, YearlyField};
use crate::store::{CustomerRow, HistoryRow, MonthDayColumn};

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

/// Ledger statuses that are (or will be) a message to the customer.
fn is_message(status: &str) -> bool {
    matches!(
        status,
        "pending" | "claimed" | "retry_wait" | "sent" | "in_doubt"
    )
}

pub fn recorded_from(h: &HistoryRow) -> Recorded {
    Recorded {
        ritual: h.ritual.clone(),
        occurrence: h.occurrence.clone(),
        message: is_message(&h.status),
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
    orders_to: i64,
    needs_custom: bool,
    history_since: i64,
    pub total: u64,
    pub done: u64,
}

impl<'a> CandidateScan<'a> {
    /// Everyone the occurrences due in `(from, to]` can concern; with `only`, that customer.
    /// `fresh` customers come first, with the orders and history of the wider window that
    /// starts at `fresh_from`.
    pub async fn new(
        app: &'a App,
        engine: Engine<'a>,
        from: Timestamp,
        to: Timestamp,
        only: Option<i64>,
        fresh: Vec<i64>,
        fresh_from: Timestamp,
    ) -> Result<CandidateScan<'a>, AppError> {
        let store = &app.store;
        let day = SignedDuration::from_hours(24);
        let days = |n: i64| SignedDuration::from_hours(24 * n);
        let mut probe = BTreeSet::new();
        let mut zones = BTreeSet::new();
        let mut all_zones: Option<Vec<String>> = None;
        let mut orders_from: Option<i64> = None;
        let mut needs_custom = false;
        for r in engine.rituals {
            match &r.trigger {
                Trigger::Yearly {
                    date, offset_days, ..
                } => {
                    let mds = month_days_between(from, to, *offset_days);
                    let ids = match date {
                        YearlyField::Birthday => {
                            store.ids_by_month_day(MonthDayColumn::Birth, &mds).await?
                        }
                        YearlyField::Signup => {
                            store.ids_by_month_day(MonthDayColumn::Signup, &mds).await?
                        }
                        YearlyField::FirstPurchase => {
                            store
                                .ids_by_month_day(MonthDayColumn::FirstOrder, &mds)
                                .await?
                        }
                        YearlyField::Custom(name) => {
                            needs_custom = true;
                            store.ids_by_custom_month_day(name, &mds).await?
                        }
                    };
                    probe.extend(ids);
                }
                Trigger::Inactivity { days: steps } => {
                    for n in steps {
                        let lo = from - days(*n as i64) - 2 * day;
                        let hi = to - days(*n as i64) + 2 * day;
                        probe.extend(
                            store
                                .ids_by_last_order(lo.as_second(), hi.as_second())
                                .await?,
                        );
                    }
                }
                Trigger::Order { delay_days, .. } => {
                    let lo = from - days(*delay_days as i64) - 2 * day;
                    let hi = to - days(*delay_days as i64) + day;
                    probe.extend(
                        store
                            .ids_by_order_time(lo.as_second(), hi.as_second())
                            .await?,
                    );
                    orders_from =
                        Some(orders_from.map_or(lo.as_second(), |o| o.min(lo.as_second())));
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
                        if zone_may_be_due(&engine, r, &tz, from, to) {
                            zones.insert(z.clone());
                        }
                    }
                }
            }
        }
        let caps_days = engine
            .config
            .frequency_caps
            .iter()
            .map(|c| c.days as i64)
            .max()
            .unwrap_or(0);
        let history_since = (from.min(fresh_from) - days(caps_days + 2)).as_second();
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
            orders_to: to.as_second(),
            needs_custom,
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
        let mut custom = if self.needs_custom {
            store.custom_dates(&ids).await?
        } else {
            HashMap::new()
        };
        let mut orders = match self.orders_from {
            Some(lo) => store.orders_between(&ids, lo, self.orders_to).await?,
            None => HashMap::new(),
        };
        let mut opt_outs = store.opt_outs(&ids).await?;
        let mut history = store.history(&ids, self.history_since).await?;
        let out = rows
            .iter()
            .map(|row| Candidate {
                facts: self.builder.facts(
                    row,
                    custom.remove(&row.id).unwrap_or_default(),
                    orders.remove(&row.id).unwrap_or_default(),
                ),
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
