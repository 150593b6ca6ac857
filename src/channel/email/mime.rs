//! Building one email: the MIME message with lettre's builder, CRLF line ends, and the DKIM
//! signature over it (so the stored bytes a retry resends carry the same signature).

use std::time::Duration;

use base64::Engine as _;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, MultiPart};

use crate::channel::SendFailure;
use crate::config::{DkimAlgorithm, DkimSettings};

/// What goes into one email.
#[derive(Debug, Clone)]
pub struct EmailParts<'a> {
    pub from_email: &'a str,
    pub from_name: Option<&'a str>,
    pub to_email: &'a str,
    pub to_name: Option<&'a str>,
    pub subject: &'a str,
    pub html: &'a str,
    pub text: &'a str,
    /// Without angle brackets: `local@domain`.
    pub message_id: &'a str,
    /// Unix seconds: the injected clock, never the system's.
    pub date: i64,
    pub list_unsubscribe: Option<&'a str>,
    /// Signs the message when set.
    pub dkim: Option<&'a DkimSigner>,
    /// Headers for the relay, not the reader (an email service's metadata naming the
    /// delivery, e.g. `X-PM-Metadata-ritualist_delivery`): ASCII names and values.
    pub extra_headers: &'a [(&'static str, String)],
}

/// The headers every signature covers (RFC 8058 asks for both List-Unsubscribe headers). One
/// that a message lacks (List-Unsubscribe-Post for a mailto: link) is still listed, so nobody
/// can add it later without breaking the signature.
pub const DKIM_SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A DKIM signing key with its domain and selector, parsed once when the transports are built.
pub struct DkimSigner {
    config: DkimConfig,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DkimSigner(***)")
    }
}

/// The 32-byte seed of an Ed25519 key, base64 (the form lettre takes), from a PKCS#8 PEM
/// (`openssl genpkey -algorithm ed25519`) or from the bare base64 seed.
fn ed25519_seed_base64(key: &str) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = key.trim();
    if !key.starts_with("-----BEGIN") {
        let raw = b64
            .decode(key)
            .map_err(|e| format!("neither a PEM file nor a base64 seed: {e}"))?;
        return if raw.len() == 32 {
            Ok(key.to_string())
        } else {
            Err(format!(
                "a bare Ed25519 seed is 32 bytes, this one has {}",
                raw.len()
            ))
        };
    }
    if !key.starts_with("-----BEGIN PRIVATE KEY-----") {
        return Err("an Ed25519 key is a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`)".into());
    }
    let body: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = b64
        .decode(body)
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    // PrivateKeyInfo { version, AlgorithmIdentifier { 1.3.101.112 }, OCTET STRING { OCTET STRING seed } }
    const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
    if !der.windows(5).any(|w| w == ED25519_OID) {
        return Err("the PEM holds a key of another algorithm, not Ed25519".into());
    }
    let seed = der
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .and_then(|i| der.get(i + 4..i + 36))
        .ok_or("no 32-byte Ed25519 private key in the PEM")?;
    Ok(b64.encode(seed))
}

impl DkimSigner {
    /// Parses the key. The error names where the key came from (never the key).
    pub fn new(s: &DkimSettings) -> Result<DkimSigner, String> {
        let bad = |why: String, hint: &str| {
            format!(
                "the DKIM key from {} is not a valid {} private key: {why}; {hint}",
                s.key_origin,
                match s.algorithm {
                    DkimAlgorithm::Rsa => "RSA",
                    DkimAlgorithm::Ed25519 => "Ed25519",
                }
            )
        };
        let key = match s.algorithm {
            DkimAlgorithm::Rsa => DkimSigningKey::new(s.key.expose(), DkimSigningAlgorithm::Rsa)
                .map_err(|e| {
                    bad(
                        e.to_string(),
                        "write it as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`): \
                         `openssl genrsa -traditional -out dkim.pem 2048`, or convert with \
                         `openssl rsa -in key.pem -traditional -out dkim.pem`",
                    )
                })?,
            DkimAlgorithm::Ed25519 => {
                let hint = "create one with `openssl genpkey -algorithm ed25519 -out dkim.pem`";
                let seed = ed25519_seed_base64(s.key.expose()).map_err(|e| bad(e, hint))?;
                DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
                    .map_err(|e| bad(e.to_string(), hint))?
            }
        };
        let headers = DKIM_SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        Ok(DkimSigner {
            config: DkimConfig::new(
                s.selector.clone(),
                s.domain.clone(),
                key,
                headers,
                DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                },
            ),
        })
    }
}

