//! Log tailing: files matched by globs, followed across rotation, each line
//! read into a delivery.
//!
//! Files are polled, known by device and inode so a rename does not lose
//! them: a rotated file is read to its end while it is still open, and a new
//! file at the path is read from its start. A file that shrinks below the read
//! position was truncated in place (copytruncate) and is read again from 0.
//!
//! Each batch of lines is recorded with a [`Mark`] of every file's read
//! position, in the same log record and snapshot as its deliveries. A restart
//! resumes from the recorded mark: no line is skipped or counted twice, even
//! after `kill -9`, and no per-line id is needed.

pub mod line;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Reading, Source, SourceContext};
use crate::recorder::Mark;
use line::{LineError, LineReader, LineSpec};

/// Bytes read from one file per poll, so one busy file cannot starve the rest.
const READ_CHUNK: usize = 1 << 18;

/// Where a file seen for the first time is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Its first byte: every line it holds.
    Beginning,
    /// Its end: only lines written from now on.
    End,
}

/// One `sources.log_tail` entry: which files, how to read their lines.
#[derive(Debug, Clone)]
pub struct LogTailConfig {
    /// Names the checkpoint file; unique among log sources.
    pub name: String,
    /// Glob patterns of the files to follow.
    pub paths: Vec<String>,
    /// Where to start in files found at the first start (no checkpoint).
    pub start_at: StartAt,
    /// How each line becomes a reading.
    pub spec: LineSpec,
    /// How often files are checked for new lines.
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

/// Every followed file's read position: the content of this source's mark.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    files: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    dev: u64,
    ino: u64,
    offset: u64,
    /// Truncations seen, so a restart knows a shorter file was truncated.
    generation: u64,
    /// For reading a mark by eye; files are known by `dev` and `ino`.
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
    reader: LineReader,
    tracked: Vec<Tracked>,
    /// Offset and generation per file, as last recorded.
    checkpoint: HashMap<FileId, (u64, u64)>,
    first_scan: bool,
}

/// What one poll read.
#[derive(Default)]
pub struct Polled {
    /// Lines read as deliveries.
    pub readings: Vec<Reading>,
    /// Lines refused, by why.
    pub refused: Vec<LineError>,
    /// Each file's read position after this poll: committed once the
    /// readings are recorded.
    marks: Vec<(FileId, u64)>,
    /// The same positions as this source's mark, recorded with the readings.
    pub mark: Mark,
    /// Whether a file had more than one chunk waiting: poll again at once.
    pub more: bool,
}

