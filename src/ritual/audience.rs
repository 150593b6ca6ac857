//! Who a ritual is for: conditions on customer facts, and named segments (`segments.yaml`)
//! that rituals reference. Pure: conditions are data; [`Conditions::matches`] is a function of
//! the facts and the local date.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{Diagnostic, Diagnostics, parse_yaml};

/// An inclusive range; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Range {
    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

/// What an audience condition can look at, computed once per customer and local date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudienceFacts<'a> {
    pub orders: i64,
    /// In major units of the shop's currency (minor / 100).
    pub total_spent: f64,
    /// `None` when the customer never ordered.
    pub days_since_last_order: Option<i64>,
    pub days_since_signup: Option<i64>,
    pub locale: &'a str,
    pub country: Option<&'a str>,
    pub attributes: Option<&'a BTreeMap<String, String>>,
}

/// All conditions must hold. An unset condition holds for everyone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditions {
    pub orders: Option<Range>,
    pub total_spent: Option<Range>,
    pub days_since_last_order: Option<Range>,
    pub days_since_signup: Option<Range>,
    /// Locale prefixes (`ro` matches `ro` and `ro-MD`).
    pub locales: Vec<String>,
    /// ISO 3166 alpha-2, upper case.
    pub countries: Vec<String>,
    /// Attribute name → accepted values (any of).
    pub attributes: BTreeMap<String, Vec<String>>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    pub fn matches(&self, f: &AudienceFacts) -> bool {
        if let Some(r) = self.orders
            && !r.contains(f.orders as f64)
        {
            return false;
        }
        if let Some(r) = self.total_spent
            && !r.contains(f.total_spent)
        {
            return false;
        }
        if let Some(r) = self.days_since_last_order {
            match f.days_since_last_order {
                Some(d) if r.contains(d as f64) => {}
                _ => return false,
            }
        }
        if let Some(r) = self.days_since_signup {
            match f.days_since_signup {
                Some(d) if r.contains(d as f64) => {}
                _ => return false,
            }
        }
        if !self.locales.is_empty() {
            let loc = f.locale.to_ascii_lowercase();
            let ok = self.locales.iter().any(|p| {
                loc == *p || (loc.starts_with(p.as_str()) && loc[p.len()..].starts_with('-'))
            });
            if !ok {
                return false;
            }
        }
        if !self.countries.is_empty() {
            match f.country {
                Some(c) if self.countries.iter().any(|x| x.eq_ignore_ascii_case(c)) => {}
                _ => return false,
            }
        }
        for (k, accepted) in &self.attributes {
            match f.attributes.and_then(|a| a.get(k)) {
                Some(v) if accepted.iter().any(|x| x == v) => {}
                _ => return false,
            }
        }
        true
    }
}

/// A ritual's audience: its own conditions, and (when any are named) membership of at least
/// one of the segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audience {
    pub segments: Vec<String>,
    pub conditions: Conditions,
}

impl Audience {
    pub fn matches(&self, segments: &Segments, f: &AudienceFacts) -> bool {
        if !self.conditions.matches(f) {
            return false;
        }
        self.segments.is_empty()
            || self
                .segments
                .iter()
                .any(|s| segments.0.get(s).is_some_and(|c| c.matches(f)))
    }
}

/// The named segments of `segments.yaml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Segments(pub BTreeMap<String, Conditions>);

impl Segments {
    /// The names of the segments `f` belongs to (for templates and `plan`).
    pub fn of(&self, f: &AudienceFacts) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, c)| c.matches(f))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

