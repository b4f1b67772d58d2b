//! The operator's steps that lead to the result: the identity check with its receipt
//! (condition 2), the to-be-signed document, and the confirmation signed with the operator's own
//! SIGN key (condition 3), which records the result step as an intent and has it done.

use super::application::*;
use super::regulation::{Condition, StepKind};
use crate::model::{Document, Intent, Receipt, Refusal, Service, Status};
use crate::operators::{ConfirmError, Operator, may_confirm};
use crate::pki::cms::CmsError;
use crate::store::{Advance, ApplicationRecord, now};

impl Workflow<'_> {
    /// Condition 2: the operator checked the documents and the applicant's identity. Confirmed:
    /// the receipt is given and the to-be-signed document made; not confirmed: refused.
    pub async fn identity(
        &self,
        op: &Operator,
        number: &str,
        req: IdentityRequest,
    ) -> Result<ApplicationView, WorkflowError> {
        let (a, steps) = self.operators_application_with_steps(op, number).await?;
        let process = self.process_of(&a)?;
        let seq = steps.len() as i64;
        let t = now();
        let advance = if req.confirmed {
            // The receipt is kept with the documents seen (regulation §15.4, §20: the archive);
            // every view shows their numbers masked.
            let documents: Vec<Document> = req.documents.into_iter().map(Document::from).collect();
            let seen: Vec<String> = documents.iter().map(Document::shown).collect();
            let receipt = Receipt {
                number: Receipt::number_for(&a.number),
                application: a.number.clone(),
                centre: a.centre.clone(),
                operator: op.record.iin.clone(),
                issued_at: t,
                documents,
            };
            // P1 gives the receipt as a step of its own; P5 gives it within the identity step.
            let mut steps = Vec::new();
            if process.steps.iter().any(|s| s.step == StepKind::Receipt) {
                steps.push(step(process, StepKind::Receipt, seq + 1, t, Some("given")));
            }
            steps.push(step(
                process,
                StepKind::Confirmation,
                seq + 1 + steps.len() as i64,
                t,
                None,
            ));
            Advance {
                to: Status::AwaitingConfirmation,
                outcome: format!("confirmed by {}; documents: {}", op.record.iin, seen.join(", ")),
                steps,
                tbs: Some(to_be_signed(&a)?),
                receipt: Some(receipt),
                ..Default::default()
            }
        } else {
            Advance {
                to: Status::Refused,
                outcome: "not confirmed".into(),
                refusal: Some(Refusal::of(
                    Condition::IdentityConfirmed,
                    StepKind::Identity,
                    req.reason
                        .unwrap_or_else(|| "the documents or the applicant's identity did not check out".into()),
                )),
                ..Default::default()
            }
        };
        self.advance(&a, Status::AwaitingDocuments, advance, StepKind::Identity, op.actor())
            .await
    }

    /// The exact bytes the operator signs.
    pub async fn to_be_signed(&self, op: &Operator, number: &str) -> Result<String, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        a.tbs
            .clone()
            .filter(|_| a.status == Status::AwaitingConfirmation)
            .ok_or(WorkflowError::Status {
                number: a.number,
                status: a.status,
            })
    }

    /// Condition 3: the operator's signature over the to-be-signed bytes. Valid: the pair is
    /// issued and the application completes; invalid: refused. Takes effect once.
    pub async fn confirm(&self, op: &Operator, number: &str, cms: &[u8]) -> Result<ApplicationView, WorkflowError> {
        let (a, steps) = self.operators_application_with_steps(op, number).await?;
        let tbs = a.tbs.clone().filter(|_| a.status == Status::AwaitingConfirmation);
        let Some(tbs) = tbs else {
            return Err(WorkflowError::Status {
                number: a.number,
                status: a.status,
            });
        };
        let process = self.process_of(&a)?;
        let seq = steps.len() as i64;
        let t = now();
        let verdict: Result<(), String> = match self.ca.verify_cms(cms, Some(tbs.as_bytes())).await {
            Ok(v) if v.content != tbs.as_bytes() => Err(CmsError::ContentMismatch.code().to_string()),
            Ok(v) => may_confirm(op, &v, &a.centre).map_err(|e: ConfirmError| e.code().to_string()),
            Err(CmsError::Store(e)) => return Err(e.into()),
            Err(e) => Err(e.code().to_string()),
        };
        if let Err(why) = verdict {
            let refused = Advance {
                to: Status::Refused,
                outcome: format!("signature refused: {why}"),
                steps: vec![step(
                    process,
                    StepKind::OperatorSignatureCheck,
                    seq + 1,
                    t,
                    Some("invalid"),
                )],
                refusal: Some(Refusal::of(
                    Condition::OperatorSignatureValid,
                    StepKind::OperatorSignatureCheck,
                    why,
                )),
                ..Default::default()
            };
            return self
                .advance(
                    &a,
                    Status::AwaitingConfirmation,
                    refused,
                    StepKind::OperatorSignatureCheck,
                    op.actor(),
                )
                .await;
        }
        // The single transition that makes a confirmation count: a replay finds it done. It
        // records the result step as an intent (revocation; issuance; or, on an ID card, the
        // certificates to write onto it), which is then done and recorded done; if this worker
        // fails in between, the driver finishes it.
        let (intent, result_step) = match a.service {
            Service::Revoke => (Intent::Revoke, StepKind::Revoke),
            _ if process.steps.iter().any(|s| s.step == StepKind::Issue) => (Intent::Issue, StepKind::Issue),
            _ => (Intent::Issue, StepKind::WriteCard),
        };
        // On an ID card the result step starts once there is something to write: after issuance.
        let onto_card = result_step == StepKind::WriteCard;
        let mut steps = vec![step(
            process,
            StepKind::OperatorSignatureCheck,
            seq + 1,
            t,
            Some("valid"),
        )];
        if !onto_card {
            steps.push(step(process, result_step, seq + 2, t, None));
        }
        let until = now() + self.config.workflow.lease_seconds;
        let issuing = Advance {
            to: Status::Issuing,
            outcome: "signed".into(),
            confirmed_by: Some(op.record.iin.clone()),
            steps,
            intent: Some(intent),
            intent_until: Some(until),
            ..Default::default()
        };
        // The pair's issuance with this transition and the completion in its group commits.
        match self.issue_confirmed(&a, issuing.clone(), op.actor()).await? {
            Some(true) => return self.view(&a.number).await,
            Some(false) => {
                return Err(WorkflowError::Status {
                    number: a.number,
                    status: Status::Issuing,
                });
            }
            None => {}
        }
        if !self
            .move_on(
                &a,
                Status::AwaitingConfirmation,
                issuing,
                StepKind::OperatorSignatureCheck,
                None,
                op.actor(),
            )
            .await?
        {
            return Err(WorkflowError::Status {
                number: a.number,
                status: Status::Issuing,
            });
        }
        let claimed = ApplicationRecord {
            status: Status::Issuing,
            confirmed_by: Some(op.record.iin.clone()),
            intent: Some(intent),
            intent_until: Some(until),
            ..a
        };
        self.finish(&claimed, false).await?;
        self.view(&claimed.number).await
    }
}

