//! The outbox's SQL: messages appended inside the caller's transaction, claimed by delivery
//! workers (several instances on one PostgreSQL never claim the same message), and the record of
//! every attempt.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError, now};

/// A message to append with a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// `mail` or `monitoring`.
    pub channel: &'static str,
    pub message_id: String,
    pub application: String,
    /// Exactly what is delivered: the monitoring JSON, or the letter.
    pub body: String,
}

/// A claimed message, due for delivery.
#[derive(Debug, Clone)]
pub struct DueMessage {
    pub id: i64,
    pub message_id: String,
    pub application: String,
    pub seq: i64,
    pub body: String,
    pub attempts: i64,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: i64,
    pub message_id: String,
    /// The attempt's number, 1 for the first.
    pub attempt: i64,
    pub at_ms: i64,
    pub http_status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Received: the message is done.
    Delivered,
    /// Failed for now: try again at this time (seconds).
    RetryAt(i64),
    /// Failed for good (the receiver refuses it): kept aside and reported.
    Parked,
}

/// The queue as the admin view shows it.
#[derive(Debug, Clone, Default)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub parked: i64,
    pub oldest_pending_created_at: Option<i64>,
}

/// A parked message, for the report.
#[derive(Debug, Clone)]
pub struct ParkedMessage {
    pub message_id: String,
    pub application: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// A delivered message with its history, for tests and reports.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub message_id: String,
    pub application: String,
    pub seq: i64,
    pub state: String,
    pub body: String,
    pub attempts: i64,
}

/// The most attempts one pair of statements records (seven parameters each).
const ATTEMPT_ROWS: usize = 100;

/// Claims given back per statement: as many parameters as a statement of attempts binds.
const RELEASE_IDS: usize = 700;

/// The most messages one statement appends (five parameters each, one more for the time).
const APPEND_ROWS: usize = 200;

