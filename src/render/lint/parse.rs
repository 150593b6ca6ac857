//! Parsing a template with the renderer's parser, and the findings of a template that does
//! not parse (syntax errors, nesting too deep).

use super::source::{Source, TagKind, TokKind, tokenize, unclosed_block};
use super::{Finding, FindingKind, MAX_DEPTH, PARSE_DEPTH_LIMIT};
use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{TemplateError, TemplateErrorReason};
use std::collections::BTreeSet;

/// Parses `text`, or returns the single finding that prevents it.
pub(super) fn compile(text: &Source<'_>) -> Result<Template, Finding> {
    if let Some(deep) = lexical_too_deep(text) {
        return Err(deep);
    }
    // The parser has panicked on odd input in the past; a linter must not.
    match std::panic::catch_unwind(|| Template::compile(text.src)) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(syntax_error(text, &e)),
        Err(_) => Err(Finding {
            kind: FindingKind::Syntax,
            line: 1,
            column: 1,
            name: String::new(),
            message: "syntax error: the template parser crashed on this template".to_owned(),
            hint: Some("look for unusual or unbalanced `{{ }}` tags in recent edits".to_owned()),
        }),
    }
}

/// Rejects templates whose block nesting (counting `{{else if}}` links, as
/// the walk does) exceeds [`PARSE_DEPTH_LIMIT`], reporting where it first
/// exceeded [`MAX_DEPTH`].
pub(super) fn lexical_too_deep(text: &Source<'_>) -> Option<Finding> {
    // Per open block: its `{{else if}}` links so far.
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut first_over: Option<(usize, usize)> = None;
    let mut max = 0;
    for (i, tag) in text.tags.iter().enumerate() {
        match tag.kind {
            TagKind::Open => {
                open.push(0);
                depth += 1;
            }
            TagKind::Else => {
                let inner = &text.src[tag.start + 2..tag.end];
                let plain_else = inner
                    .trim_start_matches(['~', ' ', '\t', '\r', '\n', '^'])
                    .trim_start_matches("else")
                    .trim_end_matches(['}', '~', ' ', '\t', '\r', '\n'])
                    .trim()
                    .is_empty();
                if let (false, Some(links)) = (plain_else, open.last_mut()) {
                    *links += 1;
                    depth += 1;
                } else {
                    continue;
                }
            }
            TagKind::Close => {
                if let Some(links) = open.pop() {
                    depth -= 1 + links;
                }
                continue;
            }
            TagKind::Other => continue,
        }
        if depth > MAX_DEPTH && first_over.is_none() {
            first_over = Some((i, depth));
        }
        max = max.max(depth);
    }
    let (i, depth) = first_over.filter(|_| max > PARSE_DEPTH_LIMIT)?;
    let tag = text.tags[i];
    let name = tokenize(text.src, tag.start + 2, tag.end)
        .into_iter()
        .find(|t| t.kind == TokKind::Word && t.text != "else")
        .map_or("", |t| t.text);
    Some(too_deep_finding(name, text.line_col(tag.start), depth))
}

pub(super) fn too_deep_finding(
    name: &str,
    (line, column): (usize, usize),
    depth: usize,
) -> Finding {
    Finding {
        kind: FindingKind::TooDeep,
        line,
        column,
        name: name.to_owned(),
        message: format!(
            "`{name}` is nested {depth} levels deep; the limit is {MAX_DEPTH} \
             (blocks, `{{{{else if}}}}` links and `( )` subexpressions each count)"
        ),
        hint: Some(
            "flatten the template, e.g. combine conditions with `(and …)`/`(or …)`".to_owned(),
        ),
    }
}

