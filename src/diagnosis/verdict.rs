//! The verdict for one round of a site (and, when given, what the origin
//! agent saw): which of the three causes explains the failures, with the
//! reason and the evidence. Each cause is recognised by what it changes on
//! each path and what it leaves alone:
//!
//! - a blocked forwarding IP breaks only the proxy→origin hop: the proxy
//!   answers with a gateway error while the origin answers us well;
//! - an abnormal origin fails straight to it too (or answers too slowly for
//!   the proxy), whatever the path;
//! - a faulty network loses or delays packets on a path, which ICMP shows,
//!   while both ends are fine.

use serde::Serialize;

use super::{proxy_failure, ProxyFailure};
use crate::probe::{ErrorKind, Path};
use crate::results::{SiteResult, TargetResult};

/// Loss above this share of echoes on a path is a faulty link: with the
/// default 10 echoes, two lost.
pub const LOSS_THRESHOLD: f64 = 0.1;
/// Round-trip standard deviation above this is jitter.
pub const JITTER_THRESHOLD_SECONDS: f64 = 0.05;
/// Usage above this share of capacity, held, is saturation.
pub const SATURATION_THRESHOLD: f64 = 0.9;
/// Established connections from outside the forwarding ranges above this,
/// and above those from inside, mean the origin is reached around the proxy.
pub const EXPOSED_CONNECTIONS: f64 = 50.0;

/// Every cause and the reasons that explain it: the `cause` and `reason`
/// labels of the alerts, and what `diagnose` names.
pub const VOCABULARY: [(&str, &[&str]); 3] = [
    (
        "forwarding_ip_blocked",
        &[
            "proxy_fails_origin_ok",
            "firewall_blocks_forwarding_range",
            "forwarding_ip_rate_limited",
        ],
    ),
    (
        "origin_abnormal",
        &[
            "origin_unreachable",
            "web_service_down",
            "origin_http_errors",
            "origin_slow",
            "cpu_saturated",
            "memory_saturated",
            "bandwidth_saturated",
            "origin_exposed",
        ],
    ),
    (
        "network_linkage",
        &["packet_loss", "jitter", "partial_vantage_failure"],
    ),
];

/// The exporter's own reasons (`cause="exporter"`): not a cause of a 502,
/// but what the monitoring cannot see or do.
pub const EXPORTER_REASONS: [&str; 6] = [
    "target_down",
    "collector_failing",
    "config_reload_failed",
    "probes_stale",
    "vantage_cut_off",
    "origin_not_probeable",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    ForwardingIpBlocked,
    OriginAbnormal,
    NetworkLinkage,
    /// Not the site: the prober's own view (its network is cut off).
    Exporter,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::ForwardingIpBlocked => "forwarding_ip_blocked",
            Cause::OriginAbnormal => "origin_abnormal",
            Cause::NetworkLinkage => "network_linkage",
            Cause::Exporter => "exporter",
        }
    }
}

/// One cause found, with why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub cause: Cause,
    /// From the fixed vocabulary (`proxy_fails_origin_ok`, `origin_slow`, ...).
    pub reason: &'static str,
    /// Facts a person can check, one per line.
    pub evidence: Vec<String>,
}

/// What the origin agent reported, as far as the verdict uses it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentEvidence {
    pub cpu_usage_ratio: Option<f64>,
    pub memory_usage_ratio: Option<f64>,
    /// The highest interface usage ratio, and its interface.
    pub network_usage: Option<(String, f64)>,
    /// (process, up)
    pub processes: Vec<(String, bool)>,
    /// (port, listening)
    pub web_ports: Vec<(u16, bool)>,
    /// (range, verdict: allowed | blocked | rate_limited | unknown)
    pub firewall: Vec<(String, String)>,
    pub connections_forwarding: Option<f64>,
    pub connections_other: Option<f64>,
    /// Responses the web server gave the forwarding IPs, by status, since
    /// the agent started.
    pub forwarding_responses: Vec<(String, f64)>,
}

/// The whole verdict: the first finding is the cause of the failures; the
/// others are further trouble seen at the same time. Empty: healthy.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub findings: Vec<Finding>,
    /// A failure none of the three causes explains (e.g. the proxy itself
    /// refuses us): said plainly rather than forced into a cause.
    pub unexplained: Vec<String>,
    /// Things worth knowing that are not failures of the site.
    pub notes: Vec<String>,
}

