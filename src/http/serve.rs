//! Connections, plain or TLS: accepted up to a cap, closed when a request
//! head is too slow or a kept-alive connection idles too long, and drained
//! within a deadline at shutdown. Request bodies are bounded in time by the
//! write guard ([`super::load_shed`]).
//!
//! One watchdog task checks every connection a few times per timeout rather
//! than a timer per connection, so thousands of sockets cost one task. A
//! connection's phase is read from two places: bytes seen by its socket
//! (`Tracked`) and requests seen by its service (a guard held while the
//! router handles one).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::exposition::{Closed, HttpMetrics};

/// How long connections may take and how many may be open (`--web.*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most; at the cap the longest idle one is closed
    /// for a new one, and a new one is refused only when all are busy.
    pub max_connections: usize,
    /// From accept (or the first byte after an idle spell) to a whole
    /// request head, TLS handshake included.
    pub read_header_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// At shutdown, connections still open after this are closed.
    pub shutdown_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 512,
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish for at
/// most `limits.shutdown_timeout` and closes what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    metrics: HttpMetrics,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let limits = within_file_limit(limits);
    let table = Arc::new(Table::new(limits, metrics));
    let acceptor = tls.map(TlsAcceptor::from);
    let (drain, draining) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let watchdog = tokio::spawn(watch_over(table.clone()));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
            // Reap finished connections as we go.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most often: make room, back off.
                tracing::warn!(error = %e, open = table.len(), "accept failed (open-file limit?); closing the longest idle connection");
                table.evict();
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if table.len() >= limits.max_connections && !table.evict() {
            table.metrics.closed(Closed::Refused);
            table.warn_full();
            continue;
        }
        let conn = table.open();
        let router = router.clone();
        let acceptor = acceptor.clone();
        let draining = draining.clone();
        let table = table.clone();
        tasks.spawn(async move {
            run(stream, acceptor, router, conn.clone(), draining).await;
            table.close(&conn);
            tracing::trace!(%peer, "connection ended");
        });
    }
    drop(listener);
    let _ = drain.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = table.close_all(Closed::Shutdown);
        tracing::warn!(
            connections = left,
            timeout = ?limits.shutdown_timeout,
            "connections still open at the end of the shutdown grace period were closed"
        );
        while tasks.join_next().await.is_some() {}
    }
    watchdog.abort();
    Ok(())
}

/// Open files kept for what is not a connection: the state directory, log
/// files, source sockets, the process's own.
const OTHER_FILES: u64 = 128;

/// `limits` with the connection cap lowered to what the open-file limit
/// allows: past it, accepting fails instead of evicting an idle connection.
fn within_file_limit(mut limits: ConnLimits) -> ConnLimits {
    let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) else {
        return limits;
    };
    let room = usize::try_from(soft.saturating_sub(OTHER_FILES).max(1)).unwrap_or(usize::MAX);
    if limits.max_connections > room {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_file_limit = soft,
            using = room,
            "--web.max-connections is above what the open-file limit allows; capped"
        );
        limits.max_connections = room;
    }
    limits
}

/// One connection: TLS handshake if any, then HTTP/1.1 until the client
/// leaves, the watchdog closes it, or a drain ends it gracefully.
async fn run(
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    conn: Arc<Conn>,
    mut draining: watch::Receiver<bool>,
) {
    let tracked = Tracked {
        inner: stream,
        conn: conn.clone(),
    };
    match acceptor {
        None => serve_http(tracked, router, conn, &mut draining).await,
        Some(acceptor) => {
            let tls = tokio::select! {
                tls = acceptor.accept(tracked) => tls,
                () = conn.close.notified() => return,
            };
            match tls {
                Ok(tls) => serve_http(tls, router, conn, &mut draining).await,
                Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
            }
        }
    }
}

async fn serve_http<S>(io: S, router: Router, conn: Arc<Conn>, draining: &mut watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let busy = conn.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let request = request.map(axum::body::Body::new);
        let handling = Handling::begin(busy.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(Request::from(request)).await;
            drop(handling);
            response.map_err(|e: Infallible| match e {})
        }
    });
    let http = hyper::server::conn::http1::Builder::new()
        // Head and idle times are the watchdog's.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(http);
    let mut graceful = false;
    loop {
        tokio::select! {
            ended = http.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.close.notified() => return,
            changed = draining.changed(), if !graceful => {
                if changed.is_err() || *draining.borrow() {
                    // Idle connections close now; a request in flight is
                    // answered first, with `Connection: close`.
                    http.as_mut().graceful_shutdown();
                    graceful = true;
                }
            }
        }
    }
}

/// Milliseconds on the server's own clock, from 1 so that 0 can mean "none".
#[derive(Debug, Clone, Copy)]
struct Epoch(Instant);

impl Epoch {
    fn now(self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }
}

