//! Cause `origin_abnormal`: the origin is down, unreachable, broken, slow,
//! its TLS fails, it is saturated, or it is reached around the proxy.
//!
//! Rules (`rules/origin_abnormal.rules.yml`):
//! `BadGatewayOriginUnreachable`, `BadGatewayOriginRefusesConnections`,
//! `BadGatewayWebServiceDown`, `BadGatewayOriginHttpErrors`,
//! `BadGatewayOriginHttpErrorRate`, `BadGatewayOriginTimeout`,
//! `BadGatewayOriginSlowerThanProxyWaits`, `BadGatewayOriginSlow`,
//! `BadGatewayOriginTlsError`, `BadGatewayCertificateExpiresSoon`,
//! `BadGatewayOriginCpuSaturated`, `BadGatewayOriginMemorySaturated`,
//! `BadGatewayOriginBandwidthSaturated`, `BadGatewayOriginExposed`.
//!
//! An origin that fails fails straight too, whatever the path: its failures
//! to our direct probes explain the proxy's, while the site fails. Direct
//! failures are evidence only from a prober the origin admits, and not
//! over a lossy path (the loss explains them). Where no prober may probe
//! the web port, the host itself still tells: it answered echoes and stopped.

use super::answer::{self, Kind};
use super::evidence::{AgentEvidence, Evidence, TargetEvidence};
use super::thresholds::*;
use super::{Reason, Verdict};
use crate::prober::probe::{ErrorKind, Path};

pub(super) fn judge(e: &Evidence, v: &mut Verdict) {
    let proxies: Vec<&TargetEvidence> = e.of(Path::Proxy).collect();
    let origins: Vec<&TargetEvidence> = e.of(Path::Origin).collect();
    let site_fails = proxies.iter().any(|p| p.failed() > 0.0);
    if site_fails {
        for o in origins.iter().filter(|o| o.failed() > 0.0 && !o.lossy()) {
            if o.admits {
                if let Some(reason) = failure_reason(o) {
                    v.add(reason, vec![o.describe()]);
                }
            } else if o.echoes_stopped {
                v.add(
                    Reason::OriginUnreachable,
                    vec![format!(
                        "{}: the host answered echoes before and answers none now",
                        o.address
                    )],
                );
            }
        }
        slower_than_the_proxy_waits(&proxies, &origins, v);
        upstream_tls(&proxies, v);
    }
    for o in origins.iter().filter(|o| o.admits) {
        if o.first_byte_seconds
            .is_some_and(|s| s >= SLOW_FIRST_BYTE_SECONDS)
        {
            v.add(
                Reason::OriginSlow,
                vec![format!(
                    "{}: {:.1} s to the first byte",
                    o.address,
                    o.first_byte_seconds.unwrap_or_default()
                )],
            );
        }
    }
    certificates(e, v);
    if let Some(a) = &e.agent {
        saturation(a, site_fails, v);
        from_agent(a, v);
    }
}

/// Each saturated resource the agent reports: its reason, what it says,
/// and how long it has stayed above the threshold.
pub fn saturated(a: &AgentEvidence) -> Vec<(Reason, String, f64)> {
    let held = |s: f64| format_held(s);
    let mut out = Vec::new();
    if let Some(s) = a.cpu_saturated_seconds.filter(|s| *s > 0.0) {
        let busy = a
            .cpu_usage_ratio
            .map(|c| format!(" ({:.0}% busy now)", c * 100.0))
            .unwrap_or_default();
        out.push((
            Reason::CpuSaturated,
            format!(
                "the origin's CPU above {:.0}% for {}{busy}",
                SATURATION * 100.0,
                held(s)
            ),
            s,
        ));
    }
    if let Some(s) = a.memory_saturated_seconds.filter(|s| *s > 0.0) {
        let used = a
            .memory_usage_ratio
            .map(|m| format!(" ({:.0}% used now)", m * 100.0))
            .unwrap_or_default();
        out.push((
            Reason::MemorySaturated,
            format!(
                "the origin's memory above {:.0}% used for {}{used}",
                SATURATION * 100.0,
                held(s)
            ),
            s,
        ));
    }
    if let Some((link, s)) = a.network_saturated.as_ref().filter(|(_, s)| *s > 0.0) {
        out.push((
            Reason::BandwidthSaturated,
            format!(
                "the origin's interface {link} above {:.0}% of its capacity for {}",
                SATURATION * 100.0,
                held(*s)
            ),
            *s,
        ));
    }
    out
}

