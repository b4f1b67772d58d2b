//! Condition "the applicant's data exists": the state database asked at submission, and again
//! for the applications it did not answer for (`awaiting_registry`).

use super::application::*;
use super::confirmation::to_be_signed;
use super::model::Actor;
use super::regulation::{Channel, Condition, Process, Service, StepKind};
use crate::registry::{Iin, names_match};
use crate::store::{Advance, ApplicationRecord, StepRecord, now};

impl Workflow<'_> {
    /// Condition "the applicant's data exists": the person is in the state database, under the
    /// names given. `Ok(None)` when so, `Ok(Some(refusal))` when not; the step's outcome is
    /// `found` or `not_found`.
    pub(super) async fn registry_check(
        &self,
        iin: &Iin,
        applicant: &ApplicantData,
    ) -> Result<(&'static str, Option<(String, String, String)>), WorkflowError> {
        let Some(p) = self.registry.person(iin).await? else {
            let refused = refusal(
                Condition::ApplicantDataExists,
                StepKind::RegistryCheck,
                "the state database has no person with this IIN".into(),
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
            let refused = (
                "registry_mismatch".to_string(),
                kind_name(StepKind::RegistryCheck),
                "the names given differ from the state database's".to_string(),
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
        let data: serde_json::Value = serde_json::from_str(&a.applicant).unwrap_or_default();
        let applicant: ApplicantData =
            serde_json::from_value(data["applicant"].clone()).map_err(|e| WorkflowError::Internal(e.to_string()))?;
        let iin = Iin::parse(&a.iin).map_err(|e| WorkflowError::Internal(format!("IIN {e}")))?;
        let (outcome, refused) = match self.registry_check(&iin, &applicant).await {
            Ok(r) => r,
            Err(WorkflowError::Registry(e)) => {
                tracing::info!(application = %a.number, "state registry still unavailable: {e}");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let seq = self.ca.store.application_steps(&a.number).await?.len() as i64 + 1;
        let t = now();
        let (steps, status) = if process.channel == Channel::ServiceCentre {
            match refused {
                Some(_) => (Vec::new(), "refused"),
                None => (
                    vec![step(process, StepKind::CardKeys, seq, t, None)],
                    "awaiting_documents",
                ),
            }
        } else {
            after_registry(process, process.service, seq, t, refused.is_some())
        };
        let tbs = (status == "awaiting_confirmation").then(|| to_be_signed(a));
        let letter = if process.channel == Channel::Portal && refused.is_none() {
            self.number_letter(a)
        } else {
            None
        };
        let change = Advance {
            to: status.into(),
            outcome: outcome.into(),
            steps,
            tbs,
            refusal: refused,
            ..Default::default()
        };
        self.move_on(a, "awaiting_registry", change, "registry_check", letter, Actor::Service)
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
) -> (Vec<StepRecord>, &'static str) {
    if refused {
        return (Vec::new(), "refused");
    }
    let (next, status) = if service == Service::Reissue {
        (StepKind::Confirmation, "awaiting_confirmation")
    } else {
        (StepKind::Identity, "awaiting_documents")
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
