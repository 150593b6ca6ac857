//! Bulk paths for large data sets (the engine benchmark's generator and its raw-stream
//! baseline): new customers and orders written with multi-row INSERTs in big transactions,
//! and every customer row read in one streamed `SELECT`.
//!
//! The loader writes exactly what [`Store::upsert_customers`] and [`Store::upsert_orders`]
//! write — the same column values, the `birth_md`/`signup_md` month-days, the
//! `customer_dates` rows, and the order facts (recomputed by the same
//! `refresh_order_facts`) — only faster, and only for external ids that are not stored yet
//! (an existing one fails the transaction with a unique-constraint error).

use std::collections::{BTreeSet, HashMap};

use sea_orm::{ConnectionTrait, DbBackend, Statement, StreamTrait, TransactionTrait, Value};

use super::people::{
    CUSTOMER_COLS, CUSTOMER_INSERT_COLS, customer_from, customer_values, refresh_order_facts,
};
use super::{CustomerRow, Store, StoreError, UpsertStats, placeholders};
use crate::import::{CustomerRecord, OrderRecord};

/// Customer rows per INSERT: 15 values each, under SQLite's 32766 variables.
const CUSTOMER_ROWS: usize = 2000;
/// Order rows per INSERT: 6 values each.
const ORDER_ROWS: usize = 5000;
/// Customer-date rows per INSERT: 4 values each.
const DATE_ROWS: usize = 5000;
/// External ids per lookup.
const LOOKUP: usize = 500;
/// Order rows per upsert statement: 6 values each.
const ORDER_UPSERT_ROWS: usize = 2000;
/// Keys per statement of [`SeenIds::check`]: 2 values each.
const SEEN_ROWS: usize = 4000;

/// `($1, $2, …), (…)`: `rows` tuples of `width` numbered placeholders from `$first`; with
/// `repeat_last`, each tuple ends with its last placeholder once more.
pub(super) fn values_list(first: usize, rows: usize, width: usize, repeat_last: bool) -> String {
    let mut s = String::with_capacity(rows * (width + 1) * 7);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        s.push_str(&placeholders(first + r * width, width));
        if repeat_last {
            s.push_str(&format!(", ${}", first + r * width + width - 1));
        }
        s.push(')');
    }
    s
}