impl Verdict {
    pub fn healthy(&self) -> bool {
        self.findings.is_empty() && self.unexplained.is_empty()
    }
}

fn describe(t: &TargetResult) -> String {
    let h = &t.http;
    let what = match (h.status, h.error) {
        (Some(s), None) => format!("HTTP {s}"),
        (Some(s), Some(_)) => format!("HTTP {s} (not expected)"),
        (None, Some(e)) => e.as_str().to_owned(),
        (None, None) => "no answer".to_owned(),
    };
    let share = if t.requests > 1 {
        format!(" ({} of {} requests failed)", t.failed_requests, t.requests)
    } else {
        String::new()
    };
    format!(
        "{} {}: {} in {:.3} s{share}",
        t.path,
        t.address,
        what,
        h.duration.as_secs_f64()
    )
}

/// The loss on the path to `t`, from the echoes that measure it (ICMP, or
/// TCP handshakes for an ICMP-silent address); `None` when none came back
/// at all: a path that carries nothing is down or filtered, not lossy.
fn loss(t: &TargetResult) -> Option<f64> {
    t.path_echoes()
        .filter(|e| e.received > 0)
        .map(|e| e.loss_ratio())
}

/// What measured the path to `t`, for the evidence.
fn echo_kind(t: &TargetResult) -> &'static str {
    match (&t.icmp, t.icmp_silent) {
        (Some(_), false) => "ICMP",
        _ => "TCP handshakes",
    }
}

/// Judge one round; `agent` adds what the origin's agent saw.
pub fn judge(round: &SiteResult, agent: Option<&AgentEvidence>) -> Verdict {
    let mut v = Verdict::default();
    if round.failed_locally() {
        // Nothing left this host: no route, no name resolution, no source
        // address. That is this prober's network, and says nothing of the
        // site.
        v.findings.push(Finding {
            cause: Cause::Exporter,
            reason: "vantage_cut_off",
            evidence: round.targets.iter().map(describe).collect(),
        });
        return v;
    }
    let of = |p: Path| round.targets.iter().filter(move |t| t.path == p);
    let proxies: Vec<&TargetResult> = of(Path::Proxy).collect();
    let origins: Vec<&TargetResult> = of(Path::Origin).collect();
    let proxy_ok = !proxies.is_empty() && proxies.iter().all(|t| t.http.success());
    // An origin that refuses our direct probes while the site works (it
    // admits only the forwarding ranges) says nothing about the origin.
    let (refused, failed_origins): (Vec<&TargetResult>, Vec<&TargetResult>) = origins
        .iter()
        .copied()
        .filter(|t| !t.http.success())
        .partition(|t| t.admission.refused);
    for t in &refused {
        v.notes.push(format!(
            "{}: this origin does not admit the prober's direct probes while the site works through the proxy (it admits only the forwarding ranges?): its failures say nothing about the origin; admit the prober's address, or run a prober on an allowed host",
            describe(t)
        ));
    }

    if !proxy_ok {
        if !failed_origins.is_empty() {
            // The origin fails straight too: the origin explains the proxy.
            for t in &failed_origins {
                v.findings.push(origin_failure(t));
            }
        } else if !refused.is_empty() {
            v.unexplained.push(
                "the proxy fails and the origin cannot be probed straight from here: a blocked forwarding IP and a failing origin look the same from this prober (the origin agent tells them apart)".into(),
            );
        } else {
            let blocked: Vec<&TargetResult> = proxies
                .iter()
                .copied()
                .filter(|t| t.forwarding_failures > 0)
                .collect();
            if !blocked.is_empty() {
                v.findings
                    .push(blocked_forwarding(&blocked, &origins, agent));
            }
            for p in proxies.iter().filter(|p| p.forwarding_failures == 0) {
                explain_proxy_failure(p, &origins, &mut v);
            }
        }
    } else if !failed_origins.is_empty() {
        // The site works through the proxy; the origin does not answer us
        // straight. Often on purpose: an origin that admits only the
        // forwarding ranges. Worth saying, not a cause of a 502.
        for t in &failed_origins {
            v.notes.push(format!(
                "{} (the site works through the proxy; an origin that admits only the forwarding ranges looks like this)",
                describe(t)
            ));
        }
    }

    network(round, &mut v);
    if let Some(a) = agent {
        from_agent(a, &mut v);
    }
    dedup(&mut v);
    v
}

