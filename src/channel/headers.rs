//! Reading an email's header block back for people: `preview` shows `Subject: La mulți ani`,
//! not `Subject: La =?utf-8?b?bXVsyJtp?= ani`. Unfolds continuation lines and decodes RFC 2047
//! encoded words (`B` and `Q`, UTF-8, US-ASCII and ISO-8859-1); anything it cannot decode is
//! shown as written. The bytes that go on the wire are never touched by this.

use base64::Engine as _;

/// The header lines of `message` (up to the first empty line), unfolded and decoded.
pub fn readable_headers(message: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in message.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(line);
            continue;
        }
        out.push(line.to_string());
    }
    out.into_iter().map(|l| decode_words(&l)).collect()
}

/// `a =?utf-8?b?…?= =?utf-8?b?…?= b` → `a …… b`: encoded words decoded, the white space
/// between two adjacent encoded words dropped (RFC 2047 §6.2).
pub fn decode_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut pending_space = String::new();
    let mut last_was_word = false;
    loop {
        let Some(start) = rest.find("=?") else {
            out.push_str(&pending_space);
            out.push_str(rest);
            return out;
        };
        let (before, from) = rest.split_at(start);
        match encoded_word(from) {
            Some((text, len)) => {
                if !(last_was_word && before.chars().all(|c| c == ' ' || c == '\t')) {
                    out.push_str(&pending_space);
                    out.push_str(before);
                }
                pending_space.clear();
                out.push_str(&text);
                rest = &from[len..];
                last_was_word = true;
                // Keep white space aside: dropped if another encoded word follows.
                let ws = rest.len() - rest.trim_start_matches([' ', '\t']).len();
                pending_space.push_str(&rest[..ws]);
                rest = &rest[ws..];
            }
            None => {
                out.push_str(&pending_space);
                pending_space.clear();
                out.push_str(before);
                out.push_str("=?");
                rest = &from[2..];
                last_was_word = false;
            }
        }
    }
}

/// `=?charset?enc?text?=` at the start of `s`: its text and length in bytes.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (enc, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let text = &inner[..end];
    if text.contains([' ', '\t']) {
        return None;
    }
    let len = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
    let bytes = match enc {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "Q" | "q" => q_decode(text)?,
        _ => return None,
    };
    let charset = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    let decoded = match charset.as_str() {
        "utf-8" | "us-ascii" => String::from_utf8(bytes).ok()?,
        "iso-8859-1" | "latin1" => bytes.iter().map(|&b| b as char).collect(),
        _ => return None,
    };
    Some((decoded, len))
}

fn q_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_and_folded_lines_read_as_text() {
        // #24: preview printed the subject MIME-encoded.
        assert_eq!(decode_words("La =?utf-8?b?bXVsyJtp?= ani"), "La mulți ani");
        assert_eq!(
            decode_words("=?utf-8?b?0KE=?= =?utf-8?b?INC00L3RkdC8?="),
            "С днём"
        );
        assert_eq!(
            decode_words("=?UTF-8?Q?caf=C3=A9_au_lait?="),
            "café au lait"
        );
        assert_eq!(decode_words("plain, no words"), "plain, no words");
        assert_eq!(
            decode_words("broken =?utf-8?x?abc?= stays"),
            "broken =?utf-8?x?abc?= stays"
        );
        let msg = "From: =?utf-8?b?RmxvYXJlICYgQ28=?= <hello@floare.example>\r\nSubject: La\r\n =?utf-8?b?bXVsyJtp?= ani\r\n\r\nbody =?utf-8?b?eA==?=\r\n";
        assert_eq!(
            readable_headers(msg),
            vec![
                "From: Floare & Co <hello@floare.example>".to_string(),
                "Subject: La mulți ani".to_string()
            ]
        );
    }
}
