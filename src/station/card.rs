//! The applicant's ID card, through PKCS#11: the PIN tried only when the card's own count of
//! tries allows it, the AUTH and SIGN key pairs made on the card, the PKCS#10 requests signed by
//! them, the certificates written beside them and read back.
//!
//! The card's keys are labelled `AUTH-YYYYMMDD-<application>` and `SIGN-YYYYMMDD-<application>`:
//! the label says what the key is for, when it was made and for which application, so that a
//! rerun of an interrupted enrolment finds the keys already made and does not make them again.

use std::path::Path;
use std::sync::Arc;

use cryptoki::types::AuthPin;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::keys::token::{AUTH_PREFIX, SIGN_PREFIX};
use crate::keys::{KeyAlgorithm, KeyStore, KeyStoreError, PinTries, Pkcs11Store, Pkcs11Token, Signer};

/// Room the enrolment needs on a card that reports its free memory: two key pairs and two
/// certificates, with a margin. A card that reports less is refused before anything is made.
const ROOM_NEEDED: usize = 6 * 1024;

/// Why the card could not do its part. None of these carries the PIN.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The card refused the PIN. Nothing was made; the tries left are what the card's flags say.
    #[error("the card refused the PIN{}", tries_left(.0))]
    WrongPin(PinTries),
    /// The card's PIN is locked after too many wrong tries; it was not tried again. Only the
    /// card issuer's unblocking procedure helps.
    #[error("the card's PIN is locked; the applicant must have it unblocked first")]
    PinLocked,
    /// The card has no room for two more key pairs and their certificates.
    #[error("the card has no room left for the AUTH and SIGN keys and certificates")]
    NoRoom,
    /// The card was taken out of the reader (or stopped answering) part-way; a rerun of the same
    /// command with the same application number resumes.
    #[error("the card was removed during the enrolment; insert it and run the command again with --application")]
    Removed,
    /// The application's keys are not on this card: its CSRs were made on another card, or the
    /// keys were deleted.
    #[error("the keys of application {0} are not on this card")]
    KeysMissing(String),
    /// A certificate does not belong to the card's key it was meant for, or did not read back.
    #[error("certificate check: {0}")]
    Mismatch(String),
    /// Any other refusal of the card or its PKCS#11 module.
    #[error("the card: {0}")]
    Token(KeyStoreError),
}

impl From<KeyStoreError> for CardError {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::PinLocked => CardError::PinLocked,
            KeyStoreError::TokenFull => CardError::NoRoom,
            KeyStoreError::TokenRemoved => CardError::Removed,
            e => CardError::Token(e),
        }
    }
}

fn tries_left(t: &PinTries) -> &'static str {
    if t.locked {
        "; the card has now locked it"
    } else if t.final_try {
        "; ONE try is left before the card locks the PIN"
    } else if t.count_low {
        "; the card says few tries are left before it locks the PIN"
    } else {
        ""
    }
}

/// Which of the pair a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Auth,
    Sign,
}

impl Usage {
    fn prefix(self) -> &'static str {
        match self {
            Usage::Auth => AUTH_PREFIX,
            Usage::Sign => SIGN_PREFIX,
        }
    }
}

/// An ID card, logged in with the applicant's PIN.
pub struct Card {
    store: Pkcs11Store,
}

impl Card {
    /// Finds the card and logs in. A PIN the card reports as locked is not tried; a wrong one
    /// comes back with the tries left as the card reports them after the failure.
    pub fn open(module: &Path, label: &str, pin: &AuthPin) -> Result<Card, CardError> {
        let token = Pkcs11Token::find(module, label)?;
        if token.pin_tries()?.locked {
            return Err(CardError::PinLocked);
        }
        let store = match token.login(pin, 1) {
            Ok(store) => store,
            Err(KeyStoreError::PinIncorrect) => {
                return Err(CardError::WrongPin(token.pin_tries().unwrap_or_default()));
            }
            Err(e) => return Err(e.into()),
        };
        // Cards report free memory once logged in, if at all (SoftHSM2 never does).
        if token.free_private_memory()?.is_some_and(|free| free < ROOM_NEEDED) {
            return Err(CardError::NoRoom);
        }
        Ok(Card { store })
    }

    /// The label of the application's key of this usage on the card, if it is there.
    pub fn key_of(&self, usage: Usage, application: &str) -> Result<Option<String>, CardError> {
        Ok(self
            .store
            .key_labels(usage.prefix())?
            .into_iter()
            .find(|l| application_of(l).as_deref() == Some(application)))
    }

