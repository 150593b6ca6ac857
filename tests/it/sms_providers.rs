//! SMS providers over HTTP against gateways served in-process on loopback (axum): a
//! Twilio-shaped Messages endpoint that checks basic auth and the form fields, and a generic
//! JSON endpoint. Through `Channels` built from a real `ritualist.yaml`, and once through
//! the daemon's tick and drain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ritualist::channel::{Channels, Outgoing, SendFailure};
use ritualist::config::Config;

use crate::harness::{Db, HEADER, TestApp, at, config_yaml};
use crate::peers::{ScratchDir, free_port};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "test-auth-token";
/// `base64("AC0123456789abcdef0123456789abcdef:test-auth-token")`, computed outside the test.
const BASIC: &str = "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0ZXN0LWF1dGgtdG9rZW4=";
const API_KEY: &str = "k-9f8e7d";
/// Cyrillic, a quote, a backslash and a line break: all must arrive intact.
const TEXT: &str = "Иван, с днём рождения! \"Floare & Co\" \\ скидка 20%\nкод BDAY20";

/// One request as the gateway saw it.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// When the request arrived.
    at: std::time::Instant,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn form(&self) -> Vec<(String, String)> {
        form_decode(&self.body)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// (status, headers, body) to answer.
type Answer = (u16, Vec<(&'static str, String)>, String);
type Behaviour = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

#[derive(Clone)]
struct GatewayState {
    behaviour: Behaviour,
    received: Arc<Mutex<Vec<Received>>>,
    /// Answer only after this long (a gateway that hangs).
    delay: Duration,
    /// Requests being answered now, and the most there ever were at once.
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

/// An HTTP server on 127.0.0.1 that records every request and answers with `behaviour`.
struct Gateway {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    peak: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Gateway {
    async fn start(behaviour: impl Fn(&Received) -> Answer + Send + Sync + 'static) -> Gateway {
        Gateway::start_with_delay(behaviour, Duration::ZERO).await
    }

    async fn start_with_delay(
        behaviour: impl Fn(&Received) -> Answer + Send + Sync + 'static,
        delay: Duration,
    ) -> Gateway {
        let state = GatewayState {
            behaviour: Arc::new(behaviour),
            received: Arc::default(),
            delay,
            open: Arc::default(),
            peak: Arc::default(),
        };
        let received = state.received.clone();
        let peak = state.peak.clone();
        let router = Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Gateway {
            addr,
            received,
            peak,
            _stop: stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The `To` of every Twilio-shaped request received, in arrival order.
    fn numbers(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.form().into_iter().find(|(k, _)| k == "To").unwrap().1)
            .collect()
    }

    /// The most requests this gateway was answering at once.
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

async fn handle(
    State(s): State<GatewayState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = Received {
        method,
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body: body.to_vec(),
        at: std::time::Instant::now(),
    };
    s.received.lock().unwrap().push(r.clone());
    let open = s.open.fetch_add(1, Ordering::SeqCst) + 1;
    s.peak.fetch_max(open, Ordering::SeqCst);
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    s.open.fetch_sub(1, Ordering::SeqCst);
    let (status, extra, body) = (s.behaviour)(&r);
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// `application/x-www-form-urlencoded` → pairs (written here, independent of the client's encoder).
fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).expect("UTF-8 after percent-decoding")
    }
    let s = std::str::from_utf8(body).unwrap();
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn json_answer(status: u16, v: serde_json::Value) -> Answer {
    (
        status,
        vec![("content-type", "application/json".into())],
        v.to_string(),
    )
}

/// What the Twilio-shaped endpoint does once the request is well-formed and authenticated.
#[derive(Debug, Clone, Copy)]
enum Twilio {
    Accept,
    Throttle,
    Down,
}

/// A Twilio-shaped Messages endpoint: 401 (code 20003) without the right basic auth, 400 (code
/// 21211) for the magic invalid number +15005550001, otherwise `mode`.
fn twilio(mode: Twilio) -> impl Fn(&Received) -> Answer + Send + Sync + 'static {
    let n = AtomicU32::new(0);
    move |r| {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        if r.header("authorization") != Some(BASIC) {
            return json_answer(
                401,
                serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401}),
            );
        }
        let form = r.form();
        let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone());
        if to.as_deref() == Some("+15005550001") {
            return json_answer(
                400,
                serde_json::json!({
                    "code": 21211,
                    "message": "The 'To' number +15005550001 is not a valid phone number.",
                    "more_info": "https://www.twilio.com/docs/errors/21211",
                    "status": 400,
                }),
            );
        }
        match mode {
            Twilio::Accept => {
                let i = n.fetch_add(1, Ordering::Relaxed);
                json_answer(
                    201,
                    serde_json::json!({
                        "sid": format!("SM{i:032x}"),
                        "status": "queued",
                        "to": to,
                    }),
                )
            }
            Twilio::Throttle => (
                429,
                vec![("retry-after", "7".into())],
                r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#.into(),
            ),
            Twilio::Down => (500, vec![], "Internal Server Error".into()),
        }
    }
}

/// A regional gateway taking JSON with an API key header; answers like many do, 200 with a
/// per-message status.
fn json_gateway() -> impl Fn(&Received) -> Answer + Send + Sync + 'static {
    |r| {
        if r.header("x-api-key") != Some(API_KEY) {
            return json_answer(401, serde_json::json!({"error": "bad key"}));
        }
        assert_eq!(r.header("content-type"), Some("application/json"));
        json_answer(
            200,
            serde_json::json!({"messages": [{"status": 0, "id": "m-1"}]}),
        )
    }
}

/// Files holding the credentials, and the config written next to them.
struct Setup {
    dir: ScratchDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = ScratchDir::new("sms-providers");
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/twilio-token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("config/api-key"), API_KEY).unwrap();
        Setup { dir }
    }

    /// A config whose `delivery.sms` is `sms` (indented under `  sms:`).
    fn channels(&self, sms: &str) -> Channels {
        let path = self.dir.path().join("config/ritualist.yaml");
        let db = self.dir.path().join("data/r.db");
        std::fs::write(
            &path,
            config_yaml(
                &db.display().to_string(),
                &format!("  email:\n    transport: outbox\n  sms:\n{sms}"),
            ),
        )
        .unwrap();
        let cfg = Config::load(&path).unwrap_or_else(|d| panic!("{d}"));
        Channels::from_config(&cfg, ritualist::clock::SystemClock::shared()).unwrap()
    }
}

