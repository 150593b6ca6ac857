//! Amazon SNS messages posted to an HTTP(S) subscription: reading the envelope, the string
//! SNS signs (its fields in the documented order, each name and value followed by a newline),
//! where the signing certificate may come from, and the RSA check (SignatureVersion 1:
//! SHA1withRSA, 2: SHA256withRSA).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{
    RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use x509_cert::Certificate;
use x509_cert::der::DecodePem;

use super::HookError;

/// What an SNS message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

/// An SNS message as posted (the JSON body of the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub kind: SnsType,
    pub message_id: String,
    pub topic_arn: String,
    /// The payload: for SES, the notification JSON as a string.
    pub message: String,
    pub subject: Option<String>,
    pub timestamp: String,
    /// Confirmations only.
    pub token: Option<String>,
    pub subscribe_url: Option<String>,
    /// `1` or `2`.
    pub signature_version: String,
    pub signature: String,
    pub signing_cert_url: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Raw {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    message: String,
    subject: Option<String>,
    timestamp: String,
    token: Option<String>,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
}

/// Reads the SNS envelope; every field the signature covers must be there.
pub fn parse(body: &[u8]) -> Result<SnsMessage, HookError> {
    let raw: Raw = serde_json::from_slice(body)
        .map_err(|e| HookError::BadPayload(format!("not an SNS message: {e}")))?;
    let kind = match raw.kind.as_str() {
        "Notification" => SnsType::Notification,
        "SubscriptionConfirmation" => SnsType::SubscriptionConfirmation,
        "UnsubscribeConfirmation" => SnsType::UnsubscribeConfirmation,
        other => return Err(HookError::BadPayload(format!("unknown SNS Type `{other}`"))),
    };
    if kind != SnsType::Notification && (raw.token.is_none() || raw.subscribe_url.is_none()) {
        return Err(HookError::BadPayload(
            "a confirmation without Token or SubscribeURL".into(),
        ));
    }
    Ok(SnsMessage {
        kind,
        message_id: raw.message_id,
        topic_arn: raw.topic_arn,
        message: raw.message,
        subject: raw.subject,
        timestamp: raw.timestamp,
        token: raw.token,
        subscribe_url: raw.subscribe_url,
        signature_version: raw.signature_version,
        signature: raw.signature,
        signing_cert_url: raw.signing_cert_url,
    })
}

