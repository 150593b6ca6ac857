//! Survey answers: one row per survey (ritual, customer, occurrence) holding the NPS score
//! (0–10) the customer clicked and an optional comment. A second click updates the score;
//! `first_at` keeps the time of the first answer, `updated_at` the last change.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SurveyResponses {
    Table,
    Id,
    Ritual,
    CustomerId,
    Occurrence,
    Score,
    Comment,
    FirstAt,
    UpdatedAt,
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
                .table(SurveyResponses::Table)
                .if_not_exists()
                .col(big_pk_auto(SurveyResponses::Id))
                .col(string(SurveyResponses::Ritual))
                .col(big_integer(SurveyResponses::CustomerId))
                .col(string(SurveyResponses::Occurrence))
                .col(integer(SurveyResponses::Score))
                .col(text_null(SurveyResponses::Comment))
                .col(big_integer(SurveyResponses::FirstAt))
                .col(big_integer(SurveyResponses::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_survey_responses_customer")
                        .from(SurveyResponses::Table, SurveyResponses::CustomerId)
                        .to(Customers::Table, Customers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for (name, stmt) in [
            (
                "uq_survey_responses_survey",
                Index::create()
                    .name("uq_survey_responses_survey")
                    .table(SurveyResponses::Table)
                    .col(SurveyResponses::Ritual)
                    .col(SurveyResponses::CustomerId)
                    .col(SurveyResponses::Occurrence)
                    .unique()
                    .to_owned(),
            ),
            (
                "idx_survey_responses_first_at",
                Index::create()
                    .name("idx_survey_responses_first_at")
                    .table(SurveyResponses::Table)
                    .col(SurveyResponses::FirstAt)
                    .to_owned(),
            ),
        ] {
            if !m.has_index("survey_responses", name).await? {
                m.create_index(stmt).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SurveyResponses::Table).to_owned())
            .await
    }
}
