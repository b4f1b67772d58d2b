//! The policy authority: judges keys against profiles. It signs nothing.

use spki::SubjectPublicKeyInfoOwned;

use super::PolicyError;
use super::profile::Profile;
use crate::keys::{self, KeyAlgorithm, oid};

/// Smallest and largest RSA moduli accepted for end entities.
pub const RSA_MIN_BITS: usize = 2048;
pub const RSA_MAX_BITS: usize = 4096;

/// Accepts RSA of 2048 to 4096 bits and P-256, where the profile allows the family.
pub fn judge_key(spki: &SubjectPublicKeyInfoOwned, profile: &Profile) -> Result<KeyAlgorithm, PolicyError> {
    let alg = if spki.algorithm.oid == oid::RSA_ENCRYPTION {
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| PolicyError::UnsupportedKey("RSA key with unused bits".into()))?;
        let bits =
            keys::rsa_modulus_bits(raw).ok_or_else(|| PolicyError::UnsupportedKey("RSA key does not decode".into()))?;
        if bits < RSA_MIN_BITS {
            return Err(PolicyError::WeakKey { bits });
        }
        if bits > RSA_MAX_BITS {
            return Err(PolicyError::UnsupportedKey(format!(
                "RSA-{bits}: at most {RSA_MAX_BITS} bits"
            )));
        }
        if bits >= 4096 {
            KeyAlgorithm::Rsa4096
        } else {
            KeyAlgorithm::Rsa2048
        }
    } else if spki.algorithm.oid == oid::EC_PUBLIC_KEY {
        match keys::algorithm_of_spki(spki) {
            Some((a, _)) => a,
            None => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "unnamed".into());
                return Err(PolicyError::UnsupportedKey(format!("EC curve {curve} (only P-256)")));
            }
        }
    } else {
        return Err(PolicyError::UnsupportedKey(format!("algorithm {}", spki.algorithm.oid)));
    };
    if !profile.algorithms.contains(&alg) {
        return Err(PolicyError::KeyNotAllowed {
            profile: profile.name.clone(),
            algorithm: alg.name(),
        });
    }
    if alg == KeyAlgorithm::EcP256 && spki.subject_public_key.raw_bytes().len() != 65 {
        return Err(PolicyError::UnsupportedKey(
            "P-256 key is not an uncompressed point".into(),
        ));
    }
    Ok(alg)
}
