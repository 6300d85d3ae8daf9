//! Snapshots: every SLA's windows as of one log position, versioned and checksummed.
//!
//! File: `MAGIC | version: u32 LE | postcard body | crc32c of all before: u32 LE`.
//! The body is `(taken_at, lsn, [(sla name, data)])`, then, from version 2,
//! the source marks, read after every SLA (see [`Recorder::apply_mark`]).
//! The newest [`KEEP`] snapshots are kept, so a damaged newest one falls back
//! to the one before, whose log is still on disk.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::atomic_file;
use crate::recorder::{
    Lsn, Marks, Recorder, SlaData, SlaDataV2, SlaDataV3, SlaDataV4, SlaDataV5, SlaDataV6, SlaDataV7,
};
use crate::window::Millis;

/// Bump when anything stored changes shape.
pub const SNAPSHOT_VERSION: u32 = 8;
/// Oldest version this build still reads: version 1 has no marks, versions
/// 1 and 2 no open deliveries, versions 1 to 3 float promises, and
/// versions 1 to 4 no native-histogram buckets, versions 1 to 5 no
/// SLA-wide windows apart from the series', versions 1 to 6 no history, and
/// versions 1 to 7 no clock stretches of open deliveries (see
/// `recorder::legacy`).
const OLDEST_READABLE: u32 = 1;
const MAGIC: &[u8; 8] = b"AMZSNAP\n";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
pub const KEEP: usize = 2;

fn name(lsn: Lsn) -> String {
    format!("{PREFIX}{lsn:020}{SUFFIX}")
}

/// Log positions of the snapshots in `dir`, newest first.
fn list(dir: &Path) -> io::Result<Vec<Lsn>> {
    let mut found: Vec<Lsn> = fs::read_dir(dir)?
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            let name = name.to_str()?;
            name.strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse()
                .ok()
        })
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// A writer that checksums what passes through it.
struct Checksummed<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Dirty bytes of a snapshot allowed before they are synced: a snapshot
/// of hundreds of MB left to the kernel would be flushed all at once, and a
/// log fdatasync on the same file system waits for it.
const SYNC_EVERY: u64 = 8 << 20;

/// Writes a snapshot of `recorder`, which holds every log record up to `lsn`.
/// Returns its size in bytes.
///
/// Each SLA is copied under its own lock (window slots are shared, not
/// copied), then encoded and written after the lock is let go, so the log
/// writer never waits on encoding or disk I/O to apply a batch; what is
/// written is synced every [`SYNC_EVERY`] bytes. The bytes
/// are those of postcard encoding the whole body at once: postcard writes a
/// tuple as its fields one after another and a sequence as its length then
/// its elements.
///
/// `valid` is asked once every SLA is copied: false (the log writer died
/// meanwhile, maybe halfway through a batch) leaves no snapshot.
pub fn write(
    dir: &Path,
    recorder: &Recorder,
    lsn: Lsn,
    now: Millis,
    valid: impl Fn() -> bool,
) -> io::Result<u64> {
    atomic_file::write(dir, &name(lsn), |out| {
        let encoding =
            |e: postcard::Error| io::Error::other(format!("cannot encode snapshot: {e}"));
        let mut w = Paced {
            inner: Checksummed { inner: out, crc: 0 },
            dirty: 0,
        };
        w.write_all(MAGIC)?;
        w.write_all(&SNAPSHOT_VERSION.to_le_bytes())?;
        w.write_all(&postcard::to_stdvec(&(now, lsn)).map_err(encoding)?)?;
        // The sequence's length: a unit encodes to nothing.
        w.write_all(&postcard::to_stdvec(&vec![(); recorder.len()]).map_err(encoding)?)?;
        let mut buf = Vec::new();
        for i in 0..recorder.len() {
            // Copied under the SLA's lock (pointer copies, mostly), encoded
            // and written after it is let go.
            let Some((name, data)) =
                recorder.with_data(i, |name, data| (name.to_owned(), data.snapshot_copy()))
            else {
                continue;
            };
            buf.clear();
            postcard::to_io(&(name.as_str(), &data), &mut buf).map_err(encoding)?;
            drop(data);
            w.write_all(&buf)?;
            w.pace()?;
        }
        if !valid() {
            return Err(io::Error::other(
                "the log writer stopped while the snapshot was taken",
            ));
        }
        w.write_all(&postcard::to_stdvec(&recorder.marks()).map_err(encoding)?)?;
        let crc = w.inner.crc;
        w.inner.inner.write_all(&crc.to_le_bytes())
    })
}

