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

mod checks;
mod http;
mod kannel;
mod spec;
mod template;
mod twilio;
mod types;

use std::collections::HashSet;
use std::path::Path;

use serde_saphyr::Spanned;

use crate::config::diagnostic::{Diagnostic, Diagnostics};
use kannel::kannel_config;
use spec::ProviderSpec;
pub(super) use spec::SmsSpec;
pub use template::{JsonTemplate, Placeholder, Template, TemplateVars};
pub use types::{
    AcceptRule, HttpBody, HttpMethod, HttpSmsConfig, JsonFieldRule, KannelConfig, SmsProvider,
    SmsTransport, TwilioConfig, TwilioSender,
};

/// `sms.concurrency` (1–256, default 8).
pub(in crate::config) fn sms_concurrency(spec: Option<&Spanned<SmsSpec>>) -> u32 {
    spec.and_then(|s| s.value.concurrency)
        .unwrap_or(8)
        .clamp(1, 256)
}

/// Validates `delivery.sms` (absent: the outbox).
pub(in crate::config) fn sms_transport(
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
                SmsProvider::Twilio(twilio::twilio_config(path, t, diags)),
                t.name
                    .as_ref()
                    .map_or(t.account_sid.referenced, |n| n.referenced),
            ),
            ProviderSpec::Http(h) => (
                SmsProvider::Http(http::http_config(path, h, diags)),
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

#[cfg(test)]
mod tests {
    use super::checks::{looks_secret, url_problem};
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            to: "+40721000002",
            text: "Иван, с днём рождения! {to} \"quoted\"\nline",
            from: "FloareCo",
            secret: "s3cr3t",
            receipt_url: "",
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
            receipt_url: "",
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
