//! The nouns the roles share, beneath everything that records them (after Boulder's `core`,
//! which its storage authority depends on): where an application is ([`Status`], with the
//! transitions it may make), what it is for ([`Service`], [`Channel`]), who applies
//! ([`Applicant`]), the steps and conditions of the regulation ([`StepKind`], [`Condition`]),
//! why it was refused ([`Refusal`]), the receipt for the documents seen ([`Receipt`]), who acted
//! ([`Actor`]), and the result step recorded but not yet done ([`Intent`]). The store decodes its
//! rows into them and the outbox names them, so they cannot live in the registration authority
//! (`workflow`) that uses the store. String forms only at the store's and the wire's edges.

use serde::{Deserialize, Serialize};
#[cfg(test)]
use serde_json::json;

pub mod actor;

pub use actor::{Actor, instance};

/// The string forms of a closed set of names, as the store keeps them and the wire shows them
/// (the same as serde's `snake_case`; a unit test holds the two together).
macro_rules! names {
    ($t:ident { $($v:ident = $s:literal),+ $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),+
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::model::UnknownName;

            fn from_str(s: &str) -> Result<$t, $crate::model::UnknownName> {
                match s {
                    $($s => Ok($t::$v),)+
                    _ => Err($crate::model::UnknownName { of: stringify!($t), name: s.to_string() }),
                }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use names;

/// A name read from the store that this code does not have: the row is not one it wrote.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{of} {name:?} is not one this service knows")]
pub struct UnknownName {
    pub of: &'static str,
    pub name: String,
}

/// Where an application is. The transitions between them are [`Status::may_become`]'s, and the
/// workflow makes no other (DESIGN.md, "Statuses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The state database did not answer the registry check; asked again in the background.
    #[default]
    AwaitingRegistry,
    /// Waiting for the applicant at a centre (identity, P1 and P5), or for the card's CSRs (P4).
    AwaitingDocuments,
    /// Waiting for the operator's signed confirmation (condition 3).
    AwaitingConfirmation,
    /// The result step is recorded and being done (P4: until the pair is on the card).
    Issuing,
    /// The result step waits for the key store to come back; the driver takes it up.
    AwaitingKeyStore,
    Completed,
    Refused,
}

names!(Status {
    AwaitingRegistry = "awaiting_registry",
    AwaitingDocuments = "awaiting_documents",
    AwaitingConfirmation = "awaiting_confirmation",
    Issuing = "issuing",
    AwaitingKeyStore = "awaiting_key_store",
    Completed = "completed",
    Refused = "refused",
});

impl Status {
    /// An end: nothing moves the application on from here.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Refused)
    }

    /// Whether a new application may be recorded in this status: an end of the result step is
    /// never where one starts (P3 starts `issuing`, its revocation recorded before it is done).
    pub fn may_start(self) -> bool {
        !matches!(self, Status::Completed | Status::AwaitingKeyStore)
    }

    /// Whether an application in `self` may be moved to `to`. `issuing` to `issuing` is P4's pair
    /// issued and waiting to be written onto the card; a wait for the key store ends where the
    /// result step would have.
    pub fn may_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (AwaitingRegistry, AwaitingDocuments | AwaitingConfirmation | Refused)
                | (AwaitingDocuments, AwaitingConfirmation | Refused)
                | (AwaitingConfirmation, Issuing | Refused)
                | (Issuing, Issuing | AwaitingKeyStore | Completed | Refused)
                | (AwaitingKeyStore, Issuing | Completed | Refused)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    #[default]
    Issue,
    Reissue,
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Portal,
    ServiceCentre,
}

names!(Service {
    Issue = "issue",
    Reissue = "reissue",
    Revoke = "revoke",
});

names!(Channel {
    Portal = "portal",
    ServiceCentre = "service_centre",
});

/// What a step does. The workflow implements each kind once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Request,
    SignedRequest,
    RegistryCheck,
    Register,
    NotifyNumber,
    Identity,
    Receipt,
    Confirmation,
    OperatorSignatureCheck,
    CardKeys,
    Issue,
    WriteCard,
    Revoke,
}

names!(StepKind {
    Request = "request",
    SignedRequest = "signed_request",
    RegistryCheck = "registry_check",
    Register = "register",
    NotifyNumber = "notify_number",
    Identity = "identity",
    Receipt = "receipt",
    Confirmation = "confirmation",
    OperatorSignatureCheck = "operator_signature_check",
    CardKeys = "card_keys",
    Issue = "issue",
    WriteCard = "write_card",
    Revoke = "revoke",
});

/// A condition of the regulation, and the refusal its failure gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    ApplicantDataExists,
    IdentityConfirmed,
    OperatorSignatureValid,
    ApplicantSignatureValid,
    RequestValid,
}

