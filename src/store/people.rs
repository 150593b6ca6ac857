//! Customers, orders and consent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sea_orm::{ConnectionTrait, Value};

use crate::domain::Channel;

use super::{Store, StoreError};
use crate::import::{CustomerRecord, OrderRecord};

/// A customer as stored. Plain strings: the caller parses them into domain values.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRow {
    pub id: i64,
    pub external_id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub locale: String,
    pub time_zone: String,
    pub birth_year: Option<i16>,
    pub birth_md: Option<i32>,
    pub signup_date: Option<String>,
    pub preferred_channel: Option<String>,
    pub custom_dates: String,
    pub attributes: String,
    pub order_count: i64,
    pub total_spent_minor: i64,
    pub first_order_at: Option<i64>,
    pub last_order_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct UpsertStats {
    pub inserted: u64,
    pub updated: u64,
}

pub(super) const CUSTOMER_COLS: &str = "id, external_id, first_name, last_name, email, phone, locale, time_zone, birth_year, birth_md, signup_date, preferred_channel, custom_dates, attributes, order_count, total_spent_minor, first_order_at, last_order_at";

/// Customer rows per upsert statement: 15 values each (19 for a row with a refused value).
const UPSERT_ROWS: usize = 500;

/// The columns [`customer_values`] fills, in order (`updated_at` takes `created_at`'s value).
pub(super) const CUSTOMER_INSERT_COLS: &str = "external_id, first_name, last_name, email, phone, locale, time_zone, birth_year, birth_md, signup_date, signup_md, preferred_channel, custom_dates, attributes, created_at, updated_at";

/// What an upsert of a stored customer changes besides the contact values.
macro_rules! upsert_set_rest {
    () => {
        "locale = excluded.locale, time_zone = excluded.time_zone, \
     birth_year = excluded.birth_year, birth_md = excluded.birth_md, signup_date = excluded.signup_date, \
     signup_md = excluded.signup_md, preferred_channel = excluded.preferred_channel, \
     custom_dates = excluded.custom_dates, attributes = excluded.attributes, updated_at = excluded.updated_at"
    };
}
const UPSERT_SET_REST: &str = upsert_set_rest!();

/// What an upsert of a stored customer with no refused value changes.
const UPSERT_SET: &str = concat!(
    "first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email, phone = excluded.phone, ",
    upsert_set_rest!()
);

/// The 15 values of a customer row, for [`CUSTOMER_INSERT_COLS`] but its last (`updated_at`
/// is `created_at`, `now`, again): the one place a [`CustomerRecord`] becomes SQL values.
pub(super) fn customer_values(c: &CustomerRecord, now: i64) -> [Value; 15] {
    let custom: BTreeMap<String, String> = c
        .custom_dates
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    [
        Value::from(c.external_id.clone()),
        c.first_name.clone().into(),
        c.last_name.clone().into(),
        c.email.as_ref().map(|e| e.to_string()).into(),
        c.phone.as_ref().map(|p| p.to_string()).into(),
        c.locale.to_string().into(),
        c.time_zone.clone().into(),
        c.birthday.and_then(|b| b.year).into(),
        c.birthday.map(|b| b.month_day()).into(),
        c.signup_date.map(|d| d.to_string()).into(),
        c.signup_date.map(|d| d.month_day()).into(),
        c.preferred_channel.map(|ch| ch.as_str().to_string()).into(),
        serde_json::to_string(&custom)
            .unwrap_or_else(|_| "{}".into())
            .into(),
        serde_json::to_string(&c.attributes)
            .unwrap_or_else(|_| "{}".into())
            .into(),
        now.into(),
    ]
}

