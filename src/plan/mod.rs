//! The decision function: given the rituals, one customer's facts, their consent and `now`,
//! what happens? Send on a channel at an instant, suppress with a reason, or nothing yet.
//!
//! Pure: no clock, no I/O. The daemon, `plan`-style dry runs, `preview` and the tests all
//! call [`decide`], so a dry run cannot drift from what the daemon really does.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::domain::{Channel, Email, Locale, Phone, YearlyDate};
use crate::ritual::{DeliverPolicy, Ritual, Trigger, YearlyField};

/// What the planner knows about a customer.
#[derive(Debug, Clone)]
pub struct CustomerFacts {
    pub id: i64,
    pub external_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub locale: Locale,
    pub zone: TimeZone,
    pub birthday: Option<YearlyDate>,
    pub preferred_channel: Option<Channel>,
    pub attributes: BTreeMap<String, String>,
}

impl CustomerFacts {
    pub fn contact(&self, channel: Channel) -> Option<String> {
        match channel {
            Channel::Email => self.email.as_ref().map(|e| e.to_string()),
            Channel::Sms => self.phone.as_ref().map(|p| p.to_string()),
        }
    }
}

/// The scopes a customer opted out of: `all`, `channel:<email|sms>`, `ritual:<name>`,
/// `category:<name>` (a category opt-out leaves every other category alone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consent {
    pub opted_out: BTreeSet<String>,
}

impl Consent {
    pub fn opted_out_of(scopes: &[&str]) -> Self {
        Consent {
            opted_out: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }
    /// The scope that stops this ritual for this customer whatever the channel.
    fn blocks_ritual(&self, ritual: &Ritual) -> Option<String> {
        [
            "all".to_string(),
            format!("ritual:{}", ritual.name),
            format!("category:{}", ritual.category),
        ]
        .into_iter()
        .find(|s| self.opted_out.contains(s))
    }
    fn blocks_channel(&self, channel: Channel) -> bool {
        self.opted_out.contains(&format!("channel:{channel}"))
    }
}

/// The occasion a message celebrates: available to templates as `occasion.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occasion {
    /// The local date it is celebrated on.
    pub date: Date,
    /// The year of the occurrence (the key of yearly rituals).
    pub year: i16,
    /// Age reached / years since the original date, when its year is known.
    pub years: Option<i16>,
}

impl Occasion {
    /// The occurrence part of the ledger key: the year for yearly rituals.
    pub fn occurrence(&self) -> String {
        self.year.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Send {
        channel: Channel,
        recipient: String,
        due_at: Timestamp,
    },
    Suppress {
        channel: Option<Channel>,
        reason: String,
    },
}

/// One decision: the occurrence it is about and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub ritual: String,
    pub customer_id: i64,
    /// The occurrence part of the key: the year for yearly rituals.
    pub occurrence: String,
    pub occasion: Occasion,
    pub outcome: Outcome,
}

impl Decision {
    pub fn channel_key(&self) -> &'static str {
        match &self.outcome {
            Outcome::Send { channel, .. }
            | Outcome::Suppress {
                channel: Some(channel),
                ..
            } => channel.as_str(),
            Outcome::Suppress { channel: None, .. } => "none",
        }
    }
}

/// When (if ever) the ritual's occasion falls on `date` for this customer.
pub fn occasion_on(ritual: &Ritual, c: &CustomerFacts, date: Date) -> Option<Occasion> {
    match &ritual.trigger {
        Trigger::Yearly {
            date: YearlyField::Birthday,
            feb29,
        } => {
            let b = c.birthday?;
            let celebrated = b.in_year(date.year(), *feb29)?;
            (celebrated == date).then(|| Occasion {
                date,
                year: date.year(),
                years: b.years_at(date.year()),
            })
        }
    }
}

/// Decides ritual × customer at `now`. Empty when nothing is due yet (or at all) today.
///
/// A yearly occasion is due from its local send time until the end of that local day; ticks
/// after that do not revive it (grace windows for longer outages come with the engine issue).
pub fn decide(
    ritual: &Ritual,
    c: &CustomerFacts,
    consent: &Consent,
    now: Timestamp,
) -> Vec<Decision> {
    let local = now.to_zoned(c.zone.clone());
    let today = local.date();
    let Some(occasion) = occasion_on(ritual, c, today) else {
        return Vec::new();
    };
    let Ok(due) = today.to_datetime(ritual.send_time).to_zoned(c.zone.clone()) else {
        return Vec::new();
    };
    let due_at = due.timestamp();
    if now < due_at {
        return Vec::new();
    }
    let decision = |outcome| Decision {
        ritual: ritual.name.clone(),
        customer_id: c.id,
        occurrence: occasion.occurrence(),
        occasion: occasion.clone(),
        outcome,
    };
    if let Some(scope) = consent.blocks_ritual(ritual) {
        return vec![decision(Outcome::Suppress {
            channel: None,
            reason: format!("opted_out:{scope}"),
        })];
    }
    let reachable: Vec<Channel> = ritual
        .channels
        .iter()
        .copied()
        .filter(|ch| c.contact(*ch).is_some() && !consent.blocks_channel(*ch))
        .collect();
    if reachable.is_empty() {
        let blocked: Vec<&Channel> = ritual
            .channels
            .iter()
            .filter(|ch| c.contact(**ch).is_some() && consent.blocks_channel(**ch))
            .collect();
        let reason = match blocked.first() {
            Some(ch) => format!("opted_out:channel:{ch}"),
            None => "no_contact".to_string(),
        };
        return vec![decision(Outcome::Suppress {
            channel: None,
            reason,
        })];
    }
    let chosen: Vec<Channel> = match ritual.deliver {
        DeliverPolicy::All => reachable,
        DeliverPolicy::Preferred => {
            let pick = c
                .preferred_channel
                .filter(|p| reachable.contains(p))
                .unwrap_or(reachable[0]);
            vec![pick]
        }
    };
    chosen
        .into_iter()
        .map(|channel| {
            let recipient = c
                .contact(channel)
                .expect("reachable channels have contact data");
            decision(Outcome::Send {
                channel,
                recipient,
                due_at,
            })
        })
        .collect()
}

