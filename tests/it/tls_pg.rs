//! PostgreSQL over TLS: a private server started by the test (its own data directory, `ssl = on`,
//! a certificate from a test CA made with openssl) and `Store::open` with libpq's `sslmode` /
//! `sslrootcert` URL parameters.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ritualist::store::{Store, StoreError};

use crate::peers::{ScratchDir, free_port, missing_peer};
use crate::test_ca::TestCa;

/// A PostgreSQL server on 127.0.0.1:`port` with TLS on, stopped when dropped.
struct TlsPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    ca: TestCa,
    _dir: ScratchDir,
}

fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL tool (as the `postgres` user when we are root: it refuses to run as root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str]) -> bool {
    let exe = bin.join(tool);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl TlsPostgres {
    fn start() -> Option<TlsPostgres> {
        let Some(bin) = pg_bin() else {
            missing_peer(
                "PostgreSQL (initdb, pg_ctl)",
                "no /usr/lib/postgresql/*/bin",
            );
            return None;
        };
        let dir = ScratchDir::new("tls-pg");
        let Some(ca) = TestCa::new(dir.path(), "ca") else {
            missing_peer("openssl", "cannot create a test CA");
            return None;
        };
        let (cert, key) = ca
            .issue("server", "DNS:localhost")
            .expect("server certificate");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the data directory to postgres");
        }
        let d = data.to_str().unwrap();
        assert!(
            pg_tool(&bin, "initdb", &["-D", d, "-A", "trust", "-U", "postgres"]),
            "initdb"
        );
        // The key must belong to the server's user and be private.
        for (from, to) in [(&cert, "server.crt"), (&key, "server.key")] {
            std::fs::copy(from, data.join(to)).unwrap();
        }
        if is_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .status();
        }
        let _ = Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key"))
            .status();
        let port = free_port();
        let opts = format!(
            "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off"
        );
        let log = format!("{d}/server.log");
        let started = pg_tool(
            &bin,
            "pg_ctl",
            &["-D", d, "-o", &opts, "-l", &log, "-w", "-t", "60", "start"],
        );
        assert!(
            started,
            "pg_ctl start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(TlsPostgres {
            bin,
            data,
            port,
            ca,
            _dir: dir,
        })
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let d = self.data.to_str().unwrap().to_string();
        pg_tool(
            &self.bin,
            "pg_ctl",
            &["-D", &d, "-m", "immediate", "-w", "stop"],
        );
    }
}

fn tls_error(r: Result<Store, StoreError>) -> String {
    match r {
        Err(e @ StoreError::Tls { .. }) => e.to_string(),
        Err(e) => panic!("expected a TLS error, got: {e}"),
        Ok(_) => panic!("expected a TLS error, but the connection was accepted"),
    }
}

#[tokio::test]
async fn postgres_over_tls_honours_libpq_sslmodes() {
    let Some(pg) = TlsPostgres::start() else {
        return;
    };
    // `require`: encrypted, the certificate not checked.
    let store = Store::open(&pg.url("localhost", "sslmode=require"))
        .await
        .expect("sslmode=require connects");
    assert!(store.is_postgres());
    drop(store);

    // `verify-full` with the CA that signed the server's certificate.
    let ca = pg.ca.cert.to_str().unwrap();
    Store::open(&pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-full with the right CA connects");

    // `verify-full` with another CA: refused, and the error says which parameter fixes it.
    let other_dir = ScratchDir::new("tls-pg-other-ca");
    let other = TestCa::new(other_dir.path(), "other").expect("second CA");
    let other = other.cert.to_str().unwrap();
    let msg = tls_error(
        Store::open(&pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        ))
        .await,
    );
    assert!(msg.contains("localhost"), "names the host: {msg}");
    assert!(msg.contains("unknown issuer"), "says what failed: {msg}");
    assert!(msg.contains("sslrootcert"), "names the fix: {msg}");

    // `verify-full` by a name the certificate does not carry (it names only `localhost`).
    let msg = tls_error(
        Store::open(&pg.url(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ))
        .await,
    );
    assert!(msg.contains("127.0.0.1"), "names the host: {msg}");
    assert!(
        msg.contains("does not name this host"),
        "says what failed: {msg}"
    );
    assert!(msg.contains("verify-ca"), "names the fix: {msg}");

    // `verify-ca` checks the CA but not the name: the same connection is accepted.
    Store::open(&pg.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")))
        .await
        .expect("verify-ca with the right CA connects by IP");
}
