use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::DomainError;

/// Resolves an IANA zone name (`Europe/Chisinau`) against the system tz database.
pub fn parse_zone(name: &str) -> Result<TimeZone, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::Zone(name.to_string()));
    }
    TimeZone::get(name).map_err(|_| DomainError::Zone(name.to_string()))
}

/// What a yearly ritual does with a Feb-29 date in a year that has no Feb 29.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Feb29Policy {
    /// Celebrate on Feb 28 (the usual choice: the customer is still in "their" month).
    #[default]
    Feb28,
    /// Celebrate on Mar 1.
    Mar1,
    /// Only celebrate in leap years.
    Skip,
}

/// A date that recurs every year: a birthday (year optional: many people do not give it),
/// a signup or wedding date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct YearlyDate {
    pub year: Option<i16>,
    pub month: i8,
    pub day: i8,
}

impl YearlyDate {
    pub fn new(year: Option<i16>, month: i8, day: i8) -> Result<Self, DomainError> {
        let shown = match year {
            Some(y) => format!("{y:04}-{month:02}-{day:02}"),
            None => format!("--{month:02}-{day:02}"),
        };
        // Feb 29 is valid without a year (checked against a leap year).
        let check_year = year.unwrap_or(2000);
        if Date::new(check_year, month, day).is_err() {
            return Err(DomainError::Date(shown, "no such day in the calendar"));
        }
        if let Some(y) = year
            && !(1900..=2100).contains(&y)
        {
            return Err(DomainError::Date(
                shown,
                "the year must be between 1900 and 2100",
            ));
        }
        Ok(YearlyDate { year, month, day })
    }

    /// Accepts `YYYY-MM-DD`, `--MM-DD` (no year), `MM-DD`, `DD.MM.YYYY` and `DD.MM`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let t = s.trim();
        let bad = || DomainError::Date(t.to_string(), "expected YYYY-MM-DD, --MM-DD or DD.MM.YYYY");
        let num = |x: &str| -> Result<i64, DomainError> {
            if x.is_empty() || !x.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            x.parse::<i64>().map_err(|_| bad())
        };
        let (y, m, d) = if let Some(rest) = t.strip_prefix("--") {
            let (m, d) = rest.split_once('-').ok_or_else(bad)?;
            (None, num(m)?, num(d)?)
        } else if t.contains('.') {
            let parts: Vec<&str> = t.split('.').collect();
            match parts.as_slice() {
                [d, m] => (None, num(m)?, num(d)?),
                [d, m, y] if y.len() == 4 => (Some(num(y)?), num(m)?, num(d)?),
                _ => return Err(bad()),
            }
        } else {
            let parts: Vec<&str> = t.split('-').collect();
            match parts.as_slice() {
                [m, d] => (None, num(m)?, num(d)?),
                [y, m, d] if y.len() == 4 => (Some(num(y)?), num(m)?, num(d)?),
                _ => return Err(bad()),
            }
        };
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return Err(DomainError::Date(
                t.to_string(),
                "month or day out of range",
            ));
        }
        YearlyDate::new(y.map(|y| y as i16), m as i8, d as i8)
    }

    /// `month * 100 + day`: the integer the store indexes so "today's birthdays" is an index probe.
    pub fn month_day(&self) -> i32 {
        self.month as i32 * 100 + self.day as i32
    }

    pub fn is_feb29(&self) -> bool {
        self.month == 2 && self.day == 29
    }

    /// The day this date is celebrated in `year`, or `None` when the policy skips it.
    pub fn in_year(&self, year: i16, policy: Feb29Policy) -> Option<Date> {
        if self.is_feb29() {
            if let Ok(d) = Date::new(year, 2, 29) {
                return Some(d);
            }
            return match policy {
                Feb29Policy::Feb28 => Date::new(year, 2, 28).ok(),
                Feb29Policy::Mar1 => Date::new(year, 3, 1).ok(),
                Feb29Policy::Skip => None,
            };
        }
        Date::new(year, self.month, self.day).ok()
    }

    /// The age reached (or years since the date) on the celebration in `year`, if the year is known.
    pub fn years_at(&self, year: i16) -> Option<i16> {
        self.year.map(|y| year - y).filter(|n| *n >= 0)
    }
}

impl fmt::Display for YearlyDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.year {
            Some(y) => write!(f, "{y:04}-{:02}-{:02}", self.month, self.day),
            None => write!(f, "--{:02}-{:02}", self.month, self.day),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!(
            YearlyDate::parse("1990-03-01").unwrap(),
            YearlyDate {
                year: Some(1990),
                month: 3,
                day: 1
            }
        );
        assert_eq!(
            YearlyDate::parse("--02-29").unwrap(),
            YearlyDate {
                year: None,
                month: 2,
                day: 29
            }
        );
        assert_eq!(
            YearlyDate::parse("01.03.1990").unwrap(),
            YearlyDate {
                year: Some(1990),
                month: 3,
                day: 1
            }
        );
        assert_eq!(YearlyDate::parse("12-31").unwrap().month_day(), 1231);
        for bad in [
            "1990-02-30",
            "1991-02-29",
            "13.13.1990",
            "1990/03/01",
            "",
            "x",
            "1800-01-01",
        ] {
            assert!(YearlyDate::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn feb29_policies() {
        let d = YearlyDate::parse("2000-02-29").unwrap();
        assert_eq!(d.in_year(2024, Feb29Policy::Skip), Some(date(2024, 2, 29)));
        assert_eq!(d.in_year(2027, Feb29Policy::Feb28), Some(date(2027, 2, 28)));
        assert_eq!(d.in_year(2027, Feb29Policy::Mar1), Some(date(2027, 3, 1)));
        assert_eq!(d.in_year(2027, Feb29Policy::Skip), None);
        assert_eq!(d.years_at(2027), Some(27));
    }

    #[test]
    fn zones() {
        assert!(parse_zone("Europe/Bucharest").is_ok());
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
