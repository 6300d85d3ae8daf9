//! Durable state (DESIGN.md §5): write-ahead log, snapshots, and recovery from both.
//!
//! Layout of the state directory:
//! `lock` (held while running), `snapshot-<lsn>.snap` (newest two), and
//! `wal/<lsn>.wal` segments holding every record since the older snapshot.

pub mod atomic_file;
#[cfg(test)]
mod golden;
mod journal;
mod offline;
mod record;
mod snapshot;
mod wal;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

pub use journal::{Batch, CommitError, Journal, Pending};
pub use offline::Offline;
pub use record::RECORD_VERSION;
pub use snapshot::SNAPSHOT_VERSION;
pub use wal::Cut;

use journal::{Change, Progress};

use crate::clock::Clock;
use crate::exposition::{Operation, StorageMetrics};
use crate::recorder::{Lsn, Recorder};
use crate::sla::LiveCatalog;

/// Where state lives and how often it is snapshotted.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory.
    pub path: PathBuf,
    /// A snapshot is written at least this often while state changes.
    pub snapshot_interval: Duration,
    /// ...and whenever this many log bytes were written since the last one,
    /// which bounds both disk use and replay time.
    pub snapshot_log_bytes: u64,
}

/// Why the state directory cannot be used; the exporter does not start.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// It cannot be created or read.
    #[error("cannot use state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error(
        "state directory {0} is in use by another amaze-exporter; give each its own --storage.path"
    )]
    /// Another exporter holds its lock.
    Locked(PathBuf),
    /// Its newest snapshot is of a format this build does not read.
    #[error(transparent)]
    Snapshot(#[from] snapshot::LoadError),
    /// Its log cannot be read back.
    #[error("cannot replay the log: {0}")]
    Replay(#[from] wal::ReplayError<record::RecordError>),
    /// A storage thread could not start.
    #[error("cannot start the storage threads: {0}")]
    Thread(std::io::Error),
}

/// What a start found on disk.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The snapshot loaded, if any.
    pub snapshot: Option<Restored>,
    /// Log records replayed after it.
    pub records: u64,
    /// Deliveries those records held.
    pub deliveries: u64,
    /// Logged deliveries of SLAs or labels the config no longer has.
    pub dropped: u64,
    /// What was cut off a torn or corrupt log tail.
    pub cut: Option<Cut>,
    /// How long recovery took.
    pub duration: Duration,
}

/// The snapshot a start restored.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// Its file.
    pub path: PathBuf,
    /// The log position it holds state up to.
    pub lsn: Lsn,
    /// When it was written.
    pub taken_at: crate::window::Millis,
}

/// The open state directory: the journal plus the snapshotter behind it.
pub struct Storage {
    journal: Journal,
    snapshots: SyncSender<Trigger>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: Option<File>,
}

enum Trigger {
    Now,
    Final(std::sync::mpsc::Sender<()>),
    /// Stop without a snapshot.
    Stop,
}

impl Storage {
    /// Opens `options.path`, restores the newest snapshot, replays the log
    /// after it under the catalog in force in `live`, drops what has aged
    /// out by now, and starts the writer, which puts reloads in force there.
    pub fn open(
        options: &Options,
        live: LiveCatalog,
        clock: Arc<dyn Clock>,
        metrics: StorageMetrics,
    ) -> Result<(Storage, Recovery), StorageError> {
        let catalog = live.get();
        let started = Instant::now();
        let dir = options.path.clone();
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&wal_dir).map_err(|source| StorageError::Dir {
            path: wal_dir.clone(),
            source,
        })?;
        let lock = lock(&dir)?;
        if let Err(e) = atomic_file::remove_leftovers(&dir) {
            tracing::warn!(error = %e, "cannot remove temp files left by a crash");
        }

