//! Kannel in both directions (issue 31): customers text STOP, `СТОП` (UCS-2), `stop.`, a plain
//! message and HELP from a phone (fakesmsc) into a real bearerbox + smsbox whose
//! `group = sms-service` is the one docs/operator.md tells operators to paste, pointed straight
//! at the daemon's `/sms/kannel`, with no adapter. The right customers are opted out of SMS
//! (`plan` shows it), the plain message changes nothing, HELP's reply comes back to the phone
//! through Kannel, and a Kannel service with a wrong or no key is refused and logged.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ritualist::app::PlanRequest;

use crate::harness::{Db, HEADER, TestApp, ritualist_cmd, wait_exit};
use crate::peers::{Kannel, ReceivedSms};

const KEY: &str = "k31inboundKey0123456789";

/// The `sms-service` blocks of docs/operator.md (get-url first, then post-url), as operators
/// copy them.
fn readme_services() -> Vec<String> {
    let readme = std::fs::read_to_string(
        std::path::Path::new(crate::harness::REPO).join("docs/operator.md"),
    )
    .unwrap();
    readme
        .split("```conf\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("group = sms-service"))
        .map(str::to_string)
        .collect()
}

/// Customers with a phone only (so an SMS opt-out leaves them nothing), phones imported in
/// international and national formats; March-1 birthdays.
fn customers() -> String {
    format!(
        "{HEADER}\
         k1,Ana,,,+40721000001,ro,Europe/Bucharest,1990-03-01,sms\n\
         k2,Иван,,,+40 721 000 002,ru,Europe/Bucharest,1985-03-01,sms\n\
         k3,Olga,,,0721 000 003,en,Europe/Bucharest,1980-03-01,sms\n\
         k4,Mihai,,,+40721000004,ro,Europe/Bucharest,1975-03-01,sms\n\
         k5,Dan,,,0721000005,ro,Europe/Bucharest,1970-03-01,sms\n\
         k6,Eva,,,+40721000006,ro,Europe/Bucharest,1995-03-01,sms\n"
    )
}

/// The birthday decisions of 2027-03-01, by customer: (decision, channel, reason).
async fn birthday_plan(t: &TestApp) -> Vec<(String, String, String, String)> {
    let req = PlanRequest {
        date: jiff::civil::date(2027, 3, 1),
        days: 1,
        ritual: Some("birthday".into()),
        customer: None,
    };
    let mut v: Vec<_> = t
        .app
        .plan(&req, |_, _| {})
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                d.customer,
                d.decision.to_string(),
                d.channel.unwrap_or_default(),
                d.reason.unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

/// `ritualist run` with its stderr collected; returns the child, the address it listens on and
/// the log lines so far (growing).
fn start_daemon(t: &TestApp, env: (&str, &str)) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    let mut child = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "run"])
        .env(env.0, env.1)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line.unwrap_or_default());
        }
    });
    let addr = wait_until(Duration::from_secs(60), || {
        lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|l| {
                let i = l.find("listening on ")?;
                Some(
                    l[i + 13..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect::<String>(),
                )
            })
    });
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!(
            "the daemon did not report its address:\n{}",
            lines.lock().unwrap().join("\n")
        );
    };
    (child, addr, lines)
}

