//! Money as people read it. Amounts are stored in minor units (cents, bani, kopecks: integers,
//! no rounding drift); people read major units with the currency code, each currency with its
//! own number of decimals (ISO 4217: RON and EUR 2, JPY 0, KWD 3).

/// Decimals of a currency's minor unit (ISO 4217); 2 for any code not listed.
pub fn minor_digits(currency: &str) -> u32 {
    match currency.trim().to_ascii_uppercase().as_str() {
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        _ => 2,
    }
}

/// `minor` (possibly fractional: an average) in major units of `currency`.
pub fn to_major(currency: &str, minor: f64) -> f64 {
    minor / 10f64.powi(minor_digits(currency) as i32)
}

/// `RON 43.06`, `JPY 1200`, `KWD 1.250`; `signed` writes `+` before gains (`RON +30.00`).
pub fn format_major(currency: &str, minor: f64, signed: bool) -> String {
    let digits = minor_digits(currency) as usize;
    let v = to_major(currency, minor);
    if signed {
        format!("{currency} {v:+.digits$}")
    } else {
        format!("{currency} {v:.digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_are_shown_as_major_units_with_the_currencys_decimals() {
        // #24: the report said "RON 4305.82" for 43.06 RON.
        assert_eq!(format_major("RON", 4305.82, false), "RON 43.06");
        assert_eq!(format_major("EUR", 1000.0, false), "EUR 10.00");
        assert_eq!(format_major("RON", 3000.0, true), "RON +30.00");
        assert_eq!(format_major("RON", -250.0, true), "RON -2.50");
        assert_eq!(format_major("JPY", 1200.0, false), "JPY 1200");
        assert_eq!(format_major("KWD", 1250.0, false), "KWD 1.250");
        assert_eq!(to_major("usd", 199.0), 1.99);
    }
}
