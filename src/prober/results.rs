//! The latest probe results, written by the scheduler's site tasks and read
//! by a scrape. A scrape never waits on a probe: it only takes a read lock
//! long enough to clone the entries the last rounds left here. Each entry
//! carries its own rendering as metrics, made once when the round ends, so
//! a scrape only concatenates. Each site also keeps a short history: the
//! verdicts of its last [`KEPT_ROUNDS`] rounds, for the status page.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::diagnosis::answer::Kind;
use crate::exposition::escape;
use crate::prober::edges::ProxyAddresses;
use crate::prober::probe::{EchoRound, ErrorKind, HttpOutcome, Path};

/// What one round found on one (path, address) of a site, and what the
/// rounds before it left: the state that needs history to judge.
#[derive(Clone, Debug)]
pub struct TargetResult {
    pub path: Path,
    /// The `address` label: the configured address, or the one DNS
    /// answered for a proxy found by DNS (the URL host when it answered
    /// none).
    pub address: String,
    /// The round's HTTP outcome: its first failed request, else its last.
    pub http: HttpOutcome,
    /// HTTP requests of this round (several through each proxy address),
    /// and those that failed, by kind (indexed as `answer::Kind::ALL`).
    pub requests: u32,
    pub failures: [u32; Kind::ALL.len()],
    /// Requests that never left this host (no socket: `local_resource`).
    /// They fail the probe but are no evidence about the target: the
    /// running counts leave them out.
    pub unsent: u32,
    /// `None` when ICMP is off for the site or could not run.
    pub icmp: Option<EchoRound>,
    /// TCP handshakes to the web port: run where ICMP cannot measure the
    /// path (an ICMP-silent address, ICMP off or unavailable).
    pub tcp: Option<EchoRound>,
    /// The address never answers ICMP echoes while other packets to it get
    /// through: silent, not lossy. Kept from round to round until an echo
    /// reply comes back.
    pub icmp_silent: bool,
    /// Proxy path: requests of this round that failed at the
    /// proxy-to-origin hop while every origin answered straight, by
    /// `forwarding::HopFailure` (gateway, refused).
    pub forwarding: [u32; 2],
    /// Origin path: whether this origin admits the prober's direct probes.
    pub admission: Admission,
    pub totals: Totals,
}

impl TargetResult {
    /// A target's outcome of one request, and nothing else yet.
    pub fn new(path: Path, address: impl Into<String>, http: HttpOutcome) -> TargetResult {
        TargetResult {
            path,
            address: address.into(),
            http,
            requests: 1,
            failures: [0; Kind::ALL.len()],
            unsent: 0,
            icmp: None,
            tcp: None,
            icmp_silent: false,
            forwarding: [0; 2],
            admission: Admission::default(),
            totals: Totals::default(),
        }
    }

    pub fn failed_requests(&self) -> u32 {
        self.failures.iter().sum::<u32>() + self.unsent
    }

    pub fn forwarding_failures(&self) -> u32 {
        self.forwarding.iter().sum()
    }

    /// The echoes that measure this path's loss and jitter: ICMP, unless
    /// the address is ICMP-silent, then the TCP handshakes. `None` when
    /// neither ran this round.
    pub fn path_echoes(&self) -> Option<&EchoRound> {
        match (&self.icmp, &self.tcp) {
            (Some(icmp), _) if !self.icmp_silent => Some(icmp),
            (_, Some(tcp)) => Some(tcp),
            _ => None,
        }
    }

    /// Some packet of this round came back from the address.
    pub fn reached(&self) -> bool {
        self.http.reached()
            || self.icmp.is_some_and(|r| r.received > 0)
            || self.tcp.is_some_and(|r| r.received > 0)
    }
}

/// Whether an origin admits the prober's direct probes. An origin that
/// admits only the forwarding ranges fails every direct probe while the
/// site works through the proxy; its direct failures then say nothing
/// about the origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// A direct probe of this address succeeded since the exporter started.
    pub ever_answered: bool,
    /// In the current run of failed direct probes: rounds in which the site
    /// worked through the proxy, and rounds in which it failed.
    pub failed_while_site_worked: u32,
    pub failed_while_site_failed: u32,
    /// Held until a direct probe succeeds again.
    pub refused: bool,
}

/// Direct failures while the site works, in a run, that show an origin
/// that never answered us refuses the prober: a few rounds, so that one
/// unlucky round (the origin dying between the two probes) does not.
pub const REFUSED_AFTER_ROUNDS: u32 = 3;
/// The same for an origin that answered us before (its firewall changed):
/// many more rounds, and the site must not have failed once meanwhile, so
/// that one dead origin of several, which makes the proxy fail now and
/// then, keeps counting as an origin failure.
pub const REFUSED_AFTER_ROUNDS_ONCE_ANSWERED: u32 = 20;

