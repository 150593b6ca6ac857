//! MJML sources: the only home of `mrml`.
//!
//! A locale folder may hold `email.mjml.hbs` instead of `email.html.hbs`. Its *template source*
//! is compiled from MJML to HTML once, at load, and the result is registered as the HTML part:
//! messages are rendered by Handlebars alone, never by mrml. This works because mrml passes text
//! through unchanged, so `{{…}}` expressions in `<mj-text>`, `<mj-raw>`, `<mj-button>` content,
//! between components and in free-text attributes (`href`, `src`, `alt`) reach the HTML as
//! written. What mrml interprets is not text, though: an expression in a sizing attribute
//! (`width="{{w}}"`) is dropped. So after compiling, every expression of the source must still
//! be in the output, and the block tags (`{{#if}}`, `{{else}}`, `{{/if}}`, …) in the same
//! order; anything else is reported against the `.mjml.hbs` file.
//!
//! Rendering options: marketers' `<!-- comments -->` are dropped, and no web fonts are linked
//! unless the template declares them with `<mj-font>` (MJML's default links Google Fonts,
//! which would tell Google whenever a customer opens an email). `<mj-include>` is not
//! supported: use Handlebars partials (`{{> footer}}`) inside `<mj-text>` or `<mj-raw>`.

use std::path::Path;

use mrml::prelude::parser::Error as MjmlError;
use mrml::prelude::render::RenderOptions;

use crate::config::Diagnostic;

/// The file name of an MJML source, used instead of `email.html.hbs`.
pub const FILE_NAME: &str = "email.mjml.hbs";

/// Compiles the MJML template source `src` (read from `path`) to an HTML template source.
pub fn compile(path: &Path, src: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = mrml::parse(src).map_err(|e| vec![parse_error(path, src, &e)])?;
    let options = RenderOptions {
        disable_comments: true,
        fonts: Default::default(),
        ..RenderOptions::default()
    };
    let html = parsed.element.render(&options).map_err(|e| {
        vec![Diagnostic::error(
            path,
            0,
            0,
            format!("MJML could not be compiled: {e}"),
        )]
    })?;
    let lost = check_expressions(path, src, &html);
    if lost.is_empty() { Ok(html) } else { Err(lost) }
}

fn parse_error(path: &Path, src: &str, e: &MjmlError) -> Diagnostic {
    let (line, col) = match e {
        MjmlError::UnexpectedElement { position, .. }
        | MjmlError::UnexpectedToken { position, .. }
        | MjmlError::MissingAttribute { position, .. }
        | MjmlError::InvalidAttribute { position, .. }
        | MjmlError::InvalidFormat { position, .. }
        | MjmlError::IncludeLoaderError { position, .. } => line_col(src, position.start),
        MjmlError::ParserError { source, .. } => {
            let p = source.pos();
            (p.row as usize, p.col as usize)
        }
        MjmlError::EndOfStream { .. } | MjmlError::SizeLimit { .. } | MjmlError::NoRootNode => {
            (0, 0)
        }
    };
    let mut message = format!("MJML: {e}");
    if let MjmlError::ParserError { source, .. } = e {
        message = format!("MJML: {source}");
    }
    let hint = match e {
        MjmlError::EndOfStream { .. } => {
            "an element is not closed: check that every <mj-…> has its </mj-…>"
        }
        MjmlError::NoRootNode => "an MJML template starts with <mjml> and holds an <mj-body>",
        MjmlError::IncludeLoaderError { .. } => {
            "<mj-include> is not supported: use a Handlebars partial ({{> name}}) inside <mj-text> or <mj-raw>"
        }
        MjmlError::ParserError { .. } => {
            "MJML is XML: write `<` in text as `&lt;` and close every tag"
        }
        _ => "see https://documentation.mjml.io for the elements and attributes MJML accepts",
    };
    Diagnostic::error(path, line as u64, col as u64, message).with_hint(hint)
}

/// 1-based line and column of byte offset `at` in `src`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = src.get(..at).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Every `{{…}}` / `{{{…}}}` expression of `s` with its byte offset, comments included.
fn expressions(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("{{") {
        let start = from + i;
        let rest = &s[start..];
        let close = if rest.starts_with("{{!--") {
            "--}}"
        } else if rest.starts_with("{{{") {
            "}}}"
        } else {
            "}}"
        };
        let Some(j) = rest[2..].find(close) else {
            break;
        };
        let end = start + 2 + j + close.len();
        out.push((start, &s[start..end]));
        from = end;
    }
    out
}

/// Block tags open, continue or close a section; their order is what keeps the HTML balanced.
fn is_block_tag(e: &str) -> bool {
    let inner = e
        .trim_start_matches('{')
        .trim_start_matches('~')
        .trim_start();
    inner.starts_with('#')
        || inner.starts_with('/')
        || inner.starts_with('^')
        || inner.starts_with("else")
}

