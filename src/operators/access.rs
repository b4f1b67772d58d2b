//! The operator listener's access decisions, kept per TLS connection: the roll's, so that the
//! identity a connection carries ([`super::ClientIdentity`]) can hold them without the roll
//! depending on the wire.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AccessError, Administrator, ClientIdentity, Operator, Roll};

/// How long a connection keeps an access decision. A revocation, suspension or dismissal made
/// through this service drops every kept decision at once (the store's access epoch); one made
/// by another process on the same database (`nca cert revoke`, another instance) is seen by a
/// kept-alive connection within this time, and by a new connection at once.
pub const ACCESS_KEPT: Duration = Duration::from_secs(1);

/// The access decisions of one TLS connection: the client certificate is the connection's, so
/// the decision "issued, unrevoked, holder active" holds for its next requests too, for a short
/// time, instead of three lookups per request. Only a permission is kept: a refusal is decided
/// again on the next request, so that a resumption counts at once.
#[derive(Debug, Default)]
pub struct ConnectionAccess {
    operator: Mutex<Option<Kept<Operator>>>,
    administrator: Mutex<Option<Kept<Administrator>>>,
}

#[derive(Debug)]
struct Kept<T> {
    until: Instant,
    epoch: u64,
    decision: T,
}

fn kept<T: Clone>(slot: &Mutex<Option<Kept<T>>>, epoch: u64) -> Option<T> {
    let slot = slot.lock().ok()?;
    let k = slot.as_ref()?;
    (k.epoch == epoch && Instant::now() < k.until).then(|| k.decision.clone())
}

fn keep<T>(slot: &Mutex<Option<Kept<T>>>, epoch: u64, decision: T) {
    if let Ok(mut slot) = slot.lock() {
        *slot = Some(Kept {
            until: Instant::now() + ACCESS_KEPT,
            epoch,
            decision,
        });
    }
}

/// [`super::operator`], kept for the connection.
pub async fn operator(roll: Roll<'_>, who: Option<&ClientIdentity>) -> Result<Operator, AccessError> {
    // Read before the rows: a change committed while this decision is made moves it, and the
    // decision is not used again.
    let epoch = roll.store.access_epoch();
    if let Some(o) = who.and_then(|w| kept(&w.access.operator, epoch)) {
        return Ok(o);
    }
    let o = super::operator(roll, who).await?;
    if let Some(w) = who {
        keep(&w.access.operator, epoch, o.clone());
    }
    Ok(o)
}

/// [`super::administrator`], kept for the connection.
pub async fn administrator(roll: Roll<'_>, who: Option<&ClientIdentity>) -> Result<Administrator, AccessError> {
    let epoch = roll.store.access_epoch();
    if let Some(a) = who.and_then(|w| kept(&w.access.administrator, epoch)) {
        return Ok(a);
    }
    let a = super::administrator(roll, who).await?;
    if let Some(w) = who {
        keep(&w.access.administrator, epoch, a.clone());
    }
    Ok(a)
}
