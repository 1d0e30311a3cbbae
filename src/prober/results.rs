//! The latest probe results, written by the scheduler's site tasks and read
//! by a scrape. A scrape never waits on a probe: it only takes a read lock
//! long enough to clone the entries the last rounds left here. Each entry
//! carries its own rendering as metrics, made once when the round ends, so
//! a scrape only concatenates.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

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
    /// The proxy's addresses by DNS, when the site lists none.
    pub proxy_dns: Option<ProxyAddresses>,
}

impl SiteResult {
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

#[derive(Default)]
pub struct Results {
    sites: RwLock<BTreeMap<String, Arc<SiteEntry>>>,
}

impl Results {
    pub fn new() -> Results {
        Results::default()
    }

    /// Keep `result` as the site's latest.
    pub fn record(&self, site: &str, result: SiteResult) {
        let labels = Labels::new(site, &result);
        let entry = Arc::new(SiteEntry { result, labels });
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        match sites.get_mut(site) {
            Some(slot) => *slot = entry,
            None => {
                sites.insert(site.to_owned(), entry);
            }
        }
    }

    /// Forget sites that are no longer configured, after a reload.
    pub fn retain_sites(&self, keep: impl Fn(&str) -> bool) {
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        sites.retain(|name, _| keep(name));
    }

    /// The latest entries, in site-name order.
    pub fn snapshot(&self) -> Vec<Arc<SiteEntry>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.values().cloned().collect()
    }

    /// The latest result of one site.
    pub fn site(&self, name: &str) -> Option<Arc<SiteEntry>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.get(name).cloned()
    }
}
