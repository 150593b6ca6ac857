//! Static checks for marketer-written Handlebars templates.
//!
//! Handlebars strict mode only complains about the branch that actually ran,
//! so a typo inside `{{#if}}` or `{{else}}` can reach customers. [`lint`]
//! parses a template with the same parser the renderer uses and walks every
//! element in every branch (block bodies, `{{else}}` and `{{else if}}` arms,
//! subexpressions, hash values, partial arguments), reporting unknown
//! variables, helpers and partials with a 1-based line/column and a hint.
//!
//! Positions: each element's start comes from the compiled template's
//! element mapping (the position of its `{{`). Within that tag the linter
//! then locates the offending token, so a finding points at the token itself
//! (`customer.frist_name` in `{{default customer.frist_name "x"}}`), falling
//! back to the tag's `{{` when the token cannot be located. Columns count
//! characters (not bytes) like the handlebars parser does; a tab is one column.
//!
//! Scope rules:
//! * Relative paths are checked against [`Vocabulary::variables`] while the
//!   context is the root. Inside `{{#each}}`/`{{#with}}` bodies (and the body
//!   of a context block such as `{{#customer}}`, or of a partial block called
//!   with a context argument) the context changes, so relative paths there are
//!   not checked; `@root.…` paths and `../` paths that climb back to the root
//!   are. `{{else}}` arms keep the outer context and are checked.
//! * `{{#if}}`, `{{#unless}}` and custom block helpers keep the context.
//! * Block params (`as |item i|`) and hash keys of partial blocks are accepted
//!   wherever they are in scope; `@index`/`@key`/`@first`/`@last` inside any
//!   `{{#each}}`.
//! * Blocks nested more than [`MAX_DEPTH`] levels (each `{{else if}}` link
//!   and each subexpression also counts as a level) are reported as
//!   [`FindingKind::TooDeep`] and not inspected further.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::domain::suggest::closest as suggest;
use handlebars::template::{
    BlockParam, DecoratorTemplate, HelperTemplate, Parameter, Subexpression, Template,
    TemplateElement,
};
use handlebars::{Path, PathSeg, TemplateError, TemplateErrorReason};

/// Variables the product fills only when the configuration says where they point; absent from
/// the vocabulary otherwise, and reported with this hint instead of a did-you-mean (a template
/// rendered `href=""` for `{{links.preferences}}` without an `http:` section, and nothing said so).
const CONFIG_FILLED: &[(&str, &str)] = &[(
    "links.preferences",
    "`links.preferences` is empty with this configuration: add an `http:` section (the daemon \
     serves the preference page at <public_url>/p/<token>) or `links: { preferences: URL }` to \
     ritualist.yaml",
)];

/// Maximum nesting of blocks (plus `{{else if}}` links and subexpressions).
pub const MAX_DEPTH: usize = 32;

/// Templates nested deeper than this (by a lexical pre-scan) are rejected
/// without being parsed: the handlebars parser is slow on them and dropping
/// a very long `{{else if}}` chain recurses.
const PARSE_DEPTH_LIMIT: usize = 2 * MAX_DEPTH;

/// Helpers every `handlebars::Handlebars` registry has (`raw` backs `{{{{raw}}}}`).
pub const BUILTIN_HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "log", "eq", "ne", "gt", "gte", "lt", "lte", "and",
    "or", "not", "len", "raw",
];

/// `@` variables `{{#each}}` provides.
const LOCAL_VARS: &[&str] = &["index", "key", "first", "last"];

/// How many names a "known …" list in a hint shows.
const LIST_LIMIT: usize = 12;

/// What a template may reference.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Every valid variable path, dotted: "customer.first_name", "occasion.age", "shop.name", "links.unsubscribe".
    /// A prefix of a valid path is itself valid ("customer" alone, e.g. for `{{#with customer}}`).
    pub variables: BTreeSet<String>,
    /// Helper names registered besides the built-ins (if, unless, each, with, lookup, log, eq, ne, gt, gte, lt, lte, and, or, not, len are built in and always valid).
    pub helpers: BTreeSet<String>,
    /// Partial names that exist (e.g. "footer", "layouts/brand").
    pub partials: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    UnknownVariable,
    UnknownHelper,
    UnknownPartial,
    Syntax,
    TooDeep,
}

/// One problem in a template.
///
/// `name` is the offending name as written (`customer.frist_name`,
/// `@root.shop.nme`, `formt_date`, `footr`); for `TooDeep` the helper or
/// partial of the block over the limit; for `Syntax` the offending tag name
/// or value when handlebars reports one, else empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub name: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Parse `source` and walk EVERY element in every branch (if/else, unless, each, with bodies and inverses, nested blocks,
/// subexpressions, hash values, partial parameters), reporting each unknown variable, helper and partial once per use with
/// the line and column of that use (1-based). A syntax error is returned as a single Finding of kind Syntax with the
/// line/column the handlebars error reports (TemplateError has line_no / column_no / reason), and a hint.
///
/// Findings are sorted by position.
pub fn lint(source: &str, vocab: &Vocabulary) -> Vec<Finding> {
    let text = Source::new(source);
    let template = match compile(&text) {
        Ok(t) => t,
        Err(finding) => return vec![finding],
    };
    let mut linter = Linter::new(&text, vocab, &template);
    linter.template(&template, 0, 0);
    let mut findings = linter.findings;
    teardown(template);
    findings.sort_by_key(|f| (f.line, f.column));
    findings
}

