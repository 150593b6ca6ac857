//! Real network peers for `ritualist` integration tests: Postfix `smtp-sink` (SMTP), a real Kannel gateway
//! (`bearerbox` + `smsbox` + `fakesmsc`) and throw-away PostgreSQL databases.
//!
//! std only, no dependencies. Include it from an integration test binary with `mod peers;`.
//!
//! Rules this module follows:
//! * Every peer lives on fresh loopback ports (see [`free_port`]) and in its own temp dir under
//!   [`std::env::temp_dir`], so tests can run in parallel threads of one process. The only global state is an
//!   atomic counter used to build unique names.
//! * Every wait is bounded. Every spawned process is owned by a guard that kills (SIGKILL) and reaps it on `Drop`,
//!   also while unwinding from a panic. (If the whole test process is SIGKILLed, children are orphaned: std has no
//!   portable `PR_SET_PDEATHSIG`.)
//! * A peer that is not installed / not reachable makes the constructor call [`missing_peer`] and return `None`:
//!   locally that is a loud skip, under CI (`CI=true`) a panic. A peer that is installed but fails to start is a
//!   test failure (panic with its log), never a skip.
//!
//! Install the peers on Debian with `.ci/install-peers.sh` (packages `postfix` for `/usr/sbin/smtp-sink`, `kannel`
//! and `kannel-extras` for `/usr/lib/kannel/test/fakesmsc`, `postgresql` / `postgresql-client` for `psql`).
#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------------------------
// Common helpers
// ---------------------------------------------------------------------------------------------------------------

/// The only global state: makes names unique within this process (pid + counter + wall-clock nanos across processes).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<pid>_<counter>_<nanos since epoch>`: unique across threads and processes.
#[allow(clippy::disallowed_methods)] // test scaffolding: unique names, not product time
fn unique_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}_{}", std::process::id(), n, nanos)
}

/// Whether we run under CI (env CI=true or CI=1): a missing peer is then a hard failure (panic), not a skip.
pub fn under_ci() -> bool {
    std::env::var("CI")
        .map(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("true") || v == "1"
        })
        .unwrap_or(false)
}

/// Called when a peer binary or service is missing. Under CI: panic with a clear message. Otherwise print a LOUD
/// multi-line warning to stderr ("SKIPPED: <what> is missing: <why>; run .ci/install-peers.sh") and return.
pub fn missing_peer(what: &str, why: &str) {
    let msg = format!("{what} is missing: {why}; run .ci/install-peers.sh");
    if under_ci() {
        panic!("CI=true, so a missing test peer is an error: {msg}");
    }
    let bar = "!".repeat(100);
    let msg = msg.replace('\n', "\n!!!   ");
    let text = format!(
        "\n{bar}\n!!!\n!!! SKIPPED: {msg}\n!!! The test calling this did NOT exercise the real peer. \
         (Set CI=true to turn this skip into a failure.)\n!!!\n{bar}\n"
    );
    // Straight to fd 2: `eprintln!` would be swallowed by libtest's output capture for passing tests.
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// A free TCP port on 127.0.0.1 (bind port 0, read it, drop the listener).
///
/// Inherently racy (another process may grab the port before our peer binds it); the peers below retry their
/// start-up with new ports when that happens.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free TCP ports on 127.0.0.1 (all listeners are held until every port is chosen, so the ports
/// differ from each other).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr of bound listener").port())
        .collect()
}

/// Percent-encodes `s` for a URL query value: everything except the RFC 3986 unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX` of its UTF-8 bytes (so `+` becomes `%2B` and space `%20`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` / Kannel `octstr_url_decode` style text into bytes: `+` is a space,
/// `%XX` is one byte; malformed escapes are kept literally.
pub fn url_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Decodes UTF-16BE bytes (what Kannel calls UCS-2) into a `String`, replacing invalid sequences (and a dangling
/// odd byte) with U+FFFD.
pub fn decode_utf16be(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| {
            if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                0xFFFD
            }
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// A minimal HTTP/1.0 `GET` over a raw [`TcpStream`] (no dependencies): returns `(status code, body)`.
///
/// `url` must be `http://host:port/path?query` with the query already percent-encoded (see [`url_encode`]).
/// Bounded by `timeout` for connect, each read/write and the whole exchange.
pub fn http_get(url: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("not an http:// URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("cannot resolve {authority}")))?;
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(done) = parse_http_response(&buf, false) {
            return Ok(done);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("GET {url}: no complete response in {timeout:?}"),
            ));
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    parse_http_response(&buf, true).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "GET {url}: malformed response {:?}",
                String::from_utf8_lossy(&buf)
            ),
        )
    })
}

/// Parses `buf` as an HTTP response; `None` while incomplete. Without Content-Length the body ends at EOF.
fn parse_http_response(buf: &[u8], at_eof: bool) -> Option<(u16, String)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body = &buf[head_end + 4..];
    let status: u16 = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let content_length = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse::<usize>().ok()
        } else {
            None
        }
    });
    match content_length {
        Some(len) if body.len() >= len => {
            Some((status, String::from_utf8_lossy(&body[..len]).into_owned()))
        }
        _ if at_eof => Some((status, String::from_utf8_lossy(body).into_owned())),
        _ => None,
    }
}

