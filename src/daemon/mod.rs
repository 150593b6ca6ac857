//! The daemon: a thin loop around the two step functions (`App::tick`, `App::drain`). It
//! only decides when to run them and when to stop: SIGINT/SIGTERM finish the current step
//! and exit; nothing is left half-recorded because every step commits row by row.

use std::time::Duration;

use crate::app::{App, AppError};

/// Runs ticks and dispatch every `tick_secs` until a shutdown signal arrives.
pub async fn run(app: &App) -> Result<(), AppError> {
    let period = Duration::from_secs(app.cfg.delivery.tick_secs as u64);
    let mut shutdown = Box::pin(shutdown_signal());
    tracing::info!(
        rituals = app.defs.rituals.len(),
        "daemon started; ticking every {} s",
        period.as_secs()
    );
    loop {
        let now = crate::clock::now();
        let tick = app.tick(now).await?;
        let sent = app.drain(now).await?;
        tracing::info!(
            queued = tick.queued,
            suppressed = tick.suppressed,
            sent = sent.sent,
            retrying = sent.retrying,
            failed = sent.failed,
            "tick done"
        );
        // Sleep to the next period boundary, or stop.
        let secs = period.as_secs().max(1);
        let into = (crate::clock::now().as_second().rem_euclid(secs as i64)) as u64;
        let wait = Duration::from_secs(secs - into);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => {
                tracing::info!("shutdown signal received; stopping");
                app.channels.close().await;
                return Ok(());
            }
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
