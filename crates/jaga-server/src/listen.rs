//! The HTTP listener: hyper's HTTP/1 server with the limits that keep a
//! flood of idle or half-sent connections from taking the agent's file
//! descriptors (and with them `/metrics`, `/healthz`, the Engine connection
//! and the store):
//!
//! - at most [`Limits::max_connections`] connections at once, so that
//!   descriptors stay for the rest of the agent. One more is always accepted
//!   (the listen queue never fills): it takes the place of the oldest
//!   connection with no request in hand (idle, half-sent, or in its TLS
//!   handshake), which is closed; when every connection is busy with a
//!   request, the new one is closed at once. Both are counted. So a flood of
//!   idle connections cannot keep a scraper out;
//! - the request head must arrive within [`Limits::header_read_timeout`],
//!   counted from the connection's start or its previous response (so an idle
//!   keep-alive connection ends then too), and a TLS handshake within the same;
//! - a connection on which no byte moves for [`Limits::idle_timeout`] is
//!   closed (a body that never comes, a client that stops reading);
//! - a handler gets [`Limits::request_timeout`] before a 503.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::api::ApiError;
use crate::auth::Refusal;
use crate::tls::Tls;

/// What one connection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
}

impl Limits {
    /// The connection cap for a soft open-file limit: an eighth of it,
    /// between 16 and 4096, so the cgroup readers, the store and the Engine
    /// connection always keep most descriptors.
    pub fn connections_for_file_limit(open_files: u64) -> usize {
        usize::try_from(open_files / 8)
            .unwrap_or(usize::MAX)
            .clamp(16, 4096)
    }
}

/// Why a connection was closed by a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedOut {
    HeaderRead,
    Idle,
    TlsHandshake,
}

impl TimedOut {
    pub const ALL: [TimedOut; 3] = [Self::HeaderRead, Self::Idle, Self::TlsHandshake];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read",
            Self::Idle => "idle",
            Self::TlsHandshake => "tls_handshake",
        }
    }
}

/// Counters of the HTTP surface, shared by the listener and the handlers.
#[derive(Debug, Default)]
pub struct HttpCounters {
    open: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    evicted: AtomicU64,
    timed_out: [AtomicU64; 3],
    requests_timed_out: AtomicU64,
    tls_handshake_failures: AtomicU64,
    tls_reloads_ok: AtomicU64,
    tls_reloads_failed: AtomicU64,
    auth_missing: AtomicU64,
    auth_invalid: AtomicU64,
}

/// A reading of [`HttpCounters`], rendered as `jaga_http_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpStats {
    pub connections_open: u64,
    pub connections_accepted_total: u64,
    /// Closed at once because `max_connections` were open, all busy.
    pub connections_rejected_total: u64,
    /// Idle connections closed to make room for a new one.
    pub connections_evicted_total: u64,
    /// By [`TimedOut`] reason, in the order of [`TimedOut::ALL`].
    pub connections_timed_out_total: [u64; 3],
    pub requests_timed_out_total: u64,
    pub tls_handshake_failures_total: u64,
    pub tls_reloads_ok_total: u64,
    /// Reloads refused: the pair in use was kept.
    pub tls_reloads_failed_total: u64,
    pub auth_failures_missing_total: u64,
    pub auth_failures_invalid_total: u64,
}

