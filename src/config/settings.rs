use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics, parse_yaml};
use super::sms::{SmsProvider, SmsSpec, SmsTransport, sms_concurrency, sms_transport};
use crate::domain::{Channel, Locale, parse_zone};

// ---------------------------------------------------------------------------------------------
// Spec: mirrors the YAML file.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSpec {
    /// `path/to/file.db`, `sqlite:path`, or `postgres://user@host/db`.
    database: Option<String>,
    /// SQLite only: `full` (the default: every commit is on disk before it returns, so it
    /// survives a power cut) or `normal` (WAL commits reach the OS at once and the disk at the
    /// next checkpoint: a killed process loses nothing, a power cut may lose the last commits).
    sqlite_synchronous: Option<Spanned<String>>,
    defaults: Option<DefaultsSpec>,
    shop: ShopSpec,
    /// A CSV of customers imported on first use of an empty database (the demo data). Refused
    /// unless every transport is `outbox` or `discard`: demo customers never reach a real one.
    sample_data: Option<Spanned<String>>,
    rituals: Option<String>,
    /// Folder of holiday calendars (`<id>.yaml`).
    calendars: Option<String>,
    templates: Option<String>,
    links: Option<LinksSpec>,
    delivery: Option<DeliverySpec>,
    /// Environment variable holding the key that derives Message-IDs and link tokens.
    secret_env: Option<String>,
    /// Rules across rituals: caps, quiet hours, catch-up, segments.
    engine: Option<super::engine::EngineSpec>,
    /// The daemon's public HTTP server.
    http: Option<super::http::HttpSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsSpec {
    time_zone: Option<Spanned<String>>,
    locale: Option<Spanned<String>>,
    /// Digits of the country calling code used for phone numbers written without one.
    country_code: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopSpec {
    name: String,
    url: Option<String>,
    from_email: Spanned<String>,
    from_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinksSpec {
    unsubscribe: Option<String>,
    preferences: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliverySpec {
    outbox_dir: Option<String>,
    email: Option<EmailSpec>,
    sms: Option<Spanned<SmsSpec>>,
    batch_size: Option<u32>,
    lease_secs: Option<u32>,
    max_attempts: Option<u32>,
    tick_secs: Option<u32>,
    dkim: Option<DkimSpec>,
    /// What to do with a message in doubt, per channel: `resend` or `skip`.
    in_doubt: Option<InDoubtSpec>,
    /// How long a channel pauses after its provider refused ritualist itself (doubling).
    pause_secs: Option<u32>,
    /// How long a stopping daemon waits for messages in flight.
    shutdown_timeout_secs: Option<u32>,
    /// Messages committed `sending` per statement (1: each by itself, at the last moment):
    /// one number for both channels, or `{ email: N, sms: M }`.
    handover_batch: Option<Spanned<HandoverSpec>>,
}

#[derive(Debug)]
enum HandoverSpec {
    /// As written (a negative number is reported as such).
    Both(i64),
    PerChannel(HandoverPerChannel),
}

/// A number, or a map with `email` and/or `sms` (an error that says so otherwise).
impl<'de> Deserialize<'de> for HandoverSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = HandoverSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of messages (both channels) or `{ email: N, sms: M }`")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<HandoverSpec, E> {
                Ok(HandoverSpec::Both(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<HandoverSpec, E> {
                Ok(HandoverSpec::Both(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<HandoverSpec, A::Error> {
                HandoverPerChannel::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(HandoverSpec::PerChannel)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandoverPerChannel {
    email: Option<i64>,
    sms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InDoubtSpec {
    email: Option<Spanned<String>>,
    sms: Option<Spanned<String>>,
}

/// `delivery.dkim`: the signing domain, the selector published in DNS and where the private
/// key comes from (a file or an environment variable, never inline).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DkimSpec {
    domain: Spanned<String>,
    selector: Spanned<String>,
    /// `rsa` (the default) or `ed25519`.
    algorithm: Option<Spanned<String>>,
    /// A PEM file: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`), Ed25519 as PKCS#8 (`BEGIN PRIVATE KEY`).
    key_file: Option<String>,
    /// An environment variable holding the PEM (default `RITUALIST_DKIM_KEY`; `VAR_FILE` works).
    key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailSpec {
    transport: Spanned<String>,
    smtp: Option<SmtpSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmtpSpec {
    host: String,
    port: Option<u16>,
    security: Option<Spanned<String>>,
    username: Option<String>,
    password_env: Option<String>,
    /// A file holding the password (systemd credentials, mounted secrets).
    password_file: Option<String>,
    hello_name: Option<String>,
    timeout_secs: Option<u32>,
    connections: Option<u32>,
    /// Accept any certificate (a local relay in a lab). Never in production: use `ca_file`.
    accept_invalid_certs: Option<bool>,
    /// A PEM bundle of private CA certificates trusted in addition to the web PKI roots.
    ca_file: Option<String>,
    /// Trust only `ca_file` (default false).
    ca_only: Option<bool>,
    /// A client certificate (PEM) and its key, for relays that authenticate clients by TLS.
    client_cert: Option<String>,
    client_key: Option<String>,
    /// Send MAIL, RCPT and DATA in one write when the relay offers PIPELINING (default true).
    pipelining: Option<bool>,
    rate: Option<Spanned<RateSpec>>,
    /// After this many failures of the relay itself in a row (connect, greeting, 421, a
    /// dropped connection, a timeout), stop trying for `breaker_secs` (default 5 and 30 s).
    breaker_failures: Option<u32>,
    breaker_secs: Option<u32>,
}

/// `rate: { per_second: 10, per_day: 50000 }` on a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateSpec {
    per_second: Option<f64>,
    per_day: Option<u64>,
}

/// A provider's limits: messages per second (evenly paced) and per UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimit {
    pub per_second: Option<f64>,
    pub per_day: Option<u64>,
}

impl RateLimit {
    pub fn is_limited(&self) -> bool {
        self.per_second.is_some() || self.per_day.is_some()
    }
}

/// Validates a `rate:` section.
pub(super) fn rate_limit(
    path: &Path,
    spec: Option<&Spanned<RateSpec>>,
    diags: &mut Diagnostics,
) -> RateLimit {
    let Some(r) = spec else {
        return RateLimit::default();
    };
    let per_second = r.value.per_second.filter(|v| {
        let ok = v.is_finite() && *v > 0.0 && *v <= 100_000.0;
        if !ok {
            diags.push(
                Diagnostic::at(path, &r.referenced, format!("rate.per_second {v} is not a rate"))
                    .with_hint("a number of messages per second above 0, e.g. 14 (fractions work: 0.5 is one every 2 s)"),
            );
        }
        ok
    });
    let per_day = r.value.per_day.filter(|v| {
        if *v == 0 {
            diags.push(
                Diagnostic::at(
                    path,
                    &r.referenced,
                    "rate.per_day is 0: nothing could be sent",
                )
                .with_hint("leave it out for no daily limit"),
            );
        }
        *v > 0
    });
    RateLimit {
        per_second,
        per_day,
    }
}

// ---------------------------------------------------------------------------------------------
// Validated configuration.
// ---------------------------------------------------------------------------------------------

/// A secret read from the environment; prints as `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Reads a secret from a file (trailing newline trimmed).
    pub fn from_file(path: &Path) -> Option<Secret> {
        let s = std::fs::read_to_string(path).ok()?;
        Some(Secret(s.trim_end_matches(['\r', '\n']).to_string()))
    }

    /// Reads `VAR`, or the file named by `VAR_FILE` (trailing newline trimmed).
    pub fn from_env(var: &str) -> Option<Secret> {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return Some(Secret(v));
        }
        let file = std::env::var(format!("{var}_FILE")).ok()?;
        let s = std::fs::read_to_string(file).ok()?;
        Some(Secret(s.trim_end_matches(['\r', '\n']).to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct Defaults {
    pub time_zone: String,
    pub locale: Locale,
    pub country_code: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Shop {
    pub name: String,
    pub url: Option<String>,
    pub from_email: String,
    pub from_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Links {
    pub unsubscribe: String,
    pub preferences: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS: only for a relay on the same host or a trusted network.
    Plain,
    /// STARTTLS required.
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub hello_name: String,
    pub timeout_secs: u32,
    pub connections: u32,
    pub accept_invalid_certs: bool,
    /// Private CA, client certificate (`ca_file`, `ca_only`, `client_cert`, `client_key`).
    pub tls: Box<super::TlsTrust>,
    /// MAIL, RCPT and DATA in one write when the relay offers PIPELINING (RFC 2920).
    pub pipelining: bool,
    pub rate: RateLimit,
    /// The circuit breaker: failures of the relay in a row before it opens, and how long it
    /// stays open the first time (doubling while the relay stays down, at most 10 minutes).
    pub breaker_failures: u32,
    pub breaker_secs: u32,
}

#[derive(Debug, Clone)]
pub enum EmailTransport {
    Outbox,
    Smtp(SmtpConfig),
    /// Accepts every message and sends nothing: load tests and dry runs of the whole pipeline.
    Discard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// rsa-sha256 with an RSA key (2048 bits recommended), PKCS#1 PEM.
    Rsa,
    /// ed25519-sha256 (RFC 8463), PKCS#8 PEM or the bare base64 seed.
    Ed25519,
}

/// DKIM signing of every outgoing email. The key is a [`Secret`]; it is parsed (and a bad key
/// reported) when the transports are built, before anything is sent.
#[derive(Debug, Clone)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    pub key: Secret,
    /// Where the key came from, for error messages: "key_file `/etc/…/dkim.pem`" or
    /// "the environment variable `RITUALIST_DKIM_KEY`". Never the key itself.
    pub key_origin: String,
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub outbox_dir: PathBuf,
    pub email: EmailTransport,
    /// DKIM signing of emails (`None`: unsigned).
    pub dkim: Option<DkimSettings>,
    pub sms: SmsTransport,
    /// SMS requests in flight at once (`sms.concurrency`): the most a crash leaves in doubt.
    pub sms_concurrency: u32,
    pub batch_size: u32,
    pub lease_secs: u32,
    pub max_attempts: u32,
    pub tick_secs: u32,
    /// In-doubt policy of email (default: resend, with the same Message-ID).
    pub email_in_doubt: InDoubtPolicy,
    /// In-doubt policy of SMS (default: skip; a second SMS cannot be recognised as a copy).
    pub sms_in_doubt: InDoubtPolicy,
    /// First pause of a channel refused "about us"; doubles per strike, at most a day.
    pub pause_secs: u32,
    pub shutdown_timeout_secs: u32,
    /// Per channel ([`HandoverBatch::of`]): `1` (the default): each message is committed `sending` by itself at the last moment
    /// (SMTP: after `354`; HTTP: right before the request), so a crash leaves at most one
    /// message per connection or request in doubt. `N > 1`: messages are committed `sending` N
    /// per statement before their envelope or request, at most `2 × N` at once — fewer commits
    /// per message, and up to `2 × N` messages in doubt after a crash (RELIABILITY.md §1,
    /// "batches widen the in-doubt window").
    pub handover_batch: HandoverBatch,
}

/// The largest `delivery.handover_batch`.
pub const MAX_HANDOVER_BATCH: u32 = 1000;

/// `delivery.handover_batch` of each channel (1: one by one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverBatch {
    pub email: u32,
    pub sms: u32,
}

impl HandoverBatch {
    pub const ONE_BY_ONE: HandoverBatch = HandoverBatch { email: 1, sms: 1 };

    pub fn of(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Email => self.email,
            Channel::Sms => self.sms,
        }
    }
}

/// What happens to a message that was handed over when the answer was lost (RELIABILITY.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDoubtPolicy {
    /// Send it again, byte for byte: a possible duplicate, never a loss.
    Resend,
    /// Keep it `in_doubt`: a possible loss, never a duplicate.
    Skip,
}

impl DeliveryConfig {
    /// The channels whose in-doubt messages are resent.
    pub fn resend_channels(&self) -> Vec<Channel> {
        [Channel::Email, Channel::Sms]
            .into_iter()
            .filter(|c| self.in_doubt_policy(*c) == InDoubtPolicy::Resend)
            .collect()
    }

    pub fn in_doubt_policy(&self, channel: Channel) -> InDoubtPolicy {
        match channel {
            Channel::Email => self.email_in_doubt,
            Channel::Sms => self.sms_in_doubt,
        }
    }
}

/// The validated configuration. Built once, passed by reference; never a global.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub database_url: String,
    pub defaults: Defaults,
    pub shop: Shop,
    pub sample_data: Option<PathBuf>,
    pub rituals_dir: PathBuf,
    pub calendars_dir: PathBuf,
    pub templates_dir: PathBuf,
    pub links: Links,
    pub delivery: DeliveryConfig,
    /// Key for Message-IDs (and, later, link tokens). `None`: the store's generated instance key is used.
    pub secret: Option<Secret>,
    pub engine: super::engine::EngineConfig,
    /// The daemon's public HTTP server; `None`: `run` serves nothing.
    pub http: Option<super::http::HttpConfig>,
}

impl Config {
    /// Reads and validates the configuration file. `RITUALIST_DATABASE_URL` overrides `database`.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic::error(path, 0, 0, format!("cannot read the configuration: {e}")).with_hint(
                "pass the file with --config, or run from the project folder that holds config/ritualist.yaml",
            )])
        })?;
        Config::from_str(path, &text)
    }

    pub fn from_str(path: &Path, text: &str) -> Result<Config, Diagnostics> {
        let spec: ConfigSpec = parse_yaml(path, text).map_err(|d| Diagnostics(vec![d]))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let rel = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                normalize(&base.join(p))
            }
        };
        let mut diags = Diagnostics::default();

        // The environment's database wins; its relative SQLite path is taken from the working
        // directory, the file's from the config folder.
        let from_env = std::env::var("RITUALIST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty());
        let database = from_env
            .clone()
            .or(spec.database.clone())
            .unwrap_or_else(|| "../data/ritualist.db".into());
        let database_url = if database.starts_with("postgres://")
            || database.starts_with("postgresql://")
        {
            database
        } else {
            let file = database
                .strip_prefix("sqlite://")
                .or_else(|| database.strip_prefix("sqlite:"))
                .unwrap_or(&database);
            let file = file.split('?').next().unwrap_or(file);
            let p = if from_env.is_some() {
                PathBuf::from(file)
            } else {
                rel(file)
            };
            let normal = match spec.sqlite_synchronous.as_ref() {
                None => false,
                Some(v) if v.value == "full" => false,
                Some(v) if v.value == "normal" => true,
                Some(v) => {
                    diags.push(
                            Diagnostic::at(
                                path,
                                &v.referenced,
                                format!("unknown sqlite_synchronous `{}`", v.value),
                            )
                            .with_hint("use `full` (survives a power cut) or `normal` (survives a crash; faster)"),
                        );
                    false
                }
            };
            format!(
                "sqlite://{}?mode=rwc{}",
                p.display(),
                if normal { "&synchronous=normal" } else { "" }
            )
        };

        let d = spec.defaults.as_ref();
        let time_zone = match d.and_then(|d| d.time_zone.as_ref()) {
            Some(z) => {
                if let Err(e) = parse_zone(&z.value) {
                    diags.push(Diagnostic::at(path, &z.referenced, e.to_string()).with_hint(
                        "use a name from the IANA tz database, e.g. Europe/Bucharest, Europe/Moscow, America/New_York",
                    ));
                }
                z.value.clone()
            }
            None => "UTC".to_string(),
        };
        let locale = match d.and_then(|d| d.locale.as_ref()) {
            Some(l) => match Locale::parse(&l.value) {
                Ok(l) => l,
                Err(e) => {
                    diags.push(Diagnostic::at(path, &l.referenced, e.to_string()));
                    Locale::parse("en").expect("en is a locale")
                }
            },
            None => Locale::parse("en").expect("en is a locale"),
        };
        let country_code = match d.and_then(|d| d.country_code.as_ref()) {
            Some(c) => {
                let v = c.value.trim().trim_start_matches('+').to_string();
                if v.is_empty() || v.len() > 3 || !v.chars().all(|ch| ch.is_ascii_digit()) {
                    diags.push(
                        Diagnostic::at(path, &c.referenced, format!("invalid country code `{}`", c.value))
                            .with_hint("write the calling code's digits as a quoted string, e.g. \"40\" for Romania, \"7\" for Russia"),
                    );
                }
                Some(v)
            }
            None => None,
        };

        let from_email = spec.shop.from_email.value.clone();
        if crate::domain::Email::parse(&from_email).is_err() {
            diags.push(
                Diagnostic::at(
                    path,
                    &spec.shop.from_email.referenced,
                    format!("invalid shop.from_email `{from_email}`"),
                )
                .with_hint("the address customers see as the sender, e.g. hello@yourshop.com"),
            );
        }

        let links = Links {
            unsubscribe: spec
                .links
                .as_ref()
                .and_then(|l| l.unsubscribe.clone())
                .unwrap_or_else(|| format!("mailto:{from_email}?subject=unsubscribe")),
            preferences: spec.links.as_ref().and_then(|l| l.preferences.clone()),
        };

        let dl = spec.delivery.as_ref();
        let email = match dl.and_then(|d| d.email.as_ref()) {
            None => EmailTransport::Outbox,
            Some(e) => match e.transport.value.as_str() {
                "outbox" => EmailTransport::Outbox,
                "discard" => EmailTransport::Discard,
                "smtp" => match &e.smtp {
                    None => {
                        diags.push(
                            Diagnostic::at(path, &e.transport.referenced, "`transport: smtp` needs an `smtp:` section")
                                .with_hint("add smtp: { host: relay.example.com, port: 587, security: starttls }"),
                        );
                        EmailTransport::Outbox
                    }
                    Some(s) => EmailTransport::Smtp(smtp_config(path, s, &mut diags)),
                },
                other => {
                    diags.push(
                        Diagnostic::at(
                            path,
                            &e.transport.referenced,
                            format!("unknown email transport `{other}`"),
                        )
                        .with_hint("use `outbox` (files, no server), `smtp`, or `discard` (load tests: sends nothing)"),
                    );
                    EmailTransport::Outbox
                }
            },
        };
        let sms = sms_transport(path, dl.and_then(|d| d.sms.as_ref()), &mut diags);
        let dkim = dl
            .and_then(|d| d.dkim.as_ref())
            .and_then(|k| dkim_settings(path, k, &mut diags));
        let delivery = DeliveryConfig {
            outbox_dir: rel(dl
                .and_then(|d| d.outbox_dir.as_deref())
                .unwrap_or("../outbox")),
            email,
            dkim,
            sms,
            sms_concurrency: sms_concurrency(dl.and_then(|d| d.sms.as_ref())),
            batch_size: dl.and_then(|d| d.batch_size).unwrap_or(1000).max(1),
            lease_secs: dl.and_then(|d| d.lease_secs).unwrap_or(300).max(10),
            max_attempts: dl.and_then(|d| d.max_attempts).unwrap_or(8).max(1),
            tick_secs: dl.and_then(|d| d.tick_secs).unwrap_or(60).max(1),
            email_in_doubt: in_doubt_policy(
                path,
                dl.and_then(|d| d.in_doubt.as_ref())
                    .and_then(|p| p.email.as_ref()),
                InDoubtPolicy::Resend,
                &mut diags,
            ),
            sms_in_doubt: in_doubt_policy(
                path,
                dl.and_then(|d| d.in_doubt.as_ref())
                    .and_then(|p| p.sms.as_ref()),
                InDoubtPolicy::Skip,
                &mut diags,
            ),
            pause_secs: dl.and_then(|d| d.pause_secs).unwrap_or(900).max(1),
            shutdown_timeout_secs: dl
                .and_then(|d| d.shutdown_timeout_secs)
                .unwrap_or(30)
                .max(1),
            handover_batch: handover_batch(
                path,
                dl.and_then(|d| d.handover_batch.as_ref()),
                &mut diags,
            ),
        };

        if let Some(sample) = &spec.sample_data {
            demo_only(path, sample, &delivery, &mut diags);
        }

        let secret_var = spec
            .secret_env
            .clone()
            .unwrap_or_else(|| "RITUALIST_SECRET".into());
        let secret = Secret::from_env(&secret_var);
        let engine = super::engine::compile(path, spec.engine.as_ref(), rel, &mut diags);
        let http = super::http::http_config(path, spec.http.as_ref(), &spec.shop.name, &mut diags);

        if diags.has_errors() {
            return Err(diags);
        }
        Ok(Config {
            path: path.to_path_buf(),
            database_url,
            defaults: Defaults {
                time_zone,
                locale,
                country_code,
            },
            shop: Shop {
                name: spec.shop.name,
                url: spec.shop.url,
                from_email,
                from_name: spec.shop.from_name,
            },
            sample_data: spec.sample_data.as_ref().map(|s| rel(&s.value)),
            rituals_dir: rel(spec.rituals.as_deref().unwrap_or("rituals")),
            calendars_dir: rel(spec.calendars.as_deref().unwrap_or("calendars")),
            templates_dir: rel(spec.templates.as_deref().unwrap_or("../templates")),
            links,
            delivery,
            secret,
            engine,
            http,
        })
    }
}

/// Demo data and a real transport never meet: `sample_data` is refused (with the key's line)
/// when email or SMS is delivered through anything but the local outbox or `discard`, so
/// the demo customers' addresses and numbers cannot receive a message by accident.
fn demo_only(path: &Path, sample: &Spanned<String>, d: &DeliveryConfig, diags: &mut Diagnostics) {
    let mut real = Vec::new();
    if matches!(d.email, EmailTransport::Smtp(_)) {
        real.push("email goes through `smtp`".to_string());
    }
    if let SmsTransport::Providers(list) = &d.sms {
        let names: Vec<&str> = list
            .iter()
            .map(|p| match p {
                SmsProvider::Twilio(_) => "twilio",
                SmsProvider::Http(_) => "http",
                SmsProvider::Kannel(_) => "kannel",
            })
            .collect();
        real.push(format!("SMS goes through `{}`", names.join("`, `")));
    }
    if real.is_empty() {
        return;
    }
    diags.push(
        Diagnostic::at(
            path,
            &sample.referenced,
            format!(
                "`sample_data` imports demo customers, but {}: demo customers must never reach a real transport",
                real.join(" and ")
            ),
        )
        .with_hint(
            "remove the `sample_data:` line (import real customers with `ritualist import customers FILE`), \
             or keep the demo on `transport: outbox` / `discard`",
        ),
    );
}

/// `config/../templates` → `templates`, lexically (no file system access, symlinks untouched).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    let path: PathBuf = out.iter().collect();
    if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path
    }
}

