//! Erasure (`ritualist forget`) and the hashed stubs that keep an erased person opted out:
//! the `forgotten` table holds only HMACs of their identifiers (computed by the caller, which
//! holds the key), and customers stored later with a matching identifier are opted out of
//! everything in the transaction that stores them.
//!
//! Erasing keeps the customer row (anonymised: a random external id, no contact, names, dates
//! or attributes), its orders, consents and every ledger row, with the messages' recipients,
//! subjects, bodies, occasions and errors cleared: counts by ritual, channel, status and
//! reason, and revenue after an occasion, stay what they were.
//!
//! On SQLite the erasure runs with `secure_delete` (freed bytes are zeroed) and is followed
//! by a WAL checkpoint, so the file no longer holds the old values. PostgreSQL keeps dead row
//! versions until `VACUUM` reuses their space (see docs/operator.md, Running in production).

use sea_orm::{ConnectionTrait, TransactionTrait, Value};

use super::{Store, StoreError};

/// What one erasure changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    /// The customer's internal id (kept; the row is anonymised).
    pub customer_id: i64,
    /// Personal columns that held a value and were cleared (`email`, `phone`, `first_name`, ...).
    pub fields: Vec<String>,
    /// Custom yearly dates removed.
    pub custom_dates: u64,
    /// Ledger rows whose recipient, subject, body, occasion and error were cleared.
    pub messages_scrubbed: u64,
    /// Messages not yet sent that now never will be (suppressed, reason `forgotten`).
    pub messages_cancelled: u64,
    /// New hashed stubs (a second forget of the same identifiers adds none).
    pub stubs: u64,
}

impl Store {
    /// Whether anyone was ever forgotten (imports skip the stub check otherwise).
    pub async fn has_forgotten(&self) -> Result<bool, StoreError> {
        Ok(self
            .one("SELECT 1 AS x FROM forgotten LIMIT 1", vec![])
            .await?
            .is_some())
    }

    /// Erases customer `id`'s personal data and stores `stubs` (hashes of their identifiers),
    /// in one transaction. `None` when there is no such customer.
    pub async fn forget_customer(
        &self,
        id: i64,
        stubs: &[String],
        now: i64,
    ) -> Result<Option<Erasure>, StoreError> {
        let txn = self.db.begin().await?;
        if !self.is_postgres() {
            // Freed bytes (the old row, index entries) are zeroed, not left in free space.
            txn.execute_unprepared("PRAGMA secure_delete = ON").await?;
        }
        let Some(row) = txn
            .query_one_raw(self.stmt(
                "SELECT first_name, last_name, email, phone, birth_year, birth_md, signup_date, preferred_channel, custom_dates, attributes FROM customers WHERE id = $1",
                vec![id.into()],
            ))
            .await?
        else {
            if !self.is_postgres() {
                txn.execute_unprepared("PRAGMA secure_delete = OFF").await?;
            }
            return Ok(None);
        };
        let mut erasure = Erasure {
            customer_id: id,
            fields: fields_held(&row)?,
            ..Erasure::default()
        };
        for h in stubs {
            erasure.stubs += txn
                .execute_raw(self.stmt(
                    "INSERT INTO forgotten (hash, created_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                    vec![h.clone().into(), now.into()],
                ))
                .await?
                .rows_affected();
        }
        txn.execute_raw(self.stmt(
            "UPDATE customers SET external_id = $2, first_name = NULL, last_name = NULL, email = NULL, phone = NULL, \
             birth_year = NULL, birth_md = NULL, signup_date = NULL, signup_md = NULL, preferred_channel = NULL, \
             custom_dates = '{}', attributes = '{}' WHERE id = $1",
            vec![
                id.into(),
                format!("forgotten-{}", super::random_token()).into(),
            ],
        ))
        .await?;
        erasure.custom_dates = txn
            .execute_raw(self.stmt(
                "DELETE FROM customer_dates WHERE customer_id = $1",
                vec![id.into()],
            ))
            .await?
            .rows_affected();
        erasure.messages_cancelled = txn
            .execute_raw(self.stmt(
                "UPDATE deliveries SET status = 'suppressed', reason = 'forgotten', lease_token = NULL, lease_until = NULL, updated_at = $2 \
                 WHERE customer_id = $1 AND status IN ('pending', 'retry_wait')",
                vec![id.into(), now.into()],
            ))
            .await?
            .rows_affected();
        txn.execute_raw(self.stmt(
            "DELETE FROM delivery_messages WHERE delivery_id IN (SELECT id FROM deliveries WHERE customer_id = $1)",
            vec![id.into()],
        ))
        .await?;
        erasure.messages_scrubbed = txn
            .execute_raw(self.stmt(
                "UPDATE deliveries SET recipient = NULL, subject = NULL, occasion = NULL, last_error = NULL, message_id = NULL \
                 WHERE customer_id = $1 AND (recipient IS NOT NULL OR subject IS NOT NULL \
                 OR occasion IS NOT NULL OR last_error IS NOT NULL OR message_id IS NOT NULL)",
                vec![id.into()],
            ))
            .await?
            .rows_affected();
        scrub_reports(self, &txn, id).await?;
        // Survey comments are free text the person wrote; their scores stay (anonymous NPS).
        txn.execute_raw(self.stmt(
            "UPDATE survey_responses SET comment = NULL WHERE customer_id = $1 AND comment IS NOT NULL",
            vec![id.into()],
        ))
        .await?;
        opt_out_all(self, &txn, id, now).await?;
        if !self.is_postgres() {
            txn.execute_unprepared("PRAGMA secure_delete = OFF").await?;
        }
        txn.commit().await?;
        // Older copies of the pages live in SQLite's write-ahead log until it is checkpointed.
        self.checkpoint().await?;
        Ok(Some(erasure))
    }
}

