// Why one file: every family's name, help and series are written by one
// `Writer` walking one site's result; the table and the walk are read
// side by side.
//! The sites' latest results as metrics text, rendered while a scrape is
//! sent, a piece at a time: the label sets are escaped once per round, so
//! a scrape only writes names, labels and values.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::diagnosis::answer::Kind;
use crate::diagnosis::forwarding::HopFailure;
use crate::exposition::{self, bool_value, names};
use crate::prober::probe::{EchoRound, Path};
use crate::prober::results::{SiteEntry, TargetResult};

/// The probe metric families, in the order they are exposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeFamily {
    Success,
    Status,
    Phase,
    Duration,
    Error,
    IcmpLoss,
    IcmpRtt,
    IcmpSilent,
    TcpLoss,
    TcpRtt,
    Probes,
    ProbeFailures,
    ForwardingFailures,
    CertExpiry,
    EchoesSent,
    EchoesLost,
    Admits,
    Blocked,
    OriginIdle,
    KeepaliveMismatch,
    ProxyIdle,
    HopLoss,
    LossStart,
    RouteId,
    Traced,
    Finished,
    ProxyAddresses,
    ProxyDnsSuccess,
    ProxyDnsNext,
}

use ProbeFamily as F;

impl ProbeFamily {
    pub const ALL: [ProbeFamily; 29] = [
        F::Success,
        F::Status,
        F::Phase,
        F::Duration,
        F::Error,
        F::IcmpLoss,
        F::IcmpRtt,
        F::IcmpSilent,
        F::TcpLoss,
        F::TcpRtt,
        F::Probes,
        F::ProbeFailures,
        F::ForwardingFailures,
        F::CertExpiry,
        F::EchoesSent,
        F::EchoesLost,
        F::Admits,
        F::Blocked,
        F::OriginIdle,
        F::KeepaliveMismatch,
        F::ProxyIdle,
        F::HopLoss,
        F::LossStart,
        F::RouteId,
        F::Traced,
        F::Finished,
        F::ProxyAddresses,
        F::ProxyDnsSuccess,
        F::ProxyDnsNext,
    ];