/// Where a credential comes from, as the YAML names it.
pub(super) struct SecretSource<'a> {
    /// The variable named in YAML (`password_env`), else `default_var` (empty: none).
    pub env: Option<&'a str>,
    /// A file (relative to the config's folder); wins over the environment.
    pub file: Option<&'a str>,
    pub default_var: &'a str,
    /// The YAML key of the file, for the hint: `password_file`.
    pub file_key: &'a str,
    /// "the SMTP password".
    pub what: &'a str,
    /// Where the section that needs it starts (`None`: the file as a whole).
    pub at: Option<&'a serde_saphyr::Location>,
}

/// A credential from its file or its environment variable (`VAR_FILE` also works). Missing is
/// an error that names both ways to give it — better than a daemon whose every message is refused.
pub(super) fn read_secret(
    path: &Path,
    src: SecretSource,
    diags: &mut Diagnostics,
) -> Option<Secret> {
    let (line, column) = src.at.map_or((0, 0), |l| (l.line(), l.column()));
    if let Some(f) = src.file {
        let base = path.parent().unwrap_or(Path::new("."));
        let p = if Path::new(f).is_absolute() {
            PathBuf::from(f)
        } else {
            normalize(&base.join(f))
        };
        let secret = Secret::from_file(&p);
        if secret.is_none() {
            diags.push(
                Diagnostic::error(path, line, column, format!("cannot read {} from {} `{}`", src.what, src.file_key, p.display()))
                    .with_hint("check the path (relative to this file's folder) and that the daemon's user may read it"),
            );
        }
        return secret;
    }
    let var = src.env.unwrap_or(src.default_var);
    let secret = Secret::from_env(var);
    if secret.is_none() {
        diags.push(
            Diagnostic::error(
                path,
                line,
                column,
                format!(
                    "{} is not set: the environment variable `{var}` is empty",
                    src.what
                ),
            )
            .with_hint(format!(
                "export {var}=…, set {var}_FILE to a file holding it, or set `{}:`",
                src.file_key
            )),
        );
    }
    secret
}

