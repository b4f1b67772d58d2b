//! The subject of a certificate, built from verified applicant data (never copied from a CSR),
//! in the attribute order and string types of the profile.

use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519;
use der::asn1::{Any, PrintableStringRef, SetOfVec, Utf8StringRef};
use serde::Deserialize;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use super::PolicyError;
use super::profile::{DnAttribute, Presence, Profile, SubjectKind};
use crate::ids::{Bin, Iin};

/// What the caller says about the subject, already verified (against the state registry in the
/// workflow; by the administrator for `nca cert issue`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectInput {
    pub iin: Option<String>,
    pub surname: Option<String>,
    pub name: Option<String>,
    pub patronymic: Option<String>,
    pub email: Option<String>,
    pub bin: Option<String>,
    pub org: Option<String>,
    /// Role OID, or one of `first-head`, `signer`, `finance`, `hr`, `employee`.
    pub role: Option<String>,
    pub locality: Option<String>,
    pub region: Option<String>,
    /// For entity profiles (OCSP responder, TLS server, service).
    pub common_name: Option<String>,
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
}

/// The subject, checked against a profile: the DN ready to encode, and what goes elsewhere.
#[derive(Debug, Clone)]
pub struct Subject {
    pub name: Name,
    /// `SERIALNUMBER` value (IIN…) or CN: the key under which certificates of one holder are
    /// found, and the identity a public key is bound to.
    pub holder: String,
    pub display: String,
    pub email: Option<String>,
    pub role: Option<ObjectIdentifier>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<std::net::IpAddr>,
}

const ROLES: [(&str, &str); 5] = [
    ("first-head", "1"),
    ("signer", "2"),
    ("finance", "3"),
    ("hr", "4"),
    ("employee", "5"),
];

fn bad(field: &'static str, why: impl Into<String>) -> PolicyError {
    PolicyError::Subject {
        field,
        message: why.into(),
    }
}

/// A name as it goes into the DN: trimmed, inner spaces folded, upper case (Kazakh letters
/// included: Rust's Unicode case mapping covers Ә Ғ Қ Ң Ө Ұ Ү Һ І), letters, spaces, hyphens and
/// apostrophes only, at most 64 characters (RFC 5280's ub-name family).
fn person_name(field: &'static str, v: &str) -> Result<String, PolicyError> {
    let folded = v.split_whitespace().collect::<Vec<_>>().join(" ").to_uppercase();
    if folded.is_empty() {
        return Err(bad(field, "is empty"));
    }
    if folded.chars().count() > 64 {
        return Err(bad(field, "is longer than 64 characters"));
    }
    if !folded
        .chars()
        .all(|c| c.is_alphabetic() || c == ' ' || c == '-' || c == '\'' || c == '’')
    {
        return Err(bad(field, "may hold letters, spaces, hyphens and apostrophes only"));
    }
    Ok(folded)
}

