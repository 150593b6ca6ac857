//! One LMTP or SMTP conversation, over any byte stream: the commands, their replies and the
//! transaction (sender, recipients, data). What happens to an accepted message is the
//! [`Mailbox`]'s business; the session answers `250` for a recipient only once the mailbox
//! said it committed, and `451` when it could not (the MTA keeps the message and retries).

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::config::InboundProtocol;

/// Where accepted mail goes.
pub trait Mailbox: Send + Sync + 'static {
    /// Whether mail for `rcpt` (the address inside `<>`) is taken here; the others are
    /// refused with `550 5.1.1` — the listener delivers nowhere else.
    fn accepts(&self, rcpt: &str) -> bool;

    /// Takes `raw` (the message as received, dot-unstuffed) for `rcpt`; `Ok` only once it is
    /// committed. `Err` says why it could not be, and the sender is told to retry.
    fn deliver(&self, raw: &[u8], rcpt: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// The limits and the dialect of a session.
#[derive(Debug, Clone)]
pub struct Options {
    pub protocol: InboundProtocol,
    /// The name in the greeting and the `LHLO`/`EHLO` reply.
    pub hostname: String,
    /// A larger message is refused with `552 5.3.4` (advertised as `SIZE`).
    pub max_message_bytes: usize,
    /// How long the session waits for a command or a line of data before it closes
    /// (`421 4.4.2`).
    pub timeout: Duration,
}

/// The longest command line taken (RFC 5321 says 512 octets; generous for long addresses).
const COMMAND_MAX: usize = 2048;
/// Recipients per transaction (RFC 5321's minimum is 100).
const RECIPIENTS_MAX: usize = 100;
/// Bad commands in a row before the session gives up on its client.
const ERRORS_MAX: u32 = 20;

/// How reading one line ended.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The line, ending included, is in the buffer.
    Complete,
    /// Longer than the limit: consumed up to its end, not kept.
    TooLong,
    /// The client closed the connection (a partial last line is dropped).
    Eof,
}

/// Reads up to and including the next `\n` into `buf` (cleared first), keeping at most
/// `limit` bytes; never buffers more than that, whatever the client sends.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(Line::Eof);
        }
        let (n, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !too_long {
            if buf.len() + n > limit {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..n]);
            }
        }
        r.consume(n);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// The message a DATA command carried.
enum Data {
    Message(Vec<u8>),
    TooBig,
}

/// What the session does after a command.
enum Next {
    Continue,
    Close,
}

/// A session's state: the transaction in progress.
struct Session<'a, M, R, W> {
    mailbox: &'a M,
    opts: &'a Options,
    reader: R,
    writer: W,
    peer: String,
    greeted: bool,
    sender: Option<String>,
    recipients: Vec<String>,
    errors: u32,
}

