//! Who may open the preview server's pages. On a loopback address, anyone who can reach it
//! (the marketer's own machine, as before). On any other address the server refuses to
//! start unless the environment gives a key (`RITUALIST_PREVIEW_KEY`) or a user and password
//! (`RITUALIST_PREVIEW_USER`, `RITUALIST_PREVIEW_PASSWORD`); once given, every request but
//! `/healthz` must carry them, on any address.
//!
//! A key is accepted as `Authorization: Bearer KEY`, as `?key=KEY` (which also sets an
//! HttpOnly cookie, so the page's own links keep working) or as that cookie; a password as
//! HTTP basic auth (the browser asks for it). Comparisons take the same time wherever the
//! strings differ.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::config::Secret;
use crate::http::respond::same_secret;

/// The environment variable holding the key.
pub const KEY_VAR: &str = "RITUALIST_PREVIEW_KEY";
/// The environment variables holding the basic-auth user and password.
pub const USER_VAR: &str = "RITUALIST_PREVIEW_USER";
pub const PASSWORD_VAR: &str = "RITUALIST_PREVIEW_PASSWORD";

const COOKIE: &str = "ritualist_preview_key";

/// The credentials the preview server asks for; none by default.
#[derive(Debug, Clone, Default)]
pub struct PreviewAccess {
    pub key: Option<Secret>,
    /// (user, password) for HTTP basic auth.
    pub basic: Option<(String, Secret)>,
}

impl PreviewAccess {
    /// From environment variables, read through `var` (empty counts as unset). A user
    /// without a password (or the reverse) is an error: half a login must not pass for none.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<PreviewAccess, String> {
        let get = |name: &str| var(name).filter(|s| !s.is_empty());
        let basic = match (get(USER_VAR), get(PASSWORD_VAR)) {
            (Some(u), Some(p)) => Some((u, Secret::new(p))),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "set both {USER_VAR} and {PASSWORD_VAR}, or neither"
                ));
            }
        };
        Ok(PreviewAccess {
            key: get(KEY_VAR).map(Secret::new),
            basic,
        })
    }

    /// Whether any credential is set (then every request must carry one).
    pub fn is_set(&self) -> bool {
        self.key.is_some() || self.basic.is_some()
    }

    /// Whether the request's headers or query carry a credential this access accepts.
    fn allows(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(key) = &self.key {
            let bearer = auth.strip_prefix("Bearer ").map(|b| b.trim().to_string());
            let candidates = [bearer, query_key(query), cookie_key(headers)];
            if candidates
                .iter()
                .flatten()
                .any(|k| !k.is_empty() && same_secret(k, key.expose()))
            {
                return true;
            }
        }
        if let Some((user, password)) = &self.basic
            && let Some((u, p)) = basic_credentials(auth)
        {
            // Both compared, whatever the first says.
            return same_secret(&u, user) & same_secret(&p, password.expose());
        }
        false
    }
}

/// `key=` of a query string, percent-decoded.
fn query_key(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "key").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key cookie, when the browser sent it.
fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
}

/// (user, password) of an `Authorization: Basic` header.
fn basic_credentials(auth: &str) -> Option<(String, String)> {
    let (scheme, b64) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    raw.split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))
}

/// The middleware: lets `/healthz` and allowed requests through, answers 401 otherwise. A
/// key given in the query is remembered in a cookie for the page's links.
pub(in crate::http) async fn guard(
    State(access): State<std::sync::Arc<PreviewAccess>>,
    req: Request,
    next: Next,
) -> Response {
    if !access.is_set() || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let query = req.uri().query().map(str::to_string);
    if !access.allows(req.headers(), query.as_deref()) {
        let challenge = if access.basic.is_some() {
            "Basic realm=\"ritualist preview\", charset=\"UTF-8\""
        } else {
            "Bearer"
        };
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            "this page needs the preview key (RITUALIST_PREVIEW_KEY) or its user and password\n",
        )
            .into_response();
    }
    let from_query = query_key(query.as_deref());
    let mut resp = next.run(req).await;
    if let Some(k) = from_query
        && let Ok(v) = format!("{COOKIE}={k}; Path=/; HttpOnly; SameSite=Strict").parse()
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    #[test]
    fn a_key_is_taken_from_the_header_the_query_or_the_cookie() {
        let a = PreviewAccess {
            key: Some(Secret::new("s3 cret")),
            basic: None,
        };
        let none = HeaderMap::new();
        assert!(!a.allows(&none, None));
        assert!(!a.allows(&none, Some("key=")));
        assert!(a.allows(&none, Some("days=3&key=s3%20cret")));
        assert!(!a.allows(&none, Some("key=s3")));
        assert!(a.allows(&headers(header::AUTHORIZATION, "Bearer s3 cret"), None));
        assert!(a.allows(
            &headers(header::COOKIE, "a=b; ritualist_preview_key=s3 cret"),
            None
        ));
        assert!(!a.allows(&headers(header::COOKIE, "ritualist_preview_key=x"), None));
    }

    #[test]
    fn basic_auth_checks_user_and_password() {
        let a = PreviewAccess {
            key: None,
            basic: Some(("ana".into(), Secret::new("pw"))),
        };
        let basic = |s: &str| {
            headers(
                header::AUTHORIZATION,
                &format!("Basic {}", STANDARD.encode(s)),
            )
        };
        assert!(a.allows(&basic("ana:pw"), None));
        assert!(!a.allows(&basic("bob:pw"), None));
        assert!(!a.allows(&basic("ana:pwx"), None));
        assert!(!a.allows(&HeaderMap::new(), Some("key=pw")));
    }

    #[test]
    fn the_environment_gives_both_halves_of_a_login_or_neither() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!PreviewAccess::from_vars(env(&[])).unwrap().is_set());
        assert!(
            !PreviewAccess::from_vars(env(&[(KEY_VAR, "")]))
                .unwrap()
                .is_set()
        );
        assert!(
            PreviewAccess::from_vars(env(&[(KEY_VAR, "k")]))
                .unwrap()
                .is_set()
        );
        assert!(PreviewAccess::from_vars(env(&[(USER_VAR, "u")])).is_err());
        let a = PreviewAccess::from_vars(env(&[(USER_VAR, "u"), (PASSWORD_VAR, "p")])).unwrap();
        assert!(a.basic.is_some() && a.key.is_none());
    }
}
