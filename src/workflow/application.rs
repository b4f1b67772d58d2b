//! Applications under the regulation's processes: P1 and P2 from the request and the registry
//! check to registration, P3's signed revocation, P4 and P5 filed at a centre, the operator's
//! identity step with its receipt, the to-be-signed document and the operator's confirmation
//! (condition 3), which records the result step as an intent ([`super::outcome`] does it). A
//! refusal is a result, recorded with its step and reason. The requests are [`super::request`],
//! what is shown of an application [`super::views`].

use super::regulation::{Process, Regulation, StepKind};
pub use super::request::{
    ApplicantData, ApplicationRequest, CentreApplicant, CentreIssue, CentreRequest, CsrPair, FieldError,
    IdentityRequest, OrganizationData, SignedApplicant, SignedRequest, Submission,
};
pub use super::views::{ApplicationView, RefusalView, StepView};
use crate::config::Config;
use crate::ids::number;
use crate::ids::{Bin, Iin};
use crate::model::{Actor, Refusal, Status};
use crate::operators::Operator;
use crate::operators::centres::Centres;
use crate::outbox::letters::{self, Kind, Letter};
use crate::pki::Ca;
use crate::pki::subject::SubjectInput;
use crate::registry::{RegistryError, StateRegistry};
use crate::store::{Advance, ApplicationRecord, OutboxMessage, StepRecord, Store, StoreError, now};

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
    Status { number: String, status: Status },
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

/// The operating system's random number generator failed: no number, no nonce; an internal
/// fault (500, the cause in the log), never a predictable value.
pub(super) fn no_randomness(_: aws_lc_rs::error::Unspecified) -> WorkflowError {
    WorkflowError::Internal("the operating system's random number generator failed".into())
}

/// A step of `process` as a record: its actor and deadline from the regulation.
pub(super) fn step(process: &Process, kind: StepKind, seq: i64, started: i64, done: Option<&str>) -> StepRecord {
    let s = process.steps.iter().find(|s| s.step == kind);
    StepRecord {
        seq,
        step: kind,
        // A step the process does not list (none the code makes) would have nobody to name.
        actor: s.map(|s| s.actor.as_str().to_string()).unwrap_or_default(),
        started_at: started,
        finished_at: done.map(|_| now()),
        deadline_seconds: s.and_then(|s| s.deadline_seconds).map(|d| d as i64),
        outcome: done.map(str::to_string),
    }
}

/// Everything the workflow needs from the service.
pub struct Workflow<'a> {
    /// The CA the workflow asks to issue and revoke; it decides nothing here.
    pub ca: &'a Ca,
    pub store: &'a Store,
    pub config: &'a Config,
    pub regulation: &'a Regulation,
    pub registry: &'a StateRegistry,
    pub centres: &'a Centres,
    /// The caller's language (`kk`, `ru`, `en`) when they said one: refusal messages are given
    /// in it, and the applicant's letters written in it.
    pub lang: Option<&'static str>,
}

/// The step a change leaves the application at: the open one, or the last one done.
pub(super) fn current_step(steps: &[StepRecord]) -> Option<StepKind> {
    steps
        .iter()
        .rev()
        .find(|s| s.finished_at.is_none())
        .or(steps.last())
        .map(|s| s.step)
}

/// The profile of an applicant's AUTH certificate: legal-entity when an organisation is named.
pub(super) fn auth_profile(ca: &Ca, legal: bool) -> Result<&crate::pki::profile::Profile, WorkflowError> {
    let name = if legal { "legal-auth" } else { "individual-auth" };
    ca.profiles
        .get(name)
        .ok_or_else(|| WorkflowError::Internal(format!("no profile {name}")))
}

/// Checks an applicant as stated (IIN and BIN check digits, the subject the certificates would
/// carry) before anything is recorded; returns the IIN and the AUTH profile.
pub(super) fn check_applicant<'c>(
    ca: &'c Ca,
    cfg: &Config,
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
        && let Err(e) = crate::pki::subject::build(profile, &subject(applicant, org), &cfg.ca.country)
    {
        wrong.push(FieldError::new("applicant", "subject_invalid", e.to_string()));
    }
    match iin {
        Some(iin) if wrong.is_empty() => Ok((iin, profile)),
        _ => Err(WorkflowError::Fields(wrong)),
    }
}

