// Why one file: ~310 lines of code; the rest is its tests.
//! One probe round of a site: every (path, address) probed at once (HTTP,
//! ICMP, and TCP handshakes where ICMP cannot measure the path), then what
//! needs the whole round or the rounds before it: the forwarding failure of
//! each proxy address, whether each origin admits our direct probes, which
//! addresses are ICMP-silent, and the running counters. The scheduler runs
//! rounds on each site's interval; `diagnose` runs one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use crate::config::{Address, EchoSettings, Site};
use crate::diagnosis::answer::{self, Kind};
use crate::diagnosis::forwarding;
use crate::prober::edges::{Edges, ProxyAddresses};
use crate::prober::probe::http::{self, Destination};
use crate::prober::probe::icmp::Pingers;
use crate::prober::probe::{tcp, EchoRound, ErrorKind, HttpOutcome, Path};
use crate::prober::results::{SiteResult, TargetResult, Totals};

/// What a round of one site needs.
pub struct SiteProber {
    pub site: Site,
    pub tls: Arc<rustls::ClientConfig>,
    pub icmp: EchoSettings,
    pub tcp: EchoSettings,
    pub pingers: Arc<Pingers>,
    /// Run the TCP handshakes on every target, whatever ICMP does: for a
    /// one-off round (`diagnose`), which has no earlier round to learn from.
    pub tcp_always: bool,
    /// The proxy's addresses by DNS, when the site lists none
    /// (`Edges::for_site`).
    pub edges: Option<Edges>,
}

/// What one probe task returns.
struct Probed {
    path: Path,
    label: String,
    /// Every HTTP request of the round, in the order they were sent.
    requests: Vec<HttpOutcome>,
    icmp: Option<EchoRound>,
    tcp: Option<EchoRound>,
}

