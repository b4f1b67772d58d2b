//! Schema migrations, built into the binary so that `nca` runs from anywhere. Each file runs
//! once, in a transaction, in version order; PostgreSQL instances starting together serialise
//! on an advisory lock.

use sqlx::{Acquire, Row};

use super::{Backend, Store, StoreError};

const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_ca_core.sql")),
    (2, include_str!("../../migrations/sqlite/0002_revocation.sql")),
    (3, include_str!("../../migrations/sqlite/0003_operators.sql")),
    (4, include_str!("../../migrations/sqlite/0004_audit.sql")),
    (5, include_str!("../../migrations/sqlite/0005_applications.sql")),
    (6, include_str!("../../migrations/sqlite/0006_outbox.sql")),
    (7, include_str!("../../migrations/sqlite/0007_survey.sql")),
    (8, include_str!("../../migrations/sqlite/0008_intents.sql")),
    (9, include_str!("../../migrations/sqlite/0009_tsa.sql")),
    (12, include_str!("../../migrations/sqlite/0012_cabinet.sql")),
    (13, include_str!("../../migrations/sqlite/0013_receipts.sql")),
    (14, include_str!("../../migrations/sqlite/0014_cluster.sql")),
    (15, include_str!("../../migrations/sqlite/0015_outbox_retention.sql")),
    (16, include_str!("../../migrations/sqlite/0016_ocsp_answers.sql")),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_ca_core.sql")),
    (2, include_str!("../../migrations/postgres/0002_revocation.sql")),
    (3, include_str!("../../migrations/postgres/0003_operators.sql")),
    (4, include_str!("../../migrations/postgres/0004_audit.sql")),
    (5, include_str!("../../migrations/postgres/0005_applications.sql")),
    (6, include_str!("../../migrations/postgres/0006_outbox.sql")),
    (7, include_str!("../../migrations/postgres/0007_survey.sql")),
    (8, include_str!("../../migrations/postgres/0008_intents.sql")),
    (9, include_str!("../../migrations/postgres/0009_tsa.sql")),
    (12, include_str!("../../migrations/postgres/0012_cabinet.sql")),
    (13, include_str!("../../migrations/postgres/0013_receipts.sql")),
    (14, include_str!("../../migrations/postgres/0014_cluster.sql")),
    (15, include_str!("../../migrations/postgres/0015_outbox_retention.sql")),
    (16, include_str!("../../migrations/postgres/0016_ocsp_answers.sql")),
];

/// Any constant: the key of the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x006e_6361_5f6d_6967;

pub async fn run(store: &Store) -> Result<(), StoreError> {
    let mut conn = store.pool().acquire().await?;
    let files = match store.backend() {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let result = async {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        for (version, sql) in files {
            if applied.contains(version) {
                continue;
            }
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Migration {
                    version: *version,
                    message: e.to_string(),
                })?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(super::now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    result
}

/// For a read-only instance (`--role status`, on a replica): the schema must be exactly the one
/// this binary migrates to. It migrates nothing itself; a mismatch is refused at start, before
/// a query could misread a column.
pub async fn check(store: &Store) -> Result<(), StoreError> {
    let files = match store.backend() {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let mut applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(store.pool())
        .await
        .map_err(|e| StoreError::Migration {
            version: 0,
            message: format!("no schema to check ({e}): a status instance migrates nothing"),
        })?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    applied.sort_unstable();
    let expected: Vec<i64> = files.iter().map(|(v, _)| *v).collect();
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
