//! Whole-file tests of the import.

use encoding_rs::{WINDOWS_1250, WINDOWS_1251};

use super::*;
use crate::domain::{Channel, YearlyDate};

fn opts() -> ImportOptions {
    ImportOptions {
        encoding: None,
        delimiter: None,
        default_country_code: Some("40".into()),
        default_locale: "ro".into(),
        default_time_zone: "Europe/Bucharest".into(),
    }
}

fn date(y: Option<i16>, m: i8, d: i8) -> YearlyDate {
    YearlyDate {
        year: y,
        month: m,
        day: d,
    }
}

fn errors(p: &Parsed<impl Sized>) -> Vec<(u64, &str)> {
    p.errors
        .iter()
        .map(|e| (e.line, e.reason.as_str()))
        .collect()
}

fn warnings(p: &Parsed<impl Sized>) -> Vec<(u64, &str, bool)> {
    p.warnings
        .iter()
        .map(|w| (w.line, w.reason.as_str(), w.refused))
        .collect()
}

fn ids(p: &Parsed<CustomerRecord>) -> Vec<(u64, &str)> {
    p.records
        .iter()
        .map(|(l, r)| (*l, r.external_id.as_str()))
        .collect()
}

#[test]
fn good_customer_file() {
    let csv = "External ID, First Name ,last_name,E-mail,Mobile,Lang,TZ,DOB,signup,channel\n\
               c1,Ana,Popescu, Ana@Example.COM ,0721 234 567,ro-md,europe/chisinau,1990-03-01,2021-05-20,SMS\n\
               c2,,,,,,,--02-29,,\n";
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    assert_eq!((p.encoding, p.delimiter), ("UTF-8", b','));
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(ids(&p), vec![(2, "c1"), (3, "c2")]);
    let c1 = &p.records[0].1;
    assert_eq!(c1.first_name.as_deref(), Some("Ana"));
    assert_eq!(c1.last_name.as_deref(), Some("Popescu"));
    assert_eq!(c1.email.as_ref().unwrap().as_str(), "Ana@example.com");
    assert_eq!(c1.phone.as_ref().unwrap().as_str(), "+40721234567");
    assert_eq!(c1.locale.as_str(), "ro-MD");
    assert_eq!(c1.time_zone, "Europe/Chisinau");
    assert_eq!(c1.birthday, Some(date(Some(1990), 3, 1)));
    assert_eq!(c1.signup_date, Some(date(Some(2021), 5, 20)));
    assert_eq!(c1.preferred_channel, Some(Channel::Sms));
    assert!(c1.custom_dates.is_empty() && c1.attributes.is_empty());
    // Empty cells: not given, defaults filled in; no email and no phone is still a customer.
    let c2 = &p.records[1].1;
    assert_eq!(
        (c2.first_name.as_ref(), c2.email.as_ref(), c2.phone.as_ref()),
        (None, None, None)
    );
    assert_eq!(
        (c2.locale.as_str(), c2.time_zone.as_str()),
        ("ro", "Europe/Bucharest")
    );
    assert_eq!(c2.birthday, Some(date(None, 2, 29)));
    assert_eq!((c2.signup_date, c2.preferred_channel), (None, None));
}

#[test]
fn semicolon_windows_1251_cyrillic() {
    let text = "id;имя;фамилия;email;lang\r\nk1;\"Иван\";Петров;ivan@mail.ru;ru\r\nk2;Мария;Сидорова;;\r\n";
    // The Cyrillic header names are unknown columns, hence attributes.
    let (bytes, _, unmappable) = WINDOWS_1251.encode(text);
    assert!(!unmappable);
    let p = parse_customers(&bytes, &opts()).unwrap();
    assert_eq!((p.encoding, p.delimiter), ("windows-1251", b';'));
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(ids(&p), vec![(2, "k1"), (3, "k2")]);
    let k1 = &p.records[0].1;
    assert_eq!(k1.attributes.get("имя").map(String::as_str), Some("Иван"));
    assert_eq!(
        k1.attributes.get("фамилия").map(String::as_str),
        Some("Петров")
    );
    assert_eq!(k1.email.as_ref().unwrap().as_str(), "ivan@mail.ru");
    assert_eq!(k1.locale.as_str(), "ru");
    assert_eq!(
        p.records[1].1.attributes.get("имя").map(String::as_str),
        Some("Мария")
    );

    // Named explicitly, with Russian-style first/last name columns.
    let (bytes, _, _) = WINDOWS_1251.encode("id;first_name;last_name\nk3;Ёжик;Туманов\n");
    let named = ImportOptions {
        encoding: Some("windows-1251".into()),
        delimiter: Some(b';'),
        ..opts()
    };
    let p = parse_customers(&bytes, &named).unwrap();
    assert_eq!(p.records[0].1.first_name.as_deref(), Some("Ёжик"));
    assert_eq!(p.records[0].1.last_name.as_deref(), Some("Туманов"));
}