/// What the watchdog knows of one connection.
struct Conn {
    /// Its key in the [`Table`].
    id: u64,
    epoch: Epoch,
    /// The last byte read or written, or the end of the last request.
    active: AtomicU64,
    /// When the request head being read began (accept, or the first byte
    /// after an idle spell); 0 while none is.
    head_since: AtomicU64,
    /// Requests being handled (more than one only when pipelined).
    busy: AtomicU32,
    /// Set once, when the exporter decides to close it.
    closing: AtomicBool,
    close: Notify,
}

impl Conn {
    /// Marks it active now; returns now.
    fn touch(&self) -> u64 {
        let now = self.epoch.now();
        self.active.store(now, Ordering::Relaxed);
        now
    }

    fn read(&self) {
        let now = self.touch();
        if self.busy.load(Ordering::Acquire) == 0 {
            let _ = self
                .head_since
                .compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Why the watchdog should close it at `now`, if it should.
    fn overdue(&self, now: u64, limits: &ConnLimits) -> Option<Closed> {
        if self.busy.load(Ordering::Acquire) > 0 || self.closing.load(Ordering::Relaxed) {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        let since = |t: u64| Duration::from_millis(now.saturating_sub(t));
        if head != 0 {
            (since(head) > limits.read_header_timeout).then_some(Closed::HeaderTimeout)
        } else {
            (since(self.active.load(Ordering::Relaxed)) > limits.idle_timeout)
                .then_some(Closed::IdleTimeout)
        }
    }

    /// When it last showed life, if it may be evicted (not busy).
    fn evictable_since(&self) -> Option<u64> {
        if self.busy.load(Ordering::Acquire) > 0 || self.closing.load(Ordering::Relaxed) {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        Some(if head != 0 {
            head
        } else {
            self.active.load(Ordering::Relaxed)
        })
    }
}

/// Held while the router handles a request.
struct Handling(Arc<Conn>);

impl Handling {
    fn begin(conn: Arc<Conn>) -> Handling {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.head_since.store(0, Ordering::Release);
        Handling(conn)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections.
struct Table {
    epoch: Epoch,
    limits: ConnLimits,
    metrics: HttpMetrics,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    /// When the cap was last reported full, to log it at most once a minute.
    warned: AtomicU64,
}

impl Table {
    fn new(limits: ConnLimits, metrics: HttpMetrics) -> Table {
        Table {
            epoch: Epoch(Instant::now()),
            limits,
            metrics,
            open: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            warned: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic elsewhere while holding it leaves the map itself whole.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn open(&self) -> Arc<Conn> {
        let now = self.epoch.now();
        let conn = Arc::new(Conn {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            epoch: self.epoch,
            active: AtomicU64::new(now),
            head_since: AtomicU64::new(now),
            busy: AtomicU32::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.lock().insert(conn.id, conn.clone());
        self.metrics.open.inc();
        conn
    }

    /// Forgets a connection that ended.
    fn close(&self, conn: &Conn) {
        if self.lock().remove(&conn.id).is_some() {
            self.metrics.open.dec();
        }
    }

    /// Asks `conn` to close for `reason`, counted once.
    fn shut(&self, conn: &Conn, reason: Closed) {
        if !conn.closing.swap(true, Ordering::AcqRel) {
            self.metrics.closed(reason);
            // A stored permit: the connection sees it even if not waiting yet.
            conn.close.notify_one();
        }
    }

    /// Closes the connection idle (or reading its head) the longest, to
    /// make room for a new one. False when every connection is busy.
    fn evict(&self) -> bool {
        let oldest = self
            .lock()
            .values()
            .filter_map(|c| Some((c.evictable_since()?, c.clone())))
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, conn)) => {
                self.shut(&conn, Closed::Evicted);
                self.warn_full();
                true
            }
            None => false,
        }
    }

    fn warn_full(&self) {
        let now = self.epoch.now();
        let last = self.warned.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 60_000)
            && self
                .warned
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                max_connections = self.limits.max_connections,
                "connection cap reached: the longest idle connections are closed for new ones (see amaze_http_connections_closed_total)"
            );
        }
    }

    /// Closes every connection; returns how many there were.
    fn close_all(&self, reason: Closed) -> usize {
        let all: Vec<Arc<Conn>> = self.lock().values().cloned().collect();
        for c in &all {
            self.shut(c, reason);
        }
        all.len()
    }
}

/// Closes connections past their head or idle deadline, a few times per
/// the shorter of the two.
async fn watch_over(table: Arc<Table>) {
    let shortest = table
        .limits
        .read_header_timeout
        .min(table.limits.idle_timeout);
    let tick = (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = table.epoch.now();
        let overdue: Vec<(Arc<Conn>, Closed)> = table
            .lock()
            .values()
            .filter_map(|c| Some((c.clone(), c.overdue(now, &table.limits)?)))
            .collect();
        for (conn, reason) in overdue {
            table.shut(&conn, reason);
        }
    }
}

/// A socket that tells its [`Conn`] when bytes move.
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
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
            self.conn.touch();
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
