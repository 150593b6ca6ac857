//! The only place that reads the real clock, and the clock as a service.
//!
//! Decision logic takes `now` as an argument. Services that need the time (the HTTP handlers,
//! the dispatcher's rate limiter and circuit breaker) hold a [`SharedClock`]: the daemon and the
//! CLI give them [`SystemClock`], tests a [`ManualClock`] they move by hand, so no test waits on
//! real time. Waits themselves use tokio's clock (`tokio::time::sleep`), which
//! `tokio::time::pause` controls. Clippy's `disallowed_methods` (clippy.toml) keeps
//! `Timestamp::now` out of every other module.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

/// The current instant from the system clock. Only `daemon/`, `cli/` and [`SystemClock`] call
/// this; everything else asks its [`Clock`] or takes `now` as an argument.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// Where a service reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// A clock shared by the services of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }
}

/// A clock that moves only when told to (tests, `preview` at a chosen instant).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Mutex::new(at))
    }
    /// A manual clock at `at`, shared; keep the `Arc<ManualClock>` to move it.
    pub fn shared(at: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock::new(at))
    }
    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
    /// Moves the clock forward by `d` (saturating at the largest instant).
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
        *t = t.checked_add(span).unwrap_or(Timestamp::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let t0: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let c = ManualClock::shared(t0);
        let shared: SharedClock = c.clone();
        assert_eq!(shared.now(), t0);
        c.advance(Duration::from_millis(1_500));
        assert_eq!(shared.now().as_millisecond(), t0.as_millisecond() + 1_500);
        c.set(t0);
        assert_eq!(shared.now(), t0);
    }
}