    /// Name, type and help.
    pub fn info(self) -> (&'static str, &'static str, &'static str) {
        match self {
            F::Success => (names::PROBE_SUCCESS, "gauge", "1 when every HTTP request of the last round got an expected status (several through each proxy address, see proxy_requests)."),
            F::Status => (names::HTTP_STATUS_CODE, "gauge", "Status of the last round's first failed request, else of its last; 0 when no response came."),
            F::Phase => (names::HTTP_DURATION_SECONDS, "gauge", "Time the last HTTP probe spent in each phase (resolve, connect, tls, processing to the first byte, transfer); 0 for a phase not reached."),
            F::Duration => (names::PROBE_DURATION_SECONDS, "gauge", "How long the last HTTP probe took in all."),
            F::Error => (names::PROBE_ERROR, "gauge", "1 for the kind of failure of the last HTTP probe; absent when it succeeded."),
            F::IcmpLoss => (names::ICMP_PACKET_LOSS_RATIO, "gauge", "Share of ICMP echoes of the last round that got no reply, 0..1."),
            F::IcmpRtt => (names::ICMP_RTT_SECONDS, "gauge", "ICMP round-trip time over the last round: min, avg, max, and stddev (jitter)."),
            F::IcmpSilent => (names::ICMP_SILENT, "gauge", "1 when the address never answers ICMP echoes while other packets to it get through (held until an echo reply comes back): its ICMP loss is left out of every judgement and TCP handshakes measure the path instead."),
            F::TcpLoss => (names::TCP_PACKET_LOSS_RATIO, "gauge", "Share of TCP handshakes (SYN to the web port) of the last round that got no answer, 0..1; run where ICMP cannot measure the path."),
            F::TcpRtt => (names::TCP_RTT_SECONDS, "gauge", "TCP handshake round-trip time over the last round: min, avg, max, and stddev (jitter)."),
            F::Probes => (names::PROBES_TOTAL, "counter", "HTTP requests sent."),
            F::ProbeFailures => (names::PROBE_FAILURES_TOTAL, "counter", "HTTP requests that failed, by kind: unanswered (refused, connect time-out, unreachable, TLS handshake failed), broken (time-out or reset after connecting), gateway (a proxy's 502, 504, 52x about its upstream), upstream_tls (525, 526), proxy (a page the proxy made itself: its WAF, a challenge), refused (401, 403, 407, 429, 503), error (other 5xx), other."),
            F::ForwardingFailures => (names::FORWARDING_FAILURES_TOTAL, "counter", "Requests through this proxy address that failed at the proxy-to-origin hop while every origin address answered straight in the same round, by kind: gateway (gateway error, time-out, reset) or refused (a refusal or error status the origin or the proxy made)."),
            F::CertExpiry => (names::TLS_EARLIEST_CERT_EXPIRY_TIMESTAMP_SECONDS, "gauge", "Unix time the earliest certificate of the server's chain expires, from the last TLS handshake (also one refused on an expired certificate)."),
            F::EchoesSent => (names::PATH_ECHOES_SENT_TOTAL, "counter", "Echoes that measured the path's loss: ICMP, or TCP handshakes for an ICMP-silent address. Rounds with no reply at all are left out (the path was down or filtered, not lossy)."),
            F::EchoesLost => (names::PATH_ECHOES_LOST_TOTAL, "counter", "Of those, the echoes that got no reply."),
            F::Admits => (names::ORIGIN_ADMITS_PROBER, "gauge", "1 when the origin admits this prober's direct probes; 0 when they fail while the site works through the proxy (an origin that admits only the forwarding ranges), held until one succeeds: its direct failures are then no evidence about the origin."),
            F::Blocked => (names::FORWARDING_IP_BLOCKED, "gauge", "1 when, in the last round, a probe through some proxy address failed at the proxy-to-origin hop while every origin address answered straight."),
            F::OriginIdle => (names::ORIGIN_IDLE_TIMEOUT_SECONDS, "gauge", "How long the origin kept an idle keep-alive connection open after an answer, from the last watch: +Inf when it was still open past the proxy's idle timeout, 0 when the origin keeps no connection open; absent when the watch got no answer."),
            F::KeepaliveMismatch => (names::ORIGIN_KEEPALIVE_MISMATCH, "gauge", "1 when the origin closed idle connections sooner than the proxy's idle timeout in the last two watches: the proxy reuses connections the origin is closing, and some forwarded requests fail with 502."),
            F::ProxyIdle => (names::PROXY_IDLE_TIMEOUT_SECONDS, "gauge", "The proxy's idle timeout for its connections to the origin, as configured (proxy_idle_timeout), that the origin's is compared with."),
            F::HopLoss => (names::PATH_HOP_LOSS_RATIO, "gauge", "From the last path probe (run when the path lost echoes): the share of echoes sent with this TTL (hop) that got no answer, from the router where they expired or, at the last hop, the address."),
            F::LossStart => (names::PATH_LOSS_START_HOP, "gauge", "From the last path probe: the first hop from which every hop on, the address included, lost echoes (where the loss starts); 0 when the address lost none."),
            F::RouteId => (names::PATH_ROUTE_ID, "gauge", "From the last path probe: a hash of the hops' addresses in order; a new value is a route change."),
            F::Traced => (names::PATH_TRACE_TIMESTAMP_SECONDS, "gauge", "Unix time of the last path probe."),
            F::Finished => (names::LAST_ROUND_TIMESTAMP_SECONDS, "gauge", "Unix time the last probe round of the site finished."),
            F::ProxyAddresses => (names::PROXY_ADDRESSES, "gauge", "A site with no proxy list: how many addresses DNS answered for its url host (A and AAAA, those this host can reach) in the last good answer; the first max_proxy_addresses of them, sorted, are probed."),
            F::ProxyDnsSuccess => (names::PROXY_DNS_SUCCESS, "gauge", "A site with no proxy list: 1 when the last resolution of its url host answered; 0 when it failed (the last good addresses stay probed for 10 minutes, then the proxy path fails with error dns)."),
            F::ProxyDnsNext => (names::PROXY_DNS_NEXT_RESOLUTION_TIMESTAMP_SECONDS, "gauge", "A site with no proxy list: Unix time its url host is resolved again (when the answer's shortest TTL runs out, 5s to 1h; sooner after a failure)."),
        }
    }

    pub fn name(self) -> &'static str {
        self.info().0
    }
}

