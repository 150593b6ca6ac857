//! The Kannel provider (`kannel:`).

use std::path::Path;

use super::checks::provider_name;
use super::spec::KannelSpec;
use super::types::KannelConfig;
use crate::config::diagnostic::Diagnostics;
use crate::config::secret::{SecretSource, read_secret};

pub(super) fn kannel_config(path: &Path, k: &KannelSpec, diags: &mut Diagnostics) -> KannelConfig {
    let password = read_secret(
        path,
        SecretSource {
            env: k.password_env.as_deref(),
            file: k.password_file.as_deref(),
            default_var: "RITUALIST_KANNEL_PASSWORD",
            file_key: "password_file",
            what: "the Kannel sendsms password",
            at: Some(&k.url.referenced),
        },
        diags,
    )
    .unwrap_or_default();
    KannelConfig {
        name: provider_name(path, k.name.as_ref(), "kannel", diags),
        url: k.url.value.clone(),
        username: k.username.clone(),
        password,
        from: k.from.clone(),
        timeout_secs: k.timeout_secs.unwrap_or(15).max(1),
        rate: crate::config::rate::rate_limit(path, k.rate.as_ref(), diags),
        tls: crate::config::tls::tls_trust(
            path,
            "sms.kannel",
            crate::config::tls::TlsKeys {
                ca_file: k.ca_file.as_deref(),
                ca_only: k.ca_only,
                client_cert: k.client_cert.as_deref(),
                client_key: k.client_key.as_deref(),
                accept_invalid_certs: k.accept_invalid_certs,
            },
            diags,
        ),
    }
}
