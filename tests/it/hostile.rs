//! Issue 23's acceptance: hostile contact data at the door, delivered through the real daemon
//! into a real smtp-sink, on SQLite and PostgreSQL.
//!
//! 50 good customers and, among them, customers with every kind of hostile value (control
//! characters and header-injection attempts in names, the edge-case addresses, extreme
//! lengths), imported through CSV and through the daemon's own `POST /api/customers`. Every
//! good customer gets their birthday email; every hostile value is either refused at the door
//! with its line or field and reason (the rest of the customer is kept: a refused email still
//! leaves the SMS), or delivered intact (or normalised as docs/integrator.md says) and safe on the
//! wire: one `To:`, no injected header, only the customer as envelope recipient. The daemon
//! and `/healthz` stay up throughout, and nothing fails.
//!
//! Before issue 23 the first name `Ana\nMaria` made lettre's formatter panic at dispatch: the
//! daemon exited and nobody in the batch got their email.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::harness::{BOTH, HEADER, TestApp, ritualist_cmd, wait_exit};
use crate::peers::{SmtpSink, dumped_envelope_recipients, dumped_message_body};

const API_KEY: &str = "hostile-api-key-0123456789";
const API_KEY_ENV: &str = "RITUALIST_HOSTILE_TEST_API_KEY";
const GOOD: usize = 50;

fn delivery(port: u16) -> String {
    format!(
        "  tick_secs: 2\n\
         \x20 email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: plain\n      timeout_secs: 10\n\
         \x20 sms:\n    transport: outbox\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n  api_key_env: {API_KEY_ENV}\n"
    )
}

