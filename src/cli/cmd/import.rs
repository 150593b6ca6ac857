//! `ritualist import customers|orders FILE`: a CSV import; rejected rows and warnings on
//! stderr, the summary (or the report as JSON) on stdout; exit 1 on a rejected row or a
//! value left out.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, AppError, ImportKind, ImportProgress, ImportReport};
use crate::cli::output::{self, out, out_json};
use crate::cli::{Format, ImportArgs, ImportWhat};
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: &Path, args: ImportArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.database_url).await?;
    let kind = match args.kind {
        ImportWhat::Customers => ImportKind::Customers,
        ImportWhat::Orders => ImportKind::Orders,
    };
    let delimiter = args.delimiter.map(|c| c as u32 as u8);
    // A bar in bytes of the file, on stderr when it is a terminal (never in pipes and logs).
    let bar = output::import_bar(&format!("importing {}", args.file.display()));
    let mut on_progress = |p: ImportProgress| {
        output::advance(bar.as_ref(), p.bytes_read, p.bytes_total);
    };
    let r = app::import_file(
        &store,
        &cfg,
        kind,
        &args.file,
        args.encoding,
        delimiter,
        crate::clock::now().as_second(),
        &mut on_progress,
    )
    .await;
    output::finish(bar);
    let r = r?;
    match args.format {
        Format::Json => out_json(&r)?,
        Format::Table => print_table(&r),
    }
    Ok(super::findings(r.has_findings()))
}

fn print_table(r: &ImportReport) {
    for (line, reason) in &r.errors {
        eprintln!("{}:{line}: rejected: {reason}", r.file);
    }
    for w in &r.warnings {
        eprintln!("{}:{}: warning: {}", r.file, w.line, w.reason);
    }
    let left_out = r.warnings.iter().filter(|w| w.refused).count();
    out(&format!(
        "{}: {} row(s) read ({}), {} inserted, {} updated, {} rejected{}",
        r.file,
        r.rows,
        r.encoding,
        r.stats.inserted,
        r.stats.updated,
        r.errors.len(),
        if left_out > 0 {
            format!(", {left_out} value(s) left out")
        } else {
            String::new()
        }
    ));
}
