//! The `bounces:` section of ritualist.yaml: what ritualist does with the reports mail systems
//! and gateways send after a message left (docs/delivery-guarantee.md §6).
//!
//! ```yaml
//! bounces:
//!   return_path: bounces@shop.example   # envelope sender: bounces+<signed token>@shop.example
//!   soft_bounces: { limit: 3, days: 30 } # 3 soft bounces within 30 days suppress the address
//!   webhooks:                            # providers' webhooks (docs/integrator.md#provider-webhooks)
//!     ses: { topic_arns: [arn:aws:sns:eu-west-1:123456789012:ses-feedback] }
//!     postmark: { user: postmark }       # password: RITUALIST_POSTMARK_WEBHOOK_PASSWORD
//!     sendgrid: {}                       # key: RITUALIST_SENDGRID_WEBHOOK_KEY
//!     mailgun: {}                        # key: RITUALIST_MAILGUN_SIGNING_KEY
//!   listen: "127.0.0.1:2526"             # the daemon takes bounce mail here (unset: it does not)
//!   protocol: lmtp                       # lmtp (the default) or smtp
//!   alert:                               # /healthz `degraded` and an ALERT log line when, over
//!     complaint_rate: 0.3                #   the last 7 days, complaints exceed 0.3 % of sent
//!     hard_bounce_rate: 2                #   or hard bounces (dead numbers) 2 %,
//!     min_sent: 100                      #   once at least 100 were sent on the channel
//!   sms_receipts:
//!     key_env: RITUALIST_SMS_RECEIPT_KEY # bearer key of /sms/receipt/<token> (the default; unset: none)
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::net::SocketAddr;
use std::path::Path;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BouncesSpec {
    return_path: Option<Spanned<String>>,
    soft_bounces: Option<Spanned<SoftSpec>>,
    webhooks: Option<webhooks::WebhooksSpec>,
    listen: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    alert: Option<Spanned<AlertSpec>>,
    sms_receipts: Option<SmsReceiptsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftSpec {
    limit: u32,
    days: u32,
}

/// `limit` soft bounces of one address within `days` days suppress it (source
/// `soft_bounces`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftBouncePolicy {
    pub limit: u32,
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BouncesConfig {
    /// The VERP base of the envelope sender, split at `@`: `("bounces", "shop.example")`
    /// sends as `bounces+<token>@shop.example`. `None`: the envelope sender is
    /// `shop.from_email`, and a bounce is matched by the Message-ID it quotes.
    pub return_path: Option<(String, String)>,
    pub soft_bounces: SoftBouncePolicy,
    /// The providers' webhooks that are on (`bounces.webhooks`).
    pub webhooks: WebhooksConfig,
    /// Where the daemon takes bounce mail over LMTP or SMTP (`bounces.listen`); `None`: it
    /// does not listen.
    pub listen: Option<InboundListen>,
    /// When deliverability turns `/healthz` degraded (`bounces.alert`).
    pub alert: DeliverabilityAlert,
    /// The generic SMS gateway's receipt callback (`bounces.sms_receipts`).
    pub sms_receipts: SmsReceipts,
}

/// The daemon's inbound mail listener: the shop's MTA hands it the mail addressed to the
/// return path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundListen {
    /// Port 0: any free port, logged at start.
    pub addr: SocketAddr,
    pub protocol: InboundProtocol,
}

/// Which dialect the listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundProtocol {
    /// RFC 2033 (`LHLO`, one reply per recipient after the data): the default, what Postfix's
    /// `lmtp` transport speaks.
    Lmtp,
    /// RFC 5321 (`EHLO`/`HELO`, one reply for the message).
    Smtp,
}

impl InboundProtocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            InboundProtocol::Lmtp => "lmtp",
            InboundProtocol::Smtp => "smtp",
        }
    }
}

impl Default for BouncesConfig {
    fn default() -> Self {
        BouncesConfig {
            return_path: None,
            soft_bounces: SoftBouncePolicy { limit: 3, days: 30 },
            webhooks: WebhooksConfig::default(),
            listen: None,
            alert: DeliverabilityAlert::default(),
            sms_receipts: SmsReceipts::from_spec(None),
        }
    }
}

