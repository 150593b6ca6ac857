//! The helpers marketers write in templates: `date`, `plural`, `money`, `ordinal`, `default`,
//! `upper`, and `survey_url` (a survey ritual's score link: `{{survey_url 9}}`).
//!
//! Every helper returns a value (never writes raw output), so the HTML registry still escapes
//! what it prints. The language-aware ones (`date`, `plural`, `money`, `ordinal`) speak the
//! language of the template being rendered (`birthday/ro/…` → Romanian), so a Romanian template
//! served to a customer whose own locale has no templates still reads as Romanian; outside a
//! registered template they use `customer.locale` from the context. A `locale="ru"` hash
//! argument overrides both. Unknown languages format as English.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, PathAndJson, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use crate::domain::Locale;

/// The names registered by [`register`], for the linter's vocabulary.
pub const NAMES: [&str; 7] = [
    "date",
    "default",
    "money",
    "ordinal",
    "plural",
    "survey_url",
    "upper",
];

/// Registers every helper on `reg`.
pub fn register(reg: &mut Handlebars<'static>) {
    reg.register_helper("default", Box::new(default_helper));
    reg.register_helper("upper", Box::new(upper_helper));
    reg.register_helper("date", Box::new(Localized(date)));
    reg.register_helper("plural", Box::new(Localized(plural)));
    reg.register_helper("money", Box::new(Localized(money)));
    reg.register_helper("ordinal", Box::new(Localized(ordinal)));
    reg.register_helper("survey_url", Box::new(SurveyUrl));
}

/// `{{survey_url 9}}`: the link that records score 9, from the root context's `survey.links`
/// (present only in survey rituals, so a template of an ordinary ritual that uses it fails to
/// render and `check` says so).
struct SurveyUrl;

impl HelperDef for SurveyUrl {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let fail = |m: String| -> RenderError { RenderErrorReason::Other(m).into() };
        let score = h
            .param(0)
            .and_then(|p| p.value().as_u64())
            .filter(|s| *s <= 10)
            .ok_or_else(|| {
                fail(format!(
                    "`survey_url` takes a score from 0 to 10, got {}",
                    h.param(0).map_or("nothing".into(), describe)
                ))
            })?;
        let url = ctx
            .data()
            .pointer(&format!("/survey/links/{score}/url"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                fail("`survey_url` works only in a survey ritual (`survey: nps`)".into())
            })?;
        Ok(ScopedJson::Derived(Value::String(url.to_string())))
    }
}

handlebars::handlebars_helper!(default_helper: |v: Json, fallback: Json| {
    match v {
        Value::Null => fallback.clone(),
        Value::String(s) if s.trim().is_empty() => fallback.clone(),
        other => other.clone(),
    }
});
handlebars::handlebars_helper!(upper_helper: |s: str| s.to_uppercase());

/// The languages helpers format for; anything else falls back to English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
    Ro,
}

impl Lang {
    /// From a locale tag (`ru`, `ro-MD`, `en_GB`); `None` when it is not a locale at all.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let locale = Locale::parse(tag).ok()?;
        Some(match locale.language() {
            "ru" => Lang::Ru,
            "ro" | "mo" => Lang::Ro,
            _ => Lang::En,
        })
    }
}

/// The language a helper call formats for: `locale="…"` on the call, else the locale folder of
/// the template being rendered (`<folder>/<locale>/<part>`), else `customer.locale`, else English.
fn language(h: &Helper<'_>, ctx: &Context, rc: &RenderContext<'_, '_>) -> Lang {
    if let Some(tag) = h.hash_get("locale").and_then(|v| v.value().as_str()) {
        return Lang::from_tag(tag).unwrap_or(Lang::En);
    }
    let from_template = rc.get_root_template_name().and_then(|name| {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            [_, locale, file] if file.ends_with(".hbs") => Lang::from_tag(locale),
            _ => None,
        }
    });
    from_template
        .or_else(|| {
            ctx.data()
                .pointer("/customer/locale")
                .and_then(Value::as_str)
                .and_then(Lang::from_tag)
        })
        .unwrap_or(Lang::En)
}

type HelperFn = fn(&Helper<'_>, Lang) -> Result<String, String>;

/// Adapts a plain `fn(call, language) -> Result<String, message>` into a Handlebars helper that
/// returns its result as a value (so it is escaped like any variable in HTML).
struct Localized(HelperFn);

impl HelperDef for Localized {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let lang = language(h, ctx, rc);
        match (self.0)(h, lang) {
            Ok(s) => Ok(ScopedJson::Derived(Value::String(s))),
            Err(message) => {
                Err(RenderErrorReason::Other(format!("`{}`: {message}", h.name())).into())
            }
        }
    }
}

