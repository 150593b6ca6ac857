//! The daemon's inbound mail listener (`bounces.listen`): the shop's MTA routes the mail
//! addressed to the return path (`bounces+<token>@shop.example`) here over LMTP (RFC 2033, the
//! default) or SMTP (RFC 5321), and every message goes to [`App::ingest_report`], which
//! parses, matches and records it (docs/delivery-guarantee.md §6).
//!
//! - Only the return path's addresses are taken (the bare one, or `local+anything`); any other
//!   recipient is refused with `550 5.1.1`: the listener delivers nowhere, so it cannot relay.
//! - A recipient gets `250` only after its report is committed, and `451 4.3.0` when it could
//!   not be (the database is down, say): the MTA keeps the message and retries, so nothing is
//!   lost while ritualist is failing or stopped.
//! - Limits: 10 MB per message (`552 5.3.4`), 100 recipients, a 5-minute wait for each command
//!   or line, 64 connections at a time (`421` beyond).
//!
//! Like the HTTP server, [`serve`] takes a bound listener and a shutdown future; on shutdown it
//! takes no new connection, tells idle sessions `421 4.3.2` and lets a message being received
//! finish.

mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::app::App;
use crate::config::InboundProtocol;

pub use session::{Mailbox, Options};

/// The largest message taken (a DSN returns the original's headers, rarely more).
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// How long a session waits for a command or a line of data.
pub const TIMEOUT: Duration = Duration::from_secs(300);
/// Connections served at a time; more get `421` and are closed.
const SESSIONS_MAX: usize = 64;

/// The App as a mailbox: the return path's addresses, each message to
/// [`App::ingest_report`] with the recipient it was addressed to.
pub struct AppMailbox(pub Arc<App>);

impl Mailbox for AppMailbox {
    fn accepts(&self, rcpt: &str) -> bool {
        self.0
            .cfg
            .bounces
            .return_path
            .as_ref()
            .is_some_and(|(local, domain)| is_return_path(rcpt, local, domain))
    }

    async fn deliver(&self, raw: &[u8], rcpt: &str) -> Result<(), String> {
        self.0
            .ingest_report(raw, Some(rcpt))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Whether `addr` is `local@domain` or `local+anything@domain` (any case).
pub fn is_return_path(addr: &str, local: &str, domain: &str) -> bool {
    let Some((l, d)) = addr.rsplit_once('@') else {
        return false;
    };
    let base = match l.split_once('+') {
        Some((base, tag)) if !tag.is_empty() => base,
        Some(_) => return false,
        None => l,
    };
    base.eq_ignore_ascii_case(local) && d.eq_ignore_ascii_case(domain)
}

/// The session options of `app`'s configuration.
pub fn options(app: &App) -> Options {
    let cfg = &app.cfg.bounces;
    Options {
        protocol: cfg.listen.map_or(InboundProtocol::Lmtp, |l| l.protocol),
        hostname: cfg
            .return_path
            .as_ref()
            .map_or_else(|| "localhost".to_string(), |(_, d)| d.clone()),
        max_message_bytes: MAX_MESSAGE_BYTES,
        timeout: TIMEOUT,
    }
}

/// Serves `app`'s inbound mail on `listener` until `shutdown` completes.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let opts = options(&app);
    serve_with(Arc::new(AppMailbox(app)), opts, listener, shutdown).await
}

/// Serves sessions on `listener`, each message to `mailbox`, until `shutdown` completes;
/// then accepts nothing more and waits for the sessions (an idle one is told `421`).
pub async fn serve_with<M: Mailbox>(
    mailbox: Arc<M>,
    opts: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let opts = Arc::new(opts);
    let (stop, stopped) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(SESSIONS_MAX));
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, a connection reset before accept: wait a
                        // moment rather than spin.
                        tracing::warn!("inbound mail: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let permit = permits.clone().try_acquire_owned().ok();
                let (mailbox, opts, stopped) = (mailbox.clone(), opts.clone(), stopped.clone());
                sessions.spawn(async move {
                    let (r, mut w) = stream.into_split();
                    if permit.is_none() {
                        use tokio::io::AsyncWriteExt;
                        let _ = w.write_all(b"421 4.7.0 Too many connections, try again later\r\n").await;
                        return;
                    }
                    let reader = BufReader::new(r);
                    if let Err(e) = session::run(&*mailbox, &opts, reader, w, peer.to_string(), stopped).await {
                        tracing::debug!(%peer, "inbound mail: session ended: {e}");
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while sessions.join_next().await.is_some() {}
    Ok(())
}
