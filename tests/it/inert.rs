//! Test sends and previews are inert: every link of a `preview --send-to` email (unsubscribe,
//! the `List-Unsubscribe` one-click URL, preferences, the eleven survey scores) and every link
//! on the `preview --serve` page is opened, clicked and submitted in headless Chromium (driven
//! over the DevTools protocol) against the real `ritualist run` and its HTTP server. Each page
//! shows the "test — nothing was recorded" notice in the page's language, and the consent,
//! consent log, survey answers and ledger tables are byte-for-byte the same afterwards.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ritualist::app::{LinkKeys, TokenError};
use serde_json::{Value, json};

use crate::harness::{HEADER, TestApp, at, ritualist_cmd, wait_exit};
use crate::peers::{find_program, free_port, http_get, missing_peer};

const PUBLIC: &str = "https://shop.example/r";
const SECRET: &str = "inert-test-secret-0123456789";

const DELIVERY: &str = "  email:\n    transport: outbox\n\
     http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n";

/// The notice of each page language, as the customer reads it.
fn notice(lang: &str) -> &'static str {
    match lang {
        "ro" => "Test — nu s-a înregistrat nimic.",
        "ru" => "Тест — ничего не записано.",
        _ => "Test — nothing was recorded.",
    }
}

/// The tables a click could change, as `sqlite3 .dump` writes them.
fn dump(db: &Path) -> String {
    let sqlite3 = find_program("sqlite3", &["/usr/bin/sqlite3"]).expect("checked by the caller");
    let out = Command::new(sqlite3)
        .arg("-readonly")
        .arg(db)
        .arg(".dump consents consent_events survey_responses deliveries delivery_messages")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for table in [
        "consents",
        "consent_events",
        "survey_responses",
        "deliveries",
    ] {
        assert!(
            text.contains(&format!("CREATE TABLE IF NOT EXISTS \"{table}\"")),
            "no table {table} in the dump:\n{text}"
        );
    }
    text
}

