//! Several `nca serve` instances on one database (README, "Beyond one machine").
//!
//! Each instance registers itself and beats every third of `cluster.lease_seconds`. Each periodic
//! duty ([`Duty`]) is held by one instance at a time through a lease row in the database; the
//! heartbeat renews the leases this instance holds and takes those whose holder stopped beating.
//! A change of holder raises the lease's fencing number, and a duty's writes check it in their
//! own transaction ([`crate::store::Fence`]): a holder that was paused (a stopped process, a long
//! garbage collection of the machine) past its lease finds on waking that its fence is stale,
//! and writes nothing. SQLite has one instance, which takes every lease on its first heartbeat:
//! the same code path (a predecessor's leases, left by a crash, are ended at its start).

pub mod duties;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{Fence, Store, StoreError};

/// A periodic duty of the service: done by one instance at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Duty {
    /// CRL publishing (`publisher`): the full CRL every 24 h, deltas, the root's CRL.
    Crl,
    /// The audit checkpoint: every chain's head signed by the service key, hourly.
    AuditCheckpoint,
    /// Dismissals scheduled for a date: the operator's status becomes `dismissed` once it has
    /// come (their certificates' revocations were recorded for that date when it was set).
    ScheduledDismissals,
    /// Operators idle for `operators.suspend_after_days` suspended (§15).
    IdleSuspension,
    /// The applications the state database did not answer for, asked again.
    RegistryRetry,
    /// The workflow driver: result steps recorded but not done, finished.
    WorkflowDriver,
    /// The delegated certificates (OCSP responder, service signer, TSA) renewed near their end.
    DelegatedRenewal,
    /// The cabinet's expiry reminders.
    CabinetReminders,
    /// Delivered outbox messages removed after `outbox.retention_days`; the outbox's counts
    /// folded.
    OutboxRetention,
    /// Receipts of the document archive past `archive.retention_days` removed.
    ArchiveRetention,
    /// OCSP answers signed ahead (a round registered with [`Cluster::spawn_duty`]).
    Ocsp,
}

impl Duty {
    pub const ALL: [Duty; 11] = [
        Duty::Crl,
        Duty::AuditCheckpoint,
        Duty::ScheduledDismissals,
        Duty::IdleSuspension,
        Duty::RegistryRetry,
        Duty::WorkflowDriver,
        Duty::DelegatedRenewal,
        Duty::CabinetReminders,
        Duty::OutboxRetention,
        Duty::ArchiveRetention,
        Duty::Ocsp,
    ];

    /// The name in the lease table, the admin view and `nca_duty_held{duty}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Duty::Crl => "crl",
            Duty::AuditCheckpoint => "audit_checkpoint",
            Duty::ScheduledDismissals => "scheduled_dismissals",
            Duty::IdleSuspension => "idle_suspension",
            Duty::RegistryRetry => "registry_retry",
            Duty::WorkflowDriver => "workflow_driver",
            Duty::DelegatedRenewal => "delegated_renewal",
            Duty::CabinetReminders => "cabinet_reminders",
            Duty::OutboxRetention => "outbox_retention",
            Duty::ArchiveRetention => "archive_retention",
            Duty::Ocsp => "ocsp",
        }
    }
}

/// A duty's round: called with the fence the duty is held under, as often as the duty says.
pub type Round = Box<dyn FnMut(Fence) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A lease this instance holds, and until when it may act on it: the lease row's time to live
/// from the moment the renewal was sent (the database's expiry is later than that).
#[derive(Debug, Clone, Copy)]
struct Held {
    fence: i64,
    until: Instant,
}

/// This instance in the cluster.
pub struct Cluster {
    /// This instance's id: host, process and a random part (a restart is a new instance).
    pub id: String,
    store: Store,
    lease: Duration,
    /// The duties this instance has a round for; it takes no other.
    wanted: Mutex<HashSet<Duty>>,
    held: Mutex<HashMap<Duty, Held>>,
    /// Woken when a duty is taken, so that its loop starts at once.
    gained: tokio::sync::Notify,
}

/// Instances not seen for a day leave the list.
const FORGET_MS: i64 = 86_400_000;

