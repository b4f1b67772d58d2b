//! P4 at the workstation: what the station needs beyond the operator's common steps: the
//! application as the operator sees it (to resume an interrupted enrolment), the issued pair to
//! write onto the card, and the record that it is on the card, the last step of P4.

use serde::Deserialize;

use super::application::{ApplicationView, Workflow, WorkflowError};
use super::regulation::StepKind;
use crate::model::Status;
use crate::operators::Operator;
use crate::pki::normalise_serial;
use crate::store::Advance;

/// What the station reports once the certificates are written onto the card and read back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardWritten {
    pub auth: String,
    pub sign: String,
}

impl Workflow<'_> {
    /// The issued pair of an application of the operator's centre and the chain, PEM: what the
    /// station writes onto the card.
    pub async fn certificates_for_operator(&self, op: &Operator, number: &str) -> Result<String, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        self.pair_pem(self.view(&a.number).await?).await
    }

    /// P4 step 10: the certificates are on the card. The station names the pair it wrote, which
    /// must be the application's; the application completes. A repeat of the same report (the
    /// station's answer lost on the way) finds it completed and changes nothing.
    pub async fn card_written(
        &self,
        op: &Operator,
        number: &str,
        written: CardWritten,
    ) -> Result<ApplicationView, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        let process = self.process_of(&a)?;
        if !process.steps.iter().any(|s| s.step == StepKind::WriteCard) {
            return Err(WorkflowError::Invalid(format!(
                "application {} is not an issue onto an ID card",
                a.number
            )));
        }
        let named = [&written.auth, &written.sign].map(|s| normalise_serial(s));
        if named != [a.auth_serial.clone(), a.sign_serial.clone()] || named.iter().any(Option::is_none) {
            return Err(WorkflowError::Invalid(format!(
                "the certificates written are not application {}'s pair",
                a.number
            )));
        }
        if a.status == Status::Completed {
            return self.view(&a.number).await;
        }
        // Closes the open write_card step with its outcome.
        let done = Advance {
            to: Status::Completed,
            outcome: "written".into(),
            ..Default::default()
        };
        tracing::info!(target: "audit", "card written: application=[{}] operator=[{}]", a.number, op.record.iin);
        self.advance(&a, Status::Issuing, done, StepKind::WriteCard, op.actor())
            .await
    }
}
