//! The header line: which column holds which field, and what to say when one is missing.

use std::collections::HashMap;

use super::{ImportError, MissingColumn};

/// A known field: its canonical name, the other names accepted for it, whether a file must have it.
pub(super) struct FieldSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub required: bool,
}

/// What one column of the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// `specs[i]`.
    Field(usize),
    /// `date:<name>`.
    CustomDate(String),
    /// `attr:<name>` or an unknown column.
    Attribute(String),
    /// A column without a name, or an unknown column where unknown columns mean nothing.
    Ignored,
}

#[derive(Debug)]
pub(super) struct Column {
    /// The name as written in the file, trimmed: error messages quote it.
    pub header: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub(super) struct Header {
    pub columns: Vec<Column>,
    /// For each spec, the index of its column.
    pub fields: Vec<Option<usize>>,
}

/// Compares names ignoring case, spaces, `_`, `-` and `.`: `First Name` = `first_name` = `FirstName`.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The key for `date:`/`attr:`/unknown columns: trimmed, lower case, inner spaces as `_`.
fn key(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join("_")
        .to_lowercase()
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Maps the header record. With `extras`, `date:<name>` columns become custom dates and
/// `attr:<name>` and unknown columns become attributes; without, unknown columns are ignored.
pub(super) fn map_header(
    names: &[String],
    specs: &[FieldSpec],
    extras: bool,
    delimiter: u8,
) -> Result<Header, ImportError> {
    let mut columns = Vec::with_capacity(names.len());
    let mut fields: Vec<Option<usize>> = vec![None; specs.len()];
    // Target ("field:x", "date:x", "attr:x") → column index, to reject two columns for one thing.
    let mut taken: HashMap<String, usize> = HashMap::new();
    for (index, raw) in names.iter().enumerate() {
        let header = raw.trim().to_string();
        let squashed = squash(&header);
        let spec = specs.iter().position(|s| {
            squash(s.name) == squashed || s.aliases.iter().any(|a| squash(a) == squashed)
        });
        let kind = if header.is_empty() {
            Kind::Ignored
        } else if let Some(i) = spec {
            Kind::Field(i)
        } else if !extras {
            Kind::Ignored
        } else if let Some(name) = strip_prefix_ci(&header, "date:") {
            Kind::CustomDate(nonempty_key(&header, name)?)
        } else if let Some(name) = strip_prefix_ci(&header, "attr:") {
            Kind::Attribute(nonempty_key(&header, name)?)
        } else {
            Kind::Attribute(key(&header))
        };
        let target = match &kind {
            Kind::Field(i) => Some(specs[*i].name.to_string()),
            Kind::CustomDate(k) => Some(format!("date:{k}")),
            Kind::Attribute(k) => Some(format!("attr:{k}")),
            Kind::Ignored => None,
        };
        if let Some(target) = target {
            if let Some(&first) = taken.get(&target) {
                let first: &Column = &columns[first];
                return Err(ImportError::DuplicateColumn {
                    column: target,
                    first: first.header.clone(),
                    second: header,
                });
            }
            taken.insert(target, index);
        }
        if let Kind::Field(i) = kind {
            fields[i] = Some(index);
        }
        columns.push(Column { header, kind });
    }

    let missing: Vec<MissingColumn> = specs
        .iter()
        .zip(&fields)
        .filter(|(spec, found)| spec.required && found.is_none())
        .map(|(spec, _)| MissingColumn {
            column: spec.name,
            aliases: spec.aliases,
            did_you_mean: did_you_mean(spec, &columns),
        })
        .collect();
    if !missing.is_empty() {
        let found: Vec<String> = columns.iter().map(|c| c.header.clone()).collect();
        let hint = delimiter_hint(&found, delimiter);
        return Err(ImportError::MissingColumns {
            missing,
            found,
            hint,
        });
    }
    Ok(Header { columns, fields })
}

fn nonempty_key(header: &str, name: &str) -> Result<String, ImportError> {
    let k = key(name);
    if k.is_empty() {
        return Err(ImportError::BadColumnName {
            header: header.to_string(),
            reason: "the prefix needs a name after it, as in `date:wedding` or `attr:tier`",
        });
    }
    Ok(k)
}

/// A column of the file (not already used by another field) whose name is close to one of
/// the spec's names: at most one typo for short names, two for longer ones, or containing
/// one of them (`Order date` for `date`).
fn did_you_mean(spec: &FieldSpec, columns: &[Column]) -> Option<String> {
    let names: Vec<String> = std::iter::once(spec.name)
        .chain(spec.aliases.iter().copied())
        .map(squash)
        .collect();
    columns
        .iter()
        .filter(|c| !matches!(c.kind, Kind::Field(_)) && !c.header.is_empty())
        .filter_map(|c| {
            let h = squash(&c.header);
            names
                .iter()
                .filter_map(|n| {
                    let d = distance(&h, n);
                    let allowed = match n.chars().count() {
                        0..=2 => 0,
                        3..=5 => 1,
                        _ => 2,
                    };
                    if d <= allowed {
                        Some(d)
                    } else if n.chars().count() >= 4
                        && (h.contains(n.as_str())
                            || n.contains(h.as_str()) && h.chars().count() >= 4)
                    {
                        Some(allowed + 1)
                    } else {
                        None
                    }
                })
                .min()
                .map(|d| (d, c.header.clone()))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, h)| h)
}

/// Optimal-string-alignment distance: edits, with a swap of neighbours as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// When the whole header landed in one column, the delimiter is probably wrong.
fn delimiter_hint(found: &[String], delimiter: u8) -> Option<String> {
    let [only] = found else { return None };
    [b',', b';', b'\t', b'|']
        .into_iter()
        .filter(|d| *d != delimiter)
        .find(|d| only.contains(char::from(*d)))
        .map(|d| {
            format!(
                "the header was read as one column with delimiter {}, but it contains {}: set the delimiter",
                show_delimiter(delimiter),
                show_delimiter(d)
            )
        })
}

pub(super) fn show_delimiter(d: u8) -> String {
    match d {
        b'\t' => "`\\t` (tab)".to_string(),
        d => format!("`{}`", char::from(d)),
    }
}

/// The delimiter of the first non-blank line: the most frequent of `,` `;` and tab outside
/// quotes, `,` when none occurs or on a tie.
pub(super) fn detect_delimiter(text: &str) -> u8 {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for b in line.bytes() {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(entry) = counts.iter_mut().find(|(d, _)| *d == b) {
            entry.1 += 1;
        }
    }
    // max_by_key keeps the last maximum: scan in reverse so a tie goes to the earlier one.
    counts
        .iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| *n > 0)
        .map_or(b',', |(d, _)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FieldSpec] = &[
        FieldSpec {
            name: "external_id",
            aliases: &["id", "customer_id"],
            required: true,
        },
        FieldSpec {
            name: "email",
            aliases: &["e-mail", "mail"],
            required: false,
        },
        FieldSpec {
            name: "ordered_at",
            aliases: &["date", "time"],
            required: true,
        },
    ];

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn maps_aliases_case_and_spacing_insensitively() {
        let h = map_header(
            &names(&[
                " Customer ID ",
                "E-Mail",
                "DATE",
                "",
                "Club Card",
                "date:Wedding",
                "ATTR:Tier",
            ]),
            SPECS,
            true,
            b',',
        )
        .unwrap();
        assert_eq!(h.fields, vec![Some(0), Some(1), Some(2)]);
        let kinds: Vec<&Kind> = h.columns.iter().map(|c| &c.kind).collect();
        assert_eq!(kinds[3], &Kind::Ignored);
        assert_eq!(kinds[4], &Kind::Attribute("club_card".into()));
        assert_eq!(kinds[5], &Kind::CustomDate("wedding".into()));
        assert_eq!(kinds[6], &Kind::Attribute("tier".into()));
        assert_eq!(h.columns[0].header, "Customer ID");
    }

    #[test]
    fn missing_duplicate_and_bad_columns() {
        match map_header(
            &names(&["extrnal_id", "Order date", "email"]),
            SPECS,
            true,
            b',',
        ) {
            Err(ImportError::MissingColumns {
                missing,
                found,
                hint,
            }) => {
                assert_eq!(missing.len(), 2);
                assert_eq!(missing[0].did_you_mean.as_deref(), Some("extrnal_id"));
                assert_eq!(missing[1].did_you_mean.as_deref(), Some("Order date"));
                assert_eq!(found, names(&["extrnal_id", "Order date", "email"]));
                assert_eq!(hint, None);
            }
            other => panic!("{other:?}"),
        }
        match map_header(&names(&["id", "mail", "E-mail", "date"]), SPECS, true, b',') {
            Err(e @ ImportError::DuplicateColumn { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "columns `mail` and `E-mail` both give `email`: keep one"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            map_header(&names(&["id", "date", "date: "]), SPECS, true, b','),
            Err(ImportError::BadColumnName { header, .. }) if header == "date:"
        ));
        match map_header(&names(&["id;email;date"]), SPECS, true, b',') {
            Err(ImportError::MissingColumns { hint, .. }) => assert!(hint.unwrap().contains("`;`")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delimiter_detection() {
        assert_eq!(detect_delimiter("\n a;b;\"c,d,e\"\n1,2"), b';');
        assert_eq!(detect_delimiter("a\tb\tc"), b'\t');
        assert_eq!(detect_delimiter("a,b;c"), b',');
        assert_eq!(detect_delimiter("id"), b',');
        assert_eq!(distance("emial", "email"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
