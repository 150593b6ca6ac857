//! Templates: the only home of `handlebars`.
//!
//! Layout on disk: `templates/<folder>/<locale>/{subject.hbs, email.html.hbs, email.txt.hbs,
//! sms.hbs}` per ritual template folder and locale, and `templates/partials/*.hbs` shared by
//! all (brand header, footer, …). Two registries are compiled once at load: one escapes HTML
//! (for `email.html.hbs`), one does not (subject, text and SMS: the default escaper would turn
//! `=` into `&#x3D;` in a plain-text link). Strict mode is on in both; [`lint`] walks every
//! branch of every template so a typo in an `{{else}}` is caught before anything is sent.
//! The helpers marketers use (dates, plurals, money, ordinals) are in `helpers`; the text part
//! of an email without `email.txt.hbs` comes from [`html_to_text`].
//! `email.mjml.hbs` may stand in for `email.html.hbs`: `mjml` compiles it to an HTML
//! template once, at load.

mod helpers;
pub mod lint;
mod mjml;
mod sms;
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde_json::Value;

use crate::config::{Diagnostic, Diagnostics};
use crate::domain::{Channel, Locale};
pub use sms::{SmsEncoding, SmsLength, sms_length};
pub use text::html_to_text;

/// The parts a template folder may hold for one locale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Subject,
    Html,
    Text,
    Sms,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Subject, Part::Html, Part::Text, Part::Sms];
    pub fn file_name(self) -> &'static str {
        match self {
            Part::Subject => "subject.hbs",
            Part::Html => "email.html.hbs",
            Part::Text => "email.txt.hbs",
            Part::Sms => "sms.hbs",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "template folder `{folder}` has no {part} template for locale `{locale}` or its fallbacks"
    )]
    Missing {
        folder: String,
        part: &'static str,
        locale: String,
    },
    #[error("rendering {file}: {message}")]
    Render { file: PathBuf, message: String },
}

/// A rendered email, before MIME assembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub locale: String,
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// A rendered SMS with its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSms {
    pub locale: String,
    pub text: String,
    pub length: SmsLength,
}

/// Compiled templates. Built once at start (and on reload), shared by every render.
pub struct Templates {
    html: Handlebars<'static>,
    plain: Handlebars<'static>,
    /// (folder, locale) → parts present, with their files.
    sets: BTreeMap<(String, String), BTreeMap<Part, PathBuf>>,
    default_locale: Locale,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("sets", &self.sets.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn registry(escape: bool) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.set_prevent_indent(true);
    if !escape {
        h.register_escape_fn(handlebars::no_escape);
    }
    helpers::register(&mut h);
    h
}

/// Helper names templates may use besides the built-ins.
pub fn helper_names() -> BTreeSet<String> {
    helpers::NAMES.into_iter().map(String::from).collect()
}

fn template_name(folder: &str, locale: &str, part: Part) -> String {
    format!("{folder}/{locale}/{}", part.file_name())
}

/// `partials/*.hbs` by name (the file's stem), with their files and sources.
fn read_partials(pdir: &Path, diags: &mut Diagnostics) -> BTreeMap<String, (PathBuf, String)> {
    let mut partials = BTreeMap::new();
    if !pdir.is_dir() {
        return partials;
    }
    for path in sorted_entries(pdir) {
        if path.extension().and_then(|e| e.to_str()) != Some("hbs") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        match std::fs::read_to_string(&path) {
            Ok(src) => {
                partials.insert(name, (path, src));
            }
            Err(e) => diags.push(Diagnostic::error(&path, 0, 0, format!("cannot read: {e}"))),
        }
    }
    partials
}

/// The file of `part` in a locale folder, and whether it is MJML: the HTML part may be
/// `email.mjml.hbs` instead of `email.html.hbs` (both at once is an error).
fn part_file(loc_path: &Path, part: Part, diags: &mut Diagnostics) -> (PathBuf, bool) {
    let path = loc_path.join(part.file_name());
    if part != Part::Html {
        return (path, false);
    }
    let mjml_path = loc_path.join(mjml::FILE_NAME);
    match (path.is_file(), mjml_path.is_file()) {
        (true, true) => {
            diags.push(
                Diagnostic::error(
                    &mjml_path,
                    0,
                    0,
                    format!(
                        "both {} and {} are here; only one can be the HTML part",
                        part.file_name(),
                        mjml::FILE_NAME
                    ),
                )
                .with_hint("delete the one you no longer edit"),
            );
            (path, false)
        }
        (false, true) => (mjml_path, true),
        _ => (path, false),
    }
}

impl Templates {
    /// Loads and compiles every template under `dir`, linting each against `vocabulary`
    /// (the dotted variable paths a message context provides). Every problem is collected.
    pub fn load(
        dir: &Path,
        default_locale: &Locale,
        vocabulary: &BTreeSet<String>,
    ) -> Result<Templates, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut templates = Templates {
            html: registry(true),
            plain: registry(false),
            sets: BTreeMap::new(),
            default_locale: default_locale.clone(),
        };

