//! Metrics: the exporter's own, in a `prometheus` registry, and the probe
//! results, rendered in the text exposition format once per round (see
//! `SiteExposition`) so that a scrape of thousands of sites only
//! concatenates text it already has.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::UNIX_EPOCH;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::agent::Agent;
use crate::diagnosis::answer::{self, Kind};
use crate::diagnosis::forwarding::HopFailure;
use crate::prober::probe::{EchoRound, Path};
use crate::prober::results::{Results, SiteEntry, SiteResult};

pub const COLLECTOR_SUCCESS_HELP: &str =
    "1 when the collector worked on its last run; 0 when it failed (e.g. no permission).";

/// The exporter's own metrics, set by the server as things happen.
pub struct SelfMetrics {
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp_seconds: IntGauge,
    pub collector_success: IntGaugeVec,
    pub sites: IntGauge,
}

/// Everything a scrape exposes.
pub struct Exposition {
    registry: Registry,
    results: Arc<Results>,
    /// The origin agent, when this host is one; replaced on reload.
    agent: RwLock<Option<Agent>>,
    pub me: SelfMetrics,
}

impl Exposition {
    pub fn new(results: Arc<Results>) -> Exposition {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new(
                "badgateway_build_info",
                "A metric with a constant '1' value labeled by the version and revision it was built from.",
            ),
            &["version", "revision"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), crate::REVISION])
            .set(1);
        let me = SelfMetrics {
            config_last_reload_successful: IntGauge::new(
                "badgateway_config_last_reload_successful",
                "1 when the last configuration (re)load succeeded.",
            )
            .expect("valid metric"),
            config_last_reload_success_timestamp_seconds: IntGauge::new(
                "badgateway_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration (re)load.",
            )
            .expect("valid metric"),
            collector_success: IntGaugeVec::new(
                Opts::new("badgateway_collector_success", COLLECTOR_SUCCESS_HELP),
                &["collector"],
            )
            .expect("valid metric"),
            sites: IntGauge::new("badgateway_sites", "Sites configured for probing.")
                .expect("valid metric"),
        };
        for c in [
            Box::new(build_info) as Box<dyn Collector>,
            Box::new(me.config_last_reload_successful.clone()),
            Box::new(me.config_last_reload_success_timestamp_seconds.clone()),
            Box::new(me.collector_success.clone()),
            Box::new(me.sites.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Exposition {
            registry,
            results,
            agent: RwLock::new(None),
            me,
        }
    }

    /// Swap the running agent; the old one's background tasks stop.
    pub fn set_agent(&self, agent: Option<Agent>) {
        *self.agent.write().unwrap_or_else(|p| p.into_inner()) = agent;
    }

    /// The whole scrape, in the text format.
    pub fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let sites = self.results.snapshot();
        let size: usize = sites.iter().map(|s| s.exposition.len()).sum();
        let mut out = Vec::with_capacity(size + 8 * 1024);
        let mut families = self.registry.gather();
        if let Some(agent) = &*self.agent.read().unwrap_or_else(|p| p.into_inner()) {
            merge(&mut families, agent.collect());
        }
        TextEncoder::new().encode(&families, &mut out)?;
        write_probe_families(&sites, &mut out);
        if !sites.is_empty() {
            let up = !crate::diagnosis::vantage_cut_off(sites.iter().map(|s| &s.result));
            out.extend_from_slice(
                format!(
                    "# HELP badgateway_vantage_up {VANTAGE_UP_HELP}\n# TYPE badgateway_vantage_up gauge\nbadgateway_vantage_up {}\n",
                    u8::from(up)
                )
                .as_bytes(),
            );
        }
        Ok(out)
    }
}

/// Add `more` to `families`; a family both have (collector_success) gets
/// the series of both.
fn merge(families: &mut Vec<MetricFamily>, more: Vec<MetricFamily>) {
    for mut f in more {
        match families.iter_mut().find(|e| e.name() == f.name()) {
            Some(existing) => existing.mut_metric().extend(f.take_metric()),
            None => families.push(f),
        }
    }
}

const VANTAGE_UP_HELP: &str = "0 when this prober's own network is cut off: in the latest round of every site nothing came back from any address, and the failures were this host's own (no route, no name resolution) or hit three addresses and more at once. Its site failures then say nothing about the sites.";

