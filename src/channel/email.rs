//! Email: MIME assembly with lettre's builder, and an SMTP pool of connections opened here
//! (TCP_NODELAY: lettre's own pool leaves Nagle on and stalls ~40 ms per message) and handed to
//! `AsyncSmtpConnection`. Plain, STARTTLS and implicit TLS (ring); AUTH; a timeout on every step;
//! an idle connection is probed with NOOP before reuse so a relay's idle timeout never turns a
//! good message into a failure.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::SendError;
use crate::config::{SmtpConfig, SmtpSecurity};

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
}

/// Bare LF → CRLF, bare CR dropped. Applied to every message before it reaches lettre
/// (RUSTSEC-2026-0561: lettre 0.11.23 does not dot-stuff "\n." so a body could end DATA early).
fn is_crlf_clean(s: &str) -> bool {
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
pub fn build_email(p: &EmailParts<'_>) -> Result<String, SendError> {
    let addr = |s: &str| {
        s.parse::<Address>()
            .map_err(|e| SendError::permanent(format!("invalid address `{s}`: {e}")))
    };
    let from = Mailbox::new(p.from_name.map(String::from), addr(p.from_email)?);
    let to = Mailbox::new(p.to_name.map(String::from), addr(p.to_email)?);
    let date = std::time::UNIX_EPOCH + Duration::from_secs(p.date.max(0) as u64);
    let text = normalize_crlf(p.text);
    let html = normalize_crlf(p.html);
    let mut msg = Message::builder()
        .from(from)
        .to(to)
        .subject(p.subject)
        .date(date)
        .message_id(Some(format!("<{}>", p.message_id)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))?;
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

/// A TLS stream over a TCP stream we opened (with TCP_NODELAY), for implicit TLS.
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl std::fmt::Debug for TlsTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTcp")
    }
}

impl AsyncRead for TlsTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Accepts any certificate: only when `accept_invalid_certs: true` (a lab relay).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

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

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Reused SMTP connections, at most `connections` at once.
pub struct SmtpPool {
    cfg: SmtpConfig,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("host", &self.cfg.host)
            .field("port", &self.cfg.port)
            .finish()
    }
}

/// A connection idle longer than this is probed with NOOP before reuse.
const PROBE_AFTER: Duration = Duration::from_secs(5);

