//! When a ritual has an occurrence for a customer, and its stable key.
//!
//! Every function takes the half-open window `(from, to]` of due instants it reports; the
//! caller decides what the window means (a tick, a day of `plan`).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::{CustomerFacts, Engine, HolidayRef, Occasion, Occurrence};
use crate::domain::{Feb29Policy, YearlyDate};
use crate::ritual::{CronSchedule, Ritual, Trigger, YearlyField};

/// `date` at the ritual's send time in `zone` (a time in a DST gap moves to the end of the
/// gap; in a fold, the first of the two instants).
fn at_send_time(r: &Ritual, date: Date, zone: &TimeZone) -> Option<Timestamp> {
    date.to_datetime(r.send_time)
        .to_zoned(zone.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// The local dates whose occurrences could be due in `(from, to]` for any send time (a day
/// either side).
fn dates(c: &CustomerFacts, from: Timestamp, to: Timestamp) -> impl Iterator<Item = Date> {
    let first = c.local_date(from).yesterday().ok();
    let last = c.local_date(to).tomorrow().ok();
    let mut d = first;
    std::iter::from_fn(move || {
        let cur = d?;
        if last.is_some_and(|l| cur > l) {
            return None;
        }
        d = cur.tomorrow().ok();
        Some(cur)
    })
}

fn yearly_value(c: &CustomerFacts, field: &YearlyField) -> Option<YearlyDate> {
    match field {
        YearlyField::Birthday => c.birthday,
        YearlyField::Signup => c.signup,
        YearlyField::Custom(name) => c.custom_dates.get(name).copied(),
        YearlyField::FirstPurchase => {
            let d = c.local_date(c.first_order_at?);
            YearlyDate::new(Some(d.year()), d.month(), d.day()).ok()
        }
    }
}

/// The occurrences of ritual `r` (index `idx` in the engine) for customer `c` due in
/// `(from, to]`, appended to `out`.
pub(super) fn occurrences(
    engine: &Engine,
    idx: usize,
    r: &Ritual,
    c: &CustomerFacts,
    from: Timestamp,
    to: Timestamp,
    out: &mut Vec<Occurrence>,
) {
    let mut w = Window {
        idx,
        r,
        c,
        from,
        to,
        out,
    };
    match &r.trigger {
        Trigger::Yearly {
            date: field,
            offset_days,
            milestones,
            feb29,
        } => w.yearly(field, *offset_days, milestones.as_deref(), *feb29),
        Trigger::Holiday { ids, offset_days } => w.holiday(engine, ids, *offset_days),
        Trigger::Schedule { cron } => w.schedule(cron),
        Trigger::Inactivity { days } => w.inactivity(days),
        Trigger::Order {
            delay_days,
            every_nth,
        } => w.order(*delay_days, *every_nth),
    }
}

/// One ritual and one customer in a window of due instants, collecting occurrences.
struct Window<'a> {
    idx: usize,
    r: &'a Ritual,
    c: &'a CustomerFacts,
    from: Timestamp,
    to: Timestamp,
    out: &'a mut Vec<Occurrence>,
}

impl Window<'_> {
    fn contains(&self, t: Timestamp) -> bool {
        t > self.from && t <= self.to
    }

    fn push(&mut self, key: String, category: String, occasion: Occasion, due: Timestamp) {
        self.out.push(Occurrence {
            ritual: self.idx,
            key,
            category,
            local_date: self.c.local_date(due),
            occasion,
            due,
        })
    }

    fn yearly(
        &mut self,
        field: &YearlyField,
        offset_days: i32,
        milestones: Option<&[i16]>,
        feb29: Feb29Policy,
    ) {
        let (r, c) = (self.r, self.c);
        let Some(v) = yearly_value(c, field) else {
            return;
        };
        for date in dates(c, self.from, self.to) {
            let Ok(anniversary) = date.checked_sub((offset_days as i64).days()) else {
                continue;
            };
            if v.in_year(anniversary.year(), feb29) != Some(anniversary) {
                continue;
            }
            // The original day itself (and any day before it) is not an anniversary.
            if v.year.is_some_and(|y| anniversary.year() <= y) {
                continue;
            }
            let years = v.years_at(anniversary.year());
            if let Some(m) = milestones
                && !years.is_some_and(|y| m.contains(&y))
            {
                continue;
            }
            let Some(due) = at_send_time(r, date, &c.zone) else {
                continue;
            };
            if self.contains(due) {
                let mut occasion = Occasion::on(date);
                occasion.year = anniversary.year();
                occasion.years = years;
                self.push(
                    anniversary.year().to_string(),
                    r.category_for(None),
                    occasion,
                    due,
                );
            }
        }
    }

    fn holiday(&mut self, engine: &Engine, ids: &[String], offset_days: i32) {
        let (r, c) = (self.r, self.c);
        let Some(cal) = engine.calendars.get(&c.calendar) else {
            return;
        };
        for date in dates(c, self.from, self.to) {
            let Ok(day) = date.checked_sub((offset_days as i64).days()) else {
                continue;
            };
            for id in ids {
                let Some(h) = cal.holiday(id) else { continue };
                if h.date_in(day.year()) != Some(day) {
                    continue;
                }
                let Some(due) = at_send_time(r, date, &c.zone) else {
                    continue;
                };
                if self.contains(due) {
                    let mut occasion = Occasion::on(date);
                    occasion.year = day.year();
                    occasion.holiday = Some(HolidayRef {
                        id: id.clone(),
                        name: h.name(c.locale.as_str()).to_string(),
                    });
                    self.push(
                        format!("{id}:{}", day.year()),
                        r.category_for(Some(id)),
                        occasion,
                        due,
                    );
                }
            }
        }
    }

    fn schedule(&mut self, cron: &CronSchedule) {
        let c = self.c;
        for date in dates(c, self.from, self.to) {
            for (wall, due) in cron.occurrences_on(date, &self.c.zone) {
                if self.contains(due) {
                    self.push(
                        wall.strftime("%Y-%m-%dT%H:%M").to_string(),
                        self.r.category_for(None),
                        Occasion::on(date),
                        due,
                    );
                }
            }
        }
    }

    fn inactivity(&mut self, days: &[i32]) {
        let (r, c) = (self.r, self.c);
        let Some(last) = c.last_order_at else { return };
        let last_day = c.local_date(last);
        for (step, n) in days.iter().enumerate() {
            let Ok(date) = last_day.checked_add((*n as i64).days()) else {
                continue;
            };
            let Some(due) = at_send_time(r, date, &c.zone) else {
                continue;
            };
            if self.contains(due) {
                let mut occasion = Occasion::on(date);
                occasion.inactive_days = Some(*n);
                occasion.step = Some(step as u32 + 1);
                self.push(format!("{last}+{n}d"), r.category_for(None), occasion, due);
            }
        }
    }

    fn order(&mut self, delay_days: i32, every_nth: u32) {
        let (r, c) = (self.r, self.c);
        for o in &c.orders {
            if o.number < 1 || o.number % every_nth as i64 != 0 {
                continue;
            }
            let (date, due) = if delay_days == 0 {
                (c.local_date(o.at), o.at)
            } else {
                let Ok(date) = c.local_date(o.at).checked_add((delay_days as i64).days()) else {
                    continue;
                };
                let Some(due) = at_send_time(r, date, &c.zone) else {
                    continue;
                };
                (date, due)
            };
            if self.contains(due) {
                let mut occasion = Occasion::on(date);
                occasion.order = Some(o.clone());
                self.push(
                    format!("order:{}", o.external_id),
                    r.category_for(None),
                    occasion,
                    due,
                );
            }
        }
    }
}

