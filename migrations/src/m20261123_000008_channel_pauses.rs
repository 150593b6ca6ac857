//! Paused channels: when a provider refuses ritualist itself (SMTP 535 AUTH, 5.7.x policy, a
//! 5xx to MAIL FROM; an SMS gateway's 401/403), the channel stops being claimed until `until`
//! (then one message probes it) or until an operator resumes it (`ritualist outbox resume`).
//! One row per paused channel, shared by every daemon on the database.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChannelPauses {
    Table,
    Channel,
    Reason,
    PausedAt,
    Until,
    Strikes,
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
                .table(ChannelPauses::Table)
                .if_not_exists()
                .col(string(ChannelPauses::Channel).primary_key())
                .col(text(ChannelPauses::Reason))
                .col(big_integer(ChannelPauses::PausedAt))
                .col(big_integer(ChannelPauses::Until))
                .col(integer(ChannelPauses::Strikes).default(1))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ChannelPauses::Table).to_owned())
            .await
    }
}
