//! What the public HTTP server reads: a customer's recorded consents and consent history,
//! the customers behind a phone number (inbound SMS keywords), and health (the database
//! answers; how many messages wait to be sent).

use std::collections::BTreeMap;

use super::people::{CUSTOMER_COLS, customer_from};
use super::{CustomerRow, Store, StoreError};

/// One recorded consent change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub scope: String,
    pub opted_out: bool,
    pub source: String,
    pub changed_at: i64,
}

impl Store {
    /// A customer by internal id.
    pub async fn customer_by_id(&self, id: i64) -> Result<Option<CustomerRow>, StoreError> {
        let sql = format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id = $1");
        self.one(&sql, vec![id.into()])
            .await?
            .map(|r| customer_from(&r))
            .transpose()
    }

    /// Every scope recorded for a customer: `true` when opted out.
    pub async fn consent_map(
        &self,
        customer_id: i64,
    ) -> Result<BTreeMap<String, bool>, StoreError> {
        let rows = self
            .all(
                "SELECT scope, opted_out FROM consents WHERE customer_id = $1",
                vec![customer_id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("", "scope")?, r.try_get("", "opted_out")?)))
            .collect()
    }

    /// A customer's consent changes, oldest first.
    pub async fn consent_events(&self, customer_id: i64) -> Result<Vec<ConsentEvent>, StoreError> {
        let rows = self
            .all(
                "SELECT scope, opted_out, source, changed_at FROM consent_events WHERE customer_id = $1 ORDER BY id",
                vec![customer_id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentEvent {
                    scope: r.try_get("", "scope")?,
                    opted_out: r.try_get("", "opted_out")?,
                    source: r.try_get("", "source")?,
                    changed_at: r.try_get("", "changed_at")?,
                })
            })
            .collect()
    }

    /// The ids of the customers with this phone number (E.164, as stored).
    pub async fn customers_with_phone(&self, phone: &str) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .all(
                "SELECT id FROM customers WHERE phone = $1 ORDER BY id",
                vec![phone.to_string().into()],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get("", "id")?)).collect()
    }

    /// Messages not yet in a final state (pending, claimed, waiting for a retry): the queue
    /// depth `/healthz` reports. Answering at all proves the database is reachable.
    pub async fn open_messages(&self) -> Result<i64, StoreError> {
        let row = self
            .one(
                "SELECT COUNT(*) AS n FROM deliveries WHERE status IN ('pending', 'claimed', 'sending', 'retry_wait')",
                vec![],
            )
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }
}
