//! CSV import of customers and orders: bytes in, validated records and row errors out.
//!
//! This module owns everything between a file's bytes and domain values: the encoding
//! (UTF-8 with or without BOM, windows-1251, windows-1250, named or detected), the delimiter
//! (`,` `;` or tab, named or detected from the header line), the header (column names matched
//! ignoring case, spaces, `_`, `-` and `.`, with aliases), and the checks of every cell. It
//! touches no database and no clock: storing the records is the caller's job.
//!
//! A file-level problem (undecodable bytes or a NUL in the header line, no header, a required column missing, two columns
//! for one field, a bad option) is an [`ImportError`] and nothing is imported. A bad row is a
//! [`RowError`] with its physical line (the line where the record starts, counting blank lines
//! and lines inside quoted fields) and every problem of the row; the row is skipped and the
//! rest import. A NUL byte or undecodable bytes in a row reject that row. UTF-16 is read from
//! its byte-order mark or its shape (every other byte NUL). Encoding and delimiter are
//! detected from the head of the file (its first 4 MiB); the rows are then read one at a time
//! ([`Rows`]), so a file of any size is read in constant memory.
//!
//! Contact values (first and last name, email, phone) follow the door's rules in `domain`
//! ([`crate::domain::Name`], [`Email`], [`Phone`]): a refused one does not reject its row. The
//! row is imported without it, with a [`RowWarning`] naming line, column and reason, and a
//! value already stored for that customer is kept ([`Refused`]). A name whose line breaks,
//! tabs or repeated spaces became one space is imported with a warning too. An empty cell means "not given"; cells are trimmed; blank rows are skipped.
//! A row with fewer fields than the header, or more non-empty ones, is rejected (a stray
//! delimiter would shift every later column). Within one file an external id may appear once:
//! a later row with the same id is reported and the first is kept (ids of rejected rows do not
//! count).
//!
//! Customers: `external_id` is required; `date:<name>` columns are custom yearly dates;
//! `attr:<name>` columns and any other unknown column become attributes (keys lower case, inner
//! spaces as `_`; empty cells left out). A row with neither email nor phone is valid.
//!
//! Orders: all five columns are required; other columns are ignored. `amount_minor` is in the
//! currency's minor unit (ISO 4217: cents for RON, RUB, USD, EUR; whole yen for JPY; 3 decimals
//! for KWD); negative amounts are accepted as refunds.

mod customers;
mod decode;
mod header;
mod json;
mod orders;
mod stream;
mod table;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::domain::{Channel, Email, Locale, Phone, YearlyDate};

pub use json::{FieldError, FieldOutcome, JsonReader, items as json_items};
pub use table::{RowOutcome, Rows, duplicate_reason};

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// `utf-8`, `windows-1251`, `windows-1250` or another WHATWG label (`cp1251`, ...);
    /// `None` detects: a BOM, else valid UTF-8, else the better of windows-1251/1250.
    pub encoding: Option<String>,
    /// `None` = the most frequent of `,` `;` and tab in the header line (`,` if none).
    pub delimiter: Option<u8>,
    /// Digits (e.g. `"40"`), for phone numbers written without `+`/`00`.
    pub default_country_code: Option<String>,
    /// Used when the locale cell is empty.
    pub default_locale: String,
    /// Used when the time-zone cell is empty, and for order times written without an offset.
    pub default_time_zone: String,
}

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based physical line of the start of the record.
    pub line: u64,
    /// Every problem of the row, each naming its column, joined with `; `.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A row that was imported with one of its values refused (left out) or normalised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowWarning {
    /// 1-based physical line of the start of the record.
    pub line: u64,
    /// "column `x`: why; what was done", one value per warning.
    pub reason: String,
    /// The value was refused and left out (a finding: `import` exits 1); `false` when it was
    /// normalised and kept.
    pub refused: bool,
}

impl fmt::Display for RowWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The outcome of reading one file.
#[derive(Debug, Clone)]
pub struct Parsed<T> {
    /// Good rows with their lines, in file order.
    pub records: Vec<(u64, T)>,
    /// Skipped rows, in file order.
    pub errors: Vec<RowError>,
    /// Values of good rows that were left out or normalised, in file order.
    pub warnings: Vec<RowWarning>,
    /// The encoding used (`UTF-8`, `windows-1251`, `windows-1250`, ...).
    pub encoding: &'static str,
    /// The delimiter used.
    pub delimiter: u8,
}

/// A required column the header lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingColumn {
    pub column: &'static str,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// A column of the file whose name is close.
    pub did_you_mean: Option<String>,
}

impl fmt::Display for MissingColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.column)?;
        if !self.aliases.is_empty() {
            let aliases: Vec<String> = self.aliases.iter().map(|a| format!("`{a}`")).collect();
            write!(f, " (or {})", aliases.join(", "))?;
        }
        if let Some(name) = &self.did_you_mean {
            write!(f, ": did you mean `{name}`?")?;
        }
        Ok(())
    }
}

fn missing_message(missing: &[MissingColumn], found: &[String], hint: &Option<String>) -> String {
    let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
    let found: Vec<String> = found.iter().map(|c| format!("`{c}`")).collect();
    let s = if missing.len() == 1 { "" } else { "s" };
    let mut msg = format!(
        "missing required column{s} {}; the header has {}",
        list.join("; "),
        found.join(", ")
    );
    if let Some(hint) = hint {
        msg.push_str("; ");
        msg.push_str(hint);
    }
    msg
}

