//! Issue 27's end-to-end test: a real Postfix as the shop's relay, configured with the
//! `bounces:`, main.cf and transport blocks of docs/operator.md ("Bounces over LMTP"). ritualist
//! hands it four birthday emails; the next hop (tests/peers/refusing_smtp.py) refuses two
//! recipients with `550 5.1.1`, defers one with `451 4.2.0` and takes one. Postfix writes its
//! own DSNs to the VERP return paths and routes them over LMTP to the daemon's listener —
//! down at first: Postfix keeps them, and `ritualist run` records them once started. The refused
//! customers end up opted out (source `bounce`), the deferred and the delivered ones do not.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::harness::{Db, HEADER, REPO, TestApp, at, ritualist_cmd, wait_exit};
use crate::peers::{Postfix, ScratchDir, aiosmtpd_available, free_port, start_python_peer};

/// The fenced block of docs/operator.md's "Bounces over LMTP" section whose first line starts
/// with `first`.
fn doc_block(fence: &str, first: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/operator.md")).unwrap();
    let section = doc
        .split("## Bounces over LMTP (the shop's Postfix)")
        .nth(1)
        .expect("docs/operator.md: the section `Bounces over LMTP (the shop's Postfix)`");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .split(&format!("```{fence}\n"))
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.starts_with(first))
        .unwrap_or_else(|| panic!("docs/operator.md: no ```{fence} block starting {first:?}"))
        .to_string()
}

/// The documented settings with this test's domain, port and directory.
fn localise(text: &str, lmtp: u16) -> String {
    text.replace("bounces.shop.example", "ritualist.test")
        .replace("127.0.0.1:2526", &format!("127.0.0.1:{lmtp}"))
        .replace("/etc/postfix/transport", "{dir}/transport")
}

/// `ritualist run` in `t`'s folder, once its listener is up on `lmtp`; its log lines.
fn start_daemon(t: &TestApp, lmtp: u16) -> (std::process::Child, Arc<Mutex<Vec<String>>>) {
    let mut child = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "run"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            sink.lock().unwrap().push(line.unwrap_or_default());
        }
    });
    let ready = format!("inbound mail: lmtp on 127.0.0.1:{lmtp}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.lock().unwrap().iter().any(|l| l.contains(&ready)) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the daemon's listener did not come up:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, lines)
}

