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
use crate::ritual::{Ritual, Trigger, YearlyField};
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

/// The window as seen from one zone: `(from, to]`, narrowed to the local days `[first, end)`
/// when a `plan` asks for those.
#[derive(Clone, Copy)]
struct ZoneWindow {
    from: Timestamp,
    to: Timestamp,
    local_days: Option<(jiff::civil::Date, jiff::civil::Date)>,
}

impl ZoneWindow {
    fn of(&self, tz: &TimeZone) -> (Timestamp, Timestamp) {
        match self.local_days {
            None => (self.from, self.to),
            Some((first, end)) => {
                let second = SignedDuration::from_secs(1);
                (
                    (crate::plan::day_start(first, tz) - second).max(self.from),
                    (crate::plan::day_start(end, tz) - second).min(self.to),
                )
            }
        }
    }
}

/// `Probed` of a probe's value: a customer's last order time, or one order's time.
fn last_order_probed(v: i64) -> Option<Probed> {
    Timestamp::from_second(v).ok().map(Probed::LastOrder)
}
fn order_probed(v: i64) -> Option<Probed> {
    Timestamp::from_second(v).ok().map(Probed::Order)
}

/// What [`CandidateScan::new`] gathers ritual by ritual: the customers found by index probes,
/// the zones to read whole, and who needs their orders read.
struct Probing<'a> {
    app: &'a App,
    engine: Engine<'a>,
    window: ZoneWindow,
    probe: BTreeSet<i64>,
    zones: BTreeSet<String>,
    all_zones: Option<Vec<String>>,
    orders_from: Option<i64>,
    zone_cache: HashMap<String, TimeZone>,
    /// Probes already run: rituals with the same range (thank-you and reward) share one.
    probed: HashMap<(bool, i64, i64), Vec<Probe>>,
    /// Customers with an order an event ritual may be due for: the only ones (with the
    /// fresh) whose orders are read.
    order_ids: BTreeSet<i64>,
    /// Planning one customer: no probe of the base is run (that customer is the only
    /// candidate), only the order ranges are worked out.
    only: bool,
}

