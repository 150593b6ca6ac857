//! Email: MIME assembly with lettre's builder, and an SMTP pool of connections opened here
//! (TCP_NODELAY: lettre's own pool leaves Nagle on and stalls ~40 ms per message) and handed to
//! `AsyncSmtpConnection`. Plain, STARTTLS and implicit TLS (ring); AUTH; a timeout on every step;
//! an idle connection is probed with NOOP before reuse so a relay's idle timeout never turns a
//! good message into a failure.
//!
//! DKIM: [`DkimSigner`] signs each message as it is built (rsa-sha256 or ed25519-sha256,
//! relaxed/relaxed) over From, To, Subject, Date, Message-ID, MIME-Version, Content-Type,
//! List-Unsubscribe and List-Unsubscribe-Post, so the stored bytes a retry resends carry the
//! same signature.
//!
//! Sending drives MAIL, RCPT, DATA and the message itself, so a 5xx reply is classified by the
//! command it answered ([`classify_rejection`]): a hard bounce of the recipient (5.1.1 user
//! unknown to RCPT) is told apart from a rejection of us or of the message (5.7.x policy, 5xx
//! to MAIL FROM), which must never suppress a customer; a 5xx to the greeting or EHLO
//! (a blocklist) refuses us before any recipient is named: about us too. When the relay offers PIPELINING the
//! three envelope commands share one write (their replies are still read one by one); the
//! dot-stuffed body and the final dot go out in one write ([`data_block`]).
//!
//! A pooled connection the relay closed while idle is replaced once, before anything is handed
//! over. Failures of the relay itself feed a circuit [`Breaker`]: while it is open, messages
//! are not tried ([`SendFailure::Untried`]) and go back to the queue.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{
    ContentTransferEncoding, ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::{Address, Message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::SendFailure;
use crate::config::{DkimAlgorithm, DkimSettings, SmtpConfig, SmtpSecurity};

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

/// The DATA block of a message, as lettre's codec would write it: CRLF line ends (a message
/// that is not CRLF-clean is normalised first), a "." opening a line doubled (RFC 5321
/// §4.5.2), and the closing CRLF "." CRLF.
pub fn data_block(message: &str) -> String {
    let clean;
    let mut rest = if is_crlf_clean(message) {
        message
    } else {
        clean = normalize_crlf(message);
        clean.as_str()
    };
    let mut out = String::with_capacity(rest.len() + 16);
    if rest.starts_with('.') {
        out.push('.');
    }
    while let Some(i) = rest.find("\r\n.") {
        out.push_str(&rest[..i + 2]);
        out.push('.');
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out.push_str("\r\n.\r\n");
    out
}

/// Builds the RFC 5322 message: multipart/alternative (text, then HTML), a deterministic
/// Message-ID, the Date from the injected clock, and `List-Unsubscribe` with
/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058) when an https link is given.
pub fn build_email(p: &EmailParts<'_>) -> Result<String, SendFailure> {
    let from = super::address::mailbox(p.from_name, p.from_email)?;
    let to = super::address::mailbox(p.to_name, p.to_email)?;
    let date = std::time::UNIX_EPOCH + Duration::from_secs(p.date.max(0) as u64);
    let text = normalize_crlf(p.text);
    let html = normalize_crlf(p.html);
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(p.subject)
        .date(date)
        .message_id(Some(format!("<{}>", p.message_id)));
    let body = MultiPart::alternative_plain_html(text, html);
    let cannot =
        |e: &dyn std::fmt::Display| SendFailure::permanent(format!("cannot build the email: {e}"));
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

/// A plain TCP stream that reaches the `after_dot` failpoint once the final dot is flushed
/// (used only when that failpoint is armed: the crash matrix).
#[derive(Debug)]
struct DotWatch(TcpStream, bool);

impl AsyncRead for DotWatch {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for DotWatch {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if buf.ends_with(b"\r\n.\r\n") {
            me.1 = true;
        }
        Pin::new(&mut me.0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.0).poll_flush(cx);
        if me.1 && r.is_ready() {
            me.1 = false;
            crate::failpoint::hit("after_dot");
        }
        r
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for DotWatch {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

/// An open SMTP session and whether the relay offered PIPELINING (RFC 2920) on it.
struct Conn {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Reused SMTP connections, at most `connections` at once.
pub struct SmtpPool {
    cfg: SmtpConfig,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
    /// `smtp.rate` (None: unlimited).
    rate: Option<super::RateLimiter>,
    breaker: std::sync::Mutex<Breaker>,
}

/// The circuit breaker of one relay: after `after` failures of the relay itself in a row it
/// opens for `first` (doubling each time the probe after it fails, at most 10 minutes); while
/// open, messages are not tried at all. When the time is up the next messages probe the
/// relay: a success closes it, a failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    after: u32,
    first: Duration,
    failures: u32,
    open_for: Duration,
    open_until: Option<Instant>,
}

const BREAKER_MAX: Duration = Duration::from_secs(600);

impl Breaker {
    pub fn new(after: u32, first: Duration) -> Breaker {
        Breaker {
            after: after.max(1),
            first,
            failures: 0,
            open_for: Duration::ZERO,
            open_until: None,
        }
    }

    /// How long it stays open from `now` (`None`: closed or probing).
    pub fn open(&self, now: Instant) -> Option<Duration> {
        self.open_until
            .and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    pub fn success(&mut self) {
        self.failures = 0;
        self.open_for = Duration::ZERO;
        self.open_until = None;
    }

    /// Counts a failure of the relay; `Some(d)` when the breaker opens now, for `d`. A failure
    /// while it is open belongs to a message that was already in flight when it opened: it
    /// changes nothing.
    pub fn failure(&mut self, now: Instant) -> Option<Duration> {
        if self.open(now).is_some() {
            return None;
        }
        self.failures += 1;
        if self.failures < self.after {
            return None;
        }
        self.open_for = if self.open_for.is_zero() {
            self.first
        } else {
            (self.open_for * 2).min(BREAKER_MAX)
        };
        self.open_until = Some(now + self.open_for);
        // The first failure after it reopens (the probe) opens it again.
        self.failures = self.after - 1;
        Some(self.open_for)
    }
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
        if cfg.security != SmtpSecurity::Plain && cfg.accept_invalid_certs {
            tracing::warn!(
                host = %cfg.host,
                "email.smtp.accept_invalid_certs is true: the relay's certificate is NOT \
                 verified, anyone on the path can read and change mail; give its CA as \
                 `email.smtp.ca_file` instead"
            );
        }
        let slots = Semaphore::new(cfg.connections as usize);
        let rate = cfg
            .rate
            .is_limited()
            .then(|| super::RateLimiter::new("smtp", cfg.rate));
        let breaker = std::sync::Mutex::new(Breaker::new(
            cfg.breaker_failures,
            Duration::from_secs(cfg.breaker_secs as u64),
        ));
        SmtpPool {
            cfg,
            idle: Mutex::new(Vec::new()),
            slots,
            rate,
            breaker,
        }
    }

    /// The most connections the pool opens.
    pub fn connections(&self) -> usize {
        self.cfg.connections.max(1) as usize
    }

    /// Counts emails an earlier run sent today against `smtp.rate.per_day`.
    pub fn seed_today(&self, sent: u64) {
        if let Some(r) = &self.rate {
            r.seed_today(sent);
        }
    }

    /// `smtp.rate` counted and paced with the other daemons on the database.
    pub fn share_limits(&self, book: &std::sync::Arc<dyn super::RateBook>) {
        if let Some(r) = &self.rate {
            r.share(book.clone(), "email");
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs as u64)
    }

    async fn connect(&self) -> Result<Conn, SendFailure> {
        let t = self.timeout();
        let hello = ClientId::Domain(self.cfg.hello_name.clone());
        let tcp = tokio::time::timeout(
            t,
            TcpStream::connect((self.cfg.host.as_str(), self.cfg.port)),
        )
        .await
        .map_err(|_| {
            SendFailure::transient(format!(
                "connecting to {}:{} timed out",
                self.cfg.host, self.cfg.port
            ))
        })?
        .map_err(|e| {
            SendFailure::transient(format!(
                "cannot connect to {}:{}: {e}",
                self.cfg.host, self.cfg.port
            ))
        })?;
        tcp.set_nodelay(true)
            .map_err(|e| SendFailure::transient(format!("TCP_NODELAY: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match self.cfg.security {
            SmtpSecurity::Tls => Box::new(self.tls_handshake(tcp).await?),
            _ if crate::failpoint::armed("after_dot") => Box::new(DotWatch(tcp, false)),
            _ => Box::new(tcp),
        };
        let mut conn = tokio::time::timeout(
            t,
            AsyncSmtpConnection::connect_with_transport(stream, &hello),
        )
        .await
        .map_err(|_| SendFailure::transient("SMTP greeting timed out"))?
        .map_err(|e| refused_at_hello(&e, "greeting or EHLO"))?;
        if self.cfg.security == SmtpSecurity::Starttls {
            let params = self.starttls_params()?;
            tokio::time::timeout(t, conn.starttls(params, &hello))
                .await
                .map_err(|_| SendFailure::transient("STARTTLS timed out"))?
                .map_err(|e| {
                    let raw = e.to_string();
                    if super::tls::is_tls_failure(&raw) {
                        SendFailure::transient(super::tls::explain(
                            &self.cfg.host,
                            "email.smtp",
                            &raw,
                        ))
                    } else {
                        SendFailure::transient(format!(
                            "STARTTLS failed (required by `security: starttls`): {raw}"
                        ))
                    }
                })?;
        }
        // lettre keeps no record of PIPELINING: ask again (one EHLO per connection, before
        // AUTH) and read the extension list ourselves.
        let pipelining = self.cfg.pipelining && {
            let ehlo = tokio::time::timeout(t, conn.command(Ehlo::new(hello.clone())))
                .await
                .map_err(|_| SendFailure::transient("SMTP EHLO timed out"))?
                .map_err(|e| refused_at_hello(&e, "EHLO"))?;
            offers_pipelining(&ehlo)
        };
        if let (Some(user), Some(pass)) = (&self.cfg.username, &self.cfg.password) {
            let creds = Credentials::new(user.clone(), pass.expose().to_string());
            tokio::time::timeout(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds))
                .await
                .map_err(|_| SendFailure::transient("SMTP AUTH timed out"))?
                .map_err(|e| about_us(&e, "AUTH"))?;
        }
        Ok(Conn {
            smtp: conn,
            pipelining,
        })
    }

    /// The trust settings with `accept_invalid_certs` folded in.
    fn trust(&self) -> crate::config::TlsTrust {
        crate::config::TlsTrust {
            accept_invalid_certs: self.cfg.accept_invalid_certs,
            ..(*self.cfg.tls).clone()
        }
    }

    /// lettre's TLS parameters for STARTTLS: the web PKI roots plus `ca_file` (or only it),
    /// and the client certificate when one is configured.
    fn starttls_params(&self) -> Result<TlsParameters, SendFailure> {
        use lettre::transport::smtp::client::{Certificate, CertificateStore, Identity};
        let setup = |e: String| SendFailure::permanent(format!("TLS setup: {e}"));
        let pem = super::tls::read_pem(&self.cfg.tls, "email.smtp").map_err(setup)?;
        let mut b = TlsParameters::builder(self.cfg.host.clone())
            .dangerous_accept_invalid_certs(self.cfg.accept_invalid_certs);
        if self.cfg.tls.ca_only {
            b = b.certificate_store(CertificateStore::None);
        }
        if let Some(ca) = &pem.ca {
            let cert =
                Certificate::from_pem(ca).map_err(|e| setup(format!("email.smtp.ca_file: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        if let Some((cert, key)) = &pem.identity {
            let id = Identity::from_pem(cert, key)
                .map_err(|e| setup(format!("email.smtp.client_cert/client_key: {e}")))?;
            b = b.identify_with(id);
        }
        b.build_rustls().map_err(|e| setup(format!("{e}")))
    }

    async fn tls_handshake(&self, tcp: TcpStream) -> Result<TlsTcp, SendFailure> {
        let config = super::tls::client_config(&self.trust(), "email.smtp", |p| {
            Arc::new(super::tls::NoVerify(p))
        })
        .map_err(|e| SendFailure::permanent(format!("TLS setup: {e}")))?;
        let name = rustls::pki_types::ServerName::try_from(self.cfg.host.clone()).map_err(|e| {
            SendFailure::permanent(format!("invalid TLS server name `{}`: {e}", self.cfg.host))
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = tokio::time::timeout(self.timeout(), connector.connect(name, tcp))
            .await
            .map_err(|_| SendFailure::transient("TLS handshake timed out"))?
            .map_err(|e| {
                SendFailure::transient(super::tls::explain(
                    &self.cfg.host,
                    "email.smtp",
                    &e.to_string(),
                ))
            })?;
        Ok(TlsTcp(tls))
    }

    /// Opens one connection (TCP, TLS, EHLO, AUTH when configured) and QUITs: sends nothing.
    /// For `ritualist doctor`.
    pub async fn probe(&self) -> Result<Option<String>, SendFailure> {
        let mut conn = self.connect().await?;
        // Who issued the relay's certificate and until when (None without TLS).
        let certificate = conn
            .smtp
            .peer_certificate()
            .ok()
            .and_then(|der| super::tls::describe_certificate(&der));
        let _ = tokio::time::timeout(self.timeout(), conn.smtp.quit()).await;
        Ok(certificate)
    }

    /// A pooled connection that still answers (`true`: reused), or a new one.
    async fn checkout(&self) -> Result<(Conn, bool), SendFailure> {
        loop {
            let candidate = self.idle.lock().await.pop();
            let Some(mut idle) = candidate else { break };
            if idle.conn.smtp.has_broken() {
                continue;
            }
            if idle.since.elapsed() < PROBE_AFTER {
                return Ok((idle.conn, true));
            }
            let alive = tokio::time::timeout(self.timeout(), idle.conn.smtp.test_connected())
                .await
                .unwrap_or(false);
            if alive {
                return Ok((idle.conn, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    /// Sends `message` (already CRLF-normalised) from `from` to `to`; returns the server's reply.
    /// `handover` is committed after `354` to DATA and before the first byte of the body: a
    /// failure before it is "not sent", a reply code after it is "accepted" or "rejected", and
    /// a broken or silent connection after it is "in doubt" ([`SendFailure::InDoubt`]).
    ///
    /// A pooled connection the relay closed while it sat idle (its idle timeout is shorter
    /// than ours, or it restarted) fails at MAIL FROM, before anything is handed over: the
    /// message is then tried once more on a fresh connection instead of waiting for a retry.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        message: &[u8],
        handover: Option<&dyn super::Handover>,
    ) -> Result<String, SendFailure> {
        if let Some(d) = self.breaker_state().open(Instant::now()) {
            return Err(SendFailure::untried(
                format!(
                    "not tried: {}:{} failed {} times in a row; the circuit breaker is open for another {} s",
                    self.cfg.host,
                    self.cfg.port,
                    self.cfg.breaker_failures,
                    d.as_secs_f64().ceil()
                ),
                d,
            ));
        }
        let (result, relay_down) = match self.attempt(from, to, message, handover).await {
            Ok(reply) => (Ok(reply), false),
            Err((e, down)) => (Err(e), down),
        };
        let mut b = self.breaker_state();
        if relay_down {
            if let Some(d) = b.failure(Instant::now()) {
                tracing::warn!(
                    "SMTP relay {}:{} failed {} times in a row: circuit breaker open for {} s",
                    self.cfg.host,
                    self.cfg.port,
                    self.cfg.breaker_failures,
                    d.as_secs()
                );
            }
        } else if result.is_ok() {
            if b.open_for > Duration::ZERO {
                tracing::info!(
                    "SMTP relay {}:{} answers again: circuit breaker closed",
                    self.cfg.host,
                    self.cfg.port
                );
            }
            b.success();
        }
        result
    }

    fn breaker_state(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One message; on failure also whether it was the relay itself (it could not be reached,
    /// closed the connection, answered 421, or went silent).
    async fn attempt(
        &self,
        from: &str,
        to: &str,
        message: &[u8],
        handover: Option<&dyn super::Handover>,
    ) -> Result<String, (SendFailure, bool)> {
        let mine = |e: SendFailure| (e, false);
        // A failure to connect (refused, timed out, greeting or STARTTLS refused) is the
        // relay's; a refusal of our credentials is about us (the channel pauses instead).
        let down = |e: SendFailure| {
            let about_us = matches!(e, SendFailure::AboutUs { .. });
            (e, !about_us)
        };
        // Paced before a connection is taken: the wait never holds a slot.
        if let Some(r) = &self.rate {
            r.admit().await.map_err(mine)?;
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| mine(SendFailure::transient("pool closed")))?;
        let envelope = lettre::address::Envelope::new(
            Some(from.parse().map_err(|e| {
                mine(SendFailure::permanent(format!(
                    "invalid sender `{from}`: {e}"
                )))
            })?),
            vec![to.parse().map_err(|e| {
                mine(SendFailure::permanent(format!(
                    "invalid recipient `{to}`: {e}"
                )))
            })?],
        )
        .map_err(|e| mine(SendFailure::permanent(e.to_string())))?;
        let (mut conn, mut reused) = self.checkout().await.map_err(down)?;
        loop {
            let handed = AtomicBool::new(false);
            let sent = tokio::time::timeout(
                self.timeout(),
                transaction(&mut conn, &envelope, message, handover, &handed),
            )
            .await;
            return match sent {
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
                Ok(Err(Failed::Stale(e))) if reused => {
                    tracing::debug!(
                        "a pooled SMTP connection was closed by the relay ({e}); reconnecting"
                    );
                    conn = self.connect().await.map_err(down)?;
                    reused = false;
                    continue;
                }
                Ok(Err(Failed::Stale(e) | Failed::Down(e))) => Err((e, true)),
                Ok(Err(Failed::Other(e))) => Err((e, false)),
                Err(_) if handed.load(Ordering::SeqCst) => Err((
                    SendFailure::in_doubt(format!(
                        "no reply to the message within {} s; in doubt: the relay may have taken it",
                        self.cfg.timeout_secs
                    )),
                    true,
                )),
                Err(_) => Err((
                    SendFailure::transient(format!("no reply within {} s", self.cfg.timeout_secs)),
                    true,
                )),
            };
        }
    }

    pub async fn close(&self) {
        let mut idle = self.idle.lock().await;
        for mut i in idle.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), i.conn.smtp.quit()).await;
        }
    }
}

/// Why a transaction failed.
enum Failed {
    /// The connection was gone at MAIL FROM (no reply, or a 421 closing it): nothing was
    /// handed over, and a reused connection is worth one fresh try.
    Stale(SendFailure),
    /// The relay closed the connection or answered 421 later on (or went silent after the
    /// body): it counts towards the circuit breaker.
    Down(SendFailure),
    Other(SendFailure),
}

/// Whether an EHLO reply lists PIPELINING.
fn offers_pipelining(ehlo: &Response) -> bool {
    ehlo.message().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("PIPELINING"))
    })
}

/// MAIL, RCPT, DATA and the message, each reply classified by the command it answered (what
/// `AsyncSmtpConnection::send` does in one call, minus the phase). When the relay offers
/// PIPELINING the three envelope commands go out in one write and their replies are read in
/// order (one round trip instead of three); DATA is the last command of the group, so nothing
/// of the body is written before its `354`. Between `354` and the body the handover is
/// committed and `handed` set. A failed transaction leaves the connection aborted, as
/// lettre's own `send` does.
async fn transaction(
    session: &mut Conn,
    envelope: &lettre::address::Envelope,
    message: &[u8],
    handover: Option<&dyn super::Handover>,
    handed: &AtomicBool,
) -> Result<Response, Failed> {
    let pipelining = session.pipelining;
    let conn = &mut session.smtp;
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Failed::Other(SendFailure::permanent(
                "the address is not ASCII and the relay does not offer SMTPUTF8",
            )));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Failed::Other(SendFailure::permanent(
                "the message is 8-bit and the relay does not offer 8BITMIME",
            )));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(envelope.from().cloned(), options);
    let envelope_phase = async {
        if pipelining {
            let mut group = mail.to_string();
            for to in envelope.to() {
                group.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
            }
            group.push_str(&Data.to_string());
            // One write; the first reply (to MAIL) comes back from `command`, the rest are
            // read in the order the commands went out. A refusal stops at its command: the
            // connection is aborted, so later replies never need reading.
            conn.command(group)
                .await
                .map_err(|e| (SmtpPhase::Mail, e))?;
            crate::failpoint::hit("after_mail");
            for _ in envelope.to() {
                conn.read_response()
                    .await
                    .map_err(|e| (SmtpPhase::Rcpt, e))?;
            }
            crate::failpoint::hit("after_rcpt");
            conn.read_response()
                .await
                .map_err(|e| (SmtpPhase::Data, e))?;
        } else {
            conn.command(mail).await.map_err(|e| (SmtpPhase::Mail, e))?;
            crate::failpoint::hit("after_mail");
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), Vec::new()))
                    .await
                    .map_err(|e| (SmtpPhase::Rcpt, e))?;
            }
            crate::failpoint::hit("after_rcpt");
            conn.command(Data).await.map_err(|e| (SmtpPhase::Data, e))?;
        }
        crate::failpoint::hit("after_data");
        Ok(())
    }
    .await;
    if let Err((phase, e)) = envelope_phase {
        conn.abort().await;
        let closed = e.status().is_none_or(|c| u16::from(c) == 421);
        let err = classify_reply(&e, phase);
        return Err(match (phase, closed) {
            (SmtpPhase::Mail, true) => Failed::Stale(err),
            (_, true) => Failed::Down(err),
            _ => Failed::Other(err),
        });
    }
    // The last moment nothing is handed over yet: commit `sending`, or give up (QUIT, no body).
    if let Some(h) = handover
        && let Err(e) = h.commit().await
    {
        conn.abort().await;
        return Err(Failed::Other(e));
    }
    handed.store(true, Ordering::SeqCst);
    crate::failpoint::hit("after_sending");
    let sent = if crate::failpoint::armed("mid_body") {
        // Two parts, so the crash matrix can stop the process with half the body written.
        let half = message.len() / 2;
        let parts = [&message[..half], &message[half..]];
        let mut n = 0;
        let body = parts.iter().inspect(|_| {
            n += 1;
            if n == 2 {
                crate::failpoint::hit("mid_body");
            }
        });
        conn.message_iter(body).await
    } else {
        match std::str::from_utf8(message) {
            // The whole DATA block in one write (lettre writes the body and the final dot
            // separately: two system calls and two segments per message).
            Ok(text) => conn.command(data_block(text)).await,
            Err(_) => conn.message(message).await,
        }
    };
    match sent {
        Ok(resp) => {
            crate::failpoint::hit("after_accept");
            Ok(resp)
        }
        Err(e) => {
            conn.abort().await;
            if e.is_transient() || e.is_permanent() {
                // A reply code to the final dot: a definite answer (421: the relay's trouble).
                let err = classify_reply(&e, SmtpPhase::Message);
                Err(if e.status().is_some_and(|c| u16::from(c) == 421) {
                    Failed::Down(err)
                } else {
                    Failed::Other(err)
                })
            } else {
                // Broken while writing the body or before the reply's code: the relay may have it.
                Err(Failed::Down(SendFailure::in_doubt(format!(
                    "end of data: {e}; in doubt: the relay may have taken the message"
                ))))
            }
        }
    }
}

/// The SMTP command a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpPhase {
    Mail,
    Rcpt,
    /// The DATA command itself.
    Data,
    /// The reply to the final dot, after the message.
    Message,
}

impl SmtpPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpPhase::Mail => "MAIL FROM",
            SmtpPhase::Rcpt => "RCPT TO",
            SmtpPhase::Data => "DATA",
            SmtpPhase::Message => "end of data",
        }
    }
}

/// What a 5xx reply says about the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The address does not exist or takes no mail (5.1.1 user unknown, 5.1.2, 5.1.3, 5.1.6,
    /// 5.1.10 null MX, 5.2.1 disabled, or a 5xx to RCPT without an enhanced code): suppress it.
    HardBounce,
    /// About us or the message, never the recipient's fault: 5.7.x (policy, auth, SPF/DKIM/
    /// DMARC), a 5xx to MAIL FROM or to DATA, sender-address codes 5.1.7/5.1.8, 5.3.x system,
    /// 5.2.2 mailbox full, …
    Other,
}

