//! Issuance in Boulder's order: judge the request, build and lint the TBS, record it as pending,
//! sign, record it as issued. A certificate is never signed before the database knows it, and
//! never handed out before the database says it is issued.

use std::sync::atomic::{AtomicU64, Ordering};

use der::Encode;
use spki::SubjectPublicKeyInfoOwned;

use super::build;
use super::profile::Profile;
use super::subject::{self, SubjectInput};
use super::{Ca, IssueError, Issuer, csr, lint, policy};
use crate::keys::{self, KeyAlgorithm};
use crate::store::{
    ApplicationChange, IssuedCertificate, PendingCertificate, Store, StoreError, Together as StoreTogether, now,
};

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
    pub actor: crate::model::Actor,
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

/// Certificates this process signed and recorded as issued, and issuance requests it refused,
/// counted where the signature is made (as Boulder's CA counts): whoever asked — an
/// administrator, the workflow, the operators' roll, a delegated renewal — is counted once.
/// Per process, not per [`Ca`]: the service opens the CA again after the ceremony and after a
/// renewal, and what those signed counts too.
static ISSUED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// What this process's CA has issued and refused since it started (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IssuanceCounts {
    pub issued: u64,
    pub refused: u64,
}

/// The counts so far.
pub fn issuance_counts() -> IssuanceCounts {
    IssuanceCounts {
        issued: ISSUED.load(Ordering::Relaxed),
        refused: REFUSED.load(Ordering::Relaxed),
    }
}

/// Counts a request that did not end in an issued certificate.
fn refused<T>(r: Result<T, IssueError>) -> Result<T, IssueError> {
    if r.is_err() {
        REFUSED.fetch_add(1, Ordering::Relaxed);
    }
    r
}

impl Ca {
    /// Issues a certificate for a CSR under a profile, with a subject from verified data.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, IssueError> {
        refused(self.issue_csr(req).await)
    }

    async fn issue_csr(&self, req: IssueRequest) -> Result<Issued, IssueError> {
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
        actor: &crate::model::Actor,
    ) -> Result<Issued, IssueError> {
        refused(self.issue_own_key(profile, spki_der, subject, actor).await)
    }

    async fn issue_own_key(
        &self,
        profile: &str,
        spki_der: &[u8],
        subject: &SubjectInput,
        actor: &crate::model::Actor,
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
    actor: &'a crate::model::Actor,
}

/// A leaf built for a key: its TBS (linted before each encoding) and what its record says.
struct Leaf {
    tbs: x509_cert::TbsCertificate,
    subject: String,
    holder: String,
    key_sha256: String,
    not_before: i64,
    not_after: i64,
}

fn build_leaf(
    ca: &Ca,
    issuer: &Issuer,
    profile: &Profile,
    spki: SubjectPublicKeyInfoOwned,
    key: KeyAlgorithm,
    input: &SubjectInput,
) -> Result<Leaf, IssueError> {
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
    let tbs = build::tbs(build::TbsParts {
        serial: build::random_serial()?,
        signature: issuer.algorithm(),
        issuer: issuer_name,
        not_before,
        not_after,
        subject: subject.name,
        spki,
        extensions,
    })?;
    Ok(Leaf {
        tbs,
        subject: subject.display,
        holder: subject.holder,
        key_sha256,
        not_before,
        not_after,
    })
}

/// Lints the leaf as built and encodes its TBS: the record to write before signing.
fn pending_of(
    leaf: &Leaf,
    issuer: &Issuer,
    profile: &Profile,
    application: Option<&str>,
) -> Result<PendingCertificate, IssueError> {
    lint::leaf(&leaf.tbs, profile, &issuer.facts())?;
    let tbs_der = leaf.tbs.to_der().map_err(|e| build::BuildError {
        what: "TBS",
        message: e.to_string(),
    })?;
    Ok(PendingCertificate {
        issuer: issuer.id.clone(),
        serial: hex::encode(leaf.tbs.serial_number.as_bytes()),
        profile: profile.name.clone(),
        subject: leaf.subject.clone(),
        holder: leaf.holder.clone(),
        key_sha256: leaf.key_sha256.clone(),
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        tbs: tbs_der,
        application: application.map(str::to_string),
    })
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
    // Built once; a serial the store says is taken (never, in practice) is replaced, and the
    // structure linted and encoded again.
    let mut leaf = build_leaf(ca, issuer, profile, spki, key, input)?;
    let subject = leaf.subject.clone();
    let named = Named {
        application: application.unwrap_or(""),
        profile: &profile.name,
        subject: &subject,
    };
    let (serial, der) = record_sign_record(&ca.store, &issuer.id, &issuer.signer, named, actor, |redraw| {
        if redraw {
            leaf.tbs.serial_number = build::serial_number(&build::random_serial()?)?;
        }
        pending_of(&leaf, issuer, profile, application)
    })
    .await?;
    Ok(Issued {
        issuer: issuer.id.clone(),
        serial,
        profile: profile.name.clone(),
        subject,
        der,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
    })
}

