//! The Twilio provider (`twilio:`).

use std::path::Path;

use super::checks::{check_url, provider_name};
use super::spec::TwilioSpec;
use super::types::{TwilioConfig, TwilioSender};
use crate::config::diagnostic::{Diagnostic, Diagnostics};
use crate::config::secret::{SecretSource, read_secret};

/// `AC`/`MG` followed by 32 hexadecimal digits.
fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].chars().all(|c| c.is_ascii_hexdigit())
}

pub(super) fn twilio_config(path: &Path, t: &TwilioSpec, diags: &mut Diagnostics) -> TwilioConfig {
    let sid = &t.account_sid;
    if !is_sid(&sid.value, "AC") {
        diags.push(
            Diagnostic::at(
                path,
                &sid.referenced,
                format!("invalid Twilio account_sid `{}`", sid.value),
            )
            .with_hint(
                "the Account SID from the Twilio console: `AC` followed by 32 hexadecimal digits",
            ),
        );
    }
    let sender = match (&t.from, &t.messaging_service_sid) {
        (Some(f), None) => {
            if f.value.trim().is_empty() {
                diags.push(
                    Diagnostic::at(path, &f.referenced, "twilio `from` is empty").with_hint(
                        "a Twilio number in E.164 (\"+15005550006\") or an alphanumeric sender id",
                    ),
                );
            }
            TwilioSender::From(f.value.clone())
        }
        (None, Some(m)) => {
            if !is_sid(&m.value, "MG") {
                diags.push(
                    Diagnostic::at(
                        path,
                        &m.referenced,
                        format!("invalid messaging_service_sid `{}`", m.value),
                    )
                    .with_hint("a Messaging Service SID: `MG` followed by 32 hexadecimal digits"),
                );
            }
            TwilioSender::MessagingService(m.value.clone())
        }
        (Some(_), Some(m)) => {
            diags.push(
                Diagnostic::at(path, &m.referenced, "twilio takes `from` or `messaging_service_sid`, not both")
                    .with_hint("keep `from` for one sender number, or `messaging_service_sid` to let the service pick"),
            );
            TwilioSender::MessagingService(m.value.clone())
        }
        (None, None) => {
            diags.push(
                Diagnostic::at(path, &sid.referenced, "twilio needs a sender: `from` or `messaging_service_sid`")
                    .with_hint("add from: \"+15005550006\" (a number of your account) or messaging_service_sid: MG…"),
            );
            TwilioSender::From(String::new())
        }
    };
    let base_url = match &t.base_url {
        Some(u) => {
            check_url(path, u, diags);
            u.value.trim_end_matches('/').to_string()
        }
        None => "https://api.twilio.com".to_string(),
    };
    let auth_token = read_secret(
        path,
        SecretSource {
            env: t.auth_token_env.as_deref(),
            file: t.auth_token_file.as_deref(),
            default_var: "RITUALIST_TWILIO_AUTH_TOKEN",
            file_key: "auth_token_file",
            what: "the Twilio auth token",
            at: Some(&sid.referenced),
        },
        diags,
    )
    .unwrap_or_default();
    TwilioConfig {
        name: provider_name(path, t.name.as_ref(), "twilio", diags),
        base_url,
        account_sid: sid.value.clone(),
        auth_token,
        sender,
        timeout_secs: t.timeout_secs.unwrap_or(15).max(1),
        rate: crate::config::rate::rate_limit(path, t.rate.as_ref(), diags),
    }
}