        let mut recovery = Recovery::default();
        let loaded = snapshot::load_newest(&dir)?;
        let (recorder, from) = match loaded {
            Some(s) => {
                metrics.snapshot_time.set(s.taken_at as f64 / 1000.0);
                if let Ok(m) = fs::metadata(&s.path) {
                    metrics.snapshot_bytes.set(to_i64(m.len()));
                }
                recovery.snapshot = Some(Restored {
                    path: s.path,
                    lsn: s.lsn,
                    taken_at: s.taken_at,
                });
                (Recorder::restore(catalog.clone(), s.slas, s.marks), s.lsn)
            }
            None => (Recorder::new(catalog.clone()), 0),
        };
        let end = wal::replay(&wal_dir, from, |lsn, payload| {
            let replayed = record::decode(payload, &catalog)?;
            recovery.deliveries += replayed.deliveries.len() as u64;
            recovery.dropped += replayed.dropped;
            if let Some(mark) = &replayed.mark {
                recorder.apply_mark(mark, lsn, true);
            }
            recorder.record(&replayed.deliveries, replayed.now, Some(lsn));
            recorder.apply_events(&replayed.events, replayed.now, Some(lsn));
            Ok(())
        })?;
        recorder.advance(clock.now());
        recovery.records = end.records;
        recovery.cut = end.cut;
        recovery.duration = started.elapsed();
        if let Some(Cut { bytes, why }) = end.cut {
            tracing::warn!(bytes, why, "cut the log's tail: it was not a whole record");
        }
        if recovery.dropped > 0 {
            tracing::warn!(
                deliveries = recovery.dropped,
                "logged deliveries of SLAs or labels no longer configured were dropped"
            );
        }
        metrics
            .recovery_duration
            .set(recovery.duration.as_secs_f64());
        metrics.recovery_records.set(to_i64(recovery.records));
        metrics
            .recovery_cut
            .set(to_i64(recovery.cut.map_or(0, |c| c.bytes)));
        metrics.wal_bytes.set(to_i64(wal::disk_bytes(&wal_dir)));

