//! Certificate profiles as data: one TOML file per profile in `ca-config/profiles/`, with the
//! copies built into the binary as the fallback. The step kinds are code; what a profile puts
//! into a certificate is data.

use std::collections::BTreeMap;
use std::path::Path;

use const_oid::ObjectIdentifier;
use serde::Deserialize;

use crate::keys::KeyAlgorithm;

/// The profiles nca knows by name, with their embedded copies.
pub const EMBEDDED: [(&str, &str); 11] = [
    (
        "individual-auth",
        include_str!("../../ca-config/profiles/individual-auth.toml"),
    ),
    (
        "individual-sign",
        include_str!("../../ca-config/profiles/individual-sign.toml"),
    ),
    ("legal-auth", include_str!("../../ca-config/profiles/legal-auth.toml")),
    ("legal-sign", include_str!("../../ca-config/profiles/legal-sign.toml")),
    (
        "operator-auth",
        include_str!("../../ca-config/profiles/operator-auth.toml"),
    ),
    (
        "operator-sign",
        include_str!("../../ca-config/profiles/operator-sign.toml"),
    ),
    ("admin", include_str!("../../ca-config/profiles/admin.toml")),
    ("ocsp", include_str!("../../ca-config/profiles/ocsp.toml")),
    ("tls-server", include_str!("../../ca-config/profiles/tls-server.toml")),
    ("service", include_str!("../../ca-config/profiles/service.toml")),
    ("tsa", include_str!("../../ca-config/profiles/tsa.toml")),
];

/// Who the subject is: a person identified by IIN, or an entity named by a common name
/// (the OCSP responder, the TLS server, the service itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    Person,
    Entity,
}

/// Whether a part of the request is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Forbidden,
    Optional,
    Required,
}

/// One attribute of the subject DN, in the order the profile lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum DnAttribute {
    CN,
    SURNAME,
    SERIALNUMBER,
    C,
    L,
    ST,
    O,
    OU,
    GIVENNAME,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SanKind {
    Email,
    Dns,
    Ip,
}

/// keyUsage bits by their RFC 5280 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyUsageBit {
    DigitalSignature,
    NonRepudiation,
    KeyEncipherment,
    DataEncipherment,
    KeyAgreement,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub subject: SubjectKind,
    /// Attribute order of the subject DN; attributes without a value are left out.
    pub dn: Vec<DnAttribute>,
    #[serde(default = "forbidden")]
    pub organization: Presence,
    #[serde(default = "forbidden")]
    pub role: Presence,
    /// Role OIDs a request may name must start with this prefix (legal-entity roles).
    #[serde(default)]
    pub role_prefix: String,
    pub validity_days: u32,
    pub key_algorithms: Vec<String>,
    /// Marked critical, always. keyEncipherment is dropped for EC keys, which cannot encipher.
    pub key_usage: Vec<KeyUsageBit>,
    pub extended_key_usage: Vec<String>,
    /// extendedKeyUsage marked critical (RFC 3161 §2.3 asks it of a TSA's certificate).
    #[serde(default)]
    pub extended_key_usage_critical: bool,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub cps: bool,
    #[serde(default)]
    pub subject_alt_name: Vec<SanKind>,
    #[serde(default)]
    pub crl_distribution_point: bool,
    #[serde(default)]
    pub freshest_crl: bool,
    #[serde(default)]
    pub authority_info_access: bool,
    #[serde(default)]
    pub ocsp_nocheck: bool,

    #[serde(skip)]
    pub eku_oids: Vec<ObjectIdentifier>,
    #[serde(skip)]
    pub policy_oids: Vec<ObjectIdentifier>,
    #[serde(skip)]
    pub algorithms: Vec<KeyAlgorithm>,
}

fn forbidden() -> Presence {
    Presence::Forbidden
}

/// Why a profile file is not usable. Fatal at start.
#[derive(Debug, thiserror::Error)]
#[error("profile {profile}: {message}")]
pub struct ProfileError {
    pub profile: String,
    pub message: String,
}

impl Profile {
    pub fn parse(file_stem: &str, text: &str) -> Result<Profile, ProfileError> {
        let err = |message: String| ProfileError {
            profile: file_stem.to_string(),
            message,
        };
        let mut p: Profile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if p.name != file_stem {
            return Err(err(format!("name {:?} differs from the file name", p.name)));
        }
        p.eku_oids = parse_oids(&p.extended_key_usage).map_err(&err)?;
        p.policy_oids = parse_oids(&p.policies).map_err(&err)?;
        p.algorithms = p
            .key_algorithms
            .iter()
            .map(|a| a.parse::<KeyAlgorithm>().map_err(|e| err(e.to_string())))
            .collect::<Result<_, _>>()?;
        if p.key_usage.is_empty() {
            return Err(err("key_usage is empty".into()));
        }
        if p.validity_days == 0 {
            return Err(err("validity_days is 0".into()));
        }
        if p.role != Presence::Forbidden && p.role_prefix.is_empty() {
            return Err(err("role without role_prefix".into()));
        }
        if p.subject == SubjectKind::Person && !p.dn.contains(&DnAttribute::SERIALNUMBER) {
            return Err(err("a person's DN must carry SERIALNUMBER (the IIN)".into()));
        }
        if !p.dn.contains(&DnAttribute::CN) {
            return Err(err("the DN must carry CN".into()));
        }
        let mut seen = std::collections::HashSet::new();
        if !p.dn.iter().all(|a| seen.insert(*a)) {
            return Err(err("an attribute appears twice in dn".into()));
        }
        Ok(p)
    }
}

fn parse_oids(v: &[String]) -> Result<Vec<ObjectIdentifier>, String> {
    v.iter()
        .map(|s| s.parse::<ObjectIdentifier>().map_err(|e| format!("OID {s:?}: {e}")))
        .collect()
}

/// All profiles, by name.
#[derive(Debug, Clone)]
pub struct Profiles(BTreeMap<String, Profile>);

impl Profiles {
    /// Reads every embedded profile's file from `dir` when present there, else the built-in copy;
    /// extra `*.toml` files in `dir` add profiles.
    pub fn load(dir: &Path) -> Result<Profiles, ProfileError> {
        let mut map = BTreeMap::new();
        for (name, embedded) in EMBEDDED {
            let path = dir.join(format!("{name}.toml"));
            let text = crate::config::read_data_file(&path, embedded).map_err(|e| ProfileError {
                profile: name.into(),
                message: e.to_string(),
            })?;
            map.insert(name.to_string(), Profile::parse(name, &text)?);
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if path.extension().and_then(|e| e.to_str()) != Some("toml") || map.contains_key(stem) {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| ProfileError {
                    profile: stem.into(),
                    message: e.to_string(),
                })?;
                map.insert(stem.to_string(), Profile::parse(stem, &text)?);
            }
        }
        Ok(Profiles(map))
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_parse() {
        for (name, text) in EMBEDDED {
            let p = Profile::parse(name, text).unwrap();
            assert!(!p.algorithms.is_empty(), "{name}");
        }
    }
}
