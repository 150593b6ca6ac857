//! Outgoing TLS trust for the SMTP relay and the SMS gateways: the web PKI roots plus (or
//! replaced by) a private CA bundle (`ca_file`, `ca_only`), an optional client certificate,
//! and TLS failures explained so that an operator can act: the host, what failed, and the
//! configuration key that fixes it.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsTrust;

/// The certificates of a PEM bundle (`what` names the key, for the error).
fn read_certs(path: &std::path::Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{what} `{}`: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} `{}`: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} `{}`: no `BEGIN CERTIFICATE` block",
            path.display()
        ));
    }
    Ok(certs)
}

/// The PEM bytes of the CA bundle and of the client certificate and key, as configured.
pub(crate) struct TrustPem {
    pub ca: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Reads the files named by `trust` (checked to parse as PEM certificates).
pub(crate) fn read_pem(trust: &TlsTrust, section: &str) -> Result<TrustPem, String> {
    let read = |p: &std::path::Path, key: &str| {
        std::fs::read(p).map_err(|e| format!("{section}.{key} `{}`: {e}", p.display()))
    };
    let ca = match &trust.ca_file {
        Some(p) => {
            read_certs(p, &format!("{section}.ca_file"))?;
            Some(read(p, "ca_file")?)
        }
        None => None,
    };
    let identity = match (&trust.client_cert, &trust.client_key) {
        (Some(c), Some(k)) => Some((read(c, "client_cert")?, read(k, "client_key")?)),
        _ => None,
    };
    Ok(TrustPem { ca, identity })
}

/// A rustls client configuration (ring) trusting what `trust` says; `verifier_off` is the
/// `accept_invalid_certs` verifier when that is set.
pub(crate) fn client_config(
    trust: &TlsTrust,
    section: &str,
    verifier_off: impl FnOnce(
        Arc<rustls::crypto::CryptoProvider>,
    ) -> Arc<dyn rustls::client::danger::ServerCertVerifier>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if trust.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier_off(provider))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if !trust.ca_only {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if let Some(p) = &trust.ca_file {
            for c in read_certs(p, &format!("{section}.ca_file"))? {
                roots
                    .add(c)
                    .map_err(|e| format!("{section}.ca_file `{}`: {e}", p.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&trust.client_cert, &trust.client_key) {
        (Some(c), Some(k)) => {
            let chain = read_certs(c, &format!("{section}.client_cert"))?;
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| format!("{section}.client_key `{}`: {e}", k.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{section}.client_cert/client_key: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any certificate: only when `accept_invalid_certs: true` (a lab relay or gateway).
#[derive(Debug)]
pub(crate) struct NoVerify(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure with `host` explained: what failed and which key of `section` fixes it.
/// `raw` is the library's message (kept at the end, for the details).
pub fn explain(host: &str, section: &str, raw: &str) -> String {
    let (what, fix) = if raw.contains("UnknownIssuer") || raw.contains("unknown issuer") {
        (
            "its certificate is signed by an unknown issuer (a private CA?)".to_string(),
            format!("add the CA's PEM file as `{section}.ca_file`"),
        )
    } else if raw.contains("CaUsedAsEndEntity") {
        (
            "it presents a CA certificate as its own (a self-signed CA used as the server's certificate)"
                .to_string(),
            format!(
                "issue the server a certificate from that CA and give the CA as `{section}.ca_file`"
            ),
        )
    } else if raw.contains("NotValidForName") || raw.contains("not valid for name") {
        (
            "its certificate does not name this host".to_string(),
            format!("set `{section}.host` to a name the certificate carries"),
        )
    } else if raw.contains("NotValidYet") {
        (
            "its certificate is not valid yet".to_string(),
            "check this machine's clock".to_string(),
        )
    } else if raw.contains("Expired") || raw.contains("expired") {
        (
            "its certificate has expired".to_string(),
            "the server's certificate must be renewed (check this machine's clock too)".to_string(),
        )
    } else if raw.contains("CertificateRequired") || raw.contains("certificate required") {
        (
            "it requires a client certificate".to_string(),
            format!("set `{section}.client_cert` and `{section}.client_key`"),
        )
    } else if raw.contains("BadCertificate")
        || raw.contains("bad certificate")
        || raw.contains("UnknownCA")
    {
        (
            "it rejected our client certificate".to_string(),
            format!("check `{section}.client_cert` / `client_key` against the server's CA"),
        )
    } else {
        (
            "the TLS handshake failed (protocol or version mismatch?)".to_string(),
            format!("check `{section}.port` and `{section}.security` (implicit TLS or STARTTLS)"),
        )
    };
    format!("TLS to {host} failed: {what}; fix: {fix} ({})", raw.trim())
}

/// Whether a library message is a TLS certificate or handshake failure.
pub fn is_tls_failure(raw: &str) -> bool {
    [
        "certificate",
        "Certificate",
        "handshake",
        "InvalidCertificate",
        "AlertReceived",
        "CaUsedAsEndEntity",
        "UnknownIssuer",
        "tls",
        "TLS",
    ]
    .iter()
    .any(|w| raw.contains(w))
}

/// `issued by <CN>, valid until <date>` for a DER certificate (`ritualist doctor`), read with
/// a minimal DER walk of the X.509 fields it needs (issuer, validity). `None` for anything it
/// cannot read: the report then leaves the details out.
pub fn describe_certificate(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial,
    //   signature AlgorithmIdentifier, issuer Name, validity SEQUENCE { notBefore, notAfter },
    //   … } … }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let mut fields = Vec::new();
    while !rest.is_empty() && fields.len() < 5 {
        let (tag, value, next) = tlv(rest)?;
        if tag != 0xA0 {
            fields.push(value);
        }
        rest = next;
    }
    let [_, _, issuer, validity, ..] = fields.as_slice() else {
        return None;
    };
    let cn = common_name(issuer).unwrap_or_else(|| "an unnamed issuer".to_string());
    let (_, _, after) = tlv(validity)?;
    let (tag, time, _) = tlv(after)?;
    let time = std::str::from_utf8(time).ok()?;
    let date = match tag {
        // UTCTime YYMMDDHHMMSSZ: 50–99 are 19xx (RFC 5280).
        0x17 if time.len() >= 6 => {
            let yy: u32 = time[..2].parse().ok()?;
            let century = if yy >= 50 { 1900 } else { 2000 };
            format!("{}-{}-{}", century + yy, &time[2..4], &time[4..6])
        }
        // GeneralizedTime YYYYMMDDHHMMSSZ.
        0x18 if time.len() >= 8 => format!("{}-{}-{}", &time[..4], &time[4..6], &time[6..8]),
        _ => return None,
    };
    Some(format!("issued by {cn}, valid until {date}"))
}

/// One DER TLV: (tag, value, the bytes after it). Short and long lengths up to 4 bytes.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, b.get(head..end)?, b.get(end..)?))
}

/// The commonName (2.5.4.3) of a Name: SEQUENCE OF SET OF SEQUENCE { OID, value }.
fn common_name(name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut sets = name;
    while !sets.is_empty() {
        let (_, set, next) = tlv(sets)?;
        let (_, attr, _) = tlv(set)?;
        let (_, oid, value) = tlv(attr)?;
        if oid == CN {
            let (_, text, _) = tlv(value)?;
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        sets = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ritualist doctor` says who issued the peer's certificate and until when it is valid
    /// (a certificate made with `openssl req -x509 … -subj "/O=Floare Test/CN=Floare Test CA"`).
    #[test]
    fn a_certificate_is_described_by_issuer_and_expiry() {
        const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBnzCCAUagAwIBAgIBBzAKBggqhkjOPQQDAjAvMRQwEgYDVQQKDAtGbG9hcmUg\nVGVzdDEXMBUGA1UEAwwORmxvYXJlIFRlc3QgQ0EwHhcNMjYxMjA2MTM0NDQ5WhcN\nMzYxMjAzMTM0NDQ5WjAvMRQwEgYDVQQKDAtGbG9hcmUgVGVzdDEXMBUGA1UEAwwO\nRmxvYXJlIFRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQV8yzJ2MEB\nm18yn6QqCOfWOtlA7SdkxdmgpycNi1wwuqn1OrDdT7P9vsdzxWjp6HvA9V/lZG21\ni7Hoo8tiRv1ro1MwUTAdBgNVHQ4EFgQURQfa61bdf1Oh4e10NywMegqIK5EwHwYD\nVR0jBBgwFoAURQfa61bdf1Oh4e10NywMegqIK5EwDwYDVR0TAQH/BAUwAwEB/zAK\nBggqhkjOPQQDAgNHADBEAh8RMKzWMkLGichNzBeFX12BpxKCXwcvg3ehz8sYxjrW\nAiEAkYNzHBUOKQX9eVR2yaIbCwDYgLsRDfP5cxMr0x3ZCl0=\n-----END CERTIFICATE-----\n";
        let der = CertificateDer::from_pem_slice(PEM.as_bytes()).unwrap();
        assert_eq!(
            describe_certificate(&der).as_deref(),
            Some("issued by Floare Test CA, valid until 2036-12-03")
        );
        assert_eq!(describe_certificate(b"not a certificate"), None);
        assert_eq!(describe_certificate(&der[..40]), None);
    }

    #[test]
    fn a_tls_failure_names_the_host_what_failed_and_the_key() {
        let m = explain(
            "relay.corp",
            "email.smtp",
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
        );
        assert!(m.contains("relay.corp"), "{m}");
        assert!(m.contains("CA certificate as its own"), "{m}");
        assert!(m.contains("email.smtp.ca_file"), "{m}");
        let m = explain(
            "relay.corp",
            "email.smtp",
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(
            m.contains("unknown issuer") && m.contains("email.smtp.ca_file"),
            "{m}"
        );
        let m = explain(
            "10.0.0.1",
            "sms.kannel",
            "invalid peer certificate: NotValidForName",
        );
        assert!(
            m.contains("does not name this host") && m.contains("sms.kannel.host"),
            "{m}"
        );
    }
}
