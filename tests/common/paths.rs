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

/// The rule files of `rules/` (one per cause, and the shared recording
/// rules), by name: the order Prometheus loads a `rules/*.rules.yml` glob in.
pub fn rule_files() -> Vec<PathBuf> {
    let dir = root().join("rules");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *.rules.yml in rules/");
    out
}

/// Every group of `rules/`, in the order of [`rule_files`], as one
/// `groups:` document.
pub fn rule_groups() -> serde_norway::Value {
    let mut groups = Vec::new();
    for f in rule_files() {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let doc: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        groups.extend(doc["groups"].as_sequence().expect("groups").iter().cloned());
    }
    let mut m = serde_norway::Mapping::new();
    m.insert("groups".into(), serde_norway::Value::Sequence(groups));
    serde_norway::Value::Mapping(m)
}

/// The exporter binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_badgateway-exporter");
