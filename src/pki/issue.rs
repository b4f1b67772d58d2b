//! Issuance in Boulder's order: judge the request, build and lint the TBS, record it as pending,
//! sign, record it as issued. A certificate is never signed before the database knows it, and
//! never handed out before the database says it is issued.

use der::Encode;
use spki::SubjectPublicKeyInfoOwned;

use super::build;
use super::profile::Profile;
use super::subject::{self, SubjectInput};
use super::{Ca, IssueError, Issuer, csr, lint, policy};
use crate::keys::{self, KeyAlgorithm};
use crate::store::{PendingCertificate, StoreError, now};

/// A request for one certificate, as the administrator or the workflow makes it.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub profile: String,
    /// PKCS#10, PEM or DER.
    pub csr: Vec<u8>,
    pub subject: SubjectInput,
    /// The application this certificate answers, when the workflow issues it.
    pub application: Option<String>,
    /// Who asks for it: the audit record of its issuance names them.
    pub actor: crate::audit::actor::Actor,
}

/// A certificate the database records as issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub issuer: String,
    pub serial: String,
    pub profile: String,
    pub subject: String,
    pub der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

impl Issued {
    pub fn pem(&self) -> String {
        super::pem("CERTIFICATE", &self.der)
    }
}

/// A linted TBS, recorded as pending, that may be signed once: `sign` consumes it, so the same
/// contents cannot be signed twice (Boulder's issuance token).
struct Prepared {
    serial: String,
    tbs_der: Vec<u8>,
}

/// How often a fresh serial is drawn when the store says one is taken (it never is, in practice:
/// 159 random bits).
const SERIAL_ATTEMPTS: usize = 3;

/// Small backdating of notBefore so that a relying party whose clock is a little behind does not
/// see a certificate from the future.
const BACKDATE_SECONDS: i64 = 60;

impl Ca {
    /// Issues a certificate for a CSR under a profile, with a subject from verified data.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, IssueError> {
        let profile = self
            .profiles
            .get(&req.profile)
            .ok_or_else(|| IssueError::UnknownProfile(req.profile.clone()))?;
        let csr = csr::parse(&req.csr)?;
        let key = policy::judge_key(&csr.spki, profile)?;
        csr.check_possession()?;
        issue_key(
            self,
            &self.issuing,
            profile,
            csr.spki,
            key,
            &req.subject,
            Asker {
                application: req.application.as_deref(),
                actor: &req.actor,
            },
        )
        .await
    }

    /// Issues for a key the CA made itself (the ceremony's delegated signers): no CSR to prove
    /// possession with.
    pub(crate) async fn issue_for_own_key(
        &self,
        profile: &str,
        spki_der: &[u8],
        subject: &SubjectInput,
        actor: &crate::audit::actor::Actor,
    ) -> Result<Issued, IssueError> {
        let profile = self
            .profiles
            .get(profile)
            .ok_or_else(|| IssueError::UnknownProfile(profile.to_string()))?;
        let spki: SubjectPublicKeyInfoOwned = der::Decode::from_der(spki_der).map_err(|e| build::BuildError {
            what: "own key",
            message: e.to_string(),
        })?;
        let key = policy::judge_key(&spki, profile)?;
        let asker = Asker {
            application: None,
            actor,
        };
        issue_key(self, &self.issuing, profile, spki, key, subject, asker).await
    }
}

/// On whose behalf a certificate is issued: the application it answers, if any, and who asked.
struct Asker<'a> {
    application: Option<&'a str>,
    actor: &'a crate::audit::actor::Actor,
}