impl Condition {
    /// The refusal code (DESIGN.md) a failed condition gives.
    pub fn refusal_code(self) -> &'static str {
        match self {
            Condition::ApplicantDataExists => "registry_not_found",
            Condition::IdentityConfirmed => "identity_not_confirmed",
            Condition::OperatorSignatureValid => "operator_signature_invalid",
            Condition::ApplicantSignatureValid => "applicant_signature_invalid",
            Condition::RequestValid => "request_invalid",
        }
    }
}

/// A motivated refusal: the code is the contract, the step where it was decided, and the
/// English detail the application keeps (the view gives the sentence in the caller's language).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub step: StepKind,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &str, step: StepKind, message: impl Into<String>) -> Refusal {
        Refusal {
            code: code.to_string(),
            step,
            message: message.into(),
        }
    }

    /// The refusal a failed condition of the regulation gives.
    pub fn of(c: Condition, step: StepKind, message: impl Into<String>) -> Refusal {
        Refusal::new(c.refusal_code(), step, message)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicantData {
    pub iin: String,
    pub surname: String,
    pub name: String,
    pub patronymic: Option<String>,
    pub email: Option<String>,
    pub region: Option<String>,
    pub locality: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationData {
    pub bin: String,
    pub name: String,
    pub role: String,
}

/// The applicant and what their application is about, as the application keeps it: one shape
/// for every process (the store keeps it as JSON, in these names). P1, P2 and P4 have the
/// person as stated (`applicant`, with the organisation of a legal entity's employee); P2 the
/// pair it supersedes; P3 and P5 the certificates to revoke and why, and the address the holder
/// gave when they applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Applicant {
    #[serde(rename = "applicant", default, skip_serializing_if = "Option::is_none")]
    pub person: Option<ApplicantData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The address letters go to when the person is not stated (a revocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The language the applicant asked in (`kk`, `ru`, `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The IIN of the operator who filed it at a centre (P4, P5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_by: Option<String>,
}

impl Applicant {
    /// Where the applicant's letters go, and in which language (Kazakh unless they said).
    pub fn contact(&self) -> Option<(String, String)> {
        let email = self
            .person
            .as_ref()
            .and_then(|p| p.email.as_deref())
            .or(self.email.as_deref())
            .filter(|e| !e.trim().is_empty())?;
        Some((email.to_string(), self.lang.clone().unwrap_or_else(|| "kk".into())))
    }

    /// The revocation reason a P3 or P5 application names.
    pub fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or("unspecified")
    }

    /// Whether the certificates go to a legal entity's employee (the legal-entity profiles).
    pub fn legal(&self) -> bool {
        self.organization.is_some()
    }
}

/// A document the operator saw at the identity step (regulation §15.4, §20): its kind, and its
/// number when the operator gave one. The number is kept for the archive and shown masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

impl Document {
    /// The number as every view shows it: its last four characters, the rest as `*`.
    pub fn masked_number(&self) -> Option<String> {
        self.number.as_deref().map(mask)
    }

    /// The document as a view names it: kind, and the masked number if any.
    pub fn shown(&self) -> String {
        match self.masked_number() {
            Some(n) => format!("{} {n}", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// All but the last four characters as `*` (a number of four or fewer is all `*`).
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let keep = if chars.len() > 4 { 4 } else { 0 };
    let hidden = chars.len() - keep;
    "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>()
}

/// The receipt an operator gives for the documents accepted at a centre (P1 step 8, P5): its
/// number, kept with what it was given for, for the archival period (`[archive]
/// retention_days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// `R-` and the application's number: one receipt per application.
    pub number: String,
    pub application: String,
    pub centre: String,
    /// The IIN of the operator who gave it.
    pub operator: String,
    pub issued_at: i64,
    pub documents: Vec<Document>,
}

impl Receipt {
    pub fn number_for(application: &str) -> String {
        format!("R-{application}")
    }
}

/// The result step an application has recorded and not yet done. Recorded in the same
/// transaction as the status change that calls for it, cleared in the one that records it done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Issue the AUTH and SIGN pair (and, in P2, revoke the pair it supersedes).
    Issue,
    /// Revoke the certificates the application names (P3, P5).
    Revoke,
}

names!(Intent {
    Issue = "issue",
    Revoke = "revoke",
});

/// Why an application waits, as the view and the monitoring system show it.
pub const WAITING_KEY_STORE: &str = "key_store_unavailable";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_round_trip_and_nothing_else_parses() {
        for &i in Intent::ALL {
            assert_eq!(i.as_str().parse::<Intent>().ok(), Some(i));
        }
        assert!("supersede".parse::<Intent>().is_err());
    }

    /// The store's and the wire's string forms are serde's, for every name.
    #[test]
    fn every_name_is_its_serde_form_and_parses_back() {
        fn check<T>(all: &[T])
        where
            T: Copy + Serialize + std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
        {
            for &v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), json!(v.to_string()));
                assert_eq!(v.to_string().parse::<T>().ok(), Some(v));
            }
        }
        check(Status::ALL);
        check(Service::ALL);
        check(Channel::ALL);
        check(StepKind::ALL);
        assert!("Completed".parse::<Status>().is_err());
        assert!("".parse::<StepKind>().is_err());
    }

    #[test]
    fn an_application_goes_forward_only_and_an_end_is_an_end() {
        use Status::*;
        // The paths the processes take.
        for path in [
            // P1: registry late, identity, confirmation, the pair issued.
            &[
                AwaitingRegistry,
                AwaitingDocuments,
                AwaitingConfirmation,
                Issuing,
                Completed,
            ][..],
            // P2: signed, straight to the operator; the key store away once.
            &[
                AwaitingRegistry,
                AwaitingConfirmation,
                Issuing,
                AwaitingKeyStore,
                Completed,
            ],
            // P4: issued, then written onto the card.
            &[AwaitingDocuments, AwaitingConfirmation, Issuing, Issuing, Completed],
            &[AwaitingKeyStore, Issuing],
            &[AwaitingDocuments, Refused],
            &[AwaitingConfirmation, Refused],
            &[Issuing, Refused],
            &[AwaitingKeyStore, Refused],
            &[AwaitingRegistry, Refused],
        ] {
            for w in path.windows(2) {
                assert!(w[0].may_become(w[1]), "{} -> {}", w[0], w[1]);
            }
        }
        for &to in Status::ALL {
            assert!(
                !Completed.may_become(to) && !Refused.may_become(to),
                "an end moved to {to}"
            );
            // Nothing goes back to where the applicant or the registry acts.
            assert!(!to.may_become(AwaitingRegistry), "{to} -> awaiting_registry");
        }
        // The operator's confirmation is never skipped, nor the result step.
        assert!(!AwaitingDocuments.may_become(Issuing));
        assert!(!AwaitingDocuments.may_become(Completed));
        assert!(!AwaitingConfirmation.may_become(Completed));
        assert!(!AwaitingConfirmation.may_become(AwaitingKeyStore));
        assert!(!Issuing.may_become(AwaitingConfirmation));
        assert!(Completed.is_final() && Refused.is_final() && !AwaitingKeyStore.is_final());
        assert!(Issuing.may_start() && Refused.may_start() && !Completed.may_start());
    }

    #[test]
    fn the_applicant_keeps_one_shape_and_reads_what_older_rows_hold() {
        // A P1 row as the service wrote it before the type (nulls and empty lists written out).
        let old = r#"{"applicant":{"iin":"850315306048","surname":"A","name":"B","patronymic":null,
            "email":"a@example.kz","region":null,"locality":null},"organization":null,"supersedes":[],"lang":"ru"}"#;
        let a: Applicant = serde_json::from_str(old).unwrap();
        assert_eq!(a.contact(), Some(("a@example.kz".into(), "ru".into())));
        assert!(!a.legal());
        // A P3 row: no person, the holder's address beside the certificates.
        let p3: Applicant = serde_json::from_str(
            r#"{"certificates":["0a"],"reason":"keyCompromise","email":"h@example.kz","lang":null}"#,
        )
        .unwrap();
        assert_eq!(p3.contact(), Some(("h@example.kz".into(), "kk".into())));
        assert_eq!(
            (p3.reason(), p3.certificates.as_slice()),
            ("keyCompromise", &["0a".to_string()][..])
        );
        assert_eq!(Applicant::default().reason(), "unspecified");
        // What is written reads back the same.
        let again: Applicant = serde_json::from_str(&serde_json::to_string(&p3).unwrap()).unwrap();
        assert_eq!(again, p3);
        // A row that is not an applicant is an error, not an empty applicant.
        assert!(serde_json::from_str::<Applicant>(r#"{"applicant":"x"}"#).is_err());
    }

    #[test]
    fn a_document_number_is_shown_by_its_last_four_characters() {
        assert_eq!(mask("041234567"), "*****4567");
        assert_eq!(mask("1234"), "****");
        assert_eq!(mask("№ N12345678"), "*******5678");
        let d = Document {
            kind: "identity card".into(),
            number: Some("041234567".into()),
        };
        assert_eq!(d.shown(), "identity card *****4567");
        assert!(!d.shown().contains("0412"));
        let k = Document {
            kind: "passport".into(),
            number: None,
        };
        assert_eq!(k.shown(), "passport");
    }
}