/// Names of partials a template references (for cycle detection by the caller).
///
/// Literal names only (a dynamic `{{> (lookup …)}}` is skipped), without
/// `@partial-block` and without inline partials the template defines itself
/// (`{{#*inline "x"}}`), deduplicated and sorted. Empty if the template does
/// not parse (`lint` reports that).
pub fn partials_used(source: &str) -> Vec<String> {
    let Ok(template) = compile(&Source::new(source)) else {
        return Vec::new();
    };
    let inline = inline_partials(&template);
    let mut used = BTreeSet::new();
    let mut stack = vec![&template];
    while let Some(t) = stack.pop() {
        for el in &t.elements {
            match el {
                TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d) => {
                    if let Some(name) = literal_partial_name(&d.name)
                        && name != "@partial-block"
                        && !inline.contains(name)
                    {
                        used.insert(name.to_owned());
                    }
                    stack.extend(d.template.as_ref());
                }
                TemplateElement::HelperBlock(h) => {
                    stack.extend(h.template.as_ref());
                    stack.extend(h.inverse.as_ref());
                }
                TemplateElement::DecoratorBlock(d) => stack.extend(d.template.as_ref()),
                _ => {}
            }
        }
    }
    teardown(template);
    used.into_iter().collect()
}

// ---------------------------------------------------------------------------
// Parsing

