use std::path::Path;

use jiff::civil::date;

use super::*;

fn shipped() -> BTreeMap<String, Calendar> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/calendars");
    load_calendars(&dir).unwrap_or_else(|d| panic!("{d}"))
}

fn parse(text: &str) -> Result<Calendar, Diagnostics> {
    parse_calendar(Path::new("calendars/xx.yaml"), "xx", text)
}

use crate::config::Diagnostics;

#[test]
fn the_shipped_calendars_all_load() {
    let all = shipped();
    for id in ["ro", "ru", "en-US", "en-GB"] {
        let c = &all[id];
        assert_eq!(c.id, id);
        assert!(c.holiday("mothers_day").is_some(), "{id}");
        assert!(c.holiday("new_year").is_some(), "{id}");
        // Every holiday has a name in English, and every shipped rule has a date in 2026
        // (decreed dates are listed up to 2026).
        for h in &c.holidays {
            assert!(h.names.contains_key("en"), "{id}/{}", h.id);
            assert!(h.date_in(2026).is_some(), "{id}/{}", h.id);
        }
    }
}

#[test]
fn published_dates_2024_to_2028() {
    let all = shipped();
    #[rustfmt::skip]
    let table = [
        // Mother's Day in each country.
        ("ro", "mothers_day", 2024, date(2024, 5, 5)),
        ("ro", "mothers_day", 2025, date(2025, 5, 4)),
        ("ro", "mothers_day", 2026, date(2026, 5, 3)),
        ("ru", "mothers_day", 2024, date(2024, 11, 24)),
        ("ru", "mothers_day", 2025, date(2025, 11, 30)),
        ("ru", "mothers_day", 2026, date(2026, 11, 29)),
        ("en-US", "mothers_day", 2024, date(2024, 5, 12)),
        ("en-US", "mothers_day", 2025, date(2025, 5, 11)),
        ("en-US", "mothers_day", 2026, date(2026, 5, 10)),
        ("en-GB", "mothers_day", 2024, date(2024, 3, 10)),
        ("en-GB", "mothers_day", 2025, date(2025, 3, 30)),
        ("en-GB", "mothers_day", 2026, date(2026, 3, 15)),
        ("en-GB", "mothers_day", 2027, date(2027, 3, 7)),
        // Father's Day.
        ("en-US", "fathers_day", 2025, date(2025, 6, 15)),
        ("en-GB", "fathers_day", 2026, date(2026, 6, 21)),
        ("ro", "fathers_day", 2025, date(2025, 5, 11)),
        ("ru", "fathers_day", 2025, date(2025, 10, 19)),
        // Easter.
        ("en-US", "easter", 2024, date(2024, 3, 31)),
        ("en-US", "easter", 2025, date(2025, 4, 20)),
        ("en-GB", "easter", 2026, date(2026, 4, 5)),
        ("en-GB", "easter", 2027, date(2027, 3, 28)),
        ("en-US", "easter", 2028, date(2028, 4, 16)),
        ("ru", "orthodox_easter", 2024, date(2024, 5, 5)),
        ("ro", "orthodox_easter", 2025, date(2025, 4, 20)),
        ("ro", "orthodox_easter", 2026, date(2026, 4, 12)),
        ("ru", "orthodox_easter", 2027, date(2027, 5, 2)),
        ("ru", "orthodox_easter", 2028, date(2028, 4, 16)),
        ("en-GB", "good_friday", 2025, date(2025, 4, 18)),
        // Black Friday, Thanksgiving and US Monday holidays.
        ("en-US", "black_friday", 2024, date(2024, 11, 29)),
        ("en-US", "black_friday", 2025, date(2025, 11, 28)),
        ("en-GB", "black_friday", 2026, date(2026, 11, 27)),
        ("en-US", "black_friday", 2027, date(2027, 11, 26)),
        ("en-US", "black_friday", 2028, date(2028, 11, 24)),
        ("en-US", "thanksgiving", 2025, date(2025, 11, 27)),
        ("en-US", "cyber_monday", 2025, date(2025, 12, 1)),
        ("en-US", "memorial_day", 2026, date(2026, 5, 25)),
        ("en-US", "labor_day", 2026, date(2026, 9, 7)),
        ("en-GB", "summer_bank_holiday", 2025, date(2025, 8, 25)),
        // Fixed dates.
        ("ro", "womens_day", 2026, date(2026, 3, 8)),
        ("ru", "womens_day", 2026, date(2026, 3, 8)),
        ("ru", "defender_day", 2026, date(2026, 2, 23)),
        ("ro", "christmas", 2026, date(2026, 12, 25)),
        ("ru", "orthodox_christmas", 2027, date(2027, 1, 7)),
        ("ru", "new_years_eve_day_off", 2025, date(2025, 12, 31)),
    ];
    for (cal, holiday, year, want) in table {
        let h = all[cal]
            .holiday(holiday)
            .unwrap_or_else(|| panic!("{cal}/{holiday}"));
        assert_eq!(h.date_in(year), Some(want), "{cal}/{holiday} in {year}");
    }
}

