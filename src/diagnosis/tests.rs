// Why one file: tests only, one per cause and look-alike: long by nature.
//! The verdict over evidence made by hand: each cause from what it changes
//! on each path, and the look-alikes that must not be taken for it.

use super::answer::Kind;
use super::thresholds::{SATURATION_HELD_FAILING_SECONDS, SATURATION_HELD_SECONDS};
use super::*;
use crate::prober::probe::{ErrorKind, Path};

/// A target that answered every one of `requests` well.
fn ok(path: Path, requests: f64) -> TargetEvidence {
    TargetEvidence {
        path,
        address: match path {
            Path::Proxy => "198.51.100.10".into(),
            Path::Origin => "203.0.113.5".into(),
        },
        requests,
        failures: [0.0; Kind::ALL.len()],
        forwarding_gateway: 0.0,
        forwarding_refused: 0.0,
        status: Some(200),
        error: None,
        duration_seconds: 0.005,
        first_byte_seconds: Some(0.002),
        signature: None,
        loss: Some(0.0),
        rtt_avg_seconds: Some(0.001),
        rtt_stddev_seconds: Some(0.0001),
        measured_by: "ICMP",
        icmp_silent: false,
        admits: true,
        echoes_stopped: false,
        cert_expiry_seconds: None,
    }
}

/// `failed` of its requests failed with `kind`, the last one with
/// `status` or `error`.
fn failing(
    mut t: TargetEvidence,
    kind: Kind,
    failed: f64,
    status: Option<u16>,
    error: ErrorKind,
) -> TargetEvidence {
    t.failures[kind.index()] = failed;
    t.status = status;
    t.error = Some(error);
    t
}

/// The proxy answering `code`, after waiting half a second for its
/// upstream.
fn proxy_status(code: u16, kind: Kind, failed: f64) -> TargetEvidence {
    let mut p = failing(
        ok(Path::Proxy, 20.0),
        kind,
        failed,
        Some(code),
        ErrorKind::HttpStatus,
    );
    p.duration_seconds = 0.5;
    p
}

fn evidence(targets: Vec<TargetEvidence>) -> Evidence {
    Evidence {
        targets,
        vantage_cut_off: false,
        agent: None,
        keepalive: None,
    }
}

fn first(v: &Verdict) -> (Cause, Reason) {
    let f = v.first().unwrap_or_else(|| panic!("no finding: {v:#?}"));
    (f.cause(), f.reason)
}

#[test]
fn every_reason_has_a_cause_a_name_and_a_meaning() {
    for r in Reason::ALL {
        assert!(!r.meaning().is_empty(), "{r:?}");
        assert_eq!(Reason::from_name(r.as_str()), Some(r));
    }
    for c in Cause::ALL {
        assert!(c.reasons().next().is_some(), "{c:?} has no reason");
    }
    assert_eq!(Reason::ProxyUnreachable.cause(), Cause::Proxy);
    assert_eq!(Reason::OriginTlsError.cause(), Cause::OriginAbnormal);
}

#[test]
fn healthy() {
    let v = judge(&evidence(vec![
        ok(Path::Proxy, 20.0),
        ok(Path::Origin, 1.0),
    ]));
    assert!(v.healthy(), "{v:#?}");
}

#[test]
fn a_share_of_requests_failing_at_the_forwarding_hop_is_a_blocked_forwarding_ip() {
    // A third of 20 requests: a gateway error each, the origin answering.
    let mut p = proxy_status(502, Kind::Gateway, 7.0);
    p.forwarding_gateway = 7.0;
    let v = judge(&evidence(vec![p.clone(), ok(Path::Origin, 1.0)]));
    assert_eq!(
        first(&v),
        (Cause::ForwardingIpBlocked, Reason::ProxyFailsOriginOk)
    );
    // Two of 20 is under 10 % and under three requests: a blip.
    p.forwarding_gateway = 2.0;
    p.failures[Kind::Gateway.index()] = 2.0;
    let v = judge(&evidence(vec![p, ok(Path::Origin, 1.0)]));
    assert!(v.findings.is_empty(), "{v:#?}");
}

#[test]
fn an_origin_failing_as_often_explains_the_proxy() {
    let mut p = proxy_status(502, Kind::Gateway, 7.0);
    p.forwarding_gateway = 5.0;
    let mut o = ok(Path::Origin, 6.0);
    o.failures[Kind::Error.index()] = 2.0;
    let v = judge(&evidence(vec![p, o]));
    assert!(
        v.findings
            .iter()
            .all(|f| f.cause() != Cause::ForwardingIpBlocked),
        "{v:#?}"
    );
}

