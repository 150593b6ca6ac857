//! The conversation, over an in-memory stream, with a mailbox that records what it was given
//! and fails on demand.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::*;

#[derive(Default)]
struct Recorder {
    taken: Mutex<Vec<(String, Vec<u8>)>>,
    failing: AtomicBool,
}

impl Mailbox for Recorder {
    fn accepts(&self, rcpt: &str) -> bool {
        crate::inbound::is_return_path(rcpt, "bounces", "shop.example")
    }

    async fn deliver(&self, raw: &[u8], rcpt: &str) -> Result<(), String> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("database is locked".into());
        }
        self.taken
            .lock()
            .unwrap()
            .push((rcpt.to_string(), raw.to_vec()));
        Ok(())
    }
}

fn opts(protocol: InboundProtocol) -> Options {
    Options {
        protocol,
        hostname: "shop.example".into(),
        max_message_bytes: 1000,
        timeout: Duration::from_secs(30),
    }
}

/// Runs a session fed `input` (the client's whole side, sent at once: pipelined) and returns
/// every reply line the server wrote.
async fn converse(mailbox: &Recorder, opts: &Options, input: &str) -> Vec<String> {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (sr, sw) = tokio::io::split(server);
    let (_stop, stopped) = watch::channel(false);
    let (mut cr, mut cw) = tokio::io::split(client);
    cw.write_all(input.as_bytes()).await.unwrap();
    cw.shutdown().await.unwrap();
    run(
        mailbox,
        opts,
        BufReader::new(sr),
        sw,
        "test".into(),
        stopped,
    )
    .await
    .unwrap();
    let mut out = String::new();
    drop(_stop);
    read_all(&mut cr, &mut out).await;
    out.lines().map(str::to_string).collect()
}

async fn read_all(r: &mut tokio::io::ReadHalf<DuplexStream>, out: &mut String) {
    let mut buf = Vec::new();
    // The server half is dropped by now: read to the end.
    r.read_to_end(&mut buf).await.unwrap();
    out.push_str(&String::from_utf8(buf).unwrap());
}

fn codes(replies: &[String]) -> Vec<&str> {
    replies
        .iter()
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .map(|l| &l[..3])
        .collect()
}

#[tokio::test]
async fn lmtp_takes_a_message_per_recipient_and_undoes_the_dot_stuffing() {
    let m = Recorder::default();
    let r = converse(
        &m,
        &opts(InboundProtocol::Lmtp),
        "LHLO mx.shop.example\r\nMAIL FROM:<> BODY=8BITMIME\r\n\
         RCPT TO:<bounces+d1-abc@shop.example> ORCPT=rfc822;x@y\r\n\
         RCPT TO:<anna@shop.example>\r\nRCPT TO:<Bounces@SHOP.example>\r\nDATA\r\n\
         Subject: Undelivered\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&r),
        [
            "220", "250", "250", "250", "550", "250", "354", "250", "250", "221"
        ],
        "{r:#?}"
    );
    assert!(r[0].starts_with("220 shop.example LMTP"), "{r:?}");
    assert!(r.iter().any(|l| l == "250-SIZE 1000"), "{r:?}");
    assert!(
        r.iter()
            .any(|l| l.starts_with("550 5.1.1 <anna@shop.example>"))
    );
    let taken = m.taken.lock().unwrap().clone();
    let body = b"Subject: Undelivered\r\n\r\n.leading dot\r\n".to_vec();
    assert_eq!(
        taken,
        vec![
            ("bounces+d1-abc@shop.example".to_string(), body.clone()),
            ("Bounces@SHOP.example".to_string(), body),
        ]
    );
}