/// The document an operator signs to confirm: what is confirmed, for whom, which keys, and a
/// nonce so that no two confirmations are alike. Without the operating system's randomness
/// there is no nonce, and no confirmation: an internal fault, not a predictable document.
pub(super) fn to_be_signed(a: &ApplicationRecord) -> Result<String, WorkflowError> {
    let mut nonce = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut nonce).map_err(no_randomness)?;
    if a.service == Service::Revoke {
        return Ok(format!(
            "nca-confirmation v1\napplication: {}\napplicant: IIN{}\ndecision: revoke\ncertificates: {}\nreason: {}\nnonce: {}\n",
            a.number,
            a.iin,
            a.applicant.certificates.join(" "),
            a.applicant.reason(),
            hex::encode(nonce)
        ));
    }
    Ok(format!(
        "nca-confirmation v1\napplication: {}\napplicant: IIN{}\nauth-request-sha256: {}\nsign-request-sha256: {}\ndecision: {}\nnonce: {}\n",
        a.number,
        a.iin,
        request_sha256(&a.auth_csr),
        request_sha256(&a.sign_csr),
        a.service,
        hex::encode(nonce)
    ))
}

fn request_sha256(csr: &Option<String>) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        csr.as_deref().unwrap_or("").as_bytes(),
    ))
}

/// Whether an application's requests are, byte for byte, those its to-be-signed document names
/// (what the operator's signature covers): a request changed after the identity step is not.
pub(super) fn binds_requests(a: &ApplicationRecord) -> bool {
    let Some(tbs) = a.tbs.as_deref() else {
        return false;
    };
    let names = |label: &str, csr: &Option<String>| tbs.contains(&format!("\n{label}: {}\n", request_sha256(csr)));
    csr_present(&a.auth_csr)
        && csr_present(&a.sign_csr)
        && names("auth-request-sha256", &a.auth_csr)
        && names("sign-request-sha256", &a.sign_csr)
}

fn csr_present(csr: &Option<String>) -> bool {
    csr.as_deref().is_some_and(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_binds_the_requests_it_was_made_for_and_no_others() {
        let mut a = ApplicationRecord {
            number: "A1".into(),
            iin: "920708497088".into(),
            auth_csr: Some("AUTH REQUEST".into()),
            sign_csr: Some("SIGN REQUEST".into()),
            ..Default::default()
        };
        assert!(!binds_requests(&a), "no document yet");
        a.tbs = Some(to_be_signed(&a).unwrap());
        assert!(binds_requests(&a));

        // A request changed after the document was made: verified again, not carried.
        let mut changed = a.clone();
        changed.sign_csr = Some("SIGN REQUEST\n".into());
        assert!(!binds_requests(&changed));
        // The two swapped: each digest is bound to its own line.
        let mut swapped = a.clone();
        std::mem::swap(&mut swapped.auth_csr, &mut swapped.sign_csr);
        assert!(!binds_requests(&swapped));
        // Without requests there is nothing proven to carry, even if the digests match.
        let mut empty = ApplicationRecord {
            auth_csr: None,
            sign_csr: None,
            ..a.clone()
        };
        empty.tbs = Some(to_be_signed(&empty).unwrap());
        assert!(!binds_requests(&empty));
    }
}