fn twilio_yaml(base_url: &str) -> String {
    format!(
        "      - twilio:\n          account_sid: {SID}\n          auth_token_file: twilio-token\n          from: \"+15005550006\"\n          base_url: {base_url}\n          timeout_secs: 5\n"
    )
}

/// The daemon's Twilio provider entry with its auth token in a scratch file (which lives as
/// long as the returned directory).
fn twilio_provider(base_url: &str) -> (ScratchDir, String) {
    let token = ScratchDir::new("twilio-token");
    let token_file = token.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let yaml = twilio_yaml(base_url).replace("twilio-token", &token_file.display().to_string());
    (token, yaml)
}

fn json_yaml(name: &str, base_url: &str) -> String {
    format!(
        r#"      - http:
          name: {name}
          url: {base_url}/api/v2/sms
          headers: {{ X-Api-Key: "{{secret}}" }}
          secret_file: api-key
          from: FloareCo
          json:
            sender: "{{from}}"
            messages:
              - to: "{{to_digits}}"
                text: "{{text}}"
                unicode: true
          accepted:
            status: [200]
            json_field: {{ path: messages.0.status, equals: 0 }}
          timeout_secs: 5
"#
    )
}

async fn send(ch: &Channels, to: &str) -> Result<String, SendFailure> {
    ch.send(&Outgoing {
        channel: "sms",
        recipient: to,
        payload: TEXT,
        message_id: Some("<m1@floare.example>"),
        from: "hello@floare.example",
        handover: None,
        delivery_id: None,
    })
    .await
}

#[tokio::test]
async fn twilio_accepts_with_basic_auth_and_the_exact_form() {
    let tw = Gateway::start(twilio(Twilio::Accept)).await;
    let s = Setup::new();
    let ch = s.channels(&format!("    providers:\n{}", twilio_yaml(&tw.url())));
    let reply = send(&ch, "+79161234567").await.unwrap();
    assert_eq!(reply, format!("twilio SM{:032x}", 0));
    let got = tw.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), Some(BASIC));
    assert_eq!(
        got[0].form(),
        [
            ("To", "+79161234567"),
            ("Body", TEXT),
            ("From", "+15005550006")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

#[tokio::test]
async fn twilio_429_is_transient_and_keeps_retry_after() {
    let tw = Gateway::start(twilio(Twilio::Throttle)).await;
    let s = Setup::new();
    let ch = s.channels(&format!("    providers:\n{}", twilio_yaml(&tw.url())));
    let e = send(&ch, "+79161234567").await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)), "{e:?}");
    assert!(
        e.message().contains("twilio 429: 20429 Too Many Requests"),
        "{e}"
    );
    assert!(!e.message().contains(TOKEN));
}

#[tokio::test]
async fn a_500_falls_back_to_the_next_provider_which_gets_the_exact_json() {
    let tw = Gateway::start(twilio(Twilio::Down)).await;
    let gw = Gateway::start(json_gateway()).await;
    let s = Setup::new();
    let ch = s.channels(&format!(
        "    providers:\n{}{}",
        twilio_yaml(&tw.url()),
        json_yaml("smsro", &gw.url())
    ));
    let reply = send(&ch, "+79161234567").await.unwrap();
    assert!(reply.starts_with("smsro 200 "), "{reply}");
    assert_eq!(tw.received().len(), 1, "twilio was tried first");
    let got = gw.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, Method::POST);
    assert_eq!(got[0].path, "/api/v2/sms");
    assert_eq!(got[0].header("x-api-key"), Some(API_KEY));
    assert_eq!(
        got[0].json(),
        serde_json::json!({
            "sender": "FloareCo",
            "messages": [{ "to": "79161234567", "text": TEXT, "unicode": true }],
        })
    );
    // UTF-8 on the wire, not \u escapes.
    assert!(
        String::from_utf8(got[0].body.clone())
            .unwrap()
            .contains("Иван, с днём рождения!")
    );
}

#[tokio::test]
async fn an_unreachable_or_misconfigured_provider_falls_back_too() {
    let gw = Gateway::start(json_gateway()).await;
    let wrong_auth = Gateway::start(twilio(Twilio::Accept)).await;
    let s = Setup::new();
    std::fs::write(s.dir.path().join("config/wrong-token"), "nope").unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let ch = s.channels(&format!(
        "    providers:\n{}      - twilio:\n          name: twilio-eu\n          account_sid: {SID}\n          auth_token_file: wrong-token\n          from: FloareCo\n          base_url: {}\n{}",
        twilio_yaml(&down),
        wrong_auth.url(),
        json_yaml("smsro", &gw.url())
    ));
    let reply = send(&ch, "+40721000002").await.unwrap();
    assert!(reply.starts_with("smsro 200"), "{reply}");
    assert_eq!(wrong_auth.received().len(), 1, "a 401 is about us: next");
    assert_eq!(gw.received().len(), 1);
}

#[tokio::test]
async fn an_invalid_number_is_permanent_and_no_other_provider_is_tried() {
    let tw = Gateway::start(twilio(Twilio::Accept)).await;
    let gw = Gateway::start(json_gateway()).await;
    let s = Setup::new();
    let ch = s.channels(&format!(
        "    providers:\n{}{}",
        twilio_yaml(&tw.url()),
        json_yaml("smsro", &gw.url())
    ));
    let e = send(&ch, "+15005550001").await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(
        e.message()
            .starts_with("twilio 400: 21211 The 'To' number <to> is not a valid phone number."),
        "{e}"
    );
    assert!(gw.received().is_empty(), "no fallback for a bad number");
}

