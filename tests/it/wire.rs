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
    })
    .unwrap();
    let pool = SmtpPool::new(SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        username: None,
        password: None,
        hello_name: "client.test".into(),
        timeout_secs: 10,
        connections: 1,
        accept_invalid_certs: false,
        rate: RateLimit::default(),
    });
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
