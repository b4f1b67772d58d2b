//! Operators' lifecycle for administrators, and the operator's own view.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, CREATED};
use super::extract::Path;
use super::{Admin, AppState, JsonBody, OperatorClient};
use crate::operators::{self, Dismissal, NewOperator, OperatorKeys, OperatorView};

/// The role an added person gets on the roll.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    Operator,
    Administrator,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    iin: String,
    surname: String,
    name: String,
    patronymic: Option<String>,
    centre: String,
    /// `operator` (default) or `administrator`.
    role: Option<RoleName>,
    /// PKCS#10, PEM: the AUTH and SIGN keys stay where they were made.
    auth_csr: String,
    sign_csr: String,
}

/// `POST /api/v1/admin/operators`: 201 with the operator and, in `certificates`, the AUTH and
/// SIGN certificates and the chain in PEM.
pub async fn add(
    State(s): State<AppState>,
    Admin(admin): Admin,
    JsonBody(b): JsonBody<AddBody>,
) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(target: "audit", administrator = %admin.serial, iin = ?b.iin, "admin request: operator add");
    let new = NewOperator {
        iin: b.iin,
        surname: b.surname,
        name: b.name,
        patronymic: b.patronymic,
        centre: b.centre,
        administrator: b.role == Some(RoleName::Administrator),
    };
    let keys = OperatorKeys::Csrs {
        auth: b.auth_csr.into_bytes(),
        sign: b.sign_csr.into_bytes(),
    };
    let added = operators::add(s.roll(), &s.centres, new, keys, &admin.actor()).await?;
    Ok((
        CREATED,
        Json(serde_json::json!({
            "operator": OperatorView::from(&added.record),
            "certificates": operators::certificates_pem(&s.ca, &added),
        })),
    ))
}

pub async fn suspend(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(iin): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(OperatorView::from(
        &operators::suspend(s.roll(), &iin, &admin.actor()).await?,
    )))
}

pub async fn resume(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(iin): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(OperatorView::from(
        &operators::resume(s.roll(), &iin, &admin.actor()).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    /// YYYY-MM-DD, local date; or
    on: Option<String>,
    /// true with a reason: at once.
    #[serde(default)]
    now: bool,
    reason: Option<String>,
}

pub async fn dismiss(
    State(s): State<AppState>,
    Admin(admin): Admin,
    Path(iin): Path<String>,
    JsonBody(b): JsonBody<DismissBody>,
) -> Result<impl IntoResponse, ApiError> {
    let how = match (b.on, b.now, b.reason) {
        (Some(on), false, None) => Dismissal::On(on),
        (None, true, Some(reason)) => Dismissal::Now { reason },
        _ => {
            return Err(ApiError::bad_request(
                "request_invalid",
                "either {\"on\": date} or {\"now\": true, \"reason\": …}",
            ));
        }
    };
    Ok(Json(OperatorView::from(
        &operators::dismiss(s.roll(), &iin, how, &admin.actor()).await?,
    )))
}

/// `GET /api/v1/operator/me`: the operator behind the client certificate, when they may act.
pub async fn me(OperatorClient(o): OperatorClient) -> impl IntoResponse {
    Json(OperatorView::from(&o.record))
}
