//! Applications under the regulation's processes. This stage runs P1 (issue via the portal):
//! the request and the registry check at submission, the operator's identity step with its
//! receipt, the to-be-signed document, the operator's confirmation (condition 3), issuance of
//! the AUTH and SIGN pair, completion. A refusal is a result, recorded with its step and reason.

use serde::{Deserialize, Serialize};

use super::model::{Actor, Intent};
use super::number;
use super::regulation::{Channel, Condition, Process, Regulation, Service, StepKind};
use crate::operators::centres::Centres;
use crate::operators::{ConfirmError, Operator, may_confirm};
use crate::outbox::letters::{self, Kind, Letter};
use crate::pki::cms::CmsError;
use crate::pki::subject::SubjectInput;
use crate::pki::{Ca, csr, policy, status::rfc3339};
use crate::registry::{Bin, Iin, RegistryError, StateRegistry, names_match};
use crate::store::{Advance, ApplicationRecord, OutboxMessage, StepRecord, StoreError, now};

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
    pub applicant: CentreApplicant,
    pub organization: Option<OrganizationData>,
    #[serde(default)]
    pub storage: Option<String>,
}

/// The applicant as the operator files them in P4. The IIN is read from the ID card the
/// operator holds; names left out are filled from the state database (step 4 asks it anyway),
/// names given are checked against it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreApplicant {
    pub iin: String,
    pub surname: Option<String>,
    pub name: Option<String>,
    pub patronymic: Option<String>,
    pub email: Option<String>,
    pub region: Option<String>,
    pub locality: Option<String>,
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

/// A field of a request that is wrong, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    /// Its path in the request JSON, e.g. `applicant.iin`, `requests.auth`.
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// The field a serde error names (a missing or unknown field), else the whole body.
    pub fn from_json(e: &serde_json::Error) -> FieldError {
        let text = e.to_string();
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| text.split_once(p).and_then(|(_, rest)| rest.split_once('`')))
            .map(|(name, _)| name.to_string());
        FieldError {
            field: named.unwrap_or_else(|| "body".into()),
            code: "request_invalid",
            message: text,
        }
    }
}

/// Why a step of the workflow did not happen, by whose fault. A refusal under the regulation is
/// not among them: it is a result, recorded and answered with the application.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The client's mistake: the request is not what the endpoint takes. Nothing is recorded.
    #[error("{0}")]
    Invalid(String),
    /// The client's mistake: fields of the request are wrong, each named with its reason.
    #[error("{}", .0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldError>),
    /// Nothing to act on: no application with this number (or not the caller's).
    #[error("no application {0}")]
    NotFound(String),
    /// A conflict: the application is not in the status this step needs (another request moved
    /// it first, or the step is not due yet).
    #[error("application {number} is {status}")]
    Status { number: String, status: String },
    /// Another system's fault: the state registry did not answer; the request can be sent again.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The service's fault: the database failed. What was recorded before it stays, and the
    /// driver finishes a recorded result step; the client is told nothing of the cause.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service's fault: its configuration or its own data is not what the code relies on (a
    /// process missing from the regulation, a profile missing, an application's data unreadable).
    #[error("{0}")]
    Internal(String),
}

