//! The email providers' webhooks (`/webhooks/ses`, `/postmark`, `/sendgrid`, `/mailgun`)
//! against the real public server: for each provider a correctly signed payload (signed here
//! by `openssl` with test keys, the payloads being the providers' documented examples in
//! `tests/fixtures/webhooks/`) opts the customer out or sets the outcome; a wrongly signed one
//! is refused and changes nothing; the same payload again answers 200 and changes nothing
//! twice; a body that is not JSON gets 400; an unconfigured provider 404.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ritualist::app::App;
use ritualist::clock::ManualClock;
use ritualist::config::{MailgunHook, PostmarkHook, Secret, SendgridHook, SesHook, WebhooksConfig};
use ritualist::domain::Outcome;
use tokio::sync::oneshot;

use crate::harness::{BOTH, Db, HEADER, TestApp, at};
use crate::peers::missing_peer;

const DELIVERY: &str = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n\
     http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n\
     bounces:\n  return_path: bounces@floare.example\n";

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses-feedback";
const NOW: &str = "2027-05-05T12:00:00Z";

/// A customer mailed once: the app (with a manual clock at [`NOW`]), the delivery's id,
/// customer id, address and Message-ID.
struct Sent {
    t: TestApp,
    clock: Arc<ManualClock>,
    id: i64,
    customer: i64,
    email: String,
    message_id: String,
}

async fn sent(db: Db) -> Option<Sent> {
    sent_with(db, DELIVERY).await
}

/// [`sent`] with the config's `delivery:` lines and what follows them.
async fn sent_with(db: Db, delivery: &str) -> Option<Sent> {
    let clock = ManualClock::shared(at(NOW));
    let t = TestApp::start_with_clock(db, delivery, clock.clone()).await?;
    let csv =
        format!("{HEADER}w1,Emma,Test,emma@example.com,,en,Europe/Bucharest,1990-05-05,email\n");
    assert!(t.customers(&csv).await.is_empty());
    t.app.tick(at(NOW)).await.unwrap();
    assert_eq!(t.app.drain(at(NOW)).await.unwrap().sent, 1);
    let row = t.rows().await.remove(0);
    Some(Sent {
        id: row.id,
        customer: row.customer_id,
        email: row.recipient.clone().unwrap(),
        message_id: row.message_id.clone().unwrap(),
        t,
        clock,
    })
}

/// The public server of a second App on `s`'s database and clock, with `hooks`.
async fn serve(s: &Sent, hooks: WebhooksConfig) -> (SocketAddr, oneshot::Sender<()>) {
    let mut cfg = s.t.app.cfg.clone();
    cfg.bounces.webhooks = hooks;
    let app = Arc::new(App::open_with_clock(cfg, s.clock.clone()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(ritualist::http::serve_public(app, listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    ritualist::channel::init_tls();
    let mut req = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A fixture with its placeholders filled in.
fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    let mut s = std::fs::read_to_string(path).unwrap();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!s.contains("{{"), "{name}: a placeholder is left: {s}");
    s
}

/// Runs openssl in `dir`; its stdout. `None` (after a loud skip) when openssl is missing.
fn openssl(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) => o,
        Err(e) => {
            missing_peer("openssl", &e.to_string());
            return None;
        }
    };
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(out.stdout)
}

/// base64 of `openssl dgst -<digest> -sign <key>` over `data`.
fn sign(dir: &Path, digest: &str, key: &str, data: &[u8]) -> Option<String> {
    let file = dir.join(format!("to-sign-{}", rand_suffix()));
    std::fs::write(&file, data).unwrap();
    let sig = openssl(
        dir,
        &[
            "dgst",
            &format!("-{digest}"),
            "-sign",
            key,
            file.to_str().unwrap(),
        ],
    )?;
    Some(STANDARD.encode(sig))
}

fn rand_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// The consent records of `s`'s customer and the number of consent events.
async fn consent(s: &Sent) -> (Vec<(String, bool, String)>, usize) {
    let c = s.t.app.store.consents_of(s.customer).await.unwrap();
    let n =
        s.t.app
            .store
            .consent_events(s.customer)
            .await
            .unwrap()
            .len();
    (c, n)
}

async fn feedback_count(s: &Sent) -> usize {
    s.t.app
        .store
        .feedback_events(None, 0, 1000)
        .await
        .unwrap()
        .len()
}

async fn outcome(s: &Sent) -> Option<Outcome> {
    s.t.app
        .store
        .delivery_outcome(s.id)
        .await
        .unwrap()
        .map(|o| o.0)
}

// ---------------------------------------------------------------------------------------------
// Amazon SES through SNS
// ---------------------------------------------------------------------------------------------

/// An SNS envelope for `message`, signed (SignatureVersion `version`) with `key`.
fn sns_envelope(dir: &Path, key: &str, version: &str, id: &str, message: &str) -> Option<String> {
    let ts = "2027-05-05T12:00:00.000Z";
    let to_sign = format!(
        "Message\n{message}\nMessageId\n{id}\nTimestamp\n{ts}\nTopicArn\n{TOPIC}\nType\nNotification\n"
    );
    let digest = if version == "1" { "sha1" } else { "sha256" };
    let sig = sign(dir, digest, key, to_sign.as_bytes())?;
    Some(
        serde_json::json!({
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": TOPIC,
            "Message": message,
            "Timestamp": ts,
            "SignatureVersion": version,
            "Signature": sig,
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
        })
        .to_string(),
    )
}

/// A self-signed RSA certificate standing in for SNS's: (key file, certificate PEM).
fn sns_cert(dir: &Path, name: &str) -> Option<(String, Vec<u8>)> {
    let key = format!("{name}.key");
    let crt = format!("{name}.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "3650",
            "-subj",
            "/CN=sns.amazonaws.com",
        ],
    )?;
    Some((
        dir.join(&key).display().to_string(),
        std::fs::read(dir.join(&crt)).unwrap(),
    ))
}

