//! What `ritualist report` reads: ledger rows of a period, the orders that follow the
//! occurrences of recipients and holdouts, the opt-outs given from messages with the
//! messages sent to those customers before. Plain rows; the arithmetic is in `app::report`.
//! The same SQL serves SQLite and PostgreSQL.

use sea_orm::Value;

use super::codes::sql::{SENT, SUPPRESSED};
use super::codes::{channel_at, status_at};
use super::ledger::Status;
use super::{Store, StoreError};
use crate::domain::Channel;

/// A ledger row, as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerFact {
    pub ritual: String,
    pub category: String,
    pub customer_id: i64,
    pub occurrence: String,
    /// The channel's name, `none` for a decision that has none.
    pub channel: String,
    pub status: Status,
    pub reason: Option<String>,
    pub due_at: i64,
}

/// An order of a customer who was a recipient or a holdout in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFact {
    pub customer_id: i64,
    pub ordered_at: i64,
    pub amount_minor: i64,
    pub currency: String,
}

/// An opt-out a customer gave from a message (a link, a one-click, an SMS keyword).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutFact {
    pub customer_id: i64,
    pub scope: String,
    pub source: String,
    pub changed_at: i64,
}

/// A message sent to a customer who later opted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFact {
    pub ritual: String,
    pub category: String,
    pub customer_id: i64,
    pub channel: Channel,
    pub sent_at: i64,
}

/// Consent sources that come from a message the customer received.
pub const MESSAGE_OPT_OUT_SOURCES: &str = "('link', 'one_click', 'sms_keyword')";

impl Store {
    /// Whether the ledger holds any row of `ritual` (one probe of the occurrence-key index):
    /// a ritual removed from the config still has a history to report.
    pub async fn ledger_has_ritual(&self, ritual: &str) -> Result<bool, StoreError> {
        Ok(self
            .one(
                "SELECT 1 AS one FROM deliveries WHERE ritual = $1 LIMIT 1",
                vec![ritual.into()],
            )
            .await?
            .is_some())
    }

    /// Ledger rows due in `[since, until)`, of one ritual or all.
    pub async fn report_ledger(
        &self,
        since: i64,
        until: i64,
        ritual: Option<&str>,
    ) -> Result<Vec<LedgerFact>, StoreError> {
        let (filter, mut values) = ritual_filter(ritual, 3);
        values.splice(0..0, [Value::from(since), Value::from(until)]);
        let rows = self
            .all(
                &format!(
                    "SELECT ritual, category, customer_id, occurrence, channel, status, reason, due_at \
                     FROM deliveries WHERE due_at >= $1 AND due_at < $2{filter} ORDER BY id"
                ),
                values,
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LedgerFact {
                    ritual: r.try_get("", "ritual")?,
                    category: r.try_get("", "category")?,
                    customer_id: r.try_get("", "customer_id")?,
                    occurrence: r.try_get("", "occurrence")?,
                    channel: r.try_get("", "channel")?,
                    status: status_at(r, "status")?,
                    reason: r.try_get("", "reason")?,
                    due_at: r.try_get("", "due_at")?,
                })
            })
            .collect()
    }

    /// Orders placed in `(since, orders_until]` by customers who were sent a message, or held
    /// out, for an occurrence due in `[since, until)`.
    pub async fn report_orders(
        &self,
        since: i64,
        until: i64,
        orders_until: i64,
        ritual: Option<&str>,
    ) -> Result<Vec<OrderFact>, StoreError> {
        let (filter, mut values) = ritual_filter(ritual, 4);
        values.splice(
            0..0,
            [
                Value::from(since),
                Value::from(until),
                Value::from(orders_until),
            ],
        );
        let rows = self
            .all(
                &format!(
                    "SELECT customer_id, ordered_at, amount_minor, currency FROM orders \
                     WHERE ordered_at > $1 AND ordered_at <= $3 AND customer_id IN (\
                     SELECT customer_id FROM deliveries WHERE due_at >= $1 AND due_at < $2 \
                     AND (status = {SENT} OR (status = {SUPPRESSED} AND reason = 'holdout')){filter}) \
                     ORDER BY customer_id, ordered_at"
                ),
                values,
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OrderFact {
                    customer_id: r.try_get("", "customer_id")?,
                    ordered_at: r.try_get("", "ordered_at")?,
                    amount_minor: r.try_get("", "amount_minor")?,
                    currency: r.try_get("", "currency")?,
                })
            })
            .collect()
    }

    /// Opt-outs given from messages in `[since, until)`, and every message sent to those
    /// customers (to attribute each opt-out to the message it most likely came from).
    pub async fn report_opt_outs(
        &self,
        since: i64,
        until: i64,
    ) -> Result<(Vec<OptOutFact>, Vec<SentFact>), StoreError> {
        let events = format!(
            "FROM consent_events WHERE opted_out = TRUE AND source IN {MESSAGE_OPT_OUT_SOURCES} \
             AND changed_at >= $1 AND changed_at < $2"
        );
        let rows = self
            .all(
                &format!("SELECT customer_id, scope, source, changed_at {events} ORDER BY id"),
                vec![since.into(), until.into()],
            )
            .await?;
        let opt_outs = rows
            .iter()
            .map(|r| {
                Ok(OptOutFact {
                    customer_id: r.try_get("", "customer_id")?,
                    scope: r.try_get("", "scope")?,
                    source: r.try_get("", "source")?,
                    changed_at: r.try_get("", "changed_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = self
            .all(
                &format!(
                    "SELECT ritual, category, customer_id, channel, sent_at FROM deliveries \
                     WHERE status = {SENT} AND sent_at IS NOT NULL AND sent_at < $2 \
                     AND customer_id IN (SELECT customer_id {events}) ORDER BY sent_at, id"
                ),
                vec![since.into(), until.into()],
            )
            .await?;
        let sent = rows
            .iter()
            .map(|r| {
                Ok(SentFact {
                    ritual: r.try_get("", "ritual")?,
                    category: r.try_get("", "category")?,
                    customer_id: r.try_get("", "customer_id")?,
                    channel: channel_at(r, "channel")?,
                    sent_at: r.try_get("", "sent_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((opt_outs, sent))
    }
}

/// ` AND ritual = $n` with its value, or nothing.
fn ritual_filter(ritual: Option<&str>, n: usize) -> (String, Vec<Value>) {
    match ritual {
        Some(r) => (format!(" AND ritual = ${n}"), vec![r.to_string().into()]),
        None => (String::new(), Vec::new()),
    }
}