impl SiteProber {
    /// One round; `previous` is this site's last round, whose per-target
    /// state (ICMP silence, admission, counters) carries over.
    pub async fn round(self: &Arc<Self>, previous: Option<&SiteResult>) -> SiteResult {
        let dns = match &self.edges {
            Some(edges) => Some(edges.current(self.site.max_proxy_addresses as usize).await),
            None => None,
        };
        let mut probes = JoinSet::new();
        let targets = self
            .proxy_targets(dns.as_ref())
            .into_iter()
            .map(|t| (Path::Proxy, t))
            .chain(
                self.site
                    .origin
                    .iter()
                    .map(|a| (Path::Origin, Target::Pinned(*a))),
            );
        for (order, (path, target)) in targets.enumerate() {
            let me = Arc::clone(self);
            let label = label(&self.site, &target);
            let was_silent = previous
                .and_then(|p| find(p, path, &label))
                .is_some_and(|t| t.icmp_silent);
            probes.spawn(async move {
                let probed = me.probe_target(path, target, label, was_silent).await;
                (order, probed)
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = probes.join_next().await {
            match joined {
                Ok(p) => done.push(p),
                Err(e) => tracing::error!(site = %self.site.name, error = %e, "probe task failed"),
            }
        }
        done.sort_by_key(|(order, _)| *order);
        let mut result = judge_round(done.into_iter().map(|(_, p)| p).collect(), previous);
        result.proxy_dns = dns;
        result
    }

    /// The proxy path's targets: the configured addresses; else each
    /// address DNS answered, pinned; else the url host (an IP address,
    /// or a name that did not resolve).
    fn proxy_targets(&self, dns: Option<&ProxyAddresses>) -> Vec<Target> {
        if !self.site.proxy.is_empty() {
            return self
                .site
                .proxy
                .iter()
                .copied()
                .map(Target::Pinned)
                .collect();
        }
        match dns {
            None => vec![Target::Dns],
            Some(d) if d.probed.is_empty() => {
                vec![Target::Unresolved(d.failure.clone().unwrap_or_default())]
            }
            Some(d) => d
                .probed
                .iter()
                .map(|&ip| Target::Pinned(Address { ip, port: None }))
                .collect(),
        }
    }

    async fn probe_target(
        &self,
        path: Path,
        target: Target,
        label: String,
        was_silent: bool,
    ) -> Probed {
        let (address, destination) = match &target {
            Target::Pinned(a) => (Some(a), Destination::Pinned(a)),
            Target::Dns => (None, Destination::Dns),
            Target::Unresolved(why) => {
                return self.unresolved(path, label, why);
            }
        };
        let source = self.site.source_on(path);
        let port = self.site.port_on(path);
        // Several requests at once through the proxy: a fault that hits a
        // share of its requests (one banned forwarding IP of several)
        // shows within minutes; one straight to the origin.
        let n = match path {
            Path::Proxy => self.site.proxy_requests,
            Path::Origin => 1,
        };
        let http = futures_util::future::join_all(
            (0..n).map(|_| http::probe(&self.site, path, destination, &self.tls)),
        );
        let (http, icmp, tcp) = match address {
            // A known address: HTTP and the echoes at once.
            Some(a) => {
                let (http, (icmp, tcp)) =
                    tokio::join!(http, self.echoes(a.socket_addr(port), source, was_silent));
                (http, icmp, tcp)
            }
            // Found by DNS: echo what the HTTP probe resolved.
            None => {
                let http = http.await;
                let resolved = http.iter().find_map(|h| h.resolved);
                let (icmp, tcp) = match resolved {
                    Some(ip) => {
                        self.echoes(SocketAddr::new(ip, port), source, was_silent)
                            .await
                    }
                    None => (None, None),
                };
                (http, icmp, tcp)
            }
        };
        for h in &http {
            if let Some(err) = h.error {
                tracing::debug!(site = %self.site.name, %path, address = %label, error = %err,
                    detail = h.detail.as_deref().unwrap_or(""), "probe failed");
            }
        }
        Probed {
            path,
            label,
            requests: http,
            icmp,
            tcp,
        }
    }

    /// A proxy whose url host did not resolve: every request of the round
    /// fails as a probe that cannot resolve does, and none is sent.
    fn unresolved(&self, path: Path, label: String, why: &str) -> Probed {
        let failed = HttpOutcome {
            error: Some(ErrorKind::Dns),
            detail: Some(why.to_owned()),
            ..HttpOutcome::default()
        };
        tracing::debug!(site = %self.site.name, %path, address = %label, error = %ErrorKind::Dns,
            detail = why, "probe failed");
        Probed {
            path,
            label,
            requests: vec![failed; self.site.proxy_requests as usize],
            icmp: None,
            tcp: None,
        }
    }

    /// The ICMP round, and the TCP handshakes where ICMP cannot judge the
    /// path: the address was silent last round, or ICMP does not run.
    async fn echoes(
        &self,
        target: SocketAddr,
        source: Option<IpAddr>,
        was_silent: bool,
    ) -> (Option<EchoRound>, Option<EchoRound>) {
        let icmp_runs = self.site.icmp && self.pingers.healthy();
        let tcp_runs =
            self.tcp.enabled && (self.tcp_always || was_silent || !icmp_runs || !self.site.icmp);
        let wait = self.site.timeout.min(Duration::from_secs(5));
        let icmp = async {
            if !self.site.icmp {
                return None;
            }
            let (count, interval) = (self.icmp.count, self.icmp.interval);
            // A socket that cannot be opened is logged once by the pingers.
            self.pingers
                .round(target.ip(), source, count, interval, wait)
                .await
                .ok()
        };
        let tcp = async {
            if !tcp_runs {
                return None;
            }
            let (count, interval) = (self.tcp.count, self.tcp.interval);
            match tcp::round(target, source, count, interval, wait).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::debug!(site = %self.site.name, %target, error = %e, "TCP handshakes cannot run");
                    None
                }
            }
        };
        tokio::join!(icmp, tcp)
    }
}

/// Where one probe task goes.
enum Target {
    /// A configured address, or one DNS answered for the proxy.
    Pinned(Address),
    /// The url host as the probe resolves it: an IP address.
    Dns,
    /// The proxy's url host did not resolve: why.
    Unresolved(String),
}

/// The `address` label of a target: keyed by it, the state a round
/// carries to the next (counters, admission, ICMP silence) follows each
/// address, and an address gone from DNS takes its series with it.
fn label(site: &Site, target: &Target) -> String {
    match target {
        Target::Pinned(a) => a.to_string(),
        Target::Dns | Target::Unresolved(_) => site.host().to_owned(),
    }
}

fn find<'a>(round: &'a SiteResult, path: Path, label: &str) -> Option<&'a TargetResult> {
    round
        .targets
        .iter()
        .find(|t| t.path == path && t.address == label)
}