/// Parses `text`, or returns the single finding that prevents it.
fn compile(text: &Source<'_>) -> Result<Template, Finding> {
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
fn lexical_too_deep(text: &Source<'_>) -> Option<Finding> {
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

fn too_deep_finding(name: &str, (line, column): (usize, usize), depth: usize) -> Finding {
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

fn syntax_error(text: &Source<'_>, err: &TemplateError) -> Finding {
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
fn teardown(template: Template) {
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
fn inline_partials(template: &Template) -> BTreeSet<String> {
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

fn literal_partial_name(name: &Parameter) -> Option<&str> {
    match name {
        Parameter::Name(_) | Parameter::Path(_) => name.as_name(),
        _ => None,
    }
}

/// The next `{{else …}}` link of a chained block, if `ht.inverse` is one.
/// The parser stores a chain link as the only element of an inverse template
/// that has no position mapping; a plain `{{else}}` body always has mappings.
fn chain_next(ht: &HelperTemplate) -> Option<&HelperTemplate> {
    let inv = ht.inverse.as_ref()?;
    if !inv.mapping.is_empty() || inv.elements.len() != 1 {
        return None;
    }
    match &inv.elements[0] {
        TemplateElement::HelperBlock(h) if h.chain => Some(h),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Source positions and a light tag lexer (for token positions, `{{else}}`
// positions and unclosed-block hints; the AST itself comes from handlebars).

struct Source<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
    tags: Vec<Tag>,
}

impl<'a> Source<'a> {
    fn new(src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            src,
            line_starts,
            tags: scan_tags(src),
        }
    }

    /// Byte offset of a 1-based (line, character column) position.
    fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.src.len();
        };
        self.src[start..]
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(self.src.len(), |(i, _)| start + i)
    }

    /// 1-based (line, character column) of a byte offset.
    fn line_col(&self, off: usize) -> (usize, usize) {
        let off = off.min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= off);
        let start = self.line_starts[line - 1];
        let col = self
            .src
            .get(start..off)
            .map_or(1, |s| s.chars().count() + 1);
        (line, col)
    }

    /// Tokens of the tag starting at `at`.
    fn tokens(&self, at: usize) -> Vec<Tok<'a>> {
        let end = match self.tags.binary_search_by_key(&at, |t| t.start) {
            Ok(i) => self.tags[i].end,
            Err(_) => tag_end(self.src, at + 2),
        };
        tokenize(self.src, (at + 2).min(end), end)
    }

    /// Start of the `n`-th (1-based) `{{else …}}`/`{{^}}` belonging to the block opened at `block_at`.
    fn else_tag(&self, block_at: usize, n: usize) -> Option<usize> {
        let first = self
            .tags
            .binary_search_by_key(&block_at, |t| t.start)
            .ok()?;
        let mut depth = 0usize;
        let mut seen = 0;
        for tag in &self.tags[first..] {
            match tag.kind {
                TagKind::Open => depth += 1,
                TagKind::Close => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return None;
                    }
                }
                TagKind::Else if depth == 1 => {
                    seen += 1;
                    if seen == n {
                        return Some(tag.start);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagKind {
    Open,
    Close,
    Else,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Tag {
    start: usize,
    end: usize,
    kind: TagKind,
}

fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$' | ':') || !c.is_ascii()
}

/// Finds `{{…}}` tags the way the grammar does: `\{{` escapes, comments and
/// raw-block content are skipped.
fn scan_tags(src: &str) -> Vec<Tag> {
    let bytes = src.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while let Some(rel) = src[i..].find("{{") {
        let p = i + rel;
        let backslashes = bytes[i..p]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        let rest = &src[p..];
        if backslashes == 1 {
            i = p + if rest.starts_with("{{{{") { 4 } else { 2 };
            continue;
        }
        if rest.starts_with("{{!") {
            let long = rest
                .starts_with("{{!--")
                .then(|| rest[5..].find("--}}").map(|r| 5 + r + 4));
            let short = || rest[3..].find("}}").map(|r| 3 + r + 2);
            i = long
                .flatten()
                .or_else(short)
                .map_or(src.len(), |len| p + len);
            continue;
        }
        if let Some(raw) = rest.strip_prefix("{{{{") {
            let end = raw.find("}}}}").map_or(src.len(), |r| p + 4 + r + 4);
            let closing = raw
                .trim_start_matches(['~', ' ', '\t', '\r', '\n'])
                .starts_with('/');
            let kind = if closing {
                TagKind::Close
            } else {
                TagKind::Open
            };
            tags.push(Tag {
                start: p,
                end,
                kind,
            });
            i = end;
            if kind == TagKind::Open {
                // Raw block content runs to the next `{{{{`.
                match src[i..].find("{{{{") {
                    Some(r) => i += r,
                    None => break,
                }
            }
            continue;
        }
        let end = tag_end(src, p + 2);
        tags.push(Tag {
            start: p,
            end,
            kind: classify(&src[p + 2..end]),
        });
        i = end;
    }
    tags
}

fn classify(inner: &str) -> TagKind {
    let s = inner.trim_start_matches(['~', ' ', '\t', '\r', '\n']);
    if s.starts_with('#') {
        TagKind::Open
    } else if s.starts_with('/') {
        TagKind::Close
    } else if s.starts_with('^')
        || (s.starts_with("else") && !s[4..].chars().next().is_some_and(is_symbol_char))
    {
        TagKind::Else
    } else {
        TagKind::Other
    }
}

/// End (exclusive) of a tag whose content starts at `from`: after the first
/// `}}` outside string literals and `[…]` segments.
fn tag_end(src: &str, from: usize) -> usize {
    let b = src.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'}' if b.get(i + 1) == Some(&b'}') => return i + 2,
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' => {
                while i < b.len() && b[i] != b']' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The innermost block opener never closed, as (tag name, offset).
fn unclosed_block(text: &Source<'_>) -> Option<(String, usize)> {
    let mut open = Vec::new();
    for &tag in &text.tags {
        match tag.kind {
            TagKind::Open => open.push(tag),
            TagKind::Close => {
                open.pop();
            }
            _ => {}
        }
    }
    let tag = open.pop()?;
    let name = tokenize(text.src, tag.start + 2, tag.end)
        .iter()
        .find(|t| t.kind == TokKind::Word)
        .map_or_else(String::new, |t| t.text.to_owned());
    Some((name, tag.start))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokKind {
    Word,
    Open,
    Close,
    Eq,
    Str,
}

#[derive(Debug, Clone, Copy)]
struct Tok<'s> {
    start: usize,
    text: &'s str,
    kind: TokKind,
}

/// Splits tag content into words (paths, names), parentheses, `=` and strings.
/// Sigils (`#`, `>`, `*`, `&`, `^`) are stripped from the front of a word.
fn tokenize(src: &str, from: usize, to: usize) -> Vec<Tok<'_>> {
    let b = src.as_bytes();
    let to = to.min(b.len());
    let mut toks = Vec::new();
    if !src.is_char_boundary(from) || !src.is_char_boundary(to) {
        return toks;
    }
    let mut i = from;
    let mut push = |start: usize, end: usize, kind| {
        toks.push(Tok {
            start,
            text: &src[start..end],
            kind,
        });
    };
    while i < to {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b'{' | b'}' | b'~' | b'|' => i += 1,
            b'(' => {
                push(i, i + 1, TokKind::Open);
                i += 1;
            }
            b')' => {
                push(i, i + 1, TokKind::Close);
                i += 1;
            }
            b'=' => {
                push(i, i + 1, TokKind::Eq);
                i += 1;
            }
            q @ (b'"' | b'\'') => {
                let start = i;
                i += 1;
                while i < to && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(to);
                push(start, i, TokKind::Str);
            }
            _ => {
                let mut start = i;
                while start < to && matches!(b[start], b'#' | b'>' | b'*' | b'&' | b'^') {
                    start += 1;
                }
                let mut j = start;
                while j < to {
                    match b[j] {
                        b'[' => {
                            while j < to && b[j] != b']' {
                                j += 1;
                            }
                            j += 1;
                        }
                        b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'{' | b'}' | b'=' | b'|'
                        | b'"' | b'\'' | b'~' => break,
                        _ => j += 1,
                    }
                }
                let j = j.min(to);
                if j > start {
                    push(start, j, TokKind::Word);
                }
                i = j.max(i + 1);
            }
        }
    }
    toks
}

/// First token index at or after `from` on the same parenthesis level that
/// satisfies `pred`; stops at the `)` closing the level.
fn scan_level(toks: &[Tok<'_>], from: usize, mut pred: impl FnMut(usize) -> bool) -> Option<usize> {
    let mut depth = 0usize;
    for (i, tok) in toks.iter().enumerate().skip(from) {
        match tok.kind {
            TokKind::Close if depth == 0 => return None,
            TokKind::Close => depth -= 1,
            kind => {
                if depth == 0 && pred(i) {
                    return Some(i);
                }
                if kind == TokKind::Open {
                    depth += 1;
                }
            }
        }
    }
    None
}

fn matching_close(toks: &[Tok<'_>], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.kind {
            TokKind::Open => depth += 1,
            TokKind::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Suggestions

fn list<'c>(names: impl IntoIterator<Item = &'c str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let mut out = names
        .iter()
        .take(LIST_LIMIT)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIST_LIMIT {
        out.push_str(&format!(" and {} more", names.len() - LIST_LIMIT));
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

// ---------------------------------------------------------------------------
// The walk

/// Whose data a relative path reads at some block level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// The root data: relative paths are checked.
    Root,
    /// Changed by `each`/`with`/…: relative paths cannot be checked.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// Same context (`if`, `unless`, custom helpers).
    Same,
    /// New context (`each` when `each` is true, `with`, context blocks).
    Opaque { each: bool },
    /// `{{{{raw}}}}`: the body is text.
    Raw,
}

struct Linter<'a> {
    text: &'a Source<'a>,
    vocab: &'a Vocabulary,
    /// Variables plus all their dotted prefixes.
    valid: BTreeSet<String>,
    inline: BTreeSet<String>,
    root_seg: Option<PathSeg>,
    up_seg: Option<PathSeg>,
    /// Context frames: `frames[0]` is the root; each/with/partial blocks push.
    frames: Vec<Frame>,
    /// Block params and partial-block hash keys in scope.
    block_params: Vec<String>,
    each_depth: usize,
    findings: Vec<Finding>,
}

impl<'a> Linter<'a> {
    fn new(text: &'a Source<'a>, vocab: &'a Vocabulary, template: &Template) -> Self {
        let mut valid = BTreeSet::new();
        for var in &vocab.variables {
            for (i, _) in var.match_indices('.') {
                valid.insert(var[..i].to_owned());
            }
            valid.insert(var.clone());
        }
        let first_seg = |raw: &str| match Path::parse(raw) {
            Ok(Path::Relative((segs, _))) => segs.into_iter().next(),
            _ => None,
        };
        Linter {
            text,
            vocab,
            valid,
            inline: inline_partials(template),
            root_seg: first_seg("@root.x"),
            up_seg: first_seg("../x"),
            frames: vec![Frame::Root],
            block_params: Vec::new(),
            each_depth: 0,
            findings: Vec::new(),
        }
    }

    fn report(
        &mut self,
        kind: FindingKind,
        at: usize,
        name: &str,
        message: String,
        hint: Option<String>,
    ) {
        let (line, column) = self.text.line_col(at);
        self.findings.push(Finding {
            kind,
            line,
            column,
            name: name.to_owned(),
            message,
            hint,
        });
    }

    fn too_deep(&mut self, name: &str, at: usize, depth: usize) {
        let finding = too_deep_finding(name, self.text.line_col(at), depth);
        self.findings.push(finding);
    }

    fn is_helper(&self, name: &str) -> bool {
        BUILTIN_HELPERS.contains(&name) || self.vocab.helpers.contains(name)
    }

    /// Walks a template's elements; `fallback` is the enclosing tag's offset.
    fn template(&mut self, t: &Template, fallback: usize, depth: usize) {
        for (i, el) in t.elements.iter().enumerate() {
            let at = t
                .mapping
                .get(i)
                .map_or(fallback, |m| self.text.offset(m.0, m.1));
            match el {
                TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                    self.expression(ht, at, depth);
                }
                TemplateElement::HelperBlock(ht) => self.block(ht, at, depth),
                TemplateElement::PartialExpression(d) => self.partial(d, at, depth, false),
                TemplateElement::PartialBlock(d) => self.partial(d, at, depth, true),
                TemplateElement::DecoratorExpression(d) => self.decorator(d, at, depth, false),
                TemplateElement::DecoratorBlock(d) => self.decorator(d, at, depth, true),
                _ => {}
            }
        }
    }

    /// `{{x}}`, `{{{x}}}`, `{{helper a b k=v}}`.
    fn expression(&mut self, ht: &HelperTemplate, at: usize, depth: usize) {
        let toks = self.text.tokens(at);
        let name_only = ht.params.is_empty() && ht.hash.is_empty();
        match &ht.name {
            // `{{name}}` calls a helper of that name if there is one.
            Parameter::Path(_) if name_only => {
                if !self.is_helper(ht.name.as_name().unwrap_or_default()) {
                    self.param(&ht.name, &toks, 0, at, depth);
                }
            }
            Parameter::Subexpression(_) => {
                let cursor = self.param(&ht.name, &toks, 0, at, depth);
                self.call_args(&ht.params, &ht.hash, &toks, 0, cursor, at, depth);
            }
            name => {
                let helper = name.as_name().unwrap_or_default();
                let found = find_word(&toks, 0, helper);
                let pos = found.map_or(at, |i| toks[i].start);
                self.check_helper(helper, pos, HelperUse::WithArgs);
                let cursor = found.map_or(0, |i| i + 1);
                self.call_args(&ht.params, &ht.hash, &toks, 0, cursor, at, depth);
            }
        }
    }

    /// `{{#name …}}…{{else …}}…{{/name}}`, following `{{else if}}` chains iteratively.
    fn block(&mut self, head: &HelperTemplate, at: usize, depth: usize) {
        let mut ht = head;
        let mut tag_at = at;
        let mut depth = depth + 1;
        let mut link = 0;
        loop {
            let name = ht.name.as_name().unwrap_or_default();
            if depth > MAX_DEPTH {
                self.too_deep(name, tag_at, depth);
                return;
            }
            let toks = self.text.tokens(tag_at);
            let found = find_word(&toks, 0, name);
            let pos = found.map_or(tag_at, |i| toks[i].start);
            let kind = self.block_kind(name, pos);
            let cursor = found.map_or(0, |i| i + 1);
            self.call_args(&ht.params, &ht.hash, &toks, 0, cursor, tag_at, depth);

            if let Some(body) = &ht.template {
                let params = block_param_names(ht.block_param.as_ref());
                self.scoped(kind, params, |this| this.template(body, tag_at, depth));
            }
            match chain_next(ht) {
                Some(next) => {
                    link += 1;
                    tag_at = self.text.else_tag(at, link).unwrap_or(at);
                    ht = next;
                    depth += 1;
                }
                None => {
                    if let Some(inverse) = &ht.inverse {
                        // `{{else}}` keeps the outer context.
                        self.template(inverse, tag_at, depth);
                    }
                    return;
                }
            }
        }
    }

    fn block_kind(&mut self, name: &str, pos: usize) -> BlockKind {
        match name {
            "each" => BlockKind::Opaque { each: true },
            "with" => BlockKind::Opaque { each: false },
            "raw" => BlockKind::Raw,
            _ if self.is_helper(name) => BlockKind::Same,
            // Handlebars.js context block (`{{#customer}}`): like `with`.
            _ if self.valid.contains(name) => BlockKind::Opaque { each: false },
            _ => {
                self.check_helper(name, pos, HelperUse::Block);
                BlockKind::Same
            }
        }
    }

    /// Runs `f` with a block's context and block params in scope.
    fn scoped(&mut self, kind: BlockKind, params: Vec<String>, f: impl FnOnce(&mut Self)) {
        if kind == BlockKind::Raw {
            return;
        }
        let frames = self.frames.len();
        let bp = self.block_params.len();
        let each = self.each_depth;
        if let BlockKind::Opaque { each } = kind {
            self.frames.push(Frame::Opaque);
            if each {
                self.each_depth += 1;
            }
        }
        self.block_params.extend(params);
        f(self);
        self.frames.truncate(frames);
        self.block_params.truncate(bp);
        self.each_depth = each;
    }

    /// `{{> name ctx k=v}}` and `{{#> name}}fallback{{/name}}`.
    fn partial(&mut self, d: &DecoratorTemplate, at: usize, depth: usize, block: bool) {
        let depth = depth + usize::from(block);
        let toks = self.text.tokens(at);
        let name = literal_partial_name(&d.name);
        if block && depth > MAX_DEPTH {
            self.too_deep(name.unwrap_or("partial"), at, depth);
            return;
        }
        let cursor = match name {
            Some(name) => {
                let found = find_word(&toks, 0, name);
                let pos = found.map_or(at, |i| toks[i].start);
                self.check_partial(name, pos, block);
                found.map_or(0, |i| i + 1)
            }
            // Dynamic name `{{> (lookup …)}}`: check the subexpression only.
            None => self.param(&d.name, &toks, 0, at, depth),
        };
        self.call_args(&d.params, &d.hash, &toks, 0, cursor, at, depth);

        if let (true, Some(body)) = (block, &d.template) {
            let frames = self.frames.len();
            let bp = self.block_params.len();
            // The partial's context is its argument, else the current context.
            let frame = if d.params.is_empty() {
                *self.frames.last().unwrap_or(&Frame::Root)
            } else {
                Frame::Opaque
            };
            self.frames.push(frame);
            self.block_params.extend(d.hash.keys().cloned());
            self.template(body, at, depth);
            self.frames.truncate(frames);
            self.block_params.truncate(bp);
        }
    }

    /// `{{*name}}` and `{{#*inline "x"}}…{{/inline}}`.
    fn decorator(&mut self, d: &DecoratorTemplate, at: usize, depth: usize, block: bool) {
        let depth = depth + usize::from(block);
        let name = d.name.as_name().unwrap_or_default();
        if block && depth > MAX_DEPTH {
            self.too_deep(name, at, depth);
            return;
        }
        let toks = self.text.tokens(at);
        let found = find_word(&toks, 0, name);
        if name != "inline" {
            let pos = found.map_or(at, |i| toks[i].start);
            self.report(
                FindingKind::UnknownHelper,
                pos,
                name,
                format!("unknown decorator `*{name}`"),
                Some("only `{{#*inline \"name\"}}` is available".to_owned()),
            );
        }
        let cursor = found.map_or(0, |i| i + 1);
        self.call_args(&d.params, &d.hash, &toks, 0, cursor, at, depth);
        if let (true, Some(body)) = (block, &d.template) {
            // An inline partial renders where it is included; check it in place.
            self.template(body, at, depth);
        }
    }

    /// Checks params in order from `cursor`, then hash values (located by key).
    #[allow(clippy::too_many_arguments)]
    fn call_args(
        &mut self,
        params: &[Parameter],
        hash: &HashMap<String, Parameter>,
        toks: &[Tok<'_>],
        level: usize,
        cursor: usize,
        fallback: usize,
        depth: usize,
    ) {
        let mut cursor = cursor;
        for p in params {
            cursor = self.param(p, toks, cursor, fallback, depth);
        }
        let mut keys: Vec<&String> = hash.keys().collect();
        keys.sort();
        for key in keys {
            let value = scan_level(toks, level, |i| {
                is_word(toks, i, key) && toks.get(i + 1).is_some_and(|t| t.kind == TokKind::Eq)
            });
            match value {
                Some(i) => self.param(&hash[key], toks, i + 2, fallback, depth),
                None => self.param(&hash[key], &[], 0, fallback, depth),
            };
        }
    }

    /// Checks one parameter, located at or after token `cursor`; returns the
    /// cursor after it.
    fn param(
        &mut self,
        p: &Parameter,
        toks: &[Tok<'_>],
        cursor: usize,
        fallback: usize,
        depth: usize,
    ) -> usize {
        match p {
            Parameter::Path(path) => {
                let raw = p.as_name().unwrap_or_default();
                let found = find_word(toks, cursor, raw);
                self.check_path(path, raw, found.map_or(fallback, |i| toks[i].start));
                found.map_or(cursor, |i| i + 1)
            }
            Parameter::Subexpression(sub) => {
                match scan_level(toks, cursor, |i| toks[i].kind == TokKind::Open) {
                    Some(open) => {
                        self.subexpression(sub, toks, open + 1, toks[open].start, depth + 1);
                        matching_close(toks, open).map_or(toks.len(), |c| c + 1)
                    }
                    None => {
                        self.subexpression(sub, &[], 0, fallback, depth + 1);
                        cursor
                    }
                }
            }
            _ => cursor,
        }
    }

    /// `(helper a b k=v)`; `level` is the token after `(`, `at` the `(` offset.
    fn subexpression(
        &mut self,
        sub: &Subexpression,
        toks: &[Tok<'_>],
        level: usize,
        at: usize,
        depth: usize,
    ) {
        let TemplateElement::Expression(ht) = sub.as_element() else {
            return;
        };
        let name = ht.name.as_name().unwrap_or_default();
        if depth > MAX_DEPTH {
            self.too_deep(name, at, depth);
            return;
        }
        let found = find_word(toks, level, name);
        let pos = found.map_or(at, |i| toks[i].start);
        // `(x)` always calls a helper named `x`, even when `x` is a variable.
        self.check_helper(name, pos, HelperUse::Subexpression);
        let cursor = found.map_or(level, |i| i + 1);
        self.call_args(&ht.params, &ht.hash, toks, level, cursor, at, depth);
    }

    fn check_helper(&mut self, name: &str, at: usize, usage: HelperUse) {
        if self.is_helper(name) {
            return;
        }
        let known = || {
            BUILTIN_HELPERS
                .iter()
                .copied()
                .chain(self.vocab.helpers.iter().map(String::as_str))
        };
        let hint = if let Some(s) = suggest(name, known()) {
            format!("did you mean `{s}`?")
        } else if self.valid.contains(name) {
            match usage {
                HelperUse::WithArgs => format!(
                    "`{name}` is a variable, not a helper; to print it write `{{{{{name}}}}}`"
                ),
                HelperUse::Subexpression => {
                    format!("`{name}` is a variable; pass it without parentheses to use its value")
                }
                HelperUse::Block => {
                    format!(
                        "`{name}` is a variable; use `{{{{#with {name}}}}}` or `{{{{#if {name}}}}}`"
                    )
                }
            }
        } else {
            let mut names: Vec<&str> = known().collect();
            names.sort_unstable();
            format!("known helpers: {}", list(names))
        };
        self.report(
            FindingKind::UnknownHelper,
            at,
            name,
            format!("unknown helper `{name}`"),
            Some(hint),
        );
    }

    fn check_partial(&mut self, name: &str, at: usize, block: bool) {
        if name == "@partial-block"
            || self.vocab.partials.contains(name)
            || self.inline.contains(name)
        {
            return;
        }
        let known = self
            .vocab
            .partials
            .iter()
            .chain(&self.inline)
            .map(String::as_str);
        let hint = match suggest(name, known.clone()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("known partials: {}", list(known)),
        };
        let message = if block {
            format!("unknown partial `{name}` (the block's content would be rendered instead)")
        } else {
            format!("unknown partial `{name}`")
        };
        self.report(FindingKind::UnknownPartial, at, name, message, Some(hint));
    }

    fn check_path(&mut self, path: &Path, raw: &str, at: usize) {
        match path {
            Path::Local((_, name, _)) => self.check_local(name, raw, at),
            Path::Relative((segs, _)) => {
                let mut ups = 0;
                let mut from_root = false;
                let mut names = Vec::new();
                for seg in segs {
                    match seg {
                        PathSeg::Named(n) => names.push(n.as_str()),
                        s if names.is_empty() && Some(s) == self.up_seg.as_ref() => ups += 1,
                        s if names.is_empty() && Some(s) == self.root_seg.as_ref() => {
                            from_root = true;
                        }
                        // Anything unexpected: do not guess.
                        _ => return,
                    }
                }
                let Some(first) = names.first() else {
                    return; // `this`, `..`
                };
                if !from_root {
                    if self.block_params.iter().any(|p| p == first) {
                        return;
                    }
                    let n = self.frames.len();
                    let frame = if ups < n {
                        self.frames[n - 1 - ups]
                    } else {
                        // handlebars falls back to the current context
                        self.frames[n - 1]
                    };
                    if frame == Frame::Opaque {
                        return;
                    }
                }
                let joined = names.join(".");
                if !self.valid.contains(&joined) {
                    let hint = self.variable_hint(&joined, raw);
                    self.report(
                        FindingKind::UnknownVariable,
                        at,
                        raw,
                        format!("unknown variable `{raw}`"),
                        Some(hint),
                    );
                }
            }
        }
    }

    fn check_local(&mut self, name: &str, raw: &str, at: usize) {
        if name == "root" || (self.each_depth > 0 && LOCAL_VARS.contains(&name)) {
            return;
        }
        let hint = if LOCAL_VARS.contains(&name) {
            format!("`{raw}` is only available inside `{{{{#each}}}}`")
        } else {
            match suggest(name, LOCAL_VARS.iter().copied().chain(["root"])) {
                Some(s) => format!("did you mean `@{s}`?"),
                None => "available `@` variables: `@index`, `@key`, `@first`, `@last` (inside \
                         `{{#each}}`) and `@root`"
                    .to_owned(),
            }
        };
        self.report(
            FindingKind::UnknownVariable,
            at,
            raw,
            format!("unknown variable `{raw}`"),
            Some(hint),
        );
    }

    fn variable_hint(&self, joined: &str, raw: &str) -> String {
        // Known to the product, but only filled when the config says where it points.
        if let Some((_, why)) = CONFIG_FILLED.iter().find(|(v, _)| *v == joined) {
            return (*why).to_owned();
        }
        let prefix = raw.strip_suffix(joined).unwrap_or_default();
        if let Some(s) = suggest(joined, self.valid.iter().map(String::as_str)) {
            return format!("did you mean `{prefix}{s}`?");
        }
        // `first_name` written for `customer.first_name`.
        let tail = format!(".{joined}");
        if let Some(s) = self
            .valid
            .iter()
            .filter(|v| v.ends_with(&tail))
            .min_by_key(|v| v.len())
        {
            return format!("did you mean `{prefix}{s}`?");
        }
        // Longest valid parent: list its fields.
        let mut parent = joined;
        while let Some((p, _)) = parent.rsplit_once('.') {
            parent = p;
            if self.valid.contains(parent) {
                let fields = self.children(&format!("{parent}."));
                return format!("`{parent}` has: {}", list(fields));
            }
        }
        format!("known variables: {}", list(self.children("")))
    }

    /// Direct children of `prefix` (which is empty or ends with `.`).
    fn children(&self, prefix: &str) -> Vec<&str> {
        self.valid
            .iter()
            .filter_map(|v| v.strip_prefix(prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('.'))
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum HelperUse {
    WithArgs,
    Subexpression,
    Block,
}

fn is_word(toks: &[Tok<'_>], i: usize, text: &str) -> bool {
    toks[i].kind == TokKind::Word && toks[i].text == text
}

/// Next word `text` on the current level that is not a hash key.
fn find_word(toks: &[Tok<'_>], from: usize, text: &str) -> Option<usize> {
    scan_level(toks, from, |i| {
        is_word(toks, i, text) && toks.get(i + 1).is_none_or(|t| t.kind != TokKind::Eq)
    })
}

fn block_param_names(bp: Option<&BlockParam>) -> Vec<String> {
    let names = match bp {
        Some(BlockParam::Single(a)) => vec![a],
        Some(BlockParam::Pair((a, b))) => vec![a, b],
        _ => vec![],
    };
    names
        .into_iter()
        .filter_map(|p| p.as_name().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let set = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect();
        Vocabulary {
            variables: set(&[
                "customer.first_name",
                "customer.last_name",
                "customer.email",
                "occasion.age",
                "occasion.kind",
                "shop.name",
                "links.unsubscribe",
                "order.items",
            ]),
            helpers: set(&["format_date", "default", "upper", "today"]),
            partials: set(&["footer", "layouts/brand"]),
        }
    }

    fn finding(
        kind: FindingKind,
        line: usize,
        column: usize,
        name: &str,
        message: &str,
        hint: &str,
    ) -> Finding {
        Finding {
            kind,
            line,
            column,
            name: name.to_owned(),
            message: message.to_owned(),
            hint: Some(hint.to_owned()),
        }
    }

    fn var(line: usize, column: usize, name: &str, hint: &str) -> Finding {
        let message = format!("unknown variable `{name}`");
        finding(
            FindingKind::UnknownVariable,
            line,
            column,
            name,
            &message,
            hint,
        )
    }

    fn helper(line: usize, column: usize, name: &str, hint: &str) -> Finding {
        let message = format!("unknown helper `{name}`");
        finding(
            FindingKind::UnknownHelper,
            line,
            column,
            name,
            &message,
            hint,
        )
    }

    fn check(source: &str) -> Vec<Finding> {
        lint(source, &vocab())
    }

    #[test]
    fn clean_template_has_no_findings() {
        let src = "\
{{#> layouts/brand title=\"Happy birthday\"}}
{{title}}
{{#if customer.first_name}}Hi {{customer.first_name}}{{else if customer.last_name}}Dear {{customer.last_name}}{{else}}Hi friend{{/if}},
{{#unless (eq occasion.age 0)}}You turn {{occasion.age}} {{format_date (today) \"%d %B\"}}!{{/unless}}
{{#each order.items as |item i|}}{{@index}}: {{item.name}} {{name}} {{../shop.name}} {{@root.customer.email}}{{else}}{{shop.name}}{{/each}}
{{#with customer}}{{first_name}} {{this}}{{/with}}
{{{customer.email}}} {{&links.unsubscribe}} {{default customer.first_name \"friend\"}} {{upper value=(lookup customer \"email\")}}
{{#*inline \"sig\"}}{{shop.name}}{{/inline}}{{> sig}}{{> footer}}{{> (lookup shop \"name\")}}{{> @partial-block}}
{{!-- {{nope}} --}}{{! {{nope}} }}\\{{nope}}{{{{raw}}}}{{nope}}{{{{/raw}}}}{{today}}
{{/layouts/brand}}";
        assert_eq!(check(src), vec![]);
    }

    #[test]
    fn typo_in_else_branch_is_reported_with_position_and_hint() {
        // The column is the token's, not the `{{` (which is at column 3).
        let src = "{{#if customer.first_name}}Hi {{customer.first_name}}\n{{else}}\n  {{customr.first_name}}, hello\n{{/if}}";
        assert_eq!(
            check(src),
            vec![var(
                3,
                5,
                "customr.first_name",
                "did you mean `customer.first_name`?"
            )]
        );
    }

    #[test]
    fn else_if_links_are_checked_at_their_own_tag() {
        let src = "{{#if shop.name}}a{{else if occasion.knd}}b{{else if occasion.age}}c{{else}}{{shop.nme}}{{/if}}";
        assert_eq!(
            check(src),
            vec![
                var(1, 29, "occasion.knd", "did you mean `occasion.kind`?"),
                var(1, 79, "shop.nme", "did you mean `shop.name`?"),
            ]
        );
    }

    #[test]
    fn unknown_helper_with_params() {
        assert_eq!(
            check("Date: {{formt_date occasion.age \"%Y\"}}"),
            vec![helper(1, 9, "formt_date", "did you mean `format_date`?")]
        );
        assert_eq!(
            check("{{customer x}}"),
            vec![
                helper(
                    1,
                    3,
                    "customer",
                    "`customer` is a variable, not a helper; to print it write `{{customer}}`"
                ),
                var(
                    1,
                    12,
                    "x",
                    "known variables: `customer`, `links`, `occasion`, `order`, `shop`"
                ),
            ]
        );
    }

    #[test]
    fn unknown_helper_in_subexpression() {
        assert_eq!(
            check("{{#if (eqq occasion.kind \"birthday\")}}!{{/if}}"),
            vec![helper(1, 8, "eqq", "did you mean `eq`?")]
        );
        // `(x)` calls a helper named `x`, even for a variable.
        assert_eq!(
            check("{{upper (shop.name)}}"),
            vec![helper(
                1,
                10,
                "shop.name",
                "`shop.name` is a variable; pass it without parentheses to use its value"
            )]
        );
    }

    #[test]
    fn unknown_partial() {
        assert_eq!(
            check("{{> footr}}\n{{#> layout/brand}}fallback{{/layout/brand}}"),
            vec![
                finding(
                    FindingKind::UnknownPartial,
                    1,
                    5,
                    "footr",
                    "unknown partial `footr`",
                    "did you mean `footer`?"
                ),
                finding(
                    FindingKind::UnknownPartial,
                    2,
                    6,
                    "layout/brand",
                    "unknown partial `layout/brand` (the block's content would be rendered instead)",
                    "did you mean `layouts/brand`?"
                ),
            ]
        );
    }

    #[test]
    fn known_partials() {
        let src = "{{> footer}}{{> footer customer}}{{#> layouts/brand}}x{{/layouts/brand}}{{#*inline \"row\"}}r{{/inline}}{{> row}}";
        assert_eq!(check(src), vec![]);
        assert_eq!(partials_used(src), vec!["footer", "layouts/brand"]);
        assert_eq!(
            partials_used(
                "{{> a}}{{#if x}}{{> b}}{{else}}{{#> c}}{{> @partial-block}}{{> a}}{{/c}}{{/if}}{{> (dyn)}}"
            ),
            vec!["a", "b", "c"]
        );
        assert_eq!(partials_used("{{#if x}}"), Vec::<String>::new());
    }

    #[test]
    fn each_and_with_bodies_skip_relative_paths_but_check_root_paths() {
        let src = "{{#each order.items as |item|}}{{name}} {{item.sku}} {{@index}} {{@root.shop.nme}}{{/each}}\n{{#with customer}}{{first_name}} {{@root.custmer.email}}{{/with}}";
        assert_eq!(
            check(src),
            vec![
                var(1, 67, "@root.shop.nme", "did you mean `@root.shop.name`?"),
                var(
                    2,
                    36,
                    "@root.custmer.email",
                    "did you mean `@root.customer.email`?"
                ),
            ]
        );
    }

    #[test]
    fn block_parameter_parent_paths_and_inverse_are_checked() {
        let src = "{{#each order.itemz}}{{../shop.nam}}{{#with this}}{{../../shop.nam}}{{/with}}{{else}}{{nope}}{{/each}}";
        assert_eq!(
            check(src),
            vec![
                var(1, 9, "order.itemz", "did you mean `order.items`?"),
                var(1, 24, "../shop.nam", "did you mean `../shop.name`?"),
                var(1, 53, "../../shop.nam", "did you mean `../../shop.name`?"),
                var(
                    1,
                    88,
                    "nope",
                    "known variables: `customer`, `links`, `occasion`, `order`, `shop`"
                ),
            ]
        );
    }

    #[test]
    fn triple_stash_is_checked() {
        assert_eq!(
            check("<p>{{{customer.emial}}}</p>"),
            vec![var(
                1,
                7,
                "customer.emial",
                "did you mean `customer.email`?"
            )]
        );
    }

    #[test]
    fn helper_param_and_hash_values_are_checked() {
        assert_eq!(
            check(
                "Hi {{default customer.first_nme \"friend\"}}!\n{{upper value=customer.first_nme fallback=(default shop.nme \"x\")}}"
            ),
            vec![
                var(
                    1,
                    14,
                    "customer.first_nme",
                    "did you mean `customer.first_name`?"
                ),
                var(
                    2,
                    15,
                    "customer.first_nme",
                    "did you mean `customer.first_name`?"
                ),
                var(2, 52, "shop.nme", "did you mean `shop.name`?"),
            ]
        );
    }

    #[test]
    fn names_and_locals() {
        assert_eq!(
            check("{{today}} {{first_name}}"),
            vec![var(
                1,
                13,
                "first_name",
                "did you mean `customer.first_name`?"
            )]
        );
        assert_eq!(
            check("{{customer.middle}} {{@index}} {{@idx}}"),
            vec![
                var(
                    1,
                    3,
                    "customer.middle",
                    "`customer` has: `email`, `first_name`, `last_name`"
                ),
                var(
                    1,
                    23,
                    "@index",
                    "`@index` is only available inside `{{#each}}`"
                ),
                var(
                    1,
                    34,
                    "@idx",
                    "available `@` variables: `@index`, `@key`, `@first`, `@last` (inside `{{#each}}`) and `@root`"
                ),
            ]
        );
    }

    #[test]
    fn columns_count_characters_and_crlf_lines() {
        assert_eq!(
            check("Zoë 😀 {{custmer}}\r\n\t{{shop.nam}}"),
            vec![
                var(1, 9, "custmer", "did you mean `customer`?"),
                var(2, 4, "shop.nam", "did you mean `shop.name`?"),
            ]
        );
    }

    #[test]
    fn unclosed_block_is_one_syntax_finding() {
        let found = check("{{#if customer.first_name}}\nHello");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::Syntax);
        assert_eq!((found[0].line, found[0].column), (2, 6));
        assert!(
            found[0]
                .message
                .starts_with("syntax error: invalid handlebars syntax")
        );
        assert_eq!(
            found[0].hint.as_deref(),
            Some("`{{#if}}` opened at line 1, column 1 is never closed with `{{/if}}`")
        );
    }

    #[test]
    fn mismatched_close_is_one_syntax_finding() {
        assert_eq!(
            check("a\n{{#if shop.name}}\nb{{/unless}}"),
            vec![finding(
                FindingKind::Syntax,
                3,
                2,
                "unless",
                "syntax error: helper \"if\" was opened, but \"unless\" is closing",
                "`{{#if}}` must be closed with `{{/if}}` before `{{/unless}}`"
            )]
        );
    }

    fn nested_ifs(n: usize) -> String {
        format!("{}x{}", "{{#if shop.name}}".repeat(n), "{{/if}}".repeat(n))
    }

    fn too_deep(line: usize, column: usize, name: &str, depth: usize) -> Finding {
        let message = format!(
            "`{name}` is nested {depth} levels deep; the limit is 32 (blocks, `{{{{else if}}}}` links and `( )` subexpressions each count)"
        );
        finding(
            FindingKind::TooDeep,
            line,
            column,
            name,
            &message,
            "flatten the template, e.g. combine conditions with `(and …)`/`(or …)`",
        )
    }

    #[test]
    fn forty_nested_ifs_are_too_deep() {
        assert_eq!(check(&nested_ifs(32)), vec![]);
        // The 33rd `{{#if` starts at column 32 * 17 + 1.
        assert_eq!(check(&nested_ifs(40)), vec![too_deep(1, 545, "if", 33)]);
    }

    #[test]
    fn long_else_if_chains_and_subexpressions_are_too_deep() {
        let chain = format!(
            "{{{{#if shop.name}}}}{}{{{{/if}}}}",
            "{{else if shop.name}}x".repeat(40)
        );
        // Link 32 (depth 33) starts after the 17-char opener and 31 links of 22 chars.
        assert_eq!(check(&chain), vec![too_deep(1, 17 + 31 * 22 + 1, "if", 33)]);
        let subs = format!(
            "{{{{upper {}shop.name{}}}}}",
            "(not ".repeat(40),
            ")".repeat(40)
        );
        assert_eq!(check(&subs), vec![too_deep(1, 9 + 32 * 5, "not", 33)]);
    }

    #[test]
    fn hostile_templates_are_rejected_without_overflowing_a_small_stack() {
        // Too deep for the parser: rejected by the lexical pre-scan, at the
        // same place the walk would report.
        let chain = format!(
            "{{{{#if a}}}}{}{{{{/if}}}}",
            "{{else if a}}x".repeat(20_000)
        );
        let deep = nested_ifs(5_000);
        let worker = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || (check(&chain), check(&deep), partials_used(&chain)))
            .unwrap();
        let (chain, deep, used) = worker.join().unwrap();
        assert_eq!(chain, vec![too_deep(1, 9 + 31 * 14 + 1, "if", 33)]);
        assert_eq!(deep, vec![too_deep(1, 32 * 17 + 1, "if", 33)]);
        assert!(used.is_empty());
    }
}
