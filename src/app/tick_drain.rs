//! A tick and the drain of what it queues, side by side: `run --once` and every daemon tick.
//!
//! The tick records its decisions chunk by chunk (each chunk's messages `pending` in the
//! ledger before anything of them is sent), and the drain claims each chunk's messages as soon
//! as they are committed instead of waiting for the whole tick: on a mass day (a million
//! customers due at once) the first message goes out within a second of the tick starting, not
//! after the last customer is decided, and deciding and sending share the machine's cores
//! (issue #26). The ledger already serialises what must be (a row is claimed once, under its
//! lease), so running both at once changes no guarantee; a tick that fails still ends the
//! drain, which then stops once nothing more is due.

use jiff::Timestamp;

use super::{App, AppError, DispatchReport, TickReport};

impl App {
    /// One tick at `now` and, beside it, the drain of everything due at `now` — what the tick
    /// queues included. Both run to their end; the tick's error comes first.
    pub async fn tick_and_drain(
        &self,
        now: Timestamp,
    ) -> Result<(TickReport, DispatchReport), AppError> {
        let (done, tick_done) = tokio::sync::watch::channel(false);
        let tick = async move {
            let r = self.tick(now).await;
            let _ = done.send(true);
            r
        };
        let (t, d) = tokio::join!(tick, self.drain_beside(now, tick_done));
        Ok((t?, d?))
    }
}
