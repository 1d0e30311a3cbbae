//! The addresses of a proxy found by DNS: a site with no `proxy` list is
//! reached through whatever its url host resolves to, and a CDN answers
//! with several edge addresses that change. Each is probed as its own
//! target, pinned to it; the answer (A and AAAA) is asked for again when
//! its shortest TTL runs out (within `MIN_TTL`..=`MAX_TTL`). A failed
//! resolution is retried with a growing pause and leaves the last good
//! addresses probed for `KEEP_AFTER_FAILURE`; then the proxy path fails
//! with the `dns` error kind, as a probe that cannot resolve does. Where
//! the resolver's settings cannot be read, the system's resolver answers,
//! without a TTL.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::config::LookupIpStrategy;
use hickory_resolver::lookup_ip::LookupIp;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use tokio::sync::Mutex;

use crate::config::Site;

/// An answer is asked for again no sooner than this, whatever its TTL.
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// ... and no later than this.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The first pause after a failed resolution; it doubles up to the cap.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// How long an answer of the system's resolver, which gives no TTL, is
/// kept: when the resolver's settings cannot be read here.
const SYSTEM_TTL: Duration = Duration::from_secs(30);
/// The last good addresses stay probed this long after the answer they
/// came from ran out while the resolver fails.
pub const KEEP_AFTER_FAILURE: Duration = Duration::from_secs(600);

/// The DNS state of one site's proxy, kept from round to round.
pub struct Edges {
    host: String,
    timeout: Duration,
    /// The site's `source_address`: only addresses of its family are
    /// probed.
    source: Option<IpAddr>,
    state: Mutex<State>,
}

/// What a round probes on the proxy path, and what the metrics show.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyAddresses {
    /// The addresses to probe, sorted: the first `max_proxy_addresses` of
    /// the last good answer. Empty when there is none to probe.
    pub probed: Vec<IpAddr>,
    /// How many addresses the last good answer held.
    pub found: usize,
    /// Why the last resolution failed; `None` when it answered.
    pub failure: Option<String>,
    /// When the addresses are asked for again.
    pub next: Option<SystemTime>,
}

#[derive(Default)]
struct State {
    resolver: Option<TokioResolver>,
    /// The last good answer, sorted, deduplicated.
    addresses: Vec<IpAddr>,
    /// When that answer runs out.
    expires: Option<Instant>,
    /// When to ask again.
    next: Option<Instant>,
    failure: Option<String>,
    /// Failures in a row, for the pause before the next try.
    failures: u32,
}

impl Edges {
    /// The DNS state of `site`'s proxy, when the site lists no proxy
    /// address and its url host is a name.
    pub fn for_site(site: &Site) -> Option<Edges> {
        let host = site.host();
        if !site.proxy.is_empty() || host.parse::<IpAddr>().is_ok() {
            return None;
        }
        Some(Edges {
            host: host.to_owned(),
            timeout: site.timeout,
            source: site.source_address,
            state: Mutex::new(State::default()),
        })
    }

    /// The addresses to probe this round, resolved again first when the
    /// last answer ran out or the pause after a failure is over.
    pub async fn current(&self, max: usize) -> ProxyAddresses {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if state.next.is_none_or(|next| now >= next) {
            let before = state.addresses.clone();
            let answer = self.resolve(&mut state).await;
            state.record(Instant::now(), answer);
            match &state.failure {
                // Once per run of failures; the retries are logged at debug.
                Some(why) if state.failures == 1 => {
                    tracing::warn!(host = %self.host, error = %why, kept = state.addresses.len(),
                        "resolving the proxy's addresses failed")
                }
                Some(why) => tracing::debug!(host = %self.host, error = %why,
                    kept = state.addresses.len(), "resolving the proxy's addresses failed again"),
                None if state.addresses != before => {
                    tracing::info!(host = %self.host, addresses = ?state.addresses,
                        "the proxy's addresses changed")
                }
                None => {}
            }
        }
        state.view(max)
    }

