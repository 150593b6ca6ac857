//! `ritualist import customers|orders FILE`: parse every row, report each bad one with its
//! line, upsert the good ones by external id (re-importing is safe). A good row with a refused
//! contact value is stored without it (a stored value is kept) and reported as a warning.

use std::io::IsTerminal;
use std::path::Path;

use crate::config::Config;
use crate::import::{ImportOptions, RowError, RowWarning, parse_customers, parse_orders};
use crate::store::{Store, UpsertStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    Customers,
    Orders,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    pub file: String,
    pub encoding: String,
    pub rows: usize,
    pub stats: UpsertStats,
    /// (line, reason) of every rejected row.
    pub errors: Vec<(u64, String)>,
    /// Values of imported rows that were left out (`refused`) or normalised.
    pub warnings: Vec<RowWarning>,
}

impl ImportReport {
    /// Whether the file had findings: rejected rows or refused values (`import` exits 1).
    pub fn has_findings(&self) -> bool {
        !self.errors.is_empty() || self.warnings.iter().any(|w| w.refused)
    }
}

/// Imports a CSV file. `progress` draws a bar on stderr when it is a terminal.
pub async fn import_file(
    store: &Store,
    cfg: &Config,
    kind: ImportKind,
    path: &Path,
    encoding: Option<String>,
    delimiter: Option<u8>,
    progress: bool,
) -> Result<ImportReport, super::AppError> {
    let bytes = std::fs::read(path)
        .map_err(|e| super::AppError::Other(format!("cannot read {}: {e}", path.display())))?;
    let opts = ImportOptions {
        encoding,
        delimiter,
        default_country_code: cfg.defaults.country_code.clone(),
        default_locale: cfg.defaults.locale.to_string(),
        default_time_zone: cfg.defaults.time_zone.clone(),
    };
    let now = crate::clock::now().as_second();
    let file = path.display().to_string();
    let err_of = |e: &RowError| (e.line, e.reason.clone());
    let bar = (progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} rows")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(format!("importing {}", path.display()));
        b
    });
    const CHUNK: usize = 2000;
    match kind {
        ImportKind::Customers => {
            let parsed = parse_customers(&bytes, &opts)
                .map_err(|e| super::AppError::Other(format!("{file}: {e}")))?;
            let mut errors: Vec<(u64, String)> = parsed.errors.iter().map(err_of).collect();
            let records: Vec<_> = parsed.records.into_iter().map(|(_, r)| r).collect();
            if let Some(b) = &bar {
                b.set_length(records.len() as u64);
            }
            // Forgotten people stay opted out when they come back (see `forget`).
            let keys = super::StubKeys::load(cfg, store).await?;
            let mut stats = UpsertStats::default();
            for chunk in records.chunks(CHUNK) {
                let stubs: Vec<Vec<String>> = chunk.iter().map(|c| keys.matches_for(c)).collect();
                let s = store.upsert_customers_checked(chunk, &stubs, now).await?;
                stats.inserted += s.inserted;
                stats.updated += s.updated;
                if let Some(b) = &bar {
                    b.inc(chunk.len() as u64);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            errors.sort();
            Ok(ImportReport {
                file,
                encoding: parsed.encoding.to_string(),
                rows: records.len() + errors.len(),
                stats,
                errors,
                warnings: parsed.warnings,
            })
        }
        ImportKind::Orders => {
            let parsed = parse_orders(&bytes, &opts)
                .map_err(|e| super::AppError::Other(format!("{file}: {e}")))?;
            let mut errors: Vec<(u64, String)> = parsed.errors.iter().map(err_of).collect();
            let lines: Vec<u64> = parsed.records.iter().map(|(l, _)| *l).collect();
            let records: Vec<_> = parsed.records.into_iter().map(|(_, r)| r).collect();
            if let Some(b) = &bar {
                b.set_length(records.len() as u64);
            }
            let mut stats = UpsertStats::default();
            for (ci, chunk) in records.chunks(CHUNK).enumerate() {
                let (s, unknown) = store.upsert_orders(chunk, now).await?;
                stats.inserted += s.inserted;
                stats.updated += s.updated;
                for (i, reason) in unknown {
                    errors.push((lines[ci * CHUNK + i], reason));
                }
                if let Some(b) = &bar {
                    b.inc(chunk.len() as u64);
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            errors.sort();
            Ok(ImportReport {
                file,
                encoding: parsed.encoding.to_string(),
                rows: records.len() + parsed.errors.len(),
                stats,
                errors,
                warnings: parsed.warnings,
            })
        }
    }
}
