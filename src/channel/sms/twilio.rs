//! Twilio's Messages API: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form fields
//! `To`, `Body` and `From` (or `MessagingServiceSid`), HTTP basic auth with the account SID and
//! the auth token. `201` with a JSON `sid` means accepted; errors carry a JSON `code` and
//! `message` (<https://www.twilio.com/docs/api/errors>).
//!
//! With receipts ([`ReceiptUrls`](super::ReceiptUrls)), each request also carries
//! `StatusCallback=<public_url>/sms/twilio/status/<token>`: Twilio posts the message's status
//! changes there, signed like its other webhooks.

use super::{Attempt, Failure, Receipt, Reply, excerpt, is_transient_status, request_failed};
use crate::channel::SendFailure;
use crate::clock::Clock;
use crate::config::{Secret, TwilioConfig, TwilioSender};

/// Error codes about the message or its recipient: another provider would refuse it too (or,
/// for 21610, must not send it at all). Every other 4xx (credentials, the sender, the account's
/// permissions) lets the next provider try.
const MESSAGE_CODES: &[(u32, &str)] = &[
    (21211, "invalid 'To' number"),
    (21214, "'To' number cannot be reached"),
    (21217, "phone number does not appear to be valid"),
    (21401, "invalid phone number"),
    (21407, "this number type does not support SMS"),
    (21421, "phone number is invalid"),
    (21602, "message body is required"),
    (21604, "'To' number is required"),
    (21610, "the recipient replied STOP: unsubscribed"),
    (21614, "'To' is not a mobile number"),
    (21617, "body exceeds 1600 characters"),
    (21635, "'To' number is a landline"),
];

#[derive(Debug)]
pub struct Twilio {
    name: String,
    /// `…/Accounts/{sid}/Messages.json`.
    url: String,
    account_sid: String,
    token: Secret,
    sender: TwilioSender,
    http: reqwest::Client,
}