/// How a parameter was written, for error messages: its path, or its value for literals.
fn describe(p: &PathAndJson<'_>) -> String {
    match p.relative_path() {
        Some(path) => format!("`{path}` ({})", short_json(p.value())),
        None => short_json(p.value()),
    }
}

fn short_json(v: &Value) -> String {
    match v {
        Value::Null => "empty".into(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn param<'a, 'rc>(
    h: &'a Helper<'rc>,
    idx: usize,
    what: &str,
) -> Result<&'a PathAndJson<'rc>, String> {
    h.param(idx)
        .ok_or_else(|| format!("missing argument {}: {what}", idx + 1))
}

/// A whole number, from a JSON number or a numeric string (customer attributes are strings).
fn integer(p: &PathAndJson<'_>, what: &str) -> Result<i64, String> {
    let v = p.value();
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| {
        let hint = if v.is_null() {
            "; wrap the call in {{#if …}} when the value may be missing"
        } else {
            ""
        };
        format!("{what} must be a whole number, got {}{hint}", describe(p))
    })
}

fn string<'a>(p: &'a PathAndJson<'_>, what: &str) -> Result<&'a str, String> {
    p.value()
        .as_str()
        .ok_or_else(|| format!("{what} must be a string, got {}", describe(p)))
}

// ---------------------------------------------------------------------------------------------
// date

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// Genitive: "1 марта", not "1 март".
const MONTHS_RU_GEN: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const MONTHS_RO: [&str; 12] = [
    "ianuarie",
    "februarie",
    "martie",
    "aprilie",
    "mai",
    "iunie",
    "iulie",
    "august",
    "septembrie",
    "octombrie",
    "noiembrie",
    "decembrie",
];
/// Monday first.
const WEEKDAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const WEEKDAYS_RU: [&str; 7] = [
    "понедельник",
    "вторник",
    "среда",
    "четверг",
    "пятница",
    "суббота",
    "воскресенье",
];
const WEEKDAYS_RO: [&str; 7] = [
    "luni",
    "marți",
    "miercuri",
    "joi",
    "vineri",
    "sâmbătă",
    "duminică",
];

/// The formats `{{date d "…"}}` accepts.
pub const DATE_FORMATS: [&str; 4] = ["long", "long_year", "short", "weekday"];

/// `YYYY-MM-DD`, strictly.
fn parse_date(s: &str) -> Option<jiff::civil::Date> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let y: i16 = s[0..4].parse().ok()?;
    let m: i8 = s[5..7].parse().ok()?;
    let d: i8 = s[8..10].parse().ok()?;
    jiff::civil::Date::new(y, m, d).ok()
}

/// `{{date value "long"|"long_year"|"short"|"weekday"}}`; the format defaults to `long`.
pub fn format_date(date: jiff::civil::Date, format: &str, lang: Lang) -> Option<String> {
    let (d, m, y) = (date.day(), date.month() as usize - 1, date.year());
    let month = match lang {
        Lang::En => MONTHS_EN[m],
        Lang::Ru => MONTHS_RU_GEN[m],
        Lang::Ro => MONTHS_RO[m],
    };
    Some(match format {
        "long" => format!("{d} {month}"),
        "long_year" => match lang {
            Lang::Ru => format!("{d} {month} {y} г."),
            _ => format!("{d} {month} {y}"),
        },
        "short" => match lang {
            Lang::En => format!("{:02}/{d:02}/{y:04}", m + 1),
            Lang::Ru | Lang::Ro => format!("{d:02}.{:02}.{y:04}", m + 1),
        },
        "weekday" => {
            let i = date.weekday().to_monday_zero_offset() as usize;
            match lang {
                Lang::En => WEEKDAYS_EN[i],
                Lang::Ru => WEEKDAYS_RU[i],
                Lang::Ro => WEEKDAYS_RO[i],
            }
            .to_string()
        }
        _ => return None,
    })
}

fn date(h: &Helper<'_>, lang: Lang) -> Result<String, String> {
    let p = param(h, 0, "a date such as occasion.date")?;
    let raw = string(p, "the date")?;
    let date = parse_date(raw)
        .ok_or_else(|| format!("{} is not a date in the form YYYY-MM-DD", describe(p)))?;
    let format = match h.param(1) {
        Some(f) => string(f, "the format")?,
        None => "long",
    };
    format_date(date, format, lang).ok_or_else(|| {
        format!(
            "unknown format \"{format}\"; use one of {}",
            DATE_FORMATS.map(|f| format!("\"{f}\"")).join(", ")
        )
    })
}

// ---------------------------------------------------------------------------------------------
// plural

/// CLDR plural categories (cardinal) used by our languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluralCategory {
    One,
    Few,
    Many,
    Other,
}