impl HttpCounters {
    pub fn stats(&self) -> HttpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStats {
            connections_open: get(&self.open),
            connections_accepted_total: get(&self.accepted),
            connections_rejected_total: get(&self.rejected),
            connections_evicted_total: get(&self.evicted),
            connections_timed_out_total: [
                get(&self.timed_out[0]),
                get(&self.timed_out[1]),
                get(&self.timed_out[2]),
            ],
            requests_timed_out_total: get(&self.requests_timed_out),
            tls_handshake_failures_total: get(&self.tls_handshake_failures),
            tls_reloads_ok_total: get(&self.tls_reloads_ok),
            tls_reloads_failed_total: get(&self.tls_reloads_failed),
            auth_failures_missing_total: get(&self.auth_missing),
            auth_failures_invalid_total: get(&self.auth_invalid),
        }
    }

    /// Counts a reload of the TLS certificate (on SIGHUP).
    pub fn tls_reloaded(&self, ok: bool) {
        let counter = if ok {
            &self.tls_reloads_ok
        } else {
            &self.tls_reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auth_failed(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::Missing => &self.auth_missing,
            Refusal::Invalid => &self.auth_invalid,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn timed_out(&self, reason: TimedOut) {
        let index = TimedOut::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        self.timed_out[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// The open connections, oldest first, so that the oldest one with no
/// request in hand can make room for a new one.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Handle>>>,
}

/// What the accept loop knows of a connection.
#[derive(Default)]
struct Handle {
    requests_in_hand: AtomicUsize,
    evicted: AtomicBool,
    close: Notify,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Handle>>> {
        match self.open.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn insert(&self) -> (u64, Arc<Handle>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle::default());
        self.lock().insert(id, Arc::clone(&handle));
        (id, handle)
    }

    /// Asks the oldest connection with no request in hand to close; false
    /// when every one is busy.
    fn evict_oldest_idle(&self) -> bool {
        let open = self.lock();
        let oldest = open.values().find(|handle| {
            handle.requests_in_hand.load(Ordering::Relaxed) == 0
                && !handle.evicted.swap(true, Ordering::Relaxed)
        });
        match oldest {
            Some(handle) => {
                handle.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One open connection: counted and registered while it lives.
struct OpenConnection {
    id: u64,
    registry: Arc<Registry>,
    counters: Arc<HttpCounters>,
    _slot: OwnedSemaphorePermit,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request being answered on a connection.
struct InHand(Arc<Handle>);

impl InHand {
    fn new(handle: &Arc<Handle>) -> Self {
        handle.requests_in_hand.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(handle))
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.0.requests_in_hand.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` turns true, then lets the
/// open connections finish their request in hand. With `tls`, every
/// connection is TLS and the certificate is whatever `tls` holds now.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    counters: Arc<HttpCounters>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let app = with_deadline(router, limits.request_timeout, &counters);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors (EMFILE, ENFILE) or a connection reset
                // before it was taken: back off a moment rather than spin.
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match make_room(&slots, &registry, &counters).await {
                Some(slot) => slot,
                None => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, max = limits.max_connections, "HTTP connection refused: all open ones are busy");
                    drop(stream);
                    continue;
                }
            },
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        counters.open.fetch_add(1, Ordering::Relaxed);
        let (id, handle) = registry.insert();
        let open = OpenConnection {
            id,
            registry: Arc::clone(&registry),
            counters: Arc::clone(&counters),
            _slot: slot,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            app: app.clone(),
            http: http.clone(),
            limits,
            counters: Arc::clone(&counters),
            watcher: graceful.watcher(),
            handle,
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _open = open;
            connection.run(stream, tls).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Closes the oldest idle connection and takes its slot; `None` when every
/// connection has a request in hand.
async fn make_room(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    counters: &HttpCounters,
) -> Option<OwnedSemaphorePermit> {
    if !registry.evict_oldest_idle() {
        return None;
    }
    counters.evicted.fetch_add(1, Ordering::Relaxed);
    // The evicted connection's task drops it at its next poll.
    tokio::time::timeout(Duration::from_secs(1), Arc::clone(slots).acquire_owned())
        .await
        .ok()?
        .ok()
}

struct Connection {
    peer: SocketAddr,
    app: Router,
    http: http1::Builder,
    limits: Limits,
    counters: Arc<HttpCounters>,
    watcher: hyper_util::server::graceful::Watcher,
    handle: Arc<Handle>,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<Arc<Tls>>) {
        let handle = Arc::clone(&self.handle);
        let peer = self.peer;
        tokio::select! {
            () = self.serve(stream, tls) => {}
            () = handle.close.notified() => {
                tracing::debug!(%peer, "HTTP connection closed to make room for a new one");
            }
        }
    }

    async fn serve(self, stream: TcpStream, tls: Option<Arc<Tls>>) {
        let Some(tls) = tls else {
            return self.http(stream, false).await;
        };
        let handshake = tls.acceptor().accept(stream);
        match tokio::time::timeout(self.limits.header_read_timeout, handshake).await {
            Ok(Ok(stream)) => self.http(stream, true).await,
            Ok(Err(error)) => {
                self.counters
                    .tls_handshake_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
            }
            Err(_) => self.counters.timed_out(TimedOut::TlsHandshake),
        }
    }

    async fn http<S>(self, stream: S, tls: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let peer = self.peer;
        let app = self.app;
        let handle = self.handle;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(Transport { tls });
            let in_hand = InHand::new(&handle);
            let answer = tower::ServiceExt::oneshot(app.clone(), request);
            async move {
                let response = answer.await;
                drop(in_hand);
                response
            }
        });
        let connection = self.watcher.watch(self.http.serve_connection(io, service));
        tokio::select! {
            result = connection => match result {
                Ok(()) => {}
                Err(error) if error.is_timeout() => self.counters.timed_out(TimedOut::HeaderRead),
                Err(error) => tracing::debug!(%peer, %error, "HTTP connection ended with an error"),
            },
            () = activity.idle_for(self.limits.idle_timeout) => {
                self.counters.timed_out(TimedOut::Idle);
                tracing::debug!(%peer, "HTTP connection closed: idle");
            }
        }
    }
}

/// How a request came: handlers that set cookies mark them `Secure` under TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transport {
    pub tls: bool,
}

/// When bytes last moved on a connection.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that notes each read or write that moved bytes.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Every route of `router` answers 503 after `limit`.
fn with_deadline(router: Router, limit: Duration, counters: &Arc<HttpCounters>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        (limit, Arc::clone(counters)),
        request_deadline,
    ))
}

/// Middleware: a handler that takes longer than the limit gets a 503.
async fn request_deadline(
    State((limit, counters)): State<(Duration, Arc<HttpCounters>)>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            counters.requests_timed_out.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%path, ?limit, "HTTP request took too long: answered 503");
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                parameter: None,
                message: format!(
                    "the request took longer than {} (serve.http.request_timeout)",
                    humantime::format_duration(limit)
                ),
            }
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn client_that_stops_reading_is_closed_after_the_idle_timeout() {
        let big = "x".repeat(4 << 20);
        let app = Router::new().route("/big", get(move || async move { big.clone() }));
        let counters = Arc::new(HttpCounters::default());
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new());
        let connection = Connection {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            app,
            http,
            limits: Limits {
                max_connections: 1,
                header_read_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_secs(30),
            },
            counters: Arc::clone(&counters),
            watcher: graceful.watcher(),
            handle: Arc::default(),
        };
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"GET /big HTTP/1.1\r\nHost: jaga\r\n\r\n")
            .await
            .unwrap();
        // The client never reads: the response stalls after 1 KiB.
        tokio::time::timeout(Duration::from_secs(60), connection.http(server, false))
            .await
            .expect("closed by the idle timeout");
        assert_eq!(counters.stats().connections_timed_out_total, [0, 1, 0]);
        drop(client);
    }

    #[tokio::test]
    async fn new_connection_is_closed_at_once_when_every_open_one_is_busy() {
        use tokio::io::AsyncReadExt as _;
        let started = Arc::new(Notify::new());
        let in_handler = Arc::clone(&started);
        let slow = Router::new().route(
            "/slow",
            get(move || async move {
                in_handler.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let counters = Arc::new(HttpCounters::default());
        let (_stop, stopped) = watch::channel(false);
        let limits = Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(3600),
        };
        tokio::spawn(serve(
            listener,
            slow,
            limits,
            None,
            Arc::clone(&counters),
            stopped,
        ));
        let mut busy = TcpStream::connect(address).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: jaga\r\n\r\n")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), started.notified())
            .await
            .expect("the slow request is in hand");
        let mut refused = TcpStream::connect(address).await.unwrap();
        let mut seen = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), refused.read_to_end(&mut seen))
            .await
            .expect("closed at once")
            .ok();
        assert!(seen.is_empty());
        let stats = counters.stats();
        assert_eq!(
            (
                stats.connections_rejected_total,
                stats.connections_evicted_total
            ),
            (1, 0)
        );
        assert_eq!(stats.connections_open, 1);
    }

    #[tokio::test]
    async fn slow_handler_is_answered_503_after_the_request_timeout() {
        let counters = Arc::new(HttpCounters::default());
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        );
        let app = with_deadline(slow, Duration::from_millis(200), &counters);
        let request = Request::get("/slow")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tokio::time::timeout(
            Duration::from_secs(60),
            tower::ServiceExt::oneshot(app, request),
        )
        .await
        .expect("answered by the deadline")
        .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(counters.stats().requests_timed_out_total, 1);
    }
}
