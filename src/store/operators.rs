//! Operator records.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, append};
use super::{Store, StoreError, is_unique_violation, now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub iin: String,
    pub surname: String,
    pub name: String,
    pub patronymic: Option<String>,
    pub centre: String,
    pub role: String,
    pub status: String,
    pub auth_serial: String,
    pub sign_serial: String,
    pub created_at: i64,
    pub last_activity_at: i64,
    pub dismissed_at: Option<i64>,
}

const COLUMNS: &str = "iin, surname, name, patronymic, centre, role, status, auth_serial, sign_serial, created_at, last_activity_at, dismissed_at";

fn row(r: &AnyRow) -> Result<OperatorRecord, sqlx::Error> {
    Ok(OperatorRecord {
        iin: r.try_get("iin")?,
        surname: r.try_get("surname")?,
        name: r.try_get("name")?,
        patronymic: r.try_get("patronymic")?,
        centre: r.try_get("centre")?,
        role: r.try_get("role")?,
        status: r.try_get("status")?,
        auth_serial: r.try_get("auth_serial")?,
        sign_serial: r.try_get("sign_serial")?,
        created_at: r.try_get("created_at")?,
        last_activity_at: r.try_get("last_activity_at")?,
        dismissed_at: r.try_get("dismissed_at")?,
    })
}

impl Store {
    /// Adds an operator; an IIN already on record is refused (`StateConflict`).
    pub async fn add_operator(&self, o: &OperatorRecord, actor: &crate::model::Actor) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO operators (iin, surname, name, patronymic, centre, role, status, auth_serial, sign_serial, created_at, last_activity_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&o.iin)
        .bind(&o.surname)
        .bind(&o.name)
        .bind(&o.patronymic)
        .bind(&o.centre)
        .bind(&o.role)
        .bind(&o.status)
        .bind(&o.auth_serial)
        .bind(&o.sign_serial)
        .bind(o.created_at)
        .bind(o.last_activity_at)
        .execute(&mut *tx)
        .await;
        match r {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::StateConflict(format!("operator {} exists", o.iin)));
            }
            r => r?,
        };
        let event = AuditEvent::new(
            "operator.added",
            &o.iin,
            serde_json::json!({"centre": o.centre, "role": o.role, "auth_serial": o.auth_serial, "sign_serial": o.sign_serial,
                "actor": actor.audit()}),
        );
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn operator(&self, iin: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM operators WHERE iin = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(iin)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// Every operator and administrator on the roll, by centre and surname.
    pub async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM operators ORDER BY centre, surname, iin");
        let rows = sqlx::query(sqlx::AssertSqlSafe(q)).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// The operator whose AUTH or SIGN certificate has this serial.
    pub async fn operator_by_certificate(&self, serial: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM operators WHERE auth_serial = $1 OR sign_serial = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// Moves an operator between statuses; `from` lists the statuses the change is allowed from.
    /// Returns the record after the change, or `None` when the operator is not in one of them.
    pub async fn set_operator_status(
        &self,
        iin: &str,
        from: &[&str],
        to: &str,
        dismissed_at: Option<i64>,
        actor: &crate::model::Actor,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        // `from` holds at most three fixed words; spelled out rather than bound as a list,
        // which the two backends bind differently.
        let allowed = |s: &str| from.contains(&s);
        let Some(current) = self.operator(iin).await? else {
            return Ok(None);
        };
        if !allowed(&current.status) {
            return Ok(None);
        }
        // Compare-and-set on the status read, so two concurrent changes cannot both win.
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE operators SET status = $1, dismissed_at = COALESCE($2, dismissed_at), last_activity_at = $3 WHERE iin = $4 AND status = $5",
        )
        .bind(to)
        .bind(dismissed_at)
        .bind(now())
        .bind(iin)
        .bind(&current.status)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(None);
        }
        let event = AuditEvent::new(
            &format!("operator.{to}"),
            iin,
            serde_json::json!({"from": current.status, "dismissed_at": dismissed_at, "actor": actor.audit()}),
        );
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        self.access_changed();
        self.operator(iin).await
    }

    /// Sets the day a dismissal takes effect; the operator acts until then.
    pub async fn schedule_dismissal(
        &self,
        iin: &str,
        at: i64,
        actor: &crate::model::Actor,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("UPDATE operators SET dismissed_at = $1 WHERE iin = $2 AND status <> 'dismissed'")
            .bind(at)
            .bind(iin)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            let event = AuditEvent::new(
                "operator.dismissal_scheduled",
                iin,
                serde_json::json!({"dismissed_at": at, "actor": actor.audit()}),
            );
            append(&mut tx, self.backend(), &[event]).await?;
        }
        tx.commit().await?;
        self.access_changed();
        self.operator(iin).await
    }

    /// Records that an operator acted (for the suspension after a long absence).
    pub async fn touch_operator(&self, iin: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE operators SET last_activity_at = $1 WHERE iin = $2")
            .bind(now())
            .bind(iin)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }
}
