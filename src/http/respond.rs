//! The small helpers every HTTP file shares: responses (`json`, `html`), escaping (HTML,
//! XML) and key checks (constant-time comparison, bearer and basic authorization).
//!
//! A leaf: it imports no other file of `http/`, so the files that serve routes depend on it
//! and never on each other for these (`http::tests` checks that the imports form no cycle).

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// A JSON response.
pub(super) fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// An HTML response.
pub(super) fn html(status: StatusCode, s: String) -> Response {
    (status, Html(s)).into_response()
}

/// Escapes text for HTML content and for double- or single-quoted attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for XML content and attribute values (TwiML).
pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Equal strings, in time independent of where they differ (both are hashed first).
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (ha, hb) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    ha.iter()
        .zip(hb.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `None` when the request carries `key` as its `Authorization: Bearer`; the 401 otherwise.
pub(super) fn check_bearer(headers: &HeaderMap, key: &Secret) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !given.is_empty() && same_secret(given, key.expose()) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer key\n",
        )
            .into_response(),
    )
}

/// The password of an `Authorization: Basic` header (the user name is not checked).
pub(super) fn basic_password(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    raw.split_once(':').map(|(_, p)| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_end_an_attribute_or_open_a_tag() {
        assert_eq!(
            esc(r#"<a href="x?a=1&b='2'">"#),
            "&lt;a href=&quot;x?a=1&amp;b=&#39;2&#39;&quot;&gt;"
        );
        // An entity already in the email must survive the attribute round trip.
        assert_eq!(esc("&amp;"), "&amp;amp;");
        assert_eq!(xml_escape("<a b='c'>&"), "&lt;a b=&apos;c&apos;&gt;&amp;");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn bearer_keys_are_checked_whole() {
        let key = Secret::new("k3y");
        let mut h = HeaderMap::new();
        assert!(check_bearer(&h, &key).is_some());
        h.insert(header::AUTHORIZATION, "Bearer k3y".parse().unwrap());
        assert!(check_bearer(&h, &key).is_none());
        h.insert(header::AUTHORIZATION, "Bearer k3".parse().unwrap());
        assert!(check_bearer(&h, &key).is_some());
    }
}
