//! What the mail systems and SMS gateways say *later* about a message already sent: bounces
//! that arrive as delivery status notifications or webhooks, spam complaints, delivery
//! receipts.
//!
//! - `deliveries` gains the later outcome next to `sent`: `outcome` (`delivered`, `bounced`,
//!   `complained`, `undelivered`), when it was learnt and what the report said.
//! - `feedback_events` keeps every report received, once (`dedupe_key` is unique, so a webhook
//!   delivered twice or a bounce re-sent by the MTA changes nothing the second time): the
//!   delivery it matched, or `state = 'unmatched'` with the raw report kept for a person to
//!   review (`ritualist bounces`); auto-replies are `ignored`.
//! - An index on `deliveries.message_id`: provider webhooks and DSNs that quote the original
//!   headers name the message by its Message-ID.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    MessageId,
    Outcome,
    OutcomeAt,
    OutcomeDetail,
}

#[derive(DeriveIden)]
enum FeedbackEvents {
    Table,
    Id,
    DedupeKey,
    Source,
    Kind,
    State,
    DeliveryId,
    CustomerId,
    Channel,
    Recipient,
    Detail,
    Raw,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// All or nothing on SQLite too (see the crate doc).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            text_null(Deliveries::Outcome),
            big_integer_null(Deliveries::OutcomeAt),
            text_null(Deliveries::OutcomeDetail),
        ] {
            let mut col = col;
            m.alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(&mut col)
                    .to_owned(),
            )
            .await?;
        }
        m.create_table(
            Table::create()
                .table(FeedbackEvents::Table)
                .if_not_exists()
                .col(big_pk_auto(FeedbackEvents::Id))
                .col(string_uniq(FeedbackEvents::DedupeKey))
                .col(string(FeedbackEvents::Source))
                .col(string(FeedbackEvents::Kind))
                .col(string(FeedbackEvents::State))
                .col(big_integer_null(FeedbackEvents::DeliveryId))
                .col(big_integer_null(FeedbackEvents::CustomerId))
                .col(string_null(FeedbackEvents::Channel))
                .col(string_null(FeedbackEvents::Recipient))
                .col(text(FeedbackEvents::Detail))
                .col(text_null(FeedbackEvents::Raw))
                .col(big_integer(FeedbackEvents::ReceivedAt))
                .to_owned(),
        )
        .await?;
        let indexes = [
            Index::create()
                .name("idx_deliveries_message_id")
                .table(Deliveries::Table)
                .col(Deliveries::MessageId)
                .to_owned(),
            Index::create()
                .name("idx_feedback_customer_kind")
                .table(FeedbackEvents::Table)
                .col(FeedbackEvents::CustomerId)
                .col(FeedbackEvents::Kind)
                .col(FeedbackEvents::ReceivedAt)
                .to_owned(),
            Index::create()
                .name("idx_feedback_state")
                .table(FeedbackEvents::Table)
                .col(FeedbackEvents::State)
                .col(FeedbackEvents::ReceivedAt)
                .to_owned(),
        ];
        for ix in indexes {
            m.create_index(ix).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(FeedbackEvents::Table).to_owned())
            .await?;
        m.drop_index(
            Index::drop()
                .name("idx_deliveries_message_id")
                .table(Deliveries::Table)
                .to_owned(),
        )
        .await?;
        for col in [
            Deliveries::Outcome,
            Deliveries::OutcomeAt,
            Deliveries::OutcomeDetail,
        ] {
            m.alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