impl Workflow<'_> {
    pub(super) fn process_of(&self, a: &ApplicationRecord) -> Result<&Process, WorkflowError> {
        self.regulation
            .processes
            .iter()
            .find(|p| p.id == a.process)
            .ok_or_else(|| WorkflowError::Internal(format!("process {} is not in the regulation", a.process)))
    }

    /// Moves the application on from `from` and shows it; a conflict when it is no longer there
    /// (another request moved it first).
    pub(super) async fn advance(
        &self,
        a: &ApplicationRecord,
        from: Status,
        change: Advance,
        at_step: StepKind,
        actor: Actor,
    ) -> Result<ApplicationView, WorkflowError> {
        if !self.move_on(a, from, change, at_step, None, actor).await? {
            return Err(WorkflowError::Status {
                number: a.number.clone(),
                status: a.status,
            });
        }
        self.view(&a.number).await
    }

    /// Records a new application with what it tells the monitoring system and the applicant. A
    /// refused one keeps the digests of the requests it was sent, not the requests.
    pub(super) async fn record(
        &self,
        a: &mut ApplicationRecord,
        steps: &[StepRecord],
        letter: Option<Letter>,
        actor: &Actor,
    ) -> Result<(), WorkflowError> {
        if !a.status.may_start() {
            return Err(WorkflowError::Internal(format!(
                "application {} cannot start {}",
                a.number, a.status
            )));
        }
        if a.status == Status::Refused {
            a.csr_digests = csr_digests(a);
            a.auth_csr = None;
            a.sign_csr = None;
        }
        let messages = self.notices(a, a.status, current_step(steps), a.refusal.as_ref(), letter, actor)?;
        self.store.add_application(a, steps, &messages, &actor.audit()).await?;
        Ok(())
    }

    /// Moves `a` on from `from` with what the change tells others; `at_step` names the step when
    /// the change opens none. False, changing nothing, when `a` is no longer in `from`. A
    /// refusal drops the request bodies and keeps their digests. A change [`Status::may_become`]
    /// does not allow is the code's mistake: refused as an internal fault, recording nothing.
    pub(super) async fn move_on(
        &self,
        a: &ApplicationRecord,
        from: Status,
        change: Advance,
        at_step: StepKind,
        letter: Option<Letter>,
        actor: Actor,
    ) -> Result<bool, WorkflowError> {
        let change = self.change_of(a, from, change, at_step, letter, actor)?;
        Ok(self.store.advance_application(&a.number, from, change).await?)
    }

    /// A change from `from` as [`Workflow::move_on`] records it (allowed by [`Status::may_become`],
    /// with its actor and the messages telling of it), for the caller to record with other writes.
    pub(super) fn change_of(
        &self,
        a: &ApplicationRecord,
        from: Status,
        mut change: Advance,
        at_step: StepKind,
        letter: Option<Letter>,
        actor: Actor,
    ) -> Result<Advance, WorkflowError> {
        if !from.may_become(change.to) {
            return Err(WorkflowError::Internal(format!(
                "application {}: no transition from {from} to {}",
                a.number, change.to
            )));
        }
        if change.to == Status::Refused {
            change.csr_digests = csr_digests(a);
        }
        change.actor = actor.audit();
        let step = current_step(&change.steps).unwrap_or(at_step);
        change.messages = self.notices(a, change.to, Some(step), change.refusal.as_ref(), letter, &actor)?;
        Ok(change)
    }

    /// The monitoring message of a change of `a` to `status`, and the letter if there is one. No
    /// random bytes for their ids is the service's fault: the change is not recorded.
    pub(super) fn notices(
        &self,
        a: &ApplicationRecord,
        status: Status,
        step: Option<StepKind>,
        refusal: Option<&Refusal>,
        letter: Option<Letter>,
        actor: &Actor,
    ) -> Result<Vec<OutboxMessage>, WorkflowError> {
        let service_id = self.process_of(a).map(|p| p.service_id()).unwrap_or_default();
        let mut out = vec![
            crate::outbox::status_message(
                self.config,
                &service_id,
                a,
                status.as_str(),
                step.map(StepKind::as_str).unwrap_or(""),
                refusal,
                &actor.monitoring(),
            )
            .map_err(|e| WorkflowError::Internal(e.to_string()))?,
        ];
        if let Some(l) = letter {
            out.push(letters::message(&a.number, &l).map_err(|e| WorkflowError::Internal(e.to_string()))?);
        }
        Ok(out)
    }

    /// The applicant's letter of this kind, when they gave an address.
    pub(super) fn letter(&self, a: &ApplicationRecord, kind: Kind) -> Option<Letter> {
        let (to, lang) = a.applicant.contact()?;
        Some(letters::compose(&to, &lang, &a.number, &kind))
    }

    /// The order-number letter (P1 and P2 step "notify_number").
    pub(super) fn number_letter(&self, a: &ApplicationRecord) -> Option<Letter> {
        let (_, lang) = a.applicant.contact()?;
        let centre = self
            .centres
            .centre(&a.centre)
            .map(|c| c.names.get(&lang).to_string())
            .unwrap_or_else(|| a.centre.clone());
        let status_url = format!("{}/", self.config.base_url.trim_end_matches('/'));
        self.letter(
            a,
            Kind::OrderNumber {
                centre: &centre,
                status_url: &status_url,
            },
        )
    }

    pub(crate) async fn operators_application(
        &self,
        op: &Operator,
        number: &str,
    ) -> Result<ApplicationRecord, WorkflowError> {
        let canonical = number::parse(number).ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        let a = self.store.application(&canonical).await?;
        Self::at_centre(op, number, a)
    }

    /// [`Workflow::operators_application`] with its steps, for a step about to be recorded (its
    /// number follows theirs), in one statement.
    pub(super) async fn operators_application_with_steps(
        &self,
        op: &Operator,
        number: &str,
    ) -> Result<(ApplicationRecord, Vec<StepRecord>), WorkflowError> {
        let canonical = number::parse(number).ok_or_else(|| WorkflowError::NotFound(number.into()))?;
        let (a, steps) = self.store.application_with_steps(&canonical).await?.unzip();
        Ok((Self::at_centre(op, number, a)?, steps.unwrap_or_default()))
    }

    /// The application, if the operator's centre holds it: another centre's application does not
    /// exist for this operator.
    fn at_centre(
        op: &Operator,
        number: &str,
        a: Option<ApplicationRecord>,
    ) -> Result<ApplicationRecord, WorkflowError> {
        a.filter(|a| a.centre == op.record.centre)
            .ok_or_else(|| WorkflowError::NotFound(number.into()))
    }
}

