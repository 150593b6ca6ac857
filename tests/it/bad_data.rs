//! A message that cannot be built fails alone (issue #23): a customer whose stored name no
//! email header can carry (a CR/LF written by an older version, straight into the database),
//! or a panic while composing one message (the `compose` failpoint), fails that row with its
//! reason; every other message of the batch is delivered to a real smtp-sink, and the daemon
//! with its HTTP server (`/healthz`) stays up.
//!
//! Regression: composing the email of a customer named "Ana\nMaria" panicked inside lettre's
//! address formatting; `ritualist run` exited 2, the batch stayed `claimed`, nobody got mail.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{BOTH, Db, HEADER, TestApp, at, ritualist_cmd, wait_exit};
use crate::peers::SmtpSink;

const N: usize = 10;

fn smtp(port: u16) -> String {
    format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: plain\n      timeout_secs: 10\n  sms:\n    transport: outbox\n"
    )
}

/// `N` customers named Emma with a birthday on 1 March, all preferring email.
fn customers() -> String {
    named_customers(N, |_| "Emma".into())
}

/// `n` customers `c0`, `c1`, … (`user<i>@example.com`, first name `name(i)`) with a birthday
/// on 1 March, all preferring email.
fn named_customers(n: usize, name: impl Fn(usize) -> String) -> String {
    let mut s = HEADER.to_string();
    for i in 0..n {
        s.push_str(&format!(
            "c{i},{},Test,user{i}@example.com,,en,Europe/Bucharest,1990-03-01,email\n",
            name(i)
        ));
    }
    s
}