/// Why the origin failed when probed straight.
fn origin_failure(t: &TargetResult) -> Finding {
    let h = &t.http;
    let mut evidence = vec![describe(t)];
    if let Some(l) = loss(t) {
        evidence.push(format!(
            "{} loss to {}: {:.0}%",
            echo_kind(t),
            t.address,
            l * 100.0
        ));
    }
    let reason = match h.error {
        Some(ErrorKind::ConnectRefused) => {
            evidence.push("the host answers but nothing accepts on the web port".into());
            "web_service_down"
        }
        Some(ErrorKind::ConnectTimeout | ErrorKind::Unreachable | ErrorKind::NoRoute) => {
            "origin_unreachable"
        }
        Some(ErrorKind::Timeout) => "origin_slow",
        Some(ErrorKind::HttpStatus) if h.status.is_some_and(|s| s >= 500) => "origin_http_errors",
        // A 4xx, a broken TLS setup, a reset: the origin answers wrongly.
        _ => "origin_http_errors",
    };
    Finding {
        cause: Cause::OriginAbnormal,
        reason,
        evidence,
    }
}

fn blocked_forwarding(
    proxies: &[&TargetResult],
    origins: &[&TargetResult],
    agent: Option<&AgentEvidence>,
) -> Finding {
    let mut evidence: Vec<String> = proxies.iter().chain(origins).map(|t| describe(t)).collect();
    evidence.push("through the proxy fails while straight to the origin works: the proxy→origin hop is refused".into());
    let mut reason = "proxy_fails_origin_ok";
    if proxies.iter().any(|t| t.http.status == Some(429)) {
        reason = "forwarding_ip_rate_limited";
    }
    if let Some(a) = agent {
        for (range, verdict) in &a.firewall {
            match verdict.as_str() {
                "blocked" => {
                    reason = "firewall_blocks_forwarding_range";
                    evidence.push(format!(
                        "the origin's firewall blocks the forwarding range {range}"
                    ));
                }
                "rate_limited" if reason != "firewall_blocks_forwarding_range" => {
                    reason = "forwarding_ip_rate_limited";
                    evidence.push(format!(
                        "the origin's firewall rate-limits the forwarding range {range}"
                    ));
                }
                _ => {}
            }
        }
    }
    Finding {
        cause: Cause::ForwardingIpBlocked,
        reason,
        evidence,
    }
}

/// The proxy failed, the origin answered us, and the forwarding flag is
/// off: slowness, or the proxy itself.
fn explain_proxy_failure(p: &TargetResult, origins: &[&TargetResult], v: &mut Verdict) {
    // Loss on the path to the proxy explains its failure, and network()
    // says so. A path that carries nothing is the proxy unreachable, said
    // below.
    if loss(p).is_some_and(|l| l > LOSS_THRESHOLD) {
        return;
    }
    match proxy_failure(&p.http) {
        Some(ProxyFailure::UpstreamTimeout) => {
            let slowest = origins
                .iter()
                .map(|o| o.http.duration)
                .max()
                .unwrap_or_default();
            let mut evidence = vec![describe(p)];
            evidence.extend(origins.iter().map(|o| describe(o)));
            evidence.push(format!(
                "the origin took {:.3} s to answer us: the proxy gave up waiting for it",
                slowest.as_secs_f64()
            ));
            v.findings.push(Finding {
                cause: Cause::OriginAbnormal,
                reason: "origin_slow",
                evidence,
            });
        }
        Some(ProxyFailure::ProxyUnreachable) => {
            v.unexplained.push(format!(
                "{}: the proxy itself does not accept our connection (check the proxy address and the proxy service)",
                describe(p)
            ));
        }
        Some(_) => v.unexplained.push(format!(
            "{}: the proxy answers with something no cause explains",
            describe(p)
        )),
        None => {}
    }
}

