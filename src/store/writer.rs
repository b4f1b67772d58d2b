//! Group commit: one task owns a kind of write, takes every operation waiting, runs them in one
//! transaction, commits once, and only then answers each caller. A caller that is answered `Ok`
//! has its rows committed.
//!
//! Run from many tasks at once, single-row transactions contend for SQLite's single write lock
//! and spend their time in its busy handler; here they share a commit. The writer knows nothing
//! of what it writes: the operations are a [`Batch`] type, which says how a whole batch of them
//! is written inside the transaction (`store/group.rs` for the issuance path). The operations
//! should be written so that a refusal is an answer, not a failed statement: nothing needs
//! undoing and the batch needs no savepoints. A statement that does fail loses the whole batch,
//! and every caller is told.

use std::future::Future;

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::{Backend, StoreError};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 256;

/// Operations written together: `execute` writes a whole batch inside the writer's transaction
/// and answers each operation, in order; an error loses the batch (the transaction is rolled
/// back and every caller told).
pub(super) trait Batch: Sized + Send + Sync + 'static {
    type Answer: Send + 'static;

    fn execute<'a>(
        conn: &'a mut AnyConnection,
        backend: Backend,
        batch: &'a [Self],
    ) -> impl Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a;
}

struct Job<O: Batch> {
    op: O,
    reply: oneshot::Sender<Result<O::Answer, StoreError>>,
}

/// The handle callers send their operations through.
pub(super) struct Writer<O: Batch> {
    jobs: mpsc::Sender<Job<O>>,
}

// By hand: derive would ask `O: Clone`, and only the channel's sender is cloned.
impl<O: Batch> Clone for Writer<O> {
    fn clone(&self) -> Self {
        Writer {
            jobs: self.jobs.clone(),
        }
    }
}

impl<O: Batch> Writer<O> {
    /// Starts the task that owns this kind of write. On SQLite it runs on a thread of its own
    /// (`name`), with a runtime of its own: every statement of a batch is a round trip to sqlx's
    /// SQLite thread, and on the service's runtime each answer queued behind whatever the
    /// workers were doing — signatures, CSR checks, building certificates. Measured on the engine
    /// (BENCHMARKS.md, issue #17): taking the connection and BEGIN went from 1.46 ms to 65 µs a
    /// batch, and the one writer, which every certificate waits for twice, is the bound. The
    /// SQLite connections are runtime-agnostic (a thread each, spoken to through channels).
    /// PostgreSQL's are sockets registered with the runtime that opened them, so that writer
    /// stays a task of the service's runtime.
    pub(super) fn start(pool: AnyPool, backend: Backend, name: &str) -> Result<Writer<O>, StoreError> {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        match backend {
            Backend::Sqlite => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("the writer's runtime: {e}")))?;
                std::thread::Builder::new()
                    .name(name.into())
                    // Ends when the last `Writer` is dropped: `recv_many` then answers 0.
                    .spawn(move || rt.block_on(run(pool, backend, rx)))
                    .map_err(|e| StoreError::Unavailable(format!("the writer's thread: {e}")))?;
            }
            Backend::Postgres => {
                tokio::spawn(run(pool, backend, rx));
            }
        }
        Ok(Writer { jobs })
    }

    /// Writes one operation with whatever else is waiting; returns once it is committed.
    pub(super) async fn write(&self, op: O) -> Result<O::Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer dropped a write".into()))?
    }
}

async fn run<O: Batch>(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Job<O>>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (ops, replies): (Vec<O>, Vec<_>) = jobs.drain(..).map(|j| (j.op, j.reply)).unzip();
        match execute(&pool, backend, &ops).await {
            Ok(answers) => {
                for (reply, a) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(a));
                }
            }
            Err(e) => {
                tracing::error!("write batch of {} failed: {e}", ops.len());
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

async fn execute<O: Batch>(pool: &AnyPool, backend: Backend, ops: &[O]) -> Result<Vec<O::Answer>, StoreError> {
    let mut tx = match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    let answers = O::execute(&mut tx, backend, ops).await?;
    if answers.len() != ops.len() {
        return Err(StoreError::Unavailable("a write had no answer".into()));
    }
    tx.commit().await?;
    Ok(answers)
}
