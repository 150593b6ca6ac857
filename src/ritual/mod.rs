//! Ritual definitions: `config/rituals/*.yaml` → validated [`Ritual`] values.
//!
//! Two layers: [`spec`] mirrors the YAML file (`deny_unknown_fields`, locations kept with
//! `Spanned`); [`load_rituals`] compiles it into a `Ritual`, reporting every problem with the
//! file, line, column and a hint. This module is pure apart from reading the files: it never
//! touches the store, the templates or the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use jiff::civil::Time;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{Diagnostic, Diagnostics, parse_yaml};
use crate::domain::{Channel, Feb29Policy};

pub mod audience;
pub mod schedule;
mod trigger;

pub use audience::{Audience, AudienceFacts, Conditions, Range, Segments, load_segments};
pub use schedule::CronSchedule;

/// What makes an occurrence happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A yearly date of the customer, `offset_days` before (negative) or after it; with
    /// `milestones`, only those anniversaries (1st, 5th, …; the year must be known).
    Yearly {
        date: YearlyField,
        offset_days: i32,
        milestones: Option<Vec<i16>>,
        feb29: Feb29Policy,
    },
    /// Holidays of the customer's calendar, by id, `offset_days` before or after.
    Holiday { ids: Vec<String>, offset_days: i32 },
    /// A recurring schedule in the customer's local time.
    Schedule { cron: CronSchedule },
    /// No order for each of `days` (ascending): one message per step per inactivity spell.
    Inactivity { days: Vec<i32> },
    /// After an order: right away (`delay_days: 0`) or N days later at `send_time`; with
    /// `every_nth`, only the customer's Nth, 2Nth, … order.
    Order { delay_days: i32, every_nth: u32 },
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Yearly { .. } => "yearly",
            Trigger::Holiday { .. } => "holiday",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Inactivity { .. } => "inactivity",
            Trigger::Order { .. } => "order",
        }
    }
}

/// Which of the customer's yearly dates a ritual follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YearlyField {
    Birthday,
    /// The anniversary of the signup date.
    Signup,
    /// The anniversary of the first order (its local date).
    FirstPurchase,
    /// A `date:<name>` column of the customer import (wedding, loyalty club, a child's birthday).
    Custom(String),
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

/// How late an occurrence may still be sent after its due time (a daemon that was down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// Until the end of the customer's local day of the occurrence (the default).
    SameDay,
    /// A fixed time after the due instant (`0` = never late).
    For(SignedDuration),
}

/// What kind of survey a ritual's messages carry (`survey:` in the ritual file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyKind {
    /// Net Promoter Score: "how likely are you to recommend us?", score links 0–10.
    Nps,
}

/// A validated ritual.
#[derive(Debug, Clone)]
pub struct Ritual {
    pub name: String,
    /// For the people who run the shop (plan, check); customers never see it.
    pub description: Option<String>,
    /// Customer-facing name of these messages per language (`en`, `ro`, `ru`, …): the
    /// preference and unsubscribe pages show only these (and holiday names).
    pub labels: BTreeMap<String, String>,
    /// Line of `label:` (of the trigger when there is none), for `check`'s missing-label note.
    pub label_line: u64,
    pub trigger: Trigger,
    /// Local wall-clock time in the customer's zone at which the message becomes due (unused
    /// by cron schedules, which carry their own time, and by orders with no delay).
    pub send_time: Time,
    pub channels: Vec<Channel>,
    pub deliver: DeliverPolicy,
    /// Folder under `templates/` holding `<locale>/subject.hbs`, `email.html.hbs`, …
    pub template: String,
    /// Opt-out category. `None` on a holiday ritual: each holiday is its own
    /// `holidays.<id>` category. Otherwise defaults to the ritual's name.
    pub category: Option<String>,
    pub priority: i32,
    pub grace: Grace,
    /// Percentage (0–100) of the audience held out, by a stable hash of ritual and customer.
    pub holdout_percent: f64,
    /// Counted against, and limited by, the frequency caps (`false` for transactional
    /// messages such as a thank-you).
    pub capped: bool,
    pub audience: Audience,
    /// `check` warns when an SMS of this ritual needs more segments than this.
    pub sms_max_segments: u32,
    /// A survey ritual: its templates get score links (`survey.links`, `{{survey_url 9}}`).
    pub survey: Option<SurveyKind>,
    pub source: PathBuf,
    /// Line of `template:` in the source, for template diagnostics.
    pub template_line: u64,
    /// Line of the trigger and of each segment name, for cross-file checks.
    pub trigger_line: u64,
    pub segment_lines: Vec<u64>,
    /// Line of `survey:` (0 without one).
    pub survey_line: u64,
}

