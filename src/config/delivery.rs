//! `delivery:` of `ritualist.yaml`: the email transport (outbox, SMTP, discard), DKIM, the SMS
//! transport (see [`super::sms`]), batching, leases and the in-doubt policies.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::paths::from_config_dir;
use super::rate::{RateLimit, RateSpec, rate_limit};
use super::secret::{Secret, SecretSource, read_secret};
use super::sms::{SmsSpec, SmsTransport, sms_concurrency, sms_transport};
use crate::domain::Channel;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliverySpec {
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
    pub tls: Box<super::tls::TlsTrust>,
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
    /// Per channel ([`HandoverBatch::of`]): `1` (the default): each message is committed
    /// `sending` by itself at the last moment (SMTP: beside the envelope and body, durable
    /// before the final dot; HTTP: right before the request), so a crash leaves at most one
    /// message per connection or request in doubt. `N > 1`: messages are committed `sending` N
    /// per statement before their envelope or request, at most `2 × N` at once — fewer commits
    /// per message, and up to `2 × N` messages in doubt after a crash (docs/delivery-guarantee.md §1,
    /// "batches widen the in-doubt window").
    pub handover_batch: HandoverBatch,
}

/// The largest `delivery.handover_batch`.
pub const MAX_HANDOVER_BATCH: u32 = 1000;

/// `email.smtp.connections` when it is not set: 32 (16 until issue #26's tenth pass), from
/// measurement (docs/performance.md). At `handover_batch: 1` each connection waits for one
/// commit per email (its `sending`, which carries the previous email's `sent`), so the drain
/// scales with connections; 32 stays below Postfix's default per-client limit (50,
/// `smtpd_client_connection_count_limit`), and bounds what a crash leaves in doubt to 32
/// emails, one per connection.
pub const DEFAULT_SMTP_CONNECTIONS: u32 = 32;

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

/// What happens to a message that was handed over when the answer was lost (docs/delivery-guarantee.md §1).
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
        Channel::ALL
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
        Some(f) => format!("key_file `{}`", from_config_dir(path, f).display()),
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
        connections: s
            .connections
            .unwrap_or(DEFAULT_SMTP_CONNECTIONS)
            .clamp(1, 64),
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

/// Validates `delivery:` (`rel` resolves a path written in the file).
pub(super) fn delivery_config(
    path: &Path,
    dl: Option<&DeliverySpec>,
    rel: impl Fn(&str) -> PathBuf,
    diags: &mut Diagnostics,
) -> DeliveryConfig {
    let email = email_transport(path, dl.and_then(|d| d.email.as_ref()), diags);
    let sms = sms_transport(path, dl.and_then(|d| d.sms.as_ref()), diags);
    let dkim = dl
        .and_then(|d| d.dkim.as_ref())
        .and_then(|k| dkim_settings(path, k, diags));
    let in_doubt = dl.and_then(|d| d.in_doubt.as_ref());
    DeliveryConfig {
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
            in_doubt.and_then(|p| p.email.as_ref()),
            InDoubtPolicy::Resend,
            diags,
        ),
        sms_in_doubt: in_doubt_policy(
            path,
            in_doubt.and_then(|p| p.sms.as_ref()),
            InDoubtPolicy::Skip,
            diags,
        ),
        pause_secs: dl.and_then(|d| d.pause_secs).unwrap_or(900).max(1),
        shutdown_timeout_secs: dl
            .and_then(|d| d.shutdown_timeout_secs)
            .unwrap_or(30)
            .max(1),
        handover_batch: handover_batch(path, dl.and_then(|d| d.handover_batch.as_ref()), diags),
    }
}

/// `delivery.email`: `outbox` (the default), `smtp` (with its section) or `discard`.
fn email_transport(path: &Path, e: Option<&EmailSpec>, diags: &mut Diagnostics) -> EmailTransport {
    let Some(e) = e else {
        return EmailTransport::Outbox;
    };
    match e.transport.value.as_str() {
        "outbox" => EmailTransport::Outbox,
        "discard" => EmailTransport::Discard,
        "smtp" => match &e.smtp {
            None => {
                diags.push(
                    Diagnostic::at(
                        path,
                        &e.transport.referenced,
                        "`transport: smtp` needs an `smtp:` section",
                    )
                    .with_hint(
                        "add smtp: { host: relay.example.com, port: 587, security: starttls }",
                    ),
                );
                EmailTransport::Outbox
            }
            Some(s) => EmailTransport::Smtp(smtp_config(path, s, diags)),
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
    }
}
