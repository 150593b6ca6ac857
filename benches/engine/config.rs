//! The bench deployment: a ritualist.yaml and its own `rituals/` folder under
//! `<target>/bench-engine/config/`, using the repository's templates, calendars and segments.
//! The rituals are the repository's examples (config/rituals/) with three changes:
//! - the digest runs on the 15th (`0 10 15 * *`), so it fires on neither measured day;
//! - the holiday ritual greets only `new_year`, for everyone (no audience condition), with a
//!   2-day grace: a 26-hour first-run window that reaches 09:30 on Jan 1 in UTC−11 starts
//!   after Jan 1 has ended in UTC+14, so with the default same-day grace the customers of
//!   the easternmost zones would be past their grace (and, on a first run, left alone);
//! - every kind is present: birthday, signup anniversary, first-purchase anniversary,
//!   wedding (custom date), inactivity win-back [45, 90], digest (cron), thank-you, survey
//!   (7 days later), reward (every 5th order) and the holiday.

use std::path::{Path, PathBuf};

const RITUALS: &[(&str, &str)] = &[
    (
        "birthday",
        r#"description: Birthday greeting with a gift
trigger:
  yearly:
    date: birthday
    feb29: feb28
send_time: "10:00"
channels: [email, sms]
deliver: preferred
template: birthday
category: birthday
priority: 100
sms_max_segments: 2
"#,
    ),
    (
        "anniversary",
        r#"description: Thank-you on the anniversary of joining, on milestone years
trigger:
  yearly:
    date: signup
    milestones: [1, 2, 3, 5, 10]
send_time: "11:00"
channels: [email]
template: anniversary
priority: 60
"#,
    ),
    (
        "first_order",
        r#"description: A year since your first bouquet
trigger:
  yearly:
    date: first_purchase
    feb29: mar1
send_time: "11:00"
channels: [email]
template: first_order
priority: 50
"#,
    ),
    (
        "wedding",
        r#"description: Wedding anniversary reminder, three days ahead
trigger:
  yearly:
    custom: wedding
    offset_days: -3
send_time: "10:00"
channels: [email, sms]
template: wedding
priority: 70
grace: 6h
"#,
    ),
    (
        "winback",
        r#"description: Win-back after 45 and 90 days without an order
trigger:
  inactivity:
    days: [45, 90]
send_time: "12:00"
channels: [email, sms]
template: winback
priority: 40
holdout: 10
"#,
    ),
    (
        "digest",
        r#"description: Monthly news and offers (on the 15th in the bench)
trigger:
  schedule:
    cron: "0 10 15 * *"
channels: [email]
template: digest
priority: 10
grace: 2d
audience:
  segments: [regular, vip]
"#,
    ),
    (
        "thank_you",
        r#"description: Thank you for your order
trigger:
  order:
    delay_days: 0
channels: [email]
template: thank_you
priority: 90
grace: 2d
frequency_cap: false
"#,
    ),
    (
        "survey",
        r#"description: Post-purchase survey
trigger:
  order:
    delay_days: 7
send_time: "11:00"
channels: [email]
template: survey
priority: 20
grace: 1d
"#,
    ),
    (
        "reward",
        r#"description: Reward for every fifth order
trigger:
  order:
    every_nth: 5
channels: [email, sms]
template: reward
priority: 85
grace: 2d
"#,
    ),
    (
        "new_year",
        r#"description: New Year greeting for everyone, from each customer's own calendar
trigger:
  holiday:
    ids: [new_year]
send_time: "09:30"
channels: [email, sms]
deliver: preferred
template: holiday
priority: 80
grace: 2d
"#,
    ),
];

/// Writes the deployment and returns the path of its ritualist.yaml. The `database` it names
/// is a placeholder: every run points at its own fresh copy.
pub fn write(dir: &Path, repo: &Path) -> PathBuf {
    let cfg_dir = dir.join("config");
    let rituals = cfg_dir.join("rituals");
    let _ = std::fs::remove_dir_all(&rituals);
    std::fs::create_dir_all(&rituals).expect("create the bench rituals folder");
    for (name, yaml) in RITUALS {
        std::fs::write(rituals.join(format!("{name}.yaml")), yaml).expect("write a ritual");
    }
    let abs = |p: &str| repo.join(p).display().to_string();
    let yaml = format!(
        r#"# Written by benches/engine: the deployment the engine benchmark measures.
database: unused.db
defaults:
  time_zone: Europe/Bucharest
  locale: en
  country_code: "40"
shop:
  name: Floare & Co
  url: https://floare.example
  from_email: hello@floare.example
  from_name: Floare & Co
rituals: rituals
templates: {templates}
calendars: {calendars}
engine:
  segments: {segments}
  default_calendar: ro
  frequency_caps:
    - {{ max: 3, days: 7 }}
  quiet_hours:
    sms: "09:00-21:00"
    email: none
  catch_up_days: 7
links:
  unsubscribe: https://floare.example/unsubscribe
delivery:
  outbox_dir: {outbox}
  email:
    transport: outbox
  sms:
    transport: outbox
"#,
        templates = abs("templates"),
        calendars = abs("config/calendars"),
        segments = abs("config/segments.yaml"),
        outbox = dir.join("outbox").display(),
    );
    let path = cfg_dir.join("ritualist.yaml");
    std::fs::write(&path, yaml).expect("write ritualist.yaml");
    path
}

/// The rituals of the bench, by name (for the report).
pub fn ritual_names() -> Vec<&'static str> {
    RITUALS.iter().map(|(n, _)| *n).collect()
}
