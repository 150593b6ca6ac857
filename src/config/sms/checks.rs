//! Checks shared by the providers: names, URLs, keys that look like credentials.

use serde_saphyr::Spanned;
use std::path::Path;

use crate::config::diagnostic::{Diagnostic, Diagnostics};

/// `name:` (or the default): letters, digits, `-` and `_`, so replies stay easy to read.
pub(super) fn provider_name(
    path: &Path,
    name: Option<&Spanned<String>>,
    default: &str,
    diags: &mut Diagnostics,
) -> String {
    let Some(n) = name else {
        return default.to_string();
    };
    let ok = !n.value.is_empty()
        && n.value.len() <= 32
        && n.value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        diags.push(
            Diagnostic::at(
                path,
                &n.referenced,
                format!("invalid provider name `{}`", n.value),
            )
            .with_hint("up to 32 letters, digits, `-` or `_`, e.g. `smsro` or `twilio-eu`"),
        );
    }
    n.value.clone()
}

/// https, or http to this machine only (docs/delivery-guarantee.md §4: outbound HTTP).
pub(super) fn check_url(path: &Path, u: &Spanned<String>, diags: &mut Diagnostics) {
    if let Err(e) = url_problem(&u.value) {
        diags.push(Diagnostic::at(path, &u.referenced, e).with_hint(
            "use an https:// URL; plain http:// is accepted only for 127.0.0.1, [::1] or localhost",
        ));
    }
}

pub(super) fn url_problem(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" => {
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "`{url}` is plain http to another machine: messages and credentials would travel unencrypted"
                ))
            }
        }
        _ => Err(format!("`{url}` is not an http(s) URL")),
    }
}

/// Header, query and form names that carry credentials: their value must come from `{secret}`.
pub(super) fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    [
        "authorization",
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|w| n.contains(w))
        || ["key", "pass", "pwd", "psw", "auth"].contains(&n.as_str())
}
