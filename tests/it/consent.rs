//! The daemon's public HTTP server, driven over loopback with a real HTTP client: unsubscribe
//! links (GET shows, POST acts, RFC 8058 one-click), the preference page, inbound SMS
//! keywords (Twilio's signed webhook and the generic JSON one), `/healthz`, and the effect of
//! an opt-out on the next tick.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ritualist::app::{App, UnsubscribeToken};
use ritualist::domain::Channel;
use tokio::sync::oneshot;

use crate::harness::{BOTH, Db, HEADER, TestApp, at, ritualist, ritualist_cmd, wait_exit};

const PUBLIC: &str = "https://shop.example/r";

/// Outbox delivery plus the `http:` section (the config ends with the delivery section, so a
/// top-level key can follow it).
fn delivery(sms: &str) -> String {
    format!(
        "  email:\n    transport: outbox\n{sms}\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: {PUBLIC}\n  sms_help: \"Floare: reply STOP to stop\"\n"
    )
}

const SMS_OUTBOX: &str = "  sms:\n    transport: outbox\n";

/// March-1 birthdays in Bucharest and Moscow.
fn customers() -> String {
    format!(
        "{HEADER}\
         c1,Ana,Popescu,ana@example.com,+40721000001,ro,Europe/Bucharest,1990-03-01,email\n\
         c2,Иван,Петров,ivan@example.com,+79161234567,ru,Europe/Moscow,1985-03-01,sms\n\
         c3,Olga,,olga@example.com,,en,Europe/Bucharest,1980-03-01,email\n\
         c4,Mihai,,mihai@example.com,,ro,Europe/Bucharest,1975-03-01,email\n"
    )
}

