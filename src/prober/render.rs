//! A round's results as metrics text, rendered once when the round ends so
//! that a scrape of thousands of sites only concatenates text it already
//! has.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::diagnosis::answer::{self, Kind};
use crate::diagnosis::forwarding::HopFailure;
use crate::exposition::{self, bool_value, escape, names, Prerendered};
use crate::prober::probe::{EchoRound, Path};
use crate::prober::results::{SiteEntry, SiteResult, TargetResult};

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
    IcmpSent,
    IcmpSilent,
    TcpLoss,
    TcpRtt,
    TcpSent,
    Probes,
    ProbeFailures,
    ForwardingFailures,
    MadeBy,
    CertExpiry,
    EchoesSent,
    EchoesLost,
    Admits,
    Blocked,
    Finished,
}

use ProbeFamily as F;

impl ProbeFamily {
    pub const ALL: [ProbeFamily; 22] = [
        F::Success,
        F::Status,
        F::Phase,
        F::Duration,
        F::Error,
        F::IcmpLoss,
        F::IcmpRtt,
        F::IcmpSent,
        F::IcmpSilent,
        F::TcpLoss,
        F::TcpRtt,
        F::TcpSent,
        F::Probes,
        F::ProbeFailures,
        F::ForwardingFailures,
        F::MadeBy,
        F::CertExpiry,
        F::EchoesSent,
        F::EchoesLost,
        F::Admits,
        F::Blocked,
        F::Finished,
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
            F::IcmpSent => (names::ICMP_PACKETS_SENT, "gauge", "ICMP echoes sent in the last round."),
            F::IcmpSilent => (names::ICMP_SILENT, "gauge", "1 when the address never answers ICMP echoes while other packets to it get through (held until an echo reply comes back): its ICMP loss is left out of every judgement and TCP handshakes measure the path instead."),
            F::TcpLoss => (names::TCP_PACKET_LOSS_RATIO, "gauge", "Share of TCP handshakes (SYN to the web port) of the last round that got no answer, 0..1; run where ICMP cannot measure the path."),
            F::TcpRtt => (names::TCP_RTT_SECONDS, "gauge", "TCP handshake round-trip time over the last round: min, avg, max, and stddev (jitter)."),
            F::TcpSent => (names::TCP_PACKETS_SENT, "gauge", "TCP handshakes attempted in the last round."),
            F::Probes => (names::PROBES_TOTAL, "counter", "HTTP requests sent."),
            F::ProbeFailures => (names::PROBE_FAILURES_TOTAL, "counter", "HTTP requests that failed, by kind: unanswered (refused, connect time-out, unreachable, TLS handshake failed), broken (time-out or reset after connecting), gateway (a proxy's 502, 504, 52x about its upstream), upstream_tls (525, 526), proxy (a page the proxy made itself: its WAF, a challenge), refused (401, 403, 407, 429, 503), error (other 5xx), other."),
            F::ForwardingFailures => (names::FORWARDING_FAILURES_TOTAL, "counter", "Requests through this proxy address that failed at the proxy-to-origin hop while every origin address answered straight in the same round, by kind: gateway (gateway error, time-out, reset) or refused (a refusal or error status the origin or the proxy made)."),
            F::MadeBy => (names::FAILURE_MADE_BY, "gauge", "1 for who made the last round's first failing answer: proxy (a page of its own, not about its upstream), proxy_about_upstream (a 502, 504, 52x), or upstream_or_unknown (passed on, or no sign who made it); absent when no failing answer came."),
            F::CertExpiry => (names::TLS_EARLIEST_CERT_EXPIRY_TIMESTAMP_SECONDS, "gauge", "Unix time the earliest certificate of the server's chain expires, from the last TLS handshake (also one refused on an expired certificate)."),
            F::EchoesSent => (names::PATH_ECHOES_SENT_TOTAL, "counter", "Echoes that measured the path's loss: ICMP, or TCP handshakes for an ICMP-silent address. Rounds with no reply at all are left out (the path was down or filtered, not lossy)."),
            F::EchoesLost => (names::PATH_ECHOES_LOST_TOTAL, "counter", "Of those, the echoes that got no reply."),
            F::Admits => (names::ORIGIN_ADMITS_PROBER, "gauge", "1 when the origin admits this prober's direct probes; 0 when they fail while the site works through the proxy (an origin that admits only the forwarding ranges), held until one succeeds: its direct failures are then no evidence about the origin."),
            F::Blocked => (names::FORWARDING_IP_BLOCKED, "gauge", "1 when, in the last round, a probe through some proxy address failed at the proxy-to-origin hop while every origin address answered straight."),
            F::Finished => (names::LAST_ROUND_TIMESTAMP_SECONDS, "gauge", "Unix time the last probe round of the site finished."),
        }
    }

    pub fn name(self) -> &'static str {
        self.info().0
    }
}

const VANTAGE_UP_HELP: &str = "0 when this prober's own network is cut off: in the latest round of every site nothing came back from any address, and the failures were this host's own (no route, no name resolution) or hit three addresses and more at once; or some probe could not open a socket on this host (out of file descriptors or ports). Its site failures then say nothing about the sites.";

