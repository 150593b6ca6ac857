//! Provider rate limits: messages per second (evenly paced) and per day (UTC days).
//!
//! [`Pacer`] is pure — every method takes the current instant — so its promise is tested
//! without a clock: with work always waiting, the messages it admits in any window of `w`
//! seconds number `rate × w` plus at most one. [`RateLimiter`] wraps it for the transports:
//! it sleeps until the message's slot, or refuses with the time until the next UTC day when the
//! daily quota is spent: [`SendError::untried`], nothing was handed over, so the message waits
//! for the next day without its attempt being counted (a campaign bigger than a week of quota
//! must not run out of `max_attempts` while it waits its turn).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::SendError;
use crate::config::RateLimit;

/// Slots `1 / per_second` apart; an idle pacer lets the next message go at once.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second.max(1e-6)),
            next: None,
        }
    }

    /// Reserves the next slot at or after `now`; returns when it is.
    pub fn reserve(&mut self, now: Instant) -> Instant {
        let at = match self.next {
            Some(n) if n > now => n,
            _ => now,
        };
        self.next = Some(at + self.interval);
        at
    }
}

/// Messages counted per UTC day (`day` = days since the epoch).
#[derive(Debug, Clone, Default)]
pub struct DailyQuota {
    day: i64,
    used: u64,
}

impl DailyQuota {
    /// Counts one message on `day` if the quota `max` allows it.
    pub fn take(&mut self, day: i64, max: u64) -> bool {
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
        if self.used >= max {
            return false;
        }
        self.used += 1;
        true
    }

    /// Messages already sent today by an earlier run (read from the ledger at start).
    pub fn seed(&mut self, day: i64, used: u64) {
        self.day = day;
        self.used = self.used.max(used);
    }
}

/// The limits of one provider.
#[derive(Debug)]
pub struct RateLimiter {
    name: String,
    limit: RateLimit,
    /// `None` without `per_second`.
    pacer: Option<Mutex<Pacer>>,
    daily: Mutex<DailyQuota>,
    /// The last UTC day whose spent quota was logged (once a day, not once per message).
    warned: std::sync::atomic::AtomicI64,
}

impl RateLimiter {
    pub fn new(name: &str, limit: RateLimit) -> RateLimiter {
        RateLimiter {
            name: name.to_string(),
            pacer: limit.per_second.map(|r| Mutex::new(Pacer::new(r))),
            daily: Mutex::new(DailyQuota::default()),
            warned: std::sync::atomic::AtomicI64::new(i64::MIN),
            limit,
        }
    }

    /// Waits for this message's slot; `Err` (untried, until the next UTC midnight) when
    /// today's quota is spent.
    pub async fn admit(&self) -> Result<(), SendError> {
        if let Some(max) = self.limit.per_day {
            let now = crate::clock::now().as_second();
            let day = now.div_euclid(86_400);
            let ok = self
                .daily
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(day, max);
            if !ok {
                let wait = (day + 1) * 86_400 - now;
                let message = format!(
                    "{}: the daily limit of {max} messages is reached; the rest wait for the next UTC day",
                    self.name
                );
                if self.warned.swap(day, std::sync::atomic::Ordering::SeqCst) != day {
                    tracing::warn!(provider = %self.name, "{message}");
                }
                return Err(SendError::untried(
                    message,
                    Duration::from_secs(wait.max(1) as u64),
                ));
            }
        }
        if let Some(pacer) = &self.pacer {
            let at = pacer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(Instant::now());
            tokio::time::sleep_until(at.into()).await;
        }
        Ok(())
    }

    /// Counts messages an earlier run sent today.
    pub fn seed_today(&self, used: u64) {
        let day = crate::clock::now().as_second().div_euclid(86_400);
        self.daily
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seed(day, used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Admission instants of `n` messages that are all waiting from `start` on, plus some
    /// that arrive late (gaps), at `rate` per second.
    fn admissions(rate: f64, arrivals: &[Duration]) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut p = Pacer::new(rate);
        arrivals.iter().map(|a| p.reserve(t0 + *a) - t0).collect()
    }

    #[test]
    fn a_backlog_is_paced_evenly_and_a_minute_holds_the_rate_within_5_percent() {
        for rate in [0.5, 1.0, 7.0, 20.0, 100.0, 333.0] {
            let n = (rate * 120.0) as usize;
            let at = admissions(rate, &vec![Duration::ZERO; n]);
            // Any 60 s window (starting at an admission) holds rate × 60, ±5 %.
            let want = rate * 60.0;
            for (i, start) in at.iter().enumerate() {
                let end = *start + Duration::from_secs(60);
                if end > *at.last().unwrap() {
                    break;
                }
                let count = at[i..].iter().take_while(|t| **t < end).count() as f64;
                assert!(
                    (count - want).abs() <= want * 0.05,
                    "rate {rate}: {count} in a minute, want {want}"
                );
            }
        }
    }

    proptest! {
        /// Whatever the arrival pattern, no window of w seconds admits more than rate × w + 1.
        #[test]
        fn never_more_than_the_rate_in_any_window(
            rate in 0.5f64..200.0,
            gaps in proptest::collection::vec(0u64..3_000, 1..400),
            w in 1u64..30,
        ) {
            let mut t = Duration::ZERO;
            let arrivals: Vec<Duration> = gaps
                .iter()
                .map(|g| {
                    t += Duration::from_millis(*g);
                    t
                })
                .collect();
            let at = admissions(rate, &arrivals);
            // Never before its arrival, never out of order.
            for (a, s) in arrivals.iter().zip(&at) {
                prop_assert!(s >= a);
            }
            prop_assert!(at.windows(2).all(|p| p[0] <= p[1]));
            let window = Duration::from_secs(w);
            for (i, start) in at.iter().enumerate() {
                let count = at[i..].iter().take_while(|t| **t < *start + window).count() as f64;
                prop_assert!(count <= rate * w as f64 + 1.0, "{count} in {w} s at {rate}/s");
            }
        }
    }

    #[test]
    fn the_daily_quota_resets_on_a_new_utc_day_and_counts_earlier_runs() {
        let mut q = DailyQuota::default();
        q.seed(100, 8);
        assert!(q.take(100, 10));
        assert!(q.take(100, 10));
        assert!(!q.take(100, 10), "8 sent earlier + 2 = the quota of 10");
        assert!(q.take(101, 10), "a new day");
    }
}