impl Follower {
    /// A follower resuming at `mark`, the last one recorded for this source.
    pub fn new(config: LogTailConfig, mark: Option<&[u8]>) -> Follower {
        let checkpoint = mark
            .and_then(|b| match postcard::from_bytes::<Checkpoint>(b) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(name = %config.name, error = %e, "recorded log positions do not decode; starting as configured by start_at");
                    None
                }
            })
            .map(|c| {
                c.files
                    .into_iter()
                    .map(|e| ((e.dev, e.ino), (e.offset, e.generation)))
                    .collect()
            })
            .unwrap_or_default();
        Follower {
            reader: config.spec.reader(),
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
            out.more |= read(t, &mut self.reader, &mut out.readings, &mut out.refused);
        }
        out.marks = self.tracked.iter().map(|t| (t.id, t.offset)).collect();
        // Renamed away or deleted, and read to the end since: let go.
        self.tracked.retain(|t| t.missing < 2);
        out.mark = self.position();
        out
    }

    /// Every tracked file's read position, as this source's mark.
    fn position(&self) -> Mark {
        let checkpoint = Checkpoint {
            files: self
                .tracked
                .iter()
                .map(|t| Entry {
                    dev: t.id.0,
                    ino: t.id.1,
                    offset: t.offset,
                    generation: t.generation,
                    path: t.path.clone(),
                })
                .collect(),
        };
        Mark {
            source: mark_source(&self.config.name),
            // Plain integers and paths: encoding into a Vec cannot fail.
            position: postcard::to_allocvec(&checkpoint).unwrap_or_default(),
        }
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

    /// The lines of a poll are recorded (or held nothing to record).
    fn committed(&mut self, marks: &[(FileId, u64)]) {
        for (id, offset) in marks {
            if let Some(t) = self.tracked.iter_mut().find(|t| t.id == *id) {
                t.committed = *offset;
            }
        }
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
    reader: &mut LineReader,
    out: &mut Vec<Reading>,
    refused: &mut Vec<LineError>,
) -> bool {
    let from = t.offset + t.partial.len() as u64;
    if t.file.seek(SeekFrom::Start(from)).is_err() {
        return false;
    }
    // Straight after any partial line: the chunk is not copied again.
    let kept = t.partial.len();
    let n = match (&mut t.file)
        .take(READ_CHUNK as u64)
        .read_to_end(&mut t.partial)
    {
        Ok(n) => n,
        Err(e) => {
            t.partial.truncate(kept);
            tracing::warn!(path = %t.path.display(), error = %e, "cannot read log file");
            return false;
        }
    };
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &t.partial[start..]) {
        let bytes = &t.partial[start..start + end];
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if !bytes.is_empty() {
            match reader.read(bytes) {
                Ok(r) => out.push(r),
                Err(e) => refused.push(e),
            }
        }
        start += end + 1;
    }
    t.offset += start as u64;
    t.partial.drain(..start);
    n == READ_CHUNK
}

/// The name this source's mark is recorded under.
fn mark_source(name: &str) -> String {
    format!("log_tail/{name}")
}

/// Follows the files until shutdown. Reading the next lines overlaps
/// recording the previous ones, so both cores work.
pub async fn run(config: LogTailConfig, ctx: SourceContext) {
    let poll_interval = config.poll_interval;
    tracing::info!(name = %config.name, paths = ?config.paths, "log tail following");
    let mark = ctx.recorder().mark(&mark_source(&config.name));
    let mut follower = Follower::new(config, mark.as_deref());
    let mut shutdown = ctx.shutdown.clone();
    let mut inflight: Option<(Recording, Vec<(FileId, u64)>)> = None;
    loop {
        let Ok((f, polled)) = tokio::task::spawn_blocking(move || {
            let polled = follower.poll();
            (follower, polled)
        })
        .await
        else {
            return;
        };
        follower = f;
        if let Some((recording, marks)) = inflight.take()
            && !finish(recording, &marks, &mut follower).await
        {
            // Read everything after the last committed line again.
            follower.rewind();
            tokio::time::sleep(poll_interval).await;
            continue;
        }
        for e in &polled.refused {
            ctx.refuse(Source::LogTail, e.reason(), 1);
        }
        if polled.readings.is_empty() && polled.refused.is_empty() {
            // Nothing to record (blank lines at most): no need to move the mark.
            follower.committed(&polled.marks);
        } else {
            let ctx = ctx.clone();
            let (readings, mark) = (polled.readings, polled.mark);
            let recording =
                tokio::spawn(
                    async move { ctx.deliver(Source::LogTail, &readings, Some(mark)).await },
                );
            inflight = Some((recording, polled.marks));
        }
        if polled.more {
            continue;
        }
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
    if let Some((recording, marks)) = inflight.take() {
        finish(recording, &marks, &mut follower).await;
    }
    tracing::info!("log tail stopped");
}

type Recording = tokio::task::JoinHandle<Result<crate::recorder::Recorded, super::Refused>>;

/// Waits for a batch to be recorded; false if it was not.
async fn finish(recording: Recording, marks: &[(FileId, u64)], follower: &mut Follower) -> bool {
    match recording.await {
        Ok(Ok(_)) => {
            follower.committed(marks);
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "log lines not recorded; reading them again");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "log tail commit task failed");
            false
        }
    }
}
