//! The row loop shared by every import: decode, find the delimiter, read the header, then hand
//! each data row to a parser, with physical line numbers, field-count checks and duplicate ids.
//! [`Rows`] reads one row at a time from any [`Read`], so a file of any size is imported in
//! constant memory (but for the duplicate check's 12 bytes per distinct id).

use std::collections::HashMap;
use std::io::Read;

use encoding_rs::Encoding;

use super::header::{FieldSpec, Header, detect_delimiter, map_header, show_delimiter};
use super::stream::DecodeReader;
use super::{ImportError, ImportOptions, Parsed, RowError, RowWarning, decode};

/// A row's problems: (column index, "column `x`: why"), reported in column order.
pub(super) type Problems = Vec<(usize, String)>;

/// What happened to one value of a row that does not reject the row.
pub(super) struct Note {
    pub column: usize,
    /// "column `x`: why", the wording of [`Problems`].
    pub reason: String,
    /// Refused and left out (`false`: normalised and kept).
    pub refused: bool,
}

/// A row's notes, in the order they were taken.
pub(super) type Notes = Vec<Note>;

/// One data row, cells trimmed.
pub(super) struct Row<'a> {
    pub header: &'a Header,
    pub specs: &'a [FieldSpec],
    pub cells: Vec<&'a str>,
}

impl<'a> Row<'a> {
    /// The value of spec field `field`, `None` when the column is absent or the cell empty.
    pub fn get(&self, field: usize) -> Option<&'a str> {
        let column = self.header.fields[field]?;
        self.cells.get(column).copied().filter(|s| !s.is_empty())
    }

    /// How the file names the column of spec field `field` (its canonical name if absent).
    pub fn name(&self, field: usize) -> &str {
        self.header.fields[field].map_or(self.specs[field].name, |c| {
            self.header.columns[c].header.as_str()
        })
    }

    /// The column index of spec field `field` (`usize::MAX` when the header lacks it).
    pub fn column(&self, field: usize) -> usize {
        self.header.fields[field].unwrap_or(usize::MAX)
    }

    /// Parses field `field` if given; a failure is recorded in `errors` as "column `x`: why".
    pub fn parse<T, E: ToString>(
        &self,
        field: usize,
        errors: &mut Problems,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let value = self.get(field)?;
        parse(value)
            .map_err(|e| {
                errors.push((
                    self.column(field),
                    format!("column `{}`: {}", self.name(field), e.to_string()),
                ))
            })
            .ok()
    }

    /// Parses contact field `field` if given; a failure leaves the field out with a note
    /// (the row is kept) and answers `(None, true)`.
    pub fn soft<T, E: ToString>(
        &self,
        field: usize,
        notes: &mut Notes,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> (Option<T>, bool) {
        let Some(value) = self.get(field) else {
            return (None, false);
        };
        match parse(value) {
            Ok(v) => (Some(v), false),
            Err(e) => {
                notes.push(Note {
                    column: self.column(field),
                    reason: format!("column `{}`: {}", self.name(field), e.to_string()),
                    refused: true,
                });
                (None, true)
            }
        }
    }

    /// Field `field`, recording "column `x`: empty; <why>" when it is not given.
    pub fn required(&self, field: usize, errors: &mut Problems, why: &str) -> Option<&'a str> {
        let value = self.get(field);
        if value.is_none() {
            errors.push((
                self.column(field),
                format!("column `{}`: empty; {why}", self.name(field)),
            ));
        }
        value
    }
}

/// What an import needs to know about its record type.
pub(super) struct Table<'a> {
    pub specs: &'a [FieldSpec],
    /// `date:`/`attr:`/unknown columns are kept (customers) or ignored (orders).
    pub extras: bool,
    /// The spec field holding the record's external id (duplicates are rejected).
    pub id_field: usize,
}

