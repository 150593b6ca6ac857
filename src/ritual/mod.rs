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
        pub trigger: Spanned<TriggerSpec>,
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TriggerSpec {
        pub yearly: Option<Spanned<YearlySpec>>,
        pub holiday: Option<Spanned<HolidaySpec>>,
        pub schedule: Option<Spanned<ScheduleSpec>>,
        pub inactivity: Option<Spanned<InactivitySpec>>,
        pub order: Option<Spanned<OrderSpec>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct YearlySpec {
        pub date: Option<Spanned<String>>,
        pub custom: Option<Spanned<String>>,
        pub offset_days: Option<Spanned<i32>>,
        pub milestones: Option<Spanned<Vec<i16>>>,
        pub feb29: Option<Feb29Policy>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HolidaySpec {
        pub ids: Spanned<Vec<Spanned<String>>>,
        pub offset_days: Option<Spanned<i32>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScheduleSpec {
        pub cron: Spanned<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct InactivitySpec {
        pub days: Spanned<Vec<i32>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OrderSpec {
        pub delay_days: Option<Spanned<i32>>,
        pub every_nth: Option<Spanned<u32>>,
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

const TRIGGER_HINT: &str = "one of: yearly: { date: birthday }, holiday: { ids: [mothers_day] }, \
     schedule: { cron: \"0 10 1 * *\" }, inactivity: { days: [45, 90] }, order: { delay_days: 0 }";

fn compile_trigger(
    file: &Path,
    spec: &Spanned<spec::TriggerSpec>,
    send_time_given: Option<&Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Trigger> {
    let t = &spec.value;
    let given = [
        t.yearly.is_some(),
        t.holiday.is_some(),
        t.schedule.is_some(),
        t.inactivity.is_some(),
        t.order.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        let msg = if given == 0 {
            "the trigger names no kind"
        } else {
            "the trigger names more than one kind"
        };
        diags.push(Diagnostic::at(file, &spec.referenced, msg).with_hint(TRIGGER_HINT));
        return None;
    }
    let offset = |o: &Option<Spanned<i32>>, diags: &mut Diagnostics| -> i32 {
        match o {
            Some(o) if o.value.abs() > 366 => {
                diags.push(
                    Diagnostic::at(
                        file,
                        &o.referenced,
                        format!("offset_days {} is more than a year", o.value),
                    )
                    .with_hint(
                        "a negative number of days before the date (-3), a positive one after it",
                    ),
                );
                0
            }
            Some(o) => o.value,
            None => 0,
        }
    };
    if let Some(y) = &t.yearly {
        let y_val = &y.value;
        let date = match (&y_val.date, &y_val.custom) {
            (Some(d), None) => match d.value.as_str() {
                "birthday" => Some(YearlyField::Birthday),
                "signup" => Some(YearlyField::Signup),
                "first_purchase" => Some(YearlyField::FirstPurchase),
                other => {
                    diags.push(
                        Diagnostic::at(file, &d.referenced, format!("unknown yearly date `{other}`"))
                            .with_hint(format!(
                                "`date:` is birthday, signup or first_purchase; for a `date:{other}` column of the customer import write `custom: {other}`"
                            )),
                    );
                    None
                }
            },
            (None, Some(c)) => {
                if valid_name(&c.value) {
                    Some(YearlyField::Custom(c.value.clone()))
                } else {
                    diags.push(
                        Diagnostic::at(file, &c.referenced, format!("invalid custom date name `{}`", c.value))
                            .with_hint("the name after `date:` in the import column, e.g. `custom: wedding` for `date:wedding`"),
                    );
                    None
                }
            }
            _ => {
                diags.push(
                    Diagnostic::at(
                        file,
                        &y.referenced,
                        "a yearly trigger needs exactly one of `date:` and `custom:`",
                    )
                    .with_hint("yearly: { date: birthday } or yearly: { custom: wedding }"),
                );
                None
            }
        };
        let milestones = match &y_val.milestones {
            None => None,
            Some(m) => {
                if m.value.is_empty() || m.value.iter().any(|n| *n < 0) {
                    diags.push(
                        Diagnostic::at(file, &m.referenced, "milestones must be a non-empty list of years")
                            .with_hint("milestones: [1, 5, 10] sends on the 1st, 5th and 10th anniversary only"),
                    );
                }
                let mut v = m.value.clone();
                v.sort_unstable();
                v.dedup();
                Some(v)
            }
        };
        let offset_days = offset(&y_val.offset_days, diags);
        return date.map(|date| Trigger::Yearly {
            date,
            offset_days,
            milestones,
            feb29: y_val.feb29.unwrap_or_default(),
        });
    }
    if let Some(h) = &t.holiday {
        let mut ids = Vec::new();
        for id in &h.value.ids.value {
            if !valid_name(&id.value) {
                diags.push(
                    Diagnostic::at(
                        file,
                        &id.referenced,
                        format!("invalid holiday id `{}`", id.value),
                    )
                    .with_hint(
                        "holiday ids are the keys of config/calendars/*.yaml, e.g. mothers_day",
                    ),
                );
            }
            ids.push(id.value.clone());
        }
        if ids.is_empty() {
            diags.push(
                Diagnostic::at(file, &h.value.ids.referenced, "no holidays listed").with_hint(
                    "holiday: { ids: [mothers_day] }; `ritualist calendar ro` lists the ids",
                ),
            );
        }
        let offset_days = offset(&h.value.offset_days, diags);
        return Some(Trigger::Holiday { ids, offset_days });
    }
    if let Some(s) = &t.schedule {
        if let Some(st) = send_time_given {
            diags.push(
                Diagnostic::at(
                    file,
                    &st.referenced,
                    "send_time has no effect on a schedule",
                )
                .with_hint(
                    "the time is part of the cron expression: `0 10 1 * *` is 10:00 on the 1st",
                ),
            );
        }
        return match CronSchedule::parse(&s.value.cron.value) {
            Ok(cron) => Some(Trigger::Schedule { cron }),
            Err(e) => {
                let msg = match &e {
                    schedule::ScheduleError::FieldCount { expr, found, .. } => {
                        format!("schedule `{expr}` has {found} fields")
                    }
                    schedule::ScheduleError::Field {
                        field,
                        token,
                        problem,
                        ..
                    } => format!("{field} field: `{token}` {problem}"),
                };
                diags.push(Diagnostic::at(file, &s.value.cron.referenced, msg).with_hint(e.hint()));
                None
            }
        };
    }
    if let Some(i) = &t.inactivity {
        let days = i.value.days.value.clone();
        let increasing = days.windows(2).all(|w| w[0] < w[1]);
        if days.is_empty() || days.iter().any(|d| *d <= 0) || !increasing {
            diags.push(
                Diagnostic::at(
                    file,
                    &i.value.days.referenced,
                    "inactivity steps must be positive days in increasing order",
                )
                .with_hint("days: [45, 90] sends after 45 days without an order, then after 90"),
            );
            return None;
        }
        return Some(Trigger::Inactivity { days });
    }
    if let Some(o) = &t.order {
        let delay_days = match &o.value.delay_days {
            Some(d) if d.value < 0 || d.value > 366 => {
                diags.push(
                    Diagnostic::at(
                        file,
                        &d.referenced,
                        format!("delay_days {} is out of range", d.value),
                    )
                    .with_hint("0 = right after the order; 7 = a week later at send_time"),
                );
                0
            }
            Some(d) => d.value,
            None => 0,
        };
        if delay_days == 0
            && let Some(st) = send_time_given
        {
            diags.push(
                Diagnostic::at(file, &st.referenced, "send_time has no effect with delay_days: 0")
                    .with_hint("a message with no delay goes right after the order; set delay_days to send on a later day at send_time"),
            );
        }
        let every_nth = match &o.value.every_nth {
            Some(n) if n.value == 0 => {
                diags.push(
                    Diagnostic::at(file, &n.referenced, "every_nth must be at least 1")
                        .with_hint("every_nth: 5 rewards the 5th, 10th, 15th … order"),
                );
                1
            }
            Some(n) => n.value,
            None => 1,
        };
        return Some(Trigger::Order {
            delay_days,
            every_nth,
        });
    }
    None
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

    let trigger = compile_trigger(file, &spec.trigger, spec.send_time.as_ref(), &mut diags);

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

    let category = match &spec.category {
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
        None => Some(name.clone()),
    };

    let grace = match &spec.grace {
        None => Grace::SameDay,
        Some(g) => parse_grace(&g.value).unwrap_or_else(|| {
            diags.push(
                Diagnostic::at(file, &g.referenced, format!("invalid grace `{}`", g.value))
                    .with_hint(
                        "same_day (the default), 0 (never late), or a duration: 90m, 6h, 2d",
                    ),
            );
            Grace::SameDay
        }),
    };

    let holdout_percent = match &spec.holdout {
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
    };

    let (audience, segment_lines) = match &spec.audience {
        None => (Audience::default(), Vec::new()),
        Some(a) => {
            let conditions = audience::compile_conditions(file, &a.value, &mut diags);
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
    };

    let survey = match &spec.survey {
        None => None,
        Some(sv) => match sv.value.as_str() {
            "nps" => Some(SurveyKind::Nps),
            other => {
                diags.push(
                    Diagnostic::at(file, &sv.referenced, format!("unknown survey kind `{other}`"))
                        .with_hint("`survey: nps` gives the templates score links 0–10 (`{{#each survey.links}}…{{/each}}` or `{{survey_url 9}}`); leave it out for an ordinary ritual"),
                );
                None
            }
        },
    };

    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Some(Ritual {
        name,
        description: spec.description,
        label_line: spec
            .label
            .as_ref()
            .map_or(spec.trigger.referenced.line(), |l| l.referenced.line()),
        labels: spec
            .label
            .map(|l| {
                l.value
                    .into_iter()
                    .map(|(k, v)| (k.trim().to_ascii_lowercase().replace('_', "-"), v))
                    .collect()
            })
            .unwrap_or_default(),
        trigger: trigger.expect("checked above"),
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
