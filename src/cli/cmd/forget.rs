//! `ritualist forget CUSTOMER`: erase a customer's personal data; what was erased on stdout
//! (or as JSON); exit 1 when no customer matches.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{App, AppError, ForgetReport};
use crate::cli::Format;
use crate::cli::output::{out, out_json};
use crate::config::Config;

pub async fn run(config: &Path, customer: &str, format: Format) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let app = App::open(cfg).await?;
    let Some(r) = app
        .forget(customer, crate::clock::now().as_second())
        .await?
    else {
        eprintln!("no customer `{customer}` (external id, email or phone): nothing erased");
        return Ok(ExitCode::from(1));
    };
    match format {
        Format::Json => out_json(&r)?,
        Format::Table => out(&summary(&r)),
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(r: &ForgetReport) -> String {
    let e = &r.erasure;
    let fields = if e.fields.is_empty() {
        "nothing left to erase in the customer row".to_string()
    } else {
        format!("erased {}", e.fields.join(", "))
    };
    format!(
        "forgot customer #{} (`{}`): {fields}; {} custom date(s) removed; {} message(s) scrubbed of recipient, subject and body; {} unsent message(s) cancelled; opted out of everything; {} new hashed stub(s) keep a re-import opted out",
        e.customer_id,
        r.customer,
        e.custom_dates,
        e.messages_scrubbed,
        e.messages_cancelled,
        e.stubs
    )
}