fn ses_hooks(pem: Vec<u8>) -> WebhooksConfig {
    WebhooksConfig {
        ses: Some(SesHook {
            topic_arns: vec![TOPIC.to_string()],
            certificate_pem: Some(pem),
        }),
        ..WebhooksConfig::default()
    }
}

#[tokio::test]
async fn ses_bounce_signed_by_sns_opts_the_customer_out_once() {
    for db in BOTH {
        let Some(s) = sent(db).await else { continue };
        let dir = s.t.dir.clone();
        let Some((key, pem)) = sns_cert(&dir, "sns") else {
            return;
        };
        let Some((other_key, _)) = sns_cert(&dir, "other") else {
            return;
        };
        let (addr, _stop) = serve(&s, ses_hooks(pem)).await;
        // Matched by the VERP return path alone: SES's Message-ID is its own.
        let rp = s.t.app.return_path(s.id);
        let message = fixture(
            "ses-bounce.json",
            &[
                ("EMAIL", &s.email),
                ("RETURN_PATH", &rp),
                ("MESSAGE_ID", "<00000138111222aa@email.amazonses.com>"),
            ],
        );
        let id = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324";

        // Signed by another key, or the message changed after signing: refused.
        let forged = sns_envelope(&dir, &other_key, "1", id, &message).unwrap();
        assert_eq!(post(addr, "/webhooks/ses", &[], &forged).await.0, 403);
        let good = sns_envelope(&dir, &key, "1", id, &message).unwrap();
        let tampered = good.replace("Permanent", "Transient");
        assert_ne!(tampered, good);
        assert_eq!(post(addr, "/webhooks/ses", &[], &tampered).await.0, 403);
        // Another topic: refused before anything is checked.
        let other_topic = good.replace(TOPIC, "arn:aws:sns:us-east-1:999999999999:x");
        assert_eq!(post(addr, "/webhooks/ses", &[], &other_topic).await.0, 403);
        assert_eq!(consent(&s).await, (vec![], 0), "{db:?}");
        assert_eq!(feedback_count(&s).await, 0);

        let (status, body) = post(addr, "/webhooks/ses", &[], &good).await;
        assert_eq!(
            (status, body.contains("\"applied\":1")),
            (200, true),
            "{db:?} {body}"
        );
        let expect = vec![("channel:email".to_string(), true, "bounce".to_string())];
        assert_eq!(consent(&s).await, (expect.clone(), 1), "{db:?}");
        assert_eq!(outcome(&s).await, Some(Outcome::Bounced));

        // SNS retries with the same MessageId: nothing changes twice.
        let (status, body) = post(addr, "/webhooks/ses", &[], &good).await;
        assert_eq!(
            (status, body.contains("\"duplicate\":1")),
            (200, true),
            "{body}"
        );
        assert_eq!(consent(&s).await, (expect, 1), "{db:?}");
        assert_eq!(feedback_count(&s).await, 1);

        assert_eq!(post(addr, "/webhooks/ses", &[], "{\"Type\":").await.0, 400);
        assert_eq!(post(addr, "/webhooks/ses", &[], "[]").await.0, 400);
    }
}

