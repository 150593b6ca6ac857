//! Postmark's webhooks (one JSON object per request): `Bounce`, `SpamComplaint` and
//! `Delivery`. Authenticity: Postmark sends the HTTP Basic credentials written into the
//! webhook URL (`https://user:password@host/webhooks/postmark`), compared in constant time.
//!
//! Bounce types: `HardBounce` and `BadEmailAddress` are hard bounces; `SoftBounce`, `DnsError`
//! and `Blocked` soft ones (counted: only repeated ones suppress the address); a
//! `SpamComplaint` is a complaint. `Transient` (Postmark is still trying), `AutoResponder` and
//! the others are recorded as ignored.
//!
//! The message is named by the metadata `ritualist_delivery` when present, else by
//! ritualist's Message-ID quoted in the bounce `Content` (Postmark's own `MessageID` is not
//! ritualist's). Dedupe: the bounce `ID`, or `MessageID` + recipient for a delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{Event, HookError, Refs, TOKEN_KEY, one_line, our_message_id, str_field};
use crate::domain::FeedbackKind;

/// `authorization` (the header's value) carries exactly `user` and `password` as HTTP Basic
/// credentials; compared in time independent of where they differ.
pub fn credentials_ok(authorization: Option<&str>, user: &str, password: &str) -> bool {
    let Some((scheme, b64)) = authorization.and_then(|a| a.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(raw) = STANDARD.decode(b64.trim()) else {
        return false;
    };
    let want = format!("{user}:{password}");
    let digest = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b);
    let (a, b) = (digest(&raw), digest(want.as_bytes()));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The event of one Postmark webhook body; `None` for record types that say nothing about
/// the address (Open, Click, SubscriptionChange).
pub fn event(body: &[u8]) -> Result<Option<Event>, HookError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| HookError::BadPayload(format!("not JSON: {e}")))?;
    if !v.is_object() {
        return Err(HookError::BadPayload("not a JSON object".into()));
    }
    let record = str_field(&v, "RecordType").unwrap_or("Bounce");
    let id = v.get("ID").filter(|i| i.is_number() || i.is_string());
    let (kind, recipient, key) = match record {
        "Bounce" | "SpamComplaint" => {
            let id = id.ok_or_else(|| HookError::BadPayload(format!("a {record} without ID")))?;
            let ty = str_field(&v, "Type").unwrap_or("Unknown");
            let kind = if record == "SpamComplaint" {
                FeedbackKind::Complaint
            } else {
                bounce_kind(ty)
            };
            let key = format!("postmark:{}:{}", record.to_ascii_lowercase(), id_text(id));
            (kind, str_field(&v, "Email"), key)
        }
        "Delivery" => {
            let mid = str_field(&v, "MessageID")
                .ok_or_else(|| HookError::BadPayload("a Delivery without MessageID".into()))?;
            let to = str_field(&v, "Recipient");
            let key = format!(
                "postmark:delivery:{mid}:{}",
                to.unwrap_or("").to_ascii_lowercase()
            );
            (FeedbackKind::Delivered, to, key)
        }
        _ => return Ok(None),
    };
    let detail = format!(
        "Postmark {record}/{}: {}",
        str_field(&v, "Type").unwrap_or("-"),
        str_field(&v, "Details")
            .or_else(|| str_field(&v, "Description"))
            .unwrap_or("")
    );
    let refs = Refs {
        token: v
            .get("Metadata")
            .and_then(|m| str_field(m, TOKEN_KEY))
            .map(String::from),
        return_path: None,
        message_id: str_field(&v, "Content").and_then(our_message_id),
    };
    Ok(Some(Event {
        kind,
        refs,
        recipient: recipient.map(String::from),
        detail: one_line(&detail),
        dedupe_key: key,
        raw: None,
    }))
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The kind of a Postmark bounce `Type` (see the module's doc).
pub fn bounce_kind(ty: &str) -> FeedbackKind {
    match ty {
        "HardBounce" | "BadEmailAddress" => FeedbackKind::HardBounce,
        "SoftBounce" | "DnsError" | "Blocked" => FeedbackKind::SoftBounce,
        "SpamComplaint" => FeedbackKind::Complaint,
        _ => FeedbackKind::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_checked_whole() {
        let good = format!("Basic {}", STANDARD.encode("hook:s3cret"));
        assert!(credentials_ok(Some(&good), "hook", "s3cret"));
        assert!(credentials_ok(
            Some(&good.replace("Basic", "basic")),
            "hook",
            "s3cret"
        ));
        for bad in [
            None,
            Some("Basic"),
            Some("Bearer s3cret"),
            Some("Basic !!!"),
        ] {
            assert!(!credentials_ok(bad, "hook", "s3cret"), "{bad:?}");
        }
        let wrong = format!("Basic {}", STANDARD.encode("hook:s3cre"));
        assert!(!credentials_ok(Some(&wrong), "hook", "s3cret"));
        let other_user = format!("Basic {}", STANDARD.encode("root:s3cret"));
        assert!(!credentials_ok(Some(&other_user), "hook", "s3cret"));
    }

    #[test]
    fn types_and_keys() {
        let b = br#"{"RecordType":"Bounce","ID":42,"Type":"HardBounce","Email":"john@example.com",
            "Details":"550 5.1.1","MessageID":"883953f4","Metadata":{"ritualist_delivery":"d7-abc"},
            "Content":"Message-ID: <0123456789abcdef0123456789abcdef@floare.example>"}"#;
        let e = event(b).unwrap().unwrap();
        assert_eq!(e.kind, FeedbackKind::HardBounce);
        assert_eq!(e.dedupe_key, "postmark:bounce:42");
        assert_eq!(e.refs.token.as_deref(), Some("d7-abc"));
        assert_eq!(
            e.refs.message_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef@floare.example")
        );
        assert_eq!(bounce_kind("Transient"), FeedbackKind::Ignored);
        assert_eq!(bounce_kind("Blocked"), FeedbackKind::SoftBounce);
        assert_eq!(bounce_kind("AutoResponder"), FeedbackKind::Ignored);
        let open = br#"{"RecordType":"Open","MessageID":"x"}"#;
        assert_eq!(event(open).unwrap(), None);
        for bad in [
            &b""[..],
            b"[]",
            b"{\"RecordType\":\"Bounce\"}",
            b"{\"RecordType\":\"Delivery\"}",
        ] {
            assert!(matches!(event(bad), Err(HookError::BadPayload(_))));
        }
    }
}