impl Admission {
    /// The state after a round in which the direct probe `answered` (or
    /// not) while the site `site_worked` through the proxy (or not).
    /// `filtered`: the connection timed out while the host answered echoes,
    /// so something on the way drops our packets to the web port only: an
    /// origin that never answered us and does that is refusing the prober.
    pub fn next(self, answered: bool, site_worked: bool, filtered: bool) -> Admission {
        if answered {
            return Admission {
                ever_answered: true,
                ..Admission::default()
            };
        }
        let mut a = self;
        if site_worked {
            a.failed_while_site_worked += 1;
        } else {
            a.failed_while_site_failed += 1;
        }
        a.refused = a.refused
            || (!a.ever_answered && filtered)
            || (!a.ever_answered && a.failed_while_site_worked >= REFUSED_AFTER_ROUNDS)
            || (a.failed_while_site_worked >= REFUSED_AFTER_ROUNDS_ONCE_ANSWERED
                && a.failed_while_site_failed == 0);
        a
    }
}

/// Counters of a target since the exporter started (or since the target
/// was first configured), carried from round to round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// HTTP requests, and those that failed, by kind.
    pub probes: u64,
    pub failures: [u64; Kind::ALL.len()],
    /// Proxy path: requests that failed at the forwarding hop (above).
    pub forwarding: [u64; 2],
    /// Echoes that judged the path's loss, and those lost; rounds that got
    /// no reply at all are left out: the path was down or filtered then,
    /// which other evidence judges, not lossy.
    pub path_echoes_sent: u64,
    pub path_echoes_lost: u64,
}

/// What the last complete round of a site found.
#[derive(Clone, Debug)]
pub struct SiteResult {
    pub targets: Vec<TargetResult>,
    /// Some request through some proxy address failed at the forwarding
    /// hop in this round.
    pub forwarding_ip_blocked: bool,
    pub finished: SystemTime,
    /// The proxy's idle timeout and the origin addresses' watches, copied
    /// at the round's end; empty when the site watches none.
    pub keepalive: Option<(
        std::time::Duration,
        Vec<crate::prober::keepalive::OriginIdle>,
    )>,
    /// The last path probe of each target whose echoes were lost.
    pub traces: Vec<crate::prober::trace::TargetTrace>,
    /// The proxy's addresses by DNS, when the site lists none.
    pub proxy_dns: Option<ProxyAddresses>,
}

impl SiteResult {
    /// A round's targets, finished at `finished`, before the round's
    /// judgement (the forwarding flag) and what runs beside the rounds
    /// (keep-alive watches, path probes, DNS) are added.
    pub fn new(targets: Vec<TargetResult>, finished: SystemTime) -> SiteResult {
        SiteResult {
            targets,
            forwarding_ip_blocked: false,
            finished,
            keepalive: None,
            traces: Vec::new(),
            proxy_dns: None,
        }
    }

    /// Some target answered anything in this round.
    pub fn reached_anything(&self) -> bool {
        self.targets.iter().any(TargetResult::reached)
    }

    /// Some request of this round could not get a socket on this host.
    pub fn out_of_sockets(&self) -> bool {
        self.targets.iter().any(|t| t.unsent > 0)
    }

    /// Every target failed for a reason on this host (no route, no name
    /// resolution, a source address it lacks).
    pub fn failed_locally(&self) -> bool {
        !self.targets.is_empty()
            && self
                .targets
                .iter()
                .all(|t| t.http.error.is_some_and(ErrorKind::is_local))
    }
}

/// A site's latest result, with the label sets its series are shown with.
#[derive(Debug)]
pub struct SiteEntry {
    pub result: SiteResult,
    pub labels: Labels,
}

/// A site's label sets, escaped once per round: `site="…"` and one
/// `site="…",path="…",address="…"` per target, in the result's order.
#[derive(Debug)]
pub struct Labels {
    pub site: String,
    pub targets: Vec<String>,
}

impl Labels {
    pub fn new(site: &str, result: &SiteResult) -> Labels {
        let site = escape(site);
        let targets = result
            .targets
            .iter()
            .map(|t| {
                format!(
                    "site=\"{site}\",path=\"{}\",address=\"{}\"",
                    t.path.as_str(),
                    escape(&t.address)
                )
            })
            .collect();
        Labels {
            site: format!("site=\"{site}\""),
            targets,
        }
    }
}

/// Rounds of each site whose verdict is kept for the status page.
pub const KEPT_ROUNDS: usize = 10;

/// How long a judgement of the whole vantage (cut off or not) is reused
/// by the rounds that end meanwhile.
const VANTAGE_REUSED: Duration = Duration::from_secs(1);

/// One past round of a site, in a few words: what the status page's
/// history shows. Small, since [`KEPT_ROUNDS`] of them are kept per site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundSummary {
    pub finished: SystemTime,
    /// The reason of the verdict's first finding, judged as if the vantage
    /// were not cut off; `None` without one.
    pub reason: Option<&'static str>,
    /// A failure that no cause explains.
    pub unexplained: bool,
    /// The vantage was judged cut off when the round ended: that is then
    /// the round's verdict, whatever `reason` says.
    pub cut_off: bool,
    /// HTTP requests of the round, and those that failed.
    pub requests: u32,
    pub failed: u32,
}

