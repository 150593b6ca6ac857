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

#[cfg(test)]
mod tests {
    use super::*;

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
