//! HTTP: routing, extractors, TLS client identity, and (in `error.rs` only) status codes.
//! Handlers extract, make one call into the core, and map the error.

pub mod abuse;
mod admin;
mod applications;
mod cabinet;
pub mod error;
pub mod metrics;
mod operators;
mod pages;
mod public;
mod status;
pub mod tls;
mod tsa;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Serialize;

use crate::operators::ClientIdentity;
use crate::operators::centres::Centres;
use crate::pki::{Ca, IssueError, IssueRequest, Issued};
use metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub ca: Arc<Ca>,
    pub crls: Arc<crate::publisher::CrlCache>,
    pub centres: Arc<Centres>,
    /// The processes, as `ca-config/regulation.toml` has them.
    pub regulation: Arc<crate::workflow::regulation::Regulation>,
    /// The state registry (condition 1 of the processes); the workflow asks it.
    pub registry: Arc<crate::registry::StateRegistry>,
    pub metrics: Arc<Metrics>,
    /// Rate limits and proofs of work of the application form.
    pub abuse: Arc<abuse::Abuse>,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub key_store: String,
    /// The time-stamping authority's view of the clock: `synchronised`, `unsynchronised: …`
    /// (tokens are refused with timeNotAvailable) or `unknown: …`. It does not change `ready`:
    /// CRLs, OCSP and the portal do not need a synchronised clock to the second.
    pub clock: String,
}

impl AppState {
    pub async fn readiness(&self) -> Readiness {
        let database = self.ca.store.ping().await;
        let ks = Arc::clone(&self.ca.key_store);
        let key_store = tokio::task::spawn_blocking(move || ks.check())
            .await
            .unwrap_or_else(|e| Err(crate::keys::KeyStoreError::Pkcs11(e.to_string())));
        let word = |ok: bool, e: String| if ok { "ok".to_string() } else { e };
        Readiness {
            ready: database.is_ok() && key_store.is_ok(),
            database: word(
                database.is_ok(),
                database.err().map(|e| e.to_string()).unwrap_or_default(),
            ),
            key_store: word(
                key_store.is_ok(),
                key_store.err().map(|e| e.to_string()).unwrap_or_default(),
            ),
            clock: self.ca.clock().describe(),
        }
    }

    pub async fn render_metrics(&self) -> String {
        let counts = self.ca.store.certificate_counts().await.unwrap_or_default();
        let ready = self.readiness().await.ready;
        let mut text = self.metrics.render(&counts, ready);
        let mut channels = Vec::new();
        for channel in [crate::outbox::MONITORING, crate::outbox::MAIL] {
            if let Ok(c) = self.ca.store.outbox_counts(channel).await {
                channels.push((channel, c));
            }
        }
        metrics::render_outbox(&mut text, &channels, crate::store::now());
        text
    }

    pub fn workflow(&self) -> crate::workflow::application::Workflow<'_> {
        crate::workflow::application::Workflow {
            ca: &self.ca,
            regulation: &self.regulation,
            registry: &self.registry,
            centres: &self.centres,
            lang: None,
        }
    }

    /// The workflow speaking the caller's language (`Accept-Language`).
    pub fn workflow_for(&self, headers: &axum::http::HeaderMap) -> crate::workflow::application::Workflow<'_> {
        crate::workflow::application::Workflow {
            lang: language(headers),
            ..self.workflow()
        }
    }

    /// Issues and counts.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, IssueError> {
        let r = self.ca.issue(req).await;
        let counter = if r.is_ok() {
            &self.metrics.certificates_issued
        } else {
            &self.metrics.issuance_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }
}

/// The first of kk, ru and en that `Accept-Language` prefers (by q-value, then order).
pub fn language(headers: &axum::http::HeaderMap) -> Option<&'static str> {
    let value = headers.get(axum::http::header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let mut best: Option<(f32, &'static str)> = None;
    for part in value.split(',') {
        let mut fields = part.split(';');
        let tag = fields.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = fields
            .filter_map(|f| f.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let lang = match primary {
            "kk" => "kk",
            "ru" => "ru",
            "en" => "en",
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l)
}

/// A JSON body whose rejection (not JSON, wrong shape, wrong content type) is an `ApiError`
/// with code `request_invalid`, like every other bad request.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = error::ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(error::ApiError::bad_request("request_invalid", e.body_text())),
        }
    }
}

/// The client's address, when the listener recorded it (the public listener does).
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(PeerAddr(info.map(|c| c.0.ip())))
    }
}

/// An administrator, established from the connection's client certificate before the body is
/// read: a request from anyone else is refused without looking at what it carries.
pub struct Admin(pub crate::operators::Administrator);

impl FromRequestParts<AppState> for Admin {
    type Rejection = error::ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let who = parts.extensions.get::<ClientIdentity>();
        Ok(Admin(crate::operators::administrator(&s.ca, who).await?))
    }
}

/// An operator who may act now, established from the client certificate before the body is read.
pub struct OperatorClient(pub crate::operators::Operator);