/// The probe metric families, in the order they are exposed: name, type,
/// help.
const FAMILIES: [(&str, &str, &str); 22] = [
    ("badgateway_probe_success", "gauge", "1 when every HTTP request of the last round got an expected status (several through each proxy address, see proxy_requests)."),
    ("badgateway_http_status_code", "gauge", "Status of the last round's first failed request, else of its last; 0 when no response came."),
    ("badgateway_http_duration_seconds", "gauge", "Time the last HTTP probe spent in each phase (resolve, connect, tls, processing to the first byte, transfer); 0 for a phase not reached."),
    ("badgateway_probe_duration_seconds", "gauge", "How long the last HTTP probe took in all."),
    ("badgateway_probe_error", "gauge", "1 for the kind of failure of the last HTTP probe; absent when it succeeded."),
    ("badgateway_icmp_packet_loss_ratio", "gauge", "Share of ICMP echoes of the last round that got no reply, 0..1."),
    ("badgateway_icmp_rtt_seconds", "gauge", "ICMP round-trip time over the last round: min, avg, max, and stddev (jitter)."),
    ("badgateway_icmp_packets_sent", "gauge", "ICMP echoes sent in the last round."),
    ("badgateway_icmp_silent", "gauge", "1 when the address never answers ICMP echoes while other packets to it get through (held until an echo reply comes back): its ICMP loss is left out of every judgement and TCP handshakes measure the path instead."),
    ("badgateway_tcp_packet_loss_ratio", "gauge", "Share of TCP handshakes (SYN to the web port) of the last round that got no answer, 0..1; run where ICMP cannot measure the path."),
    ("badgateway_tcp_rtt_seconds", "gauge", "TCP handshake round-trip time over the last round: min, avg, max, and stddev (jitter)."),
    ("badgateway_tcp_packets_sent", "gauge", "TCP handshakes attempted in the last round."),
    ("badgateway_probes_total", "counter", "HTTP requests sent."),
    ("badgateway_probe_failures_total", "counter", "HTTP requests that failed, by kind: unanswered (refused, connect time-out, unreachable, TLS handshake failed), broken (time-out or reset after connecting), gateway (a proxy's 502, 504, 52x about its upstream), upstream_tls (525, 526), proxy (a page the proxy made itself: its WAF, a challenge), refused (401, 403, 407, 429, 503), error (other 5xx), other."),
    ("badgateway_forwarding_failures_total", "counter", "Requests through this proxy address that failed at the proxy-to-origin hop while every origin address answered straight in the same round, by kind: gateway (gateway error, time-out, reset) or refused (a refusal or error status the origin or the proxy made)."),
    ("badgateway_failure_made_by", "gauge", "1 for who made the last round's first failing answer: proxy (a page of its own, not about its upstream), proxy_about_upstream (a 502, 504, 52x), or upstream_or_unknown (passed on, or no sign who made it); absent when no failing answer came."),
    ("badgateway_tls_earliest_cert_expiry_timestamp_seconds", "gauge", "Unix time the earliest certificate of the server's chain expires, from the last TLS handshake (also one refused on an expired certificate)."),
    ("badgateway_path_echoes_sent_total", "counter", "Echoes that measured the path's loss: ICMP, or TCP handshakes for an ICMP-silent address. Rounds with no reply at all are left out (the path was down or filtered, not lossy)."),
    ("badgateway_path_echoes_lost_total", "counter", "Of those, the echoes that got no reply."),
    ("badgateway_origin_admits_prober", "gauge", "1 when the origin admits this prober's direct probes; 0 when they fail while the site works through the proxy (an origin that admits only the forwarding ranges), held until one succeeds: its direct failures are then no evidence about the origin."),
    ("badgateway_forwarding_ip_blocked", "gauge", "1 when, in the last round, a probe through some proxy address failed at the proxy-to-origin hop while every origin address answered straight."),
    ("badgateway_last_round_timestamp_seconds", "gauge", "Unix time the last probe round of the site finished."),
];

const SUCCESS: usize = 0;
const STATUS: usize = 1;
const PHASE: usize = 2;
const DURATION: usize = 3;
const ERROR: usize = 4;
const LOSS: usize = 5;
const RTT: usize = 6;
const SENT: usize = 7;
const SILENT: usize = 8;
const TCP_LOSS: usize = 9;
const TCP_RTT: usize = 10;
const TCP_SENT: usize = 11;
const PROBES: usize = 12;
const PROBE_FAILURES: usize = 13;
const FORWARDING_FAILURES: usize = 14;
const MADE_BY: usize = 15;
const CERT_EXPIRY: usize = 16;
const ECHOES_SENT: usize = 17;
const ECHOES_LOST: usize = 18;
const ADMITS: usize = 19;
const BLOCKED: usize = 20;
const FINISHED: usize = 21;

/// One site's series for each probe family, in the text format.
#[derive(Debug, Default)]
pub struct SiteExposition {
    families: [String; FAMILIES.len()],
}

