//! `delivery.sms`: the SMS transport — the local outbox, one Kannel gateway (the original
//! shapes), or a list of providers tried in order (Twilio, a generic HTTP gateway, Kannel).
//!
//! ```yaml
//! sms:
//!   providers:
//!     - twilio: { account_sid: AC…, auth_token_env: TWILIO_TOKEN, from: "+15005550006" }
//!     - http: { name: smsro, url: https://…, json: { to: "{to}", text: "{text}" } }
//!     - kannel: { url: http://127.0.0.1:13013/cgi-bin/sendsms, username: ritualist }
//! ```
//!
//! Templates (header, query, form and JSON string values of the generic provider) substitute
//! `{to}`, `{to_digits}`, `{text}`, `{from}` and `{secret}` in one pass; braces that do not
//! enclose a name stay as written. The secret comes from `secret_env`/`secret_file`, never YAML.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use super::secret::{Secret, SecretSource, read_secret};

// ---------------------------------------------------------------------------------------------
// Spec: mirrors the YAML.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmsSpec {
    /// `outbox` or `kannel` (the original single-transport shape).
    transport: Option<Spanned<String>>,
    kannel: Option<KannelSpec>,
    /// Providers tried in order; the next one is tried when one is down.
    providers: Option<Spanned<Vec<ProviderSpec>>>,
    /// How many SMS may be in flight at once (default 8): also the most a crash can leave
    /// in doubt.
    concurrency: Option<u32>,
}

