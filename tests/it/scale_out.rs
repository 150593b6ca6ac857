//! Scale-out on PostgreSQL: three daemons (`run --once`, the same tick and drain the daemon
//! runs every minute) started together on one database schedule and dispatch 3,000 birthday
//! emails into one smtp-sink. The ledger holds each occurrence once, the sink received every
//! message exactly once (by Message-ID), and the work was shared. The regression it names:
//! overlapping runs never double-send (Mautic #2215).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Db, HEADER, TestApp, ritualist_cmd, wait_exit};
use crate::peers::{SmtpSink, dumped_message_body};

const N: usize = 3000;
const DAEMONS: usize = 3;

#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_on_one_postgres_database_send_each_message_once() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 10\n      connections: 4\n  sms:\n    transport: outbox\n  batch_size: 20\n",
        sink.port()
    );
    let Some(t) = TestApp::start(Db::Postgres, &delivery).await else {
        return;
    };
    let mut csv = HEADER.to_string();
    for i in 0..N {
        csv.push_str(&format!(
            "p{i},Ana,Test,user{i}@example.com,,ro,Europe/Bucharest,1988-05-05,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());

    // Scheduling and dispatch both run in every daemon, concurrently.
    let mut daemons: Vec<_> = (0..DAEMONS)
        .map(|i| {
            let log = std::fs::File::create(t.dir.join(format!("daemon-{i}.log"))).unwrap();
            ritualist_cmd(&t.dir)
                .args(["run", "--once", "--now", "2027-05-05T12:00:00Z"])
                .env("RUST_LOG", "info")
                // One line per message sent is at DEBUG (issue #26): counted below.
                .env("RITUALIST_LOG", "info,ritualist=debug")
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, d) in daemons.iter_mut().enumerate() {
        let status = wait_exit(d, Duration::from_secs(600), "a daemon");
        assert!(
            status.success(),
            "daemon {i}: {}",
            std::fs::read_to_string(t.dir.join(format!("daemon-{i}.log"))).unwrap_or_default()
        );
    }

    let rows = t.rows().await;
    assert_eq!(rows.len(), N, "one ledger row per occurrence");
    assert!(
        rows.iter().all(|r| r.status == "sent"),
        "{:?}",
        t.app.store.status_counts().await.unwrap()
    );
    // Every daemon has exited, so no transaction is under way: once the N are there, what
    // `messages` settles on is all there will ever be (duplicates included).
    sink.wait_for(N, Duration::from_secs(30));
    let dumps = sink.messages();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dumps {
        let msg = String::from_utf8_lossy(dumped_message_body(d)).to_string();
        let id = msg
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .expect("a Message-ID")
            .to_string();
        *per_id.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(per_id.len(), N, "every message reached the sink");

    // The work was shared: each daemon's log reports what it sent; together, everything.
    let sent_by: Vec<usize> = (0..DAEMONS)
        .map(|i| {
            let log = std::fs::read_to_string(t.dir.join(format!("daemon-{i}.log"))).unwrap();
            log.lines().filter(|l| l.contains("sent: 250")).count()
        })
        .collect();
    assert_eq!(sent_by.iter().sum::<usize>(), N, "{sent_by:?}");
    assert!(
        sent_by.iter().filter(|n| **n > 0).count() >= 2,
        "at least two daemons took part: {sent_by:?}"
    );
}
