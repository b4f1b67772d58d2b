//! Condition "the applicant's data exists": the state database asked at submission, and again
//! for the applications it did not answer for (`awaiting_registry`).

use super::application::*;
use super::confirmation::to_be_signed;
use super::regulation::{Channel, Condition, Process, Service, StepKind};
use crate::ids::Iin;
use crate::model::{Actor, Refusal, Status};
use crate::registry::names_match;
use crate::store::{Advance, ApplicationRecord, StepRecord, now};

impl Workflow<'_> {
    /// Condition "the applicant's data exists": the person is in the state database, under the
    /// names given. `Ok(None)` when so, `Ok(Some(refusal))` when not; the step's outcome is
    /// `found` or `not_found`.
    pub(super) async fn registry_check(
        &self,
        iin: &Iin,
        applicant: &ApplicantData,
    ) -> Result<(&'static str, Option<Refusal>), WorkflowError> {
        let Some(p) = self.registry.person(iin).await? else {
            let refused = Refusal::of(
                Condition::ApplicantDataExists,
                StepKind::RegistryCheck,
                "the state database has no person with this IIN",
            );
            return Ok(("not_found", Some(refused)));
        };
        let patronymic_differs = applicant
            .patronymic
            .as_deref()
            .filter(|g| !g.trim().is_empty())
            .is_some_and(|g| !names_match(g, p.patronymic.as_deref().unwrap_or("")));
        if !names_match(&applicant.surname, &p.surname) || !names_match(&applicant.name, &p.name) || patronymic_differs
        {
            let refused = Refusal::new(
                "registry_mismatch",
                StepKind::RegistryCheck,
                "the names given differ from the state database's",
            );
            return Ok(("found", Some(refused)));
        }
        Ok(("found", None))
    }

    /// Asks the state database again for an application it did not answer for. True when the
    /// application moved on (registered, or refused); false when the database is still silent or
    /// another instance moved it first.
    pub async fn retry_registry(&self, a: &ApplicationRecord) -> Result<bool, WorkflowError> {
        let process = self.process_of(a)?;
        let applicant =
            a.applicant.person.as_ref().ok_or_else(|| {
                WorkflowError::Internal(format!("application {} names no person to look up", a.number))
            })?;
        let iin = Iin::parse(&a.iin).map_err(|e| WorkflowError::Internal(format!("IIN {e}")))?;
        let (outcome, refused) = match self.registry_check(&iin, applicant).await {
            Ok(r) => r,
            Err(WorkflowError::Registry(e)) => {
                tracing::info!(application = %a.number, "state registry still unavailable: {e}");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let seq = self.store.application_steps(&a.number).await?.len() as i64 + 1;
        let t = now();
        let (steps, status) = if process.channel == Channel::ServiceCentre {
            match refused {
                Some(_) => (Vec::new(), Status::Refused),
                None => (
                    vec![step(process, StepKind::CardKeys, seq, t, None)],
                    Status::AwaitingDocuments,
                ),
            }
        } else {
            after_registry(process, process.service, seq, t, refused.is_some())
        };
        let tbs = match status {
            Status::AwaitingConfirmation => Some(to_be_signed(a)?),
            _ => None,
        };
        let letter = if process.channel == Channel::Portal && refused.is_none() {
            self.number_letter(a)
        } else {
            None
        };
        let change = Advance {
            to: status,
            outcome: outcome.into(),
            steps,
            tbs,
            refusal: refused,
            ..Default::default()
        };
        self.move_on(
            a,
            Status::AwaitingRegistry,
            change,
            StepKind::RegistryCheck,
            letter,
            Actor::Service,
        )
        .await
    }
}

/// P1 and P2 after the registry's answer (from step `seq`): refused there, or registered with
/// the number given, then waiting for the applicant at a centre (P1) or for the operator's
/// confirmation (P2, signed already). The steps, and the status they leave.
pub(super) fn after_registry(
    process: &Process,
    service: Service,
    seq: i64,
    t: i64,
    refused: bool,
) -> (Vec<StepRecord>, Status) {
    if refused {
        return (Vec::new(), Status::Refused);
    }
    let (next, status) = if service == Service::Reissue {
        (StepKind::Confirmation, Status::AwaitingConfirmation)
    } else {
        (StepKind::Identity, Status::AwaitingDocuments)
    };
    (
        vec![
            step(process, StepKind::Register, seq, t, Some("registered")),
            step(process, StepKind::NotifyNumber, seq + 1, t, Some("shown")),
            step(process, next, seq + 2, t, None),
        ],
        status,
    )
}
