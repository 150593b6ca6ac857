//! The walk: every branch of every block, checking variables, helpers and partials against
//! the vocabulary.

use super::parse::{chain_next, inline_partials, literal_partial_name, too_deep_finding};
use super::source::{Source, Tok, TokKind, matching_close, scan_level};
use super::{
    BUILTIN_HELPERS, CONFIG_FILLED, Finding, FindingKind, LIST_LIMIT, LOCAL_VARS, MAX_DEPTH,
    Vocabulary,
};
use crate::domain::suggest::closest as suggest;
use handlebars::template::{
    BlockParam, DecoratorTemplate, HelperTemplate, Parameter, Subexpression, Template,
    TemplateElement,
};
use handlebars::{Path, PathSeg};
use std::collections::{BTreeSet, HashMap};

/// Whose data a relative path reads at some block level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    /// The root data: relative paths are checked.
    Root,
    /// Changed by `each`/`with`/…: relative paths cannot be checked.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlockKind {
    /// Same context (`if`, `unless`, custom helpers).
    Same,
    /// New context (`each` when `each` is true, `with`, context blocks).
    Opaque { each: bool },
    /// `{{{{raw}}}}`: the body is text.
    Raw,
}

pub(super) struct Linter<'a> {
    pub(super) text: &'a Source<'a>,
    pub(super) vocab: &'a Vocabulary,
    /// Variables plus all their dotted prefixes.
    pub(super) valid: BTreeSet<String>,
    pub(super) inline: BTreeSet<String>,
    pub(super) root_seg: Option<PathSeg>,
    pub(super) up_seg: Option<PathSeg>,
    /// Context frames: `frames[0]` is the root; each/with/partial blocks push.
    pub(super) frames: Vec<Frame>,
    /// Block params and partial-block hash keys in scope.
    pub(super) block_params: Vec<String>,
    pub(super) each_depth: usize,
    pub(super) findings: Vec<Finding>,
}

impl<'a> Linter<'a> {
    pub(super) fn new(text: &'a Source<'a>, vocab: &'a Vocabulary, template: &Template) -> Self {
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

    pub(super) fn report(
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

    pub(super) fn too_deep(&mut self, name: &str, at: usize, depth: usize) {
        let finding = too_deep_finding(name, self.text.line_col(at), depth);
        self.findings.push(finding);
    }

    pub(super) fn is_helper(&self, name: &str) -> bool {
        BUILTIN_HELPERS.contains(&name) || self.vocab.helpers.contains(name)
    }

    /// Walks a template's elements; `fallback` is the enclosing tag's offset.
    pub(super) fn template(&mut self, t: &Template, fallback: usize, depth: usize) {
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
    pub(super) fn expression(&mut self, ht: &HelperTemplate, at: usize, depth: usize) {
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
    pub(super) fn block(&mut self, head: &HelperTemplate, at: usize, depth: usize) {
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

    pub(super) fn block_kind(&mut self, name: &str, pos: usize) -> BlockKind {
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
    pub(super) fn scoped(
        &mut self,
        kind: BlockKind,
        params: Vec<String>,
        f: impl FnOnce(&mut Self),
    ) {
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
    pub(super) fn partial(&mut self, d: &DecoratorTemplate, at: usize, depth: usize, block: bool) {
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
    pub(super) fn decorator(
        &mut self,
        d: &DecoratorTemplate,
        at: usize,
        depth: usize,
        block: bool,
    ) {
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
    pub(super) fn call_args(
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
    pub(super) fn param(
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
    pub(super) fn subexpression(
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

    pub(super) fn check_helper(&mut self, name: &str, at: usize, usage: HelperUse) {
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

    pub(super) fn check_partial(&mut self, name: &str, at: usize, block: bool) {
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

    pub(super) fn check_path(&mut self, path: &Path, raw: &str, at: usize) {
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

    pub(super) fn check_local(&mut self, name: &str, raw: &str, at: usize) {
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

    pub(super) fn variable_hint(&self, joined: &str, raw: &str) -> String {
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
    pub(super) fn children(&self, prefix: &str) -> Vec<&str> {
        self.valid
            .iter()
            .filter_map(|v| v.strip_prefix(prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('.'))
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum HelperUse {
    WithArgs,
    Subexpression,
    Block,
}

pub(super) fn is_word(toks: &[Tok<'_>], i: usize, text: &str) -> bool {
    toks[i].kind == TokKind::Word && toks[i].text == text
}

/// Next word `text` on the current level that is not a hash key.
pub(super) fn find_word(toks: &[Tok<'_>], from: usize, text: &str) -> Option<usize> {
    scan_level(toks, from, |i| {
        is_word(toks, i, text) && toks.get(i + 1).is_none_or(|t| t.kind != TokKind::Eq)
    })
}

pub(super) fn block_param_names(bp: Option<&BlockParam>) -> Vec<String> {
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

pub(super) fn list<'c>(names: impl IntoIterator<Item = &'c str>) -> String {
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
