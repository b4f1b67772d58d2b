//! What is shown of an application: the view the portal and the operator see, one or a
//! centre's queue, and the issued pair as PEM.

use serde::Serialize;

use super::application::{Workflow, WorkflowError};
use crate::ids::number;
use crate::model::{Channel, Service, Status, StepKind};
use crate::operators::Operator;
use crate::pki::status::rfc3339;
use crate::store::{ApplicationRecord, StepRecord};

/// The application as the portal and the operator see it.
#[derive(Debug, Serialize)]
pub struct ApplicationView {
    pub number: String,
    pub service: Service,
    pub channel: Channel,
    pub status: Status,
    pub registration_centre: String,
    pub steps: Vec<StepView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
    /// Why the application waits, while it does (`key_store_unavailable` in `awaiting_key_store`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub step: StepKind,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub deadline_seconds: Option<i64>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RefusalView {
    pub code: String,
    pub step: StepKind,
    pub message: String,
}

impl Workflow<'_> {
    /// The application with its steps, or `NotFound`.
    pub async fn view(&self, number: &str) -> Result<ApplicationView, WorkflowError> {
        let (a, steps) = self
            .store
            .application_with_steps(number)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        Ok(self.view_of(a, steps))
    }

    /// An application and its steps as its views show them.
    pub(super) fn view_of(&self, a: ApplicationRecord, steps: Vec<StepRecord>) -> ApplicationView {
        ApplicationView {
            number: a.number,
            service: a.service,
            channel: a.channel,
            status: a.status,
            registration_centre: a.centre,
            steps: steps
                .into_iter()
                .map(|s| StepView {
                    step: s.step,
                    actor: s.actor,
                    started_at: rfc3339(s.started_at),
                    finished_at: s.finished_at.map(rfc3339),
                    deadline_seconds: s.deadline_seconds,
                    outcome: s.outcome,
                })
                .collect(),
            refusal: a.refusal.map(|r| RefusalView {
                message: super::refusals::message(&r.code, &r.message, self.lang),
                code: r.code,
                step: r.step,
            }),
            receipt: a.receipt,
            certificates: a.auth_serial.zip(a.sign_serial).map(|(x, y)| vec![x, y]),
            waiting: a.waiting,
        }
    }

    /// The application for its applicant: another IIN finds nothing (404, not 403: the number
    /// alone tells nobody anything).
    pub async fn view_for(&self, number: &str, iin: &str) -> Result<ApplicationView, WorkflowError> {
        let canonical = number::parse(number).ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        match self.store.application_with_steps(&canonical).await? {
            Some((a, steps)) if a.iin == iin => Ok(self.view_of(a, steps)),
            Some(_) | None => Err(WorkflowError::NotFound(number.into())),
        }
    }

    /// The issued pair and the chain, PEM, for the applicant.
    pub async fn certificates_for(&self, number: &str, iin: &str) -> Result<String, WorkflowError> {
        self.pair_pem(self.view_for(number, iin).await?).await
    }

    /// The issued pair of an application and the chain, PEM; a conflict before issuance.
    pub(super) async fn pair_pem(&self, v: ApplicationView) -> Result<String, WorkflowError> {
        let serials = v.certificates.ok_or_else(|| WorkflowError::Status {
            number: v.number.clone(),
            status: v.status,
        })?;
        let mut pem = String::new();
        for s in serials {
            if let Some(der) = self.store.certificate(&s).await?.and_then(|c| c.der) {
                pem.push_str(&crate::pki::pem("CERTIFICATE", &der));
            }
        }
        pem.push_str(&self.ca.issuing.cert_pem());
        pem.push_str(&self.ca.root.cert_pem());
        Ok(pem)
    }

    /// The operator's centre's queue.
    pub async fn queue(&self, op: &Operator, status: Status) -> Result<Vec<ApplicationView>, WorkflowError> {
        let mut out = Vec::new();
        for a in self.store.centre_applications(&op.record.centre, status).await? {
            out.push(self.view(&a.number).await?);
        }
        Ok(out)
    }
}
