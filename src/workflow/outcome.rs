//! The result step of an application, done from its recorded intent: issue the pair (and revoke
//! the pair it supersedes, P2), or revoke the certificates it names (P3, P5).
//!
//! The order is always: the intent is recorded with the status change that calls for it (the
//! caller's transaction), then done here, then recorded done (clearing the intent) in one more
//! transaction. Every part can run twice without changing anything more: a certificate the
//! application already has is taken up, not issued again (`certificates_application_profile`
//! keeps that even between two workers), and revoking a revoked certificate changes nothing. So
//! the driver ([`super::driver`]) may take up any intent whose worker died or failed.

use super::application::{Workflow, WorkflowError, subject};
use super::regulation::StepKind;
use crate::model::{Actor, Intent, Refusal, Status, WAITING_KEY_STORE};
use crate::outbox::letters::{Kind, Letter};
use crate::pki::csr::Possession;
use crate::pki::revocation::RevokeError;
use crate::pki::{IssueError, IssueRequest, Together};
use crate::store::{
    Advance, ApplicationChange, ApplicationRecord, CertificateRecord, CertificateStatus, StoreError, now,
};

/// Why a result step did not finish.
enum Failure {
    /// The key store failed: the application waits for it, and the driver tries again.
    KeyStore(String),
    /// The database (or another part of the service) failed: nothing more can be recorded now;
    /// the intent's lease runs out and the driver takes it up.
    Fault(WorkflowError),
    /// The step can never succeed (a lint failure, a key refused at issuance): the application is
    /// refused with this code and message, at the result step.
    Refused(String, String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Fault(e.into())
    }
}

impl From<IssueError> for Failure {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::KeyStore(k) => Failure::KeyStore(k.to_string()),
            IssueError::Store(s) => Failure::Fault(s.into()),
            e @ (IssueError::UnknownProfile(_)
            | IssueError::Csr(_)
            | IssueError::Policy(_)
            | IssueError::Lint(_)
            | IssueError::Build(_)) => Failure::Refused(e.code().to_string(), e.to_string()),
        }
    }
}

impl From<RevokeError> for Failure {
    fn from(e: RevokeError) -> Self {
        match e {
            RevokeError::Store(s) => Failure::Fault(s.into()),
            e @ (RevokeError::BadSerial
            | RevokeError::UnknownSerial(_)
            | RevokeError::BadReason(_)
            | RevokeError::NotOnHold(_)
            | RevokeError::BadTime(_)) => Failure::Refused(e.code().to_string(), e.to_string()),
        }
    }
}

/// The change that records the result step done, and the applicant's letter.
struct Done {
    change: Advance,
    letter: Option<Letter>,
}