#[tokio::test]
async fn every_provider_down_is_transient_with_the_shortest_retry_after() {
    let tw = Gateway::start(twilio(Twilio::Throttle)).await;
    let gw = Gateway::start(|_: &Received| (503, vec![("retry-after", "3".into())], String::new()))
        .await;
    let s = Setup::new();
    let ch = s.channels(&format!(
        "    providers:\n{}{}",
        twilio_yaml(&tw.url()),
        json_yaml("smsro", &gw.url())
    ));
    let e = send(&ch, "+40721000002").await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(
        e.message().contains("twilio 429") && e.message().contains("smsro 503"),
        "{e}"
    );
}

#[tokio::test]
async fn a_json_reply_saying_no_is_permanent() {
    let gw = Gateway::start(|_: &Received| {
        json_answer(
            200,
            serde_json::json!({"messages": [{"status": 7, "error": "no credit"}]}),
        )
    })
    .await;
    let s = Setup::new();
    let ch = s.channels(&format!(
        "    providers:\n{}",
        json_yaml("smsro", &gw.url())
    ));
    let e = send(&ch, "+40721000002").await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
    assert!(
        e.message()
            .contains("smsro 200: not accepted: `messages.0.status` is `7`, not `0`"),
        "{e}"
    );
}

#[tokio::test]
async fn a_get_gateway_with_query_parameters_and_a_body_check() {
    let gw = Gateway::start(|r: &Received| {
        (
            200,
            vec![],
            if r.query.contains("user=floare") {
                "OK 1 sent".into()
            } else {
                "ERR".into()
            },
        )
    })
    .await;
    let s = Setup::new();
    let ch = s.channels(&format!(
        "    providers:\n      - http:\n          name: legacy\n          url: {}/cgi/send?v=2\n          method: GET\n          query: {{ user: floare, pass: \"{{secret}}\", to: \"{{to}}\", msg: \"{{text}}\" }}\n          secret_file: api-key\n          accepted: {{ body_contains: OK }}\n",
        gw.url()
    ));
    assert_eq!(
        send(&ch, "+40721000002").await.unwrap(),
        "legacy 200 OK 1 sent"
    );
    let got = gw.received();
    assert_eq!(got[0].method, Method::GET);
    assert!(got[0].body.is_empty());
    assert_eq!(
        form_decode(got[0].query.as_bytes()),
        [
            ("v", "2"),
            ("user", "floare"),
            ("pass", API_KEY),
            ("to", "+40721000002"),
            ("msg", TEXT)
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
}

/// The last provider in the list is a real Kannel (with fakesmsc as its SMSC).
#[tokio::test]
async fn twilio_down_falls_back_to_a_real_kannel() {
    let Some(kannel) = crate::peers::Kannel::start() else {
        return;
    };
    let tw = Gateway::start(twilio(Twilio::Down)).await;
    let s = Setup::new();
    std::fs::write(s.dir.path().join("config/kannel-pw"), kannel.password()).unwrap();
    let ch = s.channels(&format!(
        "    providers:\n{}      - kannel: {{ url: \"{}\", username: {}, password_file: kannel-pw, from: FloareCo }}\n",
        twilio_yaml(&tw.url()),
        kannel.sendsms_url(),
        kannel.username()
    ));
    let reply = ch
        .send(&Outgoing {
            channel: "sms",
            recipient: "+79161234567",
            payload: "Иван, с днём рождения!",
            message_id: None,
            from: "hello@floare.example",
            handover: None,
            delivery_id: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", kannel.logs()));
    assert_eq!(reply, "kannel 202 0: Accepted for delivery");
    assert_eq!(tw.received().len(), 1);
    let got = kannel.wait_for(1, Duration::from_secs(15));
    assert_eq!(got.len(), 1, "{}", kannel.logs());
    assert_eq!(got[0].text, "Иван, с днём рождения!");
    assert_eq!(got[0].coding, "ucs-2");
}

/// A gateway that takes the request and answers too late: the message may have gone out, so the
/// next provider is not asked to send it again (docs/delivery-guarantee.md §1: SMS in doubt is not resent).
#[tokio::test]
async fn no_answer_in_time_is_in_doubt_and_not_sent_elsewhere() {
    let slow = Gateway::start_with_delay(twilio(Twilio::Accept), Duration::from_secs(4)).await;
    let gw = Gateway::start(json_gateway()).await;
    let s = Setup::new();
    let ch = s.channels(&format!(
        "    providers:\n{}{}",
        twilio_yaml(&slow.url()).replace("timeout_secs: 5", "timeout_secs: 1"),
        json_yaml("smsro", &gw.url())
    ));
    let e = send(&ch, "+40721000002").await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.message().contains("in doubt"), "{e}");
    assert_eq!(slow.received().len(), 1);
    assert!(gw.received().is_empty());
}

/// Through the daemon's path: tick plans three birthday SMS, drain sends them through Twilio
/// (the ledger says `sent`); a 429 with a long Retry-After holds the retry back that long.
#[tokio::test]
async fn the_daemon_sends_through_twilio_and_honours_retry_after() {
    let throttled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = throttled.clone();
    let accept = twilio(Twilio::Accept);
    let tw = Gateway::start(move |r: &Received| {
        if flag.load(Ordering::SeqCst) {
            (429, vec![("retry-after", "7200".into())], String::new())
        } else {
            accept(r)
        }
    })
    .await;
    let (_token, twilio) = twilio_provider(&tw.url());
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    providers:\n{}",
        twilio
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    let csv = format!(
        "{HEADER}\
         k1,Иван,,,+79161234567,ru,Europe/Moscow,1985-07-07,sms\n\
         k2,Ștefan,,,0721000002,ro,Europe/Bucharest,1990-07-07,sms\n\
         k3,Emma,,,+14155550100,en,Europe/Bucharest,1990-07-07,sms\n\
         k4,Ana,,,+40721000004,ro,Europe/Bucharest,1990-07-08,sms\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.failed, d.retrying), (3, 0, 0), "{d:?}");
    let mut got: Vec<(String, String)> = tw
        .received()
        .iter()
        .map(|r| {
            let f = r.form();
            let get = |k: &str| f.iter().find(|(n, _)| n == k).unwrap().1.clone();
            (get("To"), get("Body"))
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "+14155550100",
                "Happy birthday, Emma! Floare & Co gives you 20% off all week: code BDAY20."
            ),
            (
                "+40721000002",
                "La multi ani, Ștefan! Floare & Co: 20% reducere toata saptamana, cod BDAY20."
            ),
            (
                "+79161234567",
                "Иван, с днём рождения! Floare & Co: скидка 20% всю неделю, код BDAY20."
            ),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let ledger = t.rows().await;
    assert!(ledger.iter().all(|r| r.status == "sent"), "{ledger:?}");

    // The next day, Twilio throttles with Retry-After: 7200 (two hours, longer than any backoff
    // of a first retry, which is at most a minute).
    throttled.store(true, Ordering::SeqCst);
    let day2 = at("2027-07-08T08:00:00Z");
    assert_eq!(t.app.tick(day2).await.unwrap().queued, 1);
    let d = t.app.drain(day2).await.unwrap();
    assert_eq!((d.sent, d.retrying), (0, 1), "{d:?}");
    throttled.store(false, Ordering::SeqCst);
    let d = t.app.drain(at("2027-07-08T09:00:00Z")).await.unwrap();
    assert_eq!(d.claimed, 0, "an hour later the row still waits: {d:?}");
    let d = t.app.drain(at("2027-07-08T10:00:01Z")).await.unwrap();
    assert_eq!((d.claimed, d.sent), (1, 1), "{d:?}");
    let row = t
        .rows()
        .await
        .into_iter()
        .find(|r| r.recipient.as_deref() == Some("+40721000004"))
        .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 2), "{row:?}");
}

/// [`queued_sms`] for a gateway answering at once, 8 requests at a time, the provider limited
/// by `rate` (a YAML mapping).
async fn queued_for_a_limited_gateway(
    db: Db,
    rate: &str,
    n: usize,
    now: jiff::Timestamp,
) -> Option<(Gateway, ScratchDir, TestApp)> {
    let tw = Gateway::start(twilio(Twilio::Accept)).await;
    let provider = format!("          rate: {rate}\n");
    queued_sms(db, tw, "", 8, &provider, n, now).await
}

/// `rate: { per_second: 10 }` on the provider paces a drain of 25 SMS with 8 requests allowed
/// in flight: the gateway sees them spread out — any eleven consecutive requests span at least
/// half a second (a second at the pacer, less what a loaded machine can delay the first of them
/// on its way: seen 120 ms with both cores busy) and the 25 at least 2 s of the pacer's 2.4 s.
/// Unpaced, the 25 arrive within a few milliseconds. (That a minute holds the rate within ±5 %
/// is the pacer's own test, `channel::rate`, without a clock.)
#[tokio::test]
async fn a_per_second_limit_paces_a_drain_evenly() {
    let now = at("2027-07-07T12:00:00Z");
    let (tw, _token, t) = queued_for_a_limited_gateway(Db::Sqlite, "{ per_second: 10 }", 25, now)
        .await
        .unwrap();
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.retrying), (25, 0), "{d:?}");
    assert_paced(&tw, 25, (11, 500), 2_000);
}

/// The gateway received `n` requests, any `window.0` consecutive ones spanning at least
/// `window.1` ms and all of them at least `all_ms`.
fn assert_paced(tw: &Gateway, n: usize, window: (usize, u64), all_ms: u64) {
    let mut times: Vec<std::time::Instant> = tw.received().iter().map(|r| r.at).collect();
    times.sort();
    assert_eq!(times.len(), n);
    let (k, min_ms) = window;
    for (i, w) in times.windows(k).enumerate() {
        let span = w[k - 1] - w[0];
        assert!(
            span >= Duration::from_millis(min_ms),
            "requests {i}..={}: {k} within {span:?}",
            i + k - 1
        );
    }
    let all = times[n - 1] - times[0];
    assert!(
        all >= Duration::from_millis(all_ms),
        "{n} requests within {all:?}"
    );
}

/// `rate: { per_day: 4 }`: of six SMS due, four go out and two wait for the next UTC day,
/// untried — nothing was handed over, so their attempt is not counted (a campaign longer than
/// `max_attempts` days of quota must not fail while it waits its turn) and the row says why. A
/// restarted daemon counts the four sent today from the ledger: when the two are due again it
/// still sends nothing today, and still counts no attempt. On SQLite and PostgreSQL.
#[tokio::test]
async fn a_per_day_limit_holds_across_a_restart_and_costs_no_attempt() {
    for db in crate::harness::BOTH {
        per_day_limit(db).await;
    }
}

async fn per_day_limit(db: Db) {
    let now = at("2027-07-07T12:00:00Z");
    // The daemon's clock (the limit's UTC day) stays on the 7th: no midnight during the test.
    let clock = ritualist::clock::ManualClock::shared(now);
    let tw = Gateway::start(twilio(Twilio::Accept)).await;
    let setup = ("", 8, "          rate: { per_day: 4 }\n");
    let Some((tw, _token, t)) = queued_sms_on(db, tw, setup, 6, now, clock.clone()).await else {
        return;
    };
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(
        (d.sent, d.deferred, d.retrying, d.failed),
        (4, 2, 0, 0),
        "{db:?}: {d:?}"
    );
    assert_eq!(tw.received().len(), 4);
    let waiting = |rows: Vec<ritualist::store::DeliveryRow>| -> Vec<_> {
        rows.into_iter().filter(|r| r.status != "sent").collect()
    };
    let left = waiting(t.rows().await);
    assert_eq!(left.len(), 2, "{left:?}");
    for r in &left {
        assert_eq!((r.status.as_str(), r.attempts), ("pending", 0), "{r:?}");
        let e = r.last_error.as_deref().unwrap_or_default();
        assert!(e.contains("daily limit of 4"), "{e}");
    }
    // The same project opened again, as a restarted daemon would; the two are due by then.
    let cfg = ritualist::config::Config::load(&t.dir.join("config/ritualist.yaml"))
        .unwrap_or_else(|d| panic!("{d}"));
    let again = ritualist::app::App::open_with_clock(cfg, clock)
        .await
        .unwrap();
    let d = again.drain(at("2027-07-09T12:00:00Z")).await.unwrap();
    assert_eq!((d.claimed, d.sent, d.deferred), (2, 0, 2), "{db:?}: {d:?}");
    assert_eq!(tw.received().len(), 4, "nothing more today");
    for r in waiting(t.rows().await) {
        assert_eq!(r.attempts, 0, "{r:?}");
    }
}

/// The store's shared rate book (`rate_limits`, PostgreSQL): a day the row has not seen starts
/// from the seed a daemon read from the ledger, the quota holds whatever the seed of the
/// daemons that come later, a clock still on the previous day counts against the newer one,
/// the next day starts over, and `per_second` slots are handed out in turn on the database's
/// clock (10 s apart here, so the calls' own milliseconds do not matter).
#[tokio::test]
async fn the_shared_rate_book_counts_the_day_and_hands_out_slots_in_turn() {
    use ritualist::store::RateSlot::{Spent, Wait};
    let Some(t) = TestApp::start(Db::Postgres, "  email:\n    transport: outbox\n").await else {
        return;
    };
    let s = &t.app.store;
    let take = |key: &'static str, day: i64, seed: u64, max: Option<u64>, gap: u64| async move {
        let gap = Duration::from_micros(gap);
        s.take_rate_slot(key, day, seed, max, gap).await.unwrap()
    };
    // Two sent earlier today (the ledger's seed), a quota of 3: one more.
    assert_eq!(
        take("sms/a", 100, 2, Some(3), 0).await,
        Wait(Duration::ZERO)
    );
    assert_eq!(take("sms/a", 100, 2, Some(3), 0).await, Spent);
    // A later daemon's seed of 0 does not reset the day; nor does a clock a day behind.
    assert_eq!(take("sms/a", 100, 0, Some(3), 0).await, Spent);
    assert_eq!(take("sms/a", 99, 0, Some(3), 0).await, Spent);
    // The next day starts over.
    for _ in 0..3 {
        assert!(matches!(take("sms/a", 101, 0, Some(3), 0).await, Wait(_)));
    }
    assert_eq!(take("sms/a", 101, 0, Some(3), 0).await, Spent);
    // A seed already at the quota counts nothing and creates no row that allows more.
    assert_eq!(take("sms/b", 100, 5, Some(5), 0).await, Spent);
    // Another provider's row is its own.
    let gap = 10_000_000;
    let waits: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            match take("email/smtp", 100, 0, None, gap).await {
                Wait(d) => v.push(d.as_micros() as u64),
                Spent => panic!("no daily quota: never spent"),
            }
        }
        v
    };
    assert_eq!(waits[0], 0, "{waits:?}");
    assert!((gap - 2_000_000..=gap).contains(&waits[1]), "{waits:?}");
    assert!(
        (2 * gap - 2_000_000..=2 * gap).contains(&waits[2]),
        "{waits:?}"
    );
    // SQLite has one daemon per file: the book is PostgreSQL's only.
    let lite = TestApp::start(Db::Sqlite, "  email:\n    transport: outbox\n")
        .await
        .unwrap();
    let e = lite
        .app
        .store
        .take_rate_slot("sms/a", 100, 0, None, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs PostgreSQL"), "{e}");
}