impl PluralCategory {
    fn key(self) -> &'static str {
        match self {
            PluralCategory::One => "one",
            PluralCategory::Few => "few",
            PluralCategory::Many => "many",
            PluralCategory::Other => "other",
        }
    }
}

/// The CLDR cardinal category of the integer `n` in `lang`.
pub fn plural_category(n: i64, lang: Lang) -> PluralCategory {
    let n = n.unsigned_abs();
    let (m10, m100) = (n % 10, n % 100);
    match lang {
        Lang::En if n == 1 => PluralCategory::One,
        Lang::En => PluralCategory::Other,
        Lang::Ru if m10 == 1 && m100 != 11 => PluralCategory::One,
        Lang::Ru if (2..=4).contains(&m10) && !(12..=14).contains(&m100) => PluralCategory::Few,
        Lang::Ru => PluralCategory::Many,
        Lang::Ro if n == 1 => PluralCategory::One,
        Lang::Ro if n == 0 || (1..=19).contains(&m100) => PluralCategory::Few,
        Lang::Ro => PluralCategory::Other,
    }
}

/// The positional forms each language takes, in order.
fn positional_forms(lang: Lang) -> &'static [PluralCategory] {
    match lang {
        Lang::En => &[PluralCategory::One, PluralCategory::Other],
        Lang::Ru => &[
            PluralCategory::One,
            PluralCategory::Few,
            PluralCategory::Many,
        ],
        Lang::Ro => &[
            PluralCategory::One,
            PluralCategory::Few,
            PluralCategory::Other,
        ],
    }
}

fn plural(h: &Helper<'_>, lang: Lang) -> Result<String, String> {
    let n = integer(param(h, 0, "the number")?, "the number")?;
    let category = plural_category(n, lang);
    let named = h.hash().keys().any(|k| *k != "locale");
    if named {
        let form = h
            .hash_get(category.key())
            .or_else(|| h.hash_get("other"))
            .ok_or_else(|| {
                format!(
                    "{n} needs the `{}=` form (or `other=`) in this language",
                    category.key()
                )
            })?;
        return string(form, "a plural form").map(String::from);
    }
    let order = positional_forms(lang);
    let given = h.params().len() - 1;
    if given < order.len() {
        let names: Vec<&str> = order.iter().map(|c| c.key()).collect();
        return Err(format!(
            "this language needs {} forms ({}), got {given}",
            order.len(),
            names.join(", ")
        ));
    }
    let idx = order.iter().position(|c| *c == category).unwrap_or(0);
    string(&h.params()[idx + 1], "a plural form").map(String::from)
}

// ---------------------------------------------------------------------------------------------
// money

/// Currencies whose minor unit is the major unit (ISO 4217 exponent 0).
const ZERO_DECIMALS: [&str; 5] = ["JPY", "KRW", "VND", "CLP", "ISK"];

/// Groups the digits of `int` by thousands with `sep`.
fn group(int: u64, sep: &str) -> String {
    let digits = int.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * sep.len());
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

/// Formats `minor` units of `currency` (an ISO 4217 code) the way `lang` writes prices:
/// en "$1,234.50", "RON 12.50"; ru "1 234,50 ₽" (U+202F between thousands); ro "1.234,50 lei".
/// The space between amount and currency is a plain one, so an English or Romanian SMS stays
/// in GSM-7.
pub fn format_money(minor: i64, currency: &str, lang: Lang) -> String {
    let code = currency.to_ascii_uppercase();
    let decimals = if ZERO_DECIMALS.contains(&code.as_str()) {
        0
    } else {
        2
    };
    let abs = minor.unsigned_abs();
    let scale = 10u64.pow(decimals);
    let (int, frac) = (abs / scale, abs % scale);
    let sign = if minor < 0 { "-" } else { "" };
    let (group_sep, decimal_sep) = match lang {
        Lang::En => (",", "."),
        Lang::Ru => ("\u{202F}", ","),
        Lang::Ro => (".", ","),
    };
    let mut number = group(int, group_sep);
    if decimals > 0 {
        number.push_str(decimal_sep);
        number.push_str(&format!("{frac:0width$}", width = decimals as usize));
    }
    match lang {
        Lang::En => match code.as_str() {
            "USD" => format!("{sign}${number}"),
            "EUR" => format!("{sign}€{number}"),
            "GBP" => format!("{sign}£{number}"),
            _ => format!("{sign}{code} {number}"),
        },
        Lang::Ru => {
            let symbol = match code.as_str() {
                "RUB" => "₽",
                "USD" => "$",
                "EUR" => "€",
                "GBP" => "£",
                _ => code.as_str(),
            };
            format!("{sign}{number} {symbol}")
        }
        Lang::Ro => {
            let symbol = match code.as_str() {
                "RON" => "lei",
                "EUR" => "€",
                _ => code.as_str(),
            };
            format!("{sign}{number} {symbol}")
        }
    }
}

