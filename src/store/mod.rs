//! The storage authority: the only place that speaks SQL.
//!
//! One set of queries runs on SQLite (the embedded default, WAL) and PostgreSQL (several
//! instances on one database) through sqlx's `Any` driver; `$1` placeholders work on both.
//! Invariants are kept by the schema (`migrations/`), and this module maps their violations to
//! domain errors.

mod applications;
mod audit;
mod cabinet;
mod certificates;
mod cluster;
mod group;
mod migrate;
mod ocsp;
mod operators;
mod outbox;
mod revocations;
mod surveys;
mod timestamps;
mod writer;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

pub use applications::{Advance, ApplicationChange, ApplicationRecord, StepRecord, StepTiming};
pub use audit::{AuditEvent, AuditRecord, MAIN_CHAIN, ZERO_HASH, chain_hash};
pub use cabinet::{ChallengeTaken, Expiring, HeldApplication, HeldCertificate, SessionRecord};
pub use certificates::{CaKeyRecord, CertificateRecord, CertificateStatus, PendingCertificate};
pub use cluster::{Fence, InstanceRecord, LeaseRecord};
pub(crate) use group::{IssuedCertificate, Together};
pub use ocsp::{DueAnswer, PresignedAnswer, PresignedStats, StoredAnswer};
pub use operators::OperatorRecord;
pub use outbox::{Attempt, AttemptOutcome, DueMessage, OutboxCounts, OutboxMessage, OutboxRow, ParkedMessage};
pub use revocations::{CrlRecord, RevocationRecord, Revoked};
pub use surveys::SurveyRecord;
pub use timestamps::TimestampRecord;
pub use writer::{BATCH_BUCKETS, GroupCommits};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What the storage layer reports. Only `Database` is a failure of the system; the others are
/// answers about the data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or is unreachable; the cause is logged, never shown to clients.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration file could not be applied.
    #[error("migration {version}: {message}")]
    Migration { version: i64, message: String },
    /// The serial is already used under this issuer (the CSPRNG repeated itself: retry).
    #[error("serial already used under this issuer")]
    SerialTaken,
    /// The application already has a certificate of this profile, issued or being issued: a
    /// second attempt at its result step must take that one up instead.
    #[error("the application already has a certificate of this profile")]
    AlreadyCertified,
    /// The public key is already certified for another holder.
    #[error("public key already certified for another subject")]
    KeyBoundElsewhere,
    /// A CA key row for this role exists: the deployment is initialised.
    #[error("the deployment is already initialised")]
    AlreadyInitialised,
    /// The database failed for a whole batch of writes, or the writer task is gone.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The row to change is not in the state the change requires.
    #[error("{0}")]
    StateConflict(String),
}

/// Whether an sqlx error is a unique-constraint violation (both backends).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.code().is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where write transactions run. On SQLite a pool of one connection: writers queue for it
    /// in order, instead of meeting SQLite's lock and sleeping in its busy handler (which
    /// backs off up to 100 ms a time and made tail latencies of busy hours). On PostgreSQL the
    /// same pool as reads.
    write_pool: AnyPool,
    backend: Backend,
    writer: writer::Writer<group::WriteOp>,
    /// Moves on every committed revocation and every change of an operator's status or dismissal
    /// date made through this store, so that what was decided from the old rows (the operator
    /// listener's access decisions, kept per connection) is dropped at once.
    access_epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// SQLite: held by every clone; when the last is dropped, the background checkpoint ends.
    _checkpointer: Option<std::sync::Arc<tokio::sync::oneshot::Sender<()>>>,
}

/// How often a SQLite store copies its WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies a SQLite store's WAL back into the database on a read connection, PASSIVE (it never
/// waits for, or blocks, the writer; it copies what the readers' snapshots allow), every
/// [`CHECKPOINT_EVERY`], until the store is closed or dropped. The writer then appends to the WAL
/// and restarts it from the top once everything in it has been copied, without paying the copy
/// and the fsync inside a commit. A failed pass is retried at the next tick: the WAL only grows
/// meanwhile, and the writer's own `wal_autocheckpoint` stays as the backstop.
fn checkpoint_off_the_write_path(pool: AnyPool) -> tokio::sync::oneshot::Sender<()> {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {}
            }
            if pool.is_closed() {
                break;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
                && !pool.is_closed()
            {
                tracing::debug!(error = %e, "WAL checkpoint pass failed; retried at the next tick");
            }
        }
    });
    stop
}

