//! Small readers shared by the formats: raw header values, addresses and status codes found
//! in text, the `name: value` field groups of a delivery-status or feedback-report part.

use mail_parser::Message;

/// Every value of header `name` (any case) of the message's top part, unfolded and trimmed.
pub(super) fn all(msg: &Message<'_>, name: &str) -> Vec<String> {
    msg.headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| unfold(v))
        .collect()
}

/// The first value of header `name`.
pub(super) fn first(msg: &Message<'_>, name: &str) -> Option<String> {
    all(msg, name).into_iter().next().filter(|v| !v.is_empty())
}

/// Folded lines joined by one space, trimmed.
pub(super) fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Message-ID without its angle brackets.
pub(super) fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The first Message-ID of `In-Reply-To` (an auto-reply's pointer to what it answers).
pub(super) fn in_reply_to(msg: &Message<'_>) -> Option<String> {
    let v = first(msg, "In-Reply-To")?;
    let start = v.find('<')?;
    let end = start + v[start..].find('>')?;
    let id = bare_id(&v[start..=end]);
    (!id.is_empty()).then_some(id)
}

/// `s` on one line (whitespace runs collapsed), at most `max` characters.
pub(super) fn one_line(s: &str, max: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}

fn addr_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

/// The email addresses written in `s` (`user@example.com`, `<user@example.com>`, `rfc822;
/// user@example.com`), lower-cased, in order, without repeats.
pub(super) fn addresses_in(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let bytes = s.as_bytes();
    for (at, _) in s.match_indices('@') {
        let start = s[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| addr_char(*c))
            .last()
            .map(|(i, _)| i);
        let end = s[at + 1..]
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            .last()
            .map(|(i, c)| at + 1 + i + c.len_utf8());
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let local = s[start..at].trim_start_matches('.');
        let domain = s[at + 1..end].trim_end_matches('.');
        if local.is_empty() || !domain.contains('.') || bytes.get(end) == Some(&b'@') {
            continue;
        }
        let a = format!("{local}@{domain}").to_ascii_lowercase();
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The first enhanced status code (`5.1.1`, RFC 3463: class 2, 4 or 5, subject 1–3 digits,
/// detail 1–3 digits) written in `s` as a word of its own (`#5.1.1` and `(5.1.1)` count).
pub(super) fn status_in(s: &str) -> Option<String> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if !matches!(c, b'2' | b'4' | b'5') || b.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.') {
            continue;
        }
        let rest = &s[i + 2..];
        let sub: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if sub.is_empty() || sub.len() > 3 || rest.as_bytes().get(sub.len()) != Some(&b'.') {
            continue;
        }
        let rest = &rest[sub.len() + 1..];
        let detail: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest.as_bytes().get(detail.len());
        let word_end = after.is_none_or(|a| !(a.is_ascii_alphanumeric() || *a == b'.'))
            || (after == Some(&b'.')
                && !rest
                    .as_bytes()
                    .get(detail.len() + 1)
                    .is_some_and(u8::is_ascii_digit));
        if detail.is_empty() || detail.len() > 3 || !word_end {
            continue;
        }
        return Some(format!("{}.{sub}.{detail}", c as char));
    }
    None
}

/// The `name: value` fields of a delivery-status or feedback-report body, in groups separated
/// by blank lines (RFC 3464 §2.1: the per-message group, then one per recipient). Names are
/// lower-cased, folded values unfolded.
pub(super) fn field_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            group.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// The value of field `name` (lower-case) in a group.
pub(super) fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The address of a typed DSN address field (`rfc822; user@example.com`).
pub(super) fn typed_address(v: &str) -> Option<String> {
    let addr = v.split_once(';').map_or(v, |(_, a)| a);
    addresses_in(addr).into_iter().next()
}

/// The `Message-ID` header written in a block of header text (returned headers that a
/// parser could not read, or a text bounce's copy of the message).
pub(super) fn message_id_line(text: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_string();
        if value.is_empty()
            && let Some(next) = lines.peek()
        {
            value = next.trim().to_string();
        }
        let id = bare_id(value.split_whitespace().next().unwrap_or(""));
        if id.contains('@') {
            return Some(id);
        }
    }
    None
}