/// A zone where it is about 16:00 now (so 10:00 was this same local day, within the birthday's
/// same-day grace, and SMS quiet hours are over), and today's month-day there.
fn afternoon_zone() -> (String, String) {
    let now = ritualist::clock::now();
    let h = now.to_zoned(TimeZone::UTC).hour() as i32;
    let mut off = 16 - h;
    if off > 14 {
        off -= 24;
    }
    if off < -12 {
        off += 24;
    }
    let name = match off {
        0 => "UTC".to_string(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    };
    let day = now.to_zoned(TimeZone::get(&name).unwrap()).date();
    (name, format!("--{:02}-{:02}", day.month(), day.day()))
}

/// What must become of a hostile customer.
#[derive(Debug, Clone)]
enum Expect {
    /// Delivered by email to `address` (as stored), with this display name (`None`: none).
    Email {
        address: String,
        name: Option<String>,
        /// Fields refused (left out, with a warning) on the way.
        refused: &'static [&'static str],
    },
    /// The email was refused at the door with `reason`; the SMS went to the phone.
    Sms { reason: &'static str },
    /// CSV only: the row is rejected with `reason` (a NUL byte is no text).
    RowRejected { reason: &'static str },
}

struct Case {
    key: &'static str,
    first: String,
    last: String,
    email: String,
    phone: String,
    csv: Expect,
    api: Expect,
}

fn email(address: &str, name: Option<&str>, refused: &'static [&'static str]) -> Expect {
    Expect::Email {
        address: address.to_string(),
        name: name.map(String::from),
        refused,
    }
}

/// The hostile customers of one import path (`tag` keeps ids and addresses apart).
fn cases(tag: &str) -> Vec<Case> {
    let mut v = Vec::new();
    let mut n = 0;
    let mut add = |key: &'static str, first: &str, last: &str, address: &str, csv: Expect, api| {
        n += 1;
        v.push(Case {
            key,
            first: first.to_string(),
            last: last.to_string(),
            email: address.to_string(),
            phone: format!("+4075{}{n:05}", if tag == "c" { 1 } else { 2 }),
            csv,
            api,
        });
    };
    let a = |local: &str| format!("{local}.{tag}@example.com");
    let same = |e: Expect| (e.clone(), e);

    // Names.
    let (c, p) = same(email(&a("lf"), Some("Ana Maria Pop"), &[]));
    add("lf", "Ana\nMaria", "Pop", &a("lf"), c, p);
    let (c, p) = same(email(&a("crlf"), Some("Eve Bcc: victim@evil.example"), &[]));
    add(
        "crlf",
        "Eve\r\nBcc: victim@evil.example",
        "",
        &a("crlf"),
        c,
        p,
    );
    let (c, p) = same(email(&a("tabs"), Some("Ion Vasile Rusu"), &[]));
    add("tabs", "  Ion\t\tVasile  ", "Rusu", &a("tabs"), c, p);
    let (c, p) = same(email(&a("bel"), Some("Ursu"), &["first_name"]));
    add("bel", "Dan\u{7}", "Ursu", &a("bel"), c, p);
    let (c, p) = same(email(&a("esc"), Some("Mara"), &["last_name"]));
    add("esc", "Mara", "\u{1b}[2J\u{1b}[31mRed", &a("esc"), c, p);
    let (c, p) = same(email(&a("csi"), None, &["first_name"]));
    add("csi", "Csi\u{9b}x", "", &a("csi"), c, p);
    let (c, p) = same(email(&a("bidi"), Some("Lee"), &["first_name"]));
    add("bidi", "\u{202e}moc.live", "Lee", &a("bidi"), c, p);
    let quoted = "\"Boss\" <boss@evil.example>, x@evil.example";
    let (c, p) = same(email(&a("quotes"), Some(quoted), &[]));
    add("quotes", quoted, "", &a("quotes"), c, p);
    let word = "=?utf-8?b?QmNjOiB4QGV2aWwuZXhhbXBsZQ==?=";
    let (c, p) = same(email(&a("word"), Some(word), &[]));
    add("word", word, "", &a("word"), c, p);
    let (c, p) = same(email(&a("unicode"), Some("Ștefan Мария 😀"), &[]));
    add("unicode", "Ștefan", "Мария 😀", &a("unicode"), c, p);
    let long = "Я".repeat(100);
    let (c, p) = same(email(&a("long100"), Some(&long), &[]));
    add("long100", &long, "", &a("long100"), c, p);
    let (c, p) = same(email(&a("long101"), None, &["first_name"]));
    add("long101", &"M".repeat(101), "", &a("long101"), c, p);
    add(
        "nul",
        "Nul\u{0}l",
        "Pop",
        &a("nul"),
        Expect::RowRejected {
            reason: "the row holds a NUL byte",
        },
        email(&a("nul"), Some("Pop"), &["first_name"]),
    );

    // Addresses the door takes: delivered as stored.
    for (key, given, stored) in [
        ("apos", a("o'brien"), a("o'brien")),
        (
            "atext",
            a("a!#$%&'*+-/=?^_`{|}~"),
            a("a!#$%&'*+-/=?^_`{|}~"),
        ),
        (
            "upper",
            format!("Upper.{tag}@EXAMPLE.Com"),
            format!("Upper.{tag}@example.com"),
        ),
        (
            "idn",
            format!("idn.{tag}@пример.рф"),
            format!("idn.{tag}@xn--e1afmkfd.xn--p1ai"),
        ),
        ("local64", local(64, tag), local(64, tag)),
        ("label63", label(63, tag), label(63, tag)),
        ("len254", whole(254, tag), whole(254, tag)),
    ] {
        let (c, p) = same(email(&stored, Some("Edge"), &[]));
        add(key, "Edge", "", &given, c, p);
    }
    // Addresses the door refuses: the customer is kept, the SMS goes.
    for (key, given, reason) in [
        ("dots", a("a..b"), "follow another dot"),
        (
            "underscore",
            format!("u.{tag}@exa_mple.com"),
            "hyphens and dots only",
        ),
        (
            "literal",
            format!("lit.{tag}@[192.0.2.1]"),
            "address literals",
        ),
        (
            "ip",
            format!("ip.{tag}@192.0.2.1"),
            "looks like an IP address",
        ),
        ("quoted", format!("\"q {tag}\"@example.com"), "a space"),
        (
            "quoted2",
            format!("\"q.{tag}\"@example.com"),
            "quoted local parts",
        ),
        ("comment", a("c(x)"), "may hold letters, digits"),
        ("eai", format!("анна.{tag}@пример.рф"), "SMTPUTF8"),
        (
            "inject",
            format!("{}\r\nBcc: y@evil.example", a("inj")),
            "a space or a control character",
        ),
        ("local65", local(65, tag), "longer than 64 bytes"),
        ("label64", label(64, tag), "longer than 63 bytes"),
        ("len255", whole(255, tag), "longer than 254 bytes"),
    ] {
        let (c, p) = same(Expect::Sms { reason });
        add(key, "Edge", "", &given, c, p);
    }
    v
}

