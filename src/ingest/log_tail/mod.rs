//! Log tailing: files matched by globs, followed across rotation, each line
//! read into a delivery.
//!
//! Files are polled, known by device and inode so a rename does not lose
//! them: a rotated file is read to its end while it is still open, and a new
//! file at the path is read from its start. A file that shrinks below the read
//! position was truncated in place (copytruncate) and is read again from 0.
//!
//! Offsets are checkpointed in the state directory after each batch is
//! committed, so a restart never skips a line; each line's delivery id is its
//! file identity and offset, so lines read again after a crash between commit
//! and checkpoint are counted once.

pub mod line;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Reading, SourceContext};
use line::{LineError, LineSpec};

/// Source label on the ingest self-metrics.
pub const SOURCE: &str = "log";
/// Bytes read from one file per poll, so one busy file cannot starve the rest.
const READ_CHUNK: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone)]
pub struct LogTailConfig {
    /// Names the checkpoint file; unique among log sources.
    pub name: String,
    pub paths: Vec<String>,
    /// Where to start in files found at the first start (no checkpoint).
    pub start_at: StartAt,
    pub spec: LineSpec,
    pub poll_interval: Duration,
}

impl PartialEq for LogTailConfig {
    fn eq(&self, other: &Self) -> bool {
        // Regexes compare by their source text.
        let fmt = |s: &LineSpec| match &s.format {
            line::Format::Regex(r) => r.as_str().to_owned(),
            line::Format::Json => "json".to_owned(),
        };
        self.name == other.name
            && self.paths == other.paths
            && self.start_at == other.start_at
            && self.poll_interval == other.poll_interval
            && fmt(&self.spec) == fmt(&other.spec)
            && self.spec.sla == other.spec.sla
            && self.spec.duration_field == other.spec.duration_field
            && self.spec.unit == other.spec.unit
            && self.spec.timestamp_field == other.spec.timestamp_field
            && self.spec.labels == other.spec.labels
    }
}

/// Device and inode: a file's identity across renames.
type FileId = (u64, u64);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    files: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    dev: u64,
    ino: u64,
    offset: u64,
    /// Truncations seen; part of line ids, since offsets repeat after one.
    #[serde(default)]
    generation: u64,
    path: PathBuf,
}

struct Tracked {
    id: FileId,
    path: PathBuf,
    file: File,
    /// Start of the first line not yet read into a reading.
    offset: u64,
    /// Up to here lines are committed.
    committed: u64,
    /// Bytes after `offset` read but not yet ended by a newline.
    partial: Vec<u8>,
    /// Scans in a row that did not find the file at any path.
    missing: u32,
    /// Truncations seen (see [`Entry::generation`]).
    generation: u64,
}

/// The files of one log source and how far each is read.
pub struct Follower {
    config: LogTailConfig,
    tracked: Vec<Tracked>,
    /// Offset and generation per file, as last checkpointed.
    checkpoint: HashMap<FileId, (u64, u64)>,
    first_scan: bool,
}

/// What one poll read.
#[derive(Default)]
pub struct Polled {
    pub readings: Vec<Reading>,
    pub refused: Vec<LineError>,
    /// Whether a file had more than one chunk waiting: poll again at once.
    pub more: bool,
}

impl Follower {
    pub fn new(config: LogTailConfig, state_dir: &Path) -> Follower {
        let checkpoint = std::fs::read(checkpoint_path(state_dir, &config.name))
            .ok()
            .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok())
            .map(|c| {
                c.files
                    .into_iter()
                    .map(|e| ((e.dev, e.ino), (e.offset, e.generation)))
                    .collect()
            })
            .unwrap_or_default();
        Follower {
            config,
            tracked: Vec::new(),
            checkpoint,
            first_scan: true,
        }
    }

    /// Finds files, notices rotation and truncation, and reads new lines.
    pub fn poll(&mut self) -> Polled {
        let found = self.scan();
        for (id, (path, len)) in &found {
            if let Some(t) = self.tracked.iter_mut().find(|t| t.id == *id) {
                t.missing = 0;
                t.path.clone_from(path);
                if *len < t.offset + t.partial.len() as u64 {
                    tracing::info!(path = %path.display(), "log file was truncated; reading it from the start");
                    t.offset = 0;
                    t.committed = 0;
                    t.partial.clear();
                    t.generation += 1;
                }
                continue;
            }
            let Ok(file) = File::open(path) else { continue };
            let (start, generation) = match self.checkpoint.get(id) {
                Some(&(o, g)) if o <= *len => (o, g),
                // Truncated while the exporter was down.
                Some(&(_, g)) => (0, g + 1),
                None if self.first_scan && self.config.start_at == StartAt::End => (*len, 0),
                None => (0, 0),
            };
            self.tracked.push(Tracked {
                id: *id,
                path: path.clone(),
                file,
                offset: start,
                committed: start,
                partial: Vec::new(),
                missing: 0,
                generation,
            });
        }
        for t in &mut self.tracked {
            if !found.contains_key(&t.id) {
                t.missing += 1;
            }
        }
        self.first_scan = false;
        let mut out = Polled::default();
        for t in &mut self.tracked {
            out.more |= read(t, &self.config.spec, &mut out.readings, &mut out.refused);
        }
        // Renamed away or deleted, and read to the end since: let go.
        self.tracked.retain(|t| t.missing < 2);
        out
    }

    /// Every file matching the globs, by identity, with its path and length.
    fn scan(&self) -> HashMap<FileId, (PathBuf, u64)> {
        let mut found = HashMap::new();
        for pattern in &self.config.paths {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                if let Ok(m) = std::fs::metadata(&path)
                    && m.is_file()
                {
                    found.insert((m.dev(), m.ino()), (path, m.len()));
                }
            }
        }
        found
    }

    /// The batch read since the last commit is recorded: checkpoint it.
    pub fn committed(&mut self, state_dir: &Path) -> std::io::Result<()> {
        for t in &mut self.tracked {
            t.committed = t.offset;
        }
        let checkpoint = Checkpoint {
            files: self
                .tracked
                .iter()
                .map(|t| Entry {
                    dev: t.id.0,
                    ino: t.id.1,
                    offset: t.committed,
                    generation: t.generation,
                    path: t.path.clone(),
                })
                .collect(),
        };
        crate::persist::atomic_file::write(state_dir, &checkpoint_file(&self.config.name), |w| {
            serde_json::to_writer(w, &checkpoint).map_err(std::io::Error::other)
        })
        .map(drop)
    }

    /// The batch was not recorded: read its lines again next time.
    pub fn rewind(&mut self) {
        for t in &mut self.tracked {
            t.offset = t.committed;
            t.partial.clear();
        }
    }
}

