//! Plain text from HTML, for emails whose folder has no `email.txt.hbs`.
//!
//! A small, forgiving tag scanner rather than a full HTML parser: our input is our own rendered
//! templates (or MJML output), not arbitrary web pages. The result reads like a hand-written
//! text part: block elements end lines (paragraphs, headings, tables and lists are set apart by a
//! blank line), `<li>` become `- ` items, table cells are joined by spaces (no table art), links
//! become footnotes (`Unsubscribe [1]` … `[1] https://…`), comments (including Outlook
//! conditional comments), `<head>`, `<style>`, `<script>` and hidden blocks (`display:none`
//! preheaders) are dropped, entities are decoded
//! and whitespace is collapsed as a browser would.

/// Converts rendered HTML to the text part of an email.
pub fn html_to_text(html: &str) -> String {
    let mut s = Scanner::default();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        if s.skip.is_none() {
            s.w.text(&decode_entities(&rest[..i]));
        }
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |j| &after[j + 3..]);
            continue;
        }
        let end = tag_end(rest);
        let tag = &rest[1..end.saturating_sub(1).max(1)];
        rest = &rest[end..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        s.tag(tag);
    }
    if s.skip.is_none() {
        s.w.text(&decode_entities(rest));
    }
    s.w.finish()
}

/// The state of [`html_to_text`] between tags.
#[derive(Default)]
struct Scanner {
    w: Writer,
    /// An element being dropped with everything inside it, and how deeply it is nested in itself.
    skip: Option<(String, usize)>,
    /// The open link's target and where its text starts.
    link: Option<(String, usize)>,
    list_depth: usize,
}

impl Scanner {
    /// One tag (between `<` and `>`, not a comment nor a declaration).
    fn tag(&mut self, tag: &str) {
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let self_closing = tag.ends_with('/');
        if let Some((skipped, depth)) = &mut self.skip {
            if name == *skipped && closing {
                *depth -= 1;
                if *depth == 0 {
                    self.skip = None;
                }
            } else if name == *skipped && !self_closing {
                *depth += 1;
            }
            return;
        }
        let hidden = || {
            attribute(tag, "style").is_some_and(|s| {
                s.to_ascii_lowercase()
                    .replace(' ', "")
                    .contains("display:none")
            })
        };
        match name.as_str() {
            "head" | "style" | "script" | "title" if !closing && !self_closing => {
                self.skip = Some((name, 1));
            }
            // Preheaders and other hidden blocks are not part of the message.
            "div" | "span" | "table" | "p" if !closing && !self_closing && hidden() => {
                self.skip = Some((name, 1));
            }
            _ => self.element(tag, &name, closing),
        }
    }

    /// A tag that is kept: lines, blocks, list items, cells, links.
    fn element(&mut self, tag: &str, name: &str, closing: bool) {
        let w = &mut self.w;
        match name {
            "br" => w.line_break(),
            "p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "blockquote" | "pre"
            | "hr" | "dl" | "form" => w.block(2),
            "ul" | "ol" => {
                if closing {
                    self.list_depth = self.list_depth.saturating_sub(1);
                } else {
                    self.list_depth += 1;
                }
                w.block(if self.list_depth == 0 { 2 } else { 1 });
            }
            "li" => {
                w.block(1);
                if !closing {
                    let indent = "  ".repeat(self.list_depth.saturating_sub(1));
                    w.prefix(&format!("{indent}- "));
                }
            }
            "div" | "tr" | "dt" | "dd" | "center" | "section" | "article" | "header" | "footer"
            | "nav" | "address" | "figure" | "figcaption" | "main" | "caption" => w.block(1),
            "td" | "th" => w.space(),
            "a" if !closing => {
                self.link = attribute(tag, "href")
                    .map(|h| decode_entities(&h).trim().to_string())
                    .filter(|h| {
                        !h.is_empty() && !h.starts_with('#') && !h.starts_with("javascript:")
                    })
                    .map(|h| (h, w.out.len()));
            }
            "a" => {
                if let Some((href, start)) = self.link.take() {
                    w.footnote(href, start);
                }
            }
            "img" if self.link.is_some() => {
                if let Some(alt) = attribute(tag, "alt") {
                    w.text(&decode_entities(&alt));
                }
            }
            _ => {}
        }
    }
}