/// Runs one SQL statement on the test's database with its own client (`sqlite3`, `psql`): a
/// row as an older version of ritualist could have written it, around today's import.
fn raw_sql(t: &TestApp, db: Db, statement: &str) {
    let out = match db {
        Db::Sqlite => Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(t.dir.join("data/ritualist.db"))
            .arg(statement)
            .output(),
        Db::Postgres => Command::new("psql")
            .args([
                t.app.cfg.database_url.as_str(),
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ])
            .output(),
    }
    .expect("sqlite3 / psql");
    assert!(
        out.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name with a line break, stored directly (SQLite and PostgreSQL): its message fails with
/// a reason that says why, the other nine are delivered, the drain completes; `preview` of
/// that customer is a clear error.
#[tokio::test]
async fn a_stored_name_with_a_line_break_fails_only_its_message() {
    for db in BOTH {
        let Some(sink) = SmtpSink::start(&[]) else {
            return;
        };
        let Some(t) = TestApp::start(db, &smtp(sink.port())).await else {
            continue;
        };
        assert!(t.customers(&customers()).await.is_empty());
        let statement = match db {
            Db::Sqlite => {
                "UPDATE customers SET first_name = 'Ana' || char(13) || char(10) || 'Bcc: x@evil.example' WHERE external_id = 'c3'"
            }
            Db::Postgres => {
                "UPDATE customers SET first_name = E'Ana\\r\\nBcc: x@evil.example' WHERE external_id = 'c3'"
            }
        };
        raw_sql(&t, db, statement);
        let bad = t.app.store.find_customer("c3").await.unwrap().unwrap().id;
        // `preview` of that customer: a clear error and exit 2, no panic.
        let out = crate::harness::ritualist(
            &t.dir,
            &[
                "--config",
                "config/ritualist.yaml",
                "preview",
                "birthday",
                "--customer",
                "c3",
                "--date",
                "2027-03-01",
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{db:?}: {stderr}");
        assert!(
            stderr.contains("name contains a line break") && !stderr.contains("panicked"),
            "{db:?}: {stderr}"
        );
        assert_eq!(
            t.app.tick(at("2027-03-01T09:00:00Z")).await.unwrap().queued,
            N
        );
        let r = t.app.drain(at("2027-03-01T09:00:00Z")).await.unwrap();
        assert_eq!((r.sent, r.failed), (N - 1, 1), "{db:?}: {r:?}");
        let rows = t.rows().await;
        let failed: Vec<_> = rows.iter().filter(|d| d.status == "failed").collect();
        assert_eq!(failed.len(), 1, "{db:?}: {rows:?}");
        assert_eq!(failed[0].customer_id, bad, "{db:?}");
        let reason = failed[0].last_error.as_deref().unwrap_or_default();
        assert!(
            reason.contains("name contains a line break") && !reason.starts_with("render"),
            "{db:?}: {reason}"
        );
        assert_eq!(
            rows.iter().filter(|d| d.status == "sent").count(),
            N - 1,
            "{db:?}"
        );
        let got = sink.wait_for(N - 1, Duration::from_secs(30));
        assert_eq!(got.len(), N - 1, "{db:?}: {}", sink.log());
        assert!(
            got.iter()
                .all(|m| !String::from_utf8_lossy(m).contains("evil.example")),
            "{db:?}: the bad name reached the wire"
        );
    }
}

/// A batch big enough to be composed on two threads (issue #26) keeps each message with its
/// row: 100 customers, each named after their number, two of them with a stored name no
/// header can carry (one in each half of the batch). Those two rows fail with the reason;
/// each of the 98 emails on the wire goes to its own customer with its own name.
#[tokio::test]
async fn a_batch_composed_on_two_threads_keeps_each_message_with_its_row() {
    each_message_with_its_row(100, &[7, 93]).await;
}

/// A batch composed and sent in parts, each part composed while the one before it is sent
/// (issue #26: more than 250 messages to compose), keeps each message with its row too: 600
/// customers, a bad name in the first, second and last part.
#[tokio::test]
async fn a_batch_sent_in_parts_keeps_each_message_with_its_row() {
    each_message_with_its_row(600, &[7, 300, 555]).await;
}

/// `m` customers named after their number, those numbered `bad` with a stored name no header
/// can carry, drained in one batch: the bad rows fail with the reason, every other email goes
/// to its own customer with its own name.
async fn each_message_with_its_row(m: usize, bad: &[usize]) {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let Some(t) = TestApp::start(Db::Sqlite, &smtp(sink.port())).await else {
        return;
    };
    let csv = named_customers(m, |i| format!("Emma{i}"));
    assert!(t.customers(&csv).await.is_empty());
    let names: Vec<String> = bad.iter().map(|i| format!("'c{i}'")).collect();
    raw_sql(
        &t,
        Db::Sqlite,
        &format!(
            "UPDATE customers SET first_name = 'Ana' || char(10) || 'Bcc: x@evil.example' \
             WHERE external_id IN ({})",
            names.join(", ")
        ),
    );
    assert_eq!(
        t.app.tick(at("2027-03-01T09:00:00Z")).await.unwrap().queued,
        m
    );
    let r = t.app.drain(at("2027-03-01T09:00:00Z")).await.unwrap();
    assert_eq!(
        (r.claimed, r.sent, r.failed),
        (m, m - bad.len(), bad.len()),
        "{r:?}"
    );
    let rows = t.rows().await;
    let mut failed: Vec<i64> = rows
        .iter()
        .filter(|d| d.status == "failed")
        .map(|d| d.customer_id)
        .collect();
    failed.sort();
    let mut want_failed = Vec::new();
    for i in bad {
        let c = format!("c{i}");
        want_failed.push(t.app.store.find_customer(&c).await.unwrap().unwrap().id);
    }
    want_failed.sort();
    assert_eq!(failed, want_failed);
    assert!(
        rows.iter().filter(|d| d.status == "failed").all(|d| d
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("line break")),
        "{rows:?}"
    );
    let got = sink.wait_for(m - bad.len(), Duration::from_secs(60));
    assert_eq!(got.len(), m - bad.len(), "{}", sink.log());
    let mut seen = Vec::new();
    for msg in &got {
        let msg = String::from_utf8_lossy(msg);
        let i: usize = msg
            .lines()
            .find_map(|l| l.strip_prefix("To: "))
            .and_then(|to| to.split("<user").nth(1))
            .and_then(|rest| rest.split('@').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no recipient in {msg}"));
        assert!(
            msg.contains(&format!("Happy birthday, Emma{i}!")),
            "user{i}'s email is not theirs: {msg}"
        );
        seen.push(i);
    }
    seen.sort();
    let want: Vec<usize> = (0..m).filter(|i| !bad.contains(i)).collect();
    assert_eq!(seen, want);
}

/// `ritualist run` (the daemon, with its HTTP server) where composing the third message
/// panics (`RITUALIST_FAILPOINT=compose@3`): that row is `failed` with the reason, the others
/// are delivered, `/healthz` still answers, the daemon logs the bug with the customer id and
/// the ritual, and it stops cleanly on SIGTERM. On SQLite and PostgreSQL.
#[tokio::test]
async fn a_panic_composing_one_message_fails_only_that_row() {
    for db in BOTH {
        panic_while_composing(db).await;
    }
}

async fn panic_while_composing(db: Db) {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let delivery = format!(
        "{}http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n",
        smtp(sink.port())
    );
    let Some(t) = TestApp::start(db, &delivery).await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    // Queued for a moment already past: the daemon (on the real clock) finds them due.
    assert_eq!(
        t.app.tick(at("2026-03-01T09:00:00Z")).await.unwrap().queued,
        N
    );

    let mut child = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "run"])
        .env("RITUALIST_FAILPOINT", "compose@3")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                if !sent && let Some(i) = line.find("listening on ") {
                    let addr: String = line[i + 13..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(addr);
                    sent = true;
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let log_text = || log.lock().unwrap().join("\n");
    let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("the daemon did not report its address:\n{}", log_text());
    };

    // Every row settles (bounded); none stays `claimed`.
    let deadline = Instant::now() + Duration::from_secs(120);
    let rows = loop {
        let rows = t.rows().await;
        if rows
            .iter()
            .all(|d| d.status == "sent" || d.status == "failed")
        {
            break rows;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the rows did not settle: {rows:?}\n{}", log_text());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let failed: Vec<_> = rows.iter().filter(|d| d.status == "failed").collect();
    assert_eq!(failed.len(), 1, "{rows:?}");
    let reason = failed[0].last_error.as_deref().unwrap_or_default();
    assert!(
        reason.contains("bug") && reason.contains("failpoint compose@3"),
        "{reason}"
    );
    assert_eq!(sink.wait_for(N - 1, Duration::from_secs(30)).len(), N - 1);

    // The daemon and its HTTP server are still up.
    assert!(child.try_wait().unwrap().is_none(), "{}", log_text());
    ritualist::channel::init_tls();
    let health = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_exit(
        &mut child,
        Duration::from_secs(30),
        "the daemon after SIGTERM",
    );
    assert!(status.success(), "{status}\n{}", log_text());
    // The bug is logged with the customer and the ritual, never the address.
    let text = log_text();
    let bug = text
        .lines()
        .find(|l| l.contains("BUG: composing a message panicked"))
        .unwrap_or_else(|| panic!("no BUG line:\n{text}"));
    assert!(
        bug.contains(&format!("customer={}", failed[0].customer_id)) && bug.contains("birthday"),
        "{bug}"
    );
    assert!(!bug.contains("@example.com"), "{bug}");
}

/// #23: a message queued by an older version to an address today's door refuses (`..` in the
/// local part) failed with a misleading "invalid address ``: empty"; now it fails alone with a
/// reason that says what to do, and the others go out.
#[tokio::test(flavor = "multi_thread")]
async fn a_queued_address_the_door_now_refuses_fails_alone_with_a_clear_reason() {
    for db in BOTH {
        let Some(sink) = SmtpSink::start(&[]) else {
            return;
        };
        let Some(t) = TestApp::start(db, &smtp(sink.port())).await else {
            continue;
        };
        assert!(t.customers(&customers()).await.is_empty());
        assert_eq!(
            t.app.tick(at("2027-03-01T09:00:00Z")).await.unwrap().queued,
            N
        );
        let bad = t.app.store.find_customer("c3").await.unwrap().unwrap().id;
        raw_sql(
            &t,
            db,
            &format!(
                "UPDATE deliveries SET recipient = 'ana..old@example.com' WHERE customer_id = {bad}"
            ),
        );
        let r = t.app.drain(at("2027-03-01T09:00:00Z")).await.unwrap();
        assert_eq!((r.sent, r.failed), (N - 1, 1), "{db:?}: {r:?}");
        let rows = t.rows().await;
        let failed: Vec<_> = rows.iter().filter(|d| d.status == "failed").collect();
        assert_eq!(failed[0].customer_id, bad, "{db:?}");
        let reason = failed[0].last_error.as_deref().unwrap_or_default();
        assert!(
            reason.contains("not accepted any more") && reason.contains("outbox retry"),
            "{db:?}: {reason}"
        );
        assert_eq!(sink.wait_for(N - 1, Duration::from_secs(30)).len(), N - 1);
    }
}

/// No argument panics (issue #23): dates, instants, day counts and years out of range are
/// clear errors with exit code 2. Regression: `preview --date 9999-12-31` and
/// `plan --days 4000000000` panicked inside the date library.
#[tokio::test]
async fn odd_arguments_are_clear_errors_never_panics() {
    let Some(t) = TestApp::start(Db::Sqlite, "  email:\n    transport: outbox\n").await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    let cases: [(&[&str], &str); 9] = [
        (
            &[
                "preview",
                "birthday",
                "--customer",
                "c0",
                "--date",
                "9999-12-31",
            ],
            "out of range",
        ),
        (
            &[
                "preview",
                "birthday",
                "--customer",
                "c0",
                "--date",
                "9001-01-01",
            ],
            "out of range",
        ),
        (&["plan", "--date", "9999-12-31"], "out of range"),
        (&["plan", "--days", "4000000000"], "not in 0..=3660"),
        (&["report", "--until", "9999-12-31"], "out of range"),
        (&["report", "--since", "0000-01-01"], "out of range"),
        (&["report", "--window-days", "99999"], "not in 0..=3660"),
        (
            &["run", "--once", "--now", "9999-12-30T00:00:00Z"],
            "out of range",
        ),
        (&["calendar", "ro", "--year", "32767"], "not in 1..=9000"),
    ];
    for (args, says) in cases {
        let mut all = vec!["--config", "config/ritualist.yaml"];
        all.extend_from_slice(args);
        let out = crate::harness::ritualist(&t.dir, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(says) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    // The edges of the range work.
    for args in [
        &["plan", "--date", "9000-12-31", "--days", "1"][..],
        &[
            "preview",
            "birthday",
            "--customer",
            "c0",
            "--date",
            "9000-03-01",
        ][..],
    ] {
        let mut all = vec!["--config", "config/ritualist.yaml"];
        all.extend_from_slice(args);
        let out = crate::harness::ritualist(&t.dir, &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}