/// The `month * 100 + day` values of the yearly dates whose occurrence of ritual `r` is due
/// in `(from, to]` for a customer in `zone` (Feb 29 included when a non-leap year celebrates
/// it on Feb 28 or Mar 1). Empty for other triggers.
pub fn yearly_month_days(r: &Ritual, zone: &TimeZone, from: Timestamp, to: Timestamp) -> Vec<i32> {
    let Trigger::Yearly { offset_days, .. } = &r.trigger else {
        return Vec::new();
    };
    let local = |t: Timestamp| zone.to_datetime(t).date();
    let mut out = Vec::new();
    let (Ok(first), Ok(last)) = (local(from).yesterday(), local(to).tomorrow()) else {
        return out;
    };
    let mut date = first;
    while date <= last {
        if let Ok(a) = date.checked_sub((*offset_days as i64).days())
            && at_send_time(r, date, zone).is_some_and(|t| t > from && t <= to)
        {
            out.push(a.month() as i32 * 100 + a.day() as i32);
            if !a.in_leap_year()
                && ((a.month() == 2 && a.day() == 28) || (a.month() == 3 && a.day() == 1))
            {
                out.push(229);
            }
        }
        if out.len() >= 366 {
            break;
        }
        match date.tomorrow() {
            Ok(n) => date = n,
            Err(_) => break,
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The instants an inactivity ritual's last order (one range per step) or an order
/// ritual's order must fall in for an occurrence to be due in `(from, to]`: the order itself
/// for `delay_days: 0`; else the local date of the order plus N days at the send time, which
/// is within N days ± 26 hours of the order whatever the zone and DST. The store probes its
/// order-time indexes with these.
pub fn probe_ranges(r: &Ritual, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let days = |n: i64| jiff::SignedDuration::from_hours(24 * n);
    let slack = jiff::SignedDuration::from_hours(26);
    match &r.trigger {
        Trigger::Inactivity { days: steps } => steps
            .iter()
            .map(|n| (from - days(*n as i64) - slack, to - days(*n as i64) + slack))
            .collect(),
        Trigger::Order { delay_days: 0, .. } => vec![(from, to)],
        Trigger::Order { delay_days, .. } => vec![(
            from - days(*delay_days as i64) - slack,
            to - days(*delay_days as i64) + slack,
        )],
        _ => Vec::new(),
    }
}

/// What an index probe found about a customer, for [`probe_may_be_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probed {
    /// The customer's last order.
    LastOrder(Timestamp),
    /// One of the customer's orders.
    Order(Timestamp),
}

/// Whether ritual `r` can have an occurrence due in `(from, to]` for a customer in `zone`
/// of whom an order-time probe found `probed` (yearly dates: [`yearly_month_days`]). The
/// tick keeps only such customers of the
/// (deliberately wide) probes: a one-minute tick then reads the few customers due in that
/// minute, not everyone whose date is near. Never false when [`occurrences`] could find
/// one (audience, milestones and Feb-29 policy are left to the engine).
pub fn probe_may_be_due(
    r: &Ritual,
    zone: &TimeZone,
    probed: Probed,
    from: Timestamp,
    to: Timestamp,
) -> bool {
    let in_window = |t: Option<Timestamp>| t.is_some_and(|t| t > from && t <= to);
    let local = |t: Timestamp| zone.to_datetime(t).date();
    match (&r.trigger, probed) {
        (Trigger::Inactivity { days }, Probed::LastOrder(last)) => {
            let day = local(last);
            days.iter().any(|n| {
                day.checked_add((*n as i64).days())
                    .is_ok_and(|d| in_window(at_send_time(r, d, zone)))
            })
        }
        (Trigger::Order { delay_days, .. }, Probed::Order(at)) => {
            if *delay_days == 0 {
                in_window(Some(at))
            } else {
                local(at)
                    .checked_add((*delay_days as i64).days())
                    .is_ok_and(|d| in_window(at_send_time(r, d, zone)))
            }
        }
        // A probe of another kind says nothing about this ritual: keep the customer.
        _ => true,
    }
}

/// Whether a holiday or schedule ritual can have an occurrence due in `(from, to]` for a
/// customer in `zone` under any calendar: the tick reads only the customers of such zones.
pub fn zone_may_be_due(
    engine: &Engine,
    r: &Ritual,
    zone: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> bool {
    let first = zone.to_datetime(from).date();
    let last = zone.to_datetime(to).date();
    let mut date = first;
    loop {
        match &r.trigger {
            Trigger::Holiday { ids, offset_days } => {
                if let Ok(day) = date.checked_sub((*offset_days as i64).days()) {
                    let falls = engine.calendars.values().any(|cal| {
                        ids.iter().any(|id| {
                            cal.holiday(id)
                                .is_some_and(|h| h.date_in(day.year()) == Some(day))
                        })
                    });
                    if falls && at_send_time(r, date, zone).is_some_and(|t| t > from && t <= to) {
                        return true;
                    }
                }
            }
            Trigger::Schedule { cron } => {
                if cron
                    .occurrences_on(date, zone)
                    .iter()
                    .any(|(_, t)| *t > from && *t <= to)
                {
                    return true;
                }
            }
            _ => return false,
        }
        if date >= last {
            return false;
        }
        match date.tomorrow() {
            Ok(n) => date = n,
            Err(_) => return false,
        }
    }
}
