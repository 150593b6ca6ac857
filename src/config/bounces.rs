//! The `bounces:` section of ritualist.yaml: what ritualist does with the reports mail systems
//! and gateways send after a message left (docs/delivery-guarantee.md §6).
//!
//! ```yaml
//! bounces:
//!   return_path: bounces@shop.example   # envelope sender: bounces+<signed token>@shop.example
//!   soft_bounces: { limit: 3, days: 30 } # 3 soft bounces within 30 days suppress the address
//!   listen: "127.0.0.1:2526"             # the daemon takes bounce mail here (unset: it does not)
//!   protocol: lmtp                       # lmtp (the default) or smtp
//! ```

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::net::SocketAddr;
use std::path::Path;

use super::diagnostic::{Diagnostic, Diagnostics};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BouncesSpec {
    return_path: Option<Spanned<String>>,
    soft_bounces: Option<Spanned<SoftSpec>>,
    listen: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
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
    /// Where the daemon takes bounce mail over LMTP or SMTP (`bounces.listen`); `None`: it
    /// does not listen.
    pub listen: Option<InboundListen>,
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
            listen: None,
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

    fn load(bounces: &str) -> Result<crate::config::Config, Diagnostics> {
        crate::config::Config::from_str(
            Path::new("c.yaml"),
            &format!("shop:\n  name: Test\n  from_email: hello@example.com\nbounces:\n{bounces}"),
        )
    }

    #[test]
    fn the_listener_is_lmtp_unless_told_and_needs_a_return_path() {
        let rp = "  return_path: bounces@shop.example\n";
        let c = load(&format!("{rp}  listen: \"127.0.0.1:2526\"\n")).unwrap();
        assert_eq!(
            c.bounces.listen,
            Some(InboundListen {
                addr: "127.0.0.1:2526".parse().unwrap(),
                protocol: InboundProtocol::Lmtp
            })
        );
        let c = load(&format!("{rp}  listen: \"[::1]:25\"\n  protocol: SMTP\n")).unwrap();
        assert_eq!(c.bounces.listen.unwrap().protocol, InboundProtocol::Smtp);
        assert_eq!(load(rp).unwrap().bounces.listen, None);

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
            let d = load(&yaml).unwrap_err();
            let first = d.0.first().unwrap();
            assert!(first.to_string().contains(says), "{yaml}: {d}");
            assert_eq!(first.line, line, "{yaml}: {d}");
            assert!(first.hint.is_some(), "{yaml}: {d}");
        }
    }
}
