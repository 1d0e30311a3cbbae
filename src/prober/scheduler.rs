//! Runs every site's probes in the background: one task per site, on the
//! site's own interval, with start times spread over the interval so a
//! thousand sites do not fire at once. Each round probes every (path,
//! address) of the site at the same time, decides the forwarding flag from
//! that same round, and stores the results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::prober::render;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Config;
use crate::prober::probe::icmp::Pingers;
use crate::prober::results::{Results, SiteResult};
use crate::prober::round::SiteProber;

/// The running site tasks; dropping it stops them.
pub struct Scheduler {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A site's task: its prober, and where its rounds go.
struct SiteRunner {
    prober: Arc<SiteProber>,
    results: Arc<Results>,
}

/// Errors that stop a config from being scheduled (it parsed, but a file it
/// names cannot be used).
#[derive(Debug, thiserror::Error)]
#[error("site {site}: {source}")]
pub struct ScheduleError {
    site: String,
    source: crate::prober::tls::ProbeTlsError,
}

impl Scheduler {
    /// Prepare every site of `config`; fails before anything starts when a
    /// site cannot run, so a reload can keep the old schedule.
    pub fn prepare(
        config: &Config,
        pingers: Arc<Pingers>,
        results: Arc<Results>,
    ) -> Result<Prepared, ScheduleError> {
        let mut runners = Vec::with_capacity(config.sites.len());
        // Sites with the same trust settings share one TLS client config:
        // each holds a copy of the system's roots, which is not small.
        let mut tls_configs: HashMap<(bool, Option<PathBuf>), Arc<rustls::ClientConfig>> =
            HashMap::new();
        for site in &config.sites {
            let key = (site.tls.insecure_skip_verify, site.tls.ca_file.clone());
            let tls = match tls_configs.get(&key) {
                Some(c) => Arc::clone(c),
                None => {
                    let c = crate::prober::tls::client_config(&site.tls).map_err(|source| {
                        ScheduleError {
                            site: site.name.clone(),
                            source,
                        }
                    })?;
                    tls_configs.insert(key, Arc::clone(&c));
                    c
                }
            };
            runners.push(SiteRunner {
                prober: Arc::new(SiteProber {
                    site: site.clone(),
                    tls,
                    icmp: config.probe.icmp.clone(),
                    tcp: config.probe.tcp.clone(),
                    pingers: Arc::clone(&pingers),
                    tcp_always: false,
                }),
                results: Arc::clone(&results),
            });
        }
        Ok(Prepared { runners })
    }
}

/// A schedule ready to start.
pub struct Prepared {
    runners: Vec<SiteRunner>,
}

impl Prepared {
    pub fn start(self) -> Scheduler {
        let n = self.runners.len().max(1) as u32;
        let now = Instant::now();
        let tasks = self
            .runners
            .into_iter()
            .enumerate()
            .map(|(i, runner)| {
                // Even spread: site i of n starts i/n of its interval in.
                let offset = runner.prober.site.interval / n * i as u32;
                tokio::spawn(runner.run(now + offset))
            })
            .collect();
        Scheduler { tasks }
    }
}

impl SiteRunner {
    async fn run(self, first: Instant) {
        let site = &self.prober.site;
        let mut ticker = tokio::time::interval_at(first, site.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The last round, from before a reload too: its per-target state
        // (ICMP silence, admission, counters) carries over.
        let mut previous = self.results.site(&site.name).map(|e| e.result.clone());
        loop {
            ticker.tick().await;
            let result = self.prober.round(previous.as_ref()).await;
            let was_out = previous.as_ref().is_some_and(SiteResult::out_of_sockets);
            if result.out_of_sockets() && !was_out {
                let why = result
                    .targets
                    .iter()
                    .find(|t| t.unsent > 0)
                    .and_then(|t| t.http.detail.clone())
                    .unwrap_or_default();
                tracing::warn!(site = %site.name, error = %why, "probes cannot open sockets on this host (out of file descriptors or ports): their requests are not sent, and this vantage reads as cut off until they can");
            }
            previous = Some(result.clone());
            let rendered = render::render(&site.name, &result);
            self.results.record(&site.name, result, rendered);
        }
    }
}
