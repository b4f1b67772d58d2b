//! Schema migrations: the files `migrations/{sqlite,postgres}/NNNN_name.sql`, built into the
//! binary by `sqlx::migrate!` so that `nca` runs from anywhere (a new file is picked up through
//! `build.rs`). sqlx runs each file once, in version order, in a transaction (unless it starts
//! with `-- no-transaction`, which none does: no `CREATE INDEX CONCURRENTLY` yet), and records it
//! with its SHA-384 in `_sqlx_migrations`. At start it refuses a database where a file applied
//! before has changed since, or where a version was applied that this binary does not have.
//!
//! On PostgreSQL sqlx holds a session advisory lock (keyed by the database's name) from before it
//! reads `_sqlx_migrations` until the last file is applied, so instances starting together
//! apply each file once; the adoption of the old table below is serialised by a lock of its own.

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{Acquire, Row};

use super::{Backend, Store, StoreError};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// sqlx's table of applied migrations (its default name, which `migrate!` builds in).
const TABLE: &str = "_sqlx_migrations";

/// Any constant: the key of the transaction-scoped advisory lock under which the old table is
/// adopted (sqlx's own lock is taken only later, by `Migrator::run`).
const ADOPTION_LOCK: i64 = 0x006e_6361_5f6d_6967;

fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// Applies what is pending. A database made by the hand-written migrator this one replaced is
/// adopted first (`adopt_schema_migrations`).
pub async fn run(store: &Store) -> Result<(), StoreError> {
    let migrator = migrator(store.backend());
    let mut conn = store.pool().acquire().await?;
    adopt_schema_migrations(&mut conn, store.backend(), migrator).await?;
    if let Err(e) = migrator.run(&mut *conn).await {
        // sqlx leaves its session lock held when a migration fails; a connection given back to
        // the pool would keep it, so this one is closed (which ends the lock with the session).
        // The close's own failure would only hide the refusal, which is what the operator needs.
        let _ = conn.close().await;
        return Err(refusal(e));
    }
    Ok(())
}

/// The hand-written migrator kept `schema_migrations (version, applied_at)` and no checksums.
/// Its versions become `_sqlx_migrations` rows carrying the checksums of this binary's files —
/// the files it applied had not changed since (a changed file was refused by review, not by
/// code) — and the old table is dropped, all in one transaction, so that a crash leaves either
/// the old table or the new rows, never both or neither. Done once: afterwards there is no old
/// table to find.
async fn adopt_schema_migrations(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    backend: Backend,
    migrator: &Migrator,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    let exists = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        Backend::Postgres => {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADOPTION_LOCK)
                .execute(&mut *tx)
                .await?;
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
    };
    let found: i64 = sqlx::query(exists).fetch_one(&mut *tx).await?.try_get(0)?;
    if found == 0 {
        return Ok(tx.commit().await?);
    }
    let versions: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    tx.ensure_migrations_table(TABLE).await.map_err(refusal)?;
    for version in versions {
        let Some(file) = migrator.iter().find(|m| m.version == version) else {
            return Err(refusal(MigrateError::VersionMissing(version)));
        };
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, -1)",
        )
        .bind(version)
        .bind(file.description.to_string())
        .bind(file.checksum.to_vec())
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DROP TABLE schema_migrations").execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::info!("schema_migrations adopted into _sqlx_migrations");
    Ok(())
}

/// For a read-only instance (`--role status`, on a replica): the schema must be exactly the one
/// this binary migrates to, file by file (versions and checksums). It migrates nothing itself;
/// a mismatch is refused at start, before a query could misread a column.
pub async fn check(store: &Store) -> Result<(), StoreError> {
    let migrator = migrator(store.backend());
    // `success` as a number: the Any driver decodes no SQLite BOOLEAN.
    let rows = sqlx::query(
        "SELECT version, checksum, CAST(CASE WHEN success THEN 1 ELSE 0 END AS BIGINT) \
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(store.pool())
    .await
    .map_err(|e| StoreError::Migration {
        version: 0,
        message: format!("no schema to check ({e}): a status instance migrates nothing"),
    })?;
    let mut applied = Vec::with_capacity(rows.len());
    for row in &rows {
        let version: i64 = row.try_get(0)?;
        let checksum: Vec<u8> = row.try_get(1)?;
        let success = row.try_get::<i64, _>(2)? == 1;
        match migrator.iter().find(|m| m.version == version) {
            Some(file) if !success => return Err(refusal(MigrateError::Dirty(file.version))),
            Some(file) if *file.checksum != *checksum => {
                return Err(refusal(MigrateError::VersionMismatch(version)));
            }
            Some(_) | None => applied.push(version),
        }
    }
    let expected: Vec<i64> = migrator.iter().map(|m| m.version).collect();
    if applied != expected {
        return Err(StoreError::Migration {
            version: applied.last().copied().unwrap_or(0),
            message: format!(
                "the database's schema has versions {applied:?}, this binary's {expected:?}: a status instance \
                 migrates nothing and runs only on the schema it was built for"
            ),
        });
    }
    Ok(())
}

/// sqlx's refusals as the store's, with the messages README lists: an operator reads them in
/// the exit message of `nca serve` (exit status 1).
fn refusal(e: MigrateError) -> StoreError {
    let (version, message) = match e {
        MigrateError::VersionMismatch(v) => (
            v,
            "changed after it was applied: its checksum differs from the one recorded in _sqlx_migrations; \
             restore the file as it was applied and put the change in a new migration"
                .to_string(),
        ),
        MigrateError::VersionMissing(v) => (
            v,
            "applied to the database but not in this binary: the database was migrated by a newer nca".to_string(),
        ),
        MigrateError::Dirty(v) => (
            v,
            "recorded as partially applied (success = false in _sqlx_migrations)".to_string(),
        ),
        MigrateError::ExecuteMigration(e, v) => (v, format!("failed: {e}")),
        MigrateError::Execute(e) => return StoreError::Database(e),
        // `MigrateError` is non-exhaustive: the remaining variants (sources, down migrations,
        // database creation) are of features this migrator does not use.
        other => (0, other.to_string()),
    };
    StoreError::Migration { version, message }
}