/// Loss and jitter on each path, from the echoes that measure it.
fn network(round: &SiteResult, v: &mut Verdict) {
    for t in &round.targets {
        let Some(echoes) = t.path_echoes() else {
            continue;
        };
        if loss(t).is_some_and(|l| l > LOSS_THRESHOLD) {
            v.findings.push(Finding {
                cause: Cause::NetworkLinkage,
                reason: "packet_loss",
                evidence: vec![format!(
                    "{} to {} {} lost {} of {} ({:.0}%)",
                    echo_kind(t),
                    t.path,
                    t.address,
                    echoes.sent - echoes.received,
                    echoes.sent,
                    echoes.loss_ratio() * 100.0
                )],
            });
        }
        if let Some(rtt) = echoes.rtt {
            let jitter = rtt.stddev.as_secs_f64();
            if jitter > JITTER_THRESHOLD_SECONDS {
                v.findings.push(Finding {
                    cause: Cause::NetworkLinkage,
                    reason: "jitter",
                    evidence: vec![format!(
                        "{} to {} {}: round trip {:.1} ms on average, {:.1} ms standard deviation",
                        echo_kind(t),
                        t.path,
                        t.address,
                        rtt.avg.as_secs_f64() * 1000.0,
                        jitter * 1000.0
                    )],
                });
            }
        }
    }
}

/// What the origin's agent adds: trouble on the origin host.
fn from_agent(a: &AgentEvidence, v: &mut Verdict) {
    let mut origin = |reason: &'static str, line: String| {
        v.findings.push(Finding {
            cause: Cause::OriginAbnormal,
            reason,
            evidence: vec![line],
        })
    };
    if let Some(c) = a.cpu_usage_ratio.filter(|c| *c > SATURATION_THRESHOLD) {
        origin(
            "cpu_saturated",
            format!("origin CPU {:.0}% busy", c * 100.0),
        );
    }
    if let Some(m) = a.memory_usage_ratio.filter(|m| *m > SATURATION_THRESHOLD) {
        origin(
            "memory_saturated",
            format!("origin memory {:.0}% used", m * 100.0),
        );
    }
    if let Some((iface, u)) = a
        .network_usage
        .as_ref()
        .filter(|(_, u)| *u > SATURATION_THRESHOLD)
    {
        origin(
            "bandwidth_saturated",
            format!(
                "origin interface {iface} at {:.0}% of its capacity",
                u * 100.0
            ),
        );
    }
    for (name, up) in &a.processes {
        if !up {
            origin(
                "web_service_down",
                format!("no {name} process runs on the origin"),
            );
        }
    }
    for (port, listening) in &a.web_ports {
        if !listening {
            origin(
                "web_service_down",
                format!("nothing listens on the origin's port {port}"),
            );
        }
    }
    if let (Some(other), forwarding) =
        (a.connections_other, a.connections_forwarding.unwrap_or(0.0))
    {
        if other > EXPOSED_CONNECTIONS && other > forwarding {
            origin(
                "origin_exposed",
                format!("{other:.0} connections to the web ports come from outside the forwarding ranges ({forwarding:.0} from inside): the origin address is known and reached around the proxy"),
            );
        }
    }
    for (range, verdict) in &a.firewall {
        let reason = match verdict.as_str() {
            "blocked" => "firewall_blocks_forwarding_range",
            "rate_limited" => "forwarding_ip_rate_limited",
            _ => continue,
        };
        v.findings.push(Finding {
            cause: Cause::ForwardingIpBlocked,
            reason,
            evidence: vec![format!(
                "the origin's firewall: forwarding range {range} is {verdict}"
            )],
        });
    }
}

