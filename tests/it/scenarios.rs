//! End-to-end behaviour on the embedded default (outbox transport) and on PostgreSQL.

use std::process::Command;

use crate::harness::{
    BOTH, Db, HEADER, TestApp, at, newcomer_checkout, ritualist, ritualist_cmd, wait_exit,
};

const OUTBOX: &str = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n";

/// Four customers whose birthday is March 1 in Bucharest: one prefers email, one SMS, one has
/// no contact data, one will opt out.
fn march_first() -> String {
    format!(
        "{HEADER}\
         c1,Ana,Popescu,ana@example.com,+40721000001,ro,Europe/Bucharest,1990-03-01,email\n\
         c2,Иван,Петров,ivan@example.com,+79161234567,ru,Europe/Moscow,1985-03-01,sms\n\
         c3,Nobody,,,,en,Europe/Bucharest,1970-03-01,\n\
         c4,Olga,,olga@example.com,,en,Europe/Bucharest,--03-01,\n\
         c5,Later,,later@example.com,,en,Europe/Bucharest,1990-03-02,\n"
    )
}

#[tokio::test]
async fn a_tick_twice_for_the_same_day_sends_nothing_new() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, OUTBOX).await else {
            continue;
        };
        assert!(t.customers(&march_first()).await.is_empty());
        let c4 = t.app.store.find_customer("c4").await.unwrap().unwrap();
        t.app
            .store
            .set_consent(c4.id, "category:birthday", true, "test", 0)
            .await
            .unwrap();

        let now = at("2027-03-01T12:00:00Z");
        let first = t.app.tick(now).await.unwrap();
        assert_eq!(
            (first.queued, first.suppressed, first.already_recorded),
            (2, 2, 0),
            "{db:?}: {first:?}"
        );
        let sent = t.app.drain(now).await.unwrap();
        assert_eq!((sent.sent, sent.failed, sent.retrying), (2, 0, 0), "{db:?}");

        // Again, and again later the same day: every decision is already recorded, so the
        // engine decides nothing anew and the ledger keeps its four rows.
        for later in ["2027-03-01T12:00:00Z", "2027-03-01T15:30:00Z"] {
            let again = t.app.tick(at(later)).await.unwrap();
            assert_eq!(
                (again.queued, again.suppressed, again.already_recorded),
                (0, 0, 0),
                "{db:?} {later}"
            );
            assert_eq!(t.rows().await.len(), 4, "{db:?} {later}");
            assert_eq!(t.app.drain(at(later)).await.unwrap().claimed, 0);
        }
        assert_eq!(t.outbox_emails().len(), 1, "{db:?}");
        let sms = t.outbox_sms();
        assert_eq!(sms.len(), 1, "{db:?}");
        assert_eq!(sms[0]["to"], "+79161234567");
        assert_eq!(sms[0]["encoding"], "ucs-2");
        assert!(
            sms[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Иван, с днём рождения!"),
            "{}",
            sms[0]
        );

        let mut st = t.statuses().await;
        st.sort();
        assert_eq!(
            st,
            vec![
                ("email".into(), "sent".into(), "".into()),
                ("none".into(), "suppressed".into(), "no_contact".into()),
                (
                    "none".into(),
                    "suppressed".into(),
                    "opted_out:category:birthday".into()
                ),
                ("sms".into(), "sent".into(), "".into()),
            ],
            "{db:?}"
        );

        // Editing a birth date cannot mint a second greeting in the same year: the key is the year.
        let edited = format!(
            "{HEADER}c1,Ana,Popescu,ana@example.com,+40721000001,ro,Europe/Bucharest,1990-03-02,email\n"
        );
        assert!(t.customers(&edited).await.is_empty());
        let next_day = at("2027-03-02T12:00:00Z");
        let r = t.app.tick(next_day).await.unwrap();
        assert_eq!(
            r.queued, 1,
            "only c5, whose birthday really is March 2: {r:?}"
        );
        t.app.drain(next_day).await.unwrap();
        let emails = t.outbox_emails();
        assert_eq!(emails.len(), 2, "{db:?}");
        assert_eq!(
            emails
                .iter()
                .filter(|e| e.contains("<ana@example.com>"))
                .count(),
            1,
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn nothing_is_due_before_the_local_send_time_and_a_new_year_is_a_new_occurrence() {
    let t = TestApp::start(Db::Sqlite, OUTBOX).await.unwrap();
    let csv = format!("{HEADER}v1,Анна,,anna@example.com,,ru,Asia/Vladivostok,1990-03-01,\n");
    assert!(t.customers(&csv).await.is_empty());
    // 09:59 local in Vladivostok (UTC+10).
    let r = t.app.tick(at("2027-02-28T23:59:00Z")).await.unwrap();
    assert_eq!(r.decisions, 0);
    let r = t.app.tick(at("2027-03-01T00:00:00Z")).await.unwrap();
    assert_eq!(r.queued, 1);
    // The next year's birthday is its own occurrence.
    let r = t.app.tick(at("2028-03-01T05:00:00Z")).await.unwrap();
    assert_eq!(r.queued, 1);
    t.app.drain(at("2028-03-01T05:00:00Z")).await.unwrap();
    let occurrences: Vec<String> = t.rows().await.into_iter().map(|d| d.occurrence).collect();
    assert_eq!(occurrences, vec!["2027", "2028"]);
}

#[tokio::test]
async fn an_opt_out_after_planning_stops_the_message() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, OUTBOX).await else {
            continue;
        };
        assert!(t.customers(&march_first()).await.is_empty());
        let now = at("2027-03-01T12:00:00Z");
        assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
        let c1 = t.app.store.find_customer("c1").await.unwrap().unwrap();
        let c2 = t.app.store.find_customer("c2").await.unwrap().unwrap();
        t.app
            .store
            .set_consent(c1.id, "all", true, "test", 0)
            .await
            .unwrap();
        t.app
            .store
            .set_consent(c2.id, "channel:sms", true, "test", 0)
            .await
            .unwrap();
        let d = t.app.drain(now).await.unwrap();
        assert_eq!(d.sent, 1, "only c4 (no opt-out) is sent: {d:?}");
        let reasons: Vec<String> = t
            .rows()
            .await
            .into_iter()
            .filter(|r| r.status == "suppressed")
            .map(|r| r.reason.unwrap_or_default())
            .collect();
        assert_eq!(
            reasons
                .iter()
                .filter(|r| *r == "opted_out_before_send")
                .count(),
            2,
            "{db:?}: {reasons:?}"
        );
        assert_eq!(t.outbox_emails().len(), 1);
        assert!(t.outbox_sms().is_empty());
    }
}