#[test]
fn windows_1250_romanian_gets_comma_below() {
    let text = "id,first_name,last_name,city\nr1,Ştefan,Ţurcanu,Iaşi\nr2,Ioana,Bălţi,Timişoara\n";
    let (bytes, _, unmappable) = WINDOWS_1250.encode(text);
    assert!(!unmappable);
    let p = parse_customers(&bytes, &opts()).unwrap();
    assert_eq!(p.encoding, "windows-1250");
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let r1 = &p.records[0].1;
    assert_eq!(r1.first_name.as_deref(), Some("Ștefan"));
    assert_eq!(r1.last_name.as_deref(), Some("Țurcanu"));
    assert_eq!(r1.attributes.get("city").map(String::as_str), Some("Iași"));
    assert_eq!(p.records[1].1.last_name.as_deref(), Some("Bălți"));
}

#[test]
fn utf8_bom_is_not_part_of_the_first_column() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice("id;email\nb1;b@x.ro\n".as_bytes());
    let p = parse_customers(&bytes, &opts()).unwrap();
    assert_eq!((p.encoding, p.delimiter), ("UTF-8", b';'));
    assert_eq!(ids(&p), vec![(2, "b1")]);
    assert!(p.records[0].1.attributes.is_empty());
}

#[test]
fn bad_rows_are_reported_with_their_lines_and_good_rows_import() {
    let csv = "id,email,phone,tz,birthday,signup_date,channel,locale\n\
               g1,ana@x.ro,,,,,,\n\
               b1,ana@,,,,,,\n\
               b2,,+40 72x,,,,,\n\
               b3,,,Mars/Olympus,,,,\n\
               b4,,,,1990-02-30,,,\n\
               ,ghost@x.ro,,,,,,\n\
               g2,,0040 721 234 567,UTC,31.12,2020-01-01,email,en\n\
               b5,,,,,03-01,fax,russian\n\
               b6,bad,123,,x,,,\n";
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    // A refused email or phone leaves its row imported without it (issue 23).
    assert_eq!(ids(&p), vec![(2, "g1"), (3, "b1"), (4, "b2"), (8, "g2")]);
    assert_eq!(
        warnings(&p),
        vec![
            (
                3,
                "column `email`: invalid email address `ana@`: the domain needs a dot, as in `example.com`; \
                 left out (the rest of the row is imported, a stored value is kept)",
                true
            ),
            (
                4,
                "column `phone`: invalid phone number `+40 72x`: only digits, spaces, dashes, dots, parentheses and a leading + are allowed; \
                 left out (the rest of the row is imported, a stored value is kept)",
                true
            ),
        ]
    );
    assert!(p.records[1].1.email.is_none() && p.records[1].1.refused.email);
    assert!(p.records[2].1.phone.is_none() && p.records[2].1.refused.phone);
    assert_eq!(
        errors(&p),
        vec![
            (
                5,
                "column `tz`: unknown time zone `Mars/Olympus`: expected an IANA name such as `Europe/Bucharest`"
            ),
            (
                6,
                "column `birthday`: invalid date `1990-02-30`: no such day in the calendar"
            ),
            (7, "column `id`: empty; every customer needs an external id"),
            (
                9,
                "column `signup_date`: `03-01` has no year: a signup date needs one, as in `2021-03-01`; \
                 column `channel`: unknown channel `fax`: expected `email` or `sms`; \
                 column `locale`: invalid locale `russian`: expected a language tag such as `en`, `ru` or `ro-MD`"
            ),
            (
                10,
                "column `email`: invalid email address `bad`: missing `@`; \
                 column `phone`: invalid phone number `123`: an international number has 8 to 15 digits; \
                 column `birthday`: invalid date `x`: expected YYYY-MM-DD, --MM-DD or DD.MM.YYYY"
            ),
        ]
    );
    let g2 = &p.records[3].1;
    assert_eq!((g2.time_zone.as_str(), g2.locale.as_str()), ("UTC", "en"));
    assert_eq!(g2.birthday, Some(date(None, 12, 31)));
    assert_eq!(g2.preferred_channel, Some(Channel::Email));
}