impl Workflow<'_> {
    /// Does the recorded intent of `a` (status `issuing` or `awaiting_key_store`, the intent's
    /// lease held by this worker) and records the outcome: completed (P4: the write-card step
    /// opened), waiting for the key store, or refused. `retry` says an earlier attempt may have
    /// left certificates behind. A database fault is returned and nothing more is recorded.
    pub(crate) async fn finish(&self, a: &ApplicationRecord, retry: bool) -> Result<(), WorkflowError> {
        let intent = a
            .intent
            .ok_or_else(|| WorkflowError::Internal(format!("application {} has no intent to finish", a.number)))?;
        let outcome = match intent {
            Intent::Issue => self.issue_pair(a, retry).await,
            Intent::Revoke => self.revoke_named(a).await,
        };
        let step = match intent {
            Intent::Revoke => StepKind::Revoke,
            Intent::Issue if self.onto_card(a)? => StepKind::WriteCard,
            Intent::Issue => StepKind::Issue,
        };
        self.settle(a, step, outcome).await
    }

    /// Records the outcome of `a`'s result step: done, waiting for the key store, or refused; a
    /// database fault is returned and nothing more is recorded.
    async fn settle(
        &self,
        a: &ApplicationRecord,
        step: StepKind,
        outcome: Result<Done, Failure>,
    ) -> Result<(), WorkflowError> {
        match outcome {
            Ok(done) => {
                self.move_on(a, a.status, done.change, step, done.letter, Actor::Service)
                    .await?;
            }
            Err(Failure::KeyStore(cause)) => {
                tracing::warn!(application = %a.number, "key store: {cause}; the application waits for it");
                if a.status == Status::AwaitingKeyStore {
                    self.store.release_intent(&a.number, WAITING_KEY_STORE).await?;
                } else {
                    let wait = Advance {
                        to: Status::AwaitingKeyStore,
                        outcome: String::new(),
                        keep_steps_open: true,
                        intent: a.intent,
                        intent_until: None,
                        waiting: Some(WAITING_KEY_STORE.into()),
                        ..Default::default()
                    };
                    self.move_on(a, a.status, wait, step, None, Actor::Service).await?;
                }
            }
            Err(Failure::Fault(e)) => return Err(e),
            Err(Failure::Refused(code, message)) => {
                tracing::error!(application = %a.number, "result step failed for good: {code}: {message}");
                let refused = Advance {
                    to: Status::Refused,
                    outcome: "failed".into(),
                    refusal: Some(Refusal::new(&code, step, message)),
                    ..Default::default()
                };
                self.move_on(a, a.status, refused, step, None, Actor::Service).await?;
            }
        }
        Ok(())
    }

    /// Whether the application's pair goes onto an ID card (P4): its process has no issue step.
    fn onto_card(&self, a: &ApplicationRecord) -> Result<bool, WorkflowError> {
        Ok(!self.process_of(a)?.steps.iter().any(|s| s.step == StepKind::Issue))
    }

    /// Issues the pair (each certificate once: one the application already has is taken up),
    /// then revokes the pair a reissue supersedes.
    async fn issue_pair(&self, a: &ApplicationRecord, retry: bool) -> Result<Done, Failure> {
        // A first attempt, just recorded by this worker, has nothing behind it: no query.
        let existing = if retry {
            self.store.application_certificates(&a.number).await?
        } else {
            Vec::new()
        };
        let [auth, sign] = pair_requests(a)?;
        // Both at once: their writes share the group commit's transactions.
        let (auth, sign) = tokio::join!(
            self.issue_once(&a.number, auth, &existing),
            self.issue_once(&a.number, sign, &existing)
        );
        let (auth, sign) = (auth?, sign?);
        // A reissue supersedes the pair whose SIGN key signed the request, once the new one exists.
        for serial in &a.applicant.supersedes {
            self.revoke_one(serial, "superseded").await?;
        }
        self.completion(a, auth, sign).await
    }

    /// The change that completes an issuance of the pair `auth`, `sign` (P4: opens the
    /// write-card step), with the applicant's letter.
    async fn completion(&self, a: &ApplicationRecord, auth: String, sign: String) -> Result<Done, Failure> {
        let onto_card = self.onto_card(a).map_err(Failure::Fault)?;
        let serials = [auth.clone(), sign.clone()];
        let install_url = format!(
            "{}/api/v1/applications/{}/certificates?iin={}",
            self.config.base_url.trim_end_matches('/'),
            a.number,
            a.iin
        );
        // On an ID card the certificates are already where they belong: no install link.
        let letter = if onto_card {
            None
        } else {
            self.letter(
                a,
                Kind::Issued {
                    install_url: &install_url,
                    serials: &serials,
                },
            )
        };
        let steps = if onto_card {
            let seq = self.store.application_steps(&a.number).await?.len() as i64 + 1;
            vec![super::application::step(
                self.process_of(a).map_err(Failure::Fault)?,
                StepKind::WriteCard,
                seq,
                now(),
                None,
            )]
        } else {
            Vec::new()
        };
        Ok(Done {
            change: Advance {
                // P4 is complete when the certificates are on the card: the station writes them
                // and says so (`card_written`); until then the application stays `issuing`.
                to: if onto_card { Status::Issuing } else { Status::Completed },
                outcome: "issued".into(),
                auth_serial: Some(auth),
                sign_serial: Some(sign),
                steps,
                ..Default::default()
            },
            letter,
        })
    }

    /// One certificate of the pair: the one the application has (issued), or a new one. A
    /// pending one left by an earlier attempt is abandoned first: the lease says its worker is
    /// gone, and if it is not, its `mark_issued` finds the row abandoned and hands nothing out.
    async fn issue_once(
        &self,
        number: &str,
        req: IssueRequest,
        existing: &[CertificateRecord],
    ) -> Result<String, Failure> {
        if let Some(c) = existing.iter().find(|c| c.profile == req.profile) {
            match c.status {
                CertificateStatus::Issued => return Ok(c.serial.clone()),
                CertificateStatus::Pending => {
                    self.store
                        .abandon_pending(&c.issuer, &c.serial, "its application's issuance was taken up again")
                        .await?;
                }
                CertificateStatus::Abandoned => {}
            }
        }
        let profile = req.profile.clone();
        match self.ca.issue(req).await {
            Ok(issued) => Ok(issued.serial),
            // Another worker got there first: its certificate, once it is issued.
            Err(IssueError::Store(StoreError::AlreadyCertified)) => {
                let now_there = self.store.application_certificates(number).await?;
                match now_there
                    .iter()
                    .find(|c| c.profile == profile && c.status == CertificateStatus::Issued)
                {
                    Some(c) => Ok(c.serial.clone()),
                    None => Err(Failure::Fault(StoreError::AlreadyCertified.into())),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes what a revocation application names (`{"certificates": [...], "reason"}`).
    async fn revoke_named(&self, a: &ApplicationRecord) -> Result<Done, Failure> {
        let (serials, reason) = (&a.applicant.certificates, a.applicant.reason());
        for serial in serials {
            self.revoke_one(serial, reason).await?;
        }
        let letter = self.letter(a, Kind::Revoked { serials, reason });
        Ok(Done {
            change: Advance {
                to: Status::Completed,
                outcome: "revoked".into(),
                ..Default::default()
            },
            letter,
        })
    }

    /// Revokes one certificate; one revoked already is left as it is.
    async fn revoke_one(&self, serial: &str, reason: &str) -> Result<(), Failure> {
        let r = crate::pki::revocation::RevokeRequest {
            serial: serial.to_string(),
            reason: reason.to_string(),
            at: None,
            invalidity_date: None,
            actor: Actor::Service,
        };
        self.ca.revoke(r).await?;
        Ok(())
    }
}

/// The AUTH and SIGN requests of an application's pair, as the service asks for them.
fn pair_requests(a: &ApplicationRecord) -> Result<[IssueRequest; 2], Failure> {
    let applicant = a.applicant.person.as_ref().ok_or_else(|| {
        Failure::Fault(WorkflowError::Internal(format!(
            "application {} names no person to issue for",
            a.number
        )))
    })?;
    let org = a.applicant.organization.as_ref();
    let (auth_profile, sign_profile) = if org.is_some() {
        ("legal-auth", "legal-sign")
    } else {
        ("individual-auth", "individual-sign")
    };
    let subject = subject(applicant, org);
    let request = |profile: &str, csr: &Option<String>| IssueRequest {
        profile: profile.into(),
        csr: csr.clone().unwrap_or_default().into_bytes(),
        subject: subject.clone(),
        application: Some(a.number.clone()),
        // The result step of an application is the service's, done from its recorded intent.
        actor: Actor::Service,
    };
    Ok([request(auth_profile, &a.auth_csr), request(sign_profile, &a.sign_csr)])
}

/// How decisive a failure of one certificate of a pair is for the application: a refusal says
/// more than the key store, the key store more than a fault (a sibling abandoned for the other's
/// refusal is a fault of its own).
fn weight(f: &Failure) -> u8 {
    match f {
        Failure::Refused(..) => 2,
        Failure::KeyStore(_) => 1,
        Failure::Fault(_) => 0,
    }
}

impl Workflow<'_> {
    /// A valid confirmation whose result step is the pair's issuance (P1, P5 and a reissue that
    /// supersedes nothing), done with its transitions folded into the issuance's group commits:
    /// the `issuing` transition (steps, intent, monitoring message) in the pending rows'
    /// transaction, the completion (steps, serials, messages) in the issued rows'. The order of
    /// issuance is [`crate::pki::Ca::issue_together`]'s: record pending, sign, record issued.
    /// A crash after the first commit leaves an `issuing` application with its intent and its
    /// pending rows, which the driver takes up as after [`Workflow::finish`]'s first write.
    ///
    /// None when this path does not apply (a revocation, an ID card, a pair to supersede, or a
    /// request refused before anything is written): the caller records the change and finishes
    /// it step by step as before, which also records the refusal. Some(false): the application
    /// had moved on (nothing written); Some(true): the outcome is recorded.
    pub(super) async fn issue_confirmed(
        &self,
        a: &ApplicationRecord,
        issuing: Advance,
        actor: Actor,
    ) -> Result<Option<bool>, WorkflowError> {
        if issuing.intent != Some(Intent::Issue) || !a.applicant.supersedes.is_empty() || self.onto_card(a)? {
            return Ok(None);
        }
        let Ok([auth, sign]) = pair_requests(a) else {
            return Ok(None);
        };
        // Each CSR's signature was verified when it entered the record (`register` and
        // `card_requests` are its only writers, and a key that does not prove possession is
        // refused there and never reaches a confirmation), so it is not verified a second time
        // here, when these are the bytes the operator has just confirmed: the to-be-signed
        // document binds each CSR's SHA-256. Others are verified again.
        let possession = if super::confirmation::binds_requests(a) {
            Possession::ProvenOnSubmission
        } else {
            tracing::warn!(
                "application {}: its requests are not those its confirmation names",
                a.number
            );
            Possession::Check
        };
        let (Ok(auth), Ok(sign)) = (
            self.ca.prepare(&auth, possession).await,
            self.ca.prepare(&sign, possession).await,
        ) else {
            return Ok(None);
        };
        let claimed = ApplicationRecord {
            status: Status::Issuing,
            confirmed_by: issuing.confirmed_by.clone(),
            intent: issuing.intent,
            intent_until: issuing.intent_until,
            ..a.clone()
        };
        let before = ApplicationChange {
            number: a.number.clone(),
            from: a.status,
            change: self.change_of(a, a.status, issuing, StepKind::OperatorSignatureCheck, None, actor)?,
        };
        let done = match self
            .completion(&claimed, auth.serial().into(), sign.serial().into())
            .await
        {
            Ok(d) => d,
            Err(Failure::Fault(e)) => return Err(e),
            Err(_) => return Ok(None),
        };
        let after = ApplicationChange {
            number: a.number.clone(),
            from: Status::Issuing,
            change: self.change_of(
                &claimed,
                Status::Issuing,
                done.change,
                StepKind::Issue,
                done.letter,
                Actor::Service,
            )?,
        };
        let outcome = self
            .ca
            .issue_together(vec![auth, sign], &Actor::Service, before, after)
            .await
            .map_err(|e| match Failure::from(e) {
                Failure::Fault(e) => e,
                Failure::KeyStore(m) | Failure::Refused(_, m) => WorkflowError::Internal(m),
            })?;
        let issued = match outcome {
            Together::NotRecorded => return Ok(Some(false)),
            Together::Recorded { after: true, .. } => return Ok(Some(true)),
            Together::Recorded { issued, after: false } => issued,
        };
        // Not completed: a certificate was not issued (its failure decides what the application
        // becomes, as in `finish`), or all were and another worker moved the application on.
        let failure = issued
            .into_iter()
            .filter_map(Result::err)
            .map(Failure::from)
            .max_by_key(weight);
        if let Some(f) = failure {
            self.settle(&claimed, StepKind::Issue, Err(f)).await?;
        }
        Ok(Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyStoreError;

    #[test]
    fn a_key_store_failure_waits_a_database_failure_is_retried_and_bad_contents_refuse() {
        assert!(matches!(
            Failure::from(IssueError::KeyStore(KeyStoreError::TokenRemoved)),
            Failure::KeyStore(_)
        ));
        assert!(matches!(
            Failure::from(IssueError::Store(StoreError::Unavailable("down".into()))),
            Failure::Fault(WorkflowError::Store(_))
        ));
        assert!(matches!(
            Failure::from(IssueError::Store(StoreError::AlreadyCertified)),
            Failure::Fault(_)
        ));
        match Failure::from(IssueError::UnknownProfile("x".into())) {
            Failure::Refused(code, _) => assert_eq!(code, "unknown_profile"),
            _ => panic!("an unknown profile can never issue"),
        }
        assert!(matches!(
            Failure::from(RevokeError::Store(StoreError::Unavailable("down".into()))),
            Failure::Fault(_)
        ));
        match Failure::from(RevokeError::UnknownSerial("01".into())) {
            Failure::Refused(code, _) => assert_eq!(code, "certificate_not_found"),
            _ => panic!("an unknown serial can never be revoked"),
        }
    }
}
