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

/// The OS random source failed: nothing meant to be unpredictable is made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed")]
pub struct RandomFailed;

/// `n` bytes from the OS random source, in lower-case hex.
pub fn random_hex(n: usize) -> Result<String, RandomFailed> {
    let mut r = vec![0u8; n];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut r).map_err(|_| RandomFailed)?;
    Ok(hex::encode(r))
}

/// A fresh label for an operator's key: prefix, date, a few random hex digits. The digits keep
/// two keys made on one day on one token apart; a failed draw would make every label of the day
/// the same, so it is an error instead.
pub fn key_label(prefix: &str) -> Result<String, RandomFailed> {
    let date = time::OffsetDateTime::now_utc().date();
    Ok(format!(
        "{prefix}{}{:02}{:02}-{}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        random_hex(3)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_labels_carry_the_date_and_fresh_digits() -> Result<(), RandomFailed> {
        let today = time::OffsetDateTime::now_utc().date();
        let day = format!("{}{:02}{:02}", today.year(), u8::from(today.month()), today.day());
        let labels = (0..8).map(|_| key_label(AUTH_PREFIX)).collect::<Result<Vec<_>, _>>()?;
        for l in &labels {
            let digits = l
                .strip_prefix(AUTH_PREFIX)
                .and_then(|rest| rest.strip_prefix(day.as_str()))
                .and_then(|rest| rest.strip_prefix('-'));
            assert!(
                digits.is_some_and(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_hexdigit())),
                "{l}"
            );
        }
        // A draw that silently failed would leave the digits the same (zeros) every time.
        let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
        assert!(distinct.len() > 1, "{labels:?}");
        Ok(())
    }

    #[test]
    fn random_hex_is_as_long_as_asked() -> Result<(), RandomFailed> {
        assert_eq!(random_hex(4)?.len(), 8);
        assert_ne!(random_hex(16)?, random_hex(16)?);
        Ok(())
    }
}