/// What a certificate's audit lines name beside its serial.
struct Named<'a> {
    application: &'a str,
    profile: &'a str,
    subject: &'a str,
}

/// The one pipeline from a built certificate on, for leaves and the CA's own certificates alike:
/// record pending (`pending` builds, lints and encodes the row; asked again with `true` when the
/// store finds its serial taken, it draws a new serial), sign, record issued, count. The order
/// is Boulder's and is the only one there is: nothing is signed that is not recorded pending, and
/// a failed signature abandons its row.
async fn record_sign_record(
    store: &Store,
    issuer_id: &str,
    signer: &std::sync::Arc<dyn keys::Signer>,
    named: Named<'_>,
    actor: &crate::model::Actor,
    mut pending: impl FnMut(bool) -> Result<PendingCertificate, IssueError>,
) -> Result<(String, Vec<u8>), IssueError> {
    let Named {
        application,
        profile,
        subject,
    } = named;
    let mut attempt = 0;
    let prepared = loop {
        attempt += 1;
        let row = pending(attempt > 1)?;
        let serial = row.serial.clone();
        tracing::info!(target: "audit", "issuing: serial=[{serial}] application=[{application}] profile=[{profile}] subject=[{subject}]");
        match store.add_pending(&row).await {
            Ok(()) => {
                break Prepared {
                    serial,
                    tbs_der: row.tbs,
                };
            }
            Err(StoreError::SerialTaken) if attempt < SERIAL_ATTEMPTS => continue,
            Err(e) => {
                tracing::info!(target: "audit", "refused: serial=[{serial}] application=[{application}] profile=[{profile}] reason=[{e}]");
                return Err(e.into());
            }
        }
    };
    let der = sign(store, issuer_id, signer, prepared.tbs_der, &prepared.serial).await?;
    store.mark_issued(issuer_id, &prepared.serial, &der, actor).await?;
    ISSUED.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "audit", "issued: serial=[{}] application=[{application}] profile=[{profile}]", prepared.serial);
    Ok((prepared.serial, der))
}

/// A certificate judged, built and linted for an application, not yet recorded: its serial is
/// known and nothing is written. [`Ca::issue_together`] records, signs and records it issued.
pub struct Unrecorded {
    pending: PendingCertificate,
}

impl Unrecorded {
    pub fn serial(&self) -> &str {
        &self.pending.serial
    }
}

/// What became of certificates issued together with their application's changes.
#[derive(Debug)]
pub enum Together {
    /// The application was no longer where the change before them needs it: nothing written.
    NotRecorded,
    /// The change before them was written with their pending rows: each certificate issued, or
    /// why not (in the order given); and whether the change after them was written with their
    /// issued rows (only when every one was issued).
    Recorded {
        issued: Vec<Result<Issued, IssueError>>,
        after: bool,
    },
}

impl Ca {
    /// Judges a request and builds and lints its certificate, writing nothing (the first half of
    /// [`Ca::issue`], for [`Ca::issue_together`]). `possession` says whether the CSR's signature
    /// is verified here or was verified, byte for byte, by the caller when it accepted the CSR.
    pub async fn prepare(&self, req: &IssueRequest, possession: csr::Possession) -> Result<Unrecorded, IssueError> {
        let profile = self
            .profiles
            .get(&req.profile)
            .ok_or_else(|| IssueError::UnknownProfile(req.profile.clone()))?;
        let csr = csr::parse(&req.csr)?;
        let key = policy::judge_key(&csr.spki, profile)?;
        if possession == csr::Possession::Check {
            csr.check_possession()?;
        }
        let leaf = build_leaf(self, &self.issuing, profile, csr.spki, key, &req.subject)?;
        Ok(Unrecorded {
            pending: pending_of(&leaf, &self.issuing, profile, req.application.as_deref())?,
        })
    }