    async fn resolve(&self, state: &mut State) -> Result<(Vec<IpAddr>, Duration), String> {
        if state.resolver.is_none() {
            match build_resolver() {
                Ok(r) => state.resolver = Some(r),
                Err(why) => return self.resolve_by_system(&why).await,
            }
        }
        let resolver = state.resolver.as_ref().expect("just built");
        let lookup = tokio::time::timeout(self.timeout, resolver.lookup_ip(self.host.as_str()));
        let found = match lookup.await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => Err(format!("resolving {}: {e}", self.host)),
            Err(_) => Err(format!("resolving {} timed out", self.host)),
        };
        if found.is_err() {
            // Read the system's resolver settings again next time: they
            // may be what changed.
            state.resolver = None;
        }
        let found = found?;
        let addresses = self.usable(found.iter().collect())?;
        Ok((addresses, shortest_ttl(&found)))
    }

    /// The system's resolver (getaddrinfo), when its settings cannot be
    /// read here (no nameserver line, which glibc takes as 127.0.0.1): it
    /// gives no TTL, so its answer is kept `SYSTEM_TTL`.
    async fn resolve_by_system(&self, why: &str) -> Result<(Vec<IpAddr>, Duration), String> {
        tracing::debug!(host = %self.host, error = why, "resolving by the system's resolver");
        let lookup = tokio::net::lookup_host((self.host.as_str(), 0));
        let answered: Vec<IpAddr> = match tokio::time::timeout(self.timeout, lookup).await {
            Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
            Ok(Err(e)) => return Err(format!("resolving {}: {e} ({why})", self.host)),
            Err(_) => return Err(format!("resolving {} timed out ({why})", self.host)),
        };
        Ok((self.usable(answered)?, SYSTEM_TTL))
    }

    /// The answered addresses this host can reach from the site's source;
    /// all of them when it can reach none, so that their failure (no
    /// route, a source address this host lacks) says so.
    fn usable(&self, answered: Vec<IpAddr>) -> Result<Vec<IpAddr>, String> {
        if answered.is_empty() {
            return Err(format!("{} has no address", self.host));
        }
        let addresses: Vec<IpAddr> = answered
            .iter()
            .copied()
            .filter(|ip| reachable(*ip, self.source))
            .collect();
        Ok(if addresses.is_empty() {
            answered
        } else {
            addresses
        })
    }
}

/// This host has a route to `ip` from `source` (or any address of its
/// family), as getaddrinfo's AI_ADDRCONFIG leaves out AAAA answers on a
/// host without IPv6: a UDP socket's connect looks the route up and sends
/// nothing.
fn reachable(ip: IpAddr, source: Option<IpAddr>) -> bool {
    let from = match (source, ip) {
        (Some(s), _) if s.is_ipv4() != ip.is_ipv4() => return false,
        (Some(s), _) => s,
        (None, IpAddr::V4(_)) => IpAddr::from([0u8; 4]),
        (None, IpAddr::V6(_)) => IpAddr::from([0u16; 8]),
    };
    std::net::UdpSocket::bind((from, 0))
        .and_then(|s| s.connect((ip, 53)))
        .is_ok()
}

/// The resolver of the system's settings (`/etc/resolv.conf`, the hosts
/// file), asking for A and AAAA, with no cache of its own: the answer's
/// TTL is kept here.
fn build_resolver() -> Result<TokioResolver, String> {
    let mut builder = TokioResolver::builder_tokio()
        .map_err(|e| format!("reading the system's resolver settings: {e}"))?;
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.cache_size = 0;
    builder
        .build()
        .map_err(|e| format!("starting the resolver: {e}"))
}

