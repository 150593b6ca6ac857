//! `ritualist surveys`: survey answers with their comments, newest first, searchable, and
//! NPS per ritual (% promoters, 9–10, minus % detractors, 0–6; as in `report`).
//!
//! [`surveys`] fetches the period's answers; [`summarise`] is pure: the search (a
//! case-insensitive substring of the comment, Unicode-aware, so Cyrillic and Romanian
//! comments match too) picks the answers listed, while NPS counts every answer of the
//! period and ritual, so a search never skews the score.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Serialize;

use super::{AppError, Nps};
use crate::store::{Store, SurveyAnswer};

/// Which answers.
#[derive(Debug, Clone, Default)]
pub struct SurveysRequest {
    pub ritual: Option<String>,
    /// Only answers whose comment holds this text (any case).
    pub search: Option<String>,
    /// Only answers first given on or after this local date (in `defaults.time_zone`).
    pub since: Option<jiff::civil::Date>,
}

/// NPS of one ritual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RitualNps {
    pub ritual: String,
    #[serde(flatten)]
    pub nps: Nps,
}

/// The answers listed and the score of each ritual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveysView {
    /// Newest first.
    pub answers: Vec<SurveyAnswer>,
    pub nps: Vec<RitualNps>,
}

/// The survey answers of `req`, from the store.
pub async fn surveys(
    store: &Store,
    cfg: &crate::config::Config,
    req: &SurveysRequest,
) -> Result<SurveysView, AppError> {
    let tz = TimeZone::get(&cfg.defaults.time_zone).unwrap_or(TimeZone::UTC);
    let since = req
        .since
        .map(|d| {
            d.to_zoned(tz.clone())
                .map(|z| z.timestamp().as_second())
                .map_err(|e| AppError::Other(format!("date {d}: {e}")))
        })
        .transpose()?;
    let answers = store.survey_answers(req.ritual.as_deref(), since).await?;
    Ok(summarise(answers, req.search.as_deref()))
}

/// NPS per ritual over every answer, and the answers whose comment holds `search` (all
/// without a search), in the order given.
pub fn summarise(answers: Vec<SurveyAnswer>, search: Option<&str>) -> SurveysView {
    let mut per: BTreeMap<String, Nps> = BTreeMap::new();
    for a in &answers {
        let n = per.entry(a.ritual.clone()).or_default();
        n.responses += 1;
        match a.score {
            9.. => n.promoters += 1,
            7..=8 => n.passives += 1,
            _ => n.detractors += 1,
        }
    }
    let nps = per
        .into_iter()
        .map(|(ritual, mut n)| {
            let pct = (n.promoters as f64 - n.detractors as f64) * 100.0 / n.responses as f64;
            n.nps = Some((pct * 10.0).round() / 10.0);
            RitualNps { ritual, nps: n }
        })
        .collect();
    let answers = match search.map(str::to_lowercase) {
        None => answers,
        Some(needle) => answers
            .into_iter()
            .filter(|a| {
                a.comment
                    .as_deref()
                    .is_some_and(|c| c.to_lowercase().contains(&needle))
            })
            .collect(),
    };
    SurveysView { answers, nps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ritual: &str, score: i32, comment: Option<&str>, at: i64) -> SurveyAnswer {
        SurveyAnswer {
            ritual: ritual.into(),
            customer: format!("c{at}"),
            customer_id: at,
            occurrence: format!("order:{at}"),
            score,
            comment: comment.map(str::to_string),
            first_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn nps_counts_every_answer_and_the_search_picks_comments_in_any_case() {
        let all = vec![
            answer("survey", 10, Some("Очень БЫСТРАЯ доставка"), 5),
            answer("survey", 9, None, 4),
            answer("survey", 3, Some("Livrare lentă"), 3),
            answer("survey", 7, Some("ok"), 2),
            answer("pulse", 0, Some("быстрая? нет"), 1),
        ];
        let v = summarise(all, Some("быстрая"));
        assert_eq!(
            v.answers.iter().map(|a| a.first_at).collect::<Vec<_>>(),
            [5, 1]
        );
        let survey = &v.nps[1];
        assert_eq!(survey.ritual, "survey");
        // (2 promoters − 1 detractor) / 4 answers = 25.0.
        assert_eq!(
            (
                survey.nps.responses,
                survey.nps.promoters,
                survey.nps.passives
            ),
            (4, 2, 1)
        );
        assert_eq!(survey.nps.nps, Some(25.0));
        assert_eq!(
            (v.nps[0].ritual.as_str(), v.nps[0].nps.nps),
            ("pulse", Some(-100.0))
        );
    }

    #[test]
    fn without_a_search_every_answer_is_listed() {
        let v = summarise(vec![answer("survey", 8, None, 1)], None);
        assert_eq!(v.answers.len(), 1);
        assert_eq!(v.nps[0].nps.nps, Some(0.0));
    }
}