/// How a row parser reads one row: a record, or the row's problems.
pub(super) type ParseRow<T> = Box<dyn FnMut(&Row<'_>, &mut Notes) -> Result<T, Problems> + Send>;

/// What reading the next row gave.
#[derive(Debug)]
pub enum RowOutcome<T> {
    /// A good row, with its line and the warnings about its values (in column order).
    Record {
        line: u64,
        value: T,
        warnings: Vec<RowWarning>,
    },
    /// A skipped row.
    Rejected(RowError),
}

/// The 64-bit hash of an external id, as two halves: the file's duplicate check keeps these
/// and the line, not the ids (12 bytes a bucket, whatever the id's length; a false duplicate
/// needs two ids of one file to collide on 64 bits).
#[derive(Clone, Copy, PartialEq, Eq)]
struct IdKey(u32, u32);

impl IdKey {
    fn of(id: &str) -> IdKey {
        let h = id_hash(id);
        IdKey((h >> 32) as u32, h as u32)
    }
}

/// The 64-bit hash the in-memory duplicate check keys an external id by.
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl std::hash::Hash for IdKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64((u64::from(self.0) << 32) | u64::from(self.1));
    }
}

/// Hashes the already-random [`IdKey`]s by taking them as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Each external id kept so far → the line of its row (saturating at `u32::MAX`).
type Seen = HashMap<IdKey, u32, std::hash::BuildHasherDefault<IdentityHasher>>;

/// Why a row whose external id `id` (in column `column`) was first seen on line `first` is
/// rejected.
pub fn duplicate_reason(column: &str, id: &str, first: u64) -> String {
    format!(
        "column `{column}`: duplicate external_id `{id}`, first seen on line {first}; the first row is kept"
    )
}

/// A file read row by row, in constant memory but for the duplicate check's set of ids seen
/// (see [`id_hash`]).
pub struct Rows<T> {
    csv: csv::Reader<DecodeReader<Box<dyn Read + Send>>>,
    header: Header,
    specs: &'static [FieldSpec],
    id_field: usize,
    parse_row: ParseRow<T>,
    seen: Seen,
    /// The caller checks duplicate ids (`seen` stays empty).
    deferred: bool,
    /// Bytes and line breaks of the head of the file, to guess how many rows it has.
    head: (u64, u64),
    record: csv::StringRecord,
    encoding: &'static Encoding,
    delimiter: u8,
    /// Why reading stopped before the end of the file.
    failed: Option<String>,
}

impl<T> std::fmt::Debug for Rows<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Rows({}, {:?})",
            self.encoding.name(),
            self.delimiter as char
        )
    }
}

/// The head of a file read ahead for detection, then the rest: the head is freed once read.
struct HeadThen {
    head: Vec<u8>,
    at: usize,
    rest: Box<dyn Read + Send>,
}

impl Read for HeadThen {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.at);
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            if self.at == self.head.len() {
                self.head = Vec::new();
                self.at = 0;
            }
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

/// The delimiter option checked, or the one detected from the head of the file.
fn delimiter_of(
    opts: &ImportOptions,
    head: &[u8],
    encoding: &'static Encoding,
) -> Result<u8, ImportError> {
    match opts.delimiter {
        Some(d) if matches!(d, b'"' | b'\n' | b'\r') || !d.is_ascii() => {
            Err(ImportError::InvalidOption {
                option: "delimiter",
                reason: format!(
                    "{} cannot separate fields: use `,`, `;` or a tab",
                    show_delimiter(d)
                ),
            })
        }
        Some(d) => Ok(d),
        None => {
            let (text, _, _) = encoding.decode(head);
            Ok(detect_delimiter(&text))
        }
    }
}

