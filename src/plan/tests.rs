use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::*;
use crate::calendar::{Calendar, load_calendars};
use crate::config::{AllowedHours, EngineConfig, FrequencyCap};
use crate::domain::{Channel, Email, Feb29Policy, Locale, Phone, YearlyDate};
use crate::ritual::{Ritual, Segments, parse_ritual};

fn ritual(yaml: &str) -> Ritual {
    let name = yaml
        .lines()
        .find_map(|l| l.strip_prefix("name: "))
        .unwrap_or("r");
    parse_ritual(Path::new(&format!("{name}.yaml")), yaml)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap()
}

fn birthday() -> Ritual {
    ritual(
        "name: birthday\ntrigger: { yearly: { date: birthday } }\nchannels: [email, sms]\ntemplate: birthday\npriority: 100\n",
    )
}

fn config() -> EngineConfig {
    EngineConfig {
        segments_file: PathBuf::from("segments.yaml"),
        default_calendar: "en-US".into(),
        frequency_caps: Vec::new(),
        email_hours: None,
        sms_hours: Some(AllowedHours {
            from: Time::constant(9, 0, 0, 0),
            until: Time::constant(21, 0, 0, 0),
        }),
        catch_up_days: 7,
        survey_window_days: 30,
    }
}

fn calendars() -> BTreeMap<String, Calendar> {
    load_calendars(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/calendars"
    )))
    .unwrap()
}

struct World {
    rituals: Vec<Ritual>,
    segments: Segments,
    calendars: BTreeMap<String, Calendar>,
    config: EngineConfig,
}

impl World {
    fn new(rituals: Vec<Ritual>) -> Self {
        World {
            rituals,
            segments: Segments::default(),
            calendars: calendars(),
            config: config(),
        }
    }
    fn engine(&self) -> Engine<'_> {
        Engine {
            rituals: &self.rituals,
            segments: &self.segments,
            calendars: &self.calendars,
            config: &self.config,
        }
    }
    /// Decisions at `now` for a window of one day back, first run.
    fn at(&self, c: &CustomerFacts, consent: &Consent, now: &str) -> Vec<Decision> {
        let now = at(now);
        self.engine().decide(
            c,
            consent,
            &[],
            Window::new(now - SignedDuration::from_hours(24), now, false),
        )
    }
}

fn customer(zone: &str, birthday: &str) -> CustomerFacts {
    let mut c = CustomerFacts::bare(
        7,
        "c7",
        Locale::parse("ro").unwrap(),
        TimeZone::get(zone).unwrap(),
    );
    c.first_name = Some("Ana".into());
    c.email = Some(Email::parse("ana@example.com").unwrap());
    c.phone = Some(Phone::parse("+40721234567", None).unwrap());
    c.birthday = Some(YearlyDate::parse(birthday).unwrap());
    c.calendar = "ro".into();
    c
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn outcome(d: &Decision) -> String {
    match &d.outcome {
        Outcome::Send { channel, .. } => format!("send:{channel}"),
        Outcome::Suppress { reason, .. } => reason.clone(),
    }
}

fn due_at(d: &Decision) -> Timestamp {
    match &d.outcome {
        Outcome::Send { due_at, .. } => *due_at,
        other => panic!("{other:?}"),
    }
}

#[test]
fn due_at_local_send_time_in_the_customers_zone() {
    let w = World::new(vec![birthday()]);
    let c = customer("Asia/Vladivostok", "1990-03-01"); // UTC+10
    // 09:59 local on Mar 1 = 23:59 UTC Feb 28: not yet.
    assert!(
        w.at(&c, &Consent::default(), "2027-02-28T23:59:00Z")
            .is_empty()
    );
    let d = w.at(&c, &Consent::default(), "2027-03-01T00:00:00Z");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].occurrence, "2027");
    assert_eq!(d[0].occasion.years, Some(37));
    assert_eq!(outcome(&d[0]), "send:email");
    assert_eq!(due_at(&d[0]), at("2027-03-01T00:00:00Z"));
}

