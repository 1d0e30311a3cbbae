//! Where the crate's files are: tests read the repository's own
//! configuration, rules, dashboards and documents.

use std::path::PathBuf;

/// The crate root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository, `rel` from the crate root; panics naming it
/// when it cannot be read.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The exporter binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_badgateway-exporter");
