//! Provider rate limits shared by every daemon on a PostgreSQL database: one row per provider
//! (`email/smtp`, `sms/<name>`) holding the UTC day, the messages counted against that day's
//! `per_day`, and the next free `per_second` slot (microseconds on the database's clock).
//! SQLite has one daemon per file, whose limits live in its process; the table is created there
//! too so both engines have one schema.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RateLimits {
    Table,
    Provider,
    Day,
    Used,
    NextAtUs,
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
                .table(RateLimits::Table)
                .if_not_exists()
                .col(string(RateLimits::Provider).primary_key())
                .col(big_integer(RateLimits::Day).default(0))
                .col(big_integer(RateLimits::Used).default(0))
                .col(big_integer(RateLimits::NextAtUs).default(0))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(RateLimits::Table).to_owned())
            .await
    }
}
