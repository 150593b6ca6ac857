//! `ritualist plan`: every decision the daemon would take over some days, written as it is
//! made (table rows or one JSON object per line), a progress bar on a terminal.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, App, AppError, PlannedDecision};
use crate::cli::output::{self, to_json_line};
use crate::cli::{Format, PlanArgs};
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
    if let Format::Table = format {
        print_header(&mut stdout);
    }
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

fn print_header(stdout: &mut impl Write) {
    let _ = writeln!(
        stdout,
        "{:<18} {:<16} {:<9} {:<6} {:<26} {:<21} {:<28} reason",
        "ritual", "customer", "decision", "chan", "send at (local)", "send at (UTC)", "occurrence"
    );
}

/// Writes one chunk of planned decisions (a JSON object per line, or table rows).
fn print_chunk(
    stdout: &mut impl Write,
    planned: &[PlannedDecision],
    format: Format,
) -> Result<(), AppError> {
    for p in planned {
        let _ = match format {
            Format::Json => writeln!(stdout, "{}", to_json_line(p)?),
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