#[test]
fn quoted_multiline_fields_blank_lines_and_crlf_keep_lines_right() {
    let csv = "id,first_name,note\r\n\
               q1,\"Ana\r\nMaria\",\"line one\r\nline two, with a comma\r\nline three\"\r\n\
               \r\n\
               q2,Ion,\"say \"\"hi\"\"\"\r\n\
               q3,Ion,x,extra\r\n\
               ,,\r\n\
               q4,Eva,\r\n";
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    // q1 spans lines 2-5, line 6 is blank.
    assert_eq!(ids(&p), vec![(2, "q1"), (7, "q2"), (10, "q4")]);
    let q1 = &p.records[0].1;
    // A name's line break becomes a space (issue 23: it crashed the sender); an
    // attribute keeps its lines.
    assert_eq!(q1.first_name.as_deref(), Some("Ana Maria"));
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert_eq!((p.warnings[0].line, p.warnings[0].refused), (2, false));
    assert_eq!(
        q1.attributes.get("note").map(String::as_str),
        Some("line one\r\nline two, with a comma\r\nline three")
    );
    assert_eq!(
        p.records[1].1.attributes.get("note").map(String::as_str),
        Some("say \"hi\"")
    );
    assert!(p.records[2].1.attributes.is_empty());
    assert_eq!(
        errors(&p),
        vec![(
            8,
            "the row has 4 fields but the header has 3: a `,` or a quote inside an unquoted value?"
        )]
    );
}

#[test]
fn short_rows_and_trailing_empty_fields() {
    let csv = "id;email;phone\nt1;a@x.ro\nt2;b@x.ro;;;\n";
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    assert_eq!(ids(&p), vec![(3, "t2")]);
    assert_eq!(
        errors(&p),
        vec![(
            2,
            "the row has 2 fields but the header has 3: a `;` or a quote inside an unquoted value?"
        )]
    );
}

#[test]
fn duplicate_external_id_keeps_the_first() {
    let csv = "id,first_name\nd1,Ana\nd2,Ion\nd1,Maria\n,\n";
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    assert_eq!(ids(&p), vec![(2, "d1"), (3, "d2")]);
    assert_eq!(p.records[0].1.first_name.as_deref(), Some("Ana"));
    assert_eq!(
        errors(&p),
        vec![(
            4,
            "column `id`: duplicate external_id `d1`, first seen on line 2; the first row is kept"
        )]
    );
}

#[test]
fn missing_required_column_names_it_and_hints() {
    let err = match parse_customers(b"extrnal_id,email\nx,a@b.ro\n", &opts()) {
        Err(e) => e,
        Ok(p) => panic!("imported {} rows", p.records.len()),
    };
    assert_eq!(
        err.to_string(),
        "missing required column `external_id` (or `id`, `customer_id`): did you mean `extrnal_id`?; \
         the header has `extrnal_id`, `email`"
    );
    let err = parse_orders(b"order_id;customer;Order date;amout;currency\n", &opts()).unwrap_err();
    match &err {
        ImportError::MissingColumns {
            missing,
            found,
            hint,
        } => {
            let got: Vec<(&str, Option<&str>)> = missing
                .iter()
                .map(|m| (m.column, m.did_you_mean.as_deref()))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("ordered_at", Some("Order date")),
                    ("amount", Some("amout"))
                ]
            );
            assert_eq!(found.len(), 5);
            assert_eq!(hint, &None);
        }
        other => panic!("{other:?}"),
    }
    // The wrong delimiter named explicitly: one big column.
    let comma = ImportOptions {
        delimiter: Some(b','),
        ..opts()
    };
    let err = parse_customers(b"id;email\n1;a@b.ro\n", &comma).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("it contains `;`: set the delimiter"),
        "{err}"
    );
}