    /// Issues prepared certificates in the same order as [`Ca::issue`] (record pending, sign,
    /// record issued), with an application's change before them written in the pending rows'
    /// transaction and its change after them in the issued rows' (the group commit's:
    /// [`crate::store::Together`]). A serial found taken is not drawn again here: that
    /// certificate is answered `SerialTaken`, and the caller's retry issues it afresh.
    pub async fn issue_together(
        &self,
        certs: Vec<Unrecorded>,
        actor: &crate::model::Actor,
        before: ApplicationChange,
        after: ApplicationChange,
    ) -> Result<Together, IssueError> {
        let issuer = &self.issuing;
        for c in &certs {
            tracing::info!(target: "audit", "issuing: serial=[{}] application=[{}] profile=[{}] subject=[{}]",
                c.pending.serial, c.pending.application.as_deref().unwrap_or(""), c.pending.profile, c.pending.subject);
        }
        let recorded = self
            .store
            .write_together(StoreTogether {
                before: Some(before),
                pending: certs.iter().map(|c| c.pending.clone()).collect(),
                ..Default::default()
            })
            .await?;
        if !recorded.before {
            return Ok(Together::NotRecorded);
        }
        // One refused (a key bound to another holder, a serial taken): none is signed, and the
        // others' rows are abandoned, so the application never holds half a pair.
        if recorded.pending.iter().any(Result::is_err) {
            let mut issued = Vec::with_capacity(certs.len());
            for (c, r) in certs.iter().zip(recorded.pending) {
                match r {
                    Ok(()) => {
                        let why = "the other certificate of its application was refused";
                        self.store.abandon_pending(&issuer.id, &c.pending.serial, why).await?;
                        issued.push(Err(IssueError::Store(StoreError::StateConflict(why.into()))));
                    }
                    Err(e) => issued.push(Err(e.into())),
                }
            }
            REFUSED.fetch_add(issued.len() as u64, Ordering::Relaxed);
            return Ok(Together::Recorded { issued, after: false });
        }
        // Each recorded certificate signed, all at once (their signatures share the pool).
        let signed = futures_util::future::join_all(certs.iter().map(|c| {
            sign(
                &self.store,
                &issuer.id,
                &issuer.signer,
                c.pending.tbs.clone(),
                &c.pending.serial,
            )
        }))
        .await;
        let all = signed.iter().all(Result::is_ok);
        let rows = certs
            .iter()
            .zip(&signed)
            .filter_map(|(c, s)| {
                s.as_ref().ok().map(|der| IssuedCertificate {
                    issuer: issuer.id.clone(),
                    serial: c.pending.serial.clone(),
                    der: der.clone(),
                    actor: actor.audit(),
                })
            })
            .collect();
        let marked = self
            .store
            .write_together(StoreTogether {
                issued: rows,
                after: all.then_some(after),
                ..Default::default()
            })
            .await?;
        let mut marks = marked.issued.into_iter();
        let issued = certs
            .into_iter()
            .zip(signed)
            .map(|(c, s)| {
                let der = s?;
                marks
                    .next()
                    .unwrap_or_else(|| Err(StoreError::Unavailable("a write had no answer".into())))?;
                let p = c.pending;
                tracing::info!(target: "audit", "issued: serial=[{}] application=[{}] profile=[{}]",
                    p.serial, p.application.as_deref().unwrap_or(""), p.profile);
                // Counted where the signature was recorded, as on the one-by-one path.
                ISSUED.fetch_add(1, Ordering::Relaxed);
                Ok(Issued {
                    issuer: p.issuer,
                    serial: p.serial,
                    profile: p.profile,
                    subject: p.subject,
                    der,
                    not_before: p.not_before,
                    not_after: p.not_after,
                })
            })
            .collect::<Vec<Result<Issued, IssueError>>>();
        let failed = issued.iter().filter(|r| r.is_err()).count();
        REFUSED.fetch_add(failed as u64, Ordering::Relaxed);
        Ok(Together::Recorded {
            issued,
            after: marked.after,
        })
    }
}

