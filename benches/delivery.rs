//! Delivery throughput, side by side with a plain tool in the same run (issue #5, "Performance
//! bar"); machines are noisy, so the results are ratios.
//!
//! - **SMTP**: a filled outbox (N messages of ~2 KB, rendered and stored, `pending`) drained
//!   by `App::drain` into a local Postfix `smtp-sink`, every ledger update included (SQLite,
//!   `synchronous=FULL`), twice side by side: at the shipped defaults (`smtp.connections` and
//!   `handover_batch: 1`) and at the fast setting (`handover_batch: 250`) — against
//!   `smtp-source -d -s 10 -m N -l 2048` sending the same number of same-size messages to a
//!   sink of its own. Bar: ≥ 0.5× at the shipped defaults. `RITUALIST_BENCH_CONNECTIONS` sets
//!   `smtp.connections` for both (to choose the default from measurement).
//! - **SMS**: N SMS drained through the generic HTTP provider into a local HTTP gateway (axum,
//!   200 "OK") — against `wrk -c 8` (keep-alive) on the same endpoint for 5 s. Bar: ≥ 0.5×.
//!   Also the provider's HTTP client alone (the same requests through `Channels::send`, no
//!   ledger), as a ratio to wrk: the ceiling of the HTTP stack.
//! - **SMS through Kannel**: the same, through the Kannel provider into a real Kannel
//!   `sendsms` (bearerbox + smsbox + fakesmsc, as the tests run it), a fresh gateway for each
//!   measurement — against `wrk -c 8` on the same `sendsms` URL (the same query the provider
//!   sends). Bar: ≥ 0.5×. The no-op gateway above measures the HTTP stack and the ledger
//!   against a peer that does no work; this one measures them against an SMS gateway.
//! - **PostgreSQL outbox**: N pending rows claimed and acknowledged by `App::drain` with the
//!   `discard` transport (claim, `sending`, `sent`: every ledger write of a real send) — against
//!   pgbench running a raw batched `FOR UPDATE SKIP LOCKED` claim (50 rows) and complete script
//!   on the same table until it is empty (4 clients). Bar: ≥ 0.4×. `RITUALIST_BENCH_PG` names
//!   the server (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! - **Ledger** (no baseline; where the ceiling is): the same outbox drained on SQLite with the
//!   `discard` transport — claim, `sending`, `sent`, no peer.
//!
//! Three rounds, alternating baseline and ritualist, fresh database each round; medians. Each
//! drain also prints this process's CPU per message and how busy the whole machine was.
//! Run: `cargo bench --bench delivery` (`RITUALIST_BENCH_MESSAGES=2000` for a quick run;
//! `RITUALIST_BENCH_BATCH` sets `delivery.batch_size` and `RITUALIST_BENCH_HANDOVER=N`
//! `delivery.handover_batch`, each the product's default when unset;
//! `RITUALIST_BENCH_SYNC=normal` runs SQLite with `sqlite_synchronous: normal`;
//! `RITUALIST_BENCH_ONLY=smtp,ledger,pg,sms,kannel` picks the parts).
//! Needs `smtp-sink`/`smtp-source` (postfix), Kannel (kannel, kannel-extras: installed by
//! `.ci/install-peers.sh`) and `wrk` (`apt-get install wrk`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ritualist::app::{App, ImportKind, import_file};
use ritualist::channel::{EmailParts, Outgoing, build_email};
use ritualist::config::Config;
use ritualist::store::{NewDelivery, Status};

const ROUNDS: usize = 3;
const NOW: i64 = 1_809_518_400; // 2027-05-05T12:00:00Z

