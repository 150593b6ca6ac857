//! `ritualist bounces [--since DATE] [--all] [--format table|json|csv]`: the reports kept for
//! review — bounce mails and webhook events that matched no message or could not be
//! classified — newest first; `--all` every report (applied, ignored, unmatched).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::app::AppError;
use crate::cli::ReportFormat;
use crate::cli::args::arg_date;
use crate::cli::output::{csv_field, out_json};
use crate::config::Config;
use crate::store::{FeedbackRecord, Store};

#[derive(Debug, Args)]
pub struct BouncesArgs {
    /// Only reports received on or after this local date (defaults.time_zone).
    #[arg(long, value_parser = arg_date)]
    pub since: Option<jiff::civil::Date>,
    /// Every report, not only those kept for review.
    #[arg(long)]
    pub all: bool,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 1000)]
    pub limit: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

pub async fn run(config: &Path, args: BouncesArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let zone = jiff::tz::TimeZone::get(&cfg.defaults.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let since = match args.since {
        Some(d) => d
            .to_zoned(zone.clone())
            .map_err(|e| AppError::Other(format!("--since: {e}")))?
            .timestamp()
            .as_second(),
        None => 0,
    };
    let store = Store::open(&cfg.database_url).await?;
    let state = (!args.all).then_some("unmatched");
    let rows = store.feedback_events(state, since, args.limit).await?;
    let mut o = std::io::stdout().lock();
    match args.format {
        ReportFormat::Json => out_json(&rows)?,
        ReportFormat::Csv => print_csv(&mut o, &rows),
        ReportFormat::Table => print_table(&mut o, &rows, &zone, args.all),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_csv(o: &mut impl Write, rows: &[FeedbackRecord]) {
    let _ = writeln!(
        o,
        "id,received_at,source,kind,state,delivery_id,customer_id,channel,recipient,detail"
    );
    for r in rows {
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{},{},{},{}",
            r.id,
            r.received_at,
            csv_field(&r.source),
            csv_field(&r.kind),
            csv_field(&r.state),
            r.delivery_id.map_or(String::new(), |d| d.to_string()),
            r.customer_id.map_or(String::new(), |c| c.to_string()),
            csv_field(r.channel.as_deref().unwrap_or("")),
            csv_field(r.recipient.as_deref().unwrap_or("")),
            csv_field(&r.detail),
        );
    }
}

fn print_table(o: &mut impl Write, rows: &[FeedbackRecord], zone: &jiff::tz::TimeZone, all: bool) {
    if rows.is_empty() {
        let _ = writeln!(
            o,
            "{}",
            if all {
                "no reports"
            } else {
                "no reports kept for review"
            }
        );
        return;
    }
    for r in rows {
        let when = jiff::Timestamp::from_second(r.received_at)
            .map(|t| {
                t.to_zoned(zone.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|_| r.received_at.to_string());
        let detail: String = r.detail.chars().take(100).collect();
        let _ = writeln!(
            o,
            "{when}  #{:<6} {:<9} {:<9} {:<11} {:<32} {detail}",
            r.id,
            r.source,
            r.state,
            r.kind,
            r.recipient.as_deref().unwrap_or("-"),
        );
    }
}
