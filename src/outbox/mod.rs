//! The outbox: what the service tells others of an application's changes — the monitoring
//! system (every status change) and the applicant (letters) — written in the same transaction as
//! the change (`store::Advance::messages`) and delivered by workers, in order per application,
//! at least once, with every attempt recorded.
//!
//! Composition is here (the message formats of DESIGN.md); the SQL is in `store/outbox.rs`; the
//! deliveries are in `monitoring.rs` and `mail.rs`.

pub(crate) mod letters;
pub(crate) mod mail;
pub mod monitoring;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::model::actor::instance_name;
use crate::store::{ApplicationRecord, Attempt, AttemptOutcome, DueMessage, OutboxMessage, Store, StoreError, now};

pub const MONITORING: &str = "monitoring";
pub const MAIL: &str = "mail";

/// Why a message could not be delivered this time.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver could not be reached, or did not answer in time: try again later.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The receiver answered with an error status.
    #[error("answered {status}")]
    Status { status: u16 },
    /// The receiver refuses this message for good (an SMTP 5xx): it is parked.
    #[error("refused: {0}")]
    Refused(String),
    /// The message could not be signed or put together; retried (the key store may be back).
    #[error("preparing the message: {0}")]
    Prepare(String),
}

/// The operating system gave no random bytes. Nothing is recorded: a message id made of zeros
/// would collide with every other one the receivers have seen.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomnessError(String);

/// A fresh message id: a time-ordered (version 7, RFC 9562) UUID, 48 bits of the Unix time in
/// milliseconds and 74 from the OS random source, or that source's failure.
///
/// Time-ordered, not random (version 4), because the id keys two B-trees written with every
/// status change (`outbox.message_id` and `outbox_attempts`): a random key lands each message
/// on a page of its own, so that a group commit wrote one WAL page per message per index. Ids
/// made together now share the rightmost page (BENCHMARKS.md, issue #17, fifth round). The
/// receiver's use of the id, telling messages apart and dropping a repeat, is unchanged; the
/// time it carries is the message's `messageDate` already.
pub fn message_id() -> Result<String, RandomnessError> {
    let mut b = [0u8; 10];
    getrandom::fill(&mut b).map_err(|e| RandomnessError(e.to_string()))?;
    // A clock before 1970 gives 0: the id stays unique by its random bits, only unordered.
    let millis = u64::try_from(now_ms()).unwrap_or(0);
    Ok(uuid::Builder::from_unix_timestamp_millis(millis, &b)
        .into_uuid()
        .to_string())
}

/// Local time with its offset, as the monitoring system records times: `2026-11-27T21:05:00+05:00`.
pub fn local_time(unix: i64, offset: time::UtcOffset) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset)
        .format(&fmt)
        .unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MonitoringMessage<'a> {
    message_id: &'a str,
    correlation_id: &'a str,
    service_id: &'a str,
    message_type: &'static str,
    message_date: String,
    sender: &'a str,
    data: MonitoringData<'a>,
}

#[derive(Serialize)]
struct MonitoringData<'a> {
    application: &'a str,
    service: &'a str,
    channel: &'a str,
    status: &'a str,
    step: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<RefusalData<'a>>,
    /// Who made the change: `{"role", "iin"?}` (applicant, operator, administrator, service).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    actor: &'a serde_json::Value,
}

#[derive(Serialize)]
struct RefusalData<'a> {
    code: &'a str,
    step: &'a str,
    message: &'a str,
}

