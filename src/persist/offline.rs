//! A state directory opened by a command instead of the server (`import`
//! writing into it, `report` reading it): no exporter may be using it, and
//! closing it writes the final snapshot.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{CommitError, Options, Pending, Storage};
use crate::clock::SystemClock;
use crate::exposition::SelfMetrics;
use crate::recorder::{Recorded, Recorder};
use crate::sla::{Catalog, LiveCatalog};

/// The open directory and the runtime its journal's commits run on.
pub struct Offline {
    storage: Storage,
    runtime: tokio::runtime::Runtime,
}

impl Offline {
    /// Opens `path` (restoring its snapshot and log) under `catalog`.
    /// Errors say why in words: the directory in use by an exporter, a
    /// state it cannot read, a runtime that cannot start.
    pub fn open(path: &Path, catalog: Arc<Catalog>) -> Result<Offline, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let metrics = SelfMetrics::new().map_err(|e| e.to_string())?;
        let options = Options {
            path: path.to_owned(),
            snapshot_interval: Duration::from_secs(3600),
            snapshot_log_bytes: 256 << 20,
        };
        let (storage, _) = Storage::open(
            &options,
            LiveCatalog::new(catalog),
            Arc::new(SystemClock),
            metrics.storage,
        )
        .map_err(|e| e.to_string())?;
        Ok(Offline { storage, runtime })
    }

    /// The state, as restored and written so far.
    pub fn recorder(&self) -> Arc<Recorder> {
        self.storage.journal().recorder()
    }

    /// Logs and records `pending`, as the server's commits do.
    pub fn commit(&self, pending: Pending) -> Result<Recorded, CommitError> {
        self.runtime
            .block_on(self.storage.journal().commit(pending))
    }

    /// Drains the log writer and writes the final snapshot.
    pub fn close(self) {
        self.runtime.block_on(self.storage.close());
    }
}