impl<T> Rows<T> {
    /// Reads the head of `source` (to detect its encoding and delimiter) and its header line.
    pub(super) fn open(
        mut source: Box<dyn Read + Send>,
        opts: &ImportOptions,
        table: &Table<'static>,
        parse_row: ParseRow<T>,
    ) -> Result<Rows<T>, ImportError> {
        let mut head = Vec::new();
        (&mut source)
            .take(decode::HEAD as u64)
            .read_to_end(&mut head)
            .map_err(|e| ImportError::Csv {
                line: 1,
                message: e.to_string(),
            })?;
        let encoding = decode::detect(&head, opts.encoding.as_deref())?;
        let delimiter = delimiter_of(opts, &head, encoding)?;
        let head_size = (
            head.len() as u64,
            head.iter().filter(|b| **b == b'\n').count() as u64,
        );
        let source: Box<dyn Read + Send> = Box::new(HeadThen {
            head,
            at: 0,
            rest: source,
        });
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(DecodeReader::new(source, encoding));
        let header = read_header(&mut csv, table, delimiter, encoding)?;
        Ok(Rows {
            csv,
            header,
            specs: table.specs,
            id_field: table.id_field,
            parse_row,
            seen: Seen::default(),
            deferred: false,
            head: head_size,
            record: csv::StringRecord::new(),
            encoding,
            delimiter,
            failed: None,
        })
    }

    /// Why [`Rows::next`] stopped before the end of the file (a read error), if it did.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The encoding used (`UTF-8`, `windows-1251`, `windows-1250`, ...).
    pub fn encoding(&self) -> &'static str {
        self.encoding.name()
    }

    /// The delimiter used.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Raw bytes of the file read so far (the CSV reader reads a little ahead of the rows).
    pub fn bytes_read(&self) -> u64 {
        self.csv.get_ref().raw_read()
    }

    /// Makes room in the duplicate check for the rows of a file of `bytes` bytes (estimated
    /// from the head), so that it does not grow by doubling (each time holding the old table
    /// and the new one) while the file is read.
    pub fn expect_bytes(&mut self, bytes: u64) {
        let (head_bytes, head_lines) = self.head;
        if bytes > head_bytes && head_lines > 0 && !self.deferred {
            let rows = bytes as u128 * u128::from(head_lines) / u128::from(head_bytes);
            self.seen.reserve(rows.min(1 << 24) as usize);
        }
    }

    /// Leaves the duplicate-id check to the caller, which then holds no set of ids in memory:
    /// a row whose id was seen before is handed out like any other, and the caller rejects
    /// it (with the message of [`duplicate_reason`]). `import` does, by the record's id,
    /// against a scratch table on disk, so a file of any size is read in constant memory.
    pub fn defer_duplicates(&mut self) {
        self.deferred = true;
        self.seen = Seen::default();
    }

    /// How the file names its external-id column.
    pub fn id_column(&self) -> &str {
        self.header.fields[self.id_field].map_or(self.specs[self.id_field].name, |c| {
            self.header.columns[c].header.as_str()
        })
    }

    /// The next row that is not blank, or `None` at the end of the file.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<RowOutcome<T>> {
        loop {
            let line = match self.csv.read_record(&mut self.record) {
                Ok(false) => return None,
                Ok(true) => {
                    let byte = self.record.position().map_or(0, |p| p.byte());
                    self.csv.get_mut().line_of_record(byte)
                }
                Err(e) if e.is_io_error() => {
                    // The file cannot be read on: the end, and the import fails.
                    self.failed = Some(e.to_string());
                    return None;
                }
                Err(e) => {
                    // Decoded text is UTF-8 and rows are flexible: csv has no error left to
                    // give; report one anyway and go on.
                    let line = e.position().map_or(0, |p| p.line());
                    return Some(RowOutcome::Rejected(RowError {
                        line,
                        reason: format!("cannot read the row: {e}"),
                    }));
                }
            };
            if let Some(outcome) = self.row(line) {
                return Some(outcome);
            }
        }
    }

    /// The current record, read at `line`; `None` for a blank row.
    fn row(&mut self, line: u64) -> Option<RowOutcome<T>> {
        let reject = |reason: String| Some(RowOutcome::Rejected(RowError { line, reason }));
        // Bad bytes fail their row (see `decode`).
        if self.record.iter().any(|c| c.contains('\0')) {
            return reject(
                "the row holds a NUL byte, which no text has: fix this row of the export".into(),
            );
        }
        if self.csv.get_ref().lossy() && self.record.iter().any(|c| c.contains('\u{FFFD}')) {
            return reject(format!(
                "the row holds bytes that are not valid {}: fix this row, or save the file as UTF-8",
                self.encoding.name()
            ));
        }
        let cells: Vec<&str> = self.record.iter().map(str::trim).collect();
        if cells.iter().all(|c| c.is_empty()) {
            return None; // a blank row (`;;;` from a spreadsheet)
        }
        let expected = self.header.columns.len();
        if cells.len() < expected || cells[expected..].iter().any(|c| !c.is_empty()) {
            return reject(format!(
                "the row has {} fields but the header has {expected}: a {} or a quote inside an unquoted value?",
                cells.len(),
                show_delimiter(self.delimiter)
            ));
        }
        let row = Row {
            header: &self.header,
            specs: self.specs,
            cells,
        };
        let mut notes = Notes::new();
        match (self.parse_row)(&row, &mut notes) {
            Err(problems) => reject(problems_text(problems, notes)),
            Ok(value) => {
                let id = row.get(self.id_field).unwrap_or_default();
                let key = IdKey::of(id);
                if !self.deferred {
                    if let Some(first) = self.seen.get(&key) {
                        return reject(duplicate_reason(
                            row.name(self.id_field),
                            id,
                            u64::from(*first),
                        ));
                    }
                    self.seen
                        .insert(key, u32::try_from(line).unwrap_or(u32::MAX));
                }
                notes.sort_by_key(|n| n.column);
                let warnings = notes
                    .into_iter()
                    .map(|n| RowWarning {
                        line,
                        reason: note_text(&n),
                        refused: n.refused,
                    })
                    .collect();
                Some(RowOutcome::Record {
                    line,
                    value,
                    warnings,
                })
            }
        }
    }

    /// Every row, collected.
    pub(super) fn collect(mut self) -> Parsed<T> {
        let mut parsed = Parsed {
            records: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            encoding: self.encoding.name(),
            delimiter: self.delimiter,
        };
        while let Some(outcome) = self.next() {
            match outcome {
                RowOutcome::Record {
                    line,
                    value,
                    warnings,
                } => {
                    parsed.records.push((line, value));
                    parsed.warnings.extend(warnings);
                }
                RowOutcome::Rejected(e) => parsed.errors.push(e),
            }
        }
        parsed
    }
}