/// Reads what is new in `t` into readings; true if more is waiting.
fn read(
    t: &mut Tracked,
    spec: &LineSpec,
    out: &mut Vec<Reading>,
    refused: &mut Vec<LineError>,
) -> bool {
    let from = t.offset + t.partial.len() as u64;
    if t.file.seek(SeekFrom::Start(from)).is_err() {
        return false;
    }
    let mut chunk = Vec::with_capacity(64 * 1024);
    let n = match (&mut t.file)
        .take(READ_CHUNK as u64)
        .read_to_end(&mut chunk)
    {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(path = %t.path.display(), error = %e, "cannot read log file");
            return false;
        }
    };
    t.partial.extend_from_slice(&chunk);
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &t.partial[start..]) {
        let bytes = &t.partial[start..start + end];
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let at = t.offset + start as u64;
        match std::str::from_utf8(bytes) {
            Ok("") => {}
            Ok(text) => match spec.read(text) {
                Ok(mut r) => {
                    r.id = Some(format!(
                        "{:x}.{:x}.{:x}.{at:x}",
                        t.id.0, t.id.1, t.generation
                    ));
                    out.push(r);
                }
                Err(e) => refused.push(e),
            },
            Err(_) => refused.push(LineError::NoMatch),
        }
        start += end + 1;
    }
    t.offset += start as u64;
    t.partial.drain(..start);
    n == READ_CHUNK
}

fn checkpoint_file(name: &str) -> String {
    format!("log_tail-{name}.json")
}

fn checkpoint_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(checkpoint_file(name))
}

/// Every reason a log line can be refused for, for pre-created counters.
pub fn reasons() -> Vec<&'static str> {
    LineError::ALL.iter().map(|e| e.reason()).collect()
}

/// Follows the files until shutdown.
pub async fn run(config: LogTailConfig, state_dir: PathBuf, ctx: SourceContext) {
    let poll_interval = config.poll_interval;
    tracing::info!(name = %config.name, paths = ?config.paths, "log tail following");
    let mut follower = Some(Follower::new(config, &state_dir));
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let Some(mut f) = follower.take() else { return };
        let polled = tokio::task::spawn_blocking(move || {
            let polled = f.poll();
            (f, polled)
        })
        .await;
        let Ok((mut f, polled)) = polled else { return };
        for e in &polled.refused {
            ctx.metrics.rejected(SOURCE, e.reason(), 1);
        }
        if polled.readings.is_empty() {
            // Nothing to commit, but refused lines were consumed.
            f.committed_offsets_only();
        } else {
            match ctx.deliver(SOURCE, &polled.readings).await {
                Ok(_) => {
                    let dir = state_dir.clone();
                    let saved = tokio::task::spawn_blocking(move || {
                        let r = f.committed(&dir);
                        (f, r)
                    })
                    .await;
                    let Ok((g, r)) = saved else { return };
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "cannot write the log tail checkpoint");
                    }
                    f = g;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log lines not recorded; reading them again");
                    f.rewind();
                }
            }
        }
        follower = Some(f);
        if polled.more {
            continue;
        }
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
    tracing::info!("log tail stopped");
}

impl Follower {
    /// Only refused or empty lines were read: nothing to record, but do not
    /// read them again.
    fn committed_offsets_only(&mut self) {
        for t in &mut self.tracked {
            t.committed = t.offset;
        }
    }
}
