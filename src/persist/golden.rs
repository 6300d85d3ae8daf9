//! Test support: compares an encoding with its committed golden file, so a
//! change of shape without a version bump fails. A golden file is only ever
//! created (for a new version), never rewritten.

use std::path::PathBuf;

/// Checks `bytes` against `tests/fixtures/encoding/<name>`; writes the file
/// when there is none yet, and fails so it gets committed.
pub fn check(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoding")
        .join(name);
    let Ok(golden) = std::fs::read(&path) else {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        panic!(
            "wrote {}, the encoding of a new format version: commit it, with a state fixture (tests/fixtures/state/generate.sh)",
            path.display()
        );
    };
    assert!(
        golden == bytes,
        "the encoding of {name} changed without a version bump: bump the version, keep reading the old one, and add fixtures for the new one"
    );
}
