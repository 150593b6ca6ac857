//! The marketer's pages of `preview --serve` (#28) against a seeded SQLite database: the
//! calendar, a day's decisions, a customer's story and the results, loaded by headless
//! Chromium and checked number by number against what the CLI prints for the same data
//! (`plan --format json`, `history --format json`, `report --format json`, `surveys`);
//! screenshots are written under the target folder. Then the server's access rules (a key
//! beyond loopback) and bad input (400/404 pages, never a panic) at the HTTP level.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ritualist::app::App;
use ritualist::clock::ManualClock;
use ritualist::http::{PreviewAccess, serve_preview};
use serde_json::Value;

use crate::browser::{chromium, dump_dom, screenshot};
use crate::harness::{Db, HEADER, TestApp, at, ritualist};

/// `ritualist ARGS` with the test's config: stdout, after checking the exit code is 0.
fn cli(t: &TestApp, args: &[&str]) -> String {
    let cfg = t.dir.join("config/ritualist.yaml");
    let mut all = vec!["--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = ritualist(&t.dir, &all);
    assert!(
        out.status.success(),
        "ritualist {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_json(t: &TestApp, args: &[&str]) -> Value {
    let out = cli(t, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Sixty customers who ordered on 1 June 2026; twenty have birthdays between 1 and 8 March
/// (Women's Day, when every customer gets the holiday greeting: overlaps). The daemon ticks through June and July (thank-you, survey, win-back with its 10 %
/// holdout); twenty-five order again, one opts out after the win-back, ten answer the survey.
async fn seeded(clock: Arc<ManualClock>) -> Option<TestApp> {
    let t = TestApp::start_with_clock(
        Db::Sqlite,
        "  email:\n    transport: outbox\n",
        clock.clone(),
    )
    .await?;
    let mut customers = String::from(HEADER);
    let mut orders = String::from("external_id,customer,ordered_at,amount,currency\n");
    for i in 1..=60 {
        let birthday = if i <= 20 {
            format!("1990-03-0{}", 1 + i % 8)
        } else {
            "1985-07-15".into()
        };
        customers.push_str(&format!(
            "p{i:02},Pat{i},Page,p{i:02}@example.com,+40722000{i:03},ro,Europe/Bucharest,{birthday},email\n"
        ));
        orders.push_str(&format!(
            "o{i},p{i:02},2026-06-01T08:00:00Z,{}.00,RON\n",
            50 + i
        ));
    }
    assert!(t.customers(&customers).await.is_empty());
    assert!(t.orders(&orders).await.is_empty());
    for when in [
        "2026-06-01T12:00:00Z",
        "2026-06-08T12:00:00Z",
        "2026-07-16T12:00:00Z",
    ] {
        clock.set(at(when));
        t.app.tick(at(when)).await.unwrap();
        t.app.drain(at(when)).await.unwrap();
    }
    let mut again = String::from("external_id,customer,ordered_at,amount,currency\n");
    for i in 1..=25 {
        again.push_str(&format!("r{i},p{i:02},2026-07-25T08:00:00Z,80.00,RON\n"));
    }
    assert!(t.orders(&again).await.is_empty());
    let store = &t.app.store;
    let p30 = store.find_customer("p30").await.unwrap().unwrap().id;
    store
        .set_consent(
            p30,
            "all",
            true,
            "link",
            at("2026-07-17T09:00:00Z").as_second(),
        )
        .await
        .unwrap();
    let comments = [
        "Fast delivery, lovely roses",
        "too slow",
        "Очень быстрая доставка",
    ];
    let surveys: Vec<_> = t
        .rows()
        .await
        .into_iter()
        .filter(|r| r.ritual == "survey")
        .take(10)
        .collect();
    assert_eq!(surveys.len(), 10, "the survey went out");
    for (k, r) in surveys.iter().enumerate() {
        let comment = comments.get(k).copied();
        store
            .record_survey_response(
                "survey",
                r.customer_id,
                &r.occurrence,
                (k as i32 + 1).min(10),
                comment,
                at("2026-06-09T10:00:00Z").as_second() + k as i64,
            )
            .await
            .unwrap();
    }
    Some(t)
}

/// The preview server in this process over `app`, on `ip`; stopped on drop.
struct Serve {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn serve(
    t: &TestApp,
    app: Result<Arc<App>, String>,
    ip: &str,
    access: PreviewAccess,
) -> std::io::Result<Serve> {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cfg = t.app.cfg.clone();
    tokio::spawn(async move {
        let r = serve_preview(cfg, app, access, listener, async {
            let _ = stopped.await;
        })
        .await;
        let _ = tx.send(r);
    });
    // A refusal comes back at once; a server keeps running.
    match tokio::time::timeout(Duration::from_millis(300), rx).await {
        Ok(Ok(Err(e))) => Err(e),
        _ => Ok(Serve {
            addr,
            stop: Some(stop),
        }),
    }
}

impl Serve {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }
}

/// A raw HTTP/1.1 GET with extra header lines: (status, headers, body).
fn get(port: u16, path: &str, headers: &[&str]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {raw}"));
    (status, head.to_string(), body.to_string())
}

/// The text from `start` (included) to the next `end` after it.
fn segment<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let i = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{html}"));
    let from = i + start.len();
    let j = html[from..].find(end).map_or(html.len(), |j| from + j);
    &html[i..j]
}

/// Where the screenshots go: the integration tests' folder under target/.
fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages")
}

/// Chromium, off the async workers (the server runs on them).
async fn dom(chromium: &Path, profile: &Path, url: String) -> String {
    let (c, p) = (chromium.to_path_buf(), profile.to_path_buf());
    tokio::task::spawn_blocking(move || dump_dom(&c, &p, &url))
        .await
        .unwrap()
}

async fn shot(chromium: &Path, profile: &Path, url: String, name: &str, size: (u32, u32)) {
    let (c, p) = (chromium.to_path_buf(), profile.to_path_buf());
    let png = shots().join(name);
    let shown = png.clone();
    tokio::task::spawn_blocking(move || screenshot(&c, &p, &url, &png, size))
        .await
        .unwrap();
    println!("screenshot: {}", shown.display());
}

/// What `plan` JSON lines say, counted.
#[derive(Default)]
struct PlanCounts {
    sends: u64,
    /// Per (ritual, channel).
    by: BTreeMap<(String, String), u64>,
    /// Per reason kind.
    skipped: BTreeMap<String, u64>,
    /// Customers with sends of two rituals or more.
    overlaps: u64,
}

fn plan_counts(lines: &str) -> PlanCounts {
    let mut c = PlanCounts::default();
    let mut rituals: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let d: Value = serde_json::from_str(l).unwrap();
        if d["decision"] == "send" {
            c.sends += 1;
            rituals
                .entry(d["customer"].as_str().unwrap().to_string())
                .or_default()
                .insert(d["ritual"].as_str().unwrap().to_string());
            let key = (
                d["ritual"].as_str().unwrap().to_string(),
                d["channel"].as_str().unwrap().to_string(),
            );
            *c.by.entry(key).or_insert(0) += 1;
        } else {
            let reason = d["reason"].as_str().unwrap_or("unknown");
            let kind = reason.split(':').next().unwrap().to_string();
            *c.skipped.entry(kind).or_insert(0) += 1;
        }
    }
    c.overlaps = rituals.values().filter(|r| r.len() > 1).count() as u64;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_calendar_a_day_a_story_and_the_results_as_the_cli_says() {
    let Some(chromium) = chromium() else {
        return;
    };
    let clock = ManualClock::shared(at("2026-06-01T00:00:00Z"));
    let Some(t) = seeded(clock.clone()).await else {
        return;
    };
    // The pages read the time from the app's clock: 1 September 2026, after every window.
    clock.set(at("2026-09-01T08:00:00Z"));
    let app = App::open_with_clock(t.app.cfg.clone(), clock.clone())
        .await
        .unwrap();
    let server = serve(&t, Ok(Arc::new(app)), "127.0.0.1", PreviewAccess::default())
        .await
        .unwrap();
    let profile = t.dir.join("chromium-profile");

    let day_link = calendar_matches_plan(&t, &server, &chromium, &profile).await;
    let customer = day_matches_plan(&t, &server, &chromium, &profile, &day_link).await;
    story_matches_history(&t, &server, &chromium, &profile, &customer).await;
    results_match_report(&t, &server, &chromium, &profile).await;
}

/// The calendar of 2027-03-01 + 8 days, day by day as `plan --date D --days 1`, overlaps
/// flagged; returns the link of the day with the most overlaps.
async fn calendar_matches_plan(t: &TestApp, s: &Serve, chromium: &Path, profile: &Path) -> String {
    let url = s.url("/calendar?from=2027-03-01&days=8");
    let html = dom(chromium, profile, url.clone()).await;
    assert!(
        html.contains("<nav>") && html.contains("class=\"active\""),
        "{html}"
    );
    assert!(html.contains("<svg"), "the chart is drawn: {html}");
    let mut busiest = (0, String::new());
    let mut total = 0;
    let mut skipped_any = 0;
    for day in 1..=8 {
        let date = format!("2027-03-0{day}");
        let lines = cli(
            t,
            &["plan", "--date", &date, "--days", "1", "--format", "json"],
        );
        let PlanCounts {
            sends,
            by,
            skipped,
            overlaps,
        } = plan_counts(&lines);
        let row = segment(&html, &format!("<tr data-date=\"{date}\""), "</tr>");
        assert!(
            row.contains(&format!("<td class=\"num sends\">{sends}</td>")),
            "{date}: {row}"
        );
        if overlaps > 0 {
            assert!(row.contains("class=\"overlap\""), "{date}: {row}");
            assert!(
                row.contains(&format!("⚑ {overlaps}</span>")),
                "{date} {overlaps}: {row}"
            );
        } else {
            assert!(
                row.contains("<td class=\"num overlaps\">0</td>"),
                "{date}: {row}"
            );
        }
        skipped_any += skipped.values().sum::<u64>();
        for ((r, c), n) in &by {
            assert!(
                row.contains(&format!(
                    "data-ritual=\"{r}\" data-channel=\"{c}\">{n}</td>"
                )),
                "{date} {r} {c} {n}: {row}"
            );
        }
        for (k, n) in &skipped {
            assert!(
                row.contains(&format!("data-reason=\"{k}\">{n}</td>")),
                "{date} {k}: {row}"
            );
        }
        total += sends;
        if overlaps > busiest.0 {
            busiest = (overlaps, format!("/calendar/{date}"));
        }
    }
    assert!(total >= 20, "the twenty birthdays are planned: {total}");
    assert!(
        busiest.0 > 0,
        "Women's Day birthdays overlap with the greeting"
    );
    assert!(skipped_any > 0, "the opted-out customer is skipped");
    shot(chromium, profile, url, "pages-calendar.png", (1280, 900)).await;
    let link = busiest.1;
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    link
}

/// The day's page lists what `plan --date D --days 1` lists; returns a customer it links to.
async fn day_matches_plan(
    t: &TestApp,
    s: &Serve,
    chromium: &Path,
    profile: &Path,
    link: &str,
) -> String {
    let html = dom(chromium, profile, s.url(link)).await;
    let date = link.trim_start_matches("/calendar/");
    let lines = cli(
        t,
        &["plan", "--date", date, "--days", "1", "--format", "json"],
    );
    let PlanCounts {
        sends, overlaps, ..
    } = plan_counts(&lines);
    let decisions = lines.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        html.contains(&format!(
            "data-decisions=\"{decisions}\" data-sends=\"{sends}\""
        )),
        "{html}"
    );
    let table = segment(&html, "<table id=\"decisions\"", "</table>");
    assert!(
        table.contains("<tr class=\"overlap\">"),
        "{overlaps} overlaps: {table}"
    );
    assert_eq!(table.matches("<tr").count() - 1, decisions, "{table}");
    for l in lines.lines().filter(|l| !l.trim().is_empty()) {
        let d: Value = serde_json::from_str(l).unwrap();
        let c = d["customer"].as_str().unwrap();
        assert!(
            table.contains(&format!("href=\"/customers/{c}\"")),
            "{c}: {table}"
        );
    }
    shot(chromium, profile, s.url(link), "pages-day.png", (1280, 900)).await;
    // Follow the first flagged customer's link, as a marketer clicks it.
    let flagged = segment(table, "<tr class=\"overlap\">", "</tr>");
    let href = segment(flagged, "href=\"/customers/", "\"");
    href.trim_start_matches("href=\"/customers/").to_string()
}

/// The story page shows what `history --messages --format json` says, and the plan of
/// `plan --customer C` from the page's today.
async fn story_matches_history(
    t: &TestApp,
    s: &Serve,
    chromium: &Path,
    profile: &Path,
    customer: &str,
) {
    let url = s.url(&format!("/customers/{customer}"));
    let html = dom(chromium, profile, url.clone()).await;
    let h = cli_json(t, &["history", customer, "--messages", "--format", "json"]);
    assert!(
        html.contains(&format!("<h2 id=\"profile\">{customer} ")),
        "{html}"
    );
    let messages = h["messages"].as_array().unwrap();
    assert!(!messages.is_empty(), "{h:#}");
    let ledger = segment(&html, "<table id=\"ledger\"", "</table>");
    assert_eq!(
        ledger.matches("<tr data-id=").count(),
        messages.len(),
        "{ledger}"
    );
    for m in messages {
        assert!(
            ledger.contains(&format!(
                "data-id=\"{}\" data-status=\"{}\"",
                m["id"],
                m["status"].as_str().unwrap()
            )),
            "{m:#}: {ledger}"
        );
    }
    assert!(
        ledger.contains("<details><summary>"),
        "the rendered messages are there: {ledger}"
    );
    assert!(
        html.contains(&format!(
            "<h2 id=\"orders\">Orders ({};",
            h["orders"]["count"]
        )),
        "{html}"
    );
    let events = segment(&html, "<table id=\"consent-events\"", "</table>");
    let n = h["consent_events"].as_array().unwrap().len();
    if n > 0 {
        assert_eq!(events.matches("<tr><td>").count(), n, "{events}");
    }
    // The plan from the page's today (the app's clock) is `plan --customer` from that day.
    let plan = cli(
        t,
        &[
            "plan",
            "--customer",
            customer,
            "--date",
            "2026-09-01",
            "--days",
            "30",
            "--format",
            "json",
        ],
    );
    let planned = segment(&html, "<table id=\"planned\"", "</table>");
    let rows = plan.lines().filter(|l| !l.trim().is_empty()).count();
    if rows > 0 {
        assert_eq!(
            planned.matches("<tr><td>").count(),
            rows,
            "{planned}\n{plan}"
        );
    } else {
        assert!(planned.contains("nothing planned"), "{planned}");
    }
    // The JSON form is the CLI's, apart from what depends on today (the plan, and the
    // segments, which count days since the last order): the page runs at the test's date.
    let (code, _, body) = get(
        s.addr.port(),
        &format!("/customers/{customer}?format=json"),
        &[],
    );
    assert_eq!(code, 200);
    let mut page: Value = serde_json::from_str(&body).unwrap();
    let mut cli_h = h.clone();
    for v in [&mut page, &mut cli_h] {
        v.as_object_mut().unwrap().remove("plan");
        v.as_object_mut().unwrap().remove("segments");
    }
    assert_eq!(page, cli_h);
    shot(chromium, profile, url, "pages-customer.png", (1280, 1400)).await;
}

/// The results show `report --by month` per ritual and month, the lift's verdict of
/// `report`, and the comments `surveys --search` finds.
async fn results_match_report(t: &TestApp, s: &Serve, chromium: &Path, profile: &Path) {
    let url = s.url("/results");
    let html = dom(chromium, profile, url.clone()).await;
    let by_month = cli_json(t, &["report", "--by", "month", "--format", "json"]);
    let rows = by_month["rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["ritual"] == "winback"),
        "{by_month:#}"
    );
    for r in rows {
        let (rt, p) = (r["ritual"].as_str().unwrap(), r["period"].as_str().unwrap());
        let tr = segment(
            &html,
            &format!("<tr data-ritual=\"{rt}\" data-period=\"{p}\">"),
            "</tr>",
        );
        let sup: u64 = r["suppressed"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(
            tr.contains(&format!("<td class=\"num sent\">{}</td>", r["sent"])),
            "{tr}"
        );
        assert!(tr.contains(&format!(">{sup}</td>")), "{tr}");
        assert!(
            tr.contains(&format!(
                "<td class=\"num opt-outs\">{}</td>",
                r["opt_outs"]
            )),
            "{tr}"
        );
        let chart = segment(&html, &format!("data-chart=\"{rt}\""), "</svg>");
        if r["sent"].as_u64().unwrap() > 0 {
            assert!(
                chart.contains(&format!(
                    "data-series=\"sent\" data-label=\"{p}\" data-value=\"{}\"",
                    r["sent"]
                )),
                "{chart}"
            );
        }
    }
    let whole = cli_json(t, &["report", "--format", "json"]);
    let winback = whole["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ritual"] == "winback")
        .unwrap();
    assert!(
        winback["outcome"]["holdout"]["n"].as_u64().unwrap() > 0,
        "{winback:#}"
    );
    let verdict = winback["outcome"]["verdict"].as_str().unwrap();
    let lift = segment(
        &html,
        "<tr data-ritual=\"winback\"><td>winback</td>",
        "</tr>",
    );
    assert!(
        lift.contains(&format!("<td class=\"verdict\">{verdict}</td>")),
        "{verdict}: {lift}"
    );
    assert!(html.contains("data-chart=\"NPS per month\""), "{html}");
    shot(chromium, profile, url, "pages-results.png", (1280, 1400)).await;

    // The comments, searched in any case, as `surveys --search` finds them.
    let found = cli_json(t, &["surveys", "--search", "FAST", "--format", "json"]);
    let html = dom(chromium, profile, s.url("/results?q=FAST")).await;
    let list = segment(&html, "<table id=\"comment-list\"", "</table>");
    let answers = found["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 1, "{found:#}");
    assert_eq!(list.matches("<tr><td>").count(), 1, "{list}");
    assert!(
        list.contains("Fast delivery, lovely roses") && !list.contains("too slow"),
        "{list}"
    );
    let (code, head, csv) = get(
        s.addr.port(),
        "/results?format=csv&table=comments&q=FAST",
        &[],
    );
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase().contains("content-type: text/csv"),
        "{head}"
    );
    assert_eq!(csv.lines().count(), 2, "{csv}");
}

/// #28: beyond loopback the pages need a key; a server without one refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_pages_need_the_key() {
    let Some(t) = TestApp::start(Db::Sqlite, "  email:\n    transport: outbox\n").await else {
        return;
    };
    let app = || {
        let cfg = t.app.cfg.clone();
        async move { Ok(Arc::new(App::open(cfg).await.unwrap())) }
    };
    let refused = serve(&t, app().await, "0.0.0.0", PreviewAccess::default()).await;
    let err = refused.err().expect("no key: refused");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("RITUALIST_PREVIEW_KEY"), "{err}");

    let access =
        PreviewAccess::from_vars(|k| (k == "RITUALIST_PREVIEW_KEY").then(|| "k3y-abc".to_string()))
            .unwrap();
    let s = serve(&t, app().await, "0.0.0.0", access).await.unwrap();
    let port = s.addr.port();
    for path in [
        "/",
        "/calendar?from=2027-03-01&days=2",
        "/customers",
        "/results",
    ] {
        let (code, head, _) = get(port, path, &[]);
        assert_eq!(code, 401, "{path}: {head}");
        assert!(
            head.contains("www-authenticate: Bearer") || head.contains("WWW-Authenticate: Bearer"),
            "{head}"
        );
        assert_eq!(
            get(port, path, &["Authorization: Bearer nope"]).0,
            401,
            "{path}"
        );
        let (code, _, body) = get(port, path, &["Authorization: Bearer k3y-abc"]);
        assert_eq!(code, 200, "{path}: {body}");
    }
    // The key in the query sets a cookie the page's links then carry.
    let (code, head, _) = get(port, "/results?key=k3y-abc", &[]);
    assert_eq!(code, 200);
    assert!(
        head.contains("ritualist_preview_key=k3y-abc; Path=/; HttpOnly"),
        "{head}"
    );
    assert_eq!(
        get(
            port,
            "/calendar/2027-03-01",
            &["Cookie: ritualist_preview_key=k3y-abc"]
        )
        .0,
        200
    );
    // Health stays open for the supervisor.
    assert_eq!(get(port, "/healthz", &[]).0, 200);
    drop(s);

    // On loopback, without a key, as before.
    let s = serve(&t, app().await, "127.0.0.1", PreviewAccess::default())
        .await
        .unwrap();
    assert_eq!(get(s.addr.port(), "/results", &[]).0, 200);
}