pub(super) fn customer_from(r: &sea_orm::QueryResult) -> Result<CustomerRow, StoreError> {
    Ok(CustomerRow {
        id: r.try_get("", "id")?,
        external_id: r.try_get("", "external_id")?,
        first_name: r.try_get("", "first_name")?,
        last_name: r.try_get("", "last_name")?,
        email: r.try_get("", "email")?,
        phone: r.try_get("", "phone")?,
        locale: r.try_get("", "locale")?,
        time_zone: r.try_get("", "time_zone")?,
        birth_year: r.try_get("", "birth_year")?,
        birth_md: r.try_get("", "birth_md")?,
        signup_date: r.try_get("", "signup_date")?,
        preferred_channel: r.try_get("", "preferred_channel")?,
        custom_dates: r.try_get("", "custom_dates")?,
        attributes: r.try_get("", "attributes")?,
        order_count: r.try_get("", "order_count")?,
        total_spent_minor: r.try_get("", "total_spent_minor")?,
        first_order_at: r.try_get("", "first_order_at")?,
        last_order_at: r.try_get("", "last_order_at")?,
    })
}

impl Store {
    pub async fn customer_count(&self) -> Result<i64, StoreError> {
        let row = self
            .one("SELECT COUNT(*) AS n FROM customers", vec![])
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    /// Inserts or updates customers by external id, in one transaction.
    pub async fn upsert_customers(
        &self,
        records: &[CustomerRecord],
        now: i64,
    ) -> Result<UpsertStats, StoreError> {
        self.upsert_customers_checked(records, &[], now).await
    }

    /// [`Store::upsert_customers`], where `stubs[i]` are the forget hashes of `records[i]`
    /// (see `app::forget`): a record matching a forgotten person's stub is opted out of
    /// everything (`all`, source `forgotten`) in the transaction that stores it, so no tick
    /// ever sees it unguarded.
    ///
    /// A contact value the door refused ([`CustomerRecord::refused`]) keeps the stored one: a
    /// valid value is never replaced by nothing because a later import sent a bad one.
    ///
    /// All of `records` are written in one transaction (callers pass batches of a few
    /// thousand), 500 rows per statement where it can: rows with no refused value and an
    /// external id that appears once in their chunk go in one multi-row upsert.
    pub async fn upsert_customers_checked(
        &self,
        records: &[CustomerRecord],
        stubs: &[Vec<String>],
        now: i64,
    ) -> Result<UpsertStats, StoreError> {
        use sea_orm::TransactionTrait;
        let mut stats = UpsertStats::default();
        let guard = !stubs.is_empty() && self.has_forgotten().await?;
        // The first chunk's stored ids are read before the transaction: a SQLite transaction
        // that reads before it writes fails at its first write (SQLITE_BUSY_SNAPSHOT) when
        // another connection wrote in between, while one that starts with a write waits its
        // turn. Later chunks read inside it, after its writes (they see the earlier chunks).
        let ids = |chunk: &[CustomerRecord]| -> Vec<Value> {
            chunk.iter().map(|c| c.external_id.clone().into()).collect()
        };
        let first = records
            .get(..UPSERT_ROWS.min(records.len()))
            .unwrap_or_default();
        let mut first =
            Some(existing_external_ids(self, &self.db, "customers", &ids(first)).await?);
        let txn = self.db.begin().await?;
        for (ci, chunk) in records.chunks(UPSERT_ROWS).enumerate() {
            let stubs = if guard {
                stubs.get(ci * UPSERT_ROWS..).unwrap_or_default()
            } else {
                &[]
            };
            let existing = match first.take() {
                Some(existing) => existing,
                None => existing_external_ids(self, &txn, "customers", &ids(chunk)).await?,
            };
            let s = self
                .upsert_customer_chunk(&txn, chunk, &existing, stubs, now)
                .await?;
            stats.inserted += s.inserted;
            stats.updated += s.updated;
        }
        txn.commit().await?;
        Ok(stats)
    }

    /// One chunk of [`Store::upsert_customers_checked`], inside `txn`.
    async fn upsert_customer_chunk<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        chunk: &[CustomerRecord],
        existing: &BTreeSet<String>,
        stubs: &[Vec<String>],
        now: i64,
    ) -> Result<UpsertStats, StoreError> {
        let distinct: BTreeSet<&str> = chunk.iter().map(|c| c.external_id.as_str()).collect();
        let unique = distinct.len() == chunk.len();
        let plain = |c: &CustomerRecord| {
            unique
                && !(c.refused.first_name
                    || c.refused.last_name
                    || c.refused.email
                    || c.refused.phone)
        };
        let many: Vec<&CustomerRecord> = chunk.iter().filter(|c| plain(c)).collect();
        if !many.is_empty() {
            let sql = format!(
                "INSERT INTO customers ({CUSTOMER_INSERT_COLS}) VALUES {} ON CONFLICT (external_id) DO UPDATE SET {UPSERT_SET}",
                super::bulk::values_list(1, many.len(), 15, true)
            );
            let mut values = Vec::with_capacity(many.len() * 15);
            for c in &many {
                values.extend(customer_values(c, now));
            }
            txn.execute_raw(self.stmt_positional(&sql, values)).await?;
        }
        for c in chunk.iter().filter(|c| !plain(c)) {
            let sql = format!(
                "INSERT INTO customers ({CUSTOMER_INSERT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
                 ON CONFLICT (external_id) DO UPDATE SET \
                 first_name = CASE WHEN $16 = 1 THEN customers.first_name ELSE excluded.first_name END, \
                 last_name = CASE WHEN $17 = 1 THEN customers.last_name ELSE excluded.last_name END, \
                 email = CASE WHEN $18 = 1 THEN customers.email ELSE excluded.email END, \
                 phone = CASE WHEN $19 = 1 THEN customers.phone ELSE excluded.phone END, {UPSERT_SET_REST}"
            );
            let mut values: Vec<Value> = customer_values(c, now).into();
            // A value refused at the door keeps the stored one ($16–$19).
            values.extend([
                i32::from(c.refused.first_name).into(),
                i32::from(c.refused.last_name).into(),
                i32::from(c.refused.email).into(),
                i32::from(c.refused.phone).into(),
            ]);
            txn.execute_raw(self.stmt(&sql, values)).await?;
        }
        self.replace_customer_dates(txn, chunk, existing).await?;
        for (c, hashes) in chunk.iter().zip(stubs).filter(|(_, h)| !h.is_empty()) {
            super::privacy::opt_out_if_forgotten(self, txn, &c.external_id, hashes, now).await?;
        }
        let updated = chunk
            .iter()
            .filter(|c| existing.contains(&c.external_id))
            .count() as u64;
        Ok(UpsertStats {
            inserted: chunk.len() as u64 - updated,
            updated,
        })
    }

