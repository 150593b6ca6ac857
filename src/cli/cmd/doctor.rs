//! `ritualist doctor`: open each configured connection once (database, SMTP relay, SMS
//! gateways), one `ok`/`FAIL` line each; exit 1 when one fails.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, AppError};
use crate::cli::output::out;
use crate::config::{Config, EmailTransport, SmsTransport};

pub async fn run(config: &Path) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let smtp = match &cfg.delivery.email {
        EmailTransport::Smtp(s) => Some(s),
        _ => None,
    };
    let sms = match &cfg.delivery.sms {
        SmsTransport::Providers(list) => list.as_slice(),
        _ => &[],
    };
    let probes = app::doctor(&cfg.database_url, smtp, sms).await;
    let mut bad = 0;
    for p in &probes {
        match &p.result {
            Ok(detail) => out(&format!("ok    {}: {detail}", p.what)),
            Err(e) => {
                bad += 1;
                out(&format!("FAIL  {}: {e}", p.what));
            }
        }
    }
    Ok(super::findings(bad > 0))
}