/// `sms.concurrency` (1–256, default 8).
pub(super) fn sms_concurrency(spec: Option<&Spanned<SmsSpec>>) -> u32 {
    spec.and_then(|s| s.value.concurrency)
        .unwrap_or(8)
        .clamp(1, 256)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum ProviderSpec {
    Twilio(Box<TwilioSpec>),
    Http(Box<HttpSpec>),
    Kannel(Box<KannelSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KannelSpec {
    /// Shown in replies and errors (default `kannel`).
    name: Option<Spanned<String>>,
    url: Spanned<String>,
    username: String,
    password_env: Option<String>,
    /// A file holding the password (systemd credentials, mounted secrets).
    password_file: Option<String>,
    from: Option<String>,
    timeout_secs: Option<u32>,
    /// A PEM bundle of private CA certificates trusted in addition to the web PKI roots.
    ca_file: Option<String>,
    /// Trust only `ca_file` (default false).
    ca_only: Option<bool>,
    /// A client certificate (PEM) and its key, for gateways that authenticate clients by TLS.
    client_cert: Option<String>,
    client_key: Option<String>,
    /// Accept any certificate (a lab gateway). Never in production: use `ca_file`.
    accept_invalid_certs: Option<bool>,
    rate: Option<Spanned<super::rate::RateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwilioSpec {
    /// Shown in replies and errors (default `twilio`).
    name: Option<Spanned<String>>,
    account_sid: Spanned<String>,
    /// Environment variable holding the auth token (default `RITUALIST_TWILIO_AUTH_TOKEN`).
    auth_token_env: Option<String>,
    auth_token_file: Option<String>,
    /// The sender: a Twilio number in E.164 or an alphanumeric sender id.
    from: Option<Spanned<String>>,
    /// Or a messaging service (`MG…`) that picks the sender.
    messaging_service_sid: Option<Spanned<String>>,
    /// `https://api.twilio.com` unless told otherwise (tests, regional edges).
    base_url: Option<Spanned<String>>,
    timeout_secs: Option<u32>,
    rate: Option<Spanned<super::rate::RateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSpec {
    name: Spanned<String>,
    url: Spanned<String>,
    /// `POST` (default) or `GET`.
    method: Option<Spanned<String>>,
    headers: Option<FieldMap>,
    /// URL query parameters (any method).
    query: Option<FieldMap>,
    /// A form-encoded body (`POST`).
    form: Option<FieldMap>,
    /// A JSON body (`POST`): any YAML value; its string leaves are templates.
    json: Option<Spanned<serde_json::Value>>,
    /// Environment variable holding the value of `{secret}` (`VAR_FILE` also works).
    secret_env: Option<String>,
    secret_file: Option<String>,
    /// The value of `{from}`: the sender id at this provider.
    from: Option<String>,
    accepted: Option<Spanned<AcceptedSpec>>,
    timeout_secs: Option<u32>,
    /// A PEM bundle of private CA certificates trusted in addition to the web PKI roots.
    ca_file: Option<String>,
    /// Trust only `ca_file` (default false).
    ca_only: Option<bool>,
    /// A client certificate (PEM) and its key, for gateways that authenticate clients by TLS.
    client_cert: Option<String>,
    client_key: Option<String>,
    /// Accept any certificate (a lab gateway). Never in production: use `ca_file`.
    accept_invalid_certs: Option<bool>,
    rate: Option<Spanned<super::rate::RateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedSpec {
    /// HTTP statuses that may mean "accepted" (default: any 2xx).
    status: Option<Spanned<Vec<u16>>>,
    body_contains: Option<String>,
    json_field: Option<JsonFieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFieldSpec {
    /// Dotted path into the JSON reply: `status`, `data.state`, `messages.0.status`.
    path: Spanned<String>,
    equals: Spanned<serde_json::Value>,
}

/// A YAML mapping of names to strings, kept in the order written (gateways that sign their
/// parameters care).
#[derive(Debug, Default)]
struct FieldMap(Vec<(String, Spanned<String>)>);

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<FieldMap, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, Spanned<String>>()? {
                    v.push((k, val));
                }
                Ok(FieldMap(v))
            }
        }
        d.deserialize_map(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum SmsTransport {
    /// JSON lines in `<outbox_dir>/sms.jsonl`: no gateway.
    Outbox,
    /// Tried in order; `transport: kannel` is a list of one.
    Providers(Vec<SmsProvider>),
    /// Accepts every message and sends nothing: load tests and dry runs of the whole pipeline.
    Discard,
}

#[derive(Debug, Clone)]
pub enum SmsProvider {
    Twilio(TwilioConfig),
    Http(HttpSmsConfig),
    Kannel(KannelConfig),
}

impl SmsProvider {
    /// The name shown in replies and errors.
    pub fn name(&self) -> &str {
        match self {
            SmsProvider::Twilio(t) => &t.name,
            SmsProvider::Http(h) => &h.name,
            SmsProvider::Kannel(k) => &k.name,
        }
    }

    /// Its `rate:` limits.
    pub fn rate(&self) -> super::rate::RateLimit {
        match self {
            SmsProvider::Twilio(t) => t.rate,
            SmsProvider::Http(h) => h.rate,
            SmsProvider::Kannel(k) => k.rate,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KannelConfig {
    pub name: String,
    pub url: String,
    pub username: String,
    pub password: Secret,
    pub from: Option<String>,
    pub timeout_secs: u32,
    pub rate: super::rate::RateLimit,
    /// Private CA, client certificate, `accept_invalid_certs`.
    pub tls: super::TlsTrust,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioSender {
    /// `From`: a Twilio number or an alphanumeric sender id.
    From(String),
    /// `MessagingServiceSid`.
    MessagingService(String),
}

#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub name: String,
    /// Without a trailing slash.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Secret,
    pub sender: TwilioSender,
    pub timeout_secs: u32,
    pub rate: super::rate::RateLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpBody {
    None,
    Form(Vec<(String, Template)>),
    Json(JsonTemplate),
}

/// Which reply means "the gateway took the message".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcceptRule {
    /// Empty: any 2xx.
    pub statuses: Vec<u16>,
    pub body_contains: Option<String>,
    pub json_field: Option<JsonFieldRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFieldRule {
    /// As written (`messages.0.status`), for messages.
    pub path: String,
    /// The expected scalar, as text: `ok`, `0`, `true`.
    pub equals: String,
}

#[derive(Debug, Clone)]
pub struct HttpSmsConfig {
    pub name: String,
    pub url: String,
    pub method: HttpMethod,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub body: HttpBody,
    pub secret: Option<Secret>,
    pub from: Option<String>,
    pub accepted: AcceptRule,
    pub timeout_secs: u32,
    pub rate: super::rate::RateLimit,
    /// Private CA, client certificate, `accept_invalid_certs`.
    pub tls: super::TlsTrust,
}

// ---------------------------------------------------------------------------------------------
// Templates.
// ---------------------------------------------------------------------------------------------

/// A name a template may substitute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The recipient in E.164 (`+40721000002`).
    To,
    /// The recipient's digits without the `+` (`40721000002`).
    ToDigits,
    Text,
    From,
    Secret,
}

impl Placeholder {
    const ALL: [Placeholder; 5] = [
        Placeholder::To,
        Placeholder::ToDigits,
        Placeholder::Text,
        Placeholder::From,
        Placeholder::Secret,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::To => "to",
            Placeholder::ToDigits => "to_digits",
            Placeholder::Text => "text",
            Placeholder::From => "from",
            Placeholder::Secret => "secret",
        }
    }
}

/// The values substituted into templates for one message.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub from: &'a str,
    pub secret: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(Placeholder),
}

/// A string with `{name}` placeholders, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// `{name}` (letters, digits, `_`) must be a known placeholder; other braces are literal.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len == 0 || !after[name_len..].starts_with('}') {
                lit.push_str(&rest[..=open]);
                rest = after;
                continue;
            }
            let name = &after[..name_len];
            let Some(p) = Placeholder::ALL.iter().find(|p| p.name() == name) else {
                let names: Vec<String> = Placeholder::ALL
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect();
                let guess = did_you_mean(name, &names)
                    .map(|b| format!(" (did you mean `{{{b}}}`?)"))
                    .unwrap_or_default();
                return Err(format!("unknown placeholder `{{{name}}}`{guess}"));
            };
            lit.push_str(&rest[..open]);
            if lit.ends_with('{') && after[name_len + 1..].starts_with('}') {
                return Err(format!(
                    "write `{{{name}}}`, not `{{{{{name}}}}}`: placeholders take single braces"
                ));
            }
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(*p));
            rest = &after[name_len + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Template(pieces))
    }

    pub fn uses(&self, p: Placeholder) -> bool {
        self.0.contains(&Piece::Var(p))
    }

    /// Substitutes in one pass: a value that itself contains `{to}` stays as it is.
    pub fn render(&self, v: &TemplateVars) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Var(Placeholder::To) => out.push_str(v.to),
                Piece::Var(Placeholder::ToDigits) => out.push_str(v.to.trim_start_matches('+')),
                Piece::Var(Placeholder::Text) => out.push_str(v.text),
                Piece::Var(Placeholder::From) => out.push_str(v.from),
                Piece::Var(Placeholder::Secret) => out.push_str(v.secret),
            }
        }
        out
    }
}

