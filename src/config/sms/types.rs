//! The validated SMS transport and providers.

use super::template::{JsonTemplate, Template};
use crate::config::rate::RateLimit;
use crate::config::secret::Secret;
use crate::config::tls::TlsTrust;

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
    pub fn rate(&self) -> RateLimit {
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
    pub rate: RateLimit,
    /// Private CA, client certificate, `accept_invalid_certs`.
    pub tls: TlsTrust,
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
    pub rate: RateLimit,
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
    pub rate: RateLimit,
    /// Private CA, client certificate, `accept_invalid_certs`.
    pub tls: TlsTrust,
}