#[test]
fn loss_on_the_proxy_path_is_not_a_blocked_forwarding_ip() {
    let mut p = failing(
        ok(Path::Proxy, 20.0),
        Kind::Broken,
        8.0,
        None,
        ErrorKind::Timeout,
    );
    p.duration_seconds = 1.0;
    p.forwarding_gateway = 8.0;
    p.loss = Some(0.3);
    let v = judge(&evidence(vec![p, ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::NetworkLinkage, Reason::PacketLoss));
    assert!(v
        .findings
        .iter()
        .all(|f| f.cause() != Cause::ForwardingIpBlocked));
}

#[test]
fn saturation_outranks_a_blocked_forwarding_ip_and_says_so() {
    let mut p = proxy_status(504, Kind::Gateway, 10.0);
    p.forwarding_gateway = 10.0;
    let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
    e.agent = Some(AgentEvidence {
        cpu_usage_ratio: Some(0.97),
        cpu_saturated_seconds: Some(SATURATION_HELD_FAILING_SECONDS + 5.0),
        ..AgentEvidence::default()
    });
    let v = judge(&e);
    assert_eq!(first(&v), (Cause::OriginAbnormal, Reason::CpuSaturated));
    assert!(
        v.against.iter().any(|a| a.contains("saturation outranks")),
        "{v:#?}"
    );
}

#[test]
fn a_moment_of_full_cpu_is_a_note_not_a_cause() {
    // The site fails at the forwarding hop; the origin's CPU has been
    // above 90% for 20 s only: the block stays the cause.
    let mut p = proxy_status(504, Kind::Gateway, 10.0);
    p.forwarding_gateway = 10.0;
    let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
    e.agent = Some(AgentEvidence {
        cpu_usage_ratio: Some(0.99),
        cpu_saturated_seconds: Some(20.0),
        ..AgentEvidence::default()
    });
    let v = judge(&e);
    assert_eq!(first(&v).0, Cause::ForwardingIpBlocked, "{v:#?}");
    assert!(
        v.notes.iter().any(|n| n.contains("not yet long enough")),
        "{v:#?}"
    );
    // A healthy site: saturation held for less than "long" is no finding...
    let mut e = evidence(vec![ok(Path::Proxy, 3.0), ok(Path::Origin, 1.0)]);
    e.agent = Some(AgentEvidence {
        memory_usage_ratio: Some(0.95),
        memory_saturated_seconds: Some(SATURATION_HELD_SECONDS - 1.0),
        ..AgentEvidence::default()
    });
    assert!(judge(&e).healthy());
    // ... and held that long, it is named.
    e.agent.as_mut().unwrap().memory_saturated_seconds = Some(SATURATION_HELD_SECONDS);
    assert_eq!(
        first(&judge(&e)),
        (Cause::OriginAbnormal, Reason::MemorySaturated)
    );
}

#[test]
fn gateway_errors_now_and_then_with_an_origin_that_closes_idle_connections_early_are_a_race() {
    let race = Some(super::evidence::KeepaliveEvidence {
        address: "203.0.113.5".into(),
        origin_idle_seconds: 5.0,
        proxy_idle_seconds: 60.0,
    });
    // A few of 20 requests (under the block's share and above it).
    for failed in [1.0, 4.0] {
        let mut p = proxy_status(502, Kind::Gateway, failed);
        p.forwarding_gateway = failed;
        let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
        e.keepalive = race.clone();
        let v = judge(&e);
        assert_eq!(
            first(&v),
            (Cause::OriginAbnormal, Reason::KeepaliveMismatch),
            "{failed} failed: {v:#?}"
        );
        assert!(
            !v.findings
                .iter()
                .any(|f| f.reason == Reason::ProxyFailsOriginOk),
            "{v:#?}"
        );
    }
    // Most requests failing is more than a race: a blocked forwarding IP.
    let mut p = proxy_status(502, Kind::Gateway, 15.0);
    p.forwarding_gateway = 15.0;
    let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
    e.keepalive = race.clone();
    assert_eq!(
        first(&judge(&e)),
        (Cause::ForwardingIpBlocked, Reason::ProxyFailsOriginOk)
    );
    // A refusal passed on is never a race.
    let mut p = proxy_status(403, Kind::Refused, 4.0);
    p.forwarding_refused = 4.0;
    let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
    e.keepalive = race;
    assert!(!judge(&e)
        .findings
        .iter()
        .any(|f| f.reason == Reason::KeepaliveMismatch));
    // The same gateway errors, no mismatch watched: a blocked forwarding IP.
    let mut p = proxy_status(502, Kind::Gateway, 4.0);
    p.forwarding_gateway = 4.0;
    assert_eq!(
        first(&judge(&evidence(vec![p, ok(Path::Origin, 1.0)]))),
        (Cause::ForwardingIpBlocked, Reason::ProxyFailsOriginOk)
    );
}

#[test]
fn the_agent_refines_the_block_and_argues_against_one() {
    let mut p = proxy_status(504, Kind::Gateway, 20.0);
    p.forwarding_gateway = 20.0;
    let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
    e.agent = Some(AgentEvidence {
        firewall: vec![("198.51.100.0/24".into(), "blocked".into())],
        ..AgentEvidence::default()
    });
    let v = judge(&e);
    assert_eq!(
        first(&v),
        (
            Cause::ForwardingIpBlocked,
            Reason::FirewallBlocksForwardingRange
        )
    );
    e.agent = Some(AgentEvidence {
        firewall: vec![("198.51.100.0/24".into(), "allowed".into())],
        log_rates: vec![("forwarding".into(), "2xx".into(), 3.0)],
        ..AgentEvidence::default()
    });
    let v = judge(&e);
    assert_eq!(
        first(&v),
        (Cause::ForwardingIpBlocked, Reason::ProxyFailsOriginOk)
    );
    assert_eq!(v.against.len(), 2, "{v:#?}");
}

#[test]
fn a_refusal_the_origin_did_not_make_is_the_proxys_own() {
    let mut p = proxy_status(403, Kind::Refused, 20.0);
    p.forwarding_refused = 20.0;
    // No agent: a refusal through the proxy while the origin answers us is
    // the origin refusing the forwarding IPs.
    let v = judge(&evidence(vec![p.clone(), ok(Path::Origin, 1.0)]));
    assert_eq!(
        first(&v),
        (Cause::ForwardingIpBlocked, Reason::ProxyFailsOriginOk)
    );
    // The agent's log shows the forwarding IPs refused nothing: the proxy's.
    let mut e = evidence(vec![p, ok(Path::Origin, 1.0)]);
    e.agent = Some(AgentEvidence {
        log_rates: vec![
            ("forwarding".into(), "403".into(), 0.0),
            ("forwarding".into(), "2xx".into(), 0.0),
            ("other".into(), "2xx".into(), 1.0),
        ],
        ..AgentEvidence::default()
    });
    let v = judge(&e);
    assert_eq!(first(&v), (Cause::Exporter, Reason::ProxyOwnAnswer));
    assert!(v
        .findings
        .iter()
        .all(|f| f.cause() != Cause::ForwardingIpBlocked));
    // A page with a proxy's signature needs no agent.
    let mut p = proxy_status(403, Kind::Proxy, 20.0);
    p.signature = Some("cloudflare".into());
    let v = judge(&evidence(vec![p, ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::Exporter, Reason::ProxyOwnAnswer));
}

#[test]
fn a_proxy_that_answers_nothing_is_the_proxy() {
    let p = failing(
        ok(Path::Proxy, 20.0),
        Kind::Unanswered,
        20.0,
        None,
        ErrorKind::ConnectRefused,
    );
    let v = judge(&evidence(vec![p.clone(), ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::Proxy, Reason::ProxyUnreachable));
    // Heavy loss on the way makes connects time out too: the path.
    let mut lossy = p;
    lossy.loss = Some(0.8);
    lossy.error = Some(ErrorKind::ConnectTimeout);
    let v = judge(&evidence(vec![lossy, ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::NetworkLinkage, Reason::PacketLoss));
    // A TLS handshake with the proxy that fails is not a forwarding cause.
    let tls = failing(
        ok(Path::Proxy, 20.0),
        Kind::Unanswered,
        20.0,
        None,
        ErrorKind::Tls,
    );
    let v = judge(&evidence(vec![tls, ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::Proxy, Reason::ProxyUnreachable));
}

#[test]
fn origin_failures_by_kind_while_the_site_fails() {
    for (error, status, kind, reason) in [
        (
            ErrorKind::ConnectRefused,
            None,
            Kind::Unanswered,
            Reason::WebServiceDown,
        ),
        (
            ErrorKind::ConnectTimeout,
            None,
            Kind::Unanswered,
            Reason::OriginUnreachable,
        ),
        (
            ErrorKind::Tls,
            None,
            Kind::Unanswered,
            Reason::OriginTlsError,
        ),
        (ErrorKind::Timeout, None, Kind::Broken, Reason::OriginSlow),
        (
            ErrorKind::HttpStatus,
            Some(503),
            Kind::Refused,
            Reason::OriginHttpErrors,
        ),
        (
            ErrorKind::Reset,
            None,
            Kind::Broken,
            Reason::OriginHttpErrors,
        ),
    ] {
        let o = failing(ok(Path::Origin, 1.0), kind, 1.0, status, error);
        let v = judge(&evidence(vec![
            proxy_status(502, Kind::Gateway, 20.0),
            o.clone(),
        ]));
        assert_eq!(first(&v), (Cause::OriginAbnormal, reason), "{error}");
        // The site works: a direct failure is no outage.
        let v = judge(&evidence(vec![ok(Path::Proxy, 20.0), o]));
        assert!(
            v.findings
                .iter()
                .all(|f| f.cause() != Cause::OriginAbnormal),
            "{error}: {v:#?}"
        );
    }
}

#[test]
fn a_cdn_saying_its_tls_to_the_origin_failed_is_the_origins_tls() {
    let p = proxy_status(526, Kind::UpstreamTls, 20.0);
    let v = judge(&evidence(vec![p, ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::OriginAbnormal, Reason::OriginTlsError));
    assert!(v
        .findings
        .iter()
        .all(|f| f.cause() != Cause::ForwardingIpBlocked));
}

#[test]
fn a_slow_origin_explains_a_proxy_timeout() {
    let mut p = proxy_status(504, Kind::Gateway, 20.0);
    p.duration_seconds = 1.0;
    let mut o = ok(Path::Origin, 1.0);
    o.duration_seconds = 0.8;
    let v = judge(&evidence(vec![p, o]));
    assert_eq!(first(&v), (Cause::OriginAbnormal, Reason::OriginSlow));
}

#[test]
fn an_origin_that_refuses_the_prober_is_no_evidence() {
    let mut o = failing(
        ok(Path::Origin, 1.0),
        Kind::Unanswered,
        1.0,
        None,
        ErrorKind::ConnectTimeout,
    );
    o.admits = false;
    // The site works: healthy, with a note.
    let v = judge(&evidence(vec![ok(Path::Proxy, 20.0), o.clone()]));
    assert!(v.healthy(), "{v:#?}");
    assert_eq!(v.notes.len(), 1);
    // The site fails: the prober cannot tell.
    let v = judge(&evidence(vec![
        proxy_status(504, Kind::Gateway, 20.0),
        o.clone(),
    ]));
    assert_eq!(first(&v), (Cause::Exporter, Reason::OriginNotProbeable));
    // ... unless the host stopped answering the echoes it answered.
    o.echoes_stopped = true;
    let v = judge(&evidence(vec![proxy_status(504, Kind::Gateway, 20.0), o]));
    assert_eq!(
        first(&v),
        (Cause::OriginAbnormal, Reason::OriginUnreachable)
    );
}

#[test]
fn loss_and_jitter_from_the_echoes_that_measure_the_path() {
    let mut p = ok(Path::Proxy, 20.0);
    p.loss = Some(0.3);
    let v = judge(&evidence(vec![p, ok(Path::Origin, 1.0)]));
    assert_eq!(first(&v), (Cause::NetworkLinkage, Reason::PacketLoss));
    let mut o = ok(Path::Origin, 1.0);
    o.loss = Some(0.1);
    assert!(judge(&evidence(vec![ok(Path::Proxy, 20.0), o.clone()])).healthy());
    // 40 ms on a 100 ms path: jitter; 20 ms on 300 ms: steady.
    o.rtt_avg_seconds = Some(0.1);
    o.rtt_stddev_seconds = Some(0.04);
    let v = judge(&evidence(vec![ok(Path::Proxy, 20.0), o.clone()]));
    assert_eq!(first(&v), (Cause::NetworkLinkage, Reason::Jitter));
    o.rtt_avg_seconds = Some(0.3);
    o.rtt_stddev_seconds = Some(0.02);
    assert!(judge(&evidence(vec![ok(Path::Proxy, 20.0), o])).healthy());
}

#[test]
fn a_vantage_cut_off_says_nothing_else() {
    let mut e = evidence(vec![
        failing(
            ok(Path::Proxy, 20.0),
            Kind::Unanswered,
            20.0,
            None,
            ErrorKind::NoRoute,
        ),
        failing(
            ok(Path::Origin, 1.0),
            Kind::Unanswered,
            1.0,
            None,
            ErrorKind::NoRoute,
        ),
    ]);
    e.vantage_cut_off = true;
    let v = judge(&e);
    assert_eq!(v.findings.len(), 1);
    assert_eq!(first(&v), (Cause::Exporter, Reason::VantageCutOff));
}

#[test]
fn agent_evidence_with_the_rules_thresholds() {
    let mut e = evidence(vec![ok(Path::Proxy, 20.0), ok(Path::Origin, 1.0)]);
    e.agent = Some(AgentEvidence {
        processes: vec![("nginx".into(), false)],
        connections_forwarding: Some(5.0),
        connections_other: Some(40.0),
        forwarding_ranges: Some(1.0),
        ..AgentEvidence::default()
    });
    let reasons: Vec<Reason> = judge(&e).findings.iter().map(|f| f.reason).collect();
    assert_eq!(reasons, [Reason::WebServiceDown, Reason::OriginExposed]);
    // 19 outside connections is under the 20 of the rules.
    e.agent = Some(AgentEvidence {
        connections_other: Some(19.0),
        forwarding_ranges: Some(1.0),
        ..AgentEvidence::default()
    });
    assert!(judge(&e).healthy());
}
