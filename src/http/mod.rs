//! HTTP: the only home of `axum`. Today that is one local tool, the marketers' preview page
//! (`ritualist preview --serve`): every ritual × locale rendered for a sample customer and date,
//! email and SMS side by side, re-rendered from disk on every request.
//!
//! The server binds nothing itself: the caller passes a bound listener (the CLI binds
//! 127.0.0.1) and a shutdown future, so tests can run it on port 0 and stop it at will.

mod preview;

pub use preview::serve_preview;
