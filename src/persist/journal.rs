//! The journal: the one writer of the log and of the live recorder.
//!
//! Sources hand it admitted batches. One thread appends a whole group of
//! them to the log with one write and, if any asks for it, one fdatasync
//! (group commit), then applies them to the recorder in log order and
//! answers each. Applying in log order is what lets a snapshot name the log
//! position it holds. Config reloads pass through the same queue, so no batch
//! is ever applied under a catalog it was not admitted against.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use super::record;
use super::wal::{Relocated, Writer};
use crate::delivery::{Delivery, Event};
use crate::exposition::{Operation, StorageMetrics};
use crate::recorder::{Lsn, Mark, Recorded, Recorder};
use crate::sla::{Catalog, Durability, LiveCatalog};
use crate::window::Millis;

/// Batches waiting for the writer; beyond this, ingest sheds with 503.
const QUEUE: usize = 4096;
/// A group stops growing past this many bytes of records.
const GROUP_BYTES: usize = 8 << 20;
/// Async-durability records reach the disk within this.
pub const ASYNC_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// ...or once this many bytes of them wait, since the writer keeps them in
/// memory until they are synced.
const UNSYNCED_BYTES: usize = 16 << 20;

/// Why a batch was not recorded. Nothing of it was applied.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommitError {
    /// The config changed after the batch was admitted: admit it again.
    #[error("the config was reloaded while the batch was in flight")]
    Stale,
    /// The state directory cannot take writes (full, read-only, failing).
    #[error("the state directory cannot take writes: {0}")]
    Unavailable(String),
    /// The writer's queue is full: shed, retry shortly.
    #[error("the log writer is overloaded")]
    Overloaded,
    /// The writer has stopped.
    #[error("the exporter is shutting down")]
    Closed,
}

/// What one commit carries: deliveries, with how far the source that read
/// them had read, or open-delivery events; never both, so a log record
/// applies in one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// Deliveries, and the source's read position after them (a log tail's
    /// file offsets), recorded in the same log record.
    Deliveries {
        /// Admitted deliveries, in the order read.
        deliveries: Vec<Delivery>,
        /// Where the source resumes after them.
        mark: Option<Mark>,
    },
    /// Open-delivery events, applied in order.
    Events(Vec<Event>),
}

impl Batch {
    /// Deliveries without a mark.
    pub fn deliveries(deliveries: Vec<Delivery>) -> Batch {
        Batch::Deliveries {
            deliveries,
            mark: None,
        }
    }

    /// Deliveries or events it holds.
    pub fn len(&self) -> usize {
        match self {
            Batch::Deliveries { deliveries, .. } => deliveries.len(),
            Batch::Events(events) => events.len(),
        }
    }

    /// Whether it holds nothing to record: no item and no mark.
    pub fn is_empty(&self) -> bool {
        match self {
            Batch::Deliveries { deliveries, mark } => deliveries.is_empty() && mark.is_none(),
            Batch::Events(events) => events.is_empty(),
        }
    }

    /// Catalog indices of the SLAs it writes to, each once, ascending.
    pub fn slas(&self) -> Vec<usize> {
        let mut seen: Vec<usize> = match self {
            Batch::Deliveries { deliveries, .. } => deliveries.iter().map(|d| d.sla).collect(),
            Batch::Events(events) => events.iter().map(|e| e.sla).collect(),
        };
        seen.sort_unstable();
        seen.dedup();
        seen
    }
}

/// A batch ready for the writer: admitted against `catalog`, and encoded if
/// its SLAs' durability logs it.
pub struct Pending {
    catalog: Arc<Catalog>,
    batch: Batch,
    now: Millis,
    record: Vec<u8>,
    sync: bool,
}

impl Pending {
    /// Prepares `batch`, admitted against `catalog` at `now`. The strictest
    /// durability among its SLAs applies to the whole batch.
    pub fn new(catalog: Arc<Catalog>, batch: Batch, now: Millis) -> Pending {
        let durability = batch
            .slas()
            .into_iter()
            .map(|sla| catalog.slas[sla].durability)
            .min_by_key(|d| match d {
                Durability::Sync => 0,
                Durability::Async => 1,
                Durability::None => 2,
            })
            .unwrap_or(Durability::None);
        let mut record = Vec::new();
        if durability != Durability::None {
            let (deliveries, extras): (&[Delivery], _) = match &batch {
                Batch::Deliveries { deliveries, mark } => (
                    deliveries,
                    record::Extras {
                        mark: mark.as_ref(),
                        events: &[],
                    },
                ),
                Batch::Events(events) => (&[], record::Extras { mark: None, events }),
            };
            record::encode(&catalog, deliveries, now, extras, &mut record);
        }
        Pending {
            catalog,
            batch,
            now,
            record,
            sync: durability == Durability::Sync,
        }
    }

