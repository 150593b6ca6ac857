//! JSON items of the ingest API (`POST /api/customers`, `POST /api/orders`), read by the very
//! row parsers of the CSV import: an object's keys play the header, its values the cells, so
//! the API and a CSV file accept and reject exactly the same values, with the same messages.
//!
//! Keys are the CSV column names and their aliases (`email`, `mail`, ...); `date:<name>` and
//! `attr:<name>` keys, or nested `"dates": {...}` / `"attributes": {...}` objects, are custom
//! dates and attributes; other keys of a customer are attributes, as in CSV. Values are
//! strings; numbers and booleans are read as their JSON text (`"amount": 12.5`); `null` or
//! `""` means "not given". Every problem names the key it is about; an item's problems come
//! in key order. As in CSV, a refused contact value (name, email, phone) does not reject its
//! item: the item is stored without it and the problem says so ([`FieldOutcome::LeftOut`]).

use serde_json::Value;

use super::header::map_header;
use super::table::{Notes, Problems, Row};
use super::{CustomerRecord, ImportError, ImportOptions, OrderRecord, customers, orders, validate};

/// One problem of one item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The item's position in the request (0 for a single object).
    pub index: usize,
    /// The key as the client wrote it (or the canonical name of a missing required one).
    pub field: String,
    pub message: String,
    pub hint: String,
    /// What became of the item and the value.
    pub outcome: FieldOutcome,
}

/// What a problem did to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldOutcome {
    /// The item was not stored.
    Rejected,
    /// The item was stored without this value (a value stored before is kept).
    LeftOut,
    /// The item was stored with this value normalised (a name's line breaks became spaces).
    Normalised,
}

/// An item that was read, with what was left out of it or normalised.
pub type Read<T> = (T, Vec<FieldError>);

/// Reads API items with the import's defaults, checked once.
pub struct JsonReader {
    country_code: Option<String>,
    default_locale: crate::domain::Locale,
    zone: jiff::tz::TimeZone,
    zone_name: String,
}

impl JsonReader {
    pub fn new(opts: &ImportOptions) -> Result<JsonReader, ImportError> {
        let (zone, zone_name) = validate::zone(&opts.default_time_zone)?;
        Ok(JsonReader {
            country_code: validate::country_code(opts.default_country_code.as_deref())?,
            default_locale: validate::locale(&opts.default_locale)?,
            zone,
            zone_name,
        })
    }

    /// A customer object and its left-out or normalised values, or every problem it has.
    pub fn customer(
        &self,
        index: usize,
        item: &Value,
    ) -> Result<Read<CustomerRecord>, Vec<FieldError>> {
        let (names, cells) = flatten(index, item, true)?;
        self.with_row(
            index,
            &names,
            &cells,
            customers::CUSTOMER_COLUMNS,
            true,
            |row, notes| {
                customers::customer(
                    row,
                    notes,
                    self.country_code.as_deref(),
                    &self.default_locale,
                    &self.zone_name,
                )
            },
        )
    }

    /// An order object, or every problem it has.
    pub fn order(&self, index: usize, item: &Value) -> Result<OrderRecord, Vec<FieldError>> {
        let (names, cells) = flatten(index, item, false)?;
        self.with_row(
            index,
            &names,
            &cells,
            orders::ORDER_COLUMNS,
            false,
            |row, _| orders::order(row, &self.zone, &self.zone_name),
        )
        .map(|(order, _)| order)
    }

