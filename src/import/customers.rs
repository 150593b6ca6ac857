//! Customer rows.

use std::collections::BTreeMap;
use std::io::Read;

use crate::domain::{Channel, Email, Locale, Name, Phone, YearlyDate, parse_zone};

use super::header::{FieldSpec, Kind};
use super::table::{Note, Notes, ParseRow, Problems, Row, Rows, Table};
use super::{CustomerRecord, ImportError, ImportOptions, Refused, validate};

const EXTERNAL_ID: usize = 0;
const FIRST_NAME: usize = 1;
const LAST_NAME: usize = 2;
const EMAIL: usize = 3;
const PHONE: usize = 4;
const LOCALE: usize = 5;
const TIME_ZONE: usize = 6;
const BIRTHDAY: usize = 7;
const SIGNUP_DATE: usize = 8;
const PREFERRED_CHANNEL: usize = 9;

/// The customer columns and the names accepted for them (compared ignoring case, spaces,
/// `_`, `-` and `.`).
pub(super) const CUSTOMER_COLUMNS: &[FieldSpec] = &[
    FieldSpec {
        name: "external_id",
        aliases: &["id", "customer_id"],
        required: true,
    },
    FieldSpec {
        name: "first_name",
        aliases: &["firstname", "name"],
        required: false,
    },
    FieldSpec {
        name: "last_name",
        aliases: &["lastname", "surname"],
        required: false,
    },
    FieldSpec {
        name: "email",
        aliases: &["e-mail", "mail", "email_address"],
        required: false,
    },
    FieldSpec {
        name: "phone",
        aliases: &["mobile", "tel", "phone_number"],
        required: false,
    },
    FieldSpec {
        name: "locale",
        aliases: &["language", "lang"],
        required: false,
    },
    FieldSpec {
        name: "time_zone",
        aliases: &["timezone", "tz"],
        required: false,
    },
    FieldSpec {
        name: "birthday",
        aliases: &["birth_date", "dob"],
        required: false,
    },
    FieldSpec {
        name: "signup_date",
        aliases: &["signup", "created"],
        required: false,
    },
    FieldSpec {
        name: "preferred_channel",
        aliases: &["channel"],
        required: false,
    },
];

pub(super) fn customer_rows(
    source: Box<dyn Read + Send>,
    opts: &ImportOptions,
) -> Result<Rows<CustomerRecord>, ImportError> {
    let country_code = validate::country_code(opts.default_country_code.as_deref())?;
    let default_locale = validate::locale(&opts.default_locale)?;
    let default_zone = validate::zone(&opts.default_time_zone)?.1;
    let table = Table {
        specs: CUSTOMER_COLUMNS,
        extras: true,
        id_field: EXTERNAL_ID,
    };
    let parse_row: ParseRow<CustomerRecord> = Box::new(move |row, notes| {
        customer(
            row,
            notes,
            country_code.as_deref(),
            &default_locale,
            &default_zone,
        )
    });
    Rows::open(source, opts, &table, parse_row)
}

/// A name cell through [`Name::parse`]: normalised with a note, or refused with one.
fn name(row: &Row<'_>, field: usize, notes: &mut Notes) -> (Option<String>, bool) {
    let (name, refused) = row.soft(field, notes, Name::parse);
    let name = name.flatten();
    if let (Some(n), Some(raw)) = (&name, row.get(field))
        && n.as_str() != raw
    {
        notes.push(Note {
            column: row.column(field),
            reason: format!(
                "column `{}`: line breaks, tabs or repeated spaces became one space",
                row.name(field)
            ),
            refused: false,
        });
    }
    (name.map(Name::into_string), refused)
}

/// One customer row. A refused contact value (name, email, phone) is left out with a note;
/// any other bad value rejects the row.
pub(super) fn customer(
    row: &Row<'_>,
    notes: &mut Notes,
    country_code: Option<&str>,
    default_locale: &Locale,
    default_zone: &str,
) -> Result<CustomerRecord, Problems> {
    let mut errors = Vec::new();
    let external_id = row.required(
        EXTERNAL_ID,
        &mut errors,
        "every customer needs an external id",
    );
    let (first_name, first_refused) = name(row, FIRST_NAME, notes);
    let (last_name, last_refused) = name(row, LAST_NAME, notes);
    let (email, email_refused) = row.soft(EMAIL, notes, Email::parse);
    let (phone, phone_refused) = row.soft(PHONE, notes, |s| Phone::parse(s, country_code));
    let locale = row.parse(LOCALE, &mut errors, Locale::parse);
    let time_zone = row.parse(TIME_ZONE, &mut errors, |s| {
        parse_zone(s).map(|tz| tz.iana_name().unwrap_or(s).to_string())
    });
    let birthday = row.parse(BIRTHDAY, &mut errors, YearlyDate::parse);
    let signup_date = row.parse(SIGNUP_DATE, &mut errors, |s| match YearlyDate::parse(s) {
        Ok(d) if d.year.is_none() => Err(format!(
            "`{s}` has no year: a signup date needs one, as in `2021-03-01`"
        )),
        other => other.map_err(|e| e.to_string()),
    });
    let preferred_channel = row.parse(PREFERRED_CHANNEL, &mut errors, str::parse::<Channel>);

    let mut custom_dates = BTreeMap::new();
    let mut attributes = BTreeMap::new();
    for (index, (column, value)) in row.header.columns.iter().zip(&row.cells).enumerate() {
        if value.is_empty() {
            continue;
        }
        match &column.kind {
            Kind::CustomDate(name) => match YearlyDate::parse(value) {
                Ok(d) => {
                    custom_dates.insert(name.clone(), d);
                }
                Err(e) => errors.push((index, format!("column `{}`: {e}", column.header))),
            },
            Kind::Attribute(name) => {
                attributes.insert(name.clone(), value.to_string());
            }
            Kind::Field(_) | Kind::Ignored => {}
        }
    }

    match external_id {
        Some(external_id) if errors.is_empty() => Ok(CustomerRecord {
            external_id: external_id.to_string(),
            first_name,
            last_name,
            email,
            phone,
            locale: locale.unwrap_or_else(|| default_locale.clone()),
            time_zone: time_zone.unwrap_or_else(|| default_zone.to_string()),
            birthday,
            signup_date,
            preferred_channel,
            custom_dates,
            attributes,
            refused: Refused {
                first_name: first_refused,
                last_name: last_refused,
                email: email_refused,
                phone: phone_refused,
            },
        }),
        _ => Err(errors),
    }
}