const VANTAGE_UP_HELP: &str = "0 when this prober's own network is cut off: in the latest round of every site nothing came back from any address, and the failures were this host's own (no route, no name resolution) or hit three addresses and more at once; or some probe could not open a socket on this host (out of file descriptors or ports). Its site failures then say nothing about the sites.";

/// Append the series of one family of one site.
fn site_family(entry: &SiteEntry, family: ProbeFamily, out: &mut String) {
    let mut w = Writer { only: family, out };
    let result = &entry.result;
    let labels = &entry.labels;
    match family {
        F::Blocked => w.add(
            F::Blocked,
            &labels.site,
            "",
            bool_value(result.forwarding_ip_blocked),
        ),
        F::OriginIdle | F::KeepaliveMismatch | F::ProxyIdle => keepalive(entry, &mut w),
        F::HopLoss | F::LossStart | F::RouteId | F::Traced => traces(entry, &mut w),
        F::Finished => {
            let finished = result
                .finished
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            w.add(F::Finished, &labels.site, "", finished);
        }
        F::ProxyAddresses | F::ProxyDnsSuccess | F::ProxyDnsNext => {
            let Some(dns) = &result.proxy_dns else {
                return;
            };
            let next = dns
                .next
                .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            w.add(F::ProxyAddresses, &labels.site, "", dns.found as f64);
            let up = bool_value(dns.failure.is_none());
            w.add(F::ProxyDnsSuccess, &labels.site, "", up);
            w.add(F::ProxyDnsNext, &labels.site, "", next);
        }
        _ => {
            for (t, base) in result.targets.iter().zip(&labels.targets) {
                w.target(base, t);
            }
        }
    }
}

/// The label set of the site's target on `path` at `address`, if the
/// latest round has it.
fn labels_of<'a>(entry: &'a SiteEntry, path: Path, address: &str) -> Option<&'a str> {
    entry
        .result
        .targets
        .iter()
        .zip(&entry.labels.targets)
        .find(|(t, _)| t.path == path && t.address == address)
        .map(|(_, base)| base.as_str())
}

/// The keep-alive watch of a site: the proxy's idle timeout, and each
/// watched origin address with its target's labels.
fn keepalive(entry: &SiteEntry, w: &mut Writer) {
    let Some((proxy_idle, watches)) = &entry.result.keepalive else {
        return;
    };
    w.add(
        F::ProxyIdle,
        &entry.labels.site,
        "",
        proxy_idle.as_secs_f64(),
    );
    for watch in watches {
        let Some(base) = labels_of(entry, Path::Origin, &watch.address) else {
            continue;
        };
        if let Some(s) = watch.seconds() {
            w.add(F::OriginIdle, base, "", s);
        }
        let mismatch = watch.mismatch(*proxy_idle);
        w.add(F::KeepaliveMismatch, base, "", bool_value(mismatch));
    }
}

/// The last path probe of each target whose echoes were lost.
fn traces(entry: &SiteEntry, w: &mut Writer) {
    for t in &entry.result.traces {
        let Some(base) = labels_of(entry, t.path, &t.address) else {
            continue;
        };
        if w.only == F::HopLoss {
            for hop in &t.trace.hops {
                let ttl = hop.ttl.to_string();
                w.add_kv(F::HopLoss, base, ("hop", &ttl), hop.loss_ratio());
            }
        }
        let start = t.trace.loss_starts_at().map_or(0.0, f64::from);
        w.add(F::LossStart, base, "", start);
        w.add(F::RouteId, base, "", f64::from(t.trace.route_id()));
        let at =
            t.at.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
        w.add(F::Traced, base, "", at);
    }
}

/// Writes the series of one family (`only`); the others are skipped, so
/// that one walk over a target serves each family in turn.
struct Writer<'a> {
    only: ProbeFamily,
    out: &'a mut String,
}

