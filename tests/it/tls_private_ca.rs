//! An SMTP relay whose certificate comes from a private CA (tests/peers/tls_smtp.py serving a
//! certificate made by `test_ca`): refused without `ca_file` with an error that names the
//! host, what failed and the key that fixes it; accepted with it, over STARTTLS and implicit
//! TLS. A self-signed certificate (the CA used as the server's own) is explained too.

use std::path::Path;
use std::time::Duration;

use ritualist::channel::SmtpPool;
use ritualist::config::{RateLimit, Secret, SmtpConfig, SmtpSecurity, TlsTrust};

use crate::peers::{ScratchDir, aiosmtpd_available, missing_peer};
use crate::test_ca::TestCa;
use crate::tls_peer::{PASSWORD, TlsSmtp, USER};

fn pool(port: u16, security: SmtpSecurity, tls: TlsTrust) -> SmtpPool {
    SmtpPool::new(pool_config(port, security, tls))
}

fn pool_config(port: u16, security: SmtpSecurity, tls: TlsTrust) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security,
        username: Some(USER.into()),
        password: Some(Secret::new(PASSWORD)),
        hello_name: "client.test".into(),
        timeout_secs: 10,
        connections: 1,
        accept_invalid_certs: false,
        tls: Box::new(tls),
        pipelining: true,
        rate: RateLimit::default(),
        breaker_failures: 5,
        breaker_secs: 30,
    }
}

const MESSAGE: &str =
    "From: hello@floare.example\r\nTo: emma@example.com\r\nSubject: hi\r\n\r\nHello Emma\r\n";

async fn send(pool: &SmtpPool) -> Result<String, String> {
    pool.send(
        "hello@floare.example",
        "emma@example.com",
        MESSAGE.as_bytes(),
        None,
    )
    .await
    .map_err(|e| e.to_string())
}

fn with_ca(ca: &Path) -> TlsTrust {
    TlsTrust {
        ca_file: Some(ca.to_path_buf()),
        ..TlsTrust::default()
    }
}

#[tokio::test]
async fn a_relay_with_a_private_ca_needs_ca_file_and_says_so() {
    if !aiosmtpd_available() {
        return;
    }
    for (mode, security) in [
        ("starttls", SmtpSecurity::Starttls),
        ("tls", SmtpSecurity::Tls),
    ] {
        let dir = ScratchDir::new("smtp-private-ca");
        let Some(ca) = TestCa::new(dir.path(), "ca") else {
            missing_peer("openssl", "cannot create a test CA");
            return;
        };
        let (cert, key) = ca
            .issue("relay", "IP:127.0.0.1")
            .expect("relay certificate");
        let ca_cert = ca.cert.clone();
        let server = TlsSmtp::start_with_cert(mode, &cert, &key, dir);

        let err = send(&pool(server.port, security, TlsTrust::default()))
            .await
            .expect_err("an unknown private CA is refused");
        assert!(err.contains("127.0.0.1"), "{mode}: names the host: {err}");
        assert!(
            err.contains("unknown issuer"),
            "{mode}: says what failed: {err}"
        );
        assert!(
            err.contains("email.smtp.ca_file"),
            "{mode}: names the key: {err}"
        );

        send(&pool(server.port, security, with_ca(&ca_cert)))
            .await
            .unwrap_or_else(|e| panic!("{mode}: accepted with ca_file: {e}"));
        let got = server.wait_for(1, Duration::from_secs(10));
        assert_eq!(got.len(), 1, "{mode}");
        assert!(got[0].contains("X-Env-Tls: True"), "{mode}: {}", got[0]);

        // `ca_only`: the private CA alone is enough.
        let only = TlsTrust {
            ca_only: true,
            ..with_ca(&ca_cert)
        };
        send(&pool(server.port, security, only))
            .await
            .unwrap_or_else(|e| panic!("{mode}: accepted with ca_only: {e}"));

        // Another CA's bundle does not vouch for this relay.
        let other_dir = ScratchDir::new("smtp-other-ca");
        let other = TestCa::new(other_dir.path(), "other").expect("second CA");
        let err = send(&pool(
            server.port,
            security,
            TlsTrust {
                ca_only: true,
                ..with_ca(&other.cert)
            },
        ))
        .await
        .expect_err("a different CA is refused");
        assert!(err.contains("unknown issuer"), "{mode}: {err}");
    }
}

/// The issue's report: a self-signed certificate used to fail with
/// `invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))` and nothing more.
#[tokio::test]
async fn a_self_signed_relay_certificate_is_explained() {
    let Some(server) = TlsSmtp::start("starttls") else {
        return;
    };
    let err = send(&pool(
        server.port,
        SmtpSecurity::Starttls,
        TlsTrust::default(),
    ))
    .await
    .expect_err("a self-signed certificate is refused");
    assert!(err.contains("127.0.0.1"), "names the host: {err}");
    assert!(
        err.contains("CA certificate as its own"),
        "says what failed: {err}"
    );
    assert!(err.contains("email.smtp.ca_file"), "names the key: {err}");
}

