//! Bytes to text: a named encoding, a byte-order mark, or detection between UTF-16 (by its
//! shape: every other byte NUL), UTF-8, windows-1251 (Cyrillic) and windows-1250 (Central
//! European, Romanian).
//!
//! Bad bytes fail their row, not the file: undecodable bytes become U+FFFD and a NUL stays a
//! NUL, and the row loop rejects a row holding either ([`Decoded::lossy`]); only bad bytes on
//! the first line (the header) fail the whole file. A file that is mostly UTF-8 with a few
//! lines in another encoding (two exports pasted together) is read as UTF-8.
//!
//! The encoding is chosen from the head of the file ([`HEAD`], 4 MiB), and the file is then
//! decoded as a stream (`stream::DecodeReader`): a file that turns into another encoding
//! only after its first 4 MiB has those later rows rejected, each with its line.

use encoding_rs::{Encoding, REPLACEMENT, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1250, WINDOWS_1251};

use super::ImportError;

/// Decoded text, byte-order mark removed (the whole-file form, for tests).
#[cfg(test)]
pub(super) struct Decoded {
    pub text: String,
    pub encoding: &'static Encoding,
    /// Some bytes could not be decoded and became U+FFFD: a row holding one is rejected.
    pub lossy: bool,
}

/// How much of the head of a file [`detect`] looks at: the encoding of a file is guessed
/// from its first 4 MiB (cut at the last line break), never from the whole file.
pub(super) const HEAD: usize = 4 << 20;

/// The encoding named by `label` (any WHATWG label: `utf-8`, `cp1251`, `windows-1250`, ...)
/// or, when `label` is `None`, the one detected from `head`, the first bytes of the file. A
/// byte-order mark always wins over the label.
pub(super) fn detect(head: &[u8], label: Option<&str>) -> Result<&'static Encoding, ImportError> {
    let named = match label {
        Some(label) => Some(
            Encoding::for_label(label.trim().as_bytes())
                .filter(|e| *e != REPLACEMENT)
                .ok_or_else(|| ImportError::UnknownEncoding(label.to_string()))?,
        ),
        None => None,
    };
    if let Some((encoding, _)) = Encoding::for_bom(head) {
        return Ok(encoding);
    }
    if let Some(encoding) = named {
        return Ok(encoding);
    }
    if let Some(encoding) = utf16_shape(head) {
        return Ok(encoding);
    }
    // A head cut inside a character must not count as invalid UTF-8: look at whole lines.
    let lines = match head.iter().rposition(|b| *b == b'\n') {
        Some(end) if head.len() == HEAD => &head[..end],
        _ => head,
    };
    if std::str::from_utf8(lines).is_ok() || mostly_utf8(lines) {
        return Ok(UTF_8);
    }
    Ok(detect_single_byte(lines))
}

/// Decodes `bytes` as a whole, through the streaming reader.
#[cfg(test)]
pub(super) fn decode(bytes: &[u8], label: Option<&str>) -> Result<Decoded, ImportError> {
    use std::io::Read;
    let encoding = detect(&bytes[..bytes.len().min(HEAD)], label)?;
    let mut reader =
        super::stream::DecodeReader::new(std::io::Cursor::new(bytes.to_vec()), encoding);
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .expect("decoded text is UTF-8");
    let lossy = reader.lossy();
    if lossy {
        // Bad bytes in the header fail the file; in a row, the row (see `table`).
        let at = text.find('\u{FFFD}').unwrap_or(0);
        let line = line_at(text.as_bytes(), at);
        if line == 1 {
            return Err(ImportError::Decode {
                encoding: encoding.name(),
                line,
            });
        }
    }
    Ok(Decoded {
        text,
        encoding,
        lossy,
    })
}

