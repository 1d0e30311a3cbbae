//! The cause logic: what each cause of a 502 changes on each path, and what
//! it leaves alone. One file per cause, each naming at its top the alert
//! rules that implement the same judgement in `rules/` (one file per cause):
//!
//! - `forwarding.rs`: the origin's firewall or host security refuses the
//!   proxy's forwarding IPs; also the per-request judgement the prober
//!   counts in `badgateway_forwarding_failures_total`;
//! - `origin.rs`: the origin is down, broken, slow, saturated or exposed;
//! - `network.rs`: loss and jitter on a path;
//! - `proxy.rs`: the proxy itself cannot be reached;
//! - `exporter.rs`: what the prober cannot see (its own network, an origin
//!   it may not probe, a proxy that answers it with its own pages).
//!
//! They judge [`Evidence`]: one vantage's view of a site over a span (one
//! round for `diagnose`, counters over a window when read from metrics),
//! with the origin agent's. The numbers are in [`thresholds`], shared with
//! the rules. `answer.rs` tells who made a failing answer.

pub mod answer;
pub mod evidence;
mod exporter;
pub mod forwarding;
mod network;
mod origin;
mod proxy;
pub mod thresholds;

use serde::Serialize;

pub use evidence::{AgentEvidence, Evidence, TargetEvidence};
pub use exporter::vantage_cut_off;

/// The `cause` label: the three causes of a 502, the proxy itself, and the
/// monitoring's own view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    ForwardingIpBlocked,
    OriginAbnormal,
    NetworkLinkage,
    Proxy,
    Exporter,
}

impl Cause {
    pub const ALL: [Cause; 5] = [
        Cause::ForwardingIpBlocked,
        Cause::OriginAbnormal,
        Cause::NetworkLinkage,
        Cause::Proxy,
        Cause::Exporter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::ForwardingIpBlocked => "forwarding_ip_blocked",
            Cause::OriginAbnormal => "origin_abnormal",
            Cause::NetworkLinkage => "network_linkage",
            Cause::Proxy => "proxy",
            Cause::Exporter => "exporter",
        }
    }

    /// The reasons that explain this cause.
    pub fn reasons(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| r.cause() == self)
    }
}

macro_rules! reasons {
    ($($variant:ident, $name:literal, $cause:ident, $meaning:literal;)*) => {
        /// The `reason` label: the evidence behind a cause, each with its
        /// section in `docs/runbook/<cause>.md`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($variant,)*
        }

        impl Reason {
            pub const ALL: [Reason; [$($name),*].len()] = [$(Reason::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $name,)*
                }
            }

            pub fn cause(self) -> Cause {
                match self {
                    $(Reason::$variant => Cause::$cause,)*
                }
            }

            /// One sentence on what it means.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Reason::$variant => $meaning,)*
                }
            }
        }
    };
}

reasons! {
    ProxyFailsOriginOk, "proxy_fails_origin_ok", ForwardingIpBlocked,
        "The proxy cannot get an answer from the origin, but the origin answers a direct request: the origin's firewall or host security refuses the proxy's forwarding IPs.";
    FirewallBlocksForwardingRange, "firewall_blocks_forwarding_range", ForwardingIpBlocked,
        "The origin's own firewall drops or rejects the proxy's forwarding range.";
    ForwardingIpRateLimited, "forwarding_ip_rate_limited", ForwardingIpBlocked,
        "The origin rate-limits the proxy's forwarding IPs (firewall limit rules, or the web server's request limits).";
    OriginUnreachable, "origin_unreachable", OriginAbnormal,
        "The origin does not answer at all: the server, its data center or its link is down.";
    WebServiceDown, "web_service_down", OriginAbnormal,
        "The origin host is up but its web server does not accept connections.";
    OriginHttpErrors, "origin_http_errors", OriginAbnormal,
        "The origin answers, with errors of its own.";
    OriginSlow, "origin_slow", OriginAbnormal,
        "The origin answers more slowly than the proxy is willing to wait.";
    KeepaliveMismatch, "keepalive_mismatch", OriginAbnormal,
        "The origin closes idle keep-alive connections sooner than the proxy stops reusing them: some forwarded requests hit a connection the origin is closing and fail with 502, now and then.";
    OriginTlsError, "origin_tls_error", OriginAbnormal,
        "The origin's TLS fails: its certificate is expired, untrusted or for another name, or its handshake fails, and the proxy reports it.";
    CpuSaturated, "cpu_saturated", OriginAbnormal,
        "The origin's CPU is saturated.";
    MemorySaturated, "memory_saturated", OriginAbnormal,
        "The origin's memory is exhausted.";
    BandwidthSaturated, "bandwidth_saturated", OriginAbnormal,
        "The origin's network link is full.";
    OriginExposed, "origin_exposed", OriginAbnormal,
        "Traffic reaches the origin from outside the proxy's forwarding ranges: its address is known and it can be attacked directly.";
    PacketLoss, "packet_loss", NetworkLinkage,
        "Packets are lost on the network path.";
    Jitter, "jitter", NetworkLinkage,
        "Round-trip times on the network path vary widely.";
    PartialVantageFailure, "partial_vantage_failure", NetworkLinkage,
        "The site fails from some vantage points and works from others: the network between them and the site is at fault, not the site.";
    ProxyUnreachable, "proxy_unreachable", Proxy,
        "The protecting proxy itself cannot be reached: it refuses TCP or TLS, or does not answer, so no 502 is even returned.";
    TargetDown, "target_down", Exporter,
        "Prometheus cannot scrape a badgateway-exporter: its evidence is missing.";
    CollectorFailing, "collector_failing", Exporter,
        "A collector of the exporter fails (often a permission): its evidence is missing.";
    ConfigReloadFailed, "config_reload_failed", Exporter,
        "The exporter refused a new configuration and runs the old one.";
    ProbesStale, "probes_stale", Exporter,
        "The exporter's probe rounds of a site stopped finishing.";
    VantageCutOff, "vantage_cut_off", Exporter,
        "This machine cannot probe: its own network is cut off (no route, no name resolution), or it has no sockets left (out of file descriptors or ports). What it probes fails from here, which says nothing about the site.";
    OriginNotProbeable, "origin_not_probeable", Exporter,
        "The origin does not admit the prober's direct probes (it admits only the forwarding ranges): a blocked forwarding IP and a failing origin cannot be told apart from here.";
    ProxyOwnAnswer, "proxy_own_answer", Exporter,
        "The proxy answers the prober with a page of its own (its WAF, a challenge, its own error), not about the origin: the prober's requests do not reach the origin.";
}