/// Runs one conversation to its end: the client's QUIT, its disconnect, a timeout, or
/// `stop` turning true while the session waits for a command (`421 4.3.2`: the MTA retries
/// later). A message whose data is being received or delivered is finished first.
pub async fn run<M, R, W>(
    mailbox: &M,
    opts: &Options,
    reader: R,
    writer: W,
    peer: String,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    M: Mailbox,
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut s = Session {
        mailbox,
        opts,
        reader,
        writer,
        peer,
        greeted: false,
        sender: None,
        recipients: Vec::new(),
        errors: 0,
    };
    let dialect = match opts.protocol {
        InboundProtocol::Lmtp => "LMTP",
        InboundProtocol::Smtp => "ESMTP",
    };
    s.reply(&format!("220 {} {dialect} ritualist", opts.hostname))
        .await?;
    let mut line = Vec::with_capacity(256);
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout(opts.timeout, read_line(&mut s.reader, &mut line, COMMAND_MAX)) => r,
            _ = stopping(&mut stop) => {
                return s.reply("421 4.3.2 Service shutting down, try again later").await;
            }
        };
        let next = match read {
            Err(_) => {
                tracing::debug!(peer = %s.peer, "inbound mail: the client went quiet; closing");
                return s.reply("421 4.4.2 Timeout, closing").await;
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Line::Eof)) => return Ok(()),
            Ok(Ok(Line::TooLong)) => s.refuse("500 5.5.2 Line too long").await?,
            Ok(Ok(Line::Complete)) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']).to_string();
                s.command(&text).await?
            }
        };
        if let Next::Close = next {
            return Ok(());
        }
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl<M, R, W> Session<'_, M, R, W>
where
    M: Mailbox,
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await?;
        self.writer.flush().await
    }

    /// A reply to a command that was wrong; too many of them in a row close the session.
    async fn refuse(&mut self, text: &str) -> std::io::Result<Next> {
        self.errors += 1;
        if self.errors > ERRORS_MAX {
            self.reply("421 4.7.0 Too many errors, closing").await?;
            return Ok(Next::Close);
        }
        self.reply(text).await?;
        Ok(Next::Continue)
    }

    async fn ok(&mut self, text: &str) -> std::io::Result<Next> {
        self.errors = 0;
        self.reply(text).await?;
        Ok(Next::Continue)
    }

    fn reset(&mut self) {
        self.sender = None;
        self.recipients.clear();
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Next> {
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, a.trim()),
            None => (line, ""),
        };
        let lmtp = self.opts.protocol == InboundProtocol::Lmtp;
        match verb.to_ascii_uppercase().as_str() {
            "LHLO" if lmtp => self.hello(arg, true).await,
            "EHLO" if !lmtp => self.hello(arg, true).await,
            "HELO" if !lmtp => self.hello(arg, false).await,
            "LHLO" | "EHLO" | "HELO" => {
                let want = if lmtp { "LHLO" } else { "EHLO or HELO" };
                self.refuse(&format!("500 5.5.1 This server speaks {want}"))
                    .await
            }
            "MAIL" => self.mail(arg).await,
            "RCPT" => self.rcpt(arg).await,
            "DATA" => self.data(arg).await,
            "RSET" => {
                self.reset();
                self.ok("250 2.0.0 Ok").await
            }
            "NOOP" => self.ok("250 2.0.0 Ok").await,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                Ok(Next::Close)
            }
            "VRFY" | "EXPN" | "HELP" | "STARTTLS" | "BDAT" | "AUTH" | "ETRN" | "TURN" => {
                self.refuse("502 5.5.1 Command not implemented").await
            }
            _ => self.refuse("500 5.5.2 Command unrecognized").await,
        }
    }

    async fn hello(&mut self, arg: &str, extended: bool) -> std::io::Result<Next> {
        if arg.is_empty() {
            return self.refuse("501 5.5.4 Syntax: a host name is needed").await;
        }
        self.reset();
        self.greeted = true;
        let host = self.opts.hostname.clone();
        if !extended {
            return self.ok(&format!("250 {host}")).await;
        }
        let size = self.opts.max_message_bytes;
        self.ok(&format!(
            "250-{host}\r\n250-PIPELINING\r\n250-SIZE {size}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES"
        ))
        .await
    }

    async fn mail(&mut self, arg: &str) -> std::io::Result<Next> {
        if !self.greeted {
            let hello = match self.opts.protocol {
                InboundProtocol::Lmtp => "LHLO",
                InboundProtocol::Smtp => "EHLO",
            };
            return self.refuse(&format!("503 5.5.1 Say {hello} first")).await;
        }
        if self.sender.is_some() {
            return self.refuse("503 5.5.1 Nested MAIL command").await;
        }
        let Some((sender, params)) = path_arg(arg, "FROM:") else {
            return self.refuse("501 5.5.4 Syntax: MAIL FROM:<address>").await;
        };
        let declared = params.split_ascii_whitespace().find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.eq_ignore_ascii_case("SIZE")
                .then(|| v.parse::<u64>().ok())?
        });
        if declared.is_some_and(|n| n > self.opts.max_message_bytes as u64) {
            return self
                .refuse("552 5.3.4 Message size exceeds fixed limit")
                .await;
        }
        self.sender = Some(sender);
        self.ok("250 2.1.0 Ok").await
    }

    async fn rcpt(&mut self, arg: &str) -> std::io::Result<Next> {
        if self.sender.is_none() {
            return self.refuse("503 5.5.1 Need MAIL command").await;
        }
        let Some((rcpt, _)) = path_arg(arg, "TO:").filter(|(a, _)| !a.is_empty()) else {
            return self.refuse("501 5.5.4 Syntax: RCPT TO:<address>").await;
        };
        if self.recipients.len() >= RECIPIENTS_MAX {
            return self.reply_rcpt("452 4.5.3 Too many recipients").await;
        }
        if !self.mailbox.accepts(&rcpt) {
            tracing::info!(peer = %self.peer, "inbound mail: refused a recipient that is not the return path: <{rcpt}>");
            return self
                .refuse(&format!("550 5.1.1 <{rcpt}>: Recipient address rejected: not a bounce address of this shop"))
                .await;
        }
        self.recipients.push(rcpt);
        self.ok("250 2.1.5 Ok").await
    }

    async fn reply_rcpt(&mut self, text: &str) -> std::io::Result<Next> {
        self.reply(text).await?;
        Ok(Next::Continue)
    }

    async fn data(&mut self, arg: &str) -> std::io::Result<Next> {
        if !arg.is_empty() {
            return self.refuse("501 5.5.4 Syntax: DATA").await;
        }
        if self.sender.is_none() {
            return self.refuse("503 5.5.1 Need MAIL command").await;
        }
        if self.recipients.is_empty() {
            return self.refuse("554 5.5.1 No valid recipients").await;
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let data = match self.read_data().await? {
            Some(d) => d,
            None => return Ok(Next::Close),
        };
        let recipients = std::mem::take(&mut self.recipients);
        let sender = self.sender.take().unwrap_or_default();
        let replies = match data {
            Data::TooBig => {
                vec!["552 5.3.4 Message size exceeds fixed limit".to_string(); recipients.len()]
            }
            Data::Message(raw) => self.deliver(&raw, &sender, &recipients).await,
        };
        match self.opts.protocol {
            // One reply per recipient accepted at RCPT (RFC 2033 §4.2).
            InboundProtocol::Lmtp => {
                for r in &replies {
                    self.reply(r).await?;
                }
            }
            // One reply for the message: 250 only when every recipient's copy committed.
            InboundProtocol::Smtp => {
                let worst = replies.iter().find(|r| !r.starts_with('2'));
                let r = worst.unwrap_or(&replies[0]).clone();
                self.reply(&r).await?;
            }
        }
        self.errors = 0;
        Ok(Next::Continue)
    }

    /// Hands the message to the mailbox once per recipient; the reply for each.
    async fn deliver(&mut self, raw: &[u8], sender: &str, recipients: &[String]) -> Vec<String> {
        let mut replies = Vec::with_capacity(recipients.len());
        for rcpt in recipients {
            match self.mailbox.deliver(raw, rcpt).await {
                Ok(()) => {
                    tracing::info!(peer = %self.peer, "inbound mail: took a {} byte message from <{sender}> for <{rcpt}>", raw.len());
                    replies.push("250 2.0.0 Ok: recorded".to_string());
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer, "inbound mail: could not record the message for <{rcpt}>, the sender will retry: {e}");
                    replies.push(
                        "451 4.3.0 Could not record the message now, try again later".to_string(),
                    );
                }
            }
        }
        replies
    }

    /// Reads the data up to the line holding a single dot, undoing the dot-stuffing; `None`
    /// when the client went away or quiet before the end (nothing is taken then).
    async fn read_data(&mut self) -> std::io::Result<Option<Data>> {
        let max = self.opts.max_message_bytes;
        let mut msg = Vec::new();
        let mut too_big = false;
        let mut line = Vec::with_capacity(1024);
        loop {
            let read = tokio::time::timeout(
                self.opts.timeout,
                read_line(&mut self.reader, &mut line, max + 3),
            )
            .await;
            match read {
                Err(_) => {
                    self.reply("421 4.4.2 Timeout, closing").await?;
                    return Ok(None);
                }
                Ok(r) => match r? {
                    Line::Eof => return Ok(None),
                    Line::TooLong => too_big = true,
                    Line::Complete => {
                        if line == b".\r\n" || line == b".\n" {
                            break;
                        }
                        let l = line.strip_prefix(b".").unwrap_or(&line);
                        if !too_big && msg.len() + l.len() > max {
                            too_big = true;
                            msg = Vec::new();
                        }
                        if !too_big {
                            msg.extend_from_slice(l);
                        }
                    }
                },
            }
        }
        Ok(Some(if too_big {
            Data::TooBig
        } else {
            Data::Message(msg)
        }))
    }
}

/// `FROM:<address> params` → (address, params); the keyword case-insensitive, a space after
/// the colon tolerated. `<>` gives an empty address.
fn path_arg(arg: &str, keyword: &str) -> Option<(String, String)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    let addr = rest[..end].trim();
    // A source route (`<@relay:user@domain>`) is ignored, as RFC 5321 allows.
    let addr = match addr.strip_prefix('@') {
        Some(r) => r.split_once(':').map_or(addr, |(_, a)| a),
        None => addr,
    };
    if addr.contains(char::is_whitespace) {
        return None;
    }
    Some((addr.to_string(), rest[end + 1..].trim().to_string()))
}

#[cfg(test)]
mod tests;
