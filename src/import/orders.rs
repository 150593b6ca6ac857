//! Order rows: times, amounts in minor units, currency codes.

use std::io::Read;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned, civil};

use super::header::FieldSpec;
use super::table::{ParseRow, Problems, Row, Rows, Table};
use super::{ImportError, ImportOptions, OrderRecord, validate};

const EXTERNAL_ID: usize = 0;
const CUSTOMER: usize = 1;
const ORDERED_AT: usize = 2;
const AMOUNT: usize = 3;
const CURRENCY: usize = 4;

/// The order columns and the names accepted for them (compared ignoring case, spaces, `_`,
/// `-` and `.`). Other columns are ignored.
pub(super) const ORDER_COLUMNS: &[FieldSpec] = &[
    FieldSpec {
        name: "external_id",
        aliases: &["order_id", "id"],
        required: true,
    },
    FieldSpec {
        name: "customer",
        aliases: &["customer_id", "customer_external_id"],
        required: true,
    },
    FieldSpec {
        name: "ordered_at",
        aliases: &["date", "time", "created_at"],
        required: true,
    },
    FieldSpec {
        name: "amount",
        aliases: &["total", "sum"],
        required: true,
    },
    FieldSpec {
        name: "currency",
        aliases: &[],
        required: true,
    },
];

pub(super) fn order_rows(
    source: Box<dyn Read + Send>,
    opts: &ImportOptions,
) -> Result<Rows<OrderRecord>, ImportError> {
    let (zone, zone_name) = validate::zone(&opts.default_time_zone)?;
    let table = Table {
        specs: ORDER_COLUMNS,
        extras: false,
        id_field: EXTERNAL_ID,
    };
    let parse_row: ParseRow<OrderRecord> = Box::new(move |row, _| order(row, &zone, &zone_name));
    Rows::open(source, opts, &table, parse_row)
}

pub(super) fn order(
    row: &Row<'_>,
    zone: &TimeZone,
    zone_name: &str,
) -> Result<OrderRecord, Problems> {
    let mut errors = Vec::new();
    let external_id = row.required(EXTERNAL_ID, &mut errors, "every order needs an external id");
    let customer = row.required(
        CUSTOMER,
        &mut errors,
        "every order needs its customer's external id",
    );
    row.required(
        ORDERED_AT,
        &mut errors,
        "every order needs its date and time",
    );
    let ordered_at = row.parse(ORDERED_AT, &mut errors, |s| parse_time(s, zone, zone_name));
    row.required(CURRENCY, &mut errors, "every order needs a currency code");
    let currency = row.parse(CURRENCY, &mut errors, parse_currency);
    row.required(AMOUNT, &mut errors, "every order needs an amount");
    // An unreadable currency still lets the amount be checked, with the usual 2 decimals.
    let exponent = currency.as_deref().map_or(2, minor_unit_exponent);
    let amount_minor = row.parse(AMOUNT, &mut errors, |s| {
        parse_amount(s, exponent, currency.as_deref())
    });
    match (external_id, customer, ordered_at, amount_minor, currency) {
        (
            Some(external_id),
            Some(customer),
            Some(ordered_at),
            Some(amount_minor),
            Some(currency),
        ) if errors.is_empty() => Ok(OrderRecord {
            external_id: external_id.to_string(),
            customer_external_id: customer.to_string(),
            ordered_at,
            amount_minor,
            currency,
        }),
        _ => Err(errors),
    }
}

