//! Mailgun's webhooks: `{"signature": {"timestamp", "token", "signature"}, "event-data": {…}}`
//! where `signature` is hex HMAC-SHA256 of timestamp + token under the webhook signing key.
//! A timestamp more than [`MAX_AGE_SECS`] away from now is refused (a replay of an old
//! request); the handler also remembers recent tokens.
//!
//! Events: `failed` with severity `permanent` (a hard bounce; a soft one when the last reply
//! was a 4xx Mailgun gave up on), `failed` with severity `temporary` (Mailgun retries: recorded
//! as ignored, so greylisting never counts), `complained`, `delivered`; others are skipped. The
//! message is named by the user variable `ritualist_delivery`, `envelope.sender` (the VERP
//! return path) and `message.headers.message-id`. Dedupe: the event's `id`.

use serde_json::Value;

use super::{Event, HookError, Refs, TOKEN_KEY, one_line, str_field};
use crate::domain::FeedbackKind;

/// How far a signed timestamp may be from now.
pub const MAX_AGE_SECS: i64 = 300;

/// The signature block of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub timestamp: String,
    pub token: String,
    pub signature: String,
}

/// Splits a body into its signature block and its event data.
pub fn parse(body: &[u8]) -> Result<(Signature, Value), HookError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| HookError::BadPayload(format!("not JSON: {e}")))?;
    let sig = v
        .get("signature")
        .ok_or_else(|| HookError::BadPayload("no `signature` block".into()))?;
    let field = |k: &str| match sig.get(k) {
        Some(Value::String(s)) => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(HookError::BadPayload(format!("no signature.{k}"))),
    };
    let signature = Signature {
        timestamp: field("timestamp")?,
        token: field("token")?,
        signature: field("signature")?,
    };
    let data = v
        .get_mut("event-data")
        .filter(|d| d.is_object())
        .map(Value::take)
        .ok_or_else(|| HookError::BadPayload("no `event-data` object".into()))?;
    Ok((signature, data))
}

/// The HMAC matches under `key` and the timestamp is within [`MAX_AGE_SECS`] of `now`.
pub fn verify(key: &str, s: &Signature, now: i64) -> Result<(), HookError> {
    let given = hex::decode(&s.signature)
        .map_err(|_| HookError::NotAuthentic("the signature is not hex".into()))?;
    let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let signed = format!("{}{}", s.timestamp, s.token);
    ring::hmac::verify(&mac, signed.as_bytes(), &given)
        .map_err(|_| HookError::NotAuthentic("wrong Mailgun signature".into()))?;
    let ts: i64 = s
        .timestamp
        .parse()
        .map_err(|_| HookError::NotAuthentic("the timestamp is not a number".into()))?;
    if now.abs_diff(ts) > MAX_AGE_SECS as u64 {
        return Err(HookError::NotAuthentic(format!(
            "the signed timestamp is {} s away from now",
            now.abs_diff(ts)
        )));
    }
    Ok(())
}

