//! The quality survey of appendix 4: once an application is completed or refused its applicant
//! is asked two questions (the process and its result; the information about the procedure),
//! each on three levels. One answer per application; the administrators' report counts them.

use serde::{Deserialize, Serialize};

use super::application::{Workflow, WorkflowError};
use crate::store::{StoreError, SurveyRecord, now};

/// An answer's level on one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    NotSatisfied,
    Partly,
    Satisfied,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::NotSatisfied, Level::Partly, Level::Satisfied];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::NotSatisfied => "not_satisfied",
            Level::Partly => "partly",
            Level::Satisfied => "satisfied",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// The two answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    /// Satisfaction with the process of getting the service and its result.
    pub process: Level,
    /// Satisfaction with the information about the procedure.
    pub information: Level,
}

/// Why an answer is not taken. Nothing is recorded for any of these.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    /// The application is still going on: the survey follows its end.
    #[error("application {0} is not finished: the survey follows its completion or refusal")]
    NotFinished(String),
    /// This application's applicant has answered already.
    #[error("the survey of application {0} has been answered")]
    Answered(String),
    /// No such application for this IIN, or the store failed.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

impl From<StoreError> for SurveyError {
    fn from(e: StoreError) -> Self {
        SurveyError::Workflow(e.into())
    }
}

impl SurveyError {
    pub fn code(&self) -> &'static str {
        match self {
            SurveyError::NotFinished(_) => "survey_not_open",
            SurveyError::Answered(_) => "survey_answered",
            SurveyError::Workflow(e) => e.code(),
        }
    }
}

/// The report: for each question, how many answers gave each level.
#[derive(Debug, Serialize)]
pub struct SurveyReport {
    pub answers: i64,
    pub process: std::collections::BTreeMap<&'static str, i64>,
    pub information: std::collections::BTreeMap<&'static str, i64>,
}

impl Workflow<'_> {
    /// The applicant's answer, if given; the application must be theirs.
    pub async fn survey_of(&self, number: &str, iin: &str) -> Result<Option<SurveyAnswer>, SurveyError> {
        let view = self.view_for(number, iin).await?;
        let Some(r) = self.store.survey(&view.number).await? else {
            return Ok(None);
        };
        Ok(Level::parse(&r.process)
            .zip(Level::parse(&r.information))
            .map(|(process, information)| SurveyAnswer { process, information }))
    }

    /// Records the applicant's answer to the survey of a finished application, once.
    pub async fn answer_survey(&self, number: &str, iin: &str, answer: SurveyAnswer) -> Result<(), SurveyError> {
        let view = self.view_for(number, iin).await?;
        if !view.status.is_final() {
            return Err(SurveyError::NotFinished(view.number));
        }
        let record = SurveyRecord {
            number: view.number.clone(),
            process: answer.process.as_str().into(),
            information: answer.information.as_str().into(),
            answered_at: now(),
        };
        if !self.store.add_survey(&record).await? {
            return Err(SurveyError::Answered(view.number));
        }
        Ok(())
    }

    pub async fn survey_report(&self) -> Result<SurveyReport, StoreError> {
        let zero = || Level::ALL.iter().map(|l| (l.as_str(), 0)).collect();
        let mut report = SurveyReport {
            answers: 0,
            process: zero(),
            information: zero(),
        };
        for (process, information, n) in self.store.survey_counts().await? {
            report.answers += n;
            if let Some(l) = Level::parse(&process) {
                *report.process.entry(l.as_str()).or_default() += n;
            }
            if let Some(l) = Level::parse(&information) {
                *report.information.entry(l.as_str()).or_default() += n;
            }
        }
        Ok(report)
    }
}
