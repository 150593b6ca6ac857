//! #24: customer-facing words in the customer's language. A Romanian customer's unsubscribe
//! page said "Doar aceste mesaje: Mothering Sunday" (the en-GB name) after an email about
//! "Ziua Mamei", and the preference page mixed Romanian, English and internal ritual
//! descriptions ("Win-back after 45 and 90 days without an order"). The pages now use each
//! ritual's `label` in the reader's language and holiday names from their own calendar.
//!
//! Checked by text: no word of the English page appears on the Romanian or Russian one (but
//! the shop's name and "SMS"); screenshots of each page are kept under
//! `target/test-artifacts/` for a person to look at.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ritualist::app::{App, UnsubscribeToken};
use ritualist::domain::Channel;
use tokio::sync::oneshot;

use crate::harness::{Db, HEADER, REPO, TestApp};
use crate::peers::{ScratchDir, find_program, missing_peer, run_bounded};

const PUBLIC: &str = "https://shop.example/r";

async fn serve(t: &TestApp) -> (SocketAddr, oneshot::Sender<()>) {
    let app = Arc::new(App::open(t.app.cfg.clone()).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(ritualist::http::serve_public(app, listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// The words a reader sees: tags dropped, entities of the escaper decoded, alphabetic runs
/// of three letters or more.
fn words(html: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut in_tag = false;
    let body = html.split("<body>").nth(1).unwrap_or(html);
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.replace("&amp;", "&").replace("&#x27;", "'");
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_string)
        .collect()
}

fn screenshot(chromium: &Path, profile: &Path, url: &str, out: &Path) {
    let (status, _, err) = run_bounded(
        Command::new(chromium).args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=700,900",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", out.display()),
            url,
        ]),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("chromium --screenshot {url}: {e}"));
    assert!(status.success(), "chromium exited with {status}:\n{err}");
    let png = std::fs::read(out).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", out.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_pages_speak_only_the_customers_language() {
    let delivery = format!(
        "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n\
         http:\n  listen: \"127.0.0.1:0\"\n  public_url: {PUBLIC}\n"
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    t.customers(&format!(
        "{HEADER}\
         en1,Emma,Smith,emma@example.com,,en,Europe/Bucharest,1990-03-01,email\n\
         ro1,Ana,Popescu,ana@example.com,,ro,Europe/Bucharest,1990-03-01,email\n\
         ru1,Анна,Иванова,anna@example.com,,ru,Europe/Moscow,1990-03-01,email\n"
    ))
    .await;
    let (addr, _stop) = serve(&t).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let chromium = find_program("chromium", &["/usr/bin/chromium"]);
    if chromium.is_none() {
        missing_peer(
            "chromium (Debian package chromium)",
            "no /usr/bin/chromium for the page screenshots",
        );
    }
    let artefacts = PathBuf::from(REPO).join("target/test-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let profile = ScratchDir::new("labels-chromium");

    let mut pages: Vec<(String, String, String)> = Vec::new(); // (locale, page, html)
    for ext in ["en1", "ro1", "ru1"] {
        let row = t.app.store.find_customer(ext).await.unwrap().unwrap();
        let unsub = t.app.link_keys.unsubscribe_token(&UnsubscribeToken {
            customer_id: row.id,
            channel: Channel::Email,
            category: "holidays.mothers_day".into(),
        });
        let prefs = t.app.link_keys.preferences_token(row.id);
        for (page, path) in [
            ("unsubscribe", format!("/u/{unsub}")),
            ("preferences", format!("/p/{prefs}")),
        ] {
            let url = format!("http://{addr}{path}");
            let resp = http.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{url}");
            let html = resp.text().await.unwrap();
            if let Some(chromium) = &chromium {
                let png = artefacts.join(format!("consent-{}-{page}.png", row.locale));
                let (chromium, profile, url) =
                    (chromium.clone(), profile.path().to_path_buf(), url.clone());
                tokio::task::spawn_blocking(move || screenshot(&chromium, &profile, &url, &png))
                    .await
                    .unwrap();
            }
            pages.push((row.locale.clone(), page.to_string(), html));
        }
    }
    let html_of = |locale: &str, page: &str| {
        pages
            .iter()
            .find(|(l, p, _)| l == locale && p == page)
            .map(|(_, _, h)| h.clone())
            .unwrap()
    };

    // The holiday by its name in the customer's own calendar and language.
    assert!(
        html_of("ro", "unsubscribe").contains("Ziua Mamei"),
        "{}",
        html_of("ro", "unsubscribe")
    );
    assert!(
        html_of("ru", "unsubscribe").contains("День матери"),
        "{}",
        html_of("ru", "unsubscribe")
    );
    for (l, p, html) in &pages {
        assert!(!html.contains("Mothering Sunday"), "{l} {p}: {html}");
        // Internal descriptions never reach customers.
        for d in [
            "Win-back after",
            "Post-purchase survey",
            "Birthday greeting with a gift",
        ] {
            assert!(!html.contains(d), "{l} {p} shows `{d}`: {html}");
        }
    }
    // Labels, grouped: topics, then each holiday.
    let ro_prefs = html_of("ro", "preferences");
    for want in [
        "Urări de ziua ta",
        "Ne e dor de tine",
        "Urări de sărbători",
        "Ziua Mamei",
        "Floare",
    ] {
        assert!(ro_prefs.contains(want), "{want}: {ro_prefs}");
    }
    assert!(
        ro_prefs.contains("href=\"https://floare.example\""),
        "a link back to the shop: {ro_prefs}"
    );

    // No English word on the Romanian and Russian pages, but the shop's name and "SMS".
    let allowed: BTreeSet<String> = ["Floare", "SMS"].iter().map(|s| s.to_string()).collect();
    for page in ["unsubscribe", "preferences"] {
        let english = words(&html_of("en", page));
        assert!(english.len() > 10, "{english:?}");
        for locale in ["ro", "ru"] {
            let leaked: Vec<&String> = words(&html_of(locale, page))
                .iter()
                .filter(|w| english.contains(*w) && !allowed.contains(*w))
                .map(|w| english.get(w).unwrap())
                .collect();
            assert!(
                leaked.is_empty(),
                "English words on the {locale} {page} page: {leaked:?}"
            );
        }
    }
}