/// Bare LF → CRLF, bare CR dropped. Applied to every message before it reaches lettre
/// (RUSTSEC-2026-0561: lettre 0.11.23 does not dot-stuff "\n." so a body could end DATA early).
pub(super) fn is_crlf_clean(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr2_iter(b'\r', b'\n', b).all(|i| match b[i] {
        b'\n' => i > 0 && b[i - 1] == b'\r',
        _ => b.get(i + 1) == Some(&b'\n'),
    })
}

pub fn normalize_crlf(s: &str) -> String {
    let b = s.as_bytes();
    // Fast path: already CRLF everywhere (the usual case for a built message).
    if is_crlf_clean(s) {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(b.len() + b.len() / 32);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' => {}
            b'\n' => out.extend_from_slice(b"\r\n"),
            c => out.push(c),
        }
        i += 1;
    }
    // Only ASCII CR/LF bytes were added or removed, so the UTF-8 stays valid.
    String::from_utf8(out).expect("CR/LF edits keep UTF-8 valid")
}

/// Builds the RFC 5322 message: multipart/alternative (text, then HTML), a deterministic
/// Message-ID, the Date from the injected clock, and `List-Unsubscribe` with
/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058) when an https link is given.
pub fn build_email(p: &EmailParts<'_>) -> Result<String, SendFailure> {
    let from = crate::channel::address::mailbox(p.from_name, p.from_email)?;
    let to = crate::channel::address::mailbox(p.to_name, p.to_email)?;
    let date = std::time::UNIX_EPOCH + Duration::from_secs(p.date.max(0) as u64);
    let text = normalize_crlf(p.text);
    let html = normalize_crlf(p.html);
    let cannot =
        |e: &dyn std::fmt::Display| SendFailure::permanent(format!("cannot build the email: {e}"));
    // The envelope from the addresses already parsed: without one, lettre's `build` parses
    // the From and To headers it has just formatted back into addresses (issue #26: about 2 %
    // of a mass day's CPU samples, counting what the parser calls).
    let envelope = lettre::address::Envelope::new(Some(from.email.clone()), vec![to.email.clone()])
        .map_err(|e| cannot(&e))?;
    let builder = Message::builder()
        .envelope(envelope)
        .from(from)
        .to(to)
        .subject(p.subject)
        .date(date)
        .message_id(Some(format!("<{}>", p.message_id)));
    let body = MultiPart::alternative_plain_html(text, html);
    let mut msg = match p.dkim {
        None => builder.multipart(body).map_err(|e| cannot(&e))?,
        // lettre keeps a multipart's Content-Type with the part, out of the headers it signs:
        // lift it into the message's own headers and carry the encoded parts as the body.
        Some(_) => {
            let content_type = body
                .headers()
                .get::<ContentType>()
                .ok_or_else(|| cannot(&"the multipart has no Content-Type"))?;
            let head = format!("{}\r\n", body.headers());
            let formatted = body.formatted();
            let parts = formatted
                .strip_prefix(head.as_bytes())
                .ok_or_else(|| cannot(&"unexpected multipart layout"))?
                .to_vec();
            // Each part is already encoded (lettre picks 7bit, 8bit, quoted-printable or
            // base64 per part, lines within limits): the whole is 7bit, or 8bit when a part is.
            let encoding = if parts.is_ascii() {
                ContentTransferEncoding::SevenBit
            } else {
                ContentTransferEncoding::EightBit
            };
            let parts = Body::dangerous_pre_encoded(parts, encoding);
            builder
                .header(MIME_VERSION_1_0)
                .header(content_type)
                .body(parts)
                .map_err(|e| cannot(&e))?
        }
    };
    if let Some(url) = p.list_unsubscribe {
        msg.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("List-Unsubscribe"),
            format!("<{url}>"),
        ));
        if url.starts_with("https://") {
            msg.headers_mut().insert_raw(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
        }
    }
    for (name, value) in p.extra_headers {
        if !value.is_ascii() || value.chars().any(char::is_control) {
            return Err(cannot(&format!("the header {name} cannot carry `{value}`")));
        }
        msg.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str(name),
            value.clone(),
        ));
    }
    if let Some(signer) = p.dkim {
        msg.sign(&signer.config);
    }
    let bytes = msg.formatted();
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok(if is_crlf_clean(&text) {
        text
    } else {
        normalize_crlf(&text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // `openssl genpkey -algorithm ed25519` output (a throwaway key).
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIPZCxgkVmzLeHDXnMNaS0lo64Qq0ReZccHCoCT3IqU/c\n-----END PRIVATE KEY-----\n";

    fn settings(algorithm: DkimAlgorithm, key: &str) -> DkimSettings {
        DkimSettings {
            domain: "shop.example".into(),
            selector: "s1".into(),
            algorithm,
            key: crate::config::Secret::new(key),
            key_origin: "key_file `/k/dkim.pem`".into(),
        }
    }

    #[test]
    fn ed25519_keys_come_from_pkcs8_pem_or_a_bare_seed() {
        let seed = ed25519_seed_base64(ED25519_PEM).unwrap();
        assert_eq!(seed, "9kLGCRWbMt4cNecw1pLSWjrhCrRF5lxwcKgJPcipT9w=");
        assert_eq!(ed25519_seed_base64(&seed).unwrap(), seed);
        assert!(DkimSigner::new(&settings(DkimAlgorithm::Ed25519, ED25519_PEM)).is_ok());
        let e = DkimSigner::new(&settings(
            DkimAlgorithm::Ed25519,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw\n-----END PRIVATE KEY-----",
        ))
        .unwrap_err();
        assert!(e.contains("key_file `/k/dkim.pem`"), "{e}");
        assert!(
            !e.contains("MC4CAQ"),
            "the key never appears in a message: {e}"
        );
        let e = DkimSigner::new(&settings(DkimAlgorithm::Rsa, ED25519_PEM)).unwrap_err();
        assert!(e.contains("not a valid RSA private key"), "{e}");
        assert!(e.contains("-traditional"), "{e}");
    }

    #[test]
    fn a_signed_email_lifts_content_type_into_the_signed_headers() {
        let signer = DkimSigner::new(&settings(DkimAlgorithm::Ed25519, ED25519_PEM)).unwrap();
        let p = EmailParts {
            from_email: "hello@shop.example",
            from_name: None,
            to_email: "ana@example.com",
            to_name: None,
            subject: "Hi",
            html: "<p>Hi</p>\n.\nQUIT\n",
            text: "Hi\n.\nQUIT\n",
            message_id: "abc@shop.example",
            date: 1_800_000_000,
            list_unsubscribe: Some("https://shop.example/u/tok"),
            dkim: Some(&signer),
            extra_headers: &[],
        };
        let m = build_email(&p).unwrap();
        let head = &m[..m.find("\r\n\r\n").unwrap()];
        assert!(
            head.contains("\r\nDKIM-Signature: v=1; a=ed25519-sha256;"),
            "{m}"
        );
        assert!(
            head.contains("\r\nContent-Type: multipart/alternative;"),
            "{m}"
        );
        assert!(head.contains("\r\nMIME-Version: 1.0\r\n"), "{m}");
        assert!(is_crlf_clean(&m), "{m}");
    }

    #[test]
    fn crlf_normalisation_leaves_no_bare_lf_or_cr() {
        let s = normalize_crlf("a\nb\r\nc\rd\n.\nQUIT\n");
        assert_eq!(s, "a\r\nb\r\ncd\r\n.\r\nQUIT\r\n");
    }

    #[test]
    fn built_email_has_the_required_headers_and_only_crlf() {
        let p = EmailParts {
            from_email: "hello@shop.example",
            from_name: Some("Floare & Co"),
            to_email: "ana@example.com",
            to_name: Some("Ana Popescu"),
            subject: "La mulți ani, Ana!",
            html: "<p>Hi</p>\n<p>.\nRCPT TO:<x@evil.example></p>",
            text: "Hi\n.\nRCPT TO:<x@evil.example>\n",
            message_id: "abc123@shop.example",
            date: 1_800_000_000,
            list_unsubscribe: Some("https://shop.example/u/tok"),
            dkim: None,
            extra_headers: &[],
        };
        let m = build_email(&p).unwrap();
        assert!(m.contains("Message-ID: <abc123@shop.example>\r\n"), "{m}");
        assert!(
            m.contains("List-Unsubscribe: <https://shop.example/u/tok>\r\n"),
            "{m}"
        );
        assert!(
            m.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{m}"
        );
        assert!(m.contains("multipart/alternative"), "{m}");
        assert!(m.contains("Date: Fri, 15 Jan 2027 08:00:00 +0000"), "{m}");
        let bytes = m.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}");
            }
        }
    }
}
