//! The initial schema: customers, orders, consent, the delivery ledger (outbox) and settings.
//!
//! Times are stored as Unix seconds (BIGINT) so both engines compare them the same way;
//! yearly dates are stored as `month * 100 + day` integers (indexed) plus an optional year,
//! so "whose birthday is today" is an index probe, not a date function over every row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    ExternalId,
    FirstName,
    LastName,
    Email,
    Phone,
    Locale,
    TimeZone,
    BirthYear,
    BirthMd,
    SignupDate,
    SignupMd,
    PreferredChannel,
    CustomDates,
    Attributes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    ExternalId,
    CustomerId,
    OrderedAt,
    AmountMinor,
    Currency,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Id,
    CustomerId,
    Scope,
    OptedOut,
    Source,
    ChangedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    Ritual,
    Category,
    CustomerId,
    Occurrence,
    Channel,
    Status,
    Reason,
    Recipient,
    Subject,
    Payload,
    MessageId,
    DueAt,
    Attempts,
    NextAttemptAt,
    LeaseToken,
    LeaseUntil,
    LastError,
    SentAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

/// Creates an index unless it is there already (sea-query's SQLite builder drops
/// `IF NOT EXISTS` on indexes, and two processes may migrate a new database at once).
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
        m.create_table(
            Table::create()
                .table(Customers::Table)
                .if_not_exists()
                .col(big_pk_auto(Customers::Id))
                .col(string_uniq(Customers::ExternalId))
                .col(string_null(Customers::FirstName))
                .col(string_null(Customers::LastName))
                .col(string_null(Customers::Email))
                .col(string_null(Customers::Phone))
                .col(string(Customers::Locale))
                .col(string(Customers::TimeZone))
                .col(small_integer_null(Customers::BirthYear))
                .col(integer_null(Customers::BirthMd))
                .col(string_null(Customers::SignupDate))
                .col(integer_null(Customers::SignupMd))
                .col(string_null(Customers::PreferredChannel))
                .col(text(Customers::CustomDates).default("{}"))
                .col(text(Customers::Attributes).default("{}"))
                .col(big_integer(Customers::CreatedAt))
                .col(big_integer(Customers::UpdatedAt))
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "customers",
            "idx_customers_birth_md",
            Index::create()
                .name("idx_customers_birth_md")
                .table(Customers::Table)
                .col(Customers::BirthMd)
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "customers",
            "idx_customers_signup_md",
            Index::create()
                .name("idx_customers_signup_md")
                .table(Customers::Table)
                .col(Customers::SignupMd)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Orders::Table)
                .if_not_exists()
                .col(big_pk_auto(Orders::Id))
                .col(string_uniq(Orders::ExternalId))
                .col(big_integer(Orders::CustomerId))
                .col(big_integer(Orders::OrderedAt))
                .col(big_integer(Orders::AmountMinor))
                .col(string(Orders::Currency))
                .col(big_integer(Orders::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_orders_customer")
                        .from(Orders::Table, Orders::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "orders",
            "idx_orders_customer_time",
            Index::create()
                .name("idx_orders_customer_time")
                .table(Orders::Table)
                .col(Orders::CustomerId)
                .col(Orders::OrderedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Consents::Table)
                .if_not_exists()
                .col(big_pk_auto(Consents::Id))
                .col(big_integer(Consents::CustomerId))
                .col(string(Consents::Scope))
                .col(boolean(Consents::OptedOut))
                .col(string(Consents::Source))
                .col(big_integer(Consents::ChangedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_consents_customer")
                        .from(Consents::Table, Consents::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "consents",
            "uq_consents_customer_scope",
            Index::create()
                .name("uq_consents_customer_scope")
                .table(Consents::Table)
                .col(Consents::CustomerId)
                .col(Consents::Scope)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Deliveries::Table)
                .if_not_exists()
                .col(big_pk_auto(Deliveries::Id))
                .col(string(Deliveries::Ritual))
                .col(string(Deliveries::Category))
                .col(big_integer(Deliveries::CustomerId))
                .col(string(Deliveries::Occurrence))
                .col(string(Deliveries::Channel))
                .col(string(Deliveries::Status))
                .col(string_null(Deliveries::Reason))
                .col(string_null(Deliveries::Recipient))
                .col(text_null(Deliveries::Subject))
                .col(text_null(Deliveries::Payload))
                .col(string_null(Deliveries::MessageId))
                .col(big_integer(Deliveries::DueAt))
                .col(integer(Deliveries::Attempts).default(0))
                .col(big_integer(Deliveries::NextAttemptAt))
                .col(string_null(Deliveries::LeaseToken))
                .col(big_integer_null(Deliveries::LeaseUntil))
                .col(text_null(Deliveries::LastError))
                .col(big_integer_null(Deliveries::SentAt))
                .col(big_integer(Deliveries::CreatedAt))
                .col(big_integer(Deliveries::UpdatedAt))
                .to_owned(),
        )
        .await?;
        // Once per occurrence and channel: the constraint every send is claimed against.
        create_index(
            m,
            "deliveries",
            "uq_deliveries_occurrence",
            Index::create()
                .name("uq_deliveries_occurrence")
                .table(Deliveries::Table)
                .col(Deliveries::Ritual)
                .col(Deliveries::CustomerId)
                .col(Deliveries::Occurrence)
                .col(Deliveries::Channel)
                .unique()
                .to_owned(),
        )
        .await?;
        create_index(
            m,
            "deliveries",
            "idx_deliveries_due",
            Index::create()
                .name("idx_deliveries_due")
                .table(Deliveries::Table)
                .col(Deliveries::Status)
                .col(Deliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Settings::Table)
                .if_not_exists()
                .col(string(Settings::Key).primary_key())
                .col(text(Settings::Value))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
