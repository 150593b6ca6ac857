//! Hard bounces suppress the address, rejections of us never do: smtp-sink hard-rejects
//! (`-f COMMAND -B REPLY`) and the consent table and the next year's decision tell.

use crate::harness::{BOTH, Db, HEADER, TestApp, at};
use crate::peers::SmtpSink;

fn smtp(port: u16) -> String {
    format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {port}\n      security: plain\n      timeout_secs: 5\n"
    )
}

/// Two email-only customers born on May 5, sent to a sink started with `args`; both must be
/// refused (failed, or waiting behind a paused channel). `None` when the sink or the database
/// is missing (outside CI).
async fn rejected_by(db: Db, args: &[&str]) -> Option<(SmtpSink, TestApp)> {
    let sink = SmtpSink::start(args)?;
    let t = TestApp::start(db, &smtp(sink.port())).await?;
    let csv = format!(
        "{HEADER}b1,Emma,Test,emma@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
         b2,Ana,Test,ana@example.com,,ro,Europe/Bucharest,1991-05-05,email\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    assert_eq!(t.app.tick(now).await.unwrap().queued, 2);
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.sent, d.failed + d.paused), (0, 2), "{d:?}");
    Some((sink, t))
}

/// (customer id, consent records) of every customer.
async fn consents(t: &TestApp) -> Vec<(i64, Vec<(String, bool, String)>)> {
    let mut ids: Vec<i64> = t.rows().await.iter().map(|d| d.customer_id).collect();
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        out.push((id, t.app.store.consents_of(id).await.unwrap()));
    }
    out
}

