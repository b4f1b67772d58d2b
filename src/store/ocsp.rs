//! OCSP answers signed ahead (`ocsp_answers`, migration 0016), what the pre-signer must sign,
//! and a replica's lag.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, RevocationRecord, Store, StoreError};

/// A signed answer as kept: served as it is, with no signature per request.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub issuer: String,
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

/// An answer to keep.
#[derive(Debug, Clone)]
pub struct PresignedAnswer {
    pub serial: String,
    pub issuer: String,
    /// What it says: `good`, or `revoked <time> <reason>`.
    pub state: String,
    /// When the status it states was read, in milliseconds: the newest reading wins.
    pub as_of_ms: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub not_after: i64,
    pub der: Vec<u8>,
}

/// A certificate whose answer is to be signed: its revocation, if any, and what the kept
/// answer says now (`None`: none kept).
#[derive(Debug, Clone)]
pub struct DueAnswer {
    pub serial: String,
    pub not_after: i64,
    pub revocation: Option<RevocationRecord>,
    pub kept_state: Option<String>,
}

/// What the store holds, for the benchmark and the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct PresignedStats {
    pub answers: i64,
    pub der_bytes: i64,
    /// The table with its indexes on PostgreSQL (`pg_total_relation_size`); `None` on SQLite.
    pub table_bytes: Option<i64>,
}

/// Rows per INSERT of an upsert batch: 8 columns each, well under both backends' limits on
/// bound parameters (SQLite 32,766, PostgreSQL 65,535).
const UPSERT_ROWS: usize = 250;

fn due_row(issuer: &str, r: &AnyRow) -> Result<DueAnswer, sqlx::Error> {
    let serial: String = r.try_get(0)?;
    let revocation = match r.try_get::<Option<i64>, _>(2)? {
        None => None,
        Some(revoked_at) => Some(RevocationRecord {
            issuer: issuer.to_string(),
            serial: serial.clone(),
            revoked_at,
            reason: r.try_get::<i64, _>(3)? as u8,
            invalidity_date: r.try_get(4)?,
            recorded_at: r.try_get(5)?,
            lifted_at: r.try_get(6)?,
        }),
    };
    Ok(DueAnswer {
        serial,
        not_after: r.try_get(1)?,
        revocation,
        kept_state: r.try_get(7)?,
    })
}

