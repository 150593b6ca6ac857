//! The ritual engine end to end (issue #3): every trigger kind through the store, `plan`
//! agreeing exactly with what the daemon then records, catch-up after an outage (late or
//! `missed`), customers imported after their occurrence was due, and quiet hours at send time.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use ritualist::app::PlanRequest;

use crate::harness::{BOTH, TestApp, at};

const OUTBOX: &str = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n";

/// March 8, 2027: Women's Day in the ro and ru calendars.
fn day() -> jiff::civil::Date {
    jiff::civil::date(2027, 3, 8)
}

const CUSTOMERS: &str = "external_id,first_name,email,phone,locale,time_zone,birthday,signup_date,preferred_channel,date:wedding,country\n\
b-ro,Ana,ana@example.com,+40721000001,ro,Europe/Bucharest,1990-03-08,,,,\n\
b-ru,Ivan,ivan@example.com,+79161000002,ru,Europe/Moscow,--03-08,,sms,,\n\
anniv-us,Joe,joe@example.com,,en,America/New_York,,2022-03-08,,,US\n\
wed-md,Ion,ion@example.com,,ro,Europe/Chisinau,,,,2010-03-11,MD\n\
sleepy,Olga,olga@example.com,+79161000005,ru,Asia/Vladivostok,,,,,\n\
buyer-gb,Amy,amy@example.com,,en-GB,Europe/London,,,,,GB\n\
optout-ro,Maria,maria@example.com,,ro,Europe/Bucharest,1985-03-08,,,,\n\
nocontact,Nobody,,,ro,Europe/Bucharest,1980-03-08,,,,\n\
busy-ro,Elena,elena@example.com,,ro,Europe/Bucharest,1992-03-08,2017-03-08,,2001-03-11,\n\
kiri,Teuea,teuea@example.com,,en,Pacific/Kiritimati,2000-03-08,,,,\n\
pago,Sina,sina@example.com,,en,Pacific/Pago_Pago,2000-03-08,,,,\n";

const ORDERS: &str = "external_id,customer,ordered_at,amount,currency\n\
r1,b-ru,2026-12-01T10:00:00Z,120.00,RUB\n\
s1,sleepy,2027-01-22T02:00:00Z,80.00,RUB\n\
g1,buyer-gb,2026-10-01T10:00:00Z,20.00,GBP\n\
g2,buyer-gb,2026-11-01T10:00:00Z,20.00,GBP\n\
g3,buyer-gb,2026-12-01T10:00:00Z,20.00,GBP\n\
g4,buyer-gb,2027-03-01T09:00:00Z,35.50,GBP\n\
g5,buyer-gb,2027-03-08T14:05:00Z,42.00,GBP\n\
o1,optout-ro,2026-09-01T10:00:00Z,50.00,RON\n\
e1,busy-ro,2026-09-01T10:00:00Z,50.00,RON\n";

/// One comparable line per decision.
type Line = (String, String, String, String, String, String, String);

async fn setup(db: crate::harness::Db) -> Option<TestApp> {
    let t = TestApp::start(db, OUTBOX).await?;
    assert!(t.customers(CUSTOMERS).await.is_empty());
    assert!(t.orders(ORDERS).await.is_empty());
    let optout = t
        .app
        .store
        .find_customer("optout-ro")
        .await
        .unwrap()
        .unwrap();
    t.app
        .store
        .set_consent(optout.id, "category:holidays.womens_day", true, "test", 0)
        .await
        .unwrap();
    Some(t)
}