/// A password from `password_file` or from the environment variable `password_env` (default
/// `default_var`).
fn password(
    path: &Path,
    env: Option<&str>,
    file: Option<&str>,
    default_var: &str,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Secret> {
    read_secret(
        path,
        SecretSource {
            env,
            file,
            default_var,
            file_key: "password_file",
            what,
            at: None,
        },
        diags,
    )
}

/// The DKIM section: domain and selector as DNS labels, the algorithm, and the key read from
/// `key_file` or `key_env` (missing or unreadable is an error naming the file or variable).
fn dkim_settings(path: &Path, k: &DkimSpec, diags: &mut Diagnostics) -> Option<DkimSettings> {
    let mut ok = true;
    for (what, v) in [("domain", &k.domain), ("selector", &k.selector)] {
        let valid = !v.value.is_empty()
            && v.value.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            ok = false;
            diags.push(
                Diagnostic::at(path, &v.referenced, format!("invalid dkim {what} `{}`", v.value))
                    .with_hint(if what == "domain" {
                        "the signing domain (d=), usually your From domain, e.g. floare.example"
                    } else {
                        "the selector (s=) of the TXT record <selector>._domainkey.<domain>, e.g. rit2026"
                    }),
            );
        }
    }
    let algorithm = match k.algorithm.as_ref() {
        None => DkimAlgorithm::Rsa,
        Some(a) => match a.value.as_str() {
            "rsa" | "rsa-sha256" => DkimAlgorithm::Rsa,
            "ed25519" | "ed25519-sha256" => DkimAlgorithm::Ed25519,
            other => {
                ok = false;
                diags.push(
                    Diagnostic::at(
                        path,
                        &a.referenced,
                        format!("unknown dkim algorithm `{other}`"),
                    )
                    .with_hint("use `rsa` (a 2048-bit PKCS#1 key) or `ed25519`"),
                );
                DkimAlgorithm::Rsa
            }
        },
    };
    let key = read_secret(
        path,
        SecretSource {
            env: k.key_env.as_deref(),
            file: k.key_file.as_deref(),
            default_var: "RITUALIST_DKIM_KEY",
            file_key: "key_file",
            what: "the DKIM private key",
            at: Some(&k.domain.referenced),
        },
        diags,
    )?;
    let key_origin = match k.key_file.as_deref() {
        Some(f) => {
            let base = path.parent().unwrap_or(Path::new("."));
            let p = if Path::new(f).is_absolute() {
                PathBuf::from(f)
            } else {
                normalize(&base.join(f))
            };
            format!("key_file `{}`", p.display())
        }
        None => format!(
            "the environment variable `{}`",
            k.key_env.as_deref().unwrap_or("RITUALIST_DKIM_KEY")
        ),
    };
    ok.then(|| DkimSettings {
        domain: k.domain.value.to_ascii_lowercase(),
        selector: k.selector.value.clone(),
        algorithm,
        key,
        key_origin,
    })
}

