//! Ritual definitions: `config/rituals/*.yaml` → validated [`Ritual`] values.
//!
//! Two layers: [`spec`] mirrors the YAML file (`deny_unknown_fields`, locations kept with
//! `Spanned`); [`load_rituals`] compiles it into a `Ritual`, reporting every problem with the
//! file, line, column and a hint. This module is pure apart from reading the files: it never
//! touches the store, the templates or the clock.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::civil::Time;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{Diagnostic, Diagnostics, parse_yaml};
use crate::domain::{Channel, Feb29Policy};

/// What makes an occurrence happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A yearly date of the customer (this version: the birthday).
    Yearly {
        date: YearlyField,
        feb29: Feb29Policy,
    },
}

/// Which of the customer's yearly dates a ritual follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YearlyField {
    Birthday,
}

/// How many of the ritual's channels a customer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverPolicy {
    /// One message: the customer's preferred channel when the ritual offers it and the customer
    /// has the contact, otherwise the first of the ritual's channels they can be reached on.
    Preferred,
    /// Every channel of the ritual the customer can be reached on.
    All,
}

/// A validated ritual.
#[derive(Debug, Clone)]
pub struct Ritual {
    pub name: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    /// Local wall-clock time in the customer's zone at which the message becomes due.
    pub send_time: Time,
    pub channels: Vec<Channel>,
    pub deliver: DeliverPolicy,
    /// Folder under `templates/` holding `<locale>/subject.hbs`, `email.html.hbs`, …
    pub template: String,
    /// Opt-out category (defaults to the ritual's name).
    pub category: String,
    pub priority: i32,
    /// `check` warns when an SMS of this ritual needs more segments than this.
    pub sms_max_segments: u32,
    pub source: PathBuf,
    /// Line of `template:` in the source, for template diagnostics.
    pub template_line: u64,
}

pub mod schedule;

mod spec {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RitualSpec {
        pub name: Option<Spanned<String>>,
        pub description: Option<String>,
        pub enabled: Option<bool>,
        pub trigger: Spanned<TriggerSpec>,
        pub send_time: Option<Spanned<String>>,
        pub channels: Spanned<Vec<Spanned<String>>>,
        pub deliver: Option<Spanned<String>>,
        pub template: Spanned<String>,
        pub category: Option<String>,
        pub priority: Option<i32>,
        pub sms_max_segments: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TriggerSpec {
        pub yearly: Option<YearlySpec>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct YearlySpec {
        pub date: Spanned<String>,
        pub feb29: Option<Feb29Policy>,
    }
}

/// Reads every `*.yaml`/`*.yml` in `dir` (sorted by name). Disabled rituals are left out.
/// Every problem in every file is collected before returning.
pub fn load_rituals(dir: &Path) -> Result<Vec<Ritual>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let files = crate::config::yaml_files(
        dir,
        "rituals",
        "set `rituals:` in ritualist.yaml to the folder holding your ritual files",
    )?;
    let mut rituals = Vec::new();
    let mut names = BTreeSet::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::error(&file, 0, 0, format!("cannot read: {e}")));
                continue;
            }
        };
        match parse_ritual(&file, &text) {
            Ok(Some(r)) => {
                if !names.insert(r.name.clone()) {
                    diags.push(
                        Diagnostic::error(
                            &file,
                            1,
                            1,
                            format!("a ritual named `{}` is defined twice", r.name),
                        )
                        .with_hint("ritual names (the file name, or `name:`) must be unique"),
                    );
                }
                rituals.push(r);
            }
            Ok(None) => {}
            Err(d) => diags.extend(d),
        }
    }
    if diags.has_errors() {
        Err(diags)
    } else {
        Ok(rituals)
    }
}