/// Everything a round decides from all its probes at once, and from the
/// state the previous round left.
fn judge_round(probed: Vec<Probed>, previous: Option<&SiteResult>) -> SiteResult {
    let mut requests = Vec::with_capacity(probed.len());
    let mut targets: Vec<TargetResult> = probed
        .into_iter()
        .map(|p| {
            let before = previous.and_then(|r| find(r, p.path, &p.label));
            let was_silent = before.is_some_and(|t| t.icmp_silent);
            let mut t = TargetResult {
                path: p.path,
                address: p.label,
                http: representative(&p.requests),
                requests: p.requests.len() as u32,
                failures: by_kind(&p.requests),
                unsent: p
                    .requests
                    .iter()
                    .filter(|h| h.error == Some(ErrorKind::LocalResource))
                    .count() as u32,
                icmp: p.icmp,
                tcp: p.tcp,
                icmp_silent: false,
                forwarding: [0; 2],
                admission: before.map(|t| t.admission).unwrap_or_default(),
                totals: before.map(|t| t.totals).unwrap_or_default(),
            };
            t.icmp_silent = icmp_silent(&t, was_silent);
            requests.push(p.requests);
            t
        })
        .collect();

    // The site worked through the proxy when some proxy address served
    // every request of the round.
    let site_worked = targets
        .iter()
        .any(|t| t.path == Path::Proxy && t.failed_requests() == 0);
    let failures: Vec<[u32; 2]> = targets
        .iter()
        .zip(&requests)
        .map(|(t, sent)| match t.path {
            Path::Proxy => forwarding::round_failures(t, sent, &targets),
            Path::Origin => [0; 2],
        })
        .collect();
    for (t, n) in targets.iter_mut().zip(failures) {
        t.forwarding = n;
        if t.path == Path::Origin {
            t.admission = t.admission.next(t.http.success(), site_worked, filtered(t));
        }
        count(t);
    }
    let blocked = targets.iter().any(|t| t.forwarding_failures() > 0);
    let mut result = SiteResult::new(targets, SystemTime::now());
    result.forwarding_ip_blocked = blocked;
    result
}

/// A round's failed requests that left this host, by kind.
fn by_kind(requests: &[HttpOutcome]) -> [u32; Kind::ALL.len()] {
    let mut out = [0; Kind::ALL.len()];
    let sent = requests
        .iter()
        .filter(|h| h.error != Some(ErrorKind::LocalResource));
    for k in sent.filter_map(answer::kind) {
        out[k.index()] += 1;
    }
    out
}

/// The outcome that stands for a round's requests in the gauges: the first
/// that failed, else the last.
fn representative(requests: &[HttpOutcome]) -> HttpOutcome {
    requests
        .iter()
        .find(|h| !h.success())
        .or(requests.last())
        .cloned()
        .expect("every target sends at least one request")
}

/// An address is ICMP-silent when no echo came back while other packets to
/// it did (the HTTP probe connected, or a handshake was answered), and it
/// stays so until an echo reply comes back. A path that carries nothing at
/// all is down, which says nothing about ICMP.
fn icmp_silent(t: &TargetResult, was_silent: bool) -> bool {
    match t.icmp {
        // ICMP did not run: nothing new about it.
        None => was_silent,
        Some(icmp) if icmp.received > 0 => false,
        Some(_) => was_silent || t.http.reached() || t.tcp.is_some_and(|r| r.received > 0),
    }
}

/// The direct probe's connect timed out while the host answered echoes:
/// its web port drops our packets, not the host or the path.
fn filtered(t: &TargetResult) -> bool {
    t.http.error == Some(ErrorKind::ConnectTimeout)
        && (t.icmp.is_some_and(|r| r.received > 0) || t.tcp.is_some_and(|r| r.received > 0))
}