/// The bytes SNS signs: for a notification Message, MessageId, Subject (when present),
/// Timestamp, TopicArn, Type; for a confirmation Message, MessageId, SubscribeURL, Timestamp,
/// Token, TopicArn, Type — each as `Name\nvalue\n`.
pub fn string_to_sign(m: &SnsMessage) -> String {
    let kind = match m.kind {
        SnsType::Notification => "Notification",
        SnsType::SubscriptionConfirmation => "SubscriptionConfirmation",
        SnsType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
    };
    let mut fields: Vec<(&str, &str)> = vec![("Message", &m.message), ("MessageId", &m.message_id)];
    if m.kind == SnsType::Notification {
        if let Some(s) = &m.subject {
            fields.push(("Subject", s));
        }
        fields.push(("Timestamp", &m.timestamp));
    } else {
        fields.push(("SubscribeURL", m.subscribe_url.as_deref().unwrap_or("")));
        fields.push(("Timestamp", &m.timestamp));
        fields.push(("Token", m.token.as_deref().unwrap_or("")));
    }
    fields.push(("TopicArn", &m.topic_arn));
    fields.push(("Type", kind));
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(k);
        out.push('\n');
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// An https URL on `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`), default port, no
/// credentials: the only place a signing certificate is fetched from (the TLS connection to
/// an AWS host is what makes the certificate Amazon's).
pub fn cert_url_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.to_ascii_lowercase();
    let region = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
        .and_then(|h| h.strip_prefix("sns."));
    let region_ok = region.is_some_and(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    region_ok && path.ends_with(".pem") && !path.contains(['?', '#', '\\'])
}

/// An SNS `SubscribeURL` worth showing the operator: https on an amazonaws.com host.
pub fn subscribe_url_ok(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest
        .split(['/', '?'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    !host.contains(['@', ':'])
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
}

/// The public key of a signing certificate, with the certificate's validity (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The RSAPublicKey (PKCS#1 DER) of the certificate.
    rsa: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

/// rsaEncryption, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// The RSA key of a PEM certificate.
pub fn signing_key(pem: &[u8]) -> Result<SigningKey, String> {
    let cert = Certificate::from_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let tbs = &cert.tbs_certificate;
    let spki = &tbs.subject_public_key_info;
    if spki.algorithm.oid.to_string() != RSA_ENCRYPTION {
        return Err(format!(
            "the certificate's key is not RSA ({})",
            spki.algorithm.oid
        ));
    }
    let rsa = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the certificate's key is not a whole number of bytes")?
        .to_vec();
    let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    Ok(SigningKey {
        rsa,
        not_before: secs(tbs.validity.not_before),
        not_after: secs(tbs.validity.not_after),
    })
}

/// Checks `m`'s signature with `key` at `now` (Unix seconds, inside the certificate's
/// validity).
pub fn verify(m: &SnsMessage, key: &SigningKey, now: i64) -> Result<(), HookError> {
    if now < key.not_before || now > key.not_after {
        return Err(HookError::NotAuthentic(
            "the signing certificate is not valid now".into(),
        ));
    }
    let alg: &'static dyn ring::signature::VerificationAlgorithm =
        match m.signature_version.as_str() {
            "1" => &RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            v => {
                return Err(HookError::NotAuthentic(format!(
                    "unknown SignatureVersion `{v}`"
                )));
            }
        };
    let sig = STANDARD
        .decode(m.signature.trim())
        .map_err(|_| HookError::NotAuthentic("the Signature is not base64".into()))?;
    UnparsedPublicKey::new(alg, &key.rsa)
        .verify(string_to_sign(m).as_bytes(), &sig)
        .map_err(|_| HookError::NotAuthentic("wrong SNS signature".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: SnsType) -> SnsMessage {
        SnsMessage {
            kind,
            message_id: "m".into(),
            topic_arn: "arn:aws:sns:us-west-2:123456789012:MyTopic".into(),
            message: "hello\nworld".into(),
            subject: Some("s".into()),
            timestamp: "2012-04-26T20:45:04.751Z".into(),
            token: Some("t".into()),
            subscribe_url: Some(
                "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription".into(),
            ),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
        }
    }

    #[test]
    fn the_signed_string_follows_the_documented_order() {
        assert_eq!(
            string_to_sign(&msg(SnsType::Notification)),
            "Message\nhello\nworld\nMessageId\nm\nSubject\ns\nTimestamp\n2012-04-26T20:45:04.751Z\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nNotification\n"
        );
        let mut no_subject = msg(SnsType::Notification);
        no_subject.subject = None;
        assert!(!string_to_sign(&no_subject).contains("Subject"));
        // A confirmation signs SubscribeURL and Token, never Subject.
        assert_eq!(
            string_to_sign(&msg(SnsType::SubscriptionConfirmation)),
            "Message\nhello\nworld\nMessageId\nm\n\
             SubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription\n\
             Timestamp\n2012-04-26T20:45:04.751Z\nToken\nt\n\
             TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\nType\nSubscriptionConfirmation\n"
        );
    }

    #[test]
    fn certificates_come_only_from_sns_over_https() {
        for ok in [
            "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        ] {
            assert!(cert_url_ok(ok), "{ok}");
        }
        for bad in [
            "http://sns.us-west-2.amazonaws.com/SimpleNotificationService-x.pem",
            "https://sns.us-west-2.amazonaws.com.evil.example/x.pem",
            "https://evil.example/sns.us-west-2.amazonaws.com/x.pem",
            "https://sns.us-west-2.amazonaws.com@evil.example/x.pem",
            "https://sns.us-west-2.amazonaws.com:8443/x.pem",
            "https://s3.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://sns.us-west-2.amazonaws.com/x.txt",
            "https://sns.us-west-2.amazonaws.com/x.pem?u=1",
        ] {
            assert!(!cert_url_ok(bad), "{bad}");
        }
        assert!(subscribe_url_ok(
            "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=y"
        ));
        assert!(!subscribe_url_ok("https://evil.example/?x=.amazonaws.com"));
        assert!(!subscribe_url_ok("https://a.amazonaws.com@evil.example/"));
    }

    #[test]
    fn bad_envelopes_are_refused_not_panicked_on() {
        for body in [
            &b""[..],
            b"{}",
            b"[]",
            b"null",
            b"{\"Type\":\"Notification\"}",
        ] {
            assert!(matches!(parse(body), Err(HookError::BadPayload(_))));
        }
        assert!(
            signing_key(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
