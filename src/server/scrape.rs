//! What a scrape exposes: the exporter's own metrics (a `prometheus`
//! registry, set as things happen), the origin agent's collectors, the
//! success of every collector (the agent's, and the prober's HTTP and ICMP
//! sockets, reported the same way), and the prober's series.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use prometheus::core::Collector;
use prometheus::{Encoder, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::agent::Agent;
use crate::exposition::{collector_families, names, CollectorRun};
use crate::prober::probe::icmp::Pingers;
use crate::prober::render;
use crate::prober::results::Results;

/// The exporter's own metrics, set by the server as things happen.
pub struct SelfMetrics {
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp_seconds: IntGauge,
    pub sites: IntGauge,
    /// Connections open to the exporter's web server.
    pub web_connections: IntGauge,
    /// Connections closed at once, over `--web.max-connections`.
    pub web_connections_refused: IntCounter,
    /// Scrapes answered 503, over `--web.max-requests`.
    pub web_scrapes_refused: IntCounter,
}

/// Everything a scrape exposes.
pub struct Exposition {
    registry: Registry,
    results: Arc<Results>,
    /// The origin agent, when this host is one; replaced on reload.
    agent: RwLock<Option<Agent>>,
    /// The prober's ICMP sockets, reported as the `icmp` collector while
    /// some site uses ICMP.
    pingers: Arc<Pingers>,
    icmp_in_use: AtomicBool,
    pub me: SelfMetrics,
}

impl Exposition {
    pub fn new(results: Arc<Results>, pingers: Arc<Pingers>) -> Exposition {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                names::BUILD_INFO,
                "A metric with a constant '1' value labeled by the version and revision it was built from.",
            ),
            &["version", "revision"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let me = SelfMetrics {
            config_last_reload_successful: gauge(
                names::CONFIG_LAST_RELOAD_SUCCESSFUL,
                "1 when the last configuration (re)load succeeded.",
            ),
            config_last_reload_success_timestamp_seconds: gauge(
                names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
                "Unix time of the last successful configuration (re)load.",
            ),
            sites: gauge(names::SITES, "Sites configured for probing."),
            web_connections: gauge(
                names::EXPORTER_WEB_CONNECTIONS,
                "Connections open to the exporter's own web server.",
            ),
            web_connections_refused: counter(
                names::EXPORTER_WEB_CONNECTIONS_REFUSED_TOTAL,
                "Connections to the exporter's web server closed at once, over --web.max-connections.",
            ),
            web_scrapes_refused: counter(
                names::EXPORTER_WEB_SCRAPES_REFUSED_TOTAL,
                "Scrapes of /metrics answered 503, over --web.max-requests.",
            ),
        };
        for c in [
            Box::new(build_info) as Box<dyn Collector>,
            Box::new(me.config_last_reload_successful.clone()),
            Box::new(me.config_last_reload_success_timestamp_seconds.clone()),
            Box::new(me.sites.clone()),
            Box::new(me.web_connections.clone()),
            Box::new(me.web_connections_refused.clone()),
            Box::new(me.web_scrapes_refused.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Exposition {
            registry,
            results,
            agent: RwLock::new(None),
            pingers,
            icmp_in_use: AtomicBool::new(false),
            me,
        }
    }

    /// Swap the running agent; the old one's background tasks stop.
    pub fn set_agent(&self, agent: Option<Agent>) {
        *self.agent.write().unwrap_or_else(|p| p.into_inner()) = agent;
    }

    /// Whether some site uses ICMP: then the `icmp` collector is reported.
    pub fn set_icmp_in_use(&self, in_use: bool) {
        self.icmp_in_use.store(in_use, Ordering::Relaxed);
    }

    /// A scrape in the text format: the head (the exporter's own metrics,
    /// the agent's, the collectors'), rendered now, and the prober's sites,
    /// written a piece at a time as the body is sent.
    pub fn render(&self) -> Result<(Vec<u8>, render::Pieces), prometheus::Error> {
        let sites = self.results.snapshot();
        let mut out = Vec::with_capacity(8 * 1024);
        let mut families = self.registry.gather();
        let mut runs = Vec::new();
        if !sites.is_empty() {
            // The probes' own sockets: 0 while some request of a latest
            // round could not get one (out of file descriptors or ports).
            runs.push(CollectorRun {
                name: "probes",
                ok: !sites.iter().any(|s| s.result.out_of_sockets()),
                seconds: None,
            });
        }
        if self.icmp_in_use.load(Ordering::Relaxed) {
            runs.push(CollectorRun {
                name: "icmp",
                ok: self.pingers.healthy(),
                seconds: None,
            });
        }
        if let Some(agent) = &*self.agent.read().unwrap_or_else(|p| p.into_inner()) {
            let (agent_families, agent_runs) = agent.collect();
            families.extend(agent_families);
            runs.extend(agent_runs);
        }
        families.extend(collector_families(&runs));
        TextEncoder::new().encode(&families, &mut out)?;
        Ok((out, render::Pieces::new(sites)))
    }
}