/// A JSON body whose string leaves are templates; rendered into a `serde_json::Value`, so
/// quotes, backslashes, newlines and non-ASCII text are escaped by serde_json.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// null, booleans and numbers, as written.
    Scalar(serde_json::Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Errors carry the JSON path of the bad string (`messages.0.to`).
    fn parse(v: &serde_json::Value, at: &str) -> Result<JsonTemplate, String> {
        let join = |k: &str| {
            if at.is_empty() {
                k.to_string()
            } else {
                format!("{at}.{k}")
            }
        };
        Ok(match v {
            serde_json::Value::String(s) => JsonTemplate::String(
                Template::parse(s).map_err(|e| format!("json `{}`: {e}", at_or_root(at)))?,
            ),
            serde_json::Value::Array(a) => JsonTemplate::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| JsonTemplate::parse(x, &join(&i.to_string())))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(o) => JsonTemplate::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), JsonTemplate::parse(x, &join(k))?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => JsonTemplate::Scalar(other.clone()),
        })
    }

    pub fn render(&self, v: &TemplateVars) -> serde_json::Value {
        match self {
            JsonTemplate::Scalar(x) => x.clone(),
            JsonTemplate::String(t) => serde_json::Value::String(t.render(v)),
            JsonTemplate::Array(a) => a.iter().map(|x| x.render(v)).collect(),
            JsonTemplate::Object(o) => {
                serde_json::Value::Object(o.iter().map(|(k, x)| (k.clone(), x.render(v))).collect())
            }
        }
    }

    fn uses(&self, p: Placeholder) -> bool {
        match self {
            JsonTemplate::Scalar(_) => false,
            JsonTemplate::String(t) => t.uses(p),
            JsonTemplate::Array(a) => a.iter().any(|x| x.uses(p)),
            JsonTemplate::Object(o) => o.iter().any(|(_, x)| x.uses(p)),
        }
    }

    /// Object keys, everywhere in the tree, with the template under each.
    fn fields(&self, out: &mut Vec<(String, JsonTemplate)>) {
        match self {
            JsonTemplate::Array(a) => a.iter().for_each(|x| x.fields(out)),
            JsonTemplate::Object(o) => {
                for (k, x) in o {
                    out.push((k.clone(), x.clone()));
                    x.fields(out);
                }
            }
            _ => {}
        }
    }
}

fn at_or_root(at: &str) -> &str {
    if at.is_empty() { "(root)" } else { at }
}

// ---------------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------------

