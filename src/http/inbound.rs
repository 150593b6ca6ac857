//! Inbound SMS: the keywords customers text back.
//! - `POST /sms/twilio`: Twilio's webhook (form-encoded). `X-Twilio-Signature` must be
//!   base64(HMAC-SHA1(auth token, URL + every parameter name and value, sorted by name)) for
//!   the auth token of a Twilio provider in `delivery.sms`, where URL is `http.public_url` +
//!   the path and query this server received (the address Twilio was given); otherwise 403.
//!   The answer is TwiML.
//! - `POST /sms/inbound`: any gateway, `{"from": "+40…", "text": "STOP"}` with
//!   `Authorization: Bearer <key>` (`http.inbound_key_env`); the answer is JSON.
//! - `GET`/`POST /sms/kannel`: Kannel's own `sms-service`, in [`super::kannel`]; the answer
//!   is the reply text itself.
//!
//! All of them go through [`act`] and [`reply`]: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END,
//! QUIT, СТОП, ОТПИСАТЬСЯ, DEZABONARE opt every customer with that number (normalised to
//! E.164 as the importer does) out of SMS and get `http.sms_stop_reply` when it is set;
//! START, UNSTOP, СТАРТ opt them back in; HELP, INFO, AJUTOR, ПОМОЩЬ get `http.sms_help`.
//! Anything else is ignored and gets no reply. Each change is recorded with
//! `source: sms_keyword`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;

use super::respond::{check_bearer, json, xml_escape};
use crate::app::App;
use crate::config::{SmsProvider, SmsTransport};
use crate::domain::Phone;

/// What an inbound text asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

/// The keyword of a whole message (case and surrounding spaces and punctuation ignored), as
/// carriers match them: "stop" is STOP, "please stop texting me" is not a keyword.
pub fn keyword(text: &str) -> Option<Keyword> {
    let word = text
        .trim()
        .trim_matches(|c: char| c.is_whitespace() || ".!?,;:\"'".contains(c))
        .to_uppercase();
    match word.as_str() {
        "STOP"
        | "STOPALL"
        | "UNSUBSCRIBE"
        | "CANCEL"
        | "END"
        | "QUIT"
        | "СТОП"
        | "ОТПИСАТЬСЯ"
        | "ОТПИСКА"
        | "DEZABONARE"
        | "DEZABONEAZA"
        | "DEZABONEAZĂ" => Some(Keyword::Stop),
        "START" | "UNSTOP" | "СТАРТ" => Some(Keyword::Start),
        "HELP" | "INFO" | "AJUTOR" | "ПОМОЩЬ" => Some(Keyword::Help),
        _ => None,
    }
}

/// Twilio's request signature: base64(HMAC-SHA1(auth token, url + name1 + value1 + …)) with
/// the parameters sorted by name (then value), compared in constant time.
pub fn twilio_signature_ok(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature_b64: &str,
) -> bool {
    let Ok(sig) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut signed: Vec<&[u8]> = vec![url.as_bytes()];
    for (k, v) in sorted {
        signed.extend([k.as_bytes(), v.as_bytes()]);
    }
    crate::app::hmac_sha1(auth_token.as_bytes(), &signed)
        .verify_slice(&sig)
        .is_ok()
}