impl SmtpPool {
    pub fn new(cfg: SmtpConfig) -> Self {
        super::init_tls();
        let slots = Semaphore::new(cfg.connections as usize);
        SmtpPool {
            cfg,
            idle: Mutex::new(Vec::new()),
            slots,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs as u64)
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let t = self.timeout();
        let hello = ClientId::Domain(self.cfg.hello_name.clone());
        let tcp = tokio::time::timeout(
            t,
            TcpStream::connect((self.cfg.host.as_str(), self.cfg.port)),
        )
        .await
        .map_err(|_| {
            SendError::transient(format!(
                "connecting to {}:{} timed out",
                self.cfg.host, self.cfg.port
            ))
        })?
        .map_err(|e| {
            SendError::transient(format!(
                "cannot connect to {}:{}: {e}",
                self.cfg.host, self.cfg.port
            ))
        })?;
        tcp.set_nodelay(true)
            .map_err(|e| SendError::transient(format!("TCP_NODELAY: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match self.cfg.security {
            SmtpSecurity::Tls => Box::new(self.tls_handshake(tcp).await?),
            _ => Box::new(tcp),
        };
        let mut conn = tokio::time::timeout(
            t,
            AsyncSmtpConnection::connect_with_transport(stream, &hello),
        )
        .await
        .map_err(|_| SendError::transient("SMTP greeting timed out"))?
        .map_err(|e| classify(&e, "greeting"))?;
        if self.cfg.security == SmtpSecurity::Starttls {
            let params = TlsParameters::builder(self.cfg.host.clone())
                .dangerous_accept_invalid_certs(self.cfg.accept_invalid_certs)
                .build_rustls()
                .map_err(|e| SendError::transient(format!("TLS setup: {e}")))?;
            tokio::time::timeout(t, conn.starttls(params, &hello))
                .await
                .map_err(|_| SendError::transient("STARTTLS timed out"))?
                .map_err(|e| {
                    SendError::transient(format!(
                        "STARTTLS failed (required by `security: starttls`): {e}"
                    ))
                })?;
        }
        if let (Some(user), Some(pass)) = (&self.cfg.username, &self.cfg.password) {
            let creds = Credentials::new(user.clone(), pass.expose().to_string());
            tokio::time::timeout(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds))
                .await
                .map_err(|_| SendError::transient("SMTP AUTH timed out"))?
                .map_err(|e| about_us(&e, "AUTH"))?;
        }
        Ok(conn)
    }

    async fn tls_handshake(&self, tcp: TcpStream) -> Result<TlsTcp, SendError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SendError::transient(format!("TLS setup: {e}")))?;
        let config = if self.cfg.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        } else {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let name = rustls::pki_types::ServerName::try_from(self.cfg.host.clone()).map_err(|e| {
            SendError::permanent(format!("invalid TLS server name `{}`: {e}", self.cfg.host))
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = tokio::time::timeout(self.timeout(), connector.connect(name, tcp))
            .await
            .map_err(|_| SendError::transient("TLS handshake timed out"))?
            .map_err(|e| SendError::transient(format!("TLS handshake failed: {e}")))?;
        Ok(TlsTcp(tls))
    }

    /// A pooled connection that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let candidate = self.idle.lock().await.pop();
            let Some(mut idle) = candidate else { break };
            if idle.conn.has_broken() {
                continue;
            }
            if idle.since.elapsed() < PROBE_AFTER {
                return Ok(idle.conn);
            }
            let alive = tokio::time::timeout(self.timeout(), idle.conn.test_connected())
                .await
                .unwrap_or(false);
            if alive {
                return Ok(idle.conn);
            }
        }
        self.connect().await
    }

    /// Sends `message` (already CRLF-normalised) from `from` to `to`; returns the server's reply.
    pub async fn send(&self, from: &str, to: &str, message: &[u8]) -> Result<String, SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::transient("pool closed"))?;
        let envelope = lettre::address::Envelope::new(
            Some(
                from.parse()
                    .map_err(|e| SendError::permanent(format!("invalid sender `{from}`: {e}")))?,
            ),
            vec![
                to.parse()
                    .map_err(|e| SendError::permanent(format!("invalid recipient `{to}`: {e}")))?,
            ],
        )
        .map_err(|e| SendError::permanent(e.to_string()))?;
        let mut conn = self.checkout().await?;
        match tokio::time::timeout(self.timeout(), conn.send(&envelope, message)).await {
            Ok(Ok(resp)) => {
                let reply = format!(
                    "{} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                );
                self.idle.lock().await.push(Idle {
                    conn,
                    since: Instant::now(),
                });
                Ok(reply)
            }
            Ok(Err(e)) => Err(classify(&e, "send")),
            Err(_) => Err(SendError::transient(format!(
                "no reply within {} s",
                self.cfg.timeout_secs
            ))),
        }
    }

    pub async fn close(&self) {
        let mut idle = self.idle.lock().await;
        for mut i in idle.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), i.conn.quit()).await;
        }
    }
}

/// A rejection of *us* (greeting refused, AUTH failed): never the customer's fault, so never a
/// permanent failure of their message. It waits (transient) while the operator fixes the
/// configuration, and is logged as an error.
fn about_us(e: &lettre::transport::smtp::Error, phase: &str) -> SendError {
    tracing::error!(
        "the SMTP relay rejected ritualist itself at {phase}: {e}; check the smtp settings and credentials"
    );
    SendError::transient(format!(
        "{phase} rejected by the relay (configuration, not the recipient): {e}"
    ))
}

/// SMTP reply codes decide: 4xx transient, 5xx permanent; anything without a code (network,
/// TLS, a malformed reply) is transient.
fn classify(e: &lettre::transport::smtp::Error, phase: &str) -> SendError {
    let detail = e.to_string();
    if e.is_permanent() {
        SendError::permanent(format!("{phase}: {detail}"))
    } else {
        SendError::transient(format!("{phase}: {detail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