#[test]
fn feb29_follows_the_policy() {
    let c = customer("UTC", "2000-02-29");
    for (policy, feb28, mar1) in [("feb28", 1, 0), ("mar1", 0, 1), ("skip", 0, 0)] {
        let w = World::new(vec![ritual(&format!(
            "name: b\ntrigger: {{ yearly: {{ date: birthday, feb29: {policy} }} }}\nchannels: [email]\ntemplate: b\n"
        ))]);
        assert_eq!(
            w.at(&c, &Consent::default(), "2027-02-28T12:00:00Z").len(),
            feb28,
            "{policy}"
        );
        assert_eq!(
            w.at(&c, &Consent::default(), "2027-03-01T12:00:00Z").len(),
            mar1,
            "{policy}"
        );
        assert_eq!(
            w.at(&c, &Consent::default(), "2028-02-29T12:00:00Z").len(),
            1,
            "{policy}"
        );
    }
}

#[test]
fn offsets_milestones_and_other_yearly_dates() {
    let w = World::new(vec![ritual(
        "name: anniversary\ntrigger: { yearly: { date: signup, offset_days: -3, milestones: [1, 5] } }\nchannels: [email]\ntemplate: a\n",
    )]);
    let mut c = customer("UTC", "1990-01-01");
    c.signup = Some(YearlyDate::parse("2022-06-10").unwrap());
    // 5th anniversary on 2027-06-10, three days before = 2027-06-07.
    let d = w.at(&c, &Consent::default(), "2027-06-07T12:00:00Z");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].occasion.years, Some(5));
    assert_eq!(d[0].occurrence, "2027");
    assert!(
        w.at(&c, &Consent::default(), "2027-06-10T12:00:00Z")
            .is_empty()
    );
    // The 4th is not a milestone.
    assert!(
        w.at(&c, &Consent::default(), "2026-06-07T12:00:00Z")
            .is_empty()
    );

    let w = World::new(vec![ritual(
        "name: wedding\ntrigger: { yearly: { custom: wedding } }\nchannels: [email]\ntemplate: a\n",
    )]);
    c.custom_dates
        .insert("wedding".into(), YearlyDate::parse("2015-09-12").unwrap());
    let d = w.at(&c, &Consent::default(), "2027-09-12T12:00:00Z");
    assert_eq!(d[0].occasion.years, Some(12));

    let w = World::new(vec![ritual(
        "name: first\ntrigger: { yearly: { date: first_purchase } }\nchannels: [email]\ntemplate: a\n",
    )]);
    // Ordered late on Dec 31 UTC = Jan 1 in Bucharest: the anniversary follows the local date.
    c.zone = TimeZone::get("Europe/Bucharest").unwrap();
    c.first_order_at = Some(at("2025-12-31T23:30:00Z"));
    assert!(
        w.at(&c, &Consent::default(), "2025-01-01T12:00:00Z")
            .is_empty()
    );
    let d = w.at(&c, &Consent::default(), "2027-01-01T12:00:00Z");
    assert_eq!(d[0].occasion.years, Some(1));
}

#[test]
fn holidays_follow_the_customers_calendar_and_category() {
    let w = World::new(vec![ritual(
        "name: mothers_day\ntrigger: { holiday: { ids: [mothers_day] } }\nchannels: [email]\ntemplate: m\n",
    )]);
    let mut ro = customer("Europe/Bucharest", "1990-01-01");
    let mut us = customer("America/New_York", "1990-01-01");
    us.calendar = "en-US".into();
    us.locale = Locale::parse("en").unwrap();
    // Romania: 1st Sunday of May (2027-05-02); US: 2nd Sunday of May (2027-05-09).
    let d = w.at(&ro, &Consent::default(), "2027-05-02T12:00:00Z");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].occurrence, "mothers_day:2027");
    assert_eq!(d[0].category, "holidays.mothers_day");
    assert_eq!(d[0].occasion.holiday.as_ref().unwrap().name, "Ziua Mamei");
    assert!(
        w.at(&us, &Consent::default(), "2027-05-02T18:00:00Z")
            .is_empty()
    );
    assert_eq!(
        w.at(&us, &Consent::default(), "2027-05-09T18:00:00Z").len(),
        1
    );
    // A category opt-out (or its parent) stops it; other categories do not.
    let d = w.at(
        &ro,
        &Consent::opted_out_of(&["category:holidays"]),
        "2027-05-02T12:00:00Z",
    );
    assert_eq!(outcome(&d[0]), "opted_out:category:holidays");
    let d = w.at(
        &ro,
        &Consent::opted_out_of(&["category:birthday"]),
        "2027-05-02T12:00:00Z",
    );
    assert_eq!(outcome(&d[0]), "send:email");
    ro.calendar = "nowhere".into();
    assert!(
        w.at(&ro, &Consent::default(), "2027-05-02T12:00:00Z")
            .is_empty()
    );
}

