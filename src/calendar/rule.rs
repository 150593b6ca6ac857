//! Holiday rules: how a holiday's date is found in a given year, and the parser for the rule
//! strings written in calendar files (`2nd sunday of may`, `orthodox easter - 1 day`, …).
//!
//! Everything here is pure: a rule is data, [`Rule::date_in`] a function of the year.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::{Date, Weekday};

use super::easter;
use crate::domain::suggest::closest;

/// The forms a rule string may take, shown in every rule diagnostic.
pub const RULE_FORMS: &str = "a rule is `MM-DD` (03-08), \
     `Nth WEEKDAY of MONTH` (2nd sunday of may), `last WEEKDAY of MONTH` (last monday of may), \
     `easter` or `orthodox easter`, each optionally followed by `+ N days` or `- N days` \
     (4th thursday of november + 1 day); weekdays and months in English, full or 3-letter \
     (sun, sunday, nov, november); dates decreed year by year go under `dates:` instead \
     (dates: {2026: 01-09})";

/// Largest offset accepted, in days: a rule stays within about a year of its base date.
pub const MAX_OFFSET_DAYS: i16 = 366;

/// Which Easter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computus {
    /// Gregorian computus (Catholic and Protestant churches).
    Western,
    /// Julian computus, shown as a Gregorian date (Orthodox churches).
    Orthodox,
}

/// Which of a month's weekdays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordinal {
    /// 1st to 5th (a 5th weekday does not exist in every month).
    Nth(u8),
    Last,
}

/// How a holiday's date is found in a given year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The same month and day every year (`03-08`); `02-29` only exists in leap years.
    Fixed {
        month: i8,
        day: i8,
        offset_days: i16,
    },
    /// The nth or last given weekday of a month (`2nd sunday of may`, `last monday of may`).
    Weekday {
        ordinal: Ordinal,
        weekday: Weekday,
        month: i8,
        offset_days: i16,
    },
    /// Easter Sunday (`easter`, `orthodox easter - 2 days`).
    Easter {
        computus: Computus,
        offset_days: i16,
    },
    /// Dates decreed year by year (Russia's transferred days off): none in other years.
    Dates(BTreeMap<i16, Date>),
}

impl Rule {
    /// The date this rule gives for `year`, or `None` when it gives none (a year missing from
    /// [`Rule::Dates`], a 5th weekday the month does not have, `02-29` in a common year, Easter
    /// before 1583). An offset may carry the date into the neighbouring year: the result is
    /// the occurrence that *belongs* to `year`.
    pub fn date_in(&self, year: i16) -> Option<Date> {
        let (base, offset_days) = match *self {
            Rule::Fixed {
                month,
                day,
                offset_days,
            } => (Date::new(year, month, day).ok()?, offset_days),
            Rule::Weekday {
                ordinal,
                weekday,
                month,
                offset_days,
            } => {
                let nth = match ordinal {
                    Ordinal::Nth(n) => i8::try_from(n).ok()?,
                    Ordinal::Last => -1,
                };
                let first = Date::new(year, month, 1).ok()?;
                (first.nth_weekday_of_month(nth, weekday).ok()?, offset_days)
            }
            Rule::Easter {
                computus,
                offset_days,
            } => {
                let sunday = match computus {
                    Computus::Western => easter::western(year)?,
                    Computus::Orthodox => easter::orthodox(year)?,
                };
                (sunday, offset_days)
            }
            Rule::Dates(ref dates) => return dates.get(&year).copied(),
        };
        if offset_days == 0 {
            return Some(base);
        }
        base.checked_add(jiff::Span::new().days(i64::from(offset_days)))
            .ok()
    }
}