    /// Deliveries or events it holds.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether it holds nothing to record.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// What the writer tells the snapshotter.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// A group of this many bytes was logged.
    Logged(u64),
    /// The config changed: records logged before it would replay under the
    /// new one, so state should be snapshotted now.
    Reloaded,
}

enum Command {
    Commit(Pending, oneshot::Sender<Result<Recorded, CommitError>>),
    Reload(Arc<Catalog>, oneshot::Sender<Result<(), String>>),
    Close(oneshot::Sender<()>),
    /// Makes the writer panic, as a bug in it would.
    #[cfg(test)]
    Panic,
}

/// What the writer tells the snapshotter about the state it applied.
pub struct Progress {
    /// Every log record up to here is applied.
    pub applied: AtomicU64,
    /// Bumped by every change of state, logged or not.
    pub changes: AtomicU64,
}

impl Progress {
    pub fn new(applied: Lsn) -> Self {
        Progress {
            applied: AtomicU64::new(applied),
            changes: AtomicU64::new(0),
        }
    }
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: SyncSender<Command>,
    live: Arc<ArcSwap<Recorder>>,
    /// Becomes true if the writer thread dies (a panic: a bug).
    dead: tokio::sync::watch::Receiver<bool>,
}

impl Journal {
    /// Starts the writer thread over `writer`, applying to the recorder in
    /// `live`; reloads put their catalog in force in `catalog` first, so a
    /// batch admitted against it is never stale.
    /// `before_reload` snapshots the state a reload is about to change: a
    /// reload whose snapshot fails does not take effect, so no record logged
    /// before it is ever replayed under the new config.
    pub fn start(
        live: Arc<ArcSwap<Recorder>>,
        catalog: LiveCatalog,
        writer: Writer,
        progress: Arc<Progress>,
        metrics: StorageMetrics,
        on_change: impl Fn(Change) + Send + 'static,
        before_reload: impl FnMut() -> Result<(), String> + Send + 'static,
    ) -> std::io::Result<(Journal, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let thread = Committer {
            live: live.clone(),
            catalog,
            writer,
            progress,
            metrics,
            on_change: Box::new(on_change),
            before_reload: Box::new(before_reload),
            last_sync: Instant::now(),
            buf: Vec::new(),
            faulted: false,
        };
        let (died, dead) = tokio::sync::watch::channel(false);
        let writable = thread.metrics.writable.clone();
        writable.set(1);
        let handle = std::thread::Builder::new()
            .name("amaze-journal".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| thread.run(rx));
                if std::panic::catch_unwind(run).is_err() {
                    // The panic itself was printed by the panic hook.
                    writable.set(0);
                    tracing::error!(
                        "the log writer stopped; the exporter exits so its service manager restarts it (the log holds every acknowledged write)"
                    );
                    let _ = died.send(true);
                }
            })?;
        Ok((Journal { tx, live, dead }, handle))
    }

    /// Whether the writer thread is running (or ended by [`Journal::close`]).
    pub fn alive(&self) -> bool {
        !*self.dead.borrow()
    }

    /// Resolves if the writer thread dies; never otherwise.
    pub async fn died(&self) {
        let mut dead = self.dead.clone();
        if dead.wait_for(|d| *d).await.is_err() {
            // The thread ended normally (closed): it will not die now.
            std::future::pending::<()>().await;
        }
    }

    /// Makes the writer thread panic (tests of what follows).
    #[cfg(test)]
    pub fn inject_panic(&self) {
        let _ = self.tx.try_send(Command::Panic);
    }

    /// The recorder of the current config.
    pub fn recorder(&self) -> Arc<Recorder> {
        self.live.load_full()
    }

    /// Logs and applies a batch; resolves once it is as durable as its SLAs ask.
    pub async fn commit(&self, pending: Pending) -> Result<Recorded, CommitError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Command::Commit(pending, reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(CommitError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(CommitError::Closed),
        }
        answer.await.unwrap_or(Err(CommitError::Closed))
    }

    /// Switches to `catalog`, keeping the state of every SLA it still names,
    /// once the state before it is snapshotted; `Unavailable` (nothing
    /// changed) when that snapshot cannot be written.
    pub async fn reload(&self, catalog: Arc<Catalog>) -> Result<(), CommitError> {
        let (reply, done) = oneshot::channel();
        self.send(Command::Reload(catalog, reply)).await?;
        done.await
            .map_err(|_| CommitError::Closed)?
            .map_err(CommitError::Unavailable)
    }

    /// Writes out and syncs everything queued, then stops the writer thread.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Close(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Sends a control command, waiting for room rather than shedding it.
    async fn send(&self, mut command: Command) -> Result<(), CommitError> {
        loop {
            match self.tx.try_send(command) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(c)) => {
                    command = c;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(CommitError::Closed),
            }
        }
    }
}

