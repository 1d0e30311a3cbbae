//! Cause `forwarding_ip_blocked`: the origin's firewall or host security
//! blocks or rate-limits the proxy's forwarding IPs.
//!
//! Rules (`rules/forwarding_ip_blocked.rules.yml`):
//! `BadGatewayForwardingIpBlocked` (proxy_fails_origin_ok, from the
//! records `badgateway:forwarding_failures:ratio_rate4m` and
//! `badgateway:origin_failures:ratio_rate4m`),
//! `BadGatewayFirewallBlocksForwardingRange`,
//! `BadGatewayForwardingIpRateLimited`,
//! `BadGatewayFirewallRateLimitsForwardingRange`.
//!
//! A blocked forwarding IP breaks only the proxy→origin hop. So the proxy
//! itself still accepts our connection (TCP and TLS to the proxy work) and
//! then answers with a gateway error, or the origin's refusal passed
//! through, or keeps us waiting; meanwhile the origin, probed straight with
//! the domain pinned to it, answers well and quickly. A slow origin also
//! makes the proxy give up while the origin still answers, so a proxy
//! time-out only counts when the origin answered much sooner than the proxy
//! gave up. A refusal (403, 429) or error (500) through the proxy may be the
//! origin's or the proxy's own page: where the origin agent's access log
//! shows the forwarding IPs got no such answer, the proxy made it.

use super::answer::{self, Kind};
use super::evidence::{AgentEvidence, Evidence, TargetEvidence};
use super::thresholds::*;
use super::{Reason, Verdict};
use crate::prober::probe::{ErrorKind, HttpOutcome, Path};
use crate::prober::results::TargetResult;

/// How a request through the proxy failed at the forwarding hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopFailure {
    /// A gateway error, a time-out the origin's speed does not explain, a
    /// reset after the request: the origin never answered the proxy.
    Gateway,
    /// A refusal or error status: the origin's, passed on, or the proxy's
    /// own (the agent's access log tells).
    Refused,
}

impl HopFailure {
    pub const ALL: [HopFailure; 2] = [HopFailure::Gateway, HopFailure::Refused];

    /// The `kind` label of `badgateway_forwarding_failures_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            HopFailure::Gateway => "gateway",
            HopFailure::Refused => "refused",
        }
    }
}

/// Whether one request through the proxy failed at the forwarding hop,
/// given every origin address's answer to its direct request of the same
/// round: they must all have answered, and faster than half the time the
/// proxy waited when the proxy timed out.
pub fn at_hop(request: &HttpOutcome, origins: &[&HttpOutcome]) -> Option<HopFailure> {
    if origins.is_empty() || !origins.iter().all(|o| o.success()) {
        return None;
    }
    let slowest = origins
        .iter()
        .map(|o| o.duration.as_secs_f64())
        .fold(0.0, f64::max);
    let faster_than_the_wait = slowest < SLOWNESS_SHARE * request.duration.as_secs_f64();
    match answer::kind(request)? {
        Kind::Gateway
            if request
                .status
                .is_some_and(answer::is_upstream_timeout_status) =>
        {
            faster_than_the_wait.then_some(HopFailure::Gateway)
        }
        Kind::Gateway => Some(HopFailure::Gateway),
        Kind::Broken if request.error == Some(ErrorKind::Timeout) => {
            faster_than_the_wait.then_some(HopFailure::Gateway)
        }
        Kind::Broken => Some(HopFailure::Gateway),
        Kind::Refused | Kind::Error => Some(HopFailure::Refused),
        Kind::Unanswered | Kind::UpstreamTls | Kind::Proxy | Kind::Other => None,
    }
}

/// A round's requests through the proxy address `proxy` that failed at the
/// forwarding hop, by [`HopFailure`]. Loss on the path to this proxy
/// address also makes the proxy time out or reset while the origin answers,
/// so a lossy round counts none.
pub fn round_failures(
    proxy: &TargetResult,
    requests: &[HttpOutcome],
    round: &[TargetResult],
) -> [u32; 2] {
    let origins: Vec<&HttpOutcome> = round
        .iter()
        .filter(|t| t.path == Path::Origin)
        .map(|t| &t.http)
        .collect();
    let lossy = proxy
        .path_echoes()
        .is_some_and(|e| e.received > 0 && e.loss_ratio() > LOSS_SHARE);
    let mut out = [0; 2];
    if !lossy {
        for r in requests {
            if let Some(f) = at_hop(r, &origins) {
                out[f as usize] += 1;
            }
        }
    }
    out
}

