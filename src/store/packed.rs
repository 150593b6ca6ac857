//! Reading many rows as one: the database packs a batch of rows into a single JSON array,
//! and the batch crosses the driver as one value. The SQLite driver hands rows over one by
//! one between threads (~10 µs a row measured at 1M customers, several times what SQLite
//! itself spends), so the engine's bulk reads (candidate customers, their orders) go this way.

use serde::Deserialize;

use super::people::CustomerRow;
use super::{Store, StoreError};
use sea_orm::{DbBackend, Value};

/// The columns a packed customer carries, in [`PackedCustomer`]'s order.
pub(super) const PACKED_CUSTOMER: &str = "id, external_id, first_name, last_name, email, phone, locale, time_zone, birth_year, birth_md, signup_date, preferred_channel, custom_dates, attributes, order_count, total_spent_minor, first_order_at, last_order_at";

#[derive(Deserialize)]
struct PackedCustomer(
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<i16>,
    Option<i32>,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

impl From<PackedCustomer> for CustomerRow {
    fn from(p: PackedCustomer) -> Self {
        CustomerRow {
            id: p.0,
            external_id: p.1,
            first_name: p.2,
            last_name: p.3,
            email: p.4,
            phone: p.5,
            locale: p.6,
            time_zone: p.7,
            birth_year: p.8,
            birth_md: p.9,
            signup_date: p.10,
            preferred_channel: p.11,
            custom_dates: p.12,
            attributes: p.13,
            order_count: p.14,
            total_spent_minor: p.15,
            first_order_at: p.16,
            last_order_at: p.17,
        }
    }
}

impl Store {
    /// The aggregate expression that packs `cols` (a comma-separated list) of every row of
    /// the group into one JSON array text, ordered by `order`.
    pub(super) fn pack(&self, cols: &str, order: &str) -> String {
        match self.backend {
            DbBackend::Postgres => {
                format!("CAST(json_agg(json_build_array({cols}) ORDER BY {order}) AS TEXT)")
            }
            _ => format!("json_group_array(json_array({cols}) ORDER BY {order})"),
        }
    }

    /// Runs a query whose first column is a packed batch (see [`Store::pack`]) and decodes
    /// every packed row as `T` (a tuple struct in column order).
    pub(super) async fn unpack<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for r in self.all(sql, values).await? {
            let text: Option<String> = r.try_get_by_index(0)?;
            let Some(text) = text else { continue };
            let rows: Vec<T> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("packed rows: {e}")))?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Customers of a packed query over `customers` (see [`PACKED_CUSTOMER`]).
    pub(super) async fn packed_customers(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<CustomerRow>, StoreError> {
        Ok(self
            .unpack::<PackedCustomer>(sql, values)
            .await?
            .into_iter()
            .map(CustomerRow::from)
            .collect())
    }
}