pub(super) fn compile(
    path: &Path,
    spec: Option<&BouncesSpec>,
    diags: &mut Diagnostics,
) -> BouncesConfig {
    let mut cfg = BouncesConfig::default();
    let Some(spec) = spec else {
        return cfg;
    };
    if let Some(rp) = &spec.return_path {
        match split_return_path(&rp.value) {
            Some(parts) => cfg.return_path = Some(parts),
            None => diags.push(
                Diagnostic::at(
                    path,
                    &rp.referenced,
                    format!("invalid bounces.return_path `{}`", rp.value),
                )
                .with_hint(
                    "an address of a domain whose mail reaches ritualist, without `+`, e.g. bounces@shop.example",
                ),
            ),
        }
    }
    if let Some(s) = &spec.soft_bounces {
        if s.value.limit == 0 || s.value.days == 0 || s.value.days > 366 {
            diags.push(
                Diagnostic::at(path, &s.referenced, "soft_bounces needs limit ≥ 1 and 1 ≤ days ≤ 366")
                    .with_hint("{ limit: 3, days: 30 } = the third soft bounce within 30 days suppresses the address"),
            );
        } else {
            cfg.soft_bounces = SoftBouncePolicy {
                limit: s.value.limit,
                days: s.value.days,
            };
        }
    }
    if let Some(w) = &spec.webhooks {
        cfg.webhooks = webhooks::compile(path, w, diags);
    }
    cfg.alert = compile_alert(path, spec.alert.as_ref(), diags);
    cfg.sms_receipts = SmsReceipts::from_spec(spec.sms_receipts.as_ref());
    cfg.listen = listen(path, spec, cfg.return_path.is_some(), diags);
    cfg
}

/// `bounces.listen` and `bounces.protocol`; the listener needs a return path (it takes mail
/// for that address only).
fn listen(
    path: &Path,
    spec: &BouncesSpec,
    has_return_path: bool,
    diags: &mut Diagnostics,
) -> Option<InboundListen> {
    let protocol = match &spec.protocol {
        None => InboundProtocol::Lmtp,
        Some(p) => match p.value.trim().to_ascii_lowercase().as_str() {
            "lmtp" => InboundProtocol::Lmtp,
            "smtp" => InboundProtocol::Smtp,
            other => {
                diags.push(
                    Diagnostic::at(
                        path,
                        &p.referenced,
                        format!("unknown bounces.protocol `{other}`"),
                    )
                    .with_hint("lmtp (Postfix's lmtp transport, the default) or smtp"),
                );
                InboundProtocol::Lmtp
            }
        },
    };
    let Some(l) = &spec.listen else {
        if let Some(p) = &spec.protocol {
            diags.push(
                Diagnostic::at(
                    path,
                    &p.referenced,
                    "bounces.protocol without bounces.listen",
                )
                .with_hint("add listen: \"127.0.0.1:2526\", or remove protocol"),
            );
        }
        return None;
    };
    let Ok(addr) = l.value.trim().parse::<SocketAddr>() else {
        diags.push(
            Diagnostic::at(
                path,
                &l.referenced,
                format!("invalid bounces.listen `{}`", l.value),
            )
            .with_hint("an address and port, e.g. \"127.0.0.1:2526\" (quote it)"),
        );
        return None;
    };
    if !has_return_path {
        diags.push(
            Diagnostic::at(path, &l.referenced, "bounces.listen without bounces.return_path")
                .with_hint(
                    "the listener takes mail for the return path only: add return_path: bounces@shop.example",
                ),
        );
        return None;
    }
    Some(InboundListen { addr, protocol })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertSpec {
    complaint_rate: Option<f64>,
    hard_bounce_rate: Option<f64>,
    min_sent: Option<u32>,
}

/// Deliverability thresholds over the last [`DeliverabilityAlert::DAYS`] days, per channel:
/// rates in basis points (1/100 of a percent: 30 = 0.3 %), checked once a channel sent at
/// least `min_sent` messages in the window (1 complaint among 3 messages alerts nobody).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverabilityAlert {
    /// Spam complaints per sent message (default 30 = 0.3 %, the Gmail and Yahoo bulk-sender
    /// limit).
    pub complaint_bp: u32,
    /// Hard bounces (email) and dead numbers (SMS) per sent message (default 200 = 2 %).
    pub hard_bounce_bp: u32,
    /// Least messages sent on a channel in the window before its rates are judged.
    pub min_sent: u32,
}