fn smtp_config(path: &Path, s: &SmtpSpec, diags: &mut Diagnostics) -> SmtpConfig {
    let security = match s.security.as_ref() {
        None => SmtpSecurity::Starttls,
        Some(v) => {
            match v.value.as_str() {
                "plain" | "none" => SmtpSecurity::Plain,
                "starttls" => SmtpSecurity::Starttls,
                "tls" | "ssl" | "implicit" => SmtpSecurity::Tls,
                other => {
                    diags.push(
                    Diagnostic::at(path, &v.referenced, format!("unknown smtp security `{other}`"))
                        .with_hint("use `starttls` (port 587), `tls` (port 465) or `plain` (a local relay)"),
                );
                    SmtpSecurity::Starttls
                }
            }
        }
    };
    let port = s.port.unwrap_or(match security {
        SmtpSecurity::Plain => 25,
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::Tls => 465,
    });
    // A password only matters (and is then required) when a username is configured.
    let password = s.username.as_ref().and_then(|_| {
        password(
            path,
            s.password_env.as_deref(),
            s.password_file.as_deref(),
            "RITUALIST_SMTP_PASSWORD",
            "the SMTP password",
            diags,
        )
    });
    SmtpConfig {
        host: s.host.clone(),
        port,
        security,
        username: s.username.clone(),
        password,
        hello_name: s.hello_name.clone().unwrap_or_else(|| "localhost".into()),
        timeout_secs: s.timeout_secs.unwrap_or(30).max(1),
        connections: s.connections.unwrap_or(4).clamp(1, 64),
        accept_invalid_certs: s.accept_invalid_certs.unwrap_or(false),
        tls: Box::new(super::tls::tls_trust(
            path,
            "email.smtp",
            super::tls::TlsKeys {
                ca_file: s.ca_file.as_deref(),
                ca_only: s.ca_only,
                client_cert: s.client_cert.as_deref(),
                client_key: s.client_key.as_deref(),
                accept_invalid_certs: s.accept_invalid_certs,
            },
            diags,
        )),
        pipelining: s.pipelining.unwrap_or(true),
        rate: rate_limit(path, s.rate.as_ref(), diags),
        breaker_failures: s.breaker_failures.unwrap_or(5).max(1),
        breaker_secs: s.breaker_secs.unwrap_or(30).clamp(1, 600),
    }
}

