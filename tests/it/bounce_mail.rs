//! Bounce mail by pipe: a message really sent through smtp-sink with a VERP return path, then
//! the real `ritualist bounce` binary fed a DSN for it on stdin, as a Postfix `pipe`
//! transport would (docs/operator.md "Bounces by pipe").

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::harness::{BOTH, Db, HEADER, TestApp, at, ritualist, ritualist_cmd};
use crate::peers::{SmtpSink, dumped_envelope_recipients, dumped_envelope_sender};

fn delivery(port: u16) -> String {
    format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: plain\n      timeout_secs: 5\n\
         bounces:\n  return_path: bounces@floare.example\n"
    )
}

/// `ritualist bounce --recipient RCPT` with `mail` on stdin, in the test app's folder.
fn pipe(t: &TestApp, rcpt: &str, mail: &[u8], config: Option<&str>) -> Output {
    let mut args = vec!["bounce", "--recipient", rcpt];
    if let Some(c) = config {
        args.extend(["--config", c]);
    }
    let mut child = ritualist_cmd(&t.dir)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(mail).unwrap();
    child.wait_with_output().unwrap()
}

/// `ritualist bounce` with `mail` on stdin and no `--recipient` (procmail, a mailbox).
fn pipe_without_recipient(t: &TestApp, mail: &[u8]) -> Output {
    let mut child = ritualist_cmd(&t.dir)
        .arg("bounce")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(mail).unwrap();
    child.wait_with_output().unwrap()
}

/// A Postfix DSN to `verp` saying `rcpt` failed with `status`, returning the headers of the
/// message `message_id`.
fn dsn(verp: &str, rcpt: &str, status: &str, message_id: &str, id: &str) -> Vec<u8> {
    format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@relay.floare.example (Mail Delivery System)\r\n\
         To: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\
         Message-Id: <{id}@relay.floare.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; relay.floare.example\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; 550 {status} <{rcpt}>: Recipient address rejected: User unknown\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: Floare & Co <hello@floare.example>\r\nTo: {rcpt}\r\nMessage-ID: <{message_id}>\r\n\r\n\
         --B--\r\n"
    )
    .into_bytes()
}

/// An ARF spam complaint (as Yahoo's feedback loop sends one to the shop's FBL address)
/// about the message `message_id` sent with the envelope sender `verp` to `rcpt`.
fn arf(verp: &str, rcpt: &str, message_id: &str) -> Vec<u8> {
    format!(
        "From: feedback@arf.mail.yahoo.com\r\nTo: fbl@floare.example\r\nSubject: FW: complaint\r\n\
         Message-ID: <fbl.1@arf.mail.yahoo.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
         --A\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
         --A\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: Yahoo!-Mail-Feedback/2.0\r\nVersion: 1\r\n\
         Original-Mail-From: <{verp}>\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n\
         --A\r\nContent-Type: message/rfc822\r\n\r\n\
         From: Floare & Co <hello@floare.example>\r\nTo: {rcpt}\r\nMessage-ID: <{message_id}>\r\n\
         Subject: Happy birthday\r\n\r\nHappy birthday!\r\n\
         --A--\r\n"
    )
    .into_bytes()
}

