//! The certificate authority: builds, lints, records and signs certificates (and, later, CRLs
//! and OCSP answers). It never decides whether to issue; the workflow and the administrator do.

pub(crate) mod build;
pub mod ceremony;
pub(crate) mod cms;
pub mod crl;
pub mod csr;
mod issue;
pub(crate) mod lint;
pub mod ocsp;
pub(crate) mod policy;
pub mod profile;
pub mod revocation;
pub mod signed_data;
pub mod status;
pub mod subject;
pub mod tsa;
pub(crate) mod verify;

use std::sync::Arc;

use der::{Decode, Encode};
use x509_cert::Certificate;

/// What `Ca::verify_cms` refuses with (the module that verifies is the crate's own).
pub use cms::CmsError;
pub use issue::{IssuanceCounts, IssueRequest, Issued, Together, Unrecorded, issuance_counts};

use crate::config::Config;
use crate::ids::IdError;
use crate::keys::{KeyAlgorithm, KeyStore, KeyStoreError, Signer};
use crate::store::{CaKeyRecord, Store, StoreError};
use build::IssuerUrls;
use profile::Profiles;

/// Why the policy authority refuses a request. Nothing is recorded for any of these.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// An RSA key under 2048 bits.
    #[error("RSA key of {bits} bits: at least 2048 are required")]
    WeakKey { bits: usize },
    /// A key type or curve this CA does not certify.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// The key family is supported but not under this profile.
    #[error("profile {profile} does not allow {algorithm} keys")]
    KeyNotAllowed { profile: String, algorithm: &'static str },
    /// The public key is already certified for another subject.
    #[error("this public key is already certified for another subject")]
    KeyBoundElsewhere,
    /// The IIN is malformed or its check digit is wrong.
    #[error("IIN {0}")]
    Iin(IdError),
    /// The BIN is malformed or its check digit is wrong.
    #[error("BIN {0}")]
    Bin(IdError),
    /// A subject field is missing, not allowed, or not well-formed for the profile.
    #[error("{field} {message}")]
    Subject { field: &'static str, message: String },
}

/// Everything that stops an issuance, from bad input to a failed HSM.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No profile of this name.
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    /// The CSR is malformed or its signature does not verify.
    #[error(transparent)]
    Csr(#[from] csr::CsrError),
    /// The key or subject is refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The built certificate failed its lint: a bug in a profile or the builder, never signed.
    #[error(transparent)]
    Lint(#[from] lint::LintError),
    /// Encoding the certificate failed.
    #[error(transparent)]
    Build(#[from] build::BuildError),
    /// The key store failed to sign; the pending record was marked abandoned.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::KeyBoundElsewhere => IssueError::Policy(PolicyError::KeyBoundElsewhere),
            e => IssueError::Store(e),
        }
    }
}

impl IssueError {
    /// The stable code clients see (README lists them).
    pub fn code(&self) -> &'static str {
        match self {
            IssueError::UnknownProfile(_) => "unknown_profile",
            IssueError::Csr(csr::CsrError::Malformed(_)) => "csr_malformed",
            IssueError::Csr(csr::CsrError::BadSignature) => "csr_signature_invalid",
            IssueError::Csr(csr::CsrError::UnsupportedSignature(_)) => "csr_signature_unsupported",
            IssueError::Policy(PolicyError::WeakKey { .. }) => "key_too_weak",
            IssueError::Policy(PolicyError::UnsupportedKey(_)) => "key_unsupported",
            IssueError::Policy(PolicyError::KeyNotAllowed { .. }) => "key_not_allowed",
            IssueError::Policy(PolicyError::KeyBoundElsewhere) => "key_already_certified",
            IssueError::Policy(PolicyError::Iin(_)) => "iin_invalid",
            IssueError::Policy(PolicyError::Bin(_)) => "bin_invalid",
            IssueError::Policy(PolicyError::Subject { .. }) => "subject_invalid",
            IssueError::Lint(_) => "lint_failed",
            IssueError::Build(_) => "internal",
            IssueError::KeyStore(_) => "key_store_unavailable",
            IssueError::Store(_) => "internal",
        }
    }
}

