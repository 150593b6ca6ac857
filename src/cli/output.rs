//! What the commands write: lines on stdout, JSON (where a value that cannot be written as
//! JSON is an error, never an empty line), CSV fields, the number and money cells of tables,
//! and the progress bars on stderr. indicatif lives here only: the layers below report
//! progress through callbacks and never draw.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::app::AppError;

/// Writes a line on stdout.
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = writeln!(o, "{s}");
}

/// The error of output that cannot be written as JSON (the command then exits 2).
pub fn json_error(e: serde_json::Error) -> AppError {
    AppError::Other(format!("cannot write the output as JSON: {e}"))
}

/// `v` as pretty-printed JSON.
pub fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, AppError> {
    serde_json::to_string_pretty(v).map_err(json_error)
}

/// `v` as JSON on one line (JSON Lines output).
pub fn to_json_line<T: Serialize + ?Sized>(v: &T) -> Result<String, AppError> {
    serde_json::to_string(v).map_err(json_error)
}

/// Writes `v` on stdout as pretty-printed JSON.
pub fn out_json<T: Serialize + ?Sized>(v: &T) -> Result<(), AppError> {
    out(&to_json(v)?);
    Ok(())
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `RON 43.06; EUR 10.00` from minor units (major units, each currency's decimals), `-` when
/// empty; `signed` adds `+` to gains.
pub fn money_map(m: &BTreeMap<String, f64>, signed: bool) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(c, v)| crate::domain::money::format_major(c, *v, signed))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A number with one decimal and `suffix`, `-` when absent; `signed` adds `+` to gains.
pub fn opt(v: Option<f64>, suffix: &str, signed: bool) -> String {
    match v {
        Some(x) if signed => format!("{x:+.1}{suffix}"),
        Some(x) => format!("{x:.1}{suffix}"),
        None => "-".into(),
    }
}

/// A progress bar on stderr with this indicatif template, when stderr is a terminal (never
/// in pipes and logs).
fn bar(template: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// The bar of `plan`: customers evaluated out of all.
pub fn plan_bar() -> Option<indicatif::ProgressBar> {
    bar("{spinner} planning {bar:40} {pos}/{len} customers ({eta})")
}

/// The bar of `import`: bytes of the file read out of all, `label` (e.g. `importing
/// customers.csv`) beside it. Drive it with [`advance`] from the import's progress callback.
pub fn import_bar(label: &str) -> Option<indicatif::ProgressBar> {
    let b = bar("{spinner} {msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")?;
    b.set_message(label.to_string());
    Some(b)
}

/// Moves a bar (if any) to `done` out of `total`: the body of a progress callback.
pub fn advance(bar: Option<&indicatif::ProgressBar>, done: u64, total: u64) {
    if let Some(b) = bar {
        b.set_length(total);
        b.set_position(done);
    }
}

/// Clears a finished bar (if any) from the terminal.
pub fn finish(bar: Option<indicatif::ProgressBar>) {
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serializing it fails, as a map with non-string keys does.
    struct Unwritable;

    impl Serialize for Unwritable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("a value JSON cannot hold"))
        }
    }

    #[test]
    fn json_that_cannot_be_written_is_an_error_not_an_empty_line() {
        for r in [to_json(&Unwritable), to_json_line(&Unwritable)] {
            match r {
                Err(AppError::Other(m)) => {
                    assert_eq!(
                        m,
                        "cannot write the output as JSON: a value JSON cannot hold"
                    )
                }
                other => panic!("expected an error, got {other:?}"),
            }
        }
        let keys: BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into();
        assert!(to_json(&keys).is_err());
        assert!(out_json(&keys).is_err());
    }

    #[test]
    fn json_that_can_be_written_is_written() {
        assert_eq!(to_json(&[1, 2]).unwrap(), "[\n  1,\n  2\n]");
        assert_eq!(to_json_line(&[1, 2]).unwrap(), "[1,2]");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn missing_numbers_are_dashes() {
        assert_eq!(opt(None, "%", false), "-");
        assert_eq!(opt(Some(2.0), " pts", true), "+2.0 pts");
        assert_eq!(opt(Some(12.345), "%", false), "12.3%");
        assert_eq!(money_map(&BTreeMap::new(), false), "-");
    }
}