/// The canonical rule string (what `parse` reads back), e.g. `4th thursday of november + 1 day`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = match *self {
            Rule::Fixed {
                month,
                day,
                offset_days,
            } => {
                write!(f, "{month:02}-{day:02}")?;
                offset_days
            }
            Rule::Weekday {
                ordinal,
                weekday,
                month,
                offset_days,
            } => {
                match ordinal {
                    Ordinal::Nth(n) => write!(f, "{}", ordinal_name(n))?,
                    Ordinal::Last => f.write_str("last")?,
                }
                write!(
                    f,
                    " {} of {}",
                    WEEKDAYS[weekday.to_monday_zero_offset() as usize],
                    MONTHS[(month - 1) as usize]
                )?;
                offset_days
            }
            Rule::Easter {
                computus,
                offset_days,
            } => {
                f.write_str(match computus {
                    Computus::Western => "easter",
                    Computus::Orthodox => "orthodox easter",
                })?;
                offset_days
            }
            Rule::Dates(ref dates) => {
                f.write_str("dates:")?;
                for (i, (year, d)) in dates.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(f, "{sep}{year}: {:02}-{:02}", d.month(), d.day())?;
                }
                return Ok(());
            }
        };
        if offset != 0 {
            let sign = if offset > 0 { '+' } else { '-' };
            let n = offset.unsigned_abs();
            let unit = if n == 1 { "day" } else { "days" };
            write!(f, " {sign} {n} {unit}")?;
        }
        Ok(())
    }
}

/// Why a rule string could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// Character offset in the rule string of the word at fault.
    pub at: usize,
    pub message: String,
    /// A likely intended word, when the fault looks like a typo.
    pub suggestion: Option<String>,
}

impl RuleError {
    fn new(at: usize, message: impl Into<String>) -> Self {
        RuleError {
            at,
            message: message.into(),
            suggestion: None,
        }
    }
    fn suggest(mut self, word: &str, candidates: &[&str]) -> Self {
        self.suggestion = closest(word, candidates.iter().copied()).map(str::to_string);
        self
    }
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const ORDINALS: [&str; 5] = ["1st", "2nd", "3rd", "4th", "5th"];
const ORDINAL_WORDS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

fn ordinal_name(n: u8) -> &'static str {
    ORDINALS.get(usize::from(n).wrapping_sub(1)).unwrap_or(&"?")
}

fn weekday_named(word: &str) -> Option<Weekday> {
    let i = WEEKDAYS
        .iter()
        .position(|w| *w == word || (word.len() == 3 && w.starts_with(word)))?;
    Some(Weekday::from_monday_zero_offset(i as i8).expect("0..7"))
}

fn month_named(word: &str) -> Option<i8> {
    let i = MONTHS
        .iter()
        .position(|m| *m == word || (word.len() == 3 && m.starts_with(word)))?;
    Some(i as i8 + 1)
}

fn ordinal_named(word: &str) -> Option<Ordinal> {
    if word == "last" {
        return Some(Ordinal::Last);
    }
    let i = ORDINALS
        .iter()
        .position(|o| *o == word)
        .or_else(|| ORDINAL_WORDS.iter().position(|o| *o == word))?;
    Some(Ordinal::Nth(i as u8 + 1))
}

/// Splits on whitespace, keeping each word's character offset; words are lower-cased.
fn words(s: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, c) in s.chars().enumerate() {
        if c.is_whitespace() {
            out.extend(current.take());
        } else {
            current
                .get_or_insert_with(|| (i, String::new()))
                .1
                .extend(c.to_lowercase());
        }
    }
    out.extend(current);
    out
}

/// Parses `MM-DD` (any year: `02-29` is accepted).
pub fn parse_month_day(word: &str) -> Result<(i8, i8), String> {
    let (m, d) = word
        .split_once('-')
        .ok_or_else(|| format!("`{word}` is not a MM-DD date"))?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(m) || !two_digits(d) {
        return Err(format!(
            "`{word}` is not a MM-DD date (two digits each, e.g. 03-08)"
        ));
    }
    let (month, day): (i8, i8) = (m.parse().expect("digits"), d.parse().expect("digits"));
    if !(1..=12).contains(&month) {
        return Err(format!("there is no month {month} in `{word}`"));
    }
    // 2000 is a leap year: every month-day that exists in some year exists in 2000.
    if Date::new(2000, month, day).is_err() {
        return Err(format!(
            "there is no day {day} in {} (`{word}`)",
            MONTHS[(month - 1) as usize]
        ));
    }
    Ok((month, day))
}

