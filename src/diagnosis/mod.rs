//! The cause logic: what each cause of a 502 changes on each path, and what
//! it leaves alone. Shared by the exporter's `forwarding_ip_blocked` flag
//! and by `diagnose`.
//!
//! A blocked forwarding IP breaks only the proxy→origin hop. So the proxy
//! itself still accepts our connection (TCP and TLS to the proxy work) and
//! then answers with a gateway error, or the origin's refusal passed
//! through, or keeps us waiting; meanwhile the origin, probed straight with
//! the domain pinned to it, answers well and quickly. A slow origin also
//! makes the proxy give up while the origin still answers, so a proxy
//! time-out only counts when the origin answered much sooner than the proxy
//! gave up.

pub mod verdict;

use std::time::Duration;

use crate::probe::{ErrorKind, HttpOutcome, Path};
use crate::results::{SiteResult, TargetResult};

/// Statuses a proxy uses when its upstream did not answer in time
/// (nginx 504; CDNs' 522 connection timed out and 524 a timeout occurred).
const UPSTREAM_TIMEOUT_STATUSES: [u16; 3] = [504, 522, 524];

/// A proxy that gave up after waiting this share of the time the origin
/// takes to answer may have given up because of the origin's slowness.
const SLOWNESS_SHARE: f64 = 0.5;

/// How a proxy-path probe failed, as far as the cause logic cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFailure {
    /// The proxy answered, with a status that says its upstream failed or
    /// refused (5xx, or 403/429 passed through from the origin).
    Gateway,
    /// The proxy accepted the connection and then ran out of time waiting
    /// for its upstream (504/522/524, or our own deadline).
    UpstreamTimeout,
    /// The proxy itself could not be reached: nothing about forwarding.
    ProxyUnreachable,
    /// Any other answer (a 404, a redirect not expected, ...).
    Other,
}

/// Classify a failed proxy-path probe; `None` when it succeeded.
pub fn proxy_failure(outcome: &HttpOutcome) -> Option<ProxyFailure> {
    let kind = outcome.error?;
    Some(match kind {
        ErrorKind::HttpStatus => match outcome.status {
            Some(s) if UPSTREAM_TIMEOUT_STATUSES.contains(&s) => ProxyFailure::UpstreamTimeout,
            Some(s) if s >= 500 || s == 403 || s == 429 => ProxyFailure::Gateway,
            _ => ProxyFailure::Other,
        },
        ErrorKind::Timeout => ProxyFailure::UpstreamTimeout,
        // A reset after the connection was up: some proxies hang up when
        // their upstream does.
        ErrorKind::Reset | ErrorKind::HttpProtocol => ProxyFailure::Gateway,
        ErrorKind::Dns
        | ErrorKind::SourceAddress
        | ErrorKind::ConnectRefused
        | ErrorKind::ConnectTimeout
        | ErrorKind::Unreachable
        | ErrorKind::NoRoute
        | ErrorKind::Tls => ProxyFailure::ProxyUnreachable,
    })
}

/// How many of `requests`, sent through the proxy address `proxy` in one
/// round, failed in a way only the proxy→origin hop explains, while every
/// origin address, probed straight in the same round, answered well and
/// faster than the slowness that could explain a proxy time-out. An origin
/// address that fails by itself is the likelier explanation of the proxy's
/// failure, so it rules them out; so does loss on the path to this proxy
/// address, which also makes the proxy time out or reset while the origin
/// answers.
pub fn forwarding_failures(
    proxy: &TargetResult,
    requests: &[HttpOutcome],
    round: &[TargetResult],
) -> u32 {
    let origins: Vec<&HttpOutcome> = round
        .iter()
        .filter(|t| t.path == Path::Origin)
        .map(|t| &t.http)
        .collect();
    let lossy = proxy
        .path_echoes()
        .is_some_and(|e| e.received > 0 && e.loss_ratio() > verdict::LOSS_THRESHOLD);
    if lossy {
        return 0;
    }
    requests
        .iter()
        .filter(|r| fails_at_forwarding_hop(r, &origins))
        .count() as u32
}

/// Addresses that must all go silent at once, when the failures are not
/// this host's own, before the prober blames its own network: a proxy and
/// an origin both down is a site's outage; three addresses and more, all
/// the sites this prober watches, is the prober.
pub const CUT_OFF_ADDRESSES: usize = 3;

/// This prober's own network is cut off: in the latest round of every site
/// nothing came back from any address, and every failure was this host's
/// own (no route out, no name resolution, no source address), or at least
/// [`CUT_OFF_ADDRESSES`] different addresses went silent together.
pub fn vantage_cut_off<'a>(rounds: impl IntoIterator<Item = &'a SiteResult>) -> bool {
    let mut any = false;
    let mut all_local = true;
    let mut addresses = std::collections::HashSet::new();
    for round in rounds {
        if round.reached_anything() {
            return false;
        }
        any = true;
        all_local &= round.failed_locally();
        if addresses.len() < CUT_OFF_ADDRESSES {
            addresses.extend(round.targets.iter().map(|t| t.address.as_str()));
        }
    }
    any && (all_local || addresses.len() >= CUT_OFF_ADDRESSES)
}

