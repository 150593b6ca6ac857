//! `ritualist bounce [--recipient ADDR]`: one bounce mail on stdin, recorded (for a Postfix
//! `pipe` transport or procmail; docs/operator.md "Bounces by pipe"). The exit code is the
//! MTA's contract (sysexits.h): 0 recorded — applied, duplicate, ignored or kept for review
//! alike —, 75 `EX_TEMPFAIL` when the config, the database or a write fails (the MTA keeps the
//! message and retries: nothing is lost while the database is down), 65 `EX_DATAERR` for an
//! empty or oversized message (retrying cannot help).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::app::{App, AppError};
use crate::cli::output::out;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct BounceArgs {
    /// The address the message was delivered to (Postfix: `${original_recipient}`), the VERP
    /// return path that names the delivery.
    #[arg(long)]
    pub recipient: Option<String>,
}

/// The largest bounce mail taken (a DSN returning a big message with attachments).
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// sysexits.h: the input data was incorrect.
pub const EX_DATAERR: u8 = 65;
/// sysexits.h: a temporary failure; the sender should retry.
pub const EX_TEMPFAIL: u8 = 75;

pub async fn run(config: &Path, args: BounceArgs) -> Result<ExitCode, AppError> {
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin()
        .lock()
        .take(MAX_BYTES + 1)
        .read_to_end(&mut raw)
    {
        eprintln!("error: cannot read the message on stdin: {e}");
        return Ok(ExitCode::from(EX_TEMPFAIL));
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        eprintln!("error: empty message on stdin");
        return Ok(ExitCode::from(EX_DATAERR));
    }
    if raw.len() as u64 > MAX_BYTES {
        eprintln!("error: the message is over {MAX_BYTES} bytes; not a bounce ritualist reads");
        return Ok(ExitCode::from(EX_DATAERR));
    }
    match record(config, &raw, args.recipient.as_deref()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e} (exit {EX_TEMPFAIL}: the mail system will retry)");
            Ok(ExitCode::from(EX_TEMPFAIL))
        }
    }
}

async fn record(config: &Path, raw: &[u8], recipient: Option<&str>) -> Result<(), AppError> {
    let app = App::open(Config::load(config)?).await?;
    for r in app.ingest_report(raw, recipient).await? {
        out(&format!(
            "{} delivery={} customer={}",
            serde_json::to_string(&r.recorded).unwrap_or_default(),
            r.delivery_id.map_or("-".into(), |d| d.to_string()),
            r.customer_id.map_or("-".into(), |c| c.to_string()),
        ));
    }
    Ok(())
}
