//! The workstation side, run at a service centre: the operator's token (PKCS#11) and the CMS
//! signatures made with it, the HTTPS client that logs in with the token's AUTH key, and the
//! two processes run from the workstation: P4 (keys and certificates onto the applicant's ID
//! card, [`enroll`]) and P5 (revocation at the centre, [`revoke`]). Nothing here runs on the CA
//! host, and nothing of the applicant's is written to the workstation's disk: the PIN, the
//! requests and the certificates live in memory and on the card only.

pub(crate) mod card;
pub(crate) mod client;
pub mod enroll;
pub mod revoke;
pub mod timestamp;

use std::path::PathBuf;
use std::sync::Arc;

use cryptoki::types::AuthPin;

use der::Decode;
use x509_cert::Certificate;

use crate::keys::token::{self, AUTH_PREFIX, SIGN_PREFIX, open_token};
use crate::keys::{KeyStore, KeyStoreError, Pkcs11Store, Signer};

/// Why the workstation could not do its part. None of these carries a PIN.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    /// The token has no SIGN key with a certificate beside it.
    #[error("no SIGN key with its certificate on token {0:?}")]
    NoSigningKey(String),
    /// The operator's token has no AUTH key with a certificate beside it: nothing to log in to
    /// the operator listener with.
    #[error("no AUTH key with its certificate on token {0:?}")]
    NoAuthKey(String),
    /// The operator's PIN is not in the environment.
    #[error("the operator's PIN is not set (NCA_OPERATOR_PIN)")]
    PinMissing,
    /// Standard input gave no card PIN (the applicant types it there; it is never an argument).
    #[error("no card PIN on standard input")]
    CardPinMissing,
    /// The applicant's card refused or failed.
    #[error(transparent)]
    Card(#[from] card::CardError),
    /// The service could not be reached or answered with an error.
    #[error(transparent)]
    Server(#[from] client::ServerError),
    /// The application was refused under the regulation (a result, recorded by the service).
    #[error("application {number} refused ({code}): {message}")]
    Refused {
        number: String,
        code: String,
        message: String,
    },
    /// An argument is malformed: an application number whose check character does not match,
    /// an IIN that is not digits.
    #[error("{0}")]
    Invalid(String),
    /// The operator's centre has no application with this number for this applicant.
    #[error("no application {number} of the applicant IIN {iin} at this operator's centre")]
    NoApplication { number: String, iin: String },
    /// What the service sent is not what this enrolment asked for (another application's
    /// document to sign, certificates for other keys or another person): nothing is signed or
    /// written.
    #[error("{0}")]
    Mismatch(String),
    /// The enrolment stopped where `NCA_STATION_STOP_AFTER` said (tests of interrupted
    /// enrolments); a rerun with `--application` resumes.
    #[error(
        "stopped after {step} as NCA_STATION_STOP_AFTER asks; application {number} resumes with --application {number}"
    )]
    Stopped { step: &'static str, number: String },
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error("encoding: {0}")]
    Encoding(#[from] der::Error),
    #[error(transparent)]
    Build(#[from] crate::pki::build::BuildError),
    #[error(transparent)]
    Sign(#[from] crate::pki::signed_data::SignError),
}

/// The operator's PIN, from `NCA_OPERATOR_PIN`; never an argument, never logged.
pub fn operator_pin() -> Result<String, StationError> {
    token::operator_pin().map_err(|token::PinMissing| StationError::PinMissing)
}

/// CMS SignedData, attached, DER, as [`crate::pki::signed_data::sign`] makes it.
pub fn sign_cms(signer: &dyn Signer, cert_der: &[u8], content: &[u8]) -> Result<Vec<u8>, StationError> {
    Ok(crate::pki::signed_data::sign(signer, cert_der, content, true)?)
}

/// `nca station sign`: signs `content` with the SIGN key on the token whose certificate beside
/// it is the newest (a token keeps the keys of earlier certificates until they are deleted).
pub fn sign_with_token(module: PathBuf, token: &str, pin: String, content: &[u8]) -> Result<Vec<u8>, StationError> {
    let store = open_token(module, token, pin)?;
    let (label, cert) =
        newest_with_certificate(&store, SIGN_PREFIX)?.ok_or_else(|| StationError::NoSigningKey(token.to_string()))?;
    let key = store.open(&label)?;
    sign_cms(key.as_ref(), &cert, content)
}

/// The operator's keys on their token, each the newest with a certificate beside it.
pub struct OperatorToken {
    pub auth: Arc<dyn Signer>,
    pub auth_cert: Vec<u8>,
    pub sign: Arc<dyn Signer>,
    pub sign_cert: Vec<u8>,
}

impl OperatorToken {
    /// Opens the operator's token with `NCA_OPERATOR_PIN`.
    pub fn open(module: PathBuf, token: &str) -> Result<Self, StationError> {
        let store = open_token(module, token, operator_pin()?)?;
        let (auth_label, auth_cert) =
            newest_with_certificate(&store, AUTH_PREFIX)?.ok_or_else(|| StationError::NoAuthKey(token.to_string()))?;
        let (sign_label, sign_cert) = newest_with_certificate(&store, SIGN_PREFIX)?
            .ok_or_else(|| StationError::NoSigningKey(token.to_string()))?;
        Ok(OperatorToken {
            auth: store.open(&auth_label)?,
            auth_cert,
            sign: store.open(&sign_label)?,
            sign_cert,
        })
    }
}

/// The label and certificate of the key with this prefix whose certificate is the newest.
fn newest_with_certificate(store: &Pkcs11Store, prefix: &str) -> Result<Option<(String, Vec<u8>)>, StationError> {
    let mut newest: Option<(std::time::Duration, String, Vec<u8>)> = None;
    for label in store.key_labels(prefix)? {
        let Some(cert) = store.certificate(&label)? else {
            continue;
        };
        let not_before = Certificate::from_der(&cert)?
            .tbs_certificate
            .validity
            .not_before
            .to_unix_duration();
        if newest.as_ref().is_none_or(|(t, _, _)| not_before >= *t) {
            newest = Some((not_before, label, cert));
        }
    }
    Ok(newest.map(|(_, label, cert)| (label, cert)))
}

/// Runs a blocking token operation from async code: on the multi-threaded runtime the worker
/// hands its other tasks over while the token works; elsewhere it simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Reads the card PIN, one line, from standard input: typed by the applicant at a terminal (not
/// echoed), or piped in by a PIN pad driver or a test. Never an argument, never logged.
pub fn read_card_pin() -> Result<AuthPin, StationError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("Card PIN (the applicant types it): ");
        let _ = std::io::stderr().flush();
        // Best effort: without stty the PIN is still read, only echoed.
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.map_err(|_| StationError::CardPinMissing)?;
    // The buffer itself becomes the secret (zeroed when dropped): no copy of the PIN is left.
    let len = line.trim_end_matches(['\r', '\n']).len();
    line.truncate(len);
    if line.is_empty() {
        return Err(StationError::CardPinMissing);
    }
    Ok(AuthPin::from(line))
}