impl DeliverabilityAlert {
    /// The window the alert looks at.
    pub const DAYS: u32 = 7;
}

impl Default for DeliverabilityAlert {
    fn default() -> Self {
        DeliverabilityAlert {
            complaint_bp: 30,
            hard_bounce_bp: 200,
            min_sent: 100,
        }
    }
}

/// A rate in percent (`0.3`) as basis points, when it is one (0 < rate ≤ 100).
fn basis_points(pct: f64) -> Option<u32> {
    (pct.is_finite() && pct > 0.0 && pct <= 100.0).then(|| (pct * 100.0).round().max(1.0) as u32)
}

fn compile_alert(
    path: &Path,
    spec: Option<&Spanned<AlertSpec>>,
    diags: &mut Diagnostics,
) -> DeliverabilityAlert {
    let mut a = DeliverabilityAlert::default();
    let Some(s) = spec else {
        return a;
    };
    let mut rate = |v: Option<f64>, name: &str, into: &mut u32| {
        let Some(v) = v else { return };
        match basis_points(v) {
            Some(bp) => *into = bp,
            None => diags.push(
                Diagnostic::at(
                    path,
                    &s.referenced,
                    format!("invalid bounces.alert.{name} `{v}`"),
                )
                .with_hint("a percentage above 0 and at most 100, e.g. 0.3 for 0.3 %"),
            ),
        }
    };
    rate(
        s.value.complaint_rate,
        "complaint_rate",
        &mut a.complaint_bp,
    );
    rate(
        s.value.hard_bounce_rate,
        "hard_bounce_rate",
        &mut a.hard_bounce_bp,
    );
    if let Some(n) = s.value.min_sent {
        a.min_sent = n.max(1);
    }
    a
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsReceiptsSpec {
    key_env: Option<String>,
}

/// The generic SMS gateway's receipt callback (`/sms/receipt/<token>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsReceipts {
    /// Its bearer key, from `key_env` (default `RITUALIST_SMS_RECEIPT_KEY`); `None`: the
    /// signed token in the URL is the only proof.
    pub key: Option<Secret>,
}

impl SmsReceipts {
    fn from_spec(spec: Option<&SmsReceiptsSpec>) -> SmsReceipts {
        let var = spec
            .and_then(|s| s.key_env.as_deref())
            .unwrap_or("RITUALIST_SMS_RECEIPT_KEY");
        SmsReceipts {
            key: Secret::from_env(var),
        }
    }
}

/// `local@domain` with an ASCII local part free of `+` (the VERP separator) and a domain.
fn split_return_path(addr: &str) -> Option<(String, String)> {
    let (local, domain) = addr.trim().rsplit_once('@')?;
    let ok_local = !local.is_empty()
        && local.len() <= 40
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let ok_domain = crate::domain::Email::parse(&format!("x@{domain}")).is_ok();
    (ok_local && ok_domain).then(|| (local.to_string(), domain.to_ascii_lowercase()))
}

pub use webhooks::{MailgunHook, PostmarkHook, SendgridHook, SesHook, WebhooksConfig};

/// `bounces.webhooks`: which providers' webhooks are on, and their keys (secrets from the
/// environment or a file, never YAML).
mod webhooks {
    use serde::Deserialize;
    use serde_saphyr::Spanned;
    use std::path::Path;