impl Store {
    /// [`Store::stmt`] for statements with thousands of parameters. On SQLite every `$n`
    /// becomes an anonymous `?` and the values are laid out in the order they occur (a
    /// repeated `$n` gets its value again). Numbered `?NNN` parameters are looked up by name
    /// when sqlx binds them (`sqlite3_bind_parameter_name`, a linear walk of the statement's
    /// parameter list, once per parameter): binding N of them costs O(N²), ~40 ms for a
    /// 7,000-parameter INSERT. Anonymous ones bind in O(N).
    pub(super) fn stmt_positional(&self, sql: &str, values: Vec<Value>) -> Statement {
        if self.backend != DbBackend::Sqlite {
            return Statement::from_sql_and_values(self.backend, sql.to_string(), values);
        }
        let mut out = String::with_capacity(sql.len());
        let mut ordered = Vec::with_capacity(values.len());
        let bytes = sql.as_bytes();
        let (mut copied, mut i) = (0, 0);
        while i < bytes.len() {
            if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let mut j = i + 1;
                let mut n = 0usize;
                while let Some(d) = bytes.get(j).filter(|d| d.is_ascii_digit()) {
                    n = n * 10 + (d - b'0') as usize;
                    j += 1;
                }
                out.push_str(&sql[copied..i]);
                out.push('?');
                ordered.push(
                    values
                        .get(n.wrapping_sub(1))
                        .cloned()
                        .unwrap_or(Value::Int(None)),
                );
                copied = j;
                i = j;
            } else {
                i += 1;
            }
        }
        out.push_str(&sql[copied..]);
        Statement::from_sql_and_values(self.backend, out, ordered)
    }

    /// Inserts new customers (none of their external ids may be stored yet) and their custom
    /// dates, in one transaction. Returns the new ids, in the order of `records`.
    pub async fn bulk_insert_customers(
        &self,
        records: &[CustomerRecord],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let txn = self.db.begin().await?;
        let mut ids = Vec::with_capacity(records.len());
        let mut dates: Vec<Value> = Vec::new();
        for chunk in records.chunks(CUSTOMER_ROWS) {
            let sql = format!(
                "INSERT INTO customers ({CUSTOMER_INSERT_COLS}) VALUES {} RETURNING id, external_id",
                // created_at = updated_at, as `upsert_customers` writes them.
                values_list(1, chunk.len(), 15, true)
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 15);
            for c in chunk {
                values.extend(customer_values(c, now));
            }
            let mut by_external: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
            for r in txn
                .query_all_raw(self.stmt_positional(&sql, values))
                .await?
            {
                by_external.insert(r.try_get("", "external_id")?, r.try_get("", "id")?);
            }
            for c in chunk {
                let id = *by_external.get(&c.external_id).ok_or_else(|| {
                    StoreError::Corrupt(format!("no id returned for `{}`", c.external_id))
                })?;
                ids.push(id);
                for (name, d) in &c.custom_dates {
                    dates.extend([
                        Value::from(id),
                        name.clone().into(),
                        d.month_day().into(),
                        d.year.into(),
                    ]);
                }
            }
        }
        for chunk in dates.chunks(DATE_ROWS * 4) {
            let sql = format!(
                "INSERT INTO customer_dates (customer_id, name, md, year) VALUES {}",
                values_list(1, chunk.len() / 4, 4, false)
            );
            txn.execute_raw(self.stmt_positional(&sql, chunk.to_vec()))
                .await?;
        }
        txn.commit().await?;
        Ok(ids)
    }

    /// The id of each customer `records` name, by external id (unknown ones are absent).
    async fn customer_ids_of(
        &self,
        records: &[OrderRecord],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let wanted: BTreeSet<&str> = records
            .iter()
            .map(|o| o.customer_external_id.as_str())
            .collect();
        let wanted: Vec<&str> = wanted.into_iter().collect();
        let mut map: HashMap<String, i64> = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(LOOKUP) {
            let sql = format!(
                "SELECT id, external_id FROM customers WHERE external_id IN ({})",
                placeholders(1, chunk.len())
            );
            let values = chunk.iter().map(|s| Value::from(s.to_string())).collect();
            for r in self.all(&sql, values).await? {
                map.insert(r.try_get("", "external_id")?, r.try_get("", "id")?);
            }
        }
        Ok(map)
    }

    /// Inserts new orders (none of their external ids may be stored yet) of stored customers,
    /// and recomputes the order facts of every customer they touch, in one transaction.
    /// Returns how many were inserted; an order of an unknown customer is an error.
    pub async fn bulk_insert_orders(
        &self,
        records: &[OrderRecord],
        now: i64,
    ) -> Result<u64, StoreError> {
        let map = self.customer_ids_of(records).await?;
        let txn = self.db.begin().await?;
        let mut touched = BTreeSet::new();
        for chunk in records.chunks(ORDER_ROWS) {
            let sql = format!(
                "INSERT INTO orders (external_id, customer_id, ordered_at, amount_minor, currency, created_at) VALUES {}",
                values_list(1, chunk.len(), 6, false)
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
            for o in chunk {
                let cid = *map.get(&o.customer_external_id).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "order `{}`: unknown customer `{}`",
                        o.external_id, o.customer_external_id
                    ))
                })?;
                touched.insert(cid);
                values.extend([
                    Value::from(o.external_id.clone()),
                    cid.into(),
                    o.ordered_at.as_second().into(),
                    o.amount_minor.into(),
                    o.currency.clone().into(),
                    now.into(),
                ]);
            }
            txn.execute_raw(self.stmt_positional(&sql, values)).await?;
        }
        refresh_order_facts(self, &txn, &touched.into_iter().collect::<Vec<_>>()).await?;
        txn.commit().await?;
        Ok(records.len() as u64)
    }

    /// Inserts or updates orders by external id, as [`Store::upsert_orders`] does (the same
    /// rows, counts and unknown customers, returned with their index in `records`), but
    /// with multi-row upserts in one transaction for all of `records`, and the order facts of
    /// the customers touched recomputed once: `import`'s batches.
    pub async fn upsert_orders_batched(
        &self,
        records: &[OrderRecord],
        now: i64,
    ) -> Result<(UpsertStats, Vec<(usize, String)>), StoreError> {
        // Every read before the transaction (see `upsert_customers_checked`).
        let map = self.customer_ids_of(records).await?;
        let mut stored: BTreeSet<String> = BTreeSet::new();
        for chunk in records.chunks(LOOKUP) {
            let sql = format!(
                "SELECT external_id FROM orders WHERE external_id IN ({})",
                placeholders(1, chunk.len())
            );
            let values = chunk.iter().map(|o| o.external_id.clone().into()).collect();
            for r in self.all(&sql, values).await? {
                stored.insert(r.try_get("", "external_id")?);
            }
        }
        let mut stats = UpsertStats::default();
        let mut unknown = Vec::new();
        // Statements of distinct external ids (one statement cannot upsert a row twice);
        // a repeated id starts the next one, so the last row wins, as one by one.
        let mut statements: Vec<Vec<(&OrderRecord, i64)>> = vec![Vec::new()];
        let mut in_statement: BTreeSet<&str> = BTreeSet::new();
        let mut touched = BTreeSet::new();
        for (i, o) in records.iter().enumerate() {
            let Some(&cid) = map.get(&o.customer_external_id) else {
                unknown.push((
                    i,
                    format!(
                        "unknown customer `{}`: import the customer first",
                        o.customer_external_id
                    ),
                ));
                continue;
            };
            if !stored.insert(o.external_id.clone()) {
                stats.updated += 1;
            } else {
                stats.inserted += 1;
            }
            let full = statements
                .last()
                .is_some_and(|s| s.len() >= ORDER_UPSERT_ROWS);
            if full || !in_statement.insert(o.external_id.as_str()) {
                statements.push(Vec::new());
                in_statement.clear();
                in_statement.insert(o.external_id.as_str());
            }
            if let Some(s) = statements.last_mut() {
                s.push((o, cid));
            }
            touched.insert(cid);
        }
        let txn = self.db.begin().await?;
        for rows in statements.iter().filter(|s| !s.is_empty()) {
            let sql = format!(
                "INSERT INTO orders (external_id, customer_id, ordered_at, amount_minor, currency, created_at) VALUES {} \
                 ON CONFLICT (external_id) DO UPDATE SET customer_id = excluded.customer_id, ordered_at = excluded.ordered_at, \
                 amount_minor = excluded.amount_minor, currency = excluded.currency",
                values_list(1, rows.len(), 6, false)
            );
            let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 6);
            for (o, cid) in rows {
                values.extend([
                    Value::from(o.external_id.clone()),
                    (*cid).into(),
                    o.ordered_at.as_second().into(),
                    o.amount_minor.into(),
                    o.currency.clone().into(),
                    now.into(),
                ]);
            }
            txn.execute_raw(self.stmt_positional(&sql, values)).await?;
        }
        refresh_order_facts(self, &txn, &touched.into_iter().collect::<Vec<_>>()).await?;
        txn.commit().await?;
        Ok((stats, unknown))
    }

    /// Reads every customer row (the columns the engine reads) in one streamed `SELECT`,
    /// decoding each and handing it to `f`. Returns the number of rows.
    pub async fn stream_customers(
        &self,
        mut f: impl FnMut(CustomerRow),
    ) -> Result<u64, StoreError> {
        use futures_util::TryStreamExt;
        let sql = format!("SELECT {CUSTOMER_COLS} FROM customers");
        let mut stream = self.db.stream_raw(self.stmt(&sql, vec![])).await?;
        let mut n = 0u64;
        while let Some(r) = stream.try_next().await? {
            f(customer_from(&r)?);
            n += 1;
        }
        Ok(n)
    }

    /// Moves everything in SQLite's write-ahead log into the database file, so the file alone
    /// is a complete copy (no-op elsewhere).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if !self.is_postgres() {
            self.exec("PRAGMA wal_checkpoint(TRUNCATE)", vec![]).await?;
        }
        Ok(())
    }
}

