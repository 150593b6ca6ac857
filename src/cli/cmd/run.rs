//! `ritualist run`: the daemon, or with `--once` one tick and dispatch and a summary line
//! (exit 1 when a message failed). Either holds the SQLite database's lock (exit 3 when
//! another does).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::{App, AppError, DispatchReport, TickReport};
use crate::cli::output::out;
use crate::config::{Config, EmailTransport};

pub async fn run(
    config: &Path,
    once: bool,
    now: Option<jiff::Timestamp>,
) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    // One dispatcher per SQLite file (daemon or --once: both send); held until exit,
    // and taken before the database is opened: a refused run never touches it (not
    // even to migrate it).
    let _lock = match super::lock_or_refuse(&cfg.database_url)? {
        Ok(lock) => lock,
        Err(refused) => return Ok(refused),
    };
    let app = App::open(cfg).await?;
    crate::daemon::warn_of_a_wide_handover(&app.cfg);
    let app = Arc::new(app);
    if once {
        run_once(app, now).await
    } else {
        crate::daemon::run(app).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// One tick at `now` (default: the clock), and the drain of what is due beside it.
async fn run_once(app: Arc<App>, now: Option<jiff::Timestamp>) -> Result<ExitCode, AppError> {
    // SIGTERM/SIGINT: stop claiming, give messages in flight their grace.
    let stopper = crate::daemon::stop_on_signal(app.clone());
    let now = now.unwrap_or_else(crate::clock::now);
    let (t, d) = app.tick_and_drain(now).await?;
    stopper.abort();
    app.channels.close().await;
    out(&summary(now, &t, &d, app.stop_requested()));
    if let EmailTransport::Outbox = app.cfg.delivery.email {
        out(&format!(
            "outbox: {}",
            app.cfg.delivery.outbox_dir.display()
        ));
    }
    Ok(super::findings(d.failed > 0))
}

/// The line `run --once` prints.
fn summary(now: jiff::Timestamp, t: &TickReport, d: &DispatchReport, stopped: bool) -> String {
    format!(
        "tick at {now}: {} candidate(s), {} new message(s) queued, {} suppressed, {} already recorded; sent {}, retrying {}, failed {}, in doubt {}, waiting for a paused channel {}{}",
        t.candidates,
        t.queued,
        t.suppressed,
        t.already_recorded,
        d.sent,
        d.retrying,
        d.failed,
        d.in_doubt,
        d.paused,
        if stopped {
            format!(
                "; stopped by a signal ({} given back to the queue)",
                d.released
            )
        } else {
            String::new()
        }
    )
}