    use super::super::diagnostic::{Diagnostic, Diagnostics};
    use super::super::paths::from_config_dir;
    use super::super::secret::{Secret, SecretSource, read_secret};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(in crate::config) struct WebhooksSpec {
        ses: Option<Spanned<SesSpec>>,
        postmark: Option<Spanned<PostmarkSpec>>,
        sendgrid: Option<Spanned<SendgridSpec>>,
        mailgun: Option<Spanned<MailgunSpec>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SesSpec {
        topic_arns: Vec<String>,
        certificate_file: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PostmarkSpec {
        user: String,
        password_env: Option<String>,
        password_file: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SendgridSpec {
        public_key: Option<String>,
        public_key_env: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MailgunSpec {
        signing_key_env: Option<String>,
        signing_key_file: Option<String>,
    }

    /// The webhooks that are on; a provider left out answers 404.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct WebhooksConfig {
        pub ses: Option<SesHook>,
        pub postmark: Option<PostmarkHook>,
        pub sendgrid: Option<SendgridHook>,
        pub mailgun: Option<MailgunHook>,
    }

    /// Amazon SES through SNS.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SesHook {
        /// The topics whose messages are taken; any other is refused.
        pub topic_arns: Vec<String>,
        /// A signing certificate (PEM) trusted instead of fetching `SigningCertURL`.
        pub certificate_pem: Option<Vec<u8>>,
    }

    /// Postmark: the HTTP Basic credentials of the webhook URL.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PostmarkHook {
        pub user: String,
        pub password: Secret,
    }

    /// SendGrid: the Signed Event Webhook's verification key (base64 DER).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SendgridHook {
        pub public_key: String,
    }