#[tokio::test]
async fn plan_agrees_exactly_with_what_the_daemon_then_does() {
    for db in BOTH {
        let Some(t) = setup(db).await else { continue };
        let planned = t
            .app
            .plan(
                &PlanRequest {
                    date: day(),
                    days: 1,
                    ritual: None,
                    customer: None,
                },
                |_, _| {},
            )
            .await
            .unwrap();
        let plan_lines: BTreeSet<Line> = planned
            .iter()
            .map(|p| {
                (
                    p.ritual.clone(),
                    p.customer.clone(),
                    p.occurrence.clone(),
                    p.channel.clone().unwrap_or_else(|| "none".into()),
                    p.decision.to_string(),
                    p.reason.clone().unwrap_or_default(),
                    p.send_at_utc.clone().unwrap_or_default(),
                )
            })
            .collect();

        // Every kind of trigger and reason is in the plan.
        let has = |ritual: &str, customer: &str, what: &str| {
            plan_lines
                .iter()
                .any(|l| l.0 == ritual && l.1 == customer && (l.4 == what || l.5 == what))
        };
        assert!(has("birthday", "b-ro", "send"), "{plan_lines:#?}");
        assert!(has("birthday", "kiri", "send") && has("birthday", "pago", "send"));
        assert!(has("holidays", "b-ru", "send"));
        assert!(has("anniversary", "anniv-us", "send"));
        assert!(has("wedding", "wed-md", "send"));
        assert!(has("winback", "sleepy", "send") || has("winback", "sleepy", "holdout"));
        assert!(has("thank_you", "buyer-gb", "send"));
        assert!(has("reward", "buyer-gb", "send"));
        assert!(has("survey", "buyer-gb", "send"));
        assert!(has(
            "holidays",
            "optout-ro",
            "opted_out:category:holidays.womens_day"
        ));
        assert!(
            has("birthday", "optout-ro", "send"),
            "one category's opt-out leaves the rest alone"
        );
        assert!(has("birthday", "nocontact", "no_contact"));
        // busy-ro: birthday (100), Women's Day (80), wedding reminder (70), 10th anniversary
        // (60) on one day under a cap of 3 in 7 days: the lowest priority gives way.
        assert!(
            has("anniversary", "busy-ro", "capped_by:birthday"),
            "{plan_lines:#?}"
        );
        assert!(has("wedding", "busy-ro", "send") && has("holidays", "busy-ro", "send"));
        // The thank-you goes when the order is placed, the survey at 11:00 London time.
        let sent_at = |ritual: &str| {
            plan_lines
                .iter()
                .find(|l| l.0 == ritual && l.1 == "buyer-gb")
                .unwrap()
                .6
                .clone()
        };
        assert_eq!(sent_at("thank_you"), "2027-03-08T14:05:00Z");
        assert_eq!(sent_at("survey"), "2027-03-08T11:00:00Z");
        // Ivan prefers SMS: 09:30 Moscow is inside the SMS hours.
        assert!(plan_lines.iter().any(|l| l.0 == "holidays"
            && l.1 == "b-ru"
            && l.3 == "sms"
            && l.6 == "2027-03-08T06:30:00Z"));

        // Now the daemon, ticking every 10 minutes through the day everywhere on Earth.
        let mut now = at("2027-03-06T12:00:00Z");
        while now <= at("2027-03-09T12:00:00Z") {
            t.app.tick(now).await.unwrap();
            now += SignedDuration::from_mins(10);
        }
        let ids: std::collections::HashMap<i64, String> = {
            let mut m = std::collections::HashMap::new();
            for l in CUSTOMERS.lines().skip(1) {
                let ext = l.split(',').next().unwrap();
                let c = t.app.store.find_customer(ext).await.unwrap().unwrap();
                m.insert(c.id, ext.to_string());
            }
            m
        };
        let ledger_lines: BTreeSet<Line> = t
            .rows()
            .await
            .into_iter()
            .filter(|d| {
                let o: serde_json::Value =
                    serde_json::from_str(d.occasion.as_deref().unwrap()).unwrap();
                o["date"] == day().to_string()
            })
            .map(|d| {
                let send = d.status == "pending";
                (
                    d.ritual,
                    ids[&d.customer_id].clone(),
                    d.occurrence,
                    d.channel,
                    if send { "send" } else { "suppress" }.to_string(),
                    d.reason.unwrap_or_default(),
                    if send {
                        Timestamp::from_second(d.due_at).unwrap().to_string()
                    } else {
                        String::new()
                    },
                )
            })
            .collect();
        let only_plan: Vec<&Line> = plan_lines.difference(&ledger_lines).collect();
        let only_ledger: Vec<&Line> = ledger_lines.difference(&plan_lines).collect();
        assert!(
            only_plan.is_empty() && only_ledger.is_empty(),
            "{db:?}: planned but not done {only_plan:#?}\ndone but not planned {only_ledger:#?}"
        );
    }
}