impl Twilio {
    pub fn new(cfg: TwilioConfig) -> Result<Twilio, SendFailure> {
        Ok(Twilio {
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                cfg.base_url.trim_end_matches('/'),
                cfg.account_sid
            ),
            http: super::client(cfg.timeout_secs)?,
            name: cfg.name,
            account_sid: cfg.account_sid,
            token: cfg.auth_token,
            sender: cfg.sender,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one SMS; `Ok` is the message's `sid`.
    /// Alone, outside [`SmsProviders`](super::SmsProviders): an HTTP-date `Retry-After` is
    /// counted on the system clock.
    pub async fn send(&self, to: &str, text: &str) -> Result<String, SendFailure> {
        self.attempt(to, text, &crate::clock::SystemClock, None)
            .await
            .map_err(|f| f.error)
    }

    pub(super) async fn attempt(
        &self,
        to: &str,
        text: &str,
        clock: &dyn Clock,
        receipt: Option<Receipt<'_>>,
    ) -> Attempt {
        let mut form = vec![("To", to), ("Body", text)];
        match &self.sender {
            TwilioSender::From(f) => form.push(("From", f.as_str())),
            TwilioSender::MessagingService(m) => form.push(("MessagingServiceSid", m.as_str())),
        }
        let callback = receipt.map(|r| r.url("/sms/twilio/status"));
        if let Some(url) = &callback {
            form.push(("StatusCallback", url.as_str()));
        }
        let resp = self
            .http
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| request_failed(&self.name, e))?;
        let reply = Reply::read(resp, clock).await;
        classify(&self.name, &reply, self.token.expose(), to)
    }
}

/// Twilio's answer as an outcome (pure: tested with a table).
fn classify(name: &str, reply: &Reply, token: &str, to: &str) -> Attempt {
    let json: Option<serde_json::Value> = serde_json::from_str(&reply.body).ok();
    let field = |k: &str| json.as_ref().and_then(|j| j.get(k)).cloned();
    if (200..=299).contains(&reply.status) {
        // A 2xx is accepted even when its body was cut short: the message exists at Twilio.
        return Ok(match field("sid").as_ref().and_then(|s| s.as_str()) {
            Some(sid) => sid.to_string(),
            None => format!("{} (no sid in the reply)", reply.status),
        });
    }
    let code = field("code").and_then(|c| c.as_u64());
    let detail = match (code, field("message").as_ref().and_then(|m| m.as_str())) {
        (Some(c), Some(m)) => format!("{c} {}", excerpt(m, token, to)),
        (Some(c), None) => format!("{c}"),
        _ => excerpt(&reply.body, token, to),
    };
    let message = format!("{name} {}: {detail}", reply.status);
    if is_transient_status(reply.status) {
        return Err(Failure::next(SendFailure::transient_after(
            message,
            reply.retry_after,
        )));
    }
    let about_message = code.and_then(|c| {
        MESSAGE_CODES
            .iter()
            .find(|(k, _)| u64::from(*k) == c)
            .map(|(_, what)| *what)
    });
    Err(match about_message {
        // 21610: the number replied STOP to this sender: never text it again (a hard bounce).
        Some(what) if code == Some(21610) => {
            Failure::stop(SendFailure::hard_bounce(format!("{message} ({what})")))
        }
        Some(what) => Failure::stop(SendFailure::permanent(format!("{message} ({what})"))),
        // Credentials (20003), the account (20404), the sender (21606, 21212), a region not
        // enabled (21408): about us, not the customer.
        None => Failure::next(SendFailure::about_us(message)),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reply(status: u16, body: &str, retry_after: Option<u64>) -> Reply {
        Reply {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: body.to_string(),
            complete: true,
        }
    }

    const TO: &str = "+15005550001";

    #[test]
    fn accepted_carries_the_sid() {
        let r = reply(
            201,
            r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}"#,
            None,
        );
        assert_eq!(
            classify("twilio", &r, "tok", TO).unwrap(),
            "SM0123456789abcdef0123456789abcdef"
        );
        assert_eq!(
            classify("twilio", &reply(200, "<html>", None), "tok", TO).unwrap(),
            "200 (no sid in the reply)"
        );
    }

    #[test]
    fn replies_table() {
        // (status, body, transient, try the next provider, message contains)
        let invalid_to = r#"{"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let stopped = r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}"#;
        let auth = r#"{"code": 20003, "message": "Authenticate", "status": 401}"#;
        let bad_from = r#"{"code": 21606, "message": "The From phone number is not a valid, SMS-capable inbound phone number or short code for your account.", "status": 400}"#;
        let too_many = r#"{"code": 20429, "message": "Too Many Requests", "status": 429}"#;
        for (status, body, transient, next, contains) in [
            (
                400,
                invalid_to,
                false,
                false,
                "twilio 400: 21211 The 'To' number <to> is not a valid phone number. (invalid 'To' number)",
            ),
            (400, stopped, false, false, "21610"),
            (401, auth, false, true, "twilio 401: 20003 Authenticate"),
            (400, bad_from, false, true, "21606"),
            (
                404,
                r#"{"code": 20404, "message": "not found"}"#,
                false,
                true,
                "20404",
            ),
            (
                429,
                too_many,
                true,
                true,
                "twilio 429: 20429 Too Many Requests",
            ),
            (500, "", true, true, "twilio 500: (empty reply)"),
            (
                503,
                "<html>upstream down</html>",
                true,
                true,
                "<html>upstream down</html>",
            ),
        ] {
            let f = classify("twilio", &reply(status, body, None), "tok", TO).unwrap_err();
            assert_eq!(f.error.is_transient(), transient, "{status} {body}");
            assert_eq!(f.try_next, next, "{status} {body}");
            assert!(
                f.error.message().contains(contains),
                "{status}: {}",
                f.error
            );
            assert!(!f.error.message().contains(TO), "{}", f.error);
        }
    }

    #[test]
    fn retry_after_is_kept_and_the_token_never_shows() {
        let f = classify("twilio", &reply(429, "", Some(7)), "tok", TO).unwrap_err();
        assert_eq!(f.error.retry_after(), Some(Duration::from_secs(7)));
        let f = classify(
            "twilio",
            &reply(401, "bad credentials ACx:hunter22", None),
            "hunter22",
            TO,
        )
        .unwrap_err();
        assert!(!f.error.message().contains("hunter22"), "{}", f.error);
    }
}
