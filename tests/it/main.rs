//! The one integration-test binary: the product against a real SQLite file, a real
//! PostgreSQL server, Postfix's smtp-sink and a real Kannel gateway, all on loopback, and the
//! preview page in headless Chromium.
//! Peers are started by each test (see `peers`); under CI a missing peer fails the test.

mod bad_data;
mod bounce;
mod bounce_mail;
mod brownout;
mod browser;
mod consent;
mod crash;
mod daemon_lock;
mod delivery;
mod dkim;
mod engine;
mod faults;
mod forget;
mod harness;
mod history;
mod hostile;
mod import_stream;
mod inbound_mail;
mod inert;
mod ingest;
mod kannel_inbound;
mod labels;
mod logs;
mod outbox;
mod pages;
mod parallel;
mod peers;
mod plan_stream;
mod postfix_relay;
mod regression;
mod relay_limit;
mod reload;
mod report;
mod scale_out;
mod scenarios;
mod shutdown;
mod sms_providers;
mod sms_receipts;
mod snapshots;
mod surveys;
mod test_ca;
mod tick_drain;
mod tls_peer;
mod tls_pg;
mod tls_private_ca;
mod upgrade;
mod webhooks;
mod wire;