impl SiteExposition {
    pub fn render(site: &str, result: &SiteResult) -> SiteExposition {
        let mut out = SiteExposition::default();
        let f = &mut out.families;
        let site = escape(site);
        for t in &result.targets {
            let base = format!(
                "site=\"{site}\",path=\"{}\",address=\"{}\"",
                t.path.as_str(),
                escape(&t.address)
            );
            let h = &t.http;
            let all_served = t.failed_requests() == 0;
            sample(&mut f[SUCCESS], SUCCESS, &base, "", bool_value(all_served));
            sample(
                &mut f[STATUS],
                STATUS,
                &base,
                "",
                f64::from(h.status.unwrap_or(0)),
            );
            for (phase, d) in h.phases.iter() {
                let extra = format!(",phase=\"{phase}\"");
                sample(
                    &mut f[PHASE],
                    PHASE,
                    &base,
                    &extra,
                    d.map_or(0.0, |d| d.as_secs_f64()),
                );
            }
            sample(
                &mut f[DURATION],
                DURATION,
                &base,
                "",
                h.duration.as_secs_f64(),
            );
            if let Some(kind) = h.error {
                let extra = format!(",error=\"{}\"", kind.as_str());
                sample(&mut f[ERROR], ERROR, &base, &extra, 1.0);
            }
            if let Some(icmp) = &t.icmp {
                echoes(f, [LOSS, RTT, SENT], &base, icmp);
            }
            if t.icmp.is_some() || t.icmp_silent {
                sample(&mut f[SILENT], SILENT, &base, "", bool_value(t.icmp_silent));
            }
            if let Some(tcp) = &t.tcp {
                echoes(f, [TCP_LOSS, TCP_RTT, TCP_SENT], &base, tcp);
            }
            let n = &t.totals;
            sample(&mut f[PROBES], PROBES, &base, "", n.probes as f64);
            for kind in Kind::ALL {
                let extra = format!(",kind=\"{}\"", kind.as_str());
                let v = n.failures[kind.index()] as f64;
                sample(&mut f[PROBE_FAILURES], PROBE_FAILURES, &base, &extra, v);
            }
            if t.path == Path::Proxy {
                for hop in HopFailure::ALL {
                    let extra = format!(",kind=\"{}\"", hop.as_str());
                    let v = n.forwarding[hop as usize] as f64;
                    sample(
                        &mut f[FORWARDING_FAILURES],
                        FORWARDING_FAILURES,
                        &base,
                        &extra,
                        v,
                    );
                }
            }
            if let Some(by) = answer::kind(h).and_then(Kind::made_by) {
                let extra = format!(",by=\"{by}\"");
                sample(&mut f[MADE_BY], MADE_BY, &base, &extra, 1.0);
            }
            if let Some(at) = h.cert_not_after {
                let secs = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                sample(&mut f[CERT_EXPIRY], CERT_EXPIRY, &base, "", secs);
            }
            sample(
                &mut f[ECHOES_SENT],
                ECHOES_SENT,
                &base,
                "",
                n.path_echoes_sent as f64,
            );
            sample(
                &mut f[ECHOES_LOST],
                ECHOES_LOST,
                &base,
                "",
                n.path_echoes_lost as f64,
            );
            if t.path == Path::Origin {
                let admits = bool_value(!t.admission.refused);
                sample(&mut f[ADMITS], ADMITS, &base, "", admits);
            }
        }
        let base = format!("site=\"{site}\"");
        let blocked = bool_value(result.forwarding_ip_blocked);
        sample(&mut f[BLOCKED], BLOCKED, &base, "", blocked);
        let finished = result
            .finished
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        sample(&mut f[FINISHED], FINISHED, &base, "", finished);
        out
    }

    /// Bytes of text this site adds to a scrape.
    pub fn len(&self) -> usize {
        self.families.iter().map(String::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loss, round-trip statistics and echoes sent of one echo round, into
/// the three families at `[loss, rtt, sent]`.
fn echoes(
    f: &mut [String; FAMILIES.len()],
    [loss, rtt, sent]: [usize; 3],
    base: &str,
    r: &EchoRound,
) {
    sample(&mut f[loss], loss, base, "", r.loss_ratio());
    if let Some(stats) = &r.rtt {
        for (stat, d) in [
            ("min", stats.min),
            ("avg", stats.avg),
            ("max", stats.max),
            ("stddev", stats.stddev),
        ] {
            let extra = format!(",stat=\"{stat}\"");
            sample(&mut f[rtt], rtt, base, &extra, d.as_secs_f64());
        }
    }
    sample(&mut f[sent], sent, base, "", f64::from(r.sent));
}

fn sample(out: &mut String, family: usize, labels: &str, extra: &str, value: f64) {
    let _ = writeln!(
        out,
        "{}{{{labels}{extra}}} {}",
        FAMILIES[family].0,
        Value(value)
    );
}

/// Append every probe family: its HELP and TYPE, then each site's series.
fn write_probe_families(sites: &[Arc<SiteEntry>], out: &mut Vec<u8>) {
    for (i, (name, kind, help)) in FAMILIES.iter().enumerate() {
        if sites.iter().all(|s| s.exposition.families[i].is_empty()) {
            continue;
        }
        out.extend_from_slice(format!("# HELP {name} {help}\n# TYPE {name} {kind}\n").as_bytes());
        for s in sites {
            out.extend_from_slice(s.exposition.families[i].as_bytes());
        }
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// A sample value as the text format spells it.
struct Value(f64);

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            write!(f, "{v}")
        }
    }
}

/// Escape a label value: backslash, double quote and newline.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_escapes() {
        assert_eq!(Value(1.0).to_string(), "1");
        assert_eq!(Value(0.25).to_string(), "0.25");
        assert_eq!(Value(f64::NAN).to_string(), "NaN");
        assert_eq!(Value(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain"), "plain");
    }
}