/// What a keyword did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    OptedOut,
    OptedIn,
    Help,
    Ignored,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::OptedOut => "opted_out",
            Outcome::OptedIn => "opted_in",
            Outcome::Help => "help",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Acts on one inbound text from `from` (any format [`Phone::parse`] takes, with the
/// configured default country code): the one keyword path of every inbound route.
pub(super) async fn act(
    app: &App,
    from: &str,
    text: &str,
) -> Result<Outcome, crate::store::StoreError> {
    let Some(kw) = keyword(text) else {
        return Ok(Outcome::Ignored);
    };
    if kw == Keyword::Help {
        return Ok(Outcome::Help);
    }
    let Ok(phone) = Phone::parse(from, app.cfg.defaults.country_code.as_deref()) else {
        tracing::info!("inbound SMS keyword from an unparsable number: ignored");
        return Ok(Outcome::Ignored);
    };
    let ids = app.store.customers_with_phone(phone.as_str()).await?;
    let out = kw == Keyword::Stop;
    let now = app.clock.now().as_second();
    for id in &ids {
        app.store
            .set_consent(*id, "channel:sms", out, "sms_keyword", now)
            .await?;
    }
    tracing::info!(customers = ?ids, keyword = ?kw, "inbound SMS keyword");
    Ok(if ids.is_empty() {
        Outcome::Ignored
    } else if out {
        Outcome::OptedOut
    } else {
        Outcome::OptedIn
    })
}

/// The text to send back for `outcome`: the HELP text, the STOP confirmation when one is
/// configured, otherwise nothing.
pub(super) fn reply(outcome: Outcome, http: &crate::config::HttpConfig) -> Option<&str> {
    match outcome {
        Outcome::Help => Some(http.sms_help.as_str()),
        Outcome::OptedOut => http.sms_stop_reply.as_deref(),
        Outcome::OptedIn | Outcome::Ignored => None,
    }
}

pub(super) async fn twilio(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let tokens: Vec<&str> = match &app.cfg.delivery.sms {
        SmsTransport::Providers(ps) => ps
            .iter()
            .filter_map(|p| match p {
                SmsProvider::Twilio(t) => Some(t.auth_token.expose()),
                _ => None,
            })
            .collect(),
        SmsTransport::Outbox | SmsTransport::Discard => Vec::new(),
    };
    let Some(http) = app.cfg.http.as_ref().filter(|_| !tokens.is_empty()) else {
        return (StatusCode::NOT_FOUND, "no Twilio provider is configured\n").into_response();
    };
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let url = format!(
        "{}{}",
        http.public_url,
        uri.path_and_query().map_or("/sms/twilio", |p| p.as_str())
    );
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !tokens
        .iter()
        .any(|t| twilio_signature_ok(t, &url, &params, signature))
    {
        tracing::warn!("Twilio webhook with a missing or bad signature: rejected");
        return (StatusCode::FORBIDDEN, "bad signature\n").into_response();
    }
    let get = |k: &str| {
        params
            .iter()
            .find(|(a, _)| a == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let twiml = match act(&app, get("From"), get("Body")).await {
        Ok(o) => match reply(o, http) {
            Some(text) => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{}</Message></Response>",
                xml_escape(text)
            ),
            None => "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".to_string(),
        },
        Err(e) => {
            tracing::error!("inbound SMS: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "try again\n").into_response();
        }
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/xml")], twiml).into_response()
}

#[derive(serde::Deserialize)]
struct Inbound {
    from: String,
    text: String,
}

pub(super) async fn generic(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((http, key)) = app
        .cfg
        .http
        .as_ref()
        .and_then(|h| h.inbound_key.as_ref().map(|k| (h, k)))
    else {
        return (StatusCode::NOT_FOUND, "no inbound key is configured\n").into_response();
    };
    if let Some(denied) = check_bearer(&headers, key) {
        return denied;
    }
    let msg: Inbound = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("expected {{\"from\": \"+40…\", \"text\": \"STOP\"}}: {e}")}),
            );
        }
    };
    match act(&app, &msg.from, &msg.text).await {
        Ok(o) => json(
            StatusCode::OK,
            serde_json::json!({
                "action": o.as_str(),
                "reply": reply(o, http),
            }),
        ),
        Err(e) => {
            tracing::error!("inbound SMS: {e}");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "try again"}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example of Twilio's "Webhooks security" documentation.
    #[test]
    fn twilio_documentation_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        assert!(twilio_signature_ok(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        // Order of the parameters in the body does not matter.
        let mut reversed = params.clone();
        reversed.reverse();
        assert!(twilio_signature_ok(
            "12345",
            url,
            &reversed,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        // Another token, URL, parameter value, or signature: rejected.
        assert!(!twilio_signature_ok(
            "54321",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!twilio_signature_ok(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        let mut changed = params.clone();
        changed[2].1 = "1235".into();
        assert!(!twilio_signature_ok(
            "12345",
            url,
            &changed,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!twilio_signature_ok(
            "12345",
            url,
            &params,
            "1/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!twilio_signature_ok("12345", url, &params, ""));
        assert!(!twilio_signature_ok("12345", url, &params, "not base64!"));
    }

    #[test]
    fn keywords() {
        for s in [
            "STOP",
            "stop",
            " Stop. ",
            "STOPALL",
            "unsubscribe",
            "Cancel",
            "END",
            "quit",
            "СТОП",
            "стоп",
            "DEZABONARE",
        ] {
            assert_eq!(keyword(s), Some(Keyword::Stop), "{s}");
        }
        for s in ["START", "unstop", "Старт"] {
            assert_eq!(keyword(s), Some(Keyword::Start), "{s}");
        }
        for s in ["HELP", "help?", "AJUTOR", "помощь"] {
            assert_eq!(keyword(s), Some(Keyword::Help), "{s}");
        }
        for s in ["", "please stop texting me", "STOPP", "thanks"] {
            assert_eq!(keyword(s), None, "{s}");
        }
    }
}