fn money(h: &Helper<'_>, lang: Lang) -> Result<String, String> {
    let amount = integer(
        param(h, 0, "the amount in minor units (cents)")?,
        "the amount (in minor units, e.g. 1250 for 12.50)",
    )?;
    let currency = string(
        param(h, 1, "a currency code such as \"RON\"")?,
        "the currency",
    )?;
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "\"{currency}\" is not a currency code; write its three-letter ISO 4217 code in capitals, such as \"RON\", \"MDL\", \"EUR\", \"USD\""
        ));
    }
    Ok(format_money(amount, currency, lang))
}

// ---------------------------------------------------------------------------------------------
// ordinal

/// en "1st", "2nd", "11th", "21st"; ru "1-й"; ro "primul", "al 5-lea" (masculine forms).
pub fn format_ordinal(n: i64, lang: Lang) -> String {
    match lang {
        Lang::En => {
            let a = n.unsigned_abs();
            let suffix = match (a % 10, a % 100) {
                (_, 11..=13) => "th",
                (1, _) => "st",
                (2, _) => "nd",
                (3, _) => "rd",
                _ => "th",
            };
            format!("{n}{suffix}")
        }
        Lang::Ru => format!("{n}-й"),
        Lang::Ro if n == 1 => "primul".to_string(),
        Lang::Ro => format!("al {n}-lea"),
    }
}

