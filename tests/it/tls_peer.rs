//! A TLS SMTP server (tests/peers/tls_smtp.py on Debian's python3-aiosmtpd) with a
//! self-signed certificate made by openssl, requiring STARTTLS (or implicit TLS) and AUTH.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{ScratchDir, aiosmtpd_available, free_port, missing_peer, start_python_peer};

pub struct TlsSmtp {
    child: Child,
    pub port: u16,
    dir: ScratchDir,
}

pub const USER: &str = "ritualist";
pub const PASSWORD: &str = "s3cret-pw";

impl TlsSmtp {
    /// `mode`: "starttls" or "tls". None (after `missing_peer`) when a tool is missing.
    pub fn start(mode: &str) -> Option<TlsSmtp> {
        if !aiosmtpd_available() {
            return None;
        }
        let dir = ScratchDir::new("tls-smtp");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            missing_peer("openssl", "cannot create a self-signed certificate");
            return None;
        }
        Some(TlsSmtp::start_with_cert(mode, &cert, &key, dir))
    }

    /// `mode` as in [`TlsSmtp::start`], serving `cert`/`key` (e.g. from a private CA);
    /// `dir` (kept until drop) receives the dump.
    pub fn start_with_cert(
        mode: &str,
        cert: &std::path::Path,
        key: &std::path::Path,
        dir: ScratchDir,
    ) -> TlsSmtp {
        let dump = dir.path().join("dump");
        std::fs::create_dir_all(&dump).unwrap();
        let port = free_port();
        let port_arg = port.to_string();
        let child = start_python_peer(
            "tls_smtp.py",
            &[
                mode.as_ref(),
                port_arg.as_ref(),
                cert.as_os_str(),
                key.as_os_str(),
                dump.as_os_str(),
                USER.as_ref(),
                PASSWORD.as_ref(),
            ],
        );
        TlsSmtp { child, port, dir }
    }

    fn dump(&self) -> PathBuf {
        self.dir.path().join("dump")
    }

    /// Messages accepted so far (with `X-Env-*` envelope lines first).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut v: Vec<String> = std::fs::read_dir(self.dump())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect();
            if v.len() >= n || Instant::now() > deadline {
                v.sort();
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
