//! Consent from the public HTTP server: every consent change as an event (who, which scope,
//! in or out, from where — `link`, `one_click`, `preferences`, `sms_keyword`, `cli` — and
//! when), so the history survives later changes of the same scope; and an index on the
//! customers' phone numbers, which inbound SMS keywords (STOP, START) look up.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    Phone,
}

#[derive(DeriveIden)]
enum ConsentEvents {
    Table,
    Id,
    CustomerId,
    Scope,
    OptedOut,
    Source,
    ChangedAt,
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
                .table(ConsentEvents::Table)
                .if_not_exists()
                .col(big_pk_auto(ConsentEvents::Id))
                .col(big_integer(ConsentEvents::CustomerId))
                .col(string(ConsentEvents::Scope))
                .col(boolean(ConsentEvents::OptedOut))
                .col(string(ConsentEvents::Source))
                .col(big_integer(ConsentEvents::ChangedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_consent_events_customer")
                        .from(ConsentEvents::Table, ConsentEvents::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (table, name, stmt) in [
            (
                "consent_events",
                "idx_consent_events_customer",
                Index::create()
                    .name("idx_consent_events_customer")
                    .table(ConsentEvents::Table)
                    .col(ConsentEvents::CustomerId)
                    .col(ConsentEvents::ChangedAt)
                    .to_owned(),
            ),
            (
                "customers",
                "idx_customers_phone",
                Index::create()
                    .name("idx_customers_phone")
                    .table(Customers::Table)
                    .col(Customers::Phone)
                    .to_owned(),
            ),
        ] {
            if !m.has_index(table, name).await? {
                m.create_index(stmt).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_customers_phone")
                .table(Customers::Table)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(ConsentEvents::Table).to_owned())
            .await
    }
}
