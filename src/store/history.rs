//! One customer's story as stored: every ledger row (with the stored message, on request),
//! their orders and their survey answers. Each query reads by customer id through an index
//! (`idx_deliveries_customer_due`, `idx_orders_customer_time`, and the survey table's
//! unique (ritual, customer, occurrence) index probed per ritual): never a scan of the base.
//! Consent comes from `consent.rs` (`consent_map`, `consent_events`).

use sea_orm::Value;

use super::{Store, StoreError, SurveyResponse, placeholders};

/// One ledger row of a customer, as their story shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoryMessage {
    pub id: i64,
    pub ritual: String,
    pub category: String,
    pub occurrence: String,
    pub channel: String,
    pub status: String,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub attempts: i32,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub due_at: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// The stored rendered message (RFC 5322 for an email, the text of an SMS), when asked
    /// for and kept.
    pub payload: Option<String>,
}

/// One order of a customer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoryOrder {
    pub external_id: String,
    pub ordered_at: i64,
    pub amount_minor: i64,
    pub currency: String,
}

/// A customer's ledger rows (by `idx_deliveries_customer_due`), with the stored message
/// when `payloads`.
fn messages_sql(payloads: bool) -> String {
    let (col, join) = if payloads {
        (
            "m.payload",
            "LEFT JOIN delivery_messages m ON m.delivery_id = d.id",
        )
    } else {
        ("NULL", "")
    };
    format!(
        "SELECT d.id, d.ritual, d.category, d.occurrence, d.channel, d.status, d.reason, \
         d.last_error, d.attempts, d.recipient, d.subject, d.due_at, d.created_at, d.sent_at, \
         {col} AS payload FROM deliveries d {join} WHERE d.customer_id = $1 ORDER BY d.due_at, d.id"
    )
}

/// A customer's orders (by `idx_orders_customer_time`).
const ORDERS_SQL: &str = "SELECT external_id, ordered_at, amount_minor, currency FROM orders \
     WHERE customer_id = $1 ORDER BY ordered_at, id";

/// A customer's survey answers for `n` rituals (by the unique (ritual, customer, occurrence)
/// index, one probe per ritual).
fn surveys_sql(n: usize) -> String {
    format!(
        "SELECT ritual, customer_id, occurrence, score, comment, first_at, updated_at \
         FROM survey_responses WHERE customer_id = $1 AND ritual IN ({}) ORDER BY first_at, id",
        placeholders(2, n)
    )
}

impl Store {
    /// A customer's ledger rows, oldest due first; with `payloads`, each row's stored message.
    pub async fn customer_messages(
        &self,
        customer_id: i64,
        payloads: bool,
    ) -> Result<Vec<StoryMessage>, StoreError> {
        let sql = messages_sql(payloads);
        let rows = self.all(&sql, vec![customer_id.into()]).await?;
        rows.iter()
            .map(|r| {
                Ok(StoryMessage {
                    id: r.try_get("", "id")?,
                    ritual: r.try_get("", "ritual")?,
                    category: r.try_get("", "category")?,
                    occurrence: r.try_get("", "occurrence")?,
                    channel: r.try_get("", "channel")?,
                    status: r.try_get("", "status")?,
                    reason: r.try_get("", "reason")?,
                    last_error: r.try_get("", "last_error")?,
                    attempts: r.try_get("", "attempts")?,
                    recipient: r.try_get("", "recipient")?,
                    subject: r.try_get("", "subject")?,
                    due_at: r.try_get("", "due_at")?,
                    created_at: r.try_get("", "created_at")?,
                    sent_at: r.try_get("", "sent_at")?,
                    payload: if payloads {
                        r.try_get("", "payload")?
                    } else {
                        None
                    },
                })
            })
            .collect()
    }

    /// A customer's orders, oldest first.
    pub async fn customer_orders(&self, customer_id: i64) -> Result<Vec<StoryOrder>, StoreError> {
        let rows = self.all(ORDERS_SQL, vec![customer_id.into()]).await?;
        rows.iter()
            .map(|r| {
                Ok(StoryOrder {
                    external_id: r.try_get("", "external_id")?,
                    ordered_at: r.try_get("", "ordered_at")?,
                    amount_minor: r.try_get("", "amount_minor")?,
                    currency: r.try_get("", "currency")?,
                })
            })
            .collect()
    }

    /// A customer's survey answers for these rituals (those of their ledger rows: an answer
    /// is always to a message sent), oldest first.
    pub async fn customer_survey_responses(
        &self,
        customer_id: i64,
        rituals: &[String],
    ) -> Result<Vec<SurveyResponse>, StoreError> {
        if rituals.is_empty() {
            return Ok(Vec::new());
        }
        let sql = surveys_sql(rituals.len());
        let mut values: Vec<Value> = vec![customer_id.into()];
        values.extend(rituals.iter().map(|r| Value::from(r.clone())));
        let rows = self.all(&sql, values).await?;
        rows.iter().map(super::surveys::survey_response).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The story reads one customer: each query must probe an index, never scan a table.
    #[tokio::test]
    async fn a_customer_s_story_is_read_through_indexes() {
        let (store, _dir) = crate::test_support::temp_store("history").await;
        let queries: [(String, Vec<Value>); 4] = [
            (messages_sql(false), vec![1i64.into()]),
            (messages_sql(true), vec![1i64.into()]),
            (ORDERS_SQL.to_string(), vec![1i64.into()]),
            (
                surveys_sql(2),
                vec![1i64.into(), "survey".into(), "pulse".into()],
            ),
        ];
        for (sql, values) in queries {
            let plan: Vec<String> = store
                .all(&format!("EXPLAIN QUERY PLAN {sql}"), values)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "detail").unwrap())
                .collect();
            let plan = plan.join(" | ");
            assert!(plan.contains("USING"), "{sql}: {plan}");
            assert!(
                !plan
                    .split(" | ")
                    .any(|step| step.starts_with("SCAN ") && !step.contains("USING")),
                "{sql}: {plan}"
            );
        }
    }
}
