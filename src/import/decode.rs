//! Bytes to text: a named encoding, a byte-order mark, or detection between UTF-8,
//! windows-1251 (Cyrillic) and windows-1250 (Central European, Romanian).

use encoding_rs::{Encoding, REPLACEMENT, UTF_8, WINDOWS_1250, WINDOWS_1251};

use super::ImportError;

/// Decoded text, byte-order mark removed.
pub(super) struct Decoded {
    pub text: String,
    pub encoding: &'static Encoding,
}

/// Decodes `bytes` with the encoding named by `label` (any WHATWG label: `utf-8`, `cp1251`,
/// `windows-1250`, ...) or, when `label` is `None`, with the detected one. A byte-order mark
/// always wins over the label.
pub(super) fn decode(bytes: &[u8], label: Option<&str>) -> Result<Decoded, ImportError> {
    if let Some(label) = label {
        let encoding = Encoding::for_label(label.trim().as_bytes())
            .filter(|e| *e != REPLACEMENT)
            .ok_or_else(|| ImportError::UnknownEncoding(label.to_string()))?;
        return decode_with(bytes, encoding);
    }
    if let Some((encoding, _)) = Encoding::for_bom(bytes) {
        return decode_with(bytes, encoding);
    }
    if let Some(at) = bytes.iter().position(|b| *b == 0) {
        return Err(ImportError::Binary {
            line: line_at(bytes, at),
        });
    }
    if std::str::from_utf8(bytes).is_ok() {
        return decode_with(bytes, UTF_8);
    }
    decode_with(bytes, detect_single_byte(bytes))
}

fn decode_with(bytes: &[u8], encoding: &'static Encoding) -> Result<Decoded, ImportError> {
    let (text, used, had_errors) = encoding.decode(bytes);
    if had_errors {
        // Only multi-byte encodings can fail; point at the first undecodable byte.
        let bom = Encoding::for_bom(bytes).map_or(0, |(_, len)| len);
        let line = if used == UTF_8 {
            let body = &bytes[bom..];
            let at = std::str::from_utf8(body)
                .err()
                .map_or(0, |e| e.valid_up_to());
            line_at(body, at)
        } else {
            let at = text.find('\u{FFFD}').unwrap_or(0);
            line_at(text.as_bytes(), at)
        };
        return Err(ImportError::Decode {
            encoding: used.name(),
            line,
        });
    }
    let mut text = text.into_owned();
    if used == WINDOWS_1250 {
        text = romanian_comma_below(&text);
    }
    Ok(Decoded {
        text,
        encoding: used,
    })
}

/// 1-based line of byte `at`.
fn line_at(bytes: &[u8], at: usize) -> u64 {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

/// windows-1250 has only the cedilla forms ş ţ; Romanian spells them with a comma below.
fn romanian_comma_below(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ş' => 'ș',
            'Ş' => 'Ș',
            'ţ' => 'ț',
            'Ţ' => 'Ț',
            other => other,
        })
        .collect()
}

/// Chooses between windows-1251 and windows-1250 for bytes that are not UTF-8.
///
/// Both map almost every byte above 0x7F to a letter, so counting letters cannot tell them
/// apart; the shape of the words can. Cyrillic text decodes under 1251 into words made only
/// of Cyrillic letters, and under 1250 into words made only of accented Latin letters
/// (`Иван` → `Čâŕí`). Romanian or Czech text decodes under 1250 into mostly-ASCII words with a
/// few accented letters, and under 1251 into words mixing ASCII and Cyrillic (`Ştefan` →
/// `Єtefan`). A tie (no word with a non-ASCII letter) goes to windows-1251.
pub(super) fn detect_single_byte(bytes: &[u8]) -> &'static Encoding {
    let (cyrillic, _) = WINDOWS_1251.decode_without_bom_handling(bytes);
    let (latin, _) = WINDOWS_1250.decode_without_bom_handling(bytes);
    if score_1250(&latin) > score_1251(&cyrillic) {
        WINDOWS_1250
    } else {
        WINDOWS_1251
    }
}

/// (ASCII letters, non-ASCII letters, all non-ASCII letters Cyrillic) for each word.
fn words(text: &str) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_ascii())
        .map(|w| {
            let ascii = w.chars().filter(char::is_ascii).count();
            let cyrillic = w
                .chars()
                .filter(|c| !c.is_ascii())
                .all(|c| ('\u{400}'..='\u{4FF}').contains(&c));
            (ascii, w.chars().count() - ascii, cyrillic)
        })
}

fn score_1251(text: &str) -> i64 {
    words(text)
        .map(|(ascii, other, cyrillic)| {
            if ascii == 0 && cyrillic {
                other as i64
            } else {
                -(other as i64)
            }
        })
        .sum()
}

fn score_1250(text: &str) -> i64 {
    words(text)
        .map(|(ascii, other, _)| match (ascii, other) {
            (0, 1) => 0,
            (0, n) => -(n as i64),
            (_, n) => n as i64,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        let d = decode("a,b\nȘtefan,ț".as_bytes(), None).unwrap();
        assert_eq!(
            (d.encoding.name(), d.text.as_str()),
            ("UTF-8", "a,b\nȘtefan,ț")
        );
        let d = decode(b"\xEF\xBB\xBFid\n1", None).unwrap();
        assert_eq!((d.encoding.name(), d.text.as_str()), ("UTF-8", "id\n1"));
        // A BOM wins over a named encoding.
        let d = decode(b"\xEF\xBB\xBFid\n\xD0\x98", Some("windows-1251")).unwrap();
        assert_eq!((d.encoding.name(), d.text.as_str()), ("UTF-8", "id\nИ"));
    }

    #[test]
    fn detects_cyrillic_and_romanian() {
        for text in ["Иван Петров", "Ёлка", "Мария;Сидорова;Москва"]
        {
            let (bytes, _, _) = WINDOWS_1251.encode(text);
            assert_eq!(detect_single_byte(&bytes), WINDOWS_1251, "{text}");
        }
        for text in [
            "Ştefan Ţurcanu",
            "Bălţi",
            "Iaşi, Chişinău",
            "Příliš žluťoučký kůň",
            "Łódź Gdańsk",
        ] {
            let (bytes, _, _) = WINDOWS_1250.encode(text);
            assert_eq!(detect_single_byte(&bytes), WINDOWS_1250, "{text}");
        }
        let (bytes, _, _) = WINDOWS_1250.encode("Ştefan,Ţurcanu");
        assert_eq!(decode(&bytes, None).unwrap().text, "Ștefan,Țurcanu");
    }

    #[test]
    fn named_encodings_and_errors() {
        let d = decode(b"\xC8\xE2\xE0\xED", Some(" CP1251 ")).unwrap();
        assert_eq!(
            (d.encoding.name(), d.text.as_str()),
            ("windows-1251", "Иван")
        );
        assert!(
            matches!(decode(b"x", Some("klingon")), Err(ImportError::UnknownEncoding(l)) if l == "klingon")
        );
        match decode(b"id\n1\n\xC8\xE2", Some("utf-8")) {
            Err(ImportError::Decode { encoding, line }) => {
                assert_eq!((encoding, line), ("UTF-8", 3))
            }
            other => panic!("{:?}", other.map(|d| d.text)),
        }
        assert!(matches!(
            decode(b"i\0d\0\n\0", None),
            Err(ImportError::Binary { line: 1 })
        ));
    }
}