/// Parses a computed rule (every form but per-year `dates:`); case does not matter.
pub fn parse(s: &str) -> Result<Rule, RuleError> {
    let words = words(s);
    let Some((at0, w0)) = words.first() else {
        return Err(RuleError::new(0, "the rule is empty"));
    };
    // The offset starts at the first word after the base that begins with + or -.
    let split = words
        .iter()
        .skip(1)
        .position(|(_, w)| w.starts_with('+') || w.starts_with('-'))
        .map_or(words.len(), |i| i + 1);
    let (base, offset) = words.split_at(split);
    let offset_days = parse_offset(offset, s.chars().count())?;
    let b = Base {
        words: &words,
        base,
        len: s.chars().count(),
    };

    if w0.starts_with(|c: char| c.is_ascii_digit()) && w0.contains('-') {
        let (month, day) = parse_month_day(w0).map_err(|m| RuleError::new(*at0, m))?;
        if base.len() > 1 {
            return Err(b.extra(1, &format!("the date `{w0}`")));
        }
        return Ok(Rule::Fixed {
            month,
            day,
            offset_days,
        });
    }
    match w0.as_str() {
        "easter" => {
            if base.len() > 1 {
                return Err(b.extra(1, "`easter`"));
            }
            Ok(Rule::Easter {
                computus: Computus::Western,
                offset_days,
            })
        }
        "orthodox" => orthodox_easter(&b, offset_days),
        _ => weekday_rule(&b, offset_days),
    }
}

/// The words of a rule before its offset, for positions and errors.
struct Base<'a> {
    /// Every word, with its character position.
    words: &'a [(usize, String)],
    /// The words before the offset.
    base: &'a [(usize, String)],
    /// The rule's length in characters.
    len: usize,
}

impl Base<'_> {
    /// Where word `i` starts (the end of the rule past the last word).
    fn end(&self, i: usize) -> usize {
        self.words.get(i).map_or(self.len, |(at, _)| *at)
    }

    /// Word `i` is one too many after `after`.
    fn extra(&self, i: usize, after: &str) -> RuleError {
        let (at, w) = &self.base[i];
        RuleError::new(
            *at,
            format!(
                "unexpected `{w}` after {after}: an offset is written `+ N days` or `- N days`"
            ),
        )
    }
}

/// `orthodox easter`.
fn orthodox_easter(b: &Base, offset_days: i16) -> Result<Rule, RuleError> {
    match b.base.get(1) {
        Some((_, w)) if w == "easter" => {}
        Some((at, w)) => {
            return Err(RuleError::new(
                *at,
                format!("expected `easter` after `orthodox`, found `{w}`"),
            )
            .suggest(w, &["easter"]));
        }
        None => {
            return Err(RuleError::new(
                b.end(1),
                "expected `easter` after `orthodox`",
            ));
        }
    }
    if b.base.len() > 2 {
        return Err(b.extra(2, "`orthodox easter`"));
    }
    Ok(Rule::Easter {
        computus: Computus::Orthodox,
        offset_days,
    })
}

/// `ORDINAL WEEKDAY of MONTH` (`last sunday of may`).
fn weekday_rule(b: &Base, offset_days: i16) -> Result<Rule, RuleError> {
    let (at0, w0) = &b.base[0];
    let Some(ordinal) = ordinal_named(w0) else {
        return Err(not_an_ordinal(*at0, w0));
    };
    let weekday = match b.base.get(1) {
        Some((at, w)) => weekday_named(w).ok_or_else(|| {
            RuleError::new(*at, format!("unknown weekday `{w}`")).suggest(w, &WEEKDAYS)
        })?,
        None => {
            return Err(RuleError::new(
                b.end(1),
                format!("expected a weekday after `{w0}` (`{w0} sunday of may`)"),
            ));
        }
    };
    match b.base.get(2) {
        Some((_, w)) if w == "of" => {}
        Some((at, w)) => {
            return Err(RuleError::new(
                *at,
                format!("expected `of` after the weekday, found `{w}`"),
            ));
        }
        None => {
            return Err(RuleError::new(
                b.end(2),
                "expected `of MONTH` after the weekday",
            ));
        }
    }
    let month = match b.base.get(3) {
        Some((at, w)) => month_named(w).ok_or_else(|| {
            RuleError::new(*at, format!("unknown month `{w}`")).suggest(w, &MONTHS)
        })?,
        None => return Err(RuleError::new(b.end(3), "expected a month after `of`")),
    };
    if b.base.len() > 4 {
        return Err(b.extra(4, "the month"));
    }
    Ok(Rule::Weekday {
        ordinal,
        weekday,
        month,
        offset_days,
    })
}