#[test]
fn file_level_errors() {
    assert!(matches!(
        parse_customers(b"", &opts()),
        Err(ImportError::NoHeader)
    ));
    assert!(matches!(
        parse_customers(b"\n\r\n", &opts()),
        Err(ImportError::NoHeader)
    ));
    assert!(matches!(
        parse_customers(b" , \n1,2", &opts()),
        Err(ImportError::NoHeader)
    ));
    assert!(matches!(
        parse_customers(b"id,email,mail\n", &opts()),
        Err(ImportError::DuplicateColumn { column, .. }) if column == "email"
    ));
    let bad_zone = ImportOptions {
        default_time_zone: "Europe/Atlantis".into(),
        ..opts()
    };
    assert!(matches!(
        parse_orders(b"id\n", &bad_zone),
        Err(ImportError::InvalidOption {
            option: "default_time_zone",
            ..
        })
    ));
    let bad_cc = ImportOptions {
        default_country_code: Some("+040".into()),
        ..opts()
    };
    assert!(matches!(
        parse_customers(b"id\n", &bad_cc),
        Err(ImportError::InvalidOption {
            option: "default_country_code",
            ..
        })
    ));
    let bad_delimiter = ImportOptions {
        delimiter: Some(b'"'),
        ..opts()
    };
    assert!(matches!(
        parse_customers(b"id\n", &bad_delimiter),
        Err(ImportError::InvalidOption { .. })
    ));
    let utf8 = ImportOptions {
        encoding: Some("utf-8".into()),
        ..opts()
    };
    // Undecodable bytes in a row fail that row (issue 23); in the header, the file.
    let p = parse_customers(b"id\n1\n\xE9\n2\n", &utf8).unwrap();
    assert_eq!(ids(&p), vec![(2, "1"), (4, "2")]);
    assert_eq!(
        errors(&p),
        vec![(
            3,
            "the row holds bytes that are not valid UTF-8: fix this row, or save the file as UTF-8"
        )]
    );
    assert_eq!(
        parse_customers(b"i\xE9d\n1\n", &utf8)
            .unwrap_err()
            .to_string(),
        "the header (line 1) is not valid UTF-8: save the file as UTF-8 or name its encoding"
    );
    assert_eq!(
        parse_customers(b"i\0d\n1\n", &utf8)
            .unwrap_err()
            .to_string(),
        "the header (line 1) contains NUL bytes: this is not a text file; save it as UTF-8 CSV"
    );
    // A header alone is a valid, empty import.
    let p = parse_customers(b"id,email\n", &opts()).unwrap();
    assert!(p.records.is_empty() && p.errors.is_empty());
}

#[test]
fn custom_dates_and_attributes() {
    let csv = "id,date:Wedding,DATE: first order ,attr:Tier,Club Card,attr:empty\n\
               a1,2015-06-20,--07-01,gold, 1234 ,\n\
               a2,,,,,\n\
               a3,20.06,31.02,silver,,\n";
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    assert_eq!(ids(&p), vec![(2, "a1"), (3, "a2")]);
    let a1 = &p.records[0].1;
    let dates: Vec<(&str, YearlyDate)> = a1
        .custom_dates
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        dates,
        vec![
            ("first_order", date(None, 7, 1)),
            ("wedding", date(Some(2015), 6, 20))
        ]
    );
    let attrs: Vec<(&str, &str)> = a1
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attrs, vec![("club_card", "1234"), ("tier", "gold")]);
    assert!(p.records[1].1.custom_dates.is_empty() && p.records[1].1.attributes.is_empty());
    assert_eq!(
        errors(&p),
        // The domain shows the date normalised, not as written.
        vec![(
            4,
            "column `DATE: first order`: invalid date `--02-31`: no such day in the calendar"
        )]
    );
    // `tier` and `attr:tier` would both fill one attribute.
    assert!(matches!(
        parse_customers(b"id,tier,attr:TIER\n", &opts()),
        Err(ImportError::DuplicateColumn { column, .. }) if column == "attr:tier"
    ));
}

