//! Every threshold of the cause logic, once: `diagnose` judges with these,
//! and `rules/` (one file per cause) must use the same numbers.
//! `tests/rules.rs` reads the rules and fails when an alert's number or
//! `for:` differs from [`IN_RULES`].

use crate::exposition::names;

/// A request through the proxy that fails at the forwarding hop must be at
/// least this share of the proxy address's requests...
pub const FORWARDING_SHARE: f64 = 0.1;
/// ... and at least this many of them (over the rules' 4-minute window, or
/// one `diagnose` round), so that one unlucky request is not a block.
pub const FORWARDING_MIN_FAILURES: f64 = 3.0;
/// An origin that fails straight at least 1/this as often as the proxy
/// fails at the forwarding hop explains the proxy's failures.
pub const ORIGIN_EXPLAINS_FACTOR: f64 = 4.0;
/// A proxy that gave up after waiting this share of the time the origin
/// takes to answer may have given up because of the origin's slowness.
pub const SLOWNESS_SHARE: f64 = 0.5;
/// Time to first byte from the origin that is slow (most of the default
/// 5 s probe timeout).
pub const SLOW_FIRST_BYTE_SECONDS: f64 = 3.0;

/// Loss above this share of the echoes that measure a path is a faulty
/// link (and explains failures on it).
pub const LOSS_SHARE: f64 = 0.1;
/// Jitter: a round-trip standard deviation of at least this...
pub const JITTER_SECONDS: f64 = 0.03;
/// ... that is also at least this share of the mean round trip,
pub const JITTER_SHARE_OF_RTT: f64 = 0.25;
/// ... or at least this, whatever the mean.
pub const JITTER_ABSOLUTE_SECONDS: f64 = 0.1;

/// Requests through a proxy address that its host never answered (refused,
/// connect time-out, TLS to the proxy failed): this share from every
/// vantage is a proxy that cannot be reached.
pub const PROXY_UNREACHABLE_SHARE: f64 = 0.9;
/// Failing answers the proxy makes itself (its WAF, a challenge, its own
/// error page), at least this share of the requests.
pub const PROXY_OWN_SHARE: f64 = 0.1;

/// CPU, memory or a link's bandwidth above this share, held, is saturation.
/// The agent measures how long each has stayed above it
/// (`badgateway_host_saturated_seconds`,
/// `badgateway_network_saturated_seconds`).
pub const SATURATION: f64 = 0.9;
/// Held this long, saturation is named whether the site fails or not
/// ("for long": a capacity warning).
pub const SATURATION_HELD_SECONDS: f64 = 600.0;
/// While the site fails through the proxy, held this long is enough to
/// name it as the cause, ahead of the forwarding flag: a moment of full
/// CPU is neither.
pub const SATURATION_HELD_FAILING_SECONDS: f64 = 60.0;

/// Traffic from outside the forwarding ranges: at least this share...
pub const EXPOSED_SHARE: f64 = 0.2;
/// ... and at least this many established connections,
pub const EXPOSED_CONNECTIONS: f64 = 20.0;
/// ... or at least this many requests a second in the access log.
pub const EXPOSED_REQUESTS_PER_SECOND: f64 = 5.0;

/// The access log: refusals (403/429/444/503) of the forwarding ranges'
/// requests, at least this share...
pub const REFUSED_SHARE: f64 = 0.1;
/// ... and this many a second.
pub const REFUSED_PER_SECOND: f64 = 0.05;

/// A certificate that expires within this many seconds is worth a warning.
pub const CERT_EXPIRY_WARNING_SECONDS: f64 = 14.0 * 86400.0;

/// How an alert of `rules/` (one file per cause) writes these numbers:
/// each fragment must stand in the alert's expression (or in a recording
/// rule it reads, for the recorded ones), and its `for:` must be `for_`.
pub struct InRules {
    pub alert: &'static str,
    pub for_: &'static str,
    /// PromQL fragments with the numbers above in them.
    pub fragments: Vec<String>,
}

/// The table `tests/rules.rs` checks the rules against, by cause.
pub fn in_rules() -> Vec<InRules> {
    [forwarding(), origin(), network(), proxy()]
        .into_iter()
        .flatten()
        .collect()
}

fn r(alert: &'static str, for_: &'static str, fragments: Vec<String>) -> InRules {
    InRules {
        alert,
        for_,
        fragments,
    }
}

