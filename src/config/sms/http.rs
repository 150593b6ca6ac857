//! The generic HTTP provider (`http:`): its templates, headers, body, secret and the reply
//! that means "accepted".

use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::checks::{check_url, looks_secret, provider_name};
use super::spec::{AcceptedSpec, FieldMap, HttpSpec};
use super::template::{JsonTemplate, Placeholder, Template};
use super::types::{AcceptRule, HttpBody, HttpMethod, HttpSmsConfig, JsonFieldRule};
use crate::config::diagnostic::{Diagnostic, Diagnostics};
use crate::config::secret::{Secret, SecretSource, read_secret};

pub(super) fn http_config(path: &Path, h: &HttpSpec, diags: &mut Diagnostics) -> HttpSmsConfig {
    let name = provider_name(path, Some(&h.name), "http", diags);
    check_url(path, &h.url, diags);
    let method = http_method(path, h.method.as_ref(), diags);
    // Every template, with where it was written, for the checks below (skipped when a
    // template did not parse: they would only repeat that error).
    let mut used = Used::default();
    let headers = used.fields(path, h.headers.as_ref(), "header", diags);
    let query = used.fields(path, h.query.as_ref(), "query parameter", diags);
    let form = used.fields(path, h.form.as_ref(), "form field", diags);
    check_headers(path, h.headers.as_ref(), diags);
    let json = h.json.as_ref().and_then(|j| used.json(path, j, diags));
    let body = request_body(path, h, form, json, diags);
    if method == HttpMethod::Get && body != HttpBody::None {
        let at = h
            .method
            .as_ref()
            .map_or(h.name.referenced, |m| m.referenced);
        diags.push(
            Diagnostic::at(path, &at, "`method: GET` sends no body")
                .with_hint("put the fields under `query:` for GET, or use `method: POST`"),
        );
    }
    used.check(path, h, &name, diags);
    let secret = http_secret(path, h, &name, &used, diags);
    HttpSmsConfig {
        name,
        url: h.url.value.clone(),
        method,
        headers,
        query,
        body,
        secret,
        from: h.from.clone(),
        accepted: accept_rule(path, h.accepted.as_ref(), diags),
        timeout_secs: h.timeout_secs.unwrap_or(15).max(1),
        rate: crate::config::rate::rate_limit(path, h.rate.as_ref(), diags),
        tls: crate::config::tls::tls_trust(
            path,
            "sms.http",
            crate::config::tls::TlsKeys {
                ca_file: h.ca_file.as_deref(),
                ca_only: h.ca_only,
                client_cert: h.client_cert.as_deref(),
                client_key: h.client_key.as_deref(),
                accept_invalid_certs: h.accept_invalid_certs,
            },
            diags,
        ),
    }
}

/// `method:` `POST` (the default) or `GET`.
fn http_method(path: &Path, m: Option<&Spanned<String>>, diags: &mut Diagnostics) -> HttpMethod {
    let Some(m) = m else {
        return HttpMethod::Post;
    };
    match m.value.to_ascii_uppercase().as_str() {
        "POST" => HttpMethod::Post,
        "GET" => HttpMethod::Get,
        other => {
            diags.push(
                Diagnostic::at(path, &m.referenced, format!("unknown method `{other}`"))
                    .with_hint("use POST (a form or JSON body) or GET (query parameters only)"),
            );
            HttpMethod::Post
        }
    }
}

const PLACEHOLDERS_HINT: &str =
    "placeholders: {to} (E.164), {to_digits} (no +), {text}, {from}, {secret}";

/// The placeholders a provider's templates use, each with where it was written.
#[derive(Default)]
struct Used {
    list: Vec<(Placeholder, Location)>,
    /// A template did not parse: the checks would only repeat that error.
    failed: bool,
}

impl Used {
    fn note(&mut self, uses: impl Fn(Placeholder) -> bool, at: Location) {
        for p in Placeholder::ALL {
            if uses(p) {
                self.list.push((p, at));
            }
        }
    }

    fn find(&self, p: Placeholder) -> Option<&Location> {
        self.list.iter().find(|(q, _)| *q == p).map(|(_, at)| at)
    }