impl Writer<'_> {
    /// One target's series: its last probe, its echoes, its running counts.
    fn target(&mut self, base: &str, t: &TargetResult) {
        let out = self;
        let h = &t.http;
        out.add(F::Success, base, "", bool_value(t.failed_requests() == 0));
        out.add(F::Status, base, "", f64::from(h.status.unwrap_or(0)));
        if out.only == F::Phase {
            for (phase, d) in h.phases.iter() {
                let v = d.map_or(0.0, |d| d.as_secs_f64());
                out.add_kv(F::Phase, base, ("phase", phase), v);
            }
        }
        out.add(F::Duration, base, "", h.duration.as_secs_f64());
        if let Some(kind) = h.error {
            out.add_kv(F::Error, base, ("error", kind.as_str()), 1.0);
        }
        if let Some(icmp) = &t.icmp {
            out.echoes([F::IcmpLoss, F::IcmpRtt], base, icmp);
        }
        if t.icmp.is_some() || t.icmp_silent {
            out.add(F::IcmpSilent, base, "", bool_value(t.icmp_silent));
        }
        if let Some(tcp) = &t.tcp {
            out.echoes([F::TcpLoss, F::TcpRtt], base, tcp);
        }
        let n = &t.totals;
        out.add(F::Probes, base, "", n.probes as f64);
        if out.only == F::ProbeFailures {
            for kind in Kind::ALL {
                let failed = n.failures[kind.index()] as f64;
                out.add_kv(F::ProbeFailures, base, ("kind", kind.as_str()), failed);
            }
        }
        if t.path == Path::Proxy && out.only == F::ForwardingFailures {
            for hop in HopFailure::ALL {
                let failed = n.forwarding[hop as usize] as f64;
                out.add_kv(F::ForwardingFailures, base, ("kind", hop.as_str()), failed);
            }
        }
        if let Some(at) = h.cert_not_after {
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            out.add(F::CertExpiry, base, "", secs);
        }
        out.add(F::EchoesSent, base, "", n.path_echoes_sent as f64);
        out.add(F::EchoesLost, base, "", n.path_echoes_lost as f64);
        if t.path == Path::Origin {
            out.add(F::Admits, base, "", bool_value(!t.admission.refused));
        }
    }

    fn add(&mut self, family: ProbeFamily, labels: &str, extra: &str, value: f64) {
        if family == self.only {
            exposition::sample(self.out, family.name(), labels, extra, value);
        }
    }

    /// A series with one label more, `key="value"` (a fixed word).
    fn add_kv(&mut self, family: ProbeFamily, labels: &str, (key, value): (&str, &str), v: f64) {
        if family != self.only {
            return;
        }
        let out = &mut *self.out;
        out.push_str(family.name());
        out.push('{');
        out.push_str(labels);
        out.push(',');
        out.push_str(key);
        out.push_str("=\"");
        out.push_str(value);
        out.push_str("\"} ");
        exposition::push_value(out, v);
        out.push('\n');
    }

    /// Loss and round-trip statistics of one echo round.
    fn echoes(&mut self, [loss, rtt]: [ProbeFamily; 2], base: &str, r: &EchoRound) {
        self.add(loss, base, "", r.loss_ratio());
        if let (Some(stats), true) = (&r.rtt, self.only == rtt) {
            for (stat, d) in [
                ("min", stats.min),
                ("avg", stats.avg),
                ("max", stats.max),
                ("stddev", stats.stddev),
            ] {
                self.add_kv(rtt, base, ("stat", stat), d.as_secs_f64());
            }
        }
    }
}

/// The prober's part of a scrape, written a piece at a time: every probe
/// family (its HELP and TYPE, then each site's series), then whether this
/// prober's own network works. The series are rendered from each site's
/// latest result as the scrape is sent, so a scrape holds one piece of
/// text at a time, not the whole (54 MB for 10,000 sites).
pub struct Pieces {
    sites: Vec<Arc<SiteEntry>>,
    family: usize,
    site: usize,
    header_written: bool,
    finished: bool,
    scratch: String,
}

impl Pieces {
    pub fn new(sites: Vec<Arc<SiteEntry>>) -> Pieces {
        Pieces {
            sites,
            family: 0,
            site: 0,
            header_written: false,
            finished: false,
            scratch: String::new(),
        }
    }

    /// The sites this scrape shows.
    pub fn sites(&self) -> &[Arc<SiteEntry>] {
        &self.sites
    }

    /// Append text to `out` until it holds `limit` bytes or more, or all
    /// is written. Returns false once nothing is left.
    pub fn fill(&mut self, out: &mut String, limit: usize) -> bool {
        while out.len() < limit {
            let Some(&family) = ProbeFamily::ALL.get(self.family) else {
                if !self.finished {
                    self.finished = true;
                    self.vantage_up(out);
                }
                break;
            };
            let Some(entry) = self.sites.get(self.site) else {
                self.family += 1;
                self.site = 0;
                self.header_written = false;
                continue;
            };
            self.site += 1;
            if self.header_written {
                site_family(entry, family, out);
                continue;
            }
            // A family's HELP and TYPE come only with its first series.
            self.scratch.clear();
            site_family(entry, family, &mut self.scratch);
            if !self.scratch.is_empty() {
                let (name, kind, help) = family.info();
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
                out.push_str(&self.scratch);
                self.header_written = true;
            }
        }
        !out.is_empty() || !self.finished
    }