/// The public server of a second `App` on the same database (the test keeps its own), on a
/// free loopback port, reading the same clock; stopped when the returned sender is dropped
/// or fired.
async fn serve(t: &TestApp) -> (SocketAddr, oneshot::Sender<()>) {
    let app = App::open_with_clock(t.app.cfg.clone(), t.app.clock.clone());
    let app = Arc::new(app.await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(ritualist::http::serve_public(app, listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn client() -> reqwest::Client {
    ritualist::channel::init_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn consents(t: &TestApp, id: i64) -> Vec<(String, bool)> {
    t.app
        .store
        .consent_map(id)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn id_of(t: &TestApp, ext: &str) -> i64 {
    t.app.store.find_customer(ext).await.unwrap().unwrap().id
}

fn unsub(t: &TestApp, customer_id: i64, channel: Channel, category: &str) -> String {
    t.app.link_keys.unsubscribe_token(&UnsubscribeToken {
        customer_id,
        channel,
        category: category.into(),
    })
}

/// The birthday rows of one year: (customer id, channel, status, reason).
async fn birthdays(t: &TestApp, year: &str) -> Vec<(i64, String, String, String)> {
    let mut v: Vec<_> = t
        .rows()
        .await
        .into_iter()
        .filter(|d| d.ritual == "birthday" && d.occurrence == year)
        .map(|d| {
            (
                d.customer_id,
                d.channel,
                d.status.to_string(),
                d.reason.unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn unsubscribe_links_act_only_when_posted_for_their_own_customer_and_the_next_tick_obeys() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, &delivery(SMS_OUTBOX)).await else {
            continue;
        };
        assert!(t.customers(&customers()).await.is_empty());
        let (c1, c2, c3, c4) = (
            id_of(&t, "c1").await,
            id_of(&t, "c2").await,
            id_of(&t, "c3").await,
            id_of(&t, "c4").await,
        );
        let now = at("2027-03-01T12:00:00Z");
        t.app.tick(now).await.unwrap();
        let sent = t.app.drain(now).await.unwrap();
        assert_eq!((sent.sent, sent.failed), (4, 0), "{db:?}");
        let before = birthdays(&t, "2027").await;

        // Ana's email carries the one-click URL of her token in List-Unsubscribe.
        let tok1 = unsub(&t, c1, Channel::Email, "birthday");
        let ana = t
            .outbox_emails()
            .into_iter()
            .find(|m| m.contains("ana@example.com"))
            .expect("Ana's email");
        assert!(
            ana.contains(&format!("List-Unsubscribe: <{PUBLIC}/u/{tok1}>\r\n")),
            "{ana}"
        );
        assert!(ana.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));

        let (addr, stop) = serve(&t).await;
        let http = client();
        let base = format!("http://{addr}");

        // GET shows the choice in her language and changes nothing (mail scanners prefetch).
        for _ in 0..2 {
            let r = http.get(format!("{base}/u/{tok1}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers().get("set-cookie").is_none());
            let body = r.text().await.unwrap();
            assert!(body.contains("lang=\"ro\""), "{body}");
            assert!(body.contains("Dezabonare"), "{body}");
            assert!(body.contains("value=\"category\""), "{body}");
            assert!(body.contains("value=\"channel\""), "{body}");
        }
        assert!(
            consents(&t, c1).await.is_empty(),
            "{db:?}: GET changed consent"
        );

        // A forged token, a tampered one (another customer, another category), a token of
        // another key and a preference token: 404, nothing recorded for anyone.
        let forged = format!("v2.00000000.u.{c1}.email.birthday.AAAAAAAAAAAAAAAAAAAAAA");
        let other_customer = tok1.replacen(&format!(".u.{c1}."), &format!(".u.{c3}."), 1);
        let other_category = tok1.replacen(".birthday.", ".digest.", 1);
        let other_key = ritualist::app::LinkKeys::new(b"not the instance key", None)
            .unsubscribe_token(&UnsubscribeToken {
                customer_id: c3,
                channel: Channel::Email,
                category: "birthday".into(),
            });
        let prefs = t.app.link_keys.preferences_token(c3);
        for bad in [
            &forged,
            &other_customer,
            &other_category,
            &other_key,
            &prefs,
        ] {
            assert_ne!(bad, &tok1);
            for body in ["List-Unsubscribe=One-Click", "scope=channel"] {
                let r = http
                    .post(format!("{base}/u/{bad}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 404, "{db:?} {bad}");
            }
            let r = http.get(format!("{base}/u/{bad}")).send().await.unwrap();
            assert_eq!(r.status(), 404, "{db:?} {bad}");
        }
        for c in [c1, c2, c3, c4] {
            assert!(consents(&t, c).await.is_empty(), "{db:?}: customer {c}");
        }

        // One-click: her birthday category only, no page, no cookie. A replay is harmless.
        // Form-encoded, then as RFC 8058's own example (multipart).
        let multipart = "--b0undary\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b0undary--\r\n";
        for (content_type, body) in [
            (
                "application/x-www-form-urlencoded",
                "List-Unsubscribe=One-Click",
            ),
            ("multipart/form-data; boundary=b0undary", multipart),
        ] {
            let r = http
                .post(format!("{base}/u/{tok1}"))
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.headers().get("set-cookie").is_none());
            assert!(r.headers().get("location").is_none());
        }
        assert_eq!(
            consents(&t, c1).await,
            vec![("category:birthday".to_string(), true)]
        );
        let events = t.app.store.consent_events(c1).await.unwrap();
        assert_eq!(
            events.len(),
            1,
            "{db:?}: the replay was recorded: {events:?}"
        );
        assert_eq!(
            (
                events[0].scope.as_str(),
                events[0].opted_out,
                events[0].source.as_str()
            ),
            ("category:birthday", true, "one_click")
        );
        assert!(events[0].changed_at > 1_700_000_000);

        // Mihai chooses "everything by email" on the page.
        let tok4 = unsub(&t, c4, Channel::Email, "birthday");
        let r = http
            .post(format!("{base}/u/{tok4}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("scope=channel")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains("V-ați dezabonat"), "{body}");
        assert!(body.contains("href=\"../p/v2."), "{body}");
        assert_eq!(
            consents(&t, c4).await,
            vec![("channel:email".to_string(), true)]
        );
        assert_eq!(
            t.app.store.consent_events(c4).await.unwrap()[0].source,
            "link"
        );
        // A POST without a choice does nothing.
        let tok3 = unsub(&t, c3, Channel::Email, "birthday");
        let r = http
            .post(format!("{base}/u/{tok3}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("scope=everything&next=https://evil.example/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(consents(&t, c3).await.is_empty());
        let _ = stop.send(());

        // The very next tick (the binary, as cron or a trial would run it), a year later:
        // nothing for Ana's birthday, nothing by email to Mihai (who has no phone), and the
        // others exactly as before.
        let out = ritualist(
            &t.dir,
            &[
                "--config",
                "config/ritualist.yaml",
                "run",
                "--once",
                "--now",
                "2028-03-01T12:00:00Z",
            ],
        );
        assert!(
            out.status.success(),
            "{db:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = birthdays(&t, "2028").await;
        let row = |rows: &[(i64, String, String, String)], c: i64| {
            rows.iter()
                .find(|r| r.0 == c)
                .cloned()
                .unwrap_or_else(|| panic!("{db:?}: no birthday row for {c}: {rows:?}"))
        };
        let a1 = row(&after, c1);
        assert_eq!(a1.2, "suppressed", "{db:?}: {a1:?}");
        assert!(a1.3.contains("category:birthday"), "{db:?}: {a1:?}");
        let a4 = row(&after, c4);
        assert_eq!(a4.2, "suppressed", "{db:?}: {a4:?}");
        assert!(a4.3.contains("channel:email"), "{db:?}: {a4:?}");
        for c in [c2, c3] {
            let (b, a) = (row(&before, c), row(&after, c));
            assert_eq!((&a.1, &a.2), (&b.1, &b.2), "{db:?}: customer {c}");
            assert_eq!(a.2, "sent");
        }
    }
}

#[tokio::test]
async fn the_preference_page_shows_and_switches_categories_and_channels() {
    let Some(t) = TestApp::start(Db::Sqlite, &delivery(SMS_OUTBOX)).await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    let c2 = id_of(&t, "c2").await;
    let (addr, _stop) = serve(&t).await;
    let http = client();
    let url = format!("http://{addr}/p/{}", t.app.link_keys.preferences_token(c2));
    let page = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("lang=\"ru\""), "{page}");
    // Every category of the loaded rituals, holidays by their name in his language.
    for cat in ["birthday", "digest", "holidays.mothers_day"] {
        assert!(
            page.contains(&format!("value=\"{cat}\" checked")),
            "{cat}: {page}"
        );
    }
    assert!(page.contains("value=\"sms\" checked"), "{page}");
    assert!(consents(&t, c2).await.is_empty(), "GET changed consent");

    // Everything on except SMS and the digest; an unknown category cannot be smuggled in.
    let mut form: Vec<(String, String)> = vec![
        ("form".into(), "preferences".into()),
        ("all".into(), "on".into()),
        ("channel".into(), "email".into()),
    ];
    for cap in page.split("name=\"category\" value=\"").skip(1) {
        let cat = cap.split('"').next().unwrap();
        if cat != "digest" {
            form.push(("category".into(), cat.into()));
        }
    }
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let saved = r.text().await.unwrap();
    assert!(saved.contains("value=\"sms\">"), "{saved}");
    assert!(saved.contains("value=\"digest\">"), "{saved}");
    assert_eq!(
        consents(&t, c2).await,
        vec![
            ("category:digest".to_string(), true),
            ("channel:sms".to_string(), true)
        ]
    );
    let events = t.app.store.consent_events(c2).await.unwrap();
    assert!(
        events.iter().all(|e| e.source == "preferences"),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
    // Saving the same form again records nothing new.
    http.post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(t.app.store.consent_events(c2).await.unwrap().len(), 2);
    // An empty POST is not "everything off".
    let r = http.post(&url).body("").send().await.unwrap();
    assert_eq!(r.status(), 400);
    // An unsubscribe token does not open the preference page.
    let r = http
        .get(format!(
            "http://{addr}/p/{}",
            unsub(&t, c2, Channel::Sms, "birthday")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Switching SMS back on.
    let body = "form=preferences&all=on&channel=email&channel=sms&category=digest";
    http.post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(
        consents(&t, c2)
            .await
            .contains(&("channel:sms".to_string(), false))
    );
}

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

#[tokio::test]
async fn twilio_stop_and_start_with_signed_webhooks_only() {
    let scratch = crate::peers::ScratchDir::new("ritualist-twilio-token");
    let token_file = scratch.path().join("twilio-token");
    std::fs::write(&token_file, "twilio-auth-token\n").unwrap();
    let sms = format!(
        "  sms:\n    providers:\n      - twilio:\n          account_sid: AC0123456789abcdef0123456789abcdef\n\
         \x20         auth_token_file: {}\n          from: \"+15005550006\"\n          base_url: http://127.0.0.1:9\n",
        token_file.display()
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery(&sms)).await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    let (c1, c2) = (id_of(&t, "c1").await, id_of(&t, "c2").await);
    let (addr, _stop) = serve(&t).await;
    let http = client();
    let signed_url = format!("{PUBLIC}/sms/twilio");
    let post = |params: Vec<(&'static str, String)>, signature: String| {
        let http = http.clone();
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        async move {
            let r = http
                .post(format!("http://{addr}/sms/twilio"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("X-Twilio-Signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    // Ivan's number written as a person would; the importer stored +79161234567.
    let stop = |text: &str| {
        vec![
            ("MessageSid", "SM0123".to_string()),
            ("From", "+7 916 123-45-67".to_string()),
            ("To", "+15005550006".to_string()),
            ("Body", text.to_string()),
        ]
    };
    let sign = |p: &[(&'static str, String)], token: &str, url: &str| {
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        twilio_signature(token, url, &refs)
    };

    // Bad signatures: another token, another URL, a changed body, none at all.
    let p = stop("СТОП");
    for sig in [
        sign(&p, "wrong-token", &signed_url),
        sign(&p, "twilio-auth-token", "https://evil.example/sms/twilio"),
        sign(&stop("START"), "twilio-auth-token", &signed_url),
        String::new(),
    ] {
        let (status, _) = post(p.clone(), sig).await;
        assert_eq!(status, 403);
    }
    assert!(consents(&t, c2).await.is_empty());

    // STOP (in Russian) with a good signature: SMS off for Ivan only.
    let (status, body) = post(p.clone(), sign(&p, "twilio-auth-token", &signed_url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<Response>"), "{body}");
    assert_eq!(
        consents(&t, c2).await,
        vec![("channel:sms".to_string(), true)]
    );
    assert!(consents(&t, c1).await.is_empty());

    // START: back on.
    let p = stop("start");
    let (status, _) = post(p.clone(), sign(&p, "twilio-auth-token", &signed_url)).await;
    assert_eq!(status, 200);
    assert_eq!(
        consents(&t, c2).await,
        vec![("channel:sms".to_string(), false)]
    );
    let events = t.app.store.consent_events(c2).await.unwrap();
    let seen: Vec<(bool, &str)> = events
        .iter()
        .map(|e| (e.opted_out, e.source.as_str()))
        .collect();
    assert_eq!(seen, vec![(true, "sms_keyword"), (false, "sms_keyword")]);

    // HELP answers with the configured text, as TwiML.
    let p = stop("HELP");
    let (status, body) = post(p.clone(), sign(&p, "twilio-auth-token", &signed_url)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<Response><Message>Floare: reply STOP to stop</Message></Response>"),
        "{body}"
    );
    assert_eq!(t.app.store.consent_events(c2).await.unwrap().len(), 2);
}

/// `ritualist run` with an `http:` section serves the public routes, answers `/healthz`,
/// takes generic inbound SMS with its bearer key, and stops cleanly on SIGTERM.
#[tokio::test]
async fn the_daemon_serves_http_and_stops_with_it() {
    let Some(t) = TestApp::start(Db::Sqlite, &delivery(SMS_OUTBOX)).await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    let c2 = id_of(&t, "c2").await;
    let mut child = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "run"])
        .env("RITUALIST_INBOUND_KEY", "inbound-key-123")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The daemon logs the address it bound (port 0: any free one).
    let rx = crate::harness::listening_on(&mut child);
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(a)) => a,
        other => {
            let _ = child.kill();
            panic!("the daemon did not report its address: {other:?}");
        }
    };
    let http = client();
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let health: serde_json::Value = r.json().await.unwrap();
    assert_eq!(health["database"], "reachable", "{health}");
    assert!(health["queue_depth"].is_i64(), "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["paused_channels"], serde_json::json!([]), "{health}");

    let inbound = |auth: Option<&'static str>, text: &'static str| {
        let http = http.clone();
        let addr = addr.clone();
        async move {
            let mut req = http
                .post(format!("http://{addr}/sms/inbound"))
                .header("content-type", "application/json")
                .body(serde_json::json!({"from": "+79161234567", "text": text}).to_string());
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(inbound(None, "STOP").await.0, 401);
    assert_eq!(inbound(Some("Bearer wrong"), "STOP").await.0, 401);
    assert!(consents(&t, c2).await.is_empty());
    let (status, body) = inbound(Some("Bearer inbound-key-123"), "STOP").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("opted_out"), "{body}");
    assert_eq!(
        consents(&t, c2).await,
        vec![("channel:sms".to_string(), true)]
    );
    let (_, body) = inbound(Some("Bearer inbound-key-123"), "HELP").await;
    assert!(body.contains("Floare: reply STOP to stop"), "{body}");
    // A body over the limit is refused.
    let r = http
        .post(format!("http://{addr}/sms/inbound"))
        .header("authorization", "Bearer inbound-key-123")
        .body(vec![b'x'; 20 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_exit(
        &mut child,
        Duration::from_secs(30),
        "the daemon after SIGTERM",
    );
    assert!(status.success(), "{status}");
    assert!(
        http.get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err(),
        "the server still answers after the daemon stopped"
    );
}

/// `/healthz` is 503 when the database is gone (a dropped PostgreSQL database).
#[tokio::test]
async fn healthz_is_503_without_a_database() {
    let Some(t) = TestApp::start(Db::Postgres, &delivery(SMS_OUTBOX)).await else {
        return;
    };
    let (addr, _stop) = serve(&t).await;
    let http = client();
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let name = t
        .app
        .cfg
        .database_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let server = crate::peers::PgDatabase::server_url();
    let out = Command::new("psql")
        .args([
            &server,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("DROP DATABASE \"{name}\" WITH (FORCE)"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["database"], "unreachable");
}

/// The pages record a change at the time of the app's clock (a manual one here), not the
/// system's: handlers read `app.clock`.
#[tokio::test]
async fn consent_changes_are_stamped_with_the_apps_clock() {
    let then = at("2031-06-01T08:00:00Z");
    let clock = ritualist::clock::ManualClock::shared(then);
    let Some(t) = TestApp::start_with_clock(Db::Sqlite, &delivery(SMS_OUTBOX), clock.clone()).await
    else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    let c1 = id_of(&t, "c1").await;
    let (addr, _stop) = serve(&t).await;
    clock.advance(Duration::from_secs(90));
    let r = client()
        .post(format!(
            "http://{addr}/u/{}",
            unsub(&t, c1, Channel::Email, "birthday")
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = t.app.store.consent_events(c1).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].changed_at, then.as_second() + 90, "{events:?}");
}
