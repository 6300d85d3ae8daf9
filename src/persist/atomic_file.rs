//! Files replaced whole or not at all: temp file, fsync, rename, fsync the directory.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Suffix of a file being written; leftovers are removed at start.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Writes `dir/name` through `fill`: readers see the old file or the new
/// one, never a part, and after return the new one survives power loss.
pub fn write(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<u64> {
    let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&temp)?);
        fill(&mut out)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let len = file.metadata()?.len();
        fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)?;
        Ok(len)
    })();
    if result.is_err() {
        // Best effort: a full disk is the usual reason we are here.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Makes renames and new files in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes temp files a crash left behind in `dir`.
pub fn remove_leftovers(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(TEMP_SUFFIX) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", |w| w.write_all(b"one")).unwrap();
        write(dir.path(), "a", |w| w.write_all(b"two")).unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"two");
        let failed = write(dir.path(), "a", |w| {
            w.write_all(b"three")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
