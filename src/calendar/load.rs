//! Calendar files → [`Calendar`] values.
//!
//! Two layers, as for rituals: `spec` mirrors the file (`deny_unknown_fields`, locations kept
//! with `Spanned`); [`parse_calendar`] compiles it, reporting every problem with the file, line,
//! column and a hint. A rule string's diagnostic points at the word at fault inside the string.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::civil::Date;
use serde_saphyr::{Location, Spanned};

use super::rule::{self, RULE_FORMS, Rule};
use super::{Calendar, Holiday};
use crate::config::{Diagnostic, Diagnostics, parse_yaml};

mod spec {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserialize;
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_saphyr::Spanned;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CalendarSpec {
        pub holidays: Entries<String, Spanned<HolidaySpec>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HolidaySpec {
        pub name: Option<Entries<String, Spanned<String>>>,
        pub rule: Option<Spanned<String>>,
        pub dates: Option<Spanned<Entries<i16, Spanned<String>>>>,
        pub valid_from: Option<Spanned<i16>>,
        pub valid_until: Option<Spanned<i16>>,
    }

    /// A YAML mapping in file order, each key with its location. Duplicate keys (a holiday
    /// id used twice) are refused by the parser, with their line.
    #[derive(Debug)]
    pub struct Entries<K, V>(pub Vec<(Spanned<K>, V)>);

    impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct EntriesVisitor<K, V>(PhantomData<(K, V)>);
            impl<'de, K, V> Visitor<'de> for EntriesVisitor<K, V>
            where
                K: Deserialize<'de>,
                V: Deserialize<'de>,
            {
                type Value = Entries<K, V>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a mapping")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut entries = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        entries.push(entry);
                    }
                    Ok(Entries(entries))
                }
            }
            deserializer.deserialize_map(EntriesVisitor(PhantomData))
        }
    }
}

/// Reads every `*.yaml`/`*.yml` in `dir`; the file stem is the calendar id. Every problem in
/// every file is collected before returning.
pub fn load_calendars(dir: &Path) -> Result<BTreeMap<String, Calendar>, Diagnostics> {
    let files = crate::config::yaml_files(
        dir,
        "calendars",
        "holiday calendars live in config/calendars/<id>.yaml (ro.yaml, en-US.yaml, …)",
    )?;
    let mut diags = Diagnostics::default();
    let mut calendars = BTreeMap::new();
    for file in files {
        let id = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if !valid_calendar_id(&id) {
            diags.push(
                Diagnostic::error(
                    &file,
                    0,
                    0,
                    format!("invalid calendar id `{id}` (the file name)"),
                )
                .with_hint(
                    "name the file after a country or language: ro.yaml, ru.yaml, en-US.yaml",
                ),
            );
            continue;
        }
        if calendars.contains_key(&id) {
            diags.push(
                Diagnostic::error(&file, 0, 0, format!("calendar `{id}` is defined twice"))
                    .with_hint("keep one of <id>.yaml and <id>.yml"),
            );
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::error(&file, 0, 0, format!("cannot read: {e}")));
                continue;
            }
        };
        match parse_calendar(&file, &id, &text) {
            Ok(c) => {
                calendars.insert(id, c);
            }
            Err(d) => diags.extend(d),
        }
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(calendars)
    }
}

/// Compiles one calendar file.
pub fn parse_calendar(file: &Path, id: &str, text: &str) -> Result<Calendar, Diagnostics> {
    let spec: spec::CalendarSpec = parse_yaml(file, text).map_err(|d| Diagnostics(vec![d]))?;
    let mut diags = Diagnostics::default();
    let mut holidays = Vec::new();
    for (key, h) in spec.holidays.0 {
        let hid = key.value.clone();
        if !valid_holiday_id(&hid) {
            diags.push(
                Diagnostic::at(file, &key.referenced, format!("invalid holiday id `{hid}`"))
                    .with_hint("use lower-case letters, digits and `_`, e.g. `mothers_day`"),
            );
        }
        let h = h.value;
        let names = holiday_names(file, h.name, &mut diags);
        let rule = holiday_rule(file, text, &key, (h.rule, h.dates), &mut diags);
        if let (Some(from), Some(until)) = (&h.valid_from, &h.valid_until)
            && from.value > until.value
        {
            diags.push(
                Diagnostic::at(
                    file,
                    &until.referenced,
                    format!(
                        "holiday `{hid}`: valid_until {} is before valid_from {}",
                        until.value, from.value
                    ),
                )
                .with_hint("both years are inclusive: valid_from: 2021 and valid_until: 2030"),
            );
        }
        if let Some(rule) = rule {
            holidays.push(Holiday {
                id: hid,
                names,
                rule,
                valid_from: h.valid_from.map(|s| s.value),
                valid_until: h.valid_until.map(|s| s.value),
            });
        }
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Calendar {
        id: id.to_string(),
        holidays,
        source: file.to_path_buf(),
    })
}