    fn with_row<T>(
        &self,
        index: usize,
        names: &[String],
        cells: &[String],
        specs: &[super::header::FieldSpec],
        extras: bool,
        parse: impl FnOnce(&Row<'_>, &mut Notes) -> Result<T, Problems>,
    ) -> Result<Read<T>, Vec<FieldError>> {
        let header = match map_header(names, specs, extras, b',') {
            Ok(h) => h,
            Err(ImportError::MissingColumns { missing, .. }) => {
                return Err(missing
                    .iter()
                    .map(|m| FieldError {
                        index,
                        field: m.column.to_string(),
                        message: "required".into(),
                        hint: hint_for(m.column),
                        outcome: FieldOutcome::Rejected,
                    })
                    .collect());
            }
            Err(ImportError::DuplicateColumn { second, column, .. }) => {
                return Err(vec![FieldError {
                    index,
                    field: second,
                    message: format!("gives `{column}` a second time"),
                    hint: "send each field once".into(),
                    outcome: FieldOutcome::Rejected,
                }]);
            }
            Err(e) => {
                return Err(vec![FieldError {
                    index,
                    field: String::new(),
                    message: e.to_string(),
                    hint: "keys are the CSV column names: see docs/integrator.md, Ingest API"
                        .into(),
                    outcome: FieldOutcome::Rejected,
                }]);
            }
        };
        let row = Row {
            header: &header,
            specs,
            cells: cells.iter().map(String::as_str).collect(),
        };
        let mut notes = Notes::new();
        match parse(&row, &mut notes) {
            Ok(value) => {
                notes.sort_by_key(|n| n.column);
                let notes = notes
                    .into_iter()
                    .map(|n| {
                        let outcome = if n.refused {
                            FieldOutcome::LeftOut
                        } else {
                            FieldOutcome::Normalised
                        };
                        field_error(index, &n.reason, outcome)
                    })
                    .collect();
                Ok((value, notes))
            }
            Err(mut problems) => {
                problems.extend(
                    notes
                        .into_iter()
                        .filter(|n| n.refused)
                        .map(|n| (n.column, n.reason)),
                );
                problems.sort_by_key(|(column, _)| *column);
                Err(problems
                    .into_iter()
                    .map(|(_, why)| field_error(index, &why, FieldOutcome::Rejected))
                    .collect())
            }
        }
    }
}

/// `column `x`: why` (the row parsers' wording) → field `x`, message `why`.
fn field_error(index: usize, why: &str, outcome: FieldOutcome) -> FieldError {
    let (field, message) = why
        .strip_prefix("column `")
        .and_then(|rest| rest.split_once("`: "))
        .map_or((String::new(), why.to_string()), |(f, m)| {
            (f.to_string(), m.to_string())
        });
    let hint = hint_for(&field);
    FieldError {
        index,
        field,
        message,
        hint,
        outcome,
    }
}

/// What a valid value of a field looks like.
fn hint_for(field: &str) -> String {
    let lower = field.to_ascii_lowercase();
    let h = match lower.as_str() {
        "external_id" | "id" | "customer_id" | "order_id" => {
            "a non-empty string: your system's id, stable across updates"
        }
        "customer" | "customer_external_id" => {
            "the external_id of a customer sent before (POST /api/customers)"
        }
        "first_name" | "firstname" | "name" | "last_name" | "lastname" | "surname" => {
            "a name of at most 100 characters, without control characters"
        }
        "email" | "e-mail" | "mail" | "email_address" => "an address such as ana@example.com",
        "phone" | "mobile" | "tel" | "phone_number" => {
            "E.164 such as +40721000001 (national numbers use defaults.country_code)"
        }
        "locale" | "language" | "lang" => "a language tag such as en, ro or ro-MD",
        "time_zone" | "timezone" | "tz" => "an IANA zone such as Europe/Bucharest",
        "birthday" | "birth_date" | "dob" => "YYYY-MM-DD, or --MM-DD without the year",
        "signup_date" | "signup" | "created" => "YYYY-MM-DD (with the year)",
        "preferred_channel" | "channel" => "email or sms",
        "ordered_at" | "date" | "time" | "created_at" => {
            "RFC 3339 such as 2027-03-08T14:05:00+02:00 (without an offset: defaults.time_zone)"
        }
        "amount" | "total" | "sum" => "a decimal amount such as 12.50 (negative for a refund)",
        "currency" => "an ISO 4217 code such as RON, EUR, USD",
        f if f.starts_with("date:") || f.starts_with("dates.") => {
            "YYYY-MM-DD, or --MM-DD without the year"
        }
        _ => "see docs/integrator.md, Ingest API",
    };
    h.to_string()
}

/// An object's keys and values as a header and cells; nested `dates`/`attributes` objects
/// become `date:`/`attr:` keys (customers only).
fn flatten(
    index: usize,
    item: &Value,
    extras: bool,
) -> Result<(Vec<String>, Vec<String>), Vec<FieldError>> {
    let Value::Object(map) = item else {
        return Err(vec![FieldError {
            index,
            field: String::new(),
            outcome: FieldOutcome::Rejected,
            message: "expected a JSON object".into(),
            hint: if extras {
                "{\"external_id\": \"c1\", \"email\": \"ana@example.com\", ...}".into()
            } else {
                "{\"external_id\": \"o1\", \"customer\": \"c1\", \"ordered_at\": \"...\", \"amount\": \"12.50\", \"currency\": \"RON\"}".into()
            },
        }]);
    };
    let mut names = Vec::with_capacity(map.len());
    let mut cells = Vec::with_capacity(map.len());
    let mut errors = Vec::new();
    let mut push = |name: String, v: &Value, errors: &mut Vec<FieldError>| match scalar(v) {
        Some(s) => {
            names.push(name);
            cells.push(s);
        }
        None => errors.push(FieldError {
            index,
            hint: hint_for(&name),
            field: name,
            message: "expected a string, a number or null".into(),
            outcome: FieldOutcome::Rejected,
        }),
    };
    for (key, v) in map {
        let nested = match key.as_str() {
            "dates" if extras => Some("date:"),
            "attributes" if extras => Some("attr:"),
            _ => None,
        };
        match (nested, v) {
            (Some(prefix), Value::Object(inner)) => {
                for (k, v) in inner {
                    push(format!("{prefix}{k}"), v, &mut errors);
                }
            }
            (Some(_), Value::Null) => {}
            _ => push(key.clone(), v, &mut errors),
        }
    }
    if errors.is_empty() {
        Ok((names, cells))
    } else {
        Err(errors)
    }
}

/// A value as a cell: trimmed text; `null` is empty.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The items of a request body: one object, or an array of them.
pub fn items(body: &Value) -> Vec<&Value> {
    match body {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reader() -> JsonReader {
        JsonReader::new(&ImportOptions {
            encoding: None,
            delimiter: None,
            default_country_code: Some("40".into()),
            default_locale: "ro".into(),
            default_time_zone: "Europe/Bucharest".into(),
        })
        .unwrap()
    }

    #[test]
    fn a_customer_reads_like_a_csv_row() {
        let c = reader()
            .customer(
                0,
                &json!({"external_id": "c1", "first_name": "Ana", "mail": "Ana@Example.COM",
                        "phone": "0721 000 001", "birthday": "--03-01", "tier": "gold",
                        "dates": {"wedding": "2010-06-15"}, "attributes": {"city": "Iasi"},
                        "last_name": null}),
            )
            .unwrap();
        let (c, notes) = c;
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c.external_id, "c1");
        assert_eq!(c.email.unwrap().as_str(), "Ana@example.com");
        assert_eq!(c.phone.unwrap().as_str(), "+40721000001");
        assert_eq!(c.locale.as_str(), "ro");
        assert_eq!(c.time_zone, "Europe/Bucharest");
        assert_eq!(c.last_name, None);
        assert_eq!(c.custom_dates["wedding"].to_string(), "2010-06-15");
        assert_eq!(c.attributes["tier"], "gold");
        assert_eq!(c.attributes["city"], "Iasi");
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = reader()
            .customer(
                3,
                &json!({"external_id": "c1", "email": "ana-at-example", "birthday": "31.02", "locale": ["ro"]}),
            )
            .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["locale"]);
        let e = reader()
            .customer(
                3,
                &json!({"external_id": "c1", "email": "ana-at-example", "birthday": "31.02"}),
            )
            .unwrap_err();
        let fields: Vec<(usize, &str)> = e.iter().map(|f| (f.index, f.field.as_str())).collect();
        // In key order (JSON objects are read sorted by key).
        assert_eq!(fields, [(3, "birthday"), (3, "email")]);
        assert!(e[1].message.contains("missing `@`"), "{e:?}");
        assert!(e[1].hint.contains("ana@example.com"));
        let e = reader()
            .customer(0, &json!({"email": "a@b.co"}))
            .unwrap_err();
        assert_eq!(
            (e[0].field.as_str(), e[0].message.as_str()),
            ("external_id", "required")
        );
        let e = reader().customer(0, &json!("c1")).unwrap_err();
        assert_eq!(e[0].message, "expected a JSON object");
    }