#[tokio::test]
async fn ses_complaint_with_signature_version_2_matches_by_message_id() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let dir = s.t.dir.clone();
    let Some((key, pem)) = sns_cert(&dir, "sns") else {
        return;
    };
    let (addr, _stop) = serve(&s, ses_hooks(pem)).await;
    // A return path that is not ours: the Message-ID names the delivery.
    let message = fixture(
        "ses-complaint.json",
        &[
            ("EMAIL", &s.email),
            ("RETURN_PATH", "hello@floare.example"),
            ("MESSAGE_ID", &format!("<{}>", s.message_id)),
        ],
    );
    let v1_sig_as_v2 = sns_envelope(&dir, &key, "1", "c-1", &message)
        .unwrap()
        .replace("\"SignatureVersion\":\"1\"", "\"SignatureVersion\":\"2\"");
    assert_eq!(post(addr, "/webhooks/ses", &[], &v1_sig_as_v2).await.0, 403);
    assert_eq!(consent(&s).await, (vec![], 0));
    let good = sns_envelope(&dir, &key, "2", "c-1", &message).unwrap();
    assert_eq!(post(addr, "/webhooks/ses", &[], &good).await.0, 200);
    assert_eq!(
        consent(&s).await,
        (
            vec![("channel:email".to_string(), true, "complaint".to_string())],
            1
        )
    );
    assert_eq!(outcome(&s).await, Some(Outcome::Complained));
}

/// A SubscriptionConfirmation as SNS posts it when the subscription is created, signed with
/// `key` (SignatureVersion 1, the fields a confirmation signs).
fn sns_confirmation(dir: &Path, key: &str) -> Option<String> {
    let (id, ts, token) = (
        "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "2027-05-05T12:00:00.000Z",
        "2336412f37",
    );
    let message = format!(
        "You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
    );
    let url = format!(
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"
    );
    let to_sign = format!(
        "Message\n{message}\nMessageId\n{id}\nSubscribeURL\n{url}\nTimestamp\n{ts}\nToken\n{token}\nTopicArn\n{TOPIC}\nType\nSubscriptionConfirmation\n"
    );
    let sig = sign(dir, "sha1", key, to_sign.as_bytes())?;
    Some(
        serde_json::json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": id,
            "Token": token,
            "TopicArn": TOPIC,
            "Message": message,
            "SubscribeURL": url,
            "Timestamp": ts,
            "SignatureVersion": "1",
            "Signature": sig,
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
        })
        .to_string(),
    )
}

#[tokio::test]
async fn an_sns_subscription_confirmation_is_checked_and_records_nothing() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let dir = s.t.dir.clone();
    let Some((key, pem)) = sns_cert(&dir, "sns") else {
        return;
    };
    let Some((other_key, _)) = sns_cert(&dir, "other") else {
        return;
    };
    let (addr, _stop) = serve(&s, ses_hooks(pem)).await;
    let good = sns_confirmation(&dir, &key).unwrap();
    let (status, text) = post(addr, "/webhooks/ses", &[], &good).await;
    assert_eq!((status, text.contains("logged")), (200, true), "{text}");
    let forged = sns_confirmation(&dir, &other_key).unwrap();
    assert_eq!(post(addr, "/webhooks/ses", &[], &forged).await.0, 403);
    // The Token is signed: another one breaks the signature.
    let retokened = good.replace("\"Token\":\"2336412f37\"", "\"Token\":\"2336412f38\"");
    assert_ne!(retokened, good);
    assert_eq!(post(addr, "/webhooks/ses", &[], &retokened).await.0, 403);
    assert_eq!(feedback_count(&s).await, 0);
    assert_eq!(consent(&s).await, (vec![], 0));
}

// ---------------------------------------------------------------------------------------------
// Postmark
// ---------------------------------------------------------------------------------------------

fn basic(user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![(
        "authorization",
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))),
    )]
}