#[test]
fn schedules_run_in_local_time() {
    let w = World::new(vec![ritual(
        "name: digest\ntrigger: { schedule: { cron: \"30 10 1 * *\" } }\nchannels: [email]\ntemplate: d\n",
    )]);
    let c = customer("Europe/Moscow", "1990-01-01");
    let d = w.at(&c, &Consent::default(), "2027-06-01T07:30:00Z");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].occurrence, "2027-06-01T10:30");
    assert!(
        w.at(&c, &Consent::default(), "2027-06-01T07:29:00Z")
            .is_empty()
    );
}

#[test]
fn inactivity_steps_once_per_spell() {
    let w = World::new(vec![ritual(
        "name: winback\ntrigger: { inactivity: { days: [45, 90] } }\nchannels: [email]\ntemplate: w\n",
    )]);
    let mut c = customer("UTC", "1990-01-01");
    c.order_count = 2;
    c.last_order_at = Some(at("2027-01-01T15:00:00Z"));
    let d = w.at(&c, &Consent::default(), "2027-02-15T12:00:00Z");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].occurrence, "2027-01-01T15:00:00Z+45d");
    assert_eq!(d[0].occasion.step, Some(1));
    let d = w.at(&c, &Consent::default(), "2027-04-01T12:00:00Z");
    assert_eq!(d[0].occasion.inactive_days, Some(90));
    // A new order starts a new spell: a new key.
    c.last_order_at = Some(at("2027-03-01T10:00:00Z"));
    assert!(
        w.at(&c, &Consent::default(), "2027-04-01T12:00:00Z")
            .is_empty()
    );
    let d = w.at(&c, &Consent::default(), "2027-04-15T12:00:00Z");
    assert_eq!(d[0].occurrence, "2027-03-01T10:00:00Z+45d");
}

fn order(id: &str, at_: &str, number: i64) -> OrderFact {
    OrderFact {
        external_id: id.into(),
        at: at(at_),
        number,
        amount_minor: 5000,
        currency: "RON".into(),
    }
}

/// #24: two orders on the same day gave the customer two NPS surveys a week later. At most
/// one survey per customer per `survey_window_days` (default 30), whatever the orders.
#[test]
fn one_survey_per_customer_per_window_whatever_the_orders() {
    let survey = ritual(
        "name: survey\ntrigger: { order: { delay_days: 7 } }\nsend_time: \"11:00\"\nchannels: [email]\ntemplate: s\nsurvey: nps\nfrequency_cap: false\n",
    );
    let w = World::new(vec![survey]);
    let mut c = customer("UTC", "1990-01-01");
    c.orders = vec![
        order("A-1", "2027-03-01T09:00:00Z", 1),
        order("A-2", "2027-03-01T17:00:00Z", 2),
    ];
    // Both are due at 11:00 on March 8: one survey, one suppressed.
    let d = w.at(&c, &Consent::default(), "2027-03-08T11:00:00Z");
    let got: Vec<(&str, bool, String)> = d
        .iter()
        .map(|d| {
            let reason = match &d.outcome {
                Outcome::Suppress { reason, .. } => reason.clone(),
                Outcome::Send { .. } => String::new(),
            };
            (d.occurrence.as_str(), d.is_send(), reason)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("order:A-1", true, String::new()),
            ("order:A-2", false, reason::RECENT_SURVEY.to_string())
        ]
    );
    // A survey sent 20 days earlier (in the ledger) holds the next one back; 31 days, not.
    c.orders = vec![order("A-3", "2027-04-01T09:00:00Z", 3)];
    let now = at("2027-04-08T11:00:00Z");
    let sent = |days: i64| Recorded {
        ritual: "survey".into(),
        occurrence: "order:A-0".into(),
        message: true,
        due: now - SignedDuration::from_hours(24 * days),
    };
    let window = Window::new(now - SignedDuration::from_hours(24), now, false);
    let d = w
        .engine()
        .decide(&c, &Consent::default(), &[sent(20)], window);
    assert_eq!(d.len(), 1);
    assert!(!d[0].is_send(), "{d:?}");
    let d = w
        .engine()
        .decide(&c, &Consent::default(), &[sent(31)], window);
    assert!(d[0].is_send(), "{d:?}");
    // 0 turns the limit off.
    let mut w0 = World::new(w.rituals.clone());
    w0.config.survey_window_days = 0;
    let d = w0
        .engine()
        .decide(&c, &Consent::default(), &[sent(1)], window);
    assert!(d[0].is_send(), "{d:?}");
}

