//! Source positions and a light tag lexer (for token positions, `{{else}}` positions and
//! unclosed-block hints; the AST itself comes from handlebars).

pub(super) struct Source<'a> {
    pub(super) src: &'a str,
    pub(super) line_starts: Vec<usize>,
    pub(super) tags: Vec<Tag>,
}

impl<'a> Source<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            src,
            line_starts,
            tags: scan_tags(src),
        }
    }

    /// Byte offset of a 1-based (line, character column) position.
    pub(super) fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.src.len();
        };
        self.src[start..]
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(self.src.len(), |(i, _)| start + i)
    }

    /// 1-based (line, character column) of a byte offset.
    pub(super) fn line_col(&self, off: usize) -> (usize, usize) {
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
    pub(super) fn tokens(&self, at: usize) -> Vec<Tok<'a>> {
        let end = match self.tags.binary_search_by_key(&at, |t| t.start) {
            Ok(i) => self.tags[i].end,
            Err(_) => tag_end(self.src, at + 2),
        };
        tokenize(self.src, (at + 2).min(end), end)
    }

    /// Start of the `n`-th (1-based) `{{else …}}`/`{{^}}` belonging to the block opened at `block_at`.
    pub(super) fn else_tag(&self, block_at: usize, n: usize) -> Option<usize> {
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
pub(super) enum TagKind {
    Open,
    Close,
    Else,
    Other,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Tag {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: TagKind,
}

pub(super) fn is_symbol_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$' | ':') || !c.is_ascii()
}

/// Finds `{{…}}` tags the way the grammar does: `\{{` escapes, comments and
/// raw-block content are skipped.
pub(super) fn scan_tags(src: &str) -> Vec<Tag> {
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

pub(super) fn classify(inner: &str) -> TagKind {
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
pub(super) fn tag_end(src: &str, from: usize) -> usize {
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
pub(super) fn unclosed_block(text: &Source<'_>) -> Option<(String, usize)> {
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
pub(super) enum TokKind {
    Word,
    Open,
    Close,
    Eq,
    Str,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Tok<'s> {
    pub(super) start: usize,
    pub(super) text: &'s str,
    pub(super) kind: TokKind,
}

/// Splits tag content into words (paths, names), parentheses, `=` and strings.
/// Sigils (`#`, `>`, `*`, `&`, `^`) are stripped from the front of a word.
pub(super) fn tokenize(src: &str, from: usize, to: usize) -> Vec<Tok<'_>> {
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
pub(super) fn scan_level(
    toks: &[Tok<'_>],
    from: usize,
    mut pred: impl FnMut(usize) -> bool,
) -> Option<usize> {
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

pub(super) fn matching_close(toks: &[Tok<'_>], open: usize) -> Option<usize> {
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