/// The RFC 3463 enhanced status code at the start of a reply text: `5.1.1 User unknown`.
fn enhanced_code(text: &str) -> Option<(u16, u16, u16)> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.').map(|p| p.parse::<u16>().ok());
    let (class, subject, detail) = (parts.next()??, parts.next()??, parts.next()??);
    (parts.next().is_none() && (2..=5).contains(&class)).then_some((class, subject, detail))
}

/// Classifies a permanent (5xx) reply by the command it answered, its code and its text
/// (after the code). RELIABILITY.md §2; pure, so a table test pins it.
pub fn classify_rejection(phase: SmtpPhase, code: u16, text: &str) -> Rejection {
    if !(500..600).contains(&code) {
        return Rejection::Other;
    }
    match (phase, enhanced_code(text)) {
        (SmtpPhase::Mail | SmtpPhase::Data, _) => Rejection::Other,
        (_, Some((_, 7, _))) | (_, Some((_, 1, 7 | 8))) => Rejection::Other,
        (_, Some((_, 1, _))) | (_, Some((_, 2, 1))) => Rejection::HardBounce,
        (SmtpPhase::Rcpt, None) => Rejection::HardBounce,
        _ => Rejection::Other,
    }
}

/// A reply to MAIL, RCPT, DATA or the message: 4xx and anything without a code transient;
/// 5xx permanent, and a hard bounce when it is about the recipient's address.
fn classify_reply(e: &lettre::transport::smtp::Error, phase: SmtpPhase) -> SendFailure {
    let detail = e.to_string();
    let message = format!("{}: {detail}", phase.as_str());
    if !e.is_permanent() {
        return SendFailure::transient(message);
    }
    let code = e.status().map(u16::from).unwrap_or(500);
    // "permanent error (550): 5.1.1 User unknown" → "5.1.1 User unknown"
    let text = detail.split_once("): ").map_or("", |(_, t)| t);
    match classify_rejection(phase, code, text) {
        Rejection::HardBounce => SendFailure::hard_bounce(message),
        Rejection::Other => {
            if phase == SmtpPhase::Mail || enhanced_code(text).is_some_and(|(_, s, _)| s == 7) {
                tracing::error!(
                    "the SMTP relay rejected ritualist itself at {}: {detail}; check the sender, the smtp settings and SPF/DKIM/DMARC",
                    phase.as_str()
                );
                return SendFailure::about_us(message);
            }
            SendFailure::permanent(message)
        }
    }
}

