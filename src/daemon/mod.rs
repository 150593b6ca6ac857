//! The daemon: a thin loop around the step function `App::tick_and_drain` (a tick, and the
//! drain of what is due beside it). It only decides when to run it, when to reload, and when
//! to stop:
//! - every `tick_secs` (aligned to the period): tick, and drain what is due while it records;
//! - on SIGHUP, or when a file under the rituals or templates folders changes (polled every
//!   2 s): validate the whole new set; if anything is wrong, keep running the old set and log
//!   every problem with its file and line;
//! - on SIGINT/SIGTERM: claim nothing more; messages in flight get
//!   `delivery.shutdown_timeout_secs` to finish, then the ones not yet handed over go back to
//!   `pending` and the ones handed over are settled as in doubt; close connections, return.
//!
//! With an `http:` section it also runs the public HTTP server (unsubscribe, preferences,
//! inbound SMS, health) on `http.listen` for as long as the loop runs; a stop (or a failed
//! step) stops the server too, after the requests in flight are answered. With
//! `bounces.listen` it also takes bounce mail over LMTP or SMTP (`inbound`), stopped the same
//! way: idle sessions are told to come back later, a message being received is finished.
//!
//! Nothing is left half-recorded by a stop: every step commits row by row.
//!
//! On SQLite, `run` first takes [`lock_database`]: one dispatcher per database file. The lock
//! comes before the schema: it is taken before the database is opened and migrated.

mod lock;

use std::sync::Arc;
use std::time::Duration;

pub use lock::{DaemonLock, LockError, lock_database, lock_path, sqlite_file};

use crate::app::{App, AppError, definitions_fingerprint};

const WATCH_EVERY: Duration = Duration::from_secs(2);

/// How long a stopping daemon waits for the HTTP requests in flight.
const HTTP_DRAIN: Duration = Duration::from_secs(10);

/// Installs the SIGINT/SIGTERM handlers now; on a signal, asks `app` to stop (no more
/// claims; messages in flight get `delivery.shutdown_timeout_secs`).
pub fn stop_on_signal(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let shutdown = shutdown_listener();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            "shutdown signal received; claiming nothing more, waiting up to {} s for messages in flight",
            app.cfg.delivery.shutdown_timeout_secs
        );
        app.request_stop();
    })
}

