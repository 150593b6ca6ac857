//! The decision function: given the rituals, one customer's facts, their consent, what the
//! ledger already holds for them and `now`, what happens? Send on a channel at an instant,
//! suppress with a reason, or nothing yet.
//!
//! Pure: no clock, no I/O. The daemon's tick, `ritualist plan`, `preview` and the tests all go
//! through [`Engine::decide`], so a dry run cannot drift from what the daemon really does.
//!
//! - `occur`: when each trigger kind has an occurrence for a customer (yearly dates, holidays,
//!   cron schedules, inactivity steps, orders), with its stable occurrence key;
//! - this file: audience, grace window (`missed`), consent, channels, holdout, frequency caps
//!   with priority arbitration, quiet hours.

mod occur;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::calendar::Calendar;
use crate::config::{AllowedHours, EngineConfig};
use crate::domain::{Channel, Email, Locale, Phone, YearlyDate};
use crate::ritual::{AudienceFacts, DeliverPolicy, Grace, Ritual, Segments};

pub use occur::{Probed, probe_may_be_due, probe_ranges, yearly_month_days, zone_may_be_due};

/// An order, as event rituals and templates see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderFact {
    pub external_id: String,
    pub at: Timestamp,
    /// 1 for the customer's first order, 2 for the second, …
    pub number: i64,
    pub amount_minor: i64,
    pub currency: String,
}

/// What the planner knows about a customer.
#[derive(Debug, Clone)]
pub struct CustomerFacts {
    pub id: i64,
    pub external_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub locale: Locale,
    pub zone: TimeZone,
    pub birthday: Option<YearlyDate>,
    pub signup: Option<YearlyDate>,
    pub custom_dates: BTreeMap<String, YearlyDate>,
    pub order_count: i64,
    pub total_spent_minor: i64,
    pub first_order_at: Option<Timestamp>,
    pub last_order_at: Option<Timestamp>,
    /// Orders event rituals may fire for (the tick loads the ones in its window).
    pub orders: Vec<OrderFact>,
    /// ISO 3166 alpha-2, from the `country` attribute or the locale's region.
    pub country: Option<String>,
    /// The holiday calendar the customer follows.
    pub calendar: String,
    pub preferred_channel: Option<Channel>,
    pub attributes: BTreeMap<String, String>,
}

impl CustomerFacts {
    pub fn contact(&self, channel: Channel) -> Option<String> {
        match channel {
            Channel::Email => self.email.as_ref().map(|e| e.to_string()),
            Channel::Sms => self.phone.as_ref().map(|p| p.to_string()),
        }
    }

    /// A customer with nothing but an id, a locale and a zone (tests, samples).
    pub fn bare(id: i64, external_id: &str, locale: Locale, zone: TimeZone) -> Self {
        CustomerFacts {
            id,
            external_id: external_id.into(),
            first_name: None,
            last_name: None,
            email: None,
            phone: None,
            locale,
            zone,
            birthday: None,
            signup: None,
            custom_dates: BTreeMap::new(),
            order_count: 0,
            total_spent_minor: 0,
            first_order_at: None,
            last_order_at: None,
            orders: Vec::new(),
            country: None,
            calendar: String::new(),
            preferred_channel: None,
            attributes: BTreeMap::new(),
        }
    }

    fn local_date(&self, t: Timestamp) -> Date {
        self.zone.to_datetime(t).date()
    }

    /// The audience view of the customer on local date `on`.
    pub fn audience_facts(&self, on: Date) -> AudienceFacts<'_> {
        let days = |t: Option<Timestamp>| {
            t.map(|t| (on - self.local_date(t)).get_days() as i64)
                .filter(|d| *d >= 0)
        };
        AudienceFacts {
            orders: self.order_count,
            total_spent: self.total_spent_minor as f64 / 100.0,
            days_since_last_order: days(self.last_order_at),
            days_since_signup: self.signup.and_then(|s| {
                let d = Date::new(s.year?, s.month, s.day).ok()?;
                Some((on - d).get_days() as i64).filter(|d| *d >= 0)
            }),
            locale: self.locale.as_str(),
            country: self.country.as_deref(),
            attributes: Some(&self.attributes),
        }
    }
}

/// The scopes a customer opted out of: `all`, `channel:<email|sms>`, `ritual:<name>`,
/// `category:<name>`. A category opt-out covers its sub-categories (`category:holidays`
/// covers `holidays.mothers_day`) and nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consent {
    pub opted_out: BTreeSet<String>,
}