fn vacation(verp: &str, from: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {verp}\r\nSubject: Automatische Antwort: Alles Gute\r\n\
         Auto-Submitted: auto-replied\r\nMessage-ID: <away.1@example.de>\r\n\r\nIch bin im Urlaub.\r\n"
    )
    .into_bytes()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Two customers mailed through smtp-sink: (email, VERP envelope sender, Message-ID,
/// customer id) each.
async fn sent_two(t: &TestApp, sink: &SmtpSink) -> Vec<(String, String, String, i64)> {
    let csv = format!(
        "{HEADER}m1,Maria,Test,maria@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
         m2,Jurgen,Test,jurgen@example.de,,en,Europe/Bucharest,1991-05-05,email\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 2);
    assert_eq!(t.app.drain(now).await.unwrap().sent, 2);
    let dumps = sink.wait_for(2, Duration::from_secs(10));
    let rows = t.rows().await;
    let mut out = Vec::new();
    for dump in &dumps {
        let rcpt = dumped_envelope_recipients(dump).remove(0);
        let verp = dumped_envelope_sender(dump).unwrap();
        let row = rows
            .iter()
            .find(|r| r.recipient.as_deref() == Some(rcpt.as_str()))
            .unwrap();
        assert!(verp.starts_with(&format!("bounces+d{}-", row.id)), "{verp}");
        out.push((rcpt, verp, row.message_id.clone().unwrap(), row.customer_id));
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_dsn_on_stdin_opts_the_customer_out_once_and_a_vacation_reply_does_nothing() {
    for db in BOTH {
        let Some(sink) = SmtpSink::start(&[]) else {
            return;
        };
        let Some(t) = TestApp::start(db, &delivery(sink.port())).await else {
            continue;
        };
        let sent = sent_two(&t, &sink).await;
        let (jurgen, maria) = (&sent[0], &sent[1]);
        let bounce = dsn(&maria.1, &maria.0, "5.1.1", &maria.2, "dsn1");

        let first = pipe(&t, &maria.1, &bounce, None);
        assert_eq!(first.status.code(), Some(0), "{db:?} {}", text(&first));
        assert!(
            text(&first).contains(r#""opted_out":true"#),
            "{}",
            text(&first)
        );
        let opted = vec![("channel:email".to_string(), true, "bounce".to_string())];
        assert_eq!(t.app.store.consents_of(maria.3).await.unwrap(), opted);
        assert_eq!(t.app.store.consent_events(maria.3).await.unwrap().len(), 1);

        // The MTA delivers it again: recorded once, no second consent event.
        let again = pipe(&t, &maria.1, &bounce, None);
        assert_eq!(again.status.code(), Some(0), "{}", text(&again));
        assert!(text(&again).contains("duplicate"), "{}", text(&again));
        assert_eq!(t.app.store.consent_events(maria.3).await.unwrap().len(), 1);

        // A vacation reply to the other customer's return path counts for nothing.
        let away = pipe(&t, &jurgen.1, &vacation(&jurgen.1, &jurgen.0), None);
        assert_eq!(away.status.code(), Some(0), "{}", text(&away));
        assert!(text(&away).contains("ignored"), "{}", text(&away));
        assert!(t.app.store.consents_of(jurgen.3).await.unwrap().is_empty());
        assert!(
            t.app
                .store
                .consent_events(jurgen.3)
                .await
                .unwrap()
                .is_empty()
        );

        let rows = t.rows().await;
        let maria_row = rows.iter().find(|r| r.customer_id == maria.3).unwrap();
        assert_eq!(
            t.app
                .store
                .delivery_outcome(maria_row.id)
                .await
                .unwrap()
                .map(|o| o.0.as_str()),
            Some("bounced")
        );
        let jurgen_row = rows.iter().find(|r| r.customer_id == jurgen.3).unwrap();
        assert_eq!(
            t.app.store.delivery_outcome(jurgen_row.id).await.unwrap(),
            None
        );

        // Without --recipient the VERP address is read from the DSN's own headers.
        let mail = dsn(&jurgen.1, &jurgen.0, "5.1.1", &jurgen.2, "dsn3");
        let later = pipe_without_recipient(&t, &mail);
        assert_eq!(later.status.code(), Some(0), "{}", text(&later));
        assert_eq!(t.app.store.consents_of(jurgen.3).await.unwrap(), opted);
    }
}

#[tokio::test]
async fn an_unknown_token_is_kept_for_review_and_listed() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let t = TestApp::start(Db::Sqlite, &delivery(sink.port()))
        .await
        .unwrap();
    let sent = sent_two(&t, &sink).await;
    // A forged token (wrong signature) and a Message-ID that is not ours.
    let forged = "bounces+d1-00000000000000000000@floare.example";
    let mail = dsn(
        forged,
        "someone@example.org",
        "5.1.1",
        "not-ours@elsewhere.example",
        "dsn9",
    );
    let out = pipe(&t, forged, &mail, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("unmatched"), "{}", text(&out));
    for (_, _, _, customer) in &sent {
        assert!(t.app.store.consents_of(*customer).await.unwrap().is_empty());
    }

    assert!(
        t.app
            .store
            .feedback_events(Some("applied"), 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "the forged report applied nothing"
    );

    // No token at all (an older message, a relay that rewrote the sender): the returned
    // Message-ID names the delivery.
    let jurgen = &sent[0];
    let plain = "bounces@floare.example";
    let by_mid = pipe(
        &t,
        plain,
        &dsn(plain, &jurgen.0, "5.2.1", &jurgen.2, "dsn10"),
        None,
    );
    assert_eq!(by_mid.status.code(), Some(0), "{}", text(&by_mid));
    assert_eq!(
        t.app.store.consents_of(jurgen.3).await.unwrap(),
        vec![("channel:email".to_string(), true, "bounce".to_string())]
    );

    let listed = ritualist(&t.dir, &["bounces", "--format", "json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "unmatched");
    assert_eq!(rows[0]["kind"], "hard_bounce");
    assert_eq!(rows[0]["recipient"], "someone@example.org");
    assert!(
        rows[0]["raw"]
            .as_str()
            .unwrap()
            .contains("not-ours@elsewhere.example"),
        "the report is kept whole for review"
    );
    let later = ritualist(
        &t.dir,
        &["bounces", "--since", "2999-01-01", "--format", "json"],
    );
    assert_eq!(later.status.code(), Some(0), "{}", text(&later));
    assert_eq!(String::from_utf8_lossy(&later.stdout).trim(), "[]");
    let table = ritualist(&t.dir, &["bounces"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("someone@example.org"),
        "{}",
        text(&table)
    );
    let csv = ritualist(&t.dir, &["bounces", "--all", "--format", "csv"]);
    // The header, the unmatched report and the applied one.
    let lines = String::from_utf8_lossy(&csv.stdout).lines().count();
    assert_eq!(lines, 3, "{}", text(&csv));
}

#[tokio::test]
async fn the_mta_is_told_to_retry_when_the_database_is_down_and_a_complaint_opts_out() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let t = TestApp::start(Db::Sqlite, &delivery(sink.port()))
        .await
        .unwrap();
    let sent = sent_two(&t, &sink).await;
    let maria = &sent[1];
    // The same settings, with a database nothing listens on.
    let cfg = std::fs::read_to_string(t.dir.join("config/ritualist.yaml")).unwrap();
    let port = crate::peers::free_port();
    let down: String = cfg
        .lines()
        .map(|l| {
            if l.starts_with("database:") {
                format!("database: postgres://ritualist@127.0.0.1:{port}/ritualist?sslmode=disable")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(t.dir.join("config/down.yaml"), down).unwrap();
    let bounce = dsn(&maria.1, &maria.0, "5.1.1", &maria.2, "dsn2");
    let out = pipe(&t, &maria.1, &bounce, Some("config/down.yaml"));
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(t.app.store.consents_of(maria.3).await.unwrap().is_empty());

    // Once the database is back, the MTA's retry is recorded.
    let retry = pipe(&t, &maria.1, &bounce, None);
    assert_eq!(retry.status.code(), Some(0), "{}", text(&retry));
    assert_eq!(t.app.store.consents_of(maria.3).await.unwrap().len(), 1);

    // A spam complaint reaches the feedback-loop address; its report names the VERP sender.
    let jurgen = &sent[0];
    let complaint = pipe(
        &t,
        "fbl@floare.example",
        &arf(&jurgen.1, &jurgen.0, &jurgen.2),
        None,
    );
    assert_eq!(complaint.status.code(), Some(0), "{}", text(&complaint));
    assert_eq!(
        t.app.store.consents_of(jurgen.3).await.unwrap(),
        vec![("channel:email".to_string(), true, "complaint".to_string())]
    );

    let empty = pipe(&t, &maria.1, b"", None);
    assert_eq!(empty.status.code(), Some(65), "{}", text(&empty));
    let huge = vec![b'x'; 10 * 1024 * 1024 + 1];
    let big = pipe(&t, &maria.1, &huge, None);
    assert_eq!(big.status.code(), Some(65), "{}", text(&big));
}
