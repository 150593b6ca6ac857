//! `ritualist preview --serve` as a marketer uses it: the real binary on a copy of the
//! repository's config, templates and samples, the page loaded by headless Chromium (Debian's
//! package `chromium`), then a template edited and the page loaded again.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{newcomer_checkout, ritualist_cmd};
use crate::peers::{ScratchDir, find_program, free_port, http_get, missing_peer, run_bounded};

/// A temp project folder: config/, templates/ and samples/ copied from the repository.
fn project() -> ScratchDir {
    newcomer_checkout()
}

/// `ritualist preview --serve --port P` running in a project folder; killed and reaped on drop
/// (also when a test panics).
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server and waits (bounded) until it answers `/healthz`. Retries with a new
    /// port when another process took the free port first.
    fn start(dir: &Path) -> Server {
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = dir.join(format!("serve-{port}.log"));
            let child = ritualist_cmd(dir)
                .args(["preview", "--serve", "--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn ritualist preview --serve");
            let mut server = Server { child, port, log };
            // The URL goes to stdout first thing; read it on a thread so the wait is bounded.
            let stdout = server.child.stdout.take().unwrap();
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut announced = None;
            loop {
                if announced.is_none()
                    && let Ok(line) = rx.recv_timeout(Duration::from_millis(50))
                {
                    announced = Some(line);
                }
                if let Some(line) = &announced
                    && let Ok((200, body)) =
                        http_get(&server.url("/healthz"), Duration::from_secs(2))
                {
                    assert_eq!(body, "ok");
                    assert!(
                        line.contains(&format!("http://127.0.0.1:{port}/")),
                        "stdout should announce the URL: {line:?}"
                    );
                    return server;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    last_log = server.log();
                    assert!(
                        last_log.contains("cannot listen"),
                        "preview --serve exited with {status}:\n{last_log}"
                    );
                    break; // port taken: try another
                }
                assert!(
                    Instant::now() < deadline,
                    "preview --serve did not answer /healthz within 30 s:\n{}",
                    server.log()
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("preview --serve could not bind a free port in 3 tries:\n{last_log}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.url(path), Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }
}

/// Debian's Chromium, or `None` after [`missing_peer`] (a failure under CI).
pub(crate) fn chromium() -> Option<PathBuf> {
    let found = find_program("chromium", &["/usr/bin/chromium"]);
    if found.is_none() {
        missing_peer(
            "chromium (Debian package chromium)",
            "no /usr/bin/chromium for the preview page's browser test",
        );
    }
    found
}

/// The DOM of `url` after load, as headless Chromium serialises it.
pub(crate) fn dump_dom(chromium: &Path, profile: &Path, url: &str) -> String {
    let (status, out, err) = run_bounded(
        Command::new(chromium).args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            "--dump-dom",
            url,
        ]),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("chromium --dump-dom {url}: {e}"));
    assert!(status.success(), "chromium exited with {status}:\n{err}");
    assert!(
        out.contains("</html>"),
        "chromium printed no DOM for {url}:\n{out}\n{err}"
    );
    out
}

/// A PNG of `url` as headless Chromium draws it at `width` × `height`, written to `png`.
pub(crate) fn screenshot(chromium: &Path, profile: &Path, url: &str, png: &Path, size: (u32, u32)) {
    if let Some(dir) = png.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let _ = std::fs::remove_file(png);
    let (status, _, err) = run_bounded(
        Command::new(chromium).args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--window-size={},{}", size.0, size.1),
            &format!("--screenshot={}", png.display()),
            url,
        ]),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("chromium --screenshot {url}: {e}"));
    assert!(status.success(), "chromium exited with {status}:\n{err}");
    let bytes = std::fs::read(png)
        .unwrap_or_else(|e| panic!("no screenshot {}: {e}\n{err}", png.display()));
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is not a PNG",
        png.display()
    );
}