fn count(t: &mut TargetResult) {
    let echoes = t.path_echoes().copied().filter(|e| e.received > 0);
    let totals: &mut Totals = &mut t.totals;
    totals.probes += u64::from(t.requests - t.unsent);
    for (total, n) in totals.failures.iter_mut().zip(t.failures) {
        *total += u64::from(n);
    }
    for (total, n) in totals.forwarding.iter_mut().zip(t.forwarding) {
        *total += u64::from(n);
    }
    if let Some(e) = echoes {
        totals.path_echoes_sent += u64::from(e.sent);
        totals.path_echoes_lost += u64::from(e.sent - e.received);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prober::probe::Phases;

    fn http(error: Option<ErrorKind>) -> HttpOutcome {
        HttpOutcome {
            resolved: None,
            status: error.is_none().then_some(200),
            phases: Phases::default(),
            duration: Duration::from_millis(5),
            error,
            detail: None,
            proxy_signature: None,
            cert_not_after: None,
        }
    }

    fn echoes(sent: u32, received: u32) -> Option<EchoRound> {
        Some(EchoRound {
            sent,
            received,
            rtt: None,
        })
    }

    fn probed(path: Path, error: Option<ErrorKind>, icmp: Option<EchoRound>) -> Probed {
        Probed {
            path,
            label: path.as_str().into(),
            requests: vec![http(error)],
            icmp,
            tcp: None,
        }
    }

    /// A round of one proxy and one origin target: (error, ICMP) of each.
    fn round2(
        proxy: (Option<ErrorKind>, Option<EchoRound>),
        origin: (Option<ErrorKind>, Option<EchoRound>),
        previous: Option<&SiteResult>,
    ) -> SiteResult {
        judge_round(
            vec![
                probed(Path::Proxy, proxy.0, proxy.1),
                probed(Path::Origin, origin.0, origin.1),
            ],
            previous,
        )
    }

    #[test]
    fn an_address_that_drops_echoes_but_serves_is_silent_until_it_answers() {
        let r1 = round2((None, echoes(10, 0)), (None, echoes(10, 10)), None);
        assert!(r1.targets[0].icmp_silent);
        assert!(!r1.targets[1].icmp_silent);
        // Silent: its echoes judge nothing, so nothing is counted as lost.
        assert_eq!(r1.targets[0].totals.path_echoes_lost, 0);
        assert_eq!(r1.targets[1].totals.path_echoes_sent, 10);

        // Down now (no connect, no echo): still silent, not newly lossy.
        let r2 = round2(
            (Some(ErrorKind::ConnectTimeout), echoes(10, 0)),
            (None, echoes(10, 10)),
            Some(&r1),
        );
        assert!(r2.targets[0].icmp_silent);
        // One echo reply ends it.
        let r3 = round2((None, echoes(10, 1)), (None, echoes(10, 10)), Some(&r2));
        assert!(!r3.targets[0].icmp_silent);
        assert_eq!(r3.targets[0].totals.path_echoes_lost, 9);
        assert_eq!(r3.targets[0].totals.probes, 3);
        assert_eq!(r3.targets[0].totals.failures.iter().sum::<u64>(), 1);
    }

    #[test]
    fn a_path_that_carries_nothing_is_not_counted_as_loss() {
        let r = round2(
            (None, echoes(10, 10)),
            (Some(ErrorKind::ConnectTimeout), echoes(10, 0)),
            None,
        );
        assert!(!r.targets[1].icmp_silent);
        assert_eq!(r.targets[1].totals.path_echoes_sent, 0);
    }

    #[test]
    fn an_origin_that_never_answers_us_while_the_site_works_refuses_us() {
        let mut last = None;
        for round in 1..=REFUSED_ROUNDS {
            let r = round2(
                (None, None),
                (Some(ErrorKind::ConnectTimeout), None),
                last.as_ref(),
            );
            assert_eq!(
                r.targets[1].admission.refused,
                round == REFUSED_ROUNDS,
                "round {round}"
            );
            last = Some(r);
        }
        // The site breaks too: still refused, held until a direct answer.
        let r = round2(
            (Some(ErrorKind::HttpStatus), None),
            (Some(ErrorKind::ConnectTimeout), None),
            last.as_ref(),
        );
        assert!(r.targets[1].admission.refused);
        let r = round2((None, None), (None, None), Some(&r));
        assert!(!r.targets[1].admission.refused);
        assert!(r.targets[1].admission.ever_answered);
    }

    #[test]
    fn a_web_port_that_drops_us_while_the_host_answers_refuses_us_at_once() {
        let r = round2(
            (Some(ErrorKind::HttpStatus), None),
            (Some(ErrorKind::ConnectTimeout), echoes(10, 10)),
            None,
        );
        assert!(r.targets[1].admission.refused);
        // The host does not answer echoes either: down, not filtering.
        let r = round2(
            (Some(ErrorKind::HttpStatus), None),
            (Some(ErrorKind::ConnectTimeout), echoes(10, 0)),
            None,
        );
        assert!(!r.targets[1].admission.refused);
        // It answered us before: a change (an overloaded listen queue, a
        // new rule), which stays evidence.
        let ok = round2((None, None), (None, echoes(10, 10)), None);
        let r = round2(
            (Some(ErrorKind::HttpStatus), None),
            (Some(ErrorKind::ConnectTimeout), echoes(10, 10)),
            Some(&ok),
        );
        assert!(!r.targets[1].admission.refused);
    }

    #[test]
    fn an_origin_that_answered_before_and_dies_with_the_site_is_not_refusing() {
        let ok = round2((None, None), (None, None), None);
        let mut last = ok;
        // The origin dies; the proxy fails with it, now and then working
        // (another origin, a retry): never a refusal.
        for i in 0..30 {
            let proxy = if i % 2 == 0 {
                None
            } else {
                Some(ErrorKind::HttpStatus)
            };
            last = round2(
                (proxy, None),
                (Some(ErrorKind::ConnectRefused), None),
                Some(&last),
            );
            assert!(!last.targets[1].admission.refused, "round {i}");
        }
    }

    /// Proxy targets by address, as DNS answers them: (address, error).
    fn edges_round(
        edges: &[(&str, Option<ErrorKind>)],
        previous: Option<&SiteResult>,
    ) -> SiteResult {
        let mut targets: Vec<Probed> = edges
            .iter()
            .map(|(address, error)| Probed {
                label: (*address).into(),
                ..probed(Path::Proxy, *error, echoes(10, 0))
            })
            .collect();
        targets.push(probed(Path::Origin, None, None));
        judge_round(targets, previous)
    }

    #[test]
    fn the_state_a_round_carries_follows_each_address_and_leaves_with_it() {
        let (a, b, c) = ("198.51.100.1", "198.51.100.2", "198.51.100.3");
        let r1 = edges_round(&[(a, Some(ErrorKind::HttpStatus)), (b, None)], None);
        assert!(r1.targets[0].icmp_silent && r1.targets[1].icmp_silent);
        // DNS now answers b and c: a's series and state are gone, b keeps
        // its own, c starts afresh.
        let r2 = edges_round(&[(b, None), (c, Some(ErrorKind::HttpStatus))], Some(&r1));
        let proxies: Vec<&TargetResult> = r2
            .targets
            .iter()
            .filter(|t| t.path == Path::Proxy)
            .collect();
        assert_eq!(
            proxies
                .iter()
                .map(|t| t.address.as_str())
                .collect::<Vec<_>>(),
            [b, c]
        );
        assert_eq!(proxies[0].totals.probes, 2);
        assert_eq!(proxies[0].totals.failures.iter().sum::<u64>(), 0);
        assert_eq!(proxies[1].totals.probes, 1);
        assert_eq!(proxies[1].totals.failures.iter().sum::<u64>(), 1);
        // a came back: nothing of its old failures is left.
        let r3 = edges_round(&[(a, None)], Some(&r2));
        assert_eq!(r3.targets[0].totals.probes, 1);
        assert_eq!(r3.targets[0].totals.failures.iter().sum::<u64>(), 0);
    }

    const REFUSED_ROUNDS: u32 = crate::prober::results::REFUSED_AFTER_ROUNDS;
}