/// A time with an offset (`2024-06-14T10:00:00+03:00`, `...Z`), one with a zone annotation
/// (`2024-06-14T10:00[Europe/Chisinau]`), or a local time in `zone`: `2024-06-14 10:00[:00]`,
/// `2024-06-14`, `14.06.2024[ 10:00[:00]]`. A local time that falls in a DST gap or overlap is
/// resolved the usual way (jiff's "compatible": later in a gap, earlier in an overlap).
pub(super) fn parse_time(s: &str, zone: &TimeZone, zone_name: &str) -> Result<Timestamp, String> {
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    if s.contains('[') {
        return s
            .parse::<Zoned>()
            .map(|z| z.timestamp())
            .map_err(|e| format!("invalid time `{s}`: {e}"));
    }
    let local = s.parse::<civil::DateTime>().ok().or_else(|| {
        ["%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y"]
            .into_iter()
            .find_map(|format| {
                let parsed = jiff::fmt::strtime::parse(format, s).ok()?;
                parsed.to_datetime().ok().or_else(|| {
                    parsed
                        .to_date()
                        .ok()
                        .map(|d| d.to_datetime(civil::Time::midnight()))
                })
            })
    });
    let Some(local) = local else {
        return Err(format!(
            "invalid time `{s}`: expected `2024-06-14T10:00:00+03:00`, or a local time in {zone_name} \
             such as `2024-06-14 10:00`, `2024-06-14` or `14.06.2024 10:00`"
        ));
    };
    zone.to_ambiguous_timestamp(local)
        .compatible()
        .map_err(|e| format!("invalid time `{s}` in {zone_name}: {e}"))
}

/// Three ASCII letters, any case, returned upper case.
pub(super) fn parse_currency(s: &str) -> Result<String, String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err(format!(
            "`{s}` is not a currency code: expected 3 letters such as `RON`, `RUB`, `USD` or `EUR`"
        ))
    }
}

/// Digits after the decimal separator in the currency's minor unit (ISO 4217): 2 unless listed.
pub(super) fn minor_unit_exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Characters that group thousands besides `.`/`,`: spaces (also no-break ones) and `'`.
fn is_group_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\'')
}

