//! Following files across rotation and truncation: which files a log source
//! reads, from where, and when each is let go.
//!
//! A file is known by its device and inode and recognised by a fingerprint
//! of its first bytes (as vector and filebeat do):
//! - Renamed away (rotated), it is read through its open handle until it
//!   has been idle for the rotation grace and a newer file is followed, so
//!   a writer that reopens late loses nothing.
//! - Truncated in place (copytruncate), shorter than the read position or
//!   with first bytes that no longer match, it is read again from 0, never
//!   from the middle of a line. What was written since the last read and is
//!   now only in the copy is read from the copy, found by the fingerprint.
//! - On restart, every recorded file is looked for again by inode and
//!   fingerprint in the watched directories, rotated names outside the
//!   globs included, and read from its recorded position.
//! - A line longer than the limit is skipped to its newline, counted, and
//!   never held whole in memory.

use std::collections::HashMap;
use std::fs::File;
use std::hash::Hasher;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::line::{LineError, LineReader};
use super::{LogTailConfig, StartAt};
use crate::ingest::Readings;
use crate::recorder::Mark;

/// Bytes read from one file per poll, so one busy file cannot starve the rest.
pub const READ_CHUNK: usize = 1 << 18;

/// Leading bytes a fingerprint covers once the file is that long.
const PRINT_BYTES: u64 = 1024;

/// Device and inode: a file's identity across renames.
type FileId = (u64, u64);

/// Positions kept of files that no watched path names any more.
const DORMANT: usize = 1_000;

/// A hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Print {
    len: u32,
    hash: u64,
}

impl Print {
    /// The print of `file`'s first bytes, up to [`PRINT_BYTES`] of `size`.
    fn of(file: &File, size: u64) -> Option<Print> {
        let len = size.min(PRINT_BYTES);
        let mut buf = vec![0; len as usize];
        file.read_exact_at(&mut buf, 0).ok()?;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(0, 0);
        h.write(&buf);
        Some(Print {
            len: len as u32,
            hash: h.finish(),
        })
    }

    /// Whether `file` still starts with the bytes this print was taken of.
    fn matches(self, file: &File, size: u64) -> bool {
        self.len == 0
            || (size >= u64::from(self.len)
                && Print::of(file, u64::from(self.len)).is_some_and(|p| p == self))
    }
}

/// Every followed file's read position: the content of this source's mark.
/// Written as the release before fingerprints wrote it, followed by an
/// [`Extension`], so either release reads the other's marks.
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

/// What fingerprinting added to each [`Entry`], in the same order.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Extension {
    files: Vec<EntryExt>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct EntryExt {
    print: Print,
    /// In the middle of a line too long to read, to be skipped to its end.
    skipping: bool,
}

/// A recorded position, from the mark.
#[derive(Debug, Clone)]
struct Saved {
    offset: u64,
    generation: u64,
    ext: Option<EntryExt>,
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
    print: Print,
    /// Skipping the rest of a line longer than the limit.
    skipping: bool,
    /// Found at a watched path in the last scan (else rotated away).
    in_glob: bool,
    /// Polls in a row that read nothing new.
    idle: u32,
    /// Truncations seen (see [`Entry::generation`]).
    generation: u64,
}

/// What one poll read.
#[derive(Default)]
pub struct Polled {
    /// Lines read as deliveries.
    pub readings: Readings,
    /// Lines refused, by why.
    pub refused: Vec<LineError>,
    /// Lines left out by `include`/`exclude`.
    pub skipped: u64,
    /// Each file's read position after this poll: committed once the
    /// readings are recorded.
    pub(super) marks: Vec<(FileId, u64)>,
    /// The same positions as this source's mark, recorded with the readings.
    pub mark: Mark,
    /// Whether a file had more than one chunk waiting: poll again at once.
    pub more: bool,
    /// Bytes read.
    pub read: u64,
    /// Bytes written to followed files and not read yet.
    pub behind: u64,
    /// Files followed.
    pub files: usize,
    /// Files rotated away since the last poll.
    pub rotations: u64,
    /// Files found truncated since the last poll.
    pub truncations: u64,
}

/// The files of one log source and how far each is read.
pub struct Follower {
    config: LogTailConfig,
    reader: LineReader,
    tracked: Vec<Tracked>,
    /// Recorded positions not yet matched to a file.
    checkpoint: HashMap<FileId, Saved>,
    first_scan: bool,
    /// No position was recorded: the very first start, where `start_at` applies.
    fresh: bool,
    /// Patterns that matched no file at the last scan, warned about once.
    unmatched: Vec<bool>,
    /// Patterns that have matched a file at some scan.
    matched: Vec<bool>,
    /// Matched files that could not be opened, warned about once each.
    unreadable: std::collections::HashSet<PathBuf>,
}

