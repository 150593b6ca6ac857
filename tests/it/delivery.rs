//! Delivery through real peers: Postfix's smtp-sink and a Kannel gateway with fakesmsc.

use std::time::Duration;

use ritualist::app::DispatchReport;

use crate::harness::{Db, HEADER, TestApp, at};
use crate::peers::{
    Kannel, ReceivedSms, SmtpSink, dumped_envelope_recipients, dumped_message_body,
    join_concatenated,
};

fn smtp_delivery(port: u16) -> String {
    format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: plain\n      timeout_secs: 5\n      connections: 3\n  sms:\n    transport: outbox\n"
    )
}

fn birthdays(n: usize, date: &str) -> String {
    let mut s = HEADER.to_string();
    for i in 0..n {
        let (loc, first) = [("en", "Emma"), ("ru", "Анна"), ("ro", "Ștefan")][i % 3];
        s.push_str(&format!(
            "s{i},{first},Test,user{i}@example.com,,{loc},Europe/Bucharest,1990-{date},email\n"
        ));
    }
    s
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_once_with_the_right_headers() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let t = TestApp::start(Db::Sqlite, &smtp_delivery(sink.port()))
        .await
        .unwrap();
    assert!(t.customers(&birthdays(12, "05-05")).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 12);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.failed, d.retrying), (12, 0, 0), "{d:?}");
    let dumps = sink.wait_for(12, Duration::from_secs(10));
    assert_eq!(dumps.len(), 12);

    let ledger = t.rows().await;
    let mut recipients: Vec<String> = dumps
        .iter()
        .flat_map(|d| dumped_envelope_recipients(d))
        .collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 12, "each customer exactly once");
    for dump in &dumps {
        let msg = String::from_utf8_lossy(dumped_message_body(dump)).to_string();
        let mid = msg
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|l| l.strip_suffix('>'))
            .unwrap_or_else(|| panic!("no Message-ID in {msg}"));
        let row = ledger
            .iter()
            .find(|r| r.message_id.as_deref() == Some(mid))
            .expect("Message-ID matches a ledger row");
        assert_eq!(row.status, "sent");
        assert!(mid.ends_with("@floare.example"));
        assert!(msg.contains("Content-Type: multipart/alternative"), "{msg}");
        assert!(msg.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(msg.contains("Content-Type: text/html; charset=utf-8"));
        assert!(msg.contains("List-Unsubscribe: <https://floare.example/unsubscribe?t=v2."));
        assert!(msg.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(
            msg.contains("Date: Wed, 05 May 2027 12:00:00 +0000"),
            "the Date comes from the injected clock: {msg}"
        );
        assert!(msg.contains("Subject: "));
        assert!(msg.contains("From: "));
    }
    // A second tick and drain: nothing more reaches the server. Only a drain sends, and it
    // claimed nothing (it returns once everything it claimed has settled).
    assert_eq!(t.app.tick(now).await.unwrap().queued, 0);
    assert_eq!(t.app.drain(now).await.unwrap().claimed, 0);
    assert_eq!(sink.messages().len(), 12);
}

/// Starts an smtp-sink with `args`, `n` customers whose birthday is May 5, ticks and drains
/// at noon that day.
async fn through_sink(args: &[&str], n: usize) -> Option<(SmtpSink, TestApp, DispatchReport)> {
    let sink = SmtpSink::start(args)?;
    let (t, d) = birthdays_through(&smtp_delivery(sink.port()), n).await;
    Some((sink, t, d))
}

/// A SQLite app with `delivery`, `n` customers born on May 5, ticked and drained at noon that day.
async fn birthdays_through(delivery: &str, n: usize) -> (TestApp, DispatchReport) {
    let t = TestApp::start(Db::Sqlite, delivery).await.unwrap();
    assert!(t.customers(&birthdays(n, "05-05")).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, n);
    let d = t.app.drain(now).await.unwrap();
    (t, d)
}