/// The event of `data`, if it says something about the address.
pub fn event(data: &Value) -> Result<Option<Event>, HookError> {
    let Some(name) = str_field(data, "event") else {
        return Err(HookError::BadPayload("no event-data.event".into()));
    };
    let status = data.get("delivery-status").unwrap_or(&Value::Null);
    let code = status.get("code").and_then(Value::as_i64).unwrap_or(0);
    let reason = str_field(data, "reason").unwrap_or("");
    let kind = match (name, str_field(data, "severity")) {
        ("failed", Some("temporary")) => FeedbackKind::Ignored,
        ("failed", _) if reason == "suppress-complaint" => FeedbackKind::Complaint,
        ("failed", _) if reason == "suppress-unsubscribe" => FeedbackKind::Ignored,
        ("failed", _) if (400..500).contains(&code) => FeedbackKind::SoftBounce,
        ("failed", _) => FeedbackKind::HardBounce,
        ("complained", _) => FeedbackKind::Complaint,
        ("delivered", _) => FeedbackKind::Delivered,
        _ => return Ok(None),
    };
    let id =
        str_field(data, "id").ok_or_else(|| HookError::BadPayload("no event-data.id".into()))?;
    let message = status
        .get("description")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| status.get("message").and_then(Value::as_str))
        .unwrap_or("");
    let detail = format!(
        "Mailgun {name}/{}/{reason}: {code} {message}",
        str_field(data, "severity").unwrap_or("-")
    );
    let headers = data.get("message").and_then(|m| m.get("headers"));
    Ok(Some(Event {
        kind,
        refs: Refs {
            token: data
                .get("user-variables")
                .and_then(|u| str_field(u, TOKEN_KEY))
                .map(String::from),
            return_path: data
                .get("envelope")
                .and_then(|e| str_field(e, "sender"))
                .map(String::from),
            message_id: headers
                .and_then(|h| str_field(h, "message-id"))
                .map(String::from),
        },
        recipient: str_field(data, "recipient").map(String::from),
        detail: one_line(&detail),
        dedupe_key: format!("mailgun:{id}"),
        raw: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &str, ts: &str, token: &str) -> Signature {
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
        let tag = ring::hmac::sign(&mac, format!("{ts}{token}").as_bytes());
        Signature {
            timestamp: ts.into(),
            token: token.into(),
            signature: hex::encode(tag.as_ref()),
        }
    }

    #[test]
    fn signatures_and_freshness() {
        let s = signed(
            "key-1",
            "1770920772",
            "e0b5477167110d68991efc6b9f89f0a11066af27834600e123",
        );
        assert_eq!(verify("key-1", &s, 1770920772 + 60), Ok(()));
        assert!(verify("key-2", &s, 1770920772).is_err());
        assert!(verify("key-1", &s, 1770920772 + MAX_AGE_SECS + 1).is_err());
        assert!(verify("key-1", &s, 1770920772 - MAX_AGE_SECS - 1).is_err());
        // Extreme timestamps, signed right, are refused without overflowing.
        for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
            let extreme = signed("key-1", &ts, "t");
            assert!(verify("key-1", &extreme, 1770920772).is_err());
        }
        let mut other = s.clone();
        other.token.push('x');
        assert!(verify("key-1", &other, 1770920772).is_err());
        other = s.clone();
        other.signature = "zz".into();
        assert!(verify("key-1", &other, 1770920772).is_err());
    }

    #[test]
    fn kinds() {
        let k = |json: &str| {
            event(&serde_json::from_str(json).unwrap())
                .unwrap()
                .map(|e| e.kind)
        };
        use FeedbackKind::*;
        assert_eq!(
            k(
                r#"{"event":"failed","severity":"permanent","id":"1","delivery-status":{"code":550}}"#
            ),
            Some(HardBounce)
        );
        assert_eq!(
            k(
                r#"{"event":"failed","severity":"permanent","id":"1","reason":"old","delivery-status":{"code":421}}"#
            ),
            Some(SoftBounce)
        );
        assert_eq!(
            k(r#"{"event":"failed","severity":"temporary","id":"1"}"#),
            Some(Ignored)
        );
        assert_eq!(k(r#"{"event":"complained","id":"1"}"#), Some(Complaint));
        assert_eq!(k(r#"{"event":"delivered","id":"1"}"#), Some(Delivered));
        assert_eq!(k(r#"{"event":"opened","id":"1"}"#), None);
        assert!(event(&serde_json::json!({"event":"failed"})).is_err());
        for bad in [
            &b""[..],
            b"{}",
            b"{\"signature\":{}}",
            b"{\"signature\":{\"timestamp\":\"1\",\"token\":\"t\",\"signature\":\"s\"}}",
        ] {
            assert!(matches!(parse(bad), Err(HookError::BadPayload(_))));
        }
    }
}