/// `n` SMS due on PostgreSQL for a gateway answering at once, the provider limited by `rate`
/// (a YAML mapping), drained by two daemons together, `batch` rows per claim: the second one
/// is the same project opened again, with transports of its own (its own HTTP client, its own
/// rate limiters in memory). `None` without a PostgreSQL server (outside CI).
async fn drained_by_two_daemons(
    rate: &str,
    batch: usize,
    n: usize,
) -> Option<(Gateway, TestApp, [ritualist::app::DispatchReport; 2])> {
    let now = at("2027-07-07T12:00:00Z");
    // Both daemons' clocks (the shared limit's UTC day) stay on the 7th.
    let clock: ritualist::clock::SharedClock = ritualist::clock::ManualClock::shared(now);
    let tw = Gateway::start(twilio(Twilio::Accept)).await;
    let provider = format!("          rate: {rate}\n");
    let delivery = format!("  batch_size: {batch}\n");
    let setup = (delivery.as_str(), 8, provider.as_str());
    let (tw, _token, t) = queued_sms_on(Db::Postgres, tw, setup, n, now, clock.clone()).await?;
    let cfg = Config::load(&t.dir.join("config/ritualist.yaml")).unwrap_or_else(|d| panic!("{d}"));
    let other = ritualist::app::App::open_with_clock(cfg, clock)
        .await
        .unwrap();
    let (a, b) = tokio::join!(t.app.drain(now), other.drain(now));
    Some((tw, t, [a.unwrap(), b.unwrap()]))
}

