//! The `engine:` section of ritualist.yaml: rules that hold across rituals — frequency caps,
//! quiet hours per channel, how far back a restarted daemon catches up, the segments file and
//! the calendar of customers no country or locale places.

use std::path::{Path, PathBuf};

use jiff::civil::Time;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EngineSpec {
    segments: Option<String>,
    default_calendar: Option<String>,
    frequency_caps: Option<Vec<Spanned<CapSpec>>>,
    quiet_hours: Option<QuietSpec>,
    catch_up_days: Option<Spanned<u32>>,
    survey_window_days: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapSpec {
    max: u32,
    days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietSpec {
    email: Option<Spanned<String>>,
    sms: Option<Spanned<String>>,
}

/// At most `max` messages per customer in any `days` consecutive local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    pub days: u32,
}

/// The local hours a channel may send in: `from` inclusive to `until` exclusive; `from >
/// until` spans midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedHours {
    pub from: Time,
    pub until: Time,
}

impl std::fmt::Display for AllowedHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.from.hour(),
            self.from.minute(),
            self.until.hour(),
            self.until.minute()
        )
    }
}

impl std::str::FromStr for AllowedHours {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (a, b) = s.trim().split_once('-').ok_or(())?;
        let t = |x: &str| -> Result<Time, ()> {
            let (h, m) = x.trim().split_once(':').ok_or(())?;
            if m.len() != 2 {
                return Err(());
            }
            let h: i8 = h.parse().map_err(|_| ())?;
            let m: i8 = m.parse().map_err(|_| ())?;
            if h == 24 && m == 0 {
                return Ok(Time::MAX);
            }
            Time::new(h, m, 0, 0).map_err(|_| ())
        };
        let (from, until) = (t(a)?, t(b)?);
        if from == until {
            return Err(());
        }
        Ok(AllowedHours { from, until })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub segments_file: PathBuf,
    pub default_calendar: String,
    pub frequency_caps: Vec<FrequencyCap>,
    /// `None`: the channel sends at any hour.
    pub email_hours: Option<AllowedHours>,
    pub sms_hours: Option<AllowedHours>,
    /// How many days of missed occurrences a restarted daemon looks back over.
    pub catch_up_days: u32,
    /// At most one survey per customer in any this many days, whatever the number of orders
    /// (0: no limit). Default 30.
    pub survey_window_days: u32,
}

impl EngineConfig {
    pub fn allowed_hours(&self, channel: crate::domain::Channel) -> Option<AllowedHours> {
        match channel {
            crate::domain::Channel::Email => self.email_hours,
            crate::domain::Channel::Sms => self.sms_hours,
        }
    }
}

const HOURS_HINT: &str =
    "the hours a channel MAY send in, local time: \"09:00-21:00\"; `none` for any hour";

pub(super) fn compile(
    path: &Path,
    spec: Option<&EngineSpec>,
    rel: impl Fn(&str) -> PathBuf,
    diags: &mut Diagnostics,
) -> EngineConfig {
    let hours = |s: Option<&Spanned<String>>,
                 default: Option<AllowedHours>,
                 diags: &mut Diagnostics| match s {
        None => default,
        Some(s) if s.value.trim() == "none" => None,
        Some(s) => match s.value.parse::<AllowedHours>() {
            Ok(h) => Some(h),
            Err(()) => {
                diags.push(
                    Diagnostic::at(path, &s.referenced, format!("invalid hours `{}`", s.value))
                        .with_hint(HOURS_HINT),
                );
                default
            }
        },
    };
    let quiet = spec.and_then(|s| s.quiet_hours.as_ref());
    let mut caps = Vec::new();
    for c in spec
        .and_then(|s| s.frequency_caps.as_ref())
        .into_iter()
        .flatten()
    {
        if c.value.max == 0 || c.value.days == 0 || c.value.days > 366 {
            diags.push(
                Diagnostic::at(
                    path,
                    &c.referenced,
                    "a frequency cap needs max ≥ 1 and 1 ≤ days ≤ 366",
                )
                .with_hint("{ max: 2, days: 7 } = at most 2 messages per customer in any 7 days"),
            );
            continue;
        }
        caps.push(FrequencyCap {
            max: c.value.max,
            days: c.value.days,
        });
    }
    let catch_up_days = match spec.and_then(|s| s.catch_up_days.as_ref()) {
        None => 7,
        Some(c) if c.value == 0 || c.value > 60 => {
            diags.push(
                Diagnostic::at(
                    path,
                    &c.referenced,
                    "catch_up_days must be between 1 and 60",
                )
                .with_hint("how many days back a restarted daemon looks for occurrences it missed"),
            );
            7
        }
        Some(c) => c.value,
    };
    let survey_window_days = match spec.and_then(|s| s.survey_window_days.as_ref()) {
        None => 30,
        Some(c) if c.value > 366 => {
            diags.push(
                Diagnostic::at(
                    path,
                    &c.referenced,
                    "survey_window_days must be between 0 and 366",
                )
                .with_hint(
                    "at most one survey per customer in any N days (default 30; 0: no limit)",
                ),
            );
            30
        }
        Some(c) => c.value,
    };
    EngineConfig {
        segments_file: rel(spec
            .and_then(|s| s.segments.as_deref())
            .unwrap_or("segments.yaml")),
        default_calendar: spec
            .and_then(|s| s.default_calendar.clone())
            .unwrap_or_else(|| "en-US".into()),
        frequency_caps: caps,
        email_hours: hours(quiet.and_then(|q| q.email.as_ref()), None, diags),
        sms_hours: hours(
            quiet.and_then(|q| q.sms.as_ref()),
            Some(AllowedHours {
                from: Time::constant(9, 0, 0, 0),
                until: Time::constant(21, 0, 0, 0),
            }),
            diags,
        ),
        catch_up_days,
        survey_window_days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_and_print() {
        let h: AllowedHours = "09:00-21:00".parse().unwrap();
        assert_eq!(h.to_string(), "09:00-21:00");
        assert!("21:00-09:00".parse::<AllowedHours>().is_ok());
        assert!("9-21".parse::<AllowedHours>().is_err());
        assert!("09:00-09:00".parse::<AllowedHours>().is_err());
    }
}