/// Appends messages inside the caller's transaction, each numbered after the application's last
/// on its channel: one statement for up to [`APPEND_ROWS`] of them, not one each (a statement is
/// a round trip to the database while the write lock is held).
pub(crate) async fn append(conn: &mut AnyConnection, messages: &[OutboxMessage]) -> Result<(), StoreError> {
    let t = now();
    // A statement sees the table as it was before it: a message numbered after another of the
    // same application and channel in this statement is numbered after it by its place here.
    // Counted per statement: the next statement sees this one's rows in the table.
    for chunk in messages.chunks(APPEND_ROWS) {
        let mut earlier: HashMap<(&str, &str), i64> = HashMap::new();
        let places: Vec<i64> = chunk
            .iter()
            .map(|m| {
                let n = earlier.entry((m.channel, m.application.as_str())).or_insert(0);
                *n += 1;
                *n
            })
            .collect();
        let rows = super::placeholder_rows(chunk.len(), 5, 1);
        let q = format!(
            "INSERT INTO outbox (channel, message_id, application, seq, body, state, attempts, next_attempt_at, created_at) \
             SELECT v.column1, v.column2, v.column3, \
             COALESCE((SELECT MAX(o.seq) FROM outbox o WHERE o.channel = v.column1 AND o.application = v.column3), 0) \
             + v.column5, v.column4, 'pending', 0, ${t}, ${t} FROM (VALUES {rows}) AS v",
            t = 5 * chunk.len() + 1
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for (m, place) in chunk.iter().zip(&places) {
            query = query
                .bind(m.channel)
                .bind(&m.message_id)
                .bind(&m.application)
                .bind(&m.body)
                .bind(*place);
        }
        query.bind(t).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A worker's round of writes: the attempts of the round it delivered, then a claim of the next
/// round (after them, so that the successors of the messages just delivered are due). Written by
/// the group-commit writer with whatever else it is writing ([`super::group::WriteOp::Outbox`]):
/// on SQLite, whose one write connection the issuance path waits for, a round used to be two
/// transactions of its own between the writer's batches (BENCHMARKS.md, issue #17, ninth round).
#[derive(Debug, Clone)]
pub(super) struct Round {
    pub instance: String,
    pub attempts: Vec<Attempt>,
    pub claim: Option<Claim>,
}

/// Claim up to `limit` due messages of `channel` for `lease` seconds.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub channel: String,
    pub limit: i64,
    pub lease: i64,
}

/// The messages of `channel` due at `$2` (`$1` the channel), oldest first: only the first
/// undelivered message of each application (so each application's go out in order), none claimed
/// by another live worker. An earlier message that is pending or parked holds the later ones
/// back: the receiver never sees an application's status changes out of order.
const DUE: &str = "SELECT o.id FROM outbox o WHERE o.channel = $1 AND o.state = 'pending' AND o.next_attempt_at <= $2 \
       AND (o.claimed_until IS NULL OR o.claimed_until < $2) \
       AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.channel = o.channel AND e.application = o.application \
                       AND e.seq < o.seq AND e.state <> 'delivered') \
       ORDER BY o.id";

/// Writes a worker's round inside the caller's transaction: its attempts, then its claim.
pub(super) async fn round(
    conn: &mut AnyConnection,
    backend: Backend,
    r: &Round,
) -> Result<Vec<DueMessage>, StoreError> {
    record(&mut *conn, &r.instance, &r.attempts).await?;
    match &r.claim {
        Some(c) => claim(conn, backend, &r.instance, c).await,
        None => Ok(Vec::new()),
    }
}

/// Claims due messages for `instance`. On PostgreSQL the rows are locked with SKIP LOCKED, so
/// instances claiming at the same moment take different messages.
async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    instance: &str,
    c: &Claim,
) -> Result<Vec<DueMessage>, StoreError> {
    let t = now();
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let q = format!(
        "UPDATE outbox SET claimed_by = $3, claimed_until = $4 WHERE id IN ({DUE} LIMIT $5 {lock}) \
         RETURNING id, message_id, application, seq, body, attempts"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(&c.channel)
        .bind(t)
        .bind(instance)
        .bind(t + c.lease)
        .bind(c.limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(DueMessage {
                id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                application: r.try_get(2)?,
                seq: r.try_get(3)?,
                body: r.try_get(4)?,
                attempts: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.sort_by_key(|m| m.id);
    Ok(out)
}

/// Records attempts and their outcomes; a message claimed by another instance since (its lease
/// ran out) is left to that instance. Two statements for a whole chunk of attempts, not two per
/// message: the write lock is held for each statement's round trip, and the issuance path waits
/// for it.
async fn record(conn: &mut AnyConnection, instance: &str, attempts: &[Attempt]) -> Result<(), StoreError> {
    let t = now();
    for chunk in attempts.chunks(ATTEMPT_ROWS) {
        let q = format!(
            "INSERT INTO outbox_attempts (message_id, attempt, at_ms, http_status, latency_ms, error, instance) \
             VALUES {}",
            super::placeholder_rows(chunk.len(), 7, 1)
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(q));
        for a in chunk {
            insert = insert
                .bind(&a.message_id)
                .bind(a.attempt)
                .bind(a.at_ms)
                .bind(a.http_status)
                .bind(a.latency_ms)
                .bind(&a.error)
                .bind(instance);
        }
        insert.execute(&mut *conn).await?;
        let q = format!(
            "UPDATE outbox SET state = v.column2, next_attempt_at = v.column3, delivered_at = v.column4, \
             attempts = v.column5, last_status = v.column6, last_error = v.column7, claimed_by = NULL, \
             claimed_until = NULL FROM (VALUES {}) AS v WHERE outbox.id = v.column1 AND outbox.claimed_by = ${}",
            super::placeholder_rows(chunk.len(), 7, 1),
            7 * chunk.len() + 1
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(q));
        for a in chunk {
            let (state, next, delivered_at) = match a.outcome {
                AttemptOutcome::Delivered => ("delivered", t, Some(t)),
                AttemptOutcome::RetryAt(at) => ("pending", at, None),
                AttemptOutcome::Parked => ("parked", t, None),
            };
            update = update
                .bind(a.id)
                .bind(state)
                .bind(next)
                .bind(delivered_at)
                .bind(a.attempt)
                .bind(a.http_status)
                .bind(&a.error);
        }
        update.bind(instance).execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// Claims up to `limit` due messages of a channel for `lease` seconds ([`DUE`]).
    pub async fn claim_outbox(
        &self,
        channel: &str,
        instance: &str,
        limit: i64,
        lease: i64,
    ) -> Result<Vec<DueMessage>, StoreError> {
        self.settle_and_claim(instance, &[], channel, limit, lease).await
    }

    /// Records the attempts of a round and claims the next one, in one write: the attempts
    /// first, so that the successors of the messages just delivered are due.
    pub async fn settle_and_claim(
        &self,
        instance: &str,
        attempts: &[Attempt],
        channel: &str,
        limit: i64,
        lease: i64,
    ) -> Result<Vec<DueMessage>, StoreError> {
        // With nothing to record, looked for first on a reader: a worker polls its channel five
        // times a second, and an idle channel's poll then takes no write connection from the
        // group-commit writer (BENCHMARKS.md, issue #17, eighth round). A message that becomes
        // due after the look is claimed at the next poll, as one appended after the claim is.
        if attempts.is_empty() {
            let first = sqlx::query(sqlx::AssertSqlSafe(format!("{DUE} LIMIT 1")))
                .bind(channel)
                .bind(now())
                .fetch_optional(self.pool())
                .await?;
            if first.is_none() {
                return Ok(Vec::new());
            }
        }
        let w = self
            .write(super::group::WriteOp::Outbox(Box::new(Round {
                instance: instance.to_string(),
                attempts: attempts.to_vec(),
                claim: Some(Claim {
                    channel: channel.to_string(),
                    limit,
                    lease,
                }),
            })))
            .await?;
        Ok(w.claimed)
    }

    /// Records a batch of attempts and their outcomes in one write; a message claimed by
    /// another instance since (its lease ran out) is left to that instance.
    pub async fn record_attempts(&self, instance: &str, attempts: &[Attempt]) -> Result<(), StoreError> {
        if attempts.is_empty() {
            return Ok(());
        }
        self.write(super::group::WriteOp::Outbox(Box::new(Round {
            instance: instance.to_string(),
            attempts: attempts.to_vec(),
            claim: None,
        })))
        .await
        .map(|_| ())
    }

    /// Gives back claims not delivered (a worker stopping with a round claimed ahead), so that
    /// the next worker takes them now instead of when their lease runs out; a message claimed by
    /// another instance since is left alone.
    pub async fn release_outbox_claims(&self, instance: &str, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in ids.chunks(RELEASE_IDS) {
            let q = format!(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1 AND id IN {}",
                super::placeholder_rows(1, chunk.len(), 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(instance);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a parked message back in the queue, to be tried again now.
    pub async fn requeue_parked(&self, message_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE outbox SET state = 'pending', next_attempt_at = $1 WHERE message_id = $2 AND state = 'parked'",
        )
        .bind(now())
        .bind(message_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// The queue's counts: the tally kept on write (`outbox_tally` and the differences not yet
    /// folded into it), not a count of the rows; the oldest pending message by the queue's index.
    pub async fn outbox_counts(&self, channel: &str) -> Result<OutboxCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT state, CAST(SUM(n) AS BIGINT) FROM (SELECT state, n FROM outbox_tally WHERE channel = $1 \
             UNION ALL SELECT state, d FROM outbox_tally_delta WHERE channel = $1) t GROUP BY state",
        )
        .bind(channel)
        .fetch_all(self.pool())
        .await?;
        let mut c = OutboxCounts::default();
        for r in rows {
            let state: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            match state.as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.parked = n,
            }
        }
        c.oldest_pending_created_at =
            sqlx::query("SELECT created_at FROM outbox WHERE channel = $1 AND state = 'pending' ORDER BY id LIMIT 1")
                .bind(channel)
                .fetch_optional(self.pool())
                .await?
                .map(|r| r.try_get::<i64, _>(0))
                .transpose()?;
        Ok(c)
    }

    /// Folds the tally's differences into its totals, so that a read adds a few rows. On
    /// PostgreSQL the rows removed are exactly the rows added up (one statement, one snapshot):
    /// a difference committed meanwhile waits for the next fold.
    pub async fn fold_outbox_tally(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        match self.backend() {
            Backend::Postgres => {
                sqlx::query(
                    "WITH gone AS (DELETE FROM outbox_tally_delta RETURNING channel, state, d), \
                     sums AS (SELECT channel, state, SUM(d) AS d FROM gone GROUP BY channel, state) \
                     UPDATE outbox_tally t SET n = t.n + sums.d FROM sums \
                     WHERE t.channel = sums.channel AND t.state = sums.state",
                )
                .execute(&mut *tx)
                .await?;
            }
            Backend::Sqlite => {
                // One writer: nothing is added between the two statements.
                sqlx::query(
                    "UPDATE outbox_tally SET n = n + COALESCE((SELECT SUM(d) FROM outbox_tally_delta x \
                     WHERE x.channel = outbox_tally.channel AND x.state = outbox_tally.state), 0)",
                )
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM outbox_tally_delta").execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes up to `limit` messages delivered before `before` (seconds) and their attempts,
    /// oldest first, under the retention duty's `fence`; returns how many messages went.
    pub async fn prune_delivered(
        &self,
        before: i64,
        limit: i64,
        fence: Option<&super::Fence>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(f) = fence {
            super::cluster::check_fence(&mut tx, self.backend(), f).await?;
        }
        // The batch's last id: the two deletes below take the same rows (a delivered message
        // never changes again).
        let last = sqlx::query(
            "SELECT MAX(id) FROM (SELECT id FROM outbox WHERE state = 'delivered' AND delivered_at < $1 \
             ORDER BY id LIMIT $2) b",
        )
        .bind(before)
        .bind(limit)
        .fetch_one(&mut *tx)
        .await?
        .try_get::<Option<i64>, _>(0)?;
        let Some(last) = last else {
            tx.commit().await?;
            return Ok(0);
        };
        sqlx::query(
            "DELETE FROM outbox_attempts WHERE message_id IN (SELECT message_id FROM outbox \
             WHERE state = 'delivered' AND delivered_at < $1 AND id <= $2)",
        )
        .bind(before)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < $1 AND id <= $2")
            .bind(before)
            .bind(last)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone)
    }

    /// How many attempts are recorded for a message (for the retention's tests).
    pub async fn outbox_attempt_count(&self, message_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM outbox_attempts WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(self.pool())
                .await?
                .try_get::<i64, _>(0)?,
        )
    }

    pub async fn parked_messages(&self, channel: &str, limit: i64) -> Result<Vec<ParkedMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, application, attempts, last_status, last_error FROM outbox \
             WHERE channel = $1 AND state = 'parked' ORDER BY id LIMIT $2",
        )
        .bind(channel)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ParkedMessage {
                    message_id: r.try_get(0)?,
                    application: r.try_get(1)?,
                    attempts: r.try_get(2)?,
                    last_status: r.try_get(3)?,
                    last_error: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// An application's messages on a channel, in order.
    pub async fn outbox_of(&self, channel: &str, application: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, application, seq, state, body, attempts FROM outbox \
             WHERE channel = $1 AND application = $2 ORDER BY seq",
        )
        .bind(channel)
        .bind(application)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    message_id: r.try_get(0)?,
                    application: r.try_get(1)?,
                    seq: r.try_get(2)?,
                    state: r.try_get(3)?,
                    body: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Appends messages on their own (for what changes no application row, and for benchmarks).
    pub async fn add_outbox(&self, messages: &[OutboxMessage]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, messages).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker's poll of a channel with nothing due takes no write connection: it answers at
    /// once while another write transaction holds SQLite's one, where it used to queue for it five
    /// times a second beside the group-commit writer. With a message due it claims it.
    #[test]
    fn a_poll_with_nothing_due_leaves_the_write_connection_alone() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
            let store = Store::open(&url).await.unwrap();
            let held = store.begin_write().await.unwrap();
            let polled = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                store.claim_outbox("mail", "i", 64, 60),
            )
            .await;
            assert!(matches!(polled, Ok(Ok(ref due)) if due.is_empty()), "{polled:?}");
            drop(held);
            store
                .add_outbox(&[OutboxMessage {
                    channel: "mail",
                    message_id: "m1".into(),
                    application: "A1".into(),
                    body: "letter".into(),
                }])
                .await
                .unwrap();
            let due = store.claim_outbox("mail", "i", 64, 60).await.unwrap();
            assert_eq!(due.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>(), ["m1"]);
            // Claimed: the next poll finds nothing due while the lease runs.
            assert!(store.claim_outbox("mail", "i", 64, 60).await.unwrap().is_empty());
            store.close().await;
        });
    }
}
