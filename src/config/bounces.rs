//! The `bounces:` section of ritualist.yaml: what ritualist does with the reports mail systems
//! and gateways send after a message left (docs/delivery-guarantee.md §6).
//!
//! ```yaml
//! bounces:
//!   return_path: bounces@shop.example   # envelope sender: bounces+<signed token>@shop.example
//!   soft_bounces: { limit: 3, days: 30 } # 3 soft bounces within 30 days suppress the address
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::Path;

use super::diagnostic::{Diagnostic, Diagnostics};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BouncesSpec {
    return_path: Option<Spanned<String>>,
    soft_bounces: Option<Spanned<SoftSpec>>,
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
}

impl Default for BouncesConfig {
    fn default() -> Self {
        BouncesConfig {
            return_path: None,
            soft_bounces: SoftBouncePolicy { limit: 3, days: 30 },
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
    cfg
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
}