/// The shortest TTL of the answer's addresses.
fn shortest_ttl(found: &LookupIp) -> Duration {
    found
        .as_lookup()
        .answers()
        .iter()
        .filter(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
        .map(|r| Duration::from_secs(u64::from(r.ttl)))
        .min()
        .unwrap_or_else(|| {
            found
                .valid_until()
                .saturating_duration_since(Instant::now())
        })
}

impl State {
    /// Take in a resolution's outcome at `now`: its addresses and TTL, or
    /// why it failed.
    fn record(&mut self, now: Instant, answer: Result<(Vec<IpAddr>, Duration), String>) {
        match answer {
            Ok((mut addresses, ttl)) => {
                addresses.sort();
                addresses.dedup();
                let ttl = ttl.clamp(MIN_TTL, MAX_TTL);
                self.addresses = addresses;
                self.expires = Some(now + ttl);
                self.next = Some(now + ttl);
                self.failure = None;
                self.failures = 0;
            }
            Err(why) => {
                let pause = RETRY_FIRST
                    .saturating_mul(1 << self.failures.min(8))
                    .min(RETRY_MAX);
                self.failures = self.failures.saturating_add(1);
                self.next = Some(now + pause);
                self.failure = Some(why);
                let kept_until = self.expires.map(|e| e + KEEP_AFTER_FAILURE);
                if kept_until.is_none_or(|until| now >= until) {
                    self.addresses.clear();
                }
            }
        }
    }

    fn view(&self, max: usize) -> ProxyAddresses {
        let to_system =
            |at: Instant| SystemTime::now() + at.saturating_duration_since(Instant::now());
        ProxyAddresses {
            probed: self.addresses.iter().copied().take(max).collect(),
            found: self.addresses.len(),
            failure: self.failure.clone(),
            next: self.next.map(to_system),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn an_answer_is_sorted_bounded_and_asked_again_within_the_ttl_limits() {
        let t0 = Instant::now();
        let mut s = State::default();
        let answer = ips(&[
            "198.51.100.9",
            "2001:db8::1",
            "198.51.100.2",
            "198.51.100.9",
        ]);
        s.record(t0, Ok((answer, Duration::from_secs(1))));
        let v = s.view(2);
        assert_eq!(v.probed, ips(&["198.51.100.2", "198.51.100.9"]));
        assert_eq!(v.found, 3);
        assert_eq!(v.failure, None);
        assert_eq!(
            s.next,
            Some(t0 + MIN_TTL),
            "a 1 s TTL is asked again after the floor"
        );
        s.record(t0, Ok((ips(&["192.0.2.1"]), Duration::from_secs(86_400))));
        assert_eq!(s.next, Some(t0 + MAX_TTL));
        s.record(t0, Ok((ips(&["192.0.2.1"]), Duration::from_secs(30))));
        assert_eq!(s.next, Some(t0 + Duration::from_secs(30)));
        assert_eq!(s.view(8).probed, ips(&["192.0.2.1"]));
    }

    #[test]
    fn a_failure_keeps_the_last_good_addresses_for_a_while_and_backs_off() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut s = State::default();
        s.record(t0, Ok((ips(&["192.0.2.1", "192.0.2.2"]), ttl)));
        let fail = |s: &mut State, at: Instant| s.record(at, Err("no answer".into()));

        let t1 = t0 + ttl;
        fail(&mut s, t1);
        assert_eq!(s.next, Some(t1 + RETRY_FIRST));
        let v = s.view(8);
        assert_eq!(v.probed.len(), 2, "kept");
        assert_eq!(v.failure.as_deref(), Some("no answer"));
        fail(&mut s, t1 + RETRY_FIRST);
        assert_eq!(s.next, Some(t1 + RETRY_FIRST * 3), "the pause doubles");
        for _ in 0..10 {
            fail(&mut s, t1);
        }
        assert_eq!(s.next, Some(t1 + RETRY_MAX), "up to its cap");

        // Past the keeping time: nothing left to probe.
        fail(&mut s, t1 + KEEP_AFTER_FAILURE);
        assert!(s.view(8).probed.is_empty());
        assert_eq!(s.view(8).found, 0);

        // An answer again: the failure is over.
        s.record(t1, Ok((ips(&["192.0.2.3"]), ttl)));
        assert_eq!(s.view(8).failure, None);
        assert_eq!(s.next, Some(t1 + ttl));
    }

    #[test]
    fn addresses_of_another_family_than_the_source_are_left_out() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(reachable(v4, None));
        assert!(reachable(v4, Some(v4)));
        assert!(!reachable(v6, Some(v4)));
    }

    #[test]
    fn a_first_failure_has_nothing_to_keep() {
        let mut s = State::default();
        s.record(Instant::now(), Err("NXDOMAIN".into()));
        assert!(s.view(8).probed.is_empty());
    }
}