impl Store {
    /// Connects, configures the connection and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_as(url, false).await
    }

    /// For a status instance (`nca serve --role status`), on a read-only URL such as a
    /// streaming replica: no migration (the schema version is checked instead, and a mismatch
    /// refused), and on PostgreSQL every transaction read-only, so that a write that slipped in
    /// fails instead of reaching the primary through a URL that happened to be writable.
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        Self::open_as(url, true).await
    }

    async fn open_as(url: &str, read_only: bool) -> Result<Store, StoreError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(dir) = std::path::Path::new(&path).parent()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(10))
                // A ping before every use doubles the round trips of short queries; a connection
                // that broke fails its query, and the pool replaces it.
                .test_before_acquire(false)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL: readers never wait for the writer. NORMAL: a commit survives a
                            // process crash (the WAL is written before commit returns); only a
                            // power loss can take the last commits, which the pending/issued
                            // order covers.
                            //
                            // The WAL is copied back by `checkpoint_off_the_write_path`, so that no
                            // commit waits for a checkpoint's copying and fsync (which the one
                            // writer paid in whichever group commit crossed SQLite's default 1,000
                            // pages: the engine's p99). wal_autocheckpoint stays at SQLite's 1,000
                            // pages: the background pass has copied most frames by then, so the
                            // writer's own pass is short and lets the WAL restart from the top.
                            // Measured on a quiet machine (BENCHMARKS.md, issue #17): 20,000 gave
                            // P-256 8 % more but RSA-2048's p99 went from 27 to 36-41 ms; 1,000
                            // keeps every p99 at or below where it was.
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 1000; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON").await?;
                            if read_only {
                                conn.execute("PRAGMA query_only = ON").await?;
                            }

                        } else if read_only {
                            conn.execute("SET default_transaction_read_only = on").await?;
                        }
                        Ok(())
                    })
                })
        };
        let (pool, write_pool) = if backend == Backend::Sqlite {
            let pool = options(8).connect(url).await?;
            (pool, options(1).connect(url).await?)
        } else {
            let pool = options(16).connect(url).await?;
            (pool.clone(), pool)
        };
        let writer = writer::Writer::start(write_pool.clone(), backend, "nca-writer")?;
        let checkpointer = (backend == Backend::Sqlite && !read_only)
            .then(|| std::sync::Arc::new(checkpoint_off_the_write_path(pool.clone())));
        let store = Store {
            pool,
            write_pool,
            backend,
            writer,
            access_epoch: Default::default(),
            _checkpointer: checkpointer,
        };
        if read_only {
            migrate::check(&store).await?;
        } else {
            migrate::run(&store).await?;
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// See `access_epoch`: read it before the rows a decision is made from.
    pub fn access_epoch(&self) -> u64 {
        self.access_epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// After the commit of a change that may take someone's access away.
    pub(crate) fn access_changed(&self) {
        self.access_epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Each group-commit writer by name with what it has committed since this store opened: one,
    /// `group` (certificates, new applications and every change of one, time-stamp tokens).
    pub fn group_commits(&self) -> [(&'static str, GroupCommits); 1] {
        [("group", self.writer.group_commits())]
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For a single write statement outside a transaction.
    pub(crate) fn write_pool(&self) -> &AnyPool {
        &self.write_pool
    }

    /// A write transaction. On SQLite it takes the write lock at once (BEGIN IMMEDIATE): a
    /// transaction that reads first and writes later could otherwise fail with a busy snapshot
    /// when another connection wrote in between, which no busy timeout waits out.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.write_pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write_pool.begin().await?,
        })
    }

    /// For `/readyz`: one round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// SQLite journal mode, for the check that WAL is on.
    pub async fn journal_mode(&self) -> Result<Option<String>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA journal_mode").fetch_one(&self.pool).await?;
        Ok(Some(row.try_get::<String, _>(0)?))
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.write_pool.close().await;
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

/// `($first, …), (…), …`: `rows` rows of `columns` numbered parameters, for a multi-row
/// statement. Only placeholders are generated into SQL; every value is bound.
fn placeholder_rows(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(first + r * columns + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Seconds since the epoch; the store keeps times as integers on both backends.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
