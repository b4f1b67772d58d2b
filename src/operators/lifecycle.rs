//! The operator's lifecycle (regulation §15): added with an AUTH and a SIGN certificate,
//! suspended during an absence, resumed, dismissed on a date (certificates revoked as of then)
//! or at once (a lost key).

use std::path::PathBuf;

use super::Roll;
use super::centres::Centres;
use crate::ids::{IdError, Iin};
use crate::keys::KeyAlgorithm;
use crate::model::Actor;
use crate::pki::ceremony::{key_file, write_file};
use crate::pki::revocation::{RevokeError, RevokeRequest};
use crate::pki::subject::SubjectInput;
use crate::pki::{Ca, IssueError, IssueRequest, Issued, pem};
use crate::store::{OperatorRecord, StoreError, now};

/// Who is added, as the administrator states it.
#[derive(Debug, Clone)]
pub struct NewOperator {
    pub iin: String,
    pub surname: String,
    pub name: String,
    pub patronymic: Option<String>,
    pub centre: String,
    /// An administrator's AUTH certificate is of the `admin` profile.
    pub administrator: bool,
}

/// Where the operator's keys come from.
pub enum OperatorKeys {
    /// CSRs made where the keys live (the operator's token); nothing secret passes here.
    Csrs { auth: Vec<u8>, sign: Vec<u8> },
    /// Development: keys made here and written with the certificates to `dir` (auth.key,
    /// auth.crt, sign.key, sign.crt, chain.pem).
    Files { dir: PathBuf, algorithm: KeyAlgorithm },
    /// Keys made on the operator's PKCS#11 token (non-extractable; PIN from NCA_OPERATOR_PIN),
    /// the certificates written onto the token beside them.
    Token { label: String, algorithm: KeyAlgorithm },
}

/// How a dismissal takes effect.
pub enum Dismissal {
    /// At the start of this local date (YYYY-MM-DD), at least the configured notice ahead; the
    /// certificates are revoked as of then (affiliationChanged).
    On(String),
    /// Now, with this revocation reason (a lost key: keyCompromise).
    Now { reason: String },
}

/// Why a lifecycle step was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The IIN is malformed.
    #[error("IIN {0}")]
    Iin(IdError),
    /// No registration centre with this id in centres.toml.
    #[error("no registration centre {0:?}")]
    UnknownCentre(String),
    /// An operator with this IIN is on the roll already.
    #[error("operator {0} exists")]
    Exists(String),
    /// No operator with this IIN.
    #[error("no operator {0}")]
    NotFound(String),
    /// The operator is not in a status this step starts from.
    #[error("operator {iin} is {status}")]
    Status { iin: String, status: String },
    /// A dismissal date closer than the notice the regulation asks.
    #[error("a dismissal must be scheduled at least {0} days ahead (or made at once with --now)")]
    TooSoon(u32),
    /// A date that is not YYYY-MM-DD.
    #[error("{0:?} is not a date (YYYY-MM-DD)")]
    BadDate(String),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    #[error("{0}")]
    Files(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OperatorError {
    pub fn code(&self) -> &'static str {
        match self {
            OperatorError::Iin(_) => "iin_invalid",
            OperatorError::UnknownCentre(_) => "centre_not_found",
            OperatorError::Exists(_) => "operator_exists",
            OperatorError::NotFound(_) => "operator_not_found",
            OperatorError::Status { .. } => "operator_status_conflict",
            OperatorError::TooSoon(_) => "dismissal_too_soon",
            OperatorError::BadDate(_) => "date_invalid",
            OperatorError::Issue(e) => e.code(),
            OperatorError::Revoke(e) => e.code(),
            OperatorError::Files(_) | OperatorError::Store(_) => "internal",
        }
    }
}

/// What `add` made.
#[derive(Debug, Clone)]
pub struct Added {
    pub record: OperatorRecord,
    pub auth: Issued,
    pub sign: Issued,
}