fn ordinal(h: &Helper<'_>, lang: Lang) -> Result<String, String> {
    let n = integer(param(h, 0, "the number")?, "the number")?;
    Ok(format_ordinal(n, lang))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(escape: bool) -> Handlebars<'static> {
        let mut h = Handlebars::new();
        h.set_strict_mode(true);
        if !escape {
            h.register_escape_fn(handlebars::no_escape);
        }
        register(&mut h);
        h
    }

    /// Renders `tpl` for a customer whose locale is `locale`, with `extra` merged into the
    /// context's top level.
    fn render(locale: &str, tpl: &str, extra: Value) -> String {
        let mut ctx = json!({
            "customer": {"locale": locale, "first_name": "Ana"},
            "occasion": {"date": "2027-03-01", "age": 37},
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut ctx, extra) {
            c.extend(e);
        }
        reg(false)
            .render_template(tpl, &ctx)
            .unwrap_or_else(|e| panic!("{tpl}: {e}"))
    }

    fn r(locale: &str, tpl: &str) -> String {
        render(locale, tpl, json!({}))
    }

    fn render_err(locale: &str, tpl: &str, extra: Value) -> String {
        let mut ctx = json!({"customer": {"locale": locale}});
        if let (Value::Object(c), Value::Object(e)) = (&mut ctx, extra) {
            c.extend(e);
        }
        reg(false)
            .render_template(tpl, &ctx)
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn date_long_uses_the_genitive_in_russian() {
        let t = r#"{{date occasion.date "long"}}"#;
        assert_eq!(r("en", t), "1 March");
        assert_eq!(r("ru", t), "1 марта");
        assert_eq!(r("ro", t), "1 martie");
        assert_eq!(r("ro-MD", t), "1 martie");
        // Every Russian month in the genitive.
        let dec = render("ru", "{{date d}}", json!({"d": "2027-12-31"}));
        assert_eq!(dec, "31 декабря");
        let may = render("ru", "{{date d}}", json!({"d": "2027-05-09"}));
        assert_eq!(may, "9 мая");
    }

    #[test]
    fn date_long_year_short_and_weekday() {
        let ly = r#"{{date occasion.date "long_year"}}"#;
        assert_eq!(r("en", ly), "1 March 2027");
        assert_eq!(r("ru", ly), "1 марта 2027 г.");
        assert_eq!(r("ro", ly), "1 martie 2027");
        let short = r#"{{date occasion.date "short"}}"#;
        assert_eq!(r("en", short), "03/01/2027");
        assert_eq!(r("ru", short), "01.03.2027");
        assert_eq!(r("ro", short), "01.03.2027");
        // 2027-03-01 is a Monday.
        let wd = r#"{{date occasion.date "weekday"}}"#;
        assert_eq!(r("en", wd), "Monday");
        assert_eq!(r("ru", wd), "понедельник");
        assert_eq!(r("ro", wd), "luni");
        let tue = json!({"d": "2027-03-02"});
        assert_eq!(render("ro", r#"{{date d "weekday"}}"#, tue), "marți");
    }

    #[test]
    fn unknown_language_formats_as_english_and_locale_hash_overrides() {
        assert_eq!(r("de", r#"{{date occasion.date}}"#), "1 March");
        assert_eq!(r("zz-invalid-!", r#"{{date occasion.date}}"#), "1 March");
        assert_eq!(
            r("en", r#"{{date occasion.date "long" locale="ru"}}"#),
            "1 марта"
        );
    }

    #[test]
    fn the_template_locale_wins_over_the_customer_locale() {
        // A German customer served the Romanian template (the default locale) reads Romanian.
        let mut h = reg(false);
        h.register_template_string("birthday/ro/sms.hbs", "{{date occasion.date}}")
            .unwrap();
        let ctx = json!({"customer": {"locale": "de"}, "occasion": {"date": "2027-03-01"}});
        assert_eq!(h.render("birthday/ro/sms.hbs", &ctx).unwrap(), "1 martie");
    }

    #[test]
    fn invalid_dates_are_render_errors_that_say_why() {
        for bad in ["2027-02-30", "1.03.2027", "2027-3-1", "", "20270301"] {
            let e = render_err("en", "{{date d}}", json!({"d": bad}));
            assert!(
                e.contains("is not a date in the form YYYY-MM-DD"),
                "{bad}: {e}"
            );
            assert!(e.contains("`d`"), "{e}");
        }
        let e = render_err("en", "{{date d}}", json!({"d": null}));
        assert!(e.contains("must be a string"), "{e}");
        let e = render_err("en", r#"{{date d "medium"}}"#, json!({"d": "2027-03-01"}));
        assert!(
            e.contains(r#"unknown format "medium""#) && e.contains(r#""weekday""#),
            "{e}"
        );
    }

    #[test]
    fn plural_russian_one_few_many() {
        let t = r#"{{n}} {{plural n "год" "года" "лет"}}"#;
        let cases = [
            (0, "лет"),
            (1, "год"),
            (2, "года"),
            (4, "года"),
            (5, "лет"),
            (11, "лет"),
            (12, "лет"),
            (14, "лет"),
            (21, "год"),
            (22, "года"),
            (25, "лет"),
            (101, "год"),
            (111, "лет"),
            (112, "лет"),
            (1002, "года"),
        ];
        for (n, word) in cases {
            assert_eq!(render("ru", t, json!({"n": n})), format!("{n} {word}"));
        }
    }

    #[test]
    fn plural_romanian_one_few_other() {
        let t = r#"{{n}} {{plural n "an" "ani" "de ani"}}"#;
        let cases = [
            (0, "ani"),
            (1, "an"),
            (2, "ani"),
            (5, "ani"),
            (19, "ani"),
            (20, "de ani"),
            (37, "de ani"),
            (100, "de ani"),
            (101, "ani"),
            (119, "ani"),
            (120, "de ani"),
        ];
        for (n, word) in cases {
            assert_eq!(render("ro", t, json!({"n": n})), format!("{n} {word}"));
        }
    }

    #[test]
    fn plural_english_one_other_ignores_a_third_form() {
        let t = r#"{{plural n "year" "years" "unused"}}"#;
        assert_eq!(render("en", t, json!({"n": 1})), "year");
        assert_eq!(render("en", t, json!({"n": 0})), "years");
        assert_eq!(render("en", t, json!({"n": 21})), "years");
        assert_eq!(
            render("en", r#"{{plural n "year" "years"}}"#, json!({"n": 2})),
            "years"
        );
    }

    #[test]
    fn plural_hash_form_and_numeric_strings() {
        let t = r#"{{plural n one="год" few="года" many="лет"}}"#;
        assert_eq!(render("ru", t, json!({"n": 3})), "года");
        assert_eq!(render("ru", t, json!({"n": "5"})), "лет");
        // `other=` covers categories not given.
        let t = r#"{{plural n one="year" other="years"}}"#;
        assert_eq!(render("en", t, json!({"n": 7})), "years");
        assert_eq!(
            render(
                "ro",
                r#"{{plural n one="an" other="ani"}}"#,
                json!({"n": 3})
            ),
            "ani"
        );
        let e = render_err("ru", r#"{{plural n one="год"}}"#, json!({"n": 5}));
        assert!(e.contains("`many=`"), "{e}");
    }

    #[test]
    fn plural_errors_name_the_problem() {
        let e = render_err("ru", r#"{{plural n "год" "года"}}"#, json!({"n": 5}));
        assert!(e.contains("needs 3 forms (one, few, many), got 2"), "{e}");
        let e = render_err("en", r#"{{plural n "year" "years"}}"#, json!({"n": null}));
        assert!(e.contains("whole number") && e.contains("{{#if"), "{e}");
        let e = render_err("en", r#"{{plural n "year" "years"}}"#, json!({"n": 1.5}));
        assert!(e.contains("whole number"), "{e}");
    }

    #[test]
    fn money_in_each_language() {
        let m = |lang, a, c| render(lang, r#"{{money a c}}"#, json!({"a": a, "c": c}));
        assert_eq!(m("en", 1250, "RON"), "RON 12.50");
        assert_eq!(m("en", 1250, "USD"), "$12.50");
        assert_eq!(m("en", 1250, "EUR"), "€12.50");
        assert_eq!(m("en", 123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(m("en", -5, "USD"), "-$0.05");
        assert_eq!(m("ru", 1250, "RUB"), "12,50 ₽");
        assert_eq!(m("ru", 1250, "RON"), "12,50 RON");
        assert_eq!(m("ru", 123_456_700, "RUB"), "1\u{202F}234\u{202F}567,00 ₽");
        assert_eq!(m("ro", 1250, "RON"), "12,50 lei");
        assert_eq!(m("ro", 1250, "EUR"), "12,50 €");
        assert_eq!(m("ro", 123_456_700, "RON"), "1.234.567,00 lei");
        assert_eq!(m("ro", 99, "MDL"), "0,99 MDL");
        assert_eq!(m("en", 1500, "JPY"), "JPY 1,500");
        assert_eq!(m("en", 100_000, "USD"), "$1,000.00");
    }

    #[test]
    fn money_rejects_bad_input() {
        let e = render_err("en", r#"{{money a "RON"}}"#, json!({"a": "12.50"}));
        assert!(e.contains("minor units"), "{e}");
        let e = render_err("en", r#"{{money a "lei"}}"#, json!({"a": 1}));
        assert!(e.contains("not a currency code"), "{e}");
        let e = render_err("en", r#"{{money a}}"#, json!({"a": 1}));
        assert!(e.contains("missing argument 2"), "{e}");
    }

    #[test]
    fn ordinals() {
        let o = |lang, n: i64| render(lang, "{{ordinal n}}", json!({"n": n}));
        let en = [
            (1, "1st"),
            (2, "2nd"),
            (3, "3rd"),
            (4, "4th"),
            (11, "11th"),
            (12, "12th"),
            (13, "13th"),
            (21, "21st"),
            (22, "22nd"),
            (23, "23rd"),
            (101, "101st"),
            (111, "111th"),
            (112, "112th"),
        ];
        for (n, s) in en {
            assert_eq!(o("en", n), s);
        }
        assert_eq!(o("ru", 1), "1-й");
        assert_eq!(o("ru", 25), "25-й");
        assert_eq!(o("ro", 1), "primul");
        assert_eq!(o("ro", 5), "al 5-lea");
        assert_eq!(o("ro", 2), "al 2-lea");
    }

    #[test]
    fn helper_output_is_escaped_in_html() {
        // Values, not raw output: the HTML registry escapes what helpers return.
        let h = reg(true);
        let ctx = json!({"customer": {"locale": "en"}, "n": 2});
        let out = h
            .render_template(r#"{{plural n "<b>" "<i>"}}"#, &ctx)
            .unwrap();
        assert_eq!(out, "&lt;i&gt;");
    }

    #[test]
    fn default_and_upper_still_work() {
        assert_eq!(
            render(
                "en",
                r#"{{default x "friend"}} {{upper y}}"#,
                json!({"x": " ", "y": "ana"})
            ),
            "friend ANA"
        );
    }
}
