//! SMS delivery receipts (#27): every message sent through a gateway carries a callback URL
//! naming its delivery by a signed token; the receipts that come back are recorded once,
//! give the delivery its later outcome, and a dead number opts the customer out of SMS.
//!
//! - Twilio: a Twilio-shaped Messages endpoint served in-process takes the messages (and the
//!   `StatusCallback` each one carries); the status callbacks are signed as Twilio signs them.
//! - Kannel: a real bearerbox + smsbox + fakesmsc. Kannel's fake SMSC acknowledges every
//!   message it takes with a "delivered" report (type 1) and bearerbox adds the "taken by the
//!   SMSC" one (type 8), so the `dlr-url` is fetched by smsbox itself. The fake SMSC never
//!   reports a failure: failures are driven with the requests smsbox makes for one (the
//!   `dlr-url` with `%d` = 2 or 16 and `%A` the SMSC's answer, as Kannel's user guide
//!   describes).
//! - The generic gateway: its `{receipt_url}` placeholder, and JSON receipts with the
//!   optional bearer key.
//!
//! Plus `/healthz` turning `degraded` when the complaint rate of the last 7 days passes 0.3 %,
//! and `/metrics` and `ritualist report` showing the counts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use ritualist::app::App;
use ritualist::domain::{Channel, DeliveryRef, Feedback, FeedbackKind, FeedbackSource};
use tokio::sync::oneshot;

use crate::harness::{BOTH, Db, HEADER, TestApp, at, ritualist};

const PUBLIC: &str = "https://shop.example/r";
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "receipt-test-auth-token";

/// The public server of a second `App` on the same database, on `listener`; stopped when the
/// returned sender is dropped.
async fn serve_on(t: &TestApp, listener: tokio::net::TcpListener) -> oneshot::Sender<()> {
    let app = App::open_with_clock(t.app.cfg.clone(), t.app.clock.clone());
    let app = Arc::new(app.await.unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(ritualist::http::serve_public(app, listener, async move {
        let _ = rx.await;
    }));
    tx
}

async fn serve(t: &TestApp) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, serve_on(t, listener).await)
}

fn client() -> reqwest::Client {
    ritualist::channel::init_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A gateway served in-process: records each request's path, query and body, answers 201
/// with a Twilio-style `sid` (`SM<n>`), or `{"messages":[{"status":0}]}` to a JSON body.
#[derive(Clone, Default)]
struct Gateway {
    got: Arc<Mutex<Vec<Request>>>,
}

/// One request to the gateway: path, query, body.
type Request = (String, String, Vec<u8>);

impl Gateway {
    async fn start() -> (Gateway, String, oneshot::Sender<()>) {
        let g = Gateway::default();
        let router = Router::new()
            .fallback(
                |State(g): State<Gateway>, uri: Uri, body: Bytes| async move {
                    let mut got = g.got.lock().unwrap();
                    got.push((
                        uri.path().to_string(),
                        uri.query().unwrap_or("").to_string(),
                        body.to_vec(),
                    ));
                    let n = got.len();
                    if body.starts_with(b"{") {
                        (
                            axum::http::StatusCode::OK,
                            r#"{"messages":[{"status":0}]}"#.to_string(),
                        )
                    } else {
                        (
                            axum::http::StatusCode::CREATED,
                            format!(r#"{{"sid":"SM{n:032}","status":"queued"}}"#),
                        )
                    }
                },
            )
            .with_state(g.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        (g, url, tx)
    }

    /// Each form-encoded request's fields.
    fn forms(&self) -> Vec<Vec<(String, String)>> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| form_urlencoded::parse(b).into_owned().collect())
            .collect()
    }

    fn jsons(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, _, b)| serde_json::from_slice(b).ok())
            .collect()
    }
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> &'a str {
    form.iter()
        .find(|(a, _)| a == k)
        .map_or("", |(_, v)| v.as_str())
}