/// Two daemons draining one PostgreSQL outbox share the provider's `per_day`: of ten SMS due
/// with `per_day: 4`, four go out between them, not four each, and the other six wait for the
/// next UTC day untried.
#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_postgres_share_a_daily_limit() {
    let Some((tw, t, [a, b])) = drained_by_two_daemons("{ per_day: 4 }", 2, 10).await else {
        return;
    };
    assert_eq!(a.sent + b.sent, 4, "{a:?} {b:?}");
    assert_eq!(tw.received().len(), 4);
    let rows = t.rows().await;
    let waiting: Vec<_> = rows.iter().filter(|r| r.status != "sent").collect();
    assert_eq!(waiting.len(), 6, "{rows:?}");
    for r in waiting {
        assert_eq!((r.status.as_str(), r.attempts), ("pending", 0), "{r:?}");
    }
}

/// Two daemons draining one PostgreSQL outbox share the provider's `per_second`: 30 SMS at
/// `per_second: 10`, both daemons sending, reach the gateway paced as one sender's — 2.9 s at
/// the pacer, where two pacers of their own would take 1.4 s. Any 21 consecutive requests
/// span at least 1.5 s (2 s at the pacer, less what a loaded machine can delay the first of
/// them on its way) and the 30 at least 2.2 s.
#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_postgres_share_a_per_second_limit() {
    let Some((tw, _t, [a, b])) = drained_by_two_daemons("{ per_second: 10 }", 5, 30).await else {
        return;
    };
    assert_eq!(a.sent + b.sent, 30, "{a:?} {b:?}");
    assert!(a.sent > 0 && b.sent > 0, "both daemons sent: {a:?} {b:?}");
    assert_paced(&tw, 30, (21, 1_500), 2_200);
}

