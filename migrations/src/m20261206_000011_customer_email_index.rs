//! An index on `customers.email`: `preview`, `forget`, `optout` and the preview page find a
//! customer by external id, email or phone, and without it the email probe scanned the whole
//! table (1M customers: hundreds of milliseconds for one person).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Customers {
    Table,
    Email,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too (see the crate doc).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if !m.has_index("customers", "idx_customers_email").await? {
            m.create_index(
                Index::create()
                    .name("idx_customers_email")
                    .table(Customers::Table)
                    .col(Customers::Email)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_customers_email")
                .table(Customers::Table)
                .to_owned(),
        )
        .await
    }
}
