//! The bytes ritualist writes to an SMTP socket (RUSTSEC-2026-0561: lettre 0.11.23 does not
//! dot-stuff a "." after a bare LF, so a body could end DATA early and smuggle commands).
//! A raw recording SMTP server on loopback — not smtp-sink, which is strict about CRLF.CRLF
//! and would hide the bug — takes a message whose text has bare LFs, a lone "." line and a
//! "QUIT" line; every line on the wire must end in CRLF, the "." line must arrive stuffed
//! (".."), and DATA must end exactly once, at the end.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use ritualist::channel::{EmailParts, SmtpPool, build_email};
use ritualist::config::{RateLimit, SmtpConfig, SmtpSecurity};

/// Accepts one connection, answers like a relay, records every byte the client sent.
fn recording_server() -> (u16, Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        out.write_all(b"220 wire.test ESMTP\r\n").unwrap();
        let mut in_data = false;
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                return;
            }
            rec.lock().unwrap().extend_from_slice(&line);
            if in_data {
                if line == b".\r\n" {
                    in_data = false;
                    out.write_all(b"250 2.0.0 queued\r\n").unwrap();
                }
                continue;
            }
            let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-wire.test\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("DATA") {
                in_data = true;
                b"354 go ahead\r\n"
            } else if upper.starts_with("QUIT") {
                out.write_all(b"221 bye\r\n").unwrap();
                return;
            } else {
                b"250 ok\r\n"
            };
            out.write_all(reply).unwrap();
        }
    });
    (port, seen, handle)
}

#[tokio::test]
async fn bare_lfs_and_a_lone_dot_line_reach_the_socket_as_crlf_and_stuffed() {
    let (port, seen, server) = recording_server();
    let text = "Hello\n.\nQUIT\nstill the body\r\nend";
    let payload = build_email(&EmailParts {
        from_email: "hello@floare.example",
        from_name: None,
        to_email: "emma@example.com",
        to_name: None,
        subject: "wire",
        html: "<p>Hello</p>\n.\n<p>end</p>",
        text,
        message_id: "wire.1@floare.example",
        date: 1_809_518_400,
        list_unsubscribe: None,
        dkim: None,
        extra_headers: &[],
    })
    .unwrap();
    let pool = pool(port, true);
    let reply = pool
        .send(
            "hello@floare.example",
            "emma@example.com",
            payload.as_bytes(),
            None,
        )
        .await
        .unwrap();
    assert!(reply.starts_with("250"), "{reply}");
    pool.close().await;
    server.join().unwrap();

    let wire = seen.lock().unwrap().clone();
    // Every LF on the wire is preceded by CR, and there is no bare CR.
    for (i, b) in wire.iter().enumerate() {
        if *b == b'\n' {
            assert_eq!(wire.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF at {i}");
        }
        if *b == b'\r' {
            assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    let text = String::from_utf8_lossy(&wire);
    let data = text.split_once("DATA\r\n").expect("DATA was sent").1;
    // The message ends DATA exactly once; the "." line of the body arrived stuffed.
    assert_eq!(data.matches("\r\n.\r\n").count(), 1, "{data}");
    assert!(data.contains("\r\n..\r\nQUIT\r\n"), "{data}");
    // After the one end of DATA only the client's own QUIT: the body's "QUIT" line stayed
    // inside the message.
    let after = data.split_once("\r\n.\r\n").unwrap().1;
    assert_eq!(after, "QUIT\r\n", "{text}");
}

fn pool(port: u16, pipelining: bool) -> SmtpPool {
    SmtpPool::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        hello_name: "client.test".into(),
        timeout_secs: 10,
        connections: 1,
        accept_invalid_certs: false,
        tls: Default::default(),
        pipelining,
        rate: RateLimit::default(),
        breaker_failures: 5,
        breaker_secs: 30,
    })
}

/// Sends the small test message from hello@ to emma@.
async fn send_small(pool: &SmtpPool) -> Result<String, ritualist::channel::SendFailure> {
    pool.send(
        "hello@floare.example",
        "emma@example.com",
        small_message().as_bytes(),
        None,
    )
    .await
}

fn small_message() -> String {
    build_email(&EmailParts {
        from_email: "hello@floare.example",
        from_name: None,
        to_email: "emma@example.com",
        to_name: None,
        subject: "pipelined",
        html: "<p>Hello</p>",
        text: "Hello",
        message_id: "wire.2@floare.example",
        date: 1_809_518_400,
        list_unsubscribe: None,
        dkim: None,
        extra_headers: &[],
    })
    .unwrap()
}

/// A relay that offers PIPELINING and answers MAIL only once RCPT and DATA have arrived too
/// (within 3 s): a client that waits for each reply gets no answer and times out. Records the
/// commands it saw before its first envelope reply.
fn pipelining_server() -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        out.write_all(b"220 pipe.test ESMTP\r\n").unwrap();
        let mut group = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return group;
            }
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                out.write_all(b"250-pipe.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    .unwrap();
            } else if upper.starts_with("MAIL") {
                group.push("MAIL".to_string());
                // RCPT and DATA must already be on their way: read them before any reply.
                for _ in 0..2 {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return group;
                    }
                    group.push(line.trim_end().split(':').next().unwrap_or("").to_string());
                }
                out.write_all(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n")
                    .unwrap();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return group;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                out.write_all(b"250 2.0.0 queued as P1\r\n").unwrap();
            } else if upper.starts_with("QUIT") {
                let _ = out.write_all(b"221 bye\r\n");
                return group;
            } else {
                out.write_all(b"250 ok\r\n").unwrap();
            }
        }
    });
    (port, handle)
}