impl FromRequestParts<AppState> for OperatorClient {
    type Rejection = error::ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let who = parts.extensions.get::<ClientIdentity>();
        Ok(OperatorClient(crate::operators::operator(&s.ca, who).await?))
    }
}

async fn count(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    s.metrics.count_status(resp.status().as_u16());
    resp
}

/// The public listener's routes.
pub fn public_router(state: AppState) -> Router {
    let max = state.ca.config.service.max_body_bytes;
    // The CPS URI is served here when it is this service's (relative in the configuration).
    let cps = state.ca.config.ca.cps_uri.clone();
    let router = if cps.starts_with('/') && cps != "/" {
        Router::new().route(&cps, get(public::policy_document))
    } else {
        Router::new()
    };
    router
        .route("/", get(pages::portal))
        .route("/status", get(pages::status))
        .route("/cabinet/", get(pages::cabinet))
        .route("/api/v1/cabinet/challenge", post(cabinet::challenge))
        .route(
            "/api/v1/cabinet/session",
            post(cabinet::sign_in).get(cabinet::session).delete(cabinet::sign_out),
        )
        .route("/api/v1/cabinet/certificates", get(cabinet::certificates))
        .route("/api/v1/cabinet/certificates/{serial}", get(cabinet::certificate))
        .route("/api/v1/cabinet/applications", get(cabinet::applications))
        .route("/assets/{file}", get(pages::asset))
        .route("/healthz", get(public::healthz))
        .route("/readyz", get(public::readyz))
        .route("/metrics", get(public::metrics))
        .route("/cert/{file}", get(public::ca_certificate))
        .route("/api/v1/ca", get(public::cas))
        .route("/api/v1/centres", get(public::centres))
        .route("/api/v1/certificates/{serial}", get(public::certificate))
        .route("/api/v1/applications", post(applications::submit))
        .route("/api/v1/applications/{number}", get(applications::get))
        .route(
            "/api/v1/applications/{number}/certificates",
            get(applications::certificates),
        )
        .route(
            "/api/v1/applications/{number}/survey",
            get(applications::survey).post(applications::answer_survey),
        )
        .route("/crl/{file}", get(status::crl))
        .route(
            "/ocsp",
            post(status::ocsp_post).layer(DefaultBodyLimit::max(crate::pki::ocsp::MAX_REQUEST_BYTES)),
        )
        .route("/ocsp/{*request}", get(status::ocsp_get))
        .route("/tsp", post(tsa::tsp))
        .route("/cert/tsa.cer", get(tsa::certificate))
        .route("/api/v1/verify", post(tsa::verify))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

/// The operator listener's routes (TLS, client certificate required by the TLS layer).
pub fn operator_router(state: AppState) -> Router {
    let max = state.ca.config.service.max_body_bytes;
    Router::new()
        .route("/console/", get(pages::console))
        .route("/admin/", get(pages::admin))
        .route("/assets/{file}", get(pages::asset))
        .route("/healthz", get(public::healthz))
        .route("/api/v1/admin/certificates", post(admin::issue_certificate))
        .route("/api/v1/admin/revocations", post(admin::revoke))
        .route("/api/v1/admin/crl", post(admin::publish_crl).get(admin::crl_status))
        .route("/api/v1/admin/reports/survey", get(admin::survey_report))
        .route("/api/v1/admin/audit/verify", get(admin::verify_audit))
        .route("/api/v1/admin/reports/sla", get(admin::sla_report))
        .route("/api/v1/admin/monitoring", get(admin::monitoring))
        .route("/api/v1/admin/timestamps/{serial}", get(tsa::record))
        .route("/api/v1/admin/monitoring/{message_id}/retry", post(admin::retry_parked))
        .route("/api/v1/admin/operators", post(operators::add).get(admin::operators))
        .route("/api/v1/admin/operators/{iin}/suspend", post(operators::suspend))
        .route("/api/v1/admin/operators/{iin}/resume", post(operators::resume))
        .route("/api/v1/admin/operators/{iin}/dismiss", post(operators::dismiss))
        .route("/api/v1/operator/me", get(operators::me))
        .route(
            "/api/v1/operator/applications",
            get(applications::queue).post(applications::create_at_centre),
        )
        .route("/api/v1/operator/applications/{number}", get(applications::desk))
        .route(
            "/api/v1/operator/applications/{number}/certificates",
            get(applications::operator_certificates),
        )
        .route(
            "/api/v1/operator/applications/{number}/card",
            post(applications::card_written),
        )
        .route(
            "/api/v1/operator/applications/{number}/identity",
            post(applications::identity),
        )
        .route(
            "/api/v1/operator/applications/{number}/requests",
            post(applications::card_requests),
        )
        .route(
            "/api/v1/operator/applications/{number}/to-be-signed",
            get(applications::to_be_signed),
        )
        .route(
            "/api/v1/operator/applications/{number}/confirmation",
            post(applications::confirmation),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("not_found", "no such endpoint")
}

/// Adds a connection's client identity to every request on it.
pub fn with_identity(router: Router, who: Option<ClientIdentity>) -> Router {
    match who {
        Some(w) => router.layer(Extension(w)),
        None => router,
    }
}