    /// The custom yearly dates (indexed by month-day for the yearly rituals) of a chunk of
    /// just-upserted customers: those of `existing` customers are replaced (a new customer
    /// has none: they go with their customer); of an id given twice, the last one counts.
    async fn replace_customer_dates<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        chunk: &[CustomerRecord],
        existing: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let old: Vec<Value> = existing.iter().map(|id| Value::from(id.clone())).collect();
        if !old.is_empty() {
            let sql = format!(
                "DELETE FROM customer_dates WHERE customer_id IN (SELECT id FROM customers WHERE external_id IN ({}))",
                super::placeholders(1, old.len())
            );
            txn.execute_raw(self.stmt_positional(&sql, old)).await?;
        }
        let mut last: HashMap<&str, &CustomerRecord> = HashMap::new();
        for c in chunk {
            last.insert(c.external_id.as_str(), c);
        }
        last.retain(|_, c| !c.custom_dates.is_empty());
        if last.is_empty() {
            return Ok(());
        }
        let keys: Vec<Value> = last.keys().map(|k| Value::from(k.to_string())).collect();
        let sql = format!(
            "SELECT id, external_id FROM customers WHERE external_id IN ({})",
            super::placeholders(1, keys.len())
        );
        let mut values = Vec::new();
        for r in txn.query_all_raw(self.stmt_positional(&sql, keys)).await? {
            let external: String = r.try_get("", "external_id")?;
            let id: i64 = r.try_get("", "id")?;
            for (name, d) in last
                .get(external.as_str())
                .map(|c| &c.custom_dates)
                .into_iter()
                .flatten()
            {
                values.extend([
                    Value::from(id),
                    name.clone().into(),
                    d.month_day().into(),
                    d.year.into(),
                ]);
            }
        }
        for rows in values.chunks(4 * 2000) {
            let sql = format!(
                "INSERT INTO customer_dates (customer_id, name, md, year) VALUES {}",
                super::bulk::values_list(1, rows.len() / 4, 4, false)
            );
            txn.execute_raw(self.stmt_positional(&sql, rows.to_vec()))
                .await?;
        }
        Ok(())
    }

    /// Inserts or updates orders by external id. Orders whose customer is unknown are returned
    /// (with their index in `records`) instead of being stored.
    pub async fn upsert_orders(
        &self,
        records: &[OrderRecord],
        now: i64,
    ) -> Result<(UpsertStats, Vec<(usize, String)>), StoreError> {
        let mut stats = UpsertStats::default();
        let mut unknown = Vec::new();
        let mut offset = 0usize;
        for chunk in records.chunks(500) {
            let cust_ids: Vec<Value> = chunk
                .iter()
                .map(|o| o.customer_external_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(Value::from)
                .collect();
            let placeholders: Vec<String> = (1..=cust_ids.len()).map(|i| format!("${i}")).collect();
            let rows = self
                .all(
                    &format!(
                        "SELECT id, external_id FROM customers WHERE external_id IN ({})",
                        placeholders.join(", ")
                    ),
                    cust_ids,
                )
                .await?;
            let mut map: HashMap<String, i64> = HashMap::new();
            for r in rows {
                map.insert(r.try_get("", "external_id")?, r.try_get("", "id")?);
            }
            let ids: Vec<Value> = chunk.iter().map(|o| o.external_id.clone().into()).collect();
            let existing = existing_external_ids(self, &self.db, "orders", &ids).await?;
            use sea_orm::TransactionTrait;
            let txn = self.db.begin().await?;
            for (i, o) in chunk.iter().enumerate() {
                let Some(cid) = map.get(&o.customer_external_id) else {
                    unknown.push((
                        offset + i,
                        format!(
                            "unknown customer `{}`: import the customer first",
                            o.customer_external_id
                        ),
                    ));
                    continue;
                };
                let sql = "INSERT INTO orders (external_id, customer_id, ordered_at, amount_minor, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (external_id) DO UPDATE SET customer_id = excluded.customer_id, ordered_at = excluded.ordered_at, \
                     amount_minor = excluded.amount_minor, currency = excluded.currency";
                txn.execute_raw(self.stmt(
                    sql,
                    vec![
                        o.external_id.clone().into(),
                        (*cid).into(),
                        o.ordered_at.as_second().into(),
                        o.amount_minor.into(),
                        o.currency.clone().into(),
                        now.into(),
                    ],
                ))
                .await?;
                if existing.contains(&o.external_id) {
                    stats.updated += 1;
                } else {
                    stats.inserted += 1;
                }
            }
            let touched: BTreeSet<i64> = chunk
                .iter()
                .filter_map(|o| map.get(&o.customer_external_id).copied())
                .collect();
            refresh_order_facts(self, &txn, &touched.into_iter().collect::<Vec<_>>()).await?;
            txn.commit().await?;
            offset += chunk.len();
        }
        Ok((stats, unknown))
    }

    /// A customer by external id, email or phone (in that order).
    pub async fn find_customer(&self, key: &str) -> Result<Option<CustomerRow>, StoreError> {
        for col in ["external_id", "email", "phone"] {
            let sql = format!(
                "SELECT {CUSTOMER_COLS} FROM customers WHERE {col} = $1 ORDER BY id LIMIT 1"
            );
            if let Some(r) = self.one(&sql, vec![key.to_string().into()]).await? {
                return Ok(Some(customer_from(&r)?));
            }
        }
        Ok(None)
    }

    /// Records an opt-out (`opted_out = true`) or opt-in for a scope (`all`, `channel:sms`,
    /// `ritual:birthday`, `category:holidays.mothers_day`), with its source and time, and logs
    /// the change in `consent_events`. Saying again what is already recorded changes nothing
    /// (a replayed one-click, a second STOP): `false` then.
    pub async fn set_consent(
        &self,
        customer_id: i64,
        scope: &str,
        opted_out: bool,
        source: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await?;
        let changed = txn
            .execute_raw(self.stmt(
                "INSERT INTO consents (customer_id, scope, opted_out, source, changed_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (customer_id, scope) DO UPDATE SET opted_out = excluded.opted_out, source = excluded.source, changed_at = excluded.changed_at \
                 WHERE consents.opted_out <> excluded.opted_out",
                vec![customer_id.into(), scope.to_string().into(), opted_out.into(), source.to_string().into(), now.into()],
            ))
            .await?
            .rows_affected()
            > 0;
        if changed {
            txn.execute_raw(self.stmt(
                "INSERT INTO consent_events (customer_id, scope, opted_out, source, changed_at) VALUES ($1, $2, $3, $4, $5)",
                vec![customer_id.into(), scope.to_string().into(), opted_out.into(), source.to_string().into(), now.into()],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(changed)
    }

    /// The provider says `address` takes no more messages on `channel`: an email hard bounce
    /// (source `bounce`), or an SMS number that replied STOP at the carrier (Twilio 21610,
    /// source `carrier_stop`). Records `channel:<channel>` opted out, only while `address` is
    /// still the customer's (a corrected address is not blamed) and never over an opt-out the
    /// customer gave themselves. `true` when recorded; the change is appended to
    /// `consent_events` in the same transaction, like every other consent change.
    pub async fn record_bounce(
        &self,
        customer_id: i64,
        channel: Channel,
        address: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let source = match channel {
            Channel::Email => "bounce",
            Channel::Sms => "carrier_stop",
        };
        use sea_orm::TransactionTrait;
        let txn = self.db.begin().await?;
        let changed = self
            .opt_out_address_in(&txn, customer_id, channel, address, source, now)
            .await?;
        txn.commit().await?;
        Ok(changed)
    }

    /// Inside `txn`: records `channel:<channel>` opted out with `source`, only while
    /// `address` is still the customer's and never over an opt-out already there, and appends
    /// the change to `consent_events`. `true` when recorded.
    pub(super) async fn opt_out_address_in<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        customer_id: i64,
        channel: Channel,
        address: &str,
        source: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (scope, matches) = match channel {
            Channel::Email => ("channel:email", "lower(email) = lower($3)"),
            Channel::Sms => ("channel:sms", "phone = $3"),
        };
        let changed = txn
            .execute_raw(self.stmt(
                &format!(
                    "INSERT INTO consents (customer_id, scope, opted_out, source, changed_at) \
                     SELECT id, '{scope}', TRUE, $4, $2 FROM customers WHERE id = $1 AND {matches} \
                     ON CONFLICT (customer_id, scope) DO UPDATE SET opted_out = excluded.opted_out, source = excluded.source, changed_at = excluded.changed_at \
                     WHERE consents.opted_out = FALSE"
                ),
                vec![customer_id.into(), now.into(), address.to_string().into(), source.to_string().into()],
            ))
            .await?
            .rows_affected()
            > 0;
        if changed {
            txn.execute_raw(self.stmt(
                &format!(
                    "INSERT INTO consent_events (customer_id, scope, opted_out, source, changed_at) \
                     VALUES ($1, '{scope}', TRUE, $3, $2)"
                ),
                vec![customer_id.into(), now.into(), source.to_string().into()],
            ))
            .await?;
        }
        Ok(changed)
    }

    /// Every consent record of a customer: (scope, opted out, source).
    pub async fn consents_of(
        &self,
        customer_id: i64,
    ) -> Result<Vec<(String, bool, String)>, StoreError> {
        let rows = self
            .all(
                "SELECT scope, opted_out, source FROM consents WHERE customer_id = $1 ORDER BY scope",
                vec![customer_id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("", "scope")?,
                    r.try_get("", "opted_out")?,
                    r.try_get("", "source")?,
                ))
            })
            .collect()
    }

    /// The opted-out scopes of each of `ids`.
    pub async fn opt_outs(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, BTreeSet<String>>, StoreError> {
        let mut out: HashMap<i64, BTreeSet<String>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT customer_id, scope FROM consents WHERE opted_out = TRUE AND customer_id IN ({})",
                placeholders.join(", ")
            );
            for r in self
                .all(&sql, chunk.iter().map(|i| Value::from(*i)).collect())
                .await?
            {
                out.entry(r.try_get("", "customer_id")?)
                    .or_default()
                    .insert(r.try_get("", "scope")?);
            }
        }
        Ok(out)
    }
}

