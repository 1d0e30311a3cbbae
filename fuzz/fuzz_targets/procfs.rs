//! The agent's readers over /proc: the input replaces one file of a procfs
//! tree (the repo's fixture) and the collector that reads it runs once
//! (for `saturation`, twice: its first reading at start, then a scrape).
//!
//! Input: a selector byte choosing the file, then its content.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use badgateway_exporter::agent::connections::Connections;
use badgateway_exporter::agent::processes::Processes;
use badgateway_exporter::agent::saturation::Saturation;
use badgateway_exporter::agent::Collector;
use badgateway_exporter::config::InterfaceConfig;
use libfuzzer_sys::fuzz_target;

macro_rules! fixture {
    ($rel:literal) => {
        (
            $rel,
            include_bytes!(concat!("../../tests/fixtures/procfs/", $rel)) as &[u8],
        )
    };
}

/// The files a collector reads, with the fixture each is restored to.
const FILES: [(&str, &[u8]); 7] = [
    fixture!("stat"),
    fixture!("meminfo"),
    fixture!("loadavg"),
    fixture!("net/dev"),
    fixture!("net/tcp"),
    fixture!("net/tcp6"),
    fixture!("812/comm"),
];

/// A procfs tree of this process's own, under `$TMPDIR`.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root =
            std::env::temp_dir().join(format!("badgateway-fuzz-procfs-{}", std::process::id()));
        for (rel, content) in FILES {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        root
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, content)) = data.split_first() else {
        return;
    };
    let which = usize::from(selector) % FILES.len();
    let (rel, fixture) = FILES[which];
    let root = root();
    let path = root.join(rel);
    std::fs::write(&path, content).unwrap();
    match rel {
        "stat" | "meminfo" | "loadavg" | "net/dev" => {
            let interfaces = BTreeMap::from([
                (
                    "eth0".to_owned(),
                    InterfaceConfig {
                        capacity_bits_per_second: 1_000_000_000,
                    },
                ),
                (
                    "lo".to_owned(),
                    InterfaceConfig {
                        capacity_bits_per_second: 1,
                    },
                ),
            ]);
            let s = Saturation::new(root.to_path_buf(), interfaces);
            let _ = s.collect();
        }
        "net/tcp" | "net/tcp6" => {
            let ranges = [
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ];
            let c = Connections::new(root.to_path_buf(), &ranges, &[80, 443], true);
            let _ = c.collect();
        }
        _ => {
            let p = Processes::new(root.to_path_buf(), &[]);
            let _ = p.collect();
        }
    }
    std::fs::write(&path, fixture).unwrap();
});
