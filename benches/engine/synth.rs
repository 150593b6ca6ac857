//! The synthetic shop: customers across ~45 IANA zones (Europe, Russia's eleven zones, the
//! Americas, Asia, the Pacific from UTC−11 to UTC+14), locales ro/ru/en/en-GB (so the ro, ru,
//! en-US and en-GB calendars are all used), realistic birthdays (some without a year, a few
//! Feb 29), signups over ten years, a `wedding` date for ~20%, email and/or phone (some
//! neither), preferred channels, and ~3 orders per customer over the last three years with a
//! skewed count (many 0–1, some 10+), amounts in minor units.
//!
//! Deterministic: every customer draws from its own PRNG seeded from (seed, index), so the
//! data do not depend on batch sizes. No crates beyond the project's: a splitmix64 seeder and
//! a xorshift64* stream.

use std::collections::BTreeMap;

use jiff::civil::{Date, date};
use jiff::{Timestamp, ToSpan};
use ritualist::domain::{Channel, Email, Locale, Phone, YearlyDate};
use ritualist::import::{CustomerRecord, OrderRecord};

/// Bump when the generated data change: cached databases are keyed by it.
pub const GEN_VERSION: u32 = 1;
const SEED: u64 = 0x5EED_2027_0616_0001;

/// Orders fall in `(ORDERS_FROM, ORDERS_TO]`: the three years up to shortly before the
/// ordinary day's tick (2027-06-16T23:00Z).
pub fn orders_to() -> Timestamp {
    "2027-06-16T22:30:00Z".parse().unwrap()
}
fn orders_from() -> Timestamp {
    "2024-06-16T22:30:00Z".parse().unwrap()
}
/// Signups fall on the ten years of days before the ordinary day.
fn signup_first() -> Date {
    date(2017, 6, 17)
}
fn signup_last() -> Date {
    date(2027, 6, 15)
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64*.
pub struct Rng(u64);

impl Rng {
    pub fn for_index(index: u64) -> Rng {
        let mut s = SEED ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let v = splitmix64(&mut s);
        Rng(if v == 0 { 1 } else { v })
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    /// An item by integer weight.
    pub fn weighted<'a, T>(&mut self, xs: &'a [(T, u32)]) -> &'a T {
        let total: u32 = xs.iter().map(|x| x.1).sum();
        let mut r = self.below(total as u64) as u32;
        for (x, w) in xs {
            if r < *w {
                return x;
            }
            r -= w;
        }
        &xs[xs.len() - 1].0
    }
}

struct Zone {
    name: &'static str,
    weight: u32,
    /// ISO 3166 code written as the `country` attribute (when the customer has one).
    country: &'static str,
    locales: &'static [(&'static str, u32)],
}

const RO: &[(&str, u32)] = &[("ro", 90), ("en", 5), ("ru", 5)];
const RU: &[(&str, u32)] = &[("ru", 97), ("en", 3)];
const EN: &[(&str, u32)] = &[("en", 1)];
const GB: &[(&str, u32)] = &[("en-GB", 1)];

const fn z(
    name: &'static str,
    weight: u32,
    country: &'static str,
    locales: &'static [(&'static str, u32)],
) -> Zone {
    Zone {
        name,
        weight,
        country,
        locales,
    }
}

