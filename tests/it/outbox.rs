//! `ritualist outbox`: queue depth by status and channel, retry and cancel, on real failed rows
//! (smtp-sink hard-rejecting every RCPT), checked in the ledger and at a second, healthy sink.

use std::time::Duration;

use ritualist::app::App;
use ritualist::config::Config;

use crate::harness::{Db, HEADER, TestApp, at, config_yaml, ritualist};
use crate::peers::SmtpSink;

fn smtp(port: u16) -> String {
    format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: plain\n      timeout_secs: 5\n"
    )
}

fn outbox_cli(t: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["--config", "config/ritualist.yaml", "outbox"];
    all.extend_from_slice(args);
    let out = ritualist(&t.dir, &all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// (id, status, attempts) of every ledger row.
async fn ledger(t: &TestApp) -> Vec<(i64, String, i32)> {
    t.rows()
        .await
        .into_iter()
        .map(|d| (d.id, d.status.to_string(), d.attempts))
        .collect()
}

fn status_of(rows: &[(i64, String, i32)], id: i64) -> (&str, i32) {
    let r = rows.iter().find(|r| r.0 == id).unwrap();
    (r.1.as_str(), r.2)
}

#[tokio::test]
async fn failed_messages_are_listed_retried_and_cancelled() {
    let Some(rejecting) = SmtpSink::start(&["-f", "RCPT"]) else {
        return;
    };
    let Some(healthy) = SmtpSink::start(&[]) else {
        return;
    };
    let t = TestApp::start(Db::Sqlite, &smtp(rejecting.port()))
        .await
        .unwrap();
    let mut csv = HEADER.to_string();
    for i in 0..4 {
        csv.push_str(&format!(
            "o{i},Emma,Test,o{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let noon = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(noon).await.unwrap().queued, 4);
    let d = t.app.drain(noon).await.unwrap();
    assert_eq!((d.sent, d.failed), (0, 4), "{d:?}");
    let ids: Vec<i64> = ledger(&t).await.iter().map(|r| r.0).collect();
    let [a, b, c, dd] = ids[..] else {
        panic!("{ids:?}")
    };

    // The queue: 4 failed emails, each listed with the server's reply.
    let (code, json, err) = outbox_cli(&t, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["total"], 4, "{json}");
    assert_eq!(
        v["queue"],
        serde_json::json!([{ "status": "failed", "channel": "email", "count": 4 }])
    );
    let listed: Vec<i64> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![dd, c, b, a], "newest first");
    assert!(
        v["failed"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{json}"
    );
    let (code, table, _) = outbox_cli(&t, &[]);
    assert_eq!(code, Some(0));
    assert!(table.contains("failed"), "{table}");
    assert!(table.contains(&format!("{a:>8}  birthday")), "{table}");

    // Retry two (and an id that does not exist: reported, exit 1).
    let (code, out, err) = outbox_cli(&t, &["retry", &a.to_string(), &b.to_string(), "999999"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!("retried 2 message(s): {a} {b}")),
        "{out}"
    );
    assert!(
        err.contains("message 999999 left alone: no such message"),
        "{err}"
    );
    let rows = ledger(&t).await;
    assert_eq!(status_of(&rows, a), ("pending", 0));
    assert_eq!(status_of(&rows, b), ("pending", 0));

    // Cancel a failed one; cancelling it again changes nothing and says why.
    let (code, out, err) = outbox_cli(&t, &["cancel", &c.to_string()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = outbox_cli(&t, &["cancel", &c.to_string()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("it is cancelled"), "{err}");
    // Retry refuses a cancelled message.
    let (code, _, err) = outbox_cli(&t, &["retry", &c.to_string()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("it is cancelled, not failed"), "{err}");

    // A daemon pointed at a healthy relay sends the two retried messages, and only them.
    let cfg_path = t.dir.join("config/healthy.yaml");
    let db = t.dir.join("data/ritualist.db").display().to_string();
    std::fs::write(&cfg_path, config_yaml(&db, &smtp(healthy.port()))).unwrap();
    let healthy_app = App::open(Config::load(&cfg_path).unwrap()).await.unwrap();
    let now = ritualist::clock::now() + jiff::SignedDuration::from_secs(1);
    let d = healthy_app.drain(now).await.unwrap();
    assert_eq!((d.claimed, d.sent), (2, 2), "{d:?}");
    assert_eq!(healthy.wait_for(2, Duration::from_secs(10)).len(), 2);
    let rows = ledger(&t).await;
    assert_eq!(status_of(&rows, a), ("sent", 1));
    assert_eq!(status_of(&rows, b), ("sent", 1));
    assert_eq!(status_of(&rows, c).0, "cancelled");
    assert_eq!(status_of(&rows, dd), ("failed", 1));

    // --all-failed puts the last failed one back; --all-pending cancels it before it goes.
    let (code, out, _) = outbox_cli(&t, &["retry", "--all-failed"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("retried 1 message(s): {dd}")),
        "{out}"
    );
    let (code, out, _) = outbox_cli(&t, &["cancel", "--all-pending"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("cancelled 1 message(s): {dd}")),
        "{out}"
    );
    let later = ritualist::clock::now() + jiff::SignedDuration::from_secs(1);
    // Only a drain sends, and this one claimed nothing (it returns once all it claimed
    // has settled): no wait needed before counting.
    assert_eq!(healthy_app.drain(later).await.unwrap().claimed, 0);
    assert_eq!(healthy.messages().len(), 2, "nothing cancelled went out");

    let (_, json, _) = outbox_cli(&t, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["queue"],
        serde_json::json!([
            { "status": "cancelled", "channel": "email", "count": 2 },
            { "status": "sent", "channel": "email", "count": 2 },
        ]),
        "{json}"
    );
    assert_eq!(v["failed"], serde_json::json!([]));
    // The flags are exclusive and one is required.
    assert_eq!(outbox_cli(&t, &["retry"]).0, Some(2));
    assert_eq!(
        outbox_cli(&t, &["cancel", "--all-failed", "--all-pending"]).0,
        Some(2)
    );
    healthy_app.channels.close().await;
}

/// In-doubt messages (a relay that hangs up right after the final dot, `delivery.in_doubt:
/// email: skip`) are listed by `ritualist outbox` — table and JSON, with id, customer, ritual,
/// channel, time and last reply — and `retry --all-in-doubt` / `cancel --all-in-doubt` act on
/// them all. Regression: the README promised the listing; the command showed only a count.
#[tokio::test]
async fn in_doubt_messages_are_listed_retried_and_cancelled() {
    // `-q .`: the sink disconnects, without a reply, once it has the message.
    let Some(hangs_up) = SmtpSink::start(&["-q", "."]) else {
        return;
    };
    let delivery = format!(
        "{}      breaker_failures: 100\n  in_doubt:\n    email: skip\n",
        smtp(hangs_up.port())
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    let mut csv = HEADER.to_string();
    for i in 0..3 {
        csv.push_str(&format!(
            "d{i},Emma,Test,d{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let noon = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(noon).await.unwrap().queued, 3);
    let d = t.app.drain(noon).await.unwrap();
    assert_eq!((d.sent, d.failed, d.in_doubt), (0, 0, 3), "{d:?}");
    let ids: Vec<i64> = ledger(&t).await.iter().map(|r| r.0).collect();
    assert!(
        ledger(&t).await.iter().all(|r| r.1 == "in_doubt"),
        "{:?}",
        ledger(&t).await
    );

    let (code, json, err) = outbox_cli(&t, &["--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let listed = v["in_doubt"].as_array().expect("an in_doubt list");
    assert_eq!(
        listed
            .iter()
            .map(|f| f["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>(),
        "newest first: {json}"
    );
    for f in listed {
        assert_eq!(f["ritual"], "birthday", "{f}");
        assert_eq!(f["channel"], "email", "{f}");
        assert!(f["customer"].as_str().unwrap().starts_with('d'), "{f}");
        assert!(f["updated_at"].as_i64().unwrap() >= noon.as_second(), "{f}");
        assert!(
            f["last_error"].as_str().unwrap().contains("in doubt"),
            "{f}"
        );
    }
    let (code, table, _) = outbox_cli(&t, &[]);
    assert_eq!(code, Some(0));
    assert!(table.contains("in doubt (handed over"), "{table}");
    for id in &ids {
        assert!(table.contains(&format!("{id:>8}  birthday")), "{table}");
    }
    assert!(table.contains("2027-05-05T12:00:00Z"), "{table}");

    // Retry them all: back to the queue, attempts reset.
    let (code, out, err) = outbox_cli(&t, &["retry", "--all-in-doubt"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("retried 3 message(s)"), "{out}");
    assert!(
        ledger(&t)
            .await
            .iter()
            .all(|r| (r.1.as_str(), r.2) == ("pending", 0)),
        "{:?}",
        ledger(&t).await
    );
    // Sent again into the same relay: in doubt again; this time cancelled, all of them.
    let d = t.app.drain(at("2027-05-05T12:30:00Z")).await.unwrap();
    assert_eq!(d.in_doubt, 3, "{d:?}");
    let (code, out, err) = outbox_cli(&t, &["cancel", "--all-in-doubt"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("cancelled 3 message(s)"), "{out}");
    assert!(
        ledger(&t).await.iter().all(|r| r.1 == "cancelled"),
        "{:?}",
        ledger(&t).await
    );
    let (_, json, _) = outbox_cli(&t, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["in_doubt"], serde_json::json!([]), "{json}");
    // One selection at a time.
    assert_eq!(
        outbox_cli(&t, &["retry", "--all-failed", "--all-in-doubt"]).0,
        Some(2)
    );
}
