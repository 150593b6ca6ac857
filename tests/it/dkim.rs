//! DKIM signing, checked by an independent verifier: keys made by openssl, messages sent
//! through the real pipeline (the local outbox and smtp-sink), each verified by dkimpy
//! (`tests/peers/dkim_verify.py`, Debian's python3-dkim) with the public key served as a local
//! DNS TXT record; a tampered copy must fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{Db, HEADER, REPO, TestApp, at, ritualist};
use crate::peers::{ScratchDir, SmtpSink, dumped_message_body, missing_peer};

const SELECTOR: &str = "rit2027";
const DOMAIN: &str = "floare.example";

/// The headers the signature must cover, lowercased as relaxed canonicalisation writes them.
const COVERED: [&str; 9] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// openssl and dkimpy, or `None` after a loud skip.
fn tools() -> Option<()> {
    let openssl = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !openssl {
        missing_peer("openssl", "`openssl version` does not run");
        return None;
    }
    let dkimpy = Command::new("/usr/bin/python3")
        .args(["-c", "import dkim, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !dkimpy {
        missing_peer(
            "dkimpy (python3-dkim)",
            "/usr/bin/python3 cannot import dkim and nacl",
        );
        return None;
    }
    Some(())
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private key (PEM) and its public key (DER) in `dir`: `rsa` is a 2048-bit PKCS#1 key,
/// `ed25519` a PKCS#8 one, exactly as docs/operator.md tells operators to make them.
fn keypair(dir: &Path, algorithm: &str) -> (PathBuf, PathBuf) {
    let pem = dir.join(format!("{algorithm}.pem"));
    let der = dir.join(format!("{algorithm}.pub.der"));
    let p = pem.to_str().unwrap();
    match algorithm {
        "rsa" => openssl(&["genrsa", "-traditional", "-out", p, "2048"]),
        _ => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
    }
    openssl(&[
        "pkey",
        "-in",
        p,
        "-pubout",
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    (pem, der)
}

fn dkim_section(algorithm: &str, key_file: &Path) -> String {
    format!(
        "  dkim:\n    domain: {DOMAIN}\n    selector: {SELECTOR}\n    algorithm: {algorithm}\n    key_file: {}\n",
        key_file.display()
    )
}

/// Three customers born on May 5, in English, Russian and Romanian (encoded subjects and names).
fn customers() -> String {
    format!(
        "{HEADER}\
         d1,Emma,Stone,emma@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
         d2,Анна,Иванова,anna@example.com,,ru,Europe/Bucharest,1985-05-05,email\n\
         d3,Ștefan,Țăranu,stefan@example.com,,ro,Europe/Bucharest,1979-05-05,email\n"
    )
}

/// Runs the verifier over `messages` (written to files in `dir`); its stdout and success.
fn verify(dir: &Path, algorithm: &str, der: &Path, messages: &[Vec<u8>]) -> (String, bool) {
    let mut files = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let f = dir.join(format!("m{i}.eml"));
        std::fs::write(&f, m).unwrap();
        files.push(f);
    }
    let out = Command::new("/usr/bin/python3")
        .arg(Path::new(REPO).join("tests/peers/dkim_verify.py"))
        .args([SELECTOR, DOMAIN, algorithm])
        .arg(der)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (format!("{stdout}{stderr}"), out.status.success())
}

/// The DKIM-Signature header of a message, unfolded.
fn signature_header(msg: &str) -> String {
    let mut lines = msg.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut h = lines
        .find(|l| l.starts_with("DKIM-Signature:"))
        .unwrap_or_else(|| panic!("no DKIM-Signature in {msg}"))
        .to_string();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            h.push_str(l);
        } else {
            break;
        }
    }
    h
}

fn tag<'a>(header: &'a str, name: &str) -> &'a str {
    header
        .split(';')
        .map(str::trim)
        .find_map(|t| t.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {header}"))
}

