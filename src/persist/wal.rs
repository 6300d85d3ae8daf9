//! Log segments on disk: append, sync, rotate, replay, cut a torn tail, prune.
//!
//! Segment files are named by the log position (LSN) of their first byte, so
//! a position is a file and an offset. When a segment's tail is in doubt
//! (a failed sync) writing goes on in a new segment, and replay reads each
//! segment only up to where the next one starts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::atomic_file::sync_dir;
use super::record::{Frame, frame};
use crate::recorder::Lsn;

/// A segment is closed for writing past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;
const SUFFIX: &str = ".wal";

fn segment_path(dir: &Path, start: Lsn) -> PathBuf {
    dir.join(format!("{start:020}{SUFFIX}"))
}

/// Start positions of every segment in `dir`, ascending.
pub fn segments(dir: &Path) -> io::Result<Vec<Lsn>> {
    let mut starts: Vec<Lsn> = fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_suffix(SUFFIX)?.parse().ok()
        })
        .collect();
    starts.sort_unstable();
    Ok(starts)
}

/// Appends records to the newest segment.
///
/// The log position never goes backwards: records are applied (and async
/// ones answered) once written, before they are synced, so a position once
/// returned must hold those records for good. The bytes written since the
/// last sync are therefore kept in memory too; when a write or a sync fails,
/// the segment's tail is in doubt (after a failed fdatasync the kernel may
/// have dropped its pages), and those bytes are written again into a new
/// segment that starts where the synced part ends. Until that succeeds the
/// writer takes nothing new.
pub struct Writer {
    dir: PathBuf,
    /// `None` until first needed, and while the tail is in doubt.
    file: Option<File>,
    start: Lsn,
    /// Bytes of the segment holding whole records.
    len: u64,
    /// Bytes of the segment known to be on disk.
    synced: u64,
    /// The segment's bytes `synced..len`, to write again after a failure.
    unsynced: Vec<u8>,
    /// Whether the segment's bytes past `synced` cannot be trusted, so the
    /// unsynced ones must go to a new segment before anything else.
    doubtful: bool,
}

/// A sync that succeeded only after the segment's tail was written again
/// into a new segment, because of `cause`.
#[derive(Debug)]
pub struct Relocated {
    /// What failed: this sync, or (`None`) an earlier write or sync,
    /// already reported when it failed.
    pub cause: Option<io::Error>,
    /// The new segment's start.
    pub segment: Lsn,
}

impl Writer {
    /// A writer that goes on at `end`, the position replay stopped at, in the
    /// segment that holds it (or a new one).
    pub fn new(dir: &Path, end: Lsn) -> Writer {
        let start = segments(dir)
            .ok()
            .and_then(|s| s.last().copied())
            .filter(|last| *last <= end)
            .unwrap_or(end);
        Writer {
            dir: dir.to_owned(),
            file: None,
            start,
            len: end - start,
            synced: end - start,
            unsynced: Vec::new(),
            doubtful: false,
        }
    }

    /// Position just past the last record written.
    pub fn lsn(&self) -> Lsn {
        self.start + self.len
    }

    /// Bytes written but not yet known to be on disk.
    pub fn unsynced_bytes(&self) -> usize {
        self.unsynced.len()
    }

    /// Whether an earlier failure left bytes that must be written again
    /// before the writer takes more.
    pub fn in_doubt(&self) -> bool {
        self.doubtful
    }

    /// Writes `bytes` (whole records) and returns the position past them.
    /// On failure nothing of `bytes` is in the log, and every position
    /// returned before still holds its records.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<Lsn> {
        if self.doubtful {
            self.relocate()?;
        }
        if self.len >= SEGMENT_BYTES {
            self.rotate()?;
        }
        let file = self.file()?;
        if let Err(e) = file.write_all(bytes) {
            // Part of `bytes` may be in the file: cut it, or, if even that
            // fails, leave the file behind (a new segment will start at
            // `synced`, and replay reads a segment only up to the next one).
            let cut = self.file.as_mut().map(|f| f.set_len(self.len));
            if !matches!(cut, Some(Ok(()))) {
                self.doubt();
            }
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.unsynced.extend_from_slice(bytes);
        Ok(self.lsn())
    }