/// First executable among `preferred`, then `$PATH/<name>`, then the sbin directories (often not on a user's PATH).
pub fn find_program(name: &str, preferred: &[&str]) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = preferred.iter().map(PathBuf::from).collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    candidates.extend(
        ["/usr/sbin", "/usr/local/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name)),
    );
    candidates.into_iter().find(|p| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Whether this process runs with effective uid 0 (read from /proc/self/status; false if unknown).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The last `max` bytes of a (log) file, lossily decoded, for failure messages.
fn file_tail(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b[b.len().saturating_sub(max)..]).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Sets the Unix permission bits of `path`, panicking with context on failure.
fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// A unique directory under [`std::env::temp_dir`], removed recursively on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<tmp>/<prefix>-<pid>_<counter>_<nanos>`.
    pub fn new(prefix: &str) -> ScratchDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique_suffix()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A spawned child process that is killed (SIGKILL) and reaped when dropped.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Spawns `cmd`; `Err` with context when the OS refuses.
    fn spawn(name: &str, cmd: &mut Command) -> Result<Proc, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn {name} ({cmd:?}): {e}"))?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    /// `Some(status)` once the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills (if still running) and reaps the process. Idempotent.
    fn stop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cmd` to completion with its stdout/stderr captured, killing it after `timeout`.
pub fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
) -> io::Result<(ExitStatus, String, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{cmd:?} did not finish in {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    };
    Ok((
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// SMTP: Postfix smtp-sink
// ---------------------------------------------------------------------------------------------------------------

/// Postfix smtp-sink on a loopback port, dumping every received message into a temp dir.
///
/// # Dump file format (observed with Postfix 3.7 smtp-sink, `-d DIR/%M.`)
///
/// One file per *accepted* mail transaction, named `<minute>.<random hex>` (e.g. `02.5d6b8fc0`). The file is
/// created (empty) at `MAIL FROM`, written only when the final `.` arrives (before the `250` reply), and deleted
/// if the transaction is aborted (RSET, rejected RCPT + QUIT, disconnect). All lines end in a bare `\n` (the
/// client's CRLFs are converted), dot-stuffing is already removed. Example for `EHLO me.example`,
/// `MAIL FROM:<a@x.org> BODY=8BITMIME`, `RCPT TO:<b@y.org>`, `RCPT TO:<c@y.org> NOTIFY=NEVER`:
///
/// ```text
/// X-Client-Addr: 127.0.0.1
/// X-Client-Proto: ESMTP
/// X-Helo-Args: me.example
/// X-Mail-Args: <a@x.org> BODY=8BITMIME
/// X-Rcpt-Args: <b@y.org>
/// X-Rcpt-Args: <c@y.org> NOTIFY=NEVER
/// Received: from me.example ([127.0.0.1])
/// \tby smtp-sink (smtp-sink) with ESMTP id 5d6b8fc0;
/// \tMon, 23 Nov 2026 09:02:00 +0000 (UTC)
/// Subject: hi                      <- the message as sent (headers, empty line, body), LF line ends
/// From: a@x.org
///
/// Hello body
/// .dotline                         <- was "..dotline" on the wire
///                                  <- one extra empty line terminates every dump
/// ```
///
/// `X-Helo-Args` is absent without HELO/EHLO; there is one `X-Rcpt-Args` per accepted RCPT, in order; the
/// `Received:` header (3 lines) always ends the sink's part. Use [`dumped_message_body`],
/// [`dumped_envelope_sender`] and [`dumped_envelope_recipients`] to take a dump apart.
pub struct SmtpSink {
    process: Proc,
    port: u16,
    dump_dir: PathBuf,
    log_path: PathBuf,
    dir: ScratchDir,
}

impl SmtpSink {
    /// None (after missing_peer) when smtp-sink is not installed. `extra_args` are passed before the address,
    /// e.g. &["-f", "RCPT", "-B", "550 5.1.1 User unknown"] to inject faults. Runs
    /// `smtp-sink -u nobody -d <DIR>/%M. [extra_args] 127.0.0.1:<port> 100` (as root it needs -u nobody and the dump
    /// dir must be writable by nobody: chmod 0777). Waits (bounded, ~5 s) until the port accepts connections.
    ///
    /// `-u nobody` is only passed when running as root. Readiness means "a connection gets a greeting line" (the
    /// probe connection counts as one session for `-n`). The temp dir must be reachable by `nobody`, i.e.
    /// `$TMPDIR` must not be under a 0700 directory. Start-up is retried with a new port (3 attempts) if the port
    /// was stolen; panics with smtp-sink's log if it still does not come up.
    pub fn start(extra_args: &[&str]) -> Option<SmtpSink> {
        let Some(bin) = find_program("smtp-sink", &["/usr/sbin/smtp-sink"]) else {
            missing_peer(
                "smtp-sink (Debian package postfix)",
                "no executable /usr/sbin/smtp-sink nor smtp-sink on PATH",
            );
            return None;
        };
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            match Self::try_start(&bin, extra_args, None) {
                Ok(sink) => return Some(sink),
                Err(e) => failures.push(format!("attempt {attempt}: {e}")),
            }
        }
        panic!(
            "smtp-sink ({}) is installed but did not start:\n{}",
            bin.display(),
            failures.join("\n")
        );
    }

    /// A sink on `port` (e.g. the port of a faulty sink just stopped: the relay comes back
    /// healthy where the client already points). None when smtp-sink is not installed.
    pub fn start_on(port: u16, extra_args: &[&str]) -> Option<SmtpSink> {
        let bin = find_program("smtp-sink", &["/usr/sbin/smtp-sink"])?;
        let mut last = String::new();
        // The old listener may take a moment to go.
        for _ in 0..20 {
            match Self::try_start(&bin, extra_args, Some(port)) {
                Ok(sink) => return Some(sink),
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("smtp-sink did not start on port {port}: {last}");
    }

    /// Stops the sink (its dumps stay readable until it is dropped).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// One start-up attempt on `port` (a fresh one when None) and a fresh dir.
    fn try_start(bin: &Path, extra_args: &[&str], port: Option<u16>) -> Result<SmtpSink, String> {
        let dir = ScratchDir::new("ritualist-smtp-sink");
        set_mode(&dir.path, 0o755);
        let dump_dir = dir.path.join("dump");
        fs::create_dir(&dump_dir).map_err(|e| format!("mkdir {}: {e}", dump_dir.display()))?;
        set_mode(&dump_dir, 0o777);
        let log_path = dir.path.join("smtp-sink.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let port = port.unwrap_or_else(free_port);
        let mut cmd = Command::new(bin);
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg("-d")
            .arg(format!("{}/%M.", dump_dir.display()))
            .args(extra_args)
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let mut process = Proc::spawn("smtp-sink", &mut cmd)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = process.exited() {
                return Err(format!(
                    "smtp-sink exited ({status}) on port {port}; log:\n{}",
                    file_tail(&log_path, 2000)
                ));
            }
            if smtp_greets(port) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "smtp-sink not greeting on 127.0.0.1:{port} after 5 s; log:\n{}",
                    file_tail(&log_path, 2000)
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(SmtpSink {
            process,
            port,
            dump_dir,
            log_path,
            dir,
        })
    }

    /// The loopback port smtp-sink listens on (host is always 127.0.0.1; plain SMTP, no TLS).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory the dump files are written to.
    pub fn dump_dir(&self) -> &Path {
        &self.dump_dir
    }

    /// smtp-sink's own stdout/stderr so far (useful in assertion messages).
    pub fn log(&self) -> String {
        file_tail(&self.log_path, 16 * 1024)
    }

    /// Non-empty dump files as (mtime, name, content), ordered by completion time then name.
    fn scan(&self) -> Vec<(SystemTime, PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.dump_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || meta.len() == 0 {
                    continue; // empty: a transaction in progress (file created at MAIL, written at ".")
                }
                let Ok(data) = fs::read(&path) else { continue }; // may vanish (aborted transaction)
                out.push((meta.modified().unwrap_or(UNIX_EPOCH), path, data));
            }
        }
        out.sort();
        out
    }

    /// A dump is complete when it ends with the terminating empty line.
    fn complete(data: &[u8]) -> bool {
        data.ends_with(b"\n\n")
    }

    /// Every message dumped so far, as raw bytes, sorted by file name; waits briefly (bounded) for files to settle.
    ///
    /// Actually sorted by file modification time (= when the final "." arrived), then file name: the names
    /// (`<minute>.<random hex>`) do not sort chronologically. Settling: up to ~2 s until two scans 50 ms apart are
    /// identical and every non-empty file is complete; empty files (transactions still in progress) and incomplete
    /// ones are left out. Each element is a whole dump: see [`dumped_message_body`].
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut prev = self.scan();
        loop {
            thread::sleep(Duration::from_millis(50));
            let cur = self.scan();
            let settled = cur == prev && cur.iter().all(|(_, _, d)| Self::complete(d));
            prev = cur;
            if settled || Instant::now() > deadline {
                break;
            }
        }
        prev.into_iter()
            .filter(|(_, _, d)| Self::complete(d))
            .map(|(_, _, d)| d)
            .collect()
    }

    /// Poll (bounded by `timeout`) until at least `n` messages are dumped; return them.
    ///
    /// Returns what is there (possibly fewer than `n`) when `timeout` expires: assert on the length.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self
                .scan()
                .iter()
                .filter(|(_, _, d)| Self::complete(d))
                .count();
            if done >= n || Instant::now() > deadline {
                return self.messages();
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    /// Kills and reaps smtp-sink; the temp dir is removed afterwards (field drop).
    fn drop(&mut self) {
        self.process.stop();
    }
}

/// True when 127.0.0.1:`port` accepts a connection and sends a greeting line within 1 s.
fn smtp_greets(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 512];
    let greeted = matches!(s.read(&mut buf), Ok(n) if n > 0);
    let _ = s.write_all(b"QUIT\r\n");
    greeted
}

/// Header fields smtp-sink prepends to every dump (before its 3-line `Received:` header).
const SINK_FIELDS: [&[u8]; 5] = [
    b"X-Client-Addr:",
    b"X-Client-Proto:",
    b"X-Helo-Args:",
    b"X-Mail-Args:",
    b"X-Rcpt-Args:",
];

/// Splits a dump into smtp-sink's own header lines and the offset where the client's message starts.
/// `None` if the dump does not start with smtp-sink's envelope lines.
fn split_dump(dump: &[u8]) -> Option<(Vec<&[u8]>, usize)> {
    if !dump.starts_with(b"X-Client-Addr:") {
        return None;
    }
    let mut fields = Vec::new();
    let mut in_received = false;
    let mut pos = 0;
    while pos < dump.len() {
        let end = dump[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(dump.len(), |i| pos + i);
        let line = &dump[pos..end];
        if in_received {
            if !(line.starts_with(b"\t") || line.starts_with(b" ")) {
                return Some((fields, pos));
            }
        } else if SINK_FIELDS.iter().any(|f| line.starts_with(f)) {
            fields.push(line);
        } else if line.starts_with(b"Received:") {
            in_received = true;
        } else {
            return Some((fields, pos));
        }
        pos = end + 1;
    }
    Some((fields, dump.len()))
}

/// The RFC 5322 message (headers, empty line, body) inside an smtp-sink dump, without smtp-sink's envelope lines
/// and `Received:` header and without the extra terminating empty line. Line ends are bare `\n` and dot-stuffing
/// is undone (see [`SmtpSink`]). A dump without envelope lines is returned unchanged.
pub fn dumped_message_body(dump: &[u8]) -> &[u8] {
    match split_dump(dump) {
        Some((_, start)) => {
            let msg = &dump[start..];
            if msg.ends_with(b"\n\n") {
                &msg[..msg.len() - 1]
            } else {
                msg
            }
        }
        None => dump,
    }
}

/// The values of one smtp-sink envelope field (e.g. `X-Rcpt-Args:`), in order.
fn dumped_field(dump: &[u8], field: &[u8]) -> Vec<String> {
    split_dump(dump)
        .map(|(fields, _)| {
            fields
                .into_iter()
                .filter(|l| l.starts_with(field))
                .map(|l| {
                    String::from_utf8_lossy(&l[field.len()..])
                        .trim()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `<addr> PARAM=...` -> `addr` (`<>` -> empty string).
fn envelope_address(args: &str) -> String {
    let first = args.split_whitespace().next().unwrap_or("");
    first
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The envelope recipients (`RCPT TO` addresses without `<>` and ESMTP parameters, in order) of an smtp-sink dump.
pub fn dumped_envelope_recipients(dump: &[u8]) -> Vec<String> {
    dumped_field(dump, b"X-Rcpt-Args:")
        .iter()
        .map(|a| envelope_address(a))
        .collect()
}

/// The envelope sender (`MAIL FROM` address without `<>` and parameters; empty for the null sender `<>`).
pub fn dumped_envelope_sender(dump: &[u8]) -> Option<String> {
    dumped_field(dump, b"X-Mail-Args:")
        .first()
        .map(|a| envelope_address(a))
}

/// The full `MAIL FROM` arguments as received, e.g. `<a@x.org> BODY=8BITMIME SMTPUTF8`.
pub fn dumped_mail_args(dump: &[u8]) -> Option<String> {
    dumped_field(dump, b"X-Mail-Args:").into_iter().next()
}

/// The `HELO`/`EHLO` argument the client used, if any.
pub fn dumped_helo(dump: &[u8]) -> Option<String> {
    dumped_field(dump, b"X-Helo-Args:").into_iter().next()
}

// ---------------------------------------------------------------------------------------------------------------
// SMS: Kannel bearerbox + smsbox + fakesmsc
// ---------------------------------------------------------------------------------------------------------------

/// One SMS as the fake SMSC (`fakesmsc`) received it from bearerbox.
///
/// fakesmsc logs each message on **stderr** (not stdout) as a Kannel DEBUG line
/// `2026-11-23 09:04:36 [15989] [0] DEBUG: Got message 2: <FROM TO TYPE DATA>`, where TYPE/DATA is
/// * `text <raw text>`: 7-bit (GSM) coding; the text is printed raw (UTF-8), so a newline in the SMS splits it
///   into a second `Got message N: <...>` line (re-joined here with `\n`: a line whose second word is not a
///   phone number made of `0-9 + -` is taken for a continuation);
/// * `ucs-2 <url-encoded UTF-16BE>`: `coding=2`, e.g. `ucs-2 %04!%00+%044...` (`+` is a space byte, printable
///   ASCII bytes are left as is);
/// * `data <url-encoded bytes>`: 8-bit coding (`coding=1`);
/// * `udh <url-encoded UDH> data <url-encoded bytes>`: a part of a concatenated SMS (only with
///   `max-messages`/`concatenation` configured, see [`Kannel::start_with`]). fakesmsc does NOT print the coding
///   here, so `text` is the lossy UTF-8 view of `data`; use [`join_concatenated`] with the coding you expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSms {
    /// Sender as routed (the sendsms `from`), e.g. `Ritualist`.
    pub from: String,
    /// Receiver, e.g. `+79161234567`.
    pub to: String,
    /// The message text decoded to UTF-8.
    pub text: String,
    /// `text`, `ucs-2`, `data`, `udh`, or `unknown` (a line this parser did not understand).
    pub coding: String,
    /// The log line(s) exactly as fakesmsc printed them (continuation lines joined with `\n`).
    pub raw_line: String,
    /// Payload bytes as the SMSC got them (URL-decoded for `ucs-2`/`data`/`udh`; the raw text bytes for `text`).
    pub data: Vec<u8>,
    /// The User Data Header for `udh` messages.
    pub udh: Option<Vec<u8>>,
}

impl ReceivedSms {
    /// For a concatenated-SMS part: `(reference, total parts, sequence number starting at 1)` from the UDH
    /// (information element 0x00 with an 8-bit or 0x08 with a 16-bit reference).
    pub fn concat_part(&self) -> Option<(u16, u8, u8)> {
        let udh = self.udh.as_deref()?;
        let len = *udh.first()? as usize;
        let mut ies = udh.get(1..1 + len)?;
        while ies.len() >= 2 {
            let (id, l) = (ies[0], ies[1] as usize);
            let v = ies.get(2..2 + l)?;
            match (id, l) {
                (0x00, 3) => return Some((v[0] as u16, v[1], v[2])),
                (0x08, 4) => return Some((u16::from_be_bytes([v[0], v[1]]), v[2], v[3])),
                _ => {}
            }
            ies = &ies[2 + l..];
        }
        None
    }
}

/// Joins the parts of one concatenated SMS (in sequence order) and decodes the payload: UTF-16BE when `ucs2`,
/// else UTF-8 (Kannel's 7-bit payload as fakesmsc sees it).
pub fn join_concatenated(parts: &[ReceivedSms], ucs2: bool) -> String {
    let mut sorted: Vec<&ReceivedSms> = parts.iter().collect();
    sorted.sort_by_key(|p| p.concat_part().map(|(_, _, seq)| seq).unwrap_or(0));
    let data: Vec<u8> = sorted.iter().flat_map(|p| p.data.iter().copied()).collect();
    if ucs2 {
        decode_utf16be(&data)
    } else {
        String::from_utf8_lossy(&data).into_owned()
    }
}

/// Parses one `FROM TO TYPE DATA` payload from a fakesmsc "Got message" line.
fn parse_fakesmsc_payload(payload: &str, raw_line: &str) -> Option<ReceivedSms> {
    let mut it = payload.splitn(4, ' ');
    let (from, to, kind) = (it.next()?, it.next()?, it.next()?);
    // smsbox only accepts receivers made of "0123456789+-" (SENDSMS_DEFAULT_CHARS): anything else is the
    // continuation of a multi-line 7-bit text.
    if to.is_empty()
        || !to
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
    {
        return None;
    }
    let rest = it.next().unwrap_or("");
    let (text, data, udh, coding) = match kind {
        "text" => (rest.to_string(), rest.as_bytes().to_vec(), None, "text"),
        "ucs-2" | "ucs2" => {
            let data = url_decode(rest);
            (decode_utf16be(&data), data, None, "ucs-2")
        }
        "data" => {
            let data = url_decode(rest);
            (
                String::from_utf8_lossy(&data).into_owned(),
                data,
                None,
                "data",
            )
        }
        "udh" => {
            let (u, d) = rest.split_once(" data ")?;
            let data = url_decode(d);
            (
                String::from_utf8_lossy(&data).into_owned(),
                data,
                Some(url_decode(u)),
                "udh",
            )
        }
        _ => return None,
    };
    Some(ReceivedSms {
        from: from.to_string(),
        to: to.to_string(),
        text,
        coding: coding.to_string(),
        raw_line: raw_line.to_string(),
        data,
        udh,
    })
}

/// Parses fakesmsc's captured output lines into messages (see [`ReceivedSms`] for the format).
fn parse_fakesmsc_output(lines: &[String]) -> Vec<ReceivedSms> {
    let mut out: Vec<ReceivedSms> = Vec::new();
    for line in lines {
        let Some(at) = line.find("Got message ") else {
            continue;
        };
        let rest = &line[at..];
        let Some(open) = rest.find(": <") else {
            continue;
        };
        let payload = &rest[open + 3..];
        let payload = payload.strip_suffix('>').unwrap_or(payload);
        match parse_fakesmsc_payload(payload, line) {
            Some(sms) => out.push(sms),
            None => match out.last_mut() {
                // A newline inside a 7-bit text: fakesmsc reads line by line and logs the rest separately.
                Some(prev) if prev.coding == "text" => {
                    prev.text.push('\n');
                    prev.text.push_str(payload);
                    prev.data.push(b'\n');
                    prev.data.extend_from_slice(payload.as_bytes());
                    prev.raw_line.push('\n');
                    prev.raw_line.push_str(line);
                }
                _ => out.push(ReceivedSms {
                    from: String::new(),
                    to: String::new(),
                    text: payload.to_string(),
                    coding: "unknown".to_string(),
                    raw_line: line.clone(),
                    data: payload.as_bytes().to_vec(),
                    udh: None,
                }),
            },
        }
    }
    out
}

/// A real Kannel SMS gateway: bearerbox + smsbox + fakesmsc (the fake SMSC, which prints every message it receives).
///
/// # How to send (what the product code should send)
///
/// `GET {sendsms_url}?username=U&password=P&from=FROM&to=TO&text=TEXT&charset=UTF-8&coding=2`
/// with every value percent-encoded as UTF-8 (`+` in a phone number MUST be `%2B`, otherwise it is a space).
/// * `charset=UTF-8` tells Kannel what the `text` bytes are; `coding=2` sends UCS-2 (UTF-16BE), required for
///   Cyrillic and for Romanian ș/ț (with 7-bit coding, i.e. no `coding` or `coding=0`, Kannel replaces them by
///   `?`: "La mul?i ani, ?tefan!"). `coding=2` *without* `charset=UTF-8` makes Kannel take the UTF-8 bytes for
///   UTF-16BE: garbage. UCS-2 fits 70 characters per SMS, 7-bit 160.
/// * Responses observed (Kannel 1.4.5): success `202 Accepted`, body `0: Accepted for delivery`; wrong
///   username/password `403 Forbidden`, body `Authorization failed for sendsms`; no `to`: `400`-class body
///   `Missing receiver number, rejected`; non-numeric `to`: `Number(s) has/have been denied by white- and/or
///   black-lists.`
/// * By default (`max-messages` unset = 1) Kannel silently truncates a longer text to one SMS (160 7-bit / 70
///   UCS-2 characters) and still answers 202. Configure `max-messages`/`concatenation` via [`Kannel::start_with`]
///   to get multipart SMS (then see [`join_concatenated`]).
///
/// Delivery is asynchronous: 202 means queued in bearerbox; use [`Kannel::wait_for`].
pub struct Kannel {
    fakesmsc: Proc,
    fakesmsc_bin: PathBuf,
    smsbox: Proc,
    bearerbox: Proc,
    fakesmsc_output: Arc<Mutex<Vec<String>>>,
    admin_port: u16,
    smsbox_port: u16,
    sendsms_port: u16,
    smsc_port: u16,
    dir: ScratchDir,
}

/// The sendsms-user name configured in every [`Kannel`].
const KANNEL_USERNAME: &str = "ritualist";
/// The sendsms-user password configured in every [`Kannel`].
const KANNEL_PASSWORD: &str = "kannel-test-secret";
/// The admin/status password of every [`Kannel`].
const KANNEL_ADMIN_PASSWORD: &str = "kannel-admin-secret";

impl Kannel {
    /// None (after missing_peer) when any binary is missing. Writes a kannel.conf into a temp dir with
    /// free ports (admin port, smsbox port, sendsms port, fake smsc port), a `group = smsc` with `smsc = fake`,
    /// a `group = smsbox`, a `group = sendsms-user` (username/password below), and starts, in order,
    /// bearerbox CONF, smsbox CONF, and `/usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r <fakeport> -i 1 -m 0 -v 0
    /// "100 200 text unused"` (`-m 0`: send no MO message at all, only receive; `-v 0`: the received messages are
    /// DEBUG log lines on stderr, which is captured on reader threads). Waits (bounded, ~15 s) until the admin
    /// status page shows the smsbox on-line and the fake SMSC online and the sendsms port accepts connections.
    ///
    /// Retries with new ports (3 attempts) if a port was stolen; panics with the Kannel logs if Kannel is
    /// installed but does not come up.
    pub fn start() -> Option<Kannel> {
        Self::start_with(&[])
    }

    /// Like [`Kannel::start`], appending `sendsms_user_extra` lines to the `group = sendsms-user`, e.g.
    /// `&["max-messages = 10", "concatenation = true"]` for multipart SMS.
    pub fn start_with(sendsms_user_extra: &[&str]) -> Option<Kannel> {
        Self::start_conf(sendsms_user_extra, &[], "")
    }

    /// Like [`Kannel::start_with`], also appending `smsbox_extra` lines to the `group = smsbox`
    /// (e.g. `mo-recode = true`) and `groups` (e.g. `group = sms-service` blocks) to kannel.conf.
    pub fn start_conf(
        sendsms_user_extra: &[&str],
        smsbox_extra: &[&str],
        groups: &str,
    ) -> Option<Kannel> {
        let bins = [
            (
                "bearerbox",
                find_program("bearerbox", &["/usr/sbin/bearerbox"]),
                "Debian package kannel",
            ),
            (
                "smsbox",
                find_program("smsbox", &["/usr/sbin/smsbox"]),
                "Debian package kannel",
            ),
            (
                "fakesmsc",
                find_program("fakesmsc", &["/usr/lib/kannel/test/fakesmsc"]),
                "Debian package kannel-extras",
            ),
        ];
        for (name, path, pkg) in &bins {
            if path.is_none() {
                missing_peer(
                    &format!("Kannel {name} ({pkg})"),
                    &format!("no executable {name} in /usr/sbin, /usr/lib/kannel/test or on PATH"),
                );
                return None;
            }
        }
        let [bb, sb, fk] = bins.map(|(_, p, _)| p.expect("checked above"));
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            match Self::try_start(&bb, &sb, &fk, sendsms_user_extra, smsbox_extra, groups) {
                Ok(k) => return Some(k),
                Err(e) => failures.push(format!("--- attempt {attempt}: {e}")),
            }
        }
        panic!(
            "Kannel is installed but did not start:\n{}",
            failures.join("\n")
        );
    }

    /// One start-up attempt with fresh ports and dir; everything started so far is killed on `Err`.
    fn try_start(
        bb: &Path,
        sb: &Path,
        fk: &Path,
        sendsms_user_extra: &[&str],
        smsbox_extra: &[&str],
        groups: &str,
    ) -> Result<Kannel, String> {
        let dir = ScratchDir::new("ritualist-kannel");
        let ports = free_ports(4);
        let (admin_port, smsbox_port, sendsms_port, smsc_port) =
            (ports[0], ports[1], ports[2], ports[3]);
        let conf_path = dir.path.join("kannel.conf");
        let extra: String = sendsms_user_extra
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        let smsbox_extra: String = smsbox_extra.iter().map(|l| format!("{l}\n")).collect();
        let conf = format!(
            "group = core\n\
             admin-port = {admin_port}\n\
             admin-interface = 127.0.0.1\n\
             admin-password = {KANNEL_ADMIN_PASSWORD}\n\
             status-password = {KANNEL_ADMIN_PASSWORD}\n\
             admin-allow-ip = \"127.0.0.1\"\n\
             smsbox-port = {smsbox_port}\n\
             smsbox-interface = 127.0.0.1\n\
             box-allow-ip = \"127.0.0.1\"\n\
             \n\
             group = smsc\n\
             smsc = fake\n\
             smsc-id = fake\n\
             port = {smsc_port}\n\
             connect-allow-ip = \"127.0.0.1\"\n\
             \n\
             group = smsbox\n\
             bearerbox-host = 127.0.0.1\n\
             bearerbox-port = {smsbox_port}\n\
             sendsms-port = {sendsms_port}\n\
             sendsms-interface = 127.0.0.1\n\
             {smsbox_extra}\
             \n\
             group = sendsms-user\n\
             username = {KANNEL_USERNAME}\n\
             password = {KANNEL_PASSWORD}\n\
             user-allow-ip = \"127.0.0.1\"\n\
             {extra}\
             \n\
             {groups}"
        );
        fs::write(&conf_path, conf).map_err(|e| format!("write {}: {e}", conf_path.display()))?;
        let logged = |name: &str| -> Result<(Stdio, Stdio), String> {
            let f = fs::File::create(dir.path.join(format!("{name}.log")))
                .map_err(|e| e.to_string())?;
            let g = f.try_clone().map_err(|e| e.to_string())?;
            Ok((Stdio::from(f), Stdio::from(g)))
        };
        let logs = |dir: &Path| {
            format!(
                "bearerbox.log:\n{}\nsmsbox.log:\n{}",
                file_tail(&dir.join("bearerbox.log"), 3000),
                file_tail(&dir.join("smsbox.log"), 3000)
            )
        };
        let status_url =
            format!("http://127.0.0.1:{admin_port}/status.txt?password={KANNEL_ADMIN_PASSWORD}");
        let deadline = Instant::now() + Duration::from_secs(15);

        let (o, e) = logged("bearerbox")?;
        let mut bearerbox = Proc::spawn(
            "bearerbox",
            Command::new(bb)
                .arg(&conf_path)
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .stdout(o)
                .stderr(e),
        )?;
        // The fake SMSC's listening socket exists once the status page lists it.
        let fake_tag = format!("FAKE:{smsc_port}");
        loop {
            if let Some(st) = bearerbox.exited() {
                return Err(format!("bearerbox exited ({st})\n{}", logs(&dir.path)));
            }
            if let Ok((200, body)) = http_get(&status_url, Duration::from_secs(2))
                && body.contains(&fake_tag)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "bearerbox status page not up in time\n{}",
                    logs(&dir.path)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }

        let (o, e) = logged("smsbox")?;
        let mut smsbox = Proc::spawn(
            "smsbox",
            Command::new(sb)
                .arg(&conf_path)
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .stdout(o)
                .stderr(e),
        )?;

        let output = Arc::new(Mutex::new(Vec::new()));
        let mut fk_cmd = Command::new(fk);
        fk_cmd
            .args([
                "-H",
                "127.0.0.1",
                "-r",
                &smsc_port.to_string(),
                "-i",
                "1",
                "-m",
                "0",
                "-v",
                "0",
                "100 200 text unused",
            ])
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut fakesmsc = Proc::spawn("fakesmsc", &mut fk_cmd)?;
        capture_lines(fakesmsc.child.stdout.take(), Arc::clone(&output));
        capture_lines(fakesmsc.child.stderr.take(), Arc::clone(&output));

        let online_tag = format!("{fake_tag} (online");
        let sendsms_addr = SocketAddr::from(([127, 0, 0, 1], sendsms_port));
        loop {
            for p in [&mut bearerbox, &mut smsbox, &mut fakesmsc] {
                if let Some(st) = p.exited() {
                    let fk_out = output.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                    return Err(format!(
                        "{} exited ({st})\n{}\nfakesmsc output:\n{fk_out}",
                        p.name,
                        logs(&dir.path)
                    ));
                }
            }
            if let Ok((200, body)) = http_get(&status_url, Duration::from_secs(2))
                && body.contains(&online_tag)
                && body
                    .lines()
                    .any(|l| l.trim_start().starts_with("smsbox:") && l.contains("on-line"))
                && TcpStream::connect_timeout(&sendsms_addr, Duration::from_millis(500)).is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                let status = http_get(&status_url, Duration::from_secs(2))
                    .map(|r| r.1)
                    .unwrap_or_default();
                return Err(format!(
                    "Kannel not ready after 15 s; status:\n{status}\n{}",
                    logs(&dir.path)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(Kannel {
            fakesmsc,
            fakesmsc_bin: fk.to_path_buf(),
            smsbox,
            bearerbox,
            fakesmsc_output: output,
            admin_port,
            smsbox_port,
            sendsms_port,
            smsc_port,
            dir,
        })
    }

    /// e.g. "http://127.0.0.1:PORT/cgi-bin/sendsms"
    pub fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.sendsms_port)
    }

    /// The sendsms-user name (`ritualist`).
    pub fn username(&self) -> &str {
        KANNEL_USERNAME
    }

    /// The sendsms-user password.
    pub fn password(&self) -> &str {
        KANNEL_PASSWORD
    }

    /// The complete sendsms request URL the product is expected to produce for one SMS:
    /// `username`, `password`, `from`, `to`, `text` (all percent-encoded UTF-8), `charset=UTF-8` and `coding`
    /// (`2` = UCS-2 for any text, `0` = 7-bit GSM, only for texts in the GSM alphabet).
    pub fn sendsms_request_url(&self, from: &str, to: &str, text: &str, coding: u8) -> String {
        format!(
            "{}?username={}&password={}&from={}&to={}&text={}&charset=UTF-8&coding={coding}",
            self.sendsms_url(),
            url_encode(self.username()),
            url_encode(self.password()),
            url_encode(from),
            url_encode(to),
            url_encode(text)
        )
    }

    /// The phone texts: replaces the running fakesmsc by `fakesmsc -m 1 LINE`, which sends that
    /// one mobile-originated message into bearerbox (`"FROM TO text STOP"`, or
    /// `"FROM TO ucs2 %04%21…"` with URL-encoded UTF-16BE) and then keeps receiving like the one
    /// it replaced (its output joins [`Kannel::received`]). fakesmsc picks one of its message
    /// lines at random, hence one process per message.
    pub fn send_mo(&mut self, line: &str) {
        self.fakesmsc.stop();
        let mut cmd = Command::new(&self.fakesmsc_bin);
        cmd.args([
            "-H",
            "127.0.0.1",
            "-r",
            &self.smsc_port.to_string(),
            "-i",
            "0.1",
            "-m",
            "1",
            "-v",
            "0",
            line,
        ])
        .current_dir(&self.dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut p = Proc::spawn("fakesmsc", &mut cmd).unwrap_or_else(|e| panic!("{e}"));
        capture_lines(p.child.stdout.take(), Arc::clone(&self.fakesmsc_output));
        capture_lines(p.child.stderr.take(), Arc::clone(&self.fakesmsc_output));
        self.fakesmsc = p;
    }

    /// bearerbox's plain-text admin status page (`/status.txt`), for diagnostics.
    pub fn admin_status(&self) -> String {
        let url = format!(
            "http://127.0.0.1:{}/status.txt?password={KANNEL_ADMIN_PASSWORD}",
            self.admin_port
        );
        http_get(&url, Duration::from_secs(5))
            .map(|r| r.1)
            .unwrap_or_else(|e| format!("<status page: {e}>"))
    }

    /// The tails of bearerbox's and smsbox's logs plus fakesmsc's output, for assertion messages.
    pub fn logs(&self) -> String {
        let fk = self
            .fakesmsc_output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n");
        format!(
            "bearerbox.log:\n{}\nsmsbox.log:\n{}\nfakesmsc:\n{fk}",
            file_tail(&self.dir.path.join("bearerbox.log"), 4000),
            file_tail(&self.dir.path.join("smsbox.log"), 4000)
        )
    }

    /// Every SMS fakesmsc has received so far, parsed from its stdout.
    ///
    /// (It is actually fakesmsc's stderr: see [`ReceivedSms`] for the exact format.) In arrival order.
    pub fn received(&self) -> Vec<ReceivedSms> {
        let lines = self
            .fakesmsc_output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        parse_fakesmsc_output(&lines)
    }

    /// Polls (bounded by `timeout`) until at least `n` SMS were received; returns them (possibly fewer than `n`
    /// when `timeout` expires: assert on the length).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedSms> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kannel {
    /// Kills and reaps fakesmsc, smsbox, bearerbox (in that order); the temp dir is removed afterwards.
    fn drop(&mut self) {
        self.fakesmsc.stop();
        self.smsbox.stop();
        self.bearerbox.stop();
    }
}

/// Appends every line read from `pipe` to `sink` on a detached thread (ends at EOF, i.e. when the process dies).
fn capture_lines<R: Read + Send + 'static>(pipe: Option<R>, sink: Arc<Mutex<Vec<String>>>) {
    let Some(pipe) = pipe else { return };
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let s = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------------------------

/// The default server for [`PgDatabase`] when `RITUALIST_TEST_PG` is unset.
pub const DEFAULT_TEST_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh, empty PostgreSQL database for one test: connects with `psql` (std::process::Command) to
/// the server given by env RITUALIST_TEST_PG (default "postgres://postgres@127.0.0.1:5432/test"), creates
/// `ritualist_t_<pid>_<counter>_<nanos>` and returns its URL. None (after missing_peer) when the server is not reachable.
/// Drop drops the database (WITH (FORCE)).
pub struct PgDatabase {
    /// URL of the new database: the server URL with its path replaced by `/<name>` (query string kept).
    pub url: String,
    /// The database name, `ritualist_t_<pid>_<counter>_<nanos>`.
    pub name: String,
    server_url: String,
    psql: PathBuf,
}

impl PgDatabase {
    /// The server URL used: env `RITUALIST_TEST_PG` or [`DEFAULT_TEST_PG`].
    pub fn server_url() -> String {
        std::env::var("RITUALIST_TEST_PG")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_PG.to_string())
    }

    /// Creates the database (see the type docs). Panics if the server is reachable but `CREATE DATABASE` fails.
    pub fn create() -> Option<PgDatabase> {
        let server = Self::server_url();
        let Some(psql) = find_program("psql", &["/usr/bin/psql"]) else {
            missing_peer(
                "psql (Debian package postgresql-client)",
                "no executable psql on PATH or in /usr/bin",
            );
            return None;
        };
        match run_psql(&psql, &server, "SELECT 1") {
            Ok(out) if out.trim() == "1" => {}
            Ok(out) => {
                missing_peer(
                    &format!("PostgreSQL at {server}"),
                    &format!("`SELECT 1` answered {out:?}"),
                );
                return None;
            }
            Err(e) => {
                missing_peer(
                    &format!("PostgreSQL at {server}"),
                    &format!("not reachable: {}", e.trim()),
                );
                return None;
            }
        }
        let name = format!("ritualist_t_{}", unique_suffix());
        if let Err(e) = run_psql(&psql, &server, &format!("CREATE DATABASE \"{name}\"")) {
            panic!("CREATE DATABASE {name} on {server} failed: {e}");
        }
        Some(PgDatabase {
            url: with_database(&server, &name),
            name,
            server_url: server,
            psql,
        })
    }

    /// Runs SQL in this database with `psql -X -q -A -t -v ON_ERROR_STOP=1` (unaligned, tuples only, `|`
    /// separated); returns stdout, or stderr on failure. Handy for assertions.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        run_psql(&self.psql, &self.url, sql)
    }
}

impl Drop for PgDatabase {
    /// `DROP DATABASE IF EXISTS "<name>" WITH (FORCE)` (terminates leftover connections); failures are only
    /// printed, never panic (this may run during unwinding).
    fn drop(&mut self) {
        if let Err(e) = run_psql(
            &self.psql,
            &self.server_url,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        ) {
            let _ = writeln!(
                io::stderr().lock(),
                "warning: could not drop test database {}: {e}",
                self.name
            );
        }
    }
}

/// `postgres://u@h:p/db?x=y` with the database path replaced by `/name` (query string kept).
fn with_database(server: &str, name: &str) -> String {
    let auth_start = server.find("://").map_or(0, |i| i + 3);
    let path_start = server[auth_start..]
        .find(['/', '?'])
        .map_or(server.len(), |i| auth_start + i);
    let query = server[path_start..]
        .find('?')
        .map_or("", |i| &server[path_start + i..]);
    format!("{}/{name}{query}", &server[..path_start])
}

/// Runs one SQL command via psql against `conninfo` (bounded: 5 s connect, 60 s total). Ok(stdout) / Err(stderr).
fn run_psql(psql: &Path, conninfo: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-c",
        sql,
    ])
    .env("PGCONNECT_TIMEOUT", "5");
    match run_bounded(&mut cmd, Duration::from_secs(60)) {
        Ok((status, out, _)) if status.success() => Ok(out),
        Ok((status, _, err)) => Err(format!("psql {status}: {err}")),
        Err(e) => Err(format!("psql: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Self-tests (run inside the integration test binary)
// ---------------------------------------------------------------------------------------------------------------

/// Reads one (possibly multi-line) SMTP reply.
fn smtp_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read SMTP reply");
        assert!(
            n > 0,
            "SMTP server closed the connection; got so far: {all:?}"
        );
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

/// Sends one SMTP command line (CRLF appended) and returns the reply.
fn smtp_cmd(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, cmd: &str) -> String {
    stream
        .write_all(format!("{cmd}\r\n").as_bytes())
        .expect("write SMTP command");
    smtp_reply(reader)
}

/// Connects to the sink, returning the stream, a reader and the greeting.
fn smtp_connect(sink: &SmtpSink) -> (TcpStream, BufReader<TcpStream>, String) {
    let stream = TcpStream::connect(("127.0.0.1", sink.port())).expect("connect to smtp-sink");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let greeting = smtp_reply(&mut reader);
    (stream, reader, greeting)
}

#[test]
fn smtp_sink_receives_a_message() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let (mut s, mut r, greeting) = smtp_connect(&sink);
    assert!(greeting.starts_with("220"), "greeting: {greeting}");
    assert!(smtp_cmd(&mut s, &mut r, "EHLO client.example").starts_with("250"));
    assert!(
        smtp_cmd(&mut s, &mut r, "MAIL FROM:<shop@example.com> BODY=8BITMIME").starts_with("250")
    );
    assert!(smtp_cmd(&mut s, &mut r, "RCPT TO:<anna@example.org>").starts_with("250"));
    assert!(smtp_cmd(&mut s, &mut r, "RCPT TO:<ion@example.ro> NOTIFY=NEVER").starts_with("250"));
    assert!(smtp_cmd(&mut s, &mut r, "DATA").starts_with("354"));
    let body = "From: Shop <shop@example.com>\r\nTo: anna@example.org\r\nSubject: Happy birthday\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\r\nС днём рождения, Анна!\r\n..dot-stuffed line\r\nBye\r\n.";
    assert!(
        smtp_cmd(&mut s, &mut r, body).starts_with("250"),
        "message not accepted"
    );
    assert!(smtp_cmd(&mut s, &mut r, "QUIT").starts_with("221"));

    let msgs = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(msgs.len(), 1, "dumps: {msgs:?}\nlog: {}", sink.log());
    let dump = &msgs[0];
    assert_eq!(
        dumped_envelope_sender(dump).as_deref(),
        Some("shop@example.com")
    );
    assert_eq!(
        dumped_envelope_recipients(dump),
        vec!["anna@example.org", "ion@example.ro"]
    );
    assert_eq!(dumped_helo(dump).as_deref(), Some("client.example"));
    assert_eq!(
        dumped_mail_args(dump).as_deref(),
        Some("<shop@example.com> BODY=8BITMIME")
    );
    let message = String::from_utf8(dumped_message_body(dump).to_vec()).expect("UTF-8 message");
    assert_eq!(
        message,
        "From: Shop <shop@example.com>\nTo: anna@example.org\nSubject: Happy birthday\n\
         Content-Type: text/plain; charset=utf-8\n\nС днём рождения, Анна!\n.dot-stuffed line\nBye\n"
    );
    // A dump without envelope lines is passed through.
    assert_eq!(
        dumped_message_body(b"Subject: x\n\nbody\n"),
        b"Subject: x\n\nbody\n"
    );
}

#[test]
fn smtp_sink_injects_a_hard_bounce() {
    let Some(sink) = SmtpSink::start(&["-f", "RCPT", "-B", "550 5.1.1 User unknown"]) else {
        return;
    };
    let (mut s, mut r, greeting) = smtp_connect(&sink);
    assert!(greeting.starts_with("220"), "greeting: {greeting}");
    assert!(smtp_cmd(&mut s, &mut r, "EHLO client.example").starts_with("250"));
    assert!(smtp_cmd(&mut s, &mut r, "MAIL FROM:<shop@example.com>").starts_with("250"));
    let rcpt = smtp_cmd(&mut s, &mut r, "RCPT TO:<nobody@example.org>");
    assert!(rcpt.starts_with("550"), "RCPT reply: {rcpt}");
    assert!(rcpt.contains("5.1.1 User unknown"), "RCPT reply: {rcpt}");
    assert!(smtp_cmd(&mut s, &mut r, "DATA").starts_with("503"));
    assert!(smtp_cmd(&mut s, &mut r, "QUIT").starts_with("221"));
    assert!(
        sink.messages().is_empty(),
        "a rejected transaction must not be dumped"
    );
}

#[test]
fn kannel_delivers_ascii_and_cyrillic_sms() {
    let Some(kannel) = Kannel::start() else {
        return;
    };
    let t = Duration::from_secs(10);

    let bad = format!(
        "{}?username={}&password=wrong&from=Ritualist&to=%2B40722000111&text=hi",
        kannel.sendsms_url(),
        kannel.username()
    );
    let (status, body) = http_get(&bad, t).expect("sendsms with bad password");
    assert_eq!(
        (status, body.trim()),
        (403, "Authorization failed for sendsms")
    );

    let cases = [
        (
            "+40722000111",
            "Happy birthday, Anna! 100% & a+b=c",
            0u8,
            "text",
        ),
        ("+79161234567", "С днём рождения, Анна!", 2, "ucs-2"),
        ("+40722000222", "La mulți ani, Ștefan!", 2, "ucs-2"),
    ];
    for (to, text, coding, _) in cases {
        let url = kannel.sendsms_request_url("Ritualist", to, text, coding);
        let (status, body) = http_get(&url, t).unwrap_or_else(|e| panic!("sendsms {url}: {e}"));
        assert_eq!(
            (status, body.trim()),
            (202, "0: Accepted for delivery"),
            "{url}"
        );
    }

    let got = kannel.wait_for(cases.len(), Duration::from_secs(20));
    assert_eq!(
        got.len(),
        cases.len(),
        "received {got:#?}\n{}",
        kannel.logs()
    );
    for (to, text, _, coding) in cases {
        let sms = got
            .iter()
            .find(|m| m.to == to)
            .unwrap_or_else(|| panic!("nothing received for {to}: {got:#?}"));
        assert_eq!(sms.text, text, "{sms:#?}");
        assert_eq!(sms.from, "Ritualist");
        assert_eq!(sms.coding, coding, "{sms:#?}");
    }
}

#[test]
fn fakesmsc_output_is_parsed() {
    // Lines exactly as fakesmsc prints them (captured from Kannel 1.4.5), including a newline split.
    let lines: Vec<String> = [
        "2026-11-23 09:04:36 [15989] [0] INFO: fakesmsc starting",
        "2026-11-23 09:04:36 [15989] [0] DEBUG: Got message 1: <Ritualist +40722000111 text Hello world>",
        "2026-11-23 09:04:36 [15989] [0] DEBUG: Got message 2: <Ritualist +79161234567 ucs-2 %04!%00+%044%04%3D%04Q%04%3C%00+%04%40%04%3E%046%044%045%04%3D%048%04O%00%2C%00+%04%10%04%3D%04%3D%040%00!>",
        "2026-11-23 09:04:49 [15989] [0] DEBUG: Got message 6: <Ritualist 3 text line1>",
        "2026-11-23 09:04:49 [15989] [0] DEBUG: Got message 7: <line2>",
        "2026-11-23 09:04:49 [15989] [0] DEBUG: Got message 8: <line > text>>",
        "2026-11-23 09:05:14 [17582] [0] DEBUG: Got message 3: <Ritualist 5 udh %05%00%03%07%02%02 data yy>",
        "2026-11-23 09:05:14 [17582] [0] DEBUG: Got message 3: <Ritualist 5 udh %05%00%03%07%02%01 data xx>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = parse_fakesmsc_output(&lines);
    assert_eq!(got.len(), 5, "{got:#?}");
    assert_eq!(
        (
            got[0].to.as_str(),
            got[0].text.as_str(),
            got[0].coding.as_str()
        ),
        ("+40722000111", "Hello world", "text")
    );
    assert_eq!(
        (got[1].text.as_str(), got[1].coding.as_str()),
        ("С днём рождения, Анна!", "ucs-2")
    );
    assert_eq!(got[2].text, "line1\nline2\nline > text>");
    assert_eq!(got[3].concat_part(), Some((7, 2, 2)));
    assert_eq!(join_concatenated(&got[3..5], false), "xxyy");
}

#[test]
fn postgres_database_is_created_and_dropped() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let name = db.name.clone();
    assert!(name.starts_with("ritualist_t_"), "{name}");
    assert!(
        db.url.ends_with(&format!("/{name}")) || db.url.contains(&format!("/{name}?")),
        "{}",
        db.url
    );
    assert_eq!(
        db.psql("SELECT current_database()")
            .expect("connect to new db")
            .trim(),
        name
    );
    db.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (42)")
        .expect("create table");
    assert_eq!(db.psql("SELECT id FROM t").unwrap().trim(), "42");
    let psql = db.psql.clone();
    let server = PgDatabase::server_url();
    let exists = |n: &str| {
        run_psql(
            &psql,
            &server,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{n}'"),
        )
        .unwrap()
    };
    assert_eq!(exists(&name).trim(), "1");
    drop(db);
    assert_eq!(
        exists(&name).trim(),
        "0",
        "database must be dropped on Drop"
    );
}

#[test]
fn helpers_behave() {
    assert_eq!(
        url_encode("+7 Анна&x"),
        "%2B7%20%D0%90%D0%BD%D0%BD%D0%B0%26x"
    );
    assert_eq!(
        url_decode("%00+%04%10a%zz%"),
        vec![0, b' ', 4, 0x10, b'a', b'%', b'z', b'z', b'%']
    );
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
    let ports = free_ports(4);
    let mut uniq = ports.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4, "{ports:?}");
}

/// Whether `/usr/bin/python3` can import aiosmtpd (Debian's python3-aiosmtpd), the library of
/// the Python SMTP peers under `tests/peers/`; reports a missing peer when it cannot.
pub fn aiosmtpd_available() -> bool {
    let python = Path::new("/usr/bin/python3");
    let ok = python.exists()
        && Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        missing_peer(
            "aiosmtpd (python3-aiosmtpd)",
            "/usr/bin/python3 cannot import aiosmtpd",
        );
    }
    ok
}

/// Starts `/usr/bin/python3 tests/peers/<script> <args>` and waits (at most 20 s) until it
/// prints READY; panics naming the script otherwise.
pub fn start_python_peer(script: &str, args: &[&std::ffi::OsStr]) -> Child {
    let mut child = Command::new("/usr/bin/python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/peers")
                .join(script),
        )
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("READY") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the test peer tests/peers/{script} did not start within 20 s");
    }
    child
}

// ---------------------------------------------------------------------------------------------------------------
// A private Postfix instance: the shop's relay
// ---------------------------------------------------------------------------------------------------------------

/// A real Postfix (`master -d`, as root) with its own config, queue and data directories in a
/// temp dir, its `smtpd` on a free loopback port, relaying everything to
/// `[127.0.0.1]:<next hop>` (no DNS), retrying every second, and logging to a file
/// (`maillog_file`). Stopped with SIGTERM (then SIGKILL) on drop: master takes its children
/// down.
pub struct Postfix {
    master: Proc,
    port: u16,
    dir: ScratchDir,
}

impl Postfix {
    /// `None` (after [`missing_peer`]) when Postfix is not installed or we are not root.
    /// `main_cf` is appended to the instance's main.cf (`{dir}` in it is replaced by the
    /// instance's directory); `files` are written into that directory first (a transport
    /// table, say) and `postmap`ped when `postmap` names them.
    pub fn start(
        next_hop: u16,
        main_cf: &str,
        files: &[(&str, &str)],
        postmap: &[&str],
    ) -> Option<Postfix> {
        let Some(master) = find_program("master", &["/usr/lib/postfix/sbin/master"]) else {
            missing_peer(
                "Postfix (Debian package postfix)",
                "no /usr/lib/postfix/sbin/master",
            );
            return None;
        };
        if !running_as_root() {
            missing_peer(
                "Postfix as root",
                "a private Postfix master must run as root",
            );
            return None;
        }
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            match Self::try_start(&master, next_hop, main_cf, files, postmap) {
                Ok(p) => return Some(p),
                Err(e) => failures.push(format!("attempt {attempt}: {e}")),
            }
        }
        panic!(
            "Postfix is installed but did not start:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(
        master: &Path,
        next_hop: u16,
        main_cf: &str,
        files: &[(&str, &str)],
        postmap: &[&str],
    ) -> Result<Postfix, String> {
        let dir = ScratchDir::new("ritualist-postfix");
        set_mode(dir.path(), 0o755);
        let d = dir.path().display().to_string();
        for sub in ["etc", "queue", "data"] {
            fs::create_dir(dir.path().join(sub)).map_err(|e| format!("mkdir {sub}: {e}"))?;
        }
        let port = free_port();
        fs::write(dir.path().join("etc/master.cf"), postfix_master_cf(port))
            .map_err(|e| e.to_string())?;
        let main = format!(
            "{}\n{}\n",
            postfix_main_cf(&d, next_hop),
            main_cf.replace("{dir}", &d)
        );
        fs::write(dir.path().join("etc/main.cf"), main).map_err(|e| e.to_string())?;
        for (name, text) in files {
            fs::write(dir.path().join(name), text).map_err(|e| e.to_string())?;
        }
        let conf = format!("{d}/etc");
        let run = |program: &str, args: &[&str]| -> Result<(), String> {
            let bin = find_program(program, &[]).ok_or(format!("no {program}"))?;
            let (status, out, err) =
                run_bounded(Command::new(bin).args(args), Duration::from_secs(30))
                    .map_err(|e| format!("{program}: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{program} {args:?}: {status} {out}{err}"))
            }
        };
        run("chown", &["postfix", &format!("{d}/data")])?;
        for table in postmap {
            run("postmap", &["-c", &conf, &format!("{d}/{table}")])?;
        }
        // `check` creates the queue's directories with their owners and modes.
        run("postfix", &["-c", &conf, "check"])?;
        let log = fs::File::create(dir.path().join("master.out")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(master);
        cmd.args(["-c", &conf, "-d"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let mut proc = Proc::spawn("postfix master", &mut cmd)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !smtp_greets(port) {
            if let Some(status) = proc.exited() {
                return Err(format!(
                    "master exited ({status}); {}\n{}",
                    file_tail(&dir.path().join("master.out"), 2000),
                    file_tail(&dir.path().join("maillog"), 4000)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "smtpd not greeting on 127.0.0.1:{port} after 10 s; {}",
                    file_tail(&dir.path().join("maillog"), 4000)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(Postfix {
            master: proc,
            port,
            dir,
        })
    }

    /// The loopback port its `smtpd` listens on (plain SMTP, takes mail from 127.0.0.0/8).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance's directory (`etc/`, `queue/`, `data/`, `maillog`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Postfix's log so far.
    pub fn maillog(&self) -> String {
        file_tail(&self.dir.path().join("maillog"), 256 * 1024)
    }

    /// `postqueue -p`: the queue, one entry per message.
    pub fn queue(&self) -> String {
        self.postqueue("-p")
    }

    /// `postcat -hb -q ID`: a queued message's headers and body, as Postfix would send it.
    pub fn postcat(&self, id: &str) -> String {
        let conf = self.dir.path().join("etc");
        let bin = find_program("postcat", &["/usr/sbin/postcat"]).expect("postcat");
        let (status, out, err) = run_bounded(
            Command::new(bin)
                .arg("-c")
                .arg(&conf)
                .args(["-hb", "-q", id]),
            Duration::from_secs(30),
        )
        .expect("postcat");
        assert!(status.success(), "postcat -q {id}: {err}");
        out
    }

    /// `postqueue -f`: try every deferred message now.
    pub fn flush(&self) {
        self.postqueue("-f");
    }

    fn postqueue(&self, flag: &str) -> String {
        let conf = self.dir.path().join("etc");
        let bin = find_program("postqueue", &["/usr/sbin/postqueue"]).expect("postqueue");
        let (_, out, err) = run_bounded(
            Command::new(bin).arg("-c").arg(&conf).arg(flag),
            Duration::from_secs(30),
        )
        .expect("postqueue");
        format!("{out}{err}")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // SIGTERM lets master stop its children; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.master.exited().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        self.master.stop();
    }
}

/// A master.cf without chroot (the queue holds no copy of /etc), `smtpd` on 127.0.0.1:`port`
/// and the services a relay needs, `lmtp` and `postlog` included.
fn postfix_master_cf(port: u16) -> String {
    let services = [
        ("pickup", "unix", "n", "60", "1", "pickup"),
        ("cleanup", "unix", "n", "-", "0", "cleanup"),
        ("qmgr", "unix", "n", "300", "1", "qmgr"),
        ("rewrite", "unix", "-", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "1", "verify"),
        ("flush", "unix", "n", "1000?", "0", "flush"),
        ("proxymap", "unix", "-", "-", "-", "proxymap"),
        ("smtp", "unix", "-", "-", "-", "smtp"),
        ("relay", "unix", "-", "-", "-", "smtp"),
        ("showq", "unix", "n", "-", "-", "showq"),
        ("error", "unix", "-", "-", "-", "error"),
        ("retry", "unix", "-", "-", "-", "error"),
        ("discard", "unix", "-", "-", "-", "discard"),
        ("lmtp", "unix", "-", "-", "-", "lmtp"),
        ("anvil", "unix", "-", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "1", "postlogd"),
    ];
    let mut cf = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
    for (name, kind, private, wakeup, limit, command) in services {
        cf.push_str(&format!(
            "{name} {kind} {private} - n {wakeup} {limit} {command}\n"
        ));
    }
    cf
}

/// The instance's main.cf: its own directories, loopback only, no DNS, everything relayed to
/// `[127.0.0.1]:next_hop`, deferred mail retried every second.
fn postfix_main_cf(dir: &str, next_hop: u16) -> String {
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {dir}/queue\n\
         data_directory = {dir}/data\n\
         command_directory = /usr/sbin\n\
         daemon_directory = /usr/lib/postfix/sbin\n\
         meta_directory = /etc/postfix\n\
         shlib_directory = /usr/lib/postfix\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = relay.shop.test\n\
         mydomain = shop.test\n\
         myorigin = shop.test\n\
         mydestination =\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         relayhost = [127.0.0.1]:{next_hop}\n\
         smtp_host_lookup = native\n\
         lmtp_host_lookup = native\n\
         smtp_dns_support_level = disabled\n\
         maillog_file = {dir}/maillog\n\
         maillog_file_prefixes = {dir}\n\
         queue_run_delay = 1s\n\
         minimal_backoff_time = 1s\n\
         maximal_backoff_time = 2s\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         smtputf8_enable = no\n\
         biff = no"
    )
}
