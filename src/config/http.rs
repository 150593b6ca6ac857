//! The `http:` section: the daemon's public server (unsubscribe, preferences, inbound SMS
//! webhooks, health). Without it `ritualist run` serves nothing and links fall back to
//! `links.unsubscribe`.
//!
//! ```yaml
//! http:
//!   listen: "127.0.0.1:8080"          # behind a reverse proxy
//!   public_url: https://shop.example/r # what customers' links start with (proxy → listen)
//!   body_limit_bytes: 16384            # larger request bodies get 413
//!   timeout_secs: 10                   # a request not answered by then gets 408
//!   sms_help: "Floare & Co: reply STOP to unsubscribe, START to subscribe again."
//!   sms_stop_reply: "Floare & Co: unsubscribed. Reply START to subscribe again."  # unset: no reply
//!   inbound_key_env: RITUALIST_INBOUND_KEY    # bearer key of POST /sms/inbound (the default)
//!   kannel_key_env: RITUALIST_KANNEL_INBOUND_KEY  # key of /sms/kannel (the default; unset: 404)
//!   previous_secret_env: RITUALIST_SECRET_PREVIOUS  # the key before a rotation (the default)
//!   api_key_env: RITUALIST_API_KEY            # bearer key of /api/* (the default; unset: 404)
//!   metrics_key_env: RITUALIST_METRICS_KEY    # bearer key of /metrics (the default; unset: open)
//! ```

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpSpec {
    listen: Spanned<String>,
    public_url: Spanned<String>,
    body_limit_bytes: Option<u32>,
    timeout_secs: Option<u32>,
    sms_help: Option<String>,
    sms_stop_reply: Option<String>,
    inbound_key_env: Option<String>,
    kannel_key_env: Option<String>,
    previous_secret_env: Option<String>,
    api_key_env: Option<String>,
    metrics_key_env: Option<String>,
}

/// The validated `http:` section.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the daemon listens (port 0: any free port, logged at start).
    pub listen: SocketAddr,
    /// The public base of every link, without a trailing slash.
    pub public_url: String,
    pub body_limit_bytes: usize,
    pub timeout_secs: u32,
    /// The reply to an inbound HELP.
    pub sms_help: String,
    /// The confirmation texted back to a STOP that opted someone out; `None` (the default):
    /// STOP gets no reply.
    pub sms_stop_reply: Option<String>,
    /// Bearer key of the generic inbound SMS webhook; `None`: that webhook answers 404.
    pub inbound_key: Option<Secret>,
    /// Key of Kannel's `sms-service` (`/sms/kannel`, as `?key=` or the HTTP Basic password);
    /// `None`: that route answers 404.
    pub kannel_key: Option<Secret>,
    /// The link key before the last rotation: its tokens still verify.
    pub previous_secret: Option<Secret>,
    /// Bearer key of the ingest API (`/api/customers`, `/api/orders`); `None`: it answers 404.
    pub api_key: Option<Secret>,
    /// Bearer key of `/metrics`; `None`: `/metrics` is open (never proxy it to the internet).
    pub metrics_key: Option<Secret>,
}

pub(super) fn http_config(
    path: &Path,
    spec: Option<&HttpSpec>,
    shop_name: &str,
    diags: &mut Diagnostics,
) -> Option<HttpConfig> {
    let s = spec?;
    let listen = match s.listen.value.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            diags.push(
                Diagnostic::at(
                    path,
                    &s.listen.referenced,
                    format!("invalid http.listen `{}`", s.listen.value),
                )
                .with_hint("an address and port, e.g. \"127.0.0.1:8080\" (quote it)"),
            );
            "127.0.0.1:0".parse().expect("a socket address")
        }
    };
    let url = s.public_url.value.trim_end_matches('/').to_string();
    let host_ok = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#', ' ']));
    if !host_ok {
        diags.push(
            Diagnostic::at(
                path,
                &s.public_url.referenced,
                format!("invalid http.public_url `{}`", s.public_url.value),
            )
            .with_hint(
                "the https address your reverse proxy forwards to `listen`, e.g. https://shop.example/r (no query)",
            ),
        );
    }
    let key_var = s
        .inbound_key_env
        .as_deref()
        .unwrap_or("RITUALIST_INBOUND_KEY");
    let kannel_var = s
        .kannel_key_env
        .as_deref()
        .unwrap_or("RITUALIST_KANNEL_INBOUND_KEY");
    let prev_var = s
        .previous_secret_env
        .as_deref()
        .unwrap_or("RITUALIST_SECRET_PREVIOUS");
    let api_var = s.api_key_env.as_deref().unwrap_or("RITUALIST_API_KEY");
    let metrics_var = s
        .metrics_key_env
        .as_deref()
        .unwrap_or("RITUALIST_METRICS_KEY");
    Some(HttpConfig {
        listen,
        public_url: url,
        body_limit_bytes: s.body_limit_bytes.unwrap_or(16 * 1024).max(1024) as usize,
        timeout_secs: s.timeout_secs.unwrap_or(10).max(1),
        sms_help: s.sms_help.clone().unwrap_or_else(|| {
            format!("{shop_name}: reply STOP to unsubscribe, START to subscribe again.")
        }),
        sms_stop_reply: s.sms_stop_reply.clone().filter(|t| !t.trim().is_empty()),
        inbound_key: Secret::from_env(key_var),
        kannel_key: Secret::from_env(kannel_var),
        previous_secret: Secret::from_env(prev_var),
        api_key: Secret::from_env(api_var),
        metrics_key: Secret::from_env(metrics_var),
    })
}