impl Ritual {
    /// The customer-facing label in `locale` (`ro-MD` → `ro-md`, then `ro`), if written.
    pub fn label(&self, locale: &str) -> Option<&str> {
        let mut l = locale.trim().to_ascii_lowercase().replace('_', "-");
        loop {
            if let Some(v) = self.labels.get(&l) {
                return Some(v);
            }
            match l.rfind('-') {
                Some(i) => l.truncate(i),
                None => return None,
            }
        }
    }

    /// The opt-out category of an occurrence (holiday rituals: per holiday).
    pub fn category_for(&self, holiday: Option<&str>) -> String {
        match (&self.category, holiday) {
            (Some(c), _) => c.clone(),
            (None, Some(h)) => format!("holidays.{h}"),
            (None, None) => self.name.clone(),
        }
    }
}

mod spec {
    use super::*;
    use crate::ritual::audience::spec::ConditionsSpec;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RitualSpec {
        pub name: Option<Spanned<String>>,
        pub description: Option<String>,
        /// What customers read for this ritual's messages, per language:
        /// `label: { en: Birthday greetings, ro: Urări de ziua ta }`.
        pub label: Option<Spanned<BTreeMap<String, String>>>,
        pub enabled: Option<bool>,
        pub trigger: Spanned<super::trigger::TriggerSpec>,
        pub send_time: Option<Spanned<String>>,
        pub channels: Spanned<Vec<Spanned<String>>>,
        pub deliver: Option<Spanned<String>>,
        pub template: Spanned<String>,
        pub category: Option<Spanned<String>>,
        pub priority: Option<i32>,
        pub grace: Option<Spanned<String>>,
        pub holdout: Option<Spanned<f64>>,
        pub frequency_cap: Option<bool>,
        pub audience: Option<Spanned<ConditionsSpec>>,
        pub sms_max_segments: Option<u32>,
        pub survey: Option<Spanned<String>>,
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

/// `same_day`, `0`, `90m`, `6h`, `2d`.
pub fn parse_grace(s: &str) -> Option<Grace> {
    let s = s.trim();
    if s == "same_day" {
        return Some(Grace::SameDay);
    }
    if s == "0" {
        return Some(Grace::For(SignedDuration::ZERO));
    }
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = n.parse().ok().filter(|n| *n >= 0 && *n <= 366 * 24 * 60)?;
    let d = match unit {
        "m" => SignedDuration::from_mins(n),
        "h" => SignedDuration::from_hours(n),
        "d" => SignedDuration::from_hours(n * 24),
        _ => return None,
    };
    Some(Grace::For(d))
}

/// Compiles one ritual file. `Ok(None)` when the ritual is disabled.
pub fn parse_ritual(file: &Path, text: &str) -> Result<Option<Ritual>, Diagnostics> {
    let spec: spec::RitualSpec = parse_yaml(file, text).map_err(|d| Diagnostics(vec![d]))?;
    if spec.enabled == Some(false) {
        return Ok(None);
    }
    let mut diags = Diagnostics::default();
    let name = ritual_name(file, spec.name.as_ref(), &mut diags);
    let trigger =
        trigger::compile_trigger(file, &spec.trigger, spec.send_time.as_ref(), &mut diags);
    let send_time = send_time(file, spec.send_time.as_ref(), &mut diags);
    let channels = channels(file, &spec.channels, &mut diags);
    let deliver = deliver_policy(file, spec.deliver.as_ref(), &mut diags);
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
    let category = category(
        file,
        spec.category.as_ref(),
        &name,
        trigger.as_ref(),
        &mut diags,
    );
    let grace = grace(file, spec.grace.as_ref(), &mut diags);
    let holdout_percent = holdout(file, spec.holdout.as_ref(), &mut diags);
    let (audience, segment_lines) = audience(file, spec.audience.as_ref(), &mut diags);
    let survey = survey(file, spec.survey.as_ref(), &mut diags);
    if diags.has_errors() {
        return Err(diags);
    }
    let Some(trigger) = trigger else {
        unreachable!("a trigger that did not compile is an error")
    };
    Ok(Some(Ritual {
        name,
        description: spec.description,
        label_line: spec
            .label
            .as_ref()
            .map_or(spec.trigger.referenced.line(), |l| l.referenced.line()),
        labels: spec.label.map(|l| labels(l.value)).unwrap_or_default(),
        trigger,
        send_time,
        channels,
        deliver,
        template: spec.template.value.clone(),
        category,
        priority: spec.priority.unwrap_or(0),
        grace,
        holdout_percent,
        capped: spec.frequency_cap.unwrap_or(true),
        audience,
        sms_max_segments: spec.sms_max_segments.unwrap_or(2).max(1),
        survey,
        survey_line: spec.survey.as_ref().map_or(0, |s| s.referenced.line()),
        source: file.to_path_buf(),
        template_line: spec.template.referenced.line(),
        trigger_line: spec.trigger.referenced.line(),
        segment_lines,
    }))
}

/// `name:`, else the file's stem.
fn ritual_name(file: &Path, name: Option<&Spanned<String>>, diags: &mut Diagnostics) -> String {
    let Some(n) = name else {
        return file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("ritual")
            .to_string();
    };
    if !valid_name(&n.value) {
        diags.push(
            Diagnostic::at(
                file,
                &n.referenced,
                format!("invalid ritual name `{}`", n.value),
            )
            .with_hint(
                "use lower-case letters, digits, `_` and `-`, e.g. `birthday` or `thank_you`",
            ),
        );
    }
    n.value.clone()
}

/// `label:` keys as locales: trimmed, lower case, `_` → `-`.
fn labels(written: BTreeMap<String, String>) -> BTreeMap<String, String> {
    written
        .into_iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase().replace('_', "-"), v))
        .collect()
}

