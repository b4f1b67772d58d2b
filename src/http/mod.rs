//! HTTP: routing, extractors, TLS client identity, and (in `error.rs` only) status codes.
//! Handlers extract, make one call into the core, and map the error.

pub mod abuse;
mod admin;
mod applications;
mod cabinet;
pub mod error;
pub mod extract;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod operators;
mod pages;
mod public;
mod status;
pub mod tls;
mod tsa;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde::Serialize;

use crate::config::Config;
use crate::keys::KeyStore;
use crate::operators::ClientIdentity;
use crate::operators::centres::Centres;
use crate::pki::Ca;
use crate::store::Store;
use metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    /// The CA: issues, revokes, signs. It hands out none of the parts below.
    pub ca: Arc<Ca>,
    /// The storage authority, shared by every role (a cheap clone of one pool).
    pub store: Store,
    pub config: Arc<Config>,
    /// The key store the CA's keys live in: asked by `/readyz` whether it answers.
    pub key_store: Arc<dyn KeyStore>,
    pub crls: Arc<crate::publisher::CrlCache>,
    pub centres: Arc<Centres>,
    /// The processes, as `ca-config/regulation.toml` has them.
    pub regulation: Arc<crate::workflow::regulation::Regulation>,
    /// The state registry (condition 1 of the processes); the workflow asks it.
    pub registry: Arc<crate::registry::StateRegistry>,
    pub metrics: Arc<Metrics>,
    /// Rate limits and proofs of work of the application form.
    pub abuse: Arc<abuse::Abuse>,
    /// This instance in the cluster: the duties it holds (none for an instance that holds no
    /// duty).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
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
    /// `primary`, or `status` (`nca serve --role status`).
    pub role: &'static str,
    /// A status instance on a PostgreSQL streaming replica: how far behind its primary it is
    /// (0 when it replayed all it received); absent elsewhere or when the database cannot say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_lag_seconds: Option<f64>,
}

impl AppState {
    pub async fn readiness(&self) -> Readiness {
        let database = self.store.ping().await;
        let role = self.config.role;
        let replica_lag_seconds = match role {
            crate::config::Role::Status => self.store.replica_lag_seconds().await.ok().flatten(),
            crate::config::Role::Primary => None,
        };
        let ks = Arc::clone(&self.key_store);
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
            role: role.name(),
            replica_lag_seconds,
        }
    }

    pub async fn render_metrics(&self) -> String {
        let counts = self.store.certificate_counts().await.unwrap_or_default();
        let ready = self.readiness().await.ready;
        let mut text = self.metrics.render(crate::pki::issuance_counts(), &counts, ready);
        let mut channels = Vec::new();
        for channel in [crate::outbox::MONITORING, crate::outbox::MAIL] {
            if let Ok(c) = self.store.outbox_counts(channel).await {
                channels.push((channel, c));
            }
        }
        metrics::render_outbox(&mut text, &channels, crate::store::now());
        let held = self.cluster.as_ref().map(|c| c.held_duties()).unwrap_or_default();
        metrics::render_duties(&mut text, &held);
        metrics::render_group_commits(&mut text, &self.store.group_commits());
        text
    }

    pub fn workflow(&self) -> crate::workflow::application::Workflow<'_> {
        crate::workflow::application::Workflow {
            ca: &self.ca,
            store: &self.store,
            config: &self.config,
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

    /// The operators' roll.
    pub fn roll(&self) -> crate::operators::Roll<'_> {
        crate::operators::Roll {
            ca: &self.ca,
            store: &self.store,
            config: &self.config,
        }
    }

    /// The citizens' cabinet.
    pub fn cabinet(&self) -> crate::cabinet::Cabinet<'_> {
        crate::cabinet::Cabinet {
            ca: &self.ca,
            store: &self.store,
            config: &self.config,
        }
    }
}

/// The first of kk, ru and en that `Accept-Language` prefers (by q-value, then order).
pub fn language(headers: &axum::http::HeaderMap) -> Option<&'static str> {
    let value = headers.get(axum::http::header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    crate::web::Lang::preferred(value).map(crate::web::Lang::code)
}

pub use extract::JsonBody;

/// The client's address, as the listener recorded it (`listen.rs`).
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
        Ok(Admin(crate::operators::access::administrator(s.roll(), who).await?))
    }
}

/// An operator who may act now, established from the client certificate before the body is read.
pub struct OperatorClient(pub crate::operators::Operator);

impl FromRequestParts<AppState> for OperatorClient {
    type Rejection = error::ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let who = parts.extensions.get::<ClientIdentity>();
        Ok(OperatorClient(crate::operators::access::operator(s.roll(), who).await?))
    }
}

async fn count(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    s.metrics.count_status(resp.status().as_u16());
    resp
}

/// What relying parties read, served alike by a primary and by a status instance: health, CA
/// certificates, certificate status, CRLs, OCSP, the policy document, signature verification.
fn relying_routes() -> openapi::Routes {
    openapi::Routes::default()
        .get("/healthz", public::healthz)
        .get("/readyz", public::readyz)
        .get("/metrics", public::metrics)
        .get("/cert/{file}", public::ca_certificate)
        .get("/api/v1/openapi.json", openapi::document)
        .get("/api/v1/ca", public::cas)
        .get("/api/v1/certificates/{serial}", public::certificate)
        .get("/crl/{file}", status::crl)
        .post_limited("/ocsp", status::ocsp_post, crate::pki::ocsp::MAX_REQUEST_BYTES)
        .get("/ocsp/{*request}", status::ocsp_get)
        .get(DEFAULT_CPS_PATH, public::policy_document)
        .get("/cert/tsa.cer", tsa::certificate)
        .post("/api/v1/verify", tsa::verify)
}

