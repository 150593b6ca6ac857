//! `ritualist forget`: the hashed stubs of forgotten customers. Each row is an HMAC (keyed
//! with the instance key) of one identifier of an erased person — their normalised email,
//! E.164 phone or external id — and nothing else; a customer imported later (CSV or API)
//! with a matching identifier is opted out of everything on arrival.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Forgotten {
    Table,
    Hash,
    CreatedAt,
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
                .table(Forgotten::Table)
                .if_not_exists()
                .col(string(Forgotten::Hash).primary_key())
                .col(big_integer(Forgotten::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Forgotten::Table).to_owned())
            .await
    }
}
