//! The inbound mail listener (`bounces.listen`, issue 27) over a raw TCP client: a DSN handed
//! over LMTP opts the bounced customer out once, only the return path's addresses are taken,
//! a database error is a `451` the MTA retries, and the daemon serves the listener beside its
//! loop and stops it cleanly on SIGTERM.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use ritualist::app::App;
use ritualist::config::Config;

use crate::harness::{BOTH, Db, HEADER, TestApp, at, ritualist_cmd, wait_exit};
use crate::peers::free_port;

/// A raw SMTP/LMTP client.
pub struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    /// Connects and returns the client with the greeting.
    pub async fn connect(addr: std::net::SocketAddr) -> (Client, String) {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// One reply, every line of a multi-line one; empty when the server closed.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.r.read_line(&mut line))
                .await
                .expect("a reply within 30 s")
                .unwrap();
            all.push_str(&line);
            if n == 0 || line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// Sends `body` (LF or CRLF lines) dot-stuffed and ended by the lone dot; the first reply.
    pub async fn data(&mut self, body: &str) -> String {
        let mut wire = String::new();
        for line in body.lines() {
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.w.write_all(wire.as_bytes()).await.unwrap();
        self.reply().await
    }
}

/// A delivery status notification as Postfix writes it (its layout, shortened), for
/// `recipient` refused with `status`, returning the message `message_id`.
pub fn dsn(to: &str, recipient: &str, status: &str, message_id: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@relay.shop.test>\n\
         Subject: Undelivered Mail Returned to Sender\n\
         To: {to}\n\
         Auto-Submitted: auto-replied\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/report; report-type=delivery-status;\n\
         \tboundary=\"B1\"\n\
         Message-Id: <20270505120000.AB12@relay.shop.test>\n\
         \n\
         This is a MIME-encapsulated message.\n\
         \n\
         --B1\n\
         Content-Description: Notification\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         <{recipient}>: host mx.example.com said: 550 {status} User unknown\n\
         .a line that starts with a dot\n\
         \n\
         --B1\n\
         Content-Description: Delivery report\n\
         Content-Type: message/delivery-status\n\
         \n\
         Reporting-MTA: dns; relay.shop.test\n\
         \n\
         Final-Recipient: rfc822; {recipient}\n\
         Action: failed\n\
         Status: {status}\n\
         Diagnostic-Code: smtp; 550 {status} <{recipient}>: User unknown\n\
         \n\
         --B1\n\
         Content-Description: Undelivered Message Headers\n\
         Content-Type: text/rfc822-headers\n\
         \n\
         Return-Path: <{to}>\n\
         To: {recipient}\n\
         Message-ID: {message_id}\n\
         \n\
         --B1--\n"
    )
}

/// The `bounces:` section of a test config.
pub fn bounces_yaml(listen: &str) -> String {
    format!(
        "bounces:\n  return_path: bounces@ritualist.test\n  listen: \"{listen}\"\n  protocol: lmtp\n"
    )
}

const OUTBOX: &str = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n";

/// Two customers born on May 5, each sent one email (outbox) on 2027-05-05.
async fn sent_two(db: Db, listen: &str) -> Option<TestApp> {
    let t = TestApp::start(db, &format!("{OUTBOX}{}", bounces_yaml(listen))).await?;
    let csv = format!(
        "{HEADER}b1,Emma,Test,emma@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
         b2,Ana,Test,ana@example.com,,ro,Europe/Bucharest,1991-05-05,email\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 2);
    assert_eq!(t.app.drain(now).await.unwrap().sent, 2);
    Some(t)
}

/// A second App on `t`'s configuration and database, as the listener's.
async fn shared_app(t: &TestApp) -> Arc<App> {
    let cfg = Config::load(&t.dir.join("config/ritualist.yaml")).unwrap_or_else(|d| panic!("{d}"));
    Arc::new(App::open(cfg).await.unwrap())
}

/// Serves `app`'s inbound mail on a free loopback port until the sender is dropped or sent.
async fn listen(
    app: Arc<App>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(ritualist::inbound::serve(app, listener, async {
        let _ = stopped.await;
    }));
    (addr, stop, served)
}

