//! Group commit for the issuance path's writes.
//!
//! Every issuance writes twice (pending, then issued). Run from many tasks at once, those writes
//! contend for SQLite's single write lock and spend their time in its busy handler; here one task
//! owns the writes, takes every operation waiting, runs them in one transaction, appends the
//! audit records of what it issued in that same transaction, commits once, and only then answers
//! each caller. A caller that is answered `Ok` has its row committed.
//!
//! The operations are written so that a refusal (serial taken, key held by another, row not
//! pending) is an answer, not a failed statement: nothing needs undoing and the batch needs no
//! savepoints. A statement that does fail loses the whole batch, and every caller is told.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::audit::{AuditEvent, append};
use super::certificates::{IssuedRow, PendingCertificate, insert_pending_batch, update_issued_batch};
use super::timestamps::{self, TimestampRecord};
use super::{Backend, StoreError};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 256;

pub(super) enum WriteOp {
    Pending(PendingCertificate),
    Issued {
        issuer: String,
        serial: String,
        der: Vec<u8>,
        /// Who asked for it, in the audit record's form.
        actor: serde_json::Value,
    },
    /// A time-stamp token about to be signed; no audit record (the table is the record, and a
    /// token a second would flood the chain).
    Timestamp(TimestampRecord),
}

pub(super) struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

pub(super) fn start(pool: AnyPool, backend: Backend) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(pool, backend, rx));
    tx
}

impl super::Store {
    pub(super) async fn write(&self, op: WriteOp) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer dropped a write".into()))?
    }
}

async fn run(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match execute(&pool, backend, &batch).await {
            Ok(results) => {
                for (job, r) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!("write batch of {} failed: {e}", batch.len());
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

/// One transaction; per-operation results, or the error that lost the whole batch. The pending
/// rows go in as one multi-row INSERT, the issued ones as one UPDATE: a handful of statements per
/// group commit, not two or three per certificate.
async fn execute(pool: &AnyPool, backend: Backend, batch: &[Job]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    let mut results: Vec<Option<Result<(), StoreError>>> = (0..batch.len()).map(|_| None).collect();
    let (mut pending, mut pending_at) = (Vec::new(), Vec::new());
    let (mut issued, mut issued_at, mut issued_by) = (Vec::new(), Vec::new(), Vec::new());
    for (i, job) in batch.iter().enumerate() {
        match &job.op {
            WriteOp::Pending(c) => {
                pending.push(c);
                pending_at.push(i);
            }
            WriteOp::Issued {
                issuer,
                serial,
                der,
                actor,
            } => {
                issued.push(IssuedRow { issuer, serial, der });
                issued_by.push(actor);
                issued_at.push(i);
            }
            WriteOp::Timestamp(t) => {
                let r = timestamps::insert(&mut tx, t).await;
                if let Err(StoreError::Database(e)) = r {
                    return Err(e.into());
                }
                results[i] = Some(r);
            }
        }
    }
    for (i, r) in pending_at
        .into_iter()
        .zip(insert_pending_batch(&mut tx, &pending).await?)
    {
        results[i] = Some(r);
    }
    let mut events = Vec::new();
    for (((i, row), actor), r) in issued_at
        .into_iter()
        .zip(&issued)
        .zip(issued_by)
        .zip(update_issued_batch(&mut tx, &issued).await?)
    {
        if r.is_ok() {
            events.push(AuditEvent::new(
                "certificate.issued",
                row.serial,
                serde_json::json!({"issuer": row.issuer, "actor": actor}),
            ));
        }
        results[i] = Some(r);
    }
    append(&mut tx, backend, &events).await?;
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Unavailable("a write had no answer".into()))))
        .collect())
}
