//! A generic HTTP gateway described in YAML: URL, method, headers, query parameters, a form or
//! JSON body whose strings are templates, and the rule that says which reply means accepted.

use reqwest::header::{HeaderName, HeaderValue};

use super::{Attempt, Failure, Receipt, Reply, excerpt, request_failed, status_failure};
use crate::channel::SendFailure;
use crate::clock::Clock;
use crate::config::{
    AcceptRule, HttpBody, HttpMethod, HttpSmsConfig, Placeholder, Template, TemplateVars,
};

#[derive(Debug)]
pub struct HttpGateway {
    cfg: HttpSmsConfig,
    headers: Vec<(HeaderName, Template)>,
    http: reqwest::Client,
}

impl HttpGateway {
    pub fn new(cfg: HttpSmsConfig) -> Result<HttpGateway, SendFailure> {
        reqwest::Url::parse(&cfg.url).map_err(|e| {
            SendFailure::permanent(format!("{}: invalid url `{}`: {e}", cfg.name, cfg.url))
        })?;
        let headers = cfg
            .headers
            .iter()
            .map(|(k, t)| {
                HeaderName::from_bytes(k.as_bytes())
                    .map(|n| (n, t.clone()))
                    .map_err(|_| {
                        SendFailure::permanent(format!("{}: invalid header name `{k}`", cfg.name))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpGateway {
            http: super::client_trusting(cfg.timeout_secs, Some(&cfg.tls), "sms.http")?,
            headers,
            cfg,
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Sends one SMS; `Ok` is the status and the start of the gateway's reply.
    /// Alone, outside [`SmsProviders`](super::SmsProviders): an HTTP-date `Retry-After` is
    /// counted on the system clock.
    pub async fn send(&self, to: &str, text: &str) -> Result<String, SendFailure> {
        self.attempt(to, text, &crate::clock::SystemClock, None)
            .await
            .map_err(|f| f.error)
    }

    /// `{receipt_url}` is `<public_url>/sms/receipt/<token>` with receipts, else empty.
    pub(super) async fn attempt(
        &self,
        to: &str,
        text: &str,
        clock: &dyn Clock,
        receipt: Option<Receipt<'_>>,
    ) -> Attempt {
        let secret = self.cfg.secret.as_ref().map_or("", |s| s.expose());
        let receipt_url = receipt.map(|r| r.url("/sms/receipt")).unwrap_or_default();
        let vars = TemplateVars {
            to,
            text,
            from: self.cfg.from.as_deref().unwrap_or(""),
            secret,
            receipt_url: &receipt_url,
        };
        let request = self.request(&vars).map_err(|e| {
            Failure::next(SendFailure::permanent(format!("{}: {e}", self.cfg.name)))
        })?;
        let resp = self
            .http
            .execute(request)
            .await
            .map_err(|e| request_failed(&self.cfg.name, e))?;
        let reply = Reply::read(resp, clock).await;
        classify(&self.cfg.name, &self.cfg.accepted, &reply, secret, to)
    }

    /// The request for one message (no I/O). Errors never quote a header's value.
    fn request(&self, vars: &TemplateVars) -> Result<reqwest::Request, String> {
        let render = |fields: &[(String, Template)]| -> Vec<(String, String)> {
            fields
                .iter()
                .map(|(k, t)| (k.clone(), t.render(vars)))
                .collect()
        };
        let mut b = match self.cfg.method {
            HttpMethod::Get => self.http.get(&self.cfg.url),
            HttpMethod::Post => self.http.post(&self.cfg.url),
        };
        if !self.cfg.query.is_empty() {
            b = b.query(&render(&self.cfg.query));
        }
        b = match &self.cfg.body {
            HttpBody::None => b,
            HttpBody::Form(f) => b.form(&render(f)),
            HttpBody::Json(j) => b.json(&j.render(vars)),
        };
        let mut req = b
            .build()
            .map_err(|e| format!("cannot build the request: {}", e.without_url()))?;
        // Configured headers win over the defaults (a gateway may want its own Content-Type).
        for (name, t) in &self.headers {
            let mut v = HeaderValue::from_str(&t.render(vars))
                .map_err(|_| format!("header `{name}` has a value HTTP cannot carry"))?;
            if t.uses(Placeholder::Secret) {
                v.set_sensitive(true);
            }
            req.headers_mut().insert(name.clone(), v);
        }
        Ok(req)
    }
}

/// Whether a status is one the rule lists (any 2xx when it lists none).
fn status_accepted(rule: &AcceptRule, status: u16) -> bool {
    if rule.statuses.is_empty() {
        (200..=299).contains(&status)
    } else {
        rule.statuses.contains(&status)
    }
}

/// Why a body does not satisfy the rule (`None`: it does).
fn body_refusal(rule: &AcceptRule, body: &str) -> Option<String> {
    if let Some(needle) = &rule.body_contains
        && !body.contains(needle.as_str())
    {
        return Some(format!("the reply does not contain `{needle}`"));
    }
    let field = rule.json_field.as_ref()?;
    let json: serde_json::Value = match serde_json::from_str(body) {
        Ok(j) => j,
        Err(_) => return Some("the reply is not JSON".to_string()),
    };
    let mut at = &json;
    for seg in field.path.split('.') {
        let next = match at {
            serde_json::Value::Object(o) => o.get(seg),
            serde_json::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return Some(format!("the reply has no `{}`", field.path)),
        }
    }
    let got = match at {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Null => "null".to_string(),
        other => other.to_string(),
    };
    (got != field.equals).then(|| format!("`{}` is `{got}`, not `{}`", field.path, field.equals))
}

/// The gateway's answer as an outcome (pure: tested with a table).
///
/// A listed status whose body does not satisfy the rule is a permanent failure that stops the
/// chain: the gateway answered "no" in its own words — or the rule is wrong and the message
/// went out, and a second provider would send it twice.
fn classify(name: &str, rule: &AcceptRule, reply: &Reply, secret: &str, to: &str) -> Attempt {
    let quoted = excerpt(&reply.body, secret, to);
    if status_accepted(rule, reply.status) {
        let needs_body = rule.body_contains.is_some() || rule.json_field.is_some();
        if needs_body && !reply.complete {
            return Err(Failure::stop(SendFailure::in_doubt(format!(
                "{name} {}: the reply was cut off before it could be checked; in doubt: the provider may have taken the message",
                reply.status
            ))));
        }
        return match body_refusal(rule, &reply.body) {
            None => Ok(format!("{} {quoted}", reply.status)),
            Some(why) => Err(Failure::stop(SendFailure::permanent(format!(
                "{name} {}: not accepted: {why}: {quoted}",
                reply.status
            )))),
        };
    }
    if (200..=299).contains(&reply.status) {
        // A 2xx the rule does not list: the gateway may have taken it; do not try another.
        return Err(Failure::stop(SendFailure::permanent(format!(
            "{name} {}: a status `accepted.status` does not list: {quoted}",
            reply.status
        ))));
    }
    Err(status_failure(name, reply, &quoted))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::JsonFieldRule;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            retry_after: None,
            body: body.to_string(),
            complete: true,
        }
    }

    fn rule(statuses: &[u16], contains: Option<&str>, field: Option<(&str, &str)>) -> AcceptRule {
        AcceptRule {
            statuses: statuses.to_vec(),
            body_contains: contains.map(str::to_string),
            json_field: field.map(|(p, e)| JsonFieldRule {
                path: p.to_string(),
                equals: e.to_string(),
            }),
        }
    }

    #[test]
    fn accept_rules() {
        let any2xx = AcceptRule::default();
        assert_eq!(
            classify("gw", &any2xx, &reply(202, "queued id=5"), "", "+4072").unwrap(),
            "202 queued id=5"
        );
        let ok = rule(&[200], None, Some(("status", "ok")));
        assert!(classify("gw", &ok, &reply(200, r#"{"status":"ok"}"#), "", "").is_ok());
        let nested = rule(&[], None, Some(("messages.0.status", "0")));
        assert!(
            classify(
                "gw",
                &nested,
                &reply(200, r#"{"messages":[{"status":0}]}"#),
                "",
                ""
            )
            .is_ok()
        );
        let contains = rule(&[], Some("OK"), None);
        assert!(classify("gw", &contains, &reply(200, "OK: 1 sent"), "", "").is_ok());

        // (rule, reply, transient, try next, message contains)
        for (r, rep, transient, next, contains) in [
            (
                &ok,
                reply(200, r#"{"status":"error","reason":"balance"}"#),
                false,
                false,
                "`status` is `error`, not `ok`",
            ),
            (
                &ok,
                reply(200, "<html>"),
                false,
                false,
                "the reply is not JSON",
            ),
            (
                &nested,
                reply(200, r#"{"messages":[]}"#),
                false,
                false,
                "has no `messages.0.status`",
            ),
            (
                &contains,
                reply(200, "ERR 17"),
                false,
                false,
                "does not contain `OK`",
            ),
            (
                &ok,
                reply(202, r#"{"status":"ok"}"#),
                false,
                false,
                "does not list",
            ),
            (
                &any2xx,
                reply(429, "slow down"),
                true,
                true,
                "gw 429: slow down",
            ),
            (&any2xx, reply(502, ""), true, true, "gw 502: (empty reply)"),
            (
                &any2xx,
                reply(401, "bad key"),
                false,
                true,
                "gw 401: bad key",
            ),
            (
                &any2xx,
                reply(400, "invalid msisdn"),
                false,
                false,
                "gw 400: invalid msisdn",
            ),
        ] {
            let f = classify("gw", r, &rep, "", "").unwrap_err();
            assert_eq!(f.error.is_transient(), transient, "{rep:?}");
            assert_eq!(f.try_next, next, "{rep:?}");
            assert!(f.error.message().contains(contains), "{}", f.error);
        }
    }

    #[test]
    fn a_cut_reply_that_must_be_checked_is_in_doubt() {
        let ok = rule(&[], None, Some(("status", "ok")));
        let mut r = reply(200, r#"{"sta"#);
        r.complete = false;
        let f = classify("gw", &ok, &r, "", "").unwrap_err();
        assert!(f.error.is_transient() && !f.try_next, "{f:?}");
        assert!(f.error.message().contains("in doubt"));
    }

    #[test]
    fn retry_after_and_redaction() {
        let mut r = reply(503, "key K3Y-123 is throttled for 40721000002");
        r.retry_after = Some(Duration::from_secs(9));
        let f = classify("gw", &AcceptRule::default(), &r, "K3Y-123", "+40721000002").unwrap_err();
        assert_eq!(f.error.retry_after(), Some(Duration::from_secs(9)));
        assert_eq!(f.error.message(), "gw 503: key *** is throttled for <to>");
    }
}