#[tokio::test]
async fn postmark_bounce_behind_basic_auth_opts_the_customer_out_once() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let hooks = WebhooksConfig {
        postmark: Some(PostmarkHook {
            user: "postmark".into(),
            password: Secret::new("pm-pass-0123"),
        }),
        ..WebhooksConfig::default()
    };
    let (addr, _stop) = serve(&s, hooks).await;
    let body = fixture(
        "postmark-bounce.json",
        &[("EMAIL", &s.email), ("MESSAGE_ID", &s.message_id)],
    );
    for wrong in [
        vec![],
        basic("postmark", "pm-pass-012"),
        basic("admin", "pm-pass-0123"),
    ] {
        assert_eq!(post(addr, "/webhooks/postmark", &wrong, &body).await.0, 401);
    }
    assert_eq!(consent(&s).await, (vec![], 0));
    let auth = basic("postmark", "pm-pass-0123");
    for _ in 0..2 {
        assert_eq!(post(addr, "/webhooks/postmark", &auth, &body).await.0, 200);
        assert_eq!(
            consent(&s).await,
            (
                vec![("channel:email".to_string(), true, "bounce".to_string())],
                1
            )
        );
        assert_eq!(feedback_count(&s).await, 1);
    }
    assert_eq!(outcome(&s).await, Some(Outcome::Bounced));
    assert_eq!(
        post(addr, "/webhooks/postmark", &auth, "{\"RecordType\"")
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn postmark_delivery_with_a_token_in_its_metadata_sets_the_outcome() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let hooks = WebhooksConfig {
        postmark: Some(PostmarkHook {
            user: "postmark".into(),
            password: Secret::new("pm-pass-0123"),
        }),
        ..WebhooksConfig::default()
    };
    let (addr, _stop) = serve(&s, hooks).await;
    let token = s.t.app.link_keys.delivery_token(s.id);
    let body = fixture(
        "postmark-delivery.json",
        &[("EMAIL", &s.email), ("TOKEN", &token)],
    );
    let auth = basic("postmark", "pm-pass-0123");
    assert_eq!(post(addr, "/webhooks/postmark", &auth, &body).await.0, 200);
    assert_eq!(outcome(&s).await, Some(Outcome::Delivered));
    assert_eq!(consent(&s).await, (vec![], 0));
    assert_eq!(feedback_count(&s).await, 1);
    // A forged token, or none, names nothing: a receipt about no known message is not even
    // kept for review, and changes nothing.
    for (token, id) in [("d1-0000000000", "another"), ("", "third")] {
        let other = fixture(
            "postmark-delivery.json",
            &[("EMAIL", &s.email), ("TOKEN", token)],
        )
        .replace("00000000-0000-0000-0000-000000000000", id);
        let (status, text) = post(addr, "/webhooks/postmark", &auth, &other).await;
        assert_eq!(
            (status, text.contains("\"skipped\":1")),
            (200, true),
            "{text}"
        );
    }
    assert_eq!(feedback_count(&s).await, 1);
    assert_eq!(outcome(&s).await, Some(Outcome::Delivered));
}

// ---------------------------------------------------------------------------------------------
// SendGrid
// ---------------------------------------------------------------------------------------------

/// A P-256 key: (private key file, base64 DER public key).
fn ec_key(dir: &Path, name: &str) -> Option<(String, String)> {
    let file = format!("{name}.pem");
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &file,
        ],
    )?;
    let der = openssl(dir, &["ec", "-in", &file, "-pubout", "-outform", "DER"])?;
    Some((dir.join(&file).display().to_string(), STANDARD.encode(der)))
}

fn sendgrid_headers(dir: &Path, key: &str, ts: &str, body: &str) -> Vec<(&'static str, String)> {
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(body.as_bytes());
    vec![
        (
            "x-twilio-email-event-webhook-signature",
            sign(dir, "sha256", key, &signed).unwrap(),
        ),
        ("x-twilio-email-event-webhook-timestamp", ts.to_string()),
    ]
}