/// The forwarding IPs blocked or rate-limited.
fn forwarding() -> Vec<InRules> {
    vec![
        r(
            "BadGatewayForwardingIpBlocked",
            "1m",
            vec![
                format!("badgateway:forwarding_failures:ratio_rate4m >= {FORWARDING_SHARE}"),
                format!("badgateway:forwarding_failures:increase4m >= {FORWARDING_MIN_FAILURES}"),
                format!("({ORIGIN_EXPLAINS_FACTOR} * badgateway:origin_failures:ratio_rate4m)"),
                format!("badgateway:path_loss:ratio_rate5m{{path=\"proxy\"}} > {LOSS_SHARE}"),
                format!("badgateway_host_saturated_seconds >= {SATURATION_HELD_FAILING_SECONDS}"),
                format!(
                    "badgateway_network_saturated_seconds >= {SATURATION_HELD_FAILING_SECONDS}"
                ),
            ],
        ),
        r(
            "BadGatewayForwardingIpRateLimited",
            "2m",
            vec![
                format!("ratio_rate5m{{class=\"forwarding\"}} >= {REFUSED_SHARE}"),
                format!("rate5m{{class=\"forwarding\"}} >= {REFUSED_PER_SECOND}"),
            ],
        ),
    ]
}

/// The origin slow, saturated, exposed, or failing TLS.
fn origin() -> Vec<InRules> {
    let held = |series: &str| {
        vec![
            format!("{series} >= {SATURATION_HELD_SECONDS}"),
            format!("{series} >= {SATURATION_HELD_FAILING_SECONDS}"),
            "site:badgateway_site_fails".to_owned(),
        ]
    };
    vec![
        r(
            "BadGatewayOriginSlowerThanProxyWaits",
            "1m",
            vec![format!("{SLOWNESS_SHARE} * max by")],
        ),
        r(
            "BadGatewayOriginSlow",
            "5m",
            vec![format!(") >= {SLOW_FIRST_BYTE_SECONDS}")],
        ),
        r(
            "BadGatewayOriginCpuSaturated",
            "1m",
            held("badgateway_host_saturated_seconds{resource=\"cpu\"}"),
        ),
        r(
            "BadGatewayOriginMemorySaturated",
            "1m",
            held("badgateway_host_saturated_seconds{resource=\"memory\"}"),
        ),
        r(
            "BadGatewayOriginBandwidthSaturated",
            "1m",
            held(names::NETWORK_SATURATED_SECONDS),
        ),
        r(
            "BadGatewayOriginExposed",
            "5m",
            vec![
                format!(">= {EXPOSED_SHARE}"),
                format!("[5m])) >= {EXPOSED_CONNECTIONS}"),
                format!("[5m])) >= {EXPOSED_REQUESTS_PER_SECOND}"),
            ],
        ),
        r(
            "BadGatewayOriginCertificateExpiresSoon",
            "10m",
            vec![format!("< {CERT_EXPIRY_WARNING_SECONDS}")],
        ),
        r(
            "BadGatewayOriginTlsError",
            "1m",
            vec![format!(") >= {PROXY_OWN_SHARE}")],
        ),
    ]
}

/// Loss and jitter on the paths.
fn network() -> Vec<InRules> {
    vec![
        r(
            "BadGatewayPacketLoss",
            "5m",
            vec![format!("badgateway:path_loss:ratio_rate5m > {LOSS_SHARE}")],
        ),
        r(
            "BadGatewayJitter",
            "5m",
            vec![
                format!("[5m]) >= {JITTER_SECONDS}"),
                format!(">= ignoring(stat) {JITTER_SHARE_OF_RTT} *"),
                format!("[5m]) >= {JITTER_ABSOLUTE_SECONDS}"),
            ],
        ),
    ]
}

/// The proxy itself: out of reach, answering by itself, its certificate.
fn proxy() -> Vec<InRules> {
    vec![
        r(
            "BadGatewayProxyUnreachable",
            "1m",
            vec![
                format!(">= {PROXY_UNREACHABLE_SHARE}"),
                format!("badgateway:path_loss:ratio_rate5m{{path=\"proxy\"}}) > {LOSS_SHARE}"),
            ],
        ),
        r(
            "BadGatewayProxyOwnAnswer",
            "2m",
            vec![format!(">= {PROXY_OWN_SHARE}")],
        ),
        r(
            "BadGatewayProxyCertificateExpiresSoon",
            "10m",
            vec![format!("< {CERT_EXPIRY_WARNING_SECONDS}")],
        ),
    ]
}