/// (recipient, id, Message-ID) of each email sent, in id order.
async fn sent(t: &TestApp) -> Vec<(String, i64, String)> {
    t.rows()
        .await
        .into_iter()
        .map(|d| {
            (
                d.recipient.clone().unwrap_or_default(),
                d.id,
                d.message_id.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_dsn_over_lmtp_opts_the_bounced_customer_out_once() {
    for db in BOTH {
        let Some(t) = sent_two(db, "127.0.0.1:0").await else {
            continue;
        };
        let (addr, stop, served) = listen(shared_app(&t).await).await;
        let rows = sent(&t).await;
        let (emma, id, mid) = rows[0].clone();
        let rp = t.app.return_path(id);
        assert!(rp.starts_with("bounces+d"), "{rp}");

        let (mut c, greeting) = Client::connect(addr).await;
        assert!(
            greeting.starts_with("220 ritualist.test LMTP"),
            "{greeting}"
        );
        assert!(c.cmd("LHLO relay.shop.test").await.contains("250 ENHANCED"));
        for _ in 0..2 {
            // The same DSN twice (an MTA retrying after a lost reply): once is recorded.
            assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
            assert!(c.cmd(&format!("RCPT TO:<{rp}>")).await.starts_with("250"));
            let other = c.cmd("RCPT TO:<emma@example.com>").await;
            assert!(other.starts_with("550 5.1.1"), "{other}");
            assert!(c.cmd("DATA").await.starts_with("354"));
            let r = c.data(&dsn(&rp, &emma, "5.1.1", &mid)).await;
            assert!(r.starts_with("250 2.0.0"), "{db:?}: {r}");
        }
        assert!(c.cmd("QUIT").await.starts_with("221"));

        let (c1, c2) = (t.rows().await[0].customer_id, t.rows().await[1].customer_id);
        assert_eq!(
            t.app.store.consents_of(c1).await.unwrap(),
            vec![("channel:email".to_string(), true, "bounce".to_string())],
            "{db:?}"
        );
        assert!(t.app.store.consents_of(c2).await.unwrap().is_empty());
        let events = t.app.store.feedback_events(None, 0, 100).await.unwrap();
        assert_eq!(events.len(), 1, "{db:?}: {events:#?}");
        assert_eq!(
            (
                events[0].source.as_str(),
                events[0].kind.as_str(),
                events[0].delivery_id
            ),
            ("mail", "hard_bounce", Some(id))
        );
        stop.send(()).unwrap();
        served.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_database_error_is_a_451_and_the_retry_is_recorded() {
    let Some(t) = sent_two(Db::Sqlite, "127.0.0.1:0").await else {
        return;
    };
    let (addr, stop, served) = listen(shared_app(&t).await).await;
    let (ana, id, mid) = sent(&t).await[1].clone();
    let rp = t.app.return_path(id);
    let db = t.dir.join("data/ritualist.db");
    let sqlite = |sql: &str| {
        // Wait for the server's lock, as any client sharing the file would.
        let out = std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 10000"])
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3 (Debian package sqlite3)");
        assert!(out.status.success(), "{out:?}");
    };
    // The table the report goes to is gone: recording fails, as with a database down.
    sqlite("ALTER TABLE feedback_events RENAME TO feedback_events_away");
    let message = dsn(&rp, &ana, "5.1.1", &mid);
    let (mut c, _) = Client::connect(addr).await;
    c.cmd("LHLO relay.shop.test").await;
    c.cmd("MAIL FROM:<>").await;
    c.cmd(&format!("RCPT TO:<{rp}>")).await;
    c.cmd("DATA").await;
    let r = c.data(&message).await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    let customer = t.rows().await[1].customer_id;
    assert!(t.app.store.consents_of(customer).await.unwrap().is_empty());

    // The database is back; the MTA's next try is recorded.
    sqlite("ALTER TABLE feedback_events_away RENAME TO feedback_events");
    c.cmd("MAIL FROM:<>").await;
    c.cmd(&format!("RCPT TO:<{rp}>")).await;
    c.cmd("DATA").await;
    let r = c.data(&message).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(
        t.app.store.consents_of(customer).await.unwrap(),
        vec![("channel:email".to_string(), true, "bounce".to_string())]
    );
    c.cmd("QUIT").await;
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_daemon_serves_the_listener_and_stops_it_on_sigterm() {
    let port = free_port();
    let listen_at = format!("127.0.0.1:{port}");
    let Some(t) = sent_two(Db::Sqlite, &listen_at).await else {
        return;
    };
    let (emma, id, mid) = sent(&t).await[0].clone();
    let rp = t.app.return_path(id);
    let mut child = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "run"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let mut log = Vec::new();
    let addr: std::net::SocketAddr = listen_at.parse().unwrap();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no listener after 60 s:\n{}", log.join("\n")));
        let Some(line) = line else {
            panic!("the daemon ended:\n{}", log.join("\n"));
        };
        let ready = line.contains(&format!("inbound mail: lmtp on {listen_at}"));
        log.push(line);
        if ready {
            break;
        }
    }

    let (mut c, greeting) = Client::connect(addr).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    c.cmd("LHLO relay.shop.test").await;
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{rp}>")).await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    let r = c.data(&dsn(&rp, &emma, "5.1.1", &mid)).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let customer = t.rows().await[0].customer_id;
    assert_eq!(
        t.app.store.consents_of(customer).await.unwrap(),
        vec![("channel:email".to_string(), true, "bounce".to_string())]
    );

    // A session left open when the daemon is told to stop is told to come back later.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let bye = c.reply().await;
    assert!(bye.starts_with("421 4.3.2"), "{bye}");
    let status = wait_exit(&mut child, Duration::from_secs(30), "the daemon");
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        log.push(l);
    }
    assert!(status.success(), "{status}:\n{}", log.join("\n"));
    assert!(
        log.iter().any(|l| l.contains("inbound mail: stopped")),
        "{}",
        log.join("\n")
    );
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}