/// A CA key with its certificate: what it needs to issue and the URLs it writes.
pub struct Issuer {
    pub id: String,
    pub cert_der: Vec<u8>,
    pub subject_der: Vec<u8>,
    pub subject: String,
    pub ski: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub signer: Arc<dyn Signer>,
    /// The URLs written into what this issuer signs, which are also where it publishes its own
    /// CRLs (an issuer's certificates point at that issuer's CRLs).
    pub urls: IssuerUrls,
}

impl Issuer {
    pub fn new(
        id: &str,
        cert_der: Vec<u8>,
        signer: Arc<dyn Signer>,
        cfg: &Config,
    ) -> Result<Issuer, build::BuildError> {
        let err = |e: der::Error| build::BuildError {
            what: "CA certificate",
            message: e.to_string(),
        };
        let cert = Certificate::from_der(&cert_der).map_err(err)?;
        let tbs = &cert.tbs_certificate;
        if signer.spki_der() != tbs.subject_public_key_info.to_der().map_err(err)? {
            return Err(build::BuildError {
                what: "CA certificate",
                message: format!("key {} does not match the certificate of {id}", signer.label()),
            });
        }
        Ok(Issuer {
            id: id.to_string(),
            subject_der: tbs.subject.to_der().map_err(err)?,
            subject: subject::display(&tbs.subject),
            ski: build::key_identifier(&tbs.subject_public_key_info),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
            not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
            signer,
            urls: issuer_urls(cfg, id),
            cert_der,
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.signer.algorithm()
    }

    pub fn facts(&self) -> lint::IssuerFacts<'_> {
        lint::IssuerFacts {
            subject_der: &self.subject_der,
            ski: &self.ski,
            algorithm: self.algorithm(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }

    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }
}

/// The URLs an issuer with this id writes into its certificates.
pub fn issuer_urls(cfg: &Config, id: &str) -> IssuerUrls {
    IssuerUrls {
        ca_issuers: cfg.url(&format!("/cert/{id}.cer")),
        crl: cfg.url(&format!("/crl/{id}.crl")),
        delta_crl: cfg.url(&format!("/crl/{id}-delta.crl")),
        ocsp: cfg.url("/ocsp"),
        cps: cfg.url(&cfg.ca.cps_uri),
    }
}

/// The policy document served at the CPS URI the certificates name (`ca-config/cps.html`): the
/// centre's policy OIDs and practices, for relying parties and holders.
pub const POLICY_DOCUMENT: &str = include_str!("../../ca-config/cps.html");

pub fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// A delegated signer (OCSP responder, the service's message key) with its certificate.
pub struct Delegated {
    pub signer: Arc<dyn Signer>,
    pub cert_der: Vec<u8>,
}

/// The running CA: its hierarchy, delegated signers, profiles and store.
pub struct Ca {
    config: Arc<Config>,
    store: Store,
    pub profiles: Profiles,
    pub root: Issuer,
    pub issuing: Issuer,
    pub ocsp: Option<Delegated>,
    pub service: Option<Delegated>,
    /// The time-stamping authority's key and certificate; absent only between the migration of
    /// a deployment made before the TSA and its first start (which makes them).
    pub tsa: Option<tsa::Tsa>,
    /// Answers OCSP for the issuing CA's certificates, with the delegated key above.
    pub responder: Option<ocsp::Responder>,
}

/// Why the CA cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `nca init` has not run on this database.
    #[error("the deployment is not initialised (run `nca init`)")]
    NotInitialised,
    /// The database says the keys are in one kind of store, the configuration names another.
    #[error("the CA keys are in the {recorded} key store but the configuration names {configured}")]
    KeyStoreMismatch { recorded: String, configured: String },
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    #[error(transparent)]
    Build(#[from] build::BuildError),
}

impl Ca {
    /// Opens an initialised deployment: loads the keys the database names from the key store.
    pub async fn open(config: Arc<Config>, store: Store, key_store: Arc<dyn KeyStore>) -> Result<Ca, OpenError> {
        let records = store.ca_keys().await?;
        let find = |role: &str| records.iter().find(|r| r.role == role);
        let (Some(root), Some(issuing)) = (find("root"), find("issuing")) else {
            return Err(OpenError::NotInitialised);
        };
        let load = |r: &CaKeyRecord| -> Result<Arc<dyn Signer>, OpenError> {
            if r.key_store != key_store.kind() {
                return Err(OpenError::KeyStoreMismatch {
                    recorded: r.key_store.clone(),
                    configured: key_store.kind().into(),
                });
            }
            Ok(key_store.open(&r.key_label)?)
        };
        let delegated = |role: &str| -> Result<Option<Delegated>, OpenError> {
            find(role)
                .map(|r| {
                    Ok(Delegated {
                        signer: load(r)?,
                        cert_der: r.certificate.clone(),
                    })
                })
                .transpose()
        };
        let profiles = Profiles::load(&config.ca.profiles_dir)?;
        let issuing = Issuer::new(&issuing.id, issuing.certificate.clone(), load(issuing)?, &config)?;
        let ocsp = delegated("ocsp")?;
        let responder = ocsp
            .as_ref()
            .map(|d| ocsp::Responder::new(&issuing, &d.cert_der))
            .transpose()
            .map_err(|e| build::BuildError {
                what: "OCSP responder",
                message: e.to_string(),
            })?;
        let tsa = find("tsa")
            .map(|r| -> Result<tsa::Tsa, OpenError> {
                tsa::Tsa::new(load(r)?, r.certificate.clone()).map_err(|e| {
                    build::BuildError {
                        what: "TSA certificate",
                        message: e.to_string(),
                    }
                    .into()
                })
            })
            .transpose()?;
        Ok(Ca {
            tsa,
            root: Issuer::new(&root.id, root.certificate.clone(), load(root)?, &config)?,
            issuing,
            ocsp,
            responder,
            service: delegated("service")?,
            profiles,
            config,
            store,
        })
    }

    /// The issuers by id, root first.
    pub fn issuers(&self) -> [&Issuer; 2] {
        [&self.root, &self.issuing]
    }

    pub fn issuer(&self, id: &str) -> Option<&Issuer> {
        self.issuers().into_iter().find(|i| i.id == id)
    }
}

/// Lower-case hex of a serial's DER integer bytes without a leading 0x00: how serials are stored
/// and shown. Accepts any case and an optional leading `0x` or zeros on input.
pub fn normalise_serial(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let t = s.trim_start_matches('0').to_ascii_lowercase();
    // RFC 5280 §4.1.2.2: at most 20 octets; leading zeros written before them are no octets.
    if t.is_empty() || t.len() > 40 {
        return None;
    }
    // Even number of digits, as the integer's bytes print.
    Some(if t.len() % 2 == 1 { format!("0{t}") } else { t })
}

#[cfg(test)]
mod tests {
    use super::normalise_serial;

    #[test]
    fn serials_in_any_case() {
        assert_eq!(normalise_serial("4A0b").as_deref(), Some("4a0b"));
        assert_eq!(normalise_serial("0x004A0B").as_deref(), Some("4a0b"));
        assert_eq!(normalise_serial("A0B").as_deref(), Some("0a0b"));
        assert_eq!(normalise_serial("xyz"), None);
        assert_eq!(normalise_serial("00"), None);
        assert_eq!(normalise_serial(&"7f".repeat(20)), Some("7f".repeat(20)));
        assert_eq!(
            normalise_serial(&format!("0000{}", "7f".repeat(20))),
            Some("7f".repeat(20))
        );
        assert_eq!(normalise_serial(&"7f".repeat(21)), None);
    }
}