#[tokio::test]
async fn a_hard_bounce_fails_the_message_with_the_servers_reply() {
    let Some((sink, t, d)) = through_sink(&["-f", "RCPT", "-B", "550 5.1.1 User unknown"], 2).await
    else {
        return;
    };
    assert_eq!((d.sent, d.failed), (0, 2), "{d:?}");
    for row in t.rows().await {
        assert_eq!(row.status, "failed");
        assert!(
            row.last_error.as_deref().unwrap_or("").contains("5.1.1"),
            "{row:?}"
        );
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_soft_reject_waits_and_is_retried_later() {
    let Some((_sink, t, d)) =
        through_sink(&["-r", "RCPT", "-b", "452 4.2.2 Mailbox full"], 1).await
    else {
        return;
    };
    assert_eq!((d.sent, d.retrying, d.failed), (0, 1, 0), "{d:?}");
    let row = &t.rows().await[0];
    assert_eq!(row.status, "retry_wait");
    assert!(
        row.last_error.as_deref().unwrap().contains("452"),
        "{row:?}"
    );
    // Not due again within the backoff window.
    assert_eq!(
        t.app
            .drain(at("2027-05-05T12:00:20Z"))
            .await
            .unwrap()
            .claimed,
        0
    );
    // Due after it; the sink still rejects, so attempts grow and the row keeps waiting.
    let d = t.app.drain(at("2027-05-05T12:02:00Z")).await.unwrap();
    assert_eq!(d.claimed, 1);
    assert_eq!(t.rows().await[0].attempts, 2);
}

/// A message that never reached the relay (nothing listens on its port) stored nothing: its
/// retry composes it again from the customer's data of that moment, and what the handover
/// stores is what goes on the wire (issue #26: a message is stored with its `sending` commit,
/// not before its first attempt).
#[tokio::test]
async fn a_message_never_handed_over_is_composed_again_at_its_retry() {
    let port = crate::peers::free_port();
    let t = TestApp::start(Db::Sqlite, &smtp_delivery(port))
        .await
        .unwrap();
    assert!(t.customers(&birthdays(1, "05-05")).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 1);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.retrying), (0, 1), "{d:?}");
    let row = &t.rows().await[0];
    assert_eq!(row.status, "retry_wait");
    assert_eq!(
        row.message_id, None,
        "nothing was handed over, nothing stored"
    );
    let Some(sink) = SmtpSink::start_on(port, &[]) else {
        return;
    };
    // The customer's name was corrected before the retry.
    let corrected = birthdays(1, "05-05").replace(",Emma,", ",Emily,");
    assert!(t.customers(&corrected).await.is_empty());
    let d = t.app.drain(at("2027-05-05T12:02:00Z")).await.unwrap();
    assert_eq!(d.sent, 1, "{d:?}");
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "{}", sink.log());
    let msg = String::from_utf8_lossy(dumped_message_body(&got[0])).to_string();
    assert!(msg.contains("Emily"), "composed again: {msg}");
    assert!(!msg.contains("Emma"), "{msg}");
    assert!(
        msg.contains("Date: Wed, 05 May 2027 12:02:00 +0000"),
        "{msg}"
    );
    let row = &t.rows().await[0];
    let mid = row.message_id.as_deref().expect("stored with the handover");
    assert!(msg.contains(&format!("Message-ID: <{mid}>")), "{msg}");
}

#[tokio::test]
async fn an_unreachable_relay_is_a_transient_failure() {
    let (_t, d) = birthdays_through(&smtp_delivery(crate::peers::free_port()), 1).await;
    assert_eq!((d.sent, d.retrying), (0, 1), "{d:?}");
}