#[tokio::test]
async fn sendgrid_signed_spam_report_opts_the_customer_out_once() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let dir = s.t.dir.clone();
    let Some((key, public)) = ec_key(&dir, "sendgrid") else {
        return;
    };
    let Some((other, _)) = ec_key(&dir, "other") else {
        return;
    };
    let hooks = WebhooksConfig {
        sendgrid: Some(SendgridHook { public_key: public }),
        ..WebhooksConfig::default()
    };
    let (addr, _stop) = serve(&s, hooks).await;
    let body = fixture(
        "sendgrid-events.json",
        &[("EMAIL", &s.email), ("MESSAGE_ID", &s.message_id)],
    );
    let ts = at(NOW).as_second().to_string();

    let forged = sendgrid_headers(&dir, &other, &ts, &body);
    assert_eq!(
        post(addr, "/webhooks/sendgrid", &forged, &body).await.0,
        403
    );
    let good = sendgrid_headers(&dir, &key, &ts, &body);
    let later = sendgrid_headers(&dir, &key, &ts, &body)
        .into_iter()
        .map(|(k, v)| {
            if k.ends_with("timestamp") {
                (k, format!("{v}1"))
            } else {
                (k, v)
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(post(addr, "/webhooks/sendgrid", &later, &body).await.0, 403);
    assert_eq!(post(addr, "/webhooks/sendgrid", &[], &body).await.0, 403);
    assert_eq!(
        post(
            addr,
            "/webhooks/sendgrid",
            &good,
            &body.replace("spamreport", "delivered")
        )
        .await
        .0,
        403
    );
    assert_eq!(consent(&s).await, (vec![], 0));

    for round in 0..2 {
        let (status, text) = post(addr, "/webhooks/sendgrid", &good, &body).await;
        assert_eq!(status, 200, "{text}");
        if round == 0 {
            assert!(text.contains("\"applied\":2"), "{text}");
        } else {
            assert!(text.contains("\"duplicate\":2"), "{text}");
        }
        assert_eq!(
            consent(&s).await,
            (
                vec![("channel:email".to_string(), true, "complaint".to_string())],
                1
            )
        );
        // delivered + spamreport; the open is skipped.
        assert_eq!(feedback_count(&s).await, 2);
    }
    // The complaint outranks the delivery, in whatever order they came.
    assert_eq!(outcome(&s).await, Some(Outcome::Complained));
    // The Event Webhook reports all of the account's mail: events about a message ritualist
    // did not send (SendGrid's own smtp-id) are skipped, not kept for review.
    let foreign = body
        .replace(&s.message_id, "14c5d75ce93.dfd.64b469@ismtpd-555")
        .replace("==\"", "=x\"");
    let (status, text) = post(
        addr,
        "/webhooks/sendgrid",
        &sendgrid_headers(&dir, &key, &ts, &foreign),
        &foreign,
    )
    .await;
    assert_eq!(
        (status, text.contains("\"skipped\":2")),
        (200, true),
        "{text}"
    );
    assert_eq!(feedback_count(&s).await, 2);
    let bad = "[{\"event\":";
    assert_eq!(
        post(
            addr,
            "/webhooks/sendgrid",
            &sendgrid_headers(&dir, &key, &ts, bad),
            bad
        )
        .await
        .0,
        400
    );
}

/// A batch larger than `http.body_limit_bytes` (16 KiB here) is taken: webhooks allow 1 MiB.
#[tokio::test]
async fn a_sendgrid_batch_beyond_the_http_body_limit_is_taken() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let dir = s.t.dir.clone();
    let Some((key, public)) = ec_key(&dir, "sendgrid") else {
        return;
    };
    let hooks = WebhooksConfig {
        sendgrid: Some(SendgridHook { public_key: public }),
        ..WebhooksConfig::default()
    };
    let (addr, _stop) = serve(&s, hooks).await;
    let events: Vec<serde_json::Value> = (0..300)
        .map(|i| {
            serde_json::json!({
                "email": format!("other{i}@example.com"),
                "timestamp": 1513299569,
                "smtp-id": format!("<14c5d75ce93.dfd.{i}@ismtpd-555>"),
                "event": "delivered",
                "sg_event_id": format!("big-{i}"),
                "response": "250 OK"
            })
        })
        .collect();
    let body = serde_json::Value::from(events).to_string();
    assert!(body.len() > 32 * 1024, "{}", body.len());
    let ts = at(NOW).as_second().to_string();
    let headers = sendgrid_headers(&dir, &key, &ts, &body);
    let (status, text) = post(addr, "/webhooks/sendgrid", &headers, &body).await;
    assert_eq!(
        (status, text.contains("\"skipped\":300")),
        (200, true),
        "{text}"
    );
    // The rest of the server keeps its own limit (refused before anything else).
    let (status, _) = post(addr, "/api/customers", &[], &body).await;
    assert_eq!(status, 413);
}

// ---------------------------------------------------------------------------------------------
// Mailgun
// ---------------------------------------------------------------------------------------------

const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";

/// The fixture signed with `key` at `ts` with `token`.
fn mailgun_body(dir: &Path, s: &Sent, key: &str, ts: i64, token: &str) -> Option<String> {
    let file = dir.join(format!("mg-{}", rand_suffix()));
    std::fs::write(&file, format!("{ts}{token}")).unwrap();
    let out = openssl(
        dir,
        &[
            "dgst",
            "-sha256",
            "-hmac",
            key,
            "-hex",
            "-r",
            file.to_str().unwrap(),
        ],
    )?;
    let hex = String::from_utf8(out).unwrap();
    let sig = hex.split_whitespace().next().unwrap().to_string();
    Some(fixture(
        "mailgun-failed.json",
        &[
            ("TIMESTAMP", &ts.to_string()),
            ("MG_TOKEN", token),
            ("SIGNATURE", &sig),
            ("EMAIL", &s.email),
            ("MESSAGE_ID", &s.message_id),
        ],
    ))
}

#[tokio::test]
async fn mailgun_signed_permanent_failure_opts_the_customer_out_once() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let dir = s.t.dir.clone();
    let hooks = WebhooksConfig {
        mailgun: Some(MailgunHook {
            signing_key: Secret::new(MAILGUN_KEY),
        }),
        ..WebhooksConfig::default()
    };
    let (addr, _stop) = serve(&s, hooks).await;
    let now = at(NOW).as_second();
    let token = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123";

    let Some(wrong_key) = mailgun_body(&dir, &s, "key-wrong", now, token) else {
        return;
    };
    assert_eq!(
        post(addr, "/webhooks/mailgun", &[], &wrong_key).await.0,
        403
    );
    // Signed right but more than 5 minutes old (by the App's clock): a replay.
    let stale = mailgun_body(&dir, &s, MAILGUN_KEY, now - 301, token).unwrap();
    assert_eq!(post(addr, "/webhooks/mailgun", &[], &stale).await.0, 403);
    let good = mailgun_body(&dir, &s, MAILGUN_KEY, now - 30, token).unwrap();
    let tampered = good.replace("\"signature\": \"", "\"signature\": \"0");
    assert_eq!(post(addr, "/webhooks/mailgun", &[], &tampered).await.0, 403);
    assert_eq!(consent(&s).await, (vec![], 0));

    let (status, text) = post(addr, "/webhooks/mailgun", &[], &good).await;
    assert_eq!(
        (status, text.contains("\"applied\":1")),
        (200, true),
        "{text}"
    );
    let expect = (
        vec![("channel:email".to_string(), true, "bounce".to_string())],
        1,
    );
    assert_eq!(consent(&s).await, expect);
    assert_eq!(outcome(&s).await, Some(Outcome::Bounced));
    // The same request again (same token): 200, nothing changes.
    assert_eq!(post(addr, "/webhooks/mailgun", &[], &good).await.0, 200);
    // A new signature (Mailgun's retry) of the same event: recorded once by its id.
    s.clock.advance(Duration::from_secs(60));
    let retry = mailgun_body(
        &dir,
        &s,
        MAILGUN_KEY,
        now + 60,
        "another-token-0000000000000000000000000000000000",
    )
    .unwrap();
    let (status, text) = post(addr, "/webhooks/mailgun", &[], &retry).await;
    assert_eq!(
        (status, text.contains("\"duplicate\":1")),
        (200, true),
        "{text}"
    );
    assert_eq!(consent(&s).await, expect);
    assert_eq!(feedback_count(&s).await, 1);
    assert_eq!(
        post(addr, "/webhooks/mailgun", &[], "{\"signature\"")
            .await
            .0,
        400
    );
}