/// Of `ids` (external ids), those stored in `table`, read through `conn`.
async fn existing_external_ids<C: sea_orm::ConnectionTrait>(
    store: &Store,
    conn: &C,
    table: &str,
    ids: &[Value],
) -> Result<BTreeSet<String>, StoreError> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let sql = format!(
        "SELECT external_id FROM {table} WHERE external_id IN ({})",
        super::placeholders(1, ids.len())
    );
    let rows = conn.query_all_raw(store.stmt(&sql, ids.to_vec())).await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String>("", "external_id")?))
        .collect()
}

/// Recomputes the order facts (count, total, first and last order, the first order's local
/// month-day) of `ids` from their orders, inside `txn`.
pub(super) async fn refresh_order_facts<C: sea_orm::ConnectionTrait>(
    store: &Store,
    txn: &C,
    ids: &[i64],
) -> Result<(), StoreError> {
    for chunk in ids.chunks(500) {
        if chunk.is_empty() {
            continue;
        }
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let values: Vec<Value> = chunk.iter().map(|i| Value::from(*i)).collect();
        let list = placeholders.join(", ");
        txn.execute_raw(store.stmt(
            &format!(
                "UPDATE customers SET \
                 order_count = (SELECT COUNT(*) FROM orders o WHERE o.customer_id = customers.id), \
                 total_spent_minor = COALESCE((SELECT SUM(o.amount_minor) FROM orders o WHERE o.customer_id = customers.id), 0), \
                 first_order_at = (SELECT MIN(o.ordered_at) FROM orders o WHERE o.customer_id = customers.id), \
                 last_order_at = (SELECT MAX(o.ordered_at) FROM orders o WHERE o.customer_id = customers.id) \
                 WHERE id IN ({list})"
            ),
            values.clone(),
        ))
        .await?;
        let rows = txn
            .query_all_raw(store.stmt(
                &format!(
                    "SELECT id, time_zone, first_order_at FROM customers WHERE id IN ({list})"
                ),
                values,
            ))
            .await?;
        // One statement for the chunk's month-days (one per customer cost a round trip
        // each: a million at the import of a million customers' orders).
        let mut mds: Vec<Value> = Vec::with_capacity(rows.len() * 2);
        for r in &rows {
            let id: i64 = r.try_get("", "id")?;
            let zone: String = r.try_get("", "time_zone")?;
            let first: Option<i64> = r.try_get("", "first_order_at")?;
            let md = first.and_then(|t| local_month_day(t, &zone));
            mds.extend([id.into(), md.into()]);
        }
        if !mds.is_empty() {
            txn.execute_raw(store.stmt(
                &format!(
                    "UPDATE customers SET first_order_md = v.column2 FROM (VALUES {}) AS v \
                     WHERE customers.id = v.column1",
                    super::bulk::values_list(1, mds.len() / 2, 2, false)
                ),
                mds,
            ))
            .await?;
        }
    }
    Ok(())
}

/// `month * 100 + day` of a Unix time in an IANA zone (UTC when the zone is unknown).
fn local_month_day(t: i64, zone: &str) -> Option<i32> {
    let ts = jiff::Timestamp::from_second(t).ok()?;
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let d = tz.to_datetime(ts).date();
    Some(d.month() as i32 * 100 + d.day() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// #26: `preview`, `forget` and the preview page find a customer by email too; that probe
    /// must use an index, never scan every customer (migration 000011).
    #[tokio::test]
    async fn finding_a_customer_by_any_key_uses_an_index() {
        let (store, _dir) = crate::test_support::temp_store("people").await;
        for col in ["external_id", "email", "phone"] {
            let plan: Vec<String> = store
                .all(
                    &format!(
                        "EXPLAIN QUERY PLAN SELECT {CUSTOMER_COLS} FROM customers WHERE {col} = $1 ORDER BY id LIMIT 1"
                    ),
                    vec!["x".into()],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "detail").unwrap())
                .collect();
            let plan = plan.join(" | ");
            assert!(
                plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"),
                "{col}: {plan}"
            );
            assert!(!plan.starts_with("SCAN customers"), "{col}: {plan}");
        }
    }
}
