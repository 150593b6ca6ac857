//! `ritualist migrate`: create or update the database schema, under the daemon's lock on
//! SQLite (exit 3 while `run` holds it).

use std::path::Path;
use std::process::ExitCode;

use crate::app::AppError;
use crate::cli::output::out;
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: &Path) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    // The daemon's lock before the schema: `migrate` never changes the schema under a
    // running daemon, and of two racing on a new file one migrates, the other is told.
    let _lock = match super::lock_or_refuse(&cfg.database_url)? {
        Ok(lock) => lock,
        Err(refused) => return Ok(refused),
    };
    Store::open(&cfg.database_url).await?;
    out(&format!(
        "database is up to date ({})",
        redact_url(&cfg.database_url)
    ));
    Ok(ExitCode::SUCCESS)
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_password_never_reaches_the_output() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("postgres://app@db/shop"),
            "postgres://app@db/shop"
        );
        assert_eq!(
            redact_url("sqlite://data/ritualist.db"),
            "sqlite://data/ritualist.db"
        );
    }
}
