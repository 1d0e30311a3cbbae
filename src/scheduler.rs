//! Runs every site's probes in the background: one task per site, on the
//! site's own interval, with start times spread over the interval so a
//! thousand sites do not fire at once. Each round probes every (path,
//! address) of the site at the same time, decides the forwarding flag from
//! that same round, and stores the results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus::IntGauge;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{Address, Config, IcmpSettings, Site};
use crate::diagnosis;
use crate::probe::http::{self, Destination};
use crate::probe::icmp::Pingers;
use crate::probe::{HttpOutcome, Path};
use crate::results::{Results, SiteResult, TargetResult};

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

/// Everything a site's task needs, built once per (re)load.
struct SiteRunner {
    site: Site,
    tls: Arc<rustls::ClientConfig>,
    icmp: IcmpSettings,
    pingers: Arc<Pingers>,
    results: Arc<Results>,
    /// `collector_success{collector="icmp"}`, when some site uses ICMP.
    icmp_up: Option<IntGauge>,
}

/// Errors that stop a config from being scheduled (it parsed, but a file it
/// names cannot be used).
#[derive(Debug, thiserror::Error)]
#[error("site {site}: {source}")]
pub struct ScheduleError {
    site: String,
    source: crate::tls::TlsError,
}

impl Scheduler {
    /// Prepare every site of `config`; fails before anything starts when a
    /// site cannot run, so a reload can keep the old schedule.
    pub fn prepare(
        config: &Config,
        pingers: Arc<Pingers>,
        results: Arc<Results>,
        icmp_up: Option<IntGauge>,
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
                    let c =
                        crate::tls::client_config(&site.tls).map_err(|source| ScheduleError {
                            site: site.name.clone(),
                            source,
                        })?;
                    tls_configs.insert(key, Arc::clone(&c));
                    c
                }
            };
            runners.push(Arc::new(SiteRunner {
                site: site.clone(),
                tls,
                icmp: config.probe.icmp.clone(),
                pingers: Arc::clone(&pingers),
                results: Arc::clone(&results),
                icmp_up: icmp_up.clone(),
            }));
        }
        Ok(Prepared { runners })
    }
}

/// A schedule ready to start.
pub struct Prepared {
    runners: Vec<Arc<SiteRunner>>,
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
                let offset = runner.site.interval / n * i as u32;
                tokio::spawn(runner.run(now + offset))
            })
            .collect();
        Scheduler { tasks }
    }
}

impl SiteRunner {
    async fn run(self: Arc<Self>, first: Instant) {
        let mut ticker = tokio::time::interval_at(first, self.site.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let result = self.round().await;
            self.results.record(&self.site.name, result);
        }
    }

    async fn round(self: &Arc<Self>) -> SiteResult {
        let mut probes = JoinSet::new();
        let proxies: Vec<Option<Address>> = if self.site.proxy.is_empty() {
            vec![None]
        } else {
            self.site.proxy.iter().cloned().map(Some).collect()
        };
        let targets = proxies.into_iter().map(|a| (Path::Proxy, a)).chain(
            self.site
                .origin
                .iter()
                .cloned()
                .map(|a| (Path::Origin, Some(a))),
        );
        for (order, (path, address)) in targets.enumerate() {
            let me = Arc::clone(self);
            probes.spawn(async move { (order, me.probe_target(path, address).await) });
        }
        let mut targets = Vec::new();
        while let Some(done) = probes.join_next().await {
            match done {
                Ok(t) => targets.push(t),
                Err(e) => tracing::error!(site = %self.site.name, error = %e, "probe task failed"),
            }
        }
        targets.sort_by_key(|(order, _)| *order);
        let targets: Vec<TargetResult> = targets.into_iter().map(|(_, t)| t).collect();
        let outcomes = |path: Path| -> Vec<HttpOutcome> {
            targets
                .iter()
                .filter(|t| t.path == path)
                .map(|t| t.http.clone())
                .collect()
        };
        let blocked =
            diagnosis::forwarding_ip_blocked(&outcomes(Path::Proxy), &outcomes(Path::Origin));
        SiteResult {
            targets,
            forwarding_ip_blocked: blocked,
            finished: SystemTime::now(),
        }
    }

    async fn probe_target(&self, path: Path, address: Option<Address>) -> TargetResult {
        let label = match &address {
            Some(a) => a.to_string(),
            None => self.site.host().to_owned(),
        };
        let destination = match &address {
            Some(a) => Destination::Pinned(a),
            None => Destination::Dns,
        };
        let ping_to = address.as_ref().map(|a| a.ip);
        let (outcome, icmp) = match ping_to {
            // A known address: HTTP and ICMP at once.
            Some(ip) => tokio::join!(
                http::probe(&self.site, destination, &self.tls),
                self.ping(ip)
            ),
            // Found by DNS: ping what the HTTP probe resolved.
            None => {
                let outcome = http::probe(&self.site, destination, &self.tls).await;
                let icmp = match outcome.resolved {
                    Some(ip) => self.ping(ip).await,
                    None => None,
                };
                (outcome, icmp)
            }
        };
        if let Some(err) = outcome.error {
            tracing::debug!(site = %self.site.name, %path, address = %label, error = %err,
                detail = outcome.detail.as_deref().unwrap_or(""), "probe failed");
        }
        TargetResult {
            path,
            address: label,
            http: outcome,
            icmp,
        }
    }

    async fn ping(&self, ip: std::net::IpAddr) -> Option<crate::probe::IcmpOutcome> {
        if !self.site.icmp {
            return None;
        }
        let wait = self.site.timeout.min(Duration::from_secs(5));
        let (count, interval) = (self.icmp.count, self.icmp.interval);
        let round = self
            .pingers
            .round(ip, self.site.source_address, count, interval, wait)
            .await;
        // A socket that cannot be opened is logged once by the pingers.
        if let Some(up) = &self.icmp_up {
            up.set(i64::from(self.pingers.healthy()));
        }
        round.ok()
    }
}