/// Polls `f` every 50 ms until it gives `Some`, or `None` after `timeout`.
fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(lines: &Mutex<Vec<String>>, needle: &str) -> usize {
    lines
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

/// What the phone received, as (to, text).
fn replies(k: &Kannel) -> Vec<(String, String)> {
    k.received()
        .into_iter()
        .map(|r: ReceivedSms| (r.to, r.text))
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Form {
    /// `get-url`, key as HTTP Basic, `%b` raw bytes; smsbox does not recode UCS-2.
    Get,
    /// `post-url`, key as `?key=`, `mo-recode = true`, a STOP confirmation and a Cyrillic HELP.
    Post,
}

async fn stop_and_help_through_kannel(db: Db, form: Form) {
    let services = readme_services();
    assert_eq!(
        services.len(),
        2,
        "docs/operator.md: the get-url and post-url blocks"
    );
    let (help, stop_reply) = match form {
        Form::Get => ("Floare: reply STOP to stop", None),
        Form::Post => (
            "Floare: STOP — отписка",
            Some("Floare: unsubscribed, reply START to resubscribe"),
        ),
    };
    let stop_line = stop_reply.map_or(String::new(), |r| format!("  sms_stop_reply: \"{r}\"\n"));
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n\
         \x20 sms_help: \"{help}\"\n{stop_line}"
    );
    let Some(t) = TestApp::start(db, &delivery).await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    let all_send: Vec<_> = (1..=6)
        .map(|i| {
            (
                format!("k{i}"),
                "send".to_string(),
                "sms".to_string(),
                String::new(),
            )
        })
        .collect();
    assert_eq!(birthday_plan(&t).await, all_send);

    // The key from the environment (get) or from a file named by `_FILE` (post).
    let key_file = t.dir.join("kannel-key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let key_file = key_file.display().to_string();
    let env = match form {
        Form::Get => ("RITUALIST_KANNEL_INBOUND_KEY", KEY),
        Form::Post => ("RITUALIST_KANNEL_INBOUND_KEY_FILE", key_file.as_str()),
    };
    let (mut daemon, addr, log) = start_daemon(&t, env);

    let service = match form {
        Form::Get => &services[0],
        Form::Post => &services[1],
    }
    .replace("127.0.0.1:8080", &addr)
    .replace("SECRET", KEY);
    let groups = format!(
        "{service}\n\
         group = sms-service\nkeyword = badkey\n\
         get-url = \"http://127.0.0.1:{port}/sms/kannel?key=not-{KEY}&from=%p&text=%r\"\n\
         omit-empty = true\n\n\
         group = sms-service\nkeyword = nokey\n\
         get-url = \"http://{addr}/sms/kannel?from=%p&text=%r\"\n\
         omit-empty = true\n",
        port = addr.rsplit(':').next().unwrap()
    );
    let smsbox_extra: &[&str] = match form {
        Form::Get => &[],
        Form::Post => &["mo-recode = true"],
    };
    let Some(mut kannel) = Kannel::start_conf(&[], smsbox_extra, &groups) else {
        let _ = daemon.kill();
        return;
    };
    let wait = Duration::from_secs(30);
    let mut acted = 0;
    let mut refused = 0;
    let mut expect_replies: Vec<(String, String)> = Vec::new();
    // Kannel's own answer to the customer when the URL fails (`reply-couldnotfetch`).
    let kannel_failed = Some("Could not fetch content, sorry.");
    // (fakesmsc line, handled by ritualist (true) or refused (false), the reply at the phone)
    let texts: [(&str, bool, Option<&str>); 7] = [
        // International format, imported international.
        ("+40721000001 1234 text STOP", true, stop_reply),
        // National format, UCS-2 Cyrillic; imported as "+40 721 000 002".
        (
            "0721000002 1234 ucs2 %04%21%04%22%04%1E%04%1F",
            true,
            stop_reply,
        ),
        // International format, imported national ("0721 000 003").
        ("+40721000003 1234 text stop.", true, stop_reply),
        ("+40721000004 1234 text Thanks for the flowers", true, None),
        // The services with a wrong key and with none: refused.
        ("+40721000006 1234 text badkey STOP", false, kannel_failed),
        ("+40721000006 1234 text nokey STOP", false, kannel_failed),
        // Last: its reply coming back means Kannel has answered everything before it.
        ("0721000005 1234 text HELP", true, Some(help)),
    ];
    for (line, handled, reply) in texts {
        kannel.send_mo(line);
        let (needle, n) = if handled {
            acted += 1;
            ("Kannel inbound SMS action", acted)
        } else {
            refused += 1;
            ("missing or wrong key: refused (401)", refused)
        };
        let seen = wait_until(wait, || (count(&log, needle) >= n).then_some(()));
        if seen.is_none() {
            let _ = daemon.kill();
            panic!(
                "ritualist did not log `{needle}` for {line:?}:\n{}\n{}",
                log.lock().unwrap().join("\n"),
                kannel.logs()
            );
        }
        if let Some(r) = reply {
            let to = line.split(' ').next().unwrap().to_string();
            expect_replies.push((to.clone(), r.to_string()));
            let want = expect_replies.iter().filter(|(t, _)| *t == to).count();
            // The fakesmsc that sent it must get the reply before the next one replaces it.
            let got = wait_until(wait, || {
                (replies(&kannel).iter().filter(|(t, _)| *t == to).count() >= want).then_some(())
            });
            if got.is_none() {
                let _ = daemon.kill();
                panic!(
                    "no reply to {line:?} at the phone: {:?}\n{}",
                    replies(&kannel),
                    kannel.logs()
                );
            }
        }
    }
    assert_eq!(replies(&kannel), expect_replies, "{}", kannel.logs());

    // STOP (international), СТОП (national, UCS-2), `stop.` (imported national): opted out of
    // SMS, once each, by an SMS keyword; the plain message, HELP and the refused STOPs: nothing.
    let opted = |ext: &str| {
        (
            ext.to_string(),
            "suppress".to_string(),
            String::new(),
            "opted_out:channel:sms".to_string(),
        )
    };
    let mut expected = vec![opted("k1"), opted("k2"), opted("k3")];
    expected.extend(all_send[3..].iter().cloned());
    assert_eq!(birthday_plan(&t).await, expected);
    for (ext, n) in [
        ("k1", 1),
        ("k2", 1),
        ("k3", 1),
        ("k4", 0),
        ("k5", 0),
        ("k6", 0),
    ] {
        let id = t.app.store.find_customer(ext).await.unwrap().unwrap().id;
        let events = t.app.store.consent_events(id).await.unwrap();
        assert_eq!(events.len(), n, "{ext}: {events:?}");
        for e in events {
            assert_eq!(
                (e.scope.as_str(), e.opted_out, e.source.as_str()),
                ("channel:sms", true, "sms_keyword")
            );
        }
    }
    // The refusals are in ritualist's log, one for the wrong key and one for none.
    let log_text = log.lock().unwrap().join("\n");
    assert_eq!(count(&log, "missing or wrong key: refused (401)"), 2);
    assert!(
        log_text.contains("key=\"wrong\"") || log_text.contains("key=wrong"),
        "{log_text}"
    );
    assert!(
        log_text.contains("key=\"missing\"") || log_text.contains("key=missing"),
        "{log_text}"
    );
    assert!(!log_text.contains(KEY), "the key is never logged");

    let term = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(wait_exit(&mut daemon, Duration::from_secs(30), "the daemon").success());
}

#[tokio::test]
async fn stop_and_help_through_kannel_get_url() {
    stop_and_help_through_kannel(Db::Sqlite, Form::Get).await;
}

#[tokio::test]
async fn stop_and_help_through_kannel_post_url() {
    stop_and_help_through_kannel(Db::Postgres, Form::Post).await;
}

/// The public server of an `App` on `t`'s database with `cfg`, on a free loopback port.
async fn serve(cfg: ritualist::config::Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = Arc::new(ritualist::app::App::open(cfg).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ritualist::http::serve_public(app, listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// `/sms/kannel` without Kannel: 404 while no key is configured; 401 with a Basic challenge
/// for a missing or wrong key (query or Basic); 400 naming the Kannel setting when the sender
/// is missing; the reply's coding for Kannel; and `sms_stop_reply` on the generic route too.
#[tokio::test]
async fn the_kannel_route_refuses_and_answers_as_documented() {
    let delivery = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n\
         \x20 sms_help: \"Floare: помощь\"\n  sms_stop_reply: \"Floare: unsubscribed\"\n";
    let Some(t) = TestApp::start(Db::Sqlite, delivery).await else {
        return;
    };
    assert!(t.customers(&customers()).await.is_empty());
    ritualist::channel::init_tls();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let (addr, _stop) = serve(t.app.cfg.clone()).await;
    let r = http
        .get(format!(
            "http://{addr}/sms/kannel?key={KEY}&from=1&text=STOP"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no key configured");

    let mut cfg = t.app.cfg.clone();
    let h = cfg.http.as_mut().unwrap();
    h.kannel_key = Some(ritualist::config::Secret::new(KEY));
    h.inbound_key = Some(ritualist::config::Secret::new("generic-key"));
    let (addr, _stop) = serve(cfg).await;
    let url = |q: &str| format!("http://{addr}/sms/kannel?{q}");
    for (req, why) in [
        (http.get(url("from=%2B40721000001&text=STOP")), "no key"),
        (
            http.get(url("key=wrong&from=%2B40721000001&text=STOP")),
            "wrong key",
        ),
        (
            http.get(url("from=%2B40721000001&text=STOP"))
                .basic_auth("kannel", Some("wrong")),
            "wrong Basic password",
        ),
        (
            http.post(url("key=&from=%2B40721000001")).body("STOP"),
            "empty key",
        ),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{why}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic"),
            "{why}"
        );
    }
    let k1 = t.app.store.find_customer("k1").await.unwrap().unwrap().id;
    assert!(t.app.store.consent_events(k1).await.unwrap().is_empty());

    // post-url without `send-sender = true`: no sender, and the answer says what to set.
    let r = http
        .post(url(&format!("key={KEY}")))
        .body("STOP")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("send-sender = true"));

    // HELP: the Cyrillic reply asks Kannel for UCS-2; a plain text gets an empty body.
    let r = http
        .get(url("from=%2B40721000004&text=help&coding=0&charset=UTF-8"))
        .basic_auth("kannel", Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kannel-coding"], "2");
    assert_eq!(r.text().await.unwrap(), "Floare: помощь");
    let r = http
        .get(url(&format!("key={KEY}&from=%2B40721000004&text=hello")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");

    // STOP (post-url, UCS-2 body): opted out, and the confirmation is GSM-7.
    let r = http
        .post(url(&format!("key={KEY}")))
        .header("content-type", "text/plain; charset=\"UTF-16BE\"")
        .header("x-kannel-from", "0721000001")
        .header("x-kannel-coding", "2")
        .body(vec![0, b'S', 0, b'T', 0, b'O', 0, b'P'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-kannel-coding"], "0");
    assert_eq!(r.text().await.unwrap(), "Floare: unsubscribed");
    let events = t.app.store.consent_events(k1).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");

    // The generic route answers a STOP with the same confirmation.
    let r = http
        .post(format!("http://{addr}/sms/inbound"))
        .bearer_auth("generic-key")
        .header("content-type", "application/json")
        .body(r#"{"from": "+40721000002", "text": "stop"}"#)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"action": "opted_out", "reply": "Floare: unsubscribed"})
    );
}
