//! The `bounces:` section of ritualist.yaml: what ritualist does with the reports mail systems
//! and gateways send after a message left (docs/delivery-guarantee.md §6).
//!
//! ```yaml
//! bounces:
//!   return_path: bounces@shop.example   # envelope sender: bounces+<signed token>@shop.example
//!   soft_bounces: { limit: 3, days: 30 } # 3 soft bounces within 30 days suppress the address
//!   alert:                               # /healthz `degraded` and an ALERT log line when, over
//!     complaint_rate: 0.3                #   the last 7 days, complaints exceed 0.3 % of sent
//!     hard_bounce_rate: 2                #   or hard bounces (dead numbers) 2 %,
//!     min_sent: 100                      #   once at least 100 were sent on the channel
//!   sms_receipts:
//!     key_env: RITUALIST_SMS_RECEIPT_KEY # bearer key of /sms/receipt/<token> (the default; unset: none)
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::Path;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BouncesSpec {
    return_path: Option<Spanned<String>>,
    soft_bounces: Option<Spanned<SoftSpec>>,
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
    /// When deliverability turns `/healthz` degraded (`bounces.alert`).
    pub alert: DeliverabilityAlert,
    /// The generic SMS gateway's receipt callback (`bounces.sms_receipts`).
    pub sms_receipts: SmsReceipts,
}

impl Default for BouncesConfig {
    fn default() -> Self {
        BouncesConfig {
            return_path: None,
            soft_bounces: SoftBouncePolicy { limit: 3, days: 30 },
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
    cfg.alert = compile_alert(path, spec.alert.as_ref(), diags);
    cfg.sms_receipts = SmsReceipts::from_spec(spec.sms_receipts.as_ref());
    cfg
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
