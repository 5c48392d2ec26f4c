//! The accept loop and the life of one connection, with the limits that keep the endpoint up
//! when whoever can reach the port misbehaves:
//!
//! * at most `server.max_connections` connections at once: one over the cap is closed at once
//!   and counted (`webui_monitor_http_server_connections_rejected_total{reason="limit"}`);
//! * a TLS handshake and every request's header block must arrive within
//!   `server.header_read_timeout` (hyper's timer), which also closes a kept-alive connection
//!   that sends nothing more for that long;
//! * a connection on which no byte moves either way for `server.idle_timeout` is closed (a
//!   client that sends a request and never reads the answer);
//! * `accept()` errors (EMFILE, ENFILE, ENOBUFS, ECONNABORTED…) are counted, logged at most once
//!   a minute, and the loop waits [`ACCEPT_BACKOFF`] and goes on; only errors that say the
//!   listening socket itself is unusable end it (the daemon then exits, see `daemon.rs`).
use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use super::{Limits, Security, SecurityHandle, State, handle};
use hyper::{Request, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// Wait after an `accept()` error before the next `accept()`: a full file table frees up as
/// connections close, and retrying at once would spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per this long about `accept()` errors.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(60);

/// The endpoint's own metrics.
#[derive(Clone)]
pub struct ServerMetrics {
    pub open: IntGauge,
    pub rejected: IntCounterVec,
    pub closed: IntCounterVec,
    pub accept_errors: IntCounterVec,
    pub auth_failures: IntCounterVec,
}

impl ServerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            open: IntGauge::new(
                "webui_monitor_http_server_connections_open",
                "Connections to the metrics endpoint open now",
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "webui_monitor_http_server_connections_rejected_total",
                    "Connections closed as soon as accepted; reason=limit: server.max_connections were open",
                ),
                &["reason"],
            )?,
            closed: IntCounterVec::new(
                Opts::new(
                    "webui_monitor_http_server_connections_closed_total",
                    "Connections the server closed on a client: header_timeout (headers or TLS \
                     handshake not complete within server.header_read_timeout), idle_timeout, \
                     tls_handshake (failed handshake)",
                ),
                &["reason"],
            )?,
            accept_errors: IntCounterVec::new(
                Opts::new(
                    "webui_monitor_http_server_accept_errors_total",
                    "accept() errors on the metrics socket, by errno (emfile, enfile, enobufs, \
                     enomem, econnaborted, other); the server waits 100 ms and goes on",
                ),
                &["reason"],
            )?,
            auth_failures: IntCounterVec::new(
                Opts::new(
                    "webui_monitor_http_server_auth_failures_total",
                    "Requests refused with 401: missing (no basic-auth credentials) or invalid \
                     (wrong user or password)",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(metrics.open.clone()))?;
        registry.register(Box::new(metrics.rejected.clone()))?;
        registry.register(Box::new(metrics.closed.clone()))?;
        registry.register(Box::new(metrics.accept_errors.clone()))?;
        registry.register(Box::new(metrics.auth_failures.clone()))?;
        // Every series exists from the start, so `rate()` and alerts see 0 before the first event.
        metrics.rejected.with_label_values(&["limit"]);
        for reason in ["header_timeout", "idle_timeout", "tls_handshake"] {
            metrics.closed.with_label_values(&[reason]);
        }
        for reason in ["missing", "invalid"] {
            metrics.auth_failures.with_label_values(&[reason]);
        }
        Ok(metrics)
    }
}

/// What every connection task shares.
struct Shared {
    state: Arc<State>,
    limits: Limits,
    security: SecurityHandle,
    metrics: ServerMetrics,
}

/// Serves on `listener` until the listening socket fails; returns that error.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    server: super::Server,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(server.limits.max_connections));
    let shared = Arc::new(Shared {
        state,
        limits: server.limits,
        security: server.security,
        metrics: server.metrics,
    });
    let mut last_logged: Option<Instant> = None;
    let mut unlogged = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                if listener_is_broken(&error) {
                    return Err(error);
                }
                shared
                    .metrics
                    .accept_errors
                    .with_label_values(&[errno_label(&error)])
                    .inc();
                unlogged += 1;
                if last_logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                    log::warn!(
                        "metrics endpoint: accept() failed {unlogged} time(s) since the last \
                         report, last: {error}; retrying every {ACCEPT_BACKOFF:?} (EMFILE/ENFILE: \
                         raise the file limit, LimitNOFILE= in the unit; see \
                         webui_monitor_http_server_accept_errors_total)"
                    );
                    last_logged = Some(Instant::now());
                    unlogged = 0;
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            shared.metrics.rejected.with_label_values(&["limit"]).inc();
            drop(stream);
            continue;
        };
        let security = shared.security.current();
        tokio::spawn(connection(
            stream,
            peer,
            permit,
            Arc::clone(&shared),
            security,
        ));
    }
}

/// Errors after which `accept()` can never succeed again: the socket is gone or not one.
/// Every other error concerns one pending connection or a resource that frees up.
fn listener_is_broken(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT)
    )
}

