//! A stand-in for the e-gov gateway to the state registry (the real one cannot run here): a real
//! HTTP server on loopback answering `GET /gw/persons/{iin}` and `GET /gw/organizations/{bin}`
//! with the records of [`IIN`] and [`BIN`], 404 for anyone else, and 500 for `920708497088` (a
//! gateway error is not "not found"). Plain, toggled (503 while down), silent (accepts and never
//! answers), or over TLS, counting what it sees.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::server::{BIN, IIN};

/// The IIN the gateway answers with an error of its own (500).
pub const FAILING_IIN: &str = "920708497088";

async fn person(State(up): State<Arc<AtomicBool>>, Path(iin): Path<String>) -> Response {
    if !up.load(SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    match iin.as_str() {
        IIN => (
            StatusCode::OK,
            r#"{"kind":"person","id":"850315306048","surname":"Құнанбай","name":"Абай","patronymic":"Құнанбайұлы","birth_date":"1985-03-15"}"#,
        )
            .into_response(),
        FAILING_IIN => (StatusCode::INTERNAL_SERVER_ERROR, "down for maintenance").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn organization(State(up): State<Arc<AtomicBool>>, Path(bin): Path<String>) -> Response {
    if !up.load(SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    if bin == BIN {
        (
            StatusCode::OK,
            r#"{"kind":"organization","id":"150540041064","org_name":"ТОО «Дала Технолоджис»"}"#,
        )
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// The gateway's routes, answering while `up` holds and 503 to everything while it does not.
fn routes(up: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/gw/persons/{iin}", get(person))
        .route("/gw/organizations/{bin}", get(organization))
        .with_state(up)
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/gw")
}

/// Serves the stand-in over plain HTTP on the current runtime; returns its base URL.
pub async fn stand_in() -> String {
    serve(routes(Arc::new(AtomicBool::new(true)))).await
}

/// The stand-in, answering only while `up` holds (503 otherwise); returns its base URL.
pub async fn toggled(up: Arc<AtomicBool>) -> String {
    serve(routes(up)).await
}

/// A gateway that accepts connections and never answers; returns its base URL.
pub async fn silent() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    format!("http://{addr}")
}

/// What the HTTPS stand-in saw, counted as it happened.
#[derive(Default)]
pub struct Seen {
    /// TCP connections accepted, ever.
    pub connections: AtomicUsize,
    /// Requests answered, ever.
    pub requests: AtomicUsize,
    pub in_flight: AtomicUsize,
    /// The most requests in progress at once.
    pub most_in_flight: AtomicUsize,
    /// TCP connections open now, and the most open at once.
    pub open: AtomicUsize,
    pub most_open: AtomicUsize,
}

/// The stand-in over TLS (the chain and key of [`tls_files`](super::tls::tls_files)), counting
/// into `seen`; every request takes 50 ms, so that concurrent ones overlap. Returns its base URL.
pub async fn https_stand_in(chain: &std::path::Path, key: &std::path::Path, seen: Arc<Seen>) -> String {
    let acceptor = super::tls::acceptor(chain, key);
    let counting = seen.clone();
    let app = routes(Arc::new(AtomicBool::new(true))).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = counting.clone();
            async move {
                let now = seen.in_flight.fetch_add(1, SeqCst) + 1;
                seen.most_in_flight.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                let resp = next.run(req).await;
                seen.in_flight.fetch_sub(1, SeqCst);
                seen.requests.fetch_add(1, SeqCst);
                resp
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.connections.fetch_add(1, SeqCst);
            let (acceptor, app, seen) = (acceptor.clone(), app.clone(), seen.clone());
            tokio::spawn(async move {
                let now = seen.open.fetch_add(1, SeqCst) + 1;
                seen.most_open.fetch_max(now, SeqCst);
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                }
                seen.open.fetch_sub(1, SeqCst);
            });
        }
    });
    format!("https://127.0.0.1:{}/gw", addr.port())
}
