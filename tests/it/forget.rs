//! `ritualist forget`, through the real binary on SQLite and PostgreSQL: the person's data
//! leaves every table, the ledger's anonymous counts stay, and a re-import of the same CSV
//! row is opted out of everything on arrival while everyone else is served as before.

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::harness::{BOTH, TestApp, ritualist};

const OUTBOX: &str = "  email:\n    transport: outbox\n  sms:\n    transport: outbox\n";

const HEADER: &str = "external_id,first_name,last_name,email,phone,locale,time_zone,birthday,preferred_channel,signup_date,date:wedding,tier\n";
const ANA: &str = "ana-77,Anastasia,Zmeureanu,Anastasia.Z@Example.com,+40721000077,en,UTC,1990-03-01,email,2020-01-05,2012-06-15,platinum\n";
const ION: &str = "keep-1,Ion,Keeper,ion.k@example.com,,en,UTC,1991-03-01,email,,,\n";

/// What must not be found anywhere once Ana is forgotten (compared lower-case).
const NEEDLES: [&str; 6] = [
    "anastasia",
    "zmeureanu",
    "anastasia.z@example.com",
    "40721000077",
    "ana-77",
    "platinum",
];

/// Every text value of the tables that could hold personal data, lower-cased.
async fn all_values(url: &str) -> Vec<String> {
    let db = Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let tables: [(&str, &[&str]); 9] = [
        (
            "customers",
            &[
                "external_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "signup_date",
                "custom_dates",
                "attributes",
            ],
        ),
        ("customer_dates", &["name"]),
        ("orders", &["external_id"]),
        (
            "deliveries",
            &[
                "recipient",
                "subject",
                "occasion",
                "last_error",
                "message_id",
                "reason",
            ],
        ),
        ("delivery_messages", &["payload"]),
        ("consents", &["scope", "source"]),
        ("consent_events", &["scope", "source"]),
        ("forgotten", &["hash"]),
        ("settings", &["value"]),
    ];
    let mut out = Vec::new();
    for (table, cols) in tables {
        for col in cols {
            let sql = format!("SELECT CAST({col} AS TEXT) AS v FROM {table}");
            for r in db
                .query_all_raw(Statement::from_string(backend, sql))
                .await
                .unwrap()
            {
                if let Some(v) = r.try_get::<Option<String>>("", "v").unwrap() {
                    out.push(v.to_lowercase());
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn forget_erases_the_person_keeps_the_counts_and_a_reimport_stays_silent() {
    for db in BOTH {
        let Some(t) = TestApp::start(db, OUTBOX).await else {
            continue;
        };
        let url = t.app.cfg.database_url.clone();
        let url = if url.contains("://") {
            url
        } else {
            format!("sqlite://{url}?mode=rwc")
        };
        assert!(t.customers(&format!("{HEADER}{ANA}{ION}")).await.is_empty());
        assert!(
            t.orders("external_id,customer,ordered_at,amount,currency\nord-1,ana-77,2026-11-02T10:00:00Z,25.00,EUR\n")
                .await
                .is_empty()
        );
        let run = |now: &str| {
            let o = ritualist(
                &t.dir,
                &[
                    "--config",
                    "config/ritualist.yaml",
                    "run",
                    "--once",
                    "--now",
                    now,
                ],
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        run("2027-03-01T12:00:00Z");
        let to_ana = |t: &TestApp| {
            t.outbox_emails()
                .iter()
                .filter(|m| m.to_lowercase().contains("anastasia.z@example.com"))
                .count()
        };
        assert_eq!(to_ana(&t), 1, "{db:?}");
        assert_eq!(t.outbox_emails().len(), 2);
        let ana_id = t
            .app
            .store
            .find_customer("ana-77")
            .await
            .unwrap()
            .unwrap()
            .id;
        let counts_before = t.app.store.ledger_counts().await.unwrap();
        assert!(
            all_values(&url)
                .await
                .iter()
                .any(|v| v.contains("zmeureanu")),
            "the probe must see the data before it is erased"
        );

        // An unknown person: exit code 1, nothing changes.
        let o = ritualist(
            &t.dir,
            &[
                "--config",
                "config/ritualist.yaml",
                "forget",
                "nobody@example.com",
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{db:?}");

        // Found by email, as typed (case of the domain differs from the stored one).
        let o = ritualist(
            &t.dir,
            &[
                "--config",
                "config/ritualist.yaml",
                "forget",
                "Anastasia.Z@EXAMPLE.com",
            ],
        );
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{db:?} {stdout} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains(&format!("forgot customer #{ana_id}"))
                && stdout.contains(
                    "erased first_name, last_name, email, phone, signup_date, preferred_channel, birthday, custom_dates, attributes"
                )
                && stdout.contains("1 custom date(s) removed")
                && stdout.contains("1 message(s) scrubbed")
                && stdout.contains("3 new hashed stub(s)"),
            "{stdout}"
        );

        // Gone from every table; the counts are the same rows.
        let values = all_values(&url).await;
        for needle in NEEDLES {
            let hit: Vec<&String> = values.iter().filter(|v| v.contains(needle)).collect();
            assert!(hit.is_empty(), "{db:?}: `{needle}` still in {hit:?}");
        }
        let row = t.app.store.customer_by_id(ana_id).await.unwrap().unwrap();
        assert_eq!(
            (row.birth_md, row.birth_year, row.email, row.phone),
            (None, None, None, None)
        );
        assert_eq!(row.order_count, 1, "orders stay, anonymous");
        assert_eq!(t.app.store.ledger_counts().await.unwrap(), counts_before);
        // Asking again finds nobody.
        let o = ritualist(
            &t.dir,
            &["--config", "config/ritualist.yaml", "forget", "ana-77"],
        );
        assert_eq!(o.status.code(), Some(1));

        // The same CSV row comes back (a stale export): stored, but opted out of everything.
        assert!(t.customers(&format!("{HEADER}{ANA}")).await.is_empty());
        let back = t.app.store.find_customer("ana-77").await.unwrap().unwrap();
        assert_ne!(back.id, ana_id);
        assert_eq!(
            t.app.store.consents_of(back.id).await.unwrap(),
            vec![("all".to_string(), true, "forgotten".to_string())]
        );
        // So does her address under a new id, through the ingest path's check too.
        assert!(
            t.customers(&format!(
                "{HEADER}ana-new,,,anastasia.z@example.com,,en,UTC,1990-03-01,email,,,\n"
            ))
            .await
            .is_empty()
        );
        let other = t.app.store.find_customer("ana-new").await.unwrap().unwrap();
        assert_eq!(t.app.store.consents_of(other.id).await.unwrap().len(), 1);
        // And her phone number, national format, through the ingest API's use case.
        let r = t
            .app
            .ingest_customers(&serde_json::json!({"external_id": "ana-api", "phone": "0721 000 077",
                "locale": "en", "time_zone": "UTC", "birthday": "1990-03-01", "preferred_channel": "sms"}))
            .await
            .unwrap();
        assert_eq!(r.accepted, 1);
        let by_api = t.app.store.find_customer("ana-api").await.unwrap().unwrap();
        assert_eq!(
            t.app.store.consents_of(by_api.id).await.unwrap(),
            vec![("all".to_string(), true, "forgotten".to_string())]
        );
        // A stranger through the same paths is not caught by the stubs.
        assert!(
            t.customers(&format!(
                "{HEADER}new-2,,,someone.else@example.com,,en,UTC,1990-03-01,email,,,\n"
            ))
            .await
            .is_empty()
        );
        let stranger = t.app.store.find_customer("new-2").await.unwrap().unwrap();
        assert!(
            t.app
                .store
                .consents_of(stranger.id)
                .await
                .unwrap()
                .is_empty()
        );

        // Next year: Ion gets his birthday greeting, nobody writes to Ana.
        run("2028-03-01T12:00:00Z");
        assert_eq!(to_ana(&t), 1, "{db:?}: Ana was written to again");
        // Ion and the stranger got theirs; no SMS went to Ana's number.
        assert_eq!(t.outbox_emails().len(), 4, "{db:?}");
        assert!(
            !t.outbox_sms()
                .iter()
                .any(|m| m.to_string().contains("40721000077")),
            "{db:?}"
        );
        let rows = t.rows().await;
        let theirs = |d: &&ritualist::store::DeliveryRow| {
            [back.id, other.id, by_api.id].contains(&d.customer_id)
        };
        assert_eq!(rows.iter().filter(theirs).count(), 3, "{rows:#?}");
        for d in rows
            .iter()
            .filter(|d| [back.id, other.id, by_api.id].contains(&d.customer_id))
        {
            assert_eq!(
                (d.status.as_str(), d.reason.as_deref()),
                ("suppressed", Some("opted_out:all")),
                "{d:?}"
            );
        }
        assert!(
            rows.iter()
                .any(|d| d.occurrence == "2028" && d.status == "sent"),
            "{rows:#?}"
        );
    }
}
