//! The SLA report: per process and step, how long the steps took against the regulation's
//! deadlines. A step still open past its deadline counts as over it.

use serde::Serialize;

use super::application::{Workflow, WorkflowError};
use super::regulation::Regulation;
use crate::store::{StepTiming, now};

#[derive(Debug, Serialize)]
pub struct SlaReport {
    pub generated_at: String,
    pub processes: Vec<ProcessSla>,
}

#[derive(Debug, Serialize)]
pub struct ProcessSla {
    pub process: String,
    pub service: String,
    pub channel: String,
    pub steps: Vec<StepSla>,
}

#[derive(Debug, Serialize, Default)]
pub struct StepSla {
    pub step: String,
    pub actor: String,
    pub deadline_seconds: Option<i64>,
    /// Steps finished.
    pub count: usize,
    /// Steps still open.
    pub open: usize,
    pub p50_seconds: Option<i64>,
    pub p95_seconds: Option<i64>,
    pub max_seconds: Option<i64>,
    /// Finished later than the deadline, or open past it.
    pub over_deadline: usize,
}

/// The nearest-rank percentile of sorted durations.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The report over `timings`, in the regulation's order of processes and steps.
pub fn sla(regulation: &Regulation, timings: &[StepTiming]) -> SlaReport {
    let t = now();
    let processes = regulation
        .processes
        .iter()
        .map(|p| ProcessSla {
            process: p.id.clone(),
            service: name(&p.service),
            channel: name(&p.channel),
            steps: p
                .steps
                .iter()
                .map(|s| {
                    let step = name(&s.step);
                    let mine = timings.iter().filter(|x| x.process == p.id && x.step == step);
                    let mut done = Vec::new();
                    let mut open = 0;
                    let mut over = 0;
                    let deadline = s.deadline_seconds.map(|d| d as i64);
                    for x in mine {
                        let took = x.finished_at.unwrap_or(t) - x.started_at;
                        // The deadline recorded with the step is the one that applied to it.
                        if x.deadline_seconds.or(deadline).is_some_and(|d| took > d) {
                            over += 1;
                        }
                        match x.finished_at {
                            Some(_) => done.push(took),
                            None => open += 1,
                        }
                    }
                    done.sort_unstable();
                    StepSla {
                        step,
                        actor: name(&s.actor),
                        deadline_seconds: deadline,
                        count: done.len(),
                        open,
                        p50_seconds: percentile(&done, 50.0),
                        p95_seconds: percentile(&done, 95.0),
                        max_seconds: done.last().copied(),
                        over_deadline: over,
                    }
                })
                .collect(),
        })
        .collect();
    SlaReport {
        generated_at: crate::pki::status::rfc3339(t),
        processes,
    }
}

impl Workflow<'_> {
    /// The SLA report over every step recorded.
    pub async fn sla_report(&self) -> Result<SlaReport, WorkflowError> {
        Ok(sla(self.regulation, &self.store.step_timings().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