impl Follower {
    /// A follower resuming at `mark`, the last one recorded for this source.
    pub fn new(config: LogTailConfig, mark: Option<&[u8]>) -> Follower {
        let checkpoint = mark
            .and_then(|bytes| match decode(bytes) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(name = %config.name, error = %e, "recorded log positions do not decode; starting as configured by start_at");
                    None
                }
            })
            .unwrap_or_default();
        Follower {
            reader: config.spec.reader(),
            unmatched: vec![false; config.paths.len()],
            matched: vec![false; config.paths.len()],
            fresh: checkpoint.is_empty(),
            config,
            tracked: Vec::new(),
            checkpoint,
            first_scan: true,
            unreadable: Default::default(),
        }
    }

    /// Finds files, notices rotation and truncation, and reads new lines.
    pub fn poll(&mut self) -> Polled {
        let mut out = Polled::default();
        let found = self.scan();
        if self.first_scan {
            self.recover(&found);
        }
        for t in &mut self.tracked {
            let was = t.in_glob;
            t.in_glob = found.contains_key(&t.id);
            if let Some((path, _)) = found.get(&t.id) {
                t.path.clone_from(path);
            }
            if was && !t.in_glob {
                tracing::info!(path = %t.path.display(), "log file rotated away; reading it until it goes quiet");
                out.rotations += 1;
                // Quiet is counted from the rotation: a file quiet before
                // it may still get the writer's last lines (a late reopen).
                t.idle = 0;
            }
        }
        for (id, (path, size)) in &found {
            if !self.tracked.iter().any(|t| t.id == *id) {
                self.follow(*id, path, *size);
            }
        }
        self.first_scan = false;
        let max_line = self.config.max_line_bytes;
        for i in 0..self.tracked.len() {
            // One look at the size serves the truncation check, the read
            // and the fingerprint.
            let size = self.check_truncation(i, &mut out).unwrap_or(0);
            let t = &mut self.tracked[i];
            let before = t.offset + t.partial.len() as u64;
            out.more |= read(t, size, &mut self.reader, max_line, &mut out);
            let after = t.offset + t.partial.len() as u64;
            out.read += after - before;
            t.idle = if after > before {
                0
            } else {
                t.idle.saturating_add(1)
            };
            if t.print.len < PRINT_BYTES as u32
                && size > u64::from(t.print.len)
                && let Some(p) = Print::of(&t.file, size)
            {
                t.print = p;
            }
        }
        out.marks = self.tracked.iter().map(|t| (t.id, t.offset)).collect();
        self.let_go();
        out.behind = self
            .tracked
            .iter()
            .map(|t| {
                t.file
                    .metadata()
                    .map_or(0, |m| m.len())
                    .saturating_sub(t.offset + t.partial.len() as u64)
            })
            .sum();
        out.files = self.tracked.len();
        out.mark = self.position();
        out
    }

    /// Starts following a file found at a watched path.
    fn follow(&mut self, id: FileId, path: &Path, size: u64) {
        let file = match File::open(path) {
            Ok(f) => {
                self.unreadable.remove(path);
                f
            }
            Err(e) => {
                // Tried again at every poll; said once.
                if self.unreadable.insert(path.to_owned()) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open a matched log file; it is read once it can be");
                }
                return;
            }
        };
        let saved = self.checkpoint.remove(&id);
        let (offset, generation, skipping) = match saved {
            Some(s) => resume(&file, size, &s, path),
            // A file found at the very first start, with start_at: end.
            None if self.first_scan && self.fresh && self.config.start_at == StartAt::End => {
                (size, 0, false)
            }
            None => (0, 0, false),
        };
        self.tracked.push(Tracked {
            id,
            path: path.to_owned(),
            print: Print::of(&file, size).unwrap_or_default(),
            file,
            offset,
            committed: offset,
            partial: Vec::new(),
            skipping,
            in_glob: true,
            idle: 0,
            generation,
        });
    }

    /// At the first scan, finds every recorded file that no watched path
    /// names any more (rotated while the exporter was down) in the watched
    /// directories, by inode and fingerprint, and follows it from its
    /// recorded position.
    fn recover(&mut self, found: &HashMap<FileId, (PathBuf, u64)>) {
        let lost: Vec<FileId> = self
            .checkpoint
            .keys()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        if lost.is_empty() {
            return;
        }
        for path in self.neighbours() {
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            let id = (m.dev(), m.ino());
            if !lost.contains(&id) || !m.is_file() {
                continue;
            }
            let Some(saved) = self.checkpoint.remove(&id) else {
                continue;
            };
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let print = saved.ext.map(|e| e.print).unwrap_or_default();
            if !print.matches(&file, m.len()) {
                // The inode was reused for another file.
                continue;
            }
            tracing::info!(path = %path.display(), was = %saved.path.display(), "found a log file rotated while stopped; reading what it gained");
            let (offset, generation, skipping) = resume(&file, m.len(), &saved, &path);
            self.tracked.push(Tracked {
                id,
                path,
                print: Print::of(&file, m.len()).unwrap_or_default(),
                file,
                offset,
                committed: offset,
                partial: Vec::new(),
                skipping,
                in_glob: false,
                idle: 0,
                generation,
            });
        }
        for id in &lost {
            let Some(saved) = self.checkpoint.get(id) else {
                continue;
            };
            // Still where it was, but no longer watched (its path left the
            // config): its position is kept, so a path added back resumes
            // there instead of reading the file again.
            let still_there = std::fs::metadata(&saved.path)
                .is_ok_and(|m| m.is_file() && (m.dev(), m.ino()) == *id);
            if still_there && self.checkpoint.len() <= DORMANT {
                continue;
            }
            if let Some(saved) = self.checkpoint.remove(id) {
                tracing::warn!(path = %saved.path.display(), "a recorded log file is gone; lines it gained while the exporter was down are lost");
            }
        }
    }

    /// Reads again from 0 a file found truncated: shorter than its read
    /// position, or no longer starting with the bytes it started with.
    fn check_truncation(&mut self, i: usize, out: &mut Polled) -> Option<u64> {
        let t = &self.tracked[i];
        let size = t.file.metadata().map(|m| m.len()).ok()?;
        let shorter = size < t.offset + t.partial.len() as u64;
        if !shorter && t.print.matches(&t.file, size) {
            return Some(size);
        }
        tracing::info!(path = %t.path.display(), "log file was truncated; reading it from the start");
        out.truncations += 1;
        let old_print = t.print;
        let offset = t.offset;
        self.rescue(old_print, offset, i, out);
        let t = &mut self.tracked[i];
        t.offset = 0;
        t.committed = 0;
        t.partial.clear();
        t.skipping = false;
        t.generation += 1;
        t.print = Print::of(&t.file, size).unwrap_or_default();
        Some(size)
    }

    /// Reads the lines a copytruncate copied away before they were read:
    /// from `offset` to the end of the copy, the file in the watched
    /// directories that starts with the truncated file's first bytes.
    fn rescue(&mut self, print: Print, offset: u64, i: usize, out: &mut Polled) {
        if print.len == 0 {
            return;
        }
        let ids: Vec<FileId> = self.tracked.iter().map(|t| t.id).collect();
        for path in self.neighbours() {
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            if !m.is_file() || m.len() <= offset || ids.contains(&(m.dev(), m.ino())) {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if !print.matches(&file, m.len()) {
                continue;
            }
            tracing::info!(path = %path.display(), bytes = m.len() - offset, "read the lines a copytruncate copied away before they were read");
            let mut copy = Tracked {
                id: (m.dev(), m.ino()),
                path,
                file,
                offset,
                committed: offset,
                partial: Vec::new(),
                print,
                skipping: self.tracked[i].skipping,
                in_glob: false,
                idle: 0,
                generation: 0,
            };
            let (max_line, size) = (self.config.max_line_bytes, m.len());
            while read(&mut copy, size, &mut self.reader, max_line, out) {}
            // Followed like a rotated file, so a glob that matches the copy
            // does not read it again from the start.
            copy.committed = copy.offset;
            self.tracked.push(copy);
            return;
        }
    }

    /// Lets go of rotated files that have gone quiet for the rotation grace
    /// once a newer file is followed, or that were deleted.
    fn let_go(&mut self) {
        let grace = self.config.rotate_wait_polls();
        let newer = self.tracked.iter().any(|t| t.in_glob);
        self.tracked.retain(|t| {
            let deleted = t.file.metadata().is_ok_and(|m| m.nlink() == 0);
            let done = !t.in_glob && t.idle >= grace && (newer || deleted);
            if done {
                tracing::debug!(path = %t.path.display(), "let go of a rotated log file");
            }
            !done
        });
    }

    /// Every tracked file's read position, as this source's mark.
    fn position(&self) -> Mark {
        // Followed files, then the positions kept of files no path watches.
        let dormant = self
            .checkpoint
            .iter()
            .filter(|(id, _)| !self.tracked.iter().any(|t| t.id == **id));
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
                .chain(dormant.clone().map(|(id, s)| Entry {
                    dev: id.0,
                    ino: id.1,
                    offset: s.offset,
                    generation: s.generation,
                    path: s.path.clone(),
                }))
                .collect(),
        };
        let extension = Extension {
            files: self
                .tracked
                .iter()
                .map(|t| EntryExt {
                    print: t.print,
                    skipping: t.skipping,
                })
                .chain(dormant.map(|(_, s)| s.ext.unwrap_or_default()))
                .collect(),
        };
        // Plain integers and paths: encoding into a Vec cannot fail.
        let mut position = postcard::to_allocvec(&checkpoint).unwrap_or_default();
        position.extend(postcard::to_allocvec(&extension).unwrap_or_default());
        Mark {
            source: super::mark_source(&self.config.name),
            position,
        }
    }

    /// Every file matching the globs, by identity, with its path and length.
    fn scan(&mut self) -> HashMap<FileId, (PathBuf, u64)> {
        let mut found = HashMap::new();
        for (i, pattern) in self.config.paths.iter().enumerate() {
            let before = found.len();
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
            let none = found.len() == before;
            // Once a pattern has matched, a moment without a file is a
            // rotation between rename and create, not a mistake.
            if none && !self.unmatched[i] && !self.matched[i] {
                tracing::warn!(name = %self.config.name, pattern, "log path matches no file yet");
            }
            self.unmatched[i] = none;
            self.matched[i] |= !none;
        }
        found
    }

    /// Every file in the directories the globs watch: where rotated files go.
    fn neighbours(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pattern in &self.config.paths {
            let Some(dir) = Path::new(pattern).parent() else {
                continue;
            };
            let Ok(dirs) = glob::glob(&dir.to_string_lossy()) else {
                continue;
            };
            for dir in dirs.flatten() {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    out.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The lines of a poll are recorded (or held nothing to record).
    pub(super) fn committed(&mut self, marks: &[(FileId, u64)]) {
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

/// Where to resume a file recorded at `saved`: its offset when the file
/// still is what was recorded, else (truncated while the exporter was down)
/// from 0.
fn resume(file: &File, size: u64, saved: &Saved, path: &Path) -> (u64, u64, bool) {
    let print = saved.ext.map(|e| e.print).unwrap_or_default();
    if saved.offset <= size && print.matches(file, size) {
        let skipping = saved.ext.is_some_and(|e| e.skipping);
        return (saved.offset, saved.generation, skipping);
    }
    tracing::info!(path = %path.display(), "log file was truncated while the exporter was down; reading it from the start");
    (0, saved.generation + 1, false)
}

/// The recorded positions in a mark.
fn decode(bytes: &[u8]) -> Result<HashMap<FileId, Saved>, postcard::Error> {
    let (checkpoint, rest): (Checkpoint, _) = postcard::take_from_bytes(bytes)?;
    let extension: Extension = if rest.is_empty() {
        Extension::default()
    } else {
        postcard::from_bytes(rest)?
    };
    Ok(checkpoint
        .files
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let saved = Saved {
                offset: e.offset,
                generation: e.generation,
                ext: extension.files.get(i).copied(),
                path: e.path,
            };
            ((e.dev, e.ino), saved)
        })
        .collect())
}

/// Reads what is new in `t`, of the `size` bytes it was seen to hold, into
/// `out`; true if more is waiting. A line longer than `max_line` is skipped
/// to its newline and counted once.
fn read(
    t: &mut Tracked,
    size: u64,
    reader: &mut LineReader,
    max_line: usize,
    out: &mut Polled,
) -> bool {
    let from = t.offset + t.partial.len() as u64;
    // Only what the size says is there: a file whose size never grows
    // (`/proc/kmsg`) would block a read until the kernel logs something.
    if size <= from || t.file.seek(SeekFrom::Start(from)).is_err() {
        return false;
    }
    let want = (size - from).min(READ_CHUNK as u64);
    // Straight after any partial line: the chunk is not copied again.
    let kept = t.partial.len();
    let n = match (&mut t.file).take(want).read_to_end(&mut t.partial) {
        Ok(n) => n,
        Err(e) => {
            t.partial.truncate(kept);
            tracing::warn!(path = %t.path.display(), error = %e, "cannot read log file");
            return false;
        }
    };
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &t.partial[start..]) {
        if std::mem::replace(&mut t.skipping, false) {
            // The end of a line too long to read.
            start += end + 1;
            continue;
        }
        let bytes = &t.partial[start..start + end];
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.len() > max_line {
            out.refused.push(LineError::TooLong);
        } else if !bytes.is_empty() {
            match reader.read_into(bytes, &mut out.readings) {
                Ok(true) => {}
                Ok(false) => out.skipped += 1,
                Err(e) => out.refused.push(e),
            }
        }
        start += end + 1;
    }
    // An unended line already past the limit: drop what is held of it and
    // skip the rest as it arrives.
    if t.partial.len() - start > max_line {
        if !t.skipping {
            out.refused.push(LineError::TooLong);
        }
        t.skipping = true;
        start = t.partial.len();
    } else if t.skipping {
        start = t.partial.len();
    }
    t.offset += start as u64;
    t.partial.drain(..start);
    n == READ_CHUNK || from + (n as u64) < size
}