/// A project whose only rituals are the birthday and the NPS survey (nothing else can be due
/// while the daemon runs), with one Romanian customer: birthday half a year away, an order in
/// 2020 (its survey went out then), a real opt-out and a real survey answer on record.
async fn project() -> Option<(TestApp, i64)> {
    if find_program("sqlite3", &["/usr/bin/sqlite3"]).is_none() {
        missing_peer(
            "sqlite3 (Debian package sqlite3)",
            "dumps the tables the test links must not change",
        );
        return None;
    }
    let t = TestApp::start(crate::harness::Db::Sqlite, DELIVERY).await?;
    let rituals = t.dir.join("config/rituals");
    for e in std::fs::read_dir(&rituals).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name != "birthday.yaml" && name != "survey.yaml" {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let survey = rituals.join("survey.yaml");
    let text = std::fs::read_to_string(&survey).unwrap();
    assert!(
        text.contains("# survey: nps"),
        "the shipped example changed"
    );
    std::fs::write(&survey, text.replace("# survey: nps", "survey: nps")).unwrap();
    t.app.reload().unwrap_or_else(|d| panic!("{d}"));

    let today = ritualist::clock::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let birthday = today.checked_add(jiff::Span::new().days(180)).unwrap();
    let csv = format!(
        "{HEADER}c1,Ana,Popescu,ana@example.com,,ro,Europe/Bucharest,1992-{:02}-{:02},email\n",
        birthday.month(),
        birthday.day()
    );
    assert!(t.customers(&csv).await.is_empty());
    assert!(
        t.orders(
            "external_id,customer,ordered_at,amount,currency\n\
             o1,c1,2020-03-01T08:00:00Z,100.00,RON\n"
        )
        .await
        .is_empty()
    );
    let id = t.app.store.find_customer("c1").await.unwrap().unwrap().id;
    // Real rows that must stay as they are: the survey sent in 2020, an opt-out, an answer.
    let then = at("2020-03-08T12:00:00Z");
    t.app.tick(then).await.unwrap();
    assert_eq!(t.app.drain(then).await.unwrap().failed, 0);
    assert!(!t.rows().await.is_empty());
    t.app
        .store
        .set_consent(
            id,
            "category:holidays.new_year",
            true,
            "link",
            then.as_second(),
        )
        .await
        .unwrap();
    t.app
        .store
        .record_survey_response("survey", id, "order:o1", 8, Some("ok"), then.as_second())
        .await
        .unwrap();
    // The outbox holds only what the test sends from here on.
    let _ = std::fs::remove_dir_all(t.outbox());
    Some((t, id))
}

/// `ritualist run` on the project, with its HTTP server on a free port; killed on drop.
struct Daemon {
    child: Child,
    addr: String,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let mut child = ritualist_cmd(dir)
            .args(["--config", "config/ritualist.yaml", "run"])
            .env("RITUALIST_SECRET", SECRET)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = crate::harness::listening_on(&mut child);
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => Daemon { child, addr },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the daemon did not report its address: {other:?}");
            }
        }
    }

    /// A link of a message, pointed at this daemon.
    fn local(&self, link: &str) -> String {
        format!("http://{}{}", self.addr, link.strip_prefix(PUBLIC).unwrap())
    }

    fn stop(mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let status = wait_exit(&mut self.child, Duration::from_secs(30), "the daemon");
        assert!(status.success(), "{status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET to Chromium's DevTools HTTP endpoint (HTTP/1.1: it answers HTTP/1.0 with nothing).
fn devtools_get(host: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status)?;
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    if !status.contains(" 200 ") {
        return Err(std::io::Error::other(status));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Headless Chromium driven over the DevTools protocol (a WebSocket on loopback, spoken here
/// with std only), so the test clicks the pages' own buttons as a person would.
struct Browser {
    child: Child,
    ws: TcpStream,
    reader: BufReader<TcpStream>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// `None` after [`missing_peer`] when there is no Chromium.
    fn start(profile: &Path) -> Option<Browser> {
        let Some(chromium) = find_program("chromium", &["/usr/bin/chromium"]) else {
            missing_peer(
                "chromium (Debian package chromium)",
                "no /usr/bin/chromium to click the test links",
            );
            return None;
        };
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("ws://") {
                    let _ = tx.send(Ok(line[i..].trim().to_string()));
                }
                lines.push(line);
            }
            let _ = tx.send(Err(lines.join("\n")));
        });
        let ws_url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(u)) => u,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium announced no DevTools address: {other:?}");
            }
        };
        let host = ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap()
            .to_string();
        // The page target of the about:blank tab.
        let deadline = Instant::now() + Duration::from_secs(60);
        let page = loop {
            let got = devtools_get(&host, "/json/list");
            if let Ok(body) = &got {
                let targets: Value = serde_json::from_str(body).unwrap_or(Value::Null);
                if let Some(url) = targets.as_array().and_then(|a| {
                    a.iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                }) {
                    break url.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromium shows no page target at {host}: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let path = &page[page.find(&host).unwrap() + host.len()..];
        let mut ws = TcpStream::connect(&host).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: aW5lcnQtdGVzdC1rZXkxMg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(ws.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(
            status.contains(" 101 "),
            "WebSocket upgrade refused: {status}"
        );
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Some(Browser {
            child,
            ws,
            reader,
            next_id: 0,
        })
    }

    fn send(&mut self, text: &str) {
        let p = text.as_bytes();
        let mask = [0x5a, 0x17, 0xc3, 0x88];
        let mut frame = vec![0x81u8];
        match p.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend((n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend((n as u64).to_be_bytes());
            }
        }
        frame.extend(mask);
        frame.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.ws.write_all(&frame).unwrap();
    }

    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.reader.read_exact(&mut head).unwrap();
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let mut len = (head[1] & 0x7f) as u64;
            if len == 126 {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b).unwrap();
                len = u16::from_be_bytes(b) as u64;
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b).unwrap();
                len = u64::from_be_bytes(b);
            }
            let mut mask = None;
            if head[1] & 0x80 != 0 {
                let mut m = [0u8; 4];
                self.reader.read_exact(&mut m).unwrap();
                mask = Some(m);
            }
            let mut payload = vec![0u8; len as usize];
            self.reader.read_exact(&mut payload).unwrap();
            if let Some(m) = mask {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= m[i % 4];
                }
            }
            match opcode {
                0x8 => panic!("chromium closed the DevTools connection"),
                0x9 | 0xa => continue,
                _ => message.extend(payload),
            }
            if fin {
                return String::from_utf8(message).unwrap();
            }
        }
    }

    /// One DevTools command: its result, or its error.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let m: Value = serde_json::from_str(&self.receive()).unwrap();
            if m["id"] == id {
                return match m.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(m["result"].clone()),
                };
            }
        }
    }

    /// The value of a JavaScript expression in the page; `None` while there is no page to ask.
    fn try_eval(&mut self, js: &str) -> Option<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true}),
            )
            .ok()?;
        if r.get("exceptionDetails").is_some() {
            return None;
        }
        Some(r["result"]["value"].clone())
    }

    fn eval(&mut self, js: &str) -> Value {
        self.try_eval(js)
            .unwrap_or_else(|| panic!("{js} failed in the page"))
    }

    /// Runs `act`, then waits (bounded) until a new document has loaded.
    fn and_wait(&mut self, act: impl FnOnce(&mut Self)) {
        self.eval("window.__inert_old = 1");
        act(self);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_eval("!window.__inert_old && document.readyState === 'complete'")
            != Some(Value::Bool(true))
        {
            assert!(
                Instant::now() < deadline,
                "no new page within 60 s after an action"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn open(&mut self, url: &str) -> Page {
        self.and_wait(|b| {
            b.call("Page.navigate", json!({"url": url}))
                .unwrap_or_else(|e| panic!("navigate {url}: {e}"));
        });
        self.page()
    }

    /// Clicks the first element matching `selector` and returns the page it leads to.
    fn click(&mut self, selector: &str) -> Page {
        let js = format!(
            "document.querySelector({}).click()",
            serde_json::to_string(selector).unwrap()
        );
        self.and_wait(|b| {
            b.eval(&js);
        });
        self.page()
    }

    fn page(&mut self) -> Page {
        let v = self.eval(
            "JSON.stringify({url: location.href, lang: document.documentElement.lang, \
             notice: (document.querySelector('.test-notice') || {}).innerText || '', \
             text: document.body ? document.body.innerText : ''})",
        );
        serde_json::from_str(v.as_str().unwrap()).unwrap()
    }
}

#[derive(Debug, serde::Deserialize)]
struct Page {
    url: String,
    lang: String,
    notice: String,
    text: String,
}

impl Page {
    /// The page speaks `lang` and says, in that language, that nothing was recorded.
    fn says_test(&self, lang: &str) {
        assert_eq!(self.lang, lang, "{self:?}");
        assert!(
            self.notice.starts_with(notice(lang)),
            "no test notice in {lang}: {self:?}"
        );
    }
}

/// The distinct links to the public server in `text` (quoted-printable soft breaks undone).
fn public_links(text: &str) -> BTreeSet<String> {
    let flat = text.replace("=\r\n", "").replace("=\n", "");
    let prefix = format!("{PUBLIC}/");
    let mut out = BTreeSet::new();
    let mut rest = flat.as_str();
    while let Some(i) = rest.find(&prefix) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-/:".contains(c)))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The token of a link (`…/u/<token>`, `…/p/<token>`, `…/s/<token>/<score>`).
fn token_of(link: &str) -> &str {
    let path = link.strip_prefix(PUBLIC).unwrap();
    path.split('/').nth(2).unwrap()
}

/// The POST a mail client sends for RFC 8058 one-click unsubscribe: (status, body).
fn one_click(url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let body = "List-Unsubscribe=One-Click";
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// On a preference page: every box unticked, saved.
fn switch_everything_off(browser: &mut Browser, lang: &str) {
    assert!(
        browser
            .eval("document.querySelectorAll('input[type=checkbox]:checked').length")
            .as_u64()
            .unwrap()
            > 0,
        "a test preference page starts with everything on"
    );
    browser
        .eval("document.querySelectorAll('input[type=checkbox]').forEach(c => c.checked = false)");
    let saved = browser.click("form button");
    saved.says_test(lang);
    assert_eq!(
        browser.eval("document.querySelectorAll('input[type=checkbox]:checked').length"),
        json!(0),
        "the test page shows what the form asked for"
    );
}

/// Opens, clicks and submits every link in `links` (each expected in language `lang_of(link)`),
/// as a customer and their mail client would.
fn click_everything(
    browser: &mut Browser,
    daemon: &Daemon,
    links: &BTreeSet<String>,
    lang_of: &dyn Fn(&str) -> String,
) {
    for link in links {
        let url = daemon.local(link);
        let lang = lang_of(link);
        let path = link.strip_prefix(PUBLIC).unwrap();
        if path.starts_with("/u/") {
            // The page, each of its two buttons, and the preference link of the done page.
            browser.open(&url).says_test(&lang);
            let done = browser.click("button[value=category]");
            done.says_test(&lang);
            browser.open(&url).says_test(&lang);
            browser.click("button[value=channel]").says_test(&lang);
            let prefs = browser.click("a[href^='../p/']");
            prefs.says_test(&lang);
            assert!(prefs.url.contains("/p/"), "{prefs:?}");
            switch_everything_off(browser, &lang);
            // The mail client's RFC 8058 POST.
            let (status, body) = one_click(&url);
            assert_eq!(status, 200, "{body}");
            assert!(body.contains("nothing was recorded"), "{body}");
        } else if path.starts_with("/p/") {
            browser.open(&url).says_test(&lang);
            switch_everything_off(browser, &lang);
        } else if path.starts_with("/s/") {
            let score = path.rsplit('/').next().unwrap();
            let page = browser.open(&url);
            page.says_test(&lang);
            assert!(page.text.contains(score), "{page:?}");
            browser.eval("document.querySelector('textarea').value = 'a test comment'");
            browser.click("form button").says_test(&lang);
        } else {
            panic!("a link to an unknown page: {link}");
        }
    }
}

/// `preview --send-to` with the outbox transport: every link of both test emails (a birthday
/// greeting and an NPS survey) opens its real page with the test notice, in Romanian like the
/// customer, and clicking, submitting and one-click-POSTing them all changes no table.
#[tokio::test]
async fn every_link_of_a_test_send_opens_its_page_and_records_nothing() {
    let Some((t, id)) = project().await else {
        return;
    };
    let profile = t.dir.join("chromium-profile");
    let Some(mut browser) = Browser::start(&profile) else {
        return;
    };
    for args in [
        vec!["birthday", "--customer", "c1"],
        vec!["survey", "--customer", "c1", "--date", "2020-03-08"],
    ] {
        let out = ritualist_cmd(&t.dir)
            .args(["--config", "config/ritualist.yaml", "preview"])
            .args(&args)
            .args(["--send-to", "tester@floare.example"])
            .env("RITUALIST_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let emails = t.outbox_emails();
    assert_eq!(emails.len(), 2, "{emails:?}");
    let mut links = BTreeSet::new();
    for eml in &emails {
        assert!(eml.contains("<tester@floare.example>"), "{eml}");
        assert!(
            eml.contains("List-Unsubscribe: <https://shop.example/r/u/"),
            "{eml}"
        );
        assert!(
            eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
            "{eml}"
        );
        links.extend(public_links(eml));
    }
    let kinds: BTreeSet<&str> = links
        .iter()
        .map(|l| &l[PUBLIC.len()..PUBLIC.len() + 3])
        .collect();
    // The shipped templates link no preference page: it is reached from the unsubscribe page.
    assert!(
        kinds.is_superset(&BTreeSet::from(["/s/", "/u/"])),
        "{links:?}"
    );
    assert_eq!(links.iter().filter(|l| l.contains("/s/")).count(), 11);
    // Every token is a test token for the customer: no real-link parser takes it.
    let keys = LinkKeys::new(SECRET.as_bytes(), None);
    for link in &links {
        let token = token_of(link);
        let refused = match &link[PUBLIC.len()..PUBLIC.len() + 3] {
            "/u/" => keys.parse_unsubscribe(token).err(),
            "/p/" => keys.parse_preferences(token).err(),
            _ => keys.parse_survey(token).err(),
        };
        assert_eq!(refused, Some(TokenError::TestLink), "{link}");
    }

    let db = t.dir.join("data/ritualist.db");
    let daemon = Daemon::start(&t.dir);
    let before = dump(&db);
    assert!(before.contains("holidays.new_year"), "{before}");
    assert!(before.contains("INSERT INTO survey_responses"), "{before}");
    click_everything(&mut browser, &daemon, &links, &|_| "ro".to_string());
    let after = dump(&db);
    assert_eq!(before, after, "a test link changed the database");
    daemon.stop();
    // The daemon itself sent nothing meanwhile: only the two test emails are in the outbox.
    assert_eq!(t.outbox_emails().len(), 2);
    assert_eq!(
        t.app.store.consent_events(id).await.unwrap().len(),
        1,
        "only the opt-out recorded by the setup"
    );
}

/// `ritualist preview --serve` with the daemon's secret: every link on the page (each ritual ×
/// locale, email and SMS) is a test link; opened, clicked and submitted against the running
/// daemon it shows the notice in the card's language and changes no table, for both sample
/// customers: the full one's id is a real customer's, the minimal one's is nobody's.
#[tokio::test]
async fn every_link_on_the_preview_page_opens_its_page_and_records_nothing() {
    let Some((t, id)) = project().await else {
        return;
    };
    assert_eq!(id, 1, "the sample customer's id must be a real customer's");
    let profile = t.dir.join("chromium-profile");
    let Some(mut browser) = Browser::start(&profile) else {
        return;
    };
    let port = free_port();
    let mut serve = ritualist_cmd(&t.dir)
        .args(["--config", "config/ritualist.yaml", "preview", "--serve"])
        .args(["--port", &port.to_string()])
        .env("RITUALIST_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Both sample customers: the full one has id 1 (a real customer's id here), the minimal
    // one id 2 (nobody's: a test link needs no customer).
    let mut pages = Vec::new();
    for sample in ["sample-full", "sample-minimal"] {
        let page_url = format!("http://127.0.0.1:{port}/?customer={sample}&date=2027-03-01");
        let deadline = Instant::now() + Duration::from_secs(60);
        pages.push(loop {
            if let Ok((200, body)) = http_get(&page_url, Duration::from_secs(30)) {
                break body;
            }
            if Instant::now() > deadline {
                let _ = serve.kill();
                let _ = serve.wait();
                panic!("preview --serve did not answer within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        });
    }
    let _ = serve.kill();
    let _ = serve.wait();
    let html = pages.concat();

    // Each link with the language of the card it is on (`<div class="locale" lang="ro">`).
    let mut links = BTreeSet::new();
    let mut lang_of = std::collections::BTreeMap::new();
    for card in html.split("<div class=\"locale\" lang=\"").skip(1) {
        let lang: String = card.chars().take_while(|c| *c != '"').collect();
        for l in public_links(card) {
            lang_of.insert(l.clone(), lang.clone());
            links.insert(l);
        }
    }
    let kinds: BTreeSet<&str> = links
        .iter()
        .map(|l| &l[PUBLIC.len()..PUBLIC.len() + 3])
        .collect();
    assert!(kinds.is_superset(&BTreeSet::from(["/s/", "/u/"])), "{html}");
    let langs: BTreeSet<&String> = lang_of.values().collect();
    assert!(langs.len() >= 3, "{langs:?}");
    let keys = LinkKeys::new(SECRET.as_bytes(), None);
    let mut customers = BTreeSet::new();
    for link in &links {
        let token = token_of(link);
        assert!(
            keys.parse_unsubscribe(token) == Err(TokenError::TestLink)
                || keys.parse_preferences(token) == Err(TokenError::TestLink)
                || keys.parse_survey(token) == Err(TokenError::TestLink),
            "not a test link: {link}"
        );
        if let Ok((u, _)) = keys.read_unsubscribe(token) {
            customers.insert(u.customer_id);
        }
    }
    assert_eq!(customers, BTreeSet::from([1, 2]), "{links:?}");

    let db = t.dir.join("data/ritualist.db");
    let daemon = Daemon::start(&t.dir);
    let before = dump(&db);
    let lang = |l: &str| {
        let tag = &lang_of[l];
        tag.split('-').next().unwrap().to_string()
    };
    click_everything(&mut browser, &daemon, &links, &lang);
    let after = dump(&db);
    assert_eq!(
        before, after,
        "a link of the preview page changed the database"
    );
    daemon.stop();
}
