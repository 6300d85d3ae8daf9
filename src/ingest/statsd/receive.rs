//! Receiving StatsD: a dedicated thread per datagram socket (UDP, Unix)
//! takes packets as fast as the kernel hands them over (with a large receive
//! buffer for bursts) and maps them to readings, while a task commits the
//! batches, several in flight so the journal groups them; the receiving
//! thread never waits for a commit unless the backlog is full. TCP
//! connections send newline-ended lines.

use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Carries, Mapper, Mapping, StartError, StatsdConfig, parser};
use crate::ingest::{Readings, Source, SourceContext};

/// Largest UDP payload.
const PACKET_BYTES: usize = 65_535;
/// Readings gathered before they are committed together.
const BATCH: usize = 4096;
/// Room for a full batch and the packet that fills it, so a batch is
/// never moved while it grows.
const BATCH_CAPACITY: usize = BATCH + 1024;
/// A batch waits at most this long for more readings.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// Batches read and not yet committed; past it the receiving thread waits
/// and the kernel buffer takes the burst.
const BACKLOG: usize = 64;
/// Commits in flight at once.
const IN_FLIGHT: usize = 4;
/// Receive buffer asked of the kernel per datagram socket.
const RECEIVE_BUFFER: usize = 32 << 20;
/// Longest line a TCP client may send; longer ones are dropped.
const TCP_LINE_BYTES: usize = 64 * 1024;
/// A TCP connection quiet this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(600);

/// The sockets of a StatsD source, bound at start so a taken address stops
/// the exporter's start.
pub struct Listeners {
    udp: std::net::UdpSocket,
    tcp: Option<TcpListener>,
    unix: Option<UnixDatagram>,
}

/// Binds every configured transport.
pub async fn bind(config: &StatsdConfig) -> Result<Listeners, StartError> {
    let at = |addr: String| move |source| StartError { addr, source };
    let udp = (|| {
        let udp = std::net::UdpSocket::bind(config.listen)?;
        udp.set_read_timeout(Some(BATCH_WAIT))?;
        grow_receive_buffer(&udp);
        tracing::info!(udp = %udp.local_addr()?, "statsd listening");
        Ok(udp)
    })()
    .map_err(at(config.listen.to_string()))?;
    let tcp = match config.tcp_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(at(addr.to_string()))?;
            if let Ok(bound) = l.local_addr() {
                tracing::info!(tcp = %bound, "statsd listening");
            }
            Some(l)
        }
        None => None,
    };
    let unix = match &config.unix_listen {
        Some(path) => Some(bind_unix(path).map_err(at(path.display().to_string()))?),
        None => None,
    };
    Ok(Listeners { udp, tcp, unix })
}

/// Binds a Unix datagram socket at `path`, replacing one a previous run left.
fn bind_unix(path: &std::path::Path) -> io::Result<UnixDatagram> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path)?;
    }
    let s = UnixDatagram::bind(path)?;
    s.set_read_timeout(Some(BATCH_WAIT))?;
    grow_receive_buffer(&s);
    tracing::info!(unix = %path.display(), "statsd listening");
    Ok(s)
}