impl Consent {
    pub fn opted_out_of(scopes: &[&str]) -> Self {
        Consent {
            opted_out: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The scope that stops this ritual's occurrence whatever the channel.
    pub fn blocks(&self, ritual: &str, category: &str) -> Option<String> {
        if self.opted_out.is_empty() {
            return None;
        }
        if self.opted_out.contains("all") {
            return Some("all".into());
        }
        let r = format!("ritual:{ritual}");
        if self.opted_out.contains(&r) {
            return Some(r);
        }
        // `holidays.mothers_day`, then `holidays`.
        let mut cat = category;
        loop {
            let s = format!("category:{cat}");
            if self.opted_out.contains(&s) {
                return Some(s);
            }
            match cat.rfind('.') {
                Some(i) => cat = &cat[..i],
                None => return None,
            }
        }
    }

    pub fn blocks_channel(&self, channel: Channel) -> bool {
        !self.opted_out.is_empty() && self.opted_out.contains(&format!("channel:{channel}"))
    }
}

/// A holiday an occurrence celebrates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HolidayRef {
    pub id: String,
    /// In the customer's language.
    pub name: String,
}

/// The occasion a message celebrates: available to templates as `occasion.*`, stored with the
/// ledger row so the message can be rendered when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occasion {
    /// The local date the message is due on.
    pub date: Date,
    /// The year of the occurrence.
    pub year: i16,
    /// Age reached / years since the original date (yearly rituals, when the year is known).
    pub years: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holiday: Option<HolidayRef>,
    /// Days without an order (inactivity) and which step (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive_days: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderFact>,
}

impl Occasion {
    pub fn on(date: Date) -> Self {
        Occasion {
            date,
            year: date.year(),
            years: None,
            holiday: None,
            inactive_days: None,
            step: None,
            order: None,
        }
    }
}

/// One occurrence of a ritual for a customer, before anything is decided about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Index into [`Engine::rituals`].
    pub ritual: usize,
    /// The occurrence part of the ledger key: `2027` (yearly), `mothers_day:2027`,
    /// `2027-06-01T10:00` (schedule), `2026-08-10T14:03:00Z+45d` (inactivity), `order:A-981`.
    pub key: String,
    pub category: String,
    pub occasion: Occasion,
    /// When it is due (before quiet hours), and its local date.
    pub due: Timestamp,
    pub local_date: Date,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Send {
        channel: Channel,
        recipient: String,
        /// Not before this instant (the due time, moved out of quiet hours).
        due_at: Timestamp,
    },
    Suppress {
        channel: Option<Channel>,
        reason: String,
    },
}

/// One decision: the occurrence it is about and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub ritual: String,
    pub customer_id: i64,
    pub occurrence: String,
    pub category: String,
    pub occasion: Occasion,
    /// When the occurrence was due (its nominal time).
    pub due: Timestamp,
    pub outcome: Outcome,
}

impl Decision {
    pub fn channel_key(&self) -> &'static str {
        match &self.outcome {
            Outcome::Send { channel, .. }
            | Outcome::Suppress {
                channel: Some(channel),
                ..
            } => channel.as_str(),
            Outcome::Suppress { channel: None, .. } => "none",
        }
    }
    pub fn is_send(&self) -> bool {
        matches!(self.outcome, Outcome::Send { .. })
    }
}

/// What the ledger already holds for a customer (recent rows), as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub ritual: String,
    pub occurrence: String,
    /// A message (queued, sending or sent), as opposed to a suppression or a failure.
    pub message: bool,
    /// The nominal due instant.
    pub due: Timestamp,
}

impl Recorded {
    pub fn from_decision(d: &Decision) -> Self {
        Recorded {
            ritual: d.ritual.clone(),
            occurrence: d.occurrence.clone(),
            message: d.is_send(),
            due: d.due,
        }
    }
}

/// Reasons a message is not sent (the `reason` column of suppressed rows).
pub mod reason {
    pub const NO_CONTACT: &str = "no_contact";
    pub const HOLDOUT: &str = "holdout";
    pub const MISSED: &str = "missed";
    pub const CAPPED_BY: &str = "capped_by:";
    pub const OPTED_OUT: &str = "opted_out:";
    /// A survey ritual's occurrence when the customer got a survey within
    /// `engine.survey_window_days` (two orders must not mean two surveys).
    pub const RECENT_SURVEY: &str = "recent_survey";
}

/// The rules of one deployment: rituals, segments, calendars and the engine config.
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    pub rituals: &'a [Ritual],
    pub segments: &'a Segments,
    pub calendars: &'a BTreeMap<String, Calendar>,
    pub config: &'a EngineConfig,
}

