//! CRL publication: the schedule (full CRL every 24 h, delta at least hourly and within a minute
//! of any change to the revocations) and the copies served from memory.
//!
//! The publisher polls the database every few seconds rather than waiting for a signal, so a
//! revocation made by `nca cert revoke` in another process reaches the delta as fast as one made
//! through the API.
//!
//! Publishing is a duty ([`crate::cluster::Duty::Crl`]): one instance of a cluster publishes,
//! each CRL recorded under its fence; every instance serves the newest CRLs from the database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cluster::{Cluster, Duty};
use crate::model::Actor;
use crate::pki::Ca;
use crate::pki::crl::{self, CrlKind};
use crate::store::{CrlRecord, Fence, Store, now};

/// How often the schedule is checked.
pub const TICK: Duration = Duration::from_secs(5);

/// A CRL as served: the DER and what HTTP caching needs.
#[derive(Debug, Clone)]
pub struct Published {
    pub der: Arc<Vec<u8>>,
    pub etag: String,
    pub this_update: i64,
    pub next_update: i64,
}

/// The newest CRLs by file name (`nca.crl`, `nca-delta.crl`, `root.crl`).
#[derive(Default)]
pub struct CrlCache(RwLock<HashMap<String, Published>>);

impl CrlCache {
    pub fn get(&self, file: &str) -> Option<Published> {
        self.0.read().ok()?.get(file).cloned()
    }

    /// Serves `r` if it is newer than what is served.
    pub fn refresh(&self, r: &CrlRecord) {
        self.put(r)
    }

    /// Whether CRL `number` of `issuer` and `kind` is the one served.
    fn serves(&self, issuer: &str, kind: &str, number: i64) -> bool {
        self.get(&file_name(issuer, kind))
            .is_some_and(|p| p.etag == etag(issuer, number))
    }

    fn put(&self, r: &CrlRecord) {
        let file = file_name(&r.issuer, &r.kind);
        let p = Published {
            der: Arc::new(r.der.clone()),
            etag: etag(&r.issuer, r.number),
            this_update: r.this_update,
            next_update: r.next_update,
        };
        if let Ok(mut m) = self.0.write() {
            let newer = m.get(&file).is_none_or(|old| old.etag != p.etag);
            if newer {
                m.insert(file, p);
            }
        }
    }
}

/// The file a CRL is served as: `nca.crl`, `nca-delta.crl`, `root.crl`.
fn file_name(issuer: &str, kind: &str) -> String {
    match kind {
        "delta" => format!("{issuer}-delta.crl"),
        _ => format!("{issuer}.crl"),
    }
}

fn etag(issuer: &str, number: i64) -> String {
    format!("\"{issuer}-{number}\"")
}

/// One pass of the schedule: under the publishing duty's `fence`, publishes what is due; then
/// serves the newest CRLs from the database (those another instance published, without one).
pub async fn tick(ca: &Ca, store: &Store, cache: &CrlCache, fence: Option<&Fence>) -> Result<(), crl::CrlError> {
    if let Some(fence) = fence {
        publish_due(ca, store, fence).await?;
    }
    for (issuer, kind) in [
        (&ca.issuing.id, "full"),
        (&ca.issuing.id, "delta"),
        (&ca.root.id, "full"),
    ] {
        // The DER (tens of megabytes for a full CRL of a million entries) is read only when a
        // newer CRL is there.
        let Some(number) = store.latest_crl_number(issuer, kind).await? else {
            continue;
        };
        if cache.serves(issuer, kind, number) {
            continue;
        }
        if let Some(c) = store.latest_crl(issuer, kind).await? {
            cache.put(&c);
        }
    }
    Ok(())
}