impl<'a> Probing<'a> {
    fn new(app: &'a App, engine: Engine<'a>, window: ZoneWindow) -> Probing<'a> {
        Probing {
            app,
            engine,
            window,
            probe: BTreeSet::new(),
            zones: BTreeSet::new(),
            all_zones: None,
            orders_from: None,
            zone_cache: HashMap::new(),
            probed: HashMap::new(),
            order_ids: BTreeSet::new(),
            only: false,
        }
    }

    /// Probes (or marks the zones) of every ritual.
    async fn rituals(&mut self) -> Result<(), AppError> {
        for r in self.engine.rituals {
            if self.only {
                // One customer: which orders to read is all there is to work out.
                if matches!(r.trigger, Trigger::Order { .. }) {
                    for (lo, _) in probe_ranges(r, self.window.from, self.window.to) {
                        let lo = lo.as_second();
                        self.orders_from = Some(self.orders_from.map_or(lo, |o| o.min(lo)));
                    }
                }
                continue;
            }
            match &r.trigger {
                Trigger::Yearly { date, .. } => self.yearly(r, date).await?,
                Trigger::Inactivity { .. } | Trigger::Order { .. } => self.by_time(r).await?,
                Trigger::Holiday { .. } | Trigger::Schedule { .. } => self.zoned(r).await?,
            }
        }
        Ok(())
    }

    async fn load_zones(&mut self) -> Result<(), AppError> {
        if self.all_zones.is_none() {
            self.all_zones = Some(self.app.store.customer_zones().await?);
        }
        Ok(())
    }

    /// The month-days due in the window, zone by zone: a one-minute tick probes only the
    /// dates whose send time is in that minute somewhere.
    async fn yearly(&mut self, r: &Ritual, date: &YearlyField) -> Result<(), AppError> {
        self.load_zones().await?;
        let (app, window) = (self.app, self.window);
        let mut due: HashMap<&str, Vec<i32>> = HashMap::new();
        let mut mds = BTreeSet::new();
        for z in self.all_zones.iter().flatten() {
            let tz = self
                .zone_cache
                .entry(z.clone())
                .or_insert_with_key(|name| app.zone(name));
            let (zf, zt) = window.of(tz);
            let m = yearly_month_days(r, tz, zf, zt);
            mds.extend(m.iter().copied());
            due.insert(z, m);
        }
        let mds: Vec<i32> = mds.into_iter().collect();
        let store = &app.store;
        let found = match date {
            YearlyField::Birthday => store.probe_month_day(MonthDayColumn::Birth, &mds).await?,
            YearlyField::Signup => store.probe_month_day(MonthDayColumn::Signup, &mds).await?,
            YearlyField::FirstPurchase => {
                store
                    .probe_month_day(MonthDayColumn::FirstOrder, &mds)
                    .await?
            }
            YearlyField::Custom(name) => store.probe_custom_month_day(name, &mds).await?,
        };
        for p in found {
            if due
                .get(p.zone.as_str())
                .is_some_and(|m| m.contains(&(p.value as i32)))
            {
                self.probe.insert(p.id);
            }
        }
        Ok(())
    }

    /// Inactivity and order rituals: the customers whose last order (or an order) is in
    /// one of the ritual's ranges.
    async fn by_time(&mut self, r: &Ritual) -> Result<(), AppError> {
        let is_order = matches!(r.trigger, Trigger::Order { .. });
        for (lo, hi) in probe_ranges(r, self.window.from, self.window.to) {
            let (lo, hi) = (lo.as_second(), hi.as_second());
            let found = match self.probed.get(&(is_order, lo, hi)) {
                Some(found) => found.clone(),
                None => {
                    let store = &self.app.store;
                    let found = if is_order {
                        store.probe_order_time(lo, hi).await?
                    } else {
                        store.probe_last_order(lo, hi).await?
                    };
                    self.probed.insert((is_order, lo, hi), found.clone());
                    found
                }
            };
            if is_order {
                self.keep(r, found, order_probed, true);
                self.orders_from = Some(self.orders_from.map_or(lo, |o| o.min(lo)));
            } else {
                self.keep(r, found, last_order_probed, false);
            }
        }
        Ok(())
    }

    /// Keeps the probed customers the ritual can have something due for in the window (in
    /// `order_ids` for an order ritual, else in `probe`).
    fn keep(
        &mut self,
        r: &Ritual,
        found: Vec<Probe>,
        probed: fn(i64) -> Option<Probed>,
        orders: bool,
    ) {
        let (app, window) = (self.app, self.window);
        let into = if orders {
            &mut self.order_ids
        } else {
            &mut self.probe
        };
        for p in found {
            if into.contains(&p.id) {
                continue;
            }
            let tz = self
                .zone_cache
                .entry(p.zone)
                .or_insert_with_key(|name| app.zone(name));
            let (zf, zt) = window.of(tz);
            if probed(p.value).is_none_or(|v| probe_may_be_due(r, tz, v, zf, zt)) {
                into.insert(p.id);
            }
        }
    }

    /// Holidays and schedules: the zones where the ritual may fall due, read whole.
    async fn zoned(&mut self, r: &Ritual) -> Result<(), AppError> {
        self.load_zones().await?;
        for z in self.all_zones.iter().flatten() {
            if self.zones.contains(z) {
                continue;
            }
            let tz = self.app.zone(z);
            let (zf, zt) = self.window.of(&tz);
            if zone_may_be_due(&self.engine, r, &tz, zf, zt) {
                self.zones.insert(z.clone());
            }
        }
        Ok(())
    }
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
        let store = &app.store;
        let days = |n: i64| SignedDuration::from_hours(24 * n);
        let window = ZoneWindow {
            from,
            to,
            local_days,
        };
        let mut found = Probing::new(app, engine, window);
        // One customer's plan (`plan --customer`, `history`) probes nothing of the base.
        found.only = only.is_some();
        found.rituals().await?;
        let Probing {
            mut probe,
            zones,
            mut orders_from,
            mut order_ids,
            ..
        } = found;
        if let (Some(id), Some(_)) = (only, orders_from) {
            order_ids.insert(id);
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
        let Some((rows, is_fresh)) = self.next_rows().await? else {
            return Ok(None);
        };
        self.done += rows.len() as u64;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let store = &self.app.store;
        let mut orders = self.orders_of(&rows, is_fresh).await?;
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

    /// The rows of the next chunk, and whether they are the fresh customers; `None` when done.
    async fn next_rows(&mut self) -> Result<Option<(Vec<CustomerRow>, bool)>, AppError> {
        let store = &self.app.store;
        loop {
            if self.fresh_pos < self.fresh.len() {
                let end = (self.fresh_pos + CHUNK as usize).min(self.fresh.len());
                let ids = &self.fresh[self.fresh_pos..end];
                self.fresh_pos = end;
                let rows = store.customers_by_ids(ids).await?;
                self.done += (ids.len() - rows.len()) as u64;
                if rows.is_empty() {
                    continue;
                }
                return Ok(Some((rows, true)));
            }
            if self.zone_pos < self.zones.len() {
                let zone = &self.zones[self.zone_pos];
                let rows = store.customers_in_zone(zone, self.after, CHUNK).await?;
                let Some(last) = rows.last() else {
                    self.zone_pos += 1;
                    self.after = 0;
                    continue;
                };
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
                return Ok(Some((rows, false)));
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
                return Ok(Some((rows, false)));
            }
            return Ok(None);
        }
    }

    /// The orders of a chunk's customers. Only customers with an order an event ritual may
    /// be due for need their orders (custom dates come with the row).
    async fn orders_of(
        &self,
        rows: &[CustomerRow],
        is_fresh: bool,
    ) -> Result<HashMap<i64, Vec<crate::store::OrderRow>>, AppError> {
        let Some(lo) = self.orders_from else {
            return Ok(HashMap::new());
        };
        let with_orders: Vec<i64> = rows
            .iter()
            .filter(|r| {
                (is_fresh || self.order_ids.contains(&r.id))
                    && r.last_order_at.is_some_and(|t| t >= lo)
            })
            .map(|r| r.id)
            .collect();
        if with_orders.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self
            .app
            .store
            .orders_between(&with_orders, lo, self.orders_to)
            .await?)
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
