//! `ritualist surveys [RITUAL]`: survey answers with their comments, newest first,
//! `--search` keeping those whose comment holds a text (any case), and NPS per ritual over
//! every answer of the period; a table, JSON or CSV (the answers only).

use crate::cli::args::arg_date;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::app::{self, AppError, SurveysRequest, SurveysView};
use crate::cli::ReportFormat;
use crate::cli::output::{csv_field, opt, out_json};
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct SurveysArgs {
    /// Only this ritual.
    pub ritual: Option<String>,
    /// Only answers whose comment holds this text (any case).
    #[arg(long)]
    pub search: Option<String>,
    /// Only answers first given on or after this local date (defaults.time_zone).
    #[arg(long, value_parser = arg_date)]
    pub since: Option<jiff::civil::Date>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

pub async fn run(config: &Path, args: SurveysArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let store = Store::open(&cfg.database_url).await?;
    if let Some(r) = &args.ritual {
        super::known_ritual(&cfg, &store, r).await?;
    }
    let req = SurveysRequest {
        ritual: args.ritual,
        search: args.search,
        since: args.since,
    };
    let view = app::surveys(&store, &cfg, &req).await?;
    let mut o = std::io::stdout().lock();
    match args.format {
        ReportFormat::Json => out_json(&view)?,
        ReportFormat::Csv => print_csv(&mut o, &view),
        ReportFormat::Table => print_table(&mut o, &view, &cfg.defaults.time_zone),
    }
    Ok(ExitCode::SUCCESS)
}

fn date_time(ts: i64, zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_second(ts)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string())
}

fn print_csv(o: &mut impl Write, v: &SurveysView) {
    let _ = writeln!(
        o,
        "ritual,customer,occurrence,score,comment,first_at,updated_at"
    );
    for a in &v.answers {
        let _ = writeln!(
            o,
            "{},{},{},{},{},{},{}",
            csv_field(&a.ritual),
            csv_field(&a.customer),
            csv_field(&a.occurrence),
            a.score,
            csv_field(a.comment.as_deref().unwrap_or("")),
            a.first_at,
            a.updated_at
        );
    }
}

fn print_table(o: &mut impl Write, v: &SurveysView, zone: &str) {
    let zone = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    if v.nps.is_empty() {
        let _ = writeln!(o, "no survey answers");
        return;
    }
    for r in &v.nps {
        let n = &r.nps;
        let _ = writeln!(
            o,
            "{}: NPS {} ({} answers: {} promoters, {} passives, {} detractors)",
            r.ritual,
            opt(n.nps, "", false),
            n.responses,
            n.promoters,
            n.passives,
            n.detractors
        );
    }
    let _ = writeln!(o);
    if v.answers.is_empty() {
        let _ = writeln!(o, "no answer matches");
    }
    for a in &v.answers {
        let _ = writeln!(
            o,
            "{}  {:<12} {:<16} {:>2}  {}",
            date_time(a.first_at, &zone),
            a.ritual,
            a.customer,
            a.score,
            a.comment.as_deref().unwrap_or("-")
        );
    }
}