fn errno_label(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        Some(libc::EMFILE) => "emfile",
        Some(libc::ENFILE) => "enfile",
        Some(libc::ENOBUFS) => "enobufs",
        Some(libc::ENOMEM) => "enomem",
        Some(libc::ECONNABORTED) => "econnaborted",
        _ => "other",
    }
}

/// Decrements the open-connection gauge however the task ends.
struct OpenGuard(IntGauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    security: Arc<Security>,
) {
    shared.metrics.open.inc();
    let _open = OpenGuard(shared.metrics.open.clone());
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    };
    let closed = |reason: &str| shared.metrics.closed.with_label_values(&[reason]).inc();
    match &security.tls {
        None => http(io, peer, activity, &shared, &security).await,
        Some(acceptor) => {
            match tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(io)).await
            {
                Ok(Ok(tls)) => http(tls, peer, activity, &shared, &security).await,
                Ok(Err(error)) => {
                    closed("tls_handshake");
                    log::debug!("metrics endpoint: TLS handshake with {peer} failed: {error}");
                }
                Err(_) => closed("header_timeout"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: &Arc<Shared>,
    security: &Arc<Security>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let for_service = (Arc::clone(shared), Arc::clone(security));
    let service = service_fn(move |request: Request<Incoming>| {
        let (shared, security) = for_service.clone();
        async move {
            Ok::<_, std::convert::Infallible>(
                handle(
                    &request,
                    &shared.state,
                    security.auth.as_ref(),
                    &shared.metrics,
                )
                .await,
            )
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = shared.limits.idle_timeout;
    loop {
        let deadline = activity.last() + idle;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    if error.is_timeout() {
                        shared.metrics.closed.with_label_values(&["header_timeout"]).inc();
                    }
                    log::debug!("metrics endpoint: connection from {peer}: {error}");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if activity.last() + idle <= Instant::now() {
                    shared.metrics.closed.with_label_values(&["idle_timeout"]).inc();
                    log::debug!("metrics endpoint: connection from {peer} idle for {idle:?}, closed");
                    return;
                }
            }
        }
    }
}

/// When a byte last moved on a connection.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
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

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream that records in [`Activity`] every read or write that moved bytes.
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
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{FromRawFd, IntoRawFd};

    use super::*;

    fn server() -> super::super::Server {
        server_with(Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
        })
    }

    fn server_with(limits: Limits) -> super::super::Server {
        super::super::Server {
            limits,
            security: SecurityHandle::new(&super::super::WebConfig::default()),
            metrics: ServerMetrics::register(&Registry::new()).unwrap(),
        }
    }

    /// A descriptor that is no socket makes `accept()` fail with ENOTSOCK for ever: the loop
    /// returns the error (the daemon then exits) instead of retrying.
    #[tokio::test]
    async fn a_broken_listening_socket_ends_the_loop_with_its_error() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        // Readable, so the runtime's readiness lets the loop call accept().
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        // SAFETY: the descriptor is owned (taken from `reader`) and open; the listener becomes
        // its only owner and closes it.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(reader.into_raw_fd()) };
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let state = Arc::new(State {
            registry: Registry::new(),
            ready: false.into(),
        });
        let error = serve(listener, state, server()).await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOTSOCK));
    }

    /// A client that stops sending in the middle of its headers, with a header timeout far
    /// away, is closed once nothing has moved for `idle_timeout`.
    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let idle = Duration::from_secs(1);
        let server = server_with(Limits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(600),
            idle_timeout: idle,
        });
        let metrics = server.metrics.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(State {
            registry: Registry::new(),
            ready: false.into(),
        });
        let serving = tokio::spawn(serve(listener, state, server));
        let mut client = TcpStream::connect(address).await.unwrap();
        client
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let sent = Instant::now();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(60), client.read(&mut buf))
            .await
            .expect("closed within a minute");
        assert_eq!(read.unwrap(), 0, "closed without an answer");
        assert!(sent.elapsed() >= idle, "{:?}", sent.elapsed());
        let closed = |reason: &str| metrics.closed.with_label_values(&[reason]).get();
        assert_eq!(closed("idle_timeout"), 1);
        assert_eq!(closed("header_timeout"), 0);
        // The task ends just after closing the socket.
        for _ in 0..100 {
            if metrics.open.get() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.open.get(), 0);
        serving.abort();
    }

    #[test]
    fn accept_errors_are_labelled_by_errno() {
        let cases = [
            (libc::EMFILE, "emfile", false),
            (libc::ENFILE, "enfile", false),
            (libc::ENOBUFS, "enobufs", false),
            (libc::ENOMEM, "enomem", false),
            (libc::ECONNABORTED, "econnaborted", false),
            (libc::EPROTO, "other", false),
            (libc::EBADF, "other", true),
            (libc::ENOTSOCK, "other", true),
        ];
        for (errno, label, broken) in cases {
            let error = io::Error::from_raw_os_error(errno);
            assert_eq!(errno_label(&error), label, "{error}");
            assert_eq!(listener_is_broken(&error), broken, "{error}");
        }
    }
}