/// Bounce and complaint reports name the address and quote the server's words: only their
/// kind and time stay.
async fn scrub_reports<C: ConnectionTrait>(
    store: &Store,
    txn: &C,
    id: i64,
) -> Result<(), StoreError> {
    for sql in [
        "UPDATE feedback_events SET recipient = NULL, detail = '', raw = NULL WHERE customer_id = $1",
        "UPDATE deliveries SET outcome_detail = NULL WHERE customer_id = $1 AND outcome_detail IS NOT NULL",
    ] {
        txn.execute_raw(store.stmt(sql, vec![id.into()])).await?;
    }
    Ok(())
}

/// `all` opted out (source `forgotten`), and the consent event when it is news.
async fn opt_out_all<C: ConnectionTrait>(
    store: &Store,
    txn: &C,
    id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let changed = txn
        .execute_raw(store.stmt(
            "INSERT INTO consents (customer_id, scope, opted_out, source, changed_at) VALUES ($1, 'all', TRUE, 'forgotten', $2) \
             ON CONFLICT (customer_id, scope) DO UPDATE SET opted_out = TRUE, source = 'forgotten', changed_at = excluded.changed_at \
             WHERE consents.opted_out = FALSE",
            vec![id.into(), now.into()],
        ))
        .await?
        .rows_affected();
    if changed > 0 {
        txn.execute_raw(store.stmt(
            "INSERT INTO consent_events (customer_id, scope, opted_out, source, changed_at) VALUES ($1, 'all', TRUE, 'forgotten', $2)",
            vec![id.into(), now.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Opts the customer stored under `external_id` out of everything when any of `hashes` is a
/// forgotten person's stub (inside the upsert's transaction). `true` when it matched.
pub(super) async fn opt_out_if_forgotten<C: ConnectionTrait>(
    store: &Store,
    txn: &C,
    external_id: &str,
    hashes: &[String],
    now: i64,
) -> Result<bool, StoreError> {
    let list: Vec<String> = (2..hashes.len() + 2).map(|i| format!("${i}")).collect();
    let mut values: Vec<Value> = vec![external_id.to_string().into()];
    values.extend(hashes.iter().map(|h| Value::from(h.clone())));
    let sql = format!(
        "SELECT c.id FROM customers c WHERE c.external_id = $1 AND EXISTS (SELECT 1 FROM forgotten f WHERE f.hash IN ({}))",
        list.join(", ")
    );
    let Some(row) = txn.query_one_raw(store.stmt(&sql, values)).await? else {
        return Ok(false);
    };
    let id: i64 = row.try_get("", "id")?;
    opt_out_all(store, txn, id, now).await?;
    Ok(true)
}

/// The personal fields a customer row holds (what `forget` reports as erased).
fn fields_held(row: &sea_orm::QueryResult) -> Result<Vec<String>, StoreError> {
    let mut fields = Vec::new();
    for col in [
        "first_name",
        "last_name",
        "email",
        "phone",
        "signup_date",
        "preferred_channel",
    ] {
        if row.try_get::<Option<String>>("", col)?.is_some() {
            fields.push(col.to_string());
        }
    }
    if row.try_get::<Option<i32>>("", "birth_md")?.is_some() {
        fields.push("birthday".to_string());
    }
    for col in ["custom_dates", "attributes"] {
        let v: String = row.try_get("", col)?;
        if !matches!(v.trim(), "" | "{}") {
            fields.push(col.to_string());
        }
    }
    Ok(fields)
}