/// A rejection of *us* (greeting refused, AUTH failed): never the customer's fault, so never a
/// permanent failure of their message. It waits (transient) while the operator fixes the
/// configuration, and is logged as an error.
fn about_us(e: &lettre::transport::smtp::Error, phase: &str) -> SendFailure {
    tracing::error!(
        "the SMTP relay rejected ritualist itself at {phase}: {e}; check the smtp settings and credentials"
    );
    SendFailure::about_us(format!(
        "{phase} rejected by the relay (configuration, not the recipient): {e}"
    ))
}

/// The greeting or EHLO (HELO) answered: a 5xx there (`554 5.7.1 … blocklist`, `550 no
/// service`) refuses this client before any recipient is named, so it is about us: the
/// channel pauses, no message fails. A 4xx or no reply is the relay's trouble (transient, the
/// circuit breaker counts it).
fn refused_at_hello(e: &lettre::transport::smtp::Error, phase: &str) -> SendFailure {
    if e.is_permanent() {
        about_us(e, phase)
    } else {
        classify(e, phase)
    }
}

/// SMTP reply codes decide: 4xx transient, 5xx permanent; anything without a code (network,
/// TLS, a malformed reply) is transient.
fn classify(e: &lettre::transport::smtp::Error, phase: &str) -> SendFailure {
    let detail = e.to_string();
    if e.is_permanent() {
        SendFailure::permanent(format!("{phase}: {detail}"))
    } else {
        SendFailure::transient(format!("{phase}: {detail}"))
    }
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
    fn smtp_rejections_table() {
        use Rejection::{HardBounce, Other};
        use SmtpPhase::{Data, Mail, Message, Rcpt};
        for (phase, code, text, want) in [
            (Rcpt, 550, "5.1.1 User unknown", HardBounce),
            (Rcpt, 550, "5.1.2 Bad destination system", HardBounce),
            (
                Rcpt,
                550,
                "5.1.10 Recipient address has null MX",
                HardBounce,
            ),
            (Rcpt, 550, "5.2.1 Mailbox disabled", HardBounce),
            (Rcpt, 550, "User unknown", HardBounce),
            (Rcpt, 553, "mailbox name not allowed", HardBounce),
            (Message, 550, "5.1.1 User unknown", HardBounce),
            (Rcpt, 550, "5.7.1 Relaying denied", Other),
            (Rcpt, 554, "5.7.1 Rejected by policy (SPF)", Other),
            (Rcpt, 550, "5.1.8 Bad sender's system address", Other),
            (Rcpt, 552, "5.2.2 Mailbox full", Other),
            (Rcpt, 500, "5.3.0 Error: command failed", Other),
            (Mail, 535, "5.7.8 Authentication failed", Other),
            (Mail, 550, "5.1.1 Sender unknown", Other),
            (Mail, 550, "no such user", Other),
            (Data, 554, "no valid recipients", Other),
            (Message, 550, "5.7.1 Message rejected as spam", Other),
            (Message, 554, "Transaction failed", Other),
            (Rcpt, 450, "4.1.1 try later", Other),
        ] {
            assert_eq!(
                classify_rejection(phase, code, text),
                want,
                "{phase:?} {code} {text}"
            );
        }
    }

    #[test]
    fn the_breaker_opens_after_failures_in_a_row_doubles_and_closes_on_success() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut b = Breaker::new(3, s(30));
        assert_eq!(b.failure(t0), None);
        b.success();
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.open(t0), None, "two in a row: still closed");
        assert_eq!(b.failure(t0), Some(s(30)));
        // A message that was in flight when it opened fails too: no change.
        assert_eq!(b.failure(t0 + s(1)), None);
        assert_eq!(b.open(t0 + s(10)), Some(s(20)));
        assert_eq!(
            b.open(t0 + s(30)),
            None,
            "time is up: the next message probes"
        );
        // The probe fails: open again at once, twice as long.
        assert_eq!(b.failure(t0 + s(30)), Some(s(60)));
        assert_eq!(b.failure(t0 + s(90)), Some(s(120)));
        // Capped at ten minutes.
        let mut at = t0 + s(210);
        for _ in 0..10 {
            at += b.failure(at).unwrap();
        }
        assert_eq!(b.open(at - BREAKER_MAX), Some(BREAKER_MAX));
        // A success closes it and forgets the doubling.
        b.success();
        assert_eq!(b.open(at - BREAKER_MAX), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), Some(s(30)));
    }

    #[test]
    fn the_data_block_is_stuffed_and_ends_once() {
        assert_eq!(data_block("a\r\nb"), "a\r\nb\r\n.\r\n");
        assert_eq!(data_block(".a\r\n.\r\n..b"), "..a\r\n..\r\n...b\r\n.\r\n");
        // Bare LFs and a lone dot after one: normalised, then stuffed (RUSTSEC-2026-0561).
        assert_eq!(data_block("x\n.\nQUIT\r"), "x\r\n..\r\nQUIT\r\n.\r\n");
        // Exactly one end of data, at the end.
        let b = data_block("1\n.\n2\r\n.\r\n3");
        assert_eq!(b.matches("\r\n.\r\n").count(), 1);
        assert!(b.ends_with("\r\n.\r\n"));
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