/// Runs one SQL statement on `s`'s SQLite file with the `sqlite3` client.
fn sqlite(s: &Sent, statement: &str) -> Option<()> {
    // The server's pool may still be ending the failed request's transaction when the
    // 500 arrives; like any client sharing the file, wait for its lock instead of failing.
    let out = match Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .arg(s.t.dir.join("data/ritualist.db"))
        .arg(statement)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            missing_peer("sqlite3", &e.to_string());
            return None;
        }
    };
    assert!(
        out.status.success(),
        "{statement}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(())
}

/// A database error answers 500 and forgets the request (Mailgun's token included), so the
/// provider's retry of the very same request is recorded once the database is back.
#[tokio::test]
async fn a_database_error_answers_500_and_the_retry_is_recorded() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let dir = s.t.dir.clone();
    let hooks = WebhooksConfig {
        mailgun: Some(MailgunHook {
            signing_key: Secret::new(MAILGUN_KEY),
        }),
        ..WebhooksConfig::default()
    };
    let (addr, _stop) = serve(&s, hooks).await;
    let now = at(NOW).as_second();
    let Some(body) = mailgun_body(
        &dir,
        &s,
        MAILGUN_KEY,
        now,
        "tok-500-000000000000000000000000000000000000000000",
    ) else {
        return;
    };
    let Some(()) = sqlite(
        &s,
        "ALTER TABLE feedback_events RENAME TO feedback_events_away",
    ) else {
        return;
    };
    assert_eq!(post(addr, "/webhooks/mailgun", &[], &body).await.0, 500);
    sqlite(
        &s,
        "ALTER TABLE feedback_events_away RENAME TO feedback_events",
    )
    .unwrap();
    assert_eq!(consent(&s).await, (vec![], 0));
    let (status, text) = post(addr, "/webhooks/mailgun", &[], &body).await;
    assert_eq!(
        (status, text.contains("\"applied\":1")),
        (200, true),
        "{text}"
    );
    assert_eq!(
        consent(&s).await,
        (
            vec![("channel:email".to_string(), true, "bounce".to_string())],
            1
        )
    );
}