/// #28: bad input is a 400 page and an unknown customer a 404 page; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_or_404_page_never_a_panic() {
    let Some(t) = TestApp::start(Db::Sqlite, "  email:\n    transport: outbox\n").await else {
        return;
    };
    let app = Arc::new(App::open(t.app.cfg.clone()).await.unwrap());
    let s = serve(&t, Ok(app), "127.0.0.1", PreviewAccess::default())
        .await
        .unwrap();
    let port = s.addr.port();
    for (path, want, says) in [
        ("/calendar?from=2027-13-45", 400, "is not a date"),
        ("/calendar?from=9999-12-31", 400, "out of range"),
        (
            "/calendar?from=2027-03-01&days=abc",
            400,
            "not a number of days",
        ),
        ("/calendar?from=2027-03-01&days=0", 400, "between 1 and"),
        (
            "/calendar?from=2027-03-01&days=100000",
            400,
            "between 1 and",
        ),
        (
            "/calendar?from=2027-03-01&format=xml",
            400,
            "unknown format",
        ),
        ("/calendar/yesterday", 400, "is not a date"),
        ("/calendar/2027-02-30", 400, "is not a date"),
        ("/calendar/-009999-01-01", 400, ""),
        ("/customers/nobody", 404, "no customer"),
        ("/customers/%E2%80%AE%3Cscript%3E", 404, "&lt;script&gt;"),
        ("/customers/C1?format=pdf", 400, "unknown format"),
        ("/results?format=csv&table=secrets", 400, "unknown table"),
        ("/results?window=-1", 400, "not a number of days"),
        ("/results?window=99999999999", 400, "not a number of days"),
    ] {
        let (code, _, body) = get(port, path, &[]);
        assert_eq!(code, want, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
        assert!(!body.contains("<script>"), "{path}: escaped");
    }
    // A search redirects to the story; the server still answers after all of the above.
    let (code, head, _) = get(port, "/customers?q=a%20b%40x.com", &[]);
    assert_eq!(code, 303, "{head}");
    assert!(
        head.contains("location: /customers/a%20b%40x.com"),
        "{head}"
    );
    assert_eq!(get(port, "/healthz", &[]).0, 200);
    assert_eq!(get(port, "/calendar?from=2027-03-01&days=3", &[]).0, 200);
}