/// The external ids an import has seen, each with the line it was first seen on, in a
/// scratch SQLite file of their own under the system's temporary folder (removed on drop):
/// `import`'s duplicate-id check, which thus holds no set in memory whatever the size of the
/// file (SQLite keeps a bounded page cache; the rest is on disk). Whatever the database, the
/// scratch file is local and never shared.
///
/// The ids themselves are the key, not a hash of them: an export sorted by id (the usual
/// case) then appends to the end of the B-tree, a batch dirtying a few pages, where random
/// keys dirtied nearly every leaf at every batch (the whole file rewritten each time).
pub struct SeenIds {
    db: sea_orm::DatabaseConnection,
    path: std::path::PathBuf,
}

impl SeenIds {
    /// A fresh, empty set.
    pub async fn new() -> Result<SeenIds, StoreError> {
        let path = std::env::temp_dir().join(format!(
            "ritualist-import-{}-{}.db",
            std::process::id(),
            super::random_token()
        ));
        let mut opts =
            sea_orm::ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        // One connection: the pragmas below hold for it alone. Nothing here needs to survive
        // a crash (the file is scratch), hence no journal and no fsync.
        opts.sqlx_logging(false)
            .max_connections(1)
            .min_connections(1)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Off)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Off)
                    .pragma("cache_size", "-8192")
                    .pragma("temp_store", "file")
            });
        let db = sea_orm::Database::connect(opts).await?;
        let set = SeenIds { db, path };
        set.db
            .execute_unprepared(
                "CREATE TABLE seen (id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID",
            )
            .await?;
        Ok(set)
    }

    /// For each `(id, line)` in order: `None` when the id is new (it is recorded with its
    /// line), or the line it was first seen on (in an earlier call or earlier in `keys`).
    pub async fn check(&self, keys: &[(&str, u64)]) -> Result<Vec<Option<u64>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        let txn = self.db.begin().await?;
        for chunk in keys.chunks(SEEN_ROWS) {
            let sql = format!(
                "INSERT INTO seen (id, line) VALUES {} ON CONFLICT DO NOTHING RETURNING id",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let values: Vec<Value> = chunk
                .iter()
                .flat_map(|&(k, l)| [Value::from(k), Value::from(l as i64)])
                .collect();
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    sql,
                    values,
                ))
                .await?;
            let mut new: BTreeSet<String> = BTreeSet::new();
            for r in rows {
                new.insert(r.try_get("", "id")?);
            }
            let mut again = Vec::new();
            for &(k, _) in chunk {
                if new.remove(k) {
                    out.push(None);
                } else {
                    again.push(out.len());
                    out.push(Some(0));
                }
            }
            if again.is_empty() {
                continue;
            }
            let wanted: Vec<Value> = again.iter().map(|&i| Value::from(keys[i].0)).collect();
            let sql = format!(
                "SELECT id, line FROM seen WHERE id IN ({})",
                vec!["?"; wanted.len()].join(", ")
            );
            let mut first: HashMap<String, i64> = HashMap::new();
            for r in txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    sql,
                    wanted,
                ))
                .await?
            {
                first.insert(r.try_get("", "id")?, r.try_get("", "line")?);
            }
            for i in again {
                // An id that conflicted is stored: its line is there.
                out[i] = Some(first.get(keys[i].0).map_or(0, |&l| l as u64));
            }
        }
        txn.commit().await?;
        Ok(out)
    }
}