    /// Takes back the last `n` bytes appended and not yet synced: the
    /// records of a group whose sync failed and that was refused. Best
    /// effort on disk; the position returned for them is given again.
    pub fn retract(&mut self, n: usize) {
        let n = n.min(self.unsynced.len());
        self.unsynced.truncate(self.unsynced.len() - n);
        self.len -= n as u64;
        if let Some(f) = self.file.as_mut()
            && f.set_len(self.len).is_err()
        {
            self.doubt();
        }
    }

    /// Makes everything appended so far durable. When the segment fails,
    /// the unsynced bytes are written again into a new segment and synced
    /// there: `Ok(Some(_))` says so. `Err` when that failed too; the bytes
    /// stay in memory and the next append or sync tries again.
    pub fn sync(&mut self) -> io::Result<Option<Relocated>> {
        if self.doubtful {
            let segment = self.relocate()?;
            return Ok(Some(Relocated {
                cause: None,
                segment,
            }));
        }
        if self.synced == self.len {
            return Ok(None);
        }
        let file = self.file()?;
        match file.sync_data() {
            Ok(()) => {
                self.synced = self.len;
                self.unsynced.clear();
                Ok(None)
            }
            Err(cause) => {
                self.doubt();
                let segment = self.relocate()?;
                Ok(Some(Relocated {
                    cause: Some(cause),
                    segment,
                }))
            }
        }
    }

    /// Whether bytes were appended since the last sync.
    pub fn dirty(&self) -> bool {
        self.synced != self.len || self.doubtful
    }

    /// Stops trusting the segment past `synced`.
    fn doubt(&mut self) {
        self.doubtful = true;
        self.file = None;
    }

    /// Writes the unsynced bytes into a new segment starting at the end of
    /// the synced ones, and syncs it. Returns the new segment's start.
    fn relocate(&mut self) -> io::Result<Lsn> {
        let start = self.start + self.synced;
        let path = segment_path(&self.dir, start);
        // Appending, as every segment is written; emptied first, in case an
        // earlier attempt left part of the tail here.
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(0)?;
        file.write_all(&self.unsynced)?;
        file.sync_data()?;
        sync_dir(&self.dir)?;
        self.start = start;
        self.len = self.unsynced.len() as u64;
        self.synced = self.len;
        self.unsynced.clear();
        self.doubtful = false;
        self.file = Some(file);
        Ok(start)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.sync()?.is_some() {
            // Already in a new segment, holding the old one's tail.
            return Ok(());
        }
        self.file = None;
        self.start += self.len;
        self.len = 0;
        self.synced = 0;
        Ok(())
    }

    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let path = segment_path(&self.dir, self.start);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // A segment left by an earlier run, cut at its last record.
            let len = file.metadata()?.len();
            if len != self.len {
                file.set_len(self.len)?;
            }
            sync_dir(&self.dir)?;
            self.synced = self.len;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("segment not open"))
    }
}

/// A torn or corrupt log tail cut off at a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Bytes cut.
    pub bytes: u64,
    /// Why they were not a whole record.
    pub why: &'static str,
}

/// Where replay stopped and what it had to cut.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplayEnd {
    /// Position after the last whole record; writing goes on here.
    pub lsn: Lsn,
    /// What was cut off a torn or corrupt tail.
    pub cut: Option<Cut>,
    pub records: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    #[error("cannot read log segment {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("log record at position {lsn}: {source}")]
    Apply { lsn: Lsn, source: E },
}

