//! The wire under an SMTP session: implicit TLS over our own TCP stream, the `after_dot`
//! failpoint's stream, the DATA block written in one piece (dot-stuffed, final dot), and the
//! gate that holds the final dot until the handover is committed ([`Held`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::mime::{is_crlf_clean, normalize_crlf};

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

/// A TLS stream over a TCP stream we opened (with TCP_NODELAY), for implicit TLS.
pub(super) struct TlsTcp(pub(super) tokio_rustls::client::TlsStream<TcpStream>);

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
pub(super) struct DotWatch(pub(super) TcpStream, pub(super) bool);

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

/// The hold on a session's final dot while the handover commits (see [`Held`]).
#[derive(Debug, Clone, Default)]
pub(super) struct DotGate(Arc<Mutex<Option<Hold>>>);

#[derive(Debug)]
struct Hold {
    /// Bytes that may still go out before the hold: the body of the DATA block.
    allow: usize,
    /// Whether the body was flushed to the wire.
    flushed: bool,
    /// Whether the dot was found waiting once (the `body_sent_before_dot` failpoint).
    waited: bool,
    /// `true`: the handover is committed, the dot may go; `false` (or dropped): it never goes.
    until: tokio::sync::oneshot::Receiver<bool>,
}

impl DotGate {
    /// Lets the next `body_len` bytes written through the session go out, then holds the
    /// rest (the final dot) until `until` answers `true`; on `false` or a dropped sender the
    /// write fails and the dot is never sent.
    pub(super) fn hold_after(&self, body_len: usize, until: tokio::sync::oneshot::Receiver<bool>) {
        *self.lock() = Some(Hold {
            allow: body_len,
            flushed: false,
            waited: false,
            until,
        });
    }

    /// Lifts any hold (the transaction is over).
    pub(super) fn clear(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Hold>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A plaintext stream (TCP, or implicit TLS above its encryption) whose writes pass through a
/// [`DotGate`]: the body of a message goes out while its `sending` commit is still on its way
/// to the disk, and the final dot — the moment the relay takes the message — only once the
/// commit is durable (docs/delivery-guarantee.md §1). Not used under STARTTLS, where lettre's
/// TLS sits above our stream and the gate would see ciphertext: there the commit comes first.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) inner: Box<dyn AsyncTokioStream>,
    pub(super) gate: DotGate,
}

impl AsyncRead for Held {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let mut gate = me.gate.lock();
        let Some(hold) = gate.as_mut() else {
            return Pin::new(&mut me.inner).poll_write(cx, buf);
        };
        if hold.allow > 0 {
            let n = buf.len().min(hold.allow);
            let written = ready!(Pin::new(&mut me.inner).poll_write(cx, &buf[..n]))?;
            hold.allow -= written;
            return Poll::Ready(Ok(written));
        }
        // The whole body is written: on the wire before the dot waits.
        if !hold.flushed {
            ready!(Pin::new(&mut me.inner).poll_flush(cx))?;
            hold.flushed = true;
        }
        match Pin::new(&mut hold.until).poll(cx) {
            Poll::Pending => {
                if !hold.waited {
                    hold.waited = true;
                    // The body is out, the dot held, the `sending` commit not yet answered.
                    crate::failpoint::hit("body_sent_before_dot");
                }
                Poll::Pending
            }
            Poll::Ready(Ok(true)) => {
                *gate = None;
                Pin::new(&mut me.inner).poll_write(cx, buf)
            }
            Poll::Ready(_) => {
                *gate = None;
                Poll::Ready(Err(io::Error::other(
                    "the handover was not committed: the final dot is not sent",
                )))
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Held {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A gated session over loopback TCP and the peer's end.
    async fn gated() -> (Held, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let held = Held {
            inner: Box::new(ours.unwrap()),
            gate: DotGate::default(),
        };
        (held, theirs.unwrap().0)
    }

    /// Reads what has arrived within a short while.
    async fn arrived(peer: &mut TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), peer.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn the_body_goes_out_and_the_dot_waits_for_the_commit() {
        use tokio::io::AsyncWriteExt;
        let (mut held, mut peer) = gated().await;
        let block = data_block("Subject: hi\r\n\r\nbody");
        let (go, until) = tokio::sync::oneshot::channel();
        held.gate.hold_after(block.len() - 5, until);
        let gate = held.gate.clone();
        let writer = tokio::spawn(async move {
            let r = held.write_all(block.as_bytes()).await;
            (held, r)
        });
        assert_eq!(arrived(&mut peer).await, "Subject: hi\r\n\r\nbody");
        go.send(true).unwrap();
        let (_held, r) = writer.await.unwrap();
        r.unwrap();
        assert_eq!(arrived(&mut peer).await, "\r\n.\r\n");
        assert!(
            gate.lock().is_none(),
            "the hold is lifted once the dot went"
        );
    }

    #[tokio::test]
    async fn an_uncommitted_handover_never_sends_the_dot() {
        use tokio::io::AsyncWriteExt;
        let (mut held, mut peer) = gated().await;
        let block = data_block("body");
        let (go, until) = tokio::sync::oneshot::channel();
        held.gate.hold_after(block.len() - 5, until);
        let writer = tokio::spawn(async move { held.write_all(block.as_bytes()).await });
        assert_eq!(arrived(&mut peer).await, "body");
        go.send(false).unwrap();
        assert!(writer.await.unwrap().is_err());
        assert_eq!(arrived(&mut peer).await, "");
    }
}