/// An address with a local part of `n` bytes.
fn local(n: usize, tag: &str) -> String {
    let head = format!("l{n}{tag}");
    format!("{head}{}@example.com", "x".repeat(n - head.len()))
}

/// An address whose first domain label has `n` bytes.
fn label(n: usize, tag: &str) -> String {
    let head = format!("d{n}{tag}");
    format!("label{n}.{tag}@{head}{}.com", "y".repeat(n - head.len()))
}

/// An address of `n` bytes in all, every label within its limit.
fn whole(n: usize, tag: &str) -> String {
    let head = format!("w{n}.{tag}@");
    // Labels of at most 60 bytes, each with the dot after it, then `com`.
    let mut rest = n - head.len() - 3;
    let mut labels = String::new();
    let mut letter = b'a';
    while rest > 0 {
        let mut take = rest.min(61);
        if rest - take == 1 {
            take -= 1;
        }
        labels.push_str(&(letter as char).to_string().repeat(take - 1));
        labels.push('.');
        rest -= take;
        letter += 1;
    }
    format!("{head}{labels}com")
}

/// A CSV field, always quoted.
fn field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn good(i: usize, zone: &str, birthday: &str) -> (String, Value) {
    let id = format!("g{i:02}");
    let mail = format!("good{i:02}@example.com");
    let csv = format!("{id},Good{i},Customer,{mail},,en,{zone},{birthday},email\n");
    let api = json!({"external_id": id, "first_name": format!("Good{i}"), "last_name": "Customer",
                     "email": mail, "locale": "en", "time_zone": zone, "birthday": birthday,
                     "preferred_channel": "email"});
    (csv, api)
}

/// RFC 2047 encoded words (as lettre writes them: `b` or `q`, UTF-8) back to text; a quoted
/// string unquoted. Whitespace between two encoded words is dropped (RFC 2047 §6.2).
fn display_name(value: &str) -> String {
    let value = value.trim();
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' { chars.next().unwrap() } else { c });
        }
        return out;
    }
    let mut out = String::new();
    // Adjacent encoded words are joined as bytes: a character may be split across two.
    let mut pending: Vec<u8> = Vec::new();
    for token in value.split_whitespace() {
        let word = token
            .strip_prefix("=?")
            .and_then(|t| t.strip_suffix("?="))
            .and_then(|t| {
                let mut parts = t.splitn(3, '?');
                Some((parts.next()?, parts.next()?, parts.next()?))
            });
        match word {
            Some((_, enc, data)) => {
                if pending.is_empty() && !out.is_empty() {
                    out.push(' ');
                }
                if enc.eq_ignore_ascii_case("b") {
                    pending.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .unwrap(),
                    );
                } else {
                    pending.extend(q_decode(data));
                }
            }
            None => {
                out.push_str(&String::from_utf8(std::mem::take(&mut pending)).unwrap());
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(token);
            }
        }
    }
    out.push_str(&String::from_utf8(pending).unwrap());
    out
}