/// Twilio 21610 (the number replied STOP to our sender at the carrier): the message fails and
/// the customer is opted out of SMS (source `carrier_stop`), so next year's birthday SMS is
/// suppressed; email is untouched.
#[tokio::test]
async fn twilio_21610_opts_the_number_out_of_sms() {
    let tw = Gateway::start(|_: &Received| {
        json_answer(
            400,
            serde_json::json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}),
        )
    })
    .await;
    let (_token, twilio) = twilio_provider(&tw.url());
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    providers:\n{}",
        twilio
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    let csv = format!("{HEADER}s1,Ana,,,+40721000009,ro,Europe/Bucharest,1990-07-07,sms\n");
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 1);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.failed, d.bounced, d.paused), (1, 1, 0), "{d:?}");
    let row = &t.rows().await[0];
    assert_eq!(row.status, "failed");
    assert!(row.last_error.as_deref().unwrap_or("").contains("21610"));
    assert_eq!(
        t.app.store.consents_of(row.customer_id).await.unwrap(),
        vec![("channel:sms".to_string(), true, "carrier_stop".to_string())]
    );
    // The change is in the consent history too, with its source and time.
    let events = t.app.store.consent_events(row.customer_id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (
                e.scope.as_str(),
                e.opted_out,
                e.source.as_str(),
                e.changed_at
            ))
            .collect::<Vec<_>>(),
        vec![("channel:sms", true, "carrier_stop", now.as_second())],
        "{events:?}"
    );
    let next = at("2028-07-07T12:00:00Z");
    t.app.tick(next).await.unwrap();
    let rows = t.rows().await;
    let y2028 = rows.iter().find(|r| r.occurrence == "2028").unwrap();
    assert_eq!(y2028.status, "suppressed", "{y2028:?}");
    assert_eq!(tw.received().len(), 1, "never texted again");
}

/// `sms.concurrency` is the number of requests in flight at once: a batch of 10 to a slow
/// gateway has exactly 3 open at its peak, never more (what a crash can leave in doubt).
#[tokio::test]
async fn sms_concurrency_caps_the_requests_in_flight() {
    requests_in_flight("1", 0).await;
}

/// The same with rows committed `sending` four at a time ahead of their request
/// (`delivery.handover_batch: 4`): the commits change, the cap on requests does not.
#[tokio::test]
async fn sms_concurrency_caps_the_requests_in_flight_with_a_handover_batch() {
    requests_in_flight("4", 0).await;
}

/// A batch of emails committed ahead (`handover_batch: { email: 4 }`) and SMS one by one, sent
/// side by side: each channel keeps its own path and cap, everything goes out once.
#[tokio::test]
async fn emails_ahead_and_sms_one_by_one_in_the_same_batch() {
    requests_in_flight("{ email: 4 }", 5).await;
}

