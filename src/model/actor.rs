//! Who made a decision, as every audit record names them: the applicant, an operator or
//! administrator, or the service itself. It lives beneath everything that records a decision
//! (the store, the workflow, operators, the CA's issuance and revocation, CRL publication, the
//! admin routes), so that each can name its actor without depending on the others.

use std::sync::OnceLock;

use serde_json::json;

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
    /// Someone at the server's console (`nca` subcommands: the ceremony, `operator add`,
    /// `cert revoke`): whoever can run the binary against the database; the OS user is named.
    Console { user: String },
    /// The service itself (`nca`), on this instance: the driver, the registry retries, the
    /// publisher's CRLs, the retention sweep.
    Service,
}

impl Actor {
    pub fn applicant(iin: &str, certificate: Option<&str>) -> Actor {
        Actor::Applicant {
            iin: iin.to_string(),
            certificate: certificate.map(str::to_string),
        }
    }

    /// The operator's console user, from the environment (`USER`, else `LOGNAME`).
    pub fn console() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor::Console { user }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Actor::Applicant { .. } => "applicant",
            Actor::Operator {
                administrator: true, ..
            } => "administrator",
            Actor::Operator { .. } => "operator",
            Actor::Console { .. } => "console",
            Actor::Service => "service",
        }
    }

    /// The audit record's form: `{"role", "iin", "certificate"}`, `{"role": "console",
    /// "user", "instance"}`, or `{"role": "service", "name": "nca", "instance"}`.
    pub fn audit(&self) -> serde_json::Value {
        match self {
            Actor::Applicant { iin, certificate } => {
                json!({"role": self.role(), "iin": iin, "certificate": certificate})
            }
            Actor::Operator { iin, certificate, .. } => {
                json!({"role": self.role(), "iin": iin, "certificate": certificate})
            }
            Actor::Console { user } => json!({"role": self.role(), "user": user, "instance": instance()}),
            Actor::Service => json!({"role": self.role(), "name": "nca", "instance": instance()}),
        }
    }

    /// The monitoring message's form (`data.actor`): the role, and the IIN of a person.
    pub fn monitoring(&self) -> serde_json::Value {
        match self {
            Actor::Applicant { iin, .. } | Actor::Operator { iin, .. } => json!({"role": self.role(), "iin": iin}),
            Actor::Console { .. } | Actor::Service => json!({"role": self.role()}),
        }
    }
}

/// This process among the instances sharing a database: pid and a random tag, fixed at first use.
pub fn instance() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(instance_name)
}

/// A name for this process among instances sharing a database: its pid and the moment it first
/// asked, in nanoseconds. Unique without the random source (two instances would need the same pid
/// and the same nanosecond), so a name never depends on a call that can fail.
pub fn instance_name() -> String {
    static STARTED: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let at = STARTED.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    });
    format!("{}-{:x}", std::process::id(), at)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_service_and_the_console_name_the_instance_and_no_person() {
        let s = Actor::Service.audit();
        assert_eq!((s["role"].as_str(), s["name"].as_str()), (Some("service"), Some("nca")));
        assert_eq!(s["instance"], instance());
        let c = Actor::Console { user: "root".into() };
        assert_eq!(c.audit()["role"], "console");
        assert_eq!(c.monitoring(), json!({"role": "console"}));
        let p = Actor::applicant("850315306048", None);
        assert_eq!(
            p.audit(),
            json!({"role": "applicant", "iin": "850315306048", "certificate": null})
        );
    }
}
