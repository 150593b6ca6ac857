//! Brown-out (docs/delivery-guarantee.md §5): a relay that cycles through normal service, `421`s that close
//! the connection and `450`s (tests/peers/brownout_smtp.py: a fixed cycle over the MAIL commands
//! it gets, so the run is the same every time). The queue is drained every two hours of ledger
//! time until it is empty. Everything is accepted exactly once; nothing fails and nothing is in
//! doubt (every refusal comes before the body); a counted failure waits its backoff (a drain
//! 25 s later leaves it alone); the circuit breaker opens on the `421`s (the rest of the batch
//! goes back untried, the attempt not counted) and closes when service returns. The transports
//! read a manual clock: the breaker's second passes without the test waiting for it.
//!
//! Named regression: resuming after a disconnect sends once (listmonk #2313): every `421` here
//! drops the connection mid-batch, and each message is still accepted exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use ritualist::app::DispatchReport;
use ritualist::channel::Channels;
use ritualist::clock::ManualClock;

use crate::harness::{Db, HEADER, TestApp, at};
use crate::peers::{ScratchDir, aiosmtpd_available, free_port, start_python_peer};

const N: usize = 24;
/// One verdict per MAIL command, repeated: normal service, eight 421s, normal, three 450s. (A
/// 421 to MAIL on a reused connection is first taken for a connection the relay dropped while
/// idle and retried at once on a fresh one, so a burst must be longer than the breaker's three
/// failures to open it.)
const SCHEDULE: &str = "ok,ok,ok,ok,421,421,421,421,421,421,421,421,ok,ok,450,450,450";

struct BrownOut {
    child: Child,
    port: u16,
    dir: ScratchDir,
}

impl BrownOut {
    fn start() -> Option<BrownOut> {
        if !aiosmtpd_available() {
            return None;
        }
        let dir = ScratchDir::new("brownout");
        let port = free_port();
        let port_arg = port.to_string();
        let child = start_python_peer(
            "brownout_smtp.py",
            &[port_arg.as_ref(), dir.path().as_os_str(), SCHEDULE.as_ref()],
        );
        Some(BrownOut { child, port, dir })
    }

    fn files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect()
    }

    /// Message-ID → how often the relay accepted it.
    fn accepted(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for p in self.files() {
            let msg = std::fs::read_to_string(&p).unwrap();
            let id = msg
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .expect("an accepted message without Message-ID")
                .trim()
                .trim_matches(['<', '>'])
                .to_string();
            *out.entry(id).or_default() += 1;
        }
        out
    }

    /// Verdict → how many MAIL commands got it.
    fn verdicts(&self) -> BTreeMap<String, usize> {
        let events = std::fs::read_to_string(self.dir.path().join("events")).unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in events.lines() {
            if let Some((_, v)) = line.split_once(' ') {
                *out.entry(v.to_string()).or_default() += 1;
            }
        }
        out
    }
}

impl Drop for BrownOut {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browned_out_relay_gets_everything_once_with_backoff_and_the_breaker() {
    let Some(relay) = BrownOut::start() else {
        return;
    };
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 5\n      connections: 2\n      breaker_failures: 3\n      breaker_secs: 1\n  sms:\n    transport: outbox\n  batch_size: 50\n  in_doubt:\n    email: skip\n",
        relay.port
    );
    let Some(mut t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    // The transports on a clock the test moves (SQLite: no limits to seed or share).
    let clock = ManualClock::shared(at("2027-05-05T12:00:00Z"));
    t.app.channels = Channels::from_config(&t.app.cfg, clock.clone()).unwrap();
    let mut csv = HEADER.to_string();
    for i in 0..N {
        csv.push_str(&format!(
            "b{i},Emma,Test,user{i}@example.com,,en,Europe/Bucharest,1990-05-05,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let start = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(start).await.unwrap().queued, N);

    let mut total = DispatchReport::default();
    let mut breaker_opened = false;
    for round in 0..30 {
        let now = start.as_second() + round * 7200;
        // Time on the transports' clock for the breaker (1 s) to let the next probe through.
        clock.advance(Duration::from_millis(1100));
        let r = t.app.drain(at_second(now)).await.unwrap();
        total.add(r);
        breaker_opened |= r.deferred > 0;
        // Counted failures wait their backoff (at least 30 s): 25 s later they are left alone
        // (only messages the breaker put back untried may go now).
        let waiting: BTreeMap<i64, i32> = t
            .rows()
            .await
            .into_iter()
            .filter(|d| d.status == "retry_wait")
            .map(|d| (d.id, d.attempts))
            .collect();
        let soon = t.app.drain(at_second(now + 25)).await.unwrap();
        total.add(soon);
        let rows = t.rows().await;
        for d in rows.iter().filter(|d| waiting.contains_key(&d.id)) {
            assert_eq!(
                (d.status.as_str(), d.attempts),
                ("retry_wait", waiting[&d.id]),
                "round {round}: retried within its backoff: {d:?}"
            );
        }
        if rows.iter().all(|d| d.status == "sent") {
            break;
        }
    }

    let rows = t.rows().await;
    assert_eq!(
        t.app.store.status_counts().await.unwrap(),
        BTreeMap::from([("sent".to_string(), N as i64)]),
        "{total:?}"
    );
    assert_eq!(
        (total.sent, total.failed, total.in_doubt),
        (N, 0, 0),
        "{total:?}"
    );
    assert_eq!(
        total.paused, 0,
        "a brown-out is not a refusal of us: {total:?}"
    );
    // The relay accepted exactly the ledger's messages, each once.
    let accepted = relay.accepted();
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    let ids: BTreeSet<String> = rows
        .iter()
        .filter_map(|d| d.message_id.as_deref())
        .map(|id| id.trim_matches(['<', '>']).to_string())
        .collect();
    assert_eq!(
        accepted.keys().cloned().collect::<BTreeSet<_>>(),
        ids,
        "{accepted:?}"
    );
    // The brown-out happened: both kinds of refusal were served and counted as retries, and
    // the 421s opened the breaker (rows put back untried), which closed again.
    let verdicts = relay.verdicts();
    assert!(
        verdicts.get("421").copied().unwrap_or(0) >= 8
            && verdicts.get("450").copied().unwrap_or(0) >= 3,
        "{verdicts:?}"
    );
    assert!(total.retrying >= 3, "{total:?}");
    assert!(
        breaker_opened,
        "the breaker never opened: {total:?} {verdicts:?}"
    );
    assert!(
        rows.iter().any(|d| d.attempts > 1),
        "nothing was retried: {rows:?}"
    );
    eprintln!("brown-out: {total:?}, relay verdicts {verdicts:?}");
}

fn at_second(s: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(s).unwrap()
}