#[test]
fn order_events_right_away_later_and_every_nth() {
    let thanks = ritual(
        "name: thanks\ntrigger: { order: {} }\nchannels: [email]\ntemplate: t\nfrequency_cap: false\n",
    );
    let survey = ritual(
        "name: survey\ntrigger: { order: { delay_days: 7 } }\nsend_time: \"11:00\"\nchannels: [email]\ntemplate: s\n",
    );
    let reward = ritual(
        "name: reward\ntrigger: { order: { every_nth: 5 } }\nchannels: [email]\ntemplate: r\n",
    );
    let w = World::new(vec![thanks, survey, reward]);
    let mut c = customer("UTC", "1990-01-01");
    c.orders = vec![
        order("A-4", "2027-03-01T15:00:00Z", 4),
        order("A-5", "2027-03-02T16:20:00Z", 5),
    ];
    let d = w.at(&c, &Consent::default(), "2027-03-02T16:20:00Z");
    let keys: Vec<(String, String)> = d
        .iter()
        .map(|d| (d.ritual.clone(), d.occurrence.clone()))
        .collect();
    assert!(
        keys.contains(&("thanks".into(), "order:A-5".into())),
        "{keys:?}"
    );
    assert!(
        keys.contains(&("reward".into(), "order:A-5".into())),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|(r, o)| r == "reward" && o == "order:A-4"));
    let thanks_a5 = d
        .iter()
        .find(|d| d.ritual == "thanks" && d.occurrence == "order:A-5")
        .unwrap();
    assert_eq!(due_at(thanks_a5), at("2027-03-02T16:20:00Z"));
    assert_eq!(thanks_a5.occasion.order.as_ref().unwrap().number, 5);
    let d = w.at(&c, &Consent::default(), "2027-03-08T11:00:00Z");
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].ritual.as_str(), d[0].occurrence.as_str()),
        ("survey", "order:A-4")
    );
}

#[test]
fn preferred_channel_all_and_suppression_reasons() {
    let mut w = World::new(vec![birthday()]);
    let mut c = customer("UTC", "1990-05-05");
    c.preferred_channel = Some(Channel::Sms);
    let now = "2027-05-05T12:00:00Z";
    assert_eq!(outcome(&w.at(&c, &Consent::default(), now)[0]), "send:sms");
    c.phone = None;
    assert_eq!(
        outcome(&w.at(&c, &Consent::default(), now)[0]),
        "send:email"
    );
    c.phone = Some(Phone::parse("+40721234567", None).unwrap());
    let reason = |w: &World, consent: &[&str], c: &CustomerFacts| {
        outcome(&w.at(c, &Consent::opted_out_of(consent), now)[0])
    };
    assert_eq!(reason(&w, &["all"], &c), "opted_out:all");
    assert_eq!(
        reason(&w, &["ritual:birthday"], &c),
        "opted_out:ritual:birthday"
    );
    assert_eq!(
        reason(&w, &["category:birthday"], &c),
        "opted_out:category:birthday"
    );
    assert_eq!(reason(&w, &["category:digest"], &c), "send:sms");
    assert_eq!(reason(&w, &["channel:sms"], &c), "send:email");
    assert_eq!(
        reason(&w, &["channel:email", "channel:sms"], &c),
        "opted_out:channel:email"
    );
    let mut nobody = c.clone();
    nobody.email = None;
    nobody.phone = None;
    assert_eq!(reason(&w, &[], &nobody), "no_contact");
    w.rituals[0].deliver = DeliverPolicy::All;
    assert_eq!(w.at(&c, &Consent::default(), now).len(), 2);
}

