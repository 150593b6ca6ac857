//! What an SMTP reply means for the message: transient, permanent, a hard bounce of the
//! recipient, or a refusal of ritualist itself (docs/delivery-guarantee.md §2).

use crate::channel::SendFailure;

/// The SMTP command a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpPhase {
    Mail,
    Rcpt,
    /// The DATA command itself.
    Data,
    /// The reply to the final dot, after the message.
    Message,
}

impl SmtpPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpPhase::Mail => "MAIL FROM",
            SmtpPhase::Rcpt => "RCPT TO",
            SmtpPhase::Data => "DATA",
            SmtpPhase::Message => "end of data",
        }
    }
}

/// What a 5xx reply says about the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The address does not exist or takes no mail (5.1.1 user unknown, 5.1.2, 5.1.3, 5.1.6,
    /// 5.1.10 null MX, 5.2.1 disabled, or a 5xx to RCPT without an enhanced code): suppress it.
    HardBounce,
    /// About us or the message, never the recipient's fault: 5.7.x (policy, auth, SPF/DKIM/
    /// DMARC), a 5xx to MAIL FROM or to DATA, sender-address codes 5.1.7/5.1.8, 5.3.x system,
    /// 5.2.2 mailbox full, …
    Other,
}

/// The RFC 3463 enhanced status code at the start of a reply text: `5.1.1 User unknown`.
fn enhanced_code(text: &str) -> Option<(u16, u16, u16)> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.').map(|p| p.parse::<u16>().ok());
    let (class, subject, detail) = (parts.next()??, parts.next()??, parts.next()??);
    (parts.next().is_none() && (2..=5).contains(&class)).then_some((class, subject, detail))
}

/// Classifies a permanent (5xx) reply by the command it answered, its code and its text
/// (after the code). docs/delivery-guarantee.md §2; pure, so a table test pins it.
pub fn classify_rejection(phase: SmtpPhase, code: u16, text: &str) -> Rejection {
    if !(500..600).contains(&code) {
        return Rejection::Other;
    }
    match (phase, enhanced_code(text)) {
        (SmtpPhase::Mail | SmtpPhase::Data, _) => Rejection::Other,
        (_, Some((_, 7, _))) | (_, Some((_, 1, 7 | 8))) => Rejection::Other,
        (_, Some((_, 1, _))) | (_, Some((_, 2, 1))) => Rejection::HardBounce,
        (SmtpPhase::Rcpt, None) => Rejection::HardBounce,
        _ => Rejection::Other,
    }
}

/// A reply to MAIL, RCPT, DATA or the message: 4xx and anything without a code transient;
/// 5xx permanent, and a hard bounce when it is about the recipient's address.
pub(super) fn classify_reply(e: &lettre::transport::smtp::Error, phase: SmtpPhase) -> SendFailure {
    let detail = e.to_string();
    let message = format!("{}: {detail}", phase.as_str());
    if !e.is_permanent() {
        return SendFailure::transient(message);
    }
    let code = e.status().map(u16::from).unwrap_or(500);
    // "permanent error (550): 5.1.1 User unknown" → "5.1.1 User unknown"
    let text = detail.split_once("): ").map_or("", |(_, t)| t);
    match classify_rejection(phase, code, text) {
        Rejection::HardBounce => SendFailure::hard_bounce(message),
        Rejection::Other => {
            if phase == SmtpPhase::Mail || enhanced_code(text).is_some_and(|(_, s, _)| s == 7) {
                tracing::error!(
                    "the SMTP relay rejected ritualist itself at {}: {detail}; check the sender, the smtp settings and SPF/DKIM/DMARC",
                    phase.as_str()
                );
                return SendFailure::about_us(message);
            }
            SendFailure::permanent(message)
        }
    }
}

/// A rejection of *us* (greeting refused, AUTH failed): never the customer's fault, so never a
/// permanent failure of their message. It waits (transient) while the operator fixes the
/// configuration, and is logged as an error.
pub(super) fn about_us(e: &lettre::transport::smtp::Error, phase: &str) -> SendFailure {
    tracing::error!(
        "the SMTP relay rejected ritualist itself at {phase}: {e}; check the smtp settings and credentials"
    );
    SendFailure::about_us(format!(
        "{phase} rejected by the relay (configuration, not the recipient): {e}"
    ))
}

/// The greeting or EHLO (HELO) answered: a 5xx there (`554 5.7.1 … blocklist`, `550 no
/// service`) refuses this client before any recipient is named, so it is about us: the
/// channel pauses, no message fails. A 4xx or no reply is the relay's trouble (transient, the
/// circuit breaker counts it).
pub(super) fn refused_at_hello(e: &lettre::transport::smtp::Error, phase: &str) -> SendFailure {
    if e.is_permanent() {
        about_us(e, phase)
    } else {
        classify(e, phase)
    }
}

/// SMTP reply codes decide: 4xx transient, 5xx permanent; anything without a code (network,
/// TLS, a malformed reply) is transient.
fn classify(e: &lettre::transport::smtp::Error, phase: &str) -> SendFailure {
    let detail = e.to_string();
    if e.is_permanent() {
        SendFailure::permanent(format!("{phase}: {detail}"))
    } else {
        SendFailure::transient(format!("{phase}: {detail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_rejections_table() {
        use Rejection::{HardBounce, Other};
        use SmtpPhase::{Data, Mail, Message, Rcpt};
        for (phase, code, text, want) in [
            (Rcpt, 550, "5.1.1 User unknown", HardBounce),
            (Rcpt, 550, "5.1.2 Bad destination system", HardBounce),
            (
                Rcpt,
                550,
                "5.1.10 Recipient address has null MX",
                HardBounce,
            ),
            (Rcpt, 550, "5.2.1 Mailbox disabled", HardBounce),
            (Rcpt, 550, "User unknown", HardBounce),
            (Rcpt, 553, "mailbox name not allowed", HardBounce),
            (Message, 550, "5.1.1 User unknown", HardBounce),
            (Rcpt, 550, "5.7.1 Relaying denied", Other),
            (Rcpt, 554, "5.7.1 Rejected by policy (SPF)", Other),
            (Rcpt, 550, "5.1.8 Bad sender's system address", Other),
            (Rcpt, 552, "5.2.2 Mailbox full", Other),
            (Rcpt, 500, "5.3.0 Error: command failed", Other),
            (Mail, 535, "5.7.8 Authentication failed", Other),
            (Mail, 550, "5.1.1 Sender unknown", Other),
            (Mail, 550, "no such user", Other),
            (Data, 554, "no valid recipients", Other),
            (Message, 550, "5.7.1 Message rejected as spam", Other),
            (Message, 554, "Transaction failed", Other),
            (Rcpt, 450, "4.1.1 try later", Other),
        ] {
            assert_eq!(
                classify_rejection(phase, code, text),
                want,
                "{phase:?} {code} {text}"
            );
        }
    }
}