    fn vantage_up(&self, out: &mut String) {
        if self.sites.is_empty() {
            return;
        }
        let up = !crate::diagnosis::vantage_cut_off(self.sites.iter().map(|s| &s.result));
        let name = names::VANTAGE_UP;
        let _ = write!(
            out,
            "# HELP {name} {VANTAGE_UP_HELP}\n# TYPE {name} gauge\n{name} {}\n",
            u8::from(up)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_order_and_named_once() {
        for (i, f) in ProbeFamily::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        let mut seen = std::collections::HashSet::new();
        assert!(ProbeFamily::ALL.iter().all(|f| seen.insert(f.name())));
    }

    fn target(path: Path, address: &str, status: u16, icmp: bool) -> TargetResult {
        use crate::prober::probe::{EchoRound, ErrorKind, HttpOutcome, RttStats};
        use std::time::Duration;
        let ms = Duration::from_millis;
        let http = HttpOutcome {
            status: Some(status),
            error: (status >= 500).then_some(ErrorKind::HttpStatus),
            duration: ms(3),
            ..HttpOutcome::default()
        };
        let mut t = TargetResult::new(path, address, http);
        t.icmp = icmp.then_some(EchoRound {
            sent: 10,
            received: 9,
            rtt: Some(RttStats {
                min: ms(1),
                avg: ms(2),
                max: ms(3),
                stddev: ms(1),
            }),
        });
        t
    }

    fn sites(n: usize) -> Vec<Arc<SiteEntry>> {
        let results = crate::prober::results::Results::new();
        for i in 0..n {
            // Every third site has no ICMP: its families are absent.
            let icmp = i % 3 != 0;
            let mut result = crate::prober::results::SiteResult::new(
                vec![
                    target(Path::Proxy, "198.51.100.10", 502, icmp),
                    target(Path::Origin, "203.0.113.5", 200, icmp),
                ],
                UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
            );
            result.forwarding_ip_blocked = i % 2 == 0;
            let summary = crate::prober::results::RoundSummary::new(&result, None, false, false);
            results.record(&format!("site\"{i}"), result, summary);
        }
        results.snapshot()
    }

    fn whole(sites: Vec<Arc<SiteEntry>>, piece: usize) -> (String, usize) {
        let mut pieces = Pieces::new(sites);
        let (mut text, mut n) = (String::new(), 0);
        loop {
            let mut out = String::new();
            if !pieces.fill(&mut out, piece) || out.is_empty() {
                break;
            }
            assert!(
                out.len() < piece.saturating_add(4096),
                "a piece of {} bytes",
                out.len()
            );
            text.push_str(&out);
            n += 1;
        }
        (text, n)
    }

    #[test]
    fn pieces_of_any_size_make_the_same_grouped_text() {
        let (one, n) = whole(sites(50), usize::MAX);
        assert_eq!(n, 1);
        let (small, n) = whole(sites(50), 1000);
        assert!(n > 20, "{n} pieces");
        assert_eq!(one, small);
        // Each family once, its HELP and TYPE before all of its series.
        let mut seen = std::collections::HashSet::new();
        let mut current = "";
        for line in one.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap();
                assert!(seen.insert(current), "{current} twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "{line}");
            }
        }
        assert!(seen.contains(names::ICMP_RTT_SECONDS));
        assert!(
            !seen.contains(names::TCP_RTT_SECONDS),
            "no site has TCP echoes"
        );
        assert_eq!(
            one.matches("badgateway_icmp_packet_loss_ratio{").count(),
            2 * (50 - 17)
        );
        assert!(one.contains("badgateway_forwarding_ip_blocked{site=\"site\\\"0\"} 1\n"));
        assert!(one.ends_with("badgateway_vantage_up 1\n"));
    }

    #[test]
    fn no_sites_write_nothing() {
        assert_eq!(whole(Vec::new(), 1000), (String::new(), 0));
    }
}
