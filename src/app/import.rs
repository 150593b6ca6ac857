//! `ritualist import customers|orders FILE`: read the file a row at a time, report each bad
//! row with its line, upsert the good ones by external id (re-importing is safe). A good row
//! with a refused contact value is stored without it (a stored value is kept) and reported as
//! a warning.
//!
//! The file is streamed ([`crate::import::Rows`]): rows are parsed and checked one by one and
//! stored in batches of [`BATCH`], one transaction each, so memory stays flat whatever the
//! size of the file: the duplicate-id check keeps the ids seen (and their lines) in a
//! scratch SQLite file on disk ([`SeenIds`]), not in memory. Progress is
//! reported through a callback after every batch; drawing it is the caller's business.

use std::path::Path;

use crate::config::Config;
use crate::import::{
    CustomerRecord, ImportOptions, OrderRecord, RowOutcome, RowWarning, Rows, customer_rows,
    order_rows,
};
use crate::store::{SeenIds, Store, UpsertStats};

/// A good row waiting for its batch: its line, the record and the warnings about its values.
type Pending<T> = (u64, T, Vec<RowWarning>);

/// Good rows stored per transaction.
pub const BATCH: usize = 10_000;

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

/// How far an import is, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// Bytes of the file read so far.
    pub bytes_read: u64,
    /// The size of the file.
    pub bytes_total: u64,
    /// Rows read so far, good and bad.
    pub rows: u64,
}

/// The progress callback of [`import_file`].
pub type OnProgress<'a> = &'a mut (dyn FnMut(ImportProgress) + Send);

/// Imports a CSV file, stamping new and changed rows with `now` (Unix seconds) and calling
/// `on_progress` after each batch.
#[allow(clippy::too_many_arguments)]
pub async fn import_file(
    store: &Store,
    cfg: &Config,
    kind: ImportKind,
    path: &Path,
    encoding: Option<String>,
    delimiter: Option<u8>,
    now: i64,
    on_progress: OnProgress<'_>,
) -> Result<ImportReport, super::AppError> {
    let cannot_read =
        |e: std::io::Error| super::AppError::Other(format!("cannot read {}: {e}", path.display()));
    let source = std::fs::File::open(path).map_err(cannot_read)?;
    let bytes_total = source.metadata().map_err(cannot_read)?.len();
    let source = Box::new(std::io::BufReader::with_capacity(1 << 16, source));
    let opts = ImportOptions {
        encoding,
        delimiter,
        default_country_code: cfg.defaults.country_code.clone(),
        default_locale: cfg.defaults.locale.to_string(),
        default_time_zone: cfg.defaults.time_zone.clone(),
    };
    let file = path.display().to_string();
    let bad_file = |e: crate::import::ImportError| super::AppError::Other(format!("{file}: {e}"));
    let mut progress = Progress {
        bytes_total,
        on_progress,
    };
    let mut report = match kind {
        ImportKind::Customers => {
            let mut rows = customer_rows(source, &opts).map_err(bad_file)?;
            rows.defer_duplicates();
            let mut report = ImportReport::new(&file, &rows);
            import_customers(store, cfg, rows, &mut report, now, &mut progress).await?;
            report
        }
        ImportKind::Orders => {
            let mut rows = order_rows(source, &opts).map_err(bad_file)?;
            rows.defer_duplicates();
            let mut report = ImportReport::new(&file, &rows);
            import_orders(store, rows, &mut report, now, &mut progress).await?;
            report
        }
    };
    report.errors.sort();
    Ok(report)
}

struct Progress<'a> {
    bytes_total: u64,
    on_progress: OnProgress<'a>,
}

impl Progress<'_> {
    fn report<T>(&mut self, rows: &Rows<T>, report: &ImportReport) {
        (self.on_progress)(ImportProgress {
            bytes_read: rows.bytes_read().min(self.bytes_total),
            bytes_total: self.bytes_total,
            rows: report.rows as u64,
        });
    }
}