/// UTF-16 without a byte-order mark: in text that is mostly ASCII, every other byte is NUL
/// (the odd ones in little-endian, the even ones in big-endian). Looks at the first 4 KiB.
fn utf16_shape(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(4096) & !1];
    let pairs = head.len() / 2;
    if pairs < 2 {
        return None;
    }
    let zero = |parity: usize| {
        head.iter()
            .skip(parity)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    let (even, odd) = (zero(0), zero(1));
    // At least half of one side NUL and almost none of the other.
    if odd * 2 >= pairs && even * 20 <= pairs {
        Some(UTF_16LE)
    } else if even * 2 >= pairs && odd * 20 <= pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Whether bytes that are not valid UTF-8 are still mostly UTF-8: more lines with non-ASCII
/// bytes are valid UTF-8 than not (a line of windows-1251 pasted into a UTF-8 export). A
/// whole windows-125x file has almost no line that happens to be valid UTF-8.
fn mostly_utf8(bytes: &[u8]) -> bool {
    let (mut valid, mut invalid) = (0usize, 0usize);
    for line in bytes.split(|b| *b == b'\n') {
        if line.is_ascii() {
            continue;
        }
        if std::str::from_utf8(line).is_ok() {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    valid > invalid
}

/// 1-based line of byte `at`.
#[cfg(test)]
fn line_at(bytes: &[u8], at: usize) -> u64 {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count() as u64
}

/// windows-1250 has only the cedilla forms ş ţ; Romanian spells them with a comma below.
/// Rewrites them in place in UTF-8 text holding whole characters (both forms are 2 bytes).
pub(super) fn romanian_comma_below(utf8: &mut [u8]) {
    let mut i = 0;
    while i + 1 < utf8.len() {
        if utf8[i] == 0xC5 {
            let below = match utf8[i + 1] {
                0x9F => Some(0x99), // ş → ș
                0x9E => Some(0x98), // Ş → Ș
                0xA3 => Some(0x9B), // ţ → ț
                0xA2 => Some(0x9A), // Ţ → Ț
                _ => None,
            };
            if let Some(b) = below {
                utf8[i] = 0xC8;
                utf8[i + 1] = b;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
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
        // Undecodable bytes in a row: decoded with U+FFFD, for the row loop to reject.
        let d = decode(b"id\n1\n\xC8\xE2", Some("utf-8")).unwrap();
        assert!(
            d.lossy && d.text.starts_with("id\n1\n\u{FFFD}"),
            "{}",
            d.text
        );
        // In the header: the file fails.
        match decode(b"i\xC8d\n1\n", Some("utf-8")) {
            Err(ImportError::Decode { encoding, line }) => {
                assert_eq!((encoding, line), ("UTF-8", 1))
            }
            other => panic!("{:?}", other.map(|d| d.text)),
        }
        // A NUL in a row stays, for the row loop to reject.
        let d = decode(b"id\n1\0\n2\n", None).unwrap();
        assert_eq!(
            (d.encoding.name(), d.text.as_str()),
            ("UTF-8", "id\n1\0\n2\n")
        );
    }

    #[test]
    fn utf16_with_or_without_bom() {
        let text = "id,first_name\nc1,Ștefan\nc2,Мария\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for (bytes, name) in [(le.clone(), "UTF-16LE"), (be.clone(), "UTF-16BE")] {
            let d = decode(&bytes, None).unwrap();
            assert_eq!(
                (d.encoding.name(), d.text.as_str(), d.lossy),
                (name, text, false)
            );
        }
        let mut bom = vec![0xFF, 0xFE];
        bom.extend_from_slice(&le);
        let d = decode(&bom, None).unwrap();
        assert_eq!((d.encoding.name(), d.text.as_str()), ("UTF-16LE", text));
    }

    #[test]
    fn a_mostly_utf8_file_with_a_foreign_line_is_utf8() {
        let mut bytes = "id,first_name\nc1,Ștefan\nc2,Ana\nc3,Țurcanu\n"
            .as_bytes()
            .to_vec();
        let (cp, _, _) = WINDOWS_1251.encode("c4,Иван\n");
        bytes.extend_from_slice(&cp);
        let d = decode(&bytes, None).unwrap();
        assert_eq!(d.encoding.name(), "UTF-8");
        assert!(d.lossy && d.text.contains("c1,Ștefan") && d.text.contains("c4,\u{FFFD}"));
    }
}