#[test]
fn audience_conditions_and_segments() {
    let mut w = World::new(vec![ritual(
        "name: vip_birthday\ntrigger: { yearly: { date: birthday } }\nchannels: [email]\ntemplate: b\naudience: { segments: [vip], locales: [ro] }\n",
    )]);
    w.segments = Segments(
        [(
            "vip".to_string(),
            crate::ritual::Conditions {
                total_spent: Some(crate::ritual::Range {
                    min: Some(1000.0),
                    max: None,
                }),
                ..Default::default()
            },
        )]
        .into(),
    );
    let mut c = customer("UTC", "1990-05-05");
    let now = "2027-05-05T12:00:00Z";
    assert!(
        w.at(&c, &Consent::default(), now).is_empty(),
        "not in the audience: no decision at all"
    );
    c.total_spent_minor = 150_000;
    assert_eq!(w.at(&c, &Consent::default(), now).len(), 1);
    c.locale = Locale::parse("ru").unwrap();
    assert!(w.at(&c, &Consent::default(), now).is_empty());
}

#[test]
fn sms_quiet_hours_move_the_send_never_inside() {
    let mut r = birthday();
    r.send_time = Time::constant(7, 0, 0, 0);
    let w = World::new(vec![r]);
    let mut c = customer("Europe/Bucharest", "1990-05-05"); // UTC+3 in May
    c.preferred_channel = Some(Channel::Sms);
    let d = w.at(&c, &Consent::default(), "2027-05-05T04:00:00Z"); // 07:00 local
    assert_eq!(outcome(&d[0]), "send:sms");
    assert_eq!(due_at(&d[0]), at("2027-05-05T06:00:00Z"), "09:00 local");
    // Late (grace) at 22:30 local: tomorrow 09:00, not now.
    let d = w.engine().decide(
        &c,
        &Consent::default(),
        &[],
        Window::new(at("2027-05-05T03:00:00Z"), at("2027-05-05T19:30:00Z"), true),
    );
    assert_eq!(due_at(&d[0]), at("2027-05-06T06:00:00Z"));
    // Email has no quiet hours by default.
    c.preferred_channel = Some(Channel::Email);
    let d = w.at(&c, &Consent::default(), "2027-05-05T04:00:00Z");
    assert_eq!(due_at(&d[0]), at("2027-05-05T04:00:00Z"));
}

#[test]
fn grace_window_sends_late_or_records_missed() {
    let mut thanks =
        ritual("name: thanks\ntrigger: { order: {} }\nchannels: [email]\ntemplate: t\ngrace: 2d\n");
    let w = World::new(vec![thanks.clone()]);
    let mut c = customer("UTC", "1990-01-01");
    c.orders = vec![order("A-1", "2027-03-01T10:00:00Z", 1)];
    let catch_up = |w: &World, now: &str| {
        w.engine().decide(
            &c,
            &Consent::default(),
            &[],
            Window::new(at("2027-02-28T00:00:00Z"), at(now), true),
        )
    };
    let d = catch_up(&w, "2027-03-02T23:00:00Z");
    assert_eq!(outcome(&d[0]), "send:email", "within 2 days: sent late");
    assert_eq!(due_at(&d[0]), at("2027-03-01T10:00:00Z"));
    let d = catch_up(&w, "2027-03-03T10:00:01Z");
    assert_eq!(outcome(&d[0]), "missed");
    // Not catching up (a first run): out-of-grace occurrences are left alone.
    let d = w.engine().decide(
        &c,
        &Consent::default(),
        &[],
        Window::new(
            at("2027-02-28T00:00:00Z"),
            at("2027-03-03T10:00:01Z"),
            false,
        ),
    );
    assert!(d.is_empty());
    // A birthday may not be late past its local day.
    thanks.grace = crate::ritual::Grace::SameDay;
    let w = World::new(vec![birthday()]);
    let c = customer("UTC", "1990-03-01");
    let d = w.engine().decide(
        &c,
        &Consent::default(),
        &[],
        Window::new(at("2027-02-28T00:00:00Z"), at("2027-03-02T00:00:00Z"), true),
    );
    assert_eq!(outcome(&d[0]), "missed");
}

