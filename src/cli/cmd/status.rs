//! `ritualist status`: ledger rows per status.

use std::path::Path;
use std::process::ExitCode;

use crate::app::AppError;
use crate::cli::output::out;
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: &Path) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.database_url).await?;
    for (status, n) in store.status_counts().await? {
        out(&format!("{status:<12} {n}"));
    }
    Ok(ExitCode::SUCCESS)
}