/// The public listener's routes, recorded for the API description (`openapi.rs`).
pub fn public_routes() -> openapi::Routes {
    relying_routes()
        .get("/", pages::portal)
        .get("/status", pages::status)
        .get("/cabinet/", pages::cabinet)
        .post("/api/v1/cabinet/challenge", cabinet::challenge)
        .post("/api/v1/cabinet/session", cabinet::sign_in)
        .get("/api/v1/cabinet/session", cabinet::session)
        .delete("/api/v1/cabinet/session", cabinet::sign_out)
        .get("/api/v1/cabinet/certificates", cabinet::certificates)
        .get("/api/v1/cabinet/certificates/{serial}", cabinet::certificate)
        .get("/api/v1/cabinet/applications", cabinet::applications)
        .get("/assets/{file}", pages::asset)
        .get("/api/v1/centres", public::centres)
        .post("/api/v1/applications", applications::submit)
        .get("/api/v1/applications/{number}", applications::get)
        .get("/api/v1/applications/{number}/certificates", applications::certificates)
        .get("/api/v1/applications/{number}/survey", applications::survey)
        .post("/api/v1/applications/{number}/survey", applications::answer_survey)
        .post("/tsp", tsa::tsp)
}

/// A status instance's routes (`nca serve --role status`): the relying parties' side of the
/// public listener, read-only. The public listener's write routes answer
/// `status_instance_read_only`; its other routes (the portal, the cabinet, applications) are
/// absent (404).
pub fn status_routes() -> openapi::Routes {
    relying_routes()
        .post("/tsp", status::read_only)
        .post("/api/v1/applications", status::read_only)
        .post("/api/v1/applications/{number}/survey", status::read_only)
        .post("/api/v1/cabinet/challenge", status::read_only)
        .post("/api/v1/cabinet/session", status::read_only)
        .delete("/api/v1/cabinet/session", status::read_only)
}

/// A status instance's router.
pub fn status_router(state: AppState) -> Router {
    let cps = state.config.ca.cps_uri.clone();
    let mut routes = status_routes();
    if cps.starts_with('/') && cps != "/" && cps != DEFAULT_CPS_PATH {
        routes = routes.get_configured(&cps, public::policy_document);
    }
    finish(routes, state)
}

/// Where the policy document is served when `ca.cps_uri` keeps its default; a deployment that
/// names another path of this service gets it there too.
const DEFAULT_CPS_PATH: &str = "/cps";

/// The public listener's router.
pub fn public_router(state: AppState) -> Router {
    let cps = state.config.ca.cps_uri.clone();
    let mut routes = public_routes();
    // The CPS URI is served here when it is this service's (relative in the configuration).
    if cps.starts_with('/') && cps != "/" && cps != DEFAULT_CPS_PATH {
        routes = routes.get_configured(&cps, public::policy_document);
    }
    finish(routes, state)
}

/// The operator listener's routes (TLS, client certificate required by the TLS layer).
pub fn operator_routes() -> openapi::Routes {
    openapi::Routes::default()
        .get("/console/", pages::console)
        .get("/admin/", pages::admin)
        .get("/assets/{file}", pages::asset)
        .get("/healthz", public::healthz)
        .post("/api/v1/admin/certificates", admin::issue_certificate)
        .post("/api/v1/admin/revocations", admin::revoke)
        .post("/api/v1/admin/crl", admin::publish_crl)
        .get("/api/v1/admin/crl", admin::crl_status)
        .get("/api/v1/admin/reports/survey", admin::survey_report)
        .get("/api/v1/admin/audit/verify", admin::verify_audit)
        .get("/api/v1/admin/cluster", admin::cluster)
        .get("/api/v1/admin/reports/sla", admin::sla_report)
        .get("/api/v1/admin/archive", admin::archive)
        .get("/api/v1/admin/monitoring", admin::monitoring)
        .get("/api/v1/admin/timestamps/{serial}", tsa::record)
        .post("/api/v1/admin/monitoring/{message_id}/retry", admin::retry_parked)
        .post("/api/v1/admin/operators", operators::add)
        .get("/api/v1/admin/operators", admin::operators)
        .post("/api/v1/admin/operators/{iin}/suspend", operators::suspend)
        .post("/api/v1/admin/operators/{iin}/resume", operators::resume)
        .post("/api/v1/admin/operators/{iin}/dismiss", operators::dismiss)
        .get("/api/v1/operator/me", operators::me)
        .get("/api/v1/operator/applications", applications::queue)
        .post("/api/v1/operator/applications", applications::create_at_centre)
        .get("/api/v1/operator/applications/{number}", applications::desk)
        .get(
            "/api/v1/operator/applications/{number}/certificates",
            applications::operator_certificates,
        )
        .post(
            "/api/v1/operator/applications/{number}/card",
            applications::card_written,
        )
        .post(
            "/api/v1/operator/applications/{number}/identity",
            applications::identity,
        )
        .post(
            "/api/v1/operator/applications/{number}/requests",
            applications::card_requests,
        )
        .get(
            "/api/v1/operator/applications/{number}/to-be-signed",
            applications::to_be_signed,
        )
        .post(
            "/api/v1/operator/applications/{number}/confirmation",
            applications::confirmation,
        )
}

/// The operator listener's router.
pub fn operator_router(state: AppState) -> Router {
    finish(operator_routes(), state)
}

/// What both routers share: the envelope for unknown paths and methods, the status counter, the
/// body limit.
fn finish(routes: openapi::Routes, state: AppState) -> Router {
    let max = state.config.service.max_body_bytes;
    routes
        .into_router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .layer(DefaultBodyLimit::max(max))
        .with_state(state)
}

async fn method_not_allowed() -> error::ApiError {
    extract::RequestError::MethodNotAllowed.into()
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("not_found", "no such endpoint")
}
