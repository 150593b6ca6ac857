//! `ritualist calendar ID [--year Y]`: a country calendar's holidays for a year, as a table or
//! JSON.

use std::path::Path;
use std::process::ExitCode;

use crate::app::AppError;
use crate::cli::output::{out, out_json};
use crate::cli::{CalendarArgs, Format};
use crate::config::Config;

pub fn run(config: &Path, args: CalendarArgs) -> Result<ExitCode, AppError> {
    let cfg = Config::load(config)?;
    let calendars = crate::calendar::load_calendars(&cfg.calendars_dir)?;
    let cal = crate::calendar::find_calendar(&calendars, &args.id)
        .map_err(|e| AppError::Other(format!("unknown calendar `{}`; {}", e.id, e.hint())))?;
    let year = args
        .year
        .unwrap_or_else(|| crate::clock::now().to_zoned(jiff::tz::TimeZone::UTC).year());
    let dates = cal.dates_in(year);
    let locale = &args.locale;
    let weekday = |d: &jiff::civil::Date| format!("{:?}", d.weekday()).to_lowercase();
    match args.format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = dates
                .iter()
                .map(|(d, h)| {
                    serde_json::json!({
                        "date": d.to_string(),
                        "weekday": weekday(d),
                        "holiday": h.id,
                        "name": h.name(locale),
                    })
                })
                .collect();
            out_json(&rows)?;
        }
        Format::Table => {
            for (d, h) in &dates {
                out(&format!(
                    "{d}  {:<9}  {:<24}  {}",
                    weekday(d),
                    h.id,
                    h.name(locale)
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