#[test]
fn holdout_is_stable_and_close_to_its_share() {
    let n = 20_000;
    let held = (0..n)
        .filter(|i| in_holdout("birthday", &format!("c{i}"), 10.0))
        .count();
    assert!((1700..=2300).contains(&held), "{held}");
    for i in 0..100 {
        let id = format!("c{i}");
        assert_eq!(
            in_holdout("birthday", &id, 10.0),
            in_holdout("birthday", &id, 10.0)
        );
    }
    assert_eq!(
        (0..1000)
            .filter(|i| in_holdout("x", &format!("c{i}"), 0.0))
            .count(),
        0
    );
    assert_eq!(
        (0..1000)
            .filter(|i| in_holdout("x", &format!("c{i}"), 100.0))
            .count(),
        1000
    );
    let mut r = birthday();
    r.holdout_percent = 100.0;
    let w = World::new(vec![r]);
    let d = w.at(
        &customer("UTC", "1990-05-05"),
        &Consent::default(),
        "2027-05-05T12:00:00Z",
    );
    assert_eq!(outcome(&d[0]), "holdout");
}

#[test]
fn caps_arbitrate_by_priority_deterministically_whatever_the_tick() {
    let digest = ritual(
        "name: digest\ntrigger: { schedule: { cron: \"0 9 5 * *\" } }\nchannels: [email]\ntemplate: d\npriority: 10\n",
    );
    let holiday = ritual(
        "name: greet\ntrigger: { yearly: { custom: nameday } }\nsend_time: \"11:00\"\nchannels: [email]\ntemplate: g\npriority: 50\n",
    );
    let thanks = ritual(
        "name: thanks\ntrigger: { order: {} }\nchannels: [email]\ntemplate: t\nfrequency_cap: false\n",
    );
    let mut w = World::new(vec![digest, birthday(), holiday, thanks]);
    w.config.frequency_caps = vec![FrequencyCap { max: 2, days: 7 }];
    let mut c = customer("UTC", "1990-05-05");
    c.custom_dates
        .insert("nameday".into(), YearlyDate::parse("--05-05").unwrap());
    c.orders = vec![order("A-1", "2027-05-05T08:00:00Z", 1)];
    // One message 3 days ago: room for one more.
    let history = vec![Recorded {
        ritual: "birthday_old".into(),
        occurrence: "x".into(),
        message: true,
        due: at("2027-05-02T10:00:00Z"),
    }];
    let expect = |ds: &[Decision]| {
        let mut v: Vec<(String, String)> =
            ds.iter().map(|d| (d.ritual.clone(), outcome(d))).collect();
        v.sort();
        v
    };
    let want = vec![
        ("birthday".to_string(), "send:email".to_string()),
        ("digest".to_string(), "capped_by:birthday".to_string()),
        ("greet".to_string(), "capped_by:birthday".to_string()),
        ("thanks".to_string(), "send:email".to_string()),
    ];
    // All at once (a catch-up tick at the end of the day)…
    let all = w.engine().decide(
        &c,
        &Consent::default(),
        &history,
        Window::new(at("2027-05-05T00:00:00Z"), at("2027-05-05T23:00:00Z"), true),
    );
    assert_eq!(expect(&all), want);
    // …or minute by minute, feeding each tick's decisions back as history: the same.
    let mut hist = history.clone();
    let mut got = Vec::new();
    let mut t = at("2027-05-05T00:00:00Z");
    while t < at("2027-05-05T23:00:00Z") {
        let next = t + SignedDuration::from_mins(1);
        let ds = w
            .engine()
            .decide(&c, &Consent::default(), &hist, Window::new(t, next, true));
        hist.extend(ds.iter().map(Recorded::from_decision));
        got.extend(ds);
        t = next;
    }
    assert_eq!(expect(&got), want);
    // And `plan` agrees.
    let planned = w.engine().plan(
        &c,
        &Consent::default(),
        &history,
        at("2027-05-05T00:00:00Z"),
        at("2027-05-05T23:00:00Z"),
    );
    assert_eq!(expect(&planned), want);
}

#[test]
fn recorded_occurrences_are_not_decided_twice() {
    let w = World::new(vec![birthday()]);
    let c = customer("UTC", "1990-05-05");
    let now = at("2027-05-05T12:00:00Z");
    let win = Window::new(now - SignedDuration::from_hours(24), now, true);
    let first = w.engine().decide(&c, &Consent::default(), &[], win);
    let hist: Vec<Recorded> = first.iter().map(Recorded::from_decision).collect();
    assert!(
        w.engine()
            .decide(&c, &Consent::default(), &hist, win)
            .is_empty()
    );
}