impl RoundSummary {
    pub fn new(
        result: &SiteResult,
        reason: Option<&'static str>,
        unexplained: bool,
        cut_off: bool,
    ) -> RoundSummary {
        RoundSummary {
            finished: result.finished,
            reason,
            unexplained,
            cut_off,
            requests: result.targets.iter().map(|t| t.requests).sum(),
            failed: result
                .targets
                .iter()
                .map(TargetResult::failed_requests)
                .sum(),
        }
    }

    /// Healthy, were the vantage not cut off.
    pub fn healthy_if_not_cut_off(&self) -> bool {
        self.reason.is_none() && !self.unexplained
    }
}

/// A site's latest entry and its last rounds, oldest first.
struct Slot {
    latest: Arc<SiteEntry>,
    history: VecDeque<RoundSummary>,
}

#[derive(Default)]
pub struct Results {
    sites: RwLock<BTreeMap<String, Slot>>,
    /// The last judgement of the vantage, and when it was made.
    vantage: Mutex<Option<(Instant, bool)>>,
}

impl Results {
    pub fn new() -> Results {
        Results::default()
    }

    /// Keep `result` as the site's latest, and `summary` as its newest
    /// round in the history (the oldest is dropped past [`KEPT_ROUNDS`]).
    pub fn record(&self, site: &str, result: SiteResult, summary: RoundSummary) {
        let labels = Labels::new(site, &result);
        let latest = Arc::new(SiteEntry { result, labels });
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        match sites.get_mut(site) {
            Some(slot) => {
                slot.latest = latest;
                if slot.history.len() == KEPT_ROUNDS {
                    slot.history.pop_front();
                }
                slot.history.push_back(summary);
            }
            None => {
                let mut history = VecDeque::with_capacity(KEPT_ROUNDS);
                history.push_back(summary);
                sites.insert(site.to_owned(), Slot { latest, history });
            }
        }
    }

    /// Forget sites that are no longer configured, after a reload: their
    /// history goes with them.
    pub fn retain_sites(&self, keep: impl Fn(&str) -> bool) {
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        sites.retain(|name, _| keep(name));
    }

    /// The latest entries, in site-name order.
    pub fn snapshot(&self) -> Vec<Arc<SiteEntry>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.values().map(|s| Arc::clone(&s.latest)).collect()
    }

    /// Every site's name, latest entry and newest round, in name order.
    pub fn overview(&self) -> Vec<(String, Arc<SiteEntry>, RoundSummary)> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites
            .iter()
            .filter_map(|(name, s)| {
                let last = *s.history.back()?;
                Some((name.clone(), Arc::clone(&s.latest), last))
            })
            .collect()
    }

    /// The latest result of one site.
    pub fn site(&self, name: &str) -> Option<Arc<SiteEntry>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.get(name).map(|s| Arc::clone(&s.latest))
    }

    /// The last rounds of one site, oldest first.
    pub fn history(&self, name: &str) -> Vec<RoundSummary> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites
            .get(name)
            .map(|s| s.history.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether the vantage is cut off, as `judge` finds it over every
    /// site's latest result; the answer is reused for a second, so that
    /// thousands of rounds ending do not each walk every site.
    pub fn vantage_cut_off(
        &self,
        judge: impl FnOnce(&mut dyn Iterator<Item = &SiteResult>) -> bool,
    ) -> bool {
        let mut last = self.vantage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, cut_off)) = *last {
            if at.elapsed() < VANTAGE_REUSED {
                return cut_off;
            }
        }
        let cut_off = {
            let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
            judge(&mut sites.values().map(|s| &s.latest.result))
        };
        *last = Some((Instant::now(), cut_off));
        cut_off
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn round(at: u64) -> (SiteResult, RoundSummary) {
        let result = SiteResult::new(Vec::new(), UNIX_EPOCH + Duration::from_secs(at));
        let summary = RoundSummary::new(&result, None, false, false);
        (result, summary)
    }

    #[test]
    fn history_is_bounded_and_goes_with_its_site() {
        let results = Results::new();
        for at in 0..25 {
            let (r, s) = round(at);
            results.record("a", r, s);
        }
        let (r, s) = round(7);
        results.record("b", r, s);
        let a = results.history("a");
        assert_eq!(a.len(), KEPT_ROUNDS);
        assert_eq!(a[0].finished, UNIX_EPOCH + Duration::from_secs(15));
        assert_eq!(a[9].finished, UNIX_EPOCH + Duration::from_secs(24));
        let names: Vec<String> = results.overview().into_iter().map(|o| o.0).collect();
        assert_eq!(names, ["a", "b"]);
        results.retain_sites(|n| n == "b");
        assert!(results.history("a").is_empty());
        assert!(results.site("a").is_none());
        assert_eq!(results.history("b").len(), 1);
    }

    #[test]
    fn the_vantage_judgement_is_reused_for_a_while() {
        let results = Results::new();
        let (r, s) = round(1);
        results.record("a", r, s);
        assert!(results.vantage_cut_off(|rounds| rounds.count() == 1));
        // Within the second: the first answer, the judge not called.
        assert!(results.vantage_cut_off(|_| unreachable!()));
    }
}
