//! Recurring schedules written the way marketers read crontab: `0 10 1 * *`.
//!
//! This module owns the 5-field cron dialect of ritualist and its evaluation in a customer's
//! time zone. It is pure: every function takes the instant or the date it works on, and nothing
//! here reads the clock or does I/O.
//!
//! Why not the `cron` crate: it wants 6–7 fields with seconds, counts day-of-week 1 = Sunday (so
//! `1-5` means Sunday–Thursday), ANDs day-of-month with day-of-week, and on DST it skips the gap
//! and fires twice in the fold. Here:
//!
//! - **5 fields**: `minute hour day-of-month month day-of-week`; `*`, numbers, ranges `a-b`, lists
//!   `a,b,c`, steps `*/n` and `a-b/n`; months by number or name (`jan`…`dec`).
//! - **Weekdays by name only** (`mon`…`sun`, `mon-fri`, `sat,sun`): a numeric weekday is
//!   rejected because dialects disagree on what `1` means.
//! - **Day-of-month OR day-of-week** when both are restricted (classic Vixie cron): see
//!   [`CronSchedule`].
//! - **Wall-clock time** in the customer's zone, with a DST policy: see [`CronSchedule::next_after`].

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// How far [`CronSchedule::next_after`] looks ahead before answering `None`. Eight years, so that
/// `0 0 29 feb *` still finds its next run across a non-leap century year (2096 → 2104).
const HORIZON_YEARS: i16 = 8;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
/// Monday first, matching [`jiff::civil::Weekday::to_monday_one_offset`] (mon = 1 … sun = 7).
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const FIELD_COUNT_HINT: &str =
    "5 fields: minute hour day month weekday, e.g. `0 10 1 * *` = the 1st of each month at 10:00";
const NUMERIC_WEEKDAY_HINT: &str =
    "write weekday names (mon-fri): numbers are ambiguous (some cron dialects count 1 = Sunday)";

/// One of the five fields of a schedule, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    /// Smallest and largest value of the field.
    fn bounds(self) -> (u8, u8) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (1, 7),
        }
    }

    fn range_hint(self) -> String {
        match self {
            Field::Minute => "minutes are 0-59".into(),
            Field::Hour => "hours are 0-23".into(),
            Field::DayOfMonth => "days of the month are 1-31".into(),
            Field::Month => format!("months are 1-12 or {}", MONTHS.join(", ")),
            Field::DayOfWeek => format!("weekdays are {}", WEEKDAYS.join(", ")),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        })
    }
}

/// Why a schedule expression was rejected: the field, the offending token and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not exactly five fields (e.g. a 6-field expression with seconds).
    #[error("schedule `{expr}` has {found} fields; hint: {hint}")]
    FieldCount {
        expr: String,
        found: usize,
        hint: String,
    },
    /// One field is malformed.
    #[error("{field} field: `{token}` {problem}; hint: {hint}")]
    Field {
        field: Field,
        /// The offending comma-separated item of the field.
        token: String,
        problem: &'static str,
        hint: String,
    },
}

impl ScheduleError {
    /// The field at fault, `None` when the number of fields is wrong.
    pub fn field(&self) -> Option<Field> {
        match self {
            ScheduleError::FieldCount { .. } => None,
            ScheduleError::Field { field, .. } => Some(*field),
        }
    }