    /// The applications whose keys are on the card, newest key first.
    pub fn applications(&self) -> Result<Vec<String>, CardError> {
        let mut labels = self.store.key_labels(AUTH_PREFIX)?;
        labels.extend(self.store.key_labels(SIGN_PREFIX)?);
        // YYYYMMDD follows the prefix: sorting on it puts the newest first.
        labels.sort_by_key(|l| std::cmp::Reverse(l.get(5..13).unwrap_or("").to_string()));
        let mut out: Vec<String> = Vec::new();
        for n in labels.iter().filter_map(|l| application_of(l)) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Makes a key pair on the card for the application: sensitive, never extractable, on the
    /// token, private, CKA_ID shared by both halves (and later the certificate).
    pub fn generate(&self, usage: Usage, application: &str, alg: KeyAlgorithm) -> Result<String, CardError> {
        let date = time::OffsetDateTime::now_utc().date();
        let label = format!(
            "{}{}{:02}{:02}-{application}",
            usage.prefix(),
            date.year(),
            u8::from(date.month()),
            date.day()
        );
        self.store.generate(&label, alg)?;
        Ok(label)
    }

    pub fn key(&self, label: &str) -> Result<Arc<dyn Signer>, CardError> {
        Ok(self.store.open(label)?)
    }

    /// Removes a key pair this run made (and anything else under its label).
    pub fn destroy(&self, label: &str) -> Result<(), CardError> {
        self.store.destroy(label)?;
        Ok(())
    }

    /// The certificate paired with the key by CKA_ID, if any.
    pub fn certificate_of(&self, label: &str) -> Result<Option<Vec<u8>>, CardError> {
        Ok(self.store.certificate_of_key(label)?)
    }

    /// Writes the certificate beside its key (same CKA_ID and label) unless it is there, then
    /// reads it back by the key's CKA_ID and checks it is the same certificate, for that key.
    pub fn write_certificate(&self, label: &str, cert_der: &[u8]) -> Result<(), CardError> {
        let key = self.key(label)?;
        if !same_key(cert_der, key.spki_der()) {
            return Err(CardError::Mismatch(format!(
                "the certificate is not for the card's key {label}"
            )));
        }
        match self.certificate_of(label)? {
            Some(existing) if existing == cert_der => return Ok(()),
            Some(_) => {
                return Err(CardError::Mismatch(format!(
                    "another certificate is already paired with {label}"
                )));
            }
            None => self.store.put_certificate(label, cert_der)?,
        }
        match self.certificate_of(label)? {
            Some(back) if back == cert_der => Ok(()),
            Some(_) => Err(CardError::Mismatch(format!(
                "the certificate read back from {label} differs from the one written"
            ))),
            None => Err(CardError::Mismatch(format!("no certificate reads back beside {label}"))),
        }
    }
}

/// The application number a card key label carries (`AUTH-YYYYMMDD-<number>`).
fn application_of(label: &str) -> Option<String> {
    let rest = label
        .strip_prefix(AUTH_PREFIX)
        .or_else(|| label.strip_prefix(SIGN_PREFIX))?;
    let (date, number) = rest.split_once('-')?;
    (date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) && !number.is_empty()).then(|| number.to_string())
}

/// Whether a certificate (DER) is for the key with this SPKI (DER).
pub fn same_key(cert_der: &[u8], spki_der: &[u8]) -> bool {
    Certificate::from_der(cert_der)
        .ok()
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok())
        .is_some_and(|d| d == spki_der)
}

/// A PKCS#10 request signed by the key on the card, PEM. The CA takes the subject from the
/// application, not from here; the request carries the IIN so that it reads for what it is.
pub fn request(key: &dyn Signer, iin: &str) -> Result<String, super::StationError> {
    let subject: x509_cert::name::Name = format!("CN=IIN{iin}").parse()?;
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: SubjectPublicKeyInfoOwned::from_der(key.spki_der())?,
        attributes: Default::default(),
    };
    let signature = key.sign_blocking(&info.to_der()?)?;
    let req = CertReq {
        info,
        algorithm: key.algorithm().signature_algorithm(),
        signature: der::asn1::BitString::from_bytes(&signature)?,
    };
    Ok(crate::pki::pem("CERTIFICATE REQUEST", &req.to_der()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_carry_the_application() {
        assert_eq!(
            application_of("AUTH-20261127-K3F9-2XQ7-8M1Z").as_deref(),
            Some("K3F9-2XQ7-8M1Z")
        );
        assert_eq!(application_of("SIGN-20261127-X").as_deref(), Some("X"));
        // An operator's key (random suffix, no application) and other labels carry none.
        assert_eq!(application_of("AUTH-2026112-abc").as_deref(), None);
        assert_eq!(application_of("CA-root").as_deref(), None);
    }

    #[test]
    fn a_wrong_pin_says_what_the_card_reports() {
        let msg = |t: PinTries| CardError::WrongPin(t).to_string();
        assert_eq!(msg(PinTries::default()), "the card refused the PIN");
        assert!(
            msg(PinTries {
                count_low: true,
                ..Default::default()
            })
            .contains("few tries")
        );
        assert!(
            msg(PinTries {
                count_low: true,
                final_try: true,
                ..Default::default()
            })
            .contains("ONE try")
        );
    }

    #[test]
    fn a_request_proves_possession_of_the_key_that_signed_it() {
        for alg in [KeyAlgorithm::EcP256, KeyAlgorithm::Rsa2048] {
            let pkcs8 = crate::keys::new_pkcs8(alg).unwrap();
            let key = crate::keys::SoftwareKey::from_pkcs8("t", &pkcs8).unwrap();
            let pem = request(&key, "850315306048").unwrap();
            let parsed = crate::pki::csr::parse(pem.as_bytes()).unwrap();
            parsed.check_possession().unwrap();
            assert_eq!(parsed.spki_der, key.spki_der());
        }
    }

    #[test]
    fn a_full_card_and_a_removed_card_are_named() {
        assert!(matches!(CardError::from(KeyStoreError::TokenFull), CardError::NoRoom));
        assert!(matches!(
            CardError::from(KeyStoreError::TokenRemoved),
            CardError::Removed
        ));
        assert!(matches!(
            CardError::from(KeyStoreError::PinLocked),
            CardError::PinLocked
        ));
    }
}
