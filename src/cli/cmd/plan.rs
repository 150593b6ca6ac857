//! `ritualist plan`: every decision the daemon would take over some days, written as it is
//! made (fixed-width table rows, one JSON object per line, or CSV rows), a progress bar on a
//! terminal. Nothing is held but the chunk of decisions being written.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, App, AppError, PlannedDecision};
use crate::cli::output::{self, csv_field, to_json_line};
use crate::cli::{PlanArgs, ReportFormat as Format};
use crate::config::Config;

pub async fn run(config: &Path, args: PlanArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let app = App::open(cfg).await?;
    let date = args
        .date
        .unwrap_or_else(|| crate::clock::now().to_zoned(jiff::tz::TimeZone::UTC).date());
    let req = app::PlanRequest {
        date,
        days: args.days,
        ritual: args.ritual,
        customer: args.customer,
    };
    let format = args.format;
    // Each chunk's decisions are written as soon as they are made (the bar, on a
    // terminal, steps aside while they are).
    let bar = output::plan_bar();
    let mut stdout = std::io::BufWriter::new(std::io::stdout());
    print_header(&mut stdout, format);
    // The first decision that cannot be written as JSON ends the output; its error is the
    // command's once planning is over.
    let mut failed: Option<AppError> = None;
    let mut sink = |chunk: &[PlannedDecision]| {
        if failed.is_none() {
            let written = match &bar {
                Some(b) => b.suspend(|| print_chunk(&mut stdout, chunk, format)),
                None => print_chunk(&mut stdout, chunk, format),
            };
            failed = written.err();
        }
    };
    let summary = app
        .plan_each(
            &req,
            |done, total| output::advance(bar.as_ref(), done, total),
            &mut sink,
        )
        .await?;
    output::finish(bar);
    if let Some(e) = failed {
        return Err(e);
    }
    if let Format::Table = format {
        let _ = writeln!(
            stdout,
            "{} decision(s): {} send(s), {} suppression(s)",
            summary.decisions,
            summary.sends,
            summary.decisions - summary.sends
        );
    }
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}

/// The columns of the CSV output, in order.
pub const CSV_HEADER: &str =
    "ritual,customer,customer_id,decision,channel,send_at,send_at_utc,occurrence,category,reason";

/// The table's header (its columns have fixed widths: rows are written before the next are
/// known) or the CSV's; JSON lines have none.
fn print_header(stdout: &mut impl Write, format: Format) {
    let _ = match format {
        Format::Table => writeln!(
            stdout,
            "{:<18} {:<16} {:<9} {:<6} {:<26} {:<21} {:<28} reason",
            "ritual",
            "customer",
            "decision",
            "chan",
            "send at (local)",
            "send at (UTC)",
            "occurrence"
        ),
        Format::Csv => writeln!(stdout, "{CSV_HEADER}"),
        Format::Json => Ok(()),
    };
}

/// One decision as a CSV row (empty fields for what does not apply).
fn csv_row(p: &PlannedDecision) -> String {
    let opt = |v: &Option<String>| v.as_deref().map(csv_field).unwrap_or_default();
    [
        csv_field(&p.ritual),
        csv_field(&p.customer),
        p.customer_id.to_string(),
        p.decision.to_string(),
        opt(&p.channel),
        opt(&p.send_at),
        opt(&p.send_at_utc),
        csv_field(&p.occurrence),
        csv_field(&p.category),
        opt(&p.reason),
    ]
    .join(",")
}

/// Writes one chunk of planned decisions (a JSON object per line, CSV or table rows).
fn print_chunk(
    stdout: &mut impl Write,
    planned: &[PlannedDecision],
    format: Format,
) -> Result<(), AppError> {
    for p in planned {
        let _ = match format {
            Format::Json => writeln!(stdout, "{}", to_json_line(p)?),
            Format::Csv => writeln!(stdout, "{}", csv_row(p)),
            Format::Table => writeln!(
                stdout,
                "{:<18} {:<16} {:<9} {:<6} {:<26} {:<21} {:<28} {}",
                p.ritual,
                p.customer,
                p.decision,
                p.channel.as_deref().unwrap_or("-"),
                p.send_at.as_deref().unwrap_or("-"),
                p.send_at_utc.as_deref().unwrap_or("-"),
                p.occurrence,
                p.reason.as_deref().unwrap_or("")
            ),
        };
    }
    let _ = stdout.flush();
    Ok(())
}