/// Weights per 1000 customers: a Romanian–Russian shop with customers abroad.
const ZONES: &[Zone] = &[
    z("Europe/Bucharest", 200, "RO", RO),
    z("Europe/Chisinau", 40, "MD", &[("ro", 60), ("ru", 40)]),
    z(
        "Europe/London",
        50,
        "GB",
        &[("en-GB", 90), ("en", 5), ("ro", 5)],
    ),
    z("Europe/Dublin", 8, "IE", &[("en-GB", 80), ("en", 20)]),
    z("Europe/Lisbon", 5, "PT", &[("en", 60), ("en-GB", 40)]),
    z("Europe/Madrid", 12, "ES", &[("ro", 60), ("en", 40)]),
    z(
        "Europe/Paris",
        10,
        "FR",
        &[("en", 60), ("ro", 20), ("ru", 20)],
    ),
    z(
        "Europe/Berlin",
        15,
        "DE",
        &[("en", 50), ("ru", 30), ("ro", 20)],
    ),
    z("Europe/Rome", 15, "IT", &[("ro", 60), ("en", 40)]),
    z("Europe/Warsaw", 6, "PL", &[("en", 60), ("ru", 40)]),
    z("Europe/Athens", 4, "GR", EN),
    z("Europe/Helsinki", 4, "FI", &[("en", 50), ("ru", 50)]),
    z("Europe/Kyiv", 10, "UA", &[("ru", 70), ("en", 30)]),
    z("Europe/Istanbul", 5, "TR", &[("en", 70), ("ru", 30)]),
    z("Europe/Kaliningrad", 10, "RU", RU),
    z("Europe/Moscow", 150, "RU", &[("ru", 95), ("en", 5)]),
    z("Europe/Samara", 15, "RU", RU),
    z("Asia/Yekaterinburg", 25, "RU", RU),
    z("Asia/Omsk", 10, "RU", RU),
    z("Asia/Novosibirsk", 20, "RU", RU),
    z("Asia/Krasnoyarsk", 12, "RU", RU),
    z("Asia/Irkutsk", 8, "RU", RU),
    z("Asia/Yakutsk", 4, "RU", RU),
    z("Asia/Vladivostok", 8, "RU", RU),
    z("Asia/Magadan", 2, "RU", RU),
    z("Asia/Kamchatka", 3, "RU", RU),
    z(
        "America/New_York",
        60,
        "US",
        &[("en", 90), ("ru", 5), ("ro", 5)],
    ),
    z("America/Chicago", 30, "US", EN),
    z("America/Denver", 12, "US", EN),
    z("America/Phoenix", 6, "US", EN),
    z("America/Los_Angeles", 40, "US", &[("en", 90), ("ru", 10)]),
    z("America/Anchorage", 3, "US", EN),
    z("Pacific/Honolulu", 3, "US", EN),
    z(
        "America/Toronto",
        15,
        "CA",
        &[("en", 80), ("ru", 10), ("ro", 10)],
    ),
    z("America/Mexico_City", 5, "MX", EN),
    z("America/Sao_Paulo", 4, "BR", EN),
    z("Asia/Dubai", 6, "AE", &[("en", 60), ("ru", 40)]),
    z("Asia/Kolkata", 4, "IN", EN),
    z("Asia/Singapore", 3, "SG", GB),
    z("Asia/Tokyo", 4, "JP", EN),
    z("Australia/Sydney", 8, "AU", GB),
    z("Pacific/Auckland", 5, "NZ", GB),
    z("Pacific/Tongatapu", 2, "TO", GB),
    z("Pacific/Kiritimati", 2, "KI", EN),
    z("Pacific/Pago_Pago", 2, "AS", EN),
];

pub fn zone_count() -> usize {
    ZONES.len()
}

const RO_FIRST: &[&str] = &[
    "Ana",
    "Maria",
    "Elena",
    "Ioana",
    "Andreea",
    "Cristina",
    "Raluca",
    "Andrei",
    "Mihai",
    "Alexandru",
    "Ion",
    "Gabriel",
    "Ștefan",
    "Răzvan",
];
const RO_LAST: &[&str] = &[
    "Popescu",
    "Ionescu",
    "Popa",
    "Stan",
    "Dumitru",
    "Radu",
    "Munteanu",
    "Matei",
    "Constantin",
    "Țurcanu",
    "Lupu",
];
const RU_NAMES: &[(&str, &str)] = &[
    ("Анна", "Иванова"),
    ("Мария", "Смирнова"),
    ("Елена", "Кузнецова"),
    ("Ольга", "Попова"),
    ("Наталья", "Волкова"),
    ("Татьяна", "Соколова"),
    ("Иван", "Иванов"),
    ("Дмитрий", "Смирнов"),
    ("Сергей", "Кузнецов"),
    ("Алексей", "Попов"),
    ("Андрей", "Волков"),
    ("Михаил", "Соколов"),
];
const EN_FIRST: &[&str] = &[
    "Emma",
    "Olivia",
    "Sophia",
    "Amelia",
    "Grace",
    "James",
    "Oliver",
    "Jack",
    "Harry",
    "Noah",
    "Liam",
    "Charlotte",
];
const EN_LAST: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Miller",
    "O'Brien",
];

