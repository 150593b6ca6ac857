//! A TLS SMTP server (tests/peers/tls_smtp.py on Debian's python3-aiosmtpd) with a
//! self-signed certificate made by openssl, requiring STARTTLS (or implicit TLS) and AUTH.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{ScratchDir, free_port, missing_peer};

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
        let python = Path::new("/usr/bin/python3");
        let has_aiosmtpd = python.exists()
            && Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        if !has_aiosmtpd {
            missing_peer(
                "aiosmtpd (python3-aiosmtpd)",
                "/usr/bin/python3 cannot import aiosmtpd",
            );
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
        let dump = dir.path().join("dump");
        std::fs::create_dir_all(&dump).unwrap();
        let port = free_port();
        let script = Path::new(crate::harness::REPO).join("tests/peers/tls_smtp.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([mode, &port.to_string()])
            .args([&cert, &key, &dump])
            .args([USER, PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("READY") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            panic!("the TLS SMTP peer did not start within 20 s");
        }
        Some(TlsSmtp { child, port, dir })
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
