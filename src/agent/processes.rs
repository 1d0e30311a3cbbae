//! Web server processes: whether at least one of each runs, and how many,
//! matched on the process name as `ps -C NAME` does (the kernel's `comm`).
//! A process can run and not accept: the `connections` collector reports
//! whether each web port listens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

use prometheus::proto::MetricFamily;

use super::{Collector, CollectorError};
use crate::exposition::names;
use crate::exposition::Family;

/// Names looked for when none are configured.
pub const KNOWN_WEB_SERVERS: [&str; 11] = [
    "nginx",
    "apache2",
    "httpd",
    "caddy",
    "haproxy",
    "lighttpd",
    "envoy",
    "traefik",
    "h2o",
    "litespeed",
    "lshttpd",
];

pub struct Processes {
    procfs: PathBuf,
    /// Configured names; `None` when detecting known web servers.
    configured: Option<Vec<String>>,
    /// In detection mode, every known server seen running since start: one
    /// that stops then reports 0 instead of vanishing.
    seen: Mutex<BTreeSet<String>>,
}

impl Processes {
    pub fn new(procfs: PathBuf, names: &[String]) -> Processes {
        Processes {
            procfs,
            configured: (!names.is_empty()).then(|| names.to_vec()),
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// Count running processes by name.
    fn running(&self) -> Result<BTreeMap<String, u64>, CollectorError> {
        let dir = std::fs::read_dir(&self.procfs)
            .map_err(|e| CollectorError::new(format!("listing {}: {e}", self.procfs.display())))?;
        let mut counts = BTreeMap::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            // A process may exit between listing and reading: skip it.
            let Ok(comm) = std::fs::read_to_string(self.procfs.join(pid).join("comm")) else {
                continue;
            };
            *counts.entry(comm.trim_end().to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

impl Collector for Processes {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError> {
        let running = self.running()?;
        let names: Vec<String> = match &self.configured {
            Some(names) => names.clone(),
            None => {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                for known in KNOWN_WEB_SERVERS {
                    if running.contains_key(known) {
                        seen.insert(known.to_owned());
                    }
                }
                seen.iter().cloned().collect()
            }
        };
        let mut up = Family::gauge(
            names::PROCESS_UP,
            "1 when at least one process of that name runs.",
        );
        let mut count = Family::gauge(
            names::PROCESSES,
            "Processes of that name running (like ps -C NAME).",
        );
        for name in &names {
            // The kernel keeps 15 bytes of a process name.
            let comm: String = name.chars().take(15).collect();
            let n = running.get(&comm).copied().unwrap_or(0);
            up.push(&[("process", name)], if n > 0 { 1.0 } else { 0.0 });
            count.push(&[("process", name)], n as f64);
        }
        Ok(vec![up.into_family(), count.into_family()])
    }
}
