//! Applications under the regulation's processes. This stage runs P1 (issue via the portal):
//! the request and the registry check at submission, the operator's identity step with its
//! receipt, the to-be-signed document, the operator's confirmation (condition 3), issuance of
//! the AUTH and SIGN pair, completion. A refusal is a result, recorded with its step and reason.

use serde::{Deserialize, Serialize};

use super::number;
use super::regulation::{Channel, Condition, Process, Regulation, Service, StepKind};
use crate::operators::centres::Centres;
use crate::operators::{ConfirmError, Operator, may_confirm};
use crate::pki::cms::CmsError;
use crate::pki::subject::SubjectInput;
use crate::pki::{Ca, IssueError, IssueRequest, csr, policy, status::rfc3339};
use crate::registry::{Bin, Iin, RegistryError, StateRegistry, names_match};
use crate::store::{Advance, ApplicationRecord, StepRecord, StoreError, now};

/// What the portal sends (DESIGN.md, "Application JSON (request)").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    pub service: String,
    pub applicant: ApplicantData,
    pub organization: Option<OrganizationData>,
    pub registration_centre: String,
    pub storage: String,
    pub requests: Option<CsrPair>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicantData {
    pub iin: String,
    pub surname: String,
    pub name: String,
    pub patronymic: Option<String>,
    pub email: Option<String>,
    pub region: Option<String>,
    pub locality: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationData {
    pub bin: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrPair {
    pub auth: String,
    pub sign: String,
}

/// What a signed request (P2, P3) carries as its content.
#[derive(Debug, Clone, Deserialize)]
pub struct SignedRequest {
    pub service: String,
    pub applicant: SignedApplicant,
    #[serde(default)]
    pub certificates: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SignedApplicant {
    pub iin: String,
}

/// What an operator files for an ID-card issuance (P4): the applicant in front of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreIssue {
    pub service: String,
    pub applicant: ApplicantData,
    pub organization: Option<OrganizationData>,
    #[serde(default)]
    pub storage: Option<String>,
}

/// What an operator states at the identity step (condition 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    pub confirmed: bool,
    #[serde(default)]
    pub documents: Vec<String>,
    pub reason: Option<String>,
}

/// Bad requests: nothing is recorded for these.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The request is not what the endpoint takes.
    #[error("{0}")]
    Invalid(String),
    /// No application with this number (or not the caller's).
    #[error("no application {0}")]
    NotFound(String),
    /// The application is not in the status this step needs.
    #[error("application {number} is {status}")]
    Status { number: String, status: String },
    /// The state registry did not answer; the request can be sent again.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Issue(#[from] IssueError),
}

impl WorkflowError {
    pub fn code(&self) -> &'static str {
        match self {
            WorkflowError::Invalid(_) => "request_invalid",
            WorkflowError::NotFound(_) => "application_not_found",
            WorkflowError::Status { .. } => "application_status_conflict",
            WorkflowError::Registry(_) => "registry_unavailable",
            WorkflowError::Store(_) => "internal",
            WorkflowError::Issue(e) => e.code(),
        }
    }
}