/// Adds an operator: checks the IIN and the centre, issues AUTH and SIGN, records the operator.
pub async fn add(
    roll: Roll<'_>,
    centres: &Centres,
    new: NewOperator,
    keys: OperatorKeys,
    actor: &Actor,
) -> Result<Added, OperatorError> {
    Iin::parse(&new.iin).map_err(OperatorError::Iin)?;
    if centres.centre(&new.centre).is_none() {
        return Err(OperatorError::UnknownCentre(new.centre));
    }
    if roll.store.operator(&new.iin).await?.is_some() {
        return Err(OperatorError::Exists(new.iin));
    }
    let subject = SubjectInput {
        iin: Some(new.iin.clone()),
        surname: Some(new.surname.clone()),
        name: Some(new.name.clone()),
        patronymic: new.patronymic.clone(),
        ..Default::default()
    };
    let auth_profile = if new.administrator { "admin" } else { "operator-auth" };
    let (auth, sign) = match &keys {
        OperatorKeys::Csrs { auth, sign } => {
            let req = |profile: &str, csr: &Vec<u8>| IssueRequest {
                profile: profile.into(),
                csr: csr.clone(),
                subject: subject.clone(),
                application: None,
                actor: actor.clone(),
            };
            (
                roll.ca.issue(req(auth_profile, auth)).await?,
                roll.ca.issue(req("operator-sign", sign)).await?,
            )
        }
        OperatorKeys::Token { label, algorithm } => {
            let pin = crate::keys::token::operator_pin().map_err(|e| OperatorError::Files(e.to_string()))?;
            let module = roll.config.key_store.pkcs11_module.clone();
            let (token, alg) = (label.clone(), *algorithm);
            let fresh = |prefix| {
                crate::keys::token::key_label(prefix)
                    .map_err(|e @ crate::keys::token::RandomFailed| OperatorError::Files(e.to_string()))
            };
            let auth_label = fresh(crate::keys::token::AUTH_PREFIX)?;
            let sign_label = fresh(crate::keys::token::SIGN_PREFIX)?;
            let made = tokio::task::spawn_blocking(move || -> Result<_, crate::keys::KeyStoreError> {
                use crate::keys::KeyStore;
                let store = crate::keys::token::open_token(module, &token, pin)?;
                let auth = store.generate(&auth_label, alg)?;
                let sign = store.generate(&sign_label, alg)?;
                Ok((store, auth, sign))
            })
            .await
            .map_err(|e| OperatorError::Files(e.to_string()))?
            .map_err(|e| OperatorError::Files(format!("operator token {label:?}: {e}")))?;
            let (store, auth_key, sign_key) = made;
            let auth = roll
                .ca
                .issue_for_own_key(auth_profile, auth_key.spki_der(), &subject, actor)
                .await?;
            let sign = roll
                .ca
                .issue_for_own_key("operator-sign", sign_key.spki_der(), &subject, actor)
                .await?;
            let (auth_label, sign_label) = (auth_key.label().to_string(), sign_key.label().to_string());
            let (auth_der, sign_der) = (auth.der.clone(), sign.der.clone());
            tokio::task::spawn_blocking(move || {
                store.put_certificate(&auth_label, &auth_der)?;
                store.put_certificate(&sign_label, &sign_der)
            })
            .await
            .map_err(|e| OperatorError::Files(e.to_string()))?
            .map_err(|e| OperatorError::Files(format!("writing certificates to {label:?}: {e}")))?;
            (auth, sign)
        }
        OperatorKeys::Files { dir, algorithm } => {
            let files = |e: &dyn std::fmt::Display| OperatorError::Files(e.to_string());
            let (auth_key, auth_spki) = key_file(*algorithm).map_err(|e| files(&e))?;
            let (sign_key, sign_spki) = key_file(*algorithm).map_err(|e| files(&e))?;
            let auth = roll
                .ca
                .issue_for_own_key(auth_profile, &auth_spki, &subject, actor)
                .await?;
            let sign = roll
                .ca
                .issue_for_own_key("operator-sign", &sign_spki, &subject, actor)
                .await?;
            let chain = format!("{}{}", roll.ca.issuing.cert_pem(), roll.ca.root.cert_pem());
            for (name, bytes, secret) in [
                ("auth.key", auth_key.as_bytes(), true),
                ("auth.crt", auth.pem().as_bytes(), false),
                ("sign.key", sign_key.as_bytes(), true),
                ("sign.crt", sign.pem().as_bytes(), false),
                ("chain.pem", chain.as_bytes(), false),
            ] {
                write_file(&dir.join(name), bytes, secret).map_err(|e| files(&e))?;
            }
            (auth, sign)
        }
    };
    let t = now();
    let record = OperatorRecord {
        iin: new.iin.clone(),
        surname: new.surname,
        name: new.name,
        patronymic: new.patronymic,
        centre: new.centre,
        role: if new.administrator { "administrator" } else { "operator" }.into(),
        status: "active".into(),
        auth_serial: auth.serial.clone(),
        sign_serial: sign.serial.clone(),
        created_at: t,
        last_activity_at: t,
        dismissed_at: None,
    };
    if let Err(e) = roll.store.add_operator(&record, actor).await {
        // Another administrator added the same person meanwhile: these certificates belong to
        // no one on the roll, so they must not stay valid.
        for serial in [&auth.serial, &sign.serial] {
            let _ = roll
                .ca
                .revoke(revoke_request(serial, "cessationOfOperation", None, actor))
                .await;
        }
        return Err(match e {
            StoreError::StateConflict(_) => OperatorError::Exists(record.iin),
            e => e.into(),
        });
    }
    tracing::info!(target: "audit", "operator added: iin=[{}] centre=[{}] role=[{}] auth=[{}] sign=[{}]",
        record.iin, record.centre, record.role, auth.serial, sign.serial);
    Ok(Added { record, auth, sign })
}

