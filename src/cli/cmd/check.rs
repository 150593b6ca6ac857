//! `ritualist check`: validate the config, rituals and templates; errors and warnings on
//! stderr (or all of them as JSON on stdout), exit 1 on an error.

use std::path::Path;
use std::process::ExitCode;

use crate::app::{self, AppError};
use crate::cli::Format;
use crate::cli::output::{out, out_json};
use crate::config::Severity;

pub fn run(config: &Path, format: Format) -> Result<ExitCode, AppError> {
    let mut diags = app::check(config);
    diags.attach_snippets();
    let errors = diags.errors().count();
    let warnings = diags.findings().count() - errors;
    match format {
        Format::Json => out_json(&diags.0)?,
        Format::Table => {
            for d in &diags.0 {
                if d.severity == Severity::Note {
                    out(&d.to_string());
                } else {
                    eprintln!("{d}");
                }
            }
            if errors + warnings == 0 {
                out(&format!("{}: everything checks out", config.display()));
            } else {
                eprintln!("{errors} error(s), {warnings} warning(s)");
            }
        }
    }
    Ok(super::findings(errors > 0))
}
