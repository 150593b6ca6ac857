//! Trust settings for outgoing TLS connections (the SMTP relay, SMS gateways): a private CA
//! bundle added to (or replacing) the web PKI roots, an optional client certificate, and the
//! last-resort `accept_invalid_certs`. Paths are resolved next to the configuration file and
//! checked at load time, so a typo fails `check`, not the first send.

use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Diagnostics};

/// How an outgoing TLS connection decides to trust the server (and identifies itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// A PEM bundle of CA certificates trusted in addition to the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the web PKI roots.
    pub ca_only: bool,
    /// A PEM client certificate (chain) and its private key, for relays that ask for one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Verification off entirely (a lab relay). Logged as a warning at every start.
    pub accept_invalid_certs: bool,
}

/// The raw keys of a section, as written.
pub(crate) struct TlsKeys<'a> {
    pub ca_file: Option<&'a str>,
    pub ca_only: Option<bool>,
    pub client_cert: Option<&'a str>,
    pub client_key: Option<&'a str>,
    pub accept_invalid_certs: Option<bool>,
}

fn resolve(config: &Path, f: &str) -> PathBuf {
    let p = Path::new(f);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Checks and resolves the keys of `section` (e.g. `email.smtp`).
pub(crate) fn tls_trust(
    config: &Path,
    section: &str,
    k: TlsKeys<'_>,
    diags: &mut Diagnostics,
) -> TlsTrust {
    let mut file = |key: &str, v: Option<&str>| -> Option<PathBuf> {
        let p = resolve(config, v?);
        if let Err(e) = std::fs::read(&p) {
            diags.push(
                Diagnostic::error(
                    config,
                    0,
                    0,
                    format!("{section}.{key}: cannot read `{}`: {e}", p.display()),
                )
                .with_hint("give a PEM file readable by the ritualist user"),
            );
        }
        Some(p)
    };
    let ca_file = file("ca_file", k.ca_file);
    let client_cert = file("client_cert", k.client_cert);
    let client_key = file("client_key", k.client_key);
    let ca_only = k.ca_only.unwrap_or(false);
    if ca_only && ca_file.is_none() {
        diags.push(
            Diagnostic::error(
                config,
                0,
                0,
                format!("{section}.ca_only: true needs `ca_file`"),
            )
            .with_hint("give the private CA's PEM bundle in `ca_file`"),
        );
    }
    if client_cert.is_some() != client_key.is_some() {
        diags.push(
            Diagnostic::error(
                config,
                0,
                0,
                format!("{section}: `client_cert` and `client_key` go together"),
            )
            .with_hint("give both PEM files, or neither"),
        );
    }
    TlsTrust {
        ca_file,
        ca_only,
        client_cert,
        client_key,
        accept_invalid_certs: k.accept_invalid_certs.unwrap_or(false),
    }
}