/// A rejected row's reason: its problems and its refused values, in column order.
fn problems_text(mut problems: Problems, notes: Notes) -> String {
    problems.extend(
        notes
            .into_iter()
            .filter(|n| n.refused)
            .map(|n| (n.column, n.reason)),
    );
    problems.sort_by_key(|(column, _)| *column);
    let reasons: Vec<String> = problems.into_iter().map(|(_, why)| why).collect();
    reasons.join("; ")
}

/// Reads and maps the header line.
fn read_header(
    csv: &mut csv::Reader<DecodeReader<Box<dyn Read + Send>>>,
    table: &Table<'_>,
    delimiter: u8,
    encoding: &'static Encoding,
) -> Result<Header, ImportError> {
    let mut record = csv::StringRecord::new();
    match csv.read_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Err(ImportError::NoHeader),
        Err(e) => {
            return Err(ImportError::Csv {
                line: e.position().map_or(1, |p| p.line()),
                message: e.to_string(),
            });
        }
    }
    let line = csv
        .get_mut()
        .line_of_record(record.position().map_or(0, |p| p.byte()));
    if csv.get_ref().lossy() && record.iter().any(|c| c.contains('\u{FFFD}')) {
        return Err(ImportError::Decode {
            encoding: encoding.name(),
            line,
        });
    }
    let names: Vec<String> = record.iter().map(str::to_string).collect();
    if names.iter().any(|n| n.contains('\0')) {
        return Err(ImportError::Binary { line: 1 });
    }
    if names.iter().all(|n| n.trim().is_empty()) {
        return Err(ImportError::NoHeader);
    }
    map_header(&names, table.specs, table.extras, delimiter)
}

/// A note as a warning says it: the reason, and what was done about the value.
pub(super) fn note_text(n: &Note) -> String {
    if n.refused {
        format!(
            "{}; left out (the rest of the row is imported, a stored value is kept)",
            n.reason
        )
    } else {
        n.reason.clone()
    }
}