/// `delivery.handover_batch`: 1 to [`MAX_HANDOVER_BATCH`], for both channels or each.
fn handover_batch(
    path: &Path,
    spec: Option<&Spanned<HandoverSpec>>,
    diags: &mut Diagnostics,
) -> HandoverBatch {
    let Some(spec) = spec else {
        return HandoverBatch::ONE_BY_ONE;
    };
    let (email, sms) = match &spec.value {
        HandoverSpec::Both(n) => (Some(*n), Some(*n)),
        HandoverSpec::PerChannel(p) => (p.email, p.sms),
    };
    let mut check = |n: Option<i64>| match n {
        None => 1,
        Some(n) if (1..=MAX_HANDOVER_BATCH as i64).contains(&n) => n as u32,
        Some(n) => {
            diags.push(
                Diagnostic::at(
                    path,
                    &spec.referenced,
                    format!("handover_batch must be between 1 and {MAX_HANDOVER_BATCH}, not {n}"),
                )
                .with_hint("1 (the default) commits each message `sending` by itself; N commits N at once, and a crash may leave up to 2 × N messages in doubt (per channel: `handover_batch: { email: 100, sms: 1 }`)"),
            );
            1
        }
    };
    HandoverBatch {
        email: check(email),
        sms: check(sms),
    }
}

