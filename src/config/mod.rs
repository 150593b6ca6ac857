//! Configuration files: `config/ritualist.yaml` (database, defaults, shop, delivery) and the
//! shared machinery that turns any YAML mistake into a [`Diagnostic`] with file, line, column
//! and a hint.
//!
//! YAML is read with serde-saphyr (duplicate keys rejected, `strict_booleans` so `NO` stays a
//! string) into spec structs that mirror the file (`deny_unknown_fields`); cross-field checks
//! then build the validated [`Config`]. Secrets never live in YAML: the file names environment
//! variables (`password_env`), and a key that looks like a secret is refused with a hint.

mod bounces;
mod delivery;
mod diagnostic;
mod engine;
mod env;
mod http;
mod paths;
mod rate;
mod secret;
mod settings;
mod sms;
mod tls;

pub use crate::domain::suggest::did_you_mean;
pub use bounces::{
    BouncesConfig, DeliverabilityAlert, InboundListen, InboundProtocol, MailgunHook, PostmarkHook,
    SendgridHook, SesHook, SmsReceipts, SoftBouncePolicy, WebhooksConfig,
};
pub use delivery::{
    DEFAULT_SMTP_CONNECTIONS, DeliveryConfig, DkimAlgorithm, DkimSettings, EmailTransport,
    HandoverBatch, InDoubtPolicy, SmtpConfig, SmtpSecurity,
};
pub use diagnostic::{Diagnostic, Diagnostics, Severity, parse_yaml, yaml_files};
pub use engine::{AllowedHours, EngineConfig, FrequencyCap};
pub use env::Environment;
pub use http::HttpConfig;
pub use rate::RateLimit;
pub use secret::Secret;
pub use settings::{Config, Defaults, Links, Shop};
pub use sms::{
    AcceptRule, HttpBody, HttpMethod, HttpSmsConfig, JsonFieldRule, JsonTemplate, KannelConfig,
    Placeholder, SmsProvider, SmsTransport, Template, TemplateVars, TwilioConfig, TwilioSender,
};
pub use tls::TlsTrust;