fn q_decode(data: &str) -> Vec<u8> {
    let b = data.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                out.push(u8::from_str_radix(&data[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The header fields of a dumped message, unfolded: (name, value).
fn header_fields(dump: &[u8]) -> Vec<(String, String)> {
    let msg = String::from_utf8_lossy(dumped_message_body(dump)).into_owned();
    let head = msg.split("\n\n").next().unwrap().replace("\r\n", "\n");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("a continuation after a field");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a header field");
            fields.push((name.to_string(), value.trim_start().to_string()));
        }
    }
    fields
}

const HEADERS: [&str; 10] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Starts `ritualist run` in `t.dir` and returns it with the address its HTTP server bound
/// and its log.
fn start_daemon(t: &TestApp) -> (Child, String, crate::harness::LogWatch) {
    let mut child = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "run"])
        .env(API_KEY_ENV, API_KEY)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rx, log) = crate::harness::listening_on_watched(&mut child);
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => (child, addr, log),
        other => {
            let _ = child.kill();
            panic!("the daemon did not report its address: {other:?}");
        }
    }
}

fn client() -> reqwest::Client {
    ritualist::channel::init_tls();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn healthz(http: &reqwest::Client, addr: &str, child: &mut Child, when: &str) {
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon exited {when}"
    );
    let r = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz {when}: {e}"));
    assert_eq!(r.status(), 200, "/healthz {when}");
}