/// The application as the portal and the operator see it.
#[derive(Debug, Serialize)]
pub struct ApplicationView {
    pub number: String,
    pub service: String,
    pub channel: String,
    pub status: String,
    pub registration_centre: String,
    pub steps: Vec<StepView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub step: String,
    pub actor: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub deadline_seconds: Option<i64>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RefusalView {
    pub code: String,
    pub step: String,
    pub message: String,
}

fn kind_name(k: StepKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A step of `process` as a record: its actor and deadline from the regulation.
fn step(process: &Process, kind: StepKind, seq: i64, started: i64, done: Option<&str>) -> StepRecord {
    let s = process.steps.iter().find(|s| s.step == kind);
    let actor = s.map(|s| {
        serde_json::to_value(s.actor)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    });
    StepRecord {
        seq,
        step: kind_name(kind),
        actor: actor.unwrap_or_default(),
        started_at: started,
        finished_at: done.map(|_| now()),
        deadline_seconds: s.and_then(|s| s.deadline_seconds).map(|d| d as i64),
        outcome: done.map(str::to_string),
    }
}

/// Everything the workflow needs from the service.
pub struct Workflow<'a> {
    pub ca: &'a Ca,
    pub regulation: &'a Regulation,
    pub registry: &'a StateRegistry,
    pub centres: &'a Centres,
}

/// The refusal a failed condition gives, as a triple for the store.
fn refusal(c: Condition, kind: StepKind, message: String) -> (String, String, String) {
    (c.refusal_code().to_string(), kind_name(kind), message)
}

/// The profile of an applicant's AUTH certificate: legal-entity when an organisation is named.
fn auth_profile(ca: &Ca, legal: bool) -> Result<&crate::pki::profile::Profile, WorkflowError> {
    let name = if legal { "legal-auth" } else { "individual-auth" };
    ca.profiles
        .get(name)
        .ok_or_else(|| WorkflowError::Invalid(format!("no profile {name}")))
}

/// Checks an applicant as stated (IIN and BIN check digits, the subject the certificates would
/// carry) before anything is recorded; returns the IIN and the AUTH profile.
fn check_applicant<'c>(
    ca: &'c Ca,
    applicant: &ApplicantData,
    org: Option<&OrganizationData>,
) -> Result<(Iin, &'c crate::pki::profile::Profile), WorkflowError> {
    let iin = Iin::parse(&applicant.iin).map_err(|e| WorkflowError::Invalid(format!("IIN {e}")))?;
    if let Some(o) = org {
        Bin::parse(&o.bin).map_err(|e| WorkflowError::Invalid(format!("BIN {e}")))?;
    }
    let profile = auth_profile(ca, org.is_some())?;
    crate::pki::subject::build(profile, &subject(applicant, org), &ca.config.ca.country)
        .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
    Ok((iin, profile))
}

