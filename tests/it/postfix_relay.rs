//! Issue 27's end-to-end test: a real Postfix as the shop's relay, configured with the
//! `bounces:`, main.cf and transport blocks of docs/operator.md ("Bounces over LMTP"). ritualist
//! hands it four birthday emails; the next hop (tests/peers/refusing_smtp.py) refuses two
//! recipients with `550 5.1.1`, defers one with `451 4.2.0` and takes one. Postfix writes its
//! own DSNs to the VERP return paths and routes them over LMTP to ritualist's listener —
//! which is down at first: Postfix keeps them and they are recorded once it is up. The refused
//! customers end up opted out (source `bounce`), the deferred and the delivered ones do not.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ritualist::app::App;
use ritualist::config::Config;
use ritualist::inbound::{AppMailbox, Mailbox};

use crate::harness::{Db, HEADER, REPO, TestApp, at};
use crate::peers::{Postfix, ScratchDir, aiosmtpd_available, free_port, start_python_peer};

/// The fenced block of docs/operator.md's "Bounces over LMTP" section whose first line starts
/// with `first`.
fn doc_block(fence: &str, first: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/operator.md")).unwrap();
    let section = doc
        .split("## Bounces over LMTP (the shop's Postfix)")
        .nth(1)
        .expect("docs/operator.md: the section `Bounces over LMTP (the shop's Postfix)`");
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

/// The App's mailbox, keeping a copy of what it was handed.
struct Capture {
    inner: AppMailbox,
    seen: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Mailbox for Capture {
    fn accepts(&self, rcpt: &str) -> bool {
        self.inner.accepts(rcpt)
    }

    async fn deliver(&self, raw: &[u8], rcpt: &str) -> Result<(), String> {
        self.seen
            .lock()
            .unwrap()
            .push((rcpt.to_string(), raw.to_vec()));
        self.inner.deliver(raw, rcpt).await
    }
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
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
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

    // The listener is down: Postfix's DSNs wait in its queue.
    let queued = eventually(Duration::from_secs(20), async || {
        let q = postfix.queue();
        q.matches("MAILER-DAEMON").count() == 2 && q.matches("Connection refused").count() >= 2
    })
    .await;
    assert!(queued, "{}\n{}", postfix.queue(), postfix.maillog());
    for r in &rows {
        assert!(
            t.app
                .store
                .consents_of(r.customer_id)
                .await
                .unwrap()
                .is_empty()
        );
    }

    // ritualist's listener comes up; Postfix delivers the DSNs on its next try.
    let cfg = Config::load(&t.dir.join("config/ritualist.yaml")).unwrap_or_else(|d| panic!("{d}"));
    assert!(cfg.bounces.listen.is_some());
    let app = Arc::new(App::open(cfg).await.unwrap());
    let opts = ritualist::inbound::options(&app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", lmtp))
        .await
        .unwrap();
    let mailbox = Arc::new(Capture {
        inner: AppMailbox(app),
        seen: Mutex::new(Vec::new()),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(ritualist::inbound::serve_with(
        mailbox.clone(),
        opts,
        listener,
        async {
            let _ = stopped.await;
        },
    ));
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
    assert!(opted_out, "{}\n{}", postfix.queue(), postfix.maillog());

    let bounce = vec![("channel:email".to_string(), true, "bounce".to_string())];
    for r in [&gina, &gus] {
        assert_eq!(
            t.app.store.consents_of(r.customer_id).await.unwrap(),
            bounce
        );
    }
    for email in ["later.lia@example.com", "anna@example.com"] {
        let r = customer(email);
        assert!(
            t.app
                .store
                .consents_of(r.customer_id)
                .await
                .unwrap()
                .is_empty(),
            "{email}"
        );
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

    // The DSNs were Postfix's own, delivered to the VERP addresses over LMTP.
    let seen = mailbox.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (rcpt, raw) in &seen {
        let text = String::from_utf8_lossy(raw);
        assert!(rcpt.starts_with("bounces+d") && rcpt.ends_with("@ritualist.test"));
        for needle in [
            "Reporting-MTA: dns; relay.shop.test",
            "X-Postfix-Queue-ID:",
            "Action: failed",
            "Status: 5.1.1",
            "Recipient address rejected: User unknown",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
    }
    let log = postfix.maillog();
    assert_eq!(
        log.matches("sender non-delivery notification").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("status=sent (250 2.0.0 Ok: recorded)"),
        "{log}"
    );
    // The deferred message is still in Postfix's queue, retried; the delivered one arrived.
    assert!(postfix.queue().contains("later.lia@example.com"));
    let rcpts = std::fs::read_to_string(dump.path().join("rcpt.log")).unwrap();
    assert!(rcpts.contains("250 anna@example.com"), "{rcpts}");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(
            Path::new(REPO).join("tests/fixtures/bounces/postfix-real-user-unknown.eml"),
            &seen[0].1,
        )
        .unwrap();
    }

    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}

/// The DSN this test's Postfix generated, kept as a fixture (refresh with
/// `UPDATE_FIXTURES=1 cargo test --test it postfix_relay`): what a parser meets in the field.
#[test]
fn the_saved_postfix_dsn_is_a_real_one() {
    let raw = std::fs::read_to_string(
        Path::new(REPO).join("tests/fixtures/bounces/postfix-real-user-unknown.eml"),
    )
    .unwrap();
    for needle in [
        "From: Mail Delivery System <MAILER-DAEMON@shop.test>",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Reporting-MTA: dns; relay.shop.test",
        "Final-Recipient: rfc822; gone.",
        "Status: 5.1.1",
        "Content-Type: message/rfc822",
    ] {
        assert!(raw.contains(needle), "{needle}");
    }
}

/// Kills and reaps a peer process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
