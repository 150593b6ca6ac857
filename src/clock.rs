//! The only place that reads the real clock. Everything else takes `now` as an argument
//! (clippy's `disallowed_methods` enforces it: see clippy.toml).

use jiff::Timestamp;

/// The current instant. Services call this once per tick and pass the value down.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Timestamp {
    Timestamp::now()
}