/// Syncs the file every [`SYNC_EVERY`] bytes written through it.
struct Paced<'a> {
    inner: Checksummed<&'a mut io::BufWriter<fs::File>>,
    dirty: u64,
}

impl Paced<'_> {
    fn pace(&mut self) -> io::Result<()> {
        if self.dirty >= SYNC_EVERY {
            self.inner.inner.flush()?;
            self.inner.inner.get_ref().sync_data()?;
            self.dirty = 0;
        }
        Ok(())
    }
}

impl Write for Paced<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.dirty += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A snapshot read back.
pub struct Loaded {
    pub path: PathBuf,
    pub lsn: Lsn,
    pub taken_at: Millis,
    pub slas: HashMap<String, SlaData>,
    pub marks: Marks,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "snapshot {path} has format version {version}; this build reads versions {OLDEST_READABLE} to {SNAPSHOT_VERSION}. \
         It was written by another amaze-exporter release: run that release, or move the file away \
         to start from the log alone"
    )]
    UnknownVersion { path: PathBuf, version: u32 },
    #[error("cannot read snapshots in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The newest snapshot that reads back whole. Damaged ones are skipped with
/// a warning; one from another format version stops the start, since going
/// on without it would throw its state away.
pub fn load_newest(dir: &Path) -> Result<Option<Loaded>, LoadError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    for lsn in list(dir).map_err(io_err(dir))? {
        let path = dir.join(name(lsn));
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        match parse(&bytes) {
            Ok(((taken_at, stored_lsn, slas), marks)) if stored_lsn == lsn => {
                return Ok(Some(Loaded {
                    path,
                    lsn,
                    taken_at,
                    slas: slas.into_iter().collect(),
                    marks,
                }));
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "snapshot name and content disagree; skipped")
            }
            Err(Damage::Version(version)) => {
                return Err(LoadError::UnknownVersion { path, version });
            }
            Err(Damage::Corrupt(why)) => {
                tracing::warn!(path = %path.display(), why, "snapshot is damaged; trying an older one");
            }
        }
    }
    Ok(None)
}

enum Damage {
    Version(u32),
    Corrupt(String),
}

/// `(taken_at, lsn, [(sla name, data)])` with data of shape `D`.
type BodyOf<D> = (Millis, Lsn, Vec<(String, D)>);
type Body = BodyOf<SlaData>;

/// A body of an older format, with each SLA's data in today's shape.
fn older<D>(body: &[u8]) -> Result<(Body, &[u8]), postcard::Error>
where
    D: serde::de::DeserializeOwned + Into<SlaData>,
{
    let ((at, lsn, slas), rest): (BodyOf<D>, _) = postcard::take_from_bytes(body)?;
    let slas = slas.into_iter().map(|(n, d)| (n, d.into())).collect();
    Ok(((at, lsn, slas), rest))
}

fn parse(bytes: &[u8]) -> Result<(Body, Marks), Damage> {
    let corrupt = |why: &str| Damage::Corrupt(why.to_owned());
    if bytes.len() < MAGIC.len() + 8 || !bytes.starts_with(MAGIC) {
        return Err(corrupt("not a snapshot file"));
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    // The version first: another release may frame its files differently.
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if !(OLDEST_READABLE..=SNAPSHOT_VERSION).contains(&version) {
        return Err(Damage::Version(version));
    }
    if crc32c::crc32c(content) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(corrupt("checksum mismatch"));
    }
    let decoding = |e: postcard::Error| Damage::Corrupt(e.to_string());
    let body = &content[MAGIC.len() + 4..];
    let (body, rest): (Body, &[u8]) = match version {
        1 | 2 => older::<SlaDataV2>(body),
        3 => older::<SlaDataV3>(body),
        4 => older::<SlaDataV4>(body),
        5 => older::<SlaDataV5>(body),
        6 => older::<SlaDataV6>(body),
        7 => older::<SlaDataV7>(body),
        _ => postcard::take_from_bytes(body),
    }
    .map_err(decoding)?;
    let marks = match version {
        1 => Marks::default(),
        _ => postcard::from_bytes(rest).map_err(decoding)?,
    };
    Ok((body, marks))
}