impl Workflow<'_> {
    /// P1 steps 1–5: the request, the registry check (condition 1), registration. Returns the
    /// application, refused or awaiting the applicant at a centre.
    pub async fn submit(&self, req: ApplicationRequest) -> Result<ApplicationView, WorkflowError> {
        if req.service != "issue" {
            return Err(WorkflowError::Invalid(format!(
                "service {:?}: this endpoint takes issue as JSON (reissue and revoke are signed requests)",
                req.service
            )));
        }
        self.register(req, Service::Issue, Ok(()), Vec::new()).await
    }

    /// P1 and P2 up to the operator: the request (P2: signed, condition 1 of P2 being the
    /// applicant's own signature, checked by the caller into `signature`), the registry check,
    /// registration; then P1 waits for the applicant at a centre, P2 for the operator's
    /// confirmation.
    async fn register(
        &self,
        req: ApplicationRequest,
        service: Service,
        signature: Result<(), String>,
        supersedes: Vec<String>,
    ) -> Result<ApplicationView, WorkflowError> {
        let process = self
            .regulation
            .process(service, Channel::Portal)
            .ok_or_else(|| WorkflowError::Invalid(format!("no {service:?} process in the regulation")))?;
        let (iin, profile) = check_applicant(self.ca, &req.applicant, req.organization.as_ref())?;
        if self.centres.centre(&req.registration_centre).is_none() {
            return Err(WorkflowError::Invalid(format!(
                "no registration centre {:?}",
                req.registration_centre
            )));
        }
        if !["file", "token", "id_card"].contains(&req.storage.as_str()) {
            return Err(WorkflowError::Invalid(format!(
                "storage {:?}: file, token or id_card",
                req.storage
            )));
        }
        let pair = req
            .requests
            .clone()
            .ok_or_else(|| WorkflowError::Invalid("requests {auth, sign} are required".into()))?;
        let mut key_problem = None;
        for (which, pem) in [("auth", &pair.auth), ("sign", &pair.sign)] {
            let parsed =
                csr::parse(pem.as_bytes()).map_err(|e| WorkflowError::Invalid(format!("requests.{which}: {e}")))?;
            if let Err(e) = policy::judge_key(&parsed.spki, profile)
                .map(|_| ())
                .map_err(|e| e.to_string())
                .and_then(|_| parsed.check_possession().map_err(|e| e.to_string()))
            {
                key_problem.get_or_insert(format!("requests.{which}: {e}"));
            }
        }

        let t = now();
        let number = number::new_number();
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
        let mut refused: Option<(String, String, String)> = None;
        if let Err(why) = signature {
            refused = Some(refusal(Condition::ApplicantSignatureValid, first, why));
        } else if let Some(p) = key_problem {
            refused = Some(("key_rejected".into(), kind_name(StepKind::Request), p));
        } else {
            // Condition 1: the applicant's data exists in the state database, and is theirs.
            let (outcome, refused_by_registry) = self.registry_check(&iin, &req.applicant).await?;
            steps.push(step(process, StepKind::RegistryCheck, 2, t, Some(outcome)));
            match refused_by_registry {
                Some(r) => refused = Some(r),
                None => {
                    steps.push(step(process, StepKind::Register, 3, t, Some("registered")));
                    steps.push(step(process, StepKind::NotifyNumber, 4, t, Some("shown")));
                    // P1: the applicant brings documents to a centre; P2: signed already, the
                    // operator confirms.
                    let next = if service == Service::Reissue {
                        StepKind::Confirmation
                    } else {
                        StepKind::Identity
                    };
                    steps.push(step(process, next, 5, t, None));
                }
            }
        }
        let applicant =
            serde_json::json!({"applicant": req.applicant, "organization": req.organization, "supersedes": supersedes})
                .to_string();
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: if service == Service::Reissue {
                "reissue"
            } else {
                "issue"
            }
            .into(),
            channel: "portal".into(),
            status: match (&refused, service) {
                (Some(_), _) => "refused",
                (None, Service::Reissue) => "awaiting_confirmation",
                (None, _) => "awaiting_documents",
            }
            .into(),
            iin: iin.as_str().to_string(),
            applicant,
            centre: req.registration_centre,
            storage: req.storage,
            auth_csr: Some(pair.auth),
            sign_csr: Some(pair.sign),
            refusal_code: refused.as_ref().map(|r| r.0.clone()),
            refusal_step: refused.as_ref().map(|r| r.1.clone()),
            refusal_message: refused.as_ref().map(|r| r.2.clone()),
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        if record.status == "awaiting_confirmation" {
            record.tbs = Some(to_be_signed(&record));
        }
        self.ca.store.add_application(&record, &steps).await?;
        self.view(&number).await
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
        if value["service"] == "reissue" {
            let req: ApplicationRequest =
                serde_json::from_value(value).map_err(|e| WorkflowError::Invalid(format!("signed content: {e}")))?;
            let (signature, supersedes) = match self.applicant_signature(cms, &req.applicant.iin).await? {
                Ok(signer_serial) => {
                    // The pair the signing certificate belongs to is the one superseded.
                    let pair = match self.ca.store.application_of_certificate(&signer_serial).await? {
                        Some(a) => a.auth_serial.into_iter().chain(a.sign_serial).collect(),
                        None => vec![signer_serial],
                    };
                    (Ok(()), pair)
                }
                Err(why) => (Err(why), Vec::new()),
            };
            return self.register(req, Service::Reissue, signature, supersedes).await;
        }
        let req: SignedRequest =
            serde_json::from_value(value).map_err(|e| WorkflowError::Invalid(format!("signed content: {e}")))?;
        let (process, iin, serials, reason) = self.revocation_request(&req, Channel::Portal).await?;
        let t = now();
        let verdict = self.applicant_signature(cms, iin.as_str()).await?;
        let number = number::new_number();
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: "revoke".into(),
            channel: "portal".into(),
            status: "completed".into(),
            iin: iin.as_str().to_string(),
            applicant: serde_json::json!({"certificates": serials, "reason": reason}).to_string(),
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        if let Err(why) = verdict.map(|_| ()) {
            let (code, failed_step, message) =
                refusal(Condition::ApplicantSignatureValid, StepKind::SignedRequest, why);
            record.status = "refused".into();
            record.refusal_code = Some(code);
            record.refusal_step = Some(failed_step);
            record.refusal_message = Some(message);
            self.ca
                .store
                .add_application(
                    &record,
                    &[step(process, StepKind::SignedRequest, 1, t, Some("invalid"))],
                )
                .await?;
            return self.view(&number).await;
        }
        self.revoke_listed(&serde_json::json!({"certificates": serials, "reason": reason}))
            .await?;
        let steps = [
            step(process, StepKind::SignedRequest, 1, t, Some("valid")),
            step(process, StepKind::Revoke, 2, t, Some("revoked")),
        ];
        self.ca.store.add_application(&record, &steps).await?;
        self.view(&number).await
    }

    fn process_of(&self, a: &ApplicationRecord) -> Result<&Process, WorkflowError> {
        self.regulation
            .processes
            .iter()
            .find(|p| p.id == a.process)
            .ok_or_else(|| WorkflowError::Invalid(format!("process {} is not in the regulation", a.process)))
    }

    /// Revokes the certificates an application names (`{"certificates": [...], "reason"}`).
    async fn revoke_listed(&self, data: &serde_json::Value) -> Result<(), WorkflowError> {
        let reason = data["reason"].as_str().unwrap_or("unspecified").to_string();
        for serial in data["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
        {
            let r = crate::pki::revocation::RevokeRequest {
                serial: serial.to_string(),
                reason: reason.clone(),
                at: None,
                invalidity_date: None,
            };
            self.ca
                .revoke(r)
                .await
                .map_err(|e| WorkflowError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// The certificates a request names, checked to be the applicant's; and the reason.
    async fn applicants_certificates(
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
            for serial in self.ca.store.certificates_of_holder(&holder).await? {
                if !self
                    .ca
                    .store
                    .revocation(&serial)
                    .await?
                    .is_some_and(|r| r.effective_at(t))
                {
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
            match self.ca.store.certificate(&serial).await? {
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
            .ok_or_else(|| WorkflowError::Invalid("no P4 in the regulation".into()))?;
        let (iin, _) = check_applicant(self.ca, &req.applicant, req.organization.as_ref())?;
        let t = now();
        let (outcome, refused) = self.registry_check(&iin, &req.applicant).await?;
        let mut steps = vec![
            step(process, StepKind::Identity, 1, t, Some("confirmed")),
            step(process, StepKind::Request, 2, t, Some("filled")),
            step(process, StepKind::RegistryCheck, 3, t, Some(outcome)),
        ];
        if refused.is_none() {
            steps.push(step(process, StepKind::CardKeys, 4, t, None));
        }
        let number = number::new_number();
        let record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: "issue".into(),
            channel: "service_centre".into(),
            status: if refused.is_some() { "refused" } else { "awaiting_documents" }.into(),
            iin: iin.as_str().to_string(),
            applicant: serde_json::json!({"applicant": req.applicant, "organization": req.organization, "filed_by": op.record.iin})
                .to_string(),
            centre: op.record.centre.clone(),
            storage: req.storage.unwrap_or_else(|| "id_card".into()),
            refusal_code: refused.as_ref().map(|r| r.0.clone()),
            refusal_step: refused.as_ref().map(|r| r.1.clone()),
            refusal_message: refused.as_ref().map(|r| r.2.clone()),
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        self.ca.store.add_application(&record, &steps).await?;
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
        let a = self.operators_application(op, number).await?;
        if a.process != "P4" || a.status != "awaiting_documents" {
            return Err(WorkflowError::Status {
                number: a.number,
                status: a.status,
            });
        }
        let process = self.process_of(&a)?;
        let data: serde_json::Value = serde_json::from_str(&a.applicant).unwrap_or_default();
        let profile = auth_profile(self.ca, data["organization"].is_object())?;
        for (which, pem) in [("auth", &pair.auth), ("sign", &pair.sign)] {
            let parsed = csr::parse(pem.as_bytes()).map_err(|e| WorkflowError::Invalid(format!("{which}: {e}")))?;
            policy::judge_key(&parsed.spki, profile).map_err(|e| WorkflowError::Invalid(format!("{which}: {e}")))?;
            parsed
                .check_possession()
                .map_err(|e| WorkflowError::Invalid(format!("{which}: {e}")))?;
        }
        let seq = self.ca.store.application_steps(&a.number).await?.len() as i64;
        let t = now();
        let mut with_csrs = a.clone();
        with_csrs.auth_csr = Some(pair.auth.clone());
        with_csrs.sign_csr = Some(pair.sign.clone());
        let advance = Advance {
            to: "awaiting_confirmation".into(),
            outcome: "made on the card".into(),
            steps: vec![
                step(process, StepKind::Register, seq + 1, t, Some("registered")),
                step(process, StepKind::Confirmation, seq + 2, t, None),
            ],
            tbs: Some(to_be_signed(&with_csrs)),
            auth_csr: Some(pair.auth),
            sign_csr: Some(pair.sign),
            ..Default::default()
        };
        self.advance(&a, "awaiting_documents", &advance).await
    }

    /// Condition 1 of P2 and P3: the request is signed, validly, with the applicant's own SIGN
    /// certificate. `Ok(Ok(signer serial))`, or `Ok(Err(why))` for a refusal.
    async fn applicant_signature(&self, cms: &[u8], iin: &str) -> Result<Result<String, String>, WorkflowError> {
        Ok(match self.ca.verify_cms(cms, None).await {
            Ok(v) if v.signer_holder == format!("IIN{iin}") => Ok(v.signer_serial),
            Ok(_) => Err("signed with another person's certificate".to_string()),
            Err(CmsError::Store(e)) => return Err(e.into()),
            Err(e) => Err(format!("{} ({})", e, e.code())),
        })
    }

    /// A revocation request (P3 at the portal, P5 at a centre): its process, the applicant, the
    /// applicant's certificates it names (or all in force) and the reason.
    async fn revocation_request(
        &self,
        req: &SignedRequest,
        channel: Channel,
    ) -> Result<(&Process, Iin, Vec<String>, String), WorkflowError> {
        if req.service != "revoke" {
            return Err(WorkflowError::Invalid(format!(
                "service {:?}: revoke was expected here",
                req.service
            )));
        }
        let process = self
            .regulation
            .process(Service::Revoke, channel)
            .ok_or_else(|| WorkflowError::Invalid(format!("no revocation process for {channel:?}")))?;
        let iin = Iin::parse(&req.applicant.iin).map_err(|e| WorkflowError::Invalid(format!("IIN {e}")))?;
        let (serials, reason) = self
            .applicants_certificates(&iin, &req.certificates, req.reason.as_deref())
            .await?;
        Ok((process, iin, serials, reason))
    }

    /// P5, revoke at a service centre: the operator fills the request for the applicant in
    /// front of them; identity, the operator's confirmation and the revocation follow.
    pub async fn create_at_centre(&self, op: &Operator, req: SignedRequest) -> Result<ApplicationView, WorkflowError> {
        let (process, iin, serials, reason) = self.revocation_request(&req, Channel::ServiceCentre).await?;
        let t = now();
        let number = number::new_number();
        let record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: "revoke".into(),
            channel: "service_centre".into(),
            status: "awaiting_documents".into(),
            iin: iin.as_str().to_string(),
            applicant: serde_json::json!({"certificates": serials, "reason": reason, "filed_by": op.record.iin})
                .to_string(),
            centre: op.record.centre.clone(),
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        self.ca
            .store
            .add_application(&record, &[step(process, StepKind::Identity, 1, t, None)])
            .await?;
        self.view(&number).await
    }

    /// Condition "the applicant's data exists": the person is in the state database, under the
    /// names given. `Ok(None)` when so, `Ok(Some(refusal))` when not; the step's outcome is
    /// `found` or `not_found`.
    async fn registry_check(
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

    /// Moves the application on from `from` and shows it; a conflict when it is no longer there
    /// (another request moved it first).
    async fn advance(
        &self,
        a: &ApplicationRecord,
        from: &str,
        change: &Advance,
    ) -> Result<ApplicationView, WorkflowError> {
        if !self.ca.store.advance_application(&a.number, from, change).await? {
            return Err(WorkflowError::Status {
                number: a.number.clone(),
                status: a.status.clone(),
            });
        }
        self.view(&a.number).await
    }

    /// The application with its steps, or `NotFound`.
    pub async fn view(&self, number: &str) -> Result<ApplicationView, WorkflowError> {
        let a = self
            .ca
            .store
            .application(number)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        let steps = self.ca.store.application_steps(number).await?;
        Ok(ApplicationView {
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
            refusal: a.refusal_code.map(|code| RefusalView {
                code,
                step: a.refusal_step.unwrap_or_default(),
                message: a.refusal_message.unwrap_or_default(),
            }),
            receipt: a.receipt,
            certificates: a.auth_serial.zip(a.sign_serial).map(|(x, y)| vec![x, y]),
        })
    }

    /// The application for its applicant: another IIN finds nothing (404, not 403: the number
    /// alone tells nobody anything).
    pub async fn view_for(&self, number: &str, iin: &str) -> Result<ApplicationView, WorkflowError> {
        let canonical = number::parse(number).ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        let a = self
            .ca
            .store
            .application(&canonical)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        if a.iin != iin {
            return Err(WorkflowError::NotFound(number.into()));
        }
        self.view(&canonical).await
    }

    /// The issued pair and the chain, PEM, for the applicant.
    pub async fn certificates_for(&self, number: &str, iin: &str) -> Result<String, WorkflowError> {
        let v = self.view_for(number, iin).await?;
        let serials = v.certificates.ok_or_else(|| WorkflowError::Status {
            number: v.number.clone(),
            status: v.status,
        })?;
        let mut pem = String::new();
        for s in serials {
            if let Some(der) = self.ca.store.certificate(&s).await?.and_then(|c| c.der) {
                pem.push_str(&crate::pki::pem("CERTIFICATE", &der));
            }
        }
        pem.push_str(&self.ca.issuing.cert_pem());
        pem.push_str(&self.ca.root.cert_pem());
        Ok(pem)
    }

    pub(crate) async fn operators_application(
        &self,
        op: &Operator,
        number: &str,
    ) -> Result<ApplicationRecord, WorkflowError> {
        let canonical = number::parse(number).ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        let a = self
            .ca
            .store
            .application(&canonical)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        // Another centre's application does not exist for this operator.
        if a.centre != op.record.centre {
            return Err(WorkflowError::NotFound(number.into()));
        }
        Ok(a)
    }

    /// The operator's centre's queue.
    pub async fn queue(&self, op: &Operator, status: &str) -> Result<Vec<ApplicationView>, WorkflowError> {
        let mut out = Vec::new();
        for a in self.ca.store.centre_applications(&op.record.centre, status).await? {
            out.push(self.view(&a.number).await?);
        }
        Ok(out)
    }

    /// Condition 2: the operator checked the documents and the applicant's identity. Confirmed:
    /// the receipt is given and the to-be-signed document made; not confirmed: refused.
    pub async fn identity(
        &self,
        op: &Operator,
        number: &str,
        req: IdentityRequest,
    ) -> Result<ApplicationView, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        let process = self.process_of(&a)?;
        let seq = self.ca.store.application_steps(&a.number).await?.len() as i64;
        let t = now();
        let advance = if req.confirmed {
            let receipt = format!("R-{}", &a.number);
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
                to: "awaiting_confirmation".into(),
                outcome: format!(
                    "confirmed by {}; documents: {}",
                    op.record.iin,
                    req.documents.join(", ")
                ),
                steps,
                tbs: Some(to_be_signed(&a)),
                receipt: Some(receipt),
                ..Default::default()
            }
        } else {
            Advance {
                to: "refused".into(),
                outcome: "not confirmed".into(),
                refusal: Some(refusal(
                    Condition::IdentityConfirmed,
                    StepKind::Identity,
                    req.reason
                        .unwrap_or_else(|| "the documents or the applicant's identity did not check out".into()),
                )),
                ..Default::default()
            }
        };
        self.advance(&a, "awaiting_documents", &advance).await
    }

    /// The exact bytes the operator signs.
    pub async fn to_be_signed(&self, op: &Operator, number: &str) -> Result<String, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        a.tbs
            .clone()
            .filter(|_| a.status == "awaiting_confirmation")
            .ok_or(WorkflowError::Status {
                number: a.number,
                status: a.status,
            })
    }

    /// Condition 3: the operator's signature over the to-be-signed bytes. Valid: the pair is
    /// issued and the application completes; invalid: refused. Takes effect once.
    pub async fn confirm(&self, op: &Operator, number: &str, cms: &[u8]) -> Result<ApplicationView, WorkflowError> {
        let a = self.operators_application(op, number).await?;
        let tbs = a.tbs.clone().filter(|_| a.status == "awaiting_confirmation");
        let Some(tbs) = tbs else {
            return Err(WorkflowError::Status {
                number: a.number,
                status: a.status,
            });
        };
        let process = self.process_of(&a)?;
        let seq = self.ca.store.application_steps(&a.number).await?.len() as i64;
        let t = now();
        let verdict: Result<(), String> = match self.ca.verify_cms(cms, Some(tbs.as_bytes())).await {
            Ok(v) if v.content != tbs.as_bytes() => Err(CmsError::ContentMismatch.code().to_string()),
            Ok(v) => may_confirm(op, &v, &a.centre).map_err(|e: ConfirmError| e.code().to_string()),
            Err(CmsError::Store(e)) => return Err(e.into()),
            Err(e) => Err(e.code().to_string()),
        };
        if let Err(why) = verdict {
            let refused = Advance {
                to: "refused".into(),
                outcome: format!("signature refused: {why}"),
                steps: vec![step(
                    process,
                    StepKind::OperatorSignatureCheck,
                    seq + 1,
                    t,
                    Some("invalid"),
                )],
                refusal: Some(refusal(
                    Condition::OperatorSignatureValid,
                    StepKind::OperatorSignatureCheck,
                    why,
                )),
                ..Default::default()
            };
            return self.advance(&a, "awaiting_confirmation", &refused).await;
        }
        // The single transition that makes a confirmation count: a replay finds it done.
        // The result: revocation; issuance; or, on an ID card, the certificates to write onto it.
        let result_step = match a.service.as_str() {
            "revoke" => StepKind::Revoke,
            _ if process.steps.iter().any(|s| s.step == StepKind::Issue) => StepKind::Issue,
            _ => StepKind::WriteCard,
        };
        let issuing = Advance {
            to: "issuing".into(),
            outcome: "signed".into(),
            confirmed_by: Some(op.record.iin.clone()),
            steps: vec![
                step(process, StepKind::OperatorSignatureCheck, seq + 1, t, Some("valid")),
                step(process, result_step, seq + 2, t, None),
            ],
            ..Default::default()
        };
        if !self
            .ca
            .store
            .advance_application(&a.number, "awaiting_confirmation", &issuing)
            .await?
        {
            return Err(WorkflowError::Status {
                number: a.number,
                status: "issuing".into(),
            });
        }
        let data: serde_json::Value = serde_json::from_str(&a.applicant).unwrap_or_default();
        if a.service == "revoke" {
            self.revoke_listed(&data).await?;
            let done = Advance {
                to: "completed".into(),
                outcome: "revoked".into(),
                ..Default::default()
            };
            self.ca.store.advance_application(&a.number, "issuing", &done).await?;
            return self.view(&a.number).await;
        }
        let applicant: ApplicantData =
            serde_json::from_value(data["applicant"].clone()).map_err(|e| WorkflowError::Invalid(e.to_string()))?;
        let org: Option<OrganizationData> = serde_json::from_value(data["organization"].clone()).unwrap_or(None);
        let (auth_profile, sign_profile) = if org.is_some() {
            ("legal-auth", "legal-sign")
        } else {
            ("individual-auth", "individual-sign")
        };
        let subject = subject(&applicant, org.as_ref());
        let issue = |profile: &str, csr: &Option<String>| IssueRequest {
            profile: profile.into(),
            csr: csr.clone().unwrap_or_default().into_bytes(),
            subject: subject.clone(),
            application: Some(a.number.clone()),
        };
        let auth = self.ca.issue(issue(auth_profile, &a.auth_csr)).await?;
        let sign = self.ca.issue(issue(sign_profile, &a.sign_csr)).await?;
        // A reissue supersedes the pair whose SIGN key signed the request, once the new one exists.
        let superseded: Vec<&str> = data["supersedes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        if !superseded.is_empty() {
            self.revoke_listed(&serde_json::json!({"certificates": superseded, "reason": "superseded"}))
                .await?;
        }
        let done = Advance {
            to: "completed".into(),
            outcome: "issued".into(),
            auth_serial: Some(auth.serial),
            sign_serial: Some(sign.serial),
            ..Default::default()
        };
        self.ca.store.advance_application(&a.number, "issuing", &done).await?;
        self.view(&a.number).await
    }
}

fn subject(a: &ApplicantData, org: Option<&OrganizationData>) -> SubjectInput {
    SubjectInput {
        iin: Some(a.iin.clone()),
        surname: Some(a.surname.clone()),
        name: Some(a.name.clone()),
        patronymic: a.patronymic.clone(),
        email: a.email.clone(),
        bin: org.map(|o| o.bin.clone()),
        org: org.map(|o| o.name.clone()),
        role: org.map(|o| o.role.clone()),
        ..Default::default()
    }
}

/// The document an operator signs to confirm: what is confirmed, for whom, which keys, and a
/// nonce so that no two confirmations are alike.
fn to_be_signed(a: &ApplicationRecord) -> String {
    if a.service == "revoke" {
        let data: serde_json::Value = serde_json::from_str(&a.applicant).unwrap_or_default();
        let mut nonce = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
        let serials: Vec<&str> = data["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect();
        return format!(
            "nca-confirmation v1\napplication: {}\napplicant: IIN{}\ndecision: revoke\ncertificates: {}\nreason: {}\nnonce: {}\n",
            a.number,
            a.iin,
            serials.join(" "),
            data["reason"].as_str().unwrap_or("unspecified"),
            hex::encode(nonce)
        );
    }
    let sha = |s: &Option<String>| {
        hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            s.as_deref().unwrap_or("").as_bytes(),
        ))
    };
    let mut nonce = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
    format!(
        "nca-confirmation v1\napplication: {}\napplicant: IIN{}\nauth-request-sha256: {}\nsign-request-sha256: {}\ndecision: {}\nnonce: {}\n",
        a.number,
        a.iin,
        sha(&a.auth_csr),
        sha(&a.sign_csr),
        a.service,
        hex::encode(nonce)
    )
}
