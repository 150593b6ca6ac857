//! What the ritual engine reads and writes: candidate customers found through indexes,
//! their orders and recent ledger rows, batched ledger inserts, and the tick
//! watermark.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, TransactionTrait, Value};

use super::codes::status_at;
use super::packed::PACKED_CUSTOMER;
use super::people::{CUSTOMER_COLS, customer_from};
use super::{CustomerRow, NewDelivery, Status, Store, StoreError, placeholders};

/// An order as the engine sees it, with its rank among the customer's orders (1 = first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub customer_id: i64,
    pub external_id: String,
    pub ordered_at: i64,
    pub number: i64,
    pub amount_minor: i64,
    pub currency: String,
}

/// A recent ledger row of a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub customer_id: i64,
    pub ritual: String,
    pub occurrence: String,
    pub status: Status,
    pub due_at: i64,
    pub decided_at: i64,
}

/// A customer an index probe found: its zone and the probed value (a month-day or an
/// instant in Unix seconds), for the engine's exact "may be due" filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub id: i64,
    pub zone: String,
    pub value: i64,
}

/// Which month-day column a yearly ritual probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonthDayColumn {
    Birth,
    Signup,
    FirstOrder,
}

/// `id:value` pairs of a group, comma-separated (SQLite ≥ 3.44 and PostgreSQL).
fn packed(id: &str, value: &str) -> String {
    format!("string_agg(CAST({id} AS TEXT) || ':' || CAST({value} AS TEXT), ',')")
}

fn ids_values(ids: &[i64]) -> Vec<Value> {
    ids.iter().map(|i| Value::from(*i)).collect()
}

/// Rows per multi-row INSERT: 14 values each, well under SQLite's 32766 variables.
const INSERT_ROWS: usize = 500;

impl Store {
    // The probes below return one row per zone, the customers of that zone packed as
    // `id:value,id:value,…`: the database does the per-customer work, and the driver hands
    // over a few dozen rows instead of tens of thousands. Not the JSON packing of `packed.rs`:
    // repeating the zone in every packed triple made the 1M ordinary tick 1.00 s instead of
    // 0.86 s.

    /// Customers whose yearly date (in `col`) has one of the month-days: (id, zone, md).
    pub async fn probe_month_day(
        &self,
        col: MonthDayColumn,
        mds: &[i32],
    ) -> Result<Vec<Probe>, StoreError> {
        if mds.is_empty() {
            return Ok(Vec::new());
        }
        let col = match col {
            MonthDayColumn::Birth => "birth_md",
            MonthDayColumn::Signup => "signup_md",
            MonthDayColumn::FirstOrder => "first_order_md",
        };
        let sql = format!(
            "SELECT time_zone, {} AS pairs FROM customers WHERE {col} IN ({}) GROUP BY time_zone",
            packed("id", col),
            placeholders(1, mds.len())
        );
        self.probe(&sql, mds.iter().map(|m| Value::from(*m)).collect())
            .await
    }

