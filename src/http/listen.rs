//! Both listeners serve their connections here, with the same bounds against slow and greedy
//! clients (`[http]` in `ca-config/nca.toml`, README "Connections"):
//!
//! - the time from a connection's opening, or from its previous answer, to a whole request head
//!   (so an idle keep-alive connection too, and a head sent a byte at a time): a watchdog per
//!   connection closes it;
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
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// `Waiting::since_ms` while a request is being answered.
const IN_REQUEST: u64 = u64::MAX;

/// When the connection began to wait for its next request head, in milliseconds since it
/// opened, or [`IN_REQUEST`]. The request path only stores into it; a watchdog reads it a few
/// times a second. (hyper's own header read timer is re-armed on every request, a timer-wheel
/// operation per request that cost the OCSP responder measurably.)
struct Waiting {
    opened: Instant,
    since_ms: AtomicU64,
    /// The last time bytes went out: an answer still being written (a large CRL to a slow
    /// reader) is not an idle connection.
    wrote_ms: AtomicU64,
}

impl Waiting {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
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
    shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let waiting = Arc::new(Waiting {
        opened: Instant::now(),
        since_ms: AtomicU64::new(0),
        wrote_ms: AtomicU64::new(0),
    });
    let io = Watched {
        io,
        waiting: Arc::clone(&waiting),
    };
    let w = Arc::clone(&waiting);
    let service = hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
        w.since_ms.store(IN_REQUEST, Ordering::Relaxed);
        let ext = req.extensions_mut();
        ext.insert(ConnectInfo(peer));
        ext.insert(limits.body);
        if let Some(who) = &who {
            ext.insert(who.clone());
        }
        let answered = router.clone().oneshot(req);
        let w = Arc::clone(&w);
        async move {
            let response = answered.await;
            // From the answer on, the connection waits for its next head (keep-alive).
            w.since_ms.store(w.now_ms(), Ordering::Relaxed);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(limits.head_max_bytes);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        end = watchdog(&waiting, limits.head_timeout, &shutdown) => match end {
            Watchdog::Overdue => {
                tracing::debug!(%peer, "connection closed: no request head in time");
                return;
            }
            Watchdog::Stop => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        },
    };
    if let Err(e) = result {
        // A client that went away or sent what is not HTTP; nothing of the service's own.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

enum Watchdog {
    /// No whole head within the bound since the connection opened or last answered.
    Overdue,
    /// The service is stopping.
    Stop,
}

/// Looks at the connection a few times per bound: the bound is kept within a quarter of itself
/// (at most a second late).
async fn watchdog(waiting: &Waiting, bound: Duration, shutdown: &watch::Receiver<bool>) -> Watchdog {
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    let mut tick = tokio::time::interval((bound / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if *shutdown.borrow() {
            return Watchdog::Stop;
        }
        let since = waiting.since_ms.load(Ordering::Relaxed);
        let last = since.max(waiting.wrote_ms.load(Ordering::Relaxed));
        if since != IN_REQUEST && waiting.now_ms().saturating_sub(last) >= bound_ms {
            return Watchdog::Overdue;
        }
    }
}

/// The connection's IO, noting when bytes go out.
struct Watched<I> {
    io: I,
    waiting: Arc<Waiting>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = r
            && *n > 0
        {
            self.waiting.wrote_ms.store(self.waiting.now_ms(), Ordering::Relaxed);
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The public listener: plain HTTP.
pub async fn serve_plain(listener: TcpListener, router: Router, limits: Limits, shutdown: watch::Receiver<bool>) {
    accept_loop("public", listener, limits, shutdown, move |tcp, peer, stop| {
        serve_connection(tcp, peer, None, router.clone(), limits, stop)
    })
    .await
}
