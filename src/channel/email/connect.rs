//! Opening one SMTP connection: TCP (TCP_NODELAY), implicit TLS or STARTTLS, EHLO (and
//! whether the relay offers PIPELINING), AUTH; every step under the pool's timeout.

use std::sync::Arc;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use super::pool::{Conn, SmtpPool};
use super::reply::{about_us, refused_at_hello};
use super::stream::{DotGate, DotWatch, Held, TlsTcp};
use super::transaction::offers_pipelining;
use crate::channel::SendFailure;
use crate::config::SmtpSecurity;

/// A connection not opened, and whether the relay itself turned it away: a 4xx reply to the
/// greeting or EHLO, from a relay that is up (most often its connection limit, such as
/// Postfix's "421 … too many connections").
pub(super) struct NotOpened {
    pub(super) failure: SendFailure,
    pub(super) turned_away: bool,
}

impl From<SendFailure> for NotOpened {
    fn from(failure: SendFailure) -> Self {
        NotOpened {
            failure,
            turned_away: false,
        }
    }
}

impl SmtpPool {
    pub(super) async fn connect(&self) -> Result<Conn, SendFailure> {
        self.open_conn().await.map_err(|n| n.failure)
    }

    /// [`SmtpPool::connect`], saying whether the relay turned the connection away.
    pub(super) async fn open_conn(&self) -> Result<Conn, NotOpened> {
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
        // The final dot can be held back while the body goes out only where our stream sees
        // the plaintext: not under STARTTLS (lettre's TLS sits above it).
        let gate = (self.cfg.security != SmtpSecurity::Starttls).then(DotGate::default);
        let stream: Box<dyn AsyncTokioStream> = match &gate {
            Some(gate) => Box::new(Held {
                inner: stream,
                gate: gate.clone(),
            }),
            None => stream,
        };
        let mut conn = tokio::time::timeout(
            t,
            AsyncSmtpConnection::connect_with_transport(stream, &hello),
        )
        .await
        .map_err(|_| SendFailure::transient("SMTP greeting timed out"))?
        .map_err(|e| NotOpened {
            turned_away: e.is_transient(),
            failure: refused_at_hello(&e, "greeting or EHLO"),
        })?;
        if self.cfg.security == SmtpSecurity::Starttls {
            let params = self.starttls_params()?;
            tokio::time::timeout(t, conn.starttls(params, &hello))
                .await
                .map_err(|_| SendFailure::transient("STARTTLS timed out"))?
                .map_err(|e| {
                    let raw = e.to_string();
                    if crate::channel::tls::is_tls_failure(&raw) {
                        SendFailure::transient(crate::channel::tls::explain(
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
            gate,
            _open: super::pool::OpenConn::count(&self.open),
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
        let pem = crate::channel::tls::read_pem(&self.cfg.tls, "email.smtp").map_err(setup)?;
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
        let config = crate::channel::tls::client_config(&self.trust(), "email.smtp", |p| {
            Arc::new(crate::channel::tls::NoVerify(p))
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
                SendFailure::transient(crate::channel::tls::explain(
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
            .and_then(|der| crate::channel::tls::describe_certificate(&der));
        let _ = tokio::time::timeout(self.timeout(), conn.smtp.quit()).await;
        Ok(certificate)
    }
}
