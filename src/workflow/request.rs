//! What the workflow's requests carry, as the portal, the signed requests and the operator send
//! them, and the field errors a malformed one gets.

use serde::{Deserialize, Serialize};

pub use crate::model::{ApplicantData, OrganizationData};

/// What the portal sends (DESIGN.md, "Application JSON (request)").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    pub service: String,
    pub applicant: ApplicantData,
    pub organization: Option<OrganizationData>,
    pub registration_centre: String,
    pub storage: String,
    pub requests: Option<CsrPair>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrPair {
    pub auth: String,
    pub sign: String,
}

/// What the portal files (`POST /api/v1/applications`): an issue request (P1, JSON), or a
/// signed request (P2, P3) as CMS SignedData, DER or PEM, not yet read.
#[derive(Debug, Clone)]
pub enum Submission {
    Request(Box<ApplicationRequest>),
    Signed(Vec<u8>),
}

impl Submission {
    /// The IIN the applicant states, when it can be read before the request is judged (the
    /// application form's rate limits count per IIN).
    pub fn stated_iin(&self) -> Option<&str> {
        match self {
            Submission::Request(r) => Some(&r.applicant.iin),
            Submission::Signed(_) => None,
        }
    }
}

/// What a signed request (P2, P3) carries as its content.
#[derive(Debug, Clone, Deserialize)]
pub struct SignedRequest {
    pub service: String,
    pub applicant: SignedApplicant,
    #[serde(default)]
    pub certificates: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SignedApplicant {
    pub iin: String,
}

/// What an operator files for an ID-card issuance (P4): the applicant in front of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreIssue {
    pub service: String,
    pub applicant: CentreApplicant,
    pub organization: Option<OrganizationData>,
    #[serde(default)]
    pub storage: Option<String>,
}

/// What an operator files at a centre: P4 (`"service": "issue"`) or P5 (a signed request's
/// content, any other service, which the revocation's checks then judge), told apart by
/// `service` before the rest is read, so that each is read with its own rules.
#[derive(Debug, Clone)]
pub enum CentreRequest {
    Issue(CentreIssue),
    Revoke(SignedRequest),
}

impl<'de> Deserialize<'de> for CentreRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let r = if v["service"] == "issue" {
            serde_json::from_value(v).map(CentreRequest::Issue)
        } else {
            serde_json::from_value(v).map(CentreRequest::Revoke)
        };
        r.map_err(serde::de::Error::custom)
    }
}

/// The applicant as the operator files them in P4. The IIN is read from the ID card the
/// operator holds; names left out are filled from the state database (step 4 asks it anyway),
/// names given are checked against it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreApplicant {
    pub iin: String,
    pub surname: Option<String>,
    pub name: Option<String>,
    pub patronymic: Option<String>,
    pub email: Option<String>,
    pub region: Option<String>,
    pub locality: Option<String>,
}

/// What an operator states at the identity step (condition 2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    pub confirmed: bool,
    #[serde(default)]
    pub documents: Vec<DocumentSeen>,
    pub reason: Option<String>,
}

/// A document the operator saw: its kind alone (`"identity card"`, as the console sends), or
/// its kind and number (`{"kind", "number"}`), which the archive keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DocumentSeen {
    Kind(String),
    Numbered(NumberedDocument),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberedDocument {
    pub kind: String,
    pub number: Option<String>,
}

impl From<DocumentSeen> for crate::model::Document {
    fn from(d: DocumentSeen) -> Self {
        match d {
            DocumentSeen::Kind(kind) => crate::model::Document { kind, number: None },
            DocumentSeen::Numbered(n) => crate::model::Document {
                kind: n.kind,
                number: n.number.filter(|n| !n.trim().is_empty()),
            },
        }
    }
}

/// A field of a request that is wrong, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    /// Its path in the request JSON, e.g. `applicant.iin`, `requests.auth`.
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    /// The field a serde error names (a missing or unknown field), else the whole body.
    pub fn from_json(e: &serde_json::Error) -> FieldError {
        let text = e.to_string();
        let named = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| text.split_once(p).and_then(|(_, rest)| rest.split_once('`')))
            .map(|(name, _)| name.to_string());
        FieldError {
            field: named.unwrap_or_else(|| "body".into()),
            code: "request_invalid",
            message: text,
        }
    }
}