fn in_doubt_policy(
    path: &Path,
    spec: Option<&Spanned<String>>,
    default: InDoubtPolicy,
    diags: &mut Diagnostics,
) -> InDoubtPolicy {
    let Some(v) = spec else { return default };
    match v.value.as_str() {
        "resend" => InDoubtPolicy::Resend,
        "skip" => InDoubtPolicy::Skip,
        other => {
            diags.push(
                Diagnostic::at(path, &v.referenced, format!("unknown in-doubt policy `{other}`"))
                    .with_hint("`resend` (same bytes and Message-ID: a possible duplicate) or `skip` (kept as in_doubt: a possible loss)"),
            );
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "shop:\n  name: Test\n  from_email: hello@example.com\ndefaults:\n  time_zone: Europe/Bucharest\n  locale: ro\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::from_str(Path::new("/etc/r/ritualist.yaml"), GOOD).unwrap();
        assert_eq!(c.defaults.time_zone, "Europe/Bucharest");
        assert_eq!(c.rituals_dir, PathBuf::from("/etc/r/rituals"));
        assert!(matches!(c.delivery.email, EmailTransport::Outbox));
        // README's configuration block and benches/delivery.rs state this default.
        assert_eq!(c.delivery.batch_size, 1000);
    }

    #[test]
    fn sample_data_is_refused_with_a_real_transport() {
        // The demo on the local outbox (or discard) is fine.
        for ok in [
            format!("{GOOD}sample_data: ../samples/customers.csv\n"),
            format!(
                "{GOOD}sample_data: ../samples/customers.csv\ndelivery:\n  email:\n    transport: discard\n  sms:\n    transport: discard\n"
            ),
        ] {
            let c = Config::from_str(Path::new("/etc/r/ritualist.yaml"), &ok).unwrap();
            assert_eq!(
                c.sample_data,
                Some(PathBuf::from("/etc/samples/customers.csv"))
            );
        }
        // Any real transport on either channel refuses it, at the key's line, naming the transport.
        let smtp = format!(
            "{GOOD}sample_data: ../samples/customers.csv\ndelivery:\n  email:\n    transport: smtp\n    smtp:\n      host: relay.example.com\n"
        );
        let kannel = format!(
            "{GOOD}sample_data: ../samples/customers.csv\ndelivery:\n  sms:\n    transport: kannel\n    kannel:\n      url: http://127.0.0.1:1/\n      username: u\n      password_env: PATH\n"
        );
        for (yaml, says) in [
            (smtp, "email goes through `smtp`"),
            (kannel, "SMS goes through `kannel`"),
        ] {
            let d = Config::from_str(Path::new("/etc/r/ritualist.yaml"), &yaml).unwrap_err();
            let text = d.to_string();
            assert!(
                text.contains(":7:") && text.contains("sample_data") && text.contains(says),
                "{text}"
            );
            assert!(text.contains("remove the `sample_data:` line"), "{text}");
        }
    }

    #[test]
    fn bad_zone_is_reported_with_its_line() {
        let text = GOOD.replace("Europe/Bucharest", "Europe/Bucharets");
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        let e = &d.0[0];
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("Europe/Bucharets"), "{e}");
    }

    #[test]
    fn password_in_yaml_is_refused() {
        let text = format!(
            "{GOOD}delivery:\n  email:\n    transport: smtp\n    smtp:\n      host: x\n      password: hunter2\n"
        );
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        assert!(d.to_string().contains("environment"), "{d}");
    }

    /// #29: TLS trust mistakes are config errors naming the key, before anything connects.
    #[test]
    fn tls_trust_mistakes_are_config_errors_naming_the_key() {
        let smtp = |extra: &str| {
            format!(
                "{GOOD}delivery:\n  email:\n    transport: smtp\n    smtp:\n      host: relay.example.com\n{extra}"
            )
        };
        for (extra, says) in [
            (
                "      ca_only: true\n",
                "email.smtp.ca_only: true needs `ca_file`",
            ),
            (
                "      ca_file: /nonexistent/ca.pem\n",
                "email.smtp.ca_file: cannot read `/nonexistent/ca.pem`",
            ),
            (
                "      client_cert: /etc/passwd\n",
                "email.smtp: `client_cert` and `client_key` go together",
            ),
        ] {
            let d = Config::from_str(Path::new("/etc/r/ritualist.yaml"), &smtp(extra)).unwrap_err();
            assert!(d.to_string().contains(says), "{extra}: {d}");
        }
        let ok = Config::from_str(
            Path::new("/etc/r/ritualist.yaml"),
            &smtp("      ca_file: /etc/passwd\n"),
        )
        .unwrap();
        let EmailTransport::Smtp(s) = &ok.delivery.email else {
            panic!("smtp")
        };
        assert_eq!(s.tls.ca_file.as_deref(), Some(Path::new("/etc/passwd")));
    }

    #[test]
    fn a_missing_gateway_password_is_a_config_error_not_a_failed_send() {
        let text = format!(
            "{GOOD}delivery:\n  sms:\n    transport: kannel\n    kannel:\n      url: http://127.0.0.1:1/\n      username: u\n      password_env: RITUALIST_TEST_NEVER_SET_4471\n"
        );
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        assert!(
            d.to_string()
                .contains("`RITUALIST_TEST_NEVER_SET_4471` is empty"),
            "{d}"
        );
        let text = format!(
            "{GOOD}delivery:\n  email:\n    transport: smtp\n    smtp:\n      host: x\n      username: u\n      password_file: /nonexistent/pw\n"
        );
        let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
        assert!(
            d.to_string()
                .contains("cannot read the SMTP password from password_file `/nonexistent/pw`"),
            "{d}"
        );
    }

    #[test]
    fn dkim_needs_a_readable_key_and_a_known_algorithm() {
        let dkim = "delivery:\n  dkim:\n    domain: floare.example\n    selector: rit2027\n";
        let d = Config::from_str(
            Path::new("/etc/r/c.yaml"),
            &format!("{GOOD}{dkim}    key_file: keys/nope.pem\n"),
        )
        .unwrap_err();
        assert!(
            d.to_string()
                .contains("cannot read the DKIM private key from key_file `/etc/r/keys/nope.pem`"),
            "{d}"
        );
        let d = Config::from_str(
            Path::new("c.yaml"),
            &format!(
                "{GOOD}{dkim}    algorithm: dsa\n    key_env: RITUALIST_TEST_NEVER_SET_4472\n"
            ),
        )
        .unwrap_err();
        let s = d.to_string();
        assert!(s.contains("unknown dkim algorithm `dsa`"), "{s}");
        assert!(
            s.contains("`RITUALIST_TEST_NEVER_SET_4472` is empty"),
            "{s}"
        );
        let d = Config::from_str(
            Path::new("c.yaml"),
            &format!("{GOOD}{dkim}    private_key: abc\n"),
        )
        .unwrap_err();
        assert!(d.to_string().contains("secrets never go in YAML"), "{d}");
    }

    #[test]
    fn handover_batch_defaults_to_one_and_rejects_out_of_range_with_its_line() {
        let c = Config::from_str(Path::new("c.yaml"), GOOD).unwrap();
        assert_eq!(c.delivery.handover_batch, HandoverBatch::ONE_BY_ONE);
        let text = format!("{GOOD}delivery:\n  handover_batch: 50\n");
        let c = Config::from_str(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(
            c.delivery.handover_batch,
            HandoverBatch { email: 50, sms: 50 }
        );
        let text = format!("{GOOD}delivery:\n  handover_batch:\n    email: 200\n");
        let c = Config::from_str(Path::new("c.yaml"), &text).unwrap();
        assert_eq!(
            c.delivery.handover_batch,
            HandoverBatch { email: 200, sms: 1 }
        );
        assert_eq!(
            (
                c.delivery.handover_batch.of(Channel::Email),
                c.delivery.handover_batch.of(Channel::Sms)
            ),
            (200, 1)
        );
        for bad in ["0", "-5", "5000", "{ email: 10, sms: 0 }"] {
            let text = format!("{GOOD}delivery:\n  batch_size: 50\n  handover_batch: {bad}\n");
            let line = text.lines().count();
            let d = Config::from_str(Path::new("c.yaml"), &text).unwrap_err();
            let shown = d.to_string();
            assert!(
                shown.contains(&format!("c.yaml:{line}"))
                    && shown.contains("handover_batch must be between 1 and 1000")
                    && shown.contains("in doubt"),
                "{shown}"
            );
        }
    }

    #[test]
    fn secret_prints_as_stars() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }
}
