//! The origin agent: runs on the real server and gathers the evidence that
//! tells the causes apart on the origin side. One collector per file behind
//! the `Collector` trait, registered once in [`COLLECTORS`] (its name, what
//! it reports, how it starts): the `--no-collector.NAME` flags and the
//! README's list come from that table. Each reports
//! `badgateway_collector_success` and its duration, so a broken one never
//! breaks the scrape or the others.

pub mod access_log;
pub mod connections;
pub mod firewall;
pub mod processes;
mod procfs;
pub mod saturation;
pub mod sock_diag;

use std::path::PathBuf;
use std::time::Instant;

use prometheus::proto::MetricFamily;

use crate::config::{AgentConfig, FirewallMode};
use crate::exposition::{names, CollectorRun, Family};

/// Where the agent meets the operating system. Every boundary can be
/// pointed elsewhere, so tests can feed fixtures captured from real
/// machines.
#[derive(Clone, Debug)]
pub struct Os {
    /// The procfs mount (`--path.procfs`).
    pub procfs: PathBuf,
    /// The command that prints the iptables rules (`iptables-save`), and
    /// the same for IPv6.
    pub iptables_save: Vec<String>,
    pub ip6tables_save: Vec<String>,
    /// The command that prints the nftables ruleset as JSON.
    pub nft_list: Vec<String>,
    /// The command that prints a line for every change to the nftables
    /// ruleset (iptables-nft's changes included), so the firewall is read
    /// again at once.
    pub nft_monitor: Vec<String>,
}

impl Default for Os {
    fn default() -> Os {
        Os {
            procfs: PathBuf::from("/proc"),
            iptables_save: vec!["iptables-save".into()],
            ip6tables_save: vec!["ip6tables-save".into()],
            nft_list: vec!["nft".into(), "-j".into(), "list".into(), "ruleset".into()],
            nft_monitor: vec!["nft".into(), "monitor".into()],
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
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError>;
}

/// A collector of the agent, as it is registered.
pub struct CollectorSpec {
    /// The `collector` label, and its `--no-collector.NAME` flag.
    pub name: &'static str,
    /// What it reports, for the flag's help and the docs.
    pub about: &'static str,
    /// Start it for this configuration; `None` where it has nothing to do
    /// (the firewall check turned off, no access log configured). Must run
    /// inside the tokio runtime: background collectors spawn their tasks.
    pub start: fn(&AgentConfig, &Os) -> Option<Box<dyn Collector>>,
}

/// Every collector, in the order they run.
pub const COLLECTORS: &[CollectorSpec] = &[
    CollectorSpec {
        name: "saturation",
        about: "CPU, memory, load, interfaces",
        start: |c, os| {
            let s = saturation::Saturation::new(os.procfs.clone(), c.interfaces.clone());
            Some(Box::new(s))
        },
    },
    CollectorSpec {
        name: "processes",
        about: "web server processes, and whether their ports listen",
        start: |c, os| {
            let p = processes::Processes::new(os.procfs.clone(), &c.processes);
            Some(Box::new(p))
        },
    },
    CollectorSpec {
        name: "connections",
        about: "who connects to the web ports",
        start: |c, os| {
            Some(Box::new(connections::Connections::new(
                os.procfs.clone(),
                &c.forwarding_ranges,
                &c.web_ports,
                c.web_ports_configured,
            )))
        },
    },
    CollectorSpec {
        name: "firewall",
        about: "the firewall's verdict on the forwarding ranges",
        start: |c, os| {
            (c.firewall != FirewallMode::Off)
                .then(|| Box::new(firewall::FirewallCollector::start(c, os)) as Box<dyn Collector>)
        },
    },
    CollectorSpec {
        name: "access_log",
        about: "the web server's answers to the forwarding IPs, from its access log",
        start: |c, _| {
            let log = c.access_log.as_ref()?;
            let a = access_log::AccessLogCollector::start(log, &c.forwarding_ranges);
            Some(Box::new(a))
        },
    },
];

/// The running agent.
pub struct Agent {
    collectors: Vec<(&'static str, Box<dyn Collector>)>,
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
        let collectors = COLLECTORS
            .iter()
            .filter(|spec| !disabled.iter().any(|d| d == spec.name))
            .filter_map(|spec| Some((spec.name, (spec.start)(config, os)?)))
            .collect();
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

    /// Every collector's families, and how each run went.
    pub fn collect(&self) -> (Vec<MetricFamily>, Vec<CollectorRun>) {
        let mut out = Vec::new();
        let mut runs = Vec::new();
        for (name, c) in &self.collectors {
            let started = Instant::now();
            let result = c.collect();
            let seconds = Some(started.elapsed().as_secs_f64());
            let ok = result.is_ok();
            match result {
                Ok(families) => {
                    out.extend(families);
                    self.remember(name, None);
                }
                Err(e) => self.remember(name, Some(e.to_string())),
            }
            runs.push(CollectorRun { name, ok, seconds });
        }
        let mut info = Family::gauge(
            names::AGENT_SITE_INFO,
            "1 for each site this origin serves (agent.sites): join origin evidence to probe results on it.",
        );
        for site in &self.sites {
            info.push(&[("site", site)], 1.0);
        }
        let mut ranges = Family::gauge(
            names::AGENT_FORWARDING_RANGES,
            "Forwarding ranges configured (agent.forwarding_ranges); 0 means connections and log lines are all counted as `other`.",
        );
        ranges.push(&[], self.forwarding_ranges as f64);
        out.push(ranges.into_family());
        out.push(info.into_family());
        out.retain(|f| !f.get_metric().is_empty());
        (out, runs)
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
