//! A relay that allows fewer connections than `email.smtp.connections` (Postfix's
//! `smtpd_client_connection_count_limit`, Exim's `smtp_accept_max`, a provider's per-account
//! limit): the pool works with the connections it is given. Before, each connection refused
//! (a `421` greeting) failed its message, which then waited for a retry, and the refusals
//! counted towards the circuit breaker — with the default of 32 connections since issue #26,
//! against any relay allowing fewer.

use crate::harness::{Db, TestApp, at, born_on_may_5};
use crate::peers::{Postfix, SmtpSink};

const N: usize = 120;
const NOW: &str = "2027-05-05T12:00:00Z";
/// The connections the relay allows this client.
const LIMIT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_allowing_fewer_connections_than_configured_takes_every_message_in_one_drain() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    // Postfix exempts its own networks from the limit unless told otherwise.
    let limits = format!(
        "smtpd_client_connection_count_limit = {LIMIT}\nsmtpd_client_event_limit_exceptions =\n"
    );
    let Some(relay) = Postfix::start(sink.port(), &limits, &[], &[]) else {
        return;
    };
    // `connections` left at its default (32), well above the relay's limit.
    let delivery = format!(
        "  email:\n    transport: smtp\n    smtp:\n      host: 127.0.0.1\n      port: {}\n      security: plain\n      timeout_secs: 10\n  sms:\n    transport: outbox\n  batch_size: 200\n",
        relay.port()
    );
    let Some(t) = TestApp::start(Db::Sqlite, &delivery).await else {
        return;
    };
    assert!(t.customers(&born_on_may_5("c", N)).await.is_empty());
    assert_eq!(t.app.tick(at(NOW)).await.unwrap().queued, N);

    let report = t.app.drain(at(NOW)).await.unwrap();
    assert_eq!(
        (report.sent, report.retrying, report.failed, report.in_doubt),
        (N, 0, 0, 0),
        "every message taken by the relay in one drain, none sent back to wait: {report:?}"
    );
    // The relay did refuse connections: the limit was reached, not merely configured.
    let maillog = std::fs::read_to_string(relay.dir().join("maillog")).unwrap_or_default();
    assert!(
        maillog.contains("concurrency limit exceeded"),
        "Postfix refused no connection, so the test proves nothing; its log:\n{maillog}"
    );
}