/// Checks the signature's tags, verifies every message, then tampers with a signed header
/// and with the body and expects both copies to fail.
fn assert_signed_and_verifiable(algorithm: &str, der: &Path, messages: &[Vec<u8>]) {
    assert_eq!(messages.len(), 3);
    let scratch = ScratchDir::new("dkim-verify");
    for m in messages {
        let text = String::from_utf8_lossy(m);
        let sig = signature_header(&text);
        assert_eq!(tag(&sig, "d"), DOMAIN, "{sig}");
        assert_eq!(tag(&sig, "s"), SELECTOR, "{sig}");
        assert_eq!(tag(&sig, "a"), format!("{algorithm}-sha256"), "{sig}");
        assert_eq!(tag(&sig, "c"), "relaxed/relaxed", "{sig}");
        let h: Vec<String> = tag(&sig, "h")
            .split(':')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        for want in COVERED {
            assert!(h.iter().any(|x| x == want), "h= lacks {want}: {sig}");
        }
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    }
    let (out, ok) = verify(scratch.path(), algorithm, der, messages);
    assert!(ok, "dkimpy rejected a signed message:\n{out}");
    assert_eq!(out.matches("PASS").count(), 3, "{out}");

    // A changed List-Unsubscribe (a signed header) and a changed body must both fail.
    let original = String::from_utf8_lossy(&messages[0]).to_string();
    let header_tampered = original.replacen(
        "List-Unsubscribe: <https://floare.example/",
        "List-Unsubscribe: <https://evil.example/",
        1,
    );
    assert_ne!(header_tampered, original);
    let body_tampered = {
        let at = original
            .find("\r\n\r\n")
            .or_else(|| original.find("\n\n"))
            .unwrap();
        let (head, body) = original.split_at(at);
        let body = body.replacen("Floare", "Fl0are", 1);
        assert_ne!(body, original[at..], "the body names the shop");
        format!("{head}{body}")
    };
    let (out, ok) = verify(
        scratch.path(),
        algorithm,
        der,
        &[
            header_tampered.into_bytes(),
            body_tampered.into_bytes(),
            messages[1].clone(),
        ],
    );
    assert!(!ok, "a tampered message verified:\n{out}");
    assert_eq!(out.matches("FAIL").count(), 2, "{out}");
    assert_eq!(out.matches("PASS").count(), 1, "{out}");
}

#[tokio::test]
async fn ed25519_signed_emails_in_the_outbox_verify_with_dkimpy() {
    let Some(()) = tools() else { return };
    let keys = ScratchDir::new("dkim-keys");
    let (pem, der) = keypair(keys.path(), "ed25519");
    let t = TestApp::start(Db::Sqlite, &dkim_section("ed25519", &pem))
        .await
        .unwrap();
    assert!(t.customers(&customers()).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(
        (d.sent, d.failed),
        (3, 0),
        "{d:?} {:?}",
        t.rows()
            .await
            .iter()
            .map(|r| r.last_error.clone())
            .collect::<Vec<_>>()
    );
    let emails: Vec<Vec<u8>> = t
        .outbox_emails()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    assert_signed_and_verifiable("ed25519", &der, &emails);
}

#[tokio::test]
async fn rsa_signed_emails_verify_as_smtp_sink_received_them() {
    let Some(()) = tools() else { return };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let keys = ScratchDir::new("dkim-keys");
    let (pem, der) = keypair(keys.path(), "rsa");
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 5\n{}",
        sink.port(),
        dkim_section("rsa", &pem)
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    assert!(t.customers(&customers()).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(
        (d.sent, d.failed),
        (3, 0),
        "{d:?} {:?}",
        t.rows()
            .await
            .iter()
            .map(|r| r.last_error.clone())
            .collect::<Vec<_>>()
    );
    let dumps: Vec<Vec<u8>> = sink
        .wait_for(3, Duration::from_secs(10))
        .iter()
        .map(|d| dumped_message_body(d).to_vec())
        .collect();
    assert_signed_and_verifiable("rsa", &der, &dumps);
}

#[test]
fn a_bad_dkim_key_stops_startup_naming_the_file() {
    let Some(()) = tools() else { return };
    let dir = crate::harness::newcomer_checkout();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    // An RSA key in PKCS#8 (openssl 3's default) instead of PKCS#1, and a truncated Ed25519 key.
    let pkcs8 = keys.join("pkcs8.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "rsa",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pkcs8.to_str().unwrap(),
    ]);
    let broken = keys.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cfg_path = dir.path().join("config/ritualist.yaml");
    let base = std::fs::read_to_string(&cfg_path).unwrap();
    for (algorithm, file, hint) in [
        ("rsa", &pkcs8, "-traditional"),
        ("ed25519", &broken, "genpkey -algorithm ed25519"),
    ] {
        assert!(base.contains("\ndelivery:\n"));
        let text = base.replacen(
            "\ndelivery:\n",
            &format!("\ndelivery:\n{}", dkim_section(algorithm, file)),
            1,
        );
        std::fs::write(&cfg_path, text).unwrap();
        let out = ritualist(dir.path(), &["run", "--once"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains(hint), "{stderr}");
        assert!(
            !dir.path().join("outbox/email").exists(),
            "nothing may be sent: {stderr}"
        );
        let check = ritualist(dir.path(), &["check"]);
        assert_eq!(check.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&check.stderr).contains(file.to_str().unwrap()),
            "check names the key file too"
        );
        std::fs::write(&cfg_path, &base).unwrap();
    }
}