fn messages() -> usize {
    std::env::var("RITUALIST_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// `sqlite_synchronous` of the SQLite runs: `full` (the default) or `normal`
/// (`RITUALIST_BENCH_SYNC`).
fn sync() -> String {
    std::env::var("RITUALIST_BENCH_SYNC").unwrap_or_else(|_| "full".into())
}

/// `sms.concurrency` of the SMS run, and wrk's connection count (`RITUALIST_BENCH_SMS_CONCURRENCY`,
/// default 8).
fn sms_concurrency() -> usize {
    std::env::var("RITUALIST_BENCH_SMS_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

fn find(name: &str) -> Option<PathBuf> {
    [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/bin",
        "/usr/lib/postfix/sbin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.exists())
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Sink(std::process::Child, u16);

impl Sink {
    fn start() -> Sink {
        let bin = find("smtp-sink").expect("smtp-sink (postfix) is not installed");
        let port = free_port();
        let mut cmd = Command::new(bin);
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink(child, port)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
}

/// A scratch project: the repository's rituals and templates, a config with `delivery`.
fn project(delivery: &str) -> (tempdir::Dir, PathBuf) {
    project_with(delivery, false)
}

/// [`project`]; `own_handover`: `delivery` sets `handover_batch` itself (the
/// `RITUALIST_BENCH_HANDOVER` knob is then left out).
fn project_with(delivery: &str, own_handover: bool) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["config/rituals", "config/calendars", "templates"] {
        copy_dir(&repo.join(sub), &dir.0.join(sub));
    }
    std::fs::copy(
        repo.join("config/segments.yaml"),
        dir.0.join("config/segments.yaml"),
    )
    .unwrap();
    let cfg = dir.0.join("config/ritualist.yaml");
    std::fs::write(
        &cfg,
        format!(
            "database: ../data/ritualist.db\nsqlite_synchronous: {}\n\
             defaults:\n  time_zone: Europe/Bucharest\n  locale: en\n  country_code: \"40\"\n\
             shop:\n  name: Floare & Co\n  url: https://floare.example\n  from_email: hello@floare.example\n\
             rituals: rituals\ntemplates: ../templates\n\
             links:\n  unsubscribe: https://floare.example/unsubscribe\n\
             delivery:\n  outbox_dir: ../outbox\n{}{}{delivery}",
            sync(),
            knob("RITUALIST_BENCH_BATCH", "batch_size"),
            if own_handover {
                String::new()
            } else {
                knob("RITUALIST_BENCH_HANDOVER", "handover_batch")
            },
        ),
    )
    .unwrap();
    (dir, cfg)
}

/// `  key: value` under `delivery:` when the environment variable `var` is set; otherwise
/// nothing, so the run measures the product's own default.
fn knob(var: &str, key: &str) -> String {
    std::env::var(var)
        .map(|v| format!("  {key}: {v}\n"))
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!(
                "ritualist-bench-delivery-{}-{}",
                std::process::id(),
                ritualist::store::random_token()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A project on a fresh PostgreSQL database (dropped with the guard).
struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    fn create() -> PgDb {
        let admin = std::env::var("RITUALIST_BENCH_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("ritualist_bench_{}", ritualist::store::random_token());
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        PgDb {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// pgbench's claim-and-complete script: 50 rows per transaction pair, like a worker that
/// claims a batch, does nothing, and marks it done.
const PGBENCH_SCRIPT: &str = "\\set t random(1, 2000000000)
UPDATE deliveries SET status = 'claimed', lease_token = :t::text, lease_until = 0, attempts = attempts + 1, updated_at = 0 WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= 1809518400 ORDER BY next_attempt_at, id LIMIT 50 FOR UPDATE SKIP LOCKED);
UPDATE deliveries SET status = 'sent', sent_at = 0, lease_token = NULL, lease_until = NULL WHERE lease_token = :t::text AND status = 'claimed';
";

fn pgbench_secs(url: &str, n: usize, dir: &Path) -> f64 {
    let script = dir.join("claim.sql");
    std::fs::write(&script, PGBENCH_SCRIPT).unwrap();
    let clients = 4;
    let per_client = n.div_ceil(50).div_ceil(clients);
    let t = Instant::now();
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-t",
            &per_client.to_string(),
        ])
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output()
        .expect("pgbench");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

async fn postgres(n: usize) -> (f64, f64) {
    let mut base = Vec::new();
    let mut ours = Vec::new();
    for round in 0..ROUNDS {
        let pg = PgDb::create();
        let (dir, cfg) =
            project("  email:\n    transport: discard\n  sms:\n    transport: outbox\n");
        let yaml = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            yaml.replace(
                "database: ../data/ritualist.db",
                &format!("database: {}", pg.url),
            ),
        )
        .unwrap();
        let app = filled(&cfg, &dir.0, n, "email").await;
        // The baseline empties the queue; then the same rows are pending again for ritualist.
        base.push(n as f64 / pgbench_secs(&pg.url, n, &dir.0));
        let reset = "UPDATE deliveries SET status = 'pending', attempts = 0, lease_token = NULL, lease_until = NULL, sent_at = NULL";
        psql(&pg.url, reset);
        psql(&pg.url, "VACUUM ANALYZE deliveries");
        let rate = n as f64 / drain_secs(app, n).await;
        ours.push(rate);
        eprintln!(
            "postgres round {}: pgbench {:.0} rows/s, ritualist {rate:.0} rows/s",
            round + 1,
            base[round]
        );
    }
    (median(base), median(ours))
}

/// An app whose outbox holds `n` rendered messages of ~2 KB (email) or SMS, all pending.
async fn filled(cfg: &Path, dir: &Path, n: usize, channel: &str) -> App {
    let app = App::open(Config::load(cfg).unwrap_or_else(|d| panic!("{d}")))
        .await
        .unwrap();
    let mut csv = String::from("external_id,first_name,email,phone,time_zone\n");
    for i in 0..n {
        csv.push_str(&format!(
            "b{i},Emma,user{i}@example.com,+4072{:07},Europe/Bucharest\n",
            i
        ));
    }
    let path = dir.join("customers.csv");
    std::fs::write(&path, csv).unwrap();
    let r = import_file(
        &app.store,
        &app.cfg,
        ImportKind::Customers,
        &path,
        None,
        None,
        ritualist::clock::now().as_second(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // A fresh database numbers the imported customers 1..=n.
    assert_eq!(app.store.customer_count().await.unwrap(), n as i64);
    let ids: Vec<i64> = (1..=n as i64).collect();
    let filler = "Happy birthday from all of us at Floare & Co. ".repeat(14);
    let rows: Vec<NewDelivery> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let to = format!("user{i}@example.com");
            let mid = format!("bench.{i}@floare.example");
            let (recipient, payload, message_id) = if channel == "email" {
                let payload = build_email(&EmailParts {
                    from_email: "hello@floare.example",
                    from_name: Some("Floare & Co"),
                    to_email: &to,
                    to_name: Some("Emma"),
                    subject: "Happy birthday, Emma!",
                    html: &format!("<p>{filler}</p>"),
                    text: &filler,
                    message_id: &mid,
                    date: NOW,
                    list_unsubscribe: Some("<https://floare.example/u/x>"),
                    dkim: None,
                    extra_headers: &[],
                })
                .unwrap();
                (to, payload, Some(format!("<{mid}>")))
            } else {
                (
                    format!("+4072{i:07}"),
                    "Emma, la multi ani! Floare & Co".to_string(),
                    None,
                )
            };
            NewDelivery {
                ritual: "birthday".into(),
                category: "birthday".into(),
                customer_id: *id,
                occurrence: "2027".into(),
                channel: channel.into(),
                status: Status::Pending,
                reason: None,
                recipient: Some(recipient),
                subject: None,
                payload: Some(payload),
                message_id,
                due_at: NOW,
                occasion: None,
                send_window: None,
            }
        })
        .collect();
    for chunk in rows.chunks(1000) {
        app.store.insert_deliveries(chunk, NOW).await.unwrap();
    }
    app
}

/// CPU seconds this process (ritualist; the in-process SMS gateway too) has used, from /proc.
fn cpu() -> f64 {
    let st = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = st
        .rsplit_once(") ")
        .map_or(vec![], |(_, r)| r.split(' ').collect());
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// CPU seconds the whole machine (the peers too) has been busy, from /proc.
fn machine() -> f64 {
    let st = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = st
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if f.len() < 5 {
        return 0.0;
    }
    (f.iter().sum::<f64>() - f[3] - f[4]) / 100.0
}

/// Where the time of a run went: this process's CPU per message, how busy the machine was.
fn where_the_time_went(what: &str, n: usize, secs: f64, c0: f64, m0: f64) {
    eprintln!(
        "  {what}: {secs:.2} s; this process {:.0} µs CPU per message; machine {:.0}% busy",
        (cpu() - c0) / n as f64 * 1e6,
        (machine() - m0) / secs / cores() * 100.0
    );
}

async fn drain_secs(app: App, n: usize) -> f64 {
    let app = std::sync::Arc::new(app);
    let now = jiff::Timestamp::from_second(NOW).unwrap();
    if std::env::var("PERF_WAIT").is_ok() {
        std::fs::write("/tmp/bench.pid", std::process::id().to_string()).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    }
    let (c0, m0) = (cpu(), machine());
    let t = Instant::now();
    // On a runtime worker, as the binary runs its commands (not on the thread that blocks on
    // the runtime): wake-ups from the I/O driver stay on the worker.
    let r = {
        let app = app.clone();
        tokio::spawn(async move { app.drain(now).await.unwrap() })
            .await
            .unwrap()
    };
    let secs = t.elapsed().as_secs_f64();
    where_the_time_went("drain", n, secs, c0, m0);
    assert_eq!(r.sent, n, "{r:?}");
    secs
}

fn smtp_source_secs(port: u16, n: usize) -> f64 {
    let bin = find("smtp-source").expect("smtp-source (postfix) is not installed");
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["-d", "-s", "10", "-m", &n.to_string(), "-l", "2048"])
        .args(["-f", "hello@floare.example", "-t", "user@example.com"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

/// One SMTP drain into a fresh sink: `extra` is added under `delivery:` (nothing: the shipped
/// defaults; `RITUALIST_BENCH_CONNECTIONS` sets `email.smtp.connections` for both settings).
async fn smtp_drain(n: usize, sink: &Sink, extra: &str) -> f64 {
    let connections = std::env::var("RITUALIST_BENCH_CONNECTIONS")
        .map(|c| format!("      connections: {c}\n"))
        .unwrap_or_default();
    let (dir, cfg) = project_with(
        &format!(
            "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n{connections}  sms:\n    transport: outbox\n{extra}",
            sink.1
        ),
        !extra.is_empty(),
    );
    let app = filled(&cfg, &dir.0, n, "email").await;
    n as f64 / drain_secs(app, n).await
}

/// The SMTP drain at the shipped defaults (or `RITUALIST_BENCH_HANDOVER`) and at the fast
/// setting (`handover_batch: 250`) against smtp-source, alternating, each on a fresh sink.
/// Medians of (smtp-source, defaults, fast).
async fn smtp(n: usize) -> (f64, f64, f64) {
    let mut base = Vec::new();
    let mut ours = Vec::new();
    let mut fast = Vec::new();
    for round in 0..ROUNDS {
        let sink = Sink::start();
        base.push(n as f64 / smtp_source_secs(sink.1, n));
        drop(sink);
        let sink = Sink::start();
        let rate = smtp_drain(n, &sink, "").await;
        ours.push(rate);
        drop(sink);
        let sink = Sink::start();
        let quick = smtp_drain(n, &sink, "  handover_batch: 250\n").await;
        fast.push(quick);
        eprintln!(
            "smtp round {}: smtp-source {:.0}/s, ritualist defaults {rate:.0}/s = {:.2}x, handover_batch 250 {quick:.0}/s = {:.2}x",
            round + 1,
            base[round],
            rate / base[round],
            quick / base[round]
        );
    }
    (median(base), median(ours), median(fast))
}

/// The ledger alone on SQLite: N pending emails claimed and acknowledged with the `discard`
/// transport (what every real send costs in ledger writes, without a peer).
async fn ledger_sqlite(n: usize) -> f64 {
    let mut ours = Vec::new();
    for round in 0..ROUNDS {
        let (dir, cfg) =
            project("  email:\n    transport: discard\n  sms:\n    transport: outbox\n");
        let app = filled(&cfg, &dir.0, n, "email").await;
        let rate = n as f64 / drain_secs(app, n).await;
        ours.push(rate);
        eprintln!("sqlite ledger round {}: {rate:.0} msg/s", round + 1);
    }
    median(ours)
}

/// A keep-alive HTTP gateway on loopback answering every request `200 OK`.
fn gateway() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let app = axum::Router::new().route("/send", axum::routing::any(|| async { "OK" }));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, task)
}

fn wrk_rate(port: u16) -> Option<f64> {
    wrk_url(&format!("http://127.0.0.1:{port}/send"))
}

/// `wrk -c <sms.concurrency>` (keep-alive) for 5 s against `url`: requests per second.
fn wrk_url(url: &str) -> Option<f64> {
    let bin = find("wrk")?;
    let out = Command::new(bin)
        .args(["-t", "2", "-c", &sms_concurrency().to_string(), "-d", "5s"])
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The SMS provider's HTTP client alone, no ledger: `n` messages through `Channels::send`
/// (the generic provider's request, reqwest, the reply's classification) with
/// `sms.concurrency` in flight — the ceiling of the HTTP stack, beside wrk's.
async fn sms_client_alone(app: &App, n: usize) -> f64 {
    use futures_util::StreamExt;
    let (c0, m0) = (cpu(), machine());
    let t = Instant::now();
    let accepted = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let to = format!("+4072{i:07}");
            let msg = Outgoing {
                channel: "sms",
                recipient: &to,
                payload: "Emma, la multi ani! Floare & Co",
                message_id: None,
                from: "hello@floare.example",
                handover: None,
                delivery_id: None,
            };
            app.channels.send(&msg).await.is_ok()
        })
        .buffer_unordered(sms_concurrency())
        .filter(|ok| futures_util::future::ready(*ok))
        .count()
        .await;
    let secs = t.elapsed().as_secs_f64();
    where_the_time_went("HTTP client alone", n, secs, c0, m0);
    let rate = n as f64 / secs;
    assert_eq!(accepted, n);
    rate
}

/// A real Kannel gateway — bearerbox, smsbox and the fake SMSC `fakesmsc` (as the tests run
/// it, `tests/it/peers.rs`) — on fresh loopback ports: the HTTP gateway an SMS daemon talks
/// to, doing a gateway's work per request (authentication, queueing, handing the message to
/// the SMSC). Killed on drop.
struct KannelGw {
    procs: Vec<std::process::Child>,
    sendsms_port: u16,
    _dir: tempdir::Dir,
}

const KANNEL_USER: &str = "bench";
const KANNEL_PASSWORD: &str = "bench-secret";

impl KannelGw {
    /// `None` when Kannel is not installed (packages kannel, kannel-extras).
    fn start() -> Option<KannelGw> {
        let bb = find("bearerbox")?;
        let sb = find("smsbox")?;
        let fake = Path::new("/usr/lib/kannel/test/fakesmsc");
        if !fake.exists() {
            return None;
        }
        let dir = tempdir::Dir::new();
        let [admin, boxp, sendsms, smsc] = [free_port(), free_port(), free_port(), free_port()];
        let conf = dir.0.join("kannel.conf");
        std::fs::write(
            &conf,
            format!(
                "group = core\nadmin-port = {admin}\nadmin-interface = 127.0.0.1\n\
                 admin-password = bench\nadmin-allow-ip = \"127.0.0.1\"\n\
                 smsbox-port = {boxp}\nsmsbox-interface = 127.0.0.1\nbox-allow-ip = \"127.0.0.1\"\n\
                 log-level = 4\n\n\
                 group = smsc\nsmsc = fake\nsmsc-id = fake\nport = {smsc}\nconnect-allow-ip = \"127.0.0.1\"\n\n\
                 group = smsbox\nbearerbox-host = 127.0.0.1\nbearerbox-port = {boxp}\n\
                 sendsms-port = {sendsms}\nsendsms-interface = 127.0.0.1\nlog-level = 4\n\n\
                 group = sendsms-user\nusername = {KANNEL_USER}\npassword = {KANNEL_PASSWORD}\n\
                 user-allow-ip = \"127.0.0.1\"\n"
            ),
        )
        .unwrap();
        let cwd = dir.0.clone();
        let spawn = |cmd: &mut Command| {
            cmd.current_dir(&cwd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let mut gw = KannelGw {
            procs: vec![spawn(Command::new(bb).arg(&conf))],
            sendsms_port: sendsms,
            _dir: dir,
        };
        let wait_for = |port: u16| {
            let deadline = Instant::now() + Duration::from_secs(15);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "Kannel did not open port {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        wait_for(smsc);
        gw.procs.push(spawn(
            Command::new(fake)
                .args(["-H", "127.0.0.1", "-r", &smsc.to_string()])
                .args(["-i", "1", "-m", "0", "-v", "4", "100 200 text unused"]),
        ));
        gw.procs.push(spawn(Command::new(sb).arg(&conf)));
        wait_for(sendsms);
        // Up once a message is accepted for delivery (smsbox on line, the SMSC connected).
        let deadline = Instant::now() + Duration::from_secs(15);
        while !gw.get(&gw.query("+40720000000")).contains("0: Accepted") {
            assert!(
                Instant::now() < deadline,
                "Kannel did not accept a message: {:?}",
                gw.get(&gw.query("+40720000000"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(gw)
    }

    /// A scratch project whose only SMS provider is this gateway.
    fn project(&self) -> (tempdir::Dir, PathBuf) {
        let (dir, cfg) = project(&format!(
            "  email:\n    transport: outbox\n  sms:\n    providers:\n      - kannel:\n          url: http://127.0.0.1:{}/cgi-bin/sendsms\n          username: {KANNEL_USER}\n          from: FloareCo\n          password_file: ../kannel-password\n    concurrency: {}\n",
            self.sendsms_port,
            sms_concurrency()
        ));
        std::fs::write(dir.0.join("kannel-password"), KANNEL_PASSWORD).unwrap();
        (dir, cfg)
    }

    /// The query ritualist's Kannel provider sends for the bench's SMS text.
    fn query(&self, to: &str) -> String {
        format!(
            "/cgi-bin/sendsms?username={KANNEL_USER}&password={KANNEL_PASSWORD}&to={}&text=Emma%2C+la+multi+ani%21+Floare+%26+Co&charset=UTF-8&coding=0&from=FloareCo",
            to.replace('+', "%2B")
        )
    }

    /// One plain GET; the whole reply.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.sendsms_port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }
}

impl Drop for KannelGw {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// (wrk, ritualist's drain) against Kannel's `sendsms`, a fresh gateway for each measurement
/// (so neither inherits a queue the other left), `sms.concurrency` = wrk's connections.
async fn sms_kannel(n: usize) -> Option<(f64, f64, f64)> {
    let mut base = Vec::new();
    let mut client = Vec::new();
    let mut ours = Vec::new();
    for round in 0..ROUNDS {
        let gw = KannelGw::start()?;
        let url = format!(
            "http://127.0.0.1:{}{}",
            gw.sendsms_port,
            gw.query("+40720000001")
        );
        base.push(wrk_url(&url)?);
        drop(gw);
        let gw = KannelGw::start()?;
        let (dir, cfg) = gw.project();
        let app = filled(&cfg, &dir.0, n, "sms").await;
        let rate = n as f64 / drain_secs(app, n).await;
        ours.push(rate);
        drop(gw);
        let gw = KannelGw::start()?;
        let (_dir, cfg) = gw.project();
        let app = App::open(Config::load(&cfg).unwrap_or_else(|d| panic!("{d}")))
            .await
            .unwrap();
        client.push(sms_client_alone(&app, n).await);
        eprintln!(
            "kannel round {}: wrk {:.0} req/s, ritualist {rate:.0} msg/s, HTTP client alone {:.0} req/s",
            round + 1,
            base[round],
            client[round]
        );
    }
    Some((median(base), median(ours), median(client)))
}

/// (wrk, the HTTP client alone, ritualist's drain)
async fn sms(n: usize) -> (Option<f64>, f64, f64) {
    let mut base = Vec::new();
    let mut client = Vec::new();
    let mut ours = Vec::new();
    let (port, _task) = gateway();
    for round in 0..ROUNDS {
        if let Some(r) = wrk_rate(port) {
            base.push(r);
        }
        let (dir, cfg) = project(&format!(
            "  email:\n    transport: outbox\n  sms:\n    providers:\n      - http:\n          name: gw\n          url: http://127.0.0.1:{port}/send\n          form: {{ to: \"{{to}}\", text: \"{{text}}\" }}\n    concurrency: {}\n",
            sms_concurrency()
        ));
        let app = filled(&cfg, &dir.0, n, "sms").await;
        client.push(sms_client_alone(&app, n).await);
        let rate = n as f64 / drain_secs(app, n).await;
        ours.push(rate);
        eprintln!(
            "sms round {}: wrk {:?}/s, HTTP client alone {:.0}/s, ritualist {rate:.0}/s",
            round + 1,
            base.last(),
            client[round]
        );
    }
    (
        (!base.is_empty()).then(|| median(base)),
        median(client),
        median(ours),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: a debug build measures
    // nothing worth a ratio. Only `cargo bench` (which passes `--bench`) measures.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("delivery bench: skipped (run it with `cargo bench --bench delivery`)");
        return;
    }
    let n = messages();
    eprintln!("delivery bench: {n} messages per run, {ROUNDS} rounds");
    let only = std::env::var("RITUALIST_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    if run("smtp") {
        let (source, ours, fast) = smtp(n).await;
        let connections =
            std::env::var("RITUALIST_BENCH_CONNECTIONS").unwrap_or_else(|_| "the default".into());
        let setting = std::env::var("RITUALIST_BENCH_HANDOVER")
            .map(|h| format!("handover_batch {h}"))
            .unwrap_or_else(|_| "shipped defaults".into());
        println!(
            "SMTP  smtp-source -s 10: {source:.0} msg/s; ritualist drain ({setting}, connections: {connections}, ledger on SQLite): {ours:.0} msg/s = {:.2}× (bar ≥ 0.5×: {}); with handover_batch 250: {fast:.0} msg/s = {:.2}×",
            ours / source,
            if ours / source >= 0.5 {
                "met"
            } else {
                "NOT met"
            },
            fast / source
        );
    }
    if run("ledger") {
        let ours = ledger_sqlite(n).await;
        println!(
            "LEDGER ritualist drain on SQLite with the discard transport (claim, sending, sent; no peer): {ours:.0} msg/s"
        );
    }
    if run("pg") {
        let (raw, ours) = postgres(n).await;
        println!(
            "PG    pgbench claim/complete (50 per batch, 4 clients): {raw:.0} rows/s; ritualist drain (discard transport): {ours:.0} rows/s = {:.2}× (bar ≥ 0.4×: {})",
            ours / raw,
            if ours / raw >= 0.4 { "met" } else { "NOT met" }
        );
    }
    if run("sms") {
        let (wrk, client, ours) = sms(n).await;
        if let Some(w) = wrk {
            println!(
                "SMS   the HTTP client alone (reqwest, no ledger), {} in flight: {client:.0} req/s = {:.2}× wrk",
                sms_concurrency(),
                client / w
            );
        }
        match wrk {
            Some(w) => println!(
                "SMS   wrk -c {}: {w:.0} req/s; ritualist drain (generic HTTP provider, ledger on SQLite): {ours:.0} msg/s = {:.2}× (bar ≥ 0.5×: {})",
                sms_concurrency(),
                ours / w,
                if ours / w >= 0.5 { "met" } else { "NOT met" }
            ),
            None => println!(
                "SMS   ritualist drain: {ours:.0} msg/s; wrk is not installed (apt-get install wrk) so there is no baseline"
            ),
        }
    }
    if run("kannel") {
        match sms_kannel(n).await {
            Some((w, ours, client)) => println!(
                "SMS   Kannel sendsms (bearerbox + smsbox + fakesmsc), wrk -c {}: {w:.0} req/s; ritualist drain (Kannel provider, ledger on SQLite): {ours:.0} msg/s = {:.2}× (bar ≥ 0.5×: {}); the HTTP client alone (no ledger): {client:.0} req/s = {:.2}×",
                sms_concurrency(),
                ours / w,
                if ours / w >= 0.5 { "met" } else { "NOT met" },
                client / w
            ),
            None => println!(
                "SMS   Kannel: not measured (needs packages kannel, kannel-extras and wrk)"
            ),
        }
    }
}
