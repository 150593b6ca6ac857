//! Credentials: [`Secret`] (prints as `***`) and where one comes from (a file named in YAML
//! or an environment variable), with the errors that name both ways to give it.

use std::fmt;
use std::path::Path;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::paths::from_config_dir;

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
        let p = from_config_dir(path, f);
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