/// Validates `delivery.sms` (absent: the outbox).
pub(super) fn sms_transport(
    path: &Path,
    spec: Option<&Spanned<SmsSpec>>,
    diags: &mut Diagnostics,
) -> SmsTransport {
    let Some(s) = spec else {
        return SmsTransport::Outbox;
    };
    match (&s.value.transport, &s.value.providers) {
        (Some(t), Some(p)) => {
            diags.push(
                Diagnostic::at(path, &p.referenced, "`sms:` has both `transport:` and `providers:`")
                    .with_hint(format!(
                        "keep `providers:` (a list tried in order) and remove `transport: {}` (line {})",
                        t.value,
                        t.referenced.line()
                    )),
            );
            SmsTransport::Outbox
        }
        (None, None) => {
            diags.push(
                Diagnostic::at(path, &s.referenced, "`sms:` needs `transport:` or `providers:`")
                    .with_hint("use `transport: outbox` (a JSON-lines file, no gateway) or a `providers:` list (twilio, http, kannel)"),
            );
            SmsTransport::Outbox
        }
        (None, Some(p)) => {
            if s.value.kannel.is_some() {
                diags.push(
                    Diagnostic::at(
                        path,
                        &s.referenced,
                        "a `kannel:` section next to `providers:` is never used",
                    )
                    .with_hint(
                        "move it into the list: `providers: [ kannel: { url: …, username: … } ]`",
                    ),
                );
            }
            providers(path, p, diags)
        }
        (Some(t), None) => match t.value.as_str() {
            "outbox" => SmsTransport::Outbox,
            "discard" => SmsTransport::Discard,
            "kannel" => match &s.value.kannel {
                None => {
                    diags.push(
                        Diagnostic::at(path, &t.referenced, "`transport: kannel` needs a `kannel:` section")
                            .with_hint("add kannel: { url: http://127.0.0.1:13013/cgi-bin/sendsms, username: ritualist }"),
                    );
                    SmsTransport::Outbox
                }
                Some(k) => SmsTransport::Providers(vec![SmsProvider::Kannel(kannel_config(
                    path, k, diags,
                ))]),
            },
            other => {
                diags.push(
                    Diagnostic::at(path, &t.referenced, format!("unknown sms transport `{other}`"))
                        .with_hint("use `outbox` (a JSON-lines file, no gateway) or `kannel`, or list `providers:` (twilio, http, kannel)"),
                );
                SmsTransport::Outbox
            }
        },
    }
}

fn providers(
    path: &Path,
    list: &Spanned<Vec<ProviderSpec>>,
    diags: &mut Diagnostics,
) -> SmsTransport {
    if list.value.is_empty() {
        diags.push(
            Diagnostic::at(path, &list.referenced, "`providers:` is empty").with_hint(
                "list at least one provider (twilio, http or kannel), or use `transport: outbox`",
            ),
        );
        return SmsTransport::Outbox;
    }
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for spec in &list.value {
        let (provider, name_at) = match spec {
            ProviderSpec::Twilio(t) => (
                SmsProvider::Twilio(twilio_config(path, t, diags)),
                t.name
                    .as_ref()
                    .map_or(t.account_sid.referenced, |n| n.referenced),
            ),
            ProviderSpec::Http(h) => (
                SmsProvider::Http(http_config(path, h, diags)),
                h.name.referenced,
            ),
            ProviderSpec::Kannel(k) => (
                SmsProvider::Kannel(kannel_config(path, k, diags)),
                k.name.as_ref().map_or(k.url.referenced, |n| n.referenced),
            ),
        };
        if !names.insert(provider.name().to_string()) {
            diags.push(
                Diagnostic::at(
                    path,
                    &name_at,
                    format!("two providers are named `{}`", provider.name()),
                )
                .with_hint(
                    "give each provider its own `name:`: replies and errors say which one answered",
                ),
            );
        }
        out.push(provider);
    }
    SmsTransport::Providers(out)
}

