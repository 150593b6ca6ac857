//! `ritualist doctor`: opens each configured connection once — the database, the SMTP relay
//! (TCP, TLS, EHLO, AUTH; no MAIL), each SMS gateway (TCP, TLS, `HEAD /`) — and reports each with the same actionable errors as the
//! daemon, sending nothing.

use crate::channel::SmtpPool;
use crate::config::{SmsProvider, SmtpConfig};
use crate::store::Store;

/// One connection tried: what, and `Ok(detail)` or the error.
#[derive(Debug)]
pub struct Probe {
    pub what: String,
    pub result: Result<String, String>,
}

/// Tries the database at `database_url`, the SMTP relay when configured, and each SMS gateway.
pub async fn doctor(
    database_url: &str,
    smtp: Option<&SmtpConfig>,
    sms: &[SmsProvider],
) -> Vec<Probe> {
    crate::channel::init_tls();
    let mut out = vec![Probe {
        what: format!("database {}", redact(database_url)),
        result: Store::try_connect(database_url)
            .await
            .map(|()| "reachable".to_string())
            .map_err(|e| e.to_string()),
    }];
    if let Some(cfg) = smtp {
        let tls = match cfg.security {
            crate::config::SmtpSecurity::Plain => "no TLS (security: plain)",
            _ if cfg.accept_invalid_certs => "TLS NOT verified (accept_invalid_certs)",
            _ => "TLS verified",
        };
        let auth = if cfg.username.is_some() {
            ", authenticated"
        } else {
            ""
        };
        let pool = SmtpPool::new(cfg.clone());
        out.push(Probe {
            what: format!("SMTP relay {}:{}", cfg.host, cfg.port),
            result: pool
                .probe()
                .await
                .map(|cert| match cert {
                    Some(cert) if tls == "TLS verified" => {
                        format!("reachable, TLS verified ({cert}){auth}")
                    }
                    _ => format!("reachable, {tls}{auth}"),
                })
                .map_err(|e| e.to_string()),
        });
    }
    for p in sms {
        let (url, trust, timeout) = match p {
            SmsProvider::Kannel(k) => (k.url.clone(), Some(&k.tls), k.timeout_secs),
            SmsProvider::Http(h) => (h.url.clone(), Some(&h.tls), h.timeout_secs),
            SmsProvider::Twilio(t) => (t.base_url.clone(), None, t.timeout_secs),
        };
        out.push(Probe {
            what: format!("SMS gateway {}", p.name()),
            result: crate::channel::probe_gateway(p.name(), &url, trust, timeout)
                .await
                .map_err(|e| e.to_string()),
        });
    }
    out
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let (auth, host) = rest.split_once('@').unwrap_or(("", rest));
            let user = auth.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        _ => url.to_string(),
    }
}
