use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::suggest::did_you_mean;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Information (e.g. an SMS's encoding and segment count): never a finding.
    Note,
}

/// One finding about a file a marketer or operator wrote: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the diagnostic points at (filled by [`Diagnostics::attach_snippets`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: None,
            snippet: None,
        }
    }
    pub fn warning(file: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, line, column, message)
        }
    }
    pub fn note(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Note,
            ..Diagnostic::error(file, 0, 0, message)
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn at(file: &Path, loc: &serde_saphyr::Location, message: impl Into<String>) -> Self {
        Diagnostic::error(file, loc.line(), loc.column(), message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {sev}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        } else {
            write!(f, "{}: {sev}: {}", self.file.display(), self.message)?;
        }
        if let Some(src) = &self.snippet {
            let n = self.line.to_string();
            let pad = " ".repeat(n.len());
            let caret_at = src
                .chars()
                .take(self.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' });
            write!(
                f,
                "\n {pad} |\n {n} | {src}\n {pad} | {}^",
                caret_at.collect::<String>()
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A set of findings; an error when any of them is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Findings only (errors and warnings, not notes).
    pub fn findings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity != Severity::Note)
    }
    /// Reads each file named by a diagnostic once and attaches the line it points at.
    pub fn attach_snippets(&mut self) {
        let mut cache: std::collections::HashMap<PathBuf, Option<String>> = Default::default();
        for d in self
            .0
            .iter_mut()
            .filter(|d| d.line > 0 && d.snippet.is_none())
        {
            let text = cache
                .entry(d.file.clone())
                .or_insert_with(|| std::fs::read_to_string(&d.file).ok());
            if let Some(line) = text
                .as_deref()
                .and_then(|t| t.lines().nth(d.line as usize - 1))
            {
                d.snippet = Some(redact_secret(line.trim_end()));
            }
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Keys that hold secrets: refused in YAML (they belong in the environment).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "auth_token",
    "authorization",
    "private_key",
];

/// The `*.yaml`/`*.yml` files of a definitions folder, sorted by name; an unreadable folder is a
/// diagnostic carrying `hint` (what the folder is for and how to point at it).
pub fn yaml_files(dir: &Path, what: &str, hint: &str) -> Result<Vec<PathBuf>, Diagnostics> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Diagnostics(vec![
            Diagnostic::error(dir, 0, 0, format!("cannot read the {what} folder: {e}"))
                .with_hint(hint),
        ])
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}

/// `password: hunter2` → `password: ***`: a snippet never repeats a secret.
fn redact_secret(line: &str) -> String {
    if let Some((key, _)) = line.split_once(':') {
        let k = key
            .trim()
            .trim_start_matches('-')
            .trim()
            .to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| k.contains(w))
            && !k.ends_with("_env")
            && !k.ends_with("_file")
        {
            return format!("{key}: ***");
        }
    }
    line.to_string()
}

/// Parses one YAML document into `T`, turning every serde-saphyr error into a diagnostic with
/// the file, line, column and, for unknown keys, a "did you mean" hint.
pub fn parse_yaml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, Diagnostic> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<T>(text, options)
        .map_err(|e| yaml_diagnostic(file, text, &e))
}

fn yaml_diagnostic(file: &Path, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let raw = e.without_snippet().to_string();
    // serde-saphyr appends " at line N column M": the location is shown in front instead.
    let message = match raw.find(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw.clone(),
    };
    let mut d = Diagnostic::error(file, line, column, message.clone());
    if let Some((unknown, expected)) = parse_unknown_field(&message) {
        let lower = unknown.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            d = d.with_hint(format!(
                "secrets never go in YAML: set the environment variable named by `{}_env` \
                 (or `<VAR>_FILE` pointing at a file) instead of `{unknown}`",
                unknown
            ));
        } else if let Some(best) = did_you_mean(&unknown, &expected) {
            d = d.with_hint(format!(
                "did you mean `{best}`? valid keys here: {}",
                expected.join(", ")
            ));
        } else if !expected.is_empty() {
            d = d.with_hint(format!("valid keys here: {}", expected.join(", ")));
        }
    } else if message.contains("duplicate") {
        d = d.with_hint("each key may appear once in a mapping; remove or merge the repeated key");
    } else if (message.contains("invalid type") || message.contains("expected"))
        && let Some(snippet) = text.lines().nth(line.saturating_sub(1) as usize)
    {
        d = d.with_hint(format!(
            "check the value on this line: `{}`",
            snippet.trim()
        ));
    }
    d
}

/// Extracts (unknown, expected…) from serde's "unknown field `x`, expected one of `a`, `b`".
fn parse_unknown_field(msg: &str) -> Option<(String, Vec<String>)> {
    let rest = msg
        .split("unknown field `")
        .nth(1)
        .or_else(|| msg.split("unknown variant `").nth(1))?;
    let (unknown, tail) = rest.split_once('`')?;
    let list = tail
        .trim_start_matches(',')
        .trim()
        .trim_start_matches("expected one of")
        .trim_start_matches("expected")
        .trim();
    let expected = if list.starts_with("there are no") {
        Vec::new()
    } else {
        list.split(',')
            .map(|s| s.trim().trim_matches('`').trim_end_matches('.').to_string())
            .filter(|s| !s.is_empty() && !s.contains(' '))
            .collect()
    };
    Some((unknown.to_string(), expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        template: String,
        enabled: Option<bool>,
    }

    #[test]
    fn unknown_key_has_line_and_hint() {
        let d = parse_yaml::<T>(Path::new("r.yaml"), "enabled: true\ntemplat: x\n").unwrap_err();
        assert_eq!(d.line, 2, "{d}");
        assert!(d.message.contains("templat"), "{d}");
        assert!(
            d.hint
                .as_deref()
                .unwrap()
                .contains("did you mean `template`"),
            "{d}"
        );
    }

    #[test]
    fn no_is_not_false() {
        let d = parse_yaml::<T>(Path::new("r.yaml"), "template: x\nenabled: NO\n").unwrap_err();
        assert_eq!(d.line, 2, "{d}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(parse_yaml::<T>(Path::new("r.yaml"), "template: x\ntemplate: y\n").is_err());
    }

    #[test]
    fn snippets_never_show_secrets() {
        assert_eq!(
            redact_secret("      password: hunter2"),
            "      password: ***"
        );
        assert_eq!(
            redact_secret("  password_env: SMTP_PW"),
            "  password_env: SMTP_PW"
        );
        assert_eq!(redact_secret("template: x"), "template: x");
        assert_eq!(
            redact_secret("    Authorization: Bearer abc"),
            "    Authorization: ***"
        );
        assert_eq!(redact_secret("    X-Api-Key: abc"), "    X-Api-Key: ***");
    }

    #[test]
    fn secrets_get_a_specific_hint() {
        let d =
            parse_yaml::<T>(Path::new("r.yaml"), "template: x\npassword: hunter2\n").unwrap_err();
        assert!(d.hint.as_deref().unwrap().contains("environment"), "{d}");
    }
}