/// The monitoring message for a change of `a` to `status` at `step` (DESIGN.md, "Monitoring
/// messages"). The body is fixed here, once: every retry sends the same bytes.
pub fn status_message(
    cfg: &Config,
    service_id: &str,
    a: &ApplicationRecord,
    status: &str,
    step: &str,
    refusal: Option<&crate::model::Refusal>,
    actor: &serde_json::Value,
) -> Result<OutboxMessage, RandomnessError> {
    let id = message_id()?;
    let body = MonitoringMessage {
        message_id: &id,
        correlation_id: &a.number,
        service_id,
        message_type: "NOTIFICATION",
        message_date: local_time(now(), cfg.timezone_offset()),
        sender: &cfg.monitoring.sender,
        data: MonitoringData {
            application: &a.number,
            service: a.service.as_str(),
            channel: a.channel.as_str(),
            status,
            step,
            refusal: refusal.map(|r| RefusalData {
                code: &r.code,
                step: r.step.as_str(),
                message: &r.message,
            }),
            actor,
        },
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    Ok(OutboxMessage {
        channel: MONITORING,
        message_id: id,
        application: a.number.clone(),
        body,
    })
}

/// The wait before attempt `attempts + 1`: doubling from the first, capped.
pub fn backoff(attempts: i64, initial_ms: u64, max_seconds: u64) -> i64 {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let ms = initial_ms.saturating_mul(1u64 << exp.min(20));
    (ms.div_ceil(1000)).clamp(1, max_seconds.max(1)) as i64
}

/// A channel's queue as the admin view shows it.
#[derive(Debug, Serialize)]
pub struct QueueView {
    pub pending: i64,
    pub delivered: i64,
    pub parked: i64,
    pub oldest_pending_age_seconds: Option<i64>,
}

impl QueueView {
    fn of(c: &crate::store::OutboxCounts, now: i64) -> QueueView {
        QueueView {
            pending: c.pending,
            delivered: c.delivered,
            parked: c.parked,
            oldest_pending_age_seconds: c.oldest_pending_created_at.map(|t| now - t),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ParkedView {
    pub message_id: String,
    pub application: String,
    pub attempts: i64,
    pub last_http_status: Option<i64>,
    pub last_error: Option<String>,
}

/// `GET /api/v1/admin/monitoring`: the monitoring queue with its parked messages, and the mail
/// queue beside it.
#[derive(Debug, Serialize)]
pub struct MonitoringView {
    pub url: String,
    #[serde(flatten)]
    pub queue: QueueView,
    pub parked_messages: Vec<ParkedView>,
    pub mail: QueueView,
}

pub async fn monitoring_view(store: &Store, url: &str) -> Result<MonitoringView, crate::store::StoreError> {
    let t = now();
    let parked = store.parked_messages(MONITORING, 100).await?;
    Ok(MonitoringView {
        url: url.to_string(),
        queue: QueueView::of(&store.outbox_counts(MONITORING).await?, t),
        parked_messages: parked
            .into_iter()
            .map(|p| ParkedView {
                message_id: p.message_id,
                application: p.application,
                attempts: p.attempts,
                last_http_status: p.last_status,
                last_error: p.last_error,
            })
            .collect(),
        mail: QueueView::of(&store.outbox_counts(MAIL).await?, t),
    })
}

/// How a channel delivers one message.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, m: &DueMessage) -> impl std::future::Future<Output = Result<Option<u16>, DeliveryError>> + Send;
}

/// The retry policy of a channel.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub batch: i64,
    pub concurrency: usize,
    pub lease_seconds: i64,
    pub retry_initial_ms: u64,
    pub retry_max_seconds: u64,
}

/// One round: claim due messages, deliver them at once (they belong to different applications),
/// record every attempt. Returns how many were claimed. The worker ([`run`]) overlaps its rounds;
/// this is the unpipelined step, for one-off use.
pub async fn round<D: Deliver>(
    store: &Store,
    channel: &str,
    instance: &str,
    policy: &Policy,
    deliver: &D,
) -> Result<usize, crate::store::StoreError> {
    let due = store
        .claim_outbox(channel, instance, policy.batch, policy.lease_seconds)
        .await?;
    let n = due.len();
    let attempts = deliver_all(due, policy, deliver).await;
    store.record_attempts(instance, &attempts).await?;
    Ok(n)
}

/// Delivers claimed messages, `policy.concurrency` at once, and says what became of each.
async fn deliver_all<D: Deliver>(due: Vec<DueMessage>, policy: &Policy, deliver: &D) -> Vec<Attempt> {
    use futures_util::StreamExt;
    futures_util::stream::iter(due)
        .map(|m| async move {
            let started = std::time::Instant::now();
            let at_ms = now_ms();
            let result = deliver.deliver(&m).await;
            let latency_ms = started.elapsed().as_millis() as i64;
            let attempt = m.attempts + 1;
            let retry = AttemptOutcome::RetryAt(now() + backoff(attempt, policy.retry_initial_ms, policy.retry_max_seconds));
            let (http_status, error, outcome) = match result {
                Ok(status) => (status, None, AttemptOutcome::Delivered),
                Err(DeliveryError::Status { status }) => {
                    // A 4xx says the message itself is wrong and will never be taken; 408 and
                    // 429 say "later".
                    let lasting = (400..500).contains(&status) && status != 408 && status != 429;
                    let outcome = if lasting { AttemptOutcome::Parked } else { retry };
                    (Some(status), Some(format!("answered {status}")), outcome)
                }
                Err(e @ DeliveryError::Refused(_)) => (None, Some(e.to_string()), AttemptOutcome::Parked),
                Err(e) => (None, Some(e.to_string()), retry),
            };
            if outcome == AttemptOutcome::Parked {
                tracing::error!(message = %m.message_id, application = %m.application, ?http_status, "message parked: the receiver refuses it");
            }
            Attempt {
                id: m.id,
                message_id: m.message_id,
                attempt,
                at_ms,
                http_status: http_status.map(i64::from),
                latency_ms,
                error,
                outcome,
            }
        })
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await
}

/// Records the attempts still unrecorded (emptying `unrecorded` once they are) and claims the
/// next round, in one write. Recorded first, so that the successors of the messages just
/// delivered are due.
async fn settle_and_claim(
    store: &Store,
    channel: &str,
    instance: &str,
    policy: &Policy,
    unrecorded: &mut Vec<Attempt>,
) -> Result<Vec<DueMessage>, StoreError> {
    let due = store
        .settle_and_claim(instance, unrecorded, channel, policy.batch, policy.lease_seconds)
        .await?;
    unrecorded.clear();
    Ok(due)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs a channel's worker until `stop`: rounds back to back while there is work, a short sleep
/// when there is none or the database fails.
///
/// The rounds overlap: while one round's messages are signed and posted, the previous round's
/// attempts are recorded and the next round is claimed, so the cores sign while the database
/// writes. The order per application holds as it does for one round at a time: a message is
/// claimed only when every earlier one of its application is recorded as delivered, and a
/// claimed message is not claimed again while its lease runs, so a round claimed ahead never
/// holds the successor of a message still in flight or unrecorded. On stop, the round under
/// way finishes and its attempts are recorded; the round claimed ahead is given back
/// (unclaimed), so a restart does not wait for its lease. A kill leaves at most two rounds
/// delivered and unrecorded: their claims run out and they go again (at least once).
pub async fn run<D: Deliver>(
    store: Store,
    channel: &'static str,
    policy: Policy,
    deliver: Arc<D>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let instance = instance_name();
    tracing::info!(channel, instance = %instance, "outbox worker started");
    // The attempts of the round delivered last, recorded while the next one is delivered.
    let mut unrecorded: Vec<Attempt> = Vec::new();
    // The round claimed ahead, delivered next.
    let mut ahead: Vec<DueMessage> = Vec::new();
    while !*stop.borrow() {
        if ahead.is_empty() {
            match settle_and_claim(&store, channel, &instance, &policy, &mut unrecorded).await {
                Ok(due) if !due.is_empty() => ahead = due,
                Ok(_) => {
                    idle(&mut stop).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!(channel, "outbox: {e}");
                    idle(&mut stop).await;
                    continue;
                }
            }
        }
        let current = std::mem::take(&mut ahead);
        let (attempts, claimed) = tokio::join!(
            deliver_all(current, &policy, deliver.as_ref()),
            settle_and_claim(&store, channel, &instance, &policy, &mut unrecorded),
        );
        // Unrecorded attempts of an earlier round (the database failed) stay and go with these.
        unrecorded.extend(attempts);
        match claimed {
            Ok(due) => ahead = due,
            Err(e) => tracing::error!(channel, "outbox: {e}"),
        }
    }
    if let Err(e) = store.record_attempts(&instance, &unrecorded).await {
        tracing::error!(channel, "outbox: recording the last round on stop: {e}");
    }
    let ids: Vec<i64> = ahead.iter().map(|m| m.id).collect();
    if let Err(e) = store.release_outbox_claims(&instance, &ids).await {
        tracing::error!(channel, "outbox: giving back the round claimed ahead on stop: {e}");
    }
}

/// The worker's pause when there is nothing to claim or the database failed; cut short by a stop.
async fn idle(stop: &mut tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        _ = stop.changed() => {}
    }
}

/// Puts a parked message back in the queue (after the receiver's side was fixed), with its
/// audit line naming the administrator; false when no message of that id is parked.
pub async fn requeue_parked(store: &Store, message_id: &str, administrator: &str) -> Result<bool, StoreError> {
    let requeued = store.requeue_parked(message_id).await?;
    if requeued {
        tracing::info!(target: "audit", message_id = ?message_id, administrator = %administrator, "outbox: requeued");
    }
    Ok(requeued)
}

/// Starts the workers the configuration asks for: monitoring when a URL is set (otherwise the
/// messages wait in the queue), mail always.
pub fn spawn_workers(
    ca: &Arc<crate::pki::Ca>,
    store: &Store,
    cfg: &crate::config::Config,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut workers = Vec::new();
    if cfg.monitoring.url.is_empty() {
        tracing::warn!("NCA_MONITORING_URL is not set: status messages are kept in the queue");
    } else {
        let sender = monitoring::Sender::new(ca, &cfg.monitoring)?;
        let policy = Policy {
            batch: cfg.monitoring.batch,
            concurrency: cfg.monitoring.concurrency,
            lease_seconds: (cfg.monitoring.timeout_ms / 1000) as i64 + 30,
            retry_initial_ms: cfg.monitoring.retry_initial_ms,
            retry_max_seconds: cfg.monitoring.retry_max_seconds,
        };
        workers.push(tokio::spawn(run(
            store.clone(),
            MONITORING,
            policy,
            Arc::new(sender),
            stop.clone(),
        )));
    }
    let postman = mail::Postman::new(cfg)?;
    let policy = Policy {
        batch: 64,
        concurrency: 4,
        lease_seconds: 120,
        retry_initial_ms: cfg.mail.retry_initial_ms,
        retry_max_seconds: cfg.mail.retry_max_seconds,
    };
    workers.push(tokio::spawn(run(
        store.clone(),
        MAIL,
        policy,
        Arc::new(postman),
        stop.clone(),
    )));
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1, 1000, 300), 1);
        assert_eq!(backoff(2, 1000, 300), 2);
        assert_eq!(backoff(5, 1000, 300), 16);
        assert_eq!(backoff(30, 1000, 300), 300);
        assert_eq!(backoff(3, 1000, 2), 2);
    }

    #[test]
    fn local_time_has_its_offset() {
        let almaty = time::UtcOffset::from_hms(5, 0, 0).unwrap();
        assert_eq!(local_time(1_795_795_500, almaty), "2026-11-27T21:05:00+05:00");
    }

    #[test]
    fn message_ids_are_time_ordered_v7_uuids() {
        let before = u64::try_from(now_ms()).unwrap();
        let id = message_id().unwrap();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version(), Some(uuid::Version::SortRand));
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id, parsed.hyphenated().to_string(), "lower-case, hyphenated");
        // The first 48 bits are the time it was made, so that ids made later sort after it
        // as text too: the index they key is appended to, not written at random.
        let (secs, nanos) = parsed.get_timestamp().unwrap().to_unix();
        let millis = secs * 1000 + u64::from(nanos / 1_000_000);
        assert!(
            millis >= before && millis < before + 60_000,
            "{millis} against {before}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = message_id().unwrap();
        assert!(later > id, "{later} sorts after {id}");
        // Within one millisecond the rest is random: two ids never coincide.
        let many: std::collections::HashSet<String> = (0..1000).map(|_| message_id().unwrap()).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn an_instance_keeps_its_name() {
        let name = instance_name();
        assert!(name.starts_with(&format!("{}-", std::process::id())));
        assert_eq!(name, instance_name());
    }
}
