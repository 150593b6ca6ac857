//! Graceful stop: SIGTERM while messages are on the wire to a relay that takes 30 s to answer
//! the final dot (smtp-sink `-W .:30`). The run stops claiming, gives the sends in flight
//! `delivery.shutdown_timeout_secs` (2 s here), then gives every message not handed over back
//! to the queue untried and settles the ones handed over as in doubt (email: resent with the
//! same Message-ID). Nothing is left `claimed` or `sending`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Db, TestApp, at, born_on_may_5, ritualist_cmd, wait_exit};
use crate::peers::SmtpSink;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_what_was_not_handed_over_and_settles_what_was() {
    stop_with_two_on_the_wire(1).await;
}

/// The same with rows committed `sending` four at a time ahead of their envelope: the six
/// committed but never started go back to the queue too, not into doubt.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_gives_back_rows_committed_ahead_that_never_started() {
    stop_with_two_on_the_wire(4).await;
}

/// A stop while a big batch goes out in parts (issue #26: more than 250 messages to compose,
/// each part composed while the one before it is sent): the part on the wire finishes, the
/// parts not yet sent go back to the queue untried, and nothing is left `claimed` or
/// `sending`.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_gives_back_the_parts_of_a_batch_not_yet_sent() {
    const N: usize = 600;
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 60\n      connections: 1\n  sms:\n    transport: outbox\n  shutdown_timeout_secs: 30\n",
        sink.port()
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    assert!(t.customers(&born_on_may_5("p", N)).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, N);
    let stop = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while sink.messages().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        t.app.request_stop();
    };
    let (r, ()) = tokio::join!(t.app.drain(now), stop);
    let r = r.unwrap();
    assert_eq!(r.claimed, N, "{r:?}");
    assert!(r.sent >= 1, "{r:?}");
    assert!(r.released >= 100, "at least the last part goes back: {r:?}");
    assert_eq!(r.sent + r.released, N, "{r:?}");
    let counts = t.app.store.status_counts().await.unwrap();
    assert_eq!(
        counts.get("sent").copied().unwrap_or(0),
        r.sent as i64,
        "{counts:?}"
    );
    assert_eq!(
        counts.get("pending").copied().unwrap_or(0),
        r.released as i64,
        "{counts:?}"
    );
    assert_eq!(counts.len(), 2, "nothing claimed or sending: {counts:?}");
    assert_eq!(sink.wait_for(r.sent, Duration::from_secs(30)).len(), r.sent);
}

async fn stop_with_two_on_the_wire(handover_batch: usize) {
    let Some(sink) = SmtpSink::start(&["-W", ".:30"]) else {
        return;
    };
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 60\n      connections: 2\n  sms:\n    transport: outbox\n  shutdown_timeout_secs: 2\n  handover_batch: {handover_batch}\n",
        sink.port()
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    assert!(t.customers(&born_on_may_5("g", 10)).await.is_empty());
    let now = "2027-05-05T12:00:00Z";
    assert_eq!(
        t.app.tick(crate::harness::at(now)).await.unwrap().queued,
        10
    );

    let log = t.dir.join("run.log");
    let mut run = ritualist_cmd(&t.dir)
        .args(["run", "--once", "--now", now])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Wait (bounded) until two messages are on the wire: two rows `sending` one by one; with
    // a handover batch, both chunks committed (2 × 4 rows) and the first two messages' bodies
    // at the relay, which holds their final reply.
    let sending = if handover_batch == 1 {
        2
    } else {
        2 * handover_batch as i64
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = t.app.store.status_counts().await.unwrap();
        if counts.get("sending").copied().unwrap_or(0) == sending
            && (handover_batch == 1 || sink.messages().len() == 2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never two in flight: {counts:?}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Well before the relay's 30 s: the grace is 2 s.
    let status = wait_exit(&mut run, Duration::from_secs(20), "the stopping run");
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut run.stdout.take().unwrap(), &mut stdout).unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stdout.contains("stopped by a signal (8 given back to the queue)"),
        "{stdout}"
    );
    assert!(stderr.contains("shutdown signal received"), "{stderr}");

    let rows = t.rows().await;
    let of = |s: &str| rows.iter().filter(|r| r.status == s).collect::<Vec<_>>();
    assert!(
        of("claimed").is_empty() && of("sending").is_empty(),
        "{rows:?}"
    );
    // Not handed over: back to pending, the attempt not counted.
    assert_eq!(of("pending").len(), 8, "{rows:?}");
    assert!(of("pending").iter().all(|r| r.attempts == 0), "{rows:?}");
    // Handed over: in doubt, resent (email's default policy) with the same Message-ID.
    let doubt = of("retry_wait");
    assert_eq!(doubt.len(), 2, "{rows:?}");
    for r in doubt {
        assert!(
            r.last_error
                .as_deref()
                .unwrap_or("")
                .starts_with("in doubt: the daemon stopped"),
            "{r:?}"
        );
        assert!(r.message_id.is_some());
    }
}
