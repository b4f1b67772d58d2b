//! The processes as data (`ca-config/regulation.toml`): which steps, in which order, who acts,
//! the regulation's deadline, and the condition a step checks. Step kinds, actors and
//! conditions are code; a file that names one this code does not have is refused at start.

use std::collections::HashSet;

use serde::Deserialize;

pub use crate::model::{Channel, Condition, Service, StepKind};

pub const EMBEDDED: &str = include_str!("../../ca-config/regulation.toml");

/// Who acts in a step (the regulation's structural-functional units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Applicant,
    Operator,
    Nca,
    StateDatabase,
}

crate::model::names!(Actor {
    Applicant = "applicant",
    Operator = "operator",
    Nca = "nca",
    StateDatabase = "state_database",
});

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Title {
    pub kk: String,
    pub ru: String,
    pub en: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub step: StepKind,
    pub actor: Actor,
    pub deadline_seconds: Option<u64>,
    pub condition: Option<Condition>,
    pub refusal_deadline_seconds: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub id: String,
    /// The state service's identifier in messages to the monitoring system (`serviceId`);
    /// `NCA-` and the process id when the file gives none.
    #[serde(default)]
    pub service_id: Option<String>,
    pub service: Service,
    pub channel: Channel,
    pub title: Title,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regulation {
    #[serde(rename = "process")]
    pub processes: Vec<Process>,
}

/// Why a regulation file is refused (at start).
#[derive(Debug, thiserror::Error)]
#[error("regulation: {0}")]
pub struct RegulationError(pub String);

/// Which actor may perform each kind of step: the file orders steps and sets deadlines, but a
/// step done by the wrong party is a mistake in the file, not a new process.
fn allowed_actor(kind: StepKind) -> &'static [Actor] {
    use Actor::*;
    match kind {
        StepKind::Request => &[Applicant, Operator],
        StepKind::SignedRequest | StepKind::CardKeys => &[Applicant],
        StepKind::RegistryCheck => &[StateDatabase],
        StepKind::Register
        | StepKind::NotifyNumber
        | StepKind::OperatorSignatureCheck
        | StepKind::Issue
        | StepKind::Revoke => &[Nca],
        StepKind::Identity | StepKind::Receipt | StepKind::Confirmation | StepKind::WriteCard => &[Operator],
    }
}

impl Process {
    pub fn service_id(&self) -> String {
        self.service_id.clone().unwrap_or_else(|| format!("NCA-{}", self.id))
    }
}

impl Regulation {
    pub fn parse(text: &str) -> Result<Regulation, RegulationError> {
        let r: Regulation = toml::from_str(text).map_err(|e| RegulationError(e.to_string()))?;
        r.validate()?;
        Ok(r)
    }

    /// The file from the configuration, or the copy built in.
    pub fn load(path: &std::path::Path) -> Result<Regulation, RegulationError> {
        let text = crate::config::read_data_file(path, EMBEDDED).map_err(|e| RegulationError(e.to_string()))?;
        Regulation::parse(&text)
    }

    fn validate(&self) -> Result<(), RegulationError> {
        let err = |p: &str, m: String| Err(RegulationError(format!("{p}: {m}")));
        let mut ids = HashSet::new();
        let mut kinds = HashSet::new();
        for p in &self.processes {
            if !ids.insert(p.id.as_str()) {
                return err(&p.id, "appears twice".into());
            }
            if !kinds.insert((p.service as u8, p.channel as u8)) {
                return err(&p.id, "a second process for the same service and channel".into());
            }
            if p.steps.is_empty() {
                return err(&p.id, "has no steps".into());
            }
            let mut seen = HashSet::new();
            for s in &p.steps {
                if !allowed_actor(s.step).contains(&s.actor) {
                    return err(&p.id, format!("step {:?} cannot be done by {:?}", s.step, s.actor));
                }
                if !seen.insert(s.step) {
                    return err(&p.id, format!("step {:?} appears twice", s.step));
                }
                if s.deadline_seconds == Some(0) || s.refusal_deadline_seconds == Some(0) {
                    return err(&p.id, format!("step {:?} has a deadline of 0", s.step));
                }
                if s.refusal_deadline_seconds.is_some() && s.condition.is_none() {
                    return err(
                        &p.id,
                        format!("step {:?} has a refusal deadline but no condition", s.step),
                    );
                }
            }
            let last = p.steps.last().map(|s| s.step);
            let ends = match p.service {
                Service::Issue | Service::Reissue => [Some(StepKind::Issue), Some(StepKind::WriteCard)].contains(&last),
                Service::Revoke => last == Some(StepKind::Revoke),
            };
            if !ends {
                return err(
                    &p.id,
                    format!("a {:?} process must end in its result, not {last:?}", p.service),
                );
            }
        }
        Ok(())
    }

    pub fn process(&self, service: Service, channel: Channel) -> Option<&Process> {
        self.processes
            .iter()
            .find(|p| p.service == service && p.channel == channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_regulation_as_shipped_is_valid_and_complete() {
        let r = Regulation::parse(EMBEDDED).unwrap();
        assert_eq!(r.processes.len(), 5);
        for (service, channel) in [
            (Service::Issue, Channel::Portal),
            (Service::Reissue, Channel::Portal),
            (Service::Revoke, Channel::Portal),
            (Service::Issue, Channel::ServiceCentre),
            (Service::Revoke, Channel::ServiceCentre),
        ] {
            assert!(r.process(service, channel).is_some(), "{service:?} {channel:?}");
        }
        let p1 = r.process(Service::Issue, Channel::Portal).unwrap();
        let identity = p1.steps.iter().find(|s| s.step == StepKind::Identity).unwrap();
        assert_eq!(identity.deadline_seconds, Some(900));
        assert_eq!(
            identity.condition.map(Condition::refusal_code),
            Some("identity_not_confirmed")
        );
        // P3 publishes within a day, P5 within two.
        assert_eq!(
            r.process(Service::Revoke, Channel::Portal)
                .unwrap()
                .steps
                .last()
                .unwrap()
                .deadline_seconds,
            Some(86_400)
        );
        assert_eq!(
            r.process(Service::Revoke, Channel::ServiceCentre)
                .unwrap()
                .steps
                .last()
                .unwrap()
                .deadline_seconds,
            Some(172_800)
        );
    }

    #[test]
    fn a_revision_that_breaks_the_rules_is_refused() {
        let unknown = EMBEDDED.replacen("step = \"receipt\"", "step = \"coffee\"", 1);
        assert!(Regulation::parse(&unknown).is_err());
        let wrong_actor = EMBEDDED.replacen(
            "{ step = \"identity\", actor = \"operator\"",
            "{ step = \"identity\", actor = \"applicant\"",
            1,
        );
        assert!(
            Regulation::parse(&wrong_actor)
                .unwrap_err()
                .0
                .contains("cannot be done by")
        );
        let zero = EMBEDDED.replacen("deadline_seconds = 60", "deadline_seconds = 0", 1);
        assert!(Regulation::parse(&zero).is_err());
        // A revision that changes a deadline is just data.
        let revised = EMBEDDED.replacen("deadline_seconds = 900", "deadline_seconds = 1200", 1);
        assert!(Regulation::parse(&revised).is_ok());
    }
}