/// The end (exclusive) of the tag starting at `s[0] == '<'`: the first `>` outside quotes.
fn tag_end(s: &str) -> usize {
    let mut quote: Option<u8> = None;
    for (i, b) in s.bytes().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// The raw value of attribute `name` in a tag's inside (`a href="…" class=x`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let before_ok = at > 0 && bytes[at - 1].is_ascii_whitespace();
        let after = lower[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = tag[tag.len() - after.len() + 1..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_string(),
            _ => value
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_string(),
        });
    }
    None
}

/// Decodes the entities Handlebars and HTML editors produce: numeric ones and the common
/// named ones. Unknown entities are left as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '#')
            .map(|j| j + 1);
        let decoded = match end {
            Some(j) if rest[j..].starts_with(';') => {
                let entity = &rest[1..j];
                decode_entity(entity).map(|c| (c, j + 1))
            }
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(e: &str) -> Option<char> {
    if let Some(num) = e.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match e {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "laquo" => '«',
        "raquo" => '»',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "euro" => '€',
        "bull" => '•',
        "middot" => '·',
        "times" => '×',
        "shy" => '\u{ad}',
        "zwnj" => '\u{200c}',
        _ => return None,
    })
}

/// Accumulates text with browser-like whitespace: words separated by one space, line and
/// paragraph breaks emitted only before the next visible text (so runs collapse).
#[derive(Default)]
struct Writer {
    out: String,
    /// Newlines owed before the next text: 1 ends the line, 2 leaves a blank line.
    pending: usize,
    /// A space is owed before the next word on the same line.
    space: bool,
    /// Text to put at the start of the next line (`- ` for list items).
    line_prefix: Option<String>,
    links: Vec<String>,
}

impl Writer {
    fn block(&mut self, newlines: usize) {
        self.pending = self.pending.max(newlines);
        self.space = false;
    }

    /// `<br>`: a line break that, unlike [`Writer::block`], counts even when repeated.
    fn line_break(&mut self) {
        if self.pending == 0 {
            self.pending = 1;
        } else {
            self.pending = 2;
        }
        self.space = false;
    }

    fn space(&mut self) {
        self.space = true;
    }