    /// Customers whose custom date `name` has one of the month-days: (id, zone, md).
    pub async fn probe_custom_month_day(
        &self,
        name: &str,
        mds: &[i32],
    ) -> Result<Vec<Probe>, StoreError> {
        if mds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT c.time_zone, {} AS pairs FROM customer_dates d \
             JOIN customers c ON c.id = d.customer_id WHERE d.name = $1 AND d.md IN ({}) \
             GROUP BY c.time_zone",
            packed("d.customer_id", "d.md"),
            placeholders(2, mds.len())
        );
        let mut values: Vec<Value> = vec![name.to_string().into()];
        values.extend(mds.iter().map(|m| Value::from(*m)));
        self.probe(&sql, values).await
    }

    /// Customers whose last order is in `[lo, hi]`: (id, zone, last order).
    pub async fn probe_last_order(&self, lo: i64, hi: i64) -> Result<Vec<Probe>, StoreError> {
        let sql = format!(
            "SELECT time_zone, {} AS pairs FROM customers \
             WHERE last_order_at >= $1 AND last_order_at <= $2 GROUP BY time_zone",
            packed("id", "last_order_at")
        );
        self.probe(&sql, vec![lo.into(), hi.into()]).await
    }

    /// Orders placed in `[lo, hi]`: (customer id, zone, order time).
    pub async fn probe_order_time(&self, lo: i64, hi: i64) -> Result<Vec<Probe>, StoreError> {
        let sql = format!(
            "SELECT c.time_zone, {} AS pairs FROM orders o \
             JOIN customers c ON c.id = o.customer_id \
             WHERE o.ordered_at >= $1 AND o.ordered_at <= $2 GROUP BY c.time_zone",
            packed("o.customer_id", "o.ordered_at")
        );
        self.probe(&sql, vec![lo.into(), hi.into()]).await
    }

    async fn probe(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Probe>, StoreError> {
        let mut out = Vec::new();
        for r in self.all(sql, values).await? {
            let zone: String = r.try_get_by_index(0)?;
            let pairs: Option<String> = r.try_get_by_index(1)?;
            for pair in pairs.as_deref().unwrap_or("").split(',') {
                let Some((id, value)) = pair.split_once(':') else {
                    continue;
                };
                let (Ok(id), Ok(value)) = (id.parse(), value.parse()) else {
                    return Err(StoreError::Corrupt(format!("probe pair `{pair}`")));
                };
                out.push(Probe {
                    id,
                    zone: zone.clone(),
                    value,
                });
            }
        }
        Ok(out)
    }

    /// Customers imported or changed, or with an order recorded, after `wall` (Unix seconds
    /// of the real clock): the tick gives them the whole grace window, since occurrences due
    /// before they arrived were never decided.
    pub async fn ids_changed_since(&self, wall: i64) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .all(
                "SELECT id FROM customers WHERE updated_at > $1 UNION SELECT customer_id AS id FROM orders WHERE created_at > $1",
                vec![wall.into()],
            )
            .await?;
        let mut ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get("", "id"))
            .collect::<Result<_, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// How many customers live in these zones.
    pub async fn count_in_zones(&self, zones: &[String]) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM customers WHERE time_zone IN ({})",
            placeholders(1, zones.len())
        );
        let row = self
            .one(&sql, zones.iter().map(|z| Value::from(z.clone())).collect())
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0) as u64)
    }

    /// The time zones customers live in: one index seek per zone (a loose index scan over
    /// `(time_zone, id)`), not a pass over every customer.
    pub async fn customer_zones(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .all(
                "WITH RECURSIVE z(time_zone) AS ( \
                   SELECT MIN(time_zone) FROM customers \
                   UNION ALL \
                   SELECT (SELECT MIN(c.time_zone) FROM customers c WHERE c.time_zone > z.time_zone) \
                   FROM z WHERE z.time_zone IS NOT NULL \
                 ) SELECT time_zone FROM z WHERE time_zone IS NOT NULL",
                vec![],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("", "time_zone")?))
            .collect()
    }

    /// Up to `limit` customers of `zone` with an id above `after`, by id (keyset paging).
    pub async fn customers_in_zone(
        &self,
        zone: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CustomerRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM (SELECT {PACKED_CUSTOMER} FROM customers \
             WHERE time_zone = $1 AND id > $2 ORDER BY id LIMIT $3) t",
            self.pack(PACKED_CUSTOMER, "id")
        );
        self.packed_customers(
            &sql,
            vec![zone.to_string().into(), after.into(), (limit as i64).into()],
        )
        .await
    }

    /// Up to `limit` customers with an id above `after`, by id (keyset paging over everyone).
    pub async fn customers_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CustomerRow>, StoreError> {
        let sql =
            format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = self
            .all(&sql, vec![after.into(), (limit as i64).into()])
            .await?;
        rows.iter().map(customer_from).collect()
    }

    /// The customers with these ids.
    pub async fn customers_by_ids(&self, ids: &[i64]) -> Result<Vec<CustomerRow>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {} FROM customers WHERE id IN ({})",
                self.pack(PACKED_CUSTOMER, "id"),
                placeholders(1, chunk.len())
            );
            out.extend(self.packed_customers(&sql, ids_values(chunk)).await?);
        }
        Ok(out)
    }

    /// Orders of `ids` placed in `[lo, hi]`, each with its rank among the customer's orders.
    pub async fn orders_between(
        &self,
        ids: &[i64],
        lo: i64,
        hi: i64,
    ) -> Result<HashMap<i64, Vec<OrderRow>>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Packed(i64, String, i64, i64, String, i64);
        let mut out: HashMap<i64, Vec<OrderRow>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {} FROM (SELECT o.id, o.customer_id, o.external_id, o.ordered_at, o.amount_minor, o.currency, \
                 (SELECT COUNT(*) FROM orders p WHERE p.customer_id = o.customer_id \
                  AND (p.ordered_at < o.ordered_at OR (p.ordered_at = o.ordered_at AND p.id <= o.id))) AS number \
                 FROM orders o WHERE o.ordered_at >= $1 AND o.ordered_at <= $2 AND o.customer_id IN ({})) t",
                self.pack(
                    "customer_id, external_id, ordered_at, amount_minor, currency, number",
                    "customer_id, ordered_at, id"
                ),
                placeholders(3, chunk.len())
            );
            let mut values: Vec<Value> = vec![lo.into(), hi.into()];
            values.extend(ids_values(chunk));
            for p in self.unpack::<Packed>(&sql, values).await? {
                out.entry(p.0).or_default().push(OrderRow {
                    customer_id: p.0,
                    external_id: p.1,
                    ordered_at: p.2,
                    amount_minor: p.3,
                    currency: p.4,
                    number: p.5,
                });
            }
        }
        Ok(out)
    }

    /// Ledger rows of `ids` due since `since` (the engine's memory: what was recorded for the
    /// window, and what counts against the frequency caps).
    pub async fn history(
        &self,
        ids: &[i64],
        since: i64,
    ) -> Result<HashMap<i64, Vec<HistoryRow>>, StoreError> {
        let mut out: HashMap<i64, Vec<HistoryRow>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT customer_id, ritual, occurrence, status, due_at, created_at FROM deliveries \
                 WHERE customer_id IN ({}) AND due_at >= $1",
                placeholders(2, chunk.len())
            );
            let mut values: Vec<Value> = vec![since.into()];
            values.extend(ids_values(chunk));
            for r in self.all(&sql, values).await? {
                let row = HistoryRow {
                    customer_id: r.try_get("", "customer_id")?,
                    ritual: r.try_get("", "ritual")?,
                    occurrence: r.try_get("", "occurrence")?,
                    status: status_at(&r, "status")?,
                    due_at: r.try_get("", "due_at")?,
                    decided_at: r.try_get("", "created_at")?,
                };
                out.entry(row.customer_id).or_default().push(row);
            }
        }
        Ok(out)
    }

    /// Records decisions (one transaction, multi-row inserts); occurrences already recorded
    /// are left as they are. Returns how many new rows are messages (`pending`) and how many
    /// are suppressions.
    pub async fn insert_deliveries(
        &self,
        rows: &[NewDelivery],
        now: i64,
    ) -> Result<(usize, usize), StoreError> {
        if rows.is_empty() {
            return Ok((0, 0));
        }
        let txn = self.db.begin().await?;
        let (mut pending, mut suppressed) = (0, 0);
        // Messages and suppressions go in separate statements, so the rows each one inserted
        // (conflicts insert nothing) are counted without returning a row per insert.
        let (messages, others): (Vec<&NewDelivery>, Vec<&NewDelivery>) =
            rows.iter().partition(|d| d.status == Status::Pending);
        for (group, count) in [(messages, &mut pending), (others, &mut suppressed)] {
            for chunk in group.chunks(INSERT_ROWS) {
                let mut sql = String::with_capacity(300 + chunk.len() * 80);
                sql.push_str(
                    "INSERT INTO deliveries (ritual, category, customer_id, occurrence, channel, status, reason, recipient, subject, message_id, due_at, occasion, send_window, attempts, next_attempt_at, created_at, updated_at) VALUES ",
                );
                let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 13 + 1);
                values.push(now.into());
                for (i, d) in chunk.iter().enumerate() {
                    use std::fmt::Write;
                    let b = 2 + i * 13;
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for k in 0..13 {
                        let _ = write!(sql, "${}, ", b + k);
                    }
                    // attempts, next_attempt_at (= due_at), created_at, updated_at
                    let _ = write!(sql, "0, ${}, $1, $1)", b + 10);
                    values.extend([
                        Value::from(d.ritual.clone()),
                        d.category.clone().into(),
                        d.customer_id.into(),
                        d.occurrence.clone().into(),
                        d.channel.clone().into(),
                        d.status.as_str().into(),
                        d.reason.clone().into(),
                        d.recipient.clone().into(),
                        d.subject.clone().into(),
                        d.message_id.clone().into(),
                        d.due_at.into(),
                        d.occasion.clone().into(),
                        d.send_window.clone().into(),
                    ]);
                }
                sql.push_str(" ON CONFLICT (ritual, customer_id, occurrence, channel) DO NOTHING");
                *count += txn
                    .execute_raw(self.stmt(&sql, values))
                    .await?
                    .rows_affected() as usize;
            }
        }
        // Rows that come rendered already (tools, benchmarks): their messages, matched by
        // occurrence key (a row that already existed keeps its own message).
        for d in rows.iter().filter(|d| d.payload.is_some()) {
            txn.execute_raw(self.stmt(
                "INSERT INTO delivery_messages (delivery_id, payload) \
                 SELECT id, $1 FROM deliveries WHERE ritual = $2 AND customer_id = $3 AND occurrence = $4 AND channel = $5 \
                 ON CONFLICT (delivery_id) DO NOTHING",
                vec![
                    d.payload.clone().into(),
                    d.ritual.clone().into(),
                    d.customer_id.into(),
                    d.occurrence.clone().into(),
                    d.channel.clone().into(),
                ],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok((pending, suppressed))
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .one(
                "SELECT value FROM settings WHERE key = $1",
                vec![key.to_string().into()],
            )
            .await?
            .map(|r| r.try_get("", "value"))
            .transpose()?)
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.to_string().into(), value.to_string().into()],
        )
        .await?;
        Ok(())
    }

    /// Fills in the first order's month-day where migrations could not (it needs the zone).
    /// A one-off: its query reads every customer, so once a backfill has run the marker
    /// [`ORDER_FACTS_BACKFILLED`] is recorded in `settings` and later opens skip it (imports
    /// and order writes fill the month-day themselves).
    pub async fn backfill_order_facts(&self) -> Result<(), StoreError> {
        if self.setting(ORDER_FACTS_BACKFILLED).await?.is_some() {
            tracing::debug!("order facts: backfill already done, not scanning");
            return Ok(());
        }
        tracing::debug!("order facts: scanning customers for a missing first-order month-day");
        let rows = self
            .all(
                "SELECT id FROM customers WHERE first_order_at IS NOT NULL AND first_order_md IS NULL",
                vec![],
            )
            .await?;
        if !rows.is_empty() {
            let ids: Vec<i64> = rows
                .iter()
                .map(|r| r.try_get("", "id"))
                .collect::<Result<_, _>>()?;
            let txn = self.db.begin().await?;
            super::people::refresh_order_facts(self, &txn, &ids).await?;
            txn.commit().await?;
        }
        // Every row the scan found is filled (a month-day that cannot be computed would stay
        // unfilled at every later scan too): nothing is left for another open.
        self.set_setting(ORDER_FACTS_BACKFILLED, "1").await
    }
}

