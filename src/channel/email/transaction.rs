//! One SMTP transaction on an open connection: MAIL, RCPT, DATA (pipelined when the relay
//! offers it), then the message with the handover committed before its final dot; each reply
//! classified by the command it answered.

use std::sync::atomic::{AtomicBool, Ordering};

use lettre::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;

use super::pool::Conn;
use super::reply::{SmtpPhase, classify_reply};
use super::stream::data_block;
use crate::channel::SendFailure;

/// Why a transaction failed.
pub(super) enum Failed {
    /// The connection was gone at MAIL FROM (no reply, or a 421 closing it): nothing was
    /// handed over, and a reused connection is worth one fresh try.
    Stale(SendFailure),
    /// The relay closed the connection or answered 421 later on (or went silent after the
    /// body): it counts towards the circuit breaker.
    Down(SendFailure),
    Other(SendFailure),
}

/// Whether an EHLO reply lists PIPELINING.
pub(super) fn offers_pipelining(ehlo: &Response) -> bool {
    ehlo.message().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("PIPELINING"))
    })
}

/// MAIL, RCPT, DATA and the message, each reply classified by the command it answered (what
/// `AsyncSmtpConnection::send` does in one call, minus the phase). When the relay offers
/// PIPELINING the three envelope commands go out in one write and their replies are read in
/// order (one round trip instead of three); DATA is the last command of the group, so nothing
/// of the body is written before its `354`. After `354` the handover's commit is queued and
/// the body written while it runs; the final dot waits until it is durable (`handed` set then).
/// Where the dot cannot be held back the commit comes before the body. A failed transaction
/// leaves the connection aborted, as lettre's own `send` does.
pub(super) async fn transaction(
    session: &mut Conn,
    envelope: &lettre::address::Envelope,
    message: &[u8],
    handover: Option<&dyn crate::channel::Handover>,
    handed: &AtomicBool,
) -> Result<Response, Failed> {
    let pipelining = session.pipelining;
    let conn = &mut session.smtp;
    let mail = Mail::new(
        envelope.from().cloned(),
        mail_parameters(conn, envelope, message)?,
    );
    let envelope_phase = if pipelining {
        envelope_pipelined(conn, mail, envelope).await
    } else {
        envelope_one_by_one(conn, mail, envelope).await
    };
    if let Err((phase, e)) = envelope_phase {
        conn.abort().await;
        let closed = e.status().is_none_or(|c| u16::from(c) == 421);
        let err = classify_reply(&e, phase);
        return Err(match (phase, closed) {
            (SmtpPhase::Mail, true) => Failed::Stale(err),
            (_, true) => Failed::Down(err),
            _ => Failed::Other(err),
        });
    }
    crate::failpoint::hit("after_data");
    let delivered = match (handover, overlap(session, message)) {
        (Some(h), Some((gate, block))) => {
            overlapped(&mut session.smtp, gate, block, h, handed).await
        }
        _ => committed_first(&mut session.smtp, message, handover, handed).await,
    };
    if let Some(gate) = &session.gate {
        gate.clear();
    }
    let resp = delivered?;
    crate::failpoint::hit("after_accept");
    Ok(resp)
}

/// The session's dot gate and the DATA block, when the `sending` commit can overlap the body:
/// a plaintext stream we hold (not STARTTLS), a UTF-8 message written in one block, and not the
/// `mid_body` crash point (which writes the body in two halves after the commit).
fn overlap(session: &Conn, message: &[u8]) -> Option<(super::stream::DotGate, String)> {
    let gate = session.gate.clone()?;
    if crate::failpoint::armed("mid_body") {
        return None;
    }
    let text = std::str::from_utf8(message).ok()?;
    Some((gate, data_block(text)))
}

/// The handover and the message at once: the `sending` commit is queued, the body goes out
/// while it runs, and the final dot waits at the gate until it is durable — nothing is handed
/// over before the commit (the relay takes a message only at its dot), and the commit costs
/// the connection only what outlasts the body. A commit that fails keeps the dot back for good.
async fn overlapped(
    conn: &mut AsyncSmtpConnection,
    gate: super::stream::DotGate,
    block: String,
    h: &dyn crate::channel::Handover,
    handed: &AtomicBool,
) -> Result<Response, Failed> {
    let (go, until) = tokio::sync::oneshot::channel();
    gate.hold_after(block.len() - b"\r\n.\r\n".len(), until);
    let commit = async {
        let r = h.commit().await;
        if r.is_ok() {
            handed.store(true, Ordering::SeqCst);
            crate::failpoint::hit("after_sending");
        }
        let _ = go.send(r.is_ok());
        r
    };
    let (committed, sent) = tokio::join!(commit, conn.command(block));
    if let Err(e) = committed {
        // The dot never went: nothing was handed over.
        conn.abort().await;
        return Err(Failed::Other(e));
    }
    match sent {
        Ok(resp) => Ok(resp),
        Err(e) => {
            conn.abort().await;
            Err(body_failed(&e))
        }
    }
}