/// `name:` of a holiday: language code → name.
fn holiday_names(
    file: &Path,
    name: Option<spec::Entries<String, Spanned<String>>>,
    diags: &mut Diagnostics,
) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for (lang, name) in name.map(|n| n.0).unwrap_or_default() {
        if !valid_language(&lang.value) {
            diags.push(
                Diagnostic::at(
                    file,
                    &lang.referenced,
                    format!("`{}` is not a language code", lang.value),
                )
                .with_hint("name keys are two- or three-letter language codes: en, ro, ru"),
            );
        } else if name.value.trim().is_empty() {
            diags.push(Diagnostic::at(
                file,
                &name.referenced,
                format!("the `{}` name is empty", lang.value),
            ));
        }
        names.insert(lang.value, name.value);
    }
    names
}

/// `dates:` of a holiday: year → `MM-DD`.
type DatesSpec = spec::Entries<i16, Spanned<String>>;

/// A holiday's `rule:` or `dates:` (exactly one); a rule's error points inside the string.
fn holiday_rule(
    file: &Path,
    text: &str,
    key: &Spanned<String>,
    given: (Option<Spanned<String>>, Option<Spanned<DatesSpec>>),
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let hid = &key.value;
    match given {
        (Some(r), None) => match rule::parse(&r.value) {
            Ok(rule) => Some(rule),
            Err(e) => {
                let mut hint = String::new();
                if let Some(s) = &e.suggestion {
                    hint = format!("did you mean `{s}`? ");
                }
                hint.push_str(RULE_FORMS);
                let column = column_in_scalar(text, &r.referenced, e.at);
                diags.push(
                    Diagnostic::error(
                        file,
                        r.referenced.line(),
                        column,
                        format!("holiday `{hid}`: {}", e.message),
                    )
                    .with_hint(hint),
                );
                None
            }
        },
        (None, Some(dates)) => compile_dates(file, hid, dates, diags),
        (Some(_), Some(dates)) => {
            let message = format!("holiday `{hid}` has both `rule:` and `dates:`");
            diags.push(Diagnostic::at(file, &dates.referenced, message).with_hint(
                "keep `rule:` for a date computed every year, \
                 or `dates:` for dates decreed year by year",
            ));
            None
        }
        (None, None) => {
            diags.push(
                Diagnostic::at(
                    file,
                    &key.referenced,
                    format!("holiday `{hid}` has no `rule:` or `dates:`"),
                )
                .with_hint(RULE_FORMS),
            );
            None
        }
    }
}

/// `dates: {2026: 01-09, 2027: 2027-01-08}` → year → date.
fn compile_dates(
    file: &Path,
    hid: &str,
    dates: Spanned<spec::Entries<i16, Spanned<String>>>,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let hint = "write each year's date as `YEAR: MM-DD`, e.g. dates: {2025: 12-31, 2026: 01-09}";
    if dates.value.0.is_empty() {
        diags.push(
            Diagnostic::at(
                file,
                &dates.referenced,
                format!("holiday `{hid}` lists no dates"),
            )
            .with_hint(hint),
        );
        return None;
    }
    let mut out = BTreeMap::new();
    let before = diags.0.len();
    for (year, value) in dates.value.0 {
        let y = year.value;
        // `2026-01-09` is accepted too, as long as the year is the key's.
        let month_day = match value.value.split_once('-') {
            Some((prefix, rest)) if prefix.len() == 4 => {
                if prefix != y.to_string() {
                    diags.push(
                        Diagnostic::at(
                            file,
                            &value.referenced,
                            format!("holiday `{hid}`: the date `{}` is not in {y}", value.value),
                        )
                        .with_hint(hint),
                    );
                    continue;
                }
                rest
            }
            _ => value.value.as_str(),
        };
        let date = rule::parse_month_day(month_day)
            .map_err(|m| m.to_string())
            .and_then(|(m, d)| {
                Date::new(y, m, d).map_err(|_| format!("{y}-{month_day} does not exist"))
            });
        match date {
            Ok(d) if super::easter::YEARS.contains(&y) => {
                out.insert(y, d);
            }
            Ok(_) => diags.push(
                Diagnostic::at(
                    file,
                    &year.referenced,
                    format!("holiday `{hid}`: year {y} is out of range"),
                )
                .with_hint("years from 1583 to 9999"),
            ),
            Err(m) => diags.push(
                Diagnostic::at(file, &value.referenced, format!("holiday `{hid}`: {m}"))
                    .with_hint(hint),
            ),
        }
    }
    (diags.0.len() == before).then_some(Rule::Dates(out))
}

/// The column of the character `at` inside a scalar that starts at `loc` (plain or quoted).
fn column_in_scalar(text: &str, loc: &Location, at: usize) -> u64 {
    let quoted = text
        .lines()
        .nth(loc.line().saturating_sub(1) as usize)
        .and_then(|l| l.chars().nth(loc.column().saturating_sub(1) as usize))
        .is_some_and(|c| c == '"' || c == '\'');
    loc.column() + u64::from(quoted) + at as u64
}

fn valid_calendar_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_holiday_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_language(s: &str) -> bool {
    (2..=3).contains(&s.len()) && s.chars().all(|c| c.is_ascii_lowercase())
}