/// The `settings` key recorded once [`Store::backfill_order_facts`] has run.
pub const ORDER_FACTS_BACKFILLED: &str = "order_facts_backfilled";

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> String {
        let dir =
            std::env::temp_dir().join(format!("ritualist-engine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        format!("sqlite://{}/t.db?mode=rwc", dir.display())
    }

    /// A customer with a first order but no month-day, as a database from before the column
    /// was filled at write time has them; returns its month-day after `open`.
    async fn stale_md(store: &Store) -> Option<i32> {
        store
            .one(
                "SELECT first_order_md FROM customers WHERE external_id = 'stale'",
                vec![],
            )
            .await
            .unwrap()
            .unwrap()
            .try_get("", "first_order_md")
            .unwrap()
    }

    #[tokio::test]
    async fn the_order_facts_backfill_runs_once_not_at_every_open() {
        let url = temp_db("backfill-once");
        let store = Store::open(&url).await.unwrap();
        // The first open backfilled (nothing to fill in a new database) and recorded it.
        assert_eq!(
            store
                .setting(ORDER_FACTS_BACKFILLED)
                .await
                .unwrap()
                .as_deref(),
            Some("1")
        );
        store
            .exec(
                "INSERT INTO customers (external_id, locale, time_zone, created_at, updated_at, first_order_at) \
                 VALUES ('stale', 'en', 'Europe/Bucharest', 0, 0, 1798754400)",
                vec![],
            )
            .await
            .unwrap();
        store
            .exec(
                "INSERT INTO orders (external_id, customer_id, ordered_at, amount_minor, currency, created_at) \
                 SELECT 'o1', id, 1798754400, 100, 'RON', 0 FROM customers WHERE external_id = 'stale'",
                vec![],
            )
            .await
            .unwrap();
        drop(store);
        // A second open does not scan the customers: the stale row stays as it is.
        let store = Store::open(&url).await.unwrap();
        assert_eq!(stale_md(&store).await, None);
        // Without the marker (a database from an older version), the open backfills once.
        store
            .exec(
                "DELETE FROM settings WHERE key = $1",
                vec![ORDER_FACTS_BACKFILLED.into()],
            )
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&url).await.unwrap();
        // 1798754400 = 2027-01-01T00:00:00+02:00 (Bucharest): 1 January.
        assert_eq!(stale_md(&store).await, Some(101));
        assert!(
            store
                .setting(ORDER_FACTS_BACKFILLED)
                .await
                .unwrap()
                .is_some()
        );
    }
}
