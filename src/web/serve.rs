//! The server: the accept loop with graceful shutdown and a cap on open
//! connections, one task per connection (TLS handshake, then HTTP/1.1 with
//! a small header budget and timeout), and per request the rate limit,
//! basic auth and extra headers around the router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{HeaderValue, WWW_AUTHENTICATE};
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::config::WebConfig;

/// How long in-flight requests may run on after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's own bounds: what one client, or many, can hold of the
/// process (file descriptors, memory) however they behave.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once; one accepted beyond it is closed at once
    /// (and counted). 0: no cap.
    pub max_connections: usize,
    /// How long a client may take to send a request's head, counted from
    /// the connection's start or the end of its previous response (so it
    /// is also the idle keep-alive time). hyper's default is 30 s.
    pub header_read_timeout: Duration,
    /// The most a client may send before its request head ends: the
    /// connection's read buffer. Beyond it the answer is 431 and the
    /// connection is closed. hyper's default is ~400 KiB.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_header_bytes: MAX_HEADER_BYTES,
        }
    }
}

/// `--web.max-connections` by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// A scrape's request head is well under 1 KiB.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's counts, exposed as the exporter's own metrics.
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: IntGauge,
    /// Connections closed at once for being over the cap.
    pub refused: IntCounter,
}

impl ConnectionMetrics {
    /// Counters registered nowhere, for a server whose counts nobody reads.
    pub fn unregistered() -> Self {
        ConnectionMetrics {
            open: IntGauge::new("web_connections", "-").expect("valid metric"),
            refused: IntCounter::new("web_connections_refused_total", "-").expect("valid metric"),
        }
    }
}

/// One open connection: its place under the cap and in the gauge, both
/// given back when the connection's task ends.
struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    open: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

struct Shared {
    router: Router,
    web: Option<Arc<WebConfig>>,
    limits: Limits,
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::from(format!(
        "{}\n",
        status.canonical_reason().unwrap_or("")
    )));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl Shared {
    async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let web = self.web.as_deref();
        let refused = match web {
            Some(w) if w.limiter.as_ref().is_some_and(|l| !l.allow()) => {
                Some(plain(StatusCode::TOO_MANY_REQUESTS))
            }
            Some(w) if !w.users.is_empty() && !w.auth.authorized(&w.users, &req).await => {
                let mut resp = plain(StatusCode::UNAUTHORIZED);
                resp.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
                Some(resp)
            }
            _ => None,
        };
        let mut resp = match refused {
            Some(resp) => resp,
            None => {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let svc = TowerToHyperService::new(self.router.clone());
                match hyper::service::Service::call(&svc, req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            }
        };
        if let Some(w) = web {
            for (name, value) in &w.headers {
                resp.headers_mut().insert(name.clone(), value.clone());
            }
        }
        resp
    }
}

/// Serve `router` on `listener` until `shutdown` completes: plain HTTP when
/// `web` is None or has no TLS section, TLS otherwise; basic auth enforced
/// on every route when users are configured (401 with
/// `WWW-Authenticate: Basic` otherwise); extra headers added to every
/// response. Graceful: stops accepting on shutdown, lets in-flight requests
/// finish (up to 5 s), then drops what is left.
///
/// Requests reach the router with `axum::extract::ConnectInfo<SocketAddr>`
/// in their extensions.
///
/// With the default [`Limits`]; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    web: Option<Arc<WebConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        router,
        web,
        Limits::default(),
        ConnectionMetrics::unregistered(),
        shutdown,
    )
    .await
}

/// [`serve`](fn@serve) within `limits`, counting connections in `metrics`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    web: Option<Arc<WebConfig>>,
    limits: Limits,
    metrics: ConnectionMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = web
        .as_ref()
        .and_then(|w| w.tls.clone())
        .map(tokio_rustls::TlsAcceptor::from);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            address = %addr,
            tls = acceptor.is_some(),
            basic_auth = web.as_ref().is_some_and(|w| w.basic_auth_enabled()),
            max_connections = limits.max_connections,
            "serving HTTP"
        );
    }
    let cap =
        (limits.max_connections > 0).then(|| Arc::new(Semaphore::new(limits.max_connections)));
    let shared = Arc::new(Shared {
        router,
        web,
        limits,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                };
                let Some(permit) = admit(cap.as_ref(), &metrics, peer) else {
                    // Over the cap: closed now, before it holds anything
                    // but this moment's descriptor.
                    drop(stream);
                    continue;
                };
                metrics.open.inc();
                let slot = Slot { _permit: permit, open: metrics.open.clone() };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(
                    slot,
                    stream,
                    peer,
                    acceptor.clone(),
                    Arc::clone(&shared),
                    stop_rx.clone(),
                ));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drain(connections).await;
    Ok(())
}

/// A place under `--web.max-connections` for a new connection: `Some(None)`
/// without a cap, `None` (counted as refused) over it.
fn admit(
    cap: Option<&Arc<Semaphore>>,
    metrics: &ConnectionMetrics,
    peer: std::net::SocketAddr,
) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
    let Some(cap) = cap else {
        return Some(None);
    };
    match Arc::clone(cap).try_acquire_owned() {
        Ok(p) => Some(Some(p)),
        Err(_) => {
            metrics.refused.inc();
            tracing::debug!(peer = %peer, "over --web.max-connections; connection closed");
            None
        }
    }
}

/// Let the connections still open finish, for at most the grace period.
async fn drain(mut connections: JoinSet<()>) {
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "requests still running after the shutdown grace period; dropping them"
        );
        connections.shutdown().await;
    }
}

/// Errors from `accept` that concern one connection are skipped; others
/// (out of file descriptors, say) get a pause before the next try.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        tracing::debug!(error = %e, "accepting a connection");
        return;
    }
    tracing::error!(error = %e, "accepting connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the server is gone: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    _slot: Slot,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    match acceptor {
        None => http(stream, peer, shared, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let tls = tokio::select! {
                r = handshake => r,
                () = stopped(&mut stop) => return,
            };
            match tls {
                Ok(Ok(tls)) => http(tls, peer, shared, stop).await,
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
            }
        }
    }
}

/// hyper's smallest read buffer.
const MIN_BUF: usize = 8192;

async fn http<I>(io: I, peer: SocketAddr, shared: Arc<Shared>, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, Infallible>(shared.handle(req, peer).await) }
    });
    let limits = &shared.limits;
    // A request head must arrive whole, within the budget and in time; the
    // buffer cap also bounds what hyper queues of a response at once.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF))
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        () = stopped(&mut stop) => None,
    };
    let result = match done {
        Some(r) => r,
        None => {
            // Finish the request in flight, take no more.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "HTTP connection ended with an error");
    }
}
