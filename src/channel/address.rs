//! The mailboxes of an email (`From`, `To`): the door's rules ([`Email`], [`Name`]) checked
//! again where lettre builds the header, so a value stored before those rules existed (or
//! written into the database by hand) fails its own message with a clear reason, or loses its
//! display name, instead of reaching lettre's formatter (which panics on a line break in a
//! display name).
//!
//! Its tests pin the contract between the door and the wire: every address [`Email::parse`]
//! accepts is one lettre parses and formats, and every name [`Name::parse`] accepts goes into
//! a built message without breaking its header.

use lettre::Address;
use lettre::message::Mailbox;

use super::SendFailure;
use crate::domain::{Email, Name};

/// A mailbox for `email` with the display name `name`: the address must pass [`Email::parse`]
/// and lettre's `Address`; a name that [`Name::parse`] refuses is left out (the message still
/// goes, to the bare address), one it normalises is written normalised.
pub(super) fn mailbox(name: Option<&str>, email: &str) -> Result<Mailbox, SendFailure> {
    let invalid = |why: String| SendFailure::permanent(format!("invalid address: {why}"));
    let checked = Email::parse(email).map_err(|e| invalid(e.to_string()))?;
    let address = checked
        .as_str()
        .parse::<Address>()
        .map_err(|e| invalid(format!("`{}`: {e}", checked.as_str())))?;
    let name = name
        .and_then(|n| Name::parse(n).ok().flatten())
        .map(Name::into_string);
    Ok(Mailbox::new(name, address))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::email::{EmailParts, build_email};
    use super::*;

    /// The edge cases of issue 23: (address, accepted by the import before it, accepted by
    /// lettre, accepted now). Every one the import accepted and lettre did not failed later,
    /// at send time, with a misleading "render: …" error.
    const EDGE_CASES: &[(&str, bool, bool, bool)] = &[
        ("ana@example.com", true, true, true),
        ("Ana.Maria+promo@Example.COM", true, true, true),
        ("o'brien@example.ie", true, true, true),
        ("a!#$%&'*+-/=?^_`{|}~@example.com", true, true, true),
        ("ana@пример.рф", true, true, true),
        ("ana@münchen.de", true, true, true),
        ("анна@пример.рф", true, true, false),
        ("ana@xn--mnchen-3ya.de", true, true, true),
        ("ana@sub-domain.example.co.uk", true, true, true),
        ("ana@exa_mple.com", true, true, false),
        ("ana@[192.0.2.1]", true, true, false),
        ("ana@192.0.2.1", true, true, false),
        ("\"ana.maria\"@example.com", true, true, false),
        ("a..b@example.com", true, false, false),
        (".ana@example.com", true, false, false),
        ("ana.@example.com", true, false, false),
        ("ana(comment)@example.com", true, false, false),
        ("ana,maria@example.com", true, false, false),
        ("ana;maria@example.com", true, false, false),
        ("ana[1]@example.com", true, false, false),
        ("ana\\x@example.com", true, false, false),
        ("ana\"x@example.com", true, false, false),
        ("ana\u{200b}@example.com", true, false, false),
        ("ana€@example.com", true, false, false),
        ("ana@-example.com", true, false, false),
        ("ana@example-.com", true, false, false),
        ("ana@[IPv6:2001:db8::1]", false, true, false),
        ("ana@exa:mple.com", true, false, false),
        // Lengths: local part 64/65 bytes, a label 63/64 bytes, the whole 254/255.
        (LOCAL_64, true, true, true),
        (LOCAL_65, true, false, false),
        (LABEL_63, true, true, true),
        (LABEL_64, true, false, false),
        ("ana@example..com", false, false, false),
        ("ana@example.com.", false, false, false),
        ("ana@localhost", false, true, false),
        ("ana maria@example.com", false, false, false),
        (
            "ana\r\nBcc: x@evil.example@example.com",
            false,
            false,
            false,
        ),
        ("<ana@example.com>", false, false, false),
    ];
    const LOCAL_64: &str =
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com";
    const LOCAL_65: &str =
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com";
    const LABEL_63: &str =
        "ana@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com";
    const LABEL_64: &str =
        "ana@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com";

    /// The import's rule before issue 23, kept here to pin the table's first column.
    fn old_rule(s: &str) -> bool {
        let s = s.trim();
        if s.is_empty()
            || s.len() > 254
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return false;
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return false;
        };
        !(local.is_empty()
            || local.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains(".."))
    }

    /// lettre parses the address and writes it, with a display name, into a message.
    fn lettre_builds(address: &str, name: Option<&str>) -> bool {
        let Ok(a) = address.parse::<Address>() else {
            return false;
        };
        let Ok(from) = "hello@shop.example".parse::<Address>() else {
            return false;
        };
        lettre::Message::builder()
            .from(Mailbox::new(None, from))
            .to(Mailbox::new(name.map(String::from), a))
            .subject("Hi")
            .body(String::from("Hi"))
            .is_ok_and(|m| !m.formatted().is_empty())
    }

    fn parts_build(to: &str, name: Option<&str>) -> bool {
        let subject = format!("Happy birthday, {}!", name.unwrap_or("friend"));
        build_email(&EmailParts {
            from_email: "hello@shop.example",
            from_name: Some("Shop"),
            to_email: to,
            to_name: name,
            subject: &subject,
            html: "<p>Hi</p>",
            text: "Hi",
            message_id: "abc@shop.example",
            date: 1_800_000_000,
            list_unsubscribe: Some("https://shop.example/u/t"),
            dkim: None,
            extra_headers: &[],
        })
        .is_ok()
    }

    #[test]
    fn the_edge_case_addresses_of_issue_23() {
        assert_eq!(
            (
                LOCAL_64.split('@').next().unwrap().len(),
                LOCAL_65.len() - 12
            ),
            (64, 65)
        );
        assert_eq!(
            (LABEL_63.len() - 8, LABEL_64.len() - 8),
            (63, 64),
            "the labels"
        );
        let table: Vec<(&str, bool, bool, bool)> = EDGE_CASES
            .iter()
            .map(|c| {
                (
                    c.0,
                    old_rule(c.0),
                    c.0.parse::<Address>().is_ok(),
                    Email::parse(c.0).is_ok(),
                )
            })
            .collect();
        let wrong: Vec<_> = table
            .iter()
            .zip(EDGE_CASES)
            .filter(|(a, b)| *a != *b)
            .map(|(a, _)| a)
            .collect();
        assert!(
            wrong.is_empty(),
            "rows that differ from the table: {wrong:#?}"
        );
        let (mut failed_at_send, mut now_refused_at_the_door) = (0, 0);
        for &(address, before, lettre, now) in EDGE_CASES {
            assert_eq!(old_rule(address), before, "old rule: {address:?}");
            assert_eq!(
                address.parse::<Address>().is_ok(),
                lettre,
                "lettre: {address:?}"
            );
            let parsed = Email::parse(address);
            assert_eq!(parsed.is_ok(), now, "now: {address:?} {parsed:?}");
            if let Ok(e) = parsed {
                // What the door accepts, the sender can send, through any relay.
                assert!(e.as_str().is_ascii(), "{e:?}");
                assert!(lettre_builds(e.as_str(), Some("Ana")), "{address:?}");
                assert!(parts_build(e.as_str(), Some("Ana Maria")), "{address:?}");
                assert!(mailbox(Some("Ana"), e.as_str()).is_ok(), "{address:?}");
            } else {
                let e = mailbox(None, address).unwrap_err();
                assert!(e.message().starts_with("invalid address:"), "{e}");
                assert!(!e.message().contains(['\r', '\n']), "{e:?}");
            }
            if before && !lettre {
                failed_at_send += 1;
            }
            if before && lettre && !now {
                now_refused_at_the_door += 1;
            }
        }
        // Of the 31 the old rule let in, 16 could never be sent (lettre refused them at send
        // time); 5 more are refused at the door now (no DNS name to deliver to, quoting, or a
        // non-ASCII local part that needs SMTPUTF8).
        let before = EDGE_CASES.iter().filter(|c| c.1).count();
        assert_eq!(
            (before, failed_at_send, now_refused_at_the_door),
            (31, 16, 5)
        );
        // The whole-length limit, with labels that are each within theirs.
        let long = format!("ana@{}.com", vec!["c".repeat(60); 5].join("."));
        assert!(old_rule(&long) == (long.len() <= 254));
        assert!(Email::parse(&long).is_err() && long.parse::<Address>().is_err());
    }

    #[test]
    fn a_refused_display_name_leaves_the_bare_address() {
        let m = mailbox(Some("Ana\u{7}"), "ana@example.com").unwrap();
        assert_eq!(
            (m.name.as_deref(), m.email.as_ref()),
            (None, "ana@example.com")
        );
        let m = mailbox(Some("Ana\r\nMaria"), "ana@example.com").unwrap();
        assert_eq!(m.name.as_deref(), Some("Ana Maria"));
    }

    /// Strings built from the characters that break headers and addresses.
    fn hostile_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\r".to_string()),
            Just("\n".to_string()),
            Just("\r\n".to_string()),
            Just("\t".to_string()),
            Just("\0".to_string()),
            Just("\u{85}".to_string()),
            Just("\u{2028}".to_string()),
            Just("\u{202e}".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("<".to_string()),
            Just(">".to_string()),
            Just("@".to_string()),
            Just(",".to_string()),
            Just(";".to_string()),
            Just(":".to_string()),
            Just(".".to_string()),
            Just("=?utf-8?b?".to_string()),
            Just("?=".to_string()),
            Just("Bcc: x@evil.example".to_string()),
            Just(" ".to_string()),
            Just("-".to_string()),
            Just("ăîșțâ".to_string()),
            Just("Мария".to_string()),
            Just("😀".to_string()),
            Just("\u{200b}".to_string()),
            "[a-z]{1,70}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Issue 23: any name and address the door accepts can be composed into a message
        /// whose header is intact: one `To:`, no injected header, CRLF line ends.
        #[test]
        fn what_the_door_accepts_the_channel_builds(
            name in hostile_text(),
            local in hostile_text(),
            domain in prop_oneof![hostile_text(), Just("example.com".to_string()),
                                  Just("пример.рф".to_string())],
        ) {
            let address = format!("{local}@{domain}");
            let name = Name::parse(&name).ok().flatten();
            let email = Email::parse(&address).ok();
            let to = email.as_ref().map_or("ana@example.com", Email::as_str);
            if let Some(e) = &email {
                prop_assert!(e.as_str().parse::<Address>().is_ok(), "{:?}", e);
                prop_assert!(e.as_str().is_ascii(), "{:?}", e);
            }
            let name = name.as_ref().map(Name::as_str);
            let subject = format!("Happy birthday, {}!", name.unwrap_or("friend"));
            let built = build_email(&EmailParts {
                from_email: "hello@shop.example",
                from_name: Some("Shop"),
                to_email: to,
                to_name: name,
                subject: &subject,
                html: "<p>Hi</p>",
                text: "Hi",
                message_id: "abc@shop.example",
                date: 1_800_000_000,
                list_unsubscribe: Some("https://shop.example/u/t"),
                dkim: None,
                extra_headers: &[],
            });
            let m = built.map_err(|e| TestCaseError::fail(format!("{name:?} {to:?}: {e}")))?;
            let head = &m[..m.find("\r\n\r\n").unwrap()];
            prop_assert!(!head.replace("\r\n", "").contains(['\r', '\n', '\0']), "{}", head);
            let starts: Vec<&str> = head
                .split("\r\n")
                .filter(|l| !l.starts_with([' ', '\t']))
                .map(|l| l.split(':').next().unwrap_or(""))
                .collect();
            prop_assert_eq!(starts.iter().filter(|h| **h == "To").count(), 1, "{}", head);
            for h in &starts {
                prop_assert!(
                    ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
                     "Content-Type", "List-Unsubscribe", "List-Unsubscribe-Post",
                     "Content-Transfer-Encoding"].contains(h),
                    "unexpected header line {:?} in\n{}", h, head
                );
            }
        }
    }
}
