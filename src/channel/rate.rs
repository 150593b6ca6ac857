//! Provider rate limits: messages per second (evenly paced) and per day (UTC days).
//!
//! [`Pacer`] is pure — every method takes the current instant — so its promise is tested
//! without a clock: with work always waiting, the messages it admits in any window of `w`
//! seconds number `rate × w` plus at most one. [`RateLimiter`] wraps it for the transports:
//! it sleeps until the message's slot, or refuses with the time until the next UTC day when the
//! daily quota is spent: [`SendFailure::Untried`], nothing was handed over, so the message waits
//! for the next day without its attempt being counted (a campaign bigger than a week of quota
//! must not run out of `max_attempts` while it waits its turn).
//!
//! Time: the UTC day comes from the [`SharedClock`] the limiter is given (tests move a
//! [`ManualClock`](crate::clock::ManualClock) over midnight); the pacing is a wait, on tokio's
//! monotonic clock (`tokio::time::Instant`), so a step of the wall clock never stretches or
//! skips a slot.
//!
//! Several daemons on one PostgreSQL database share a provider's limits: [`RateLimiter::share`]
//! hands the counting and the slots to a [`RateBook`] (the app's adapter to the store's
//! `rate_limits` table), so the provider sees `per_second` and `per_day` in total, not per
//! daemon. Without one (SQLite: one daemon per file) they live in the process.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::SendFailure;
use crate::clock::SharedClock;
use crate::config::RateLimit;

/// Limits kept where every daemon sees them: [`RateBook::take`] counts one message against
/// the day's quota and reserves its slot, and answers how long to wait for that slot, or
/// `None` when the day's quota is spent (nothing counted).
pub trait RateBook: Send + Sync + std::fmt::Debug {
    fn take<'a>(&'a self, t: Take<'a>) -> Taken<'a>;
}

/// One message asking a [`RateBook`] for its turn.
#[derive(Debug)]
pub struct Take<'a> {
    /// `channel/provider`.
    pub key: &'a str,
    /// The UTC day (days since the epoch).
    pub day: i64,
    /// What this daemon read from the ledger as sent on `day`: where a day the book has not
    /// seen starts.
    pub seed: u64,
    pub per_day: Option<u64>,
    /// The distance between two slots (zero: no pacing).
    pub interval: Duration,
}

/// What [`RateBook::take`] answers: the wait for the slot, `None` when the quota is spent, or
/// why the book could not be read.
pub type Taken<'a> = BoxFuture<'a, Result<Option<Duration>, String>>;

/// How long an untried message waits when the shared limits cannot be read.
const BOOK_DOWN_RETRY: Duration = Duration::from_secs(30);