fn check_expressions(path: &Path, src: &str, html: &str) -> Vec<Diagnostic> {
    let before = expressions(src);
    let after = expressions(html);
    let mut diags = Vec::new();
    for (at, e) in &before {
        if !after.iter().any(|(_, a)| a == e) {
            let (line, col) = line_col(src, *at);
            diags.push(
                Diagnostic::error(
                    path,
                    line as u64,
                    col as u64,
                    format!("`{e}` does not survive MJML compilation"),
                )
                .with_hint(
                    "MJML interprets sizing and styling attributes (width, padding, …); put Handlebars in text, \
                     in <mj-raw>, between components, or in href/src/alt attributes",
                ),
            );
        }
    }
    for (_, e) in &after {
        if !before.iter().any(|(_, b)| b == e) {
            diags.push(Diagnostic::error(
                path,
                0,
                0,
                format!("MJML compilation changed a Handlebars expression into `{e}`"),
            ));
        }
    }
    if diags.is_empty() {
        let blocks = |v: &[(usize, &str)]| -> Vec<String> {
            v.iter()
                .filter(|(_, e)| is_block_tag(e))
                .map(|(_, e)| e.to_string())
                .collect()
        };
        if blocks(&before) != blocks(&after) {
            diags.push(
                Diagnostic::error(
                    path,
                    0,
                    0,
                    "MJML compilation reordered Handlebars block tags ({{#…}}, {{else}}, {{/…}})",
                )
                .with_hint(
                    "open and close each block in the same place: around whole components, or inside one <mj-text>",
                ),
            );
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "t/en/email.mjml.hbs";

    fn ok(src: &str) -> String {
        compile(Path::new(P), src).unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn err(src: &str) -> Vec<Diagnostic> {
        compile(Path::new(P), src).expect_err("should fail")
    }

    #[test]
    fn handlebars_survives_in_text_attributes_and_between_components() {
        let html = ok(
            r#"<mjml><mj-head><mj-title>{{shop.name}}</mj-title></mj-head><mj-body>
  <mj-section><mj-column>
    <mj-image src="{{shop.url}}/logo.png" alt="{{shop.name}}" href="{{shop.url}}?a=1&amp;b=2" />
    <mj-text>Hi {{default customer.first_name "friend"}} &amp; co! {{#if occasion.age}}<b>{{occasion.age}}</b>{{else}}!{{/if}} {{> footer}}</mj-text>
    <mj-button href="{{links.unsubscribe}}">Shop {{{shop.name}}}</mj-button>
  </mj-column></mj-section>
  {{#if occasion.age}}<mj-section><mj-column><mj-text>age</mj-text></mj-column></mj-section>{{/if}}
  <mj-raw>{{!-- a Handlebars comment --}}</mj-raw>
</mj-body></mjml>"#,
        );
        for e in [
            r#"href="{{links.unsubscribe}}""#,
            r#"src="{{shop.url}}/logo.png""#,
            r#"{{default customer.first_name "friend"}}"#,
            "{{#if occasion.age}}<b>{{occasion.age}}</b>{{else}}!{{/if}}",
            "{{> footer}}",
            "{{{shop.name}}}",
            "<title>{{shop.name}}</title>",
        ] {
            assert!(html.contains(e), "{e} missing");
        }
        assert!(
            !html.contains("fonts.googleapis.com"),
            "no web fonts by default"
        );
    }

    #[test]
    fn expressions_in_sizing_attributes_are_reported() {
        let d = err(
            "<mjml><mj-body><mj-section><mj-column>\n<mj-column width=\"{{w}}\"><mj-text>x</mj-text></mj-column>\n</mj-column></mj-section></mj-body></mjml>",
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("`{{w}}` does not survive"), "{d:?}");
        assert_eq!((d[0].line, d[0].column), (2, 19));
    }

    #[test]
    fn mjml_errors_carry_file_and_line() {
        let d = err(
            "<mjml><mj-body>\n<mj-section>\n<mj-column>\n<mj-text>1 < 2</mj-text>\n</mj-column></mj-section></mj-body></mjml>",
        );
        assert_eq!(d[0].file, Path::new(P));
        assert_eq!(d[0].line, 4, "{d:?}");
        assert!(d[0].hint.as_deref().unwrap_or("").contains("&lt;"), "{d:?}");
        let d = err(
            "<mjml><mj-body><mj-section><mj-column><mj-text>x</mj-column></mj-section></mj-body></mjml>",
        );
        assert!(d[0].message.starts_with("MJML: "), "{d:?}");
        let d = err("<mjml><mj-body>\n  <mj-include path=\"x.mjml\" />\n</mj-body></mjml>");
        assert_eq!(d[0].line, 2, "{d:?}");
        assert!(
            d[0].hint.as_deref().unwrap_or("").contains("partial"),
            "{d:?}"
        );
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
