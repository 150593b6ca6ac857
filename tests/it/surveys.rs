//! Survey (NPS) links over loopback: the survey email's eleven score links, a click recording
//! and then updating the score, forged/tampered tokens and bad scores recording nothing, the
//! comment box, the thank-you page in the customer's language; and `check` refusing a survey
//! ritual without `http.public_url`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ritualist::app::{App, LinkKeys, SurveyToken};
use ritualist::store::SurveyResponse;
use tokio::sync::oneshot;

use crate::harness::{BOTH, Db, HEADER, TestApp, at, newcomer_checkout, ritualist};

const PUBLIC: &str = "https://shop.example/r";

const DELIVERY: &str = "  email:\n    transport: outbox\n\
     http:\n  listen: \"127.0.0.1:0\"\n  public_url: https://shop.example/r\n";

/// Orders on March 1: the survey goes a week later at 11:00 local time.
const CUSTOMERS: &str = "s1,Ana,Popescu,ana@example.com,,ro,Europe/Bucharest,1990-05-01,email\n\
     s2,Иван,Петров,ivan@example.com,,ru,Europe/Moscow,1985-05-01,email\n\
     s3,Olga,,olga@example.com,,en,Europe/Bucharest,1980-05-01,email\n";
const ORDERS: &str = "external_id,customer,ordered_at,amount,currency\n\
     o1,s1,2027-03-01T08:00:00Z,100.00,RON\n\
     o2,s2,2027-03-01T08:00:00Z,100.00,RON\n\
     o3,s3,2027-03-01T08:00:00Z,100.00,RON\n";

/// A test app whose shipped survey ritual is switched to NPS score links.
async fn survey_app(db: Db) -> Option<TestApp> {
    let t = TestApp::start(db, DELIVERY).await?;
    let file = t.dir.join("config/rituals/survey.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("# survey: nps"),
        "the shipped example changed"
    );
    std::fs::write(&file, text.replace("# survey: nps", "survey: nps")).unwrap();
    t.app.reload().unwrap_or_else(|d| panic!("{d}"));
    assert!(
        t.customers(&format!("{HEADER}{CUSTOMERS}"))
            .await
            .is_empty()
    );
    assert!(t.orders(ORDERS).await.is_empty());
    Some(t)
}

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