/// Asks for a large receive buffer, beyond `rmem_max` when allowed (root).
fn grow_receive_buffer(socket: &impl AsRawFd) {
    let size = RECEIVE_BUFFER as libc::c_int;
    let set = |option| {
        // SAFETY: a valid socket, an int option and its length.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
}

/// A socket that receives whole datagrams.
trait Datagrams: Send + 'static {
    fn receive(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Datagrams for std::net::UdpSocket {
    fn receive(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

impl Datagrams for UnixDatagram {
    fn receive(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

/// The mappings in force; a reload that changes only them sends new ones
/// here, and every receiver applies them from its next packet on.
pub type LiveMappings = watch::Receiver<Arc<Vec<Mapping>>>;

/// Receives until shutdown; nothing a packet holds stops it.
pub async fn run(listeners: Listeners, mappings: LiveMappings, ctx: SourceContext) {
    let (tx, mut rx) = mpsc::channel::<Readings>(BACKLOG);
    let stop = Arc::new(AtomicBool::new(false));
    let carries = Carries::default();
    let mut threads = vec![datagrams(
        listeners.udp,
        &mappings,
        &carries,
        &ctx,
        &tx,
        &stop,
    )];
    if let Some(unix) = listeners.unix {
        threads.push(datagrams(unix, &mappings, &carries, &ctx, &tx, &stop));
    }
    let tcp = listeners.tcp.map(|l| {
        tokio::spawn(accept(
            l,
            mappings.clone(),
            carries.clone(),
            ctx.clone(),
            tx.clone(),
        ))
    });
    drop(tx);
    let mut shutdown = ctx.shutdown.clone();
    let mut commits = JoinSet::new();
    loop {
        let batch = tokio::select! {
            () = shutdown.wait() => break,
            b = rx.recv() => match b {
                Some(b) => b,
                None => break,
            },
        };
        while commits.len() >= IN_FLIGHT {
            commits.join_next().await;
        }
        commits.spawn(commit(ctx.clone(), batch));
    }
    // Stop receiving, then commit what was read.
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = tcp {
        t.abort();
    }
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    while let Ok(batch) = rx.try_recv() {
        commits.spawn(commit(ctx.clone(), batch));
    }
    while commits.join_next().await.is_some() {}
    tracing::info!("statsd stopped");
}

async fn commit(ctx: SourceContext, batch: Readings) {
    if let Err(e) = ctx.deliver(Source::Statsd, &batch, None).await {
        tracing::warn!(error = %e, dropped = batch.len(), "statsd deliveries not recorded");
    }
}

/// A thread that receives `socket`'s datagrams until `stop`.
fn datagrams(
    socket: impl Datagrams,
    live: &LiveMappings,
    carries: &Carries,
    ctx: &SourceContext,
    tx: &mpsc::Sender<Readings>,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (mut live, ctx, tx, stop) = (live.clone(), ctx.clone(), tx.clone(), stop.clone());
    let carries = carries.clone();
    std::thread::Builder::new()
        .name("amaze-statsd".into())
        .spawn(move || {
            // One byte more than a datagram may hold: a full buffer means
            // the kernel cut a longer one (possible on a Unix socket).
            let mut buf = vec![0u8; PACKET_BYTES + 1];
            let mut mappings = live.borrow_and_update().clone();
            let mut mapper = Mapper::new(carries.clone());
            let mut batch = Readings::with_capacity(BATCH_CAPACITY);
            let mut since = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match socket.receive(&mut buf) {
                    Ok(n) => {
                        ctx.metrics().statsd_packets.inc();
                        if live.has_changed().unwrap_or(false) {
                            mappings = live.borrow_and_update().clone();
                            mapper = Mapper::new(carries.clone());
                        }
                        if batch.is_empty() {
                            since = Instant::now();
                        }
                        let whole = if n > PACKET_BYTES {
                            // Only the lines that came whole; the cut one
                            // is counted, what followed it is lost.
                            ctx.refuse(Source::Statsd, crate::ingest::Reason::Truncated, 1);
                            memchr::memrchr(b'\n', &buf[..PACKET_BYTES]).map_or(0, |i| i + 1)
                        } else {
                            n
                        };
                        take(&mappings, &ctx, &mut mapper, &buf[..whole], &mut batch);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "statsd receive failed");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                if !batch.is_empty() && (batch.len() >= BATCH || since.elapsed() >= BATCH_WAIT) {
                    let full =
                        std::mem::replace(&mut batch, Readings::with_capacity(BATCH_CAPACITY));
                    if tx.blocking_send(full).is_err() {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
        })
        .expect("start a statsd thread")
}

/// Accepts TCP clients; each sends newline-ended lines. Its connections
/// end with it.
async fn accept(
    listener: TcpListener,
    live: LiveMappings,
    carries: Carries,
    ctx: SourceContext,
    tx: mpsc::Sender<Readings>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = connections.join_next() => continue,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (mut live, ctx, tx) = (live.clone(), ctx.clone(), tx.clone());
        let carries = carries.clone();
        connections.spawn(async move {
            let mut stream = stream;
            let mut mappings = live.borrow_and_update().clone();
            let mut mapper = Mapper::new(carries.clone());
            let mut held: Vec<u8> = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            // Past the start of a line too long to hold: dropped to its end.
            let mut skipping = false;
            loop {
                let n = match tokio::time::timeout(TCP_IDLE, stream.read(&mut chunk)).await {
                    Ok(Ok(0)) => {
                        // A last line without its newline, as statsd_exporter
                        // reads it.
                        if !skipping && !held.is_empty() {
                            let mut batch = Readings::default();
                            take(&mappings, &ctx, &mut mapper, &held, &mut batch);
                            if !batch.is_empty() {
                                let _ = tx.send(batch).await;
                            }
                        }
                        break;
                    }
                    Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => n,
                };
                let mut read = &chunk[..n];
                if skipping {
                    match memchr::memchr(b'\n', read) {
                        Some(end) => (read, skipping) = (&read[end + 1..], false),
                        None => continue,
                    }
                }
                held.extend_from_slice(read);
                // Whole lines only; a line past the limit is dropped.
                let end = held.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                let mut batch = Readings::default();
                ctx.metrics().statsd_packets.inc();
                if live.has_changed().unwrap_or(false) {
                    mappings = live.borrow_and_update().clone();
                    mapper = Mapper::new(carries.clone());
                }
                take(&mappings, &ctx, &mut mapper, &held[..end], &mut batch);
                held.drain(..end);
                if held.len() > TCP_LINE_BYTES {
                    ctx.refuse(Source::Statsd, crate::ingest::Reason::LineTooLong, 1);
                    held.clear();
                    skipping = true;
                }
                if !batch.is_empty() && tx.send(batch).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Parses and maps the lines of `packet` into `out`, counting the refused.
fn take(
    mappings: &[Mapping],
    ctx: &SourceContext,
    mapper: &mut Mapper,
    packet: &[u8],
    out: &mut Readings,
) {
    let mut line = parser::Line::default();
    for raw in parser::raw_lines(packet) {
        let result = parser::line_into(raw, &mut line)
            .map_err(parser::ParseError::reason)
            .and_then(|()| mapper.readings(mappings, &line, out));
        if let Err(reason) = result {
            ctx.refuse(Source::Statsd, reason, 1);
        }
    }
}