#[test]
fn chromium_shows_every_locale_and_the_edited_template_after_a_reload() {
    let Some(chromium) = chromium() else {
        return;
    };
    let project = project();
    let server = Server::start(project.path());
    let profile = project.path().join("chromium-profile");
    let page = server.url("/");

    let dom = dump_dom(&chromium, &profile, &page);
    // The Russian email's subject, the email itself in an isolated frame, and the SMS with its
    // encoding and segment count.
    assert!(
        dom.contains("С днём рождения, Ana! Подарок от Floare &amp; Co"),
        "{dom}"
    );
    assert!(dom.contains("<iframe sandbox=\"\" srcdoc=\""), "{dom}");
    assert!(dom.contains("Happy birthday, Ana!"), "{dom}");
    assert!(
        dom.contains("Ana, с днём рождения! Floare &amp; Co: скидка 20%"),
        "{dom}"
    );
    assert!(dom.contains("ucs-2 · 1 segment"), "{dom}");
    assert!(dom.contains("gsm-7 · 1 segment"), "{dom}");
    assert!(!dom.contains("EDITED-12345"));

    // A marketer saves a template: /version changes (the open page polls it and reloads itself)
    // and the next load renders the file as it is now.
    let (_, before) = server.get("/version");
    let subject = project.path().join("templates/birthday/en/subject.hbs");
    let text = std::fs::read_to_string(&subject).unwrap();
    std::fs::write(&subject, format!("EDITED-12345 {text}")).unwrap();
    let (_, after) = server.get("/version");
    assert_ne!(before, after, "an edited template must change /version");

    let dom = dump_dom(&chromium, &profile, &page);
    assert!(dom.contains("EDITED-12345 Happy birthday, Ana!"), "{dom}");
    assert!(dom.contains(&format!("var v=\"{after}\"")), "{dom}");
}

#[test]
fn a_broken_template_shows_its_diagnostics_then_the_fix_shows_the_messages() {
    let project = project();
    let server = Server::start(project.path());
    let sms = project.path().join("templates/birthday/ro/sms.hbs");
    let good = std::fs::read_to_string(&sms).unwrap();
    std::fs::write(&sms, "La mulți ani, {{customer.frist_name}}!\n").unwrap();

    let (status, body) = server.get("/");
    assert_eq!(
        status, 200,
        "diagnostics are the page's answer, not a failure"
    );
    assert!(body.contains("do not load: 1 error"), "{body}");
    assert!(body.contains("birthday/ro/sms.hbs:1:"), "{body}");
    assert!(body.contains("frist_name"), "{body}");
    // #24: the broken ritual is left out; every other ritual is still shown beside the error.
    assert!(
        !body.contains("id=\"ritual-birthday\""),
        "no birthday messages while its template is broken: {body}"
    );
    assert!(
        body.contains("id=\"ritual-holidays\"") && body.contains("<iframe"),
        "the other rituals are still shown: {body}"
    );

    std::fs::write(&sms, good).unwrap();
    let (status, body) = server.get("/?customer=sample-minimal&date=2027-03-01");
    assert_eq!(status, 200);
    assert!(!body.contains("do not load"), "{body}");
    assert!(body.contains("<iframe sandbox srcdoc="), "{body}");
    assert!(
        body.contains("<option value=\"sample-minimal\" selected>"),
        "{body}"
    );
    assert_eq!(server.get("/healthz"), (200, "ok".to_string()));
}

/// #24: the preview page showed only the synthetic samples; a marketer could not look at the
/// message a real customer would get. `?find=` takes an external id, email or phone from the
/// configured database (never creating one).
#[test]
fn the_page_previews_a_real_customer_from_the_database() {
    let dir = project();
    // No database yet: explained, the samples still shown.
    let server = Server::start(dir.path());
    let (code, html) = server.get("/?find=C00400&date=2027-02-03");
    assert_eq!(code, 200);
    assert!(html.contains("there is no database yet"), "{html}");
    assert!(
        !dir.path().join("data").exists(),
        "the page created no database"
    );
    drop(server);

    let out = ritualist_cmd(dir.path())
        .args(["import", "customers", "samples/customers.csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(dir.path());
    // C00400: Elena, locale ro, born on February 3rd; found by id and by email.
    for find in ["C00400", "elena.400@example.com"] {
        let (code, html) = server.get(&format!("/?find={find}&date=2027-02-03&ritual=birthday"));
        assert_eq!(code, 200);
        assert!(html.contains("La mulți ani, Elena!"), "{find}: {html}");
        assert!(html.contains("C00400"), "{find}");
        assert!(
            !html.contains("would not fire"),
            "her birthday fires: {html}"
        );
    }
    let (_, html) = server.get("/?find=nobody&date=2027-02-03");
    assert!(
        html.contains("no customer with external id, email or phone `nobody`"),
        "{html}"
    );
}