#[tokio::test]
async fn the_envelope_goes_out_in_one_write_when_the_relay_offers_pipelining() {
    let (port, server) = pipelining_server();
    let pool = pool(port, true);
    let reply = send_small(&pool).await.unwrap();
    assert!(reply.contains("queued as P1"), "{reply}");
    pool.close().await;
    let group = server.join().unwrap();
    assert_eq!(group, ["MAIL", "RCPT TO", "DATA"]);
}

#[tokio::test]
async fn pipelining_off_waits_for_each_reply() {
    // The same relay never answers a lone MAIL: with `pipelining: false` the client waits for
    // it, so the send fails (not sent, transient) instead of pipelining anyway.
    let (port, server) = pipelining_server();
    let err = send_small(&pool(port, false)).await.unwrap_err();
    assert!(
        err.is_transient() && !matches!(err, ritualist::channel::SendFailure::InDoubt { .. }),
        "{err:?}"
    );
    let _ = server.join();
}

/// A relay whose idle timeout (smtp-sink `-t 2`: two seconds) is shorter than the pool's
/// reuse window closes the pooled connection; the next message fails at MAIL FROM on it,
/// before anything is handed over, and goes out at once on a fresh connection instead of
/// waiting for a retry. (With `-t 1` a busy CI machine that stalled this test a second
/// between EHLO and MAIL on the fresh connection saw that one closed too.)
#[tokio::test]
async fn a_pooled_connection_the_relay_closed_is_replaced_and_the_message_still_goes_out() {
    let Some(sink) = crate::peers::SmtpSink::start(&["-t", "2"]) else {
        return;
    };
    let pool = pool(sink.port(), true);
    let msg = small_message();
    for round in 0..3 {
        let reply = pool
            .send(
                "hello@floare.example",
                "emma@example.com",
                msg.as_bytes(),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("message {round}: {e:?}"));
        assert!(reply.starts_with("250"), "{reply}");
        // Idle longer than the relay allows, shorter than the pool's NOOP probe (5 s).
        tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    }
    pool.close().await;
    assert_eq!(sink.wait_for(3, std::time::Duration::from_secs(5)).len(), 3);
}

/// The dispatcher's handover as the ledger's fence sees it: the first commit moves the row to
/// `sending`; a second one finds it `sending` already and is refused (the lease looks lost).
struct FencedHandover(std::sync::atomic::AtomicUsize);

impl ritualist::channel::Handover for FencedHandover {
    fn commit(
        &self,
    ) -> futures_util::future::BoxFuture<'_, Result<(), ritualist::channel::SendFailure>> {
        Box::pin(async move {
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Ok(()),
                _ => Err(ritualist::channel::SendFailure::lease_lost(
                    "committed twice: the row is `sending` already",
                )),
            }
        })
    }
}

/// Issue #26, sixth pass: the `sending` commit is queued as MAIL FROM goes out, so a pooled
/// connection the relay closed is found out after the commit. The fresh connection's try must
/// not commit the row again: the message goes out, committed exactly once.
#[tokio::test]
async fn a_message_retried_on_a_fresh_connection_is_committed_once() {
    let Some(sink) = crate::peers::SmtpSink::start(&["-t", "2"]) else {
        return;
    };
    let pool = pool(sink.port(), true);
    let msg = small_message();
    // Opens the connection the relay then closes while it sits idle.
    pool.send(
        "hello@floare.example",
        "emma@example.com",
        msg.as_bytes(),
        None,
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let handover = FencedHandover(std::sync::atomic::AtomicUsize::new(0));
    let reply = pool
        .send(
            "hello@floare.example",
            "emma@example.com",
            msg.as_bytes(),
            Some(&handover),
        )
        .await
        .unwrap_or_else(|e| panic!("the message after the idle timeout: {e:?}"));
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(
        handover.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the handover was not committed exactly once"
    );
    pool.close().await;
    assert_eq!(sink.wait_for(2, std::time::Duration::from_secs(5)).len(), 2);
}