/// The HTTP part of [`forwarding_failure`].
pub fn fails_at_forwarding_hop(proxy: &HttpOutcome, origins: &[&HttpOutcome]) -> bool {
    if origins.is_empty() || !origins.iter().all(|o| o.success()) {
        return false;
    }
    let slowest_origin: Duration = origins.iter().map(|o| o.duration).max().unwrap_or_default();
    match proxy_failure(proxy) {
        Some(ProxyFailure::Gateway) => true,
        Some(ProxyFailure::UpstreamTimeout) => {
            slowest_origin.as_secs_f64() < SLOWNESS_SHARE * proxy.duration.as_secs_f64()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Phases;

    fn outcome(status: Option<u16>, error: Option<ErrorKind>, ms: u64) -> HttpOutcome {
        HttpOutcome {
            resolved: None,
            status,
            phases: Phases::default(),
            duration: Duration::from_millis(ms),
            error,
            detail: None,
        }
    }
    fn ok(ms: u64) -> HttpOutcome {
        outcome(Some(200), None, ms)
    }
    fn status(code: u16, ms: u64) -> HttpOutcome {
        outcome(Some(code), Some(ErrorKind::HttpStatus), ms)
    }
    fn failed(kind: ErrorKind, ms: u64) -> HttpOutcome {
        outcome(None, Some(kind), ms)
    }
    /// Every proxy probe fails at the forwarding hop.
    fn forwarding_ip_blocked(proxy: &[HttpOutcome], origin: &[HttpOutcome]) -> bool {
        let origin: Vec<&HttpOutcome> = origin.iter().collect();
        !proxy.is_empty() && proxy.iter().all(|p| fails_at_forwarding_hop(p, &origin))
    }

    #[test]
    fn proxy_502_with_origin_ok_is_blocked() {
        assert!(forwarding_ip_blocked(&[status(502, 3)], &[ok(2)]));
        // REJECT: a quick 502, the origin just as quick.
        assert!(forwarding_ip_blocked(&[status(502, 1)], &[ok(1)]));
        // The origin's refusal of the forwarding IP, passed through.
        assert!(forwarding_ip_blocked(&[status(403, 5)], &[ok(4)]));
        assert!(forwarding_ip_blocked(&[status(429, 5)], &[ok(4)]));
    }

    #[test]
    fn dropped_forwarding_ip_times_out_at_the_proxy_while_origin_is_fast() {
        assert!(forwarding_ip_blocked(&[status(504, 2000)], &[ok(3)]));
        assert!(forwarding_ip_blocked(
            &[failed(ErrorKind::Timeout, 5000)],
            &[ok(3)]
        ));
    }

    #[test]
    fn a_slow_origin_is_not_a_blocked_forwarding_ip() {
        // The proxy gave up at 2 s; the origin took 1.9 s to answer us.
        assert!(!forwarding_ip_blocked(&[status(504, 2000)], &[ok(1900)]));
        assert!(!forwarding_ip_blocked(
            &[failed(ErrorKind::Timeout, 5000)],
            &[ok(4800)]
        ));
    }

    #[test]
    fn origin_failing_too_is_not_blocked() {
        assert!(!forwarding_ip_blocked(
            &[status(502, 3)],
            &[failed(ErrorKind::ConnectRefused, 1)]
        ));
        assert!(!forwarding_ip_blocked(&[status(502, 3)], &[status(500, 2)]));
        assert!(!forwarding_ip_blocked(&[status(502, 3)], &[]));
    }

    #[test]
    fn proxy_unreachable_is_not_about_forwarding() {
        for kind in [
            ErrorKind::ConnectRefused,
            ErrorKind::ConnectTimeout,
            ErrorKind::Unreachable,
            ErrorKind::Dns,
            ErrorKind::Tls,
        ] {
            assert!(
                !forwarding_ip_blocked(&[failed(kind, 5000)], &[ok(2)]),
                "{kind}"
            );
        }
        assert!(!forwarding_ip_blocked(&[status(404, 3)], &[ok(2)]));
    }

    #[test]
    fn every_proxy_must_fail() {
        assert!(!forwarding_ip_blocked(&[status(502, 3), ok(4)], &[ok(2)]));
        assert!(forwarding_ip_blocked(
            &[status(502, 3), status(503, 4)],
            &[ok(2)]
        ));
        assert!(!forwarding_ip_blocked(&[], &[ok(2)]));
        // An origin address that fails by itself explains the proxy too.
        assert!(!forwarding_ip_blocked(
            &[status(502, 3)],
            &[failed(ErrorKind::ConnectTimeout, 5000), ok(2)]
        ));
    }
}