/// Twilio's signature of a form post to `url` (written here, independent of the product's).
fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn encode(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// July-7 birthdays with a phone only.
fn sms_customers(n: usize) -> String {
    let mut csv = HEADER.to_string();
    for i in 1..=n {
        csv.push_str(&format!(
            "r{i},Ana{i},,,+4072100{i:04},ro,Europe/Bucharest,1990-07-07,sms\n"
        ));
    }
    csv
}

/// Sent SMS rows: recipient → delivery id.
async fn sent_ids(t: &TestApp) -> Vec<(String, i64)> {
    let mut v: Vec<_> = t
        .rows()
        .await
        .into_iter()
        .filter(|r| r.channel == "sms" && r.status == "sent")
        .map(|r| (r.recipient.unwrap_or_default(), r.id))
        .collect();
    v.sort();
    v
}

async fn events(t: &TestApp) -> Vec<(Option<i64>, String, String, String)> {
    let mut v: Vec<_> = t
        .app
        .store
        .feedback_events(None, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.delivery_id, e.source, e.kind, e.state))
        .collect();
    v.sort();
    v
}

async fn sms_consent(t: &TestApp, customer_id: i64) -> Vec<(String, bool, String)> {
    t.app.store.consents_of(customer_id).await.unwrap()
}

fn twilio_delivery(gateway: &str, token_file: &std::path::Path) -> String {
    format!(
        "  email:\n    transport: outbox\n  sms:\n    providers:\n      - twilio:\n          account_sid: {SID}\n\
         \x20         auth_token_file: {}\n          from: \"+15005550006\"\n          base_url: {gateway}\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: {PUBLIC}\n",
        token_file.display()
    )
}

#[tokio::test]
async fn twilio_status_callbacks_are_signed_recorded_once_and_a_dead_number_stops_sms() {
    for db in BOTH {
        twilio_status_callbacks(db).await;
    }
}