fn email_domain(rng: &mut Rng, locale: &str) -> &'static str {
    let domains: &[&'static str] = match locale {
        "ro" => &["gmail.com", "yahoo.com", "yahoo.ro", "example.ro"],
        "ru" => &["mail.ru", "yandex.ru", "gmail.com", "example.ru"],
        "en-GB" => &[
            "gmail.com",
            "outlook.com",
            "btinternet.com",
            "example.co.uk",
        ],
        _ => &["gmail.com", "outlook.com", "icloud.com", "example.com"],
    };
    domains[rng.below(domains.len() as u64) as usize]
}

fn phone(rng: &mut Rng, country: &str) -> String {
    let digits = |rng: &mut Rng, n: u32| {
        let v = rng.below(10u64.pow(n));
        format!("{v:0width$}", width = n as usize)
    };
    match country {
        "RO" => format!("+407{}", digits(rng, 8)),
        "MD" => format!("+3736{}", digits(rng, 7)),
        "RU" => format!("+79{}", digits(rng, 9)),
        "UA" => format!("+38067{}", digits(rng, 7)),
        "GB" => format!("+447{}", digits(rng, 9)),
        "US" | "CA" => format!("+1{}{}", 201 + rng.below(700), digits(rng, 7)),
        _ => format!("+4479{}", digits(rng, 8)),
    }
}

fn random_date(rng: &mut Rng, first: Date, last: Date) -> Date {
    let days = (last - first).get_days() as u64 + 1;
    first
        .checked_add((rng.below(days) as i64).days())
        .expect("within range")
}

fn yearly_in(rng: &mut Rng, first_year: i16, last_year: i16) -> YearlyDate {
    let d = random_date(rng, date(first_year, 1, 1), date(last_year, 12, 31));
    YearlyDate::new(Some(d.year()), d.month(), d.day()).expect("a real date")
}

/// How many orders a customer placed: many 0–1, a long tail (mean ≈ 3).
fn order_count(rng: &mut Rng) -> u32 {
    let u = rng.f64();
    if u < 0.30 {
        return 0;
    }
    if u < 0.55 {
        return 1;
    }
    // 1 + geometric with mean ≈ 5.1: P(≥ 11 orders) ≈ 7.5% of all customers.
    let p = 1.0 / 6.1;
    let mut n = 1;
    while n < 400 && !rng.chance(p) {
        n += 1;
    }
    n
}