/// Polls `f` every 100 ms until it is true; false after `timeout`.
async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_dsns_reach_the_listener_and_opt_out_only_the_refused() {
    relay_round_trip(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_dsns_reach_the_listener_and_opt_out_only_the_refused_on_postgres() {
    relay_round_trip(Db::Postgres).await;
}

/// The whole round trip on `db`.
async fn relay_round_trip(db: Db) {
    if !aiosmtpd_available() {
        return;
    }
    let dump = ScratchDir::new("ritualist-next-hop");
    let hop = free_port();
    let _next_hop = KillOnDrop(start_python_peer(
        "refusing_smtp.py",
        &[
            hop.to_string().as_ref(),
            dump.path().as_os_str(),
            "gone".as_ref(),
            "later".as_ref(),
        ],
    ));
    let lmtp = free_port();
    let main_cf = localise(&doc_block("conf", "# /etc/postfix/main.cf"), lmtp);
    let transport = localise(&doc_block("conf", "# /etc/postfix/transport"), lmtp);
    assert!(
        transport.contains("ritualist.test lmtp:inet:127.0.0.1:"),
        "{transport}"
    );
    let Some(postfix) = Postfix::start(hop, &main_cf, &[("transport", &transport)], &["transport"])
    else {
        return;
    };
    let bounces = localise(&doc_block("yaml", "bounces:"), lmtp);
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 10\n{bounces}",
        postfix.port()
    );
    let Some(t) = TestApp::start(db, &delivery).await else {
        return;
    };
    let csv = format!(
        "{HEADER}g1,Gina,Test,gone.gina@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
         g2,Gus,Test,gone.gus@example.com,,en,Europe/Bucharest,1991-05-05,email\n\
         l1,Lia,Test,later.lia@example.com,,en,Europe/Bucharest,1992-05-05,email\n\
         a1,Anna,Test,anna@example.com,,en,Europe/Bucharest,1993-05-05,email\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 4);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(d.sent, 4, "Postfix takes every message: {d:?}");
    let rows = t.rows().await;
    let customer = |email: &str| {
        rows.iter()
            .find(|r| r.recipient.as_deref() == Some(email))
            .unwrap_or_else(|| panic!("{email}: {rows:#?}"))
            .clone()
    };

    // The daemon is not running: Postfix's DSNs wait in its queue.
    let queued = eventually(Duration::from_secs(20), async || {
        let q = postfix.queue();
        q.matches("MAILER-DAEMON").count() == 2 && q.matches("Connection refused").count() >= 2
    })
    .await;
    assert!(queued, "{}\n{}", postfix.queue(), postfix.maillog());
    for r in &rows {
        let c = t.app.store.consents_of(r.customer_id).await.unwrap();
        assert!(c.is_empty(), "{c:?}");
    }
    // They are Postfix's own DSNs, to the VERP return paths.
    let dsns: Vec<String> = postfix
        .queue()
        .lines()
        .filter(|l| l.contains("MAILER-DAEMON"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|id| postfix.postcat(id.trim_end_matches(['*', '!'])))
        .collect();
    assert_eq!(dsns.len(), 2, "{}", postfix.queue());
    for dsn in &dsns {
        for needle in [
            "From: Mail Delivery System <MAILER-DAEMON@shop.test>",
            "To: bounces+d",
            "Reporting-MTA: dns; relay.shop.test",
            "Action: failed",
            "Status: 5.1.1",
            "Recipient address rejected: User unknown",
        ] {
            assert!(dsn.contains(needle), "{needle}:\n{dsn}");
        }
    }
    if db == Db::Sqlite && std::env::var_os("UPDATE_FIXTURES").is_some() {
        let path =
            Path::new(REPO).join("tests/fixtures/postfix-relay/postfix-real-refused-rcpt.eml");
        std::fs::write(path, &dsns[0]).unwrap();
    }

    // `ritualist run` starts, its listener on bounces.listen; Postfix's next try delivers.
    let (daemon, log) = start_daemon(&t, lmtp);
    let mut daemon = KillOnDrop(daemon);
    postfix.flush();
    let (gina, gus) = (
        customer("gone.gina@example.com"),
        customer("gone.gus@example.com"),
    );
    let opted_out = eventually(Duration::from_secs(20), async || {
        let a = t.app.store.consents_of(gina.customer_id).await.unwrap();
        let b = t.app.store.consents_of(gus.customer_id).await.unwrap();
        !a.is_empty() && !b.is_empty()
    })
    .await;
    assert!(
        opted_out,
        "{}\n{}\n{}",
        postfix.queue(),
        postfix.maillog(),
        log.lock().unwrap().join("\n")
    );

    let bounce = vec![("channel:email".to_string(), true, "bounce".to_string())];
    for r in [&gina, &gus] {
        assert_eq!(
            t.app.store.consents_of(r.customer_id).await.unwrap(),
            bounce
        );
    }
    for email in ["later.lia@example.com", "anna@example.com"] {
        let r = customer(email);
        let c = t.app.store.consents_of(r.customer_id).await.unwrap();
        assert!(c.is_empty(), "{email}: {c:?}");
    }
    // One hard bounce per refused delivery, matched by its return path.
    let events = t.app.store.feedback_events(None, 0, 100).await.unwrap();
    let mut got: Vec<_> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.state.as_str(), e.delivery_id))
        .collect();
    got.sort();
    let mut want = vec![
        ("hard_bounce", "applied", Some(gina.id)),
        ("hard_bounce", "applied", Some(gus.id)),
    ];
    want.sort();
    assert_eq!(got, want, "{events:#?}");
    // Postfix handed them over LMTP and ritualist answered 250 after recording. Postfix logs
    // a delivery once it has read that reply, so its line may come a moment after the opt-out
    // is visible in the database: wait for it (a CI run read the log in between).
    let taken = |maillog: &str| {
        maillog
            .lines()
            .filter(|l| {
                l.contains("postfix/lmtp") && l.contains("status=sent (250 2.0.0 Ok: recorded)")
            })
            .count()
    };
    eventually(Duration::from_secs(10), async || {
        taken(&postfix.maillog()) >= 2
    })
    .await;
    let maillog = postfix.maillog();
    assert_eq!(
        maillog.matches("sender non-delivery notification").count(),
        2,
        "{maillog}"
    );
    assert_eq!(taken(&maillog), 2, "{maillog}");
    // The deferred message is still in Postfix's queue, retried; the delivered one arrived.
    assert!(postfix.queue().contains("later.lia@example.com"));
    let rcpts = std::fs::read_to_string(dump.path().join("rcpt.log")).unwrap();
    assert!(rcpts.contains("250 anna@example.com"), "{rcpts}");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_exit(&mut daemon.0, Duration::from_secs(30), "the daemon");
    assert!(
        status.success(),
        "{status}: {}",
        log.lock().unwrap().join("\n")
    );
}

/// The DSN this test's Postfix generated, kept as a fixture (refresh with
/// `UPDATE_FIXTURES=1 cargo test --test it postfix_relay`): what a parser meets in the field,
/// and what the parser reads in it. (It lives outside tests/fixtures/bounces/, whose every
/// file must have a row in the parser's own corpus table.)
#[test]
fn the_saved_postfix_dsn_is_a_real_one_and_reads_as_a_hard_bounce() {
    let raw = std::fs::read(
        Path::new(REPO).join("tests/fixtures/postfix-relay/postfix-real-refused-rcpt.eml"),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    for needle in [
        "From: Mail Delivery System <MAILER-DAEMON@shop.test>",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Reporting-MTA: dns; relay.shop.test",
        "Final-Recipient: rfc822; gone.",
        "Status: 5.1.1",
        "Content-Type: message/rfc822",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    let parsed = ritualist::bounce::parse(&raw);
    assert_eq!(parsed.reports.len(), 1, "{parsed:#?}");
    let report = &parsed.reports[0];
    assert_eq!(
        report.kind,
        Some(ritualist::domain::FeedbackKind::HardBounce),
        "{parsed:#?}"
    );
    assert_eq!(report.status.as_deref(), Some("5.1.1"));
    assert!(
        report
            .recipient
            .as_deref()
            .is_some_and(|r| r.starts_with("gone.") && r.ends_with("@example.com")),
        "{parsed:#?}"
    );
    assert!(
        parsed
            .addresses
            .iter()
            .any(|a| a.starts_with("bounces+d") && a.ends_with("@ritualist.test")),
        "{parsed:#?}"
    );
}

/// Kills and reaps a peer process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