#[tokio::test]
async fn a_database_error_is_a_451_for_that_message_and_the_next_one_is_taken() {
    let m = Recorder::default();
    m.failing.store(true, Ordering::SeqCst);
    let o = opts(InboundProtocol::Lmtp);
    let r = converse(
        &m,
        &o,
        "LHLO mx\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+a@shop.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(codes(&r), ["220", "250", "250", "250", "354", "451", "221"]);
    assert!(r[r.len() - 2].starts_with("451 4.3.0"), "{r:?}");
    assert!(m.taken.lock().unwrap().is_empty());
    // Once the database is back, the MTA's retry is taken.
    m.failing.store(false, Ordering::SeqCst);
    let r = converse(
        &m,
        &o,
        "LHLO mx\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+a@shop.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(codes(&r), ["220", "250", "250", "250", "354", "250", "221"]);
    assert_eq!(m.taken.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn smtp_answers_once_for_the_message_and_refuses_lhlo() {
    let m = Recorder::default();
    let r = converse(
        &m,
        &opts(InboundProtocol::Smtp),
        "LHLO mx\r\nHELO mx\r\nMAIL FROM:<mailer-daemon@relay.example>\r\n\
         RCPT TO:<bounces+a@shop.example>\r\nRCPT TO:<bounces+b@shop.example>\r\n\
         DATA\r\nhello\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&r),
        [
            "220", "500", "250", "250", "250", "250", "354", "250", "250", "250", "221"
        ],
        "{r:#?}"
    );
    assert!(r[0].contains("ESMTP"));
    assert_eq!(m.taken.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn commands_out_of_order_or_malformed_are_refused() {
    let m = Recorder::default();
    let r = converse(
        &m,
        &opts(InboundProtocol::Lmtp),
        "EHLO mx\r\nMAIL FROM:<>\r\nLHLO\r\nLHLO mx\r\nRCPT TO:<bounces@shop.example>\r\nDATA\r\n\
         MAIL FROM:bad\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\nDATA\r\nRCPT TO:<>\r\n\
         RCPT TO:<bounces@shop.example.evil>\r\nRCPT TO:<bounces+@shop.example>\r\nDATA\r\n\
         VRFY bounces\r\nSTARTTLS\r\nFOO\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(
        codes(&r),
        [
            "220", "500", "503", "501", "250", "503", "503", "501", "250", "503", "554", "501",
            "550", "550", "554", "502", "502", "500", "221"
        ],
        "{r:#?}"
    );
    assert!(m.taken.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_message_over_the_limit_is_refused_declared_or_not() {
    let m = Recorder::default();
    let big = "x".repeat(600);
    let r = converse(
        &m,
        &opts(InboundProtocol::Lmtp),
        &format!(
            "LHLO mx\r\nMAIL FROM:<> SIZE=5000\r\nMAIL FROM:<> SIZE=500\r\n\
             RCPT TO:<bounces@shop.example>\r\nDATA\r\n{big}\r\n{big}\r\n.\r\n\
             MAIL FROM:<>\r\nRCPT TO:<bounces@shop.example>\r\nDATA\r\n{big}{big}\r\n.\r\nQUIT\r\n"
        ),
    )
    .await;
    assert_eq!(
        codes(&r),
        [
            "220", "250", "552", "250", "250", "354", "552", "250", "250", "354", "552", "221"
        ],
        "{r:#?}"
    );
    assert!(m.taken.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_long_command_line_is_refused_without_being_kept() {
    let m = Recorder::default();
    let long = "N".repeat(COMMAND_MAX * 4);
    let r = converse(
        &m,
        &opts(InboundProtocol::Lmtp),
        &format!("{long}\r\nNOOP\r\nQUIT\r\n"),
    )
    .await;
    assert_eq!(codes(&r), ["220", "500", "250", "221"], "{r:#?}");
    assert!(r[1].contains("too long"), "{r:?}");
}

#[tokio::test]
async fn a_client_gone_in_the_middle_of_the_data_leaves_nothing() {
    let m = Recorder::default();
    let r = converse(
        &m,
        &opts(InboundProtocol::Lmtp),
        "LHLO mx\r\nMAIL FROM:<>\r\nRCPT TO:<bounces@shop.example>\r\nDATA\r\nhalf a message\r\n",
    )
    .await;
    assert_eq!(codes(&r), ["220", "250", "250", "250", "354"]);
    assert!(m.taken.lock().unwrap().is_empty());
}

#[tokio::test]
async fn too_many_errors_close_the_session() {
    let m = Recorder::default();
    let junk = "FOO\r\n".repeat(ERRORS_MAX as usize + 5);
    let r = converse(&m, &opts(InboundProtocol::Lmtp), &junk).await;
    assert_eq!(r.len(), 1 + ERRORS_MAX as usize + 1, "{r:#?}");
    assert!(r.last().unwrap().starts_with("421"), "{r:?}");
}

#[tokio::test]
async fn a_quiet_client_and_a_stopping_server_get_421() {
    let m = Recorder::default();
    let mut o = opts(InboundProtocol::Lmtp);
    o.timeout = Duration::from_millis(50);
    // The client sends nothing and never closes.
    let (client, server) = tokio::io::duplex(4096);
    let (sr, sw) = tokio::io::split(server);
    let (_stop, stopped) = watch::channel(false);
    run(&m, &o, BufReader::new(sr), sw, "t".into(), stopped)
        .await
        .unwrap();
    let (mut cr, _cw) = tokio::io::split(client);
    let mut out = String::new();
    read_all(&mut cr, &mut out).await;
    assert!(out.ends_with("421 4.4.2 Timeout, closing\r\n"), "{out:?}");

    // A stop while the session waits for a command.
    o.timeout = Duration::from_secs(60);
    let (client, server) = tokio::io::duplex(4096);
    let (sr, sw) = tokio::io::split(server);
    let (stop, stopped) = watch::channel(false);
    let (mut cr, mut cw) = tokio::io::split(client);
    cw.write_all(b"LHLO mx\r\n").await.unwrap();
    let session = run(&m, &o, BufReader::new(sr), sw, "t".into(), stopped);
    let stopper = async {
        // Once the LHLO is answered, the session is waiting for the next command.
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&seen).contains("250 ENHANCEDSTATUSCODES") {
            let n = cr.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        stop.send(true).unwrap();
        let mut rest = Vec::new();
        cr.read_to_end(&mut rest).await.unwrap();
        String::from_utf8(rest).unwrap()
    };
    let (ended, rest) = tokio::join!(session, stopper);
    ended.unwrap();
    assert_eq!(rest, "421 4.3.2 Service shutting down, try again later\r\n");
}

#[test]
fn paths_are_read_leniently_but_not_guessed() {
    assert_eq!(
        path_arg("FROM:<> BODY=8BITMIME", "FROM:"),
        Some((String::new(), "BODY=8BITMIME".into()))
    );
    assert_eq!(
        path_arg("to: <a@b.example>", "TO:"),
        Some(("a@b.example".into(), String::new()))
    );
    assert_eq!(
        path_arg("TO:<@relay.example:a@b.example>", "TO:"),
        Some(("a@b.example".into(), String::new()))
    );
    assert_eq!(path_arg("TO:a@b.example", "TO:"), None);
    assert_eq!(path_arg("TO:<a b@c>", "TO:"), None);
    assert_eq!(path_arg("FROM:<a@b", "FROM:"), None);
    assert_eq!(path_arg("", "FROM:"), None);
}

#[test]
fn the_return_path_and_its_tagged_forms_only() {
    use crate::inbound::is_return_path as rp;
    assert!(rp("bounces@shop.example", "bounces", "shop.example"));
    assert!(rp("BOUNCES+d7-0a@Shop.Example", "bounces", "shop.example"));
    assert!(!rp("bounces+@shop.example", "bounces", "shop.example"));
    assert!(!rp("bouncesx@shop.example", "bounces", "shop.example"));
    assert!(!rp("bounces@other.example", "bounces", "shop.example"));
    assert!(!rp("bounces", "bounces", "shop.example"));
    assert!(!rp("", "bounces", "shop.example"));
}
