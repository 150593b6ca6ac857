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
/// of the body is written before its `354`. The handover's commit is queued as MAIL goes out;
/// the envelope and then the body go to the relay while it runs, and the final dot waits until
/// it is durable ([`early`]). Where the dot cannot be held back the commit comes after `354`,
/// before the body. A failed transaction leaves the connection aborted, as lettre's own `send`
/// does.
pub(super) async fn transaction(
    session: &mut Conn,
    envelope: &lettre::address::Envelope,
    message: &[u8],
    handover: Option<&dyn crate::channel::Handover>,
    handed: &AtomicBool,
) -> Result<Response, Failed> {
    let mail = Mail::new(
        envelope.from().cloned(),
        mail_parameters(&session.smtp, envelope, message)?,
    );
    let delivered = match (handover, overlap(session, message)) {
        (Some(h), Some((gate, block))) => {
            early(session, mail, envelope, gate, block, h, handed).await
        }
        _ => {
            envelope_phase(&mut session.smtp, session.pipelining, mail, envelope).await?;
            crate::failpoint::hit("after_data");
            committed_first(&mut session.smtp, message, handover, handed).await
        }
    };
    if let Some(gate) = &session.gate {
        gate.clear();
    }
    let resp = delivered?;
    crate::failpoint::hit("after_accept");
    Ok(resp)
}

/// MAIL, RCPT and DATA up to `354`, pipelined when the relay offers it; a refusal or a
/// broken connection aborts the transaction and says whose trouble it was.
async fn envelope_phase(
    conn: &mut AsyncSmtpConnection,
    pipelining: bool,
    mail: Mail,
    envelope: &lettre::address::Envelope,
) -> Result<(), Failed> {
    let sent = if pipelining {
        envelope_pipelined(conn, mail, envelope).await
    } else {
        envelope_one_by_one(conn, mail, envelope).await
    };
    let Err((phase, e)) = sent else {
        return Ok(());
    };
    conn.abort().await;
    let closed = e.status().is_none_or(|c| u16::from(c) == 421);
    let err = classify_reply(&e, phase);
    Err(match (phase, closed) {
        (SmtpPhase::Mail, true) => Failed::Stale(err),
        (_, true) => Failed::Down(err),
        _ => Failed::Other(err),
    })
}

/// The handover beside the whole transaction: the `sending` commit is queued as MAIL goes
/// out, and the envelope and the body go to the relay while it runs; only the final dot
/// waits at the gate until it is durable. Nothing is handed over before the commit (the relay
/// takes a message only at its dot), and a connection pays for the commit only what outlasts
/// its envelope round trip and body (issue #26: the envelope's round trip no longer adds to
/// the commit's wait; measured in docs/performance.md, sixth pass). `handed` is set once the
/// commit is durable *and* the relay has answered `354`, whichever comes last: from then on
/// the dot may be on the wire, and a silent connection is "in doubt". A refusal or a broken
/// connection during the envelope is "not sent", committed or not: the row is `sending` then
/// but no byte of the message went out, and its result is recorded as for any failure before
/// the body (a crash in that moment leaves the row in doubt, as one after the commit always
/// did: docs/delivery-guarantee.md §1).
async fn early(
    session: &mut Conn,
    mail: Mail,
    envelope: &lettre::address::Envelope,
    gate: super::stream::DotGate,
    block: String,
    h: &dyn crate::channel::Handover,
    handed: &AtomicBool,
) -> Result<Response, Failed> {
    let (pipelining, conn) = (session.pipelining, &mut session.smtp);
    let (go, until) = tokio::sync::oneshot::channel();
    let durable = AtomicBool::new(false);
    let ready = AtomicBool::new(false);
    // Whichever of the two comes second sets `handed`.
    let done = |mine: &AtomicBool, other: &AtomicBool| {
        mine.store(true, Ordering::SeqCst);
        if other.load(Ordering::SeqCst) {
            handed.store(true, Ordering::SeqCst);
        }
    };
    let commit = async {
        let r = h.commit().await;
        if r.is_ok() {
            done(&durable, &ready);
            crate::failpoint::hit("after_sending");
        }
        let _ = go.send(r.is_ok());
        r
    };
    let wire = async {
        envelope_phase(conn, pipelining, mail, envelope).await?;
        crate::failpoint::hit("after_data");
        done(&ready, &durable);
        gate.hold_after(block.len() - b"\r\n.\r\n".len(), until);
        Ok(conn.command(block).await)
    };
    let (committed, sent) = tokio::join!(commit, wire);
    if let Err(e) = committed {
        // The dot never went: nothing was handed over. (A failed envelope aborted already.)
        if sent.is_ok() {
            conn.abort().await;
        }
        return Err(Failed::Other(e));
    }
    match sent? {
        Ok(resp) => Ok(resp),
        Err(e) => {
            conn.abort().await;
            Err(body_failed(&e))
        }
    }
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
