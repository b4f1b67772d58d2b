//! Both listeners serve their connections here, with the same bounds against slow and greedy
//! clients (`[http]` in `ca-config/nca.toml`, README "Connections"):
//!
//! - the time from a connection's opening, or from its previous answer, to a whole request head
//!   (hyper's header read timer starts when it waits for a head, so it bounds an idle keep-alive
//!   connection too, and a head sent a byte at a time);
//! - the head's size (hyper's read buffer; a longer head is answered 431 by hyper);
//! - the body's length and read time (`extract::Body`, from the [`BodyLimits`] put on each
//!   request here);
//! - the TLS handshake's time (operator listener, `tls.rs`);
//! - the connections one client address holds open on a listener: past the limit a new one is
//!   closed as soon as it is accepted, before a byte is read.
//!
//! On stop, no connection is accepted; the open ones finish the request they are in.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

use super::extract::BodyLimits;
use crate::config::HttpSection;
use crate::operators::ClientIdentity;

/// The bounds, as the configuration gives them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head_timeout: Duration,
    pub head_max_bytes: usize,
    pub body: BodyLimits,
    pub handshake_timeout: Duration,
    /// 0: no limit.
    pub per_address: usize,
}

impl Limits {
    pub fn new(http: &HttpSection, max_body_bytes: usize) -> Limits {
        Limits {
            head_timeout: Duration::from_secs(http.head_timeout_seconds),
            head_max_bytes: http.head_max_bytes,
            body: BodyLimits {
                timeout: Duration::from_secs(http.body_timeout_seconds),
                max_bytes: max_body_bytes,
            },
            handshake_timeout: Duration::from_secs(http.tls_handshake_timeout_seconds),
            per_address: http.max_connections_per_address,
        }
    }
}

/// Open connections per client address on one listener.
struct Connections {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// A connection's place in [`Connections`], given back when the connection ends.
struct Slot {
    of: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        if self.max > 0 {
            // A poisoned lock means a panic while counting: count afresh rather than stop serving.
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let n = open.entry(ip).or_insert(0);
            if *n >= self.max {
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            of: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.of.max == 0 {
            return;
        }
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `shutdown` fires and hands each admitted one to `handle`, then
/// waits (at most 30 s) for the open ones to finish.
pub async fn accept_loop<H, F>(
    name: &'static str,
    listener: TcpListener,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let connections = Arc::new(Connections {
        open: Mutex::new(HashMap::new()),
        max: limits.per_address,
    });
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, typically: pause rather than spin.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        while tasks.try_join_next().is_some() {}
        let Some(slot) = connections.admit(peer.ip()) else {
            tracing::debug!(listener = name, %peer, "connection closed: too many open from this address");
            drop(tcp);
            continue;
        };
        let served = handle(tcp, peer, shutdown.clone());
        tasks.spawn(async move {
            let _slot = slot;
            served.await;
        });
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain).await.is_err() {
        tracing::warn!(listener = name, "stopping with connections still open");
    }
}

/// Serves HTTP/1.1 on one connection with the head bounds; each request carries the peer's
/// address, the body limits and, on the operator listener, the client identity.
pub async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    who: Option<ClientIdentity>,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
        let ext = req.extensions_mut();
        ext.insert(ConnectInfo(peer));
        ext.insert(limits.body);
        if let Some(w) = &who {
            ext.insert(w.clone());
        }
        router.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.head_max_bytes);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A client that went away or was too slow; nothing of the service's own.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// The public listener: plain HTTP.
pub async fn serve_plain(listener: TcpListener, router: Router, limits: Limits, shutdown: watch::Receiver<bool>) {
    accept_loop("public", listener, limits, shutdown, move |tcp, peer, stop| {
        serve_connection(tcp, peer, None, router.clone(), limits, stop)
    })
    .await
}