/// The SHA-256 and size of each request an application holds, JSON; none when it holds none.
pub(super) fn csr_digests(a: &ApplicationRecord) -> Option<String> {
    let digest = |pem: &Option<String>| {
        pem.as_deref().filter(|p| !p.is_empty()).map(|p| {
            serde_json::json!({
                "sha256": hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, p.as_bytes())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::registry_check::after_registry;
    use crate::workflow::regulation::{Channel, EMBEDDED, Service};

    fn regulation() -> Regulation {
        Regulation::parse(EMBEDDED).unwrap()
    }

    #[test]
    fn after_the_registry_p1_waits_for_the_centre_p2_for_the_operator_and_a_refusal_ends_it() {
        let r = regulation();
        let p1 = r.process(Service::Issue, Channel::Portal).unwrap();
        let (steps, status) = after_registry(p1, Service::Issue, 3, 100, false);
        assert_eq!(status, Status::AwaitingDocuments);
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(names, ["register", "notify_number", "identity"]);
        assert_eq!(current_step(&steps), Some(StepKind::Identity));
        assert!(steps[2].finished_at.is_none() && steps[0].finished_at.is_some());
        assert_eq!(steps.iter().map(|s| s.seq).collect::<Vec<_>>(), [3, 4, 5]);

        let p2 = r.process(Service::Reissue, Channel::Portal).unwrap();
        let (steps, status) = after_registry(p2, Service::Reissue, 3, 100, false);
        assert_eq!(
            (status, current_step(&steps)),
            (Status::AwaitingConfirmation, Some(StepKind::Confirmation))
        );

        let (steps, status) = after_registry(p1, Service::Issue, 3, 100, true);
        assert_eq!((status, steps.len()), (Status::Refused, 0));
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
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"SIGN"))
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
                status: Status::Issuing
            }
            .code(),
            "application_status_conflict"
        );
        // The service's own faults never carry their cause in the code.
        assert_eq!(WorkflowError::Store(StoreError::SerialTaken).code(), "internal");
        assert_eq!(WorkflowError::Internal("no P4".into()).code(), "internal");
    }
}