#[tokio::test]
async fn after_an_outage_late_within_grace_missed_beyond_it() {
    let Some(t) = TestApp::start(crate::harness::Db::Sqlite, OUTBOX).await else {
        return;
    };
    assert!(
        t.customers(
            "external_id,email,locale,time_zone,birthday\nb1,b1@example.com,en,UTC,1990-03-08\nt1,t1@example.com,en,UTC,\n"
        )
        .await
        .is_empty()
    );
    assert!(
        t.orders("external_id,customer,ordered_at,amount,currency\nx1,t1,2027-03-08T12:00:00Z,10.00,EUR\n")
            .await
            .is_empty()
    );
    // The daemon runs on the 6th, then is down until the evening of the 9th.
    let before = t.app.tick(at("2027-03-06T12:00:00Z")).await.unwrap();
    assert_eq!(before.decisions, 0);
    t.app.tick(at("2027-03-09T20:00:00Z")).await.unwrap();
    let rows = t.rows().await;
    let find = |r: &str| {
        rows.iter()
            .find(|d| d.ritual == r)
            .unwrap_or_else(|| panic!("{r}: {rows:#?}"))
    };
    // The birthday's day is over: recorded as missed, never silently dropped, never sent late.
    assert_eq!(
        (
            find("birthday").status.as_str(),
            find("birthday").reason.as_deref()
        ),
        ("suppressed", Some("missed"))
    );
    // The thank-you may be two days late: it goes now.
    assert_eq!(find("thank_you").status, "pending");
    assert_eq!(
        t.app.drain(at("2027-03-09T20:00:00Z")).await.unwrap().sent,
        1
    );
}

#[tokio::test]
async fn a_customer_imported_after_their_occasion_was_due_still_gets_it_today() {
    let Some(t) = TestApp::start(crate::harness::Db::Sqlite, OUTBOX).await else {
        return;
    };
    t.app.tick(at("2027-03-08T08:00:00Z")).await.unwrap();
    t.app.tick(at("2027-03-08T12:00:00Z")).await.unwrap();
    // Imported at 14:00, with a birthday whose 10:00 send time has passed.
    assert!(
        t.customers(
            "external_id,email,locale,time_zone,birthday\nlate,late@example.com,en,UTC,1990-03-08\n"
        )
        .await
        .is_empty()
    );
    let r = t.app.tick(at("2027-03-08T14:00:00Z")).await.unwrap();
    assert_eq!(r.queued, 1, "{r:?}");
    // And an order placed an hour ago (imported late) still gets its thank-you.
    assert!(
        t.orders("external_id,customer,ordered_at,amount,currency\nq1,late,2027-03-08T13:00:00Z,10.00,EUR\n")
            .await
            .is_empty()
    );
    let r = t.app.tick(at("2027-03-08T14:01:00Z")).await.unwrap();
    assert_eq!(r.queued, 1, "{r:?}");
    let rituals: Vec<String> = t.rows().await.into_iter().map(|d| d.ritual).collect();
    assert_eq!(rituals, vec!["birthday", "thank_you"]);
}

#[tokio::test]
async fn sms_is_never_sent_inside_quiet_hours() {
    let Some(t) = TestApp::start(crate::harness::Db::Sqlite, OUTBOX).await else {
        return;
    };
    // Win-back (12:00 local, SMS preferred) for a customer in Bucharest (UTC+2 in March).
    assert!(
        t.customers("external_id,email,phone,locale,time_zone,preferred_channel\nq,q@example.com,+40721000009,en,Europe/Bucharest,sms\n")
            .await
            .is_empty()
    );
    assert!(
        t.orders(
            "external_id,customer,ordered_at,amount,currency\nw1,q,2027-01-22T10:00:00Z,10.00,RON\n"
        )
        .await
        .is_empty()
    );
    let winback_held_out = ritualist::plan::in_holdout("winback", "q", 10.0);
    assert!(
        !winback_held_out,
        "pick another customer id: this one is in the holdout"
    );
    // Decided on time (12:00 local), but the queue is only drained at 21:30 local.
    t.app.tick(at("2027-03-08T10:00:00Z")).await.unwrap();
    let late = t.app.drain(at("2027-03-08T19:30:00Z")).await.unwrap();
    assert_eq!(
        (late.claimed, late.deferred, late.sent),
        (1, 1, 0),
        "{late:?}"
    );
    assert!(t.outbox_sms().is_empty());
    // Not before 09:00 the next morning, then it goes (the deferral was not an attempt).
    assert_eq!(
        t.app
            .drain(at("2027-03-09T06:59:00Z"))
            .await
            .unwrap()
            .claimed,
        0
    );
    assert_eq!(
        t.app.drain(at("2027-03-09T07:00:00Z")).await.unwrap().sent,
        1
    );
    let rows = t.rows().await;
    assert_eq!((rows[0].status.as_str(), rows[0].attempts), ("sent", 1));
}

