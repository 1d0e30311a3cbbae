//! Runs every site's probes in the background: one task per site, on the
//! site's own interval, with start times spread over the interval so a
//! thousand sites do not fire at once. Each round probes every (path,
//! address) of the site at the same time, decides the forwarding flag from
//! that same round, and stores the results.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::Config;
use crate::diagnosis::{self, Evidence};
use crate::prober::probe::icmp::Pingers;
use crate::prober::results::{Results, RoundSummary, SiteResult};
use crate::prober::round::SiteProber;

/// The running site tasks, by site name; dropping it stops them.
#[derive(Default)]
pub struct Scheduler {
    running: BTreeMap<String, RunningSite>,
}

/// A site's task and what it was started with.
struct RunningSite {
    prober: Arc<SiteProber>,
    ca: Option<Arc<[u8]>>,
    task: JoinHandle<()>,
    /// When its first round was due: with the site's interval, its phase.
    first: Instant,
}

/// When the next round of a task started at `first` every `interval` is
/// due, after `now`.
fn next_round(first: Instant, interval: Duration, now: Instant) -> Instant {
    if first >= now || interval.is_zero() {
        return first;
    }
    let rounds = ((now - first).as_nanos() / interval.as_nanos()) as u32 + 1;
    first + interval * rounds
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.task.abort();
        }
    }
}

/// A site's task: its prober, and where its rounds go.
struct SiteRunner {
    prober: Arc<SiteProber>,
    /// The CA file's contents when the site names one: a new certificate
    /// in the same file is a change.
    ca: Option<Arc<[u8]>>,
    results: Arc<Results>,
}

impl RunningSite {
    /// Everything the site's rounds depend on is as `runner` has it: the
    /// site keeps running as it was.
    fn same_as(&self, runner: &SiteRunner) -> bool {
        let (a, b) = (&self.prober, &runner.prober);
        a.site == b.site && a.icmp == b.icmp && a.tcp == b.tcp && self.ca == runner.ca
    }
}

/// Errors that stop a config from being scheduled (it parsed, but a file it
/// names cannot be used).
#[derive(Debug, thiserror::Error)]
#[error("site {site}: {source}")]
pub struct ScheduleError {
    site: String,
    source: crate::prober::tls::ProbeTlsError,
}

/// What applying a schedule changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Sites whose settings did not change: they keep their schedule.
    pub kept: usize,
    /// Sites whose settings changed: started anew at their old phase.
    pub restarted: usize,
    pub started: usize,
    pub stopped: usize,
}

impl Changes {
    pub fn none(&self) -> bool {
        self.restarted == 0 && self.started == 0 && self.stopped == 0
    }
}

impl Scheduler {
    /// A running site's configuration.
    pub fn site(&self, name: &str) -> Option<&crate::config::Site> {
        self.running.get(name).map(|r| &r.prober.site)
    }

    /// How many sites run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

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
        // Each CA file read once, however many sites name it.
        let mut cas: HashMap<PathBuf, Option<Arc<[u8]>>> = HashMap::new();
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
            let ca = site.tls.ca_file.as_ref().and_then(|f| {
                cas.entry(f.clone())
                    .or_insert_with(|| std::fs::read(f).ok().map(Arc::from))
                    .clone()
            });
            runners.push(SiteRunner {
                ca,
                prober: Arc::new(SiteProber {
                    site: site.clone(),
                    tls,
                    icmp: config.probe.icmp.clone(),
                    tcp: config.probe.tcp.clone(),
                    pingers: Arc::clone(&pingers),
                    tcp_always: false,
                    edges: crate::prober::edges::Edges::for_site(site),
                }),
                results: Arc::clone(&results),
            });
        }
        Ok(Prepared { runners })
    }

    /// Run `prepared` in place of what runs now. A site whose settings did
    /// not change keeps its task and its schedule; a changed one starts
    /// anew when its old task's next round was due (so a site changed at
    /// every reload still runs on time); a new one starts at its place in
    /// the even spread over the interval; a site gone stops.
    pub fn apply(&mut self, prepared: Prepared) -> Changes {
        let now = Instant::now();
        let n = prepared.runners.len().max(1) as u32;
        let mut changes = Changes::default();
        let mut next = BTreeMap::new();
        for (i, runner) in prepared.runners.into_iter().enumerate() {
            let site = &runner.prober.site;
            let name = site.name.clone();
            let old = self.running.remove(&name);
            let first = match old {
                Some(old) if old.same_as(&runner) => {
                    changes.kept += 1;
                    next.insert(name, old);
                    continue;
                }
                Some(old) => {
                    changes.restarted += 1;
                    old.task.abort();
                    next_round(old.first, old.prober.site.interval, now)
                }
                None => {
                    changes.started += 1;
                    // Even spread: site i of n starts i/n of its interval in.
                    now + site.interval / n * i as u32
                }
            };
            let (prober, ca) = (Arc::clone(&runner.prober), runner.ca.clone());
            let task = tokio::spawn(runner.run(first));
            next.insert(
                name,
                RunningSite {
                    prober,
                    ca,
                    task,
                    first,
                },
            );
        }
        for gone in std::mem::take(&mut self.running).into_values() {
            changes.stopped += 1;
            gone.task.abort();
        }
        self.running = next;
        changes
    }
}

/// A schedule ready to start.
pub struct Prepared {
    runners: Vec<SiteRunner>,
}

impl SiteRunner {
    async fn run(self, first: Instant) {
        let site = &self.prober.site;
        let mut ticker = tokio::time::interval_at(first, site.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The last round, from before a reload too: its per-target state
        // (ICMP silence, admission, counters) carries over.
        let mut previous = self.results.site(&site.name).map(|e| e.result.clone());
        let watches = crate::prober::keepalive::Watches::default();
        let traces = crate::prober::trace::Traces::default();
        // Ends with this task: a restarted or removed site's watch too.
        let _watch = AbortOnDrop(tokio::spawn(crate::prober::keepalive::watch(
            Arc::clone(&self.prober),
            Arc::clone(&watches),
        )));
        loop {
            ticker.tick().await;
            let mut result = self.prober.round(previous.as_ref()).await;
            if let Some(proxy_idle) = site.proxy_idle_timeout {
                let now = watches.lock().unwrap_or_else(|p| p.into_inner()).clone();
                result.keepalive = Some((proxy_idle, now));
            }
            traces.after_round(&self.prober, &result);
            result.traces = traces.current();
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
            let summary = summarize(&self.results, &result);
            self.results.record(&site.name, result, summary);
        }
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A round in a few words, for the site's history: judged as `diagnose`
/// judges a round, with the vantage judged over every site's latest result.
fn summarize(results: &Results, result: &SiteResult) -> RoundSummary {
    let cut_off = results.vantage_cut_off(|rounds| diagnosis::vantage_cut_off(rounds));
    let verdict = diagnosis::judge(&Evidence::from_round(result, false, None));
    RoundSummary::new(
        result,
        verdict.first().map(|f| f.reason.as_str()),
        !verdict.unexplained.is_empty(),
        cut_off,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_round_keeps_the_phase() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Not started yet: its first round.
        assert_eq!(next_round(t0 + s(5), s(15), t0), t0 + s(5));
        // Started: the next multiple of the interval after now.
        assert_eq!(next_round(t0, s(15), t0 + s(1)), t0 + s(15));
        assert_eq!(next_round(t0, s(15), t0 + s(15)), t0 + s(30));
        assert_eq!(next_round(t0, s(15), t0 + s(44)), t0 + s(45));
    }
}
