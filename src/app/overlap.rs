//! `check`'s warning about rituals that would send twice for one occasion: two rituals on the
//! same holiday, two inactivity rituals (each step of a spell fires in both), two yearly
//! rituals on the same date field. A new Mother's Day ritual beside the shipped `holidays`
//! ritual sent two Mother's Day emails to the same customer the same day, and a second
//! win-back went to the same 600 customers as the first; nothing warned.
//!
//! Pure: it reads only the compiled rituals. Two rituals whose audiences cannot share a
//! customer (disjoint `countries` or `locales`) or whose milestones do not meet are left alone.

use std::collections::BTreeSet;

use crate::config::Diagnostic;
use crate::ritual::{Conditions, Ritual, Trigger};

/// One warning per pair of rituals that can send for the same occasion to the same customers,
/// at the later ritual's trigger, naming both files.
pub fn overlaps(rituals: &[Ritual]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, a) in rituals.iter().enumerate() {
        for b in &rituals[i + 1..] {
            let Some(occasion) = shared_occasion(&a.trigger, &b.trigger) else {
                continue;
            };
            if disjoint(&a.audience.conditions, &b.audience.conditions) {
                continue;
            }
            out.push(
                Diagnostic::warning(
                    &b.source,
                    b.trigger_line,
                    1,
                    format!(
                        "`{}` and `{}` both send for {occasion} to the same customers: they would get two messages",
                        b.name, a.name
                    ),
                )
                .with_hint(format!(
                    "`{}` is in {}; merge the two rituals, drop the occasion from one of them, or give them audiences that cannot overlap (countries, locales)",
                    a.name,
                    a.source.display()
                )),
            );
        }
    }
    out
}

/// What two triggers would both send for, in words; `None` when they cannot meet.
fn shared_occasion(a: &Trigger, b: &Trigger) -> Option<String> {
    match (a, b) {
        (Trigger::Holiday { ids: x, .. }, Trigger::Holiday { ids: y, .. }) => {
            let shared: Vec<&String> = x.iter().filter(|id| y.contains(id)).collect();
            match shared.as_slice() {
                [] => None,
                [one] => Some(format!("the holiday `{one}`")),
                many => Some(format!(
                    "the holidays {}",
                    many.iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        (Trigger::Inactivity { days: x }, Trigger::Inactivity { days: y }) => Some(format!(
            "the same inactivity spells (after {} and {} days without an order)",
            list(x),
            list(y)
        )),
        (
            Trigger::Yearly {
                date: x,
                milestones: mx,
                ..
            },
            Trigger::Yearly {
                date: y,
                milestones: my,
                ..
            },
        ) if x == y => {
            if let (Some(mx), Some(my)) = (mx, my)
                && !mx.iter().any(|m| my.contains(m))
            {
                return None;
            }
            Some(format!("the same yearly date (`{}`)", field_name(x)))
        }
        _ => None,
    }
}

fn list(days: &[i32]) -> String {
    days.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn field_name(f: &crate::ritual::YearlyField) -> String {
    use crate::ritual::YearlyField::*;
    match f {
        Birthday => "birthday".into(),
        Signup => "signup".into(),
        FirstPurchase => "first_purchase".into(),
        Custom(c) => format!("custom: {c}"),
    }
}

/// Audiences that cannot share a customer: both name countries, none in common; or both name
/// locales, none a prefix of the other's.
fn disjoint(a: &Conditions, b: &Conditions) -> bool {
    let countries = !a.countries.is_empty()
        && !b.countries.is_empty()
        && a.countries
            .iter()
            .collect::<BTreeSet<_>>()
            .is_disjoint(&b.countries.iter().collect());
    let locales = !a.locales.is_empty()
        && !b.locales.is_empty()
        && !a.locales.iter().any(|x| {
            b.locales
                .iter()
                .any(|y| x.starts_with(y.as_str()) || y.starts_with(x.as_str()))
        });
    countries || locales
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn ritual(name: &str, yaml: &str) -> Ritual {
        crate::ritual::parse_ritual(Path::new(&format!("rituals/{name}.yaml")), yaml)
            .unwrap()
            .unwrap()
    }

    const TAIL: &str = "send_time: \"10:00\"\nchannels: [email]\ntemplate: t\n";

    fn holiday(name: &str, ids: &str, extra: &str) -> Ritual {
        ritual(
            name,
            &format!("trigger:\n  holiday:\n    ids: [{ids}]\n{TAIL}{extra}"),
        )
    }

    #[test]
    fn two_rituals_on_one_holiday_are_reported_naming_both_files() {
        let shipped = holiday("holidays", "womens_day, mothers_day, new_year", "");
        let mothers = holiday("mothers_day", "mothers_day", "");
        let d = overlaps(&[shipped.clone(), mothers]);
        assert_eq!(d.len(), 1, "{d:?}");
        let text = d[0].to_string();
        assert!(
            text.contains("rituals/mothers_day.yaml:2")
                && text.contains(
                    "`mothers_day` and `holidays` both send for the holiday `mothers_day`"
                )
                && text.contains("rituals/holidays.yaml"),
            "{text}"
        );
        // Other holidays, or audiences that cannot meet, are fine.
        let easter = holiday("easter", "easter", "");
        let ru_mothers = holiday(
            "ru_mothers",
            "mothers_day",
            "audience:\n  countries: [RU]\n",
        );
        let ro_mothers = holiday(
            "ro_mothers",
            "mothers_day",
            "audience:\n  countries: [RO, MD]\n",
        );
        assert!(overlaps(&[shipped.clone(), easter]).is_empty());
        assert!(overlaps(&[ru_mothers, ro_mothers]).is_empty());
    }

    #[test]
    fn two_win_backs_and_two_birthday_rituals_are_reported() {
        let inactivity = |name: &str, days: &str| {
            ritual(
                name,
                &format!("trigger:\n  inactivity:\n    days: [{days}]\n{TAIL}"),
            )
        };
        let d = overlaps(&[
            inactivity("winback", "45, 90"),
            inactivity("winback2", "60"),
        ]);
        assert_eq!(d.len(), 1);
        assert!(d[0].to_string().contains("45/90 and 60 days"), "{}", d[0]);
        let yearly = |name: &str, extra: &str| {
            ritual(
                name,
                &format!("trigger:\n  yearly:\n    date: signup\n{extra}{TAIL}"),
            )
        };
        let d = overlaps(&[
            yearly("anniversary", ""),
            yearly("club", "    offset_days: -3\n"),
        ]);
        assert_eq!(d.len(), 1);
        assert!(d[0].to_string().contains("(`signup`)"), "{}", d[0]);
        // Milestones that never meet do not overlap.
        let first = yearly("first", "    milestones: [1]\n");
        let tenth = yearly("tenth", "    milestones: [5, 10]\n");
        assert!(overlaps(&[first, tenth]).is_empty());
        // Different date fields do not overlap.
        let birthday = ritual(
            "birthday",
            &format!("trigger:\n  yearly:\n    date: birthday\n{TAIL}"),
        );
        assert!(overlaps(&[birthday, yearly("anniversary", "")]).is_empty());
    }
}