#[test]
fn dst_gap_send_time_moves_forward() {
    // Europe/Bucharest springs forward 2027-03-28 03:00 → 04:00; a 03:30 send time does not exist.
    let mut r = birthday();
    r.send_time = Time::constant(3, 30, 0, 0);
    let w = World::new(vec![r]);
    let c = customer("Europe/Bucharest", "1990-03-28");
    let d = w.at(&c, &Consent::default(), "2027-03-28T12:00:00Z");
    assert_eq!(due_at(&d[0]), at("2027-03-28T01:30:00Z"));
}

#[test]
fn month_days_due_zone_by_zone_with_offsets_and_feb29() {
    let r = birthday(); // 10:00 local
    let utc = TimeZone::UTC;
    let t = at("2027-05-05T10:00:00Z");
    let day = SignedDuration::from_hours(24);
    assert_eq!(
        yearly_month_days(&r, &utc, t - SignedDuration::from_mins(1), t),
        vec![505]
    );
    assert_eq!(
        yearly_month_days(
            &r,
            &utc,
            t - SignedDuration::from_mins(1),
            t - SignedDuration::from_secs(1)
        ),
        Vec::<i32>::new()
    );
    // A whole day's window in UTC+14: one local 10:00 (May 5 10:00 local = May 4 20:00 UTC).
    let kir = TimeZone::get("Pacific/Kiritimati").unwrap();
    assert_eq!(yearly_month_days(&r, &kir, t - day, t), vec![505]);
    let mut three_days_after = birthday();
    three_days_after.trigger = crate::ritual::Trigger::Yearly {
        date: crate::ritual::YearlyField::Birthday,
        offset_days: 3,
        milestones: None,
        feb29: Feb29Policy::Feb28,
    };
    assert_eq!(
        yearly_month_days(&three_days_after, &utc, t - SignedDuration::from_mins(1), t),
        vec![502]
    );
    let feb = at("2027-02-28T10:00:00Z");
    assert_eq!(
        yearly_month_days(&r, &utc, feb - SignedDuration::from_mins(1), feb),
        vec![228, 229]
    );
}