/// Removes all but the newest [`KEEP`] snapshots. Returns the log position
/// of the oldest kept: the log before it is no longer needed.
pub fn prune(dir: &Path) -> io::Result<Option<Lsn>> {
    let found = list(dir)?;
    for &old in found.iter().skip(KEEP) {
        fs::remove_file(dir.join(name(old)))?;
    }
    Ok(found
        .get(..KEEP.min(found.len()))
        .and_then(|k| k.last().copied()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::recorder::Mark;

    fn recorder() -> Recorder {
        let yaml = "version: 1\nslas:\n  - name: api\n    promise: 1s\n    objective: 99%\n";
        Recorder::new(Arc::new(Config::parse(yaml).unwrap().catalog()))
    }

    #[test]
    fn marks_read_back_and_version_1_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let r = recorder();
        let mark = Mark {
            source: "log_tail/web".into(),
            position: vec![7, 8],
        };
        r.apply_mark(&mark, 40, true);
        write(dir.path(), &r, 42, 1_000, || true).unwrap();
        let loaded = load_newest(dir.path()).unwrap().unwrap();
        assert_eq!((loaded.lsn, loaded.taken_at), (42, 1_000));
        assert_eq!(loaded.marks.get("log_tail/web"), Some(&[7, 8][..]));
        assert!(loaded.slas.contains_key("api"));

        // Version 1, as the release that wrote it left it: no marks.
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state/v1");
        let old = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(&fixture).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "snap") {
                fs::copy(&path, old.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let loaded = load_newest(old.path()).unwrap().unwrap();
        assert_eq!(loaded.marks, Marks::default());
        assert!(loaded.slas.contains_key("api"));
    }

    /// A fixed state (two SLAs, series, open items, a calendar month, a
    /// mark) encodes to the committed bytes of this format version.
    #[test]
    fn the_encoding_of_this_version_is_pinned() {
        use crate::delivery::{EventInput, Input, Kind, Timing};
        let yaml = "version: 1
calendars:
  - name: office
    timezone: Europe/Berlin
    hours:
      mon-fri: \"09:00-17:00\"
slas:
  - name: api
    promise: 300ms
    objective: 99%
    target_margin: 50%
    labels: [route]
  - name: desk
    promise: 4h
    objective: 90%
    window: calendar_month
    calendar: office
";
        let catalog = Arc::new(Config::parse(yaml).unwrap().catalog());
        let r = Recorder::new(catalog.clone());
        let now: Millis = 1_795_600_000_000;
        let mut batch = Vec::new();
        for i in 0..50u64 {
            let route = if i % 2 == 0 { "/a" } else { "/b" };
            let input = Input {
                sla: "api",
                labels: &[("route", route)],
                timing: Timing::Took {
                    took: std::time::Duration::from_millis(i * 13 % 400),
                    at: Some(now - (i as i64) * 60_000),
                },
                id: None,
            };
            batch.push(catalog.admit(&input, now).unwrap());
        }
        r.record(&batch, now, Some(10));
        let event = |kind, at| {
            let input = EventInput {
                sla: "desk",
                id: "T-1",
                kind,
                labels: &[],
                failed: false,
                at: Some(at),
            };
            catalog.admit_event(&input, now).unwrap()
        };
        let events = [
            event(Kind::Start, now - 7_200_000),
            event(Kind::Pause, now - 3_600_000),
        ];
        r.apply_events(&events, now, Some(20));
        r.apply_mark(
            &Mark {
                source: "log_tail/web".into(),
                position: vec![1, 2, 3],
            },
            30,
            true,
        );
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &r, 42, now, || true).unwrap();
        let bytes = fs::read(dir.path().join(name(42))).unwrap();
        crate::persist::golden::check(&format!("snapshot-v{SNAPSHOT_VERSION}.snap"), &bytes);
    }
}