    /// The offending token (the whole expression when the number of fields is wrong).
    pub fn token(&self) -> &str {
        match self {
            ScheduleError::FieldCount { expr, .. } => expr,
            ScheduleError::Field { token, .. } => token,
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> &str {
        match self {
            ScheduleError::FieldCount { hint, .. } | ScheduleError::Field { hint, .. } => hint,
        }
    }
}

/// A recurring schedule: a parsed 5-field expression `minute hour day-of-month month
/// day-of-week`, evaluated in the customer's local wall-clock time.
///
/// **Day matching (Vixie cron semantics).** A day matches when its month matches and:
/// - if day-of-month or day-of-week is `*`, the other one matches (`0 9 * * mon` = Mondays,
///   `0 10 1 * *` = the 1st);
/// - if **both** are restricted, **either** matches: `0 10 13 * fri` runs on every 13th *and*
///   on every Friday, as crontab users expect. Only a bare `*` counts as unrestricted
///   (unlike Vixie, `*/2` is a restriction; `1-31` is too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    /// The expression, fields separated by single spaces.
    expr: String,
    /// Bit `n` set = value `n` matches.
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    /// Bit 1 = Monday … bit 7 = Sunday.
    weekdays: u64,
    dom_star: bool,
    dow_star: bool,
}

impl CronSchedule {
    /// Parses a 5-field expression; see the module docs for the syntax.
    pub fn parse(expr: &str) -> Result<Self, ScheduleError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            let mut hint = FIELD_COUNT_HINT.to_string();
            if fields.len() > 5 {
                hint.push_str(" (no seconds or year field)");
            }
            return Err(ScheduleError::FieldCount {
                expr: expr.trim().to_string(),
                found: fields.len(),
                hint,
            });
        }
        let mut sets = [0u64; 5];
        for ((set, field), text) in sets.iter_mut().zip(Field::ALL).zip(&fields) {
            *set = parse_field(field, text)?;
        }
        let [minutes, hours, days, months, weekdays] = sets;
        Ok(CronSchedule {
            expr: fields.join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays,
            dom_star: fields[2] == "*",
            dow_star: fields[4] == "*",
        })
    }

    /// Whether the schedule runs on this local date at all (month, then day-of-month /
    /// day-of-week with the OR rule described on [`CronSchedule`]).
    pub fn matches_date(&self, date: Date) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let dom = has(self.days, date.day());
        let dow = has(self.weekdays, date.weekday().to_monday_one_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Whether a local wall-clock time matches (seconds are ignored).
    pub fn matches(&self, wall: DateTime) -> bool {
        has(self.minutes, wall.minute())
            && has(self.hours, wall.hour())
            && self.matches_date(wall.date())
    }

    /// The first instant strictly after `after` at which the schedule fires in `zone`.
    ///
    /// Wall-clock semantics with this DST policy:
    /// - a matching wall time inside a **gap** (spring forward) fires when the gap ends: with
    ///   Europe/Bucharest's 03:00→04:00 jump, `30 3 * * *` fires at 04:00 local that day;
    /// - a matching wall time that occurs twice in a **fold** (fall back) fires **once**, at its
    ///   first occurrence (the earlier, summer-time offset);
    /// - a gap never makes the schedule fire twice: when several wall times resolve to the same
    ///   instant (03:30 → 04:00 and 04:00 itself), that instant is one firing.
    ///
    /// Walks day by day and only tries the matching hours and minutes of matching days.
    /// Returns `None` when nothing matches within eight years (e.g. `0 0 30 feb *`).
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let today = zone.to_datetime(after).date();
        // Start a day early: a wall time in a gap that swallows midnight resolves to the next day.
        let mut date = today.yesterday().unwrap_or(today);
        let last = today.checked_add(HORIZON_YEARS.years()).ok()?;
        while date <= last {
            if !has(self.months, date.month()) {
                date = date.first_of_month().checked_add(1.month()).ok()?;
                continue;
            }
            if self.matches_date(date) {
                // Resolved instants never decrease as the wall time grows, so the first one
                // after `after` is the earliest.
                let next = self
                    .wall_times(date)
                    .filter_map(|wall| resolve(wall, zone))
                    .find(|ts| *ts > after);
                if next.is_some() {
                    return next;
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Every firing scheduled for the local date `date`, in order, as (local wall-clock time
    /// at which it fires, instant).
    ///
    /// The DST policy of [`CronSchedule::next_after`] applies, so the wall time is the one the
    /// clock shows when the message fires: 04:00, not the nonexistent 03:30, on a
    /// spring-forward day. Wall times resolving to the same instant are reported once.
    pub fn occurrences_on(&self, date: Date, zone: &TimeZone) -> Vec<(DateTime, Timestamp)> {
        if !self.matches_date(date) {
            return Vec::new();
        }
        let mut stamps: Vec<Timestamp> = self
            .wall_times(date)
            .filter_map(|wall| resolve(wall, zone))
            .collect();
        stamps.sort();
        stamps.dedup();
        stamps
            .into_iter()
            .map(|ts| (zone.to_datetime(ts), ts))
            .collect()
    }

    /// A short English description for `check` and `plan` output, e.g. "at 10:00 on day 1 of
    /// every month" or "at 09:00 on mon, wed, fri".
    pub fn describe(&self) -> String {
        format!("{} {}", self.describe_time(), self.describe_days())
    }

    /// The matching wall times of a date, in increasing order.
    fn wall_times(&self, date: Date) -> impl Iterator<Item = DateTime> + '_ {
        members(self.hours)
            .flat_map(move |h| members(self.minutes).map(move |m| date.at(h as i8, m as i8, 0, 0)))
    }

    fn describe_time(&self) -> String {
        let (all_minutes, all_hours) = (
            self.minutes == full(Field::Minute),
            self.hours == full(Field::Hour),
        );
        let minutes: Vec<u8> = members(self.minutes).collect();
        let hours: Vec<u8> = members(self.hours).collect();
        let minute_list = render_numbers(self.minutes);
        let hour_list = render_numbers(self.hours);
        let s = |n: usize| if n == 1 { "" } else { "s" };
        match (all_minutes, all_hours) {
            (true, true) => "every minute".into(),
            (true, false) => format!("every minute of hour{} {hour_list}", s(hours.len())),
            (false, true) => match step_from_zero(&minutes, 59) {
                Some(step) => format!("every {step} minutes"),
                None => format!("at minute{} {minute_list} of every hour", s(minutes.len())),
            },
            (false, false) if minutes.len() * hours.len() <= 6 => {
                let times: Vec<String> = hours
                    .iter()
                    .flat_map(|h| minutes.iter().map(move |m| format!("{h:02}:{m:02}")))
                    .collect();
                format!("at {}", times.join(", "))
            }
            (false, false) => format!(
                "at minute{} {minute_list} of hour{} {hour_list}",
                s(minutes.len()),
                s(hours.len())
            ),
        }
    }

    fn describe_days(&self) -> String {
        let all_months = self.months == full(Field::Month);
        let months = render_names(self.months, &MONTHS);
        let weekdays = render_names(self.weekdays, &WEEKDAYS);
        let day_count = self.days.count_ones() as usize;
        let days = format!(
            "day{} {}",
            if day_count == 1 { "" } else { "s" },
            render_numbers(self.days)
        );
        let in_months = if all_months {
            String::new()
        } else {
            format!(" in {months}")
        };
        match (self.dom_star, self.dow_star) {
            (true, true) => format!("every day{in_months}"),
            (false, true) if all_months => format!("on {days} of every month"),
            (false, true) => format!("on {days} of {months}"),
            (true, false) => format!("on {weekdays}{in_months}"),
            (false, false) => format!("on {days} of the month or any {weekdays}{in_months}"),
        }
    }
}

impl FromStr for CronSchedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronSchedule::parse(s)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// The instant at which a matching local wall time fires (see [`CronSchedule::next_after`]).
fn resolve(wall: DateTime, zone: &TimeZone) -> Option<Timestamp> {
    match zone.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(wall).ok(),
        // `before` is the offset in force before the clocks went back: the first occurrence.
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(wall).ok(),
        // Read with the offset after the jump, the wall time lands just before the transition,
        // so the next transition is the instant the gap ends.
        AmbiguousOffset::Gap { after, .. } => {
            let lower = after.to_timestamp(wall).ok()?;
            zone.following(lower).next().map(|t| t.timestamp())
        }
    }
}

fn has(set: u64, value: i8) -> bool {
    (0..64).contains(&value) && set & (1 << value) != 0
}

/// The values of a set, in increasing order.
fn members(set: u64) -> impl Iterator<Item = u8> {
    (0u8..64).filter(move |v| set & (1 << v) != 0)
}

fn full(field: Field) -> u64 {
    let (lo, hi) = field.bounds();
    (lo..=hi).fold(0, |set, v| set | 1 << v)
}

/// `Some(n)` when the values are exactly 0, n, 2n, … up to `max` (with n > 1).
fn step_from_zero(values: &[u8], max: u8) -> Option<u8> {
    let step = *values.get(1)?;
    let expected: Vec<u8> = (0..=max).step_by(step as usize).collect();
    (step > 1 && values == expected.as_slice()).then_some(step)
}

/// Runs of three or more consecutive values, as (first, last); shorter runs value by value.
fn runs(set: u64) -> Vec<(u8, u8)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for v in members(set) {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == v => *last = v,
            _ => out.push((v, v)),
        }
    }
    out.into_iter()
        .flat_map(|(a, b)| {
            if b - a >= 2 {
                vec![(a, b)]
            } else {
                (a..=b).map(|v| (v, v)).collect()
            }
        })
        .collect()
}