/// The next birthday's decisions: (status, reason) of the 2028 rows.
async fn next_year(t: &TestApp) -> Vec<(String, String)> {
    let now = at("2028-05-05T12:00:00Z");
    t.app.tick(now).await.unwrap();
    t.app.drain(now).await.unwrap();
    t.rows()
        .await
        .into_iter()
        .filter(|d| d.occurrence == "2028")
        .map(|d| (d.status.to_string(), d.reason.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_user_unknown_to_rcpt_opts_the_customer_out_of_email() {
    for db in BOTH {
        for reply in ["550 5.1.1 User unknown", "550 User unknown"] {
            let Some((_sink, t)) = rejected_by(db, &["-f", "RCPT", "-B", reply]).await else {
                continue;
            };
            for row in t.rows().await {
                assert_eq!(row.status, "failed");
                let err = row.last_error.unwrap_or_default();
                assert!(err.starts_with("RCPT TO: "), "{err}");
                assert!(err.contains("User unknown"), "{err}");
            }
            for (id, c) in consents(&t).await {
                assert_eq!(
                    c,
                    vec![("channel:email".to_string(), true, "bounce".to_string())],
                    "{db:?} `{reply}`: customer {id}"
                );
                // The change is in the consent history too, with its source and time.
                let events = t.app.store.consent_events(id).await.unwrap();
                assert_eq!(
                    events
                        .iter()
                        .map(|e| (
                            e.scope.as_str(),
                            e.opted_out,
                            e.source.as_str(),
                            e.changed_at
                        ))
                        .collect::<Vec<_>>(),
                    vec![(
                        "channel:email",
                        true,
                        "bounce",
                        at("2027-05-05T12:00:00Z").as_second()
                    )],
                    "{db:?} `{reply}`: customer {id}"
                );
            }
            let next = next_year(&t).await;
            assert_eq!(next.len(), 2, "{next:?}");
            for (status, reason) in next {
                assert_eq!(status, "suppressed", "{db:?} `{reply}`");
                assert!(reason.starts_with("opted_out"), "{reason}");
            }
        }
    }
}

#[tokio::test]
async fn rejections_of_us_or_of_the_message_never_suppress_the_customer() {
    // (sink flags, the command named in the error, about us: the channel pauses)
    for (args, expect, about_us) in [
        (
            &["-f", "MAIL", "-B", "535 5.7.8 Authentication failed"][..],
            "MAIL FROM: ",
            true,
        ),
        (
            &["-f", "MAIL", "-B", "550 5.1.1 Sender unknown"][..],
            "MAIL FROM: ",
            true,
        ),
        (
            &["-f", "RCPT", "-B", "550 5.7.1 Relaying denied"][..],
            "RCPT TO: ",
            true,
        ),
        (&["-f", "RCPT"][..], "RCPT TO: ", false), // smtp-sink's default: 500 5.3.0 Error: command failed
        (
            &["-f", "DATA", "-B", "554 5.6.0 Content rejected"][..],
            "DATA: ",
            false,
        ),
        (
            &["-f", ".", "-B", "550 5.7.1 Message rejected as spam"][..],
            "end of data: ",
            true,
        ),
    ] {
        let Some((_sink, t)) = rejected_by(Db::Sqlite, args).await else {
            return;
        };
        let pauses = t.app.store.channel_pauses().await.unwrap();
        for row in t.rows().await {
            // About us: the message waits for the channel (never failed, never the customer's
            // fault); about the message: failed.
            let want = if about_us { "retry_wait" } else { "failed" };
            assert_eq!(row.status, want, "{args:?}");
            let err = row.last_error.unwrap_or_default();
            assert!(err.starts_with(expect), "{args:?}: {err}");
        }
        if about_us {
            assert_eq!(pauses.len(), 1, "{args:?}: {pauses:?}");
            assert_eq!(pauses[0].channel, "email");
            assert!(pauses[0].reason.starts_with(expect), "{pauses:?}");
        } else {
            assert!(pauses.is_empty(), "{args:?}: {pauses:?}");
        }
        for (id, c) in consents(&t).await {
            assert!(c.is_empty(), "{args:?}: customer {id} suppressed: {c:?}");
        }
        // Next year they are written to again.
        let next = next_year(&t).await;
        assert_eq!(next.len(), 2, "{next:?}");
        for (status, _) in next {
            assert_ne!(status, "suppressed", "{args:?}");
        }
    }
}

/// A paused channel is not claimed until its pause ends or an operator lifts it; then the
/// waiting messages go out once, and the pause is cleared by the first success.
#[tokio::test]
async fn a_paused_channel_waits_and_resumes_after_the_fix() {
    let Some(bad) = SmtpSink::start(&["-f", "MAIL", "-B", "535 5.7.8 Authentication failed"])
    else {
        return;
    };
    let Some(t) = TestApp::start(Db::Sqlite, &smtp(bad.port())).await else {
        return;
    };
    let csv = format!(
        "{HEADER}b1,Emma,Test,emma@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
         b2,Ana,Test,ana@example.com,,ro,Europe/Bucharest,1991-05-05,email\n"
    );
    assert!(t.customers(&csv).await.is_empty());
    let now = at("2027-05-05T12:00:00Z");
    t.app.tick(now).await.unwrap();
    let d = t.app.drain(now).await.unwrap();
    assert_eq!((d.paused, d.failed, d.sent), (2, 0, 0), "{d:?}");
    let pause = t.app.store.channel_pauses().await.unwrap().remove(0);
    assert_eq!(
        (pause.strikes, pause.until - pause.paused_at),
        (1, 900),
        "{pause:?}"
    );
    // While paused nothing is claimed.
    assert_eq!(
        t.app
            .drain(at("2027-05-05T12:10:00Z"))
            .await
            .unwrap()
            .claimed,
        0
    );
    // After the pause the waiting messages probe the relay; refused again: the pause doubles.
    let later = at("2027-05-05T12:20:00Z");
    let d = t.app.drain(later).await.unwrap();
    assert_eq!((d.paused, d.sent), (2, 0), "{d:?}");
    let pause = t.app.store.channel_pauses().await.unwrap().remove(0);
    assert_eq!(
        (pause.strikes, pause.until - later.as_second()),
        (2, 1800),
        "{pause:?}"
    );
    assert_eq!(t.app.drain(later).await.unwrap().claimed, 0);
    // The operator fixes the relay (a working one on another port) and lifts the pause.
    let bad_port = bad.port();
    drop(bad);
    let Some(good) = SmtpSink::start(&[]) else {
        return;
    };
    let cfg_path = t.dir.join("config/ritualist.yaml");
    let yaml = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(
        &cfg_path,
        yaml.replace(
            &format!("port: {bad_port}\n"),
            &format!("port: {}\n", good.port()),
        ),
    )
    .unwrap();
    let fixed = ritualist::app::App::open(ritualist::config::Config::load(&cfg_path).unwrap())
        .await
        .unwrap();
    assert!(
        ritualist::app::outbox_resume(&fixed.store, "email", later.as_second())
            .await
            .unwrap()
    );
    let d = fixed.drain(later).await.unwrap();
    assert_eq!((d.sent, d.paused), (2, 0), "{d:?}");
    assert_eq!(
        good.wait_for(2, std::time::Duration::from_secs(10)).len(),
        2
    );
    assert!(fixed.store.channel_pauses().await.unwrap().is_empty());
}

/// The drain claims its next batch while the one before it is sent (issue #26). When that
/// send pauses the channel (the relay refuses ritualist itself), the batch claimed ahead goes
/// back to the queue untried instead of going out into the refusal: one strike, one refused
/// message, the others waiting for the pause with no attempt counted. One email per batch,
/// so the second batch is claimed while the first is refused.
#[tokio::test]
async fn a_batch_claimed_ahead_waits_out_a_pause_the_batch_before_it_set() {
    for db in BOTH {
        let Some(bad) = SmtpSink::start(&["-f", "MAIL", "-B", "535 5.7.8 Authentication failed"])
        else {
            return;
        };
        let Some(t) = TestApp::start(
            db,
            &format!(
                "{}  batch_size: 1
",
                smtp(bad.port())
            ),
        )
        .await
        else {
            continue;
        };
        let csv = format!(
            "{HEADER}b1,Emma,Test,emma@example.com,,en,Europe/Bucharest,1990-05-05,email\n\
             b2,Ana,Test,ana@example.com,,ro,Europe/Bucharest,1991-05-05,email\n\
             b3,Ion,Test,ion@example.com,,ro,Europe/Bucharest,1992-05-05,email\n"
        );
        assert!(t.customers(&csv).await.is_empty());
        let now = at("2027-05-05T12:00:00Z");
        assert_eq!(t.app.tick(now).await.unwrap().queued, 3);
        let d = t.app.drain(now).await.unwrap();
        assert_eq!((d.paused, d.sent, d.failed), (1, 0, 0), "{db:?}: {d:?}");
        let pauses = t.app.store.channel_pauses().await.unwrap();
        assert_eq!(pauses.len(), 1, "{db:?}: {pauses:?}");
        assert_eq!(pauses[0].strikes, 1, "{db:?}: one refusal, one strike");
        let mut statuses: Vec<(String, i32)> = t
            .rows()
            .await
            .into_iter()
            .map(|r| (r.status.to_string(), r.attempts))
            .collect();
        statuses.sort();
        assert_eq!(
            statuses,
            [
                ("pending".to_string(), 0),
                ("pending".to_string(), 0),
                ("retry_wait".to_string(), 1)
            ],
            "{db:?}"
        );
    }
}

/// A relay that refuses us at the greeting or at EHLO (`554 5.7.1 … blocklist`: our IP is
/// listed) refuses ritualist itself, never a recipient: the email channel pauses, nothing is
/// failed, nobody is opted out. Regression: each message was marked `failed`, one per
/// circuit-breaker probe.
#[tokio::test]
async fn a_refusal_at_the_greeting_or_ehlo_pauses_the_channel() {
    for db in BOTH {
        for (command, reply) in [
            (
                "CONNECT",
                "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org blocklist",
            ),
            ("EHLO", "554 5.7.1 Client host rejected: blocklist"),
            ("EHLO", "550 Access denied"),
        ] {
            let Some((_sink, t)) = rejected_by(db, &["-f", command, "-B", reply]).await else {
                continue;
            };
            for row in t.rows().await {
                assert_eq!(row.status, "retry_wait", "{db:?} {command}: {row:?}");
                let err = row.last_error.unwrap_or_default();
                assert!(err.contains("rejected by the relay"), "{err}");
            }
            let pauses = t.app.store.channel_pauses().await.unwrap();
            assert_eq!(pauses.len(), 1, "{db:?} {command}: {pauses:?}");
            assert_eq!(pauses[0].channel, "email");
            for (_, c) in consents(&t).await {
                assert!(c.is_empty(), "{db:?} {command}: {c:?}");
            }
        }
    }
}