/// A window of decision: occurrences due in `(from, now]` are decided at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub now: Timestamp,
    /// `true` when the daemon was running before `from`: occurrences in the window that are
    /// past their grace are recorded as `missed`. `false` on a first run (nothing was missed:
    /// there was no daemon), when they are left alone.
    pub catching_up: bool,
    /// Also decide occurrences due in `(earlier, from]` that are not recorded yet, never as
    /// missed: a customer (or order) stored since the last tick, whose occurrences due before
    /// it arrived were never decided.
    pub earlier: Option<Timestamp>,
}

impl Window {
    pub fn new(from: Timestamp, now: Timestamp, catching_up: bool) -> Self {
        Window {
            from,
            now,
            catching_up,
            earlier: None,
        }
    }

    /// The start of everything this window decides.
    pub fn lower(&self) -> Timestamp {
        self.earlier.map_or(self.from, |e| e.min(self.from))
    }
}

impl<'a> Engine<'a> {
    pub fn ritual_index(&self, name: &str) -> Option<usize> {
        self.rituals.iter().position(|r| r.name == name)
    }

    /// Every decision due for `c` in `w`. Occurrences already in `history` are skipped.
    ///
    /// Frequency caps are arbitrated per local day: every candidate occurrence of that day
    /// (including ones due later that day) competes by priority (then due time, then name),
    /// after the messages already recorded, so the outcome does not depend on when ticks run.
    pub fn decide(
        &self,
        c: &CustomerFacts,
        consent: &Consent,
        history: &[Recorded],
        w: Window,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        if w.now <= w.from {
            return out;
        }
        // Whole local days around the window, so a day's arbitration sees all of it.
        let first_day = c.local_date(w.lower());
        let last_day = c.local_date(w.now);
        let span_from = day_start(first_day, &c.zone) - SignedDuration::from_secs(1);
        let span_to = day_start(last_day.tomorrow().unwrap_or(last_day), &c.zone);
        let mut occs = Vec::new();
        for (i, r) in self.rituals.iter().enumerate() {
            occur::occurrences(self, i, r, c, span_from, span_to, &mut occs);
        }
        if occs.is_empty() {
            return out;
        }
        let recorded: BTreeSet<(&str, &str)> = history
            .iter()
            .map(|h| (h.ritual.as_str(), h.occurrence.as_str()))
            .collect();
        // Not yet recorded, and not due before the window (a previous tick decided those).
        let lower = w.lower();
        occs.retain(|o| {
            o.due > lower
                && !recorded.contains(&(self.rituals[o.ritual].name.as_str(), o.key.as_str()))
        });
        occs.sort_by(|a, b| a.local_date.cmp(&b.local_date).then(a.due.cmp(&b.due)));
        // Messages accepted in this call count for later days' caps.
        let mut accepted: Vec<Recorded> = Vec::new();
        let mut i = 0;
        while i < occs.len() {
            let day = occs[i].local_date;
            let mut j = i;
            while j < occs.len() && occs[j].local_date == day {
                j += 1;
            }
            self.decide_day(c, consent, history, &mut accepted, &occs[i..j], w, &mut out);
            i = j;
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_day(
        &self,
        c: &CustomerFacts,
        consent: &Consent,
        history: &[Recorded],
        accepted: &mut Vec<Recorded>,
        day: &[Occurrence],
        w: Window,
        out: &mut Vec<Decision>,
    ) {
        // First pass: everything but the caps.
        struct Candidate<'o> {
            occ: &'o Occurrence,
            channels: Vec<Channel>,
        }
        let mut capped: Vec<Candidate> = Vec::new();
        for o in day {
            let r = &self.rituals[o.ritual];
            let emit = o.due > w.lower() && o.due <= w.now;
            let decision = |outcome| Decision {
                ritual: r.name.clone(),
                customer_id: c.id,
                occurrence: o.key.clone(),
                category: o.category.clone(),
                occasion: o.occasion.clone(),
                due: o.due,
                outcome,
            };
            let suppress = |reason: String| {
                decision(Outcome::Suppress {
                    channel: None,
                    reason,
                })
            };
            if !r
                .audience
                .matches(self.segments, &c.audience_facts(o.local_date))
            {
                continue;
            }
            if emit && w.now > grace_deadline(r, o, &c.zone) {
                if w.catching_up && o.due > w.from {
                    out.push(suppress(reason::MISSED.into()));
                }
                continue;
            }
            if let Some(scope) = consent.blocks(&r.name, &o.category) {
                if emit {
                    out.push(suppress(format!("{}{scope}", reason::OPTED_OUT)));
                }
                continue;
            }
            let reachable: Vec<Channel> = r
                .channels
                .iter()
                .copied()
                .filter(|ch| c.contact(*ch).is_some() && !consent.blocks_channel(*ch))
                .collect();
            if reachable.is_empty() {
                if emit {
                    let blocked = r
                        .channels
                        .iter()
                        .find(|ch| c.contact(**ch).is_some() && consent.blocks_channel(**ch));
                    out.push(suppress(match blocked {
                        Some(ch) => format!("{}channel:{ch}", reason::OPTED_OUT),
                        None => reason::NO_CONTACT.into(),
                    }));
                }
                continue;
            }
            if in_holdout(&r.name, &c.external_id, r.holdout_percent) {
                if emit {
                    out.push(suppress(reason::HOLDOUT.into()));
                }
                continue;
            }
            let channels = match r.deliver {
                DeliverPolicy::All => reachable,
                DeliverPolicy::Preferred => vec![
                    c.preferred_channel
                        .filter(|p| reachable.contains(p))
                        .unwrap_or(reachable[0]),
                ],
            };
            capped.push(Candidate { occ: o, channels });
        }
        // Second pass: caps, by priority.
        capped.sort_by(|a, b| {
            let (ra, rb) = (&self.rituals[a.occ.ritual], &self.rituals[b.occ.ritual]);
            rb.priority
                .cmp(&ra.priority)
                .then(a.occ.due.cmp(&b.occ.due))
                .then(ra.name.cmp(&rb.name))
                .then(a.occ.key.cmp(&b.occ.key))
        });
        for cand in capped {
            let o = cand.occ;
            let r = &self.rituals[o.ritual];
            let emit = o.due > w.lower() && o.due <= w.now;
            let blocked_by = if r.capped {
                self.cap_blocker(c, history, accepted, o.local_date)
            } else {
                None
            };
            let decision = |outcome| Decision {
                ritual: r.name.clone(),
                customer_id: c.id,
                occurrence: o.key.clone(),
                category: o.category.clone(),
                occasion: o.occasion.clone(),
                due: o.due,
                outcome,
            };
            if r.survey.is_some() && self.recent_survey(history, accepted, o.due) {
                if emit {
                    out.push(decision(Outcome::Suppress {
                        channel: None,
                        reason: reason::RECENT_SURVEY.into(),
                    }));
                }
                continue;
            }
            if let Some(winner) = blocked_by {
                if emit {
                    out.push(decision(Outcome::Suppress {
                        channel: None,
                        reason: format!("{}{winner}", reason::CAPPED_BY),
                    }));
                }
                continue;
            }
            accepted.push(Recorded {
                ritual: r.name.clone(),
                occurrence: o.key.clone(),
                message: true,
                due: o.due,
            });
            if !emit {
                continue;
            }
            for channel in cand.channels {
                let recipient = c.contact(channel).expect("reachable channels have contact");
                let due_at =
                    send_instant(o.due, w.now, &c.zone, self.config.allowed_hours(channel));
                out.push(decision(Outcome::Send {
                    channel,
                    recipient,
                    due_at,
                }));
            }
        }
    }

    /// Whether a survey message (of any survey ritual) is recorded or accepted within
    /// `survey_window_days` of `due`, either side: one survey per customer per window.
    fn recent_survey(&self, history: &[Recorded], accepted: &[Recorded], due: Timestamp) -> bool {
        let days = self.config.survey_window_days;
        if days == 0 {
            return false;
        }
        let window = SignedDuration::from_hours(24 * days as i64);
        history.iter().chain(accepted).any(|h| {
            h.message
                && h.due.duration_since(due).abs() < window
                && self
                    .rituals
                    .iter()
                    .any(|r| r.name == h.ritual && r.survey.is_some())
        })
    }

    /// The ritual whose message fills a cap on local day `day`, if one is full.
    fn cap_blocker(
        &self,
        c: &CustomerFacts,
        history: &[Recorded],
        accepted: &[Recorded],
        day: Date,
    ) -> Option<String> {
        for cap in &self.config.frequency_caps {
            let first = day.checked_sub((cap.days as i64 - 1).days()).unwrap_or(day);
            let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
            let mut counted: Vec<&Recorded> = Vec::new();
            for h in history.iter().chain(accepted) {
                if !h.message {
                    continue;
                }
                let d = c.local_date(h.due);
                if d < first || d > day {
                    continue;
                }
                // Uncapped (transactional) rituals neither count nor get capped.
                if self.rituals.iter().any(|r| r.name == h.ritual && !r.capped) {
                    continue;
                }
                if seen.insert((h.ritual.as_str(), h.occurrence.as_str())) {
                    counted.push(h);
                }
            }
            if counted.len() as u32 >= cap.max {
                let priority = |name: &str| {
                    self.rituals
                        .iter()
                        .find(|r| r.name == name)
                        .map_or(i32::MIN, |r| r.priority)
                };
                let winner = counted
                    .iter()
                    .max_by(|a, b| {
                        priority(&a.ritual)
                            .cmp(&priority(&b.ritual))
                            .then(a.due.cmp(&b.due))
                            .then(b.ritual.cmp(&a.ritual))
                    })
                    .expect("a full cap counts something");
                return Some(winner.ritual.clone());
            }
        }
        None
    }

    /// What `plan` shows: every decision for occurrences due in `(from, to]`, each taken at its
    /// due instant, as a daemon ticking through that time would take it. Nothing is written;
    /// the decisions taken so far stand in for the ledger.
    pub fn plan(
        &self,
        c: &CustomerFacts,
        consent: &Consent,
        history: &[Recorded],
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Decision> {
        let mut occs = Vec::new();
        for (i, r) in self.rituals.iter().enumerate() {
            occur::occurrences(self, i, r, c, from, to, &mut occs);
        }
        let mut instants: Vec<Timestamp> = occs.iter().map(|o| o.due).collect();
        instants.sort();
        instants.dedup();
        let mut hist = history.to_vec();
        let mut out = Vec::new();
        let mut prev = from;
        for t in instants {
            let w = Window::new(prev, t, false);
            let ds = self.decide(c, consent, &hist, w);
            hist.extend(ds.iter().map(Recorded::from_decision));
            out.extend(ds);
            prev = t;
        }
        out
    }

    /// The occurrences of one ritual for `c` due in `(from, to]` (preview, check).
    pub fn occurrences_of(
        &self,
        ritual: usize,
        c: &CustomerFacts,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<Occurrence> {
        let mut out = Vec::new();
        occur::occurrences(self, ritual, &self.rituals[ritual], c, from, to, &mut out);
        out
    }
}

/// Midnight (or the first instant) of a local date.
pub fn day_start(d: Date, zone: &TimeZone) -> Timestamp {
    d.to_datetime(jiff::civil::Time::midnight())
        .to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// The last instant an occurrence may still be sent.
fn grace_deadline(r: &Ritual, o: &Occurrence, zone: &TimeZone) -> Timestamp {
    match r.grace {
        Grace::SameDay => {
            let next = o.local_date.tomorrow().unwrap_or(o.local_date);
            (day_start(next, zone) - SignedDuration::from_secs(1)).max(o.due)
        }
        Grace::For(d) => o.due + d,
    }
}

/// Stable membership of a ritual's holdout group: FNV-1a of ritual and customer, in basis
/// points. The same customer stays in (or out of) a ritual's holdout across occurrences.
pub fn in_holdout(ritual: &str, external_id: &str, percent: f64) -> bool {
    if percent <= 0.0 {
        return false;
    }
    let mut h: u64 = 0xcbf29ce484222325;
    for b in ritual.bytes().chain([0u8]).chain(external_id.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    // Mix the high bits down: FNV's low bits are weak for short inputs.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    ((h % 10_000) as f64) < percent * 100.0
}

/// Whether local time-of-day `t` is inside the allowed hours.
fn allowed(h: AllowedHours, t: jiff::civil::Time) -> bool {
    if h.from < h.until {
        t >= h.from && t < h.until
    } else {
        t >= h.from || t < h.until
    }
}

/// The first instant at or after `t` inside the allowed hours.
pub fn next_allowed(t: Timestamp, zone: &TimeZone, hours: Option<AllowedHours>) -> Timestamp {
    let Some(h) = hours else { return t };
    let local = zone.to_datetime(t);
    if allowed(h, local.time()) {
        return t;
    }
    let mut date = local.date();
    if local.time() >= h.from {
        date = date.tomorrow().unwrap_or(date);
    }
    let start: DateTime = date.to_datetime(h.from);
    start
        .to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .unwrap_or(t)
}

/// When a message due at `due` may go, decided at `now`: the due time moved out of quiet
/// hours; a late message whose time has passed goes now, unless now is quiet too.
pub fn send_instant(
    due: Timestamp,
    now: Timestamp,
    zone: &TimeZone,
    hours: Option<AllowedHours>,
) -> Timestamp {
    let s = next_allowed(due, zone, hours);
    if s >= now {
        return s;
    }
    let n = next_allowed(now, zone, hours);
    if n == now { s } else { n }
}