#[test]
fn orders_amounts_times_and_bad_rows() {
    let csv = "Order ID;Customer;Date;Total;Currency;Comment\n\
               o1;c1;2024-06-14T10:00:00+03:00;12.50;RON;first\n\
               o2;c1;2024-06-14 10:00;12,50;ron;\n\
               o3;c2;2024-01-05;\"1 234,50\";EUR;\n\
               o4;c2;14.06.2024 09:30;1234;USD;\n\
               o5;c3;2024-06-15;-5,00;RUB;refund\n\
               o6;c3;2024-06-15;1500;JPY;\n\
               b1;c1;2024-06-14;12.50;EURO;\n\
               b2;c1;2024-06-14;12.5.0;RON;\n\
               b3;c1;yesterday;12.50;RON;\n\
               b4;;2024-06-14;;;\n\
               b5;c1;2024-06-14;1,234;USD;\n\
               o1;c9;2024-06-14;1;RON;\n";
    let p = parse_orders(csv.as_bytes(), &opts()).unwrap();
    assert_eq!(p.delimiter, b';');
    let got: Vec<(u64, &str, &str, String, i64, &str)> = p
        .records
        .iter()
        .map(|(l, o)| {
            (
                *l,
                o.external_id.as_str(),
                o.customer_external_id.as_str(),
                o.ordered_at.to_string(),
                o.amount_minor,
                o.currency.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                2,
                "o1",
                "c1",
                "2024-06-14T07:00:00Z".to_string(),
                1250,
                "RON"
            ),
            (
                3,
                "o2",
                "c1",
                "2024-06-14T07:00:00Z".to_string(),
                1250,
                "RON"
            ),
            (
                4,
                "o3",
                "c2",
                "2024-01-04T22:00:00Z".to_string(),
                123_450,
                "EUR"
            ),
            (
                5,
                "o4",
                "c2",
                "2024-06-14T06:30:00Z".to_string(),
                123_400,
                "USD"
            ),
            (
                6,
                "o5",
                "c3",
                "2024-06-14T21:00:00Z".to_string(),
                -500,
                "RUB"
            ),
            (
                7,
                "o6",
                "c3",
                "2024-06-14T21:00:00Z".to_string(),
                1500,
                "JPY"
            ),
        ]
    );
    assert_eq!(
        errors(&p),
        vec![
            (
                8,
                "column `Currency`: `EURO` is not a currency code: expected 3 letters such as `RON`, `RUB`, `USD` or `EUR`"
            ),
            (
                9,
                "column `Total`: invalid amount `12.5.0`: thousands separators must split the digits into groups of three, as in `1 234 567,89`"
            ),
            (
                10,
                "column `Date`: invalid time `yesterday`: expected `2024-06-14T10:00:00+03:00`, or a local time in \
                 Europe/Bucharest such as `2024-06-14 10:00`, `2024-06-14` or `14.06.2024 10:00`"
            ),
            (
                11,
                "column `Customer`: empty; every order needs its customer's external id; \
                 column `Total`: empty; every order needs an amount; \
                 column `Currency`: empty; every order needs a currency code"
            ),
            (
                12,
                "column `Total`: invalid amount `1,234`: is the `.`/`,` a decimal or a thousands separator? write `1234` or `1234.00`"
            ),
            (
                13,
                "column `Order ID`: duplicate external_id `o1`, first seen on line 2; the first row is kept"
            ),
        ]
    );
}

#[test]
fn row_errors_serialize_for_reports() {
    let e = RowError {
        line: 3,
        reason: "column `email`: empty".into(),
    };
    assert_eq!(e.to_string(), "line 3: column `email`: empty");
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"line":3,"reason":"column `email`: empty"}"#
    );
}

