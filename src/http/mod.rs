//! HTTP: the only home of `axum`. Two servers:
//! - the marketers' preview page (`ritualist preview --serve`, [`serve_preview`]): every
//!   ritual × locale rendered for a sample customer and date, email and SMS side by side,
//!   re-rendered from disk on every request; beside it the marketer's pages (`pages/`: the
//!   calendar of upcoming sends, one customer's story, the results), behind a key or a
//!   password when bound beyond loopback;
//! - the daemon's public server (`http:` in the config, inside `ritualist run`,
//!   [`serve_public`]): unsubscribe and preference pages behind signed link tokens, survey
//!   score links (NPS) with a comment box, inbound SMS keywords (Twilio, Kannel's
//!   sms-service and a generic JSON webhook), SMS delivery receipts (Kannel, Twilio, a
//!   generic callback), `/healthz`, the ingest API (`/api/customers`, `/api/orders`), `/metrics`
//!   and the email providers' bounce, complaint and delivery webhooks (`/webhooks/…`).
//!
//! Neither binds anything itself: the caller passes a bound listener and a shutdown future,
//! so tests can run them on port 0 and stop them at will.

mod api;
mod consent;
mod inbound;
mod kannel;
mod pages;
mod preview;
mod public;
mod receipts;
mod respond;
mod survey;
mod webhooks;

pub use inbound::{Keyword, keyword, twilio_signature_ok};
pub use pages::access::{KEY_VAR, PASSWORD_VAR, PreviewAccess, USER_VAR};
pub use preview::serve_preview;
pub use public::serve_public;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The files of `http/` and their sources.
    const FILES: [(&str, &str); 11] = [
        ("api", include_str!("api.rs")),
        ("consent", include_str!("consent.rs")),
        ("inbound", include_str!("inbound.rs")),
        ("kannel", include_str!("kannel.rs")),
        ("mod", include_str!("mod.rs")),
        ("preview", include_str!("preview.rs")),
        ("public", include_str!("public.rs")),
        ("receipts", include_str!("receipts.rs")),
        ("respond", include_str!("respond.rs")),
        ("survey", include_str!("survey.rs")),
        ("webhooks", include_str!("webhooks.rs")),
    ];

    /// The other files of `http/` a source refers to (`super::x`, `crate::http::x`), outside
    /// its tests.
    fn edges(name: &str, src: &str) -> BTreeSet<&'static str> {
        let code = src.split("#[cfg(test)]\nmod tests").next().unwrap_or(src);
        FILES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| *n != name && *n != "mod")
            .filter(|n| {
                code.contains(&format!("super::{n}::"))
                    || code.contains(&format!("crate::http::{n}::"))
            })
            .collect()
    }

    #[test]
    fn the_files_of_http_import_each_other_without_a_cycle() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".rs")
                    .map(String::from)
            })
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, listed, "list every file of src/http/ in FILES");
        let graph: BTreeMap<&str, BTreeSet<&str>> = FILES
            .iter()
            .filter(|(n, _)| *n != "mod")
            .map(|(n, src)| (*n, edges(n, src)))
            .collect();
        assert!(graph["respond"].is_empty(), "respond.rs is a leaf");
        // Remove files with no outgoing edge left until none remain; a cycle stops it.
        let mut left = graph.clone();
        while !left.is_empty() {
            let done: Vec<&str> = left
                .iter()
                .filter(|(_, to)| to.iter().all(|t| !left.contains_key(t)))
                .map(|(n, _)| *n)
                .collect();
            assert!(!done.is_empty(), "an import cycle among {left:?}");
            for n in done {
                left.remove(n);
            }
        }
        // The check sees edges at all.
        assert!(graph["public"].contains("consent") && graph["api"].contains("respond"));
    }
}
