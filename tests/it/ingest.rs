//! The ingest API (`POST /api/customers`, `POST /api/orders`) and `/metrics`, driven over
//! loopback against the real public server: bearer keys, per-field validation shared with the
//! CSV import, idempotent orders that the very next tick sees, and a scrape whose numbers are
//! checked against the ledger.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ritualist::app::App;
use ritualist::config::Secret;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::harness::{BOTH, Db, HEADER, TestApp, at};

const DELIVERY: &str = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n\
     http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n";

const API_KEY: &str = "api-key-0123456789";
const METRICS_KEY: &str = "metrics-key-42";

/// The public server of a second `App` on `t`'s database, with the given keys (set on the
/// config, not through the environment, so tests stay independent).
async fn serve(
    t: &TestApp,
    api_key: Option<&str>,
    metrics_key: Option<&str>,
) -> (SocketAddr, Arc<App>, oneshot::Sender<()>) {
    let mut cfg = t.app.cfg.clone();
    let http = cfg.http.as_mut().expect("an http section");
    http.api_key = api_key.map(Secret::new);
    http.metrics_key = metrics_key.map(Secret::new);
    let app = Arc::new(App::open(cfg).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(ritualist::http::serve_public(
        app.clone(),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    (addr, app, tx)
}

fn client() -> reqwest::Client {
    ritualist::channel::init_tls();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(addr: SocketAddr, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut req = client()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_json(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let bearer = format!("Bearer {API_KEY}");
    let (status, text) = post(addr, path, Some(&bearer), &body.to_string()).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[tokio::test]
async fn the_api_is_off_without_a_key_and_refuses_a_wrong_bearer() {
    let Some(t) = TestApp::start(Db::Sqlite, DELIVERY).await else {
        return;
    };
    let body = r#"{"external_id":"c1","email":"ana@example.com"}"#;
    let (off, _, _stop) = serve(&t, None, None).await;
    let bearer = format!("Bearer {API_KEY}");
    assert_eq!(
        post(off, "/api/customers", Some(&bearer), body).await.0,
        404
    );
    assert_eq!(post(off, "/api/orders", Some(&bearer), body).await.0, 404);

    let (on, _, _stop2) = serve(&t, Some(API_KEY), None).await;
    assert_eq!(post(on, "/api/customers", None, body).await.0, 401);
    assert_eq!(
        post(on, "/api/customers", Some("Bearer wrong"), body)
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            on,
            "/api/customers",
            Some(&format!("Basic {API_KEY}")),
            body
        )
        .await
        .0,
        401
    );
    assert_eq!(t.app.store.customer_count().await.unwrap(), 0);
    let (status, text) = post(on, "/api/customers", Some(&bearer), "{not json").await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(t.app.store.customer_count().await.unwrap(), 0);
    assert_eq!(post(on, "/api/customers", Some(&bearer), body).await.0, 200);
    assert_eq!(t.app.store.customer_count().await.unwrap(), 1);
}

#[tokio::test]
async fn customers_and_orders_are_validated_per_field_idempotent_and_seen_by_the_next_tick() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, DELIVERY).await else {
            continue;
        };
        let (addr, _, _stop) = serve(&t, Some(API_KEY), None).await;

        // A batch: two good customers, one with two bad fields, one repeating an id.
        let (status, r) = post_json(
            addr,
            "/api/customers",
            json!([
                {"external_id": "c1", "first_name": "Ana", "email": "ana@example.com", "locale": "en",
                 "time_zone": "UTC", "dates": {"wedding": "2015-06-20"}, "tier": "gold"},
                {"external_id": "c2", "email": "not-an-address", "birthday": "2001-02-30"},
                {"external_id": "c3", "phone": "0721 000 003", "preferred_channel": "sms"},
                {"external_id": "c1", "email": "other@example.com"}
            ]),
        )
        .await;
        assert_eq!(status, 422, "{db:?} {r}");
        assert_eq!(
            (
                &r["accepted"],
                &r["rejected"],
                &r["inserted"],
                &r["updated"]
            ),
            (&json!(2), &json!(2), &json!(2), &json!(0)),
            "{r}"
        );
        let errors: Vec<(u64, &str)> = r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        assert_eq!(
            errors,
            [(1, "birthday"), (1, "email"), (3, "external_id")],
            "{r}"
        );
        assert!(
            r["errors"][1]["message"]
                .as_str()
                .unwrap()
                .contains("missing `@`"),
            "{r}"
        );
        assert!(!r["errors"][1]["hint"].as_str().unwrap().is_empty());
        // The CSV import rejects the same row for the same reasons.
        let csv = t
            .customers("external_id,email,birthday\nc2,not-an-address,2001-02-30\n")
            .await;
        assert_eq!(csv.len(), 1);
        assert!(csv[0].1.contains("column `email`") && csv[0].1.contains("column `birthday`"));

        let c1 = t.app.store.find_customer("c1").await.unwrap().unwrap();
        assert_eq!(c1.email.as_deref(), Some("ana@example.com"));
        assert!(c1.custom_dates.contains("wedding") && c1.attributes.contains("gold"));
        let c3 = t.app.store.find_customer("c3").await.unwrap().unwrap();
        assert_eq!(c3.phone.as_deref(), Some("+40721000003"));
        assert!(t.app.store.find_customer("c2").await.unwrap().is_none());

        // A tick runs; then an order placed three hours before it arrives late, twice.
        let t0 = ritualist::clock::now();
        t.app.tick(t0).await.unwrap();
        let ordered = t0 - jiff::SignedDuration::from_hours(3);
        let order = json!({"external_id": "o-1", "customer": "c1", "ordered_at": ordered.to_string(),
                           "amount": "49.90", "currency": "EUR"});
        let (status, r) = post_json(addr, "/api/orders", order.clone()).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!((&r["inserted"], &r["updated"]), (&json!(1), &json!(0)));
        let (status, r) = post_json(addr, "/api/orders", json!([order])).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!((&r["inserted"], &r["updated"]), (&json!(0), &json!(1)));
        let (status, r) = post_json(
            addr,
            "/api/orders",
            json!([{"external_id": "o-2", "customer": "nobody", "ordered_at": ordered.to_string(),
                    "amount": "1", "currency": "EUR"},
                   {"external_id": "o-3", "customer": "c1", "amount": "x", "currency": "EUR"}]),
        )
        .await;
        assert_eq!(status, 422, "{r}");
        let errors: Vec<(u64, &str)> = r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        assert_eq!(errors, [(0, "customer"), (1, "ordered_at")], "{r}");
        assert_eq!(r["accepted"], 0);

        // One order, and the customer's order facts reflect it.
        let c1 = t.app.store.find_customer("c1").await.unwrap().unwrap();
        assert_eq!(c1.order_count, 1, "{db:?}");
        assert_eq!(c1.total_spent_minor, 4990);
        assert_eq!(c1.last_order_at, Some(ordered.as_second()));

        // The next tick's window starts after the order, yet it queues the thank-you.
        let r = t
            .app
            .tick(t0 + jiff::SignedDuration::from_secs(60))
            .await
            .unwrap();
        let rows = t.rows().await;
        let thanks: Vec<_> = rows.iter().filter(|d| d.ritual == "thank_you").collect();
        assert_eq!(thanks.len(), 1, "{db:?} {r:?} {rows:#?}");
        assert_eq!(
            (thanks[0].customer_id, thanks[0].status.as_str()),
            (c1.id, "pending")
        );
        let sent = t
            .app
            .drain(t0 + jiff::SignedDuration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(sent.sent, 1, "{db:?}");
        assert!(t.outbox_emails()[0].contains("ana@example.com"));
    }
}

/// `run --once`-equivalent work on the served app, then a scrape: exact ledger counts, the
/// latency histogram's count, and the bearer key of `/metrics`.
#[tokio::test]
async fn metrics_count_the_ledger_and_the_sends_of_this_process() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, DELIVERY).await else {
            continue;
        };
        assert!(
            t.customers(&format!(
                "{HEADER}\
                 m1,Ana,,ana@example.com,,en,UTC,1990-03-01,email\n\
                 m2,Ion,,ion@example.com,,en,UTC,1991-03-01,email\n\
                 m3,Eva,,eva@example.com,,en,UTC,1992-03-01,email\n\
                 m4,Dan,,,+40721000004,en,UTC,1993-03-01,sms\n"
            ))
            .await
            .is_empty()
        );
        let m3 = t.app.store.find_customer("m3").await.unwrap().unwrap().id;
        t.app
            .store
            .set_consent(m3, "all", true, "cli", 0)
            .await
            .unwrap();
        let (addr, app, _stop) = serve(&t, None, Some(METRICS_KEY)).await;
        let now = at("2027-03-01T12:00:00Z");
        let ticked = app.tick(now).await.unwrap();
        let drained = app.drain(now).await.unwrap();

        // The truth, from the ledger.
        let rows = t.rows().await;
        let n = |status: &str, channel: &str| {
            rows.iter()
                .filter(|d| d.ritual == "birthday" && d.status == status && d.channel == channel)
                .count()
        };
        let sent_email = n("sent", "email");
        let sent_sms = n("sent", "sms");
        assert_eq!(
            (sent_email, sent_sms, drained.sent as usize),
            (2, 1, 3),
            "{db:?} {ticked:?} {rows:#?}"
        );
        let opted_out = rows
            .iter()
            .filter(|d| d.status == "suppressed" && d.reason.as_deref() == Some("opted_out:all"))
            .count();
        assert_eq!(opted_out, 1, "{rows:#?}");

        let http = client();
        let r = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = http
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(METRICS_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        let text = r.text().await.unwrap();
        let samples = parse(&text);
        let get = |key: &str| {
            *samples
                .get(key)
                .unwrap_or_else(|| panic!("no sample `{key}` in\n{text}"))
        };
        assert_eq!(
            get(r#"ritualist_sent{ritual="birthday",channel="email"}"#),
            2.0
        );
        assert_eq!(
            get(r#"ritualist_sent{ritual="birthday",channel="sms"}"#),
            1.0
        );
        assert_eq!(
            get(r#"ritualist_suppressed{ritual="birthday",channel="none",reason="opted_out:all"}"#),
            1.0
        );
        assert_eq!(
            get(r#"ritualist_due{ritual="birthday",channel="email"}"#),
            2.0
        );
        // A decision not to send names no channel: the ledger says `none`.
        assert_eq!(
            get(r#"ritualist_due{ritual="birthday",channel="none"}"#),
            1.0
        );
        assert_eq!(get(r#"ritualist_queue_depth{status="pending"}"#), 0.0);
        assert_eq!(
            get(r#"ritualist_send_duration_seconds_count{channel="email",outcome="ok"}"#),
            2.0
        );
        assert_eq!(
            get(
                r#"ritualist_send_duration_seconds_bucket{channel="email",outcome="ok",le="+Inf"}"#
            ),
            2.0
        );
        assert_eq!(
            get(r#"ritualist_send_duration_seconds_count{channel="sms",outcome="ok"}"#),
            1.0
        );
        assert!(get("process_start_time_seconds") > 1.7e9);
        // Every series has its TYPE line.
        for name in [
            "ritualist_due",
            "ritualist_sent",
            "ritualist_failed",
            "ritualist_suppressed",
            "ritualist_queue_depth",
            "ritualist_send_duration_seconds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# TYPE {name} "))),
                "{name}\n{text}"
            );
        }
    }
}

/// Sample lines of a text exposition: `name{labels}` → value.
fn parse(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {l}"));
            (key.to_string(), v)
        })
        .collect()
}