fn outbox_count(dir: &std::path::Path) -> usize {
    let emails = std::fs::read_dir(dir.join("outbox/email"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    let sms = std::fs::read_to_string(dir.join("outbox/sms.jsonl"))
        .unwrap_or_default()
        .lines()
        .count();
    emails + sms
}

/// README's first command, as a newcomer runs it, on any day of the year at any hour: the
/// shipped sample base always yields rendered messages in the outbox.
#[test]
fn the_first_command_fills_the_outbox_on_any_day() {
    let d = newcomer_checkout();
    let out = ritualist(d.path(), &["run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        outbox_count(d.path()) > 0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Then across the year: month starts and ends, Feb 28/29, at several hours (UTC).
    let mut before = outbox_count(d.path());
    for instant in [
        "2027-01-01T00:00:00Z",
        "2027-02-28T06:30:00Z",
        "2028-02-29T13:00:00Z",
        "2027-03-31T19:45:00Z",
        "2027-06-15T23:59:00Z",
        "2027-08-01T04:00:00Z",
        "2027-10-31T10:00:00Z",
        "2027-12-31T16:20:00Z",
    ] {
        let out = ritualist(d.path(), &["run", "--once", "--now", instant]);
        assert!(
            out.status.success(),
            "{instant}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = outbox_count(d.path());
        assert!(
            after > before,
            "no message at {instant}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        before = after;
        // Re-running the same instant adds nothing.
        let out = ritualist(d.path(), &["run", "--once", "--now", instant]);
        assert!(out.status.success());
        assert_eq!(
            outbox_count(d.path()),
            before,
            "a re-run at {instant} sent again"
        );
    }
}

#[test]
fn preview_prints_the_exact_message_and_check_is_clean() {
    let d = newcomer_checkout();
    let out = ritualist(d.path(), &["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // C00061 is a Romanian customer born 1 March; preview on a given date.
    let out = ritualist(
        d.path(),
        &[
            "preview",
            "birthday",
            "--customer",
            "C00426",
            "--date",
            "2027-02-28",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("=== email to ana.426@example.com on 2027-02-28"),
        "{stdout}"
    );
    assert!(stdout.contains("La mulți ani, Ana!"), "{stdout}");
    assert!(stdout.contains("Message-ID: <"), "{stdout}");

    let out = ritualist(
        d.path(),
        &[
            "preview",
            "birthday",
            "--customer",
            "C00426",
            "--date",
            "2027-03-01",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("does not fire"));

    // Preview writes nothing.
    assert_eq!(outbox_count(d.path()), 0);
}

/// `ritualist run` keeps ticking until SIGTERM, then exits cleanly (status 0).
#[test]
fn the_daemon_ticks_and_stops_cleanly_on_sigterm() {
    let d = newcomer_checkout();
    let cfg = d.path().join("config/ritualist.yaml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("  max_attempts: 8\n", "  max_attempts: 8\n  tick_secs: 1\n");
    std::fs::write(&cfg, text).unwrap();
    let mut child = ritualist_cmd(d.path())
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = crate::harness::LogWatch::start(&mut child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while outbox_count(d.path()) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        outbox_count(d.path()) > 0,
        "the daemon sent nothing within 60 s"
    );
    // Let it tick a few more times (two whole ticks after this point; the one under way may
    // finish first): nothing new may appear.
    let sent = outbox_count(d.path());
    let ticks = log.count("tick done");
    assert!(
        log.wait_count("tick done", ticks + 3, std::time::Duration::from_secs(60)),
        "the daemon stopped ticking:\n{}",
        log.text()
    );
    assert_eq!(outbox_count(d.path()), sent, "later ticks re-sent");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_exit(
        &mut child,
        std::time::Duration::from_secs(20),
        "the daemon after SIGTERM",
    );
    log.wait_closed();
    let err = log.text();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("shutdown signal received"), "{err}");
}

/// Two ticks racing on the same database (two daemons, or a restart overlapping a run)
/// record each occurrence once (Mautic #2215: overlapping runs double-sent).
#[tokio::test]
async fn overlapping_ticks_never_double_record() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, OUTBOX).await else {
            continue;
        };
        let mut csv = HEADER.to_string();
        for i in 0..60 {
            csv.push_str(&format!(
                "r{i},N{i},,r{i}@example.com,,en,Europe/Bucharest,1990-03-01,\n"
            ));
        }
        assert!(t.customers(&csv).await.is_empty());
        let now = at("2027-03-01T12:00:00Z");
        let (a, b) = tokio::join!(t.app.tick(now), t.app.tick(now));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.queued + b.queued, 60, "{db:?}: {a:?} {b:?}");
        let (x, y) = tokio::join!(t.app.drain(now), t.app.drain(now));
        assert_eq!(x.unwrap().sent + y.unwrap().sent, 60, "{db:?}");
        assert_eq!(t.outbox_emails().len(), 60);
        assert_eq!(t.rows().await.len(), 60);
    }
}

/// A test SMS goes through the configured SMS transport (here the outbox), marked, unrecorded.
#[test]
fn a_test_sms_is_marked_and_unrecorded() {
    let d = newcomer_checkout();
    let out = ritualist(
        d.path(),
        &[
            "preview",
            "birthday",
            "--customer",
            "C00426",
            "--date",
            "2027-02-28",
            "--send-to",
            "+40 721 999 999",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sms = std::fs::read_to_string(d.path().join("outbox/sms.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(sms.lines().next().unwrap()).unwrap();
    assert_eq!(line["to"], "+40721999999");
    assert!(
        line["text"]
            .as_str()
            .unwrap()
            .starts_with("[TEST] La multi ani, Ana!"),
        "{line}"
    );
    let out = ritualist(d.path(), &["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "nothing recorded"
    );
}