    /// Mailgun: the HTTP webhook signing key.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MailgunHook {
        pub signing_key: Secret,
    }

    pub(super) fn compile(
        path: &Path,
        spec: &WebhooksSpec,
        diags: &mut Diagnostics,
    ) -> WebhooksConfig {
        WebhooksConfig {
            ses: spec.ses.as_ref().and_then(|s| ses(path, s, diags)),
            postmark: spec.postmark.as_ref().map(|p| PostmarkHook {
                user: p.value.user.clone(),
                password: read_secret(
                    path,
                    SecretSource {
                        env: p.value.password_env.as_deref(),
                        file: p.value.password_file.as_deref(),
                        default_var: "RITUALIST_POSTMARK_WEBHOOK_PASSWORD",
                        file_key: "password_file",
                        what: "the Postmark webhook password",
                        at: Some(&p.referenced),
                    },
                    diags,
                )
                .unwrap_or_default(),
            }),
            sendgrid: spec
                .sendgrid
                .as_ref()
                .and_then(|s| sendgrid(path, s, diags)),
            mailgun: spec.mailgun.as_ref().map(|m| MailgunHook {
                signing_key: read_secret(
                    path,
                    SecretSource {
                        env: m.value.signing_key_env.as_deref(),
                        file: m.value.signing_key_file.as_deref(),
                        default_var: "RITUALIST_MAILGUN_SIGNING_KEY",
                        file_key: "signing_key_file",
                        what: "the Mailgun webhook signing key",
                        at: Some(&m.referenced),
                    },
                    diags,
                )
                .unwrap_or_default(),
            }),
        }
    }

    fn ses(path: &Path, s: &Spanned<SesSpec>, diags: &mut Diagnostics) -> Option<SesHook> {
        let bad_arn = s.value.topic_arns.iter().find(|a| {
            let parts: Vec<&str> = a.split(':').collect();
            parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns"
        });
        if s.value.topic_arns.is_empty() || bad_arn.is_some() {
            diags.push(
                Diagnostic::at(
                    path,
                    &s.referenced,
                    match bad_arn {
                        Some(a) => format!("invalid SNS topic ARN `{a}` in bounces.webhooks.ses"),
                        None => "bounces.webhooks.ses needs topic_arns".to_string(),
                    },
                )
                .with_hint("the ARNs of the SNS topics SES publishes to, e.g. [arn:aws:sns:eu-west-1:123456789012:ses-feedback]"),
            );
            return None;
        }
        let mut certificate_pem = None;
        if let Some(f) = &s.value.certificate_file {
            let p = from_config_dir(path, f);
            let pem = std::fs::read(&p).ok();
            match pem.as_deref().map(crate::feedback_hooks::sns::signing_key) {
                Some(Ok(_)) => certificate_pem = pem,
                Some(Err(e)) => diags.push(
                    Diagnostic::at(
                        path,
                        &s.referenced,
                        format!(
                            "bounces.webhooks.ses.certificate_file `{}`: {e}",
                            p.display()
                        ),
                    )
                    .with_hint(
                        "a PEM certificate with an RSA key; leave it out to fetch SNS's own",
                    ),
                ),
                None => diags.push(
                    Diagnostic::at(
                        path,
                        &s.referenced,
                        format!(
                            "cannot read bounces.webhooks.ses.certificate_file `{}`",
                            p.display()
                        ),
                    )
                    .with_hint("check the path (relative to this file's folder)"),
                ),
            }
        }
        Some(SesHook {
            topic_arns: s.value.topic_arns.clone(),
            certificate_pem,
        })
    }

    fn sendgrid(
        path: &Path,
        s: &Spanned<SendgridSpec>,
        diags: &mut Diagnostics,
    ) -> Option<SendgridHook> {
        let key = match &s.value.public_key {
            Some(k) => k.clone(),
            None => read_secret(
                path,
                SecretSource {
                    env: s.value.public_key_env.as_deref(),
                    file: None,
                    default_var: "RITUALIST_SENDGRID_WEBHOOK_KEY",
                    file_key: "public_key",
                    what: "the SendGrid webhook verification key",
                    at: Some(&s.referenced),
                },
                diags,
            )?
            .expose()
            .to_string(),
        };
        if let Err(e) = crate::feedback_hooks::sendgrid::verification_key(&key) {
            diags.push(
                Diagnostic::at(path, &s.referenced, format!("bounces.webhooks.sendgrid: {e}"))
                    .with_hint("copy the verification key SendGrid shows under Mail Settings → Signed Event Webhook"),
            );
            return None;
        }
        Some(SendgridHook { public_key: key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_is_split_and_checked() {
        assert_eq!(
            split_return_path("bounces@Shop.Example"),
            Some(("bounces".into(), "shop.example".into()))
        );
        assert_eq!(split_return_path("bounces+x@shop.example"), None);
        assert_eq!(split_return_path("@shop.example"), None);
        assert_eq!(split_return_path("bounces"), None);
    }

    const GOOD: &str = "shop:\n  name: Test\n  from_email: hello@example.com\ndefaults:\n  time_zone: Europe/Bucharest\n  locale: ro\n";
    /// The P-256 key of SendGrid's own library tests.
    const SENDGRID_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";

    fn load(webhooks: &str) -> Result<crate::config::Config, Diagnostics> {
        let text = format!("{GOOD}bounces:\n  webhooks:\n{webhooks}");
        crate::config::Config::from_str(Path::new("/etc/r/ritualist.yaml"), &text)
    }

    #[test]
    fn webhooks_are_off_unless_configured_and_take_their_keys_from_the_environment() {
        let c = crate::config::Config::from_str(Path::new("/etc/r/ritualist.yaml"), GOOD).unwrap();
        assert_eq!(c.bounces.webhooks, WebhooksConfig::default());
        // PATH is set in every test environment: it stands in for the secret variables.
        let c = load(&format!(
            "    ses:\n      topic_arns: [\"arn:aws:sns:eu-west-1:123456789012:ses-feedback\"]\n\
                 \x20   postmark:\n      user: hook\n      password_env: PATH\n\
                 \x20   sendgrid:\n      public_key: {SENDGRID_KEY}\n\
                 \x20   mailgun:\n      signing_key_env: PATH\n"
        ))
        .unwrap_or_else(|d| panic!("{d}"));
        let w = &c.bounces.webhooks;
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            w.ses.as_ref().unwrap().topic_arns,
            vec!["arn:aws:sns:eu-west-1:123456789012:ses-feedback".to_string()]
        );
        assert_eq!(w.ses.as_ref().unwrap().certificate_pem, None);
        assert_eq!(w.postmark.as_ref().unwrap().user, "hook");
        assert_eq!(w.postmark.as_ref().unwrap().password.expose(), path);
        assert_eq!(w.sendgrid.as_ref().unwrap().public_key, SENDGRID_KEY);
        assert_eq!(w.mailgun.as_ref().unwrap().signing_key.expose(), path);
    }

    #[test]
    fn bad_webhook_settings_are_reported_with_their_line_and_a_hint() {
        for (yaml, says) in [
            ("    ses:\n      topic_arns: []\n", "needs topic_arns"),
            (
                "    ses:\n      topic_arns: [\"arn:aws:sqs:eu-west-1:1:q\"]\n",
                "invalid SNS topic ARN",
            ),
            (
                "    ses:\n      topic_arns: [\"arn:aws:sns:eu-west-1:1:t\"]\n      certificate_file: /nonexistent/sns.pem\n",
                "cannot read",
            ),
            (
                "    sendgrid:\n      public_key: AAAA\n",
                "not a public key",
            ),
            (
                "    mailgun:\n      signing_key_env: RITUALIST_TEST_UNSET_0F3A\n",
                "RITUALIST_TEST_UNSET_0F3A",
            ),
            (
                "    postmark:\n      user: hook\n      password_env: RITUALIST_TEST_UNSET_0F3A\n",
                "Postmark webhook password",
            ),
            ("    mailchimp: {}\n", "mailchimp"),
        ] {
            let d = load(yaml).unwrap_err();
            let text = d.to_string();
            assert!(text.contains(says), "{yaml}: {text}");
            assert!(d.0.iter().all(|e| e.line >= 9), "{yaml}: {text}");
        }
    }

    fn load_bounces(bounces: &str) -> Result<crate::config::Config, Diagnostics> {
        crate::config::Config::from_str(
            Path::new("c.yaml"),
            &format!("shop:\n  name: Test\n  from_email: hello@example.com\nbounces:\n{bounces}"),
        )
    }

    #[test]
    fn the_listener_is_lmtp_unless_told_and_needs_a_return_path() {
        let rp = "  return_path: bounces@shop.example\n";
        let c = load_bounces(&format!("{rp}  listen: \"127.0.0.1:2526\"\n")).unwrap();
        assert_eq!(
            c.bounces.listen,
            Some(InboundListen {
                addr: "127.0.0.1:2526".parse().unwrap(),
                protocol: InboundProtocol::Lmtp
            })
        );
        let c = load_bounces(&format!("{rp}  listen: \"[::1]:25\"\n  protocol: SMTP\n")).unwrap();
        assert_eq!(c.bounces.listen.unwrap().protocol, InboundProtocol::Smtp);
        assert_eq!(load_bounces(rp).unwrap().bounces.listen, None);

        for (yaml, says, line) in [
            (
                format!("{rp}  listen: \"127.0.0.1:2526\"\n  protocol: pop3\n"),
                "unknown bounces.protocol `pop3`",
                7,
            ),
            (
                format!("{rp}  protocol: lmtp\n"),
                "without bounces.listen",
                6,
            ),
            (
                format!("{rp}  listen: localhost\n"),
                "invalid bounces.listen `localhost`",
                6,
            ),
            (
                "  listen: \"127.0.0.1:2526\"\n".to_string(),
                "bounces.listen without bounces.return_path",
                5,
            ),
        ] {
            let d = load_bounces(&yaml).unwrap_err();
            let first = d.0.first().unwrap();
            assert!(first.to_string().contains(says), "{yaml}: {d}");
            assert_eq!(first.line, line, "{yaml}: {d}");
            assert!(first.hint.is_some(), "{yaml}: {d}");
        }
    }

    #[test]
    fn alert_rates_are_percentages_in_basis_points() {
        assert_eq!(basis_points(0.3), Some(30));
        assert_eq!(basis_points(2.0), Some(200));
        assert_eq!(basis_points(100.0), Some(10_000));
        assert_eq!(basis_points(0.001), Some(1));
        assert_eq!(basis_points(0.0), None);
        assert_eq!(basis_points(-1.0), None);
        assert_eq!(basis_points(150.0), None);
        assert_eq!(basis_points(f64::NAN), None);
    }
}