        let recorders = Arc::new(ArcSwap::from_pointee(recorder));
        let progress = Arc::new(Progress::new(end.lsn));
        let (snapshots, triggers) = std::sync::mpsc::sync_channel(1);
        let logged = AtomicU64::new(0);
        let on_change = {
            let (snapshots, limit) = (snapshots.clone(), options.snapshot_log_bytes);
            move |change| {
                let due = match change {
                    Change::Logged(bytes) => {
                        logged.fetch_add(bytes, Ordering::Relaxed) + bytes >= limit
                    }
                    Change::Reloaded => true,
                };
                if due {
                    logged.store(0, Ordering::Relaxed);
                    // Full means one is already asked for.
                    let _ = snapshots.try_send(Trigger::Now);
                }
            }
        };
        // The writer snapshots through it before a reload takes effect, the
        // snapshot thread on its timer; one at a time.
        let shared: Arc<Mutex<Option<Snapshotter>>> = Arc::new(Mutex::new(None));
        let before_reload = {
            let shared = shared.clone();
            move || match lock_snapshotter(&shared).as_mut() {
                Some(s) => s.take(),
                None => Ok(()),
            }
        };
        let (journal, writer_thread) = Journal::start(
            recorders.clone(),
            live,
            wal::Writer::new(&wal_dir, end.lsn),
            progress.clone(),
            metrics.clone(),
            on_change,
            before_reload,
        )
        .map_err(StorageError::Thread)?;
        *lock_snapshotter(&shared) = Some(Snapshotter {
            dir,
            wal_dir,
            live: recorders,
            progress,
            clock,
            metrics,
            writer: journal.clone(),
            taken: None,
            failing: false,
        });
        let interval = options.snapshot_interval;
        let snapshot_thread = std::thread::Builder::new()
            .name("amaze-snapshot".into())
            .spawn(move || run_snapshots(&shared, triggers, interval))
            .map_err(StorageError::Thread)?;
        Ok((
            Storage {
                journal,
                snapshots,
                threads: Mutex::new(vec![writer_thread, snapshot_thread]),
                _lock: lock,
            },
            recovery,
        ))
    }

    /// The journal every write goes through.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Resolves if the log writer dies: the exporter should then exit
    /// non-zero, since it can record nothing more.
    pub async fn writer_died(&self) {
        self.journal.died().await;
    }

    /// Drains the writer, writes a final snapshot and stops both threads.
    /// After the writer died, no snapshot is written: the state in memory
    /// may hold half a batch, and the log (replayed at the next start) is
    /// what counts.
    pub async fn close(&self) {
        self.journal.close().await;
        if !self.journal.alive() {
            tracing::warn!(
                "no final snapshot: the log writer died; the next start replays the log"
            );
            let _ = self.snapshots.try_send(Trigger::Stop);
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        if self.snapshots.send(Trigger::Final(done)).is_ok() {
            let _ = tokio::task::spawn_blocking(move || finished.recv()).await;
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Takes the directory's lock so two exporters never share one log. A
/// read-only directory cannot be locked; it is used anyway (ingest answers
/// 503 until it is writable).
fn lock(dir: &Path) -> Result<Option<File>, StorageError> {
    let path = dir.join("lock");
    let file = match File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .or_else(|_| File::open(&path))
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot create the lock file; going on unlocked");
            return Ok(None);
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Locked(dir.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::warn!(error = %e, "cannot lock the state directory; going on unlocked");
            Ok(Some(file))
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes snapshots on a timer or when asked, and prunes what they cover.
struct Snapshotter {
    dir: PathBuf,
    wal_dir: PathBuf,
    live: Arc<ArcSwap<Recorder>>,
    progress: Arc<Progress>,
    clock: Arc<dyn Clock>,
    metrics: StorageMetrics,
    /// Whose state is snapshotted only while it lives.
    writer: Journal,
    /// `Progress::changes` when the last snapshot was taken.
    taken: Option<u64>,
    /// Whether the last snapshot failed: failure and recovery are logged once.
    failing: bool,
}

fn lock_snapshotter(
    m: &Mutex<Option<Snapshotter>>,
) -> std::sync::MutexGuard<'_, Option<Snapshotter>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The snapshot thread: a snapshot on the timer or when asked.
fn run_snapshots(
    shared: &Mutex<Option<Snapshotter>>,
    triggers: Receiver<Trigger>,
    interval: Duration,
) {
    let take = || {
        if let Some(s) = lock_snapshotter(shared).as_mut() {
            // Failures are logged and counted inside.
            let _ = s.take();
        }
    };
    loop {
        match triggers.recv_timeout(interval) {
            Ok(Trigger::Now) | Err(RecvTimeoutError::Timeout) => take(),
            Ok(Trigger::Final(done)) => {
                take();
                let _ = done.send(());
                return;
            }
            Ok(Trigger::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Snapshotter {
    /// Writes a snapshot if state changed since the last one.
    fn take(&mut self) -> Result<(), String> {
        let changes = self.progress.changes.load(Ordering::Acquire);
        // A writer that died may have applied half a batch.
        if self.taken == Some(changes) || !self.writer.alive() {
            return Ok(());
        }
        // The position first, then the recorder: every record up to `lsn`
        // was applied to this recorder or an older one it took state from.
        let lsn = self.progress.applied.load(Ordering::Acquire);
        let recorder = self.live.load_full();
        let started = Instant::now();
        let writer = self.writer.clone();
        let written = snapshot::write(&self.dir, &recorder, lsn, self.clock.now(), || {
            writer.alive()
        });
        match written {
            Ok(bytes) => {
                self.taken = Some(changes);
                if std::mem::replace(&mut self.failing, false) {
                    tracing::info!("snapshots are written again");
                }
                let took = started.elapsed();
                self.metrics.snapshot_bytes.set(to_i64(bytes));
                self.metrics.snapshot_duration.set(took.as_secs_f64());
                self.metrics
                    .snapshot_time
                    .set(self.clock.now() as f64 / 1000.0);
                tracing::debug!(lsn, bytes, took = ?took, "snapshot written");
                let pruned = snapshot::prune(&self.dir)
                    .and_then(|oldest| oldest.map_or(Ok(0), |o| wal::prune(&self.wal_dir, o)));
                if let Err(e) = pruned {
                    tracing::warn!(error = %e, "cannot remove old snapshots or log segments");
                }
                self.metrics
                    .wal_bytes
                    .set(to_i64(wal::disk_bytes(&self.wal_dir)));
                Ok(())
            }
            Err(e) => {
                self.metrics.error(Operation::Snapshot);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::error!(error = %e, "cannot write a snapshot; the log keeps growing until one succeeds (tried again at each interval)");
                }
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::config::Config;
    use crate::exposition::SelfMetrics;

    /// Issue 15, input 5: a writer that dies is loud. `writer_died`
    /// resolves (the app exits 1 on it), nothing pretends to take writes,
    /// and no snapshot of half-applied state is written.
    #[tokio::test]
    async fn a_dead_writer_is_noticed_and_leaves_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n";
        let catalog = LiveCatalog::new(Arc::new(Config::parse(yaml).unwrap().catalog()));
        let metrics = SelfMetrics::new().unwrap().storage;
        let options = Options {
            path: dir.path().to_owned(),
            snapshot_interval: Duration::from_secs(3600),
            snapshot_log_bytes: 1 << 30,
        };
        let (storage, _) = Storage::open(
            &options,
            catalog.clone(),
            Arc::new(SystemClock),
            metrics.clone(),
        )
        .unwrap();
        assert!(storage.journal().alive());
        assert_eq!(metrics.writable.get(), 1);

        storage.journal().inject_panic();
        tokio::time::timeout(Duration::from_secs(10), storage.writer_died())
            .await
            .expect("the death is noticed");
        assert!(!storage.journal().alive());
        assert_eq!(metrics.writable.get(), 0);
        let pending = Pending::new(catalog.get(), Batch::deliveries(Vec::new()), 0);
        assert_eq!(
            storage.journal().commit(pending).await,
            Err(CommitError::Closed)
        );
        storage.close().await;
        let snapshots = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
            })
            .count();
        assert_eq!(snapshots, 0);
    }
}
