//! Checks of [`ImportOptions`](super::ImportOptions) values, done once before any row is read.

use jiff::tz::TimeZone;

use crate::domain::{Locale, parse_zone};

use super::ImportError;

/// `"40"`, `"+40"` or `" 40 "` → `"40"`: one to three digits, not starting with 0.
pub(super) fn country_code(code: Option<&str>) -> Result<Option<String>, ImportError> {
    let Some(raw) = code else { return Ok(None) };
    let digits = raw.trim().trim_start_matches('+');
    if !(1..=3).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(ImportError::InvalidOption {
            option: "default_country_code",
            reason: format!(
                "`{raw}` is not a country calling code: expected 1 to 3 digits such as `40` or `373`"
            ),
        });
    }
    Ok(Some(digits.to_string()))
}

pub(super) fn locale(locale: &str) -> Result<Locale, ImportError> {
    Locale::parse(locale).map_err(|e| ImportError::InvalidOption {
        option: "default_locale",
        reason: e.to_string(),
    })
}

/// The zone and its IANA name as the tz database spells it (`europe/bucharest` → `Europe/Bucharest`).
pub(super) fn zone(name: &str) -> Result<(TimeZone, String), ImportError> {
    let tz = parse_zone(name).map_err(|e| ImportError::InvalidOption {
        option: "default_time_zone",
        reason: e.to_string(),
    })?;
    let iana = tz.iana_name().unwrap_or(name.trim()).to_string();
    Ok((tz, iana))
}