/// Customer number `i` (0-based) and its orders (chronological).
pub fn customer(i: u64) -> (CustomerRecord, Vec<OrderRecord>) {
    let mut rng = Rng::for_index(i);
    let zone = {
        let weighted: Vec<(usize, u32)> = ZONES
            .iter()
            .enumerate()
            .map(|(k, z)| (k, z.weight))
            .collect();
        &ZONES[*rng.weighted(&weighted)]
    };
    let locale = *rng.weighted(zone.locales);
    let (first, last, latin) = match locale {
        "ro" => {
            let f = *rng.pick(RO_FIRST);
            (f, *rng.pick(RO_LAST), f)
        }
        "ru" => {
            let (f, l) = *rng.pick(RU_NAMES);
            (f, l, "user")
        }
        _ => {
            let f = *rng.pick(EN_FIRST);
            (f, *rng.pick(EN_LAST), f)
        }
    };
    // Contact data: ~7% neither, otherwise email for most and phone for many.
    let (has_email, has_phone) = if rng.chance(0.07) {
        (false, false)
    } else {
        match rng.below(100) {
            0..=34 => (true, false),
            35..=54 => (false, true),
            _ => (true, true),
        }
    };
    let email = has_email.then(|| {
        let local = latin
            .to_lowercase()
            .replace(['ș', 'ț', 'ă', 'â', 'î', '\''], "");
        let e = format!("{local}.{i}@{}", email_domain(&mut rng, locale));
        Email::parse(&e).expect("a valid email")
    });
    let phone =
        has_phone.then(|| Phone::parse(&phone(&mut rng, zone.country), None).expect("E.164"));
    let preferred_channel = match rng.below(100) {
        0..=19 => Some(Channel::Email),
        20..=29 => Some(Channel::Sms),
        _ => None,
    };
    // Birthdays: 85% known, a third of them without the year; Feb 29 happens naturally.
    let birthday = if rng.chance(0.85) {
        if rng.chance(0.3) {
            let d = random_date(&mut rng, date(2000, 1, 1), date(2000, 12, 31));
            Some(YearlyDate::new(None, d.month(), d.day()).expect("a real day"))
        } else {
            Some(yearly_in(&mut rng, 1950, 2008))
        }
    } else {
        None
    };
    let signup = random_date(&mut rng, signup_first(), signup_last());
    let signup_date = rng
        .chance(0.95)
        .then(|| YearlyDate::new(Some(signup.year()), signup.month(), signup.day()).unwrap());
    let mut custom_dates = BTreeMap::new();
    if rng.chance(0.2) {
        custom_dates.insert("wedding".to_string(), yearly_in(&mut rng, 1975, 2026));
    }
    let mut attributes = BTreeMap::new();
    if rng.chance(0.3) {
        attributes.insert("country".to_string(), zone.country.to_string());
    }
    if rng.chance(0.1) {
        attributes.insert(
            "tier".to_string(),
            rng.pick(&["gold", "silver", "bronze"]).to_string(),
        );
    }
    let external_id = format!("C{i:07}");
    let record = CustomerRecord {
        external_id: external_id.clone(),
        first_name: rng.chance(0.95).then(|| first.to_string()),
        last_name: rng.chance(0.8).then(|| last.to_string()),
        email,
        phone,
        locale: Locale::parse(locale).expect("a valid locale"),
        time_zone: zone.name.to_string(),
        birthday,
        signup_date,
        preferred_channel,
        custom_dates,
        attributes,
        refused: Default::default(),
    };

    // Orders after signup, within the last three years.
    let n = order_count(&mut rng);
    let signup_ts = signup
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a real day")
        .timestamp();
    let lo = orders_from().max(signup_ts).as_second();
    let hi = orders_to().as_second();
    let (currency, lo_major, hi_major) = match locale {
        "ro" => ("RON", 50.0f64, 1500.0f64),
        "ru" => ("RUB", 800.0, 25_000.0),
        "en-GB" => ("GBP", 15.0, 300.0),
        _ => ("USD", 15.0, 400.0),
    };
    let mut times: Vec<i64> = (0..n)
        .map(|_| lo + rng.below((hi - lo) as u64 + 1) as i64)
        .collect();
    times.sort_unstable();
    let orders = times
        .into_iter()
        .enumerate()
        .map(|(k, t)| {
            let major = (lo_major.ln() + rng.f64() * (hi_major / lo_major).ln()).exp();
            OrderRecord {
                external_id: format!("O{i:07}-{k:03}"),
                customer_external_id: external_id.clone(),
                ordered_at: Timestamp::from_second(t).expect("in range"),
                amount_minor: (major * 100.0).round() as i64,
                currency: currency.to_string(),
            }
        })
        .collect();
    (record, orders)
}
