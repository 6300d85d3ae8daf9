//! Test support: compares an encoding with its committed golden file, so a
//! change of shape without a version bump fails. `AMAZE_BLESS=1` writes the
//! file for a new version instead.

use std::path::PathBuf;

/// Checks `bytes` against `tests/fixtures/encoding/<name>`.
pub fn check(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/encoding")
        .join(name);
    if std::env::var("AMAZE_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let golden = std::fs::read(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: a new format version needs its golden file (AMAZE_BLESS=1 writes it) and a state fixture (tests/fixtures/state/generate.sh)",
            path.display()
        )
    });
    assert!(
        golden == bytes,
        "the encoding of {name} changed without a version bump: bump the version, keep reading the old one, and add fixtures for the new one"
    );
}
