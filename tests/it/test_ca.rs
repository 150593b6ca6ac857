//! A throwaway private certificate authority made with `openssl`: a CA certificate and server
//! certificates it signs, for the TLS tests against PostgreSQL and the SMTP peer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A CA (`ca.pem`, `ca.key`) in `dir`.
pub struct TestCa {
    dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl TestCa {
    /// A new CA named `name` in `dir`; None when openssl is missing or fails.
    pub fn new(dir: &Path, name: &str) -> Option<TestCa> {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        let subj = format!("/CN=Ritualist test CA {name}");
        let ok = openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &key,
                "-out",
                &cert,
            ],
            dir,
        );
        ok.then(|| TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join(cert),
            key: dir.join(key),
        })
    }

    /// A server certificate and key (`<name>.pem`, `<name>.key`) for `san`
    /// (e.g. `DNS:localhost`), signed by this CA.
    pub fn issue(&self, name: &str, san: &str) -> Option<(PathBuf, PathBuf)> {
        let (cert, key, csr, ext) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .ok()?;
        let ok = openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=ritualist-test-server",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            &self.dir,
        ) && openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                self.cert.to_str()?,
                "-CAkey",
                self.key.to_str()?,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
            &self.dir,
        );
        ok.then(|| (self.dir.join(cert), self.dir.join(key)))
    }
}
