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
use super::{CustomerRow, Store, StoreError, placeholders};
use crate::import::{CustomerRecord, OrderRecord};

/// Customer rows per INSERT: 15 values each, under SQLite's 32766 variables.
const CUSTOMER_ROWS: usize = 2000;
/// Order rows per INSERT: 6 values each.
const ORDER_ROWS: usize = 5000;
/// Customer-date rows per INSERT: 4 values each.
const DATE_ROWS: usize = 5000;
/// External ids per lookup.
const LOOKUP: usize = 500;

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

    /// Inserts new orders (none of their external ids may be stored yet) of stored customers,
    /// and recomputes the order facts of every customer they touch, in one transaction.
    /// Returns how many were inserted; an order of an unknown customer is an error.
    pub async fn bulk_insert_orders(
        &self,
        records: &[OrderRecord],
        now: i64,
    ) -> Result<u64, StoreError> {
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
}