/// Feeds every whole record from position `from` on to `apply` (with the
/// position just past it), then cuts any torn or corrupt tail so writing can
/// go on after the last good record.
pub fn replay<E>(
    dir: &Path,
    from: Lsn,
    mut apply: impl FnMut(Lsn, &[u8]) -> Result<(), E>,
) -> Result<ReplayEnd, ReplayError<E>> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ReplayError::Io { path, source }
    };
    let starts = segments(dir).map_err(io_err(dir))?;
    let mut end = ReplayEnd {
        lsn: from,
        ..ReplayEnd::default()
    };
    for (n, &start) in starts.iter().enumerate() {
        let next = starts.get(n + 1).copied();
        if next.is_some_and(|next| next <= from) {
            continue;
        }
        let path = segment_path(dir, start);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        // A later segment takes over where it starts (see module docs).
        let limit = next.map_or(bytes.len(), |next| {
            (next.saturating_sub(start) as usize).min(bytes.len())
        });
        let mut at = from.saturating_sub(start) as usize;
        if start > end.lsn && end.lsn > from {
            tracing::warn!(
                missing = start - end.lsn,
                "log has a gap before segment {start}"
            );
        }
        let mut cut = None;
        while at < limit {
            match frame(&bytes[at..limit]) {
                Frame::Record { payload, framed } => {
                    let lsn = start + (at + framed) as Lsn;
                    apply(lsn, payload).map_err(|source| ReplayError::Apply {
                        lsn: start + at as Lsn,
                        source,
                    })?;
                    at += framed;
                    end.records += 1;
                }
                Frame::End => {
                    cut = Some((limit - at, "torn record at the end of the log"));
                    break;
                }
                Frame::Corrupt(why) => {
                    cut = Some((limit - at, why));
                    break;
                }
            }
        }
        end.lsn = end.lsn.max(start + at as Lsn);
        if let Some((bytes_cut, why)) = cut.filter(|(b, _)| *b > 0) {
            let later: Vec<Lsn> = starts[n + 1..].to_vec();
            let lost: u64 = bytes_cut as u64;
            cut_tail(dir, start, at as u64, &later).map_err(io_err(&path))?;
            end.cut = Some(Cut { bytes: lost, why });
            return Ok(end);
        }
    }
    Ok(end)
}

/// Cuts segment `start` at `len` and removes the segments after it.
fn cut_tail(dir: &Path, start: Lsn, len: u64, later: &[Lsn]) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(dir, start))?;
    file.set_len(len)?;
    file.sync_all()?;
    for &s in later {
        fs::remove_file(segment_path(dir, s))?;
    }
    sync_dir(dir)
}

