//! `plan` writes its decisions as they are made (issue #26): the app hands them over a chunk
//! of customers at a time, never all at once, and the command writes the same decisions as
//! a fixed-width table, JSON lines or CSV.

use ritualist::app::PlanRequest;

use crate::harness::{HEADER, TestApp, newcomer_checkout, ritualist};

/// Customers with a birthday on 1 January: more than two of the scan's chunks (2,000).
const CUSTOMERS: usize = 5_000;

#[tokio::test]
async fn a_mass_day_is_handed_over_a_chunk_at_a_time() {
    let Some(t) = TestApp::start(crate::harness::Db::Sqlite, "").await else {
        return;
    };
    let mut csv = HEADER.to_string();
    for i in 0..CUSTOMERS {
        csv.push_str(&format!(
            "p{i},Ana,Pop,p{i}@example.com,,ro,Europe/Bucharest,1990-01-01,email\n"
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let req = PlanRequest {
        date: "2027-01-01".parse().unwrap(),
        days: 1,
        ritual: Some("birthday".into()),
        customer: None,
    };
    let mut chunks = Vec::new();
    let mut progress = Vec::new();
    let summary = t
        .app
        .plan_each(
            &req,
            |done, total| progress.push((done, total)),
            |chunk| chunks.push(chunk.iter().map(|p| p.customer.clone()).collect::<Vec<_>>()),
        )
        .await
        .unwrap();
    let handed: usize = chunks.iter().map(Vec::len).sum();
    assert_eq!(summary.decisions as usize, CUSTOMERS);
    assert_eq!(summary.sends as usize, CUSTOMERS);
    assert_eq!(handed, CUSTOMERS);
    // Several hand-overs, none holding the whole day.
    assert!(chunks.len() >= 3, "{} chunk(s)", chunks.len());
    assert!(chunks.iter().all(|c| c.len() < CUSTOMERS));
    // Every customer once.
    let mut all: Vec<&String> = chunks.iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), CUSTOMERS);
    // The bar moves with the chunks, up to every customer.
    assert!(progress.len() > chunks.len());
    assert_eq!(progress.last().map(|p| p.0), progress.last().map(|p| p.1));
    // The collected plan is the same decisions.
    let planned = t.app.plan(&req, |_, _| {}).await.unwrap();
    assert_eq!(planned.len(), CUSTOMERS);
}

/// (ritual, customer, decision, channel, UTC send time, reason) of a decision.
type Key = (String, String, String, String, String, String);

#[test]
fn table_json_lines_and_csv_write_the_same_decisions() {
    let d = newcomer_checkout();
    let run = |format: &str| {
        let out = ritualist(
            d.path(),
            &[
                "plan",
                "--date",
                "2027-03-01",
                "--days",
                "30",
                "--format",
                format,
            ],
        );
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json = run("json");
    let mut from_json: Vec<Key> = json
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            (
                s("ritual"),
                s("customer"),
                s("decision"),
                s("channel"),
                s("send_at_utc"),
                s("reason"),
            )
        })
        .collect();
    assert!(from_json.len() > 1, "{json}");

    let csv_text = run("csv");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "ritual",
            "customer",
            "customer_id",
            "decision",
            "channel",
            "send_at",
            "send_at_utc",
            "occurrence",
            "category",
            "reason"
        ]
    );
    let mut from_csv: Vec<Key> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), 10, "{r:?}");
            (
                r[0].to_string(),
                r[1].to_string(),
                r[3].to_string(),
                r[4].to_string(),
                r[6].to_string(),
                r[9].to_string(),
            )
        })
        .collect();
    from_json.sort();
    from_csv.sort();
    assert_eq!(from_csv, from_json);

    // The table: a header, a row per decision, the counts.
    let table = run("table");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ritual "), "{table}");
    assert_eq!(lines.len(), from_json.len() + 2, "{table}");
    let sends = from_json.iter().filter(|k| k.2 == "send").count();
    assert_eq!(
        lines[lines.len() - 1],
        format!(
            "{} decision(s): {sends} send(s), {} suppression(s)",
            from_json.len(),
            from_json.len() - sends
        )
    );
}

/// One customer's plan (`plan --customer`, `history`) probes nothing of the base, yet takes
/// the same decisions for that customer as the plan of everyone: birthdays, holidays, and
/// the order rituals whose orders it reads.
#[tokio::test]
async fn one_customers_plan_is_their_part_of_everyones() {
    let Some(t) = TestApp::start(crate::harness::Db::Sqlite, "").await else {
        return;
    };
    let mut csv = HEADER.to_string();
    for i in 0..40 {
        csv.push_str(&format!(
            "k{i},Ana,Pop,k{i}@example.com,,ro,Europe/Bucharest,1990-03-{:02},email\n",
            1 + i % 28
        ));
    }
    assert!(t.customers(&csv).await.is_empty());
    let mut orders = String::from("external_id,customer,ordered_at,amount,currency\n");
    for k in 0..120 {
        orders.push_str(&format!(
            "o{k},k{},2027-02-{:02}T12:00:00+02:00,{}.50,RON\n",
            k % 40,
            1 + k % 27,
            10 + k
        ));
    }
    assert!(t.orders(&orders).await.is_empty());
    let req = |customer: Option<String>| PlanRequest {
        date: "2027-02-20".parse().unwrap(),
        days: 30,
        ritual: None,
        customer,
    };
    let everyone = t.app.plan(&req(None), |_, _| {}).await.unwrap();
    let rituals: std::collections::BTreeSet<&str> =
        everyone.iter().map(|p| p.ritual.as_str()).collect();
    assert!(rituals.len() >= 2, "{rituals:?}");
    for i in 0..40 {
        let who = format!("k{i}");
        let one = t
            .app
            .plan(&req(Some(who.clone())), |_, _| {})
            .await
            .unwrap();
        let theirs: Vec<_> = everyone
            .iter()
            .filter(|p| p.customer == who)
            .cloned()
            .collect();
        assert_eq!(one, theirs, "{who}");
    }
}
