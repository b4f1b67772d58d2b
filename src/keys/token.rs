//! An operator's (or an applicant's card's) PKCS#11 token, as both sides use it: the CA host
//! makes an operator's keys on it at `nca operator add --token`, the workstation signs and logs
//! in with them. Kept here, beneath both, so that neither depends on the other.

use std::path::PathBuf;

use super::{KeyStoreError, Pkcs11Config, Pkcs11Store};

/// Label prefixes of the operator's keys on their token.
pub const AUTH_PREFIX: &str = "AUTH-";
pub const SIGN_PREFIX: &str = "SIGN-";

/// The operator's PIN is not in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operator's PIN is not set (NCA_OPERATOR_PIN)")]
pub struct PinMissing;

/// Opens an operator's (or a card's) token by label, with the PIN given.
pub fn open_token(module: PathBuf, label: &str, pin: String) -> Result<Pkcs11Store, KeyStoreError> {
    Pkcs11Store::open(Pkcs11Config {
        module,
        token: label.to_string(),
        pin,
        sessions: 1,
    })
}

/// The operator's PIN, from `NCA_OPERATOR_PIN`; never an argument, never logged.
pub fn operator_pin() -> Result<String, PinMissing> {
    std::env::var("NCA_OPERATOR_PIN")
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or(PinMissing)
}

/// A fresh label for an operator's key: prefix, date, a few random hex digits.
pub fn key_label(prefix: &str) -> String {
    let mut r = [0u8; 3];
    // The digits only keep two keys made on one day apart on one token; the token refuses a
    // duplicate label, so a failed RNG shows as that refusal rather than as a weak secret.
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut r);
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{prefix}{}{:02}{:02}-{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        hex::encode(r)
    )
}