#[test]
fn easter_follows_the_country() {
    let all = shipped();
    for id in ["ro", "ru"] {
        assert!(all[id].holiday("orthodox_easter").is_some());
        assert!(all[id].holiday("easter").is_none(), "{id}");
    }
    for id in ["en-US", "en-GB"] {
        assert!(all[id].holiday("easter").is_some());
        assert!(all[id].holiday("orthodox_easter").is_none(), "{id}");
    }
    assert!(all["ro"].holiday("christmas").is_some());
    assert!(all["ru"].holiday("christmas").is_none());
}

#[test]
fn validity_years_and_decreed_dates() {
    let all = shipped();
    let ru = &all["ru"];
    let fathers = ru.holiday("fathers_day").unwrap();
    assert_eq!(fathers.date_in(2020), None);
    assert_eq!(fathers.date_in(2021), Some(date(2021, 10, 17)));
    let eve = ru.holiday("new_years_eve_day_off").unwrap();
    assert_eq!(eve.date_in(2023), None);
    assert_eq!(eve.date_in(2026), Some(date(2026, 12, 31)));

    let c =
        parse("holidays:\n  x:\n    rule: 03-08\n    valid_from: 2020\n    valid_until: 2022\n")
            .unwrap();
    let x = c.holiday("x").unwrap();
    assert_eq!(x.date_in(2019), None);
    assert_eq!(x.date_in(2020), Some(date(2020, 3, 8)));
    assert_eq!(x.date_in(2022), Some(date(2022, 3, 8)));
    assert_eq!(x.date_in(2023), None);
}