fn client() -> reqwest::Client {
    ritualist::channel::init_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The distinct survey links of an email (quoted-printable soft breaks undone).
fn survey_links(eml: &str) -> BTreeSet<String> {
    let flat = eml.replace("=\r\n", "").replace("=\n", "");
    let prefix = format!("{PUBLIC}/s/");
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

/// The link for the same path on the test server.
fn local(addr: SocketAddr, link: &str) -> String {
    format!("http://{addr}{}", link.strip_prefix(PUBLIC).unwrap())
}

async fn responses(t: &TestApp) -> Vec<SurveyResponse> {
    t.app.store.survey_responses(None, None).await.unwrap()
}

#[tokio::test]
async fn score_links_record_once_per_survey_update_on_a_second_click_and_reject_forgeries() {
    for db in BOTH {
        let Some(t) = survey_app(db).await else {
            continue;
        };
        let now = at("2027-03-08T12:00:00Z");
        t.app.tick(now).await.unwrap();
        let sent = t.app.drain(now).await.unwrap();
        assert_eq!(sent.failed, 0, "{db:?}");
        let surveys_sent = t
            .rows()
            .await
            .into_iter()
            .filter(|d| d.ritual == "survey" && d.status == "sent")
            .count();
        assert_eq!(surveys_sent, 3, "{db:?}");
        // Other rituals (first order, …) mail them too: the survey is the one with score links.
        let emails = t.outbox_emails();
        let email_of = |addr: &str| {
            emails
                .iter()
                .find(|m| m.contains(&format!("<{addr}>")) && !survey_links(m).is_empty())
                .unwrap_or_else(|| panic!("no email to {addr}"))
                .clone()
        };
        let (ana, ivan, olga) = (
            email_of("ana@example.com"),
            email_of("ivan@example.com"),
            email_of("olga@example.com"),
        );

        // Eleven links, one per score 0–10, sharing one token.
        let links = survey_links(&olga);
        assert_eq!(links.len(), 11, "{links:?}");
        let scores: BTreeSet<u8> = links
            .iter()
            .map(|l| l.rsplit('/').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(scores, (0..=10).collect());
        let token = links
            .iter()
            .next()
            .unwrap()
            .split('/')
            .rev()
            .nth(1)
            .unwrap()
            .to_string();
        let olga_id = t.app.store.find_customer("s3").await.unwrap().unwrap().id;
        let survey = t.app.link_keys.parse_survey(&token).unwrap();
        assert_eq!(
            (survey.customer_id, survey.ritual.as_str()),
            (olga_id, "survey")
        );
        assert_eq!(survey.occurrence, "order:o3");
        let link = |score: &str| format!("{PUBLIC}/s/{token}/{score}");

        let (addr, stop) = serve(&t).await;
        let http = client();
        // Every link works; HEAD (link checkers) records nothing.
        for l in &links {
            let r = http.head(local(addr, l)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{l}");
        }
        assert!(responses(&t).await.is_empty(), "{db:?}: HEAD recorded");

        // Clicking 9 records 9, in Olga's language.
        let r = http.get(local(addr, &link("9"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(
            page.contains("<html lang=\"en\"") && page.contains("Thank you!"),
            "{page}"
        );
        assert!(page.contains("<textarea"), "{page}");
        let got = responses(&t).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (
                got[0].customer_id,
                got[0].ritual.as_str(),
                got[0].occurrence.as_str(),
                got[0].score
            ),
            (olga_id, "survey", "order:o3", 9)
        );
        let first_at = got[0].first_at;

        // Clicking 3 updates the same survey's row.
        let r = http.get(local(addr, &link("3"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let got = responses(&t).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].score, 3);
        assert_eq!(got[0].first_at, first_at);
        assert!(got[0].updated_at >= first_at);

        // Forged, tampered and out-of-range links: 404, nothing recorded.
        let ivan_id = t.app.store.find_customer("s2").await.unwrap().unwrap().id;
        let other_key = LinkKeys::new(b"not-the-key", None).survey_token(&SurveyToken {
            customer_id: ivan_id,
            ritual: "survey".into(),
            occurrence: "order:o2".into(),
        });
        let tampered = token.replacen(&format!(".{olga_id}."), &format!(".{ivan_id}."), 1);
        assert_ne!(tampered, token);
        let unsubscribe = t.app.link_keys.preferences_token(olga_id);
        for bad in [
            format!("/s/{other_key}/9"),
            format!("/s/{tampered}/9"),
            format!("/s/{unsubscribe}/9"),
            format!("/s/{token}/11"),
            format!("/s/{token}/-1"),
            format!("/s/{token}/09"),
            format!("/s/{token}x/9"),
            "/s/garbage/9".to_string(),
        ] {
            let r = http
                .get(format!("http://{addr}{bad}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{bad}");
            let r = http
                .post(format!("http://{addr}{bad}"))
                .form(&[("comment", "forged")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{bad}");
        }
        let got = responses(&t).await;
        assert_eq!(got.len(), 1, "{db:?}: {got:?}");
        assert_eq!((got[0].score, got[0].comment.as_deref()), (3, None));

        // The comment box: stored with the score of the link it was posted to.
        let r = http
            .post(local(addr, &link("3")))
            .form(&[("comment", "Fast delivery, but the box was damaged.")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Thank you for your comment")
        );
        // Too long: refused, the stored comment stays.
        let r = http
            .post(local(addr, &link("3")))
            .form(&[("comment", "x".repeat(2001))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let got = responses(&t).await;
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].score, got[0].comment.as_deref()),
            (3, Some("Fast delivery, but the box was damaged."))
        );

        // Ana (ro) and Ivan (ru) get the page in their language; their answers are theirs.
        for (eml, lang, thanks, score) in [
            (&ana, "ro", "Vă mulțumim!", "10"),
            (&ivan, "ru", "Спасибо!", "6"),
        ] {
            let l = survey_links(eml)
                .into_iter()
                .find(|l| l.ends_with(&format!("/{score}")))
                .unwrap();
            let page = http
                .get(local(addr, &l))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(
                page.contains(&format!("<html lang=\"{lang}\"")) && page.contains(thanks),
                "{page}"
            );
        }
        let mut got: Vec<(String, i32)> = responses(&t)
            .await
            .into_iter()
            .map(|r| (r.occurrence, r.score))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("order:o1".to_string(), 10),
                ("order:o2".to_string(), 6),
                ("order:o3".to_string(), 3)
            ]
        );
        let _ = stop.send(());
    }
}

#[test]
fn check_says_survey_links_need_the_public_url() {
    let d = newcomer_checkout();
    let file = d.path().join("config/rituals/survey.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("# survey: nps", "survey: nps")).unwrap();
    let out = ritualist(d.path(), &["--config", "config/ritualist.yaml", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = text.lines().position(|l| l == "# survey: nps").unwrap() + 1;
    assert!(
        err.contains(&format!("survey.yaml:{line}:1: error: ritual `survey` is a survey, but survey links need `http.public_url`")),
        "{err}"
    );
    assert!(err.contains("hint: add an `http:` section"), "{err}");
    // With the http: section it checks out, and the sample renders carry the links.
    let cfg = d.path().join("config/ritualist.yaml");
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    assert!(yaml.contains("# http:"));
    std::fs::write(
        &cfg,
        yaml.replace("# http:", "http:")
            .replace("#   listen:", "  listen:")
            .replace("#   public_url:", "  public_url:"),
    )
    .unwrap();
    let out = ritualist(d.path(), &["--config", "config/ritualist.yaml", "check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