/// 12 SMS (and `emails` emails to the outbox) through a gateway answering in 40 ms.
async fn requests_in_flight(handover_batch: &str, emails: usize) {
    let tw = Gateway::start_with_delay(twilio(Twilio::Accept), Duration::from_millis(40)).await;
    let (_token, twilio) = twilio_provider(&tw.url());
    let delivery = format!(
        "  email:\n    transport: outbox\n  batch_size: 10\n  handover_batch: {handover_batch}\n  sms:\n    concurrency: 3\n    providers:\n{}",
        twilio
    );
    let t = TestApp::start(Db::Sqlite, &delivery).await.unwrap();
    let mut csv = HEADER.to_string();
    for i in 0..12 {
        csv.push_str(&format!(
            "p{i},Ana,,,+407210001{i:02},ro,Europe/Bucharest,1990-07-07,sms\n"
        ));
    }
    for i in 0..emails {
        csv.push_str(&format!(
            "e{i},Ana,,e{i}@example.com,,ro,Europe/Bucharest,1990-07-07,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-07-07T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 12 + emails);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!(
        (d.claimed, d.sent, d.failed, d.in_doubt),
        (12 + emails, 12 + emails, 0, 0),
        "{d:?}"
    );
    let counts = t.app.store.status_counts().await.unwrap();
    assert_eq!(
        counts.get("sent").copied(),
        Some((12 + emails) as i64),
        "{counts:?}"
    );
    assert_eq!(t.outbox_emails().len(), emails, "each email written once");
    let mut to = tw.numbers();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 12, "each number once: {to:?}");
    assert_eq!(tw.peak(), 3, "in flight at once");
}

/// `n` birthday SMS (to +40721000200, +40721000201, …) queued at `now` for `tw`, a
/// Twilio-shaped gateway of their own, `concurrency` requests at a time; `delivery` adds its
/// lines to the delivery section and `provider` to the provider's entry. The scratch directory
/// holds the gateway's token. `None` when `db` is PostgreSQL and no server is reachable
/// (outside CI).
async fn queued_sms(
    db: Db,
    tw: Gateway,
    delivery: &str,
    concurrency: u32,
    provider: &str,
    n: usize,
    now: jiff::Timestamp,
) -> Option<(Gateway, ScratchDir, TestApp)> {
    let clock = ritualist::clock::SystemClock::shared();
    let setup = (delivery, concurrency, provider);
    queued_sms_on(db, tw, setup, n, now, clock).await
}

/// [`queued_sms`] with the app (and its transports: the daily limits' UTC day) on `clock`.
async fn queued_sms_on(
    db: Db,
    tw: Gateway,
    (delivery, concurrency, provider): (&str, u32, &str),
    n: usize,
    now: jiff::Timestamp,
    clock: ritualist::clock::SharedClock,
) -> Option<(Gateway, ScratchDir, TestApp)> {
    let (token, twilio) = twilio_provider(&tw.url());
    let delivery = format!(
        "  email:\n    transport: outbox\n{delivery}  sms:\n    concurrency: {concurrency}\n    providers:\n{twilio}{provider}"
    );
    let t = TestApp::start_with_clock(db, &delivery, clock).await?;
    let mut csv = HEADER.to_string();
    for i in 0..n {
        csv.push_str(&format!(
            "s{i},Ana,,,+407210002{i:02},ro,Europe/Bucharest,1990-07-07,sms\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    assert_eq!(t.app.tick(now).await.unwrap().queued, n);
    Some((tw, token, t))
}

/// [`queued_sms`] for a gateway that answers each request in 2 s, one request at a time.
async fn queued_for_a_slow_gateway(
    db: Db,
    delivery: &str,
    n: usize,
    now: jiff::Timestamp,
) -> Option<(Gateway, ScratchDir, TestApp)> {
    let tw = Gateway::start_with_delay(twilio(Twilio::Accept), Duration::from_secs(2)).await;
    queued_sms(db, tw, delivery, 1, "", n, now).await
}

/// Rows committed `sending` ahead may wait for their turn longer than their lease: the lease is
/// renewed while the batch is out, so a second daemon's reaper (its clock 12 s on, past the
/// 10 s lease) finds nothing expired and puts nothing in doubt. Six SMS, one request at a
/// time, each answered in 2 s, all six committed at the start (`handover_batch: 3`).
#[tokio::test]
async fn leases_of_rows_committed_ahead_are_renewed_while_they_wait() {
    let now = at("2027-07-07T12:00:00Z");
    let (tw, _token, t) = queued_for_a_slow_gateway(
        Db::Sqlite,
        "  lease_secs: 10\n  handover_batch: 3\n",
        6,
        now,
    )
    .await
    .unwrap();
    let reaper = async {
        tokio::time::sleep(Duration::from_millis(11_500)).await;
        t.app
            .store
            .release_expired_leases(now.as_second() + 12, &[])
            .await
            .unwrap()
    };
    let (d, reaped) = tokio::join!(t.app.drain(now), reaper);
    let d = d.unwrap();
    assert_eq!(reaped, (0, 0), "nothing expired, nothing put in doubt");
    assert_eq!((d.sent, d.in_doubt, d.lease_lost), (6, 0, 0), "{d:?}");
    assert_eq!(tw.received().len(), 6);
}

/// One by one (`handover_batch: 1`), six SMS answered in 2 s each, one at a time, with a 10 s
/// lease: the drain outlasts the lease. With `batch_size: 2` the third batch is claimed 8 s
/// into the drain and its last SMS handed over at 10 s: their leases run from those moments,
/// not from the moment the drain began (which would have them expired at once). With
/// `batch_size: 6` the sixth SMS waits 10 s for its turn, `claimed`: its lease is renewed while
/// it waits. Either way a second daemon's reaper, its clock on past the first lease, finds
/// nothing to take back and puts nothing in doubt, and each number gets one SMS. On SQLite and
/// PostgreSQL (where a second daemon is a real possibility).
#[tokio::test]
async fn a_drain_longer_than_a_lease_keeps_its_rows_leased() {
    // (batch_size, when the reaper runs, the reaper's clock): both past the first lease.
    let (a, b, c, d) = tokio::join!(
        drain_longer_than_a_lease(Db::Sqlite, 2, Duration::from_millis(11_500), 12),
        drain_longer_than_a_lease(Db::Sqlite, 6, Duration::from_millis(9_500), 11),
        drain_longer_than_a_lease(Db::Postgres, 2, Duration::from_millis(11_500), 12),
        drain_longer_than_a_lease(Db::Postgres, 6, Duration::from_millis(9_500), 11),
    );
    for (batch, reaped, d, received) in [a, b, c, d].into_iter().flatten() {
        assert_eq!(reaped, (0, 0), "{batch}: nothing expired, nothing in doubt");
        assert_eq!(
            (d.sent, d.in_doubt, d.lease_lost),
            (6, 0, 0),
            "{batch}: {d:?}"
        );
        assert_eq!(received, 6, "{batch}");
    }
}

/// `None` when `db` is PostgreSQL and no server is reachable (outside CI).
async fn drain_longer_than_a_lease(
    db: Db,
    batch_size: u32,
    reaper_after: Duration,
    reaper_clock: i64,
) -> Option<(String, (u64, u64), ritualist::app::DispatchReport, usize)> {
    let now = at("2027-07-07T12:00:00Z");
    let delivery = format!("  lease_secs: 10\n  batch_size: {batch_size}\n");
    let (tw, _token, t) = queued_for_a_slow_gateway(db, &delivery, 6, now).await?;
    let reaper = async {
        tokio::time::sleep(reaper_after).await;
        t.app
            .store
            .release_expired_leases(now.as_second() + reaper_clock, &[])
            .await
            .unwrap()
    };
    let (d, reaped) = tokio::join!(t.app.drain(now), reaper);
    let what = format!("{db:?}, batch_size {batch_size}");
    Some((what, reaped, d.unwrap(), tw.received().len()))
}

/// A backlog that runs into quiet hours stops at their start: three SMS in one batch, one at a
/// time, each answered in 2 s, the drain beginning at 20:59:57 in Bucharest (SMS may go out
/// 09:00–21:00 local). The first two go at 20:59:57 and 20:59:59; the third would go at 21:00:01
/// and waits, untried, until 09:00 the next morning — the send window is checked when each
/// message is about to go, not only when its batch was claimed. (With `handover_batch` N it is
/// checked when a chunk is committed, up to 2 × N messages ahead.) On SQLite and PostgreSQL.
#[tokio::test]
async fn a_batch_that_runs_into_quiet_hours_stops_at_their_start() {
    for db in crate::harness::BOTH {
        batch_into_quiet_hours(db).await;
    }
}

async fn batch_into_quiet_hours(db: Db) {
    let now = at("2027-07-07T17:59:57Z"); // 20:59:57 in Bucharest (UTC+3)
    let Some((tw, _token, t)) =
        queued_for_a_slow_gateway(db, "  handover_batch: 1\n", 3, now).await
    else {
        return;
    };
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.deferred, d.in_doubt), (2, 1, 0), "{db:?}: {d:?}");
    assert_eq!(tw.received().len(), 2);
    let before = t.app.drain(at("2027-07-08T05:59:00Z")).await.unwrap();
    assert_eq!(before.sent, 0, "not before 09:00 local: {before:?}");
    let morning = t.app.drain(at("2027-07-08T06:00:00Z")).await.unwrap();
    assert_eq!(morning.sent, 1, "{morning:?}");
    let mut to = tw.numbers();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 3, "each number once: {to:?}");
}

/// The same with `handover_batch: 2` (chunks committed ahead, at most 4 rows unsettled): eight
/// SMS, one request at a time, 2 s each, from 20:59:57 in Bucharest. The first two chunks are
/// committed at once and go out (the last of them at 21:00:03: a chunk's window is checked
/// when it is committed, up to 2 × N messages ahead); the third chunk's places free up at
/// 21:00:01, past the window, so it and the fourth wait, untried, for the morning.
#[tokio::test]
async fn chunks_committed_ahead_stop_at_the_start_of_quiet_hours() {
    let now = at("2027-07-07T17:59:57Z"); // 20:59:57 in Bucharest (UTC+3)
    let (tw, _token, t) = queued_for_a_slow_gateway(Db::Sqlite, "  handover_batch: 2\n", 8, now)
        .await
        .unwrap();
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.deferred, d.in_doubt), (4, 4, 0), "{d:?}");
    assert_eq!(tw.received().len(), 4);
    let morning = t.app.drain(at("2027-07-08T06:00:00Z")).await.unwrap();
    assert_eq!((morning.sent, morning.deferred), (4, 0), "{morning:?}");
    let mut to = tw.numbers();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 8, "each number once: {to:?}");
}