#[tokio::test]
async fn hostile_contact_data_is_refused_at_the_door_or_delivered_intact() {
    for db in BOTH {
        let Some(sink) = SmtpSink::start(&[]) else {
            return;
        };
        let Some(t) = TestApp::start(db, &delivery(sink.port())).await else {
            continue;
        };
        // Only the birthday ritual: one message per customer, nothing else due today.
        for e in std::fs::read_dir(t.dir.join("config/rituals")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n != "birthday.yaml") {
                std::fs::remove_file(p).unwrap();
            }
        }
        let (zone, birthday) = afternoon_zone();
        let row = |c: &Case, tag: &str| {
            format!(
                "h{tag}-{},{},{},{},{},en,{zone},{birthday},\n",
                c.key,
                field(&c.first),
                field(&c.last),
                field(&c.email),
                c.phone
            )
        };

        // CSV: half the good customers and every hostile one.
        let csv_cases = cases("c");
        let mut csv = HEADER.to_string();
        let mut lines: BTreeMap<&str, u64> = BTreeMap::new();
        for i in 0..GOOD / 2 {
            csv.push_str(&good(i, &zone, &birthday).0);
        }
        for c in &csv_cases {
            lines.insert(c.key, 1 + csv.matches('\n').count() as u64);
            csv.push_str(&row(c, "c"));
        }
        let path = t.dir.join("hostile.csv");
        std::fs::write(&path, &csv).unwrap();
        let report = ritualist::app::import_file(
            &t.app.store,
            &t.app.cfg,
            ritualist::app::ImportKind::Customers,
            &path,
            None,
            None,
            ritualist::clock::now().as_second(),
            &mut |_| {},
        )
        .await
        .unwrap();
        assert!(report.has_findings(), "{db:?}");
        for c in &csv_cases {
            let line = lines[c.key];
            let warned = |column: &str| {
                report.warnings.iter().any(|w| {
                    w.line == line
                        && w.refused
                        && w.reason.starts_with(&format!("column `{column}`: "))
                })
            };
            match &c.csv {
                Expect::RowRejected { reason } => assert!(
                    report
                        .errors
                        .iter()
                        .any(|(l, r)| *l == line && r.contains(reason)),
                    "{db:?} {}: {:?}",
                    c.key,
                    report.errors
                ),
                Expect::Sms { reason } => assert!(
                    report.warnings.iter().any(|w| w.line == line
                        && w.refused
                        && w.reason.starts_with("column `email`: ")
                        && w.reason.contains(reason)),
                    "{db:?} {} (line {line}): {:?}",
                    c.key,
                    report.warnings
                ),
                Expect::Email { refused, .. } => {
                    for f in *refused {
                        assert!(warned(f), "{db:?} {} {f}: {:?}", c.key, report.warnings);
                    }
                }
            }
        }
        assert_eq!(report.errors.len(), 1, "{db:?} {:?}", report.errors);
        // No warning carries a raw control character to the terminal.
        for w in &report.warnings {
            assert!(!w.reason.chars().any(|c| c.is_control()), "{db:?} {w:?}");
        }

        // The daemon, with its HTTP server; the API brings the other half.
        let (mut child, addr, log) = start_daemon(&t);
        let http = client();
        healthz(&http, &addr, &mut child, "at start").await;
        let api_cases = cases("a");
        let mut items: Vec<Value> = (GOOD / 2..GOOD)
            .map(|i| good(i, &zone, &birthday).1)
            .collect();
        let first_hostile = items.len();
        for c in &api_cases {
            items.push(
                json!({"external_id": format!("ha-{}", c.key), "first_name": c.first,
                              "last_name": c.last, "email": c.email, "phone": c.phone,
                              "locale": "en", "time_zone": zone, "birthday": birthday}),
            );
        }
        let r = http
            .post(format!("http://{addr}/api/customers"))
            .header("authorization", format!("Bearer {API_KEY}"))
            .json(&Value::Array(items.clone()))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 422, "{db:?} {body}");
        assert_eq!(
            (&body["accepted"], &body["rejected"]),
            (&json!(items.len()), &json!(0)),
            "{db:?} {body}"
        );
        let errors = body["errors"].as_array().unwrap();
        for (k, c) in api_cases.iter().enumerate() {
            let index = first_hostile + k;
            let of = |field: &str| {
                errors.iter().find(|e| {
                    e["index"] == json!(index)
                        && e["field"] == json!(field)
                        && e["outcome"] == json!("left_out")
                })
            };
            match &c.api {
                Expect::Sms { reason } => {
                    let e = of("email").unwrap_or_else(|| panic!("{db:?} {}: {body}", c.key));
                    assert!(
                        e["message"].as_str().unwrap().contains(reason),
                        "{db:?} {e}"
                    );
                }
                Expect::Email { refused, .. } => {
                    for f in *refused {
                        assert!(of(f).is_some(), "{db:?} {} {f}: {body}", c.key);
                    }
                }
                Expect::RowRejected { .. } => unreachable!(),
            }
        }
        healthz(&http, &addr, &mut child, "after the API").await;

        // Every customer with a deliverable address gets exactly one email.
        let mut want: BTreeMap<String, Option<String>> = (0..GOOD)
            .map(|i| {
                (
                    format!("good{i:02}@example.com"),
                    Some(format!("Good{i} Customer")),
                )
            })
            .collect();
        let mut want_sms = BTreeSet::new();
        for (c, expect) in csv_cases
            .iter()
            .map(|c| (c, &c.csv))
            .chain(api_cases.iter().map(|c| (c, &c.api)))
        {
            match expect {
                Expect::Email { address, name, .. } => {
                    assert!(
                        want.insert(address.clone(), name.clone()).is_none(),
                        "{address}"
                    );
                }
                Expect::Sms { .. } => {
                    want_sms.insert(c.phone.clone());
                }
                Expect::RowRejected { .. } => {}
            }
        }
        let dumps = sink.wait_for(want.len(), Duration::from_secs(240));
        healthz(&http, &addr, &mut child, "after the deliveries").await;
        assert_eq!(dumps.len(), want.len(), "{db:?}: {}", sink.log());
        let mut seen = BTreeSet::new();
        for d in &dumps {
            let rcpt = dumped_envelope_recipients(d);
            assert_eq!(rcpt.len(), 1, "{db:?} {rcpt:?}");
            let to = &rcpt[0];
            assert!(seen.insert(to.clone()), "{db:?}: twice to {to}");
            let name = want
                .get(to)
                .unwrap_or_else(|| panic!("{db:?}: an email to {to}, who is not expected"));
            let fields = header_fields(d);
            for (f, _) in &fields {
                assert!(HEADERS.contains(&f.as_str()), "{db:?} {to}: header {f}");
            }
            let one = |f: &str| {
                let v: Vec<&String> = fields
                    .iter()
                    .filter(|(n, _)| n == f)
                    .map(|(_, v)| v)
                    .collect();
                assert_eq!(v.len(), 1, "{db:?} {to}: {f} {fields:?}");
                v[0].clone()
            };
            let to_header = one("To");
            one("From");
            one("Subject");
            match name {
                Some(name) => {
                    let (display, address) = to_header
                        .rsplit_once(" <")
                        .unwrap_or_else(|| panic!("{db:?} {to_header}"));
                    assert_eq!(address, format!("{to}>"), "{db:?}");
                    assert_eq!(&display_name(display), name, "{db:?} {to_header}");
                }
                None => assert_eq!(&to_header, to, "{db:?}"),
            }
        }
        // Nothing more comes (no retry, no duplicate) over the next ticks: two whole ticks
        // after this point (the one under way may finish first).
        let ticks = log.count("tick done");
        assert!(
            log.wait_count("tick done", ticks + 3, Duration::from_secs(120)),
            "{db:?}: the daemon stopped ticking:\n{}",
            log.text()
        );
        assert_eq!(sink.messages().len(), want.len(), "{db:?}");

        // The refused addresses still got their SMS; nothing failed.
        let sms: BTreeSet<String> = t
            .outbox_sms()
            .iter()
            .map(|m| m["to"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(sms, want_sms, "{db:?}");
        let statuses = t.statuses().await;
        assert!(
            statuses.iter().all(|(_, s, _)| s == "sent"),
            "{db:?} {statuses:?}"
        );
        assert_eq!(statuses.len(), want.len() + want_sms.len(), "{db:?}");
        healthz(&http, &addr, &mut child, "at the end").await;

        assert!(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = wait_exit(&mut child, Duration::from_secs(30), "the daemon");
        assert!(status.success(), "{db:?} {status}");
    }
}

#[test]
fn the_length_helpers_make_what_they_say() {
    for tag in ["c", "a"] {
        assert_eq!(local(64, tag).split('@').next().unwrap().len(), 64);
        assert_eq!(local(65, tag).split('@').next().unwrap().len(), 65);
        let l63 = label(63, tag);
        assert_eq!(
            l63.split('@')
                .nth(1)
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .len(),
            63
        );
        for n in [254, 255] {
            let w = whole(n, tag);
            assert_eq!(w.len(), n, "{w}");
            assert!(
                w.split('@')
                    .nth(1)
                    .unwrap()
                    .split('.')
                    .all(|l| l.len() <= 63)
            );
        }
    }
    assert_eq!(
        display_name("=?utf-8?b?QW5h?= =?utf-8?b?IE1hcmlh?="),
        "Ana Maria"
    );
    assert_eq!(display_name("\"Ana \\\"x\\\" Pop\""), "Ana \"x\" Pop");
}

/// Issue 23: a stored valid value is never replaced by an invalid one, nor cleared because a
/// later import or API call sent a refused one; a valid new value still replaces it.
#[tokio::test]
async fn a_refused_value_keeps_the_stored_one() {
    for db in BOTH {
        let Some(t) = TestApp::start(
            db,
            "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n",
        )
        .await
        else {
            continue;
        };
        let csv = |row: &str| format!("{HEADER}{row}\n");
        assert!(
            t.customers(&csv(
                "k1,Ana,Pop,ana@example.com,+40721000001,en,UTC,1990-03-01,"
            ))
            .await
            .is_empty()
        );
        // A bad email, a bad first name and a new valid phone: the email and the name stay,
        // the phone changes, the last name is cleared (an empty cell is "not given").
        let rejected = t
            .customers(&csv(
                "k1,\"Ana\u{7}\",,ana..pop@example.com,+40721000002,en,UTC,1990-03-01,",
            ))
            .await;
        assert!(rejected.is_empty(), "{db:?} {rejected:?}");
        let c = t.app.store.find_customer("k1").await.unwrap().unwrap();
        assert_eq!(
            (
                c.first_name.as_deref(),
                c.last_name.as_deref(),
                c.email.as_deref(),
                c.phone.as_deref()
            ),
            (
                Some("Ana"),
                None,
                Some("ana@example.com"),
                Some("+40721000002")
            ),
            "{db:?}"
        );
        // Through the API: a bad phone keeps the stored one; a good email replaces the old.
        let reader_input = json!({"external_id": "k1", "email": "ana.pop@example.com",
                                  "phone": "+40 72x", "first_name": "Ana\nMaria"});
        let report = t.app.ingest_customers(&reader_input).await.unwrap();
        assert_eq!((report.updated, report.rejected), (1, 0), "{db:?}");
        assert_eq!(
            report
                .errors
                .iter()
                .map(|e| e.field.as_str())
                .collect::<Vec<_>>(),
            ["phone"],
            "{db:?}"
        );
        let c = t.app.store.find_customer("k1").await.unwrap().unwrap();
        assert_eq!(
            (
                c.first_name.as_deref(),
                c.email.as_deref(),
                c.phone.as_deref()
            ),
            (
                Some("Ana Maria"),
                Some("ana.pop@example.com"),
                Some("+40721000002")
            ),
            "{db:?}"
        );
        // A new customer with only a refused email is stored without it.
        let report = t
            .app
            .ingest_customers(&json!({"external_id": "k2", "email": "k2@[192.0.2.1]"}))
            .await
            .unwrap();
        assert_eq!((report.inserted, report.errors.len()), (1, 1), "{db:?}");
        let c = t.app.store.find_customer("k2").await.unwrap().unwrap();
        assert_eq!(c.email, None, "{db:?}");
    }
}

/// Strings built from the characters that break headers, CSV and addresses.
fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just("\r".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\t".to_string()),
        Just("\u{0}".to_string()),
        Just("\u{1b}".to_string()),
        Just("\u{85}".to_string()),
        Just("\u{2028}".to_string()),
        Just("\u{202e}".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("@".to_string()),
        Just(",".to_string()),
        Just(";".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("=?utf-8?b?".to_string()),
        Just("?=".to_string()),
        Just("{{".to_string()),
        Just("Bcc: x@evil.example".to_string()),
        Just(" ".to_string()),
        Just("ăîșț".to_string()),
        Just("Мария".to_string()),
        Just("😀".to_string()),
        Just("\u{200b}".to_string()),
        "[a-z]{1,40}",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

/// The birthday ritual's occasion for a March-1 customer, and what compose needs.
struct Composer {
    cfg: ritualist::config::Config,
    defs: ritualist::app::Definitions,
}

impl Composer {
    fn new() -> Composer {
        let cfg = ritualist::config::Config::load(
            &std::path::Path::new(crate::harness::REPO).join("config/ritualist.yaml"),
        )
        .unwrap();
        let defs = ritualist::app::Definitions::load(&cfg).unwrap_or_else(|d| panic!("{d}"));
        Composer { cfg, defs }
    }

    /// Composes the birthday email (when there is an address) and SMS (when there is a phone)
    /// of `record`, and checks the email's header.
    fn compose(&self, r: &ritualist::import::CustomerRecord) -> Result<(), String> {
        use ritualist::domain::Channel;
        let ritual = self
            .defs
            .rituals
            .iter()
            .find(|r| r.name == "birthday")
            .unwrap();
        let mut c = ritualist::app::sample_customers(&self.cfg).remove(0);
        c.first_name = r.first_name.clone();
        c.last_name = r.last_name.clone();
        c.email = r.email.clone();
        c.phone = r.phone.clone();
        let occasion = ritualist::app::sample_occasion(Some(ritual), true);
        for channel in [Channel::Email, Channel::Sms] {
            if (channel == Channel::Email && c.email.is_none())
                || (channel == Channel::Sms && c.phone.is_none())
            {
                continue;
            }
            let m = ritualist::app::compose(
                &self.cfg,
                &self.defs.templates,
                b"proptest-key",
                ritual,
                &c,
                &occasion,
                "2027",
                channel,
                1_803_974_400,
            )
            .map_err(|e| format!("{channel}: {e}"))?;
            if channel == Channel::Email {
                let head = &m.payload[..m.payload.find("\r\n\r\n").ok_or("no header end")?];
                if head.replace("\r\n", "").contains(['\r', '\n', '\0']) {
                    return Err(format!("a bare line break in the header:\n{head}"));
                }
                let names: Vec<&str> = head
                    .split("\r\n")
                    .filter(|l| !l.starts_with([' ', '\t']))
                    .map(|l| l.split(':').next().unwrap_or(""))
                    .collect();
                if names.iter().filter(|n| **n == "To").count() != 1
                    || names.iter().any(|n| !HEADERS.contains(n))
                {
                    return Err(format!("header fields {names:?}:\n{head}"));
                }
            }
        }
        Ok(())
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Issue 23: any name, email and phone the CSV import or the API accepts can be composed
    /// into a message (the shipped birthday templates, the real compose path), and the email's
    /// header stays intact. Before, a name with a line break made compose panic in lettre.
    #[test]
    fn what_the_door_accepts_composes_into_a_message(
        first in hostile_text(),
        last in hostile_text(),
        local in proptest::prop_oneof![
            2 => "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.-]{1,70}",
            1 => hostile_text(),
        ],
        domain in proptest::prop_oneof![
            hostile_text(),
            "[a-z0-9-]{1,64}(\\.[a-z0-9-]{1,64}){1,3}",
            proptest::strategy::Just("example.com".to_string()),
            proptest::strategy::Just("EXAMPLE.com".to_string()),
            proptest::strategy::Just("пример.рф".to_string()),
        ],
        phone in proptest::prop_oneof![
            hostile_text(),
            "[+0-9 ()-]{0,20}",
            "\\+40 7[0-9]{2} [0-9]{3} [0-9]{3}",
        ],
    ) {
        thread_local! {
            static COMPOSER: Composer = Composer::new();
        }
        let opts = ritualist::import::ImportOptions {
            encoding: None,
            delimiter: None,
            default_country_code: Some("40".into()),
            default_locale: "en".into(),
            default_time_zone: "Europe/Bucharest".into(),
        };
        let email = format!("{local}@{domain}");
        // Through the API's reader.
        let reader = ritualist::import::JsonReader::new(&opts).unwrap();
        let item = json!({"external_id": "p1", "first_name": first, "last_name": last,
                          "email": email, "phone": phone});
        let mut accepted = Vec::new();
        if let Ok((r, _)) = reader.customer(0, &item) {
            accepted.push(r);
        }
        // Through a CSV file.
        let csv = format!(
            "external_id,first_name,last_name,email,phone\np1,{},{},{},{}\n",
            field(&first), field(&last), field(&email), field(&phone)
        );
        if let Ok(p) = ritualist::import::parse_customers(csv.as_bytes(), &opts) {
            accepted.extend(p.records.into_iter().map(|(_, r)| r));
        }
        for r in &accepted {
            let result = COMPOSER.with(|c| c.compose(r));
            proptest::prop_assert!(result.is_ok(), "{:?}: {}", r, result.unwrap_err());
        }
    }
}
