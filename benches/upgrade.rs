//! An upgrade of a big SQLite database across migration 000009 (issue #30): a million
//! deliveries, each with a stored ~1 KB message, at the schema before 000009; then
//! `ritualist migrate` (the real binary, in a child process) moves every message into
//! `delivery_messages` and drops `deliveries.payload`, after writing its safety copy.
//!
//! Reported: the wall time of the upgrade, the child's peak RSS (`VmHWM` from
//! `/proc/<pid>/status`, polled every 10 ms; it only grows), the database's size, and the
//! times the child logged for the safety copy and for each migration. Then the same upgrade is
//! killed (SIGKILL) halfway through its measured time, and the next `ritualist migrate` must
//! complete with every message moved.
//!
//! Not a timed test: nothing is asserted about time. Run:
//! `cargo bench --bench upgrade` (1,000,000 deliveries), or
//! `RITUALIST_BENCH_DELIVERIES=100000 cargo bench --bench upgrade` for a quick iteration.
//! The generated database is cached under `<target>/bench-upgrade/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Database};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Migrations before 000009 (there is no 000003).
const BEFORE_MESSAGE_MOVE: u32 = 7;
const GENERATOR_VERSION: u32 = 1;

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`, in a debug build: there the
    // run is a smoke test of the whole path on a small database, not a measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    let n: u64 = std::env::var("RITUALIST_BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 1_000_000 } else { 20_000 });
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("bench-upgrade");
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join(format!("before-000009-{n}-v{GENERATOR_VERSION}.db"));
    if !base.exists() {
        let started = Instant::now();
        generate(&base, n);
        println!(
            "generated {} ({n} deliveries) in {:.1} s",
            base.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(&base).unwrap().len();
    println!(
        "database before the upgrade: {n} deliveries, {:.0} MB",
        size as f64 / 1e6
    );

    // The whole upgrade.
    let run = fresh_copy(&dir, &base, "upgrade.db");
    let mut child = migrate(&run);
    let (secs, hwm_kb, status, log) = watch(&mut child, None);
    assert!(status, "the upgrade failed:\n{log}");
    println!(
        "upgrade: {secs:.1} s wall, peak RSS {:.1} MB",
        hwm_kb as f64 / 1024.0
    );
    for line in log.lines().filter(|l| {
        l.contains("safety copy") || l.contains("applied in") || l.contains("still running")
    }) {
        println!("  {}", strip_ansi(line));
    }
    check_moved(&run, n);

    // Killed halfway, then started again.
    let killed = fresh_copy(&dir, &base, "killed.db");
    let mut child = migrate(&killed);
    let half = Duration::from_secs_f64(secs / 2.0);
    let (_, _, _, log) = watch(&mut child, Some(half));
    let at = log
        .lines()
        .rev()
        .find(|l| l.contains("applying migration") || l.contains("safety copy"))
        .map(strip_ansi)
        .unwrap_or_default();
    println!(
        "killed (SIGKILL) after {:.1} s; last log line: {at}",
        half.as_secs_f64()
    );
    let mut child = migrate(&killed);
    let (secs, hwm_kb, status, log) = watch(&mut child, None);
    assert!(status, "the start after the kill failed:\n{log}");
    println!(
        "next start: completed in {secs:.1} s, peak RSS {:.1} MB",
        hwm_kb as f64 / 1024.0
    );
    for line in log
        .lines()
        .filter(|l| l.contains("safety copy") || l.contains("applied in"))
    {
        println!("  {}", strip_ansi(line));
    }
    check_moved(&killed, n);
    for f in [&run, &killed] {
        remove_database(f);
    }
}

/// The schema before 000009 with `n` deliveries, each with its stored message.
fn generate(path: &Path, n: u64) {
    let partial = path.with_extension("partial");
    remove_database(&partial);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Database::connect(format!("sqlite://{}?mode=rwc", partial.display()))
            .await
            .unwrap();
        migration::Migrator::up(&db, Some(BEFORE_MESSAGE_MOVE))
            .await
            .unwrap();
        db.execute_unprepared(&format!(
            "INSERT INTO deliveries (ritual, category, customer_id, occurrence, channel, status, recipient, subject, payload, message_id, due_at, attempts, next_attempt_at, sent_at, created_at, updated_at) \
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
             SELECT 'birthday', 'birthday', i, '2027', 'email', 'sent', 'customer' || i || '@example.com', 'Happy birthday', \
                    'Subject: Happy birthday\r\nMessage-ID: <' || i || '@floare.example>\r\n\r\n' || printf('%.1000c', 'x') || i, \
                    '<' || i || '@floare.example>', 1800000000, 1, 1800000000, 1800000000, 1800000000, 1800000000 FROM s"
        ))
        .await
        .unwrap();
        db.close().await.unwrap();
    });
    std::fs::rename(&partial, path).unwrap();
}

fn fresh_copy(dir: &Path, base: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    remove_database(&to);
    std::fs::copy(base, &to).unwrap();
    // Read once, so it is in the page cache as a daemon's database is.
    std::fs::read(&to).map(drop).unwrap();
    to
}

fn remove_database(db: &Path) {
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    if let Ok(entries) = std::fs::read_dir(db.parent().unwrap()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn migrate(db: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ritualist"))
        .current_dir(REPO)
        .args(["--config", "config/ritualist.yaml", "migrate"])
        .env("RITUALIST_DATABASE_URL", db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the child (or kills it with SIGKILL after `kill_after`): wall seconds, peak RSS
/// in kB, whether it succeeded, and its stderr.
fn watch(child: &mut Child, kill_after: Option<Duration>) -> (f64, u64, bool, String) {
    let started = Instant::now();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status_file = format!("/proc/{}/status", child.id());
    let mut hwm = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            hwm = hwm.max(kb);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if kill_after.is_some_and(|k| started.elapsed() >= k) {
            child.kill().unwrap();
            child.wait().unwrap();
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let secs = started.elapsed().as_secs_f64();
    (secs, hwm, status, reader.join().unwrap())
}

/// Every message is in `delivery_messages`, every migration recorded.
fn check_moved(db: &Path, n: u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = Database::connect(format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
        let one = |sql: &'static str| {
            let conn = &conn;
            async move {
                conn.query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    sql,
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap()
            }
        };
        let moved = one("SELECT COUNT(*) FROM delivery_messages").await;
        let applied = one("SELECT COUNT(*) FROM seaql_migrations").await;
        assert_eq!(moved as u64, n, "every message moved");
        assert_eq!(applied as usize, migration::Migrator::migrations().len());
        println!("  checked: {moved} messages in delivery_messages, {applied} migrations applied");
        conn.close().await.unwrap();
    });
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}