/// Issue 23: a first name with a line break was imported as it was and crashed the sender.
/// Names are normalised (line breaks, tabs, repeated spaces → one space) or refused (other
/// control characters, overlong), with a warning; the row is imported either way.
#[test]
fn names_with_control_characters_are_normalised_or_left_out() {
    let long = "N".repeat(101);
    let csv = format!(
        "id,first_name,last_name,email,phone\n\
         n1,\"Ana\r\nMaria\",\"Pop\tescu  \",ana@x.ro,\n\
         n2,\"Ion\u{7}\",Rusu,,+40721000002\n\
         n3,Eva,{long},eva@x.ro,\n\
         n4,\"Dan\u{1b}[2J\",Bad,dan..x@x.ro,\n\
         n5,\"\u{202e}cba\",Ok,ok@x.ro,\n\
         n6,Nul,\"x\u{0}y\",nul@x.ro,\n"
    );
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    // A NUL byte rejects its row (it is no text), with the line.
    assert_eq!(
        errors(&p),
        vec![(
            8,
            "the row holds a NUL byte, which no text has: fix this row of the export"
        )]
    );
    type Names<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let names: Vec<Names> = p
        .records
        .iter()
        .map(|(_, r)| {
            (
                r.external_id.as_str(),
                r.first_name.as_deref(),
                r.last_name.as_deref(),
                r.email.as_ref().map(|e| e.as_str()),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("n1", Some("Ana Maria"), Some("Pop escu"), Some("ana@x.ro")),
            ("n2", None, Some("Rusu"), None),
            ("n3", Some("Eva"), None, Some("eva@x.ro")),
            ("n4", None, Some("Bad"), None),
            ("n5", None, Some("Ok"), Some("ok@x.ro")),
        ]
    );
    let w: Vec<(u64, bool, &str)> = p
        .warnings
        .iter()
        .map(|w| (w.line, w.refused, w.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        w,
        [
            (2, false, "column `first_name`"),
            (2, false, "column `last_name`"),
            (4, true, "column `first_name`"),
            (5, true, "column `last_name`"),
            (6, true, "column `first_name`"),
            (6, true, "column `email`"),
            (7, true, "column `first_name`"),
        ]
    );
    assert!(
        p.warnings[2]
            .reason
            .contains("`Ion\\u{7}`: contains a control character"),
        "{:?}",
        p.warnings[2]
    );
    assert!(p.warnings[3].reason.contains("longer than 100 characters"));
    assert!(
        p.warnings
            .iter()
            .all(|w| !w.reason.contains(['\0', '\u{1b}', '\u{202e}', '\r']))
    );
    assert!(p.records[1].1.refused.first_name && !p.records[1].1.refused.email);
}

/// A reader handing out at most `n` bytes per read (odd: UTF-16 code units split).
struct Trickle(std::io::Cursor<Vec<u8>>, usize);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn utf16_rows_split_across_reads_decode_whole_with_their_lines() {
    // Big enough that the decoder's 64 KiB reads and the odd trickle split characters
    // (surrogate pairs too) and line breaks everywhere.
    let mut text = String::from("id,first_name,attr:note\r\n");
    let mut want = Vec::new();
    for i in 0..8000 {
        if i % 500 == 499 {
            text.push_str(&format!("c{i},Ana,\"two\r\nlines\"\r\n"));
        } else {
            text.push_str(&format!("c{i},Ștefan Мария 😀,x{i}\r\n"));
        }
        // Each earlier two-line row moves this one a line down.
        want.push((2 + i as u64 + i as u64 / 500, format!("c{i}")));
    }
    let le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    assert!(le.len() > 3 * 65536);
    for chunk in [4097, 65537] {
        let rows = customer_rows(
            Box::new(Trickle(std::io::Cursor::new(le.clone()), chunk)),
            &opts(),
        )
        .unwrap();
        assert_eq!(rows.encoding(), "UTF-16LE");
        let mut got = Vec::new();
        let mut rows = rows;
        while let Some(outcome) = rows.next() {
            match outcome {
                RowOutcome::Record { line, value, .. } => {
                    if !value.external_id.ends_with("99") {
                        assert_eq!(value.first_name.as_deref(), Some("Ștefan Мария 😀"));
                    }
                    got.push((line, value.external_id));
                }
                RowOutcome::Rejected(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, want, "chunk {chunk}");
        assert_eq!(rows.bytes_read(), le.len() as u64);
    }
}

#[test]
fn a_file_of_many_reads_reports_every_bad_line() {
    let mut csv = String::from("external_id,birthday\n");
    let mut bad = Vec::new();
    for i in 0..30_000u64 {
        if i % 1234 == 5 {
            csv.push_str(&format!("b{i},1990-02-30\n"));
            bad.push(i + 2);
        } else {
            csv.push_str(&format!("b{i},1990-02-03\n"));
        }
    }
    let p = parse_customers(csv.as_bytes(), &opts()).unwrap();
    assert_eq!(p.errors.iter().map(|e| e.line).collect::<Vec<_>>(), bad);
    assert_eq!(p.records.len() + bad.len(), 30_000);
}
