//! Crash points for the crash-matrix tests (docs/delivery-guarantee.md §5): `RITUALIST_FAILPOINT=NAME@N`
//! makes the process abort — no destructors, no flush, no goodbye to the SMTP server, the
//! same as `kill -9` for everything the process wrote so far — the N-th time (1-based) it
//! reaches the point called NAME. Only debug builds have them; in a release build [`hit`]
//! is an empty function and the variable is ignored.
//!
//! Points, in the order a message meets them:
//! `after_claim` (the claim statement done: the batch before it may still be sending, as the
//! next batch is claimed beside the sends of the one before it), `before_sends` (the batch
//! about to be sent, nothing in flight), `after_mail`, `after_rcpt`, `after_data` (354 received, `sending` not yet
//! committed), `body_sent_before_dot` (the `sending` commit queued and not yet answered, the
//! body written while it runs, the final dot held back), `after_sending` (committed, the dot
//! not yet written), `mid_body` (committed, half the body written: with this point armed the
//! commit comes before the body), `after_dot` (the final dot written, its reply not read),
//! `after_accept` (the relay's 250 read, `sent` not yet committed). With `delivery.handover_batch` > 1,
//! `after_handover_batch` is hit once a chunk of rows is committed `sending`, before any of them
//! is sent.
//!
//! One point panics instead of aborting ([`panic_point`]): `compose`, reached once per message
//! composed (rendered and built), to prove that a bug while composing one message fails that
//! message alone (the panic is caught at the per-message boundary).

/// Whether the armed failpoint is `name` and this is its N-th hit (then N).
#[cfg(debug_assertions)]
fn fires(name: &str) -> Option<u64> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let armed = ARMED.get_or_init(|| {
        let v = std::env::var("RITUALIST_FAILPOINT").ok()?;
        let (n, at) = v.split_once('@').unwrap_or((v.as_str(), "1"));
        Some((n.to_string(), at.parse().ok()?))
    });
    match armed {
        Some((n, at)) if n == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *at => Some(*at),
        _ => None,
    }
}

/// Aborts the process if the failpoint `name` is armed and this is its N-th hit.
#[cfg(debug_assertions)]
pub fn hit(name: &str) {
    if let Some(at) = fires(name) {
        eprintln!("failpoint {name}@{at}: aborting");
        std::process::abort();
    }
}

/// Panics (an ordinary unwinding panic, as a bug would) if the failpoint `name` is armed and
/// this is its N-th hit.
#[cfg(debug_assertions)]
pub fn panic_point(name: &str) {
    if let Some(at) = fires(name) {
        panic!("failpoint {name}@{at}: panicking");
    }
}

/// Release builds have no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str) {}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn panic_point(_name: &str) {}

/// Whether `name` is the armed failpoint (to arm a stream wrapper only when needed).
#[cfg(debug_assertions)]
pub fn armed(name: &str) -> bool {
    std::env::var("RITUALIST_FAILPOINT")
        .ok()
        .is_some_and(|v| v.split('@').next() == Some(name))
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn armed(_name: &str) -> bool {
    false
}