/// Why a whole file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "unknown encoding `{0}`: use `utf-8`, `windows-1251` (Cyrillic) or `windows-1250` (Central European, Romanian)"
    )]
    UnknownEncoding(String),
    #[error(
        "the header (line {line}) is not valid {encoding}: save the file as UTF-8 or name its encoding"
    )]
    Decode { encoding: &'static str, line: u64 },
    #[error(
        "the header (line {line}) contains NUL bytes: this is not a text file; save it as UTF-8 CSV"
    )]
    Binary { line: u64 },
    #[error("the file has no header line: the first line must name the columns")]
    NoHeader,
    #[error("cannot read the CSV header on line {line}: {message}")]
    Csv { line: u64, message: String },
    #[error("{}", missing_message(.missing, .found, .hint))]
    MissingColumns {
        missing: Vec<MissingColumn>,
        /// The header's column names as written (trimmed).
        found: Vec<String>,
        /// Set when the header looks split with another delimiter.
        hint: Option<String>,
    },
    #[error("columns `{first}` and `{second}` both give `{column}`: keep one")]
    DuplicateColumn {
        column: String,
        first: String,
        second: String,
    },
    #[error("column `{header}`: {reason}")]
    BadColumnName {
        header: String,
        reason: &'static str,
    },
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
}

/// One customer row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    /// Required, non-empty.
    pub external_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    /// The cell, or `ImportOptions::default_locale`.
    pub locale: Locale,
    /// IANA name as the tz database spells it: the cell, or `ImportOptions::default_time_zone`.
    pub time_zone: String,
    /// Year optional.
    pub birthday: Option<YearlyDate>,
    /// Year required.
    pub signup_date: Option<YearlyDate>,
    pub preferred_channel: Option<Channel>,
    /// `date:<name>` columns, keyed by `<name>`.
    pub custom_dates: BTreeMap<String, YearlyDate>,
    /// `attr:<name>` columns and unknown columns, non-empty cells only.
    pub attributes: BTreeMap<String, String>,
    /// Contact values that were given but refused: left out of the record, and a value
    /// already stored for this customer is kept rather than cleared.
    pub refused: Refused,
}

/// Which contact values of a customer were given but refused at the door.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    pub first_name: bool,
    pub last_name: bool,
    pub email: bool,
    pub phone: bool,
}

/// One order row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub external_id: String,
    pub customer_external_id: String,
    pub ordered_at: jiff::Timestamp,
    /// In the currency's minor unit (cents for most); negative for a refund.
    pub amount_minor: i64,
    /// Three upper-case letters.
    pub currency: String,
}

/// Reads a customers file.
///
/// Columns (any case; spaces, `_`, `-`, `.` ignored): `external_id` | `id` | `customer_id`
/// (required); `first_name` | `firstname` | `name`; `last_name` | `lastname` | `surname`;
/// `email` | `e-mail` | `mail` | `email_address`; `phone` | `mobile` | `tel` | `phone_number`;
/// `locale` | `language` | `lang`; `time_zone` | `timezone` | `tz`; `birthday` | `birth_date` |
/// `dob`; `signup_date` | `signup` | `created`; `preferred_channel` | `channel`; `date:<name>`;
/// `attr:<name>`; anything else is an attribute.
pub fn parse_customers(
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<Parsed<CustomerRecord>, ImportError> {
    Ok(customer_rows(Box::new(std::io::Cursor::new(bytes.to_vec())), opts)?.collect())
}

/// [`parse_customers`] one row at a time, from any reader: constant memory whatever the
/// size of the file (but for 12 bytes per distinct external id, for the duplicate check).
/// The encoding and delimiter are detected from the first 4 MiB; the header is read here.
pub fn customer_rows(
    source: Box<dyn std::io::Read + Send>,
    opts: &ImportOptions,
) -> Result<Rows<CustomerRecord>, ImportError> {
    customers::customer_rows(source, opts)
}

/// Reads an orders file.
///
/// Columns (all required; any case; spaces, `_`, `-`, `.` ignored): `external_id` | `order_id`
/// | `id`; `customer` | `customer_id` | `customer_external_id`; `ordered_at` | `date` | `time` |
/// `created_at`; `amount` | `total` | `sum`; `currency`. Other columns are ignored.
///
/// `ordered_at`: RFC 3339 with an offset, or `YYYY-MM-DD HH:MM[:SS]`, `YYYY-MM-DD`,
/// `DD.MM.YYYY[ HH:MM[:SS]]` in `default_time_zone`. `amount`: `12.50`, `12,50`, `1 234,50`,
/// `1.234,50`, `1,234.50`, `1234`, `-12.50`; a lone separator before exactly three digits
/// (`1,234`) is ambiguous and rejected unless the currency has 0 or 3 decimals.
pub fn parse_orders(
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<Parsed<OrderRecord>, ImportError> {
    Ok(order_rows(Box::new(std::io::Cursor::new(bytes.to_vec())), opts)?.collect())
}

/// [`parse_orders`] one row at a time, from any reader (see [`customer_rows`]).
pub fn order_rows(
    source: Box<dyn std::io::Read + Send>,
    opts: &ImportOptions,
) -> Result<Rows<OrderRecord>, ImportError> {
    orders::order_rows(source, opts)
}