#[tokio::test]
async fn sms_reaches_kannel_in_ucs2_for_cyrillic_and_romanian() {
    // Multi-part SMS need the sendsms-user to allow them (see docs/operator.md, Kannel set-up).
    let Some(kannel) = Kannel::start_with(&["max-messages = 10", "concatenation = true"]) else {
        return;
    };
    let dir = crate::peers::ScratchDir::new("kannel-pw");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{}\n", kannel.password())).unwrap();
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    transport: kannel\n    kannel:\n      url: {}\n      username: {}\n      password_file: {}\n      from: FloareCo\n",
        kannel.sendsms_url(),
        kannel.username(),
        pw.display()
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    let csv = format!(
        "{HEADER}\
         k1,Иван,,,+79161234567,ru,Europe/Moscow,1985-07-07,sms\n\
         k2,Ștefan,,,0721000002,ro,Europe/Bucharest,1990-07-07,sms\n\
         k3,Emma,,,+14155550100,en,Europe/Bucharest,1990-07-07,sms\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(
        (d.sent, d.failed, d.retrying),
        (3, 0, 0),
        "{d:?}\n{}",
        kannel.logs()
    );
    let expected = [
        (
            "+79161234567",
            "Иван, с днём рождения! Floare & Co: скидка 20% всю неделю, код BDAY20.",
        ),
        (
            "+40721000002",
            "La multi ani, Ștefan! Floare & Co: 20% reducere toata saptamana, cod BDAY20.",
        ),
        (
            "+14155550100",
            "Happy birthday, Emma! Floare & Co gives you 20% off all week: code BDAY20.",
        ),
    ];
    // The Romanian text needs two UCS-2 parts (ș): count the parts ritualist itself computes.
    let parts: usize = expected
        .iter()
        .map(|(_, t)| ritualist::render::sms_length(t).segments)
        .sum();
    assert_eq!(parts, 4);
    let got = kannel.wait_for(parts, Duration::from_secs(15));
    assert_eq!(got.len(), parts, "{}", kannel.logs());
    let by_to = |to: &str| -> (String, String) {
        let parts: Vec<ReceivedSms> = got
            .iter()
            .filter(|s| s.to.trim_start_matches('+') == to.trim_start_matches('+'))
            .cloned()
            .collect();
        assert!(!parts.is_empty(), "no SMS to {to}: {got:?}");
        if parts.len() == 1 {
            return (parts[0].coding.clone(), parts[0].text.clone());
        }
        (parts[0].coding.clone(), join_concatenated(&parts, true))
    };
    for (to, text) in expected {
        let (coding, got_text) = by_to(to);
        assert_eq!(got_text, text, "to {to}");
        if to == "+79161234567" {
            assert_eq!(coding, "ucs-2", "Cyrillic goes as UCS-2");
        }
        if to == "+14155550100" {
            assert_eq!(coding, "text", "GSM-7 text goes as plain text");
        }
    }
}

#[tokio::test]
async fn a_wrong_kannel_password_pauses_sms_and_blames_nobody() {
    let Some(kannel) = Kannel::start() else {
        return;
    };
    let dir = crate::peers::ScratchDir::new("kannel-pw");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "wrong").unwrap();
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    transport: kannel\n    kannel:\n      url: {}\n      username: {}\n      password_file: {}\n",
        kannel.sendsms_url(),
        kannel.username(),
        pw.display()
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    assert!(
        t.customers(&format!(
            "{HEADER}k1,Ana,,,+40721000002,ro,Europe/Bucharest,1990-07-07,sms\n"
        ))
        .await
        .is_empty()
    );
    let now = at("2027-07-07T12:00:00Z");
    t.app.tick(now).await.unwrap();
    let d = t.app.drain(now).await.unwrap();
    // A refusal of us: the SMS waits and the channel pauses; the customer is not blamed.
    assert_eq!((d.failed, d.paused), (0, 1), "{d:?}");
    let row = &t.rows().await[0];
    assert_eq!(row.status, "retry_wait");
    assert!(
        row.last_error.as_deref().unwrap().contains("403"),
        "{row:?}"
    );
    let pauses = t.app.store.channel_pauses().await.unwrap();
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].channel, "sms");
    assert!(pauses[0].reason.contains("403"), "{pauses:?}");
    assert!(
        t.app
            .store
            .consents_of(row.customer_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !row.last_error.as_deref().unwrap().contains("wrong"),
        "the password never reaches the ledger"
    );
}

fn tls_delivery(port: u16, security: &str, pw_file: &std::path::Path) -> String {
    format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: {security}\n      username: {}\n      password_file: {}\n      accept_invalid_certs: true\n      timeout_secs: 10\n  sms:\n    transport: outbox\n",
        crate::tls_peer::USER,
        pw_file.display()
    )
}

