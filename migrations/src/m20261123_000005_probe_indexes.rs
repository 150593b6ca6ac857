//! Covering indexes for the tick's index probes: each probe reads the customer's zone with
//! the probed value from the index alone (no table lookup per customer), and event rituals
//! find the customers of orders placed in a window from the order-time index. They replace
//! the single-column indexes of migration 2 (and the initial month-day ones).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (dropped, created, table, columns)
const INDEXES: [(&str, &str, &str, &str); 5] = [
    (
        "idx_customers_birth_md",
        "idx_customers_birth_md_zone",
        "customers",
        "birth_md, time_zone",
    ),
    (
        "idx_customers_signup_md",
        "idx_customers_signup_md_zone",
        "customers",
        "signup_md, time_zone",
    ),
    (
        "idx_customers_first_order_md",
        "idx_customers_first_order_md_zone",
        "customers",
        "first_order_md, time_zone",
    ),
    (
        "idx_customers_last_order",
        "idx_customers_last_order_zone",
        "customers",
        "last_order_at, time_zone",
    ),
    (
        "idx_orders_time",
        "idx_orders_time_customer",
        "orders",
        "ordered_at, customer_id",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too: the statements and the `seaql_migrations` record commit
    /// together (see the crate doc).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for (old, new, table, cols) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {new} ON {table} ({cols})"
            ))
            .await?;
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {old}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        for (old, new, table, cols) in INDEXES {
            let first = cols.split(',').next().unwrap_or(cols);
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {old} ON {table} ({first})"
            ))
            .await?;
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {new}"))
                .await?;
        }
        Ok(())
    }
}
