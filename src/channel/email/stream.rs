//! The wire under an SMTP session: implicit TLS over our own TCP stream, the `after_dot`
//! failpoint's stream, and the DATA block written in one piece (dot-stuffed, final dot).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

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
}
