//! The ritual engine over a million customers on SQLite, side by side in one run (issue #3,
//! "Performance bar"): machines are noisy, so the bars are ratios against a raw SQLite
//! stream measured in the same run, plus the absolute 1 s / 200 MB of an ordinary day.
//!
//! - **raw stream**: every customer row (the columns the engine reads) through the same
//!   driver in one streamed `SELECT`, each row decoded;
//! - **ordinary day tick**: `App::tick` at 2027-06-16T23:00Z on a fresh database (first run:
//!   the 26 hours before): birthdays, anniversaries, weddings, win-backs and order events
//!   of the day. Bar: ≤ 1 s wall, peak RSS ≤ 200 MB;
//! - **holiday tick**: `App::tick` at 2027-01-01T21:00Z, when New Year at 09:30 local is due
//!   for every customer from UTC+14 (2026-12-31T19:30Z) to UTC−11 (2027-01-01T20:30Z), all
//!   inside the first-run window (2026-12-31T19:00Z, 2027-01-01T21:00Z]: ~1M ledger rows.
//!   Bar: ≤ 10 × the raw stream;
//! - **plan --days 1**: `App::plan` for 2027-06-16. Bar: ≤ 2 × the ordinary tick. The real
//!   CLI (`ritualist plan --date 2027-06-16 --days 1 --format json > /dev/null`) is timed
//!   once as well.
//!
//! Each measurement runs in a fresh child process (this binary with `--child`) on a fresh
//! copy of the generated database (read once beforehand, so it is in the page cache as a
//! daemon's database is), three times; medians are reported. The database is
//! generated once per customer count and generator version and cached under
//! `<target>/bench-engine/`.
//!
//! Run: `cargo bench --bench engine` (1,000,000 customers); `-- --db-only` generates (or
//! finds) the database and prints its path and the deployment's, measuring nothing
//! (benches/massday.sh runs the real binary on them);
//! `RITUALIST_BENCH_CUSTOMERS=20000 cargo bench --bench engine` for a quick iteration;
//! `RITUALIST_BENCH_LOADER=store` generates through `upsert_customers` / `upsert_orders`
//! instead of the bulk loader (slow; same data).

mod child;
mod config;
mod data;
mod synth;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use child::ChildResult;
use serde_json::json;

const ORDINARY_NOW: &str = "2027-06-16T23:00:00Z";
const HOLIDAY_NOW: &str = "2027-01-01T21:00:00Z";
const PLAN_DATE: &str = "2027-06-16";
const ROUNDS: usize = 3;

const TICK_BAR_SECS: f64 = 1.0;
const TICK_BAR_RSS_MB: f64 = 200.0;
const HOLIDAY_BAR_RATIO: f64 = 10.0;
const PLAN_BAR_RATIO: f64 = 2.0;

/// `<target>`: this binary lives in `<target>/release/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("<target>/release/deps/engine-…")
        .to_path_buf()
}

/// A fresh copy of the database (the tick writes ledger rows and its watermark), flushed to
/// disk and read once, so it is as a running daemon's database is: in the OS page cache,
/// with no gigabyte of writeback pending (on ext4 a commit's fsync would wait for it, and
/// the copy's pages need not be cached after the kernel copied the file). Every operation,
/// the baseline stream included, starts from the same state.
fn fresh_copy(db: &Path, runs: &Path, name: &str) -> PathBuf {
    let copy = runs.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    std::fs::copy(db, &copy).expect("copy the database");
    let mut file = std::fs::File::open(&copy).expect("open the copy");
    file.sync_all().expect("flush the copy");
    std::io::copy(&mut file, &mut std::io::sink()).expect("read the copy");
    copy
}

fn remove_db(copy: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
}