/// An amount in minor units (`exponent` digits after the separator): `12.50`, `12,50`,
/// `1 234,50`, `1.234,50`, `1,234.50`, `1234` (whole units), `-12.50` (a refund).
///
/// The separator that comes last (and only once) is the decimal one; `.` or `,` repeated is a
/// thousands separator, and thousands separators must make groups of three digits. A single
/// `.` or `,` followed by exactly three digits (`1,234`) is ambiguous for a currency with 1 or
/// 2 decimals and is rejected rather than guessed; with 0 decimals it groups thousands, with 3
/// it is the decimal separator.
pub(super) fn parse_amount(s: &str, exponent: u32, currency: Option<&str>) -> Result<i64, String> {
    let bad = |why: &str| Err(format!("invalid amount `{s}`: {why}"));
    let (negative, body) = match s.strip_prefix(['-', '\u{2212}']) {
        Some(rest) => (true, rest.trim_start()),
        None => (false, s.strip_prefix('+').unwrap_or(s).trim_start()),
    };
    if body.is_empty()
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',' || is_group_space(c))
    {
        return bad(
            "expected digits with an optional leading minus, `.` or `,` before the decimals and spaces between thousands",
        );
    }
    let last_sep = body.rfind(['.', ',']);
    let decimal = match last_sep {
        None => None,
        Some(at) => {
            let sep = body[at..].chars().next().unwrap_or('.');
            let other = if sep == '.' { ',' } else { '.' };
            let count = body.matches(sep).count();
            let decimals = body.len() - at - 1;
            if body.contains(other) {
                if count > 1 {
                    return bad("the decimal separator appears twice");
                }
                Some(at)
            } else if count > 1 || (decimals == 3 && exponent == 0) {
                None
            } else if decimals == 3 && exponent < 3 {
                return bad(
                    "is the `.`/`,` a decimal or a thousands separator? write `1234` or `1234.00`",
                );
            } else {
                Some(at)
            }
        }
    };
    let (int_part, frac_part) = match decimal {
        Some(at) => (&body[..at], &body[at + 1..]),
        None => (body, ""),
    };
    if decimal.is_some() {
        if frac_part.is_empty() || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return bad("expected digits after the decimal separator");
        }
        if frac_part.len() > exponent as usize {
            let currency = currency.unwrap_or("the currency");
            return match exponent {
                0 => bad(&format!(
                    "{currency} has no minor unit: write a whole amount"
                )),
                n => bad(&format!(
                    "{currency} has {n} decimal places, not {}",
                    frac_part.len()
                )),
            };
        }
    }
    let groups: Vec<&str> = int_part
        .split(|c: char| c == '.' || c == ',' || is_group_space(c))
        .collect();
    let grouped_ok = match groups.as_slice() {
        [single] => !single.is_empty() || decimal.is_some(),
        [first, rest @ ..] => (1..=3).contains(&first.len()) && rest.iter().all(|g| g.len() == 3),
        [] => false,
    };
    if !grouped_ok {
        return bad(
            "thousands separators must split the digits into groups of three, as in `1 234 567,89`",
        );
    }
    let mut digits: String = groups.concat();
    digits.push_str(frac_part);
    for _ in frac_part.len()..exponent as usize {
        digits.push('0');
    }
    let digits = digits.trim_start_matches('0');
    let minor = if digits.is_empty() {
        0
    } else {
        match digits.parse::<i64>() {
            Ok(v) => v,
            Err(_) => return bad("too large"),
        }
    };
    Ok(if negative { -minor } else { minor })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        for (s, want) in [
            ("12.50", 1250),
            ("12,50", 1250),
            ("1 234,50", 123_450),
            ("1\u{a0}234,5", 123_450),
            ("1234", 123_400),
            ("1.234,50", 123_450),
            ("1,234.50", 123_450),
            ("1.000.000", 100_000_000),
            ("1'000", 100_000),
            ("0,05", 5),
            (",5", 50),
            ("-12.50", -1250),
            ("- 3", -300),
            ("+7", 700),
            ("0", 0),
        ] {
            assert_eq!(parse_amount(s, 2, Some("RON")), Ok(want), "{s}");
        }
        assert_eq!(parse_amount("1.000", 0, Some("JPY")), Ok(1000));
        assert_eq!(parse_amount("1,234", 3, Some("KWD")), Ok(1234));
        for bad in [
            "", "-", "12.5.0,1", "1,234", "12.505", "12 34", "1,23,456", "12.", "12$", "€12",
            "abc", "1e5", "--1",
        ] {
            assert!(
                parse_amount(bad, 2, Some("EUR")).is_err(),
                "{bad} should be rejected"
            );
        }
        assert_eq!(
            parse_amount("12,50", 0, Some("JPY")),
            Err("invalid amount `12,50`: JPY has no minor unit: write a whole amount".to_string())
        );
        assert_eq!(
            parse_amount("1,234", 2, Some("EUR")),
            Err("invalid amount `1,234`: is the `.`/`,` a decimal or a thousands separator? write `1234` or `1234.00`"
                .to_string())
        );
        assert!(
            parse_amount("99999999999999999999", 2, None)
                .unwrap_err()
                .ends_with("too large")
        );
    }

    #[test]
    fn times() {
        let zone = TimeZone::get("Europe/Chisinau").unwrap();
        let t = |s| parse_time(s, &zone, "Europe/Chisinau").map(|t| t.to_string());
        assert_eq!(
            t("2024-06-14T10:00:00+03:00").unwrap(),
            "2024-06-14T07:00:00Z"
        );
        assert_eq!(t("2024-06-14T10:00:00Z").unwrap(), "2024-06-14T10:00:00Z");
        assert_eq!(t("2024-06-14 10:00").unwrap(), "2024-06-14T07:00:00Z"); // summer: +03:00
        assert_eq!(t("2024-01-14 10:00:30").unwrap(), "2024-01-14T08:00:30Z"); // winter: +02:00
        assert_eq!(t("2024-06-14").unwrap(), "2024-06-13T21:00:00Z");
        assert_eq!(t("14.06.2024 10:00").unwrap(), "2024-06-14T07:00:00Z");
        assert_eq!(t("4.1.2024").unwrap(), "2024-01-03T22:00:00Z");
        assert_eq!(
            t("2024-06-14T10:00[Europe/London]").unwrap(),
            "2024-06-14T09:00:00Z"
        );
        for bad in [
            "2024-13-01",
            "14/06/2024",
            "yesterday",
            "2024-06-14 25:00",
            "2024-06-14T10:00[Mars/Base]",
        ] {
            assert!(t(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn currencies() {
        assert_eq!(parse_currency("ron"), Ok("RON".to_string()));
        assert!(parse_currency("EURO").is_err());
        assert!(parse_currency("€").is_err());
        assert_eq!(minor_unit_exponent("JPY"), 0);
        assert_eq!(minor_unit_exponent("MDL"), 2);
    }
}
