//! `ritualist history CUSTOMER`: one customer's story, for the marketer — who they are,
//! what they agreed to and when, every message the ledger holds for them (and, on request,
//! the stored message itself), their orders and survey answers, and what the engine will
//! decide for them over the next days and why.
//!
//! [`App::history`] gathers it into a [`CustomerHistory`], a serde value the CLI prints and
//! the marketer's web page renders. Every read is by the customer's id through an index
//! (see `store/history.rs`); the plan is [`App::plan`] for this one customer, the same
//! scan and decision function the daemon runs. Times are Unix seconds; the customer's
//! `time_zone` says how to show them.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::Serialize;

use super::{App, AppError, PlanRequest, PlannedDecision};
use crate::domain::Channel;
use crate::store::{ConsentEvent, CustomerRow, StoryMessage, StoryOrder, SurveyResponse};

/// How many days ahead the story's plan looks by default.
pub const HISTORY_PLAN_DAYS: u32 = 30;

/// What to tell.
#[derive(Debug, Clone)]
pub struct HistoryRequest {
    /// External id, email or phone.
    pub customer: String,
    /// Include each message's stored rendered form.
    pub messages: bool,
    /// Days ahead to plan, from the customer's local today.
    pub plan_days: u32,
}

/// One customer's story.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerHistory {
    pub profile: Profile,
    /// The segments (`engine.segments`) the customer is in on their local today, as the
    /// engine sees them (order count, spend, days since the last order, attributes).
    pub segments: Vec<String>,
    /// Per channel: the contact, and whether (and by which scope) they opted out.
    pub channels: Vec<ChannelConsent>,
    /// Every scope recorded: `true` when opted out.
    pub consents: BTreeMap<String, bool>,
    /// Every consent change, oldest first.
    pub consent_events: Vec<ConsentEventView>,
    /// Every ledger row, oldest due first.
    pub messages: Vec<StoryMessage>,
    pub orders: Orders,
    /// Survey answers, oldest first.
    pub surveys: Vec<SurveyResponse>,
    pub plan: Plan,
}

/// Who the customer is, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub id: i64,
    pub external_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub locale: String,
    pub time_zone: String,
    /// `YYYY-MM-DD`, or `--MM-DD` without a year.
    pub birthday: Option<String>,
    pub signup_date: Option<String>,
    pub preferred_channel: Option<String>,
    pub custom_dates: serde_json::Value,
    pub attributes: serde_json::Value,
}

/// A channel's state for this customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelConsent {
    pub channel: String,
    pub contact: Option<String>,
    pub opted_out: bool,
    /// The scope that opts them out (`all`, `channel:sms`).
    pub by: Option<String>,
}

/// A consent change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentEventView {
    pub scope: String,
    /// `out` or `in`.
    pub change: &'static str,
    pub source: String,
    pub at: i64,
}

/// The customer's orders and their totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orders {
    pub count: u64,
    /// Per currency, in the stored minor units.
    pub total_minor: BTreeMap<String, i64>,
    pub last: Option<StoryOrder>,
    /// Every order, oldest first.
    pub all: Vec<StoryOrder>,
}

/// What the engine will decide for the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The customer's local date the plan starts on.
    pub from: String,
    pub days: u32,
    pub decisions: Vec<PlannedDecision>,
}