/// The UTC day (days since the epoch) of a Unix time in seconds.
fn utc_day(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

/// The distance between two slots at `per_second`.
fn interval(per_second: f64) -> Duration {
    Duration::from_secs_f64(1.0 / per_second.max(1e-6))
}

/// Slots `1 / per_second` apart; an idle pacer lets the next message go at once.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            interval: interval(per_second),
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

    /// What this quota counted on `day` (0 for any other day).
    pub fn used_on(&self, day: i64) -> u64 {
        if self.day == day { self.used } else { 0 }
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
    /// Limits shared with the other daemons, under this key; when set, `pacer` and `daily`
    /// only hold the ledger's seed.
    shared: OnceLock<(Arc<dyn RateBook>, String)>,
    /// Where the UTC day is read.
    clock: SharedClock,
}

impl RateLimiter {
    pub fn new(name: &str, limit: RateLimit, clock: SharedClock) -> RateLimiter {
        RateLimiter {
            name: name.to_string(),
            pacer: limit.per_second.map(|r| Mutex::new(Pacer::new(r))),
            daily: Mutex::new(DailyQuota::default()),
            warned: std::sync::atomic::AtomicI64::new(i64::MIN),
            shared: OnceLock::new(),
            limit,
            clock,
        }
    }

    /// Counts and paces through `book` from now on, as `channel/<provider>` (once; a second
    /// call changes nothing).
    pub fn share(&self, book: Arc<dyn RateBook>, channel: &str) {
        let _ = self.shared.set((book, format!("{channel}/{}", self.name)));
    }

    /// Waits for this message's slot; `Err` (untried, until the next UTC midnight) when
    /// today's quota is spent.
    pub async fn admit(&self) -> Result<(), SendFailure> {
        if let Some((book, key)) = self.shared.get() {
            return self.admit_shared(book.as_ref(), key).await;
        }
        if let Some(max) = self.limit.per_day {
            let now = self.clock.now().as_second();
            if !self.daily().take(utc_day(now), max) {
                return Err(self.spent(max, now));
            }
        }
        if let Some(pacer) = &self.pacer {
            let at = pacer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(Instant::now());
            tokio::time::sleep_until(at).await;
        }
        Ok(())
    }

    /// [`RateLimiter::admit`] through the shared book: one round trip counts the message
    /// and reserves its slot. A book that cannot be read defers the message, untried.
    async fn admit_shared(&self, book: &dyn RateBook, key: &str) -> Result<(), SendFailure> {
        let now = self.clock.now().as_second();
        let day = utc_day(now);
        let seed = self.daily().used_on(day);
        let gap = self.limit.per_second.map_or(Duration::ZERO, interval);
        let take = Take {
            key,
            day,
            seed,
            per_day: self.limit.per_day,
            interval: gap,
        };
        match book.take(take).await {
            Ok(Some(wait)) => {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Ok(None) => Err(self.spent(self.limit.per_day.unwrap_or(0), now)),
            Err(e) => Err(SendFailure::untried(
                format!("{}: cannot read the shared rate limit: {e}", self.name),
                BOOK_DOWN_RETRY,
            )),
        }
    }

    /// Today's quota of `max` is spent at `now`: the message waits, untried, for the next UTC
    /// day (logged once a day).
    fn spent(&self, max: u64, now: i64) -> SendFailure {
        let day = utc_day(now);
        let wait = (day + 1) * 86_400 - now;
        let message = format!(
            "{}: the daily limit of {max} messages is reached; the rest wait for the next UTC day",
            self.name
        );
        if self.warned.swap(day, std::sync::atomic::Ordering::SeqCst) != day {
            tracing::warn!(provider = %self.name, "{message}");
        }
        SendFailure::untried(message, Duration::from_secs(wait.max(1) as u64))
    }

    /// Counts messages an earlier run sent today.
    pub fn seed_today(&self, used: u64) {
        self.daily()
            .seed(utc_day(self.clock.now().as_second()), used);
    }

    /// The day's count (a poisoned lock still holds a usable count).
    fn daily(&self) -> std::sync::MutexGuard<'_, DailyQuota> {
        self.daily.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
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

    /// A book that answers what it is told and remembers what it was asked.
    #[derive(Debug)]
    struct Book {
        answer: Result<Option<Duration>, String>,
        asked: Mutex<Vec<Asked>>,
    }

    /// A [`Take`] as the book saw it.
    #[derive(Debug, Clone, PartialEq)]
    struct Asked {
        key: String,
        seed: u64,
        per_day: Option<u64>,
        interval: Duration,
    }

    impl RateBook for Book {
        fn take<'a>(&'a self, t: Take<'a>) -> Taken<'a> {
            let asked = Asked {
                key: t.key.to_string(),
                seed: t.seed,
                per_day: t.per_day,
                interval: t.interval,
            };
            self.asked.lock().unwrap().push(asked);
            Box::pin(async move { self.answer.clone() })
        }
    }

    /// 2027-07-07 23:59:00 UTC: a minute before a new UTC day.
    fn clock() -> Arc<ManualClock> {
        ManualClock::shared("2027-07-07T23:59:00Z".parse().unwrap())
    }

    fn shared(answer: Result<Option<Duration>, String>) -> (RateLimiter, Arc<Book>) {
        let limit = RateLimit {
            per_second: Some(4.0),
            per_day: Some(10),
        };
        let r = RateLimiter::new("twilio", limit, clock());
        r.seed_today(7);
        let book = Arc::new(Book {
            answer,
            asked: Mutex::new(Vec::new()),
        });
        r.share(book.clone(), "sms");
        (r, book)
    }

    #[tokio::test]
    async fn a_shared_limiter_asks_the_book_with_the_ledgers_seed_and_waits_its_slot() {
        let (r, book) = shared(Ok(Some(Duration::from_millis(30))));
        let t0 = Instant::now();
        r.admit().await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(30),
            "waited for the slot"
        );
        r.admit().await.unwrap();
        let asked = book.asked.lock().unwrap().clone();
        let want = Asked {
            key: "sms/twilio".into(),
            seed: 7,
            per_day: Some(10),
            interval: Duration::from_millis(250),
        };
        assert_eq!(
            asked,
            vec![want.clone(), want],
            "the seed is not counted in memory"
        );
    }

    #[tokio::test]
    async fn a_spent_shared_quota_waits_for_the_next_utc_day_and_a_book_down_defers() {
        let (r, _) = shared(Ok(None));
        let e = r.admit().await.unwrap_err();
        assert!(
            matches!(e, SendFailure::Untried { .. }) && e.message().contains("daily limit of 10"),
            "{e:?}"
        );
        assert_eq!(
            e.retry_after(),
            Some(Duration::from_secs(60)),
            "a minute to midnight"
        );
        let (r, _) = shared(Err("connection refused".into()));
        let e = r.admit().await.unwrap_err();
        assert!(
            matches!(e, SendFailure::Untried { .. }) && e.message().contains("connection refused"),
            "{e:?}"
        );
        assert_eq!(e.retry_after(), Some(BOOK_DOWN_RETRY));
    }

    /// The limiter's day is its clock's: spent at 23:59, untried until midnight (the attempt
    /// not counted), renewed once the clock passes it; a seed counts on the clock's day only.
    #[tokio::test]
    async fn a_spent_daily_limit_waits_for_midnight_on_the_limiters_clock() {
        let c = clock();
        let limit = RateLimit {
            per_second: None,
            per_day: Some(3),
        };
        let r = RateLimiter::new("smsro", limit, c.clone());
        r.seed_today(1);
        r.admit().await.unwrap();
        r.admit().await.unwrap();
        let e = r.admit().await.unwrap_err();
        assert!(matches!(e, SendFailure::Untried { .. }), "{e:?}");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        c.advance(Duration::from_secs(59));
        let e = r.admit().await.unwrap_err();
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)), "{e:?}");
        c.advance(Duration::from_secs(1));
        for _ in 0..3 {
            r.admit().await.unwrap();
        }
        assert!(r.admit().await.is_err(), "three on the new day");
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
