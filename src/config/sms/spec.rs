//! The YAML shape of `delivery.sms` (`deny_unknown_fields`, locations kept with `Spanned`).

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct SmsSpec {
    /// `outbox` or `kannel` (the original single-transport shape).
    pub(super) transport: Option<Spanned<String>>,
    pub(super) kannel: Option<KannelSpec>,
    /// Providers tried in order; the next one is tried when one is down.
    pub(super) providers: Option<Spanned<Vec<ProviderSpec>>>,
    /// How many SMS may be in flight at once (default 8): also the most a crash can leave
    /// in doubt.
    pub(super) concurrency: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(super) enum ProviderSpec {
    Twilio(Box<TwilioSpec>),
    Http(Box<HttpSpec>),
    Kannel(Box<KannelSpec>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KannelSpec {
    /// Shown in replies and errors (default `kannel`).
    pub(super) name: Option<Spanned<String>>,
    pub(super) url: Spanned<String>,
    pub(super) username: String,
    pub(super) password_env: Option<String>,
    /// A file holding the password (systemd credentials, mounted secrets).
    pub(super) password_file: Option<String>,
    pub(super) from: Option<String>,
    pub(super) timeout_secs: Option<u32>,
    /// A PEM bundle of private CA certificates trusted in addition to the web PKI roots.
    pub(super) ca_file: Option<String>,
    /// Trust only `ca_file` (default false).
    pub(super) ca_only: Option<bool>,
    /// A client certificate (PEM) and its key, for gateways that authenticate clients by TLS.
    pub(super) client_cert: Option<String>,
    pub(super) client_key: Option<String>,
    /// Accept any certificate (a lab gateway). Never in production: use `ca_file`.
    pub(super) accept_invalid_certs: Option<bool>,
    pub(super) rate: Option<Spanned<crate::config::rate::RateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TwilioSpec {
    /// Shown in replies and errors (default `twilio`).
    pub(super) name: Option<Spanned<String>>,
    pub(super) account_sid: Spanned<String>,
    /// Environment variable holding the auth token (default `RITUALIST_TWILIO_AUTH_TOKEN`).
    pub(super) auth_token_env: Option<String>,
    pub(super) auth_token_file: Option<String>,
    /// The sender: a Twilio number in E.164 or an alphanumeric sender id.
    pub(super) from: Option<Spanned<String>>,
    /// Or a messaging service (`MG…`) that picks the sender.
    pub(super) messaging_service_sid: Option<Spanned<String>>,
    /// `https://api.twilio.com` unless told otherwise (tests, regional edges).
    pub(super) base_url: Option<Spanned<String>>,
    pub(super) timeout_secs: Option<u32>,
    pub(super) rate: Option<Spanned<crate::config::rate::RateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpSpec {
    pub(super) name: Spanned<String>,
    pub(super) url: Spanned<String>,
    /// `POST` (default) or `GET`.
    pub(super) method: Option<Spanned<String>>,
    pub(super) headers: Option<FieldMap>,
    /// URL query parameters (any method).
    pub(super) query: Option<FieldMap>,
    /// A form-encoded body (`POST`).
    pub(super) form: Option<FieldMap>,
    /// A JSON body (`POST`): any YAML value; its string leaves are templates.
    pub(super) json: Option<Spanned<serde_json::Value>>,
    /// Environment variable holding the value of `{secret}` (`VAR_FILE` also works).
    pub(super) secret_env: Option<String>,
    pub(super) secret_file: Option<String>,
    /// The value of `{from}`: the sender id at this provider.
    pub(super) from: Option<String>,
    pub(super) accepted: Option<Spanned<AcceptedSpec>>,
    pub(super) timeout_secs: Option<u32>,
    /// A PEM bundle of private CA certificates trusted in addition to the web PKI roots.
    pub(super) ca_file: Option<String>,
    /// Trust only `ca_file` (default false).
    pub(super) ca_only: Option<bool>,
    /// A client certificate (PEM) and its key, for gateways that authenticate clients by TLS.
    pub(super) client_cert: Option<String>,
    pub(super) client_key: Option<String>,
    /// Accept any certificate (a lab gateway). Never in production: use `ca_file`.
    pub(super) accept_invalid_certs: Option<bool>,
    pub(super) rate: Option<Spanned<crate::config::rate::RateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AcceptedSpec {
    /// HTTP statuses that may mean "accepted" (default: any 2xx).
    pub(super) status: Option<Spanned<Vec<u16>>>,
    pub(super) body_contains: Option<String>,
    pub(super) json_field: Option<JsonFieldSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JsonFieldSpec {
    /// Dotted path into the JSON reply: `status`, `data.state`, `messages.0.status`.
    pub(super) path: Spanned<String>,
    pub(super) equals: Spanned<serde_json::Value>,
}

/// A YAML mapping of names to strings, kept in the order written (gateways that sign their
/// parameters care).
#[derive(Debug, Default)]
pub(super) struct FieldMap(pub(super) Vec<(String, Spanned<String>)>);

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