fn run_child(db: &Path, runs: &Path, cfg: &Path, op: &str, arg: Option<&str>) -> ChildResult {
    let copy = fresh_copy(db, runs, op);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--child").arg(op).arg(&copy).arg(cfg);
    if let Some(a) = arg {
        cmd.arg(a);
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    remove_db(&copy);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child {op} failed: {stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("child {op} printed no RESULT: {stdout}"));
    serde_json::from_str(line).expect("a RESULT line")
}

/// The real CLI, once: wall seconds of the whole process and its peak RSS (`/usr/bin/time`).
fn run_cli(db: &Path, runs: &Path, cfg: &Path) -> (f64, Option<f64>) {
    let copy = fresh_copy(db, runs, "cli");
    let time_out = runs.join("cli.time");
    let bin = env!("CARGO_BIN_EXE_ritualist");
    let have_time = Path::new("/usr/bin/time").is_file();
    let mut cmd = if have_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(&time_out).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("--config")
        .arg(cfg)
        .args([
            "plan", "--date", PLAN_DATE, "--days", "1", "--format", "json",
        ])
        .env(
            "RITUALIST_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", copy.display()),
        )
        .env("RITUALIST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    let status = cmd.status().expect("run ritualist plan");
    let secs = start.elapsed().as_secs_f64();
    remove_db(&copy);
    assert!(status.success(), "ritualist plan failed");
    let rss = std::fs::read_to_string(&time_out)
        .ok()
        .and_then(|s| s.lines().last()?.trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0);
    (secs, rss)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Op {
    key: &'static str,
    label: String,
    child_op: &'static str,
    arg: Option<&'static str>,
    runs: Vec<ChildResult>,
}

impl Op {
    fn secs(&self) -> f64 {
        median(&self.runs.iter().map(|r| r.secs).collect::<Vec<_>>())
    }
    fn rss(&self) -> f64 {
        median(&self.runs.iter().map(|r| r.peak_rss_mb).collect::<Vec<_>>())
    }
    fn max_rss(&self) -> f64 {
        self.runs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max)
    }
    fn median_run(&self) -> &ChildResult {
        let m = self.secs();
        self.runs.iter().find(|r| r.secs == m).expect("a run")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<String> = raw.iter().filter(|a| *a != "--bench").cloned().collect();
    if args.first().map(String::as_str) == Some("--child") {
        child::run(&args[1..]);
        return;
    }
    // `cargo test --all-targets` runs benches without `--bench`: a million customers in a
    // debug build is not a test. Only `cargo bench` (which passes `--bench`) measures.
    if !raw.iter().any(|a| a == "--bench") {
        eprintln!("engine bench: skipped (run it with `cargo bench --bench engine`)");
        return;
    }
    let n: u64 = std::env::var("RITUALIST_BENCH_CUSTOMERS")
        .ok()
        .map(|s| {
            s.replace(['_', ','], "")
                .parse()
                .expect("RITUALIST_BENCH_CUSTOMERS is a number")
        })
        .unwrap_or(1_000_000);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = target_dir().join("bench-engine");
    std::fs::create_dir_all(&dir).expect("create bench-engine");
    let runs_dir = dir.join("runs");
    std::fs::create_dir_all(&runs_dir).expect("create runs");
    let cfg = config::write(&dir, repo);

    let (db, gen_stats, generated) = data::ensure(&dir, n);
    // `cargo bench --bench engine -- --db-only`: the database and the deployment only, for
    // benches/massday.sh, which measures the real binary on them.
    if args.iter().any(|a| a == "--db-only") {
        println!("DATABASE {}", db.display());
        println!("CONFIG {}", cfg.display());
        println!(
            "CUSTOMERS {} ORDERS {} ZONES {}",
            gen_stats.customers, gen_stats.orders, gen_stats.zones
        );
        return;
    }
    eprintln!(
        "database: {} ({} customers, {} orders, {:.0} MB; {} in {:.1} s with the {} loader)",
        db.display(),
        gen_stats.customers,
        gen_stats.orders,
        gen_stats.db_bytes as f64 / 1e6,
        if generated {
            "generated now"
        } else {
            "cached, generated"
        },
        gen_stats.seconds,
        gen_stats.loader
    );

    let mut ops = vec![
        Op {
            key: "raw_stream",
            label: "raw stream (SELECT all customers)".into(),
            child_op: "stream",
            arg: None,
            runs: Vec::new(),
        },
        Op {
            key: "ordinary_tick",
            label: format!("ordinary day tick @ {ORDINARY_NOW}"),
            child_op: "tick",
            arg: Some(ORDINARY_NOW),
            runs: Vec::new(),
        },
        Op {
            key: "holiday_tick",
            label: format!("holiday tick @ {HOLIDAY_NOW}"),
            child_op: "tick",
            arg: Some(HOLIDAY_NOW),
            runs: Vec::new(),
        },
        Op {
            key: "plan",
            label: format!("App::plan {PLAN_DATE} --days 1"),
            child_op: "plan",
            arg: Some(PLAN_DATE),
            runs: Vec::new(),
        },
    ];
    // Rounds interleave the operations, so a noisy minute spreads over all of them.
    for round in 1..=ROUNDS {
        for op in &mut ops {
            let r = run_child(&db, &runs_dir, &cfg, op.child_op, op.arg);
            eprintln!(
                "  round {round} {:<44} {:>8.3} s {:>7.1} MB  (open {:.2} s)",
                op.label, r.secs, r.peak_rss_mb, r.open_secs
            );
            op.runs.push(r);
        }
    }
    let (cli_secs, cli_rss) = run_cli(&db, &runs_dir, &cfg);
    eprintln!("  ritualist plan CLI (whole process) {cli_secs:.3} s");

    let stream = ops[0].secs();
    let tick = ops[1].secs();
    let holiday = ops[2].secs();
    let plan = ops[3].secs();
    let holiday_ratio = holiday / stream;
    let plan_ratio = plan / tick;
    let tick_rss = ops[1].max_rss();

    println!();
    println!(
        "engine bench: {} customers, {} orders, {} zones, SQLite; medians of {ROUNDS} fresh processes on fresh copies",
        gen_stats.customers, gen_stats.orders, gen_stats.zones
    );
    println!(
        "{:<46} {:>9} {:>26} {:>9} {:>11} {:>11} {:>11}",
        "operation", "median s", "runs s", "RSS MB", "candidates", "decisions", "rows written"
    );
    for op in &ops {
        let runs: Vec<String> = op.runs.iter().map(|r| format!("{:.3}", r.secs)).collect();
        let m = op.median_run();
        println!(
            "{:<46} {:>9.3} {:>26} {:>9.1} {:>11} {:>11} {:>11}",
            op.label,
            op.secs(),
            runs.join(" "),
            op.rss(),
            if op.key == "raw_stream" {
                "-".to_string()
            } else {
                m.candidates.to_string()
            },
            m.decisions,
            m.rows_written
        );
    }
    println!(
        "{:<46} {:>9.3} {:>26} {:>9} {:>11} {:>11} {:>11}",
        "ritualist plan CLI, once (whole process)",
        cli_secs,
        "",
        cli_rss.map_or("-".into(), |r| format!("{r:.1}")),
        "-",
        "-",
        "-"
    );
    println!();
    println!(
        "ordinary tick ≤ {TICK_BAR_SECS} s:            {tick:>7.3} s         {}",
        verdict(tick <= TICK_BAR_SECS)
    );
    println!(
        "ordinary tick peak RSS ≤ {TICK_BAR_RSS_MB} MB:   {tick_rss:>7.1} MB (max)   {}",
        verdict(tick_rss <= TICK_BAR_RSS_MB)
    );
    println!(
        "holiday tick / raw stream ≤ {HOLIDAY_BAR_RATIO}:   {holiday_ratio:>7.2} ×          {}",
        verdict(holiday_ratio <= HOLIDAY_BAR_RATIO)
    );
    println!(
        "plan / ordinary tick ≤ {PLAN_BAR_RATIO}:          {plan_ratio:>7.2} ×          {}",
        verdict(plan_ratio <= PLAN_BAR_RATIO)
    );
    println!(
        "generation: {:.1} s ({} loader; customers {:.1} s, orders and their facts {:.1} s){}",
        gen_stats.seconds,
        gen_stats.loader,
        gen_stats.customers_seconds,
        gen_stats.orders_seconds,
        if generated {
            ""
        } else {
            " — cached, not regenerated in this run"
        }
    );

    let op_json = |op: &Op| {
        json!({
            "label": op.label,
            "median_secs": op.secs(),
            "median_peak_rss_mb": op.rss(),
            "max_peak_rss_mb": op.max_rss(),
            "runs": op.runs,
        })
    };
    let report = json!({
        "customers": gen_stats.customers,
        "generation": gen_stats,
        "generated_in_this_run": generated,
        "database": db.display().to_string(),
        "config": cfg.display().to_string(),
        "rituals": config::ritual_names(),
        "rounds": ROUNDS,
        "ordinary_now": ORDINARY_NOW,
        "holiday_now": HOLIDAY_NOW,
        "plan_date": PLAN_DATE,
        "operations": {
            "raw_stream": op_json(&ops[0]),
            "ordinary_tick": op_json(&ops[1]),
            "holiday_tick": op_json(&ops[2]),
            "plan": op_json(&ops[3]),
            "plan_cli": { "wall_secs": cli_secs, "peak_rss_mb": cli_rss },
        },
        "bars": {
            "ordinary_tick_secs": { "value": tick, "bar": TICK_BAR_SECS, "pass": tick <= TICK_BAR_SECS },
            "ordinary_tick_rss_mb": { "value": tick_rss, "bar": TICK_BAR_RSS_MB, "pass": tick_rss <= TICK_BAR_RSS_MB },
            "holiday_over_stream": { "value": holiday_ratio, "bar": HOLIDAY_BAR_RATIO, "pass": holiday_ratio <= HOLIDAY_BAR_RATIO },
            "plan_over_tick": { "value": plan_ratio, "bar": PLAN_BAR_RATIO, "pass": plan_ratio <= PLAN_BAR_RATIO },
        },
    });
    let path = dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write report");
    println!("report: {}", path.display());
}