        if !dir.is_dir() {
            return Err(Diagnostics(vec![
                Diagnostic::error(dir, 0, 0, "the templates folder does not exist").with_hint(
                    "set `templates:` in ritualist.yaml to the folder holding your templates",
                ),
            ]));
        }

        // Partials first: their names make up the lint vocabulary.
        let pdir = dir.join("partials");
        let partials = read_partials(&pdir, &mut diags);
        let vocab = lint::Vocabulary {
            variables: vocabulary.clone(),
            helpers: helper_names(),
            partials: partials.keys().cloned().collect(),
        };
        check_partial_cycles(&partials, &mut diags);
        templates.register_partials(&partials, &vocab, &mut diags);

        for folder_path in sorted_entries(dir) {
            if !folder_path.is_dir() || folder_path == pdir {
                continue;
            }
            templates.load_folder(&folder_path, &vocab, &mut diags);
        }
        if diags.has_errors() {
            return Err(diags);
        }
        Ok(templates)
    }

    /// Lints each partial and registers it in both registries.
    fn register_partials(
        &mut self,
        partials: &BTreeMap<String, (PathBuf, String)>,
        vocab: &lint::Vocabulary,
        diags: &mut Diagnostics,
    ) {
        for (name, (path, src)) in partials {
            let syntax = lint_into(path, src, vocab, diags);
            for reg in [&mut self.html, &mut self.plain] {
                if let Err(e) = reg.register_partial(name, src.as_str())
                    && !syntax
                {
                    diags.push(template_error(path, &e));
                    break;
                }
            }
        }
    }

    /// One template folder: each locale folder in it (whose name must be a locale), each part.
    fn load_folder(
        &mut self,
        folder_path: &Path,
        vocab: &lint::Vocabulary,
        diags: &mut Diagnostics,
    ) {
        let folder = folder_path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        for loc_path in sorted_entries(folder_path) {
            if !loc_path.is_dir() {
                continue;
            }
            let locale = loc_path
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            if Locale::parse(&locale)
                .map(|l| l.as_str() != locale)
                .unwrap_or(true)
            {
                diags.push(
                    Diagnostic::error(
                        &loc_path,
                        0,
                        0,
                        format!("`{locale}` is not a locale folder name"),
                    )
                    .with_hint("name locale folders like `en`, `ru`, `ro`, `ro-MD`"),
                );
                continue;
            }
            for part in Part::ALL {
                self.load_part((&folder, &locale), &loc_path, part, vocab, diags);
            }
        }
    }