/// `name:` (or the default): letters, digits, `-` and `_`, so replies stay easy to read.
fn provider_name(
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

fn kannel_config(path: &Path, k: &KannelSpec, diags: &mut Diagnostics) -> KannelConfig {
    let password = read_secret(
        path,
        SecretSource {
            env: k.password_env.as_deref(),
            file: k.password_file.as_deref(),
            default_var: "RITUALIST_KANNEL_PASSWORD",
            file_key: "password_file",
            what: "the Kannel sendsms password",
            at: Some(&k.url.referenced),
        },
        diags,
    )
    .unwrap_or_default();
    KannelConfig {
        name: provider_name(path, k.name.as_ref(), "kannel", diags),
        url: k.url.value.clone(),
        username: k.username.clone(),
        password,
        from: k.from.clone(),
        timeout_secs: k.timeout_secs.unwrap_or(15).max(1),
        rate: super::rate::rate_limit(path, k.rate.as_ref(), diags),
        tls: super::tls::tls_trust(
            path,
            "sms.kannel",
            super::tls::TlsKeys {
                ca_file: k.ca_file.as_deref(),
                ca_only: k.ca_only,
                client_cert: k.client_cert.as_deref(),
                client_key: k.client_key.as_deref(),
                accept_invalid_certs: k.accept_invalid_certs,
            },
            diags,
        ),
    }
}

/// `AC`/`MG` followed by 32 hexadecimal digits.
fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

fn twilio_config(path: &Path, t: &TwilioSpec, diags: &mut Diagnostics) -> TwilioConfig {
    let sid = &t.account_sid;
    if !is_sid(&sid.value, "AC") {
        diags.push(
            Diagnostic::at(
                path,
                &sid.referenced,
                format!("invalid Twilio account_sid `{}`", sid.value),
            )
            .with_hint(
                "the Account SID from the Twilio console: `AC` followed by 32 hexadecimal digits",
            ),
        );
    }
    let sender = match (&t.from, &t.messaging_service_sid) {
        (Some(f), None) => {
            if f.value.trim().is_empty() {
                diags.push(
                    Diagnostic::at(path, &f.referenced, "twilio `from` is empty").with_hint(
                        "a Twilio number in E.164 (\"+15005550006\") or an alphanumeric sender id",
                    ),
                );
            }
            TwilioSender::From(f.value.clone())
        }
        (None, Some(m)) => {
            if !is_sid(&m.value, "MG") {
                diags.push(
                    Diagnostic::at(
                        path,
                        &m.referenced,
                        format!("invalid messaging_service_sid `{}`", m.value),
                    )
                    .with_hint("a Messaging Service SID: `MG` followed by 32 hexadecimal digits"),
                );
            }
            TwilioSender::MessagingService(m.value.clone())
        }
        (Some(_), Some(m)) => {
            diags.push(
                Diagnostic::at(path, &m.referenced, "twilio takes `from` or `messaging_service_sid`, not both")
                    .with_hint("keep `from` for one sender number, or `messaging_service_sid` to let the service pick"),
            );
            TwilioSender::MessagingService(m.value.clone())
        }
        (None, None) => {
            diags.push(
                Diagnostic::at(path, &sid.referenced, "twilio needs a sender: `from` or `messaging_service_sid`")
                    .with_hint("add from: \"+15005550006\" (a number of your account) or messaging_service_sid: MG…"),
            );
            TwilioSender::From(String::new())
        }
    };
    let base_url = match &t.base_url {
        Some(u) => {
            check_url(path, u, diags);
            u.value.trim_end_matches('/').to_string()
        }
        None => "https://api.twilio.com".to_string(),
    };
    let auth_token = read_secret(
        path,
        SecretSource {
            env: t.auth_token_env.as_deref(),
            file: t.auth_token_file.as_deref(),
            default_var: "RITUALIST_TWILIO_AUTH_TOKEN",
            file_key: "auth_token_file",
            what: "the Twilio auth token",
            at: Some(&sid.referenced),
        },
        diags,
    )
    .unwrap_or_default();
    TwilioConfig {
        name: provider_name(path, t.name.as_ref(), "twilio", diags),
        base_url,
        account_sid: sid.value.clone(),
        auth_token,
        sender,
        timeout_secs: t.timeout_secs.unwrap_or(15).max(1),
        rate: super::rate::rate_limit(path, t.rate.as_ref(), diags),
    }
}

/// https, or http to this machine only (RELIABILITY.md §4: outbound HTTP).
fn check_url(path: &Path, u: &Spanned<String>, diags: &mut Diagnostics) {
    if let Err(e) = url_problem(&u.value) {
        diags.push(Diagnostic::at(path, &u.referenced, e).with_hint(
            "use an https:// URL; plain http:// is accepted only for 127.0.0.1, [::1] or localhost",
        ));
    }
}

fn url_problem(url: &str) -> Result<(), String> {
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
fn looks_secret(name: &str) -> bool {
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

fn http_config(path: &Path, h: &HttpSpec, diags: &mut Diagnostics) -> HttpSmsConfig {
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
        rate: super::rate::rate_limit(path, h.rate.as_ref(), diags),
        tls: super::tls::tls_trust(
            path,
            "sms.http",
            super::tls::TlsKeys {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            to: "+40721000002",
            text: "Иван, с днём рождения! {to} \"quoted\"\nline",
            from: "FloareCo",
            secret: "s3cr3t",
        }
    }

    #[test]
    fn templates_substitute_in_one_pass() {
        let t = Template::parse("to={to}&d={to_digits}&m={text}&f={from}").unwrap();
        assert_eq!(
            t.render(&vars()),
            "to=+40721000002&d=40721000002&m=Иван, с днём рождения! {to} \"quoted\"\nline&f=FloareCo"
        );
        // Braces that do not enclose a name stay as they are.
        let t = Template::parse("{\"a\": 1} { } {} {to").unwrap();
        assert_eq!(t.render(&vars()), "{\"a\": 1} { } {} {to");
        assert_eq!(
            Template::parse("Bearer {secret}").unwrap().render(&vars()),
            "Bearer s3cr3t"
        );
        assert!(Template::parse("").unwrap().render(&vars()).is_empty());
    }

    #[test]
    fn unknown_and_doubled_placeholders_are_refused() {
        let e = Template::parse("{too}").unwrap_err();
        assert!(e.contains("unknown placeholder `{too}`"), "{e}");
        assert!(e.contains("did you mean `{to}`"), "{e}");
        let e = Template::parse("{{text}}").unwrap_err();
        assert!(e.contains("single braces"), "{e}");
    }

    #[test]
    fn json_templates_escape_through_serde_json() {
        let v: serde_json::Value = serde_json::json!({
            "messages": [{ "to": "{to}", "body": "{text}", "flash": false, "n": 1 }],
            "sender": "{from}",
        });
        let t = JsonTemplate::parse(&v, "").unwrap();
        let out = t.render(&vars());
        assert_eq!(out["messages"][0]["body"], vars().text);
        assert_eq!(out["messages"][0]["to"], "+40721000002");
        assert_eq!(out["messages"][0]["flash"], false);
        assert_eq!(out["messages"][0]["n"], 1);
        // The wire form is valid JSON with the quote and newline escaped, Cyrillic as is.
        let wire = serde_json::to_string(&out).unwrap();
        assert!(wire.contains(r#"\"quoted\"\nline"#), "{wire}");
        assert!(wire.contains("Иван"), "{wire}");
        let e = JsonTemplate::parse(&serde_json::json!({"a": [{"b": "{txt}"}]}), "").unwrap_err();
        assert!(e.contains("json `a.0.b`"), "{e}");
    }

    #[test]
    fn urls_must_be_https_except_loopback() {
        assert!(url_problem("https://api.twilio.com").is_ok());
        assert!(url_problem("http://127.0.0.1:8080/x").is_ok());
        assert!(url_problem("http://localhost/x").is_ok());
        assert!(url_problem("http://[::1]:99/").is_ok());
        assert!(url_problem("http://user@127.0.0.1/").is_ok());
        assert!(url_problem("http://gw.example.ro/send").is_err());
        assert!(url_problem("http://127.0.0.1.evil.example/").is_err());
        assert!(url_problem("ftp://x/").is_err());
        assert!(url_problem("api.twilio.com").is_err());
    }

    #[test]
    fn credential_names() {
        for n in [
            "Authorization",
            "X-Api-Key",
            "apikey",
            "token",
            "password",
            "key",
            "psw",
        ] {
            assert!(looks_secret(n), "{n}");
        }
        for n in ["to", "text", "sender", "keyword", "Content-Type", "author"] {
            assert!(!looks_secret(n), "{n}");
        }
    }

    // -- the YAML ---------------------------------------------------------------------------

    use crate::config::Config;

    const HEAD: &str = "shop:\n  name: Test\n  from_email: hello@example.com\ndelivery:\n  sms:\n";
    const SID: &str = "AC0123456789abcdef0123456789abcdef";

    /// A token file in a fresh temp folder (tests never touch the environment).
    fn token_file(value: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ritualist-sms-cfg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("token");
        std::fs::write(&p, format!("{value}\n")).unwrap();
        p
    }

    fn load(sms: &str) -> Result<Config, Diagnostics> {
        Config::from_str(Path::new("c.yaml"), &format!("{HEAD}{sms}"))
    }

    fn error_of(sms: &str) -> Diagnostic {
        let d = load(sms).unwrap_err();
        d.0.first()
            .cloned()
            .unwrap_or_else(|| panic!("no diagnostic"))
    }

    #[test]
    fn the_original_shapes_still_load() {
        let c = load("    transport: outbox\n").unwrap();
        assert!(matches!(c.delivery.sms, SmsTransport::Outbox));
        let pw = token_file("kpw");
        let c = load(&format!(
            "    transport: kannel\n    kannel:\n      url: http://127.0.0.1:13013/cgi-bin/sendsms\n      username: u\n      password_file: {}\n      from: Floare\n",
            pw.display()
        ))
        .unwrap();
        let SmsTransport::Providers(p) = &c.delivery.sms else {
            panic!("{:?}", c.delivery.sms)
        };
        let [SmsProvider::Kannel(k)] = p.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!((k.name.as_str(), k.password.expose()), ("kannel", "kpw"));
        assert_eq!(k.from.as_deref(), Some("Floare"));
    }

    #[test]
    fn a_list_of_providers_in_order() {
        let tok = token_file("twilio-token");
        let key = token_file("api-key");
        let kpw = token_file("kpw");
        let yaml = format!(
            r#"    providers:
      - twilio: {{ account_sid: {SID}, auth_token_file: {tok}, from: "+15005550006" }}
      - http:
          name: smsro
          url: https://api.sms.example.ro/v1/send
          method: post
          headers: {{ Authorization: "Bearer {{secret}}", X-Client: ritualist }}
          secret_file: {key}
          from: FloareCo
          json:
            messages:
              - to: "{{to_digits}}"
                text: "{{text}}"
                sender: "{{from}}"
                flash: false
            priority: 1
          accepted: {{ status: [200, 201], json_field: {{ path: messages.0.status, equals: 0 }} }}
      - http:
          name: legacy-gw
          url: http://127.0.0.1:9000/send
          method: GET
          query: {{ user: floare, to: "{{to}}", msg: "{{text}}", n: 1 }}
          accepted: {{ body_contains: OK }}
      - kannel: {{ name: local, url: http://127.0.0.1:13013/cgi-bin/sendsms, username: u, password_file: {kpw} }}
"#,
            tok = tok.display(),
            key = key.display(),
            kpw = kpw.display()
        );
        let c = load(&yaml).unwrap_or_else(|d| panic!("{d}"));
        let SmsTransport::Providers(p) = &c.delivery.sms else {
            panic!()
        };
        let names: Vec<&str> = p.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["twilio", "smsro", "legacy-gw", "local"]);
        let SmsProvider::Twilio(t) = &p[0] else {
            panic!()
        };
        assert_eq!(t.base_url, "https://api.twilio.com");
        assert_eq!(t.auth_token.expose(), "twilio-token");
        assert_eq!(t.sender, TwilioSender::From("+15005550006".into()));
        let SmsProvider::Http(h) = &p[1] else {
            panic!()
        };
        assert_eq!(h.method, HttpMethod::Post);
        assert_eq!(h.secret.as_ref().unwrap().expose(), "api-key");
        let HttpBody::Json(j) = &h.body else {
            panic!("{:?}", h.body)
        };
        let v = TemplateVars {
            to: "+40721000002",
            text: "Ана",
            from: "FloareCo",
            secret: "api-key",
        };
        assert_eq!(
            j.render(&v),
            serde_json::json!({"messages": [{"to": "40721000002", "text": "Ана", "sender": "FloareCo", "flash": false}], "priority": 1})
        );
        assert_eq!(h.headers[0].1.render(&v), "Bearer api-key");
        assert_eq!(
            h.accepted,
            AcceptRule {
                statuses: vec![200, 201],
                body_contains: None,
                json_field: Some(JsonFieldRule {
                    path: "messages.0.status".into(),
                    equals: "0".into()
                }),
            }
        );
        let SmsProvider::Http(g) = &p[2] else {
            panic!()
        };
        assert_eq!(g.method, HttpMethod::Get);
        let q: Vec<(String, String)> = g
            .query
            .iter()
            .map(|(k, t)| (k.clone(), t.render(&v)))
            .collect();
        // In the order written; a number is a string like any other.
        assert_eq!(
            q,
            [
                ("user", "floare"),
                ("to", "+40721000002"),
                ("msg", "Ана"),
                ("n", "1")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!(matches!(&p[3], SmsProvider::Kannel(k) if k.name == "local"));
        // Debug output never shows a credential.
        let dbg = format!("{:?}", c.delivery.sms);
        for s in ["twilio-token", "api-key\"", "kpw"] {
            assert!(!dbg.contains(s), "{dbg}");
        }
    }

    #[test]
    fn a_bad_placeholder_is_one_error_not_three() {
        let d = load("    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          json: { to: \"{to}\", text: \"{txt}\" }\n").unwrap_err();
        assert_eq!(d.0.len(), 1, "{d}");
        assert_eq!(
            d.0[0].message,
            "json `text`: unknown placeholder `{txt}` (did you mean `{text}`?)"
        );
    }

    #[test]
    fn mistakes_point_at_their_line() {
        let tok = token_file("t");
        let tok = tok.display();
        // (sms section, line, message contains, hint contains)
        let cases: Vec<(String, u64, &str, &str)> = vec![
            (
                format!("    providers:\n      - twillio: {{ account_sid: {SID} }}\n"),
                7,
                "twillio",
                "did you mean `twilio`",
            ),
            (
                format!("    providers:\n      - twilio:\n          acount_sid: {SID}\n"),
                8,
                "acount_sid",
                "did you mean `account_sid`",
            ),
            (
                format!("    providers:\n      - twilio:\n          account_sid: {SID}\n          auth_token: hunter2\n"),
                9,
                "auth_token",
                "secrets never go in YAML",
            ),
            (
                format!("    providers:\n      - twilio:\n          account_sid: AC12\n          auth_token_file: {tok}\n          from: X\n"),
                8,
                "invalid Twilio account_sid `AC12`",
                "32 hexadecimal digits",
            ),
            (
                format!("    providers:\n      - twilio:\n          account_sid: {SID}\n          auth_token_file: {tok}\n"),
                8,
                "needs a sender",
                "messaging_service_sid",
            ),
            (
                format!("    providers:\n      - twilio:\n          account_sid: {SID}\n          auth_token_env: RITUALIST_TEST_NEVER_SET_5512\n          from: X\n"),
                8,
                "`RITUALIST_TEST_NEVER_SET_5512` is empty",
                "auth_token_file",
            ),
            (
                format!("    providers:\n      - twilio:\n          account_sid: {SID}\n          auth_token_file: {tok}\n          from: X\n          base_url: http://api.twilio.example\n"),
                11,
                "plain http to another machine",
                "https://",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          form:\n            to: \"{to}\"\n            text: \"{txt}\"\n".to_string(),
                12,
                "form field `text`: unknown placeholder `{txt}`",
                "{text}",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          headers:\n            Authorization: Bearer abc123\n          form: { to: \"{to}\", text: \"{text}\" }\n".to_string(),
                11,
                "header `Authorization` holds a credential",
                "secret_env",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          method: GET\n          json: { to: \"{to}\", text: \"{text}\" }\n".to_string(),
                10,
                "`method: GET` sends no body",
                "query:",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          json: { to: \"{to}\", text: \"{text}\", key: \"{secret}\" }\n".to_string(),
                10,
                "{secret} is used but neither",
                "secret_env",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          json: { to: \"{to}\" }\n".to_string(),
                8,
                "never sends the message text",
                "{text}",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          json: { to: \"{to}\", text: \"{text}\" }\n          accepted:\n            status: [200, 503]\n".to_string(),
                12,
                "status 503 cannot mean accepted",
                "retried",
            ),
            (
                "    providers:\n      - http:\n          name: gw\n          url: https://gw.example/send\n          json: { to: \"{to}\", text: \"{text}\" }\n          accepted:\n            json_field: { path: status, equal: ok }\n".to_string(),
                12,
                "equal",
                "did you mean `equals`",
            ),
            (
                "    providers:\n      - http: { name: gw, url: \"https://a.example/\", form: { to: \"{to}\", m: \"{text}\" } }\n      - http: { name: gw, url: \"https://b.example/\", form: { to: \"{to}\", m: \"{text}\" } }\n".to_string(),
                8,
                "two providers are named `gw`",
                "name:",
            ),
            (
                "    transport: outbox\n    providers: []\n".to_string(),
                7,
                "both `transport:` and `providers:`",
                "remove `transport: outbox`",
            ),
            ("    providers: []\n".to_string(), 6, "`providers:` is empty", "at least one"),
            (
                "    transport: twilio\n".to_string(),
                6,
                "unknown sms transport `twilio`",
                "providers:",
            ),
        ];
        for (sms, line, message, hint) in cases {
            let e = error_of(&sms);
            assert!(e.message.contains(message), "{sms}\n→ {e}");
            assert_eq!(e.line, line, "{sms}\n→ {e}");
            assert!(
                e.hint.as_deref().unwrap_or("").contains(hint),
                "{sms}\n→ {e}"
            );
        }
    }
}
