//! `ritualist history` and `ritualist surveys` through the real binary: a customer imported,
//! ticked and delivered to, with a consent change, an order and a survey comment; the story's
//! JSON checked against the database, found by external id, email and phone; an unknown
//! customer exits 1; `surveys --search` finds the comment in any case.

use serde_json::Value;

use crate::harness::{BOTH, HEADER, TestApp, at, ritualist};

const CUSTOMERS: &str = "h1,Emma,Story,emma@example.com,+40722000111,en,Europe/Bucharest,1990-05-05,email\n\
     h2,Other,Person,other@example.com,,en,Europe/Bucharest,1991-05-05,email\n";
const ORDERS: &str = "external_id,customer,ordered_at,amount,currency\n\
     o1,h1,2027-04-28T08:00:00Z,100.00,RON\n\
     o2,h2,2027-04-28T08:00:00Z,50.00,RON\n";

/// `ritualist ARGS` with the test's config: (exit code, stdout, stderr).
fn run(t: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let cfg = t.dir.join("config/ritualist.yaml");
    let mut all = vec!["--config", cfg.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = ritualist(&t.dir, &all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn story(t: &TestApp, key: &str, extra: &[&str]) -> Value {
    let mut args = vec!["history", key, "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(t, &args);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn a_customer_s_story_matches_the_database() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, "  email:\n    transport: outbox\n").await else {
            continue;
        };
        assert!(
            t.customers(&format!("{HEADER}{CUSTOMERS}"))
                .await
                .is_empty()
        );
        assert!(t.orders(ORDERS).await.is_empty());
        let now = at("2027-05-05T12:00:00Z");
        t.app.tick(now).await.unwrap();
        t.app.drain(now).await.unwrap();
        let store = &t.app.store;
        let id = store.find_customer("h1").await.unwrap().unwrap().id;
        let at_s = now.as_second();
        assert!(
            store
                .set_consent(id, "category:digest", true, "preferences", at_s + 60)
                .await
                .unwrap()
        );
        let rows: Vec<_> = t
            .rows()
            .await
            .into_iter()
            .filter(|r| r.customer_id == id)
            .collect();
        let survey = rows
            .iter()
            .find(|r| r.ritual == "survey")
            .unwrap_or_else(|| panic!("{db:?}: no survey row: {rows:?}"));
        store
            .record_survey_response(
                "survey",
                id,
                &survey.occurrence,
                9,
                Some("Lovely flowers, FAST delivery"),
                at_s + 120,
            )
            .await
            .unwrap();

        let v = story(&t, "h1", &["--messages"]);
        assert_eq!(v["profile"]["id"], id, "{db:?}");
        assert_eq!(v["profile"]["birthday"], "1990-05-05");
        // One order of 100 RON a week ago: `new` (at most one order), not `regular`, `vip`
        // or `sleeping` (config/segments.yaml).
        assert_eq!(v["segments"], serde_json::json!(["new"]), "{db:?}");
        // Every ledger row of theirs, none of anyone else's.
        let got: Vec<(i64, String, String, String)> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_i64().unwrap(),
                    m["ritual"].as_str().unwrap().to_string(),
                    m["occurrence"].as_str().unwrap().to_string(),
                    m["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut want: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    r.ritual.clone(),
                    r.occurrence.clone(),
                    r.status.to_string(),
                )
            })
            .collect();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want, "{db:?}");
        let birthday = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["ritual"] == "birthday" && m["status"] == "sent")
            .unwrap_or_else(|| panic!("{db:?}: no sent birthday: {v:#}"));
        assert!(
            birthday["payload"]
                .as_str()
                .is_some_and(|p| p.contains("emma@example.com")),
            "{birthday:#}"
        );
        // Consent: the current state and every change, as stored.
        let events = store.consent_events(id).await.unwrap();
        let shown = v["consent_events"].as_array().unwrap();
        assert_eq!(shown.len(), events.len());
        assert_eq!(shown.last().unwrap()["scope"], "category:digest");
        assert_eq!(shown.last().unwrap()["change"], "out");
        assert_eq!(v["consents"]["category:digest"], true);
        assert_eq!(v["channels"][0]["opted_out"], false);
        // Orders and the survey answer.
        assert_eq!(v["orders"]["count"], 1);
        assert_eq!(v["orders"]["total_minor"]["RON"], 10_000);
        assert_eq!(v["orders"]["last"]["external_id"], "o1");
        assert_eq!(v["surveys"][0]["score"], 9);
        assert_eq!(v["surveys"][0]["comment"], "Lovely flowers, FAST delivery");
        assert!(v["plan"]["decisions"].is_array());

        // The same customer by email and by phone; without --messages, no stored bodies.
        let phone = v["profile"]["phone"].as_str().unwrap().to_string();
        // A phone as people write it is read as the import stores it (+40 by default).
        for key in ["emma@example.com", phone.as_str(), "0722 000 111"] {
            let w = story(&t, key, &[]);
            assert_eq!(w["profile"]["id"], id, "{db:?} {key}");
            assert!(
                w["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["payload"].is_null())
            );
        }

        let (code, out, err) = run(&t, &["history", "nobody@example.com"]);
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains("no customer `nobody@example.com`"), "{err}");

        // The table form tells the same story in words.
        let (code, out, err) = run(&t, &["history", "h1"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("customer h1") && out.contains("opt-out category:digest"),
            "{out}"
        );

        // `surveys --search` finds the comment in any case; NPS counts every answer.
        let (code, out, err) = run(
            &t,
            &["surveys", "--search", "fast DELIVERY", "--format", "json"],
        );
        assert_eq!(code, Some(0), "{err}");
        let s: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(s["answers"].as_array().unwrap().len(), 1, "{s:#}");
        assert_eq!(s["answers"][0]["customer"], "h1");
        assert_eq!(s["nps"][0]["ritual"], "survey");
        assert_eq!(s["nps"][0]["nps"], 100.0);
        let (code, out, _) = run(
            &t,
            &["surveys", "survey", "--search", "slow", "--format", "json"],
        );
        assert_eq!(code, Some(0));
        let s: Value = serde_json::from_str(&out).unwrap();
        assert!(s["answers"].as_array().unwrap().is_empty(), "{s:#}");
        assert_eq!(s["nps"][0]["responses"], 1);
        let (code, _, err) = run(&t, &["surveys", "no_such_ritual"]);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("no_such_ritual"), "{err}");
        // CSV quotes the comment's comma; --since after the answer leaves nothing.
        let (code, out, _) = run(&t, &["surveys", "--format", "csv"]);
        assert_eq!(code, Some(0));
        assert!(
            out.starts_with("ritual,customer,occurrence,score,comment,"),
            "{out}"
        );
        assert!(
            out.contains(",9,\"Lovely flowers, FAST delivery\","),
            "{out}"
        );
        let (code, out, _) = run(
            &t,
            &["surveys", "--since", "2027-05-06", "--format", "json"],
        );
        assert_eq!(code, Some(0));
        let s: Value = serde_json::from_str(&out).unwrap();
        assert!(
            s["answers"].as_array().unwrap().is_empty() && s["nps"].as_array().unwrap().is_empty(),
            "{s:#}"
        );
    }
}