pub(super) fn syntax_error(text: &Source<'_>, err: &TemplateError) -> Finding {
    let reason = err.reason();
    let mut at = err.pos();
    let mut name = String::new();
    if reason.to_string().contains("stack limit reached") {
        let (line, column) = at.unwrap_or((1, 1));
        return Finding {
            kind: FindingKind::TooDeep,
            line,
            column,
            name,
            message: format!("the template is nested too deeply to parse (limit {MAX_DEPTH})"),
            hint: Some("reduce the nesting of blocks and `( )` subexpressions".to_owned()),
        };
    }
    let hint = match reason {
        TemplateErrorReason::MismatchingClosedHelper(open, close)
        | TemplateErrorReason::MismatchingClosedDecorator(open, close) => {
            name = close.clone();
            format!(
                "`{{{{#{open}}}}}` must be closed with `{{{{/{open}}}}}` before `{{{{/{close}}}}}`"
            )
        }
        TemplateErrorReason::InvalidParam(param) => {
            name = param.clone();
            if at.is_none() {
                at = text.src.find(param.as_str()).map(|off| text.line_col(off));
            }
            format!("`{param}` is not a valid value; write text in quotes, e.g. \"{param}\"")
        }
        _ => match unclosed_block(text) {
            Some((tag, off)) => {
                let (l, c) = text.line_col(off);
                format!(
                    "`{{{{#{tag}}}}}` opened at line {l}, column {c} is never closed with `{{{{/{tag}}}}}`"
                )
            }
            None => "check that every `{{` has a matching `}}`, that quotes and parentheses \
                     are balanced, and that `{{else}}` appears only inside a block"
                .to_owned(),
        },
    };
    let (line, column) = at.unwrap_or((1, 1));
    Finding {
        kind: FindingKind::Syntax,
        line,
        column,
        name,
        message: format!("syntax error: {reason}"),
        hint: Some(hint),
    }
}

/// Drops a template without recursion: a long `{{else if}}` chain is a
/// linked list that would otherwise overflow the stack when dropped.
pub(super) fn teardown(template: Template) {
    let mut stack = vec![template];
    while let Some(mut t) = stack.pop() {
        for el in t.elements.drain(..) {
            match el {
                TemplateElement::HelperBlock(mut h) => {
                    stack.extend(h.template.take());
                    stack.extend(h.inverse.take());
                }
                TemplateElement::PartialBlock(mut d) | TemplateElement::DecoratorBlock(mut d) => {
                    stack.extend(d.template.take());
                }
                _ => {}
            }
        }
    }
}

/// Names defined with `{{#*inline "name"}}…{{/inline}}` anywhere in the template.
pub(super) fn inline_partials(template: &Template) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![template];
    while let Some(t) = stack.pop() {
        for el in &t.elements {
            match el {
                TemplateElement::HelperBlock(h) => {
                    stack.extend(h.template.as_ref());
                    stack.extend(h.inverse.as_ref());
                }
                TemplateElement::PartialBlock(d) => stack.extend(d.template.as_ref()),
                TemplateElement::DecoratorBlock(d) => {
                    if d.name.as_name() == Some("inline")
                        && let Some(Parameter::Literal(v)) = d.params.first()
                        && let Some(s) = v.as_str()
                    {
                        out.insert(s.to_owned());
                    }
                    stack.extend(d.template.as_ref());
                }
                _ => {}
            }
        }
    }
    out
}

pub(super) fn literal_partial_name(name: &Parameter) -> Option<&str> {
    match name {
        Parameter::Name(_) | Parameter::Path(_) => name.as_name(),
        _ => None,
    }
}

/// The next `{{else …}}` link of a chained block, if `ht.inverse` is one.
/// The parser stores a chain link as the only element of an inverse template
/// that has no position mapping; a plain `{{else}}` body always has mappings.
pub(super) fn chain_next(ht: &HelperTemplate) -> Option<&HelperTemplate> {
    let inv = ht.inverse.as_ref()?;
    if !inv.mapping.is_empty() || inv.elements.len() != 1 {
        return None;
    }
    match &inv.elements[0] {
        TemplateElement::HelperBlock(h) if h.chain => Some(h),
        _ => None,
    }
}
