//! Email providers' webhooks, as pure functions: the authenticity check of each provider and
//! its payload read into [`Event`]s. The only home of `ring` (signatures, HMAC) and
//! `x509-cert` (the SNS signing certificate). No I/O and no clock: the handlers of
//! `http/webhooks.rs` fetch what must be fetched, pass `now`, and turn each event into a
//! [`Feedback`](crate::domain::Feedback) for the App (docs/integrator.md#provider-webhooks).
//!
//! | provider | authenticity | events |
//! |---|---|---|
//! | Amazon SES through SNS ([`sns`], [`ses`]) | RSA signature of the SNS message (SHA1withRSA or SHA256withRSA), certificate from `sns.<region>.amazonaws.com` | Bounce, Complaint, Delivery |
//! | Postmark ([`postmark`]) | HTTP Basic credentials of the webhook URL | Bounce, SpamComplaint, Delivery |
//! | SendGrid ([`sendgrid`]) | ECDSA P-256 signature of timestamp + body | bounce, blocked, dropped, spamreport, delivered |
//! | Mailgun ([`mailgun`]) | HMAC-SHA256 of timestamp + token, fresh and not replayed | failed, complained, delivered |

pub mod mailgun;
pub mod postmark;
pub mod sendgrid;
pub mod ses;
pub mod sns;

use crate::domain::FeedbackKind;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The request is not proven to come from the provider (missing or wrong signature or
    /// credentials, a stale or replayed timestamp, a topic that is not ours): 401/403.
    #[error("not authentic: {0}")]
    NotAuthentic(String),
    /// Authentic or not, it cannot be read (not JSON, fields missing): 400.
    #[error("bad payload: {0}")]
    BadPayload(String),
}

/// Which delivery an event names, every key the payload offers (the handler tries the
/// strongest first: a signed token, the VERP return path, then the Message-ID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    /// A delivery token ritualist put in the provider's metadata (custom arg
    /// `ritualist_delivery`), unverified.
    pub token: Option<String>,
    /// The envelope sender the provider reports (`bounces+<token>@…` with a VERP return path).
    pub return_path: Option<String>,
    /// The `Message-ID` the message carried, as the provider quotes it.
    pub message_id: Option<String>,
}

/// One report read from a webhook: what happened to which message, for which recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: FeedbackKind,
    pub refs: Refs,
    pub recipient: Option<String>,
    /// One line: the provider's type and diagnostic.
    pub detail: String,
    /// The provider's event id (with the recipient where one event names several).
    pub dedupe_key: String,
    /// The event alone, for review when it matches nothing, where a request carries several
    /// (`None`: the request's body).
    pub raw: Option<String>,
}

/// The metadata key that carries a delivery token, for providers with custom arguments.
pub const TOKEN_KEY: &str = "ritualist_delivery";

/// One line of at most 300 characters: newlines and control characters become spaces.
pub(crate) fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// The first `<…>` Message-ID in `text` whose local part looks like ritualist's (32 hex
/// digits, `app/message.rs`), for providers that only quote the bounced message as text.
pub fn our_message_id(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let candidate = &after[..end];
        if looks_like_ours(candidate) {
            return Some(candidate.to_string());
        }
        rest = &after[end..];
    }
    None
}

/// A Message-ID (with or without angle brackets) shaped like the ones ritualist gives:
/// `<32 hex digits>@<domain>`. A provider's webhook reports all of the account's mail; one
/// about a message of another shape was not sent by ritualist.
pub fn looks_like_ours(message_id: &str) -> bool {
    let id = message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    id.split_once('@').is_some_and(|(local, domain)| {
        local.len() == 32
            && local.bytes().all(|b| b.is_ascii_hexdigit())
            && !domain.is_empty()
            && !domain.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
    })
}

/// A string field of a JSON object, trimmed; `None` when missing, not a string or empty.
pub(crate) fn str_field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(|x| x.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_message_id_among_others() {
        let text = "Message-ID: <0100018c@email.amazonses.com>\r\nIn-Reply-To: <x>\r\n\
                    Message-ID: <0123456789abcdef0123456789ABCDEF@floare.example>";
        assert_eq!(
            our_message_id(text).as_deref(),
            Some("0123456789abcdef0123456789ABCDEF@floare.example")
        );
        assert_eq!(our_message_id("<nothing@here> <"), None);
        assert!(looks_like_ours(
            "0123456789abcdef0123456789abcdef@floare.example"
        ));
        assert!(looks_like_ours(
            "<0123456789abcdef0123456789abcdef@floare.example>"
        ));
        assert!(!looks_like_ours("<14c5d75ce93.dfd.64b469@ismtpd-555>"));
        assert!(!looks_like_ours("0123456789abcdef0123456789abcdef@"));
        assert_eq!(our_message_id(""), None);
    }

    use proptest::prelude::*;

    /// JSON values built from the keys the parsers look for, nested at random.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            "[a-zA-Z0-9<>@. -]{0,12}".prop_map(serde_json::Value::from),
        ];
        let keys = prop::sample::select(vec![
            "Type",
            "MessageId",
            "TopicArn",
            "Message",
            "Timestamp",
            "SignatureVersion",
            "Signature",
            "SigningCertURL",
            "SubscribeURL",
            "Token",
            "notificationType",
            "eventType",
            "bounce",
            "bounceType",
            "bouncedRecipients",
            "emailAddress",
            "complaint",
            "complainedRecipients",
            "delivery",
            "recipients",
            "mail",
            "source",
            "commonHeaders",
            "messageId",
            "headers",
            "name",
            "value",
            "RecordType",
            "ID",
            "Email",
            "Content",
            "Metadata",
            "Recipient",
            "MessageID",
            "event",
            "type",
            "reason",
            "sg_event_id",
            "smtp-id",
            "email",
            "signature",
            "timestamp",
            "token",
            "event-data",
            "severity",
            "delivery-status",
            "code",
            "id",
            "envelope",
            "sender",
            "message",
            "message-id",
            "user-variables",
            "ritualist_delivery",
        ]);
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| {
                    serde_json::Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        /// No payload panics a parser: anything that is not what a provider sends is a
        /// `BadPayload` (400) or nothing to record.
        #[test]
        fn no_payload_panics(v in json(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let text = v.to_string();
            for body in [text.as_bytes(), &bytes[..]] {
                let _ = sns::parse(body);
                let _ = postmark::event(body);
                let _ = sendgrid::events(body);
                if let Ok((sig, data)) = mailgun::parse(body) {
                    let _ = mailgun::verify("k", &sig, 0);
                    let _ = mailgun::event(&data);
                }
                let _ = ses::events("m", &String::from_utf8_lossy(body));
                let _ = our_message_id(&String::from_utf8_lossy(body));
            }
            if let Ok(m) = sns::parse(text.as_bytes()) {
                let _ = sns::string_to_sign(&m);
                let _ = sns::cert_url_ok(&m.signing_cert_url);
            }
        }
    }

    #[test]
    fn one_line_removes_control_characters() {
        assert_eq!(
            one_line("550 5.1.1\r\nUser unknown\t"),
            "550 5.1.1  User unknown"
        );
        assert_eq!(one_line(&"x".repeat(500)).len(), 300);
    }
}