/// The upsert of [`Store::put_presigned`], inside the writer's transaction: rows written.
pub(super) async fn upsert(conn: &mut AnyConnection, answers: &[PresignedAnswer]) -> Result<u64, StoreError> {
    let mut written = 0;
    for chunk in answers.chunks(UPSERT_ROWS) {
        let q = format!(
            "INSERT INTO ocsp_answers (serial, issuer, state, as_of_ms, this_update, next_update, not_after, der) \
             VALUES {} ON CONFLICT (serial) DO UPDATE SET issuer = excluded.issuer, state = excluded.state, \
             as_of_ms = excluded.as_of_ms, this_update = excluded.this_update, \
             next_update = excluded.next_update, not_after = excluded.not_after, der = excluded.der \
             WHERE ocsp_answers.as_of_ms < excluded.as_of_ms",
            super::placeholder_rows(chunk.len(), 8, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for a in chunk {
            query = query
                .bind(&a.serial)
                .bind(&a.issuer)
                .bind(&a.state)
                .bind(a.as_of_ms)
                .bind(a.this_update)
                .bind(a.next_update)
                .bind(a.not_after)
                .bind(&a.der);
        }
        written += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(written)
}

const DUE_COLUMNS: &str = "c.serial, c.not_after, r.revoked_at, r.reason, r.invalidity_date, r.recorded_at, \
     r.lifted_at, a.state";

impl Store {
    /// The kept answer for a serial of `issuer`.
    pub async fn presigned_answer(&self, issuer: &str, serial: &str) -> Result<Option<StoredAnswer>, StoreError> {
        let row = sqlx::query("SELECT issuer, this_update, next_update, der FROM ocsp_answers WHERE serial = $1")
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        let answer = StoredAnswer {
            issuer: r.try_get(0)?,
            this_update: r.try_get(1)?,
            next_update: r.try_get(2)?,
            der: r.try_get(3)?,
        };
        Ok((answer.issuer == issuer).then_some(answer))
    }

    /// Issued certificates of `issuer` after `after` (by serial) that are still answered for
    /// (notAfter after `answered_after`) and have no kept answer, or one whose nextUpdate is at
    /// or before `renew_by`: at most `limit`, in serial order, so that a full pass is a walk of
    /// the primary key in pages.
    pub async fn presign_due(
        &self,
        issuer: &str,
        answered_after: i64,
        renew_by: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<DueAnswer>, StoreError> {
        let q = format!(
            "SELECT {DUE_COLUMNS} FROM certificates c \
             LEFT JOIN ocsp_answers a ON a.serial = c.serial \
             LEFT JOIN revocations r ON r.issuer = c.issuer AND r.serial = c.serial \
             WHERE c.issuer = $1 AND c.status = 'issued' AND c.not_after > $2 AND c.serial > $3 \
             AND (a.serial IS NULL OR a.next_update <= $4) ORDER BY c.serial LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(issuer)
            .bind(answered_after)
            .bind(after)
            .bind(renew_by)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(|r| due_row(issuer, r)).collect::<Result<_, _>>()?)
    }

    /// Certificates of `issuer` whose status may have changed since `since` (a revocation or
    /// hold recorded, a hold lifted, a scheduled revocation come into effect by `t`), and those
    /// created since `created_since` that have no kept answer yet: what the pre-signer looks at
    /// every quarter second. Each with what its kept answer says, so that only a real change
    /// costs a signature.
    pub async fn presign_changed(
        &self,
        issuer: &str,
        since: i64,
        t: i64,
        created_since: i64,
        answered_after: i64,
    ) -> Result<Vec<DueAnswer>, StoreError> {
        let q = format!(
            "SELECT {DUE_COLUMNS} FROM revocations r \
             JOIN certificates c ON c.issuer = r.issuer AND c.serial = r.serial \
             LEFT JOIN ocsp_answers a ON a.serial = c.serial \
             WHERE r.issuer = $1 AND c.status = 'issued' AND c.not_after > $4 \
             AND (r.recorded_at >= $2 OR r.lifted_at >= $2 OR (r.revoked_at >= $2 AND r.revoked_at <= $3)) \
             UNION ALL \
             SELECT {DUE_COLUMNS} FROM certificates c \
             LEFT JOIN ocsp_answers a ON a.serial = c.serial \
             LEFT JOIN revocations r ON r.issuer = c.issuer AND r.serial = c.serial \
             WHERE c.issuer = $1 AND c.status = 'issued' AND c.created_at >= $5 AND c.not_after > $4 \
             AND a.serial IS NULL"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(issuer)
            .bind(since)
            .bind(t)
            .bind(answered_after)
            .bind(created_since)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(|r| due_row(issuer, r)).collect::<Result<_, _>>()?)
    }

    /// Keeps answers, in one transaction of the group-commit writer (the pre-signer's writes
    /// go with the applications' and certificates' instead of taking the write connection
    /// between them: BENCHMARKS.md, issue #17, eighth round). An answer replaces the kept one
    /// only if its status was read later (`as_of_ms`), so the writes of pre-signers running at
    /// once, in any order, leave the newest. Returns how many rows were written.
    pub async fn put_presigned(&self, answers: Vec<PresignedAnswer>) -> Result<u64, StoreError> {
        if answers.is_empty() {
            return Ok(0);
        }
        Ok(self.write(super::group::WriteOp::Presigned(answers)).await?.kept)
    }

    /// Drops the kept answers of certificates past notAfter before `cutoff`.
    pub async fn prune_presigned(&self, cutoff: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM ocsp_answers WHERE not_after <= $1")
            .bind(cutoff)
            .execute(self.write_pool())
            .await?;
        Ok(r.rows_affected())
    }

    /// How many answers are kept and their size.
    pub async fn presigned_stats(&self) -> Result<PresignedStats, StoreError> {
        let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(length(der)), 0) FROM ocsp_answers")
            .fetch_one(self.pool())
            .await?;
        let table_bytes = match self.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(
                sqlx::query("SELECT CAST(pg_total_relation_size('ocsp_answers') AS BIGINT)")
                    .fetch_one(self.pool())
                    .await?
                    .try_get::<i64, _>(0)?,
            ),
        };
        Ok(PresignedStats {
            answers: row.try_get(0)?,
            der_bytes: row.try_get::<i64, _>(1)?,
            table_bytes,
        })
    }

    /// A streaming replica's lag behind its primary, in seconds: 0 when it has replayed all it
    /// received (an idle primary sends nothing, and `now() - pg_last_xact_replay_timestamp()`
    /// alone would grow while nothing is behind), else the age of the last transaction
    /// replayed. `None` on SQLite and on a primary.
    pub async fn replica_lag_seconds(&self) -> Result<Option<f64>, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL \
             WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN CAST(0 AS DOUBLE PRECISION) \
             ELSE CAST(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) AS DOUBLE PRECISION) END",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<Option<f64>, _>(0)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(state: &str, as_of_ms: i64) -> PresignedAnswer {
        PresignedAnswer {
            serial: "1a2b".into(),
            issuer: "nca".into(),
            state: state.into(),
            as_of_ms,
            this_update: as_of_ms / 1000,
            next_update: as_of_ms / 1000 + 60,
            not_after: 4_000_000_000,
            der: state.as_bytes().to_vec(),
        }
    }

    /// Two pre-signers writing the same serial in either order leave the answer made from the
    /// later reading: a paused one cannot put `good` back over `revoked`.
    #[test]
    fn the_answer_from_the_later_reading_wins_in_any_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
            let store = Store::open(&url).await.unwrap();
            assert_eq!(
                store.put_presigned(vec![answer("revoked 5 1", 2_000)]).await.unwrap(),
                1
            );
            // Older reading, written later: kept answer unchanged.
            assert_eq!(store.put_presigned(vec![answer("good", 1_000)]).await.unwrap(), 0);
            let kept = store.presigned_answer("nca", "1a2b").await.unwrap().unwrap();
            assert_eq!(kept.der, b"revoked 5 1");
            // A later reading replaces it; another issuer's name finds nothing.
            assert_eq!(store.put_presigned(vec![answer("good", 3_000)]).await.unwrap(), 1);
            let kept = store.presigned_answer("nca", "1a2b").await.unwrap().unwrap();
            assert_eq!((kept.der.as_slice(), kept.this_update), (&b"good"[..], 3));
            assert!(store.presigned_answer("root", "1a2b").await.unwrap().is_none());
            // Each went in through the group-commit writer, not a transaction of its own.
            assert_eq!(store.group_commits()[0].1.commits, 3);
            assert_eq!(store.prune_presigned(4_000_000_000).await.unwrap(), 1);
            store.close().await;
        });
    }
}
