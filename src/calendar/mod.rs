//! Holiday calendars: `config/calendars/<id>.yaml` → [`Calendar`] values, and the pure date
//! arithmetic behind them (fixed dates, nth/last weekday of a month, Western and Orthodox
//! Easter ± N days, dates decreed year by year).
//!
//! This module owns *which day a holiday falls on in a given year* and *which calendar a
//! customer follows*; it knows nothing of rituals, customers' consent or the clock (a year is
//! always an argument). It reads the calendar files and nothing else.
//!
//! - `rule`: the [`Rule`] enum, [`Rule::date_in`] and the rule-string parser;
//! - `easter`: the Gregorian and Julian computuses;
//! - `load`: the YAML spec and [`load_calendars`], with file:line:col diagnostics.

mod easter;
mod load;
mod rule;

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::civil::Date;

pub use load::{load_calendars, parse_calendar};
pub use rule::{Computus, Ordinal, RULE_FORMS, Rule, RuleError, parse as parse_rule};

/// One country's (or audience's) holidays, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The file stem: `ro`, `ru`, `en-US`, `en-GB`, …
    pub id: String,
    pub holidays: Vec<Holiday>,
    /// The file it was read from.
    pub source: PathBuf,
}

/// A holiday: an id (`mothers_day`), names per language and the rule giving its date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holiday {
    pub id: String,
    /// Language (`en`, `ro`, `ru`) → name.
    pub names: BTreeMap<String, String>,
    pub rule: Rule,
    /// First year the holiday exists (inclusive).
    pub valid_from: Option<i16>,
    /// Last year the holiday exists (inclusive).
    pub valid_until: Option<i16>,
}

impl Holiday {
    /// The date of this holiday's occurrence in `year`, or `None` when it has none that year
    /// (outside `valid_from`..=`valid_until`, or the rule gives no date).
    pub fn date_in(&self, year: i16) -> Option<Date> {
        if self.valid_from.is_some_and(|from| year < from)
            || self.valid_until.is_some_and(|until| year > until)
        {
            return None;
        }
        self.rule.date_in(year)
    }

    /// The name in `locale`'s language (`ro-RO` → `ro`), else the English name, else the id.
    pub fn name(&self, locale: &str) -> &str {
        let language = locale
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        self.names
            .get(&language)
            .or_else(|| self.names.get("en"))
            .map_or(&self.id, |n| n)
    }
}

impl Calendar {
    /// Every holiday that occurs in `year`, sorted by date (file order on the same day).
    pub fn dates_in(&self, year: i16) -> Vec<(Date, &Holiday)> {
        let mut dates: Vec<(Date, &Holiday)> = self
            .holidays
            .iter()
            .filter_map(|h| Some((h.date_in(year)?, h)))
            .collect();
        dates.sort_by_key(|(d, _)| *d);
        dates
    }

    /// The holiday with this id.
    pub fn holiday(&self, id: &str) -> Option<&Holiday> {
        self.holidays.iter().find(|h| h.id == id)
    }
}

/// A calendar id that no file defines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown calendar `{id}`")]
pub struct UnknownCalendar {
    pub id: String,
    /// The ids that do exist, sorted.
    pub known: Vec<String>,
}

impl UnknownCalendar {
    /// "did you mean …" when close to a known id, and the list of known ids.
    pub fn hint(&self) -> String {
        let known = if self.known.is_empty() {
            "none is defined".to_string()
        } else {
            format!("calendars: {}", self.known.join(", "))
        };
        match crate::config::did_you_mean(&self.id, &self.known) {
            Some(best) => format!("did you mean `{best}`? {known}"),
            None => format!("{known} (one file per calendar in config/calendars/<id>.yaml)"),
        }
    }
}

/// Looks a calendar up by id; an unknown id is an error that lists the known ones.
pub fn find_calendar<'a>(
    calendars: &'a BTreeMap<String, Calendar>,
    id: &str,
) -> Result<&'a Calendar, UnknownCalendar> {
    calendars.get(id).ok_or_else(|| UnknownCalendar {
        id: id.to_string(),
        known: calendars.keys().cloned().collect(),
    })
}

/// Where a customer is, as every part of the product sees it (audiences' `countries`, the
/// holiday calendar, `plan`): the `country` attribute (ISO 3166 alpha-2) when set, else the
/// locale's region (`ro-MD` → MD), else the country its language is taken for by the
/// calendars (`ro` → RO, `ru` → RU, `en` → US), else the country of `default_calendar`.
pub fn country_of(attribute: Option<&str>, locale: &str, default_calendar: &str) -> Option<String> {
    let two = |c: &str| {
        let c = c.trim();
        (c.len() == 2 && c.chars().all(|x| x.is_ascii_alphabetic())).then(|| c.to_ascii_uppercase())
    };
    if let Some(c) = attribute.and_then(two) {
        return Some(c);
    }
    let locale = locale.trim().replace('_', "-");
    let mut parts = locale.split('-');
    let language = parts.next().unwrap_or("").to_ascii_lowercase();
    if let Some(region) = parts.next().and_then(two) {
        return Some(region);
    }
    let by_language = match language.as_str() {
        "ro" => Some("RO"),
        "ru" => Some("RU"),
        "en" => Some("US"),
        _ => None,
    };
    let by_default = match default_calendar.trim().to_ascii_lowercase().as_str() {
        "ro" => Some("RO"),
        "ru" => Some("RU"),
        "en-us" => Some("US"),
        "en-gb" => Some("GB"),
        _ => None,
    };
    by_language.or(by_default).map(str::to_string)
}

/// The calendar a customer follows. The country decides when it has a calendar (RO and MD →
/// `ro`, RU → `ru`, GB and UK → `en-GB`, US → `en-US`); otherwise the locale does (`ro*` →
/// `ro`, `ru*` → `ru`, `en-GB` → `en-GB`, `en` and `en-US` → `en-US`); otherwise `default`.
/// Case and `_`/`-` do not matter.
pub fn calendar_for(country: Option<&str>, locale: &str, default: &str) -> String {
    let by_country = match country.map(|c| c.trim().to_ascii_uppercase()).as_deref() {
        Some("RO" | "MD") => Some("ro"),
        Some("RU") => Some("ru"),
        Some("GB" | "UK") => Some("en-GB"),
        Some("US") => Some("en-US"),
        _ => None,
    };
    let locale = locale.trim().replace('_', "-").to_ascii_lowercase();
    let mut parts = locale.split('-');
    let by_locale = match (parts.next(), parts.next()) {
        (Some("ro"), _) => Some("ro"),
        (Some("ru"), _) => Some("ru"),
        (Some("en"), Some("gb" | "uk")) => Some("en-GB"),
        (Some("en"), None | Some("us")) => Some("en-US"),
        _ => None,
    };
    by_country.or(by_locale).unwrap_or(default).to_string()
}

#[cfg(test)]
mod tests;