/// Whether the origin agent's access log confirms that the origin refused
/// or failed the forwarding IPs: `None` when it cannot tell (no agent, no
/// log, one reading).
pub fn origin_refused_forwarding(agent: Option<&AgentEvidence>) -> Option<bool> {
    let a = agent?;
    let statuses: Vec<&str> = AgentEvidence::REFUSALS
        .iter()
        .chain(AgentEvidence::ERRORS.iter())
        .copied()
        .collect();
    a.log_rate("forwarding", &statuses).map(|r| r > 0.0)
}

/// Requests through `p` that failed at the forwarding hop, as a cause:
/// refusals only where nothing says the proxy made them.
pub fn hop_failures(p: &TargetEvidence, agent: Option<&AgentEvidence>) -> f64 {
    let refused = match origin_refused_forwarding(agent) {
        Some(false) => 0.0,
        _ => p.forwarding_refused,
    };
    p.forwarding_gateway + refused
}

pub(super) fn judge(e: &Evidence, v: &mut Verdict) {
    let agent = e.agent.as_ref();
    let origins: Vec<&TargetEvidence> = e.of(Path::Origin).collect();
    let origin_requests: f64 = origins.iter().map(|o| o.requests).sum();
    let origin_failed: f64 = origins.iter().map(|o| o.failed()).sum();
    let origin_share = if origin_requests > 0.0 {
        origin_failed / origin_requests
    } else {
        0.0
    };
    for p in e.of(Path::Proxy) {
        let n = hop_failures(p, agent);
        let share = p.share(n);
        if !(share >= FORWARDING_SHARE
            && n >= FORWARDING_MIN_FAILURES
            && share > ORIGIN_EXPLAINS_FACTOR * origin_share)
        {
            continue;
        }
        if p.lossy() {
            continue; // network.rs says why
        }
        if let Some(why) = saturation(agent) {
            v.against.push(format!(
                "{}: the proxy fails at the forwarding hop while the origin answers, but {why}: a loaded origin fails the proxy's requests too, so saturation outranks a blocked forwarding IP",
                p.address
            ));
            continue;
        }
        if races(e, p, share) {
            continue; // keepalive_race says why
        }
        let mut evidence = vec![
            p.describe(),
            format!(
                "{:.0} of {:.0} requests through {} failed at the proxy-to-origin hop ({:.0}%) while every origin address answered straight",
                n,
                p.requests,
                p.address,
                share * 100.0
            ),
        ];
        evidence.extend(origins.iter().map(|o| o.describe()));
        against_a_block(agent, v);
        v.add(refine(p, agent, &mut evidence), evidence);
    }
    if let Some(a) = agent {
        from_agent(a, v);
    }
    keepalive_race(e, v);
}

/// A share of the requests through `p` this large is more than a
/// keep-alive race fails: most requests find a fresh or live connection.
const RACE_SHARE: f64 = 0.5;

/// Whether a keep-alive race explains `p`'s failures at the forwarding hop:
/// the origin closes idle connections before the proxy stops reusing them,
/// the failures are gateway errors only (a race never makes the origin
/// refuse), and they are a share of the requests, not most.
fn races(e: &Evidence, p: &TargetEvidence, share: f64) -> bool {
    e.keepalive.is_some()
        && p.forwarding_gateway > 0.0
        && p.forwarding_refused == 0.0
        && share < RACE_SHARE
}

/// Cause `origin_abnormal`, reason `keepalive_mismatch`: some request
/// through the proxy failed at the forwarding hop with a gateway error
/// while the origin closes idle keep-alive connections sooner than the
/// proxy's idle timeout; not when the proxy's failures are more than a
/// race makes (a blocked forwarding IP).
fn keepalive_race(e: &Evidence, v: &mut Verdict) {
    let Some(k) = &e.keepalive else { return };
    let racing: Vec<&TargetEvidence> = e
        .of(Path::Proxy)
        .filter(|p| races(e, p, p.share(p.forwarding_gateway)))
        .collect();
    if racing.is_empty() {
        return;
    }
    let mut evidence = vec![format!(
        "origin {} closes an idle keep-alive connection after {:.1} s, sooner than the proxy's idle timeout of {:.0} s (two watches in a row)",
        k.address, k.origin_idle_seconds, k.proxy_idle_seconds
    )];
    evidence.extend(racing.iter().map(|p| {
        format!(
            "{:.0} of {:.0} requests through {} failed with a gateway error at the proxy-to-origin hop while the origin answered straight: the proxy reused connections the origin was closing",
            p.forwarding_gateway, p.requests, p.address
        )
    }));
    v.add(Reason::KeepaliveMismatch, evidence);
}

