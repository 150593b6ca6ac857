//! One scheduler tick: decide every ritual for every candidate customer at `now` and record
//! each new decision in the ledger (rendered, ready to send) before anything is sent.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::App;
use super::message::compose;
use crate::domain::{Channel, Email, Locale, Phone, YearlyDate};
use crate::plan::{Consent, CustomerFacts, Decision, Outcome, candidate_month_days, decide};
use crate::ritual::{Ritual, Trigger};
use crate::store::{CustomerRow, NewDelivery, Status};

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    /// Customers looked at.
    pub candidates: usize,
    /// Decisions taken at this tick (sends and suppressions), already recorded ones included.
    pub decisions: usize,
    /// New messages queued in the ledger.
    pub queued: usize,
    /// New suppressions recorded.
    pub suppressed: usize,
    /// Decisions whose occurrence was already in the ledger.
    pub already_recorded: usize,
    /// Messages that could not be rendered (recorded as failed with the reason).
    pub render_failed: usize,
}

/// Turns a stored row into planner facts. Invalid stored values (which import never writes)
/// degrade to "absent" rather than stopping the tick.
pub fn facts_from_row(
    row: &CustomerRow,
    default_zone: &str,
    default_locale: &Locale,
) -> CustomerFacts {
    let zone = TimeZone::get(&row.time_zone)
        .or_else(|_| TimeZone::get(default_zone))
        .unwrap_or(TimeZone::UTC);
    let birthday = row
        .birth_md
        .and_then(|md| YearlyDate::new(row.birth_year, (md / 100) as i8, (md % 100) as i8).ok());
    let attributes: BTreeMap<String, String> =
        serde_json::from_str(&row.attributes).unwrap_or_default();
    CustomerFacts {
        id: row.id,
        external_id: row.external_id.clone(),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        email: row.email.as_deref().and_then(|e| Email::parse(e).ok()),
        phone: row
            .phone
            .as_deref()
            .and_then(|p| Phone::parse(p, None).ok()),
        locale: Locale::parse(&row.locale).unwrap_or_else(|_| default_locale.clone()),
        zone,
        birthday,
        preferred_channel: row
            .preferred_channel
            .as_deref()
            .and_then(|c| c.parse::<Channel>().ok()),
        attributes,
    }
}

impl App {
    /// Candidate customers for a ritual at `now` (an index probe on the month-day column).
    pub async fn candidates(
        &self,
        ritual: &Ritual,
        now: Timestamp,
    ) -> Result<Vec<CustomerFacts>, super::AppError> {
        let rows = match &ritual.trigger {
            Trigger::Yearly { .. } => {
                self.store
                    .customers_by_birth_md(&candidate_month_days(now))
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(|r| facts_from_row(r, &self.cfg.defaults.time_zone, &self.cfg.defaults.locale))
            .collect())
    }

    /// Every decision for `ritual` at `now`, without writing anything (the dry run and the
    /// daemon call the same function).
    pub async fn decisions(
        &self,
        ritual: &Ritual,
        now: Timestamp,
    ) -> Result<(usize, Vec<(CustomerFacts, Decision)>), super::AppError> {
        let customers = self.candidates(ritual, now).await?;
        let ids: Vec<i64> = customers.iter().map(|c| c.id).collect();
        let mut opt_outs = self.store.opt_outs(&ids).await?;
        let mut out = Vec::new();
        for c in &customers {
            let consent = Consent {
                opted_out: opt_outs.remove(&c.id).unwrap_or_default(),
            };
            for d in decide(ritual, c, &consent, now) {
                out.push((c.clone(), d));
            }
        }
        Ok((customers.len(), out))
    }

    /// One tick: decide, then record every new decision (rendered messages as `pending`,
    /// suppressions with their reason). Safe to repeat: the ledger's unique occurrence key
    /// turns a second recording of the same occurrence into a no-op.
    pub async fn tick(&self, now: Timestamp) -> Result<TickReport, super::AppError> {
        let mut report = TickReport::default();
        let now_s = now.as_second();
        let defs = self.defs();
        for ritual in &defs.rituals {
            let (candidates, decisions) = self.decisions(ritual, now).await?;
            report.candidates += candidates;
            report.decisions += decisions.len();
            let ids: Vec<i64> = decisions.iter().map(|(c, _)| c.id).collect();
            let recorded = self.store.recorded_occurrences(&ritual.name, &ids).await?;
            for (c, d) in decisions {
                if recorded.contains(&(c.id, d.occurrence.clone(), d.channel_key().to_string())) {
                    report.already_recorded += 1;
                    continue;
                }
                let base = NewDelivery {
                    ritual: ritual.name.clone(),
                    category: ritual.category.clone(),
                    customer_id: c.id,
                    occurrence: d.occurrence.clone(),
                    channel: d.channel_key().to_string(),
                    status: Status::Suppressed,
                    reason: None,
                    recipient: None,
                    subject: None,
                    payload: None,
                    message_id: None,
                    due_at: now_s,
                };
                let row = match &d.outcome {
                    Outcome::Suppress { reason, .. } => NewDelivery {
                        reason: Some(reason.clone()),
                        ..base
                    },
                    Outcome::Send {
                        channel,
                        recipient,
                        due_at,
                    } => {
                        match compose(
                            &self.cfg,
                            &defs.templates,
                            &self.key,
                            ritual,
                            &c,
                            &d.occasion,
                            &d.occurrence,
                            *channel,
                            now_s,
                        ) {
                            Ok(m) => NewDelivery {
                                status: Status::Pending,
                                recipient: Some(recipient.clone()),
                                subject: m.subject,
                                payload: Some(m.payload),
                                message_id: m.message_id,
                                due_at: due_at.as_second(),
                                ..base
                            },
                            Err(e) => {
                                tracing::error!(ritual = %ritual.name, customer = c.id, "cannot render: {e}");
                                report.render_failed += 1;
                                NewDelivery {
                                    status: Status::Failed,
                                    reason: Some(format!("render: {e}")),
                                    ..base
                                }
                            }
                        }
                    }
                };
                let status = row.status;
                if self.store.insert_delivery(&row, now_s).await? {
                    match status {
                        Status::Pending => report.queued += 1,
                        Status::Suppressed => report.suppressed += 1,
                        _ => {}
                    }
                } else {
                    report.already_recorded += 1;
                }
            }
        }
        Ok(report)
    }
}
