//! One module per command: each a function from its parsed arguments (and the config file's
//! path) to an exit code, called by [`super::dispatch`]. Shared here: taking the daemon lock.

pub mod bounce;
pub mod bounces;
pub mod calendar;
pub mod check;
pub mod doctor;
pub mod forget;
pub mod history;
pub mod import;
pub mod migrate;
pub mod optout;
pub mod outbox;
pub mod plan;
pub mod preview;
pub mod report;
pub mod run;
pub mod status;
pub mod surveys;

use std::process::ExitCode;

use crate::app::AppError;
use crate::daemon::{DaemonLock, LockError};

/// Takes the daemon's lock on a SQLite database (`None` for other databases), or the exit
/// code [`super::ALREADY_RUNNING`] after saying who holds it.
fn lock_or_refuse(database_url: &str) -> Result<Result<Option<DaemonLock>, ExitCode>, AppError> {
    match crate::daemon::lock_database(database_url) {
        Ok(lock) => Ok(Ok(lock)),
        Err(e @ LockError::Held { .. }) => {
            eprintln!("error: {e}");
            Ok(Err(ExitCode::from(super::ALREADY_RUNNING)))
        }
        Err(e) => Err(AppError::Other(e.to_string())),
    }
}

/// Exit 1 when `findings`, else 0.
fn findings(findings: bool) -> ExitCode {
    if findings {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A `RITUAL` argument names a ritual of the config, or one removed from it whose history is
/// still in the ledger; otherwise the did-you-mean error.
pub(crate) async fn known_ritual(
    cfg: &crate::config::Config,
    store: &crate::store::Store,
    ritual: &str,
) -> Result<(), crate::app::AppError> {
    let known = crate::app::Known::load(cfg).unwrap_or_default();
    if known.ritual(ritual).is_err() && !store.ledger_has_ritual(ritual).await? {
        known.ritual(ritual)?;
    }
    Ok(())
}