/// Free text (organisation, locality, common name): printable, no control characters.
fn free_text(field: &'static str, v: &str, max: usize) -> Result<String, PolicyError> {
    let t = v.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() {
        return Err(bad(field, "is empty"));
    }
    if t.chars().count() > max {
        return Err(bad(field, format!("is longer than {max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(bad(field, "contains control characters"));
    }
    Ok(t)
}

fn email(v: &str) -> Result<String, PolicyError> {
    let v = v.trim();
    let ok = v.len() <= 254
        && v.is_ascii()
        && v.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && !d.contains("..")
                && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && !l
                    .chars()
                    .any(|c| c.is_ascii_whitespace() || c == '@' || c.is_ascii_control())
        });
    if ok {
        Ok(v.to_string())
    } else {
        Err(bad("email", "is not an e-mail address"))
    }
}

fn rdn(oid: ObjectIdentifier, value: Any) -> Result<RelativeDistinguishedName, PolicyError> {
    let set =
        SetOfVec::try_from(vec![AttributeTypeAndValue { oid, value }]).map_err(|e| bad("subject", e.to_string()))?;
    Ok(RelativeDistinguishedName::from(set))
}

fn utf8(field: &'static str, v: &str) -> Result<Any, PolicyError> {
    Any::encode_from(&Utf8StringRef::new(v).map_err(|e| bad(field, e.to_string()))?)
        .map_err(|e| bad(field, e.to_string()))
}

fn printable(field: &'static str, v: &str) -> Result<Any, PolicyError> {
    let s = PrintableStringRef::new(v).map_err(|_| bad(field, "is not a PrintableString"))?;
    Any::encode_from(&s).map_err(|e| bad(field, e.to_string()))
}

/// Builds the subject a profile asks for from the caller's data, or says what is missing.
pub fn build(profile: &Profile, input: &SubjectInput, country: &str) -> Result<Subject, PolicyError> {
    let given = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (cn, holder, surname, serial, patronymic) = match profile.subject {
        SubjectKind::Person => {
            let iin = given(&input.iin).ok_or_else(|| bad("iin", "is required"))?;
            let iin = Iin::parse(&iin).map_err(PolicyError::Iin)?;
            let surname = person_name(
                "surname",
                &given(&input.surname).ok_or_else(|| bad("surname", "is required"))?,
            )?;
            let name = person_name("name", &given(&input.name).ok_or_else(|| bad("name", "is required"))?)?;
            let patronymic = given(&input.patronymic)
                .map(|p| person_name("patronymic", &p))
                .transpose()?;
            let cn = format!("{surname} {name}");
            if cn.chars().count() > 64 {
                return Err(bad("name", "surname and name together are longer than 64 characters"));
            }
            let serial = format!("IIN{}", iin.as_str());
            (cn, serial.clone(), Some(surname), Some(serial), patronymic)
        }
        SubjectKind::Entity => {
            let cn = free_text(
                "common_name",
                &given(&input.common_name).ok_or_else(|| bad("common_name", "is required"))?,
                64,
            )?;
            (cn.clone(), cn, None, None, None)
        }
    };
    let org = match (profile.organization, given(&input.org), given(&input.bin)) {
        (Presence::Forbidden, None, None) => None,
        (Presence::Forbidden, _, _) => {
            return Err(bad("org", "this profile takes no organisation"));
        }
        (Presence::Required, None, _) | (Presence::Required, _, None) => {
            return Err(bad("org", "organisation name and BIN are required"));
        }
        (_, None, None) => None,
        (_, Some(o), b) => {
            let bin = b.map(|b| Bin::parse(&b).map_err(PolicyError::Bin)).transpose()?;
            Some((free_text("org", &o, 64)?, bin))
        }
        (_, None, Some(_)) => return Err(bad("org", "a BIN needs the organisation's name")),
    };
    let role = match (profile.role, given(&input.role)) {
        (Presence::Forbidden, None) => None,
        (Presence::Forbidden, Some(_)) => return Err(bad("role", "this profile takes no role")),
        (Presence::Required, None) => return Err(bad("role", "is required")),
        (_, None) => None,
        (_, Some(r)) => {
            let oid = match ROLES.iter().find(|(n, _)| *n == r) {
                Some((_, suffix)) => format!("{}{suffix}", profile.role_prefix),
                None => r.clone(),
            };
            if !oid.starts_with(&profile.role_prefix) || oid.len() == profile.role_prefix.len() {
                return Err(bad(
                    "role",
                    format!("{r:?} is not a role under {}", profile.role_prefix),
                ));
            }
            Some(
                oid.parse::<ObjectIdentifier>()
                    .map_err(|e| bad("role", e.to_string()))?,
            )
        }
    };
    let locality = given(&input.locality)
        .map(|l| free_text("locality", &l, 128))
        .transpose()?;
    let region = given(&input.region).map(|r| free_text("region", &r, 128)).transpose()?;

    let mut rdns = Vec::new();
    for attr in &profile.dn {
        let entry = match attr {
            DnAttribute::CN => Some(rdn(rfc4519::CN, utf8("common_name", &cn)?)?),
            DnAttribute::SURNAME => surname
                .as_deref()
                .map(|s| utf8("surname", s).and_then(|v| rdn(rfc4519::SN, v)))
                .transpose()?,
            DnAttribute::SERIALNUMBER => serial
                .as_deref()
                .map(|s| printable("iin", s).and_then(|v| rdn(rfc4519::SERIAL_NUMBER, v)))
                .transpose()?,
            DnAttribute::C => Some(rdn(rfc4519::C, printable("country", country)?)?),
            DnAttribute::L => locality
                .as_deref()
                .map(|s| utf8("locality", s).and_then(|v| rdn(rfc4519::L, v)))
                .transpose()?,
            DnAttribute::ST => region
                .as_deref()
                .map(|s| utf8("region", s).and_then(|v| rdn(rfc4519::ST, v)))
                .transpose()?,
            DnAttribute::O => org
                .as_ref()
                .map(|(o, _)| utf8("org", o).and_then(|v| rdn(rfc4519::O, v)))
                .transpose()?,
            DnAttribute::OU => org
                .as_ref()
                .and_then(|(_, b)| b.as_ref())
                .map(|b| utf8("bin", &format!("BIN{b}")).and_then(|v| rdn(rfc4519::OU, v)))
                .transpose()?,
            DnAttribute::GIVENNAME => patronymic
                .as_deref()
                .map(|s| utf8("patronymic", s).and_then(|v| rdn(rfc4519::GIVEN_NAME, v)))
                .transpose()?,
        };
        rdns.extend(entry);
    }
    let name = RdnSequence(rdns);
    let display = display(&name);

    let email = given(&input.email).map(|e| email(&e)).transpose()?;
    if email.is_some() && !profile.subject_alt_name.contains(&super::profile::SanKind::Email) {
        return Err(bad("email", "this profile takes no e-mail"));
    }
    let dns_names = input
        .dns_names
        .iter()
        .map(|d| dns_name(d))
        .collect::<Result<Vec<_>, _>>()?;
    let ip_addresses = input
        .ip_addresses
        .iter()
        .map(|i| {
            i.parse()
                .map_err(|_| bad("ip_addresses", format!("{i:?} is not an IP address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if (!dns_names.is_empty() || !ip_addresses.is_empty())
        && !profile
            .subject_alt_name
            .iter()
            .any(|k| matches!(k, super::profile::SanKind::Dns | super::profile::SanKind::Ip))
    {
        return Err(bad("dns_names", "this profile takes no host names"));
    }
    Ok(Subject {
        name,
        holder,
        display,
        email,
        role,
        dns_names,
        ip_addresses,
    })
}

/// A DN as people at the centre read it: in DER order, attribute names as in PROFILES.md
/// (`CN=ҚҰНАНБАЙ АБАЙ, SURNAME=ҚҰНАНБАЙ, SERIALNUMBER=IIN…, C=KZ`). Not RFC 4514, which
/// reverses the order.
pub fn display(name: &Name) -> String {
    let label = |oid: ObjectIdentifier| match oid {
        o if o == rfc4519::CN => "CN".to_string(),
        o if o == rfc4519::SN => "SURNAME".to_string(),
        o if o == rfc4519::SERIAL_NUMBER => "SERIALNUMBER".to_string(),
        o if o == rfc4519::C => "C".to_string(),
        o if o == rfc4519::L => "L".to_string(),
        o if o == rfc4519::ST => "ST".to_string(),
        o if o == rfc4519::O => "O".to_string(),
        o if o == rfc4519::OU => "OU".to_string(),
        o if o == rfc4519::GIVEN_NAME => "GIVENNAME".to_string(),
        o => o.to_string(),
    };
    let value = |v: &Any| {
        Utf8StringRef::try_from(v)
            .map(|s| s.as_str().to_string())
            .or_else(|_| PrintableStringRef::try_from(v).map(|s| s.as_str().to_string()))
            .unwrap_or_else(|_| format!("#{}", hex::encode(v.value())))
    };
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .map(|atv| format!("{}={}", label(atv.oid), value(&atv.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn dns_name(d: &str) -> Result<String, PolicyError> {
    let d = d.trim().to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(bad("dns_names", format!("{d:?} is not a host name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::profile::{EMBEDDED, Profile};

    fn profile(name: &str) -> Profile {
        let (_, text) = EMBEDDED.iter().find(|(n, _)| *n == name).unwrap();
        Profile::parse(name, text).unwrap()
    }

    #[test]
    fn kazakh_names_upper_case_in_order() {
        let input = SubjectInput {
            iin: Some("850315300019".into()),
            surname: Some("құнанбай".into()),
            name: Some("абай".into()),
            patronymic: Some("Құнанбайұлы".into()),
            ..Default::default()
        };
        let s = build(&profile("individual-sign"), &input, "KZ").unwrap();
        assert_eq!(
            s.display,
            "CN=ҚҰНАНБАЙ АБАЙ, SURNAME=ҚҰНАНБАЙ, SERIALNUMBER=IIN850315300019, C=KZ, GIVENNAME=ҚҰНАНБАЙҰЛЫ"
        );
    }

    #[test]
    fn legal_needs_org_bin_and_role() {
        let mut input = SubjectInput {
            iin: Some("850315300019".into()),
            surname: Some("A".into()),
            name: Some("B".into()),
            ..Default::default()
        };
        let p = profile("legal-sign");
        assert!(build(&p, &input, "KZ").is_err());
        input.org = Some("ТОО «Дала»".into());
        input.bin = Some("150440000129".into());
        input.role = Some("first-head".into());
        assert!(matches!(build(&p, &input, "KZ"), Err(PolicyError::Bin(_))));
        input.bin = Some("150440000122".into());
        let s = build(&p, &input, "KZ").unwrap();
        assert_eq!(s.role.unwrap().to_string(), "1.2.398.3.3.4.1.2.1");
        assert!(s.display.contains("O=ТОО «Дала», OU=BIN150440000122"), "{}", s.display);
        input.role = Some("1.2.398.3.3.4.2.1".into());
        assert!(build(&p, &input, "KZ").is_err());
    }

    #[test]
    fn names_reject_digits_and_controls() {
        let input = SubjectInput {
            iin: Some("850315300019".into()),
            surname: Some("A1".into()),
            name: Some("B".into()),
            ..Default::default()
        };
        assert!(matches!(
            build(&profile("individual-auth"), &input, "KZ"),
            Err(PolicyError::Subject { field: "surname", .. })
        ));
    }
}
