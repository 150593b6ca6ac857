//! The circuit breaker of one SMTP relay. Pure: every method takes `now`, which the pool reads
//! from its clock (a test's [`ManualClock`](crate::clock::ManualClock) opens and closes it
//! without waiting).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// The circuit breaker of one relay: after `after` failures of the relay itself in a row it
/// opens for `first` (doubling each time the probe after it fails, at most 10 minutes); while
/// open, messages are not tried at all. When the time is up the next messages probe the
/// relay: a success closes it, a failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    after: u32,
    first: Duration,
    failures: u32,
    open_for: Duration,
    open_until: Option<Timestamp>,
}

const BREAKER_MAX: Duration = Duration::from_secs(600);

impl Breaker {
    pub fn new(after: u32, first: Duration) -> Breaker {
        Breaker {
            after: after.max(1),
            first,
            failures: 0,
            open_for: Duration::ZERO,
            open_until: None,
        }
    }

    /// How long it stays open from `now` (`None`: closed or probing). Never longer than it
    /// opened for, should the clock step back.
    pub fn open(&self, now: Timestamp) -> Option<Duration> {
        self.open_until
            .and_then(|t| Duration::try_from(t.duration_since(now)).ok())
            .filter(|d| !d.is_zero())
            .map(|d| d.min(self.open_for))
    }

    /// Whether it has opened since the last success (a success now closes it).
    pub fn has_opened(&self) -> bool {
        !self.open_for.is_zero()
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.open_for = Duration::ZERO;
        self.open_until = None;
    }

    /// Counts a failure of the relay; `Some(d)` when the breaker opens now, for `d`. A failure
    /// while it is open belongs to a message that was already in flight when it opened: it
    /// changes nothing.
    pub fn failure(&mut self, now: Timestamp) -> Option<Duration> {
        if self.open(now).is_some() {
            return None;
        }
        self.failures += 1;
        if self.failures < self.after {
            return None;
        }
        self.open_for = if self.open_for.is_zero() {
            self.first
        } else {
            (self.open_for * 2).min(BREAKER_MAX)
        };
        let span = SignedDuration::try_from(self.open_for).unwrap_or(SignedDuration::MAX);
        self.open_until = Some(now.checked_add(span).unwrap_or(Timestamp::MAX));
        // The first failure after it reopens (the probe) opens it again.
        self.failures = self.after - 1;
        Some(self.open_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_doubles_and_closes_on_success() {
        let t0: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let s = Duration::from_secs;
        let mut b = Breaker::new(3, s(30));
        assert_eq!(b.failure(t0), None);
        b.success();
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.open(t0), None, "two in a row: still closed");
        assert_eq!(b.failure(t0), Some(s(30)));
        // A message that was in flight when it opened fails too: no change.
        assert_eq!(b.failure(t0 + s(1)), None);
        assert_eq!(b.open(t0 + s(10)), Some(s(20)));
        assert_eq!(
            b.open(t0 + s(30)),
            None,
            "time is up: the next message probes"
        );
        // The probe fails: open again at once, twice as long.
        assert_eq!(b.failure(t0 + s(30)), Some(s(60)));
        assert_eq!(b.failure(t0 + s(90)), Some(s(120)));
        // Capped at ten minutes.
        let mut at = t0 + s(210);
        for _ in 0..10 {
            at += b.failure(at).unwrap();
        }
        assert_eq!(b.open(at - BREAKER_MAX), Some(BREAKER_MAX));
        // A success closes it and forgets the doubling.
        b.success();
        assert_eq!(b.open(at - BREAKER_MAX), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), Some(s(30)));
    }
}