/// Signs recorded TBS bytes; on failure the pending row is abandoned, since nothing was signed.
/// Signs a recorded pending certificate; if the key store fails, marks the row abandoned, so no
/// pending row waits for a signature that will not come. Takes the store, not the CA: the
/// ceremony's root and issuing certificates are signed here before there is a [`Ca`].
async fn sign(
    store: &Store,
    issuer_id: &str,
    signer: &std::sync::Arc<dyn keys::Signer>,
    tbs_der: Vec<u8>,
    serial: &str,
) -> Result<Vec<u8>, IssueError> {
    // Shared with the signing thread, not copied for it.
    let tbs_der = bytes::Bytes::from(tbs_der);
    match keys::sign_in_place_if_cheap(signer, tbs_der.clone()).await {
        Ok(sig) => Ok(build::assemble(&tbs_der, signer.algorithm(), &sig)?),
        Err(e) => {
            tracing::error!(target: "audit", "signing failed: serial=[{serial}] issuer=[{issuer_id}] error=[{e}]");
            if let Err(se) = store.mark_abandoned(issuer_id, serial).await {
                tracing::error!("marking {serial} abandoned failed: {se}");
            }
            Err(e.into())
        }
    }
}

/// A CA's own certificate as the ceremony builds it — the root's, self-signed, or the issuing
/// CA's, under the root — before there is a [`Ca`] to issue through: the built TBS, and what the
/// pipeline needs of its issuer.
pub(crate) struct CaCertificate<'a> {
    /// The issuer's id, as its certificates are recorded under it.
    pub issuer_id: &'a str,
    /// The issuer as the lint checks the TBS against it (for the root, the root itself).
    pub issuer: lint::IssuerFacts<'a>,
    pub signer: &'a std::sync::Arc<dyn keys::Signer>,
    pub tbs: x509_cert::TbsCertificate,
}

/// The profile name a CA certificate is recorded under.
const CA_PROFILE: &str = "ca";

/// Issues a CA certificate in the leaves' order and with their guarantees: linted (as a CA
/// certificate) and recorded pending before it is signed, a serial found taken drawn again, a
/// failed signature abandoning its row, recorded issued, audited and counted as every
/// certificate this process signs.
pub(crate) async fn issue_ca_certificate(
    store: &crate::store::Store,
    cert: CaCertificate<'_>,
    actor: &crate::model::Actor,
) -> Result<Issued, IssueError> {
    refused(issue_ca(store, cert, actor).await)
}

async fn issue_ca(
    store: &crate::store::Store,
    cert: CaCertificate<'_>,
    actor: &crate::model::Actor,
) -> Result<Issued, IssueError> {
    let CaCertificate {
        issuer_id,
        issuer,
        signer,
        mut tbs,
    } = cert;
    let encode = |what: &'static str, e: der::Error| build::BuildError {
        what,
        message: e.to_string(),
    };
    let subject = subject::display(&tbs.subject);
    let spki_der = tbs.subject_public_key_info.to_der().map_err(|e| encode("SPKI", e))?;
    let key_sha256 = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki_der));
    let validity = &tbs.validity;
    let not_before = validity.not_before.to_unix_duration().as_secs() as i64;
    let not_after = validity.not_after.to_unix_duration().as_secs() as i64;
    let named = Named {
        application: "",
        profile: CA_PROFILE,
        subject: &subject,
    };
    let (serial, der) = record_sign_record(store, issuer_id, signer, named, actor, |redraw| {
        if redraw {
            tbs.serial_number = build::serial_number(&build::random_serial()?)?;
        }
        let tbs_der = tbs.to_der().map_err(|e| encode("TBS", e))?;
        lint::ca(&tbs_der, &issuer)?;
        Ok(PendingCertificate {
            issuer: issuer_id.to_string(),
            serial: hex::encode(tbs.serial_number.as_bytes()),
            profile: CA_PROFILE.into(),
            subject: subject.clone(),
            holder: subject.clone(),
            key_sha256: key_sha256.clone(),
            not_before,
            not_after,
            tbs: tbs_der,
            application: None,
        })
    })
    .await?;
    Ok(Issued {
        issuer: issuer_id.to_string(),
        serial,
        profile: CA_PROFILE.into(),
        subject,
        der,
        not_before,
        not_after,
    })
}
