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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sqlx::{AnyConnection, AnyPool, Connection};
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
    stats: Arc<Stats>,
}

// By hand: derive would ask `O: Clone`, and only the channel's sender is cloned.
impl<O: Batch> Clone for Writer<O> {
    fn clone(&self) -> Self {
        Writer {
            jobs: self.jobs.clone(),
            stats: Arc::clone(&self.stats),
        }
    }
}

/// The upper bounds of the batch-size histogram's buckets (a last one, `+Inf`, is implied;
/// [`MAX_BATCH`] is the largest batch there is).
pub const BATCH_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// What a writer has done since it started: how its operations were grouped into commits, and
/// how long it was inside transactions. Whether a group commit groups is the question behind a
/// slow run (a writer busy all the time with batches of one or two is the bound; one idle half
/// the time is waiting for its callers), so it is kept where `/metrics` and the bench can read it.
#[derive(Debug, Default)]
struct Stats {
    /// Committed batches per bucket of [`BATCH_BUCKETS`] (not cumulative).
    buckets: [AtomicU64; BATCH_BUCKETS.len()],
    commits: AtomicU64,
    operations: AtomicU64,
    /// Batches that failed and were rolled back (every caller told).
    failures: AtomicU64,
    /// Waiting for the write connection (on SQLite one, shared with every other write
    /// transaction).
    wait_ns: AtomicU64,
    /// From BEGIN to the commit's answer (or the failure), the connection held.
    busy_ns: AtomicU64,
    /// Of `busy_ns`, BEGIN's answer and COMMIT's: what is left is the batch's statements.
    begin_ns: AtomicU64,
    commit_ns: AtomicU64,
}

/// A reading of a writer's [`Stats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupCommits {
    /// Committed batches with at most `BATCH_BUCKETS[i]` operations, cumulative as Prometheus
    /// histograms are.
    pub at_most: [u64; BATCH_BUCKETS.len()],
    pub commits: u64,
    pub operations: u64,
    pub failures: u64,
    pub wait_seconds: f64,
    pub busy_seconds: f64,
    pub begin_seconds: f64,
    pub commit_seconds: f64,
}

/// Where one batch's time went.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    waiting: std::time::Duration,
    inside: std::time::Duration,
    begin: std::time::Duration,
    commit: std::time::Duration,
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Stats {
    fn record(&self, operations: usize, committed: bool, spent: Spent) {
        self.wait_ns.fetch_add(nanos(spent.waiting), Ordering::Relaxed);
        self.busy_ns.fetch_add(nanos(spent.inside), Ordering::Relaxed);
        self.begin_ns.fetch_add(nanos(spent.begin), Ordering::Relaxed);
        self.commit_ns.fetch_add(nanos(spent.commit), Ordering::Relaxed);
        if !committed {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let n = operations as u64;
        let bucket = BATCH_BUCKETS
            .iter()
            .position(|&b| n <= b)
            .unwrap_or(BATCH_BUCKETS.len() - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.operations.fetch_add(n, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) -> GroupCommits {
        let mut at_most = [0; BATCH_BUCKETS.len()];
        let mut sum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            sum += b.load(Ordering::Relaxed);
            at_most[i] = sum;
        }
        GroupCommits {
            at_most,
            commits: self.commits.load(Ordering::Relaxed),
            operations: self.operations.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            wait_seconds: self.wait_ns.load(Ordering::Relaxed) as f64 / 1e9,
            busy_seconds: self.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
            begin_seconds: self.begin_ns.load(Ordering::Relaxed) as f64 / 1e9,
            commit_seconds: self.commit_ns.load(Ordering::Relaxed) as f64 / 1e9,
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
        let stats = Arc::new(Stats::default());
        let counted = Arc::clone(&stats);
        match backend {
            Backend::Sqlite => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Unavailable(format!("the writer's runtime: {e}")))?;
                std::thread::Builder::new()
                    .name(name.into())
                    // Ends when the last `Writer` is dropped: `recv_many` then answers 0.
                    .spawn(move || rt.block_on(run(pool, backend, rx, counted)))
                    .map_err(|e| StoreError::Unavailable(format!("the writer's thread: {e}")))?;
            }
            Backend::Postgres => {
                tokio::spawn(run(pool, backend, rx, counted));
            }
        }
        Ok(Writer { jobs, stats })
    }

    /// What this writer has committed since it started.
    pub(super) fn group_commits(&self) -> GroupCommits {
        self.stats.read()
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

/// How long a writer keeps the write connection across batches while callers keep it busy
/// (see [`run`]).
const HOLD: std::time::Duration = std::time::Duration::from_millis(10);

/// Takes what is waiting, writes it, answers, and again. The connection is kept from one batch to
/// the next while more is waiting, up to [`HOLD`]: a connection given back to sqlx's pool is pinged
/// before the next taker gets it (a task spawned on this thread, then a round trip to SQLite's
/// thread), and on SQLite, where the pool has one connection for every writer, that hand-off cost
/// more of the writer's time than the transactions (BENCHMARKS.md, issue #17, seventh round). The
/// bound lets the rest of the store's writes (the outbox, the OCSP pre-signer) in.
async fn run<O: Batch>(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Job<O>>, stats: Arc<Stats>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut held: Option<(sqlx::pool::PoolConnection<sqlx::Any>, Instant)> = None;
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let (ops, replies): (Vec<O>, Vec<_>) = jobs.drain(..).map(|j| (j.op, j.reply)).unzip();
        let mut spent = Spent::default();
        let result = match held.take() {
            Some(conn) => Ok(conn),
            None => {
                let started = Instant::now();
                let conn = pool.acquire().await.map(|c| (c, Instant::now()));
                spent.waiting = started.elapsed();
                conn
            }
        };
        let result = match result {
            Ok((mut conn, since)) => {
                let r = execute(&mut conn, backend, &ops, &mut spent).await;
                // Kept only while it is sound (a failed batch gives it back, to be pinged) and
                // more is already waiting.
                if r.is_ok() && !rx.is_empty() && since.elapsed() < HOLD {
                    held = Some((conn, since));
                }
                r
            }
            Err(e) => Err(e.into()),
        };
        stats.record(ops.len(), result.is_ok(), spent);
        match result {
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

async fn execute<O: Batch>(
    conn: &mut AnyConnection,
    backend: Backend,
    ops: &[O],
    spent: &mut Spent,
) -> Result<Vec<O::Answer>, StoreError> {
    let begun = Instant::now();
    let result = async {
        let mut tx = match backend {
            Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => conn.begin().await?,
        };
        spent.begin = begun.elapsed();
        let answers = O::execute(&mut tx, backend, ops).await?;
        if answers.len() != ops.len() {
            return Err(StoreError::Unavailable("a write had no answer".into()));
        }
        let committing = Instant::now();
        tx.commit().await?;
        spent.commit = committing.elapsed();
        Ok(answers)
    }
    .await;
    spent.inside = begun.elapsed();
    result
}