impl Reason {
    /// Findings are ordered by this: the first explains the failures. A
    /// vantage cut off says nothing else; a proxy that cannot be reached
    /// hides everything behind it; saturation on the origin outranks a
    /// blocked forwarding IP (a loaded origin also fails the proxy's
    /// requests while answering one light probe); an origin that fails
    /// straight explains the proxy; loss on a path explains failures on it.
    fn rank(self) -> u8 {
        use Reason::*;
        match self {
            VantageCutOff => 0,
            ProxyUnreachable => 1,
            CpuSaturated | MemorySaturated | BandwidthSaturated => 2,
            OriginUnreachable | WebServiceDown | OriginHttpErrors | OriginSlow | OriginTlsError
            | KeepaliveMismatch => 3,
            FirewallBlocksForwardingRange | ForwardingIpRateLimited | ProxyFailsOriginOk => 4,
            PacketLoss | Jitter | PartialVantageFailure => 5,
            OriginExposed => 6,
            ProxyOwnAnswer => 7,
            OriginNotProbeable => 8,
            TargetDown | CollectorFailing | ConfigReloadFailed | ProbesStale => 9,
        }
    }

    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One cause found, with why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub reason: Reason,
    /// Facts a person can check, one per line.
    pub evidence: Vec<String>,
}

impl Finding {
    pub fn new(reason: Reason, evidence: Vec<String>) -> Finding {
        Finding { reason, evidence }
    }

    pub fn cause(&self) -> Cause {
        self.reason.cause()
    }
}

/// The whole verdict: the first finding is the cause of the failures; the
/// others are further trouble seen at the same time. Empty: healthy.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub findings: Vec<Finding>,
    /// A failure no cause explains: said plainly rather than forced into a
    /// cause.
    pub unexplained: Vec<String>,
    /// What argued against a finding (evidence against is evidence too).
    pub against: Vec<String>,
    /// Worth knowing, not failures of the site.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn healthy(&self) -> bool {
        self.findings.is_empty() && self.unexplained.is_empty()
    }

    /// The first finding: the cause of the failures.
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }

    fn add(&mut self, reason: Reason, evidence: Vec<String>) {
        match self.findings.iter_mut().find(|f| f.reason == reason) {
            Some(f) => {
                for e in evidence {
                    if !f.evidence.contains(&e) {
                        f.evidence.push(e);
                    }
                }
            }
            None => self.findings.push(Finding::new(reason, evidence)),
        }
    }
}

/// Judge one vantage's evidence of a site.
pub fn judge(e: &Evidence) -> Verdict {
    let mut v = Verdict::default();
    if exporter::cut_off(e, &mut v) {
        return v;
    }
    proxy::judge(e, &mut v);
    origin::judge(e, &mut v);
    forwarding::judge(e, &mut v);
    network::judge(e, &mut v);
    exporter::judge(e, &mut v);
    // A stable sort: within a rank, the order the files found them.
    v.findings.sort_by_key(|f| f.reason.rank());
    v
}

#[cfg(test)]
mod tests;