/// The handover, then the message: the order where the dot cannot be held back (STARTTLS, a
/// message that is not UTF-8, the `mid_body` crash point). The last moment nothing is handed
/// over yet: commit `sending`, or give up (QUIT, no body).
async fn committed_first(
    conn: &mut AsyncSmtpConnection,
    message: &[u8],
    handover: Option<&dyn crate::channel::Handover>,
    handed: &AtomicBool,
) -> Result<Response, Failed> {
    if let Some(h) = handover
        && let Err(e) = h.commit().await
    {
        conn.abort().await;
        return Err(Failed::Other(e));
    }
    handed.store(true, Ordering::SeqCst);
    crate::failpoint::hit("after_sending");
    match write_body(conn, message).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            conn.abort().await;
            Err(body_failed(&e))
        }
    }
}

/// The MAIL FROM parameters the envelope and the message need (SMTPUTF8, 8BITMIME), or a
/// permanent failure when the relay does not offer them.
fn mail_parameters(
    conn: &AsyncSmtpConnection,
    envelope: &lettre::address::Envelope,
    message: &[u8],
) -> Result<Vec<MailParameter>, Failed> {
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Failed::Other(SendFailure::permanent(
                "the address is not ASCII and the relay does not offer SMTPUTF8",
            )));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Failed::Other(SendFailure::permanent(
                "the message is 8-bit and the relay does not offer 8BITMIME",
            )));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(options)
}

/// A refusal (or a broken connection) and the command it answered.
type PhaseError = (SmtpPhase, lettre::transport::smtp::Error);

/// MAIL, RCPT and DATA in one write; the first reply (to MAIL) comes back from `command`, the
/// rest are read in the order the commands went out. A refusal stops at its command: the
/// connection is aborted, so later replies never need reading.
async fn envelope_pipelined(
    conn: &mut AsyncSmtpConnection,
    mail: Mail,
    envelope: &lettre::address::Envelope,
) -> Result<(), PhaseError> {
    let mut group = mail.to_string();
    for to in envelope.to() {
        group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
    }
    group.push_str(&Data.to_string());
    conn.command(group)
        .await
        .map_err(|e| (SmtpPhase::Mail, e))?;
    crate::failpoint::hit("after_mail");
    for _ in envelope.to() {
        conn.read_response()
            .await
            .map_err(|e| (SmtpPhase::Rcpt, e))?;
    }
    crate::failpoint::hit("after_rcpt");
    conn.read_response()
        .await
        .map_err(|e| (SmtpPhase::Data, e))?;
    Ok(())
}

/// MAIL, RCPT and DATA, each waiting for its reply.
async fn envelope_one_by_one(
    conn: &mut AsyncSmtpConnection,
    mail: Mail,
    envelope: &lettre::address::Envelope,
) -> Result<(), PhaseError> {
    conn.command(mail).await.map_err(|e| (SmtpPhase::Mail, e))?;
    crate::failpoint::hit("after_mail");
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), Vec::new()))
            .await
            .map_err(|e| (SmtpPhase::Rcpt, e))?;
    }
    crate::failpoint::hit("after_rcpt");
    conn.command(Data).await.map_err(|e| (SmtpPhase::Data, e))?;
    Ok(())
}

/// The message and the final dot; the relay's reply to the dot.
async fn write_body(
    conn: &mut AsyncSmtpConnection,
    message: &[u8],
) -> Result<Response, lettre::transport::smtp::Error> {
    if crate::failpoint::armed("mid_body") {
        // Two parts, so the crash matrix can stop the process with half the body written.
        let half = message.len() / 2;
        let parts = [&message[..half], &message[half..]];
        let mut n = 0;
        let body = parts.iter().inspect(|_| {
            n += 1;
            if n == 2 {
                crate::failpoint::hit("mid_body");
            }
        });
        conn.message_iter(body).await
    } else {
        match std::str::from_utf8(message) {
            // The whole DATA block in one write (lettre writes the body and the final dot
            // separately: two system calls and two segments per message).
            Ok(text) => conn.command(data_block(text)).await,
            Err(_) => conn.message(message).await,
        }
    }
}

/// The body was handed over and then failed: a reply code to the final dot is a definite
/// answer (421: the relay's trouble); a connection broken while writing the body or before the
/// reply's code leaves the message in doubt: the relay may have it.
fn body_failed(e: &lettre::transport::smtp::Error) -> Failed {
    if e.is_transient() || e.is_permanent() {
        let err = classify_reply(e, SmtpPhase::Message);
        if e.status().is_some_and(|c| u16::from(c) == 421) {
            Failed::Down(err)
        } else {
            Failed::Other(err)
        }
    } else {
        Failed::Down(SendFailure::in_doubt(format!(
            "end of data: {e}; in doubt: the relay may have taken the message"
        )))
    }
}