/// Runs ticks and dispatch every `tick_secs` (and the HTTP server, when configured) until a
/// shutdown signal arrives.
pub async fn run(app: Arc<App>) -> Result<(), AppError> {
    // Listen for SIGINT/SIGTERM from the start: a signal during the first tick (or while the
    // HTTP server is already answering) must stop the daemon cleanly, not kill it.
    let signalled = stop_on_signal(app.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = start_http(&app, &stopped).await?;
    let inbound = start_inbound(&app, &stopped).await?;
    let result = ticks(&app).await;
    signalled.abort();
    let _ = stop.send(true);
    if let Some(server) = server {
        wait_stopped("http", server).await;
    }
    if let Some(inbound) = inbound {
        wait_stopped("inbound mail", inbound).await;
    }
    result
}

type Served = tokio::task::JoinHandle<std::io::Result<()>>;

/// A future that completes when `stopped` turns true.
fn on_stop(
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stopped = stopped.clone();
    async move {
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// Binds `http.listen` and serves the public server until `stopped`, when configured.
async fn start_http(
    app: &Arc<App>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Served>, AppError> {
    let Some(h) = &app.cfg.http else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(h.listen)
        .await
        .map_err(|e| AppError::Other(format!("cannot listen on {}: {e}", h.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Other(e.to_string()))?;
    tracing::info!(
        "http: listening on {addr} (public address {})",
        h.public_url
    );
    Ok(Some(tokio::spawn(crate::http::serve_public(
        app.clone(),
        listener,
        on_stop(stopped),
    ))))
}

/// Binds `bounces.listen` and takes bounce mail until `stopped`, when configured.
async fn start_inbound(
    app: &Arc<App>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Result<Option<Served>, AppError> {
    let Some(l) = app.cfg.bounces.listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(l.addr).await.map_err(|e| {
        AppError::Other(format!("cannot listen on {} (bounces.listen): {e}", l.addr))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| AppError::Other(e.to_string()))?;
    tracing::info!(
        "inbound mail: {} on {addr} for the return path's addresses",
        l.protocol.as_str()
    );
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "inbound mail: bounces.listen {addr} is not a loopback address; it takes only the return path's mail, but let only your MTA reach it"
        );
    }
    Ok(Some(tokio::spawn(crate::inbound::serve(
        app.clone(),
        listener,
        on_stop(stopped),
    ))))
}

/// Waits (at most [`HTTP_DRAIN`]) for a server to finish what it was answering.
async fn wait_stopped(name: &str, server: Served) {
    match tokio::time::timeout(HTTP_DRAIN, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("{name}: stopped"),
        Ok(Ok(Err(e))) => tracing::error!("{name} server: {e}"),
        Ok(Err(e)) => tracing::error!("{name} server task: {e}"),
        Err(_) => tracing::warn!(
            "{name}: still busy after {} s; stopping anyway",
            HTTP_DRAIN.as_secs()
        ),
    }
}

/// Says in the log, per channel, how many messages a crash may leave in doubt when
/// `delivery.handover_batch` is above 1 (`run` and `run --once` both send).
pub fn warn_of_a_wide_handover(cfg: &crate::config::Config) {
    for channel in [crate::domain::Channel::Email, crate::domain::Channel::Sms] {
        let batch = cfg.delivery.handover_batch.of(channel);
        if batch > 1 {
            tracing::warn!(
                channel = channel.as_str(),
                handover_batch = batch,
                "{channel}: messages are committed `sending` {batch} at a time: a crash may leave up to {} in doubt (delivery.handover_batch)",
                2 * batch
            );
        }
    }
}

/// The tick loop.
async fn ticks(app: &App) -> Result<(), AppError> {
    let period = Duration::from_secs(app.cfg.delivery.tick_secs as u64);
    let mut hangup = hangup_signal();
    let mut fingerprint = definitions_fingerprint(&app.cfg);
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        rituals = app.defs().rituals.len(),
        "daemon started; ticking every {} s",
        period.as_secs()
    );
    loop {
        if app.stop_requested() {
            app.channels.close().await;
            return Ok(());
        }
        let now = crate::clock::now();
        let (tick, sent) = app.tick_and_drain(now).await?;
        tracing::info!(
            queued = tick.queued,
            suppressed = tick.suppressed,
            sent = sent.sent,
            retrying = sent.retrying,
            failed = sent.failed,
            "tick done"
        );
        // The ALERT for a deliverability threshold crossed is logged here too, so it reaches
        // the log even when nothing polls `/healthz` (the check is reused for a minute).
        if let Err(e) = app.deliverability_alerts().await {
            tracing::warn!("the deliverability check failed: {e}");
        }
        // Wait for the next period boundary, reloading or stopping on the way.
        let secs = period.as_secs().max(1) as i64;
        let into = crate::clock::now().as_second().rem_euclid(secs);
        let next = tokio::time::Instant::now() + Duration::from_secs((secs - into) as u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                _ = app.stopped() => {
                    app.channels.close().await;
                    return Ok(());
                }
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading rituals and templates");
                    fingerprint = definitions_fingerprint(&app.cfg);
                    reload(app);
                }
                _ = watch.tick() => {
                    let now_fp = definitions_fingerprint(&app.cfg);
                    if now_fp != fingerprint {
                        fingerprint = now_fp;
                        tracing::info!("rituals or templates changed on disk: reloading");
                        reload(app);
                    }
                }
            }
        }
    }
}

fn reload(app: &App) {
    match app.reload() {
        Ok(n) => tracing::info!(
            rituals = n,
            "reloaded: the new rituals and templates are in force"
        ),
        Err(diags) => {
            for d in diags.0.iter() {
                tracing::error!("{d}");
            }
            tracing::error!(
                "the edited rituals/templates have {} error(s): still running the previous set; fix them and save again",
                diags.errors().count()
            );
        }
    }
}

/// A stream of SIGHUPs (never fires where there are none).
struct Hangup {
    #[cfg(unix)]
    inner: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.inner.as_mut() {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    }
}

fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Hangup {
            inner: signal(SignalKind::hangup()).ok(),
        }
    }
    #[cfg(not(unix))]
    {
        Hangup {}
    }
}

/// Installs the SIGINT and SIGTERM handlers now; the future completes on either.
fn shutdown_listener() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            async fn recv(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            if term.is_none() && int.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                _ = recv(term) => {}
                _ = recv(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        shutdown_signal()
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