#[test]
fn dates_in_a_year_are_sorted() {
    let all = shipped();
    let dates = all["en-GB"].dates_in(2026);
    assert!(dates.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(dates.first().map(|(_, h)| h.id.as_str()), Some("new_year"));
    let ids: Vec<&str> = dates.iter().map(|(_, h)| h.id.as_str()).collect();
    let pos = |id| ids.iter().position(|i| *i == id).unwrap();
    assert!(pos("mothers_day") < pos("good_friday"));
    assert!(pos("good_friday") < pos("easter"));
    // The decreed day off is absent in a year without a decree.
    assert!(
        all["ru"]
            .dates_in(2030)
            .iter()
            .all(|(_, h)| h.id != "new_years_eve_day_off")
    );
}

#[test]
fn names_fall_back_to_english_then_the_id() {
    let all = shipped();
    let ro = all["ro"].holiday("mothers_day").unwrap();
    assert_eq!(ro.name("ro-RO"), "Ziua Mamei");
    assert_eq!(ro.name("ro_MD"), "Ziua Mamei");
    assert_eq!(ro.name("RO"), "Ziua Mamei");
    assert_eq!(ro.name("de"), "Mother's Day");
    assert_eq!(
        all["ru"].holiday("defender_day").unwrap().name("ru"),
        "День защитника Отечества"
    );
    let c =
        parse("holidays:\n  black_friday:\n    rule: 4th thursday of november + 1 day\n").unwrap();
    assert_eq!(c.holidays[0].name("ro"), "black_friday");
}

#[test]
fn the_calendar_follows_country_then_locale() {
    let table = [
        (Some("RO"), "en", "ro"),
        (Some("md"), "ru-MD", "ro"),
        (Some("RU"), "en-US", "ru"),
        (Some("GB"), "en", "en-GB"),
        (Some("UK"), "en", "en-GB"),
        (Some("US"), "ro", "en-US"),
        (None, "ro", "ro"),
        (None, "ro-RO", "ro"),
        (None, "ru_RU", "ru"),
        (None, "en-GB", "en-GB"),
        (None, "en_gb", "en-GB"),
        (None, "en", "en-US"),
        (None, "en-US", "en-US"),
        (Some("DE"), "ru", "ru"),
        (Some("DE"), "de", "DEFAULT"),
        (None, "en-AU", "DEFAULT"),
        (None, "", "DEFAULT"),
    ];
    for (country, locale, want) in table {
        assert_eq!(
            calendar_for(country, locale, "DEFAULT"),
            want,
            "{country:?} {locale}"
        );
    }
}

/// #24: `audience: { countries: [RO] }` matched nobody whose locale is plain `ro`, although
/// the calendar treats them as Romanian. One function says where a customer is, and the
/// calendar it picks is the one it picked before.
#[test]
fn where_a_customer_is_agrees_with_their_calendar() {
    use super::country_of;
    let table = [
        (Some("md"), "ro", "ro", Some("MD")),
        (Some(" ro "), "en", "ro", Some("RO")),
        (None, "ro", "en-US", Some("RO")),
        (None, "ru", "en-US", Some("RU")),
        (None, "ro-MD", "en-US", Some("MD")),
        (None, "en_gb", "ro", Some("GB")),
        (None, "en", "ro", Some("US")),
        (None, "de", "ro", Some("RO")),
        (None, "de", "en-GB", Some("GB")),
        (None, "de", "custom", None),
        (Some("Romania"), "ro", "ro", Some("RO")),
    ];
    for (attr, locale, default, want) in table {
        assert_eq!(
            country_of(attr, locale, default).as_deref(),
            want,
            "{attr:?} {locale} {default}"
        );
    }
    for attr in [
        None,
        Some("RO"),
        Some("MD"),
        Some("RU"),
        Some("GB"),
        Some("US"),
        Some("DE"),
    ] {
        for locale in [
            "ro", "ro-MD", "ru", "ru_RU", "en", "en-GB", "en-US", "en-AU", "de", "",
        ] {
            for default in ["ro", "ru", "en-US", "en-GB"] {
                let country = country_of(attr, locale, default);
                assert_eq!(
                    calendar_for(country.as_deref(), locale, default),
                    calendar_for(attr, locale, default),
                    "{attr:?} {locale} {default}"
                );
            }
        }
    }
}

#[test]
fn an_unknown_calendar_id_is_an_error_with_the_known_ones() {
    let all = shipped();
    assert_eq!(find_calendar(&all, "ro").unwrap().id, "ro");
    let e = find_calendar(&all, "en-us").unwrap_err();
    assert_eq!(e.to_string(), "unknown calendar `en-us`");
    let hint = e.hint();
    assert!(hint.contains("did you mean `en-US`?"), "{hint}");
    assert!(hint.contains("en-GB, en-US, ro, ru"), "{hint}");
}

#[test]
fn a_bad_rule_points_at_the_word_with_the_accepted_forms() {
    let text = "holidays:\n  new_year:\n    rule: 01-01\n  mothers_day:\n    \
                name: { en: Mother's Day }\n    rule: 2nd sundy of may\n";
    let d = parse(text).unwrap_err();
    assert_eq!(d.0.len(), 1, "{d}");
    let d = &d.0[0];
    assert_eq!((d.line, d.column), (6, 15), "{d}");
    assert!(
        d.message.contains("mothers_day") && d.message.contains("`sundy`"),
        "{d}"
    );
    let hint = d.hint.as_deref().unwrap();
    assert!(hint.starts_with("did you mean `sunday`?"), "{hint}");
    for form in [
        "MM-DD",
        "Nth WEEKDAY of MONTH",
        "last WEEKDAY of MONTH",
        "orthodox easter",
        "+ N days",
    ] {
        assert!(hint.contains(form), "{hint}");
    }
}

#[test]
fn a_quoted_rule_still_points_at_the_word() {
    let d = parse("holidays:\n  x:\n    rule: \"easter + 2 weeks\"\n").unwrap_err();
    // `rule: "` is 11 characters: the string starts at column 12, `weeks` 11 further.
    assert_eq!((d.0[0].line, d.0[0].column), (3, 23), "{d}");
}

#[test]
fn every_bad_holiday_is_reported() {
    let text = "\
holidays:
  a:
    rule: 13-01
  b:
    name: { en: B }
  c:
    rule: 03-08
    dates: { 2026: 03-09 }
  d:
    dates: { 2025: 02-29, 2026: 2027-01-01 }
  e:
    rule: easter
    valid_from: 2030
    valid_until: 2020
  Bad-Id:
    rule: easter
  g:
    name: { english: G }
    rule: easter
";
    let d = parse(text).unwrap_err();
    let lines: Vec<u64> = d.0.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![3, 4, 8, 10, 10, 14, 15, 18], "{d}");
    assert!(d.0[0].message.contains("no month 13"), "{d}");
    assert!(d.0[1].message.contains("no `rule:` or `dates:`"), "{d}");
    assert!(d.0[2].message.contains("both"), "{d}");
    assert!(d.0[3].message.contains("2025-02-29 does not exist"), "{d}");
    assert!(d.0[4].message.contains("not in 2026"), "{d}");
    assert!(d.0[5].message.contains("before valid_from"), "{d}");
    assert!(d.0[6].message.contains("invalid holiday id"), "{d}");
    assert!(d.0[7].message.contains("language code"), "{d}");
}

#[test]
fn a_holiday_id_used_twice_is_an_error() {
    let d = parse("holidays:\n  easter:\n    rule: easter\n  easter:\n    rule: easter + 1 day\n")
        .unwrap_err();
    assert_eq!(d.0[0].line, 4, "{d}");
    assert!(d.0[0].hint.is_some(), "{d}");
}

#[test]
fn unknown_keys_are_refused_with_a_hint() {
    let d = parse("holidays:\n  x:\n    rules: easter\n").unwrap_err();
    assert_eq!(d.0[0].line, 3, "{d}");
    assert!(
        d.0[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("did you mean `rule`"),
        "{d}"
    );
}

#[test]
fn loading_a_folder_checks_the_file_names() {
    let dir = std::env::temp_dir().join(format!("ritualist-calendars-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ro.yaml"), "holidays:\n  x:\n    rule: easter\n").unwrap();
    std::fs::write(dir.join("ro.yml"), "holidays: {}\n").unwrap();
    std::fs::write(dir.join("bad id.yaml"), "holidays: {}\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let d = load_calendars(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let messages: Vec<&str> = d.0.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "invalid calendar id `bad id` (the file name)",
            "calendar `ro` is defined twice"
        ]
    );
    assert!(load_calendars(Path::new("/nonexistent/calendars")).is_err());
}
