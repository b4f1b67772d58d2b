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
use super::profile::Profiles;
use super::subject::SubjectInput;
use super::{Ca, IssueError, Issued, Issuer, issuer_urls, lint, pem};
use crate::config::Config;
use crate::keys::{self, KeyAlgorithm, KeyStore, KeyStoreError, Signer};
use crate::model::Actor;
use crate::store::{CaKeyRecord, PendingCertificate, Store, StoreError, now};

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
    Lint(#[from] lint::LintError),
    #[error(transparent)]
    Issue(#[from] IssueError),
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
fn label(role: &str) -> String {
    let mut r = [0u8; 4];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut r);
    let date = time::OffsetDateTime::now_utc().date();
    format!("nca-{role}-{date}-{}", hex::encode(r))
}

/// The policies the issuing CA asserts: the centre's own and every policy an end-entity
/// profile writes. A relying party that requires an end-entity policy (`openssl verify -policy
/// 1.2.398.3.3.2.3 -explicit_policy`) accepts a path only if every CA in it asserts that policy
/// or anyPolicy; naming them keeps the CA's certificate saying which policies it issues under
/// (anyPolicy would vouch for any). A profile with a new policy needs a new issuing CA
/// certificate.
pub fn issuing_policies(
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

/// Makes, lints, records and signs one CA certificate.
#[allow(clippy::too_many_arguments)]
async fn ca_certificate(
    store: &Store,
    issuer_id: &str,
    issuer_name: &Name,
    issuer_signer: &Arc<dyn Signer>,
    issuer_validity: Option<(i64, i64)>,
    subject: Name,
    subject_key: &Arc<dyn Signer>,
    validity: (i64, i64),
    extensions: Vec<x509_cert::ext::Extension>,
) -> Result<Vec<u8>, CeremonyError> {
    let spki: spki::SubjectPublicKeyInfoOwned =
        der::Decode::from_der(subject_key.spki_der()).map_err(|e| BuildError {
            what: "SPKI",
            message: e.to_string(),
        })?;
    let serial = build::random_serial()?;
    let alg = issuer_signer.algorithm();
    let tbs = build::tbs(build::TbsParts {
        serial: serial.clone(),
        signature: alg,
        issuer: issuer_name.clone(),
        not_before: validity.0,
        not_after: validity.1,
        subject: subject.clone(),
        spki,
        extensions,
    })?;
    let tbs_der = tbs.to_der().map_err(|e| BuildError {
        what: "TBS",
        message: e.to_string(),
    })?;
    let issuer_der = issuer_name.to_der().map_err(|e| BuildError {
        what: "name",
        message: e.to_string(),
    })?;
    let issuer_spki: spki::SubjectPublicKeyInfoOwned =
        der::Decode::from_der(issuer_signer.spki_der()).map_err(|e| BuildError {
            what: "SPKI",
            message: e.to_string(),
        })?;
    let ski = build::key_identifier(&issuer_spki);
    let (inb, ina) = issuer_validity.unwrap_or(validity);
    lint::ca(
        &tbs_der,
        &lint::IssuerFacts {
            subject_der: &issuer_der,
            ski: &ski,
            algorithm: alg,
            not_before: inb,
            not_after: ina,
        },
    )?;
    let serial = hex::encode(serial);
    let cn = super::subject::display(&subject);
    store
        .add_pending(&PendingCertificate {
            issuer: issuer_id.to_string(),
            serial: serial.clone(),
            profile: "ca".into(),
            subject: cn.clone(),
            holder: cn,
            key_sha256: hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                subject_key.spki_der(),
            )),
            not_before: validity.0,
            not_after: validity.1,
            tbs: tbs_der.clone(),
            application: None,
        })
        .await?;
    let sig = keys::sign(issuer_signer, tbs_der.clone()).await?;
    let der = build::assemble(&tbs_der, alg, &sig)?;
    // Root and issuing certificates are made at the ceremony, at the server's console.
    store.mark_issued(issuer_id, &serial, &der, &Actor::console()).await?;
    tracing::info!(target: "audit", "issued: serial=[{serial}] application=[] profile=[ca] subject=[{}]", super::subject::display(&subject));
    Ok(der)
}

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
    let mut report = CeremonyReport::default();
    let start = now();

    // Root: self-signed, offline use only (signs the issuing CA and its own CRL).
    let root_label = label("root");
    let root_key = key_store.generate(&root_label, cfg.root_key)?;
    let root_name = ca_name(&cfg.ca.country, &cfg.ca.organization, &cfg.ca.root_common_name)?;
    let root_validity = (start, start + i64::from(cfg.ca.root_validity_days) * 86_400);
    let root_spki: spki::SubjectPublicKeyInfoOwned =
        der::Decode::from_der(root_key.spki_der()).map_err(|e| BuildError {
            what: "SPKI",
            message: e.to_string(),
        })?;
    let root_der = ca_certificate(
        &store,
        &cfg.ca.root_id,
        &root_name,
        &root_key,
        None,
        root_name.clone(),
        &root_key,
        root_validity,
        build::ca_extensions(&root_spki, None, &[], None)?,
    )
    .await?;
    let root = Issuer::new(&cfg.ca.root_id, root_der, Arc::clone(&root_key), cfg)?;

    // Issuing CA under the root: pathLen 0, the centre's policy, CDP and AIA to the root.
    let issuing_label = label("issuing");
    let issuing_key = key_store.generate(&issuing_label, cfg.issuing_key)?;
    let issuing_spki: spki::SubjectPublicKeyInfoOwned =
        der::Decode::from_der(issuing_key.spki_der()).map_err(|e| BuildError {
            what: "SPKI",
            message: e.to_string(),
        })?;
    let profiles = Profiles::load(&cfg.ca.profiles_dir)?;
    let policies = issuing_policies(cfg.ca.issuing_policy.parse().ok(), &profiles);
    let issuing_validity = (
        start,
        (start + i64::from(cfg.ca.issuing_validity_days) * 86_400).min(root.not_after),
    );
    let issuing_der = ca_certificate(
        &store,
        &root.id,
        &root_name,
        &root_key,
        Some((root.not_before, root.not_after)),
        ca_name(&cfg.ca.country, &cfg.ca.organization, &cfg.ca.issuing_common_name)?,
        &issuing_key,
        issuing_validity,
        build::ca_extensions(
            &issuing_spki,
            Some((&root.ski, &issuer_urls(cfg, &root.id))),
            &policies,
            Some(0),
        )?,
    )
    .await?;
    let issuing = Issuer::new(&cfg.ca.issuing_id, issuing_der, Arc::clone(&issuing_key), cfg)?;

    let mut ca = Ca {
        profiles,
        config: Arc::clone(&config),
        store: store.clone(),
        key_store: Arc::clone(&key_store),
        root,
        issuing,
        ocsp: None,
        service: None,
        tsa: None,
        responder: None,
    };
    let org = (!cfg.ca.organization.is_empty()).then(|| cfg.ca.organization.clone());
    let entity = |cn: &str| SubjectInput {
        common_name: Some(cn.to_string()),
        org: org.clone(),
        ..Default::default()
    };

    // Delegated signers with keys in the key store, of the issuing CA's family.
    let delegated_alg = if cfg.issuing_key == KeyAlgorithm::EcP256 {
        KeyAlgorithm::EcP256
    } else {
        KeyAlgorithm::Rsa2048
    };
    let ocsp_label = label("ocsp");
    let ocsp_key = key_store.generate(&ocsp_label, delegated_alg)?;
    let ocsp = ca
        .issue_for_own_key("ocsp", ocsp_key.spki_der(), &entity(&cfg.ca.ocsp_common_name), &console)
        .await?;
    let service_label = label("service");
    let service_key = key_store.generate(&service_label, delegated_alg)?;
    let service = ca
        .issue_for_own_key("service", service_key.spki_der(), &entity("NCA SERVICE"), &console)
        .await?;
    let tsa_label = label("tsa");
    let tsa_key = key_store.generate(&tsa_label, delegated_alg)?;
    let tsa = ca
        .issue_for_own_key("tsa", tsa_key.spki_der(), &entity(TSA_COMMON_NAME), &console)
        .await?;

    // The operator listener's TLS key lives in a file the service reads (rustls needs the key).
    let (tls_key_pem, tls_spki) = key_file(KeyAlgorithm::EcP256)?;
    let mut tls_subject = entity(cfg.ca.tls_dns_names.first().map(String::as_str).unwrap_or("localhost"));
    tls_subject.dns_names = cfg.ca.tls_dns_names.clone();
    tls_subject.ip_addresses = cfg.ca.tls_ip_addresses.clone();
    let tls = ca
        .issue_for_own_key("tls-server", &tls_spki, &tls_subject, &console)
        .await?;

    // The first administrator: a client key and certificate in files, for the admin API.
    let (admin_key_pem, admin_spki) = key_file(KeyAlgorithm::EcP256)?;
    let admin_subject = SubjectInput {
        iin: Some(cfg.admin.iin.clone()),
        surname: Some(cfg.admin.surname.clone()),
        name: Some(cfg.admin.name.clone()),
        patronymic: Some(cfg.admin.patronymic.clone()),
        ..Default::default()
    };
    let admin = ca
        .issue_for_own_key("admin", &admin_spki, &admin_subject, &console)
        .await?;

    let data = &cfg.data_dir;
    let chain = format!("{}{}", ca.issuing.cert_pem(), ca.root.cert_pem());
    write_file(&data.join("tls/server.key"), tls_key_pem.as_bytes(), true)?;
    write_file(
        &data.join("tls/server.crt"),
        format!("{}{}", tls.pem(), ca.issuing.cert_pem()).as_bytes(),
        false,
    )?;
    write_file(&data.join("ca/root.pem"), ca.root.cert_pem().as_bytes(), false)?;
    write_file(&data.join("ca/issuing.pem"), ca.issuing.cert_pem().as_bytes(), false)?;
    write_file(&data.join("ca/chain.pem"), chain.as_bytes(), false)?;
    write_file(&data.join("ca/tsa.pem"), tsa.pem().as_bytes(), false)?;
    write_file(&data.join("admin/auth.key"), admin_key_pem.as_bytes(), true)?;
    write_file(&data.join("admin/auth.crt"), admin.pem().as_bytes(), false)?;
    write_file(&data.join("admin/chain.pem"), chain.as_bytes(), false)?;

    let record =
        |id: &str, role: &str, store_kind: &str, label: &str, alg: KeyAlgorithm, issued: &Issued| CaKeyRecord {
            id: id.to_string(),
            role: role.to_string(),
            key_store: store_kind.to_string(),
            key_label: label.to_string(),
            algorithm: alg.name().to_string(),
            serial: issued.serial.clone(),
            certificate: issued.der.clone(),
            created_at: start,
        };
    let hierarchy = |i: &Issuer, role: &str, label: &str| CaKeyRecord {
        id: i.id.clone(),
        role: role.to_string(),
        key_store: key_store.kind().to_string(),
        key_label: label.to_string(),
        algorithm: i.algorithm().name().to_string(),
        serial: serial_of(&i.cert_der),
        certificate: i.cert_der.clone(),
        created_at: start,
    };
    let kind = key_store.kind();
    let rows = vec![
        hierarchy(&ca.root, "root", &root_label),
        hierarchy(&ca.issuing, "issuing", &issuing_label),
        record(
            &format!("{}-ocsp", ca.issuing.id),
            "ocsp",
            kind,
            &ocsp_label,
            delegated_alg,
            &ocsp,
        ),
        record(
            &format!("{}-service", ca.issuing.id),
            "service",
            kind,
            &service_label,
            delegated_alg,
            &service,
        ),
        record(
            &format!("{}-tsa", ca.issuing.id),
            "tsa",
            kind,
            &tsa_label,
            delegated_alg,
            &tsa,
        ),
        record(
            &format!("{}-tls", ca.issuing.id),
            "tls",
            "file",
            "tls/server.key",
            KeyAlgorithm::EcP256,
            &tls,
        ),
    ];
    store.commit_ceremony(&rows, &console).await.map_err(|e| match e {
        StoreError::AlreadyInitialised => CeremonyError::AlreadyInitialised,
        e => e.into(),
    })?;

    for (what, subject, serial, der, label) in [
        (
            "root CA",
            ca.root.subject.clone(),
            serial_of(&ca.root.cert_der),
            ca.root.cert_der.clone(),
            Some(root_label),
        ),
        (
            "issuing CA",
            ca.issuing.subject.clone(),
            serial_of(&ca.issuing.cert_der),
            ca.issuing.cert_der.clone(),
            Some(issuing_label),
        ),
        (
            "OCSP responder",
            ocsp.subject.clone(),
            ocsp.serial.clone(),
            ocsp.der.clone(),
            Some(ocsp_label),
        ),
        (
            "service signer",
            service.subject.clone(),
            service.serial.clone(),
            service.der.clone(),
            Some(service_label),
        ),
        (
            "time-stamping authority",
            tsa.subject.clone(),
            tsa.serial.clone(),
            tsa.der.clone(),
            Some(tsa_label),
        ),
        (
            "TLS server",
            tls.subject.clone(),
            tls.serial.clone(),
            tls.der.clone(),
            None,
        ),
        (
            "administrator",
            admin.subject.clone(),
            admin.serial.clone(),
            admin.der.clone(),
            None,
        ),
    ] {
        let key = label
            .map(|l| format!(" key=[{}:{l}]", key_store.kind()))
            .unwrap_or_default();
        report.lines.push(format!(
            "{what}: subject=[{subject}] serial=[{serial}] sha256=[{}]{key}",
            fingerprint(&der)
        ));
    }
    report
        .lines
        .push(format!("administrator credentials: {}", data.join("admin").display()));
    ca.ocsp = Some(super::Delegated {
        signer: ocsp_key,
        cert_der: ocsp.der,
    });
    ca.service = Some(super::Delegated {
        signer: service_key,
        cert_der: service.der,
    });
    Ok(report)
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
pub const TSA_COMMON_NAME: &str = "NCA TIME-STAMPING AUTHORITY";