/// The reason a forwarding block gets from what the agent says of the
/// firewall, or from the status the proxy passed on.
fn refine(p: &TargetEvidence, agent: Option<&AgentEvidence>, evidence: &mut Vec<String>) -> Reason {
    let verdicts = agent.map(|a| a.firewall.as_slice()).unwrap_or_default();
    if let Some((range, _)) = verdicts.iter().find(|(_, v)| v == "blocked") {
        evidence.push(format!(
            "the origin's firewall blocks the forwarding range {range}"
        ));
        return Reason::FirewallBlocksForwardingRange;
    }
    if let Some((range, _)) = verdicts.iter().find(|(_, v)| v == "rate_limited") {
        evidence.push(format!(
            "the origin's firewall rate-limits the forwarding range {range}"
        ));
        return Reason::ForwardingIpRateLimited;
    }
    if p.status == Some(429) {
        return Reason::ForwardingIpRateLimited;
    }
    Reason::ProxyFailsOriginOk
}

/// What the agent says against a block: every range allowed, and the
/// forwarding IPs served.
fn against_a_block(agent: Option<&AgentEvidence>, v: &mut Verdict) {
    let Some(a) = agent else { return };
    if !a.firewall.is_empty() && a.firewall.iter().all(|(_, verdict)| verdict == "allowed") {
        v.against.push(
            "the origin's firewall allows every forwarding range (a block elsewhere: a cloud security group, host security, the proxy's side)".into(),
        );
    }
    if let Some(served) = a.log_rate("forwarding", &["2xx"]).filter(|r| *r > 0.0) {
        v.against.push(format!(
            "the origin served the forwarding IPs {served:.1} 2xx answers a second meanwhile: some of the proxy's requests get through"
        ));
    }
}

/// The saturation the agent reports, if any.
pub fn saturation(agent: Option<&AgentEvidence>) -> Option<String> {
    super::origin::saturated(agent?)
        .into_iter()
        .find(|(_, _, held)| *held >= SATURATION_HELD_FAILING_SECONDS)
        .map(|(_, what, _)| what)
}

/// The agent's own evidence of a block: the firewall's verdict on the
/// ranges, and refusals in the access log.
fn from_agent(a: &AgentEvidence, v: &mut Verdict) {
    for (range, verdict) in &a.firewall {
        let reason = match verdict.as_str() {
            "blocked" => Reason::FirewallBlocksForwardingRange,
            "rate_limited" => Reason::ForwardingIpRateLimited,
            _ => continue,
        };
        v.add(
            reason,
            vec![format!(
                "the origin's firewall: forwarding range {range} is {verdict}"
            )],
        );
    }
    let (Some(refused), Some(all)) = (
        a.log_rate("forwarding", &AgentEvidence::REFUSALS),
        a.log_rate("forwarding", &[]),
    ) else {
        return;
    };
    let share = if all > 0.0 { refused / all } else { 0.0 };
    let others_served = a.log_rate("other", &["2xx"]).unwrap_or(0.0) > 0.0;
    let other_all = a.log_rate("other", &[]).unwrap_or(0.0);
    let other_share = if other_all > 0.0 {
        a.log_rate("other", &AgentEvidence::REFUSALS).unwrap_or(0.0) / other_all
    } else {
        0.0
    };
    if share >= REFUSED_SHARE
        && refused >= REFUSED_PER_SECOND
        && others_served
        && other_share < 0.5 * share
    {
        v.add(
            Reason::ForwardingIpRateLimited,
            vec![format!(
                "the origin's access log: {:.0}% of the forwarding IPs' requests refused (403/429/444/503, {refused:.2}/s) while other clients are served",
                share * 100.0
            )],
        );
    }
}