/// Kannel behind HTTPS with a private CA (tests/peers/https_ok.py answering as sendsms does):
/// refused without `ca_file`, naming the key; accepted with it.
#[tokio::test]
async fn an_sms_gateway_with_a_private_ca_needs_ca_file() {
    use ritualist::channel::Kannel;
    use ritualist::config::KannelConfig;
    let dir = ScratchDir::new("https-private-ca");
    let Some(ca) = TestCa::new(dir.path(), "ca") else {
        missing_peer("openssl", "cannot create a test CA");
        return;
    };
    let (cert, key) = ca
        .issue("gateway", "IP:127.0.0.1")
        .expect("gateway certificate");
    let port = crate::peers::free_port();
    let mut child = crate::peers::start_python_peer(
        "https_ok.py",
        &[port.to_string().as_ref(), cert.as_os_str(), key.as_os_str()],
    );
    let kannel = |tls: TlsTrust| {
        Kannel::new(KannelConfig {
            name: "kannel".into(),
            url: format!("https://127.0.0.1:{port}/cgi-bin/sendsms"),
            username: "ritualist".into(),
            password: Secret::new("pw"),
            from: None,
            timeout_secs: 10,
            rate: RateLimit::default(),
            tls,
        })
        .expect("client")
    };
    let refused = kannel(TlsTrust::default())
        .send("+40721000002", "hi")
        .await
        .map_err(|e| e.to_string());
    let accepted = kannel(with_ca(&ca.cert))
        .send("+40721000002", "hi")
        .await
        .map_err(|e| e.to_string());
    // `doctor` on the same gateway: refused without the CA, verified with it.
    let gateway = |tls: TlsTrust| {
        ritualist::config::SmsProvider::Kannel(KannelConfig {
            name: "kannel".into(),
            url: format!("https://127.0.0.1:{port}/cgi-bin/sendsms?password=pw"),
            username: "ritualist".into(),
            password: Secret::new("pw"),
            from: None,
            timeout_secs: 10,
            rate: RateLimit::default(),
            tls,
        })
    };
    let sqlite = format!("sqlite://{}/d.db?mode=rwc", dir.path().display());
    let probes = ritualist::app::doctor(
        &sqlite,
        None,
        &[gateway(TlsTrust::default()), gateway(with_ca(&ca.cert))],
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(probes.len(), 3, "{probes:?}");
    let e = probes[1]
        .result
        .as_ref()
        .expect_err("refused without ca_file");
    assert!(e.contains("sms.kannel.ca_file"), "{e}");
    let ok = probes[2].result.as_ref().expect("verified with ca_file");
    assert!(ok.contains("TLS verified"), "{ok}");
    // Who issued the gateway's certificate, and until when.
    assert!(
        ok.contains("issued by Ritualist test CA") && ok.contains("valid until 20"),
        "{ok}"
    );
    let err = refused.expect_err("an unknown private CA is refused");
    assert!(err.contains("unknown issuer"), "says what failed: {err}");
    assert!(err.contains("sms.kannel.ca_file"), "names the key: {err}");
    let ok = accepted.expect("accepted with ca_file");
    assert!(ok.contains("202"), "{ok}");
}

/// `doctor` opens each connection once and sends nothing: a reachable database, an
/// unreachable one, and the private-CA relay refused (with the fix) then accepted.
#[tokio::test]
async fn doctor_reports_each_connection_and_sends_nothing() {
    use ritualist::app::doctor;
    if !aiosmtpd_available() {
        return;
    }
    let dir = ScratchDir::new("doctor");
    let Some(ca) = TestCa::new(dir.path(), "ca") else {
        missing_peer("openssl", "cannot create a test CA");
        return;
    };
    let (cert, key) = ca
        .issue("relay", "IP:127.0.0.1")
        .expect("relay certificate");
    let ca_cert = ca.cert.clone();
    let sqlite = format!("sqlite://{}/doctor.db?mode=rwc", dir.path().display());
    let server = TlsSmtp::start_with_cert("starttls", &cert, &key, dir);
    let cfg = |tls: TlsTrust| pool_config(server.port, SmtpSecurity::Starttls, tls);

    let dead_pg = format!(
        "postgres://ritualist:hunter2@127.0.0.1:{}/x",
        crate::peers::free_port()
    );
    let probes = doctor(&dead_pg, Some(&cfg(TlsTrust::default())), &[]).await;
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert!(
        probes[0].result.is_err(),
        "unreachable database: {probes:?}"
    );
    assert!(
        !probes[0].what.contains("hunter2"),
        "password redacted: {probes:?}"
    );
    let relay = probes[1].result.as_ref().expect_err("unknown CA refused");
    assert!(relay.contains("email.smtp.ca_file"), "{relay}");

    let probes = doctor(&sqlite, Some(&cfg(with_ca(&ca_cert))), &[]).await;
    assert!(probes[0].result.is_ok(), "{probes:?}");
    let ok = probes[1].result.as_ref().expect("accepted with ca_file");
    assert!(
        ok.contains("TLS verified") && ok.contains("authenticated"),
        "{ok}"
    );
    assert!(
        ok.contains("issued by Ritualist test CA") && ok.contains("valid until 20"),
        "the relay's certificate, by issuer and expiry: {ok}"
    );
    assert!(
        server.wait_for(1, Duration::from_millis(500)).is_empty(),
        "doctor sends nothing"
    );
}

/// `ritualist doctor` on the command line: exit 0 when everything answers, 1 with a FAIL
/// line when the database does not (and its password stays out of the output).
#[test]
fn doctor_on_the_command_line_exits_1_on_a_dead_connection() {
    let d = crate::harness::newcomer_checkout();
    let out = crate::harness::ritualist(d.path(), &["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok    database"), "{stdout}");

    let dead = format!(
        "postgres://ritualist:hunter2@127.0.0.1:{}/x",
        crate::peers::free_port()
    );
    let out = crate::harness::ritualist_cmd(d.path())
        .arg("doctor")
        .env("RITUALIST_DATABASE_URL", &dead)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  database"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}
