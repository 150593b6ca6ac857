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

const CORPUS: &[Row] = &[(
    "postfix-user-unknown.eml",
    Some(HardBounce),
    Some("5.1.1"),
    Some("maria@example.com"),
    Some("r42.birthday.a1b2c3@shop.example"),
)];

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
