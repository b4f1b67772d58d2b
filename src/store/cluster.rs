//! The cluster's SQL: instances and their heartbeat, and the duties' leases with their fencing
//! numbers. Lease times are the database's clock, in milliseconds, so that instances on machines
//! whose clocks differ still agree on when a lease has run out.

use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError};

/// The right to write for a duty: the lease as it was when taken or renewed. A write of the
/// duty checks, in its own transaction, that the lease still carries this number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub duty: String,
    pub holder: String,
    pub number: i64,
}

/// An instance as registered.
#[derive(Debug, Clone)]
pub struct InstanceRecord {
    pub id: String,
    pub started_at_ms: i64,
    pub last_seen_ms: i64,
    pub version: String,
}

/// A duty's lease as stored.
#[derive(Debug, Clone)]
pub struct LeaseRecord {
    pub duty: String,
    pub holder: String,
    pub fence: i64,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
}

/// The database's clock in milliseconds, as an SQL expression.
fn clock(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    }
}

/// Checks inside the caller's transaction that `fence` still holds its duty. On PostgreSQL the
/// lease row is share-locked: a take-over waits for this transaction, or this check sees it.
pub(super) async fn check_fence(conn: &mut AnyConnection, backend: Backend, fence: &Fence) -> Result<(), StoreError> {
    let q = match backend {
        Backend::Postgres => "SELECT holder, fence FROM duty_leases WHERE duty = $1 FOR SHARE",
        Backend::Sqlite => "SELECT holder, fence FROM duty_leases WHERE duty = $1",
    };
    let row = sqlx::query(q).bind(&fence.duty).fetch_optional(&mut *conn).await?;
    let now: Option<(String, i64)> = row
        .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
    match now {
        Some((holder, number)) if holder == fence.holder && number == fence.number => Ok(()),
        Some((holder, number)) => Err(StoreError::StateConflict(format!(
            "duty {} is held by {holder} under fence {number}, not by {} under {}",
            fence.duty, fence.holder, fence.number
        ))),
        None => Err(StoreError::StateConflict(format!("duty {} has no lease", fence.duty))),
    }
}

impl Store {
    /// Registers this instance, or refreshes its row.
    pub async fn register_instance(&self, id: &str, version: &str) -> Result<(), StoreError> {
        let c = clock(self.backend());
        let q = format!(
            "INSERT INTO instances (id, started_at, last_seen, version) VALUES ($1, {c}, {c}, $2) \
             ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, version = excluded.version"
        );
        sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(id)
            .bind(version)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// The heartbeat: this instance was seen now. Instances not seen for `forget_ms` are
    /// removed from the list (their leases ran out long ago).
    pub async fn instance_seen(&self, id: &str, forget_ms: i64) -> Result<(), StoreError> {
        let c = clock(self.backend());
        let mut tx = self.begin_write().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE instances SET last_seen = {c} WHERE id = $1"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM instances WHERE last_seen < {c} - $1"
        )))
        .bind(forget_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes `duty` for `holder` if nobody holds it or its lease has run out; renews it when
    /// `current` is the fence `holder` holds it under. Returns the fence it is held under after
    /// the call, or None when another instance holds it.
    pub async fn take_duty(
        &self,
        duty: &str,
        holder: &str,
        current: Option<i64>,
        lease_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let c = clock(self.backend());
        let mut tx = self.begin_write().await?;
        if let Some(fence) = current {
            let q = format!(
                "UPDATE duty_leases SET expires_at = {c} + $1 WHERE duty = $2 AND holder = $3 AND fence = $4 \
                 RETURNING fence"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(q))
                .bind(lease_ms)
                .bind(duty)
                .bind(holder)
                .bind(fence)
                .fetch_optional(&mut *tx)
                .await?;
            if row.is_some() {
                tx.commit().await?;
                return Ok(Some(fence));
            }
        }
        // A new holder gets the next fence: whatever the old one writes from now on is refused.
        let q = format!(
            "INSERT INTO duty_leases (duty, holder, fence, acquired_at, expires_at) VALUES ($1, $2, 1, {c}, {c} + $3) \
             ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, fence = duty_leases.fence + 1, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
             WHERE duty_leases.expires_at < excluded.acquired_at \
             RETURNING fence"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(duty)
            .bind(holder)
            .bind(lease_ms)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
    }

    /// Ends every lease held by another instance than `holder`. Only for SQLite, where there is
    /// one instance: a holder other than this one is its predecessor, gone (killed, or the
    /// machine restarted), and its duties need not wait for its leases to run out.
    pub async fn end_others_leases(&self, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE duty_leases SET expires_at = 0 WHERE holder <> $1")
            .bind(holder)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// Gives a duty up (a clean stop): its lease ends now, so another instance takes it at its
    /// next heartbeat instead of after the lease time.
    pub async fn release_duty(&self, duty: &str, holder: &str, fence: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE duty_leases SET expires_at = 0 WHERE duty = $1 AND holder = $2 AND fence = $3")
            .bind(duty)
            .bind(holder)
            .bind(fence)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// The instances registered, oldest first, and the database's clock now (milliseconds).
    pub async fn instances(&self) -> Result<(Vec<InstanceRecord>, i64), StoreError> {
        let rows = sqlx::query("SELECT id, started_at, last_seen, version FROM instances ORDER BY started_at, id")
            .fetch_all(self.pool())
            .await?;
        let now = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {}", clock(self.backend()))))
            .fetch_one(self.pool())
            .await?
            .try_get::<i64, _>(0)?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(InstanceRecord {
                    id: r.try_get(0)?,
                    started_at_ms: r.try_get(1)?,
                    last_seen_ms: r.try_get(2)?,
                    version: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((list, now))
    }

    /// Every duty's lease.
    pub async fn duty_leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        let rows = sqlx::query("SELECT duty, holder, fence, acquired_at, expires_at FROM duty_leases ORDER BY duty")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseRecord {
                    duty: r.try_get(0)?,
                    holder: r.try_get(1)?,
                    fence: r.try_get(2)?,
                    acquired_at_ms: r.try_get(3)?,
                    expires_at_ms: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