impl Drop for SeenIds {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Email, Locale, Phone, YearlyDate};
    use std::collections::BTreeMap;

    fn customer(i: usize) -> CustomerRecord {
        let mut custom = BTreeMap::new();
        if i.is_multiple_of(2) {
            custom.insert(
                "wedding".to_string(),
                YearlyDate::new(Some(2010 + i as i16), 6, 15).unwrap(),
            );
        }
        if i.is_multiple_of(3) {
            custom.insert("club".to_string(), YearlyDate::new(None, 2, 29).unwrap());
        }
        let mut attributes = BTreeMap::new();
        if i % 2 == 1 {
            attributes.insert("country".to_string(), "MD".to_string());
        }
        CustomerRecord {
            external_id: format!("C{i}"),
            first_name: Some(format!("Ana{i}")),
            last_name: i.is_multiple_of(2).then(|| "Popescu".to_string()),
            email: (i % 4 != 3).then(|| Email::parse(&format!("a{i}@example.com")).unwrap()),
            phone: (i % 3 != 2).then(|| Phone::parse(&format!("+4072100{i:04}"), None).unwrap()),
            locale: Locale::parse(["ro", "ru", "en", "en-GB"][i % 4]).unwrap(),
            time_zone: [
                "Europe/Bucharest",
                "Pacific/Kiritimati",
                "Pacific/Pago_Pago",
            ][i % 3]
                .to_string(),
            birthday: match i % 3 {
                0 => Some(YearlyDate::new(Some(1980 + 4 * i as i16), 2, 29).unwrap()),
                1 => Some(YearlyDate::new(None, 12, 31).unwrap()),
                _ => None,
            },
            signup_date: (!i.is_multiple_of(5)).then(|| YearlyDate::new(Some(2020), 1, 1).unwrap()),
            preferred_channel: i.is_multiple_of(2).then_some(Channel::Sms),
            custom_dates: custom,
            attributes,
            refused: Default::default(),
        }
    }

    fn orders(n: usize) -> Vec<OrderRecord> {
        (0..n * 3)
            .filter(|k| k % 4 != 0)
            .map(|k| OrderRecord {
                external_id: format!("O{k}"),
                customer_external_id: format!("C{}", k % n),
                // Around midnight UTC: the first order's local month-day depends on the zone.
                ordered_at: jiff::Timestamp::from_second(1_767_225_600 - 3600 + k as i64 * 600)
                    .unwrap(),
                amount_minor: 1000 + k as i64,
                currency: "RON".into(),
            })
            .collect()
    }

    async fn dump(store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [
            "SELECT id, external_id, first_name, last_name, email, phone, locale, time_zone, birth_year, birth_md, signup_date, signup_md, preferred_channel, custom_dates, attributes, created_at, updated_at, order_count, total_spent_minor, first_order_at, last_order_at, first_order_md FROM customers ORDER BY id",
            "SELECT customer_id, name, md, year FROM customer_dates ORDER BY customer_id, name",
            "SELECT id, external_id, customer_id, ordered_at, amount_minor, currency, created_at FROM orders ORDER BY id",
        ] {
            for r in store.all(sql, vec![]).await.unwrap() {
                let mut row = Vec::new();
                for col in sql["SELECT ".len()..sql.find(" FROM").unwrap()].split(", ") {
                    let v = r
                        .try_get::<Option<i64>>("", col)
                        .map(|v| format!("{v:?}"))
                        .or_else(|_| {
                            r.try_get::<Option<String>>("", col)
                                .map(|v| format!("{v:?}"))
                        })
                        .unwrap();
                    row.push(format!("{col}={v}"));
                }
                out.push(row.join(" "));
            }
        }
        out
    }

    fn temp_db(name: &str) -> String {
        let dir =
            std::env::temp_dir().join(format!("ritualist-bulk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        format!("sqlite://{}/t.db?mode=rwc", dir.display())
    }

    #[tokio::test]
    async fn positional_statements_bind_in_order_of_occurrence() {
        let store = Store::open(&temp_db("positional")).await.unwrap();
        let st = store.stmt_positional(
            "SELECT $2 AS a, $1 AS b, $2 AS c, '€' AS d, $10 AS e",
            (1..=10).map(|i| Value::from(i as i64)).collect(),
        );
        assert_eq!(st.sql, "SELECT ? AS a, ? AS b, ? AS c, '€' AS d, ? AS e");
        let r = store.db.query_one_raw(st).await.unwrap().unwrap();
        let got: Vec<i64> = ["a", "b", "c", "e"]
            .iter()
            .map(|c| r.try_get("", c).unwrap())
            .collect();
        assert_eq!(got, [2, 1, 2, 10]);
    }

    #[tokio::test]
    async fn bulk_loader_writes_what_the_upserts_write() {
        let customers: Vec<CustomerRecord> = (0..12).map(customer).collect();
        let orders = orders(12);
        let now = 1_800_000_000;

        let a = Store::open(&temp_db("upsert")).await.unwrap();
        a.upsert_customers(&customers, now).await.unwrap();
        let (_, unknown) = a.upsert_orders(&orders, now).await.unwrap();
        assert!(unknown.is_empty());

        let b = Store::open(&temp_db("bulk")).await.unwrap();
        let ids = b.bulk_insert_customers(&customers, now).await.unwrap();
        assert_eq!(ids, (1..=12).collect::<Vec<i64>>());
        assert_eq!(b.bulk_insert_orders(&orders, now).await.unwrap(), 27);

        let (da, db) = (dump(&a).await, dump(&b).await);
        assert_eq!(da.len(), 12 + 10 + 27);
        assert_eq!(da, db);
        // The facts are there (not just equal): counts, first-order month-days in the zone.
        assert!(db.iter().any(|r| r.contains("order_count=Some(3)")));
        assert!(db.iter().any(|r| r.contains("first_order_md=Some(1231)")));
        assert!(db.iter().any(|r| r.contains("first_order_md=Some(101)")));

        let mut streamed = Vec::new();
        let n = b
            .stream_customers(|c| streamed.push((c.id, c.external_id, c.order_count)))
            .await
            .unwrap();
        assert_eq!(n, 12);
        assert_eq!(streamed.len(), 12);
        assert_eq!(
            b.customers_after(0, 100).await.unwrap().len(),
            streamed.len()
        );
        // A second load of the same customers is refused, not merged.
        assert!(b.bulk_insert_customers(&customers[..1], now).await.is_err());
        assert_eq!(b.customer_count().await.unwrap(), 12);
        b.checkpoint().await.unwrap();
    }

    /// `import`'s batched orders store what the one-by-one upsert stores: the same rows, the
    /// same facts, the same counts and unknown customers, a repeated id's last row winning.
    #[tokio::test]
    async fn batched_orders_write_what_the_one_by_one_upsert_writes() {
        let now = 1_800_000_000;
        let customers: Vec<CustomerRecord> = (0..12).map(customer).collect();
        let mut orders = orders(12);
        orders.push(OrderRecord {
            customer_external_id: "nobody".into(),
            ..orders[0].clone()
        });
        orders.push(OrderRecord {
            amount_minor: 1,
            ..orders[3].clone()
        });
        let a = Store::open(&temp_db("orders-a")).await.unwrap();
        let b = Store::open(&temp_db("orders-b")).await.unwrap();
        for s in [&a, &b] {
            s.upsert_customers(&customers, now).await.unwrap();
        }
        let one = a.upsert_orders(&orders, now).await.unwrap();
        let batched = b.upsert_orders_batched(&orders, now).await.unwrap();
        assert_eq!(one.1, batched.1);
        assert_eq!(batched.1.len(), 1);
        assert_eq!(batched.0.inserted, 27);
        assert_eq!(batched.0.updated, 1);
        assert_eq!(dump(&a).await, dump(&b).await);
        // Again: every row is an update, nothing changes.
        let again = b.upsert_orders_batched(&orders, now).await.unwrap();
        assert_eq!((again.0.inserted, again.0.updated), (0, 28));
        assert_eq!(dump(&a).await, dump(&b).await);
    }

    #[tokio::test]
    async fn seen_ids_give_the_first_line_of_a_key_seen_before() {
        let seen = SeenIds::new().await.unwrap();
        let path = seen.path.clone();
        assert!(path.is_file());
        let first = seen
            .check(&[("c7", 2), ("Ștefan", 3), ("c7", 4), ("c9", 5)])
            .await
            .unwrap();
        assert_eq!(first, [None, None, Some(2), None]);
        let ids: Vec<String> = (0..10_000u64).map(|k| format!("n{}", k + 100)).collect();
        let many: Vec<(&str, u64)> = ids
            .iter()
            .zip(6u64..)
            .map(|(id, line)| (id.as_str(), line))
            .collect();
        assert!(seen.check(&many).await.unwrap().iter().all(Option::is_none));
        let again = seen
            .check(&[
                ("c9", 20_000),
                ("Ștefan", 20_001),
                ("n5000", 20_002),
                ("c1", 20_003),
            ])
            .await
            .unwrap();
        assert_eq!(again, [Some(5), Some(3), Some(4_906), None]);
        drop(seen);
        assert!(!path.exists());
    }
}