/// `send_time:` (default 10:00).
fn send_time(file: &Path, s: Option<&Spanned<String>>, diags: &mut Diagnostics) -> Time {
    let Some(s) = s else {
        return Time::constant(10, 0, 0, 0);
    };
    parse_hhmm(&s.value).unwrap_or_else(|| {
        diags.push(
            Diagnostic::at(
                file,
                &s.referenced,
                format!("invalid send_time `{}`", s.value),
            )
            .with_hint("write a 24-hour local time in quotes, e.g. \"10:00\" or \"18:30\""),
        );
        Time::midnight()
    })
}

/// `channels:`: known, each once, at least one.
fn channels(
    file: &Path,
    spec: &Spanned<Vec<Spanned<String>>>,
    diags: &mut Diagnostics,
) -> Vec<Channel> {
    let mut channels = Vec::new();
    for c in &spec.value {
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
    if spec.value.is_empty() {
        diags.push(
            Diagnostic::at(file, &spec.referenced, "no channels")
                .with_hint("channels: [email, sms]"),
        );
    }
    channels
}

/// `deliver:` `preferred` (the default) or `all`.
fn deliver_policy(
    file: &Path,
    d: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> DeliverPolicy {
    let Some(d) = d else {
        return DeliverPolicy::Preferred;
    };
    match d.value.as_str() {
        "preferred" => DeliverPolicy::Preferred,
        "all" => DeliverPolicy::All,
        other => {
            diags.push(
                Diagnostic::at(
                    file,
                    &d.referenced,
                    format!("unknown deliver policy `{other}`"),
                )
                .with_hint(
                    "`preferred` (one message, on the customer's preferred channel) or `all`",
                ),
            );
            DeliverPolicy::Preferred
        }
    }
}

/// `category:`, else none for a holiday ritual (one per holiday), else the ritual's name.
fn category(
    file: &Path,
    c: Option<&Spanned<String>>,
    name: &str,
    trigger: Option<&Trigger>,
    diags: &mut Diagnostics,
) -> Option<String> {
    match c {
        Some(c) => {
            let ok = !c.value.is_empty() && c.value.split('.').all(valid_name);
            if !ok {
                diags.push(
                    Diagnostic::at(
                        file,
                        &c.referenced,
                        format!("invalid category `{}`", c.value),
                    )
                    .with_hint("dot-separated names, e.g. `digest` or `holidays.mothers_day`"),
                );
            }
            Some(c.value.clone())
        }
        None if matches!(trigger, Some(Trigger::Holiday { .. })) => None,
        None => Some(name.to_string()),
    }
}

/// `grace:` (default `same_day`).
fn grace(file: &Path, g: Option<&Spanned<String>>, diags: &mut Diagnostics) -> Grace {
    let Some(g) = g else {
        return Grace::SameDay;
    };
    parse_grace(&g.value).unwrap_or_else(|| {
        diags.push(
            Diagnostic::at(file, &g.referenced, format!("invalid grace `{}`", g.value))
                .with_hint("same_day (the default), 0 (never late), or a duration: 90m, 6h, 2d"),
        );
        Grace::SameDay
    })
}

/// `holdout:` a percentage (default 0).
fn holdout(file: &Path, h: Option<&Spanned<f64>>, diags: &mut Diagnostics) -> f64 {
    match h {
        None => 0.0,
        Some(h) if (0.0..=100.0).contains(&h.value) => h.value,
        Some(h) => {
            diags.push(
                Diagnostic::at(
                    file,
                    &h.referenced,
                    format!("holdout {} is not a percentage", h.value),
                )
                .with_hint("holdout: 10 keeps a stable 10% of the audience as a control group"),
            );
            0.0
        }
    }
}

/// `audience:`: its segments (with the line of each) and its conditions.
fn audience(
    file: &Path,
    a: Option<&Spanned<audience::spec::ConditionsSpec>>,
    diags: &mut Diagnostics,
) -> (Audience, Vec<u64>) {
    let Some(a) = a else {
        return (Audience::default(), Vec::new());
    };
    let conditions = audience::compile_conditions(file, &a.value, diags);
    let segs = a.value.segments.as_ref();
    (
        Audience {
            segments: segs
                .map(|s| s.value.iter().map(|x| x.value.clone()).collect())
                .unwrap_or_default(),
            conditions,
        },
        segs.map(|s| s.value.iter().map(|x| x.referenced.line()).collect())
            .unwrap_or_default(),
    )
}

/// `survey:` (only `nps` today).
fn survey(
    file: &Path,
    sv: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<SurveyKind> {
    let sv = sv?;
    match sv.value.as_str() {
        "nps" => Some(SurveyKind::Nps),
        other => {
            diags.push(
                Diagnostic::at(file, &sv.referenced, format!("unknown survey kind `{other}`"))
                    .with_hint("`survey: nps` gives the templates score links 0–10 (`{{#each survey.links}}…{{/each}}` or `{{survey_url 9}}`); leave it out for an ordinary ritual"),
            );
            None
        }
    }
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
                offset_days: 0,
                milestones: None,
                feb29: Feb29Policy::Mar1
            }
        );
        assert_eq!(r.send_time, Time::constant(9, 30, 0, 0));
        assert_eq!(r.channels, vec![Channel::Email, Channel::Sms]);
        assert_eq!(r.category.as_deref(), Some("birthday"));
        assert_eq!(r.grace, Grace::SameDay);
        assert!(r.capped);
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
    fn survey_kind_is_validated_with_a_line_and_hint() {
        let ok = parse_ritual(Path::new("s.yaml"), &format!("{GOOD}survey: nps\n"))
            .unwrap()
            .unwrap();
        assert_eq!(ok.survey, Some(SurveyKind::Nps));
        let plain = parse_ritual(Path::new("s.yaml"), GOOD).unwrap().unwrap();
        assert_eq!(plain.survey, None);
        let d = parse_ritual(Path::new("s.yaml"), &format!("{GOOD}survey: csat\n")).unwrap_err();
        assert_eq!(d.0.len(), 1, "{d}");
        assert_eq!(d.0[0].line, 9, "{d}");
        let s = d.to_string();
        assert!(
            s.contains("unknown survey kind `csat`") && s.contains("survey: nps"),
            "{s}"
        );
    }

    #[test]
    fn disabled_ritual_is_skipped() {
        let text = format!("enabled: false\n{GOOD}");
        assert!(parse_ritual(Path::new("b.yaml"), &text).unwrap().is_none());
    }

    fn with_trigger(trigger: &str, extra: &str) -> Result<Option<Ritual>, Diagnostics> {
        let text = format!("trigger:\n{trigger}\nchannels: [email]\ntemplate: t\n{extra}");
        parse_ritual(Path::new("r.yaml"), &text)
    }

    #[test]
    fn every_trigger_kind_parses() {
        let r = with_trigger(
            "  yearly: { custom: wedding, offset_days: -3, milestones: [10, 1, 5] }",
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            r.trigger,
            Trigger::Yearly {
                date: YearlyField::Custom("wedding".into()),
                offset_days: -3,
                milestones: Some(vec![1, 5, 10]),
                feb29: Feb29Policy::Feb28
            }
        );
        let r = with_trigger("  holiday: { ids: [mothers_day, womens_day] }", "")
            .unwrap()
            .unwrap();
        assert_eq!(r.category, None);
        assert_eq!(r.category_for(Some("mothers_day")), "holidays.mothers_day");
        let r = with_trigger("  schedule: { cron: \"0 10 1 * *\" }", "grace: 2d\n")
            .unwrap()
            .unwrap();
        assert!(matches!(r.trigger, Trigger::Schedule { .. }));
        assert_eq!(r.grace, Grace::For(SignedDuration::from_hours(48)));
        let r = with_trigger(
            "  inactivity: { days: [45, 90] }",
            "holdout: 10\naudience: { segments: [regular], orders: { min: 1 } }\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.trigger, Trigger::Inactivity { days: vec![45, 90] });
        assert_eq!(r.holdout_percent, 10.0);
        assert_eq!(r.audience.segments, vec!["regular".to_string()]);
        assert_eq!(r.segment_lines, vec![6]);
        let r = with_trigger("  order: { every_nth: 5 }", "frequency_cap: false\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            r.trigger,
            Trigger::Order {
                delay_days: 0,
                every_nth: 5
            }
        );
        assert!(!r.capped);
    }

    #[test]
    fn trigger_mistakes_point_at_the_line() {
        let e = with_trigger("  schedule: { cron: \"0 10 * * 1-5\" }", "").unwrap_err();
        assert_eq!(e.0[0].line, 2, "{e}");
        assert!(
            e.0[0].hint.as_deref().unwrap().contains("weekday names"),
            "{e}"
        );
        let e = with_trigger("  inactivity: { days: [90, 45] }", "").unwrap_err();
        assert_eq!(e.0[0].line, 2, "{e}");
        let e = with_trigger("  yearly: { date: wedding }", "").unwrap_err();
        assert!(e.to_string().contains("custom: wedding"), "{e}");
        let e = with_trigger("  order: { delay_days: 0 }", "send_time: \"10:00\"\n").unwrap_err();
        assert_eq!(e.0[0].line, 5, "{e}");
        let e = with_trigger("  yearly: { date: birthday }\n  order: {}", "").unwrap_err();
        assert!(e.to_string().contains("more than one kind"), "{e}");
        let e = with_trigger("  yearly: { date: birthday }", "grace: 2 days\n").unwrap_err();
        assert_eq!(e.0[0].line, 5, "{e}");
        let e = with_trigger(
            "  yearly: { date: birthday }",
            "audience: { orders: { min: 3, max: 1 } }\n",
        )
        .unwrap_err();
        assert_eq!(e.0[0].line, 5, "{e}");
    }
}
