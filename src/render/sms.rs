//! SMS length: which encoding a text needs and how many segments it costs.
//!
//! GSM-7 (the GSM 03.38 basic set plus its extension table, whose characters cost two septets)
//! fits 160 septets in one segment and 153 per part when concatenated. Anything outside it —
//! Cyrillic, Romanian ș/ț/ă/â/î — forces UCS-2: 70 UTF-16 units in one segment, 67 per part.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SmsEncoding {
    #[serde(rename = "gsm-7")]
    Gsm7,
    #[serde(rename = "ucs-2")]
    Ucs2,
}

impl SmsEncoding {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "gsm-7",
            SmsEncoding::Ucs2 => "ucs-2",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SmsLength {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    pub segments: usize,
}

const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXT: &str = "^{}\\[~]|€\u{c}";

pub fn sms_length(text: &str) -> SmsLength {
    let mut septets = 0usize;
    let mut gsm = true;
    for ch in text.chars() {
        if GSM_BASIC.contains(ch) {
            septets += 1;
        } else if GSM_EXT.contains(ch) {
            septets += 2;
        } else {
            gsm = false;
            break;
        }
    }
    if gsm {
        let segments = if septets <= 160 {
            1
        } else {
            septets.div_ceil(153)
        };
        SmsLength {
            encoding: SmsEncoding::Gsm7,
            units: septets,
            segments: segments.max(1),
        }
    } else {
        let units = text.encode_utf16().count();
        let segments = if units <= 70 { 1 } else { units.div_ceil(67) };
        SmsLength {
            encoding: SmsEncoding::Ucs2,
            units,
            segments: segments.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_and_ucs2_segments() {
        assert_eq!(sms_length("Hello").segments, 1);
        assert_eq!(sms_length(&"a".repeat(160)).segments, 1);
        assert_eq!(sms_length(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_length(&"€".repeat(80)).units, 160);
        let ru = "Анна, с днём рождения! Дарим вам скидку 20% на всё до конца недели. Ждём вас в магазине Floare & Co — ваш подарок уже готов!";
        let l = sms_length(ru);
        assert_eq!(l.encoding, SmsEncoding::Ucs2);
        assert_eq!(l.segments, 2);
        let ro = "La mulți ani, Ștefan!";
        assert_eq!(sms_length(ro).encoding, SmsEncoding::Ucs2);
        assert_eq!(
            sms_length("La multi ani, Stefan!").encoding,
            SmsEncoding::Gsm7
        );
    }
}