/// Publishes what is due: the full CRL every 24 h, a delta at least hourly and after a change,
/// the root's CRL before its nextUpdate.
async fn publish_due(ca: &Ca, store: &Store, fence: &Fence) -> Result<(), crl::CrlError> {
    let t = now();
    let issuing = ca.issuing.id.clone();
    let full = match store.latest_crl(&issuing, "full").await? {
        Some(f) if f.this_update + crl::FULL_EVERY > t => f,
        _ => {
            ca.publish_crl_under(&issuing, CrlKind::Full, &Actor::Service, Some(fence))
                .await?
        }
    };
    let delta = store.latest_crl(&issuing, "delta").await?;
    let changed = store.last_revocation_change(&issuing, t).await?;
    let due = match &delta {
        None => true,
        Some(d) => {
            d.this_update + crl::DELTA_EVERY <= t
                || d.base_number.unwrap_or(0) < full.number
                // A change in the second of the last delta or after, once that second is over
                // (a CRL lists what was recorded before the second it is published in).
                || changed.is_some_and(|c| c >= d.this_update && t > c)
        }
    };
    if due {
        ca.publish_crl_under(&issuing, CrlKind::Delta, &Actor::Service, Some(fence))
            .await?;
    }
    let root = ca.root.id.clone();
    match store.latest_crl(&root, "full").await? {
        Some(r) if r.next_update - crl::ROOT_RENEW_BEFORE > t => {}
        _ => {
            ca.publish_crl_under(&root, CrlKind::Full, &Actor::Service, Some(fence))
                .await?;
        }
    }
    Ok(())
}

/// Which CRL is asked for out of schedule: the issuing CA's (full or delta) or the root's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wanted {
    /// A delta CRL rather than a full one.
    #[serde(default)]
    pub delta: bool,
    /// The root's CRL rather than the issuing CA's.
    #[serde(default)]
    pub root: bool,
}

/// Publishes the CRL `wanted` now (an administrator's request, `nca crl publish`), and serves it
/// from `cache` at once when this process serves CRLs, rather than at the next tick.
pub async fn publish_now(
    ca: &Ca,
    cache: Option<&CrlCache>,
    wanted: Wanted,
    actor: &Actor,
) -> Result<CrlRecord, crl::CrlError> {
    let issuer = if wanted.root { &ca.root.id } else { &ca.issuing.id };
    let kind = if wanted.delta { CrlKind::Delta } else { CrlKind::Full };
    tracing::info!(target: "audit", issuer = %issuer, kind = kind.as_str(), "crl asked for out of schedule");
    let r = ca.publish_crl(issuer, kind, actor).await?;
    if let Some(cache) = cache {
        cache.refresh(&r);
    }
    Ok(r)
}

/// Runs the schedule until `stop`: every instance refreshes its served copies each tick, the
/// holder of the publishing duty publishes.
pub async fn run(
    ca: Arc<Ca>,
    store: Store,
    cache: Arc<CrlCache>,
    cluster: Arc<Cluster>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    cluster.want(Duty::Crl);
    loop {
        if let Err(e) = tick(&ca, &store, &cache, cluster.holds(Duty::Crl).as_ref()).await {
            tracing::error!("CRL publication: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

/// What is published for each CA: the newest full and delta CRL, their numbers, thisUpdate and
/// nextUpdate, for the administrators' page.
pub async fn status(ca: &Ca, store: &Store) -> Result<Vec<serde_json::Value>, crate::store::StoreError> {
    let mut out = Vec::new();
    for issuer in [&ca.root.id, &ca.issuing.id] {
        for kind in ["full", "delta"] {
            if let Some(c) = store.latest_crl(issuer, kind).await? {
                out.push(serde_json::json!({
                    "issuer": c.issuer, "kind": c.kind, "number": c.number, "base_number": c.base_number,
                    "entries": c.entries, "this_update": crate::pki::status::rfc3339(c.this_update),
                    "next_update": crate::pki::status::rfc3339(c.next_update),
                    "overdue": c.next_update < now(),
                }));
            }
        }
    }
    Ok(out)
}
