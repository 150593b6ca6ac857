//! A tick and the drain beside it (issue #26): `run --once` claims each chunk the tick records
//! while the tick decides the rest, and every message still goes out exactly once, on SQLite
//! and PostgreSQL. (How much sooner the first message goes out is a speed, measured by
//! `benches/massday.sh`, not asserted here.)

use crate::harness::{BOTH, HEADER, TestApp, ritualist_cmd};

/// Three of the tick's chunks (2,000 customers each).
const CUSTOMERS: usize = 5_000;

#[tokio::test(flavor = "multi_thread")]
async fn run_once_with_the_drain_beside_the_tick_sends_each_message_once() {
    for db in BOTH {
        let Some(t) =
            TestApp::start(db, "  batch_size: 500\n  email:\n    transport: outbox\n").await
        else {
            continue;
        };
        let mut csv = HEADER.to_string();
        for i in 0..CUSTOMERS {
            csv.push_str(&format!(
                "t{i},Emma,Test,t{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
            ));
        }
        assert!(t.customers(&csv).await.is_empty());
        let out = ritualist_cmd(&t.dir)
            .env_remove("RITUALIST_LOG")
            .env_remove("RITUALIST_LOG_FORMAT")
            .args([
                "--config",
                "config/ritualist.yaml",
                "run",
                "--once",
                "--now",
                "2027-05-05T12:00:00Z",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{db:?}: {stderr}");
        assert!(
            stdout.contains(&format!("{CUSTOMERS} new message(s) queued"))
                && stdout.contains(&format!("sent {CUSTOMERS},")),
            "{db:?}: {stdout}"
        );
        // Once each: one file per message, every row sent once.
        let files = t.outbox_emails();
        assert_eq!(files.len(), CUSTOMERS, "{db:?}");
        let rows = t.rows().await;
        assert_eq!(rows.len(), CUSTOMERS, "{db:?}");
        assert!(rows.iter().all(|r| r.status == "sent"), "{db:?}");
    }
}
