//! One measurement in a fresh process: `--child <op> <database> <ritualist.yaml> [arg]`.
//!
//! The child opens the app (config, rituals, templates, store), then times the operation
//! alone, and prints one `RESULT {json}` line: wall seconds of the operation, peak RSS of
//! the process (VmHWM at the end) and what the operation did.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use ritualist::app::{App, PlanRequest};
use ritualist::config::Config;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildResult {
    pub op: String,
    /// Wall seconds of the operation (after `App::open`).
    pub secs: f64,
    /// Wall seconds of `App::open` (config, definitions, store open and migrations check).
    pub open_secs: f64,
    /// Peak resident set of the process, MiB.
    pub peak_rss_mb: f64,
    /// Rows read (stream) or decisions taken (tick, plan).
    pub decisions: u64,
    /// Ledger rows written (tick).
    pub rows_written: u64,
    /// Customers looked at (tick).
    pub candidates: u64,
    pub sends: u64,
    pub suppressions: u64,
}

/// `VmHWM` of this process in MiB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub fn run(args: &[String]) {
    let [op, db, cfg_path, rest @ ..] = args else {
        panic!("usage: --child <stream|tick|plan> <db> <ritualist.yaml> [now|date]");
    };
    let mut cfg = Config::load(Path::new(cfg_path)).expect("the bench config loads");
    cfg.database_url = format!("sqlite://{db}?mode=rwc");
    // The binary's runtime (src/main.rs): multi-threaded, on every core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let t = Instant::now();
        let app = App::open(cfg).await.expect("App::open");
        let open_secs = t.elapsed().as_secs_f64();
        let mut r = ChildResult {
            op: op.clone(),
            secs: 0.0,
            open_secs,
            peak_rss_mb: 0.0,
            decisions: 0,
            rows_written: 0,
            candidates: 0,
            sends: 0,
            suppressions: 0,
        };
        let start = Instant::now();
        match op.as_str() {
            "stream" => {
                let mut acc = 0i64;
                let n = app
                    .store
                    .stream_customers(|row| {
                        acc = acc.wrapping_add(row.id ^ row.order_count);
                        black_box(row);
                    })
                    .await
                    .expect("stream");
                r.secs = start.elapsed().as_secs_f64();
                black_box(acc);
                r.decisions = n;
            }
            "tick" => {
                let now: jiff::Timestamp = rest[0].parse().expect("an RFC 3339 instant");
                let report = app.tick(now).await.expect("tick");
                r.secs = start.elapsed().as_secs_f64();
                r.decisions = report.decisions as u64;
                r.rows_written = (report.queued + report.suppressed) as u64;
                r.candidates = report.candidates;
                r.sends = report.queued as u64;
                r.suppressions = report.suppressed as u64;
            }
            "plan" => {
                let date: jiff::civil::Date = rest[0].parse().expect("a date");
                let req = PlanRequest {
                    date,
                    days: 1,
                    ritual: None,
                    customer: None,
                };
                let mut total = 0;
                let planned = app.plan(&req, |_, t| total = t).await.expect("plan");
                r.secs = start.elapsed().as_secs_f64();
                r.decisions = planned.len() as u64;
                r.candidates = total;
                r.sends = planned.iter().filter(|p| p.decision == "send").count() as u64;
                r.suppressions = r.decisions - r.sends;
            }
            other => panic!("unknown child op `{other}`"),
        }
        r
    });
    let mut result = result;
    result.peak_rss_mb = peak_rss_mb();
    println!("RESULT {}", serde_json::to_string(&result).unwrap());
}
