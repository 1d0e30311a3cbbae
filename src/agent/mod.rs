//! The origin agent: runs on the real server and gathers the evidence that
//! tells the causes apart on the origin side. One collector per file behind
//! the `Collector` trait, registered once in `Agent::start`; each reports
//! `badgateway_collector_success` and its duration, so a broken one never
//! breaks the scrape or the others.

pub mod access_log;
pub mod connections;
pub mod exposition;
pub mod firewall;
pub mod processes;
mod procfs;
pub mod saturation;

use std::path::PathBuf;
use std::time::Instant;

use prometheus::proto::MetricFamily;

use crate::config::{AgentConfig, FirewallMode};
use exposition::Family;

/// Where the agent meets the operating system. Every boundary can be
/// pointed elsewhere, so tests can feed fixtures captured from real
/// machines.
#[derive(Clone, Debug)]
pub struct Os {
    /// The procfs mount (`--path.procfs`).
    pub procfs: PathBuf,
    /// The sysfs mount (`--path.sysfs`).
    pub sysfs: PathBuf,
    /// The command that prints the iptables rules (`iptables-save`), and
    /// the same for IPv6.
    pub iptables_save: Vec<String>,
    pub ip6tables_save: Vec<String>,
    /// The command that prints the nftables ruleset as JSON.
    pub nft_list: Vec<String>,
}

impl Default for Os {
    fn default() -> Os {
        Os {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            iptables_save: vec!["iptables-save".into()],
            ip6tables_save: vec!["ip6tables-save".into()],
            nft_list: vec!["nft".into(), "-j".into(), "list".into(), "ruleset".into()],
        }
    }
}

/// Why a collector could not report. The message names what failed and
/// where (a file, a command) so that one log line is enough.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CollectorError(pub String);

impl CollectorError {
    pub fn new(message: impl Into<String>) -> CollectorError {
        CollectorError(message.into())
    }
}

/// One source of origin evidence.
///
/// `collect` runs at scrape time and must be cheap: reading /proc is fine;
/// anything that spawns a process or follows a file runs in the collector's
/// own background task (started by its constructor, stopped when the
/// collector is dropped) and `collect` reads what it left.
pub trait Collector: Send + Sync {
    /// The `collector` label, and the name of its `--no-collector.NAME` flag.
    fn name(&self) -> &'static str;
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError>;
}

/// The collectors' names, in the order they run; each can be turned off
/// with `--no-collector.NAME`.
pub const COLLECTORS: [&str; 5] = [
    "saturation",
    "processes",
    "connections",
    "firewall",
    "access_log",
];

/// The running agent.
pub struct Agent {
    collectors: Vec<Box<dyn Collector>>,
    sites: Vec<String>,
    /// How many forwarding ranges are configured: 0 says the range-based
    /// evidence is not there, rather than a failure.
    forwarding_ranges: usize,
    /// The last error of each collector, to log a failure once when it
    /// starts rather than at every scrape.
    last_errors: std::sync::Mutex<std::collections::HashMap<&'static str, String>>,
}

impl Agent {
    /// Start every collector not in `disabled`. Must run inside the tokio
    /// runtime: background collectors spawn their tasks here.
    pub fn start(config: &AgentConfig, os: &Os, disabled: &[String]) -> Agent {
        let enabled = |name: &str| !disabled.iter().any(|d| d == name);
        let mut collectors: Vec<Box<dyn Collector>> = Vec::new();
        if enabled("saturation") {
            collectors.push(Box::new(saturation::Saturation::new(
                os.procfs.clone(),
                config.interfaces.clone(),
            )));
        }
        if enabled("processes") {
            collectors.push(Box::new(processes::Processes::new(
                os.procfs.clone(),
                &config.processes,
            )));
        }
        if enabled("connections") {
            collectors.push(Box::new(connections::Connections::new(
                os.procfs.clone(),
                &config.forwarding_ranges,
                &config.web_ports,
                config.web_ports_configured,
            )));
        }
        if enabled("firewall") && config.firewall != FirewallMode::Off {
            collectors.push(Box::new(firewall::FirewallCollector::start(config, os)));
        }
        if let (Some(log), true) = (&config.access_log, enabled("access_log")) {
            collectors.push(Box::new(access_log::AccessLogCollector::start(
                log,
                &config.forwarding_ranges,
            )));
        }
        if config.forwarding_ranges.is_empty() {
            tracing::info!(
                "no agent.forwarding_ranges configured: every connection and log line counts as `other`, \
                 and the firewall is not checked for them"
            );
        }
        Agent {
            collectors,
            sites: config.sites.clone(),
            forwarding_ranges: config.forwarding_ranges.len(),
            last_errors: Default::default(),
        }
    }

    /// Every collector's families, and the success and duration of each.
    pub fn collect(&self) -> Vec<MetricFamily> {
        let mut success = Family::gauge(
            "badgateway_collector_success",
            crate::metrics::COLLECTOR_SUCCESS_HELP,
        );
        let mut duration = Family::gauge(
            "badgateway_collector_duration_seconds",
            "How long the collector took at this scrape.",
        );
        let mut out = Vec::new();
        for c in &self.collectors {
            let started = Instant::now();
            let result = c.collect();
            duration.push(&[("collector", c.name())], started.elapsed().as_secs_f64());
            match result {
                Ok(families) => {
                    success.push(&[("collector", c.name())], 1.0);
                    out.extend(families);
                    self.remember(c.name(), None);
                }
                Err(e) => {
                    success.push(&[("collector", c.name())], 0.0);
                    self.remember(c.name(), Some(e.to_string()));
                }
            }
        }
        let mut info = Family::gauge(
            "badgateway_agent_site_info",
            "1 for each site this origin serves (agent.sites): join origin evidence to probe results on it.",
        );
        for site in &self.sites {
            info.push(&[("site", site)], 1.0);
        }
        let mut ranges = Family::gauge(
            "badgateway_agent_forwarding_ranges",
            "Forwarding ranges configured (agent.forwarding_ranges); 0 means connections and log lines are all counted as `other`.",
        );
        ranges.push(&[], self.forwarding_ranges as f64);
        out.push(ranges.into_family());
        out.push(success.into_family());
        out.push(duration.into_family());
        out.push(info.into_family());
        out.retain(|f| !f.get_metric().is_empty());
        out
    }

    /// Log a collector's failure when it starts or changes, and its
    /// recovery, not every scrape.
    fn remember(&self, name: &'static str, error: Option<String>) {
        let mut last = self.last_errors.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) => {
                if last.get(name) != Some(&e) {
                    tracing::error!(collector = name, error = %e, "collector failed");
                    last.insert(name, e);
                }
            }
            None => {
                if last.remove(name).is_some() {
                    tracing::info!(collector = name, "collector works again");
                }
            }
        }
    }
}
