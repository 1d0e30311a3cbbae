//! Reading files under the configured procfs root with `procfs-core`'s
//! parsers, so collectors work on /proc or on a fixture tree alike.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use procfs_core::{ExplicitSystemInfo, FromRead, FromReadSI};

use super::CollectorError;

/// What the parsers need to know about the machine the files come from.
/// Byte order is the only field the files we read depend on.
pub const SYSTEM: ExplicitSystemInfo = ExplicitSystemInfo {
    boot_time_secs: 0,
    ticks_per_second: 100,
    page_size: 4096,
    is_little_endian: cfg!(target_endian = "little"),
};

fn open(root: &Path, rel: &str) -> Result<File, CollectorError> {
    let path = root.join(rel);
    File::open(&path).map_err(|e| CollectorError::new(format!("reading {}: {e}", path.display())))
}

/// Parse `root/rel` with a `procfs-core` type.
pub fn read<T: FromRead>(root: &Path, rel: &str) -> Result<T, CollectorError> {
    let f = open(root, rel)?;
    T::from_read(f)
        .map_err(|e| CollectorError::new(format!("parsing {}: {e}", root.join(rel).display())))
}

/// Parse `root/rel` with a `procfs-core` type that needs system info.
pub fn read_si<T: FromReadSI>(root: &Path, rel: &str) -> Result<T, CollectorError> {
    let f = open(root, rel)?;
    T::from_read(f, &SYSTEM)
        .map_err(|e| CollectorError::new(format!("parsing {}: {e}", root.join(rel).display())))
}

/// The text of `root/rel`, a small file read whole; more than `limit`
/// bytes is an error rather than a growing buffer.
pub fn read_text(root: &Path, rel: &str, limit: u64) -> Result<String, CollectorError> {
    let mut text = String::new();
    let path = root.join(rel);
    open(root, rel)?
        .take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| CollectorError::new(format!("reading {}: {e}", path.display())))?;
    if text.len() as u64 > limit {
        return Err(CollectorError::new(format!(
            "reading {}: longer than {limit} bytes",
            path.display()
        )));
    }
    Ok(text)
}