/// `kill -9` while an SMS request is at the gateway, one by one (`handover_batch: 1`): each SMS
/// is committed `sending` right before its request and `sent` once answered, so the crash
/// leaves in doubt only what was on the wire — exactly one SMS with one request at a time, at
/// most `sms.concurrency` with three. After the restart (its lease expired) the in-doubt SMS is
/// kept, not resent (SMS prefers a possible loss to a duplicate), everything else goes out, and
/// the gateway got each number exactly once. Holds on SQLite and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_an_sms_request_leaves_only_the_sms_on_the_wire_in_doubt() {
    for db in crate::harness::BOTH {
        for concurrency in [1, 3] {
            kill_during_an_sms_request(db, concurrency).await;
        }
    }
}

async fn kill_during_an_sms_request(db: Db, concurrency: usize) {
    const N: usize = 20;
    /// The request during which the daemon dies.
    const KILL_AT: usize = 10;
    let daemon = Arc::new(AtomicU32::new(0));
    let arrived = Arc::new(AtomicUsize::new(0));
    let accept = twilio(Twilio::Accept);
    let (pid, count) = (daemon.clone(), arrived.clone());
    let tw = Gateway::start(move |r: &Received| {
        let pid = pid.load(Ordering::SeqCst);
        if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AT && pid != 0 {
            // Before this request is answered.
            let killed = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        }
        accept(r)
    })
    .await;
    let (_token, twilio) = twilio_provider(&tw.url());
    let delivery = format!(
        "  email:\n    transport: outbox\n  handover_batch: 1\n  sms:\n    concurrency: {concurrency}\n    providers:\n{twilio}"
    );
    let Some(t) = TestApp::start(db, &delivery).await else {
        return;
    };
    let mut csv = HEADER.to_string();
    for i in 0..N {
        csv.push_str(&format!(
            "k{i},Ana,,,+407210003{i:02},ro,Europe/Bucharest,1990-07-07,sms\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let now = "2027-07-07T12:00:00Z";
    assert_eq!(t.app.tick(at(now)).await.unwrap().queued, N);

    let mut run = crate::harness::ritualist_cmd(&t.dir)
        .args(["run", "--once", "--now", now])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    daemon.store(run.id(), Ordering::SeqCst);
    let status = tokio::task::spawn_blocking(move || {
        crate::harness::wait_exit(&mut run, Duration::from_secs(120), "the killed run")
    })
    .await
    .unwrap();
    assert!(!status.success(), "the run must have been killed: {status}");
    let on_the_wire = tw.received().len();
    let rows = t.rows().await;
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let (sent, sending) = (count("sent"), count("sending"));
    let what = format!("{db:?}, concurrency {concurrency}");
    // A row is `sending` from the commit right before its request: the gateway got every
    // `sent` one and every request came from a `sending` or `sent` one; with three at once a
    // row may die committed but before its request left.
    assert!(
        sent < on_the_wire && on_the_wire <= sent + sending,
        "{what}: {sent} sent, {sending} sending, {on_the_wire} requests at the gateway"
    );
    let never_left = sent + sending - on_the_wire;
    if concurrency == 1 {
        assert_eq!((sent, sending, never_left), (KILL_AT - 1, 1, 0), "{what}");
    } else {
        assert!(
            (1..=concurrency).contains(&sending),
            "{what}: {sending} in doubt, more than the requests that may be in flight"
        );
    }

    let out = crate::harness::ritualist_cmd(&t.dir)
        .args(["run", "--once", "--now", "2027-07-07T12:10:00Z"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: the restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = t.rows().await;
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    assert_eq!(
        (count("sent"), count("in_doubt")),
        (N - sending, sending),
        "{what}"
    );
    let mut to = tw.numbers();
    assert_eq!(
        to.len(),
        N - never_left,
        "{what}: one request per SMS, the in-doubt ones not resent"
    );
    to.sort();
    to.dedup();
    assert_eq!(to.len(), N - never_left, "{what}: each number once");
}
