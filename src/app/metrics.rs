//! `/metrics`: the Prometheus text exposition (format 0.0.4), written by hand.
//!
//! From the ledger (the same numbers whichever process is scraped), as gauges of current row
//! counts per ritual and channel: `ritualist_due` (every decision recorded: an occurrence
//! that came due, whatever became of it), `ritualist_sent`, `ritualist_failed`,
//! `ritualist_suppressed` (also per `reason`), and `ritualist_queue_depth` per open status.
//! From this process: `ritualist_send_duration_seconds`, a histogram of send latency per
//! channel and outcome (`ok` or `error`), observed around each transport call by the
//! dispatcher, and `process_start_time_seconds`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use crate::domain::Channel;
use crate::store::{LedgerCount, Status};

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket of [`BUCKETS`], then the overflow.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// What this process measures itself.
#[derive(Debug)]
pub struct Metrics {
    /// Unix seconds when the process opened the app.
    pub started_at: i64,
    sends: Mutex<BTreeMap<(Channel, &'static str), Histogram>>,
}

impl Metrics {
    pub fn new(started_at: i64) -> Metrics {
        Metrics {
            started_at,
            sends: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one send on `channel` that took `seconds`, with its outcome.
    pub fn observe_send(&self, channel: Channel, seconds: f64, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        let mut sends = self.sends.lock().unwrap_or_else(|p| p.into_inner());
        let h = sends.entry((channel, outcome)).or_default();
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        h.counts[slot] += 1;
        h.sum += seconds;
        h.count += 1;
    }

    /// Awaits a send and observes how long it took and whether it worked.
    pub async fn timed<T, E>(
        &self,
        channel: Channel,
        send: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let r = send.await;
        self.observe_send(channel, started.elapsed().as_secs_f64(), r.is_ok());
        r
    }

    /// The whole exposition: ledger gauges from `ledger`, then this process's own series.
    pub fn render(&self, ledger: &[LedgerCount]) -> String {
        let mut out = String::new();
        let mut by = |name: &str, help: &str, pick: &dyn Fn(&LedgerCount) -> bool| {
            let mut sums: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            for c in ledger.iter().filter(|c| pick(c)) {
                *sums.entry((&c.ritual, &c.channel)).or_default() += c.n;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for ((ritual, channel), n) in sums {
                let _ = writeln!(
                    out,
                    "{name}{{ritual=\"{}\",channel=\"{}\"}} {n}",
                    esc(ritual),
                    esc(channel)
                );
            }
        };
        by(
            "ritualist_due",
            "Occurrences decided (ledger rows, whatever their status), per ritual and channel.",
            &|_| true,
        );
        by(
            "ritualist_sent",
            "Messages sent, per ritual and channel.",
            &|c| c.status == Status::Sent,
        );
        by(
            "ritualist_failed",
            "Messages failed for good, per ritual and channel.",
            &|c| c.status == Status::Failed,
        );
        let _ = writeln!(
            out,
            "# HELP ritualist_suppressed Occurrences not sent, per ritual, channel and reason.\n# TYPE ritualist_suppressed gauge"
        );
        for c in ledger.iter().filter(|c| c.status == Status::Suppressed) {
            let _ = writeln!(
                out,
                "ritualist_suppressed{{ritual=\"{}\",channel=\"{}\",reason=\"{}\"}} {}",
                esc(&c.ritual),
                esc(&c.channel),
                esc(&c.reason),
                c.n
            );
        }
        let _ = writeln!(
            out,
            "# HELP ritualist_queue_depth Messages not in a final state, per status.\n# TYPE ritualist_queue_depth gauge"
        );
        for status in [Status::Pending, Status::Claimed, Status::RetryWait] {
            let n: i64 = ledger
                .iter()
                .filter(|c| c.status == status)
                .map(|c| c.n)
                .sum();
            let _ = writeln!(out, "ritualist_queue_depth{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP ritualist_send_duration_seconds Time the transport took per send attempt (this process).\n# TYPE ritualist_send_duration_seconds histogram"
        );
        let sends = self.sends.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for ((channel, outcome), h) in &sends {
            let labels = format!(
                "channel=\"{}\",outcome=\"{outcome}\"",
                esc(channel.as_str())
            );
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(h.counts.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "ritualist_send_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "ritualist_send_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ritualist_send_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ritualist_send_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
            self.started_at
        );
        out
    }
}

/// A label value escaped as the text format wants (`\`, `"`, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(ritual: &str, channel: &str, status: Status, reason: &str, n: i64) -> LedgerCount {
        LedgerCount {
            ritual: ritual.into(),
            channel: channel.into(),
            status,
            reason: reason.into(),
            n,
        }
    }

    #[test]
    fn exposition_sums_the_ledger_and_accumulates_buckets() {
        let m = Metrics::new(1_700_000_000);
        m.observe_send(Channel::Email, 0.02, true);
        m.observe_send(Channel::Email, 0.3, true);
        m.observe_send(Channel::Email, 100.0, true);
        m.observe_send(Channel::Sms, 0.001, false);
        let text = m.render(&[
            count("birthday", "email", Status::Sent, "", 3),
            count("birthday", "email", Status::Suppressed, "opted_out", 2),
            count("birthday", "email", Status::Suppressed, "holdout", 1),
            count("birthday", "sms", Status::Pending, "", 4),
            count("we\"ird", "email", Status::Failed, "", 1),
        ]);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        has("ritualist_due{ritual=\"birthday\",channel=\"email\"} 6");
        has("ritualist_due{ritual=\"birthday\",channel=\"sms\"} 4");
        has("ritualist_sent{ritual=\"birthday\",channel=\"email\"} 3");
        has("ritualist_failed{ritual=\"we\\\"ird\",channel=\"email\"} 1");
        has("ritualist_suppressed{ritual=\"birthday\",channel=\"email\",reason=\"opted_out\"} 2");
        has("ritualist_queue_depth{status=\"pending\"} 4");
        has("ritualist_queue_depth{status=\"retry_wait\"} 0");
        has(
            "ritualist_send_duration_seconds_bucket{channel=\"email\",outcome=\"ok\",le=\"0.01\"} 0",
        );
        has(
            "ritualist_send_duration_seconds_bucket{channel=\"email\",outcome=\"ok\",le=\"0.05\"} 1",
        );
        has(
            "ritualist_send_duration_seconds_bucket{channel=\"email\",outcome=\"ok\",le=\"0.5\"} 2",
        );
        has("ritualist_send_duration_seconds_bucket{channel=\"email\",outcome=\"ok\",le=\"60\"} 2");
        has(
            "ritualist_send_duration_seconds_bucket{channel=\"email\",outcome=\"ok\",le=\"+Inf\"} 3",
        );
        has("ritualist_send_duration_seconds_count{channel=\"email\",outcome=\"ok\"} 3");
        has("ritualist_send_duration_seconds_count{channel=\"sms\",outcome=\"error\"} 1");
        has("process_start_time_seconds 1700000000");
        // Every sample line is `name{labels} value` or `name value`, with a number.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