fn format_held(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// Saturation is named when held long enough: a minute while the site
/// fails, ten otherwise. Shorter, it is a note.
fn saturation(a: &AgentEvidence, site_fails: bool, v: &mut Verdict) {
    let need = if site_fails {
        SATURATION_HELD_FAILING_SECONDS
    } else {
        SATURATION_HELD_SECONDS
    };
    for (reason, what, held) in saturated(a) {
        if held >= need {
            v.add(reason, vec![what]);
        } else {
            v.notes.push(format!(
                "{what}: not yet long enough to name ({} while the site fails, {} otherwise)",
                format_held(SATURATION_HELD_FAILING_SECONDS),
                format_held(SATURATION_HELD_SECONDS)
            ));
        }
    }
}

/// Why an origin that the prober may probe failed straight.
fn failure_reason(o: &TargetEvidence) -> Option<Reason> {
    Some(match o.error? {
        ErrorKind::ConnectRefused => Reason::WebServiceDown,
        ErrorKind::ConnectTimeout | ErrorKind::Unreachable | ErrorKind::NoRoute => {
            Reason::OriginUnreachable
        }
        ErrorKind::Tls => Reason::OriginTlsError,
        ErrorKind::Timeout => Reason::OriginSlow,
        ErrorKind::Reset | ErrorKind::HttpProtocol => Reason::OriginHttpErrors,
        ErrorKind::HttpStatus if o.status.is_some_and(|s| s >= 500) => Reason::OriginHttpErrors,
        // A 4xx straight from the origin (a wrong health path): no cause.
        _ => return None,
    })
}

/// The proxy gave up waiting (504/522/524, or our own deadline) and the
/// origin took at least half as long as the proxy waited: the origin's
/// slowness explains the proxy's time-out.
fn slower_than_the_proxy_waits(
    proxies: &[&TargetEvidence],
    origins: &[&TargetEvidence],
    v: &mut Verdict,
) {
    let slowest = origins
        .iter()
        .filter(|o| o.admits)
        .map(|o| o.duration_seconds)
        .fold(0.0, f64::max);
    for p in proxies {
        let timed_out = p.status.is_some_and(answer::is_upstream_timeout_status)
            || p.error == Some(ErrorKind::Timeout);
        if timed_out && slowest > 0.0 && slowest >= SLOWNESS_SHARE * p.duration_seconds {
            v.add(
                Reason::OriginSlow,
                vec![
                    p.describe(),
                    format!(
                        "the origin took {slowest:.3} s to answer us: the proxy gave up waiting for it"
                    ),
                ],
            );
        }
    }
}

/// A CDN's 525/526: its TLS handshake with the origin failed.
fn upstream_tls(proxies: &[&TargetEvidence], v: &mut Verdict) {
    for p in proxies {
        if p.failed_kind(Kind::UpstreamTls) > 0.0 {
            v.add(
                Reason::OriginTlsError,
                vec![format!(
                    "{}: the proxy answers {} - its TLS handshake with the origin fails",
                    p.address,
                    p.status.map_or("525/526".into(), |s| s.to_string())
                )],
            );
        }
    }
}

/// A certificate already expired is a TLS failure (above); one that
/// expires soon is worth a note.
fn certificates(e: &Evidence, v: &mut Verdict) {
    for t in &e.targets {
        if let Some(left) = t
            .cert_expiry_seconds
            .filter(|s| *s >= 0.0 && *s < CERT_EXPIRY_WARNING_SECONDS)
        {
            v.notes.push(format!(
                "the certificate of the {} {} expires in {:.0} days",
                t.path,
                t.address,
                left / 86400.0
            ));
        }
    }
}

/// What the origin's agent adds: trouble on the origin host.
fn from_agent(a: &AgentEvidence, v: &mut Verdict) {
    for (name, up) in &a.processes {
        if !up {
            v.add(
                Reason::WebServiceDown,
                vec![format!("no {name} process runs on the origin")],
            );
        }
    }
    for (port, listening) in &a.web_ports {
        if !listening {
            v.add(
                Reason::WebServiceDown,
                vec![format!("nothing listens on the origin's port {port}")],
            );
        }
    }
    exposed(a, v);
    if let (Some(errors), Some(all)) = (
        a.log_rate("forwarding", &AgentEvidence::ERRORS),
        a.log_rate("forwarding", &[]),
    ) {
        let errors = errors + a.log_rate("other", &AgentEvidence::ERRORS).unwrap_or(0.0);
        let all = all + a.log_rate("other", &[]).unwrap_or(0.0);
        if all > 0.0 && errors / all >= 0.05 && errors >= 0.05 {
            v.add(
                Reason::OriginHttpErrors,
                vec![format!(
                    "the origin's access log: {:.0}% of its answers are server errors ({errors:.2}/s)",
                    errors / all * 100.0
                )],
            );
        }
    }
}

/// Traffic from outside the forwarding ranges: by established connections,
/// or by requests in an access log that shows the proxy's own requests (a
/// log whose client field is not the connecting peer shows none, and says
/// nothing about who connects).
fn exposed(a: &AgentEvidence, v: &mut Verdict) {
    if a.forwarding_ranges == Some(0.0) {
        return;
    }
    let other = a.connections_other.unwrap_or(0.0);
    let all = other + a.connections_forwarding.unwrap_or(0.0);
    let by_connections = all > 0.0 && other / all >= EXPOSED_SHARE && other >= EXPOSED_CONNECTIONS;
    let log_other = a.log_rate("other", &[]).unwrap_or(0.0);
    let log_forwarding = a.log_rate("forwarding", &[]).unwrap_or(0.0);
    let log_all = log_other + log_forwarding;
    let by_log = log_all > 0.0
        && log_other / log_all >= EXPOSED_SHARE
        && log_other >= EXPOSED_REQUESTS_PER_SECOND
        && log_forwarding > 0.0;
    if by_connections || by_log {
        v.add(
            Reason::OriginExposed,
            vec![format!(
                "{other:.0} connections ({log_other:.1} requests/s) to the web ports come from outside the forwarding ranges, {:.0} ({log_forwarding:.1}/s) from inside: the origin address is known and reached around the proxy",
                a.connections_forwarding.unwrap_or(0.0)
            )],
        );
    }
}