proptest::proptest! {
    /// Whatever the zone and the tick instants, a birthday is decided exactly once across a
    /// run of ticks, its key is its year, and it is never due before its local send time.
    #[test]
    fn once_per_occurrence_across_reruns(
        secs in 1_700_000_000i64..1_900_000_000i64,
        zi in 0usize..6,
        step_mins in 1i64..180,
    ) {
        let zones = ["UTC", "Europe/Bucharest", "Europe/Moscow", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"];
        let start = Timestamp::from_second(secs).unwrap();
        let tz = TimeZone::get(zones[zi]).unwrap();
        let local = start.to_zoned(tz.clone()).date();
        let c = customer(zones[zi], &format!("1980-{:02}-{:02}", local.month(), local.day()));
        let w = World::new(vec![birthday()]);
        let mut hist = Vec::new();
        let mut all = Vec::new();
        let mut t = start - SignedDuration::from_hours(30);
        while t < start + SignedDuration::from_hours(30) {
            let next = t + SignedDuration::from_mins(step_mins);
            let ds = w.engine().decide(&c, &Consent::default(), &hist, Window::new(t, next, true));
            for d in &ds {
                proptest::prop_assert!(d.due <= next);
                proptest::prop_assert!(d.due > t);
            }
            hist.extend(ds.iter().map(Recorded::from_decision));
            all.extend(ds);
            t = next;
        }
        let this_year: Vec<&Decision> = all.iter().filter(|d| d.occurrence == local.year().to_string()).collect();
        proptest::prop_assert_eq!(this_year.len(), 1, "{:?}", all);
    }
}

#[test]
fn feb29_policy_holds_for_every_year() {
    for policy in [Feb29Policy::Feb28, Feb29Policy::Mar1, Feb29Policy::Skip] {
        let b = YearlyDate::parse("2000-02-29").unwrap();
        for year in 2001i16..2100 {
            let d = b.in_year(year, policy);
            let leap = jiff::civil::Date::new(year, 2, 29).is_ok();
            match (leap, policy) {
                (true, _) => assert_eq!(d.unwrap().day(), 29),
                (false, Feb29Policy::Feb28) => {
                    assert_eq!((d.unwrap().month(), d.unwrap().day()), (2, 28))
                }
                (false, Feb29Policy::Mar1) => {
                    assert_eq!((d.unwrap().month(), d.unwrap().day()), (3, 1))
                }
                (false, Feb29Policy::Skip) => assert!(d.is_none()),
            }
        }
    }
}

proptest::proptest! {
    /// The tick's probe filter never drops a customer the engine would find due: for any
    /// zone, window, yearly date (Feb 29 included, offsets either side), last order and order,
    /// an occurrence in `(from, to]` implies `probe_may_be_due`.
    #[test]
    fn probe_filter_keeps_everyone_due(
        secs in 1_700_000_000i64..1_900_000_000i64,
        len_mins in 1i64..(60 * 30),
        zi in 0usize..6,
        month in 1i8..=12,
        day in 1i8..=29,
        offset in -3i32..=3,
        order_back_hours in 0i64..(24 * 100),
        send_hour in 0i8..24,
    ) {
        let zones = ["UTC", "Europe/Bucharest", "Europe/Moscow", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"];
        let to = Timestamp::from_second(secs).unwrap();
        let from = to - SignedDuration::from_mins(len_mins);
        let mut c = customer(zones[zi], &format!("1980-{month:02}-{day:02}"));
        let order_at = to - SignedDuration::from_hours(order_back_hours);
        c.last_order_at = Some(order_at);
        c.orders = vec![OrderFact {
            external_id: "o1".into(),
            at: order_at,
            number: 1,
            amount_minor: 100,
            currency: "EUR".into(),
        }];
        let send = format!("\"{send_hour:02}:00\"");
        let rituals = vec![
            ritual(&format!("name: b\ntrigger: {{ yearly: {{ date: birthday, offset_days: {offset} }} }}\nsend_time: {send}\nchannels: [email]\ntemplate: b\n")),
            ritual(&format!("name: w\ntrigger: {{ inactivity: {{ days: [45, 90] }} }}\nsend_time: {send}\nchannels: [email]\ntemplate: w\n")),
            ritual("name: t\ntrigger: { order: { delay_days: 0 } }\nchannels: [email]\ntemplate: t\n"),
            ritual(&format!("name: s\ntrigger: {{ order: {{ delay_days: 7 }} }}\nsend_time: {send}\nchannels: [email]\ntemplate: s\n")),
        ];
        let w = World::new(rituals);
        let e = w.engine();
        let b = c.birthday.unwrap();
        let probes = [
            None,
            Some(Probed::LastOrder(order_at)),
            Some(Probed::Order(order_at)),
            Some(Probed::Order(order_at)),
        ];
        for (i, r) in w.rituals.iter().enumerate() {
            let found = e.occurrences_of(i, &c, from, to);
            if !found.is_empty() {
                let kept = match probes[i] {
                    None => yearly_month_days(r, &c.zone, from, to).contains(&b.month_day()),
                    Some(p) => probe_may_be_due(r, &c.zone, p, from, to),
                };
                proptest::prop_assert!(kept, "{} due at {:?} but filtered out", r.name, found[0].due);
                if i > 0 {
                    proptest::prop_assert!(
                        probe_ranges(r, from, to).iter().any(|(lo, hi)| order_at >= *lo && order_at <= *hi),
                        "{}: order at {order_at} outside the probed ranges", r.name
                    );
                }
            }
        }
    }
}

#[test]
fn probe_filter_keeps_feb29_and_drops_the_far_side_of_the_world() {
    let r = birthday();
    let kiritimati = TimeZone::get("Pacific/Kiritimati").unwrap();
    let pago = TimeZone::get("Pacific/Pago_Pago").unwrap();
    // 10:00 on 2027-05-05 in Kiritimati (UTC+14) is 2027-05-04T20:00Z.
    let to = at("2027-05-04T20:00:30Z");
    let from = to - SignedDuration::from_mins(1);
    assert!(yearly_month_days(&r, &kiritimati, from, to).contains(&505));
    assert!(!yearly_month_days(&r, &kiritimati, from, to).contains(&504));
    assert!(!yearly_month_days(&r, &pago, from, to).contains(&505));
    // Feb 29 birthdays are celebrated on Feb 28 (or Mar 1) in 2027.
    let to = at("2027-02-28T10:00:00Z");
    let utc = TimeZone::UTC;
    assert!(yearly_month_days(&r, &utc, to - SignedDuration::from_mins(1), to).contains(&229));
}
