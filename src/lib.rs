//! ritualist: customer-loyalty rituals (birthday greetings and more) planned from YAML,
//! rendered from Handlebars templates and delivered by email and SMS, once per occurrence.
//!
//! The map (arrows point inward):
//! - [`domain`]: value types (email, E.164 phone, locale, yearly dates, occurrence keys);
//! - [`config`], [`ritual`]: YAML → validated settings and rituals, with file:line diagnostics;
//! - [`calendar`]: holiday calendars (YAML) and their pure date rules (nth weekday, Easter ± N);
//! - [`plan`]: the one pure decision function (`now` is an argument);
//! - [`render`]: Handlebars (the only home of `handlebars`), template lint, SMS segments;
//! - [`store`]: sea-orm (the only home of `sea_orm`): customers, orders, consent, the ledger;
//! - [`channel`]: lettre and reqwest behind one small trait (outbox, SMTP, Kannel);
//! - [`import`]: CSV → records, every bad row reported with its line;
//! - [`bounce`]: bounce mail (DSN, ARF, text bounces, auto-replies) → reports (the only home of
//!   `mail_parser`);
//! - [`feedback_hooks`]: email providers' webhooks as pure functions (the only home of `ring`
//!   and `x509-cert`): signature checks and payloads → events;
//! - [`app`]: the use cases the CLI calls (tick, dispatch, preview, check, import);
//! - [`http`]: axum (the only home of `axum`): the local preview page for marketers;
//! - [`inbound`]: the daemon's LMTP/SMTP listener for bounce mail (`bounces.listen`).

pub mod app;
pub mod bounce;
pub mod calendar;
pub mod channel;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod failpoint;
pub mod feedback_hooks;
pub mod http;
pub mod import;
pub mod inbound;
pub mod plan;
pub mod render;
pub mod ritual;
pub mod store;
#[cfg(test)]
mod test_support;