#[test]
fn plan_on_the_command_line_prints_json_and_a_progress_bar_on_a_terminal() {
    let d = crate::harness::newcomer_checkout();
    let out = crate::harness::ritualist(
        d.path(),
        &["plan", "--date", "2027-03-01", "--format", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    for r in &rows {
        for key in [
            "ritual",
            "customer",
            "decision",
            "channel",
            "send_at",
            "occurrence",
            "reason",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    let send = rows.iter().find(|r| r["decision"] == "send").unwrap();
    // RFC 3339 with the customer's offset, and UTC.
    let local: jiff::Timestamp = send["send_at"].as_str().unwrap().parse().unwrap();
    let utc: jiff::Timestamp = send["send_at_utc"].as_str().unwrap().parse().unwrap();
    assert_eq!(local, utc);
    // Nothing was written: the ledger is empty.
    let status = crate::harness::ritualist(d.path(), &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );

    // On a terminal (a pty from `script`), a progress bar on stderr.
    let bin = env!("CARGO_BIN_EXE_ritualist");
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{bin} plan --date 2027-03-01 --format json > /dev/null"),
            "/dev/null",
        ])
        .current_dir(d.path())
        .env_remove("RITUALIST_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("planning"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `plan_each` (issue #26) writes each chunk of customers' decisions as it is made, not
/// all at the end: with more customers than a chunk, the sink is called several times, the
/// first time before the scan is done, and together the chunks are exactly `plan`'s rows.
#[tokio::test]
async fn plan_each_streams_decisions_chunk_by_chunk() {
    let Some(t) = TestApp::start(crate::harness::Db::Sqlite, OUTBOX).await else {
        return;
    };
    let n = 4_500;
    let mut csv = crate::harness::HEADER.to_string();
    for i in 0..n {
        csv.push_str(&format!(
            "s{i},Emma,,s{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let req = PlanRequest {
        date: jiff::civil::date(2027, 5, 5),
        days: 1,
        ritual: Some("birthday".into()),
        customer: None,
    };
    // (rows in the chunk, whether the scan was done when it arrived)
    let calls = std::sync::Mutex::new(Vec::new());
    let progress = std::sync::Mutex::new((0, 0));
    let mut streamed = BTreeSet::new();
    let summary = t
        .app
        .plan_each(
            &req,
            |done, total| *progress.lock().unwrap() = (done, total),
            |chunk| {
                let (done, total) = *progress.lock().unwrap();
                calls.lock().unwrap().push((chunk.len(), done >= total));
                for p in chunk {
                    streamed.insert((p.customer.clone(), p.decision, p.channel.clone()));
                }
            },
        )
        .await
        .unwrap();
    let calls = calls.into_inner().unwrap();
    assert!(calls.len() >= 3, "one sink call per chunk: {calls:?}");
    assert!(
        !calls[0].1,
        "the first chunk came before the scan ended: {calls:?}"
    );
    assert_eq!(summary.decisions, n as u64, "{summary:?}");
    assert_eq!(summary.sends, n as u64, "{summary:?}");
    let collected: BTreeSet<_> = t
        .app
        .plan(&req, |_, _| {})
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.customer, p.decision, p.channel))
        .collect();
    assert_eq!(streamed.len(), n);
    assert_eq!(streamed, collected);
}