/// The first word of a rule is none of the known starts.
fn not_an_ordinal(at: usize, w0: &str) -> RuleError {
    let message = if w0.starts_with(|c: char| c.is_ascii_digit()) {
        format!(
            "`{w0}` is not an ordinal: a month has at most 5 of each weekday \
             (1st, 2nd, 3rd, 4th, 5th or last)"
        )
    } else if weekday_named(w0).is_some() {
        format!("`{w0}` needs an ordinal in front: `1st {w0} of MONTH` or `last {w0} of MONTH`")
    } else {
        format!("cannot read the rule at `{w0}`")
    };
    let mut candidates = vec!["easter", "orthodox", "last", "first", "second", "third"];
    candidates.extend(["fourth", "fifth"]);
    RuleError::new(at, message).suggest(w0, &candidates)
}

/// `+ 1 day`, `+1 day`, `- 21 days` (or nothing) → days.
fn parse_offset(words: &[(usize, String)], len: usize) -> Result<i16, RuleError> {
    let Some((at, sign_word)) = words.first() else {
        return Ok(0);
    };
    let negative = sign_word.starts_with('-');
    let mut rest = words[1..].iter();
    let (n_at, n_word) = if sign_word.len() > 1 {
        (at + 1, sign_word[1..].to_string())
    } else {
        match rest.next() {
            Some((a, w)) => (*a, w.clone()),
            None => {
                return Err(RuleError::new(
                    len,
                    "expected a number of days after the sign",
                ));
            }
        }
    };
    let n: i16 = match n_word.parse::<u16>() {
        Ok(n) if n <= MAX_OFFSET_DAYS as u16 => n as i16,
        Ok(_) => {
            return Err(RuleError::new(
                n_at,
                format!("an offset is at most {MAX_OFFSET_DAYS} days"),
            ));
        }
        Err(_) => {
            return Err(RuleError::new(
                n_at,
                format!("expected a number of days, found `{n_word}`"),
            ));
        }
    };
    match rest.next() {
        Some((_, unit)) if unit == "day" || unit == "days" => {}
        Some((a, unit)) => {
            return Err(RuleError::new(
                *a,
                format!("expected `days` after the number, found `{unit}`"),
            )
            .suggest(unit, &["days"]));
        }
        None => {
            return Err(RuleError::new(
                len,
                format!(
                    "expected `days` after the number (`{} {n} days`)",
                    &sign_word[..1]
                ),
            ));
        }
    }
    if let Some((a, w)) = rest.next() {
        return Err(RuleError::new(
            *a,
            format!("unexpected `{w}` after the offset"),
        ));
    }
    Ok(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn rule(s: &str) -> Rule {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn each_form_parses_and_prints_back() {
        for s in [
            "03-08",
            "02-29",
            "2nd sunday of may",
            "last monday of may",
            "4th thursday of november + 1 day",
            "easter",
            "easter - 21 days",
            "orthodox easter",
            "orthodox easter + 1 day",
            "12-24 + 2 days",
        ] {
            assert_eq!(rule(s).to_string(), s);
        }
    }

    #[test]
    fn spellings_are_forgiving_in_case_space_and_short_names() {
        assert_eq!(rule("2ND Sun of MAY"), rule("2nd sunday of may"));
        assert_eq!(rule("second sunday  of may"), rule("2nd sunday of may"));
        assert_eq!(
            rule("4th thu of nov +1 day"),
            rule("4th thursday of november + 1 day")
        );
        assert_eq!(rule("Easter -21 days"), rule("easter - 21 days"));
    }

    #[test]
    fn known_dates() {
        let table = [
            ("4th thursday of november + 1 day", 2024, date(2024, 11, 29)),
            ("4th thursday of november + 1 day", 2025, date(2025, 11, 28)),
            ("4th thursday of november + 1 day", 2026, date(2026, 11, 27)),
            ("last monday of may", 2025, date(2025, 5, 26)),
            ("1st monday of september", 2025, date(2025, 9, 1)),
            ("easter - 21 days", 2025, date(2025, 3, 30)),
            ("easter - 21 days", 2026, date(2026, 3, 15)),
            ("orthodox easter + 1 day", 2024, date(2024, 5, 6)),
            ("03-08", 2027, date(2027, 3, 8)),
            ("12-31 + 1 day", 2025, date(2026, 1, 1)),
        ];
        for (s, year, want) in table {
            assert_eq!(rule(s).date_in(year), Some(want), "{s} in {year}");
        }
    }

    #[test]
    fn dates_that_do_not_exist_are_none() {
        assert_eq!(rule("02-29").date_in(2025), None);
        assert_eq!(rule("02-29").date_in(2028), Some(date(2028, 2, 29)));
        // February 2025 has four Sundays; February 2026 too; 2032 has five.
        assert_eq!(rule("5th sunday of february").date_in(2025), None);
        assert_eq!(
            rule("5th sunday of february").date_in(2032),
            Some(date(2032, 2, 29))
        );
        let decreed = Rule::Dates([(2026, date(2026, 1, 9))].into());
        assert_eq!(decreed.date_in(2026), Some(date(2026, 1, 9)));
        assert_eq!(decreed.date_in(2027), None);
    }

    #[test]
    fn errors_point_at_the_word_at_fault() {
        let table = [
            ("", 0, "empty"),
            ("2nd sundy of may", 4, "unknown weekday `sundy`"),
            ("2nd sunday of mai", 14, "unknown month `mai`"),
            ("2nd sunday in may", 11, "expected `of`"),
            ("2nd sunday", 10, "expected `of MONTH`"),
            ("6th sunday of may", 0, "at most 5"),
            ("sunday of may", 0, "needs an ordinal"),
            ("mothers day", 0, "cannot read"),
            ("13-01", 0, "no month 13"),
            ("04-31", 0, "no day 31 in april"),
            ("3-8", 0, "not a MM-DD date"),
            ("easter + 1", 10, "expected `days`"),
            ("easter + 1 week", 11, "expected `days`"),
            ("easter + x days", 9, "expected a number"),
            ("easter + 400 days", 9, "at most 366"),
            ("easter +", 8, "expected a number"),
            ("orthodox", 8, "expected `easter`"),
            ("orthodox christmas", 9, "expected `easter`"),
            ("easter sunday", 7, "unexpected `sunday`"),
            ("03-08 03-09", 6, "unexpected `03-09`"),
            ("easter + 1 day please", 15, "unexpected `please`"),
        ];
        for (s, at, message) in table {
            let e = parse(s).expect_err(s);
            assert_eq!(e.at, at, "{s}: {e:?}");
            assert!(e.message.contains(message), "{s}: {e:?}");
        }
        assert_eq!(
            parse("2nd sundy of may").unwrap_err().suggestion.as_deref(),
            Some("sunday")
        );
        assert_eq!(
            parse("ester").unwrap_err().suggestion.as_deref(),
            Some("easter")
        );
    }

    fn weekday_from(i: u8) -> Weekday {
        Weekday::from_monday_zero_offset(i as i8).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn nth_weekday_is_that_weekday_in_that_month(
            year in 1900i16..=2099, month in 1i8..=12, n in 1u8..=5, wd in 0u8..7,
        ) {
            let weekday = weekday_from(wd);
            let r = Rule::Weekday { ordinal: Ordinal::Nth(n), weekday, month, offset_days: 0 };
            match r.date_in(year) {
                Some(d) => {
                    proptest::prop_assert_eq!(d.weekday(), weekday);
                    proptest::prop_assert_eq!((d.year(), d.month()), (year, month));
                    proptest::prop_assert_eq!((d.day() - 1) / 7 + 1, n as i8);
                }
                // Only a 5th weekday may be missing.
                None => proptest::prop_assert_eq!(n, 5),
            }
        }

        #[test]
        fn last_weekday_is_that_weekday_in_the_last_week(
            year in 1900i16..=2099, month in 1i8..=12, wd in 0u8..7,
        ) {
            let weekday = weekday_from(wd);
            let r = Rule::Weekday { ordinal: Ordinal::Last, weekday, month, offset_days: 0 };
            let d = r.date_in(year).unwrap();
            proptest::prop_assert_eq!(d.weekday(), weekday);
            proptest::prop_assert_eq!((d.year(), d.month()), (year, month));
            proptest::prop_assert!(d.day() + 7 > d.last_of_month().day());
        }

        #[test]
        fn printed_rules_parse_back(
            n in 0u8..=5, wd in 0u8..7, month in 1i8..=12, offset in -366i16..=366,
        ) {
            let ordinal = if n == 0 { Ordinal::Last } else { Ordinal::Nth(n) };
            let weekday = weekday_from(wd);
            let r = Rule::Weekday { ordinal, weekday, month, offset_days: offset };
            proptest::prop_assert_eq!(parse(&r.to_string()), Ok(r));
        }
    }
}
