//! The registration authority's nouns that the processes share: who acted ([`Actor`]) and the
//! result step an application has recorded but not yet done ([`Intent`]). String forms only at
//! the store's and the wire's edges.

use std::sync::OnceLock;

use serde_json::json;

use crate::operators::Operator;

/// Who made a decision, as the audit chain names them (regulation: every decision has its
/// actor). Never personal data beyond the IIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The applicant: their IIN, and the certificate that signed their request (P2, P3) when it
    /// verified as theirs; a portal request without a signature (P1) has none.
    Applicant { iin: String, certificate: Option<String> },
    /// An operator or administrator: their IIN and the serial of the certificate they
    /// authenticated with.
    Operator {
        iin: String,
        certificate: String,
        administrator: bool,
    },
    /// The service itself (`nca`), on this instance: the driver, the registry retries.
    Service,
}

impl Actor {
    pub fn operator(op: &Operator) -> Actor {
        Actor::Operator {
            iin: op.record.iin.clone(),
            certificate: op.serial.clone(),
            administrator: op.record.role == "administrator",
        }
    }

    pub fn applicant(iin: &str, certificate: Option<&str>) -> Actor {
        Actor::Applicant {
            iin: iin.to_string(),
            certificate: certificate.map(str::to_string),
        }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Actor::Applicant { .. } => "applicant",
            Actor::Operator {
                administrator: true, ..
            } => "administrator",
            Actor::Operator { .. } => "operator",
            Actor::Service => "service",
        }
    }

    /// The audit record's form: `{"role", "iin", "certificate"}`, or `{"role": "service",
    /// "name": "nca", "instance"}`.
    pub fn audit(&self) -> serde_json::Value {
        match self {
            Actor::Applicant { iin, certificate } => {
                json!({"role": self.role(), "iin": iin, "certificate": certificate})
            }
            Actor::Operator { iin, certificate, .. } => {
                json!({"role": self.role(), "iin": iin, "certificate": certificate})
            }
            Actor::Service => json!({"role": self.role(), "name": "nca", "instance": instance()}),
        }
    }

    /// The monitoring message's form (`data.actor`): the role, and the IIN of a person.
    pub fn monitoring(&self) -> serde_json::Value {
        match self {
            Actor::Applicant { iin, .. } | Actor::Operator { iin, .. } => json!({"role": self.role(), "iin": iin}),
            Actor::Service => json!({"role": self.role()}),
        }
    }
}

/// This process among the instances sharing a database: pid and a random tag, fixed at first use.
pub fn instance() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(crate::outbox::instance_name)
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

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Issue => "issue",
            Intent::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Intent> {
        match s {
            "issue" => Some(Intent::Issue),
            "revoke" => Some(Intent::Revoke),
            _ => None,
        }
    }
}

/// Why an application waits, as the view and the monitoring system show it.
pub const WAITING_KEY_STORE: &str = "key_store_unavailable";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_round_trip_and_nothing_else_parses() {
        for i in [Intent::Issue, Intent::Revoke] {
            assert_eq!(Intent::parse(i.as_str()), Some(i));
        }
        assert_eq!(Intent::parse("supersede"), None);
    }

    #[test]
    fn the_monitoring_form_names_the_role_and_no_more_than_the_iin() {
        let a = Actor::Operator {
            iin: "850315306048".into(),
            certificate: "0abc".into(),
            administrator: false,
        };
        assert_eq!(a.monitoring(), json!({"role": "operator", "iin": "850315306048"}));
        assert_eq!(a.audit()["certificate"], "0abc");
        assert_eq!(Actor::Service.audit()["name"], "nca");
        assert_eq!(Actor::Service.monitoring(), json!({"role": "service"}));
    }
}
