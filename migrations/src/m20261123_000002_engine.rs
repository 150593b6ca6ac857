//! What the ritual engine needs to find its candidates with index probes instead of scans:
//! per-customer order facts (count, total, first and last order, the first purchase's
//! month-day), custom yearly dates in their own indexed table, an index on the customers'
//! zone (holidays and schedules are due zone by zone), one on order time (event rituals),
//! and the occasion and send window of each ledger row (messages are rendered when they are
//! sent, and never sent inside quiet hours).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    TimeZone,
    UpdatedAt,
    OrderCount,
    TotalSpentMinor,
    FirstOrderAt,
    LastOrderAt,
    FirstOrderMd,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    OrderedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CustomerDates {
    Table,
    CustomerId,
    Name,
    Md,
    Year,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    CustomerId,
    DueAt,
    Occasion,
    SendWindow,
}

async fn add_column(
    m: &SchemaManager<'_>,
    table: &str,
    name: &str,
    stmt: TableAlterStatement,
) -> Result<(), DbErr> {
    if m.has_column(table, name).await? {
        return Ok(());
    }
    m.alter_table(stmt).await
}

async fn create_index(
    m: &SchemaManager<'_>,
    table: &str,
    name: &str,
    stmt: IndexCreateStatement,
) -> Result<(), DbErr> {
    if m.has_index(table, name).await? {
        return Ok(());
    }
    m.create_index(stmt).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too: the statements and the `seaql_migrations` record commit
    /// together (see the crate doc).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let alter = || Table::alter().table(Customers::Table).to_owned();
        add_column(
            m,
            "customers",
            "order_count",
            alter()
                .add_column(big_integer(Customers::OrderCount).default(0))
                .to_owned(),
        )
        .await?;
        add_column(
            m,
            "customers",
            "total_spent_minor",
            alter()
                .add_column(big_integer(Customers::TotalSpentMinor).default(0))
                .to_owned(),
        )
        .await?;
        add_column(
            m,
            "customers",
            "first_order_at",
            alter()
                .add_column(big_integer_null(Customers::FirstOrderAt))
                .to_owned(),
        )
        .await?;
        add_column(
            m,
            "customers",
            "last_order_at",
            alter()
                .add_column(big_integer_null(Customers::LastOrderAt))
                .to_owned(),
        )
        .await?;
        add_column(
            m,
            "customers",
            "first_order_md",
            alter()
                .add_column(integer_null(Customers::FirstOrderMd))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("idx_customers_last_order", vec![Customers::LastOrderAt]),
            (
                "idx_customers_first_order_md",
                vec![Customers::FirstOrderMd],
            ),
            (
                "idx_customers_zone",
                vec![Customers::TimeZone, Customers::Id],
            ),
            ("idx_customers_updated", vec![Customers::UpdatedAt]),
        ] {
            let mut idx = Index::create()
                .name(name)
                .table(Customers::Table)
                .to_owned();
            for c in cols {
                idx.col(c);
            }
            create_index(m, "customers", name, idx).await?;
        }
        // Order facts of customers imported before this migration (the first purchase's
        // month-day needs the customer's zone: the store fills it in on open).
        m.get_connection()
            .execute_unprepared(
                "UPDATE customers SET \
                 order_count = (SELECT COUNT(*) FROM orders o WHERE o.customer_id = customers.id), \
                 total_spent_minor = COALESCE((SELECT SUM(o.amount_minor) FROM orders o WHERE o.customer_id = customers.id), 0), \
                 first_order_at = (SELECT MIN(o.ordered_at) FROM orders o WHERE o.customer_id = customers.id), \
                 last_order_at = (SELECT MAX(o.ordered_at) FROM orders o WHERE o.customer_id = customers.id)",
            )
            .await?;
        create_index(
            m,
            "orders",
            "idx_orders_created",
            Index::create()
                .name("idx_orders_created")
                .table(Orders::Table)
                .col(Orders::CreatedAt)
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "orders",
            "idx_orders_time",
            Index::create()
                .name("idx_orders_time")
                .table(Orders::Table)
                .col(Orders::OrderedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(CustomerDates::Table)
                .if_not_exists()
                .col(big_integer(CustomerDates::CustomerId))
                .col(string(CustomerDates::Name))
                .col(integer(CustomerDates::Md))
                .col(small_integer_null(CustomerDates::Year))
                .primary_key(
                    Index::create()
                        .col(CustomerDates::CustomerId)
                        .col(CustomerDates::Name),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_customer_dates_customer")
                        .from(CustomerDates::Table, CustomerDates::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "customer_dates",
            "idx_customer_dates_md",
            Index::create()
                .name("idx_customer_dates_md")
                .table(CustomerDates::Table)
                .col(CustomerDates::Name)
                .col(CustomerDates::Md)
                .to_owned(),
        )
        .await?;

        let alter = || Table::alter().table(Deliveries::Table).to_owned();
        add_column(
            m,
            "deliveries",
            "occasion",
            alter()
                .add_column(text_null(Deliveries::Occasion))
                .to_owned(),
        )
        .await?;
        add_column(
            m,
            "deliveries",
            "send_window",
            alter()
                .add_column(string_null(Deliveries::SendWindow))
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "deliveries",
            "idx_deliveries_customer_due",
            Index::create()
                .name("idx_deliveries_customer_due")
                .table(Deliveries::Table)
                .col(Deliveries::CustomerId)
                .col(Deliveries::DueAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
