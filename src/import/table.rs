//! The row loop shared by every import: decode, find the delimiter, read the header, then hand
//! each data row to a parser, with physical line numbers, field-count checks and duplicate ids.

use std::collections::HashMap;

use super::header::{FieldSpec, Header, detect_delimiter, map_header, show_delimiter};
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

/// Start offsets of physical lines; a line ends at `\n`, `\r\n` or a lone `\r`.
///
/// csv's own `Position::line()` is off after blank lines and with CRLF endings
/// (BurntSushi/rust-csv#208, #395), so lines are counted here from `Position::byte()`.
struct Lines<'t> {
    text: &'t [u8],
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    fn new(text: &'t str) -> Self {
        let text = text.as_bytes();
        let mut starts = vec![0];
        for (i, b) in text.iter().enumerate() {
            if *b == b'\n' || (*b == b'\r' && text.get(i + 1) != Some(&b'\n')) {
                starts.push(i + 1);
            }
        }
        Lines { text, starts }
    }

    /// The line of the record csv says starts at `byte`: csv points before the line
    /// terminators (and blank lines) it skipped, so step over those first.
    fn line_of_record(&self, byte: u64) -> u64 {
        let mut at = byte as usize;
        while matches!(self.text.get(at), Some(b'\r' | b'\n')) {
            at += 1;
        }
        self.starts.partition_point(|s| *s <= at) as u64
    }
}

pub(super) fn parse_table<T>(
    bytes: &[u8],
    opts: &ImportOptions,
    table: &Table<'_>,
    mut parse_row: impl FnMut(&Row<'_>, &mut Notes) -> Result<T, Problems>,
) -> Result<Parsed<T>, ImportError> {
    let decoded = decode::decode(bytes, opts.encoding.as_deref())?;
    let text = decoded.text.as_str();
    let delimiter = match opts.delimiter {
        Some(d) if matches!(d, b'"' | b'\n' | b'\r') || !d.is_ascii() => {
            return Err(ImportError::InvalidOption {
                option: "delimiter",
                reason: format!(
                    "{} cannot separate fields: use `,`, `;` or a tab",
                    show_delimiter(d)
                ),
            });
        }
        Some(d) => d,
        None => detect_delimiter(text),
    };
    let lines = Lines::new(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    let header_record = match records.next() {
        None => return Err(ImportError::NoHeader),
        Some(Err(e)) => {
            let line = e.position().map_or(1, |p| lines.line_of_record(p.byte()));
            return Err(ImportError::Csv {
                line,
                message: e.to_string(),
            });
        }
        Some(Ok(r)) => r,
    };
    let names: Vec<String> = header_record.iter().map(str::to_string).collect();
    if names.iter().any(|n| n.contains('\0')) {
        return Err(ImportError::Binary { line: 1 });
    }
    if names.iter().all(|n| n.trim().is_empty()) {
        return Err(ImportError::NoHeader);
    }
    let header = map_header(&names, table.specs, table.extras, delimiter)?;

    let mut parsed = Parsed {
        records: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
        encoding: decoded.encoding.name(),
        delimiter,
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    for result in records {
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                // With in-memory UTF-8 text and flexible rows csv has no error left to give;
                // report one anyway and go on.
                let line = e.position().map_or(0, |p| lines.line_of_record(p.byte()));
                parsed.errors.push(RowError {
                    line,
                    reason: format!("cannot read the row: {e}"),
                });
                continue;
            }
        };
        let line = record
            .position()
            .map_or(0, |p| lines.line_of_record(p.byte()));
        // Bad bytes fail their row (see `decode`).
        if record.iter().any(|c| c.contains('\0')) {
            parsed.errors.push(RowError {
                line,
                reason: "the row holds a NUL byte, which no text has: fix this row of the export"
                    .into(),
            });
            continue;
        }
        if decoded.lossy && record.iter().any(|c| c.contains('\u{FFFD}')) {
            parsed.errors.push(RowError {
                line,
                reason: format!(
                    "the row holds bytes that are not valid {}: fix this row, or save the file as UTF-8",
                    decoded.encoding.name()
                ),
            });
            continue;
        }
        let cells: Vec<&str> = record.iter().map(str::trim).collect();
        if cells.iter().all(|c| c.is_empty()) {
            continue; // a blank row (`;;;` from a spreadsheet)
        }
        let expected = header.columns.len();
        if cells.len() < expected || cells[expected..].iter().any(|c| !c.is_empty()) {
            parsed.errors.push(RowError {
                line,
                reason: format!(
                    "the row has {} fields but the header has {expected}: a {} or a quote inside an unquoted value?",
                    cells.len(),
                    show_delimiter(delimiter)
                ),
            });
            continue;
        }
        let row = Row {
            header: &header,
            specs: table.specs,
            cells,
        };
        let mut notes = Notes::new();
        match parse_row(&row, &mut notes) {
            Err(mut problems) => {
                // A rejected row reports its refused values among its problems.
                problems.extend(
                    notes
                        .into_iter()
                        .filter(|n| n.refused)
                        .map(|n| (n.column, n.reason)),
                );
                problems.sort_by_key(|(column, _)| *column);
                let reasons: Vec<String> = problems.into_iter().map(|(_, why)| why).collect();
                parsed.errors.push(RowError {
                    line,
                    reason: reasons.join("; "),
                });
            }
            Ok(value) => {
                let id = row.get(table.id_field).unwrap_or_default().to_string();
                if let Some(first) = seen.get(&id) {
                    parsed.errors.push(RowError {
                        line,
                        reason: format!(
                            "column `{}`: duplicate external_id `{id}`, first seen on line {first}; the first row is kept",
                            row.name(table.id_field)
                        ),
                    });
                } else {
                    seen.insert(id, line);
                    parsed.records.push((line, value));
                    notes.sort_by_key(|n| n.column);
                    parsed
                        .warnings
                        .extend(notes.into_iter().map(|n| RowWarning {
                            line,
                            reason: note_text(&n),
                            refused: n.refused,
                        }));
                }
            }
        }
    }
    Ok(parsed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_from_bytes() {
        let text = "\n\na,b\r\n1,2\r\n\r\n\"x\r\ny\",5\r6,7\n";
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let lines = Lines::new(text);
        let got: Vec<(String, u64)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (
                    r[0].to_string(),
                    lines.line_of_record(r.position().unwrap().byte()),
                )
            })
            .collect();
        let want = [("a", 3), ("1", 4), ("x\r\ny", 6), ("6", 8)].map(|(s, l)| (s.to_string(), l));
        assert_eq!(got, want);
    }
}
