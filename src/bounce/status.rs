//! From an RFC 3463 enhanced status code (and, where a format gives none, the diagnostic's
//! words) to what ritualist does. The reason taxonomy follows Sisimai's (userunknown,
//! suspend, mailboxfull, exceedlimit, blocked/policy/spam…), cut down to the distinction the
//! policy needs: does the address exist?
//!
//! Only a report that says the *address* is gone is a hard bounce (opt-out at once):
//! 5.1.x (bad mailbox, bad domain) except the sender-side 5.1.7/5.1.8, 5.2.1 (disabled) and
//! the generic 5.0.0. Everything else that failed is a soft bounce, counted and suppressing
//! only when repeated — notably 5.7.x: a policy or spam block is about *our* reputation, our
//! IP or our content, not about the recipient; opting out a customer for it would punish them
//! for the sender's problem and lose a good address for good. The same for 5.2.2 (mailbox
//! full), 5.3.4 (too big), 5.4.x (routing, DNS), 5.5.x, 5.6.x, and any 4.x.x the relay
//! finally gave up on.

use crate::domain::FeedbackKind;

/// `(class, subject, detail)` of a code `c.s.d`.
fn parts(status: &str) -> Option<(u8, u16, u16)> {
    let mut it = status.split('.');
    let c = it.next()?.parse().ok()?;
    let s = it.next()?.parse().ok()?;
    let d = it.next()?.parse().ok()?;
    it.next().is_none().then_some((c, s, d))
}

/// The kind a *failed* delivery with `status` is; `None` for a code that is not a failure.
pub fn kind_of_failure(status: &str, diagnostic: &str) -> Option<FeedbackKind> {
    let (class, subject, detail) = parts(status)?;
    let kind = match (class, subject, detail) {
        (4, _, _) => FeedbackKind::SoftBounce,
        // Generic: hard per the code, unless the words say it was a block of the sender.
        (5, 0, 0) if phrase_reason(diagnostic) == Some(Reason::Blocked) => FeedbackKind::SoftBounce,
        (5, 0, 0) => FeedbackKind::HardBounce,
        // Bad *sender* address or system (our envelope sender refused): our problem.
        (5, 1, 7 | 8) => FeedbackKind::SoftBounce,
        (5, 1, _) => FeedbackKind::HardBounce,
        (5, 2, 1) => FeedbackKind::HardBounce,
        (5, _, _) => FeedbackKind::SoftBounce,
        _ => return None,
    };
    Some(kind)
}

/// What a diagnostic's words say, for formats that give no status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    UserUnknown,
    Disabled,
    MailboxFull,
    TooBig,
    /// Refused for the sender's reputation, content or policy (spam, block lists).
    Blocked,
}

impl Reason {
    /// The enhanced status code the reason stands for (what a DSN would have said).
    pub const fn status(self) -> &'static str {
        match self {
            Reason::UserUnknown => "5.1.1",
            Reason::Disabled => "5.2.1",
            Reason::MailboxFull => "5.2.2",
            Reason::TooBig => "5.3.4",
            Reason::Blocked => "5.7.1",
        }
    }
}

/// Phrases per reason, lower case. Blocks are tried first: a refusal that mentions spam is
/// never taken for an unknown user.
const PHRASES: [(Reason, &[&str]); 5] = [
    (
        Reason::Blocked,
        &[
            "spam",
            "blacklist",
            "blocklist",
            "block list",
            "blocked",
            "dnsbl",
            "spamhaus",
            "reputation",
            "policy",
            "not allowed to send",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such mailbox",
            "unknown recipient",
            "recipient unknown",
            "invalid recipient",
            "mailbox not found",
            "mailbox does not exist",
            "address does not exist",
            "account does not exist",
            "user doesn't exist",
            "does not exist here",
            "no mailbox here by that name",
            "address couldn't be found",
            "address could not be found",
            "recipient address rejected: user unknown",
            "not a valid mailbox",
            "email account that you tried to reach does not exist",
            "this user doesn't have a",
        ],
    ),
    (
        Reason::Disabled,
        &[
            "account has been disabled",
            "account is disabled",
            "mailbox disabled",
            "mailbox is disabled",
            "account disabled",
            "account is inactive",
            "mailbox is inactive",
        ],
    ),
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "over quota",
            "quota exceeded",
            "exceeded storage",
            "insufficient storage",
            "out of storage",
        ],
    ),
    (
        Reason::TooBig,
        &[
            "message too large",
            "message is too large",
            "message size exceeds",
            "size limit",
        ],
    ),
];

/// The reason a diagnostic's words give, if one of its phrases is in it.
pub fn phrase_reason(diagnostic: &str) -> Option<Reason> {
    let lower = diagnostic.to_lowercase();
    PHRASES
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| lower.contains(p)))
        .map(|(r, _)| *r)
}

/// The status a failure report stands on: the given code, or the diagnostic's when the given
/// one is only a class (`5.0.0`) and the diagnostic names a precise one of the same class.
pub fn refine(status: &str, diagnostic: &str) -> String {
    if let Some((class, 0, 0)) = parts(status)
        && let Some(d) = super::headers::status_in(diagnostic)
        && d.as_bytes().first() == Some(&(b'0' + class))
    {
        return d;
    }
    status.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_address_is_hard() {
        for s in ["5.1.1", "5.1.2", "5.1.10", "5.0.0", "5.2.1"] {
            assert_eq!(
                kind_of_failure(s, ""),
                Some(FeedbackKind::HardBounce),
                "{s}"
            );
        }
        for s in [
            "5.2.2", "5.3.4", "5.7.1", "5.7.26", "4.2.2", "4.4.1", "5.4.4", "5.1.8", "5.1.7",
        ] {
            assert_eq!(
                kind_of_failure(s, ""),
                Some(FeedbackKind::SoftBounce),
                "{s}"
            );
        }
        assert_eq!(
            kind_of_failure("5.0.0", "550 rejected: listed at Spamhaus"),
            Some(FeedbackKind::SoftBounce)
        );
        assert_eq!(kind_of_failure("2.0.0", ""), None);
        assert_eq!(kind_of_failure("5.1", ""), None);
        assert_eq!(kind_of_failure("x", ""), None);
    }

    #[test]
    fn phrases_blocks_first() {
        assert_eq!(
            phrase_reason("550 User unknown (spam filter)"),
            Some(Reason::Blocked)
        );
        assert_eq!(
            phrase_reason("Sorry, no mailbox here by that name."),
            Some(Reason::UserUnknown)
        );
        assert_eq!(phrase_reason("Mailbox is FULL"), Some(Reason::MailboxFull));
        assert_eq!(phrase_reason("connection timed out"), None);
    }

    #[test]
    fn a_class_only_status_is_refined_by_the_diagnostic() {
        assert_eq!(
            refine("5.0.0", "smtp; 550 5.1.1 <a@b.c> user unknown"),
            "5.1.1"
        );
        assert_eq!(refine("5.0.0", "smtp; 450 4.2.2 full"), "5.0.0");
        assert_eq!(refine("5.7.1", "smtp; 550 5.1.1 x"), "5.7.1");
    }
}