fn render_runs(set: u64, name: impl Fn(u8) -> String) -> String {
    runs(set)
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                name(a)
            } else {
                format!("{}-{}", name(a), name(b))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_numbers(set: u64) -> String {
    render_runs(set, |v| v.to_string())
}

/// For 1-based name tables (months, weekdays).
fn render_names(set: u64, names: &[&str]) -> String {
    render_runs(set, |v| names[usize::from(v) - 1].to_string())
}

/// Parses one field into its set of values.
fn parse_field(field: Field, text: &str) -> Result<u64, ScheduleError> {
    let (lo, hi) = field.bounds();
    let mut set = 0u64;
    for item in text.split(',') {
        let err = |problem: &'static str, hint: String| ScheduleError::Field {
            field,
            token: item.to_string(),
            problem,
            hint,
        };
        if item.is_empty() {
            return Err(err(
                "is an empty list item",
                "separate values with single commas, e.g. 1,15".into(),
            ));
        }
        let (base, step) = match item.split_once('/') {
            None => (item, None),
            Some((base, step)) => {
                let step_hint = || {
                    format!(
                        "a step is a whole number from 1 to {}, e.g. */{}",
                        hi - lo,
                        if field == Field::Minute { 15 } else { 2 }
                    )
                };
                let n: u8 = step
                    .parse()
                    .map_err(|_| err("has a bad step", step_hint()))?;
                if n == 0 || n > hi - lo {
                    return Err(err("has a bad step", step_hint()));
                }
                (base, Some(n))
            }
        };
        let value = |token: &str| parse_value(field, token).map_err(|(p, h)| err(p, h));
        let (from, to) = if base == "*" {
            (lo, hi)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(err(
                    "is a backwards range",
                    "ranges go upward, e.g. 9-17 or mon-fri".into(),
                ));
            }
            (a, b)
        } else {
            let v = value(base)?;
            if step.is_some() {
                return Err(err(
                    "has a step without a range",
                    "steps go with * or a range, e.g. */15 or 0-30/10".into(),
                ));
            }
            (v, v)
        };
        for v in (from..=to).step_by(step.unwrap_or(1).into()) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

/// Parses a single value of a field: a number, or a name for months and weekdays.
fn parse_value(field: Field, token: &str) -> Result<u8, (&'static str, String)> {
    let (lo, hi) = field.bounds();
    let numeric = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    match field {
        Field::DayOfWeek if numeric => {
            return Err(("is a numeric weekday", NUMERIC_WEEKDAY_HINT.into()));
        }
        Field::DayOfWeek | Field::Month if !numeric => {
            let names: &[&str] = if field == Field::Month {
                &MONTHS
            } else {
                &WEEKDAYS
            };
            let lower = token.to_ascii_lowercase();
            return match names.iter().position(|n| *n == lower) {
                Some(i) => Ok(i as u8 + 1),
                None if field == Field::Month => Err(("is not a month", field.range_hint())),
                None => Err(("is not a weekday", field.range_hint())),
            };
        }
        _ if !numeric => return Err(("is not a number", field.range_hint())),
        _ => {}
    }
    match token.parse::<u8>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(("is out of range", field.range_hint())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use jiff::{SignedDuration, Zoned};
    use proptest::prelude::*;

    fn sched(expr: &str) -> CronSchedule {
        CronSchedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn zoned(s: &str) -> Zoned {
        s.parse().unwrap()
    }

    #[test]
    fn parses_good_forms() {
        let s = sched("0 10 1 * *");
        assert_eq!(members(s.minutes).collect::<Vec<_>>(), [0]);
        assert_eq!(members(s.hours).collect::<Vec<_>>(), [10]);
        assert_eq!(members(s.days).collect::<Vec<_>>(), [1]);
        assert_eq!(s.months, full(Field::Month));
        assert!(s.dow_star && !s.dom_star);

        let s = sched("*/15 9-17 * * mon-fri");
        assert_eq!(members(s.minutes).collect::<Vec<_>>(), [0, 15, 30, 45]);
        assert_eq!(
            members(s.hours).collect::<Vec<_>>(),
            (9..=17).collect::<Vec<_>>()
        );
        assert_eq!(members(s.weekdays).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);

        let s = sched("  0-30/10   8,20 1-7 JAN,jul,Dec  MON,wed,Fri ");
        assert_eq!(s.to_string(), "0-30/10 8,20 1-7 JAN,jul,Dec MON,wed,Fri");
        assert_eq!(members(s.minutes).collect::<Vec<_>>(), [0, 10, 20, 30]);
        assert_eq!(members(s.hours).collect::<Vec<_>>(), [8, 20]);
        assert_eq!(members(s.months).collect::<Vec<_>>(), [1, 7, 12]);
        assert_eq!(members(s.weekdays).collect::<Vec<_>>(), [1, 3, 5]);

        let s = sched("0 10 * 6-8 sat,sun");
        assert_eq!(members(s.months).collect::<Vec<_>>(), [6, 7, 8]);
        assert_eq!(members(s.weekdays).collect::<Vec<_>>(), [6, 7]);

        let s = sched("0 0 */2 * */2");
        assert_eq!(members(s.days).count(), 16);
        assert_eq!(members(s.weekdays).collect::<Vec<_>>(), [1, 3, 5, 7]);

        for good in [
            "* * * * *",
            "59 23 31 12 sun",
            "0 0 29 feb *",
            "0 10 * jun-aug *",
        ] {
            sched(good);
        }
        assert_eq!(
            "5 4 * * sun".parse::<CronSchedule>().unwrap(),
            sched("5 4 * * sun")
        );
    }

    #[test]
    fn rejects_bad_forms_with_field_token_and_hint() {
        // (expression, field, token, a piece of the hint)
        let table: &[(&str, Option<Field>, &str, &str)] = &[
            (
                "0 10 * * 1-5",
                Some(Field::DayOfWeek),
                "1-5",
                NUMERIC_WEEKDAY_HINT,
            ),
            (
                "0 10 * * 0",
                Some(Field::DayOfWeek),
                "0",
                "write weekday names (mon-fri)",
            ),
            (
                "0 10 * * mon,3",
                Some(Field::DayOfWeek),
                "3",
                "some cron dialects count 1 = Sunday",
            ),
            (
                "0 10 * * mon-5",
                Some(Field::DayOfWeek),
                "mon-5",
                "write weekday names",
            ),
            ("0 0 10 1 * *", None, "0 0 10 1 * *", FIELD_COUNT_HINT),
            (
                "0 0 10 1 * * 2027",
                None,
                "0 0 10 1 * * 2027",
                "5 fields: minute hour day month weekday",
            ),
            (
                "0 10 1 *",
                None,
                "0 10 1 *",
                "`0 10 1 * *` = the 1st of each month at 10:00",
            ),
            ("", None, "", "5 fields"),
            ("0 24 * * *", Some(Field::Hour), "24", "hours are 0-23"),
            ("60 * * * *", Some(Field::Minute), "60", "minutes are 0-59"),
            ("0 0 0 * *", Some(Field::DayOfMonth), "0", "1-31"),
            ("0 0 32 * *", Some(Field::DayOfMonth), "32", "1-31"),
            ("0 0 1 13 *", Some(Field::Month), "13", "1-12"),
            ("0 0 1 999 *", Some(Field::Month), "999", "1-12"),
            ("*/0 * * * *", Some(Field::Minute), "*/0", "step"),
            ("*/x * * * *", Some(Field::Minute), "*/x", "step"),
            ("*/60 * * * *", Some(Field::Minute), "*/60", "step"),
            ("0 */2/3 * * *", Some(Field::Hour), "*/2/3", "step"),
            (
                "5/10 * * * *",
                Some(Field::Minute),
                "5/10",
                "*/15 or 0-30/10",
            ),
            ("0 10 1 foo *", Some(Field::Month), "foo", "jan, feb, mar"),
            ("0 10 1 janu *", Some(Field::Month), "janu", "months are"),
            (
                "0 10 * * funday",
                Some(Field::DayOfWeek),
                "funday",
                "mon, tue, wed",
            ),
            ("0 10 5-1 * *", Some(Field::DayOfMonth), "5-1", "upward"),
            (
                "0 10 * * fri-mon",
                Some(Field::DayOfWeek),
                "fri-mon",
                "upward",
            ),
            ("0 10 1,,2 * *", Some(Field::DayOfMonth), "", "commas"),
            ("0 ten * * *", Some(Field::Hour), "ten", "hours are 0-23"),
            ("0 10 L * *", Some(Field::DayOfMonth), "L", "1-31"),
            ("0 10 ? * mon", Some(Field::DayOfMonth), "?", "1-31"),
        ];
        for (expr, field, token, hint) in table {
            let err = CronSchedule::parse(expr).expect_err(expr);
            assert_eq!(err.field(), *field, "{expr}: {err}");
            assert_eq!(err.token(), *token, "{expr}: {err}");
            assert!(err.hint().contains(hint), "{expr}: {err}");
            assert!(err.to_string().contains(hint), "{expr}: {err}");
        }
        let err = CronSchedule::parse("0 24 * * *").unwrap_err();
        assert_eq!(
            err.to_string(),
            "hour field: `24` is out of range; hint: hours are 0-23"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_restricted() {
        // Vixie cron: both restricted → either matches.
        let s = sched("0 10 13 * fri");
        assert!(s.matches_date(date(2027, 8, 13))); // Friday the 13th
        assert!(s.matches_date(date(2027, 1, 13))); // Wednesday the 13th
        assert!(s.matches_date(date(2027, 1, 15))); // Friday the 15th
        assert!(!s.matches_date(date(2027, 1, 14)));
        // The month still restricts both.
        let s = sched("0 10 1 jan mon");
        assert!(s.matches_date(date(2027, 1, 1)));
        assert!(s.matches_date(date(2027, 1, 4)));
        assert!(!s.matches_date(date(2027, 2, 1)));
        // Only one restricted → only that one counts.
        assert!(!sched("0 10 * * mon").matches_date(date(2027, 1, 1))); // a Friday
        assert!(sched("0 10 * * mon").matches_date(date(2027, 1, 4)));
        assert!(!sched("0 10 1 * *").matches_date(date(2027, 1, 4)));
        // A step is a restriction too (unlike Vixie's "starts with *" rule).
        let s = sched("0 10 */2 * sun");
        assert!(s.matches_date(date(2027, 1, 3))); // odd day and Sunday
        assert!(s.matches_date(date(2027, 1, 10))); // Sunday, even day
        assert!(s.matches_date(date(2027, 1, 5))); // odd day, Tuesday
        assert!(!s.matches_date(date(2027, 1, 6)));
    }

    #[test]
    fn first_of_month_at_ten_in_moscow_and_new_york() {
        let s = sched("0 10 1 * *");
        // Moscow is UTC+3 all year: 07:00Z on every 1st.
        let moscow = tz("Europe/Moscow");
        let mut t = ts("2027-01-01T00:00:00Z");
        for month in 1..=12 {
            t = s.next_after(t, &moscow).unwrap();
            assert_eq!(
                t,
                date(2027, month, 1)
                    .at(7, 0, 0, 0)
                    .to_zoned(TimeZone::UTC)
                    .unwrap()
                    .timestamp()
            );
        }
        // New York: EST (UTC-5) until 2027-03-14, EDT (UTC-4) until 2027-11-07.
        let new_york = tz("America/New_York");
        let utc_hours = [15, 15, 15, 14, 14, 14, 14, 14, 14, 14, 14, 15];
        let mut t = ts("2027-01-01T00:00:00Z");
        for (month, hour) in (1..=12).zip(utc_hours) {
            t = s.next_after(t, &new_york).unwrap();
            assert_eq!(
                t,
                date(2027, month, 1)
                    .at(hour, 0, 0, 0)
                    .to_zoned(TimeZone::UTC)
                    .unwrap()
                    .timestamp()
            );
            let local = t.to_zoned(new_york.clone());
            assert_eq!((local.day(), local.hour(), local.minute()), (1, 10, 0));
        }
        let on_first = s.occurrences_on(date(2027, 7, 1), &new_york);
        assert_eq!(
            on_first,
            vec![(date(2027, 7, 1).at(10, 0, 0, 0), ts("2027-07-01T14:00:00Z"))]
        );
        assert!(s.occurrences_on(date(2027, 7, 2), &new_york).is_empty());
    }

    #[test]
    fn spring_forward_gap_fires_once_when_the_gap_ends() {
        // Europe/Bucharest, 2027-03-28: 03:00 EET (+02) jumps to 04:00 EEST (+03) at 01:00Z.
        let bucharest = tz("Europe/Bucharest");
        let day = date(2027, 3, 28);
        let s = sched("30 3 * * *");
        assert_eq!(
            s.occurrences_on(day, &bucharest),
            vec![(day.at(4, 0, 0, 0), ts("2027-03-28T01:00:00Z"))]
        );
        let mut t = ts("2027-03-27T12:00:00Z");
        let mut fired = Vec::new();
        for _ in 0..3 {
            t = s.next_after(t, &bucharest).unwrap();
            fired.push(t);
        }
        assert_eq!(
            fired,
            [
                ts("2027-03-28T01:00:00Z"),
                ts("2027-03-29T00:30:00Z"),
                ts("2027-03-30T00:30:00Z")
            ]
        );
        assert_eq!(
            s.next_after(ts("2027-03-27T01:30:00Z"), &bucharest),
            Some(ts("2027-03-28T01:00:00Z"))
        );

        // 03:30 resolves to 04:00, which also matches by itself: one firing, not two.
        for expr in ["0,30 3,4 * * *", "0,30 3-4 * * *"] {
            let s = sched(expr);
            assert_eq!(
                s.occurrences_on(day, &bucharest),
                vec![
                    (day.at(4, 0, 0, 0), ts("2027-03-28T01:00:00Z")),
                    (day.at(4, 30, 0, 0), ts("2027-03-28T01:30:00Z")),
                ],
                "{expr}"
            );
            let first = s
                .next_after(ts("2027-03-28T00:00:00Z"), &bucharest)
                .unwrap();
            let second = s.next_after(first, &bucharest).unwrap();
            assert_eq!(
                (first, second),
                (ts("2027-03-28T01:00:00Z"), ts("2027-03-28T01:30:00Z"))
            );
        }
        // The brief's `30 3,4`: 03:30 → 04:00 and 04:30.
        assert_eq!(
            sched("30 3,4 * * *").occurrences_on(day, &bucharest).len(),
            2
        );

        // America/New_York, 2027-03-14: 02:00 EST jumps to 03:00 EDT at 07:00Z.
        let new_york = tz("America/New_York");
        let day = date(2027, 3, 14);
        assert_eq!(
            sched("30 2 * * *").occurrences_on(day, &new_york),
            vec![(day.at(3, 0, 0, 0), ts("2027-03-14T07:00:00Z"))]
        );
        assert_eq!(
            sched("*/20 2-3 * * *").occurrences_on(day, &new_york).len(),
            3, // 02:00, 02:20, 02:40 all become 03:00, then 03:20, 03:40
        );
    }

    #[test]
    fn fall_back_fold_fires_once_at_the_first_occurrence() {
        // Europe/Bucharest, 2027-10-31: 04:00 EEST (+03) falls back to 03:00 EET (+02).
        let bucharest = tz("Europe/Bucharest");
        let day = date(2027, 10, 31);
        let s = sched("30 3 * * *");
        let occ = s.occurrences_on(day, &bucharest);
        assert_eq!(occ, vec![(day.at(3, 30, 0, 0), ts("2027-10-31T00:30:00Z"))]);
        assert_eq!(
            occ[0].1.to_zoned(bucharest.clone()),
            zoned("2027-10-31T03:30:00+03:00[Europe/Bucharest]")
        );
        let first = s
            .next_after(ts("2027-10-30T12:00:00Z"), &bucharest)
            .unwrap();
        assert_eq!(first, ts("2027-10-31T00:30:00Z"));
        // Not again at 03:30+02:00 (01:30Z): the next firing is the next day.
        assert_eq!(
            s.next_after(first, &bucharest),
            Some(ts("2027-11-01T01:30:00Z"))
        );

        // America/New_York, 2027-11-07: 02:00 EDT falls back to 01:00 EST.
        let new_york = tz("America/New_York");
        let day = date(2027, 11, 7);
        let s = sched("30 1 * * *");
        assert_eq!(
            s.occurrences_on(day, &new_york),
            vec![(day.at(1, 30, 0, 0), ts("2027-11-07T05:30:00Z"))]
        );
        assert_eq!(
            s.next_after(ts("2027-11-07T05:30:00Z"), &new_york),
            Some(ts("2027-11-08T06:30:00Z"))
        );
        // Every wall minute of the repeated hour fires once: 60 firings, not 120.
        assert_eq!(sched("* 1 * * *").occurrences_on(day, &new_york).len(), 60);
    }

    #[test]
    fn schedules_that_never_match_return_none() {
        let utc = TimeZone::UTC;
        let t = ts("2027-01-01T00:00:00Z");
        assert_eq!(sched("0 0 30 feb *").next_after(t, &utc), None);
        assert_eq!(sched("0 0 31 apr,jun,sep,nov *").next_after(t, &utc), None);
        // Feb 29 is found even across 2100, which is not a leap year.
        assert_eq!(
            sched("0 0 29 feb *").next_after(t, &utc),
            Some(ts("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            sched("0 0 29 feb *").next_after(ts("2096-03-01T00:00:00Z"), &utc),
            Some(ts("2104-02-29T00:00:00Z"))
        );
        // Near the end of time: no panic.
        assert_eq!(sched("0 0 1 * *").next_after(Timestamp::MAX, &utc), None);
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = sched("0 10 * * *");
        let utc = TimeZone::UTC;
        assert_eq!(
            s.next_after(ts("2027-05-05T10:00:00Z"), &utc),
            Some(ts("2027-05-06T10:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2027-05-05T09:59:59.999Z"), &utc),
            Some(ts("2027-05-05T10:00:00Z"))
        );
        let s = sched("0 9 * * mon,wed,fri");
        assert_eq!(
            s.next_after(ts("2027-01-01T09:00:00Z"), &utc), // a Friday
            Some(ts("2027-01-04T09:00:00Z"))
        );
    }

    #[test]
    fn describes_schedules_in_english() {
        let table = [
            ("0 10 1 * *", "at 10:00 on day 1 of every month"),
            ("0 9 * * mon,wed,fri", "at 09:00 on mon, wed, fri"),
            ("0 9 * * mon-fri", "at 09:00 on mon-fri"),
            ("0 9 * * sat,sun", "at 09:00 on sat, sun"),
            ("30 18 * * *", "at 18:30 every day"),
            ("0 9,18 * * *", "at 09:00, 18:00 every day"),
            ("0 10 1,15 * *", "at 10:00 on days 1, 15 of every month"),
            (
                "0 10 1-7 * mon",
                "at 10:00 on days 1-7 of the month or any mon",
            ),
            ("0 12 1 jan,jul *", "at 12:00 on day 1 of jan, jul"),
            ("0 10 * jun-aug sat", "at 10:00 on sat in jun-aug"),
            ("0 8 * dec *", "at 08:00 every day in dec"),
            ("*/15 * * * *", "every 15 minutes every day"),
            ("* * * * *", "every minute every day"),
            ("* 9 * * *", "every minute of hour 9 every day"),
            ("5 * * * *", "at minute 5 of every hour every day"),
            (
                "0,30 9-17 * * mon-fri",
                "at minutes 0, 30 of hours 9-17 on mon-fri",
            ),
        ];
        for (expr, text) in table {
            assert_eq!(sched(expr).describe(), text, "{expr}");
        }
    }

    const ZONES: [&str; 5] = [
        "UTC",
        "Europe/Bucharest",
        "Europe/Moscow",
        "America/New_York",
        "Australia/Lord_Howe", // 30-minute DST shift
    ];

    fn instant_2024_2030() -> impl Strategy<Value = Timestamp> {
        let lo = ts("2024-01-01T00:00:00Z").as_second();
        let hi = ts("2030-12-31T00:00:00Z").as_second();
        (lo..hi).prop_map(|s| Timestamp::from_second(s).unwrap())
    }

    proptest! {
        #[test]
        fn daily_schedule_fires_once_a_day(
            t in instant_2024_2030(),
            zone in 0..ZONES.len(),
            minute in 0u8..60,
            hour in 0u8..24,
        ) {
            let zone = tz(ZONES[zone]);
            let s = sched(&format!("{minute} {hour} * * *"));
            let today = zone.to_datetime(t).date();
            for date in [today.yesterday().unwrap(), today, today.tomorrow().unwrap()] {
                prop_assert_eq!(s.occurrences_on(date, &zone).len(), 1, "{}", date);
            }
            let mut prev = s.next_after(t, &zone).unwrap();
            prop_assert!(prev > t);
            prop_assert!(prev.duration_since(t) <= SignedDuration::from_mins(25 * 60 + 30));
            for _ in 0..3 {
                let next = s.next_after(prev, &zone).unwrap();
                let gap = next.duration_since(prev);
                prop_assert!(
                    gap >= SignedDuration::from_mins(22 * 60 + 30)
                        && gap <= SignedDuration::from_mins(25 * 60 + 30),
                    "{} -> {}", prev, next
                );
                // It fires on the date it was scheduled for.
                let on_its_day = s.occurrences_on(zone.to_datetime(next).date(), &zone);
                prop_assert_eq!(on_its_day[0].1, next);
                prev = next;
            }
        }
    }

    /// An independent, minute-by-minute reading of the DST policy: does the schedule fire at
    /// the (minute-aligned) instant `u`?
    fn fires_at_brute_force(s: &CronSchedule, u: Timestamp, zone: &TimeZone) -> bool {
        let minute = SignedDuration::from_mins(1);
        let local = zone.to_datetime(u);
        // A matching wall time fires at its first occurrence only.
        if s.matches(local) {
            let seen_before = (1..=180).any(|k| zone.to_datetime(u - minute * k) == local);
            if !seen_before {
                return true;
            }
        }
        // At the end of a gap, fire for matching wall times the clock skipped.
        let mut skipped = zone.to_datetime(u - minute) + minute;
        while skipped < local {
            if s.matches(skipped) {
                return true;
            }
            skipped += minute;
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn next_after_agrees_with_a_minute_by_minute_walk_around_transitions(
            zone in 1..ZONES.len(),
            year in 2024i16..2031,
            which in 0usize..2,
            shift_mins in -30i64 * 60..6 * 60,
            minutes in proptest::collection::vec(0u8..60, 1..4),
            hours in proptest::collection::vec(prop_oneof![0u8..24, 0u8..5], 1..4),
        ) {
            let zone = tz(ZONES[zone]);
            let start = date(year, 1, 1).at(0, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap().timestamp();
            // Moscow has no transitions: any instant of the year will do.
            let pivot = zone.following(start).nth(which).map_or(start, |tr| tr.timestamp());
            let t = pivot + SignedDuration::from_mins(shift_mins);
            let list = |v: &[u8]| v.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
            let s = sched(&format!("{} {} * * *", list(&minutes), list(&hours)));

            let end = t + SignedDuration::from_hours(30);
            let mut walked = Vec::new();
            let mut u = t + SignedDuration::from_mins(1);
            while u <= end {
                if fires_at_brute_force(&s, u, &zone) {
                    walked.push(u);
                }
                u += SignedDuration::from_mins(1);
            }
            let mut stepped = Vec::new();
            let mut cur = t;
            while let Some(next) = s.next_after(cur, &zone) {
                if next > end {
                    break;
                }
                stepped.push(next);
                cur = next;
            }
            prop_assert_eq!(stepped, walked, "{} in {:?} from {}", s, zone.iana_name(), t);
        }
    }
}