    /// Headers, query parameters or form fields as templates (a credential written in YAML
    /// is refused).
    fn fields(
        &mut self,
        path: &Path,
        map: Option<&FieldMap>,
        what: &str,
        diags: &mut Diagnostics,
    ) -> Vec<(String, Template)> {
        let mut out = Vec::new();
        for (k, v) in map.map(|m| m.0.as_slice()).unwrap_or_default() {
            match Template::parse(&v.value) {
                Ok(t) => {
                    if looks_secret(k) && !v.value.is_empty() && !t.uses(Placeholder::Secret) {
                        diags.push(
                            Diagnostic::at(path, &v.referenced, format!("{what} `{k}` holds a credential written in YAML"))
                                .with_hint(format!(
                                    "secrets never go in YAML: set `secret_env: VAR` (or `secret_file:`) and write `{k}: \"…{{secret}}…\"`"
                                )),
                        );
                    }
                    self.note(|p| t.uses(p), v.referenced);
                    out.push((k.clone(), t));
                }
                Err(e) => {
                    self.failed = true;
                    diags.push(
                        Diagnostic::at(path, &v.referenced, format!("{what} `{k}`: {e}"))
                            .with_hint(PLACEHOLDERS_HINT),
                    );
                }
            }
        }
        out
    }

    /// `json:` as a template (a credential written in YAML is refused).
    fn json(
        &mut self,
        path: &Path,
        j: &Spanned<serde_json::Value>,
        diags: &mut Diagnostics,
    ) -> Option<JsonTemplate> {
        match JsonTemplate::parse(&j.value, "") {
            Ok(t) => {
                self.note(|p| t.uses(p), j.referenced);
                let mut keyed = Vec::new();
                t.fields(&mut keyed);
                for (k, v) in keyed {
                    let literal = matches!(&v, JsonTemplate::String(s) if !s.uses(Placeholder::Secret) && !s.0.is_empty());
                    if looks_secret(&k) && literal {
                        diags.push(
                            Diagnostic::at(path, &j.referenced, format!("json field `{k}` holds a credential written in YAML"))
                                .with_hint(format!("secrets never go in YAML: set `secret_env: VAR` and write `{k}: \"{{secret}}\"`")),
                        );
                    }
                }
                Some(t)
            }
            Err(e) => {
                self.failed = true;
                diags.push(Diagnostic::at(path, &j.referenced, e).with_hint(PLACEHOLDERS_HINT));
                None
            }
        }
    }

    /// The request must carry the text and the recipient; `{from}` needs `from:`.
    fn check(&self, path: &Path, h: &HttpSpec, name: &str, diags: &mut Diagnostics) {
        let ok = !self.failed;
        if ok && self.find(Placeholder::Text).is_none() {
            diags.push(
                Diagnostic::at(path, &h.name.referenced, format!("provider `{name}` never sends the message text"))
                    .with_hint("put {text} in `json:`, `form:` or `query:`, e.g. form: { to: \"{to}\", message: \"{text}\" }"),
            );
        }
        if ok && self.find(Placeholder::To).is_none() && self.find(Placeholder::ToDigits).is_none()
        {
            diags.push(
                Diagnostic::at(path, &h.name.referenced, format!("provider `{name}` never sends the recipient"))
                    .with_hint("put {to} (E.164, with +) or {to_digits} (without +) in `json:`, `form:` or `query:`"),
            );
        }
        if h.from.is_none()
            && let Some(at) = self.find(Placeholder::From)
        {
            diags.push(
                Diagnostic::at(path, at, "{from} is used but this provider has no `from:`")
                    .with_hint("add from: YourShop (the sender id registered with this gateway)"),
            );
        }
    }
}

/// Header names are HTTP tokens; values printable ASCII without `{text}`.
fn check_headers(path: &Path, headers: Option<&FieldMap>, diags: &mut Diagnostics) {
    for (k, v) in headers.map_or(&[][..], |m| m.0.as_slice()) {
        let token = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            diags.push(
                Diagnostic::at(path, &v.referenced, format!("invalid header name `{k}`"))
                    .with_hint("header names are letters, digits and `-`, e.g. X-Api-Key"),
            );
        }
        if v.value.contains("{text}") {
            diags.push(
                Diagnostic::at(path, &v.referenced, format!("header `{k}` uses {{text}}"))
                    .with_hint("the message text goes in the body or the query: HTTP headers cannot carry non-ASCII text or line breaks"),
            );
        } else if !v
            .value
            .chars()
            .all(|c| c == '\t' || (' '..='~').contains(&c))
        {
            diags.push(
                Diagnostic::at(
                    path,
                    &v.referenced,
                    format!("header `{k}` has characters HTTP headers cannot carry"),
                )
                .with_hint("header values are printable ASCII"),
            );
        }
    }
}