/// Removes every segment that holds only records before `covered`; the
/// newest segment is always kept. Returns how many were removed.
pub fn prune(dir: &Path, covered: Lsn) -> io::Result<usize> {
    let starts = segments(dir)?;
    let mut removed = 0;
    for pair in starts.windows(2) {
        if pair[1] <= covered {
            fs::remove_file(segment_path(dir, pair[0]))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Bytes the log holds on disk.
pub fn disk_bytes(dir: &Path) -> u64 {
    segments(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| fs::metadata(segment_path(dir, *s)).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> Vec<u8> {
        let payload = vec![n; 10 + n as usize];
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn collect(dir: &Path, from: Lsn) -> (Vec<(Lsn, u8)>, ReplayEnd) {
        let mut seen = Vec::new();
        let end = replay::<()>(dir, from, |lsn, p| {
            seen.push((lsn, p[0]));
            Ok(())
        })
        .unwrap();
        (seen, end)
    }

    #[test]
    fn appended_records_replay_in_order_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0);
        let mut ends = Vec::new();
        for n in 1..=3 {
            ends.push(w.append(&record(n)).unwrap());
        }
        w.sync().unwrap();
        let (seen, end) = collect(dir.path(), 0);
        assert_eq!(seen, vec![(ends[0], 1), (ends[1], 2), (ends[2], 3)]);
        assert_eq!(end.lsn, ends[2]);
        let (seen, _) = collect(dir.path(), ends[0]);
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn torn_tail_is_cut_and_writing_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0);
        let first = w.append(&record(1)).unwrap();
        w.append(&record(2)[..7]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (seen, end) = collect(dir.path(), 0);
        assert_eq!(seen, vec![(first, 1)]);
        let torn = Cut {
            bytes: 7,
            why: "torn record at the end of the log",
        };
        assert_eq!(end.cut, Some(torn));
        let mut w = Writer::new(dir.path(), end.lsn);
        let second = w.append(&record(3)).unwrap();
        w.sync().unwrap();
        let (seen, end) = collect(dir.path(), 0);
        assert_eq!(seen, vec![(first, 1), (second, 3)]);
        assert_eq!(end.cut, None);
    }

    #[test]
    fn corrupt_record_cuts_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0);
        let first = w.append(&record(1)).unwrap();
        w.append(&record(2)).unwrap();
        w.append(&record(3)).unwrap();
        w.sync().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[first as usize + 9] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (seen, end) = collect(dir.path(), 0);
        assert_eq!(seen, vec![(first, 1)]);
        assert_eq!(end.cut.map(|c| c.why), Some("checksum mismatch"));
        assert_eq!(fs::metadata(&path).unwrap().len(), first);
    }

    #[test]
    fn a_later_segment_overrides_the_doubtful_tail_of_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0);
        let first = w.append(&record(1)).unwrap();
        w.append(&record(2)).unwrap();
        drop(w);
        // As after a failed sync: a new segment starts at the last good record.
        fs::write(segment_path(dir.path(), first), record(3)).unwrap();
        let (seen, _) = collect(dir.path(), 0);
        assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), vec![1, 3]);
    }

    /// As after a failed fdatasync: the tail is in doubt, garbage may sit
    /// past the synced part, and the records written since the last sync
    /// are written again to a new segment at the same positions.
    #[test]
    fn a_tail_in_doubt_is_written_again_and_positions_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0);
        let first = w.append(&record(1)).unwrap();
        w.sync().unwrap();
        let second = w.append(&record(2)).unwrap();
        // What the disk may hold after the failure: not the record.
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[first as usize + 9] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        w.doubt();
        // An append first moves the tail to a new segment.
        let third = w.append(&record(3)).unwrap();
        assert!(third > second, "positions only go forward");
        assert_eq!(segments(dir.path()).unwrap(), vec![0, first]);
        w.doubt();
        let relocated = w.sync().unwrap().expect("written again");
        // r2 was synced by the first move; only r3 moves this time.
        assert_eq!(relocated.segment, second);
        assert_eq!(segments(dir.path()).unwrap(), vec![0, first, second]);
        assert_eq!(w.lsn(), third);
        let (seen, end) = collect(dir.path(), 0);
        assert_eq!(seen, vec![(first, 1), (second, 2), (third, 3)]);
        assert_eq!(end.lsn, third);
        assert!(!w.dirty());
    }

    #[test]
    fn a_retracted_group_is_gone_and_its_position_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 0);
        let first = w.append(&record(1)).unwrap();
        let group = record(2);
        w.append(&group).unwrap();
        w.retract(group.len());
        assert_eq!(w.lsn(), first);
        assert_eq!(w.unsynced_bytes(), record(1).len());
        let again = w.append(&record(3)).unwrap();
        w.sync().unwrap();
        let (seen, _) = collect(dir.path(), 0);
        assert_eq!(seen, vec![(first, 1), (again, 3)]);
    }

    #[test]
    fn prune_keeps_segments_with_uncovered_records() {
        let dir = tempfile::tempdir().unwrap();
        for start in [0, 100, 200] {
            fs::write(segment_path(dir.path(), start), b"").unwrap();
        }
        assert_eq!(prune(dir.path(), 150).unwrap(), 1);
        assert_eq!(segments(dir.path()).unwrap(), vec![100, 200]);
        assert_eq!(prune(dir.path(), 10_000).unwrap(), 1);
        assert_eq!(segments(dir.path()).unwrap(), vec![200]);
    }
}
