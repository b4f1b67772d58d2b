//! The portal's processes: P1 (issue, JSON), P2 (reissue) and P3 (revoke), signed with the
//! applicant's own SIGN key; the signature is checked before anything of the applicant's is
//! looked at.

use super::application::*;
use super::confirmation::to_be_signed;
use super::registry_check::after_registry;
use super::regulation::{Channel, Condition, Process, Service, StepKind};
use crate::ids::Iin;
use crate::ids::number;
use crate::model::{Actor, Applicant, Intent, Refusal, Status};
use crate::pki::cms::CmsError;
use crate::pki::{csr, policy};
use crate::store::{ApplicationRecord, now};

impl Workflow<'_> {
    /// P1 steps 1–5: the request, the registry check (condition 1), registration. Returns the
    /// application, refused or awaiting the applicant at a centre.
    /// What the portal files: an issue request or a signed one.
    pub async fn file(&self, s: Submission) -> Result<ApplicationView, WorkflowError> {
        match s {
            Submission::Request(r) => self.submit(*r).await,
            Submission::Signed(cms) => self.submit_signed(&cms).await,
        }
    }

    pub async fn submit(&self, req: ApplicationRequest) -> Result<ApplicationView, WorkflowError> {
        if req.service != Service::Issue.as_str() {
            return Err(WorkflowError::Invalid(format!(
                "service {:?}: this endpoint takes issue as JSON (reissue and revoke are signed requests)",
                req.service
            )));
        }
        let actor = Actor::applicant(&req.applicant.iin, None);
        self.register(req, Service::Issue, Ok(()), Vec::new(), actor).await
    }

    /// P1 and P2 up to the operator: the request (P2: signed, condition 1 of P2 being the
    /// applicant's own signature, checked by the caller into `signature`), the registry check,
    /// registration; then P1 waits for the applicant at a centre, P2 for the operator's
    /// confirmation.
    pub(super) async fn register(
        &self,
        req: ApplicationRequest,
        service: Service,
        signature: Result<(), String>,
        supersedes: Vec<String>,
        actor: Actor,
    ) -> Result<ApplicationView, WorkflowError> {
        let process = self
            .regulation
            .process(service, Channel::Portal)
            .ok_or_else(|| WorkflowError::Internal(format!("no {service:?} process in the regulation")))?;
        // Every wrong field is named at once, so a form can mark them all.
        let mut wrong = Vec::new();
        let checked = check_applicant(self.ca, self.config, &req.applicant, req.organization.as_ref());
        if let Err(WorkflowError::Fields(f)) = &checked {
            wrong.extend(f.iter().cloned());
        }
        if self.centres.centre(&req.registration_centre).is_none() {
            wrong.push(FieldError::new(
                "registration_centre",
                "centre_not_found",
                format!("no registration centre {:?}", req.registration_centre),
            ));
        }
        if !["file", "token", "id_card"].contains(&req.storage.as_str()) {
            wrong.push(FieldError::new(
                "storage",
                "storage_invalid",
                format!("storage {:?}: file, token or id_card", req.storage),
            ));
        }
        let pair = req.requests.clone().unwrap_or(CsrPair {
            auth: String::new(),
            sign: String::new(),
        });
        let mut parsed_pair = Vec::new();
        for (which, pem) in [("auth", &pair.auth), ("sign", &pair.sign)] {
            match csr::parse(pem.as_bytes()) {
                Ok(p) => parsed_pair.push((which, p)),
                Err(e) => wrong.push(FieldError::new(
                    &format!("requests.{which}"),
                    "csr_malformed",
                    e.to_string(),
                )),
            }
        }
        if !wrong.is_empty() {
            return Err(WorkflowError::Fields(wrong));
        }
        let (iin, profile) = checked?;
        let mut key_problem = None;
        for (which, parsed) in parsed_pair {
            if let Err(e) = policy::judge_key(&parsed.spki, profile)
                .map(|_| ())
                .map_err(|e| e.to_string())
                .and_then(|_| parsed.check_possession().map_err(|e| e.to_string()))
            {
                key_problem.get_or_insert(format!("requests.{which}: {e}"));
            }
        }

        let t = now();
        let number = number::new_number().map_err(no_randomness)?;
        let first = if service == Service::Reissue {
            StepKind::SignedRequest
        } else {
            StepKind::Request
        };
        let mut steps = vec![step(
            process,
            first,
            1,
            t,
            Some(if signature.is_ok() { "done" } else { "invalid" }),
        )];
        let mut refused: Option<Refusal> = None;
        let mut status = Status::AwaitingRegistry;
        if let Err(why) = signature {
            refused = Some(Refusal::of(Condition::ApplicantSignatureValid, first, why));
        } else if let Some(p) = key_problem {
            refused = Some(Refusal::new("key_rejected", StepKind::Request, p));
        } else {
            // Condition 1: the applicant's data exists in the state database, and is theirs. A
            // database that does not answer leaves the check open, to be asked again.
            match self.registry_check(&iin, &req.applicant).await {
                Ok((outcome, refused_by_registry)) => {
                    steps.push(step(process, StepKind::RegistryCheck, 2, t, Some(outcome)));
                    let (more, next_status) = after_registry(process, service, 3, t, refused_by_registry.is_some());
                    steps.extend(more);
                    status = next_status;
                    refused = refused_by_registry;
                }
                Err(WorkflowError::Registry(e)) => {
                    tracing::warn!("state registry: {e}; the application waits for it");
                    steps.push(step(process, StepKind::RegistryCheck, 2, t, None));
                }
                Err(e) => return Err(e),
            }
        }
        if refused.is_some() {
            status = Status::Refused;
        }
        let applicant = Applicant {
            person: Some(req.applicant),
            organization: req.organization,
            supersedes,
            lang: self.lang.map(str::to_string),
            ..Default::default()
        };
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service,
            channel: Channel::Portal,
            status,
            iin: iin.as_str().to_string(),
            applicant,
            centre: req.registration_centre,
            storage: req.storage,
            auth_csr: Some(pair.auth),
            sign_csr: Some(pair.sign),
            refusal: refused,
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        if record.status == Status::AwaitingConfirmation {
            record.tbs = Some(to_be_signed(&record)?);
        }
        let letter = if [Status::Refused, Status::AwaitingRegistry].contains(&record.status) {
            None
        } else {
            self.number_letter(&record)
        };
        self.record(&mut record, &steps, letter, &actor).await?;
        // Shown as committed, not read back: nobody else knows its number until this answer
        // (only the registry's retry, for one that waits, could move it on first).
        Ok(self.view_of(record, steps))
    }

    /// P2 (reissue) and P3 (revoke) via the portal: a request signed with the applicant's own
    /// SIGN key (condition 1: the signature is valid and the applicant's). P2 goes on as
    /// [`Self::register`] says; in P3 the certificates named are revoked and the application
    /// completes. A request whose content cannot be read is 400 and
    /// records nothing; one that does not verify is refused with `applicant_signature_invalid`.
    pub async fn submit_signed(&self, cms: &[u8]) -> Result<ApplicationView, WorkflowError> {
        let content = crate::pki::cms::content_of(cms).map_err(|e| WorkflowError::Invalid(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_slice(&content).map_err(|e| WorkflowError::Invalid(format!("signed content: {e}")))?;
        if value["service"] == Service::Reissue.as_str() {
            let req: ApplicationRequest =
                serde_json::from_value(value).map_err(|e| WorkflowError::Invalid(format!("signed content: {e}")))?;
            let (signature, supersedes, actor) = match self.applicant_signature(cms, &req.applicant.iin).await? {
                Ok(signer_serial) => {
                    // The pair the signing certificate belongs to is the one superseded.
                    let pair = match self.store.application_of_certificate(&signer_serial).await? {
                        Some(a) => a.auth_serial.into_iter().chain(a.sign_serial).collect(),
                        None => vec![signer_serial.clone()],
                    };
                    (Ok(()), pair, Actor::applicant(&req.applicant.iin, Some(&signer_serial)))
                }
                Err(why) => (Err(why), Vec::new(), Actor::applicant(&req.applicant.iin, None)),
            };
            return self.register(req, Service::Reissue, signature, supersedes, actor).await;
        }
        let req: SignedRequest =
            serde_json::from_value(value).map_err(|e| WorkflowError::Invalid(format!("signed content: {e}")))?;
        let (process, iin) = self.revocation_process(&req, Channel::Portal)?;
        let t = now();
        let number = number::new_number().map_err(no_randomness)?;
        // Condition 1 before anything of the applicant's is looked at: a request not signed by
        // them gets the same refusal whatever their IIN holds.
        let signer = match self.applicant_signature(cms, iin.as_str()).await? {
            Ok(signer) => signer,
            Err(why) => {
                let mut record = ApplicationRecord {
                    number: number.clone(),
                    process: process.id.clone(),
                    service: Service::Revoke,
                    channel: Channel::Portal,
                    status: Status::Refused,
                    iin: iin.as_str().to_string(),
                    applicant: Applicant {
                        lang: self.lang.map(str::to_string),
                        ..Default::default()
                    },
                    refusal: Some(Refusal::of(
                        Condition::ApplicantSignatureValid,
                        StepKind::SignedRequest,
                        why,
                    )),
                    created_at: t,
                    updated_at: t,
                    ..Default::default()
                };
                let steps = [step(process, StepKind::SignedRequest, 1, t, Some("invalid"))];
                self.record(&mut record, &steps, None, &Actor::applicant(iin.as_str(), None))
                    .await?;
                return self.view(&number).await;
            }
        };
        let (serials, reason) = self
            .applicants_certificates(&iin, &req.certificates, req.reason.as_deref())
            .await?;
        let (email, lang) = self.holder_contact(&serials).await?;
        // The revocation is recorded before it is done: a crash after this leaves an intent the
        // driver finishes, never a revocation without its application.
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: Service::Revoke,
            channel: Channel::Portal,
            status: Status::Issuing,
            iin: iin.as_str().to_string(),
            applicant: Applicant {
                certificates: serials,
                reason: Some(reason),
                email,
                lang,
                ..Default::default()
            },
            created_at: t,
            updated_at: t,
            intent: Some(Intent::Revoke),
            intent_until: Some(t + self.config.workflow.lease_seconds),
            ..Default::default()
        };
        let steps = [
            step(process, StepKind::SignedRequest, 1, t, Some("valid")),
            step(process, StepKind::Revoke, 2, t, None),
        ];
        self.record(
            &mut record,
            &steps,
            None,
            &Actor::applicant(iin.as_str(), Some(&signer)),
        )
        .await?;
        self.finish(&record, false).await?;
        self.view(&number).await
    }

    /// The certificates a request names, checked to be the applicant's; and the reason.
    pub(super) async fn applicants_certificates(
        &self,
        iin: &Iin,
        certificates: &[String],
        reason: Option<&str>,
    ) -> Result<(Vec<String>, String), WorkflowError> {
        let holder = format!("IIN{}", iin.as_str());
        let t = now();
        if certificates.is_empty() {
            // None named: all of the applicant's certificates that are still in force.
            let mut all = Vec::new();
            for serial in self.store.certificates_of_holder(&holder).await? {
                if !self.store.revocation(&serial).await?.is_some_and(|r| r.effective_at(t)) {
                    all.push(serial);
                }
            }
            if all.is_empty() {
                return Err(WorkflowError::Invalid(
                    "the applicant has no certificate in force".into(),
                ));
            }
            let reason = reason.unwrap_or("unspecified").to_string();
            if crate::pki::revocation::parse_reason(&reason)
                .is_none_or(|r| r == crate::pki::revocation::REMOVE_FROM_CRL)
            {
                return Err(WorkflowError::Invalid(format!("reason {reason:?}")));
            }
            return Ok((all, reason));
        }
        let reason = reason.unwrap_or("unspecified").to_string();
        if crate::pki::revocation::parse_reason(&reason).is_none_or(|r| r == crate::pki::revocation::REMOVE_FROM_CRL) {
            return Err(WorkflowError::Invalid(format!("reason {reason:?}")));
        }
        let mut serials = Vec::new();
        for s in certificates {
            let serial =
                crate::pki::normalise_serial(s).ok_or_else(|| WorkflowError::Invalid(format!("serial {s:?}")))?;
            match self.store.certificate(&serial).await? {
                Some(c) if c.holder == holder => serials.push(serial),
                _ => {
                    return Err(WorkflowError::Invalid(format!(
                        "certificate {s} is not the applicant's"
                    )));
                }
            }
        }
        Ok((serials, reason))
    }

    /// Condition 1 of P2 and P3: the request is signed, validly, with the applicant's own SIGN
    /// certificate. `Ok(Ok(signer serial))`, or `Ok(Err(why))` for a refusal.
    pub(super) async fn applicant_signature(
        &self,
        cms: &[u8],
        iin: &str,
    ) -> Result<Result<String, String>, WorkflowError> {
        Ok(match self.ca.verify_cms(cms, None).await {
            Ok(v) if v.signer_holder == format!("IIN{iin}") => Ok(v.signer_serial),
            Ok(_) => Err("signed with another person's certificate".to_string()),
            Err(CmsError::Store(e)) => return Err(e.into()),
            Err(e) => Err(format!("{} ({})", e, e.code())),
        })
    }

    /// A revocation request's process (P3 at the portal, P5 at a centre) and applicant, from
    /// what it says alone: nothing of the applicant's is looked at here.
    pub(super) fn revocation_process(
        &self,
        req: &SignedRequest,
        channel: Channel,
    ) -> Result<(&Process, Iin), WorkflowError> {
        if req.service != Service::Revoke.as_str() {
            return Err(WorkflowError::Invalid(format!(
                "service {:?}: revoke was expected here",
                req.service
            )));
        }
        let process = self
            .regulation
            .process(Service::Revoke, channel)
            .ok_or_else(|| WorkflowError::Internal(format!("no revocation process for {channel:?}")))?;
        let iin = Iin::parse(&req.applicant.iin).map_err(|e| WorkflowError::Invalid(format!("IIN {e}")))?;
        Ok((process, iin))
    }

    /// The address and language the holder of these certificates gave when they applied.
    pub(super) async fn holder_contact(
        &self,
        serials: &[String],
    ) -> Result<(Option<String>, Option<String>), WorkflowError> {
        for serial in serials {
            if let Some(a) = self.store.application_of_certificate(serial).await?
                && let Some((email, lang)) = a.applicant.contact()
            {
                return Ok((Some(email), Some(self.lang.map(str::to_string).unwrap_or(lang))));
            }
        }
        Ok((None, self.lang.map(str::to_string)))
    }
}
