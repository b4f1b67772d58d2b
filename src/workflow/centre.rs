//! The processes filed at a service centre by the operator: P4 (issue onto an ID card, with the
//! CSRs made on the card) and P5 (revoke).

use super::application::*;
use super::confirmation::to_be_signed;
use super::regulation::{Channel, Service, StepKind};
use crate::ids::Iin;
use crate::ids::number;
use crate::model::{Applicant, Status};
use crate::operators::Operator;
use crate::pki::{csr, policy};
use crate::store::{Advance, ApplicationRecord, now};

impl Workflow<'_> {
    /// What an operator files at a centre: P4 or P5.
    pub async fn file_at_centre(&self, op: &Operator, req: CentreRequest) -> Result<ApplicationView, WorkflowError> {
        match req {
            CentreRequest::Issue(r) => self.create_issue_at_centre(op, r).await,
            CentreRequest::Revoke(r) => self.create_at_centre(op, r).await,
        }
    }

    /// P4, issue onto an ID card at a centre: the operator, having identified the applicant,
    /// files the request; the registry is asked (condition 2); the application then waits for
    /// the CSRs made on the card.
    pub async fn create_issue_at_centre(
        &self,
        op: &Operator,
        req: CentreIssue,
    ) -> Result<ApplicationView, WorkflowError> {
        let process = self
            .regulation
            .process(Service::Issue, Channel::ServiceCentre)
            .ok_or_else(|| WorkflowError::Internal("no P4 in the regulation".into()))?;
        let applicant = self.complete_from_registry(req.applicant).await?;
        let iin = if applicant.surname.is_empty() || applicant.name.is_empty() {
            // Names neither given nor in the state database: nothing to build a subject from,
            // and the registry check below refuses the applicant.
            Iin::parse(&applicant.iin).map_err(|e| WorkflowError::Invalid(format!("IIN {e}")))?
        } else {
            check_applicant(self.ca, self.config, &applicant, req.organization.as_ref())?.0
        };
        let t = now();
        let mut steps = vec![
            step(process, StepKind::Identity, 1, t, Some("confirmed")),
            step(process, StepKind::Request, 2, t, Some("filled")),
        ];
        let (refused, status) = match self.registry_check(&iin, &applicant).await {
            Ok((outcome, refused)) => {
                steps.push(step(process, StepKind::RegistryCheck, 3, t, Some(outcome)));
                if refused.is_none() {
                    steps.push(step(process, StepKind::CardKeys, 4, t, None));
                }
                let status = if refused.is_some() {
                    Status::Refused
                } else {
                    Status::AwaitingDocuments
                };
                (refused, status)
            }
            Err(WorkflowError::Registry(e)) => {
                tracing::warn!("state registry: {e}; the application waits for it");
                steps.push(step(process, StepKind::RegistryCheck, 3, t, None));
                (None, Status::AwaitingRegistry)
            }
            Err(e) => return Err(e),
        };
        let number = number::new_number().map_err(no_randomness)?;
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: Service::Issue,
            channel: Channel::ServiceCentre,
            status,
            iin: iin.as_str().to_string(),
            applicant: Applicant {
                person: Some(applicant),
                organization: req.organization,
                filed_by: Some(op.record.iin.clone()),
                lang: self.lang.map(str::to_string),
                ..Default::default()
            },
            centre: op.record.centre.clone(),
            storage: req.storage.unwrap_or_else(|| "id_card".into()),
            refusal: refused,
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        self.record(&mut record, &steps, None, &op.actor()).await?;
        self.view(&number).await
    }

    /// P4: the CSRs made on the card. Checked as at the portal (a bad one is 400 and changes
    /// nothing, so the station can try again); then the request is registered and waits for the
    /// operator's confirmation.
    pub async fn card_requests(
        &self,
        op: &Operator,
        number: &str,
        pair: CsrPair,
    ) -> Result<ApplicationView, WorkflowError> {
        let (a, steps) = self.operators_application_with_steps(op, number).await?;
        if a.process != "P4" || a.status != Status::AwaitingDocuments {
            return Err(WorkflowError::Status {
                number: a.number,
                status: a.status,
            });
        }
        let process = self.process_of(&a)?;
        let profile = auth_profile(self.ca, a.applicant.legal())?;
        for (which, pem) in [("auth", &pair.auth), ("sign", &pair.sign)] {
            let parsed = csr::parse(pem.as_bytes()).map_err(|e| WorkflowError::Invalid(format!("{which}: {e}")))?;
            policy::judge_key(&parsed.spki, profile).map_err(|e| WorkflowError::Invalid(format!("{which}: {e}")))?;
            parsed
                .check_possession()
                .map_err(|e| WorkflowError::Invalid(format!("{which}: {e}")))?;
        }
        let seq = steps.len() as i64;
        let t = now();
        let mut with_csrs = a.clone();
        with_csrs.auth_csr = Some(pair.auth.clone());
        with_csrs.sign_csr = Some(pair.sign.clone());
        let advance = Advance {
            to: Status::AwaitingConfirmation,
            outcome: "made on the card".into(),
            steps: vec![
                step(process, StepKind::Register, seq + 1, t, Some("registered")),
                step(process, StepKind::Confirmation, seq + 2, t, None),
            ],
            tbs: Some(to_be_signed(&with_csrs)?),
            auth_csr: Some(pair.auth),
            sign_csr: Some(pair.sign),
            ..Default::default()
        };
        self.advance(
            &a,
            Status::AwaitingDocuments,
            advance,
            StepKind::Confirmation,
            op.actor(),
        )
        .await
    }

    /// P5, revoke at a service centre: the operator fills the request for the applicant in
    /// front of them; identity, the operator's confirmation and the revocation follow.
    pub async fn create_at_centre(&self, op: &Operator, req: SignedRequest) -> Result<ApplicationView, WorkflowError> {
        let (process, iin) = self.revocation_process(&req, Channel::ServiceCentre)?;
        let (serials, reason) = self
            .applicants_certificates(&iin, &req.certificates, req.reason.as_deref())
            .await?;
        let t = now();
        let number = number::new_number().map_err(no_randomness)?;
        let (email, lang) = self.holder_contact(&serials).await?;
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: Service::Revoke,
            channel: Channel::ServiceCentre,
            status: Status::AwaitingDocuments,
            iin: iin.as_str().to_string(),
            applicant: Applicant {
                certificates: serials,
                reason: Some(reason),
                filed_by: Some(op.record.iin.clone()),
                email,
                lang,
                ..Default::default()
            },
            centre: op.record.centre.clone(),
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        let steps = [step(process, StepKind::Identity, 1, t, None)];
        self.record(&mut record, &steps, None, &op.actor()).await?;
        self.view(&number).await
    }

    /// The P4 applicant with the names the operator left out taken from the state database.
    /// A person the database does not know keeps empty names: the registry check that follows
    /// refuses them with `registry_not_found`.
    pub(super) async fn complete_from_registry(&self, a: CentreApplicant) -> Result<ApplicantData, WorkflowError> {
        let mut data = ApplicantData {
            iin: a.iin,
            surname: a.surname.unwrap_or_default(),
            name: a.name.unwrap_or_default(),
            patronymic: a.patronymic,
            email: a.email,
            region: a.region,
            locality: a.locality,
        };
        if !data.surname.trim().is_empty() && !data.name.trim().is_empty() {
            return Ok(data);
        }
        let iin = Iin::parse(&data.iin).map_err(|e| WorkflowError::Invalid(format!("IIN {e}")))?;
        if let Some(p) = self.registry.person(&iin).await? {
            if data.surname.trim().is_empty() {
                data.surname = p.surname;
            }
            if data.name.trim().is_empty() {
                data.name = p.name;
            }
            if data.patronymic.as_deref().is_none_or(|g| g.trim().is_empty()) {
                data.patronymic = p.patronymic;
            }
        }
        Ok(data)
    }
}