/// Gives a deployment made before the TSA existed its TSA key (in the configured key store, of
/// the issuing CA's family) and certificate. Returns the report line, or `None` when the
/// deployment has one; the caller reopens the CA to use it.
pub async fn ensure_tsa(ca: &Ca) -> Result<Option<String>, CeremonyError> {
    if ca.tsa.is_some() {
        return Ok(None);
    }
    let alg = if ca.issuing.algorithm() == KeyAlgorithm::EcP256 {
        KeyAlgorithm::EcP256
    } else {
        KeyAlgorithm::Rsa2048
    };
    let tsa_label = label("tsa");
    let key = ca.key_store.generate(&tsa_label, alg)?;
    let org = (!ca.config.ca.organization.is_empty()).then(|| ca.config.ca.organization.clone());
    let subject = SubjectInput {
        common_name: Some(TSA_COMMON_NAME.into()),
        org,
        ..Default::default()
    };
    let issued = ca
        .issue_for_own_key("tsa", key.spki_der(), &subject, &Actor::Service)
        .await?;
    ca.store
        .add_ca_key(&CaKeyRecord {
            id: format!("{}-tsa", ca.issuing.id),
            role: "tsa".into(),
            key_store: ca.key_store.kind().into(),
            key_label: tsa_label.clone(),
            algorithm: alg.name().into(),
            serial: issued.serial.clone(),
            certificate: issued.der.clone(),
            created_at: now(),
        })
        .await?;
    Ok(Some(format!(
        "time-stamping authority: subject=[{}] serial=[{}] sha256=[{}] key=[{}:{tsa_label}]",
        issued.subject,
        issued.serial,
        fingerprint(&issued.der),
        ca.key_store.kind()
    )))
}

fn serial_of(cert_der: &[u8]) -> String {
    <x509_cert::Certificate as der::Decode>::from_der(cert_der)
        .map(|c| hex::encode(c.tbs_certificate.serial_number.as_bytes()))
        .unwrap_or_default()
}

/// Delegated certificates (OCSP responder, service signer) are short-lived; a new certificate
/// for the same key is issued when less than this is left.
pub const RENEW_DELEGATED_BEFORE: i64 = 30 * 86_400;

/// Renews the delegated signers' certificates that are near their end, for the keys they
/// already have. Returns a line per renewal; the caller reopens the CA to use them.
pub async fn renew_delegated(ca: &Ca) -> Result<Vec<String>, CeremonyError> {
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
        ca.store
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
