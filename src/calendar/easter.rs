//! The two Easter computuses, as pure functions of the year.
//!
//! Western Easter follows the Gregorian computus (the "anonymous Gregorian algorithm" of
//! Meeus, Jones and Butcher). Orthodox Easter follows the Julian computus, whose result is a
//! Julian-calendar date; it is converted to the Gregorian calendar by adding the gap between
//! the two calendars (13 days for 1900–2099, 14 days for 2100–2199, …).

use jiff::civil::{Date, date};

/// Years both computuses are defined for here: the Gregorian calendar starts in 1583.
pub const YEARS: std::ops::RangeInclusive<i16> = 1583..=9999;

/// Western (Gregorian) Easter Sunday of `year`; `None` outside [`YEARS`].
pub fn western(year: i16) -> Option<Date> {
    if !YEARS.contains(&year) {
        return None;
    }
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let n = h + l - 7 * m + 114;
    Some(date(year, (n / 31) as i8, (n % 31 + 1) as i8))
}

/// Orthodox Easter Sunday of `year` as a Gregorian date; `None` outside [`YEARS`].
pub fn orthodox(year: i16) -> Option<Date> {
    if !YEARS.contains(&year) {
        return None;
    }
    let y = i32::from(year);
    let a = y % 4;
    let b = y % 7;
    let c = y % 19;
    let d = (19 * c + 15) % 30;
    let e = (2 * a + 4 * b - d + 34) % 7;
    let n = d + e + 114;
    // A Julian date between March 22 and April 25: March and April have the same length in
    // both calendars, so the same numbers name a valid Gregorian date to shift from.
    let julian = date(year, (n / 31) as i8, (n % 31 + 1) as i8);
    // The Julian calendar falls one day further behind in every century year that is not a
    // multiple of 400 (its leap day comes in February, before any Easter).
    let gap = y / 100 - y / 400 - 2;
    julian
        .checked_add(jiff::Span::new().days(i64::from(gap)))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_dates() {
        let table = [
            (2024, date(2024, 3, 31), date(2024, 5, 5)),
            (2025, date(2025, 4, 20), date(2025, 4, 20)),
            (2026, date(2026, 4, 5), date(2026, 4, 12)),
            (2027, date(2027, 3, 28), date(2027, 5, 2)),
            (2028, date(2028, 4, 16), date(2028, 4, 16)),
            (2000, date(2000, 4, 23), date(2000, 4, 30)),
        ];
        for (year, w, o) in table {
            assert_eq!(western(year), Some(w), "western {year}");
            assert_eq!(orthodox(year), Some(o), "orthodox {year}");
        }
    }

    #[test]
    fn out_of_range_years_have_no_easter() {
        assert_eq!(western(1582), None);
        assert_eq!(orthodox(-5), None);
    }

    proptest::proptest! {
        #[test]
        fn western_easter_is_a_sunday_between_mar22_and_apr25(year in 1900i16..=2099) {
            let d = western(year).unwrap();
            proptest::prop_assert_eq!(d.weekday(), jiff::civil::Weekday::Sunday);
            proptest::prop_assert!(d >= date(year, 3, 22) && d <= date(year, 4, 25), "{}", d);
        }

        #[test]
        fn orthodox_easter_is_a_sunday_between_apr4_and_may8(year in 1900i16..=2099) {
            let d = orthodox(year).unwrap();
            proptest::prop_assert_eq!(d.weekday(), jiff::civil::Weekday::Sunday);
            proptest::prop_assert!(d >= date(year, 4, 4) && d <= date(year, 5, 8), "{}", d);
        }
    }
}
