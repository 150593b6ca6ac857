//! Survey answers (`survey_responses`): one row per survey (ritual, customer, occurrence),
//! written by the public server when a customer clicks a score link or sends a comment.

use super::{Store, StoreError};

/// One survey answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SurveyResponse {
    pub ritual: String,
    pub customer_id: i64,
    pub occurrence: String,
    pub score: i32,
    pub comment: Option<String>,
    pub first_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Records `score` for a survey: the first answer inserts the row, a later one updates the
    /// score (and `updated_at`; `first_at` stays). A `comment` replaces the stored one; `None`
    /// leaves it as it is.
    pub async fn record_survey_response(
        &self,
        ritual: &str,
        customer_id: i64,
        occurrence: &str,
        score: i32,
        comment: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO survey_responses (ritual, customer_id, occurrence, score, comment, first_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (ritual, customer_id, occurrence) DO UPDATE SET score = excluded.score, \
             comment = COALESCE(excluded.comment, survey_responses.comment), updated_at = excluded.updated_at",
            vec![
                ritual.to_string().into(),
                customer_id.into(),
                occurrence.to_string().into(),
                score.into(),
                comment.map(str::to_string).into(),
                now.into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Survey answers first given in `[since, until)` (every answer with `None`), oldest first.
    pub async fn survey_responses(
        &self,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<SurveyResponse>, StoreError> {
        let rows = self
            .all(
                "SELECT ritual, customer_id, occurrence, score, comment, first_at, updated_at FROM survey_responses \
                 WHERE first_at >= $1 AND first_at < $2 ORDER BY first_at, id",
                vec![since.unwrap_or(i64::MIN).into(), until.unwrap_or(i64::MAX).into()],
            )
            .await?;
        rows.iter().map(survey_response).collect()
    }
}

/// One survey answer with the customer's external id, for `ritualist surveys`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SurveyAnswer {
    pub ritual: String,
    pub customer: String,
    pub customer_id: i64,
    pub occurrence: String,
    pub score: i32,
    pub comment: Option<String>,
    pub first_at: i64,
    pub updated_at: i64,
}

impl Store {
    /// Survey answers first given at or after `since` (all with `None`), of one ritual (all
    /// with `None`), newest first.
    pub async fn survey_answers(
        &self,
        ritual: Option<&str>,
        since: Option<i64>,
    ) -> Result<Vec<SurveyAnswer>, StoreError> {
        let mut values = vec![since.unwrap_or(i64::MIN).into()];
        let only = match ritual {
            Some(r) => {
                values.push(r.to_string().into());
                " AND s.ritual = $2"
            }
            None => "",
        };
        let sql = format!(
            "SELECT s.ritual, c.external_id, s.customer_id, s.occurrence, s.score, s.comment, s.first_at, s.updated_at \
             FROM survey_responses s JOIN customers c ON c.id = s.customer_id \
             WHERE s.first_at >= $1{only} ORDER BY s.first_at DESC, s.id DESC"
        );
        let rows = self.all(&sql, values).await?;
        rows.iter()
            .map(|r| {
                let s = survey_response(r)?;
                Ok(SurveyAnswer {
                    customer: r.try_get("", "external_id")?,
                    ritual: s.ritual,
                    customer_id: s.customer_id,
                    occurrence: s.occurrence,
                    score: s.score,
                    comment: s.comment,
                    first_at: s.first_at,
                    updated_at: s.updated_at,
                })
            })
            .collect()
    }
}

/// One answer as read by a query that selects `ritual, customer_id, occurrence, score,
/// comment, first_at, updated_at`.
pub(crate) fn survey_response(r: &sea_orm::QueryResult) -> Result<SurveyResponse, StoreError> {
    Ok(SurveyResponse {
        ritual: r.try_get("", "ritual")?,
        customer_id: r.try_get("", "customer_id")?,
        occurrence: r.try_get("", "occurrence")?,
        score: r.try_get("", "score")?,
        comment: r.try_get("", "comment")?,
        first_at: r.try_get("", "first_at")?,
        updated_at: r.try_get("", "updated_at")?,
    })
}