/// The body: none, `form:` or `json:` (not both).
fn request_body(
    path: &Path,
    h: &HttpSpec,
    form: Vec<(String, Template)>,
    json: Option<JsonTemplate>,
    diags: &mut Diagnostics,
) -> HttpBody {
    match (form.is_empty() && h.form.is_none(), json) {
        (true, None) => HttpBody::None,
        (false, None) => HttpBody::Form(form),
        (true, Some(j)) => HttpBody::Json(j),
        (false, Some(j)) => {
            let at = h.json.as_ref().map_or(h.name.referenced, |j| j.referenced);
            diags.push(
                Diagnostic::at(
                    path,
                    &at,
                    "a request has one body: `form:` or `json:`, not both",
                )
                .with_hint(
                    "keep the one your gateway documents; `query:` adds URL parameters to either",
                ),
            );
            HttpBody::Json(j)
        }
    }
}

/// The value of `{secret}`, read when a template uses it.
fn http_secret(
    path: &Path,
    h: &HttpSpec,
    name: &str,
    used: &Used,
    diags: &mut Diagnostics,
) -> Option<Secret> {
    let at = used.find(Placeholder::Secret)?;
    if h.secret_env.is_none() && h.secret_file.is_none() {
        diags.push(
            Diagnostic::at(path, at, "{secret} is used but neither `secret_env` nor `secret_file` is set")
                .with_hint("add secret_env: SMS_API_KEY (and export it), or secret_file: /run/credentials/sms-key"),
        );
        return None;
    }
    read_secret(
        path,
        SecretSource {
            env: h.secret_env.as_deref(),
            file: h.secret_file.as_deref(),
            default_var: "",
            file_key: "secret_file",
            what: &format!("the secret of SMS provider `{name}`"),
            at: Some(at),
        },
        diags,
    )
}

fn accept_rule(
    path: &Path,
    spec: Option<&Spanned<AcceptedSpec>>,
    diags: &mut Diagnostics,
) -> AcceptRule {
    let Some(a) = spec else {
        return AcceptRule::default();
    };
    let statuses = match &a.value.status {
        None => Vec::new(),
        Some(s) => {
            if s.value.is_empty() || s.value.iter().any(|c| !(100..=599).contains(c)) {
                diags.push(
                    Diagnostic::at(
                        path,
                        &s.referenced,
                        "`status:` must list HTTP statuses (100–599)",
                    )
                    .with_hint("e.g. status: [200, 201, 202]; leave it out for any 2xx"),
                );
            }
            if let Some(bad) = s.value.iter().find(|c| **c == 429 || **c >= 500) {
                diags.push(
                    Diagnostic::at(
                        path,
                        &s.referenced,
                        format!("status {bad} cannot mean accepted"),
                    )
                    .with_hint(
                        "429 and 5xx mean the gateway did not take the message: they are retried",
                    ),
                );
            }
            s.value.clone()
        }
    };
    if a.value.body_contains.as_deref() == Some("") {
        diags.push(
            Diagnostic::at(path, &a.referenced, "`body_contains` is empty: every reply would match")
                .with_hint("the text the gateway's reply has only when it took the message, e.g. body_contains: \"OK\""),
        );
    }
    let json_field = a.value.json_field.as_ref().and_then(|j| {
        let path_ok = !j.path.value.is_empty() && j.path.value.split('.').all(|seg| !seg.is_empty());
        if !path_ok {
            diags.push(
                Diagnostic::at(path, &j.path.referenced, format!("invalid json_field path `{}`", j.path.value))
                    .with_hint("dotted names and list indexes, e.g. `status`, `data.state`, `messages.0.status`"),
            );
        }
        let equals = match &j.equals.value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => {
                diags.push(
                    Diagnostic::at(path, &j.equals.referenced, "`equals` must be a string, a number or a boolean")
                        .with_hint("e.g. equals: ok, equals: 0 or equals: true"),
                );
                None
            }
        };
        Some(JsonFieldRule {
            path: j.path.value.clone(),
            equals: equals?,
        })
    });
    AcceptRule {
        statuses,
        body_contains: a.value.body_contains.clone(),
        json_field,
    }
}
