//! SendGrid's Event Webhook: a JSON array of events, signed with ECDSA P-256 over the
//! `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the raw body
//! (`X-Twilio-Email-Event-Webhook-Signature`: base64 of the DER signature); the public key
//! is the base64 DER (SubjectPublicKeyInfo) SendGrid shows under "Signed Event Webhook".
//!
//! Events: `bounce` (type `bounce`: a hard bounce, `blocked`: a soft one), `dropped`
//! (reason "Bounced Address" or "Invalid": a hard bounce, "Spam Reporting Address": a
//! complaint, any other: ignored), `spamreport`, `delivered`; others (processed, deferred,
//! open, click, …) are skipped. The message is named by the custom arg `ritualist_delivery`
//! when present, else by `smtp-id` (the Message-ID). Dedupe: `sg_event_id`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde_json::Value;
use x509_cert::der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoRef;

use super::{Event, HookError, Refs, TOKEN_KEY, one_line, str_field};
use crate::domain::FeedbackKind;

/// A P-256 public key (the uncompressed point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey(Vec<u8>);

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const PRIME256V1: &str = "1.2.840.10045.3.1.7";

/// The key SendGrid shows (base64 DER SubjectPublicKeyInfo of a P-256 key; PEM armour and
/// whitespace allowed).
pub fn verification_key(b64: &str) -> Result<VerificationKey, String> {
    let cleaned: String = b64
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(cleaned)
        .map_err(|_| "the verification key is not base64".to_string())?;
    let spki = SubjectPublicKeyInfoRef::from_der(&der)
        .map_err(|e| format!("the verification key is not a public key (DER): {e}"))?;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok());
    if spki.algorithm.oid.to_string() != EC_PUBLIC_KEY
        || curve.map(|c| c.to_string()).as_deref() != Some(PRIME256V1)
    {
        return Err("the verification key is not an ECDSA P-256 key".into());
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the verification key is truncated")?;
    Ok(VerificationKey(point.to_vec()))
}

/// Checks the signature of `body` sent at `timestamp` (both headers' values).
pub fn verify(
    key: &VerificationKey,
    timestamp: &str,
    body: &[u8],
    signature_b64: &str,
) -> Result<(), HookError> {
    if timestamp.is_empty() || signature_b64.is_empty() {
        return Err(HookError::NotAuthentic("no signature headers".into()));
    }
    let sig = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| HookError::NotAuthentic("the signature is not base64".into()))?;
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.0)
        .verify(&signed, &sig)
        .map_err(|_| HookError::NotAuthentic("wrong SendGrid signature".into()))
}

/// The events of a body (a JSON array) that say something about an address.
pub fn events(body: &[u8]) -> Result<Vec<Event>, HookError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| HookError::BadPayload(format!("not JSON: {e}")))?;
    let list = v
        .as_array()
        .ok_or_else(|| HookError::BadPayload("not a JSON array of events".into()))?;
    let mut out = Vec::new();
    for e in list {
        if !e.is_object() {
            return Err(HookError::BadPayload(
                "an event that is not an object".into(),
            ));
        }
        if let Some(ev) = event(e) {
            out.push(ev);
        }
    }
    Ok(out)
}

fn event(e: &Value) -> Option<Event> {
    let name = str_field(e, "event")?;
    let reason = str_field(e, "reason").unwrap_or("");
    let kind = match name {
        "bounce" if str_field(e, "type") == Some("blocked") => FeedbackKind::SoftBounce,
        "bounce" => FeedbackKind::HardBounce,
        "dropped" if reason.contains("Bounced Address") || reason.contains("Invalid") => {
            FeedbackKind::HardBounce
        }
        "dropped" if reason.contains("Spam Reporting Address") => FeedbackKind::Complaint,
        "dropped" => FeedbackKind::Ignored,
        "spamreport" => FeedbackKind::Complaint,
        "delivered" => FeedbackKind::Delivered,
        _ => return None,
    };
    let key = match str_field(e, "sg_event_id") {
        Some(id) => format!("sendgrid:{id}"),
        None => {
            let d = ring::digest::digest(&ring::digest::SHA256, e.to_string().as_bytes());
            format!("sendgrid:sha256:{}", hex::encode(d.as_ref()))
        }
    };
    let detail = format!(
        "SendGrid {name}{}: {} {reason}",
        str_field(e, "type")
            .map(|t| format!("/{t}"))
            .unwrap_or_default(),
        str_field(e, "status").unwrap_or("")
    );
    Some(Event {
        kind,
        refs: Refs {
            token: str_field(e, TOKEN_KEY).map(String::from),
            return_path: None,
            message_id: str_field(e, "smtp-id").map(String::from),
        },
        recipient: str_field(e, "email").map(String::from),
        detail: one_line(&detail),
        dedupe_key: key,
        raw: Some(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of SendGrid's own libraries' tests (sendgrid-nodejs `eventwebhook`).
    #[test]
    fn sendgrid_library_example() {
        let key = verification_key(
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==",
        )
        .unwrap();
        let sig = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
        let payload =
            br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
        assert_eq!(verify(&key, "1588788367", payload, sig), Ok(()));
        assert!(verify(&key, "1588788368", payload, sig).is_err());
        assert!(verify(&key, "1588788367", b"{}", sig).is_err());
        assert!(verify(&key, "1588788367", payload, "").is_err());
        assert!(verify(&key, "1588788367", payload, "@@").is_err());
        assert!(verification_key("AAAA").is_err());
    }

    #[test]
    fn kinds() {
        let body = br#"[
            {"email":"a@x.example","event":"bounce","type":"bounce","sg_event_id":"e1","smtp-id":"<m1@shop.example>","status":"5.1.1","reason":"550 unknown"},
            {"email":"a@x.example","event":"bounce","type":"blocked","sg_event_id":"e2"},
            {"email":"a@x.example","event":"dropped","reason":"Bounced Address","sg_event_id":"e3"},
            {"email":"a@x.example","event":"dropped","reason":"Spam Reporting Address","sg_event_id":"e4"},
            {"email":"a@x.example","event":"spamreport","sg_event_id":"e5","ritualist_delivery":"d1-ab"},
            {"email":"a@x.example","event":"delivered","sg_event_id":"e6"},
            {"email":"a@x.example","event":"open","sg_event_id":"e7"},
            {"email":"a@x.example","event":"dropped","reason":"Unsubscribed Address"}
        ]"#;
        let ev = events(body).unwrap();
        let kinds: Vec<FeedbackKind> = ev.iter().map(|e| e.kind).collect();
        use FeedbackKind::*;
        assert_eq!(
            kinds,
            vec![
                HardBounce, SoftBounce, HardBounce, Complaint, Complaint, Delivered, Ignored
            ]
        );
        assert_eq!(ev[0].dedupe_key, "sendgrid:e1");
        assert_eq!(ev[0].refs.message_id.as_deref(), Some("<m1@shop.example>"));
        assert_eq!(ev[4].refs.token.as_deref(), Some("d1-ab"));
        assert!(ev[6].dedupe_key.starts_with("sendgrid:sha256:"));
        for bad in [&b""[..], b"{}", b"[1]", b"[[]]"] {
            assert!(matches!(events(bad), Err(HookError::BadPayload(_))));
        }
    }
}
