//! Logs sized for a server (issue #26): at the default level a mass send writes one line
//! per batch and per tick, never one per message; `RITUALIST_LOG_FORMAT=json` writes one JSON
//! object per line.

use crate::harness::{Db, HEADER, TestApp, ritualist_cmd};

const CUSTOMERS: usize = 300;

/// A fresh SQLite app (outbox transport, batches of 50) with `CUSTOMERS` customers whose
/// birthday is 5 May; then `run --once` on that day with `env`; returns (exit code, stderr).
async fn mass_day(env: &[(&str, &str)]) -> Option<(Option<i32>, String)> {
    let t = TestApp::start(
        Db::Sqlite,
        "  batch_size: 50\n  email:\n    transport: outbox\n",
    )
    .await?;
    let mut csv = HEADER.to_string();
    for i in 0..CUSTOMERS {
        csv.push_str(&format!(
            "m{i},Emma,Test,m{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let mut cmd = ritualist_cmd(&t.dir);
    cmd.env_remove("RITUALIST_LOG")
        .env_remove("RITUALIST_LOG_FORMAT")
        .args([
            "--config",
            "config/ritualist.yaml",
            "run",
            "--once",
            "--now",
            "2027-05-05T12:00:00Z",
        ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains(&format!("sent {CUSTOMERS}")),
        "every birthday message sent: {stdout}"
    );
    assert_eq!(t.outbox_emails().len(), CUSTOMERS);
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

#[tokio::test]
async fn a_mass_send_logs_per_batch_not_per_message() {
    let Some((code, stderr)) = mass_day(&[]).await else {
        return;
    };
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    // 300 messages in batches of 50: six batch lines, one tick line, a few at start.
    assert!(
        lines.len() <= 20,
        "{} lines at the default level:\n{stderr}",
        lines.len()
    );
    assert!(
        !stderr.contains("sent: ") && !stderr.contains("delivery="),
        "no per-message line at the default level:\n{stderr}"
    );
    assert!(
        !stderr.contains("@example.com"),
        "no address in the logs:\n{stderr}"
    );
    let batches = lines.iter().filter(|l| l.contains("batch sent")).count();
    assert_eq!(batches, CUSTOMERS / 50, "one line per batch:\n{stderr}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("tick decided")).count(),
        1,
        "one line per tick:\n{stderr}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let Some((code, stderr)) = mass_day(&[("RITUALIST_LOG_FORMAT", "json")]).await else {
        return;
    };
    assert_eq!(code, Some(0), "{stderr}");
    let objects: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"))
        })
        .collect();
    assert!(objects.iter().all(|o| o.is_object()), "{stderr}");
    let batch = objects
        .iter()
        .find(|o| o["fields"]["message"] == "batch sent")
        .unwrap_or_else(|| panic!("a batch line:\n{stderr}"));
    assert_eq!(batch["level"], "INFO", "{batch}");
    assert_eq!(
        batch["fields"]["sent"], 50,
        "counts as JSON fields: {batch}"
    );
}

#[test]
fn an_unknown_log_format_is_a_clear_error() {
    let d = crate::peers::ScratchDir::new("ritualist-logfmt");
    let out = ritualist_cmd(d.path())
        .env("RITUALIST_LOG_FORMAT", "xml")
        .args(["status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RITUALIST_LOG_FORMAT"), "{stderr}");
}