async fn issue_key(
    ca: &Ca,
    issuer: &Issuer,
    profile: &Profile,
    spki: SubjectPublicKeyInfoOwned,
    key: KeyAlgorithm,
    input: &SubjectInput,
    asker: Asker<'_>,
) -> Result<Issued, IssueError> {
    let Asker { application, actor } = asker;
    let subject = subject::build(profile, input, &ca.config.ca.country)?;
    let spki_der = spki.to_der().map_err(|e| build::BuildError {
        what: "SPKI",
        message: e.to_string(),
    })?;
    let key_sha256 = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki_der));
    let not_before = (now() - BACKDATE_SECONDS).max(issuer.not_before);
    let not_after = (not_before + i64::from(profile.validity_days) * 86_400).min(issuer.not_after);
    let extensions = build::leaf_extensions(profile, &subject, &spki, key, &issuer.ski, &issuer.urls)?;
    let issuer_name: x509_cert::name::Name =
        der::Decode::from_der(&issuer.subject_der).map_err(|e| build::BuildError {
            what: "issuer name",
            message: e.to_string(),
        })?;

    // Built once; a serial the store says is taken (never, in practice) is replaced, and the
    // structure linted and encoded again.
    let mut tbs = build::tbs(build::TbsParts {
        serial: build::random_serial()?,
        signature: issuer.algorithm(),
        issuer: issuer_name,
        not_before,
        not_after,
        subject: subject.name,
        spki,
        extensions,
    })?;
    let mut attempt = 0;
    let prepared = loop {
        attempt += 1;
        if attempt > 1 {
            tbs.serial_number = build::serial_number(&build::random_serial()?)?;
        }
        lint::leaf(&tbs, profile, &issuer.facts())?;
        let tbs_der = tbs.to_der().map_err(|e| build::BuildError {
            what: "TBS",
            message: e.to_string(),
        })?;
        let serial = hex::encode(tbs.serial_number.as_bytes());
        tracing::info!(target: "audit", "issuing: serial=[{serial}] application=[{}] profile=[{}] subject=[{}]",
            application.unwrap_or(""), profile.name, subject.display);
        let pending = PendingCertificate {
            issuer: issuer.id.clone(),
            serial: serial.clone(),
            profile: profile.name.clone(),
            subject: subject.display.clone(),
            holder: subject.holder.clone(),
            key_sha256: key_sha256.clone(),
            not_before,
            not_after,
            tbs: tbs_der,
            application: application.map(str::to_string),
        };
        match ca.store.add_pending(&pending).await {
            Ok(()) => {
                break Prepared {
                    serial,
                    tbs_der: pending.tbs,
                };
            }
            Err(StoreError::SerialTaken) if attempt < SERIAL_ATTEMPTS => continue,
            Err(e) => {
                tracing::info!(target: "audit", "refused: serial=[{serial}] application=[{}] profile=[{}] reason=[{e}]",
                    application.unwrap_or(""), profile.name);
                return Err(e.into());
            }
        }
    };
    let der = sign(ca, issuer, prepared.tbs_der, &prepared.serial).await?;
    ca.store.mark_issued(&issuer.id, &prepared.serial, &der, actor).await?;
    tracing::info!(target: "audit", "issued: serial=[{}] application=[{}] profile=[{}]",
        prepared.serial, application.unwrap_or(""), profile.name);
    Ok(Issued {
        issuer: issuer.id.clone(),
        serial: prepared.serial,
        profile: profile.name.clone(),
        subject: subject.display,
        der,
        not_before,
        not_after,
    })
}

/// Signs recorded TBS bytes; on failure the pending row is abandoned, since nothing was signed.
async fn sign(ca: &Ca, issuer: &Issuer, tbs_der: Vec<u8>, serial: &str) -> Result<Vec<u8>, IssueError> {
    // Shared with the signing thread, not copied for it.
    let tbs_der = bytes::Bytes::from(tbs_der);
    match keys::sign(&issuer.signer, tbs_der.clone()).await {
        Ok(sig) => Ok(build::assemble(&tbs_der, issuer.algorithm(), &sig)?),
        Err(e) => {
            tracing::error!(target: "audit", "signing failed: serial=[{serial}] issuer=[{}] error=[{e}]", issuer.id);
            if let Err(se) = ca.store.mark_abandoned(&issuer.id, serial).await {
                tracing::error!("marking {serial} abandoned failed: {se}");
            }
            Err(e.into())
        }
    }
}