pub(crate) mod spec {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RangeSpec {
        pub min: Option<f64>,
        pub max: Option<f64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    pub enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    /// Conditions as written; `segments` is only allowed in a ritual's audience.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConditionsSpec {
        pub segments: Option<Spanned<Vec<Spanned<String>>>>,
        pub orders: Option<Spanned<RangeSpec>>,
        pub total_spent: Option<Spanned<RangeSpec>>,
        pub days_since_last_order: Option<Spanned<RangeSpec>>,
        pub days_since_signup: Option<Spanned<RangeSpec>>,
        pub locales: Option<Vec<String>>,
        pub countries: Option<Spanned<Vec<String>>>,
        pub attributes: Option<BTreeMap<String, OneOrMany>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SegmentsFile {
        pub segments: BTreeMap<String, Spanned<ConditionsSpec>>,
    }
}

/// Compiles conditions, reporting empty or inverted ranges and malformed countries.
pub(crate) fn compile_conditions(
    file: &Path,
    s: &spec::ConditionsSpec,
    diags: &mut Diagnostics,
) -> Conditions {
    let range = |r: &Option<Spanned<spec::RangeSpec>>, what: &str, diags: &mut Diagnostics| {
        let r = r.as_ref()?;
        let (min, max) = (r.value.min, r.value.max);
        if min.is_none() && max.is_none() {
            diags.push(
                Diagnostic::at(
                    file,
                    &r.referenced,
                    format!("`{what}` sets neither min nor max"),
                )
                .with_hint(format!(
                    "{what}: {{ min: 1 }} or {what}: {{ min: 2, max: 10 }}"
                )),
            );
        }
        if let (Some(a), Some(b)) = (min, max)
            && a > b
        {
            diags.push(
                Diagnostic::at(
                    file,
                    &r.referenced,
                    format!("`{what}`: min {a} is above max {b}"),
                )
                .with_hint("min and max are inclusive; swap them"),
            );
        }
        if min.is_some_and(|v| v < 0.0) || max.is_some_and(|v| v < 0.0) {
            diags.push(
                Diagnostic::at(file, &r.referenced, format!("`{what}` cannot be negative"))
                    .with_hint("counts, days and amounts start at 0"),
            );
        }
        Some(Range { min, max })
    };
    let countries = match &s.countries {
        None => Vec::new(),
        Some(c) => {
            let mut out = Vec::new();
            for x in &c.value {
                if x.len() != 2 || !x.chars().all(|ch| ch.is_ascii_alphabetic()) {
                    diags.push(
                        Diagnostic::at(file, &c.referenced, format!("`{x}` is not a country code"))
                            .with_hint("two-letter ISO 3166 codes, e.g. [RO, MD]"),
                    );
                }
                out.push(x.to_ascii_uppercase());
            }
            out
        }
    };
    Conditions {
        orders: range(&s.orders, "orders", diags),
        total_spent: range(&s.total_spent, "total_spent", diags),
        days_since_last_order: range(&s.days_since_last_order, "days_since_last_order", diags),
        days_since_signup: range(&s.days_since_signup, "days_since_signup", diags),
        locales: s
            .locales
            .iter()
            .flatten()
            .map(|l| l.to_ascii_lowercase().replace('_', "-"))
            .collect(),
        countries,
        attributes: s
            .attributes
            .iter()
            .flatten()
            .map(|(k, v)| {
                let vals = match v {
                    spec::OneOrMany::One(x) => vec![x.clone()],
                    spec::OneOrMany::Many(xs) => xs.clone(),
                };
                (k.clone(), vals)
            })
            .collect(),
    }
}

/// Reads `segments.yaml`. A missing file is no segments.
pub fn load_segments(file: &Path) -> Result<Segments, Diagnostics> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Segments::default()),
        Err(e) => {
            return Err(Diagnostics(vec![Diagnostic::error(
                file,
                0,
                0,
                format!("cannot read: {e}"),
            )]));
        }
    };
    let parsed: spec::SegmentsFile = parse_yaml(file, &text).map_err(|d| Diagnostics(vec![d]))?;
    let mut diags = Diagnostics::default();
    let mut out = BTreeMap::new();
    for (name, s) in &parsed.segments {
        if let Some(refs) = &s.value.segments {
            diags.push(
                Diagnostic::at(file, &refs.referenced, "a segment cannot name other segments")
                    .with_hint("write the conditions out; rituals combine segments with `audience: { segments: [a, b] }`"),
            );
        }
        if !super::valid_name(name) {
            diags.push(
                Diagnostic::at(
                    file,
                    &s.referenced,
                    format!("invalid segment name `{name}`"),
                )
                .with_hint("lower-case letters, digits, `_` and `-`, e.g. `vip`"),
            );
        }
        out.insert(name.clone(), compile_conditions(file, &s.value, &mut diags));
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(Segments(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> AudienceFacts<'static> {
        AudienceFacts {
            orders: 3,
            total_spent: 250.0,
            days_since_last_order: Some(40),
            days_since_signup: Some(400),
            locale: "ro-MD",
            country: Some("MD"),
            attributes: None,
        }
    }

    #[test]
    fn ranges_locales_countries() {
        let mut c = Conditions {
            orders: Some(Range {
                min: Some(2.0),
                max: None,
            }),
            locales: vec!["ro".into()],
            countries: vec!["MD".into(), "RO".into()],
            ..Default::default()
        };
        assert!(c.matches(&facts()));
        c.locales = vec!["r".into()];
        assert!(!c.matches(&facts()), "a prefix stops at a subtag boundary");
        c.locales.clear();
        c.days_since_last_order = Some(Range {
            min: Some(91.0),
            max: None,
        });
        assert!(!c.matches(&facts()));
        let mut never = facts();
        never.days_since_last_order = None;
        assert!(!c.matches(&never), "never ordered is not 'sleeping'");
    }

    #[test]
    fn segments_file_reports_lines() {
        let dir = std::env::temp_dir().join(format!("ritualist-seg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("segments.yaml");
        std::fs::write(
            &f,
            "segments:\n  vip:\n    total_spent: { min: 1000 }\n  bad:\n    orders: { min: 5, max: 2 }\n",
        )
        .unwrap();
        let e = load_segments(&f).unwrap_err();
        assert_eq!(e.0[0].line, 5, "{e}");
        std::fs::write(&f, "segments:\n  vip:\n    total_spend: { min: 1000 }\n").unwrap();
        let e = load_segments(&f).unwrap_err();
        assert!(e.to_string().contains("did you mean `total_spent`"), "{e}");
        std::fs::write(&f, "segments:\n  vip:\n    total_spent: { min: 1000 }\n").unwrap();
        let s = load_segments(&f).unwrap();
        let mut rich = facts();
        rich.total_spent = 1500.0;
        assert_eq!(s.of(&rich), vec!["vip"]);
        assert!(s.of(&facts()).is_empty());
        assert!(load_segments(&dir.join("none.yaml")).unwrap().0.is_empty());
    }
}