struct Committer {
    live: Arc<ArcSwap<Recorder>>,
    catalog: LiveCatalog,
    writer: Writer,
    progress: Arc<Progress>,
    metrics: StorageMetrics,
    /// Tells the snapshotter what changed, so it can decide to run early.
    on_change: Box<dyn Fn(Change) + Send>,
    /// Snapshots the state before a reload changes it.
    before_reload: Box<dyn FnMut() -> Result<(), String> + Send>,
    last_sync: Instant,
    buf: Vec<u8>,
    /// Whether the last write failed: recovery and failure are logged once.
    faulted: bool,
}

type Reply = oneshot::Sender<Result<Recorded, CommitError>>;

impl Committer {
    fn run(mut self, rx: Receiver<Command>) {
        let mut group: Vec<(Pending, Reply)> = Vec::new();
        // Who asked to close, answered once the log is synced.
        let mut closing = None;
        'serve: loop {
            let first = match rx.recv_timeout(ASYNC_SYNC_INTERVAL / 4) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    self.sync_async();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break 'serve,
            };
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Commit(p, reply) => {
                        bytes += p.record.len();
                        group.push((p, reply));
                    }
                    Command::Reload(catalog, done) => {
                        self.flush(&mut group);
                        // Every record so far is applied under the old
                        // config: snapshot it, so none is replayed under the
                        // new one after a crash.
                        if let Err(e) = self
                            .sync()
                            .map_err(|e| e.to_string())
                            .and_then(|()| (self.before_reload)())
                        {
                            let _ = done.send(Err(e));
                            continue 'serve;
                        }
                        // Batches admitted against it are queued after this
                        // command, so none of them is stale.
                        self.catalog.set(catalog.clone());
                        let old = self.live.load_full();
                        self.live.store(Arc::new(old.reconfigure(catalog)));
                        self.progress.changes.fetch_add(1, Ordering::Release);
                        (self.on_change)(Change::Reloaded);
                        let _ = done.send(Ok(()));
                    }
                    Command::Close(done) => {
                        self.flush(&mut group);
                        closing = Some(done);
                        break 'serve;
                    }
                    #[cfg(test)]
                    Command::Panic => panic!("injected writer panic"),
                }
                if bytes < GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.flush(&mut group);
            self.sync_async();
        }
        if let Err(e) = self.writer.sync() {
            tracing::error!(error = %e, "final log sync failed");
        }
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    /// Logs, syncs and applies one group, then answers every batch in it.
    fn flush(&mut self, group: &mut Vec<(Pending, Reply)>) {
        if group.is_empty() {
            return;
        }
        let recorder = self.live.load_full();
        let (fresh, stale): (Vec<_>, Vec<_>) = group
            .drain(..)
            .partition(|(p, _)| Arc::ptr_eq(&p.catalog, recorder.catalog()));
        for (_, reply) in stale {
            let _ = reply.send(Err(CommitError::Stale));
        }
        self.buf.clear();
        let mut sync = false;
        for (p, _) in &fresh {
            self.buf.extend_from_slice(&p.record);
            sync |= p.sync;
        }
        let end = match self.write(sync) {
            Ok(end) => end,
            Err(reason) => {
                for (_, reply) in fresh {
                    let _ = reply.send(Err(CommitError::Unavailable(reason.clone())));
                }
                return;
            }
        };
        let mut lsn = end - self.buf.len() as Lsn;
        for (p, reply) in fresh {
            let logged = (!p.record.is_empty()).then(|| {
                lsn += p.record.len() as Lsn;
                lsn
            });
            let recorded = match &p.batch {
                Batch::Deliveries { deliveries, mark } => {
                    if let Some(mark) = mark {
                        recorder.apply_mark(mark, lsn, logged.is_some());
                    }
                    recorder.record(deliveries, p.now, logged)
                }
                Batch::Events(events) => recorder.apply_events(events, p.now, logged),
            };
            let _ = reply.send(Ok(recorded));
        }
        self.progress.applied.store(end, Ordering::Release);
        self.progress.changes.fetch_add(1, Ordering::Release);
    }

    /// Appends the group's records and syncs if asked. Returns the log end.
    /// On failure nothing of the group is in the log.
    fn write(&mut self, sync: bool) -> Result<Lsn, String> {
        if self.buf.is_empty() {
            return Ok(self.writer.lsn());
        }
        let end = self.writer.append(&self.buf).map_err(|e| {
            self.metrics.error(Operation::Append);
            self.fault(&e)
        })?;
        self.metrics.written.inc_by(self.buf.len() as u64);
        self.metrics.wal_bytes.add(self.buf.len() as i64);
        (self.on_change)(Change::Logged(self.buf.len() as u64));
        if !sync {
            // An append only succeeds with nothing left in doubt.
            self.recovered();
        }
        // Async records wait in memory for their sync too: bound them.
        if (sync || self.writer.unsynced_bytes() >= UNSYNCED_BYTES)
            && let Err(e) = self.sync()
        {
            if sync {
                // Refused, so it must not come back at replay.
                self.writer.retract(self.buf.len());
                self.metrics.wal_bytes.sub(self.buf.len() as i64);
                return Err(self.fault(&e));
            }
            // Logged and about to be applied: it waits in memory with the
            // others until the disk takes it.
            self.fault(&e);
        }
        Ok(end)
    }

    /// Syncs the log. A failure the writer got past by moving its tail to
    /// a new segment is counted and logged, but the records are on disk.
    fn sync(&mut self) -> std::io::Result<()> {
        match self.writer.sync() {
            Ok(relocated) => {
                match relocated {
                    Some(Relocated {
                        cause: Some(cause),
                        segment,
                    }) => {
                        self.metrics.error(Operation::Sync);
                        tracing::warn!(
                            error = %cause,
                            segment,
                            "log sync failed; its unsynced records were written again to a new segment and synced"
                        );
                    }
                    Some(Relocated {
                        cause: None,
                        segment,
                    }) => tracing::info!(
                        segment,
                        "the records left unsynced by the failure were written again to a new segment and synced"
                    ),
                    None => {}
                }
                self.metrics.syncs.inc();
                self.last_sync = Instant::now();
                self.recovered();
                Ok(())
            }
            Err(e) => {
                self.metrics.error(Operation::Sync);
                self.last_sync = Instant::now();
                Err(e)
            }
        }
    }

    /// Syncs what async-durability batches left unsynced once it is due,
    /// and retries a log whose tail is waiting to be written again.
    fn sync_async(&mut self) {
        if self.writer.dirty()
            && self.last_sync.elapsed() >= ASYNC_SYNC_INTERVAL
            && let Err(e) = self.sync()
        {
            self.fault(&e);
        }
    }

    /// Ends a fault, if any, once the log takes writes again.
    fn recovered(&mut self) {
        if std::mem::replace(&mut self.faulted, false) {
            self.metrics.writable.set(1);
            tracing::info!("state directory takes writes again; ingest resumed");
        }
    }

    fn fault(&mut self, e: &std::io::Error) -> String {
        let reason = format!("{e}");
        if !std::mem::replace(&mut self.faulted, true) {
            self.metrics.writable.set(0);
            tracing::error!(
                error = %reason,
                unsynced_bytes = self.writer.unsynced_bytes(),
                "cannot write the log; ingest answers 503 until the disk recovers, and records already acknowledged wait in memory to be written again"
            );
        }
        reason
    }
}