/// The `month * 100 + day` values whose customers may have an occasion today somewhere on
/// Earth at `now` (local dates span UTC−12 … UTC+14), including Feb 29 when a non-leap year
/// celebrates it on Feb 28 or Mar 1. The store probes its month-day index with these.
pub fn candidate_month_days(now: Timestamp) -> Vec<i32> {
    let utc = now.to_zoned(TimeZone::UTC).date();
    let mut out = BTreeSet::new();
    for delta in -1i32..=1 {
        let Ok(d) = utc.checked_add(jiff::Span::new().days(delta)) else {
            continue;
        };
        out.insert(d.month() as i32 * 100 + d.day() as i32);
        let leap = d.in_leap_year();
        if !leap && ((d.month() == 2 && d.day() == 28) || (d.month() == 3 && d.day() == 1)) {
            out.insert(229);
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Feb29Policy;
    use jiff::civil::Time;
    use std::path::PathBuf;

    fn ritual(feb29: Feb29Policy, deliver: DeliverPolicy) -> Ritual {
        Ritual {
            name: "birthday".into(),
            description: None,
            trigger: Trigger::Yearly {
                date: YearlyField::Birthday,
                feb29,
            },
            send_time: Time::constant(10, 0, 0, 0),
            channels: vec![Channel::Email, Channel::Sms],
            deliver,
            template: "birthday".into(),
            category: "birthday".into(),
            priority: 0,
            sms_max_segments: 2,
            source: PathBuf::from("birthday.yaml"),
            template_line: 1,
        }
    }

    fn customer(zone: &str, birthday: &str) -> CustomerFacts {
        CustomerFacts {
            id: 7,
            external_id: "c7".into(),
            first_name: Some("Ana".into()),
            last_name: None,
            email: Some(Email::parse("ana@example.com").unwrap()),
            phone: Some(Phone::parse("+40721234567", None).unwrap()),
            locale: Locale::parse("ro").unwrap(),
            zone: TimeZone::get(zone).unwrap(),
            birthday: Some(YearlyDate::parse(birthday).unwrap()),
            preferred_channel: None,
            attributes: BTreeMap::new(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_at_local_send_time_in_the_customers_zone() {
        let r = ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred);
        let c = customer("Asia/Vladivostok", "1990-03-01"); // UTC+10
        // 09:59 local on Mar 1 = 23:59 UTC Feb 28: not yet.
        assert!(decide(&r, &c, &Consent::default(), at("2027-02-28T23:59:00Z")).is_empty());
        let d = decide(&r, &c, &Consent::default(), at("2027-03-01T00:00:00Z"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].occurrence, "2027");
        assert_eq!(d[0].occasion.years, Some(37));
        match &d[0].outcome {
            Outcome::Send {
                channel, due_at, ..
            } => {
                assert_eq!(*channel, Channel::Email);
                assert_eq!(*due_at, at("2027-03-01T00:00:00Z"));
            }
            other => panic!("{other:?}"),
        }
        // The next local day: nothing.
        assert!(decide(&r, &c, &Consent::default(), at("2027-03-01T14:00:00Z")).is_empty());
    }

    #[test]
    fn feb29_follows_the_policy() {
        let c = customer("UTC", "2000-02-29");
        let feb28 = at("2027-02-28T12:00:00Z");
        let mar1 = at("2027-03-01T12:00:00Z");
        let r = ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred);
        assert_eq!(decide(&r, &c, &Consent::default(), feb28).len(), 1);
        assert!(decide(&r, &c, &Consent::default(), mar1).is_empty());
        let r = ritual(Feb29Policy::Mar1, DeliverPolicy::Preferred);
        assert!(decide(&r, &c, &Consent::default(), feb28).is_empty());
        assert_eq!(decide(&r, &c, &Consent::default(), mar1).len(), 1);
        let r = ritual(Feb29Policy::Skip, DeliverPolicy::Preferred);
        assert!(decide(&r, &c, &Consent::default(), feb28).is_empty());
        assert!(decide(&r, &c, &Consent::default(), mar1).is_empty());
        assert_eq!(
            decide(&r, &c, &Consent::default(), at("2028-02-29T12:00:00Z")).len(),
            1
        );
    }

    #[test]
    fn preferred_channel_and_all() {
        let mut c = customer("UTC", "1990-05-05");
        c.preferred_channel = Some(Channel::Sms);
        let now = at("2027-05-05T12:00:00Z");
        let d = decide(
            &ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred),
            &c,
            &Consent::default(),
            now,
        );
        assert!(matches!(
            d[0].outcome,
            Outcome::Send {
                channel: Channel::Sms,
                ..
            }
        ));
        c.phone = None;
        let d = decide(
            &ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred),
            &c,
            &Consent::default(),
            now,
        );
        assert!(
            matches!(
                d[0].outcome,
                Outcome::Send {
                    channel: Channel::Email,
                    ..
                }
            ),
            "falls back to a channel with contact"
        );
        c.phone = Some(Phone::parse("+40721234567", None).unwrap());
        let d = decide(
            &ritual(Feb29Policy::Feb28, DeliverPolicy::All),
            &c,
            &Consent::default(),
            now,
        );
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn opt_outs_and_missing_contact_suppress_with_a_reason() {
        let c = customer("UTC", "1990-05-05");
        let now = at("2027-05-05T12:00:00Z");
        let r = ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred);
        let reason =
            |consent: &Consent, c: &CustomerFacts| match &decide(&r, c, consent, now)[0].outcome {
                Outcome::Suppress { reason, .. } => reason.clone(),
                Outcome::Send { channel, .. } => format!("send:{channel}"),
            };
        assert_eq!(
            reason(&Consent::opted_out_of(&["all"]), &c),
            "opted_out:all"
        );
        assert_eq!(
            reason(&Consent::opted_out_of(&["category:birthday"]), &c),
            "opted_out:category:birthday"
        );
        assert_eq!(
            reason(&Consent::opted_out_of(&["category:digest"]), &c),
            "send:email"
        );
        assert_eq!(
            reason(&Consent::opted_out_of(&["channel:email"]), &c),
            "send:sms"
        );
        assert_eq!(
            reason(
                &Consent::opted_out_of(&["channel:email", "channel:sms"]),
                &c
            ),
            "opted_out:channel:email"
        );
        let mut nobody = c.clone();
        nobody.email = None;
        nobody.phone = None;
        assert_eq!(reason(&Consent::default(), &nobody), "no_contact");
    }

    #[test]
    fn dst_gap_send_time_moves_forward() {
        // Europe/Bucharest springs forward 2027-03-28 03:00 → 04:00; a 03:30 send time does not exist.
        let mut r = ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred);
        r.send_time = Time::constant(3, 30, 0, 0);
        let c = customer("Europe/Bucharest", "1990-03-28");
        let d = decide(&r, &c, &Consent::default(), at("2027-03-28T12:00:00Z"));
        match &d[0].outcome {
            Outcome::Send { due_at, .. } => assert_eq!(*due_at, at("2027-03-28T01:30:00Z")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn candidate_days_cover_all_zones_and_feb29() {
        assert_eq!(
            candidate_month_days(at("2027-05-05T12:00:00Z")),
            vec![504, 505, 506]
        );
        assert_eq!(
            candidate_month_days(at("2027-02-28T12:00:00Z")),
            vec![227, 228, 229, 301]
        );
        assert_eq!(
            candidate_month_days(at("2028-02-28T12:00:00Z")),
            vec![227, 228, 229]
        );
    }

    proptest::proptest! {
        /// For any zone and instant, a customer whose birthday is their local today is decided
        /// exactly once per channel set, and the due instant is never after `now`.
        #[test]
        fn decided_once_and_never_early(secs in 1_700_000_000i64..1_900_000_000i64, zi in 0usize..6) {
            let zones = ["UTC", "Europe/Bucharest", "Europe/Moscow", "America/New_York", "Pacific/Kiritimati", "Pacific/Pago_Pago"];
            let now = Timestamp::from_second(secs).unwrap();
            let tz = TimeZone::get(zones[zi]).unwrap();
            let local = now.to_zoned(tz).date();
            let bday = format!("1980-{:02}-{:02}", local.month(), local.day());
            let c = customer(zones[zi], &bday);
            let r = ritual(Feb29Policy::Feb28, DeliverPolicy::Preferred);
            let d = decide(&r, &c, &Consent::default(), now);
            proptest::prop_assert!(d.len() <= 1);
            for x in &d {
                if let Outcome::Send { due_at, .. } = x.outcome { proptest::prop_assert!(due_at <= now); }
                proptest::prop_assert_eq!(&x.occurrence, &local.year().to_string());
            }
            let md = local.month() as i32 * 100 + local.day() as i32;
            proptest::prop_assert!(candidate_month_days(now).contains(&md));
        }
    }
}
