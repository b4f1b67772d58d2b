//! Answers to the quality survey (regulation appendix 4).

use sqlx::Row;

use super::{Store, StoreError, is_unique_violation};

/// One applicant's answer: each question's level (`not_satisfied`, `partly`, `satisfied`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyRecord {
    pub number: String,
    pub process: String,
    pub information: String,
    pub answered_at: i64,
}

impl Store {
    /// Records an answer; false when the application has one already (one answer each: the
    /// primary key keeps it).
    pub async fn add_survey(&self, s: &SurveyRecord) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO surveys (number, process, information, answered_at) VALUES ($1, $2, $3, $4)")
            .bind(&s.number)
            .bind(&s.process)
            .bind(&s.information)
            .bind(s.answered_at)
            .execute(self.pool())
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn survey(&self, number: &str) -> Result<Option<SurveyRecord>, StoreError> {
        let row = sqlx::query("SELECT number, process, information, answered_at FROM surveys WHERE number = $1")
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        Ok(row
            .map(|r| {
                Ok::<_, sqlx::Error>(SurveyRecord {
                    number: r.try_get("number")?,
                    process: r.try_get("process")?,
                    information: r.try_get("information")?,
                    answered_at: r.try_get("answered_at")?,
                })
            })
            .transpose()?)
    }

    /// How many answers gave each (process, information) pair of levels.
    pub async fn survey_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT process, information, COUNT(*) AS n FROM surveys GROUP BY process, information")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("process")?, r.try_get("information")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