impl WorkflowError {
    pub fn code(&self) -> &'static str {
        match self {
            WorkflowError::Invalid(_) | WorkflowError::Fields(_) => "request_invalid",
            WorkflowError::NotFound(_) => "application_not_found",
            WorkflowError::Status { .. } => "application_status_conflict",
            WorkflowError::Registry(_) => "registry_unavailable",
            WorkflowError::Store(_) | WorkflowError::Internal(_) => "internal",
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
    /// Why the application waits, while it does (`key_store_unavailable` in `awaiting_key_store`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
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

pub(super) fn kind_name(k: StepKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A step of `process` as a record: its actor and deadline from the regulation.
pub(super) fn step(process: &Process, kind: StepKind, seq: i64, started: i64, done: Option<&str>) -> StepRecord {
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
    /// The caller's language (`kk`, `ru`, `en`) when they said one: refusal messages are given
    /// in it, and the applicant's letters written in it.
    pub lang: Option<&'static str>,
}

/// The step a change leaves the application at: the open one, or the last one done.
fn current_step(steps: &[StepRecord]) -> Option<&str> {
    steps
        .iter()
        .rev()
        .find(|s| s.finished_at.is_none())
        .or(steps.last())
        .map(|s| s.step.as_str())
}

/// Where the applicant's letters go, and in which language, from what the application keeps.
fn contact(a: &ApplicationRecord) -> Option<(String, String)> {
    let data: serde_json::Value = serde_json::from_str(&a.applicant).unwrap_or_default();
    let email = data["applicant"]["email"]
        .as_str()
        .or(data["email"].as_str())
        .filter(|e| !e.trim().is_empty())?;
    Some((email.to_string(), data["lang"].as_str().unwrap_or("kk").to_string()))
}

/// The refusal a failed condition gives, as a triple for the store.
fn refusal(c: Condition, kind: StepKind, message: String) -> (String, String, String) {
    (c.refusal_code().to_string(), kind_name(kind), message)
}

/// P1 and P2 after the registry's answer (from step `seq`): refused there, or registered with
/// the number given, then waiting for the applicant at a centre (P1) or for the operator's
/// confirmation (P2, signed already). The steps, and the status they leave.
fn after_registry(
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

/// The profile of an applicant's AUTH certificate: legal-entity when an organisation is named.
fn auth_profile(ca: &Ca, legal: bool) -> Result<&crate::pki::profile::Profile, WorkflowError> {
    let name = if legal { "legal-auth" } else { "individual-auth" };
    ca.profiles
        .get(name)
        .ok_or_else(|| WorkflowError::Internal(format!("no profile {name}")))
}

/// Checks an applicant as stated (IIN and BIN check digits, the subject the certificates would
/// carry) before anything is recorded; returns the IIN and the AUTH profile.
fn check_applicant<'c>(
    ca: &'c Ca,
    applicant: &ApplicantData,
    org: Option<&OrganizationData>,
) -> Result<(Iin, &'c crate::pki::profile::Profile), WorkflowError> {
    let mut wrong = Vec::new();
    let iin = Iin::parse(&applicant.iin)
        .map_err(|e| wrong.push(FieldError::new("applicant.iin", "iin_invalid", format!("IIN {e}"))))
        .ok();
    if let Some(o) = org
        && let Err(e) = Bin::parse(&o.bin)
    {
        wrong.push(FieldError::new("organization.bin", "bin_invalid", format!("BIN {e}")));
    }
    if let Some(email) = applicant.email.as_deref().filter(|e| !e.is_empty())
        && email.parse::<lettre::message::Mailbox>().is_err()
    {
        wrong.push(FieldError::new(
            "applicant.email",
            "email_invalid",
            "not an e-mail address",
        ));
    }
    let profile = auth_profile(ca, org.is_some())?;
    if wrong.is_empty()
        && let Err(e) = crate::pki::subject::build(profile, &subject(applicant, org), &ca.config.ca.country)
    {
        wrong.push(FieldError::new("applicant", "subject_invalid", e.to_string()));
    }
    match iin {
        Some(iin) if wrong.is_empty() => Ok((iin, profile)),
        _ => Err(WorkflowError::Fields(wrong)),
    }
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
        let actor = Actor::applicant(&req.applicant.iin, None);
        self.register(req, Service::Issue, Ok(()), Vec::new(), actor).await
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
        actor: Actor,
    ) -> Result<ApplicationView, WorkflowError> {
        let process = self
            .regulation
            .process(service, Channel::Portal)
            .ok_or_else(|| WorkflowError::Internal(format!("no {service:?} process in the regulation")))?;
        // Every wrong field is named at once, so a form can mark them all.
        let mut wrong = Vec::new();
        let checked = check_applicant(self.ca, &req.applicant, req.organization.as_ref());
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
        let mut status = "awaiting_registry";
        if let Err(why) = signature {
            refused = Some(refusal(Condition::ApplicantSignatureValid, first, why));
        } else if let Some(p) = key_problem {
            refused = Some(("key_rejected".into(), kind_name(StepKind::Request), p));
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
            status = "refused";
        }
        let applicant =
            serde_json::json!({"applicant": req.applicant, "organization": req.organization, "supersedes": supersedes, "lang": self.lang})
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
            status: status.into(),
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
        let letter = if ["refused", "awaiting_registry"].contains(&record.status.as_str()) {
            None
        } else {
            self.number_letter(&record)
        };
        self.record(&mut record, &steps, letter, &actor).await?;
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
            let (signature, supersedes, actor) = match self.applicant_signature(cms, &req.applicant.iin).await? {
                Ok(signer_serial) => {
                    // The pair the signing certificate belongs to is the one superseded.
                    let pair = match self.ca.store.application_of_certificate(&signer_serial).await? {
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
        let number = number::new_number();
        // Condition 1 before anything of the applicant's is looked at: a request not signed by
        // them gets the same refusal whatever their IIN holds.
        let signer = match self.applicant_signature(cms, iin.as_str()).await? {
            Ok(signer) => signer,
            Err(why) => {
                let (code, failed_step, message) =
                    refusal(Condition::ApplicantSignatureValid, StepKind::SignedRequest, why);
                let mut record = ApplicationRecord {
                    number: number.clone(),
                    process: process.id.clone(),
                    service: "revoke".into(),
                    channel: "portal".into(),
                    status: "refused".into(),
                    iin: iin.as_str().to_string(),
                    applicant: serde_json::json!({"certificates": [], "lang": self.lang}).to_string(),
                    refusal_code: Some(code),
                    refusal_step: Some(failed_step),
                    refusal_message: Some(message),
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
            service: "revoke".into(),
            channel: "portal".into(),
            status: "issuing".into(),
            iin: iin.as_str().to_string(),
            applicant: serde_json::json!({"certificates": serials, "reason": reason, "email": email, "lang": lang})
                .to_string(),
            created_at: t,
            updated_at: t,
            intent: Some(Intent::Revoke.as_str().into()),
            intent_until: Some(t + self.ca.config.workflow.lease_seconds),
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

    pub(super) fn process_of(&self, a: &ApplicationRecord) -> Result<&Process, WorkflowError> {
        self.regulation
            .processes
            .iter()
            .find(|p| p.id == a.process)
            .ok_or_else(|| WorkflowError::Internal(format!("process {} is not in the regulation", a.process)))
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
            .ok_or_else(|| WorkflowError::Internal("no P4 in the regulation".into()))?;
        let applicant = self.complete_from_registry(req.applicant).await?;
        let iin = if applicant.surname.is_empty() || applicant.name.is_empty() {
            // Names neither given nor in the state database: nothing to build a subject from,
            // and the registry check below refuses the applicant.
            Iin::parse(&applicant.iin).map_err(|e| WorkflowError::Invalid(format!("IIN {e}")))?
        } else {
            check_applicant(self.ca, &applicant, req.organization.as_ref())?.0
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
                    "refused"
                } else {
                    "awaiting_documents"
                };
                (refused, status)
            }
            Err(WorkflowError::Registry(e)) => {
                tracing::warn!("state registry: {e}; the application waits for it");
                steps.push(step(process, StepKind::RegistryCheck, 3, t, None));
                (None, "awaiting_registry")
            }
            Err(e) => return Err(e),
        };
        let number = number::new_number();
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: "issue".into(),
            channel: "service_centre".into(),
            status: status.into(),
            iin: iin.as_str().to_string(),
            applicant: serde_json::json!({"applicant": applicant, "organization": req.organization, "filed_by": op.record.iin, "lang": self.lang})
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
        self.record(&mut record, &steps, None, &Actor::operator(op)).await?;
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
        self.advance(&a, "awaiting_documents", advance, "confirmation", Actor::operator(op))
            .await
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

    /// A revocation request's process (P3 at the portal, P5 at a centre) and applicant, from
    /// what it says alone: nothing of the applicant's is looked at here.
    fn revocation_process(&self, req: &SignedRequest, channel: Channel) -> Result<(&Process, Iin), WorkflowError> {
        if req.service != "revoke" {
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

    /// P5, revoke at a service centre: the operator fills the request for the applicant in
    /// front of them; identity, the operator's confirmation and the revocation follow.
    pub async fn create_at_centre(&self, op: &Operator, req: SignedRequest) -> Result<ApplicationView, WorkflowError> {
        let (process, iin) = self.revocation_process(&req, Channel::ServiceCentre)?;
        let (serials, reason) = self
            .applicants_certificates(&iin, &req.certificates, req.reason.as_deref())
            .await?;
        let t = now();
        let number = number::new_number();
        let (email, lang) = self.holder_contact(&serials).await?;
        let mut record = ApplicationRecord {
            number: number.clone(),
            process: process.id.clone(),
            service: "revoke".into(),
            channel: "service_centre".into(),
            status: "awaiting_documents".into(),
            iin: iin.as_str().to_string(),
            applicant: serde_json::json!({"certificates": serials, "reason": reason, "filed_by": op.record.iin, "email": email, "lang": lang})
                .to_string(),
            centre: op.record.centre.clone(),
            created_at: t,
            updated_at: t,
            ..Default::default()
        };
        let steps = [step(process, StepKind::Identity, 1, t, None)];
        self.record(&mut record, &steps, None, &Actor::operator(op)).await?;
        self.view(&number).await
    }

    /// The P4 applicant with the names the operator left out taken from the state database.
    /// A person the database does not know keeps empty names: the registry check that follows
    /// refuses them with `registry_not_found`.
    async fn complete_from_registry(&self, a: CentreApplicant) -> Result<ApplicantData, WorkflowError> {
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
    pub(super) async fn advance(
        &self,
        a: &ApplicationRecord,
        from: &str,
        change: Advance,
        at_step: &str,
        actor: Actor,
    ) -> Result<ApplicationView, WorkflowError> {
        if !self.move_on(a, from, change, at_step, None, actor).await? {
            return Err(WorkflowError::Status {
                number: a.number.clone(),
                status: a.status.clone(),
            });
        }
        self.view(&a.number).await
    }

    /// Records a new application with what it tells the monitoring system and the applicant. A
    /// refused one keeps the digests of the requests it was sent, not the requests.
    async fn record(
        &self,
        a: &mut ApplicationRecord,
        steps: &[StepRecord],
        letter: Option<Letter>,
        actor: &Actor,
    ) -> Result<(), WorkflowError> {
        if a.status == "refused" {
            a.csr_digests = csr_digests(a);
            a.auth_csr = None;
            a.sign_csr = None;
        }
        let refusal = a.refusal_code.clone().map(|c| {
            (
                c,
                a.refusal_step.clone().unwrap_or_default(),
                a.refusal_message.clone().unwrap_or_default(),
            )
        });
        let messages = self.notices(
            a,
            &a.status,
            current_step(steps).unwrap_or(""),
            refusal.as_ref(),
            letter,
            actor,
        );
        self.ca
            .store
            .add_application(a, steps, &messages, &actor.audit())
            .await?;
        Ok(())
    }

    /// Moves `a` on from `from` with what the change tells others; `at_step` names the step when
    /// the change opens none. False, changing nothing, when `a` is no longer in `from`. A
    /// refusal drops the request bodies and keeps their digests.
    pub(super) async fn move_on(
        &self,
        a: &ApplicationRecord,
        from: &str,
        mut change: Advance,
        at_step: &str,
        letter: Option<Letter>,
        actor: Actor,
    ) -> Result<bool, WorkflowError> {
        if change.to == "refused" {
            change.csr_digests = csr_digests(a);
        }
        change.actor = actor.audit();
        let step = current_step(&change.steps).unwrap_or(at_step).to_string();
        change.messages = self.notices(a, &change.to, &step, change.refusal.as_ref(), letter, &actor);
        Ok(self.ca.store.advance_application(&a.number, from, &change).await?)
    }

    /// The monitoring message of a change of `a` to `status`, and the letter if there is one.
    fn notices(
        &self,
        a: &ApplicationRecord,
        status: &str,
        step: &str,
        refusal: Option<&(String, String, String)>,
        letter: Option<Letter>,
        actor: &Actor,
    ) -> Vec<OutboxMessage> {
        let service_id = self.process_of(a).map(|p| p.service_id()).unwrap_or_default();
        let mut out = vec![crate::outbox::status_message(
            &self.ca.config,
            &service_id,
            a,
            status,
            step,
            refusal,
            &actor.monitoring(),
        )];
        out.extend(letter.map(|l| letters::message(&a.number, &l)));
        out
    }

    /// The applicant's letter of this kind, when they gave an address.
    pub(super) fn letter(&self, a: &ApplicationRecord, kind: Kind) -> Option<Letter> {
        let (to, lang) = contact(a)?;
        Some(letters::compose(&to, &lang, &a.number, &kind))
    }

    /// The address and language the holder of these certificates gave when they applied.
    async fn holder_contact(&self, serials: &[String]) -> Result<(Option<String>, Option<String>), WorkflowError> {
        for serial in serials {
            if let Some(a) = self.ca.store.application_of_certificate(serial).await?
                && let Some((email, lang)) = contact(&a)
            {
                return Ok((Some(email), Some(self.lang.map(str::to_string).unwrap_or(lang))));
            }
        }
        Ok((None, self.lang.map(str::to_string)))
    }

    /// The order-number letter (P1 and P2 step "notify_number").
    fn number_letter(&self, a: &ApplicationRecord) -> Option<Letter> {
        let (_, lang) = contact(a)?;
        let centre = self
            .centres
            .centre(&a.centre)
            .map(|c| c.names.get(&lang).to_string())
            .unwrap_or_else(|| a.centre.clone());
        let status_url = format!("{}/", self.ca.config.base_url.trim_end_matches('/'));
        self.letter(
            a,
            Kind::OrderNumber {
                centre: &centre,
                status_url: &status_url,
            },
        )
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
                message: super::refusals::message(&code, a.refusal_message.as_deref().unwrap_or(""), self.lang),
                code,
                step: a.refusal_step.unwrap_or_default(),
            }),
            receipt: a.receipt,
            certificates: a.auth_serial.zip(a.sign_serial).map(|(x, y)| vec![x, y]),
            waiting: a.waiting,
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
        self.advance(&a, "awaiting_documents", advance, "identity", Actor::operator(op))
            .await
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
            return self
                .advance(
                    &a,
                    "awaiting_confirmation",
                    refused,
                    "operator_signature_check",
                    Actor::operator(op),
                )
                .await;
        }
        // The single transition that makes a confirmation count: a replay finds it done. It
        // records the result step as an intent (revocation; issuance; or, on an ID card, the
        // certificates to write onto it), which is then done and recorded done; if this worker
        // fails in between, the driver finishes it.
        let (intent, result_step) = match a.service.as_str() {
            "revoke" => (Intent::Revoke, StepKind::Revoke),
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
        let until = now() + self.ca.config.workflow.lease_seconds;
        let issuing = Advance {
            to: "issuing".into(),
            outcome: "signed".into(),
            confirmed_by: Some(op.record.iin.clone()),
            steps,
            intent: Some(intent.as_str().into()),
            intent_until: Some(until),
            ..Default::default()
        };
        if !self
            .move_on(&a, "awaiting_confirmation", issuing, "", None, Actor::operator(op))
            .await?
        {
            return Err(WorkflowError::Status {
                number: a.number,
                status: "issuing".into(),
            });
        }
        let claimed = ApplicationRecord {
            status: "issuing".into(),
            confirmed_by: Some(op.record.iin.clone()),
            intent: Some(intent.as_str().into()),
            intent_until: Some(until),
            ..a
        };
        self.finish(&claimed, false).await?;
        self.view(&claimed.number).await
    }
}

/// The SHA-256 and size of each request an application holds, JSON; none when it holds none.
fn csr_digests(a: &ApplicationRecord) -> Option<String> {
    let digest = |pem: &Option<String>| {
        pem.as_deref().filter(|p| !p.is_empty()).map(|p| {
            serde_json::json!({
                "sha256": hex::encode(ring::digest::digest(&ring::digest::SHA256, p.as_bytes())),
                "bytes": p.len(),
            })
        })
    };
    let (auth, sign) = (digest(&a.auth_csr), digest(&a.sign_csr));
    (auth.is_some() || sign.is_some()).then(|| serde_json::json!({"auth": auth, "sign": sign}).to_string())
}

pub(super) fn subject(a: &ApplicantData, org: Option<&OrganizationData>) -> SubjectInput {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::regulation::EMBEDDED;

    fn regulation() -> Regulation {
        Regulation::parse(EMBEDDED).unwrap()
    }

    #[test]
    fn after_the_registry_p1_waits_for_the_centre_p2_for_the_operator_and_a_refusal_ends_it() {
        let r = regulation();
        let p1 = r.process(Service::Issue, Channel::Portal).unwrap();
        let (steps, status) = after_registry(p1, Service::Issue, 3, 100, false);
        assert_eq!(status, "awaiting_documents");
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(names, ["register", "notify_number", "identity"]);
        assert_eq!(current_step(&steps), Some("identity"));
        assert!(steps[2].finished_at.is_none() && steps[0].finished_at.is_some());
        assert_eq!(steps.iter().map(|s| s.seq).collect::<Vec<_>>(), [3, 4, 5]);

        let p2 = r.process(Service::Reissue, Channel::Portal).unwrap();
        let (steps, status) = after_registry(p2, Service::Reissue, 3, 100, false);
        assert_eq!(
            (status, current_step(&steps)),
            ("awaiting_confirmation", Some("confirmation"))
        );

        let (steps, status) = after_registry(p1, Service::Issue, 3, 100, true);
        assert_eq!((status, steps.len()), ("refused", 0));
    }

    #[test]
    fn a_refusal_keeps_the_digests_and_sizes_of_the_requests_not_the_requests() {
        let a = ApplicationRecord {
            auth_csr: Some("AUTH REQUEST".into()),
            sign_csr: Some("SIGN".into()),
            ..Default::default()
        };
        let d: serde_json::Value = serde_json::from_str(&csr_digests(&a).unwrap()).unwrap();
        assert_eq!(d["auth"]["bytes"], 12);
        assert_eq!(d["sign"]["bytes"], 4);
        assert_eq!(
            d["sign"]["sha256"],
            hex::encode(ring::digest::digest(&ring::digest::SHA256, b"SIGN"))
        );
        assert!(!d.to_string().contains("AUTH REQUEST"));
        // A revocation has no requests: nothing to keep.
        assert_eq!(csr_digests(&ApplicationRecord::default()), None);
    }

    #[test]
    fn every_error_says_whose_fault_it_is_by_its_code() {
        assert_eq!(WorkflowError::Invalid("x".into()).code(), "request_invalid");
        assert_eq!(WorkflowError::NotFound("x".into()).code(), "application_not_found");
        assert_eq!(
            WorkflowError::Status {
                number: "n".into(),
                status: "issuing".into()
            }
            .code(),
            "application_status_conflict"
        );
        // The service's own faults never carry their cause in the code.
        assert_eq!(WorkflowError::Store(StoreError::SerialTaken).code(), "internal");
        assert_eq!(WorkflowError::Internal("no P4".into()).code(), "internal");
    }
}