impl Cluster {
    /// Registers this instance; it holds nothing until [`Cluster::heartbeat`].
    pub async fn join(store: Store, lease_seconds: u64) -> Result<Arc<Cluster>, StoreError> {
        let id = instance_id();
        store.register_instance(&id, env!("CARGO_PKG_VERSION")).await?;
        if store.backend() == crate::store::Backend::Sqlite {
            store.end_others_leases(&id).await?;
        }
        tracing::info!(instance = %id, lease_seconds, "joined the cluster");
        Ok(Arc::new(Cluster {
            id,
            store,
            lease: Duration::from_secs(lease_seconds),
            wanted: Mutex::new(HashSet::new()),
            held: Mutex::new(HashMap::new()),
            gained: tokio::sync::Notify::new(),
        }))
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How long a lease row lives after a renewal: two thirds of the lease time. Renewed every
    /// third, so a beat may fail once without the duty being lost; and a holder's death is at
    /// most this after its last renewal, after which another instance takes the duty at its next
    /// beat (at most a third later): the duty moves within the lease time.
    fn ttl(&self) -> Duration {
        self.lease * 2 / 3
    }

    /// Declares that this instance runs `duty`: its heartbeat will take it when it is free.
    pub fn want(&self, duty: Duty) {
        if let Ok(mut w) = self.wanted.lock() {
            w.insert(duty);
        }
    }

    /// The fence `duty` is held under by this instance now, if it is.
    pub fn holds(&self, duty: Duty) -> Option<Fence> {
        let held = self.held.lock().ok()?.get(&duty).copied()?;
        (held.until > Instant::now()).then(|| Fence {
            duty: duty.as_str().to_string(),
            holder: self.id.clone(),
            number: held.fence,
        })
    }

    /// One heartbeat: this instance seen, the leases it holds renewed, the free ones it wants
    /// taken. A database that does not answer leaves the leases to run out here as there.
    pub async fn heartbeat(&self) {
        if let Err(e) = self.store.instance_seen(&self.id, FORGET_MS).await {
            tracing::warn!("cluster heartbeat: {e}");
        }
        let mut wanted: Vec<Duty> = self
            .wanted
            .lock()
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default();
        wanted.sort();
        let lease_ms = self.ttl().as_millis() as i64;
        for duty in wanted {
            let sent = Instant::now();
            let current = self.held.lock().ok().and_then(|h| h.get(&duty).map(|x| x.fence));
            match self.store.take_duty(duty.as_str(), &self.id, current, lease_ms).await {
                Ok(Some(fence)) => {
                    if current != Some(fence) {
                        tracing::info!(duty = duty.as_str(), fence, "duty taken");
                    }
                    if let Ok(mut h) = self.held.lock() {
                        h.insert(
                            duty,
                            Held {
                                fence,
                                until: sent + self.ttl(),
                            },
                        );
                    }
                    if current != Some(fence) {
                        self.gained.notify_waiters();
                    }
                }
                Ok(None) => {
                    if current.is_some() {
                        tracing::warn!(duty = duty.as_str(), "duty lost: another instance holds it");
                    }
                    if let Ok(mut h) = self.held.lock() {
                        h.remove(&duty);
                    }
                }
                // Kept until its time runs out: the next beat may renew it.
                Err(e) => tracing::warn!(duty = duty.as_str(), "cluster lease: {e}"),
            }
        }
    }

    /// Beats every third of the lease until `stop`, then gives up the leases held, so that
    /// another instance takes them at once (bounded: a database that is gone cannot be told).
    pub fn run(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let every = me.lease / 3;
            while !*stop.borrow() {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => break,
                }
                me.heartbeat().await;
            }
            let held: Vec<(Duty, Held)> = me.held.lock().map(|mut h| h.drain().collect()).unwrap_or_default();
            let release = async {
                for (duty, h) in held {
                    if let Err(e) = me.store.release_duty(duty.as_str(), &me.id, h.fence).await {
                        tracing::warn!(duty = duty.as_str(), "release: {e}");
                    }
                }
            };
            if tokio::time::timeout(Duration::from_secs(2), release).await.is_err() {
                tracing::warn!("duties not released (the database does not answer): they move when their leases end");
            }
        })
    }

    /// Runs `round` every `every` while this instance holds `duty`, until `stop`; the duty is
    /// wanted from now on. A round in progress when the duty is lost finishes, and its writes
    /// are refused by the fence.
    pub fn spawn_duty(
        self: &Arc<Self>,
        duty: Duty,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut round: Round,
    ) -> tokio::task::JoinHandle<()> {
        self.want(duty);
        let me = Arc::clone(self);
        tokio::spawn(async move {
            while !*stop.borrow() {
                if let Some(fence) = me.holds(duty) {
                    round(fence).await;
                }
                let gained = me.gained.notified();
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = gained => {}
                    _ = stop.changed() => break,
                }
            }
        })
    }

    /// For `/metrics`: whether this instance holds each duty.
    pub fn held_duties(&self) -> Vec<(Duty, bool)> {
        Duty::ALL.iter().map(|d| (*d, self.holds(*d).is_some())).collect()
    }

    /// For `GET /api/v1/admin/cluster`: the instances and each duty's holder.
    pub async fn view(&self) -> Result<serde_json::Value, StoreError> {
        let (instances, now) = self.store.instances().await?;
        let leases = self.store.duty_leases().await?;
        let lease_ms = self.lease.as_millis() as i64;
        let time = |ms: i64| crate::pki::status::rfc3339(ms.div_euclid(1000));
        let instances: Vec<_> = instances
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "started": time(i.started_at_ms), "last_seen": time(i.last_seen_ms),
                    "version": i.version, "alive": now - i.last_seen_ms <= lease_ms,
                    "duties": leases.iter().filter(|l| l.holder == i.id && l.expires_at_ms > now)
                        .map(|l| l.duty.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let duties: Vec<_> = Duty::ALL
            .iter()
            .map(|d| {
                let l = leases.iter().find(|l| l.duty == d.as_str());
                let live = l.filter(|l| l.expires_at_ms > now);
                serde_json::json!({
                    "duty": d.as_str(),
                    "holder": live.map(|l| l.holder.clone()),
                    "fence": l.map(|l| l.fence),
                    "since": live.map(|l| time(l.acquired_at_ms)),
                    "expires": live.map(|l| time(l.expires_at_ms)),
                })
            })
            .collect();
        Ok(serde_json::json!({
            "instance": self.id, "lease_seconds": self.lease.as_secs(),
            "instances": instances, "duties": duties,
        }))
    }
}

/// Host name, process id and the start's nanosecond: unique across restarts and machines, and
/// readable in the admin view, with no randomness to fail.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "nca".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_duty_has_its_own_name() {
        let names: HashSet<_> = Duty::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), Duty::ALL.len());
    }
}