/// Compiles one ritual file. `Ok(None)` when the ritual is disabled.
pub fn parse_ritual(file: &Path, text: &str) -> Result<Option<Ritual>, Diagnostics> {
    let spec: spec::RitualSpec = parse_yaml(file, text).map_err(|d| Diagnostics(vec![d]))?;
    if spec.enabled == Some(false) {
        return Ok(None);
    }
    let mut diags = Diagnostics::default();
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("ritual")
        .to_string();
    let name = match &spec.name {
        Some(n) => {
            if !valid_name(&n.value) {
                diags.push(
                    Diagnostic::at(file, &n.referenced, format!("invalid ritual name `{}`", n.value))
                        .with_hint("use lower-case letters, digits, `_` and `-`, e.g. `birthday` or `thank_you`"),
                );
            }
            n.value.clone()
        }
        None => stem,
    };

    let trigger = match &spec.trigger.value.yearly {
        Some(y) => {
            let date = match y.date.value.as_str() {
                "birthday" => YearlyField::Birthday,
                other => {
                    diags.push(
                        Diagnostic::at(
                            file,
                            &y.date.referenced,
                            format!("unknown yearly date `{other}`"),
                        )
                        .with_hint("this version supports `date: birthday`"),
                    );
                    YearlyField::Birthday
                }
            };
            Some(Trigger::Yearly {
                date,
                feb29: y.feb29.unwrap_or_default(),
            })
        }
        None => {
            diags.push(
                Diagnostic::at(file, &spec.trigger.referenced, "the trigger names no kind")
                    .with_hint("write `trigger: { yearly: { date: birthday, feb29: feb28 } }`"),
            );
            None
        }
    };

    let send_time = match &spec.send_time {
        None => Time::constant(10, 0, 0, 0),
        Some(s) => match parse_hhmm(&s.value) {
            Some(t) => t,
            None => {
                diags.push(
                    Diagnostic::at(
                        file,
                        &s.referenced,
                        format!("invalid send_time `{}`", s.value),
                    )
                    .with_hint("write a 24-hour local time in quotes, e.g. \"10:00\" or \"18:30\""),
                );
                Time::midnight()
            }
        },
    };

    let mut channels = Vec::new();
    for c in &spec.channels.value {
        match c.value.parse::<Channel>() {
            Ok(ch) if !channels.contains(&ch) => channels.push(ch),
            Ok(ch) => diags.push(Diagnostic::at(
                file,
                &c.referenced,
                format!("channel `{ch}` is listed twice"),
            )),
            Err(e) => diags.push(
                Diagnostic::at(file, &c.referenced, e.to_string())
                    .with_hint("channels: [email, sms]"),
            ),
        }
    }
    if spec.channels.value.is_empty() {
        diags.push(
            Diagnostic::at(file, &spec.channels.referenced, "no channels")
                .with_hint("channels: [email, sms]"),
        );
    }

    let deliver = match &spec.deliver {
        None => DeliverPolicy::Preferred,
        Some(d) => {
            match d.value.as_str() {
                "preferred" => DeliverPolicy::Preferred,
                "all" => DeliverPolicy::All,
                other => {
                    diags.push(
                    Diagnostic::at(file, &d.referenced, format!("unknown deliver policy `{other}`"))
                        .with_hint("`preferred` (one message, on the customer's preferred channel) or `all`"),
                );
                    DeliverPolicy::Preferred
                }
            }
        }
    };

    if !valid_name(&spec.template.value) {
        diags.push(
            Diagnostic::at(
                file,
                &spec.template.referenced,
                format!("invalid template folder `{}`", spec.template.value),
            )
            .with_hint("name a folder under templates/, e.g. `birthday`"),
        );
    }

    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Some(Ritual {
        category: spec.category.clone().unwrap_or_else(|| name.clone()),
        name,
        description: spec.description,
        trigger: trigger.expect("checked above"),
        send_time,
        channels,
        deliver,
        template: spec.template.value.clone(),
        priority: spec.priority.unwrap_or(0),
        sms_max_segments: spec.sms_max_segments.unwrap_or(2).max(1),
        source: file.to_path_buf(),
        template_line: spec.template.referenced.line(),
    }))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "description: Birthday greeting\ntrigger:\n  yearly:\n    date: birthday\n    feb29: mar1\nsend_time: \"09:30\"\nchannels: [email, sms]\ntemplate: birthday\n";

    #[test]
    fn parses_a_birthday_ritual() {
        let r = parse_ritual(Path::new("rituals/birthday.yaml"), GOOD)
            .unwrap()
            .unwrap();
        assert_eq!(r.name, "birthday");
        assert_eq!(
            r.trigger,
            Trigger::Yearly {
                date: YearlyField::Birthday,
                feb29: Feb29Policy::Mar1
            }
        );
        assert_eq!(r.send_time, Time::constant(9, 30, 0, 0));
        assert_eq!(r.channels, vec![Channel::Email, Channel::Sms]);
        assert_eq!(r.category, "birthday");
        assert_eq!(r.template_line, 8);
    }

    #[test]
    fn typo_in_a_key_names_file_line_and_fix() {
        let text = GOOD.replace("template:", "templat:");
        let d = parse_ritual(Path::new("rituals/birthday.yaml"), &text).unwrap_err();
        let s = d.to_string();
        assert!(s.starts_with("rituals/birthday.yaml:8:"), "{s}");
        assert!(s.contains("did you mean `template`"), "{s}");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let text = GOOD
            .replace("\"09:30\"", "\"25:00\"")
            .replace("[email, sms]", "[email, fax]");
        let d = parse_ritual(Path::new("b.yaml"), &text).unwrap_err();
        assert_eq!(d.0.len(), 2, "{d}");
        assert_eq!(d.0[0].line, 6);
        assert_eq!(d.0[1].line, 7);
    }

    #[test]
    fn bad_feb29_policy_is_an_error_with_a_line() {
        let text = GOOD.replace("mar1", "march");
        let d = parse_ritual(Path::new("b.yaml"), &text).unwrap_err();
        assert_eq!(d.0[0].line, 5, "{d}");
    }

    #[test]
    fn disabled_ritual_is_skipped() {
        let text = format!("enabled: false\n{GOOD}");
        assert!(parse_ritual(Path::new("b.yaml"), &text).unwrap().is_none());
    }
}