impl App {
    /// The story of the customer with this external id, email or phone; `None` when there
    /// is none. `now` fixes "today" for the plan.
    pub async fn history(
        &self,
        req: &HistoryRequest,
        now: Timestamp,
    ) -> Result<Option<CustomerHistory>, AppError> {
        let Some(row) = self.find_by_any_key(&req.customer).await? else {
            return Ok(None);
        };
        let consents = self.store.consent_map(row.id).await?;
        let events = self.store.consent_events(row.id).await?;
        let messages = self.store.customer_messages(row.id, req.messages).await?;
        let rituals: Vec<String> = messages
            .iter()
            .map(|m| m.ritual.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let surveys = self
            .store
            .customer_survey_responses(row.id, &rituals)
            .await?;
        let orders = orders(self.store.customer_orders(row.id).await?);
        let facts = self.facts_builder().facts(&row, Vec::new());
        let from = now.to_zoned(facts.zone.clone()).date();
        let segments = self
            .defs()
            .segments
            .of(&facts.audience_facts(from))
            .into_iter()
            .map(str::to_string)
            .collect();
        let plan_req = PlanRequest {
            date: from,
            days: req.plan_days,
            ritual: None,
            customer: Some(row.external_id.clone()),
        };
        let decisions = self.plan(&plan_req, |_, _| {}).await?;
        Ok(Some(CustomerHistory {
            profile: profile(&row),
            segments,
            channels: channels(&row, &consents),
            consents,
            consent_events: events.into_iter().map(event_view).collect(),
            messages,
            orders,
            surveys,
            plan: Plan {
                from: from.to_string(),
                days: req.plan_days,
                decisions,
            },
        }))
    }
}

impl App {
    /// The customer with this key as given; else with the key read as an email (any case)
    /// or a phone number as people write it (`+1 201 555 0101`, `0722 000 111`), normalised
    /// as the import stores them.
    async fn find_by_any_key(&self, key: &str) -> Result<Option<CustomerRow>, AppError> {
        if let Some(row) = self.store.find_customer(key).await? {
            return Ok(Some(row));
        }
        for alt in alternative_keys(key, self.cfg.defaults.country_code.as_deref()) {
            if let Some(row) = self.store.find_customer(&alt).await? {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

/// Other spellings of a lookup key: the normalised email, the E.164 phone number.
fn alternative_keys(key: &str, country_code: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if key.contains('@') {
        if let Ok(e) = crate::domain::Email::parse(key) {
            out.push(e.to_string());
        }
    } else if let Ok(p) = crate::domain::Phone::parse(key, country_code) {
        out.push(p.to_string());
    }
    out.retain(|k| k != key);
    out
}

/// `YYYY-MM-DD`, or `--MM-DD` without a year, from the stored month-day (`MMDD`).
fn birthday(year: Option<i16>, md: Option<i32>) -> Option<String> {
    let md = md?;
    let (m, d) = (md / 100, md % 100);
    Some(match year {
        Some(y) => format!("{y:04}-{m:02}-{d:02}"),
        None => format!("--{m:02}-{d:02}"),
    })
}

/// A stored JSON object, or the text itself when it is not JSON.
fn json_or_text(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
}

fn profile(row: &CustomerRow) -> Profile {
    Profile {
        id: row.id,
        external_id: row.external_id.clone(),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        email: row.email.clone(),
        phone: row.phone.clone(),
        locale: row.locale.clone(),
        time_zone: row.time_zone.clone(),
        birthday: birthday(row.birth_year, row.birth_md),
        signup_date: row.signup_date.clone(),
        preferred_channel: row.preferred_channel.clone(),
        custom_dates: json_or_text(&row.custom_dates),
        attributes: json_or_text(&row.attributes),
    }
}

/// Each channel's contact and whether a scope covering the whole channel opts them out
/// (narrower scopes, a category or a ritual, are in `consents`).
fn channels(row: &CustomerRow, consents: &BTreeMap<String, bool>) -> Vec<ChannelConsent> {
    Channel::ALL
        .into_iter()
        .map(|ch| {
            let scope = format!("channel:{ch}");
            let by = ["all", scope.as_str()]
                .into_iter()
                .find(|s| consents.get(*s).copied().unwrap_or(false))
                .map(str::to_string);
            ChannelConsent {
                channel: ch.to_string(),
                contact: match ch {
                    Channel::Email => row.email.clone(),
                    Channel::Sms => row.phone.clone(),
                },
                opted_out: by.is_some(),
                by,
            }
        })
        .collect()
}

fn event_view(e: ConsentEvent) -> ConsentEventView {
    ConsentEventView {
        scope: e.scope,
        change: if e.opted_out { "out" } else { "in" },
        source: e.source,
        at: e.changed_at,
    }
}

fn orders(all: Vec<StoryOrder>) -> Orders {
    let mut total_minor: BTreeMap<String, i64> = BTreeMap::new();
    for o in &all {
        *total_minor.entry(o.currency.clone()).or_default() += o.amount_minor;
    }
    Orders {
        count: all.len() as u64,
        total_minor,
        last: all.iter().max_by_key(|o| o.ordered_at).cloned(),
        all,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_also_tried_as_stored() {
        assert_eq!(
            alternative_keys("+1 201 555 0101", None),
            ["+12015550101".to_string()]
        );
        assert_eq!(
            alternative_keys("0722 000 111", Some("40")),
            ["+40722000111".to_string()]
        );
        assert!(alternative_keys("C00002", None).is_empty());
        assert!(alternative_keys("+12015550101", None).is_empty());
    }

    #[test]
    fn birthdays_read_as_dates() {
        assert_eq!(
            birthday(Some(1990), Some(505)).as_deref(),
            Some("1990-05-05")
        );
        assert_eq!(birthday(None, Some(1231)).as_deref(), Some("--12-31"));
        assert_eq!(birthday(Some(1990), None), None);
    }

    #[test]
    fn orders_total_per_currency_and_the_last_is_the_latest() {
        let o = |id: &str, at: i64, minor: i64, cur: &str| StoryOrder {
            external_id: id.into(),
            ordered_at: at,
            amount_minor: minor,
            currency: cur.into(),
        };
        let s = orders(vec![
            o("a", 10, 1000, "RON"),
            o("b", 30, 250, "EUR"),
            o("c", 20, 500, "RON"),
        ]);
        assert_eq!(s.count, 3);
        assert_eq!(
            s.total_minor,
            BTreeMap::from([("EUR".to_string(), 250), ("RON".to_string(), 1500)])
        );
        assert_eq!(s.last.map(|o| o.external_id), Some("b".to_string()));
    }

    #[test]
    fn a_channel_is_out_by_everything_or_by_itself_not_by_a_category() {
        let row = CustomerRow {
            id: 1,
            external_id: "c1".into(),
            first_name: None,
            last_name: None,
            email: Some("a@example.com".into()),
            phone: None,
            locale: "en".into(),
            time_zone: "UTC".into(),
            birth_year: None,
            birth_md: None,
            signup_date: None,
            preferred_channel: None,
            custom_dates: "{}".into(),
            attributes: "{}".into(),
            order_count: 0,
            total_spent_minor: 0,
            first_order_at: None,
            last_order_at: None,
        };
        let consents = BTreeMap::from([
            ("channel:sms".to_string(), true),
            ("category:digest".to_string(), true),
            ("all".to_string(), false),
        ]);
        let ch = channels(&row, &consents);
        assert_eq!(
            (ch[0].channel.as_str(), ch[0].opted_out, ch[0].by.clone()),
            ("email", false, None)
        );
        assert_eq!(
            (ch[1].channel.as_str(), ch[1].opted_out, ch[1].by.as_deref()),
            ("sms", true, Some("channel:sms"))
        );
        assert_eq!(ch[0].contact.as_deref(), Some("a@example.com"));
    }
}
