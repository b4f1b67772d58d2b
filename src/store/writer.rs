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

use super::applications::{ApplicationChange, change_application};
use super::audit::{AuditEvent, append};
use super::certificates::{IssuedRow, PendingCertificate, insert_pending_batch, update_issued_batch};
use super::outbox;
use super::timestamps::{self, TimestampRecord};
use super::{Backend, StoreError};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 256;

pub(super) enum WriteOp {
    /// Certificates' records, with the changes of the application they answer that go in the
    /// same transaction: [`Together`].
    Certificates(Together),
    /// A time-stamp token about to be signed; no audit record (the table is the record, and a
    /// token a second would flood the chain).
    Timestamp(TimestampRecord),
}

/// One caller's share of a group commit, written in this order inside the batch's transaction:
/// `before` (only if the application is still in its `from`), then the pending rows (only if
/// `before` was written or there is none), the issued rows, then `after` (only if every issued
/// row of this share was marked issued), then the outbox messages and audit records of them all.
/// A confirmation's `issuing` transition thus lands with its pair's pending rows, and its
/// completion with their issued rows: no crash falls between an application's change and the
/// certificates that go with it.
#[derive(Default)]
pub(crate) struct Together {
    pub before: Option<ApplicationChange>,
    pub pending: Vec<PendingCertificate>,
    pub issued: Vec<IssuedCertificate>,
    pub after: Option<ApplicationChange>,
}

/// A signed certificate to record as issued, with who asked for it (its audit record names them).
pub(crate) struct IssuedCertificate {
    pub issuer: String,
    pub serial: String,
    pub der: Vec<u8>,
    /// In the audit record's form.
    pub actor: serde_json::Value,
}

/// What became of a [`Together`]: whether each change was written, and each row's answer in
/// the order given.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub before: bool,
    pub pending: Vec<Result<(), StoreError>>,
    pub issued: Vec<Result<(), StoreError>>,
    pub after: bool,
}

pub(super) struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

pub(super) fn start(pool: AnyPool, backend: Backend) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(pool, backend, rx));
    tx
}

impl super::Store {
    pub(super) async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer dropped a write".into()))?
    }

    /// Writes certificates' records and their application's changes in one group commit.
    pub(crate) async fn write_together(&self, t: Together) -> Result<Written, StoreError> {
        self.write(WriteOp::Certificates(t)).await
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
/// rows go in as one multi-row INSERT, the issued ones as one UPDATE, the audit records as one
/// INSERT: a handful of statements per group commit, not two or three per certificate.
async fn execute(
    pool: &AnyPool,
    backend: Backend,
    batch: &[Job],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    let mut results: Vec<Result<Written, StoreError>> = (0..batch.len()).map(|_| Ok(Written::default())).collect();
    let (mut events, mut messages) = (Vec::new(), Vec::new());
    // The changes before the certificates, each only while its application is where it was.
    for (i, job) in batch.iter().enumerate() {
        match &job.op {
            WriteOp::Timestamp(t) => {
                let r = timestamps::insert(&mut tx, t).await;
                if let Err(StoreError::Database(e)) = r {
                    return Err(e.into());
                }
                results[i] = r.map(|()| Written::default());
            }
            WriteOp::Certificates(t) => {
                if let Some(c) = &t.before
                    && let Some(e) = change_application(&mut tx, &c.number, c.from, &c.change).await?
                {
                    events.push(e);
                    messages.extend(c.change.messages.iter().cloned());
                    if let Ok(w) = &mut results[i] {
                        w.before = true;
                    }
                }
            }
        }
    }
    // Pending rows: those whose change was written, or that came without one.
    let mut pending = Vec::new();
    let mut pending_of = Vec::new();
    let mut issued = Vec::new();
    let mut issued_of = Vec::new();
    for (i, job) in batch.iter().enumerate() {
        let WriteOp::Certificates(t) = &job.op else { continue };
        let go = t.before.is_none() || results[i].as_ref().is_ok_and(|w| w.before);
        for c in &t.pending {
            if go {
                pending.push(c);
                pending_of.push(i);
            } else if let Ok(w) = &mut results[i] {
                w.pending.push(Err(StoreError::StateConflict(format!(
                    "application {} moved on before its certificates were recorded",
                    t.before.as_ref().map_or("", |c| c.number.as_str())
                ))));
            }
        }
        for c in &t.issued {
            issued.push(IssuedRow {
                issuer: &c.issuer,
                serial: &c.serial,
                der: &c.der,
            });
            issued_of.push((i, c));
        }
    }
    for (i, r) in pending_of
        .into_iter()
        .zip(insert_pending_batch(&mut tx, &pending).await?)
    {
        if let Ok(w) = &mut results[i] {
            w.pending.push(r);
        }
    }
    for ((i, c), r) in issued_of.into_iter().zip(update_issued_batch(&mut tx, &issued).await?) {
        if r.is_ok() {
            events.push(AuditEvent::new(
                "certificate.issued",
                &c.serial,
                serde_json::json!({"issuer": c.issuer, "actor": c.actor}),
            ));
        }
        if let Ok(w) = &mut results[i] {
            w.issued.push(r);
        }
    }
    // The changes after the certificates: only where every row of the share was marked issued.
    for (i, job) in batch.iter().enumerate() {
        let WriteOp::Certificates(t) = &job.op else { continue };
        let Some(c) = &t.after else { continue };
        if !results[i].as_ref().is_ok_and(|w| w.issued.iter().all(Result::is_ok)) {
            continue;
        }
        if let Some(e) = change_application(&mut tx, &c.number, c.from, &c.change).await? {
            events.push(e);
            messages.extend(c.change.messages.iter().cloned());
            if let Ok(w) = &mut results[i] {
                w.after = true;
            }
        }
    }
    outbox::append(&mut tx, &messages).await?;
    // The audit chain's head is every writer's one shared row: taken last, held shortest.
    append(&mut tx, backend, &events).await?;
    tx.commit().await?;
    Ok(results)
}
