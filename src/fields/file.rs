//! Files the configuration names (itself, web config, tokens, certificates),
//! read only when they are regular files, and never past a size limit: a
//! path to `/dev/zero` or a FIFO is refused at once instead of filling memory
//! or hanging the start.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The config file and the web config file: far above any real one.
pub const CONFIG_BYTES: u64 = 8 << 20;
/// A token file.
pub const TOKEN_BYTES: u64 = 64 << 10;
/// A PEM file of certificates or a key.
pub const PEM_BYTES: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// It could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is a directory, FIFO, socket or device.
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// It holds more than the limit.
    #[error("it is larger than {0} bytes; this is not a file it reads")]
    TooLarge(u64),
    /// It is not UTF-8 text.
    #[error("it is not UTF-8 text")]
    NotText,
}

/// The bytes of the regular file at `path`, at most `limit` of them.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path)?;
    let kind = meta.file_type();
    let other = if kind.is_dir() {
        Some("directory")
    } else if kind.is_fifo() {
        Some("FIFO")
    } else if kind.is_socket() {
        Some("socket")
    } else if kind.is_char_device() {
        Some("character device")
    } else if kind.is_block_device() {
        Some("block device")
    } else {
        None
    };
    if let Some(other) = other {
        return Err(FileError::NotRegular(other));
    }
    // Only what the size says is there: a "regular" file whose size is 0
    // and whose reads block (`/proc/kmsg`) is read as empty, not waited on.
    if meta.len() > limit {
        return Err(FileError::TooLarge(limit));
    }
    let mut bytes = Vec::new();
    if meta.len() > 0 {
        File::open(path)?.take(meta.len()).read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// The text of the regular file at `path`, at most `limit` bytes.
pub fn text(path: &Path, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read(path, limit)?).map_err(|_| FileError::NotText)
}

/// The PEM certificates in the file at `path`, at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = read(path, PEM_BYTES).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read certificates from `{shown}`: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate in `{shown}`"));
    }
    Ok(certs)
}

/// The PEM private key in the file at `path`.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    let bytes = read(path, PEM_BYTES).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("cannot read a private key from `{shown}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, "abc").unwrap();
        assert_eq!(text(&small, 3).unwrap(), "abc");
        assert!(matches!(text(&small, 2), Err(FileError::TooLarge(2))));
        assert!(matches!(
            read(dir.path(), 10),
            Err(FileError::NotRegular("directory"))
        ));
        assert!(matches!(
            read(Path::new("/dev/zero"), 10),
            Err(FileError::NotRegular("character device"))
        ));
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            assert!(matches!(
                read(&fifo, 10),
                Err(FileError::NotRegular("FIFO"))
            ));
        }
        // Its size is 0 and a read would wait for the kernel to log.
        if Path::new("/proc/kmsg").exists() {
            assert!(matches!(
                read(Path::new("/proc/kmsg"), 10).as_deref(),
                Ok([])
            ));
        }
        std::fs::write(&small, [0xff, 0xfe]).unwrap();
        assert!(matches!(text(&small, 10), Err(FileError::NotText)));
    }
}