#[tokio::test]
async fn every_webhook_is_404_until_configured() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let (addr, _stop) = serve(&s, WebhooksConfig::default()).await;
    for p in ["ses", "postmark", "sendgrid", "mailgun"] {
        let (status, _) = post(addr, &format!("/webhooks/{p}"), &[], "{}").await;
        assert_eq!(status, 404, "{p}");
    }
    assert_eq!(feedback_count(&s).await, 0);
}

/// Postmark, SendGrid and Mailgun name a message by metadata the email carries (and strip it
/// before it goes on): with their webhooks configured, each email ritualist sends carries the
/// delivery's signed token under `ritualist_delivery`, and Postmark's delivery event for that
/// email then finds its delivery.
#[tokio::test]
async fn each_configured_service_gets_the_delivery_token_in_the_email() {
    // The SendGrid test key of its own library; PATH stands in for the secret variables.
    let key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    let yaml = format!(
        "{DELIVERY}  webhooks:\n    postmark:\n      user: postmark\n      password_env: PATH\n    \
         sendgrid:\n      public_key: {key}\n    mailgun:\n      signing_key_env: PATH\n"
    );
    let Some(s) = sent_with(Db::Sqlite, &yaml).await else {
        return;
    };
    let token = s.t.app.link_keys.delivery_token(s.id);
    let emails = s.t.outbox_emails();
    let email = &emails[0];
    assert!(
        email.contains(&format!("X-PM-Metadata-ritualist_delivery: {token}\r\n")),
        "{email}"
    );
    assert!(
        email.contains(&format!(
            "X-SMTPAPI: {{\"unique_args\":{{\"ritualist_delivery\":\"{token}\"}}}}\r\n"
        )),
        "{email}"
    );
    assert!(
        email.contains(&format!(
            "X-Mailgun-Variables: {{\"ritualist_delivery\":\"{token}\"}}\r\n"
        )),
        "{email}"
    );
    // Postmark's delivery event with that metadata sets the outcome.
    let password = std::env::var("PATH").unwrap();
    let (addr, _stop) = serve(&s, s.t.app.cfg.bounces.webhooks.clone()).await;
    let body = fixture(
        "postmark-delivery.json",
        &[("EMAIL", &s.email), ("TOKEN", &token)],
    );
    let auth = basic("postmark", &password);
    assert_eq!(post(addr, "/webhooks/postmark", &auth, &body).await.0, 200);
    assert_eq!(outcome(&s).await, Some(Outcome::Delivered));
}

/// Without webhooks configured the email carries none of those headers.
#[tokio::test]
async fn no_service_metadata_without_its_webhook() {
    let Some(s) = sent(Db::Sqlite).await else {
        return;
    };
    let emails = s.t.outbox_emails();
    for header in ["X-PM-Metadata", "X-SMTPAPI", "X-Mailgun-Variables"] {
        assert!(!emails[0].contains(header), "{header}: {}", emails[0]);
    }
}