/// STARTTLS (required) and implicit TLS, each with AUTH, against a real TLS server.
#[tokio::test]
async fn email_over_starttls_and_implicit_tls_with_auth() {
    for mode in ["starttls", "tls"] {
        let Some(server) = crate::tls_peer::TlsSmtp::start(mode) else {
            return;
        };
        let dir = crate::peers::ScratchDir::new("smtp-pw");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, crate::tls_peer::PASSWORD).unwrap();
        let (t, d) = birthdays_through(&tls_delivery(server.port, mode, &pw), 3).await;
        assert_eq!(
            (d.sent, d.failed, d.retrying),
            (3, 0, 0),
            "{mode}: {d:?} {:?}",
            t.rows().await
        );
        let got = server.wait_for(3, Duration::from_secs(10));
        assert_eq!(got.len(), 3, "{mode}");
        for m in &got {
            assert!(m.contains("X-Env-Tls: True"), "{mode}: {m}");
            assert!(m.contains("X-Env-Auth: True"), "{mode}: {m}");
            assert!(
                m.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
                "{mode}"
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_smtp_password_is_not_sent_and_not_blamed_on_the_customer() {
    let Some(server) = crate::tls_peer::TlsSmtp::start("starttls") else {
        return;
    };
    let dir = crate::peers::ScratchDir::new("smtp-pw");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "wrong-password").unwrap();
    let (t, d) = birthdays_through(&tls_delivery(server.port, "starttls", &pw), 1).await;
    assert_eq!(
        (d.sent, d.failed, d.retrying, d.paused),
        (0, 0, 0, 1),
        "waits for the operator, not failed: {d:?}"
    );
    let pauses = t.app.store.channel_pauses().await.unwrap();
    assert_eq!(pauses.len(), 1, "the email channel is paused: {pauses:?}");
    let row = &t.rows().await[0];
    assert_eq!(row.status, "retry_wait");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("AUTH rejected by the relay"),
        "{row:?}"
    );
    assert!(
        !row.last_error
            .as_deref()
            .unwrap_or("")
            .contains("wrong-password")
    );
    assert!(server.wait_for(1, Duration::from_millis(300)).is_empty());
}

/// `preview --send-to` sends a marked test through the configured transport and records
/// nothing: the customer's own occurrence is untouched.
#[test]
fn a_test_send_goes_through_smtp_marked_and_unrecorded() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let d = crate::harness::newcomer_checkout();
    let cfg = d.path().join("config/ritualist.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "  email:\n    transport: outbox           # outbox | smtp\n",
        &format!("  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n", sink.port()),
    );
    // Demo data is refused with a real transport (#24): the demo customers are imported by hand.
    let text = text.replace("sample_data: ../samples/customers.csv", "");
    std::fs::write(&cfg, text).unwrap();
    let run = |args: &[&str]| crate::harness::ritualist(d.path(), args);
    let out = run(&["import", "customers", "samples/customers.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "preview",
        "birthday",
        "--customer",
        "C00426",
        "--date",
        "2027-02-28",
        "--locale",
        "en",
        "--send-to",
        "marketer@floare.example",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert_eq!(
        dumped_envelope_recipients(&got[0]),
        vec!["marketer@floare.example".to_string()]
    );
    let msg = String::from_utf8_lossy(dumped_message_body(&got[0])).to_string();
    assert!(
        msg.contains("Subject: [TEST] Happy birthday, Ana!"),
        "in English, marked: {msg}"
    );
    // Nothing recorded for the customer.
    let out = run(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // --html writes the HTML part.
    let out = run(&[
        "preview",
        "birthday",
        "--customer",
        "C00426",
        "--date",
        "2027-02-28",
        "--html",
        "ana.html",
    ]);
    assert!(out.status.success());
    let html = std::fs::read_to_string(d.path().join("ana.html")).unwrap();
    assert!(
        html.contains("<html lang=\"ro\">") && html.contains("La mulți ani, Ana!"),
        "{html}"
    );
}
