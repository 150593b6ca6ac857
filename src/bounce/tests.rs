//! The corpus: every file of tests/fixtures/bounces/ with what it must read as.

use super::*;
use crate::domain::FeedbackKind::{self, *};

/// `(file, kind (None: unclassified), status, recipient, returned Message-ID)`, one row per
/// report the file carries.
type Row = (
    &'static str,
    Option<FeedbackKind>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

const CORPUS: &[Row] = &[
    (
        "postfix-user-unknown.eml",
        Some(HardBounce),
        Some("5.1.1"),
        Some("maria@example.com"),
        Some("r42.birthday.a1b2c3@shop.example"),
    ),
    (
        "postfix-delayed.eml",
        Some(Ignored),
        Some("4.4.1"),
        Some("ion@example.net"),
        Some("r43.birthday.d4e5f6@shop.example"),
    ),
    (
        "exim-user-unknown.eml",
        Some(HardBounce),
        Some("5.1.1"),
        Some("elena@customer-isp.example"),
        Some("r44.winback.0a0b0c@shop.example"),
    ),
    (
        "qmail-user-unknown.eml",
        Some(HardBounce),
        Some("5.1.1"),
        Some("petru@oldhost.example"),
        Some("r45.points.112233@shop.example"),
    ),
    // No status code: the phrase says the account does not exist.
    (
        "yahoo-failure-notice.eml",
        Some(HardBounce),
        None,
        Some("andrei.moldovan@yahoo.com"),
        Some("r46.thanks.445566@shop.example"),
    ),
    (
        "exchange-2003-ndr.eml",
        Some(HardBounce),
        Some("5.1.1"),
        Some("victor.cebotari@corp.example"),
        Some("r47.anniversary.778899@shop.example"),
    ),
    (
        "outlook-o365-dsn.eml",
        Some(HardBounce),
        Some("5.1.10"),
        Some("natalia.ursu@outlook.com"),
        Some("r48.birthday.aabbcc@shop.example"),
    ),
    (
        "gmail-dsn.eml",
        Some(HardBounce),
        Some("5.1.1"),
        Some("mihai.botnaru@gmail.com"),
        Some("r49.birthday.ddeeff@shop.example"),
    ),
    (
        "gmail-legacy-mailbox-full.eml",
        Some(SoftBounce),
        Some("5.2.2"),
        Some("ana.ceban@gmail.com"),
        Some("r50.nameday.0f0e0d@shop.example"),
    ),
    // A block of the sender (our reputation), not of the address: soft.
    (
        "ses-policy-block.eml",
        Some(SoftBounce),
        Some("5.7.1"),
        Some("dorin@strict-isp.example"),
        Some("r51.winback.abcdef@shop.example"),
    ),
    (
        "arf-yahoo-complaint.eml",
        Some(Complaint),
        None,
        Some("sorina.lupu@yahoo.com"),
        Some("r52.offers.5a5b5c@shop.example"),
    ),
    (
        "arf-hotmail-jmrp.eml",
        Some(Complaint),
        None,
        Some("vlad.rotaru@hotmail.com"),
        Some("r53.birthday.9c8b7a@shop.example"),
    ),
    (
        "vacation-en.eml",
        Some(Ignored),
        None,
        None,
        Some("r54.birthday.313233@shop.example"),
    ),
    ("vacation-de.eml", Some(Ignored), None, None, None),
    (
        "vacation-fr-x-autoreply.eml",
        Some(Ignored),
        None,
        None,
        None,
    ),
    // Nothing says what happened: kept for review, never counted.
    ("junk-newsletter.eml", None, None, None, None),
    (
        "dsn-without-status.eml",
        None,
        None,
        Some("someone@odd.example"),
        Some("r58.hello.424242@shop.example"),
    ),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/bounces/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_corpus_reads_as_expected() {
    let mut files: Vec<&str> = CORPUS.iter().map(|r| r.0).collect();
    files.dedup();
    for file in files {
        let got: Vec<_> = classify(&fixture(file))
            .into_iter()
            .map(|r| (r.kind, r.status, r.recipient, r.message_id))
            .collect();
        let want: Vec<_> = CORPUS
            .iter()
            .filter(|r| r.0 == file)
            .map(|r| {
                (
                    r.1,
                    r.2.map(String::from),
                    r.3.map(String::from),
                    r.4.map(String::from),
                )
            })
            .collect();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn every_fixture_is_in_the_table() {
    let dir = format!("{}/tests/fixtures/bounces", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".eml") {
            assert!(
                CORPUS.iter().any(|r| r.0 == name),
                "{name} is not in CORPUS"
            );
        }
    }
}

#[test]
fn the_verp_address_is_offered_for_matching() {
    let parsed = parse(&fixture("postfix-user-unknown.eml"));
    assert_eq!(
        parsed.addresses.first().map(String::as_str),
        Some("bounces+d42-0123456789abcdef0123@shop.example")
    );
    assert_eq!(
        parsed.message_id.as_deref(),
        Some("20261206170002.4Y1B22Y5Qzz1@relay.shop.example")
    );
}

#[test]
fn each_recipient_group_of_a_dsn_is_one_report() {
    let raw = b"From: MAILER-DAEMON@relay.example\r\nTo: bounces@shop.example\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; relay.example\r\n\r\n\
Final-Recipient: rfc822; a@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n\
Final-Recipient: rfc822; b@example.com\r\nAction: failed\r\nStatus: 5.0.0\r\n\
Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n\
Final-Recipient: rfc822; c@example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n\
--b--\r\n";
    let got: Vec<_> = classify(raw)
        .into_iter()
        .map(|r| (r.recipient.unwrap(), r.kind, r.status.unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "a@example.com".to_string(),
                Some(SoftBounce),
                "5.2.2".to_string()
            ),
            // A class-only status takes the diagnostic's precise one.
            (
                "b@example.com".to_string(),
                Some(HardBounce),
                "5.1.1".to_string()
            ),
            (
                "c@example.com".to_string(),
                Some(Delivered),
                "2.0.0".to_string()
            ),
        ]
    );
}

#[test]
fn garbage_is_one_unclassified_report() {
    for raw in [
        &b""[..],
        b"\0\0\0",
        b"no headers at all",
        b"Subject: hi\r\n\r\nhello",
    ] {
        let reports = classify(raw);
        assert_eq!(reports.len(), 1, "{raw:?}");
        assert_eq!(reports[0].kind, None, "{raw:?}");
    }
}

#[test]
fn addresses_and_codes_are_read_from_text() {
    use super::headers::{addresses_in, status_in};
    assert_eq!(
        addresses_in("RCPT TO:<Ana@Example.com>: 550 <ana@example.com> x@y"),
        vec!["ana@example.com".to_string()]
    );
    assert_eq!(status_in("550-5.1.1 The email"), Some("5.1.1".into()));
    assert_eq!(status_in("<host #5.1.1>"), Some("5.1.1".into()));
    assert_eq!(status_in("(5.2.2)."), Some("5.2.2".into()));
    assert_eq!(status_in("version 1.5.1.2 and 10.5.1.1"), None);
    assert_eq!(status_in("mta1042.mail 554: delivery error"), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// No input panics the parser: random bytes, and every fixture cut anywhere or with a
    /// byte changed, read as at least one report.
    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
                       file in 0usize..17, cut in 0usize..8000, pos in 0usize..8000, byte in proptest::prelude::any::<u8>()) {
        proptest::prop_assert!(!classify(&bytes).is_empty());
        let name = CORPUS[file % CORPUS.len()].0;
        let mut raw = fixture(name);
        raw.truncate(cut.min(raw.len()));
        proptest::prop_assert!(!classify(&raw).is_empty());
        if !raw.is_empty() {
            let i = pos % raw.len();
            raw[i] = byte;
            proptest::prop_assert!(!classify(&raw).is_empty());
        }
    }
}