/// A site's series, one text per `ProbeFamily`.
/// `last`, the site's previous rendering, sizes the texts: a site's series
/// keep their length from round to round, so each is allocated once.
pub fn render(site: &str, result: &SiteResult, last: Option<&Prerendered>) -> Prerendered {
    let size = |i: usize| last.and_then(|p| p.0.get(i)).map_or(0, String::len);
    let mut out = Series(
        (0..ProbeFamily::ALL.len())
            .map(|i| String::with_capacity(size(i)))
            .collect(),
    );
    let site = escape(site);
    for t in &result.targets {
        let base = format!(
            "site=\"{site}\",path=\"{}\",address=\"{}\"",
            t.path.as_str(),
            escape(&t.address)
        );
        out.target(&base, t);
    }
    let base = format!("site=\"{site}\"");
    out.add(
        F::Blocked,
        &base,
        "",
        bool_value(result.forwarding_ip_blocked),
    );
    let finished = result
        .finished
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    out.add(F::Finished, &base, "", finished);
    Prerendered(out.0)
}

/// The texts being written, one per family.
struct Series(Vec<String>);

impl Series {
    /// One target's series: its last probe, its echoes, its running counts.
    fn target(&mut self, base: &str, t: &TargetResult) {
        let out = self;
        let h = &t.http;
        out.add(F::Success, base, "", bool_value(t.failed_requests() == 0));
        out.add(F::Status, base, "", f64::from(h.status.unwrap_or(0)));
        for (phase, d) in h.phases.iter() {
            let v = d.map_or(0.0, |d| d.as_secs_f64());
            out.add_kv(F::Phase, base, ("phase", phase), v);
        }
        out.add(F::Duration, base, "", h.duration.as_secs_f64());
        if let Some(kind) = h.error {
            out.add_kv(F::Error, base, ("error", kind.as_str()), 1.0);
        }
        if let Some(icmp) = &t.icmp {
            out.echoes([F::IcmpLoss, F::IcmpRtt, F::IcmpSent], base, icmp);
        }
        if t.icmp.is_some() || t.icmp_silent {
            out.add(F::IcmpSilent, base, "", bool_value(t.icmp_silent));
        }
        if let Some(tcp) = &t.tcp {
            out.echoes([F::TcpLoss, F::TcpRtt, F::TcpSent], base, tcp);
        }
        let n = &t.totals;
        out.add(F::Probes, base, "", n.probes as f64);
        for kind in Kind::ALL {
            let failed = n.failures[kind.index()] as f64;
            out.add_kv(F::ProbeFailures, base, ("kind", kind.as_str()), failed);
        }
        if t.path == Path::Proxy {
            for hop in HopFailure::ALL {
                let failed = n.forwarding[hop as usize] as f64;
                out.add_kv(F::ForwardingFailures, base, ("kind", hop.as_str()), failed);
            }
        }
        if let Some(by) = answer::kind(h).and_then(Kind::made_by) {
            out.add_kv(F::MadeBy, base, ("by", by), 1.0);
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
        exposition::sample(
            &mut self.0[family as usize],
            family.name(),
            labels,
            extra,
            value,
        );
    }

    /// A series with one label more, `key="value"` (a fixed word).
    fn add_kv(&mut self, family: ProbeFamily, labels: &str, (key, value): (&str, &str), v: f64) {
        let out = &mut self.0[family as usize];
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

    /// Loss, round-trip statistics and echoes sent of one echo round.
    fn echoes(&mut self, [loss, rtt, sent]: [ProbeFamily; 3], base: &str, r: &EchoRound) {
        self.add(loss, base, "", r.loss_ratio());
        if let Some(stats) = &r.rtt {
            for (stat, d) in [
                ("min", stats.min),
                ("avg", stats.avg),
                ("max", stats.max),
                ("stddev", stats.stddev),
            ] {
                self.add_kv(rtt, base, ("stat", stat), d.as_secs_f64());
            }
        }
        self.add(sent, base, "", f64::from(r.sent));
    }
}

/// Append every probe family: its HELP and TYPE, then each site's series;
/// then whether this prober's own network works.
pub fn write(sites: &[Arc<SiteEntry>], out: &mut Vec<u8>) {
    for family in ProbeFamily::ALL {
        let i = family as usize;
        if sites.iter().all(|s| s.exposition.0[i].is_empty()) {
            continue;
        }
        let (name, kind, help) = family.info();
        out.extend_from_slice(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n").as_bytes());
        for s in sites {
            out.extend_from_slice(s.exposition.0[i].as_bytes());
        }
    }
    if !sites.is_empty() {
        let up = !crate::diagnosis::vantage_cut_off(sites.iter().map(|s| &s.result));
        let name = names::VANTAGE_UP;
        out.extend_from_slice(
            format!(
                "# HELP {name} {VANTAGE_UP_HELP}\n# TYPE {name} gauge\n{name} {}\n",
                u8::from(up)
            )
            .as_bytes(),
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
}