impl ImportReport {
    fn new<T>(file: &str, rows: &Rows<T>) -> ImportReport {
        ImportReport {
            file: file.to_string(),
            encoding: rows.encoding().to_string(),
            rows: 0,
            stats: UpsertStats::default(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Reads up to [`BATCH`] good rows into `batch` (with their lines and warnings), noting
    /// the bad ones; `false` once the file is read.
    fn fill<T>(
        &mut self,
        rows: &mut Rows<T>,
        batch: &mut Vec<Pending<T>>,
    ) -> Result<bool, super::AppError> {
        while batch.len() < BATCH {
            match rows.next() {
                None => {
                    return match rows.failed() {
                        Some(e) => Err(super::AppError::Other(format!(
                            "cannot read {}: {e}",
                            self.file
                        ))),
                        None => Ok(false),
                    };
                }
                Some(RowOutcome::Record {
                    line,
                    value,
                    warnings,
                }) => {
                    self.rows += 1;
                    batch.push((line, value, warnings));
                }
                Some(RowOutcome::Rejected(e)) => {
                    self.rows += 1;
                    self.errors.push((e.line, e.reason));
                }
            }
        }
        Ok(true)
    }

    /// Drains `batch`, rejecting each row whose external id (`id` of its record, in the
    /// file's column `column`) was seen on an earlier line, as the file's first row for an id
    /// is the one kept; the others' warnings are noted and they are returned.
    async fn first_of_each_id<T>(
        &mut self,
        seen: &SeenIds,
        column: &str,
        batch: &mut Vec<Pending<T>>,
        id: impl Fn(&T) -> &str,
    ) -> Result<Vec<(u64, T)>, super::AppError> {
        let keys: Vec<(&str, u64)> = batch.iter().map(|(line, v, _)| (id(v), *line)).collect();
        let firsts = seen.check(&keys).await?;
        let mut kept = Vec::with_capacity(batch.len());
        for ((line, value, warnings), first) in batch.drain(..).zip(firsts) {
            match first {
                Some(first) => self.errors.push((
                    line,
                    crate::import::duplicate_reason(column, id(&value), first),
                )),
                None => {
                    self.warnings.extend(warnings);
                    kept.push((line, value));
                }
            }
        }
        Ok(kept)
    }

    fn add(&mut self, s: UpsertStats) {
        self.stats.inserted += s.inserted;
        self.stats.updated += s.updated;
    }
}

async fn import_customers(
    store: &Store,
    cfg: &Config,
    mut rows: Rows<CustomerRecord>,
    report: &mut ImportReport,
    now: i64,
    progress: &mut Progress<'_>,
) -> Result<(), super::AppError> {
    // Forgotten people stay opted out when they come back (see `forget`).
    let keys = super::StubKeys::load(cfg, store).await?;
    let seen = SeenIds::new().await?;
    let column = rows.id_column().to_string();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let more = report.fill(&mut rows, &mut batch)?;
        let kept = report
            .first_of_each_id(&seen, &column, &mut batch, |c: &CustomerRecord| {
                &c.external_id
            })
            .await?;
        if !kept.is_empty() {
            let records: Vec<CustomerRecord> = kept.into_iter().map(|(_, c)| c).collect();
            // The stubs cost three HMACs a row: only when someone was forgotten.
            let stubs: Vec<Vec<String>> = if store.has_forgotten().await? {
                records.iter().map(|c| keys.matches_for(c)).collect()
            } else {
                Vec::new()
            };
            let s = store
                .upsert_customers_checked(&records, &stubs, now)
                .await?;
            report.add(s);
        }
        progress.report(&rows, report);
        if !more {
            return Ok(());
        }
    }
}

async fn import_orders(
    store: &Store,
    mut rows: Rows<OrderRecord>,
    report: &mut ImportReport,
    now: i64,
    progress: &mut Progress<'_>,
) -> Result<(), super::AppError> {
    let seen = SeenIds::new().await?;
    let column = rows.id_column().to_string();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let more = report.fill(&mut rows, &mut batch)?;
        let kept = report
            .first_of_each_id(&seen, &column, &mut batch, |o: &OrderRecord| &o.external_id)
            .await?;
        if !kept.is_empty() {
            let lines: Vec<u64> = kept.iter().map(|(l, _)| *l).collect();
            let records: Vec<OrderRecord> = kept.into_iter().map(|(_, o)| o).collect();
            let (s, unknown) = store.upsert_orders_batched(&records, now).await?;
            report.add(s);
            for (i, reason) in unknown {
                report.errors.push((lines[i], reason));
            }
        }
        progress.report(&rows, report);
        if !more {
            return Ok(());
        }
    }
}