    /// One part of a locale folder, if present: read, linted, compiled (MJML) and registered.
    fn load_part(
        &mut self,
        (folder, locale): (&str, &str),
        loc_path: &Path,
        part: Part,
        vocab: &lint::Vocabulary,
        diags: &mut Diagnostics,
    ) {
        let (path, is_mjml) = part_file(loc_path, part, diags);
        if !path.is_file() {
            return;
        }
        let src = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                diags.push(Diagnostic::error(&path, 0, 0, format!("cannot read: {e}")));
                return;
            }
        };
        let syntax = lint_into(&path, &src, vocab, diags);
        let src = if is_mjml {
            if syntax {
                return;
            }
            // Compiled once here; every message is then rendered by Handlebars alone.
            match mjml::compile(&path, &src) {
                Ok(html) => html,
                Err(found) => {
                    found.into_iter().for_each(|d| diags.push(d));
                    return;
                }
            }
        } else {
            src
        };
        let reg = if part == Part::Html {
            &mut self.html
        } else {
            &mut self.plain
        };
        match reg.register_template_string(&template_name(folder, locale, part), &src) {
            Ok(()) => {
                self.sets
                    .entry((folder.to_string(), locale.to_string()))
                    .or_default()
                    .insert(part, path);
            }
            Err(e) if is_mjml => diags.push(Diagnostic::error(
                &path,
                0,
                0,
                format!("after MJML compilation: {}", e.reason()),
            )),
            Err(e) if !syntax => diags.push(template_error(&path, &e)),
            Err(_) => {}
        }
    }

    /// The locales that have at least one part in `folder`.
    pub fn locales(&self, folder: &str) -> Vec<String> {
        self.sets
            .keys()
            .filter(|(f, _)| f == folder)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// The file of a part, if present for exactly this folder and locale.
    pub fn file(&self, folder: &str, locale: &str, part: Part) -> Option<&Path> {
        self.sets
            .get(&(folder.to_string(), locale.to_string()))?
            .get(&part)
            .map(PathBuf::as_path)
    }

    /// The locale whose templates serve `wanted`: its fallback chain, then the default locale's,
    /// then `en`; the first that has `part`.
    pub fn resolve_locale(&self, folder: &str, wanted: &Locale, part: Part) -> Option<String> {
        let mut chain = wanted.fallback_chain();
        chain.extend(self.default_locale.fallback_chain());
        chain.push("en".into());
        chain
            .into_iter()
            .find(|l| self.file(folder, l, part).is_some())
    }

    /// Which channels of `channels` lack the templates they need in the default locale.
    pub fn missing_for(&self, folder: &str, channels: &[Channel]) -> Vec<(Channel, Vec<Part>)> {
        let mut out = Vec::new();
        for ch in channels {
            let needed: &[Part] = match ch {
                Channel::Email => &[Part::Subject, Part::Html],
                Channel::Sms => &[Part::Sms],
            };
            let missing: Vec<Part> = needed
                .iter()
                .copied()
                .filter(|p| {
                    self.resolve_locale(folder, &self.default_locale, *p)
                        .is_none()
                })
                .collect();
            if !missing.is_empty() {
                out.push((*ch, missing));
            }
        }
        out
    }

    /// Renders one part with the plain `Handlebars::render` API (the context is converted on
    /// every call): the baseline of the render benchmark.
    pub fn render_raw(
        &self,
        folder: &str,
        locale: &str,
        part: Part,
        ctx: &Value,
    ) -> Result<String, RenderError> {
        self.registry_for(part)
            .render(&template_name(folder, locale, part), ctx)
            .map_err(|e| self.part_error(folder, locale, part, e))
    }

    fn registry_for(&self, part: Part) -> &Handlebars<'static> {
        if part == Part::Html {
            &self.html
        } else {
            &self.plain
        }
    }

    fn part_error(
        &self,
        folder: &str,
        locale: &str,
        part: Part,
        e: handlebars::RenderError,
    ) -> RenderError {
        RenderError::Render {
            file: self
                .file(folder, locale, part)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            message: e.to_string(),
        }
    }

    fn context(ctx: &Value) -> Result<handlebars::Context, RenderError> {
        handlebars::Context::wraps(ctx).map_err(|e| RenderError::Render {
            file: PathBuf::new(),
            message: e.to_string(),
        })
    }

    fn render_part(
        &self,
        folder: &str,
        locale: &str,
        part: Part,
        ctx: &handlebars::Context,
    ) -> Result<String, RenderError> {
        self.registry_for(part)
            .render_with_context(&template_name(folder, locale, part), ctx)
            .map_err(|e| self.part_error(folder, locale, part, e))
    }

    pub fn render_email(
        &self,
        folder: &str,
        wanted: &Locale,
        ctx: &Value,
    ) -> Result<RenderedEmail, RenderError> {
        self.render_email_owned(folder, wanted, ctx.clone())
    }

    /// [`Templates::render_email`] taking the context by value (no copy of the JSON).
    pub fn render_email_owned(
        &self,
        folder: &str,
        wanted: &Locale,
        ctx: Value,
    ) -> Result<RenderedEmail, RenderError> {
        let missing = |part: &'static str| RenderError::Missing {
            folder: folder.to_string(),
            part,
            locale: wanted.to_string(),
        };
        let locale = self
            .resolve_locale(folder, wanted, Part::Html)
            .ok_or_else(|| missing("email.html.hbs"))?;
        let subject_locale = if self.file(folder, &locale, Part::Subject).is_some() {
            locale.clone()
        } else {
            self.resolve_locale(folder, wanted, Part::Subject)
                .ok_or_else(|| missing("subject.hbs"))?
        };
        // `lang`: the language of the templates actually rendered (after the fallback chain),
        // for `<html lang="{{lang}}">` in a shared layout.
        let mut ctx = ctx;
        if let Value::Object(m) = &mut ctx {
            m.insert("lang".into(), Value::String(locale.clone()));
        }
        // One context for the three parts, built from the JSON without copying it.
        let ctx = &handlebars::Context::from(ctx);
        let subject = self.render_part(folder, &subject_locale, Part::Subject, ctx)?;
        // One line, and no control character (an ESC from an imported attribute would
        // reach the header raw): a subject is text on one line.
        let subject = subject
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace(|c: char| c.is_control(), "");
        let html = self.render_part(folder, &locale, Part::Html, ctx)?;
        let text = if self.file(folder, &locale, Part::Text).is_some() {
            self.render_part(folder, &locale, Part::Text, ctx)?
        } else {
            html_to_text(&html)
        };
        Ok(RenderedEmail {
            locale,
            subject,
            html,
            text,
        })
    }

    pub fn render_sms(
        &self,
        folder: &str,
        wanted: &Locale,
        ctx: &Value,
    ) -> Result<RenderedSms, RenderError> {
        let locale = self
            .resolve_locale(folder, wanted, Part::Sms)
            .ok_or_else(|| RenderError::Missing {
                folder: folder.to_string(),
                part: "sms.hbs",
                locale: wanted.to_string(),
            })?;
        let mut ctx = ctx.clone();
        if let Value::Object(m) = &mut ctx {
            m.insert("lang".into(), Value::String(locale.clone()));
        }
        let text = self.render_part(folder, &locale, Part::Sms, &Self::context(&ctx)?)?;
        let text = text.trim().to_string();
        let length = sms_length(&text);
        Ok(RenderedSms {
            locale,
            text,
            length,
        })
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Lints one file into `diags`; `true` when it has a syntax error (already reported, so the
/// registry's own error for the same problem is not repeated).
fn lint_into(path: &Path, src: &str, vocab: &lint::Vocabulary, diags: &mut Diagnostics) -> bool {
    let findings = lint::lint(src, vocab);
    let syntax = findings.iter().any(|f| f.kind == lint::FindingKind::Syntax);
    for f in findings {
        let mut d = Diagnostic::error(path, f.line as u64, f.column as u64, f.message);
        if let Some(h) = f.hint {
            d = d.with_hint(h);
        }
        diags.push(d);
    }
    syntax
}

fn template_error(path: &Path, e: &handlebars::TemplateError) -> Diagnostic {
    let (line, col) = e.pos().unwrap_or((0, 0));
    Diagnostic::error(path, line as u64, col as u64, e.reason().to_string())
        .with_hint("check that every `{{#block}}` has its `{{/block}}` and every `{{` its `}}`")
}

/// A partial that includes itself, directly or through others, would recurse until the stack
/// overflows at render time: refuse the set instead.
fn check_partial_cycles(partials: &BTreeMap<String, (PathBuf, String)>, diags: &mut Diagnostics) {
    let uses: BTreeMap<&str, Vec<String>> = partials
        .iter()
        .map(|(n, (_, src))| (n.as_str(), lint::partials_used(src)))
        .collect();
    for (start, (path, _)) in partials {
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, trail)) = stack.pop() {
            for next in uses.get(node.as_str()).into_iter().flatten() {
                if next == start {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    diags.push(
                        Diagnostic::error(path, 1, 1, format!("partial cycle: {}", t.join(" → ")))
                            .with_hint("a partial must not include itself, directly or through other partials"),
                    );
                    return;
                }
                if seen.insert(next.clone()) {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
}

/// Every dotted path of a JSON object's keys ("customer", "customer.first_name", …): the
/// variables a context provides, for the lint vocabulary.
pub fn flatten_paths(v: &Value) -> BTreeSet<String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
        if let Value::Object(m) = v {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                walk(&p, child, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten() {
        let v = serde_json::json!({"customer": {"first_name": "A"}, "shop": {"name": "S"}});
        let p = flatten_paths(&v);
        assert!(
            p.contains("customer.first_name") && p.contains("customer") && p.contains("shop.name")
        );
    }

    /// A fresh folder under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "ritualist-render-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn write(&self, rel: &str, content: &str) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn context(first_name: &str, locale: &str) -> Value {
        serde_json::json!({
            "customer": {"first_name": first_name, "locale": locale},
            "occasion": {"date": "2027-03-01", "age": 21},
            "shop": {"name": "Floare & Co", "url": "https://floare.md"},
            "links": {"unsubscribe": "https://floare.md/u?t=v1.1.email.bday.ab"},
        })
    }

    fn load(dir: &TempDir) -> Result<Templates, Diagnostics> {
        let vocab = flatten_paths(&context("x", "en"));
        Templates::load(&dir.0, &Locale::parse("en").unwrap(), &vocab)
    }

    const MJML: &str = r#"<mjml>
  <mj-head><mj-title>{{shop.name}}</mj-title></mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text font-size="20px">Happy birthday, {{customer.first_name}}!</mj-text>
      <mj-text>{{#if occasion.age}}{{occasion.age}} {{plural occasion.age "year" "years"}} on {{date occasion.date "long"}}.{{/if}}</mj-text>
      <mj-button href="{{shop.url}}/shop?code=BDAY20">Shop now</mj-button>
      <mj-text>{{> footer}}<a href="{{links.unsubscribe}}">Unsubscribe</a></mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>
"#;

    /// #23: an attribute or a name stored before the door existed may hold an ESC or another
    /// control character; the subject is one line of text whatever the data.
    #[test]
    fn a_subject_carries_no_control_character() {
        let dir = TempDir::new("subject-controls");
        dir.write("bday/en/subject.hbs", "Hi {{customer.first_name}}!");
        dir.write("bday/en/email.html.hbs", "<p>x</p>");
        let t = load(&dir).unwrap_or_else(|d| panic!("{d:?}"));
        let en = Locale::parse("en").unwrap();
        let r = t
            .render_email(
                "bday",
                &en,
                &context("An\u{1b}[31ma\r\nBcc: x@y\u{7}", "en"),
            )
            .unwrap();
        assert_eq!(r.subject, "Hi An[31ma Bcc: x@y!");
    }

    #[test]
    fn an_mjml_template_is_compiled_at_load_and_rendered_by_handlebars() {
        let dir = TempDir::new("mjml");
        dir.write("partials/footer.hbs", "<p>{{shop.name}}</p>");
        dir.write(
            "bday/en/subject.hbs",
            "Happy birthday, {{customer.first_name}}!",
        );
        dir.write("bday/en/email.mjml.hbs", MJML);
        let t = load(&dir).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(
            t.file("bday", "en", Part::Html),
            Some(dir.0.join("bday/en/email.mjml.hbs").as_path())
        );
        let en = Locale::parse("en").unwrap();
        let mail = t
            .render_email("bday", &en, &context("Ana <3", "en"))
            .unwrap();
        assert!(mail.html.starts_with("<!doctype html>"), "{}", mail.html);
        assert!(mail.html.contains("<table"), "MJML layout tables");
        // Escaped by the HTML registry, as any variable.
        assert!(
            mail.html.contains("Happy birthday, Ana &lt;3!"),
            "{}",
            mail.html
        );
        assert!(mail.html.contains("21 years on 1 March."));
        assert!(
            mail.html.contains("<p>Floare &amp; Co</p>"),
            "partial rendered"
        );
        assert!(
            mail.html
                .contains(r#"href="https://floare.md/shop?code=BDAY20""#)
        );
        // No email.txt.hbs: the text part comes from the HTML, links as footnotes.
        assert_eq!(
            mail.text,
            "Happy birthday, Ana <3!\n21 years on 1 March.\n\nShop now [1]\n\nFloare & Co\n\n\
             Unsubscribe [2]\n\n[1] https://floare.md/shop?code=BDAY20\n\
             [2] https://floare.md/u?t=v1.1.email.bday.ab"
        );
    }

    #[test]
    fn mjml_problems_are_diagnostics_on_the_mjml_file() {
        let dir = TempDir::new("mjml-bad");
        dir.write(
            "bday/en/email.mjml.hbs",
            "<mjml><mj-body>\n<mj-section><mj-column>\n<mj-text>{{customer.first_name}} < 3</mj-text>\n</mj-column></mj-section></mj-body></mjml>",
        );
        dir.write("bday/ro/email.mjml.hbs", &MJML.replace("{{> footer}}", ""));
        dir.write("bday/ro/email.html.hbs", "<p>{{customer.first_name}}</p>");
        let d = load(&dir).expect_err("should fail").0;
        let en = dir.0.join("bday/en/email.mjml.hbs");
        let ro = dir.0.join("bday/ro/email.mjml.hbs");
        assert!(
            d.iter()
                .any(|d| d.file == en && d.line == 3 && d.message.starts_with("MJML")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|d| d.file == ro && d.message.contains("only one can be the HTML part")),
            "{d:?}"
        );
    }

    #[test]
    fn helpers_speak_the_language_of_the_template_rendered() {
        let dir = TempDir::new("lang");
        dir.write("bday/ro/sms.hbs", "{{date occasion.date}}: {{occasion.age}} {{plural occasion.age \"an\" \"ani\" \"de ani\"}}");
        dir.write("bday/ru/sms.hbs", "{{date occasion.date \"weekday\"}}");
        let vocab = flatten_paths(&context("x", "en"));
        let t = Templates::load(&dir.0, &Locale::parse("ro").unwrap(), &vocab).unwrap();
        // A German customer gets the default locale's (Romanian) template, in Romanian.
        let de = Locale::parse("de").unwrap();
        let sms = t.render_sms("bday", &de, &context("Ana", "de")).unwrap();
        assert_eq!(sms.text, "1 martie: 21 de ani");
        let ru = Locale::parse("ru").unwrap();
        let mut bad = context("Ana", "ru");
        bad["occasion"]["date"] = "2027-02-30".into();
        let e = t.render_sms("bday", &ru, &bad).unwrap_err().to_string();
        assert!(
            e.contains("bday/ru/sms.hbs") && e.contains("is not a date in the form YYYY-MM-DD"),
            "{e}"
        );
    }

    #[test]
    fn shipped_birthday_templates_name_the_age_with_the_right_plural() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut vocab = flatten_paths(&context("x", "en"));
        // What the other shipped rituals' occasions carry (app::message_context has them all).
        for p in [
            "occasion.years",
            "occasion.holiday",
            "occasion.inactive_days",
            "occasion.step",
            "occasion.order",
            "occasion.order.id",
            "occasion.order.number",
            "occasion.order.amount_minor",
            "occasion.order.currency",
            "survey",
            "survey.links",
            "lang",
        ] {
            vocab.insert(p.to_string());
        }
        let t = Templates::load(&dir, &Locale::parse("en").unwrap(), &vocab)
            .unwrap_or_else(|d| panic!("{d:?}"));
        let cases = [
            ("en", 21, "1 March marks 21 wonderful years."),
            ("en", 1, "1 March marks 1 wonderful year."),
            ("ru", 21, "1 марта — 21 год! Прекрасный возраст."),
            ("ru", 33, "1 марта — 33 года! Прекрасный возраст."),
            ("ru", 37, "1 марта — 37 лет! Прекрасный возраст."),
            ("ro", 19, "1 martie — 19 ani! O vârstă minunată."),
            ("ro", 37, "1 martie — 37 de ani! O vârstă minunată."),
        ];
        for (locale, age, line) in cases {
            let mut ctx = context("Ana", locale);
            ctx["occasion"]["age"] = age.into();
            let mail = t
                .render_email("birthday", &Locale::parse(locale).unwrap(), &ctx)
                .unwrap();
            assert!(
                mail.text.lines().any(|l| l == line),
                "{locale}: {}",
                mail.text
            );
            assert!(
                mail.html.contains(&format!("<p>{line}</p>")),
                "{locale}: {}",
                mail.html
            );
            // Without a known age the sentence is left out.
            ctx["occasion"]["age"] = Value::Null;
            let mail = t
                .render_email("birthday", &Locale::parse(locale).unwrap(), &ctx)
                .unwrap();
            let (age_words, _) = line.split_once(['!', '.']).unwrap();
            assert!(!mail.text.contains(age_words), "{}", mail.text);
        }
    }
}