fn revoke_request(serial: &str, reason: &str, at: Option<String>, actor: &Actor) -> RevokeRequest {
    RevokeRequest {
        serial: serial.to_string(),
        reason: reason.to_string(),
        at,
        invalidity_date: None,
        actor: actor.clone(),
    }
}

async fn transition(
    roll: Roll<'_>,
    iin: &str,
    from: &[&str],
    to: &str,
    actor: &Actor,
) -> Result<OperatorRecord, OperatorError> {
    let current = roll
        .store
        .operator(iin)
        .await?
        .ok_or_else(|| OperatorError::NotFound(iin.to_string()))?;
    match roll.store.set_operator_status(iin, from, to, None, actor).await? {
        Some(r) => {
            tracing::info!(target: "audit", "operator {to}: iin=[{iin}]");
            Ok(r)
        }
        None => Err(OperatorError::Status {
            iin: iin.to_string(),
            status: current.status,
        }),
    }
}

/// Suspends an active operator (an absence of more than 15 days, §15).
pub async fn suspend(roll: Roll<'_>, iin: &str, actor: &Actor) -> Result<OperatorRecord, OperatorError> {
    transition(roll, iin, &["active"], "suspended", actor).await
}

/// Resumes a suspended operator; their inactivity clock starts again.
pub async fn resume(roll: Roll<'_>, iin: &str, actor: &Actor) -> Result<OperatorRecord, OperatorError> {
    transition(roll, iin, &["suspended"], "active", actor).await
}

/// Dismisses an operator, on a date or at once; revokes both certificates as of then.
pub async fn dismiss(
    roll: Roll<'_>,
    iin: &str,
    how: Dismissal,
    actor: &Actor,
) -> Result<OperatorRecord, OperatorError> {
    let o = roll
        .store
        .operator(iin)
        .await?
        .ok_or_else(|| OperatorError::NotFound(iin.to_string()))?;
    if o.status == "dismissed" {
        return Err(OperatorError::Status {
            iin: iin.to_string(),
            status: o.status,
        });
    }
    let (at, reason) = match &how {
        Dismissal::Now { reason } => (now(), reason.clone()),
        Dismissal::On(date) => {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let day = time::Date::parse(date, &fmt).map_err(|_| OperatorError::BadDate(date.clone()))?;
            let at = day
                .midnight()
                .assume_offset(roll.config.timezone_offset())
                .unix_timestamp();
            let notice = roll.config.operators.dismiss_notice_days;
            if at - now() < i64::from(notice) * 86_400 {
                return Err(OperatorError::TooSoon(notice));
            }
            (at, "affiliationChanged".to_string())
        }
    };
    let at_text = crate::pki::status::rfc3339(at);
    for serial in [&o.auth_serial, &o.sign_serial] {
        let when = matches!(how, Dismissal::On(_)).then(|| at_text.clone());
        roll.ca.revoke(revoke_request(serial, &reason, when, actor)).await?;
    }
    let record = match how {
        Dismissal::Now { .. } => {
            roll.store
                .set_operator_status(iin, &["active", "suspended"], "dismissed", Some(at), actor)
                .await?
        }
        Dismissal::On(_) => roll.store.schedule_dismissal(iin, at, actor).await?,
    }
    .ok_or_else(|| OperatorError::NotFound(iin.to_string()))?;
    tracing::info!(target: "audit", "operator dismissed: iin=[{iin}] at=[{at_text}] reason=[{reason}]");
    Ok(record)
}

/// The PEM a client receives for an added operator: both certificates and the chain.
pub fn certificates_pem(ca: &Ca, added: &Added) -> String {
    format!(
        "{}{}{}{}",
        added.auth.pem(),
        added.sign.pem(),
        ca.issuing.cert_pem(),
        pem("CERTIFICATE", &ca.root.cert_der)
    )
}