    fn prefix(&mut self, p: &str) {
        self.line_prefix = Some(p.to_string());
    }

    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if s.starts_with(char::is_whitespace) {
            self.space = true;
        }
        let mut words = s.split_whitespace().peekable();
        if words.peek().is_some() {
            let joined = words.collect::<Vec<_>>().join(" ");
            self.word(&joined);
        }
        if s.ends_with(char::is_whitespace) {
            self.space = true;
        }
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    fn word(&mut self, w: &str) {
        if self.pending > 0 && !self.out.is_empty() {
            let have = self.out.len() - self.out.trim_end_matches('\n').len();
            for _ in have..self.pending.min(2) {
                self.out.push('\n');
            }
        }
        self.pending = 0;
        if self.at_line_start() {
            if let Some(p) = self.line_prefix.take() {
                self.out.push_str(&p);
            }
        } else if self.space && !self.out.ends_with(' ') {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push_str(w);
    }

    /// Closes a link opened when the output was `start` bytes long: a footnote marker unless the
    /// link's text already is its address.
    fn footnote(&mut self, href: String, start: usize) {
        let text = self.out.get(start..).unwrap_or("").trim();
        let shows_address = text == href
            || href.strip_prefix("mailto:") == Some(text)
            || href.strip_prefix("tel:") == Some(text)
            || href.trim_end_matches('/') == text.trim_end_matches('/');
        if shows_address {
            return;
        }
        let n = match self.links.iter().position(|l| *l == href) {
            Some(i) => i + 1,
            None => {
                self.links.push(href);
                self.links.len()
            }
        };
        let marker_space = !text.is_empty();
        let owed_space = self.space;
        // The marker belongs to the link text: keep it on its line, whatever block ended since.
        self.pending = 0;
        self.space = marker_space;
        self.word(&format!("[{n}]"));
        self.space = owed_space;
    }

    fn finish(mut self) -> String {
        let mut body: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        while body.last().is_some_and(|l| l.is_empty()) {
            body.pop();
        }
        let mut text = body.join("\n");
        if !self.links.is_empty() {
            text.push_str("\n\n");
            let notes: Vec<String> = std::mem::take(&mut self.links)
                .into_iter()
                .enumerate()
                .map(|(i, l)| format!("[{}] {l}", i + 1))
                .collect();
            text.push_str(&notes.join("\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_footnotes_and_entities_are_decoded() {
        let t = html_to_text(
            "<html><head><title>T</title><style>p{}</style></head><body><p>Hi &amp; welcome</p>\
             <p><a href=\"https://x.io/u?a&#x3D;1&amp;b=2\">Unsubscribe</a></p></body></html>",
        );
        assert_eq!(
            t,
            "Hi & welcome\n\nUnsubscribe [1]\n\n[1] https://x.io/u?a=1&b=2"
        );
    }

    #[test]
    fn source_newlines_and_spaces_collapse_like_a_browser() {
        let t = html_to_text(
            "<p>Happy\n   birthday,\n<strong>Ana</strong>!</p>\n\n\n<p>  With&nbsp;love,<br>Floare</p>",
        );
        assert_eq!(t, "Happy birthday, Ana!\n\nWith love,\nFloare");
    }

    #[test]
    fn lists_headings_and_repeated_links() {
        let t = html_to_text(
            "<h1>Your gifts</h1><ul><li>20% off <a href='https://s.io/a'>bouquets</a></li>\
             <li>Free <em>delivery</em><ul><li>in town</li></ul></li></ul>\
             <p>Again: <a href=\"https://s.io/a\">bouquets</a>, or visit \
             <a href=\"https://s.io\">https://s.io</a> or <a href=\"mailto:hi@s.io\">hi@s.io</a>.</p>",
        );
        assert_eq!(
            t,
            "Your gifts\n\n- 20% off bouquets [1]\n- Free delivery\n  - in town\n\n\
             Again: bouquets [1], or visit https://s.io or hi@s.io.\n\n[1] https://s.io/a"
        );
    }

    #[test]
    fn table_heavy_email_has_no_table_art() {
        // The shape MJML and email builders produce: nested layout tables, Outlook conditional
        // comments, a button made of a link in a cell, an image link, a footer row of cells.
        let html = r##"<!doctype html><html><head><meta charset="utf-8"><title>Gift</title>
<style>td { padding: 0 }</style><!--[if mso]><xml><o:OfficeDocumentSettings></o:OfficeDocumentSettings></xml><![endif]--></head>
<body><div style="display:none">Preheader text</div>
<!--[if mso | IE]><table role="presentation"><tr><td><![endif]-->
<table role="presentation" width="100%"><tbody><tr><td>
  <table><tr><td><a href="https://floare.md"><img src="logo.png" alt="Floare &amp; Co"></a></td></tr></table>
  <table><tr><td align="left"><div style="font-size:20px">Happy birthday, Ana!</div></td></tr>
    <tr><td><div>Your next bouquet is <b>20%</b> off.</div></td></tr>
    <tr><td align="center"><table><tr><td bgcolor="#414141"><a href="https://floare.md/shop?c=BDAY20&amp;u=1" style="color:#fff">Shop now</a></td></tr></table></td></tr>
  </table>
  <table><tr><td>Floare &amp; Co</td><td>|</td><td><a href="https://floare.md/u?t=abc">Unsubscribe</a></td></tr></table>
</td></tr></tbody></table>
<!--[if mso | IE]></td></tr></table><![endif]-->
</body></html>"##;
        assert_eq!(
            html_to_text(html),
            "Floare & Co [1]\n\nHappy birthday, Ana!\nYour next bouquet is 20% off.\n\n\
             Shop now [2]\n\nFloare & Co | Unsubscribe [3]\n\n\
             [1] https://floare.md\n[2] https://floare.md/shop?c=BDAY20&u=1\n[3] https://floare.md/u?t=abc"
        );
    }

    #[test]
    fn attributes_with_gt_and_unknown_entities_survive() {
        let t = html_to_text(r#"<p title="a > b">1 &lt; 2 &bogus; &#1084;&#x438;&#1088;</p>"#);
        assert_eq!(t, "1 < 2 &bogus; мир");
    }
}
