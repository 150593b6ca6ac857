//! HTTP: the only home of `axum`. Two servers:
//! - the marketers' preview page (`ritualist preview --serve`, [`serve_preview`]): every
//!   ritual × locale rendered for a sample customer and date, email and SMS side by side,
//!   re-rendered from disk on every request;
//! - the daemon's public server (`http:` in the config, inside `ritualist run`,
//!   [`serve_public`]): unsubscribe and preference pages behind signed link tokens, survey
//!   score links (NPS) with a comment box, inbound SMS keywords (Twilio, Kannel's
//!   sms-service and a generic JSON webhook), `/healthz`, the ingest API (`/api/customers`, `/api/orders`) and `/metrics`.
//!
//! Neither binds anything itself: the caller passes a bound listener and a shutdown future,
//! so tests can run them on port 0 and stop them at will.

mod api;
mod consent;
mod inbound;
mod kannel;
mod preview;
mod public;
mod survey;

pub use inbound::{Keyword, keyword, twilio_signature_ok};
pub use preview::serve_preview;
pub use public::serve_public;
