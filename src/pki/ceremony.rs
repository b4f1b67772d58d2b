//! `nca init`, the key ceremony: root and issuing CA keys in the configured key store, their
//! certificates, the delegated OCSP responder and service keys, the operator listener's TLS
//! certificate, and the first administrator's credentials.
//!
//! The ceremony commits by inserting the `ca_keys` rows in one transaction, after every
//! certificate is recorded issued and every file is written; a deployment with those rows is
//! initialised, and a second ceremony refuses before it makes anything.

use std::path::Path;
use std::sync::Arc;

use der::Encode;
use der::asn1::{PrintableStringRef, SetOfVec, Utf8StringRef};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use super::build::{self, BuildError};
use super::issue::{CaCertificate, issue_ca_certificate};
use super::profile::Profiles;
use super::subject::SubjectInput;
use super::{Ca, IssueError, Issued, Issuer, issuer_urls, lint, pem};
use crate::config::Config;
use crate::keys::token::{RandomFailed, random_hex};
use crate::keys::{self, KeyAlgorithm, KeyStore, KeyStoreError, Signer};
use crate::model::Actor;
use crate::store::{CaKeyRecord, Store, StoreError, now};

/// Why a ceremony stopped.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// The database already holds a deployment's keys; nothing was changed.
    #[error("the deployment is already initialised; refusing to make new CA keys")]
    AlreadyInitialised,
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The OS random source failed while labelling a key; nothing was made with it.
    #[error(transparent)]
    Random(#[from] RandomFailed),
    #[error(transparent)]
    Profile(#[from] super::profile::ProfileError),
    /// A file of the ceremony's output could not be written.
    #[error("writing {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// One line per thing made, for the operator of the ceremony to keep.
#[derive(Debug, Default)]
pub struct CeremonyReport {
    pub lines: Vec<String>,
}

fn ca_name(country: &str, org: &str, cn: &str) -> Result<Name, BuildError> {
    let err = |e: der::Error| BuildError {
        what: "CA name",
        message: e.to_string(),
    };
    let atv = |oid, value| -> Result<RelativeDistinguishedName, BuildError> {
        Ok(RelativeDistinguishedName::from(
            SetOfVec::try_from(vec![AttributeTypeAndValue { oid, value }]).map_err(err)?,
        ))
    };
    use const_oid::db::rfc4519;
    let mut rdns = vec![atv(
        rfc4519::C,
        der::Any::encode_from(&PrintableStringRef::new(country).map_err(err)?).map_err(err)?,
    )?];
    if !org.is_empty() {
        rdns.push(atv(
            rfc4519::O,
            der::Any::encode_from(&Utf8StringRef::new(org).map_err(err)?).map_err(err)?,
        )?);
    }
    rdns.push(atv(
        rfc4519::CN,
        der::Any::encode_from(&Utf8StringRef::new(cn).map_err(err)?).map_err(err)?,
    )?);
    Ok(RdnSequence(rdns))
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode_upper(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(":")
}

/// A key label unique to this ceremony, so that a token shared by several deployments (or a
/// ceremony interrupted and run again) never mixes keys up.
fn label(role: &str) -> Result<String, RandomFailed> {
    let date = time::OffsetDateTime::now_utc().date();
    Ok(format!("nca-{role}-{date}-{}", random_hex(4)?))
}

/// The policies the issuing CA asserts: the centre's own and every policy an end-entity
/// profile writes. A relying party that requires an end-entity policy (`openssl verify -policy
/// 1.2.398.3.3.2.3 -explicit_policy`) accepts a path only if every CA in it asserts that policy
/// or anyPolicy; naming them keeps the CA's certificate saying which policies it issues under
/// (anyPolicy would vouch for any). A profile with a new policy needs a new issuing CA
/// certificate.
fn issuing_policies(
    centre: Option<const_oid::ObjectIdentifier>,
    profiles: &Profiles,
) -> Vec<const_oid::ObjectIdentifier> {
    let mut out: Vec<_> = centre.into_iter().collect();
    for p in profiles.names().filter_map(|n| profiles.get(n)) {
        for oid in &p.policy_oids {
            if !out.contains(oid) {
                out.push(*oid);
            }
        }
    }
    out
}

fn spki_of(key: &Arc<dyn Signer>) -> Result<spki::SubjectPublicKeyInfoOwned, BuildError> {
    der::Decode::from_der(key.spki_der()).map_err(|e| BuildError {
        what: "SPKI",
        message: e.to_string(),
    })
}

/// A CA certificate's TBS for `subject_key`, signed by `issuer_key` under `issuer`, with a fresh
/// serial.
fn ca_tbs(
    issuer: Name,
    issuer_key: &Arc<dyn Signer>,
    subject: Name,
    subject_key: spki::SubjectPublicKeyInfoOwned,
    validity: (i64, i64),
    extensions: Vec<x509_cert::ext::Extension>,
) -> Result<x509_cert::TbsCertificate, BuildError> {
    build::tbs(build::TbsParts {
        serial: build::random_serial()?,
        signature: issuer_key.algorithm(),
        issuer,
        not_before: validity.0,
        not_after: validity.1,
        subject,
        spki: subject_key,
        extensions,
    })
}

/// A key the ceremony made and the certificate issued for it.
struct Made {
    issued: Issued,
    key: Held,
    algorithm: KeyAlgorithm,
}

/// Where a key the ceremony made is kept.
enum Held {
    /// In the configured key store, under this label.
    KeyStore(String),
    /// In a file under the data directory, handed to whoever uses it.
    File(&'static str),
}

impl Made {
    /// The report's line for it: subject, serial, fingerprint and, for a key in the key store,
    /// where it is.
    fn line(&self, what: &str, key_store: &str) -> String {
        let key = match &self.key {
            Held::KeyStore(label) => format!(" key=[{key_store}:{label}]"),
            Held::File(_) => String::new(),
        };
        format!(
            "{what}: subject=[{}] serial=[{}] sha256=[{}]{key}",
            self.issued.subject,
            self.issued.serial,
            fingerprint(&self.issued.der)
        )
    }

    /// Its `ca_keys` row, made at `at`, for a deployment whose key store is of kind `key_store`.
    fn row(&self, id: String, role: &str, key_store: &str, at: i64) -> CaKeyRecord {
        let (key_store, key_label) = match &self.key {
            Held::KeyStore(label) => (key_store, label.as_str()),
            Held::File(path) => ("file", *path),
        };
        CaKeyRecord {
            id,
            role: role.to_string(),
            key_store: key_store.to_string(),
            key_label: key_label.to_string(),
            algorithm: self.algorithm.name().to_string(),
            serial: self.issued.serial.clone(),
            certificate: self.issued.der.clone(),
            created_at: at,
        }
    }
}

/// The operator listener's TLS key and the first administrator's, under the data directory.
const TLS_KEY_FILE: &str = "tls/server.key";
const ADMIN_KEY_FILE: &str = "admin/auth.key";

/// Writes a file atomically (temp file, then rename), with mode 0600 for secrets.
pub(crate) fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CeremonyError> {
    let io = |source| CeremonyError::File {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, if secret { 0o600 } else { 0o644 });
    {
        use std::io::Write;
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// A key made in this process to be handed out as a file (a TLS endpoint's, an administrator's,
/// an operator's development credentials): PKCS#8 PEM and its SPKI.
pub(crate) fn key_file(alg: KeyAlgorithm) -> Result<(String, Vec<u8>), KeyStoreError> {
    let pkcs8 = keys::new_pkcs8(alg)?;
    let spki = keys::SoftwareKey::from_pkcs8("file", &pkcs8)?.spki_der().to_vec();
    Ok((pem("PRIVATE KEY", &pkcs8), spki))
}

/// Runs the ceremony. Refuses, changing nothing, when the database already has CA keys.
pub async fn init(
    config: Arc<Config>,
    store: Store,
    key_store: Arc<dyn KeyStore>,
) -> Result<CeremonyReport, CeremonyError> {
    if !store.ca_keys().await?.is_empty() {
        return Err(CeremonyError::AlreadyInitialised);
    }
    let cfg = &*config;
    // The ceremony is run at the server's console (`nca init`, or the first `nca serve` of a
    // development deployment).
    let console = Actor::console();
    let start = now();
    let (root, root_made) = make_root(cfg, &store, &*key_store, start).await?;
    let profiles = Profiles::load(&cfg.ca.profiles_dir)?;
    let (issuing, issuing_made) = make_issuing(cfg, &store, &*key_store, &root, &profiles, start).await?;
    // The CA as it will open, without its delegated signers yet: what issues theirs.
    let ca = Ca {
        profiles,
        config: Arc::clone(&config),
        store: store.clone(),
        root,
        issuing,
        ocsp: None,
        service: None,
        tsa: None,
        responder: None,
    };
    let entity = |cn: &str| entity(cfg, cn);
    let ocsp = make_delegated(&ca, &*key_store, "ocsp", &entity(&cfg.ca.ocsp_common_name), &console).await?;
    let service = make_delegated(&ca, &*key_store, "service", &entity("NCA SERVICE"), &console).await?;
    let tsa = make_delegated(&ca, &*key_store, "tsa", &entity(TSA_COMMON_NAME), &console).await?;
    let (tls_key, tls) = make_file_credential(&ca, "tls-server", &tls_subject(cfg), TLS_KEY_FILE, &console).await?;
    let (admin_key, admin) = make_file_credential(&ca, "admin", &admin_subject(cfg), ADMIN_KEY_FILE, &console).await?;

    let data = &cfg.data_dir;
    write_files(
        data,
        &ca,
        (&tls_key, &tls.issued),
        &tsa.issued,
        (&admin_key, &admin.issued),
    )?;

    let kind = key_store.kind();
    let delegated_id = |role: &str| format!("{}-{role}", ca.issuing.id);
    let rows = [
        root_made.row(ca.root.id.clone(), "root", kind, start),
        issuing_made.row(ca.issuing.id.clone(), "issuing", kind, start),
        ocsp.row(delegated_id("ocsp"), "ocsp", kind, start),
        service.row(delegated_id("service"), "service", kind, start),
        tsa.row(delegated_id("tsa"), "tsa", kind, start),
        tls.row(delegated_id("tls"), "tls", kind, start),
    ];
    commit(&store, &rows, &console).await?;

    let mut report = CeremonyReport::default();
    for (what, made) in [
        ("root CA", &root_made),
        ("issuing CA", &issuing_made),
        ("OCSP responder", &ocsp),
        ("service signer", &service),
        ("time-stamping authority", &tsa),
        ("TLS server", &tls),
        ("administrator", &admin),
    ] {
        report.lines.push(made.line(what, kind));
    }
    report
        .lines
        .push(format!("administrator credentials: {}", data.join("admin").display()));
    Ok(report)
}

/// The root: self-signed, for offline use only (it signs the issuing CA and its own CRLs).
async fn make_root(
    cfg: &Config,
    store: &Store,
    key_store: &dyn KeyStore,
    start: i64,
) -> Result<(Issuer, Made), CeremonyError> {
    let label = label("root")?;
    let key = key_store.generate(&label, cfg.root_key)?;
    let name = ca_name(&cfg.ca.country, &cfg.ca.organization, &cfg.ca.root_common_name)?;
    let validity = (start, start + i64::from(cfg.ca.root_validity_days) * 86_400);
    let spki = spki_of(&key)?;
    let name_der = name.to_der().map_err(|e| BuildError {
        what: "name",
        message: e.to_string(),
    })?;
    let ski = build::key_identifier(&spki);
    let extensions = build::ca_extensions(&spki, None, &[], None)?;
    let cert = CaCertificate {
        issuer_id: &cfg.ca.root_id,
        // Self-signed: the issuer the lint holds it against is the root itself.
        issuer: lint::IssuerFacts {
            subject_der: &name_der,
            ski: &ski,
            algorithm: key.algorithm(),
            not_before: validity.0,
            not_after: validity.1,
        },
        signer: &key,
        tbs: ca_tbs(name.clone(), &key, name, spki, validity, extensions)?,
    };
    certify(cfg, store, &cfg.ca.root_id, &key, label, cert).await
}

/// The issuing CA, under the root: pathLen 0, the policies it issues under, CDP and AIA to the
/// root; valid no longer than the root.
async fn make_issuing(
    cfg: &Config,
    store: &Store,
    key_store: &dyn KeyStore,
    root: &Issuer,
    profiles: &Profiles,
    start: i64,
) -> Result<(Issuer, Made), CeremonyError> {
    let label = label("issuing")?;
    let key = key_store.generate(&label, cfg.issuing_key)?;
    let spki = spki_of(&key)?;
    let policies = issuing_policies(cfg.ca.issuing_policy.parse().ok(), profiles);
    let validity = (
        start,
        (start + i64::from(cfg.ca.issuing_validity_days) * 86_400).min(root.not_after),
    );
    let root_name: Name = der::Decode::from_der(&root.subject_der).map_err(|e| BuildError {
        what: "name",
        message: e.to_string(),
    })?;
    let name = ca_name(&cfg.ca.country, &cfg.ca.organization, &cfg.ca.issuing_common_name)?;
    let root_urls = issuer_urls(cfg, &root.id);
    let extensions = build::ca_extensions(&spki, Some((&root.ski, &root_urls)), &policies, Some(0))?;
    let cert = CaCertificate {
        issuer_id: &root.id,
        issuer: root.facts(),
        signer: &root.signer,
        tbs: ca_tbs(root_name, &root.signer, name, spki, validity, extensions)?,
    };
    certify(cfg, store, &cfg.ca.issuing_id, &key, label, cert).await
}

/// Issues a CA certificate of the hierarchy, at the console, and makes the issuer `id` of it and
/// its key (labelled `label` in the key store).
async fn certify(
    cfg: &Config,
    store: &Store,
    id: &str,
    key: &Arc<dyn Signer>,
    label: String,
    cert: CaCertificate<'_>,
) -> Result<(Issuer, Made), CeremonyError> {
    let issued = issue_ca_certificate(store, cert, &Actor::console()).await?;
    let issuer = Issuer::new(id, issued.der.clone(), Arc::clone(key), cfg)?;
    let made = Made {
        issued,
        key: Held::KeyStore(label),
        algorithm: key.algorithm(),
    };
    Ok((issuer, made))
}

/// A subject of the centre's (its organisation, when it has one) named `cn`.
fn entity(cfg: &Config, cn: &str) -> SubjectInput {
    SubjectInput {
        common_name: Some(cn.to_string()),
        org: (!cfg.ca.organization.is_empty()).then(|| cfg.ca.organization.clone()),
        ..Default::default()
    }
}

/// The operator listener's TLS subject: its first DNS name (or `localhost`), with all its names
/// and addresses.
fn tls_subject(cfg: &Config) -> SubjectInput {
    let cn = cfg.ca.tls_dns_names.first().map(String::as_str).unwrap_or("localhost");
    SubjectInput {
        dns_names: cfg.ca.tls_dns_names.clone(),
        ip_addresses: cfg.ca.tls_ip_addresses.clone(),
        ..entity(cfg, cn)
    }
}

/// The first administrator, as the configuration names them.
fn admin_subject(cfg: &Config) -> SubjectInput {
    SubjectInput {
        iin: Some(cfg.admin.iin.clone()),
        surname: Some(cfg.admin.surname.clone()),
        name: Some(cfg.admin.name.clone()),
        patronymic: Some(cfg.admin.patronymic.clone()),
        ..Default::default()
    }
}

/// The algorithm of a delegated signer's key: the issuing CA's family, at its smallest size.
fn delegated_algorithm(issuing: KeyAlgorithm) -> KeyAlgorithm {
    if issuing == KeyAlgorithm::EcP256 {
        KeyAlgorithm::EcP256
    } else {
        KeyAlgorithm::Rsa2048
    }
}

/// A delegated signer (OCSP responder, service signer, time-stamping authority): a key in the
/// key store, of the issuing CA's family, and its certificate from the issuing CA under the
/// profile named as its role.
async fn make_delegated(
    ca: &Ca,
    key_store: &dyn KeyStore,
    role: &str,
    subject: &SubjectInput,
    actor: &Actor,
) -> Result<Made, CeremonyError> {
    let algorithm = delegated_algorithm(ca.issuing.algorithm());
    let label = label(role)?;
    let key = key_store.generate(&label, algorithm)?;
    let issued = ca.issue_for_own_key(role, key.spki_der(), subject, actor).await?;
    Ok(Made {
        issued,
        key: Held::KeyStore(label),
        algorithm,
    })
}

/// A P-256 key made in this process to be handed out in the file `file` (the TLS listener's,
/// since rustls needs the key; the first administrator's client key), and its certificate from
/// the issuing CA under `profile`. Returns the key's PKCS#8 PEM beside it.
async fn make_file_credential(
    ca: &Ca,
    profile: &str,
    subject: &SubjectInput,
    file: &'static str,
    actor: &Actor,
) -> Result<(String, Made), CeremonyError> {
    let (key_pem, spki) = key_file(KeyAlgorithm::EcP256)?;
    let issued = ca.issue_for_own_key(profile, &spki, subject, actor).await?;
    let made = Made {
        issued,
        key: Held::File(file),
        algorithm: KeyAlgorithm::EcP256,
    };
    Ok((key_pem, made))
}

/// The ceremony's files in the data directory: the TLS listener's key and chain, the CA and TSA
/// certificates, the first administrator's credentials (key PEM and certificate, for each).
/// Written before the commit, so that a deployment the database calls initialised has them.
fn write_files(
    data: &Path,
    ca: &Ca,
    tls: (&str, &Issued),
    tsa: &Issued,
    admin: (&str, &Issued),
) -> Result<(), CeremonyError> {
    let chain = format!("{}{}", ca.issuing.cert_pem(), ca.root.cert_pem());
    write_file(&data.join(TLS_KEY_FILE), tls.0.as_bytes(), true)?;
    write_file(
        &data.join("tls/server.crt"),
        format!("{}{}", tls.1.pem(), ca.issuing.cert_pem()).as_bytes(),
        false,
    )?;
    write_file(&data.join("ca/root.pem"), ca.root.cert_pem().as_bytes(), false)?;
    write_file(&data.join("ca/issuing.pem"), ca.issuing.cert_pem().as_bytes(), false)?;
    write_file(&data.join("ca/chain.pem"), chain.as_bytes(), false)?;
    write_file(&data.join("ca/tsa.pem"), tsa.pem().as_bytes(), false)?;
    write_file(&data.join(ADMIN_KEY_FILE), admin.0.as_bytes(), true)?;
    write_file(&data.join("admin/auth.crt"), admin.1.pem().as_bytes(), false)?;
    write_file(&data.join("admin/chain.pem"), chain.as_bytes(), false)
}

/// The ceremony's commit: its `ca_keys` rows, in one transaction. A ceremony that raced another
/// to it finds the deployment initialised; what it made is never used.
async fn commit(store: &Store, rows: &[CaKeyRecord], console: &Actor) -> Result<(), CeremonyError> {
    store.commit_ceremony(rows, console).await.map_err(|e| match e {
        StoreError::AlreadyInitialised => CeremonyError::AlreadyInitialised,
        e @ (StoreError::Database(_)
        | StoreError::Migration { .. }
        | StoreError::SerialTaken
        | StoreError::AlreadyCertified
        | StoreError::KeyBoundElsewhere
        | StoreError::Unavailable(_)
        | StoreError::StateConflict(_)) => CeremonyError::Store(e),
    })
}

/// Writes the TSA's current certificate to `ca/tsa.pem` in the data directory, beside the CA
/// certificates, for clients that verify tokens requested without certReq.
pub fn write_tsa_certificate(ca: &Ca) -> Result<(), CeremonyError> {
    match &ca.tsa {
        Some(t) => write_file(
            &ca.config.data_dir.join("ca/tsa.pem"),
            pem("CERTIFICATE", &t.cert_der).as_bytes(),
            false,
        ),
        None => Ok(()),
    }
}

/// The TSA certificate's common name.
const TSA_COMMON_NAME: &str = "NCA TIME-STAMPING AUTHORITY";

/// Gives a deployment made before the TSA existed its TSA key (in `key_store`, the deployment's,
/// of the issuing CA's family) and certificate, recorded in `store`. Returns the report line, or
/// `None` when the deployment has one; the caller reopens the CA to use it.
pub async fn ensure_tsa(ca: &Ca, store: &Store, key_store: &dyn KeyStore) -> Result<Option<String>, CeremonyError> {
    if ca.tsa.is_some() {
        return Ok(None);
    }
    let subject = entity(&ca.config, TSA_COMMON_NAME);
    let tsa = make_delegated(ca, key_store, "tsa", &subject, &Actor::Service).await?;
    store
        .add_ca_key(&tsa.row(format!("{}-tsa", ca.issuing.id), "tsa", key_store.kind(), now()))
        .await?;
    Ok(Some(tsa.line("time-stamping authority", key_store.kind())))
}

/// Delegated certificates (OCSP responder, service signer) are short-lived; a new certificate
/// for the same key is issued when less than this is left.
const RENEW_DELEGATED_BEFORE: i64 = 30 * 86_400;

/// Renews the delegated signers' certificates that are near their end, for the keys they
/// already have, recording them in `store`. Returns a line per renewal; the caller reopens the CA
/// to use them.
pub async fn renew_delegated(ca: &Ca, store: &Store) -> Result<Vec<String>, CeremonyError> {
    let mut done = Vec::new();
    let tsa = ca.tsa.as_ref().map(|t| super::Delegated {
        signer: std::sync::Arc::clone(&t.signer),
        cert_der: t.cert_der.clone(),
    });
    for (role, profile, current) in [
        ("ocsp", "ocsp", &ca.ocsp),
        ("service", "service", &ca.service),
        ("tsa", "tsa", &tsa),
    ] {
        let Some(d) = current else { continue };
        let cert: x509_cert::Certificate = der::Decode::from_der(&d.cert_der).map_err(|e| BuildError {
            what: "delegated certificate",
            message: e.to_string(),
        })?;
        let not_after = cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64;
        if not_after - now() > RENEW_DELEGATED_BEFORE {
            continue;
        }
        let (mut cn, mut org) = (None, None);
        for atv in cert.tbs_certificate.subject.0.iter().flat_map(|r| r.0.iter()) {
            let value = Utf8StringRef::try_from(&atv.value).map(|s| s.as_str().to_string()).ok();
            if atv.oid == const_oid::db::rfc4519::CN {
                cn = value;
            } else if atv.oid == const_oid::db::rfc4519::O {
                org = value;
            }
        }
        let subject = SubjectInput {
            common_name: cn,
            org,
            ..Default::default()
        };
        let issued = ca
            .issue_for_own_key(profile, d.signer.spki_der(), &subject, &Actor::Service)
            .await?;
        store
            .replace_delegated_certificate(role, &issued.serial, &issued.der)
            .await?;
        done.push(format!(
            "{role} certificate renewed: serial=[{}] until {}",
            issued.serial,
            super::status::rfc3339(issued.not_after)
        ));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CertificateStatus;

    fn key() -> Arc<dyn Signer> {
        let pkcs8 = keys::new_pkcs8(KeyAlgorithm::EcP256).unwrap();
        Arc::new(keys::SoftwareKey::from_pkcs8("test-root", &pkcs8).unwrap())
    }

    /// A self-signed root for a day, linted against an issuer whose validity ends `issuer_ends`
    /// seconds after the certificate's.
    async fn root(store: &Store, key: &Arc<dyn Signer>, issuer_ends: i64) -> Result<Issued, IssueError> {
        let name = ca_name("KZ", "", "TEST ROOT").unwrap();
        let t = now();
        let validity = (t, t + 86_400);
        let spki = spki_of(key).unwrap();
        let (name_der, ski) = (name.to_der().unwrap(), build::key_identifier(&spki));
        let extensions = build::ca_extensions(&spki, None, &[], None).unwrap();
        let cert = CaCertificate {
            issuer_id: "test-root",
            issuer: lint::IssuerFacts {
                subject_der: &name_der,
                ski: &ski,
                algorithm: key.algorithm(),
                not_before: validity.0,
                not_after: validity.1 + issuer_ends,
            },
            signer: key,
            tbs: ca_tbs(name.clone(), key, name, spki, validity, extensions).unwrap(),
        };
        issue_ca_certificate(store, cert, &Actor::console()).await
    }

    /// The ceremony's CA certificates take the leaves' pipeline: recorded issued under the `ca`
    /// profile and counted; one the lint refuses is counted refused, and neither signed nor
    /// recorded.
    #[tokio::test]
    async fn ca_certificates_are_recorded_linted_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let key = key();
        let before = crate::pki::issuance_counts();
        let issued = root(&store, &key, 0).await.unwrap();
        let record = store.certificate(&issued.serial).await.unwrap().unwrap();
        assert_eq!(record.status, CertificateStatus::Issued);
        assert_eq!((record.profile.as_str(), record.issuer.as_str()), ("ca", "test-root"));
        assert_eq!(record.der.as_deref(), Some(issued.der.as_slice()));
        assert_eq!(record.subject, issued.subject);
        assert!(issued.subject.contains("TEST ROOT"), "{}", issued.subject);
        // Signed by its own key, over the TBS that was recorded pending.
        let cert = <x509_cert::Certificate as der::Decode>::from_der(&issued.der).unwrap();
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let spki = spki_of(&key).unwrap();
        let verifier = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            spki.subject_public_key.raw_bytes(),
        );
        assert!(verifier.verify(&tbs, cert.signature.raw_bytes()).is_ok());
        assert!(crate::pki::issuance_counts().issued > before.issued);

        // A certificate that outlives its issuer: refused by the lint before any record.
        let before = crate::pki::issuance_counts();
        let refused = root(&store, &key, -1).await;
        assert!(matches!(refused, Err(IssueError::Lint(_))), "{refused:?}");
        assert!(crate::pki::issuance_counts().refused > before.refused);
        assert_eq!(store.abandon_stale_pending(now() + 60).await.unwrap(), Vec::new());
        store.close().await;
    }
}