    #[test]
    fn a_refused_contact_value_leaves_the_item_stored_without_it() {
        let (c, notes) = reader()
            .customer(
                2,
                &json!({"external_id": "c1", "first_name": "Ana\nMaria", "last_name": "Pop\u{7}",
                        "email": "ana..pop@example.com", "phone": "0721 000 001"}),
            )
            .unwrap();
        assert_eq!(
            (
                c.email,
                c.phone.unwrap().as_str(),
                c.first_name.as_deref(),
                c.last_name
            ),
            (None, "+40721000001", Some("Ana Maria"), None)
        );
        assert_eq!(
            c.refused,
            crate::import::Refused {
                first_name: false,
                last_name: true,
                email: true,
                phone: false
            }
        );
        let got: Vec<(usize, &str, FieldOutcome)> = notes
            .iter()
            .map(|n| (n.index, n.field.as_str(), n.outcome))
            .collect();
        assert_eq!(
            got,
            [
                (2, "email", FieldOutcome::LeftOut),
                (2, "first_name", FieldOutcome::Normalised),
                (2, "last_name", FieldOutcome::LeftOut),
            ]
        );
        assert!(notes[0].message.contains("follow another dot"), "{notes:?}");
        assert!(notes[2].message.contains("control character"), "{notes:?}");
        assert!(notes[2].hint.contains("100 characters"), "{notes:?}");
        assert!(!notes[2].message.contains('\u{7}'), "escaped: {notes:?}");
    }

    #[test]
    fn an_order_takes_numbers_and_local_times() {
        let o = reader()
            .order(
                0,
                &json!({"external_id": "o1", "customer": "c1", "ordered_at": "2027-03-08 10:00",
                        "amount": 12.5, "currency": "RON", "note": "ignored"}),
            )
            .unwrap();
        assert_eq!(o.amount_minor, 1250);
        assert_eq!(o.ordered_at.to_string(), "2027-03-08T08:00:00Z");
        let e = reader()
            .order(1, &json!({"external_id": "o1", "customer": "c1", "amount": "1,234", "currency": "eur"}))
            .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert!(fields.contains(&"ordered_at"), "{e:?}");
    }
}