async fn twilio_status_callbacks(db: Db) {
    let scratch = crate::peers::ScratchDir::new("ritualist-receipt-token");
    let token_file = scratch.path().join("twilio-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (gw, gw_url, _gw_stop) = Gateway::start().await;
    let Some(t) = TestApp::start(db, &twilio_delivery(&gw_url, &token_file)).await else {
        return;
    };
    assert!(t.customers(&sms_customers(3)).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
    assert_eq!(t.app.drain(now).await.unwrap().sent, 3);
    let ids = sent_ids(&t).await;
    // Every message asked Twilio for its status at its own signed URL.
    let mut callbacks: Vec<(String, String)> = gw
        .forms()
        .iter()
        .map(|f| {
            (
                field(f, "To").to_string(),
                field(f, "StatusCallback").to_string(),
            )
        })
        .collect();
    callbacks.sort();
    let want: Vec<(String, String)> = ids
        .iter()
        .map(|(to, id)| {
            let token = t.app.link_keys.delivery_token(*id);
            (to.clone(), format!("{PUBLIC}/sms/twilio/status/{token}"))
        })
        .collect();
    assert_eq!(callbacks, want);
    let sid_of = |to: &str| {
        gw.forms()
            .iter()
            .position(|f| field(f, "To") == to)
            .map(|i| format!("SM{:032}", i + 1))
            .unwrap()
    };

    let (addr, _stop) = serve(&t).await;
    let http = client();
    let post = |signed_url: String, params: Vec<(&'static str, String)>, token: &'static str| {
        let http = http.clone();
        async move {
            let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let path = signed_url.strip_prefix(PUBLIC).unwrap().to_string();
            let r = http
                .post(format!("http://{addr}{path}"))
                .header(
                    "X-Twilio-Signature",
                    twilio_signature(token, &signed_url, &refs),
                )
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(encode(&refs))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let status = |to: &str, s: &str, code: &str| {
        let mut p = vec![
            ("MessageSid", sid_of(to)),
            ("SmsSid", sid_of(to)),
            ("AccountSid", SID.to_string()),
            ("MessageStatus", s.to_string()),
            ("SmsStatus", s.to_string()),
            ("To", to.to_string()),
            ("From", "+15005550006".to_string()),
            ("ApiVersion", "2010-04-01".to_string()),
        ];
        if !code.is_empty() {
            p.push(("ErrorCode", code.to_string()));
        }
        p
    };
    let (a, b, c) = (&want[0], &want[1], &want[2]);

    // `sent` is not an outcome: acknowledged, nothing recorded.
    let (s, _) = post(a.1.clone(), status(&a.0, "sent", ""), TOKEN).await;
    assert_eq!(s, 204);
    assert!(events(&t).await.is_empty());
    // `delivered`: recorded once, however often Twilio retries it.
    for expect in ["recorded", "duplicate"] {
        let (s, body) = post(a.1.clone(), status(&a.0, "delivered", ""), TOKEN).await;
        assert_eq!(s, 200, "{body}");
        assert!(body.contains(expect), "{body}");
    }
    let a_id = ids[0].1;
    assert_eq!(
        events(&t).await,
        [(
            Some(a_id),
            "twilio".into(),
            "delivered".into(),
            "applied".into()
        )]
    );
    let outcome = t.app.store.delivery_outcome(a_id).await.unwrap().unwrap();
    assert_eq!(outcome.0.as_str(), "delivered");

    // A wrong signature (another auth token, or the URL of another delivery): 403, nothing.
    let b_customer = customer_of(&t, ids[1].1).await;
    let dead = status(&b.0, "undelivered", "30005");
    let (s, _) = post(b.1.clone(), dead.clone(), "not-the-token").await;
    assert_eq!(s, 403);
    let refs: Vec<(&str, &str)> = dead.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http
        .post(format!(
            "http://{addr}{}",
            b.1.strip_prefix(PUBLIC).unwrap()
        ))
        .header("X-Twilio-Signature", twilio_signature(TOKEN, &c.1, &refs))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(encode(&refs))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(events(&t).await.len(), 1);
    assert!(sms_consent(&t, b_customer).await.is_empty());

    // Signed, unknown handset (30005): the number is dead, SMS stops for that customer.
    let (s, body) = post(b.1.clone(), dead, TOKEN).await;
    assert_eq!((s, body.contains("opted_out")), (200, true), "{body}");
    assert_eq!(
        sms_consent(&t, b_customer).await,
        [("channel:sms".to_string(), true, "dead_number".to_string())]
    );
    // A carrier failure that may pass (30007, filtered): undelivered, nobody opted out.
    let c_customer = customer_of(&t, ids[2].1).await;
    let (s, _) = post(c.1.clone(), status(&c.0, "failed", "30007"), TOKEN).await;
    assert_eq!(s, 200);
    assert!(sms_consent(&t, c_customer).await.is_empty());
    assert_eq!(
        t.app
            .store
            .delivery_outcome(ids[2].1)
            .await
            .unwrap()
            .unwrap()
            .0
            .as_str(),
        "undelivered"
    );

    // A forged token, correctly signed for its URL: 404, nothing recorded. A payload without
    // MessageSid: 400.
    let forged = format!("{PUBLIC}/sms/twilio/status/d{a_id}-00000000000000000000");
    let (s, _) = post(forged, status(&a.0, "undelivered", "30003"), TOKEN).await;
    assert_eq!(s, 404);
    let (s, _) = post(
        a.1.clone(),
        vec![("MessageStatus", "delivered".into())],
        TOKEN,
    )
    .await;
    assert_eq!(s, 400);
    let kinds: Vec<String> = events(&t).await.into_iter().map(|e| e.2).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");

    // /metrics counts the applied reports per ritual, channel and kind.
    let m = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ritualist_feedback_total{ritual=\"birthday\",channel=\"sms\",kind=\"delivered\"} 1",
        "ritualist_feedback_total{ritual=\"birthday\",channel=\"sms\",kind=\"dead_number\"} 1",
        "ritualist_feedback_total{ritual=\"birthday\",channel=\"sms\",kind=\"undelivered\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line}\n{m}");
    }

    // Next year the dead number gets no birthday SMS.
    let next = at("2028-07-07T12:00:00Z");
    t.app.tick(next).await.unwrap();
    let rows = t.rows().await;
    let y2028: Vec<_> = rows.iter().filter(|r| r.occurrence == "2028").collect();
    for r in &y2028 {
        let want = if r.customer_id == b_customer {
            "suppressed"
        } else {
            "pending"
        };
        assert_eq!(r.status, want, "{r:?}");
    }
    assert_eq!(y2028.len(), 3);
}

async fn customer_of(t: &TestApp, delivery_id: i64) -> i64 {
    t.rows()
        .await
        .into_iter()
        .find(|r| r.id == delivery_id)
        .unwrap()
        .customer_id
}

/// A real Kannel: the messages go out with `dlr-mask`/`dlr-url`, the fake SMSC's "delivered"
/// reports come back through smsbox to the daemon's public server; then the failure reports
/// Kannel would send, as the requests smsbox makes.
#[tokio::test]
async fn kannel_delivery_reports_through_a_real_kannel() {
    let Some(kannel) = crate::peers::Kannel::start() else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let pw = crate::peers::ScratchDir::new("ritualist-kannel-pw");
    let pw_file = pw.path().join("kannel-pw");
    std::fs::write(&pw_file, kannel.password()).unwrap();
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    providers:\n      - kannel: {{ url: \"{}\", username: {}, password_file: {}, from: FloareCo }}\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: {public}\n",
        kannel.sendsms_url(),
        kannel.username(),
        pw_file.display()
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    let _stop = serve_on(&t, listener).await;
    assert!(t.customers(&sms_customers(4)).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 4);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(d.sent, 4, "{d:?}\n{}", kannel.logs());
    assert_eq!(kannel.wait_for(4, Duration::from_secs(15)).len(), 4);
    let ids = sent_ids(&t).await;
    // The fake SMSC's reports reach the daemon through smsbox (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&t).await.len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want: Vec<_> = ids
        .iter()
        .map(|(_, id)| {
            (
                Some(*id),
                "kannel".to_string(),
                "delivered".to_string(),
                "applied".to_string(),
            )
        })
        .collect();
    assert_eq!(events(&t).await, want, "{}", kannel.logs());
    for (_, id) in &ids {
        let o = t.app.store.delivery_outcome(*id).await.unwrap().unwrap();
        assert_eq!(o.0.as_str(), "delivered");
        assert!(o.2.starts_with("kannel dlr 1"), "{o:?}");
    }

    // The failure reports, as smsbox requests them (`%d` = 16 refused by the SMSC, 2 not
    // delivered to the phone, `%A` the SMSC's words); 8 is acknowledged and not recorded.
    let http = client();
    let get = |id: i64, query: &str| {
        let url = format!(
            "{public}/sms/kannel/dlr/{}?{query}",
            t.app.link_keys.delivery_token(id)
        );
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    let mut fresh = Vec::new();
    for (i, phone) in ["+40721000091", "+40721000092"].iter().enumerate() {
        let csv = format!("{HEADER}f{i},Dan,,,{phone},ro,Europe/Bucharest,1990-07-08,sms\n");
        assert!(t.customers(&csv).await.is_empty());
        fresh.push(*phone);
    }
    let day2 = at("2027-07-08T12:00:00Z");
    assert_eq!(t.app.tick(day2).await.unwrap().queued, 2);
    assert_eq!(t.app.drain(day2).await.unwrap().sent, 2);
    let all = sent_ids(&t).await;
    let id_of = |p: &str| all.iter().find(|(r, _)| r == p).unwrap().1;
    let (f1, f2) = (id_of(fresh[0]), id_of(fresh[1]));
    // Wait for the fake SMSC's own reports of these two first, so the order is known.
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&t).await.len() < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(f1, "status=8&answer=ACK%2F").await, 200);
    assert_eq!(
        get(
            f1,
            "status=16&answer=NACK%2F0x0000000b%2FInvalid+Destination+Address"
        )
        .await,
        200
    );
    assert_eq!(
        get(
            f2,
            "status=2&answer=id%3A0123+sub%3A001+dlvrd%3A000+stat%3AUNDELIV+err%3A001"
        )
        .await,
        200
    );
    // The same report again, a forged token, a nonsense status.
    assert_eq!(
        get(
            f2,
            "status=2&answer=id%3A0123+sub%3A001+dlvrd%3A000+stat%3AUNDELIV+err%3A001"
        )
        .await,
        200
    );
    let forged = http
        .get(format!(
            "{public}/sms/kannel/dlr/d{f1}-0123456789abcdef0123?status=2&answer=x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 404);
    assert_eq!(get(f1, "status=abc").await, 400);
    assert_eq!(get(f1, "answer=x").await, 400);
    let evs = events(&t).await;
    let of = |id: i64| -> Vec<String> {
        evs.iter()
            .filter(|e| e.0 == Some(id))
            .map(|e| e.2.clone())
            .collect()
    };
    let mut k1 = of(f1);
    k1.sort();
    assert_eq!(k1, ["delivered", "undelivered"], "{evs:?}");
    let mut k2 = of(f2);
    k2.sort();
    assert_eq!(k2, ["delivered", "undelivered"], "{evs:?}");
    assert_eq!(evs.len(), 8, "{evs:?}");
    // Undelivered ranks above a delivery receipt: the later failure report stands.
    let o = t.app.store.delivery_outcome(f2).await.unwrap().unwrap();
    assert_eq!(o.0.as_str(), "undelivered");
    assert!(o.2.contains("stat:UNDELIV"), "{o:?}");
}

#[tokio::test]
async fn generic_receipts_with_the_receipt_url_placeholder_and_a_bearer_key() {
    let (gw, gw_url, _gw_stop) = Gateway::start().await;
    // A variable only this test reads (the process's environment is shared by the tests).
    let var = "RITUALIST_TEST_E2_SMS_RECEIPT_KEY";
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var(var, "receipt-key-123") };
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    providers:\n      - http:\n          name: gw\n          url: {gw_url}/send\n\
         \x20         json:\n            to: \"{{to}}\"\n            text: \"{{text}}\"\n            callback: \"{{receipt_url}}\"\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: {PUBLIC}\n\
         bounces:\n  sms_receipts:\n    key_env: {var}\n"
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    assert!(t.customers(&sms_customers(2)).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 2);
    assert_eq!(t.app.drain(now).await.unwrap().sent, 2);
    let ids = sent_ids(&t).await;
    let mut got: Vec<(String, String)> = gw
        .jsons()
        .iter()
        .map(|j| {
            (
                j["to"].as_str().unwrap().to_string(),
                j["callback"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = ids
        .iter()
        .map(|(to, id)| {
            (
                to.clone(),
                format!(
                    "{PUBLIC}/sms/receipt/{}",
                    t.app.link_keys.delivery_token(*id)
                ),
            )
        })
        .collect();
    assert_eq!(got, want);

    let (addr, _stop) = serve(&t).await;
    let http = client();
    let post = |url: &str, key: Option<&str>, body: &str| {
        let mut r = http
            .post(format!(
                "http://{addr}{}",
                url.strip_prefix(PUBLIC).unwrap()
            ))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    let key = Some("receipt-key-123");
    let (a, b) = (&want[0].1, &want[1].1);
    let delivered = r#"{"status": "delivered", "id": "gw-1"}"#;
    assert_eq!(post(a, None, delivered).await, 401);
    assert_eq!(post(a, Some("wrong"), delivered).await, 401);
    assert!(events(&t).await.is_empty());
    assert_eq!(post(a, key, delivered).await, 200);
    assert_eq!(post(a, key, delivered).await, 200);
    assert_eq!(events(&t).await.len(), 1, "a replay records nothing");
    // Bad payloads: 400, nothing recorded.
    for bad in [
        "not json",
        r#"{"status": "sent"}"#,
        r#"{"status": 3}"#,
        r#"{"state": "delivered"}"#,
        "",
    ] {
        assert_eq!(post(b, key, bad).await, 400, "{bad}");
    }
    let forged = format!("{PUBLIC}/sms/receipt/d{}-ffffffffffffffffffff", ids[1].1);
    assert_eq!(
        post(&forged, key, r#"{"status": "failed", "dead": true}"#).await,
        404
    );
    assert_eq!(events(&t).await.len(), 1);
    // A dead number: SMS stops for that customer.
    let b_customer = customer_of(&t, ids[1].1).await;
    let dead = r#"{"status": "failed", "error": "absent subscriber", "dead": true}"#;
    assert_eq!(post(b, key, dead).await, 200);
    assert_eq!(
        sms_consent(&t, b_customer).await,
        [("channel:sms".to_string(), true, "dead_number".to_string())]
    );
    let o = t
        .app
        .store
        .delivery_outcome(ids[1].1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.0.as_str(), "undelivered");
    assert!(o.2.contains("absent subscriber"), "{o:?}");
    // SAFETY: as above.
    unsafe { std::env::remove_var(var) };
}

/// 120 birthday emails sent today; complaints about `complaints` of them and hard bounces of
/// `bounces`, reported through the App.
async fn emails_with_reports(t: &TestApp, complaints: usize, bounces: usize) {
    let mut csv = HEADER.to_string();
    for i in 1..=120 {
        csv.push_str(&format!(
            "e{i},Ana{i},,ana{i}@example.com,,ro,Europe/Bucharest,1990-07-07,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 120);
    assert_eq!(t.app.drain(now).await.unwrap().sent, 120);
    let ids: Vec<i64> = t.rows().await.iter().map(|r| r.id).collect();
    let kinds = std::iter::repeat_n(FeedbackKind::Complaint, complaints)
        .chain(std::iter::repeat_n(FeedbackKind::HardBounce, bounces));
    for (id, kind) in ids.iter().zip(kinds) {
        let fb = Feedback {
            kind,
            source: FeedbackSource::Mail,
            delivery: DeliveryRef::Delivery(*id),
            channel: Channel::Email,
            recipient: None,
            detail: kind.to_string(),
            dedupe_key: format!("test-{id}"),
            raw: None,
        };
        t.app.record_feedback(fb).await.unwrap();
    }
}

async fn healthz(addr: SocketAddr) -> serde_json::Value {
    let r = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn healthz_is_degraded_when_complaints_pass_the_threshold_and_report_shows_the_rates() {
    let clock = ritualist::clock::ManualClock::shared(at("2027-07-07T12:00:00Z"));
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    transport: outbox\nhttp:\n  listen: \"127.0.0.1:0\"\n  public_url: {PUBLIC}\n"
    );
    let Some(t) = TestApp::start_with_clock(Db::Sqlite, &delivery, clock.clone()).await else {
        return;
    };
    let (addr, _stop) = serve(&t).await;
    // Nothing sent yet: ok.
    let h = healthz(addr).await;
    assert_eq!(h["status"], "ok", "{h}");
    // 1 complaint of 120 (0.83 %) and 2 hard bounces (1.7 %, under 2 %), an hour ago.
    emails_with_reports(&t, 1, 2).await;
    clock.set(at("2027-07-07T13:00:00Z"));
    let h = healthz(addr).await;
    assert_eq!(h["status"], "degraded", "{h}");
    let reasons: Vec<&str> = h["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["email spam complaint rate 0.83 % over the last 7 days (1 of 120 sent) is above 0.3 %"],
        "{h}"
    );
    assert_eq!(h["deliverability_alerts"][0]["rate"], "complaint");
    // Eight days later the window holds nothing: ok again.
    clock.set(at("2027-07-15T12:00:01Z"));
    let h = healthz(addr).await;
    assert_eq!(h["status"], "ok", "{h}");

    // `ritualist report` shows the counts and rates per ritual and channel.
    let out = ritualist(&t.dir, &["report", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["deliverability"][0];
    assert_eq!(
        (
            d["ritual"].as_str(),
            d["channel"].as_str(),
            d["sent"].as_i64(),
            d["complained"].as_i64(),
            d["hard_bounced"].as_i64()
        ),
        (Some("birthday"), Some("email"), Some(120), Some(1), Some(2)),
        "{v}"
    );
    let pct = d["complaint_pct"].as_f64().unwrap();
    assert!((pct - 100.0 / 120.0).abs() < 1e-9, "{pct}");
    let out = ritualist(&t.dir, &["report"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("deliverability"), "{text}");
    assert!(text.contains("1 0.8%"), "{text}");
}

#[tokio::test]
async fn a_hard_bounce_rate_above_its_configured_threshold_degrades_healthz_too() {
    for db in BOTH {
        hard_bounce_alert(db).await;
    }
}

async fn hard_bounce_alert(db: Db) {
    let clock = ritualist::clock::ManualClock::shared(at("2027-07-07T12:00:00Z"));
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    transport: outbox\nhttp:\n  listen: \"127.0.0.1:0\"\n  public_url: {PUBLIC}\n\
         bounces:\n  alert:\n    hard_bounce_rate: 1\n    min_sent: 100\n"
    );
    let Some(t) = TestApp::start_with_clock(db, &delivery, clock.clone()).await else {
        return;
    };
    let (addr, _stop) = serve(&t).await;
    // No complaint, 2 hard bounces of 120 = 1.7 % > 1 %.
    emails_with_reports(&t, 0, 2).await;
    // An hour later (a drain stamps `sent_at` from its start plus the time it took).
    clock.set(at("2027-07-07T13:00:00Z"));
    let h = healthz(addr).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["deliverability_alerts"][0]["rate"], "hard_bounce", "{h}");
    assert_eq!(
        h["deliverability_alerts"].as_array().unwrap().len(),
        1,
        "{h}"
    );
}

/// What the App logs, captured (a `Write` into a shared buffer).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// The `ALERT` line is logged once per crossing: not again while the rate stays high, and
/// again after it fell back under the threshold and crossed it anew.
#[tokio::test]
async fn an_alert_is_logged_once_per_crossing() {
    let clock = ritualist::clock::ManualClock::shared(at("2027-07-07T12:00:00Z"));
    let delivery = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n";
    let Some(t) = TestApp::start_with_clock(Db::Sqlite, delivery, clock.clone()).await else {
        return;
    };
    emails_with_reports(&t, 1, 0).await;
    clock.set(at("2027-07-07T13:00:00Z"));
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    for _ in 0..3 {
        assert_eq!(t.app.deliverability_alerts().await.unwrap().len(), 1);
    }
    assert_eq!(log.count("ALERT: email spam complaint rate 0.83 %"), 1);
    // A week later the window is empty: the alert clears, once.
    clock.set(at("2027-07-15T13:00:00Z"));
    for _ in 0..2 {
        assert!(t.app.deliverability_alerts().await.unwrap().is_empty());
    }
    assert_eq!(log.count("deliverability alert cleared"), 1);
    // Back in the window (the clock is the only thing that moved): a new crossing, logged.
    clock.set(at("2027-07-08T13:00:00Z"));
    assert_eq!(t.app.deliverability_alerts().await.unwrap().len(), 1);
    assert_eq!(log.count("ALERT:"), 2);
}
