//! The rendered message moves out of `deliveries` into `delivery_messages`, one row per
//! delivery that has been rendered. A delivery changes status three times on its way out
//! (`claimed`, `sending`, `sent`) and SQLite rewrites the whole row each time: with a ~2 KB
//! email inside, every status change rewrote a page of its own. The ledger row is now small
//! (tens of rows per page), and the message is written once and read when it is claimed.
//! Existing messages are copied over, then the column is dropped.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeliveryMessages {
    Table,
    DeliveryId,
    Payload,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    Payload,
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
                .table(DeliveryMessages::Table)
                .if_not_exists()
                .col(big_integer(DeliveryMessages::DeliveryId).primary_key())
                .col(text(DeliveryMessages::Payload))
                .foreign_key(
                    ForeignKey::create()
                        .from(DeliveryMessages::Table, DeliveryMessages::DeliveryId)
                        .to(Deliveries::Table, Deliveries::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "INSERT INTO delivery_messages (delivery_id, payload) \
             SELECT id, payload FROM deliveries WHERE payload IS NOT NULL",
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Deliveries::Table)
                .drop_column(Deliveries::Payload)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Deliveries::Table)
                .add_column(text_null(Deliveries::Payload))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE deliveries SET payload = (SELECT payload FROM delivery_messages m WHERE m.delivery_id = deliveries.id)",
            )
            .await?;
        m.drop_table(Table::drop().table(DeliveryMessages::Table).to_owned())
            .await
    }
}
