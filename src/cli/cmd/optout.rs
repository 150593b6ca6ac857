//! `ritualist optout CUSTOMER [--scope S] [--undo]`: record an opt-out (or an opt-in) from
//! the command line.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, AppError};
use crate::cli::OptoutArgs;
use crate::cli::output::out;
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: &Path, args: OptoutArgs) -> Result<ExitCode, AppError> {
    let OptoutArgs {
        customer,
        scope,
        undo,
    } = args;
    let cfg = Config::load(config)?;
    app::Known::load(&cfg)?.scope(&scope)?;
    let store = Store::open(&cfg.database_url).await?;
    let row = store
        .find_customer(&customer)
        .await?
        .ok_or_else(|| AppError::Other(format!("no customer `{customer}`")))?;
    store
        .set_consent(
            row.id,
            &scope,
            !undo,
            "cli",
            crate::clock::now().as_second(),
        )
        .await?;
    out(&format!(
        "customer {}: {} {scope}",
        row.external_id,
        if undo {
            "opted back in to"
        } else {
            "opted out of"
        }
    ));
    Ok(ExitCode::SUCCESS)
}