/// One finding per (cause, reason), evidence merged, order kept.
fn dedup(v: &mut Verdict) {
    let mut out: Vec<Finding> = Vec::new();
    for f in v.findings.drain(..) {
        match out
            .iter_mut()
            .find(|o| o.cause == f.cause && o.reason == f.reason)
        {
            Some(o) => {
                for e in f.evidence {
                    if !o.evidence.contains(&e) {
                        o.evidence.push(e);
                    }
                }
            }
            None => out.push(f),
        }
    }
    v.findings = out;
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::probe::{EchoRound, HttpOutcome, Phases, RttStats};

    fn target(path: Path, status: Option<u16>, error: Option<ErrorKind>, ms: u64) -> TargetResult {
        TargetResult {
            path,
            address: match path {
                Path::Proxy => "198.51.100.10".into(),
                Path::Origin => "203.0.113.5".into(),
            },
            http: HttpOutcome {
                resolved: None,
                status,
                phases: Phases::default(),
                duration: Duration::from_millis(ms),
                error,
                detail: None,
            },
            icmp: Some(EchoRound {
                sent: 10,
                received: 10,
                rtt: RttStats::from_samples(&[Duration::from_millis(1); 10]),
            }),
            tcp: None,
            icmp_silent: false,
            forwarding_failures: 0,
            requests: 1,
            failed_requests: u32::from(error.is_some()),
            admission: Default::default(),
            totals: Default::default(),
        }
    }
    fn ok(path: Path, ms: u64) -> TargetResult {
        target(path, Some(200), None, ms)
    }
    fn status(path: Path, code: u16, ms: u64) -> TargetResult {
        target(path, Some(code), Some(ErrorKind::HttpStatus), ms)
    }
    fn failed(path: Path, kind: ErrorKind, ms: u64) -> TargetResult {
        target(path, None, Some(kind), ms)
    }
    fn round(mut targets: Vec<TargetResult>) -> SiteResult {
        let flags: Vec<bool> = targets
            .iter()
            .map(|t| {
                t.path == Path::Proxy
                    && super::super::forwarding_failures(t, std::slice::from_ref(&t.http), &targets)
                        > 0
            })
            .collect();
        for (t, f) in targets.iter_mut().zip(flags) {
            t.forwarding_failures = u32::from(f);
        }
        SiteResult {
            forwarding_ip_blocked: targets.iter().any(|t| t.forwarding_failures > 0),
            targets,
            finished: SystemTime::now(),
        }
    }
    fn first(v: &Verdict) -> (Cause, &'static str) {
        let f = v.findings.first().expect("a finding");
        (f.cause, f.reason)
    }

    #[test]
    fn every_reason_has_a_meaning_and_belongs_to_its_cause() {
        for (cause, reasons) in VOCABULARY {
            for r in reasons.iter() {
                assert!(!crate::diagnose::meaning(r).is_empty(), "{cause}/{r}");
            }
        }
    }

    #[test]
    fn healthy_round() {
        let v = judge(&round(vec![ok(Path::Proxy, 5), ok(Path::Origin, 3)]), None);
        assert!(v.healthy(), "{v:?}");
    }

    #[test]
    fn forwarding_blocked_and_its_reasons() {
        let r = round(vec![status(Path::Proxy, 502, 5), ok(Path::Origin, 3)]);
        assert_eq!(
            first(&judge(&r, None)),
            (Cause::ForwardingIpBlocked, "proxy_fails_origin_ok")
        );
        let r = round(vec![status(Path::Proxy, 429, 5), ok(Path::Origin, 3)]);
        assert_eq!(
            first(&judge(&r, None)),
            (Cause::ForwardingIpBlocked, "forwarding_ip_rate_limited")
        );
        let agent = AgentEvidence {
            firewall: vec![("198.51.100.0/24".into(), "blocked".into())],
            ..Default::default()
        };
        let r = round(vec![status(Path::Proxy, 504, 2000), ok(Path::Origin, 3)]);
        assert_eq!(
            first(&judge(&r, Some(&agent))),
            (
                Cause::ForwardingIpBlocked,
                "firewall_blocks_forwarding_range"
            )
        );
    }

    #[test]
    fn origin_failures_by_kind() {
        for (origin, reason) in [
            (
                failed(Path::Origin, ErrorKind::ConnectRefused, 1),
                "web_service_down",
            ),
            (
                failed(Path::Origin, ErrorKind::ConnectTimeout, 5000),
                "origin_unreachable",
            ),
            (
                failed(Path::Origin, ErrorKind::Unreachable, 3),
                "origin_unreachable",
            ),
            (
                failed(Path::Origin, ErrorKind::Timeout, 5000),
                "origin_slow",
            ),
            (status(Path::Origin, 503, 4), "origin_http_errors"),
        ] {
            let r = round(vec![status(Path::Proxy, 502, 5), origin]);
            assert_eq!(first(&judge(&r, None)), (Cause::OriginAbnormal, reason));
            // Never also a blocked forwarding IP.
            assert!(judge(&r, None)
                .findings
                .iter()
                .all(|f| f.cause != Cause::ForwardingIpBlocked));
        }
    }

    #[test]
    fn a_slow_origin_explains_a_proxy_timeout() {
        let r = round(vec![status(Path::Proxy, 504, 1000), ok(Path::Origin, 1400)]);
        assert!(!r.forwarding_ip_blocked);
        assert_eq!(
            first(&judge(&r, None)),
            (Cause::OriginAbnormal, "origin_slow")
        );
    }

    #[test]
    fn an_origin_closed_to_us_behind_a_working_proxy_is_healthy() {
        let r = round(vec![
            ok(Path::Proxy, 5),
            failed(Path::Origin, ErrorKind::ConnectTimeout, 5000),
        ]);
        let v = judge(&r, None);
        assert!(v.healthy(), "{v:?}");
        assert_eq!(v.notes.len(), 1);
    }

    #[test]
    fn loss_and_jitter() {
        let mut lossy = ok(Path::Proxy, 5);
        lossy.icmp = Some(EchoRound {
            sent: 10,
            received: 7,
            rtt: None,
        });
        let v = judge(&round(vec![lossy.clone(), ok(Path::Origin, 3)]), None);
        assert_eq!(first(&v), (Cause::NetworkLinkage, "packet_loss"));
        // One lost echo of ten is not over the threshold.
        lossy.icmp = Some(EchoRound {
            sent: 10,
            received: 9,
            rtt: None,
        });
        assert!(judge(&round(vec![lossy, ok(Path::Origin, 3)]), None).healthy());

        let mut jittery = ok(Path::Origin, 3);
        let samples: Vec<Duration> = (0..10)
            .map(|i| Duration::from_millis(if i % 2 == 0 { 10 } else { 200 }))
            .collect();
        jittery.icmp = Some(EchoRound {
            sent: 10,
            received: 10,
            rtt: RttStats::from_samples(&samples),
        });
        let v = judge(&round(vec![ok(Path::Proxy, 5), jittery]), None);
        assert_eq!(first(&v), (Cause::NetworkLinkage, "jitter"));
    }

    #[test]
    fn loss_on_the_proxy_path_is_not_a_blocked_forwarding_ip() {
        let mut proxy = failed(Path::Proxy, ErrorKind::Timeout, 5000);
        proxy.icmp = Some(EchoRound {
            sent: 10,
            received: 6,
            rtt: None,
        });
        let r = round(vec![proxy, ok(Path::Origin, 3)]);
        assert!(!r.forwarding_ip_blocked);
        let v = judge(&r, None);
        assert_eq!(first(&v), (Cause::NetworkLinkage, "packet_loss"));
        assert!(v
            .findings
            .iter()
            .all(|f| f.cause != Cause::ForwardingIpBlocked));
    }

    #[test]
    fn an_unreachable_proxy_is_never_healthy() {
        let mut proxy = failed(Path::Proxy, ErrorKind::ConnectTimeout, 5000);
        proxy.icmp = Some(EchoRound {
            sent: 10,
            received: 0,
            rtt: None,
        });
        let v = judge(&round(vec![proxy, ok(Path::Origin, 3)]), None);
        assert!(!v.healthy(), "{v:?}");
        assert_eq!(v.unexplained.len(), 1);
    }

    #[test]
    fn an_unreachable_origin_is_not_also_packet_loss() {
        let mut down = failed(Path::Origin, ErrorKind::ConnectTimeout, 5000);
        down.icmp = Some(EchoRound {
            sent: 10,
            received: 0,
            rtt: None,
        });
        let v = judge(&round(vec![status(Path::Proxy, 502, 5), down]), None);
        assert_eq!(v.findings.len(), 1, "{v:?}");
        assert_eq!(first(&v), (Cause::OriginAbnormal, "origin_unreachable"));
    }

    #[test]
    fn agent_evidence_adds_origin_trouble() {
        let agent = AgentEvidence {
            cpu_usage_ratio: Some(0.97),
            processes: vec![("nginx".into(), false)],
            connections_forwarding: Some(5.0),
            connections_other: Some(400.0),
            ..Default::default()
        };
        let v = judge(
            &round(vec![ok(Path::Proxy, 5), ok(Path::Origin, 3)]),
            Some(&agent),
        );
        let reasons: Vec<&str> = v.findings.iter().map(|f| f.reason).collect();
        assert_eq!(
            reasons,
            ["cpu_saturated", "web_service_down", "origin_exposed"]
        );
    }
}
