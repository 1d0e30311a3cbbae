// Why one file: one file: the evidence and its two sources, a round and the
// exporter's metrics, must change together; ~490 lines of code, the rest
// tests.
//! What the verdict judges: one vantage's view of one site over a span,
//! and what the origin agent says. `diagnose` builds it from one round (and
//! two scrapes of the agent); the same can be read back from the exporter's
//! own metrics (two scrapes of a prober and of an agent), which is how the
//! recorded lab rounds are judged against the alert rules.

use std::collections::BTreeMap;

use serde::Serialize;

use super::answer::Kind;
use crate::exposition::names;
use crate::prober::probe::{ErrorKind, Path};
use crate::prober::results::{SiteResult, TargetResult};

/// One vantage's view of one site.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    pub targets: Vec<TargetEvidence>,
    /// This prober reaches nothing (its own network).
    pub vantage_cut_off: bool,
    pub agent: Option<AgentEvidence>,
    /// An origin address closed idle keep-alive connections sooner than
    /// the proxy's idle timeout, in two watches in a row.
    pub keepalive: Option<KeepaliveEvidence>,
}

/// The keep-alive watch of an origin address that races the proxy.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeepaliveEvidence {
    pub address: String,
    pub origin_idle_seconds: f64,
    pub proxy_idle_seconds: f64,
}

impl KeepaliveEvidence {
    fn from_round(round: &SiteResult) -> Option<KeepaliveEvidence> {
        let (proxy_idle, watches) = round.keepalive.as_ref()?;
        let w = watches.iter().find(|w| w.mismatch(*proxy_idle))?;
        Some(KeepaliveEvidence {
            address: w.address.clone(),
            origin_idle_seconds: w.seconds()?,
            proxy_idle_seconds: proxy_idle.as_secs_f64(),
        })
    }

    fn from_metrics(site: &str, now: &Scrape) -> Option<KeepaliveEvidence> {
        let s = now
            .all(names::ORIGIN_KEEPALIVE_MISMATCH)
            .iter()
            .find(|s| s.label("site") == Some(site) && s.value == 1.0)?;
        let address = s.label("address")?.to_owned();
        let at = [
            ("site", site),
            ("path", "origin"),
            ("address", address.as_str()),
        ];
        Some(KeepaliveEvidence {
            origin_idle_seconds: now.get(names::ORIGIN_IDLE_TIMEOUT_SECONDS, &at)?,
            proxy_idle_seconds: now.get(names::PROXY_IDLE_TIMEOUT_SECONDS, &[("site", site)])?,
            address,
        })
    }
}

/// One (path, address) of the site over the span.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetEvidence {
    pub path: Path,
    pub address: String,
    /// HTTP requests in the span, and the failed ones by kind (indexed as
    /// `answer::Kind::ALL`).
    pub requests: f64,
    pub failures: [f64; Kind::ALL.len()],
    /// Proxy path: requests that failed at the forwarding hop while the
    /// origin answered straight: gateway errors, time-outs and resets, and
    /// refusals or errors (which the origin or the proxy may have made).
    pub forwarding_gateway: f64,
    pub forwarding_refused: f64,
    /// The last round's first failed request (else its last): its status,
    /// error, duration, time to first byte, and a proxy's signature.
    pub status: Option<u16>,
    pub error: Option<ErrorKind>,
    pub duration_seconds: f64,
    pub first_byte_seconds: Option<f64>,
    pub signature: Option<String>,
    /// The path's loss over the span from the echoes that measure it (ICMP,
    /// or TCP handshakes for an ICMP-silent address), rounds with no reply
    /// at all left out; `None` when none was counted.
    pub loss: Option<f64>,
    /// Round-trip average and standard deviation from the same echoes.
    pub rtt_avg_seconds: Option<f64>,
    pub rtt_stddev_seconds: Option<f64>,
    /// "ICMP" or "TCP handshakes".
    pub measured_by: &'static str,
    pub icmp_silent: bool,
    /// Origin path: the origin admits this prober's direct probes.
    pub admits: bool,
    /// The host answered echoes before and answers none now.
    pub echoes_stopped: bool,
    /// Seconds until the earliest certificate of its chain expires.
    pub cert_expiry_seconds: Option<f64>,
}

impl TargetEvidence {
    pub fn failed(&self) -> f64 {
        self.failures.iter().sum()
    }

    pub fn failed_kind(&self, kind: Kind) -> f64 {
        self.failures[kind.index()]
    }

    /// A share of the span's requests.
    pub fn share(&self, n: f64) -> f64 {
        if self.requests > 0.0 {
            n / self.requests
        } else {
            0.0
        }
    }

    /// Loss above the threshold on this path explains failures on it.
    pub fn lossy(&self) -> bool {
        self.loss.is_some_and(|l| l > super::thresholds::LOSS_SHARE)
    }

    /// One line a person can check.
    pub fn describe(&self) -> String {
        let what = match (self.status, self.error) {
            (Some(s), None) => format!("HTTP {s}"),
            (Some(s), Some(_)) => format!("HTTP {s} (not expected)"),
            (None, Some(e)) => e.as_str().to_owned(),
            (None, None) => "no answer".to_owned(),
        };
        let share = if self.requests > 1.0 {
            format!(" ({} of {} requests failed)", self.failed(), self.requests)
        } else {
            String::new()
        };
        let signature = self
            .signature
            .as_deref()
            .map(|s| format!(", a {s} page"))
            .unwrap_or_default();
        format!(
            "{} {}: {what}{signature} in {:.3} s{share}",
            self.path, self.address, self.duration_seconds
        )
    }
}

/// What the origin agent reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AgentEvidence {
    pub cpu_usage_ratio: Option<f64>,
    pub memory_usage_ratio: Option<f64>,
    /// The highest interface usage ratio, and its interface.
    pub network_usage: Option<(String, f64)>,
    /// How long CPU and memory usage have stayed above the saturation
    /// threshold, as the agent measured it.
    pub cpu_saturated_seconds: Option<f64>,
    pub memory_saturated_seconds: Option<f64>,
    /// The interface and direction whose traffic has stayed above it
    /// longest, and for how long.
    pub network_saturated: Option<(String, f64)>,
    /// (process, up)
    pub processes: Vec<(String, bool)>,
    /// (port, listening)
    pub web_ports: Vec<(u16, bool)>,
    /// (range, verdict: allowed | blocked | rate_limited | unknown)
    pub firewall: Vec<(String, String)>,
    pub connections_forwarding: Option<f64>,
    pub connections_other: Option<f64>,
    /// Responses in the access log per second over the span, by class
    /// (forwarding, other) and status label; empty when the agent was read
    /// once, or has no access log.
    pub log_rates: Vec<(String, String, f64)>,
    pub forwarding_ranges: Option<f64>,
}

impl AgentEvidence {
    /// Responses per second of `class` whose status label matches `statuses`
    /// (all when empty); `None` when there are no log rates.
    pub fn log_rate(&self, class: &str, statuses: &[&str]) -> Option<f64> {
        if self.log_rates.is_empty() {
            return None;
        }
        Some(
            self.log_rates
                .iter()
                .filter(|(c, s, _)| {
                    c == class && (statuses.is_empty() || statuses.contains(&s.as_str()))
                })
                .map(|(_, _, r)| r)
                .sum(),
        )
    }

    /// The refusal statuses an origin answers a refused client with.
    pub const REFUSALS: [&'static str; 4] = ["403", "429", "444", "503"];
    /// Server errors in the access log (503 is left to the refusals).
    pub const ERRORS: [&'static str; 4] = ["500", "502", "504", "5xx"];
}

impl Evidence {
    /// One round of the exporter's own probes (what `diagnose` ran), and
    /// what the agent said.
    pub fn from_round(round: &SiteResult, cut_off: bool, agent: Option<AgentEvidence>) -> Evidence {
        Evidence {
            targets: round.targets.iter().map(target_from_round).collect(),
            vantage_cut_off: cut_off,
            agent,
            keepalive: KeepaliveEvidence::from_round(round),
        }
    }

    pub fn of(&self, path: Path) -> impl Iterator<Item = &TargetEvidence> {
        self.targets.iter().filter(move |t| t.path == path)
    }
}

fn target_from_round(t: &TargetResult) -> TargetEvidence {
    let echoes = t.path_echoes();
    // Where both ran (a one-off round runs TCP handshakes beside ICMP),
    // each measures the same path: the larger loss is the path's, so that
    // a lucky draw of one does not hide loss the other saw.
    let icmp = t.icmp.filter(|e| e.received > 0 && !t.icmp_silent);
    let tcp = t.tcp.filter(|e| e.received > 0);
    let (counted, measured_by) = match (icmp, tcp) {
        (Some(i), Some(c)) if c.loss_ratio() > i.loss_ratio() => (Some(c), "TCP handshakes"),
        (Some(i), _) => (Some(i), "ICMP"),
        (None, c) => (c, "TCP handshakes"),
    };
    let stopped = t.admission.refused
        && echoes.is_some_and(|e| e.received == 0)
        && t.totals.path_echoes_sent > 0;
    TargetEvidence {
        path: t.path,
        address: t.address.clone(),
        requests: f64::from(t.requests - t.unsent),
        failures: t.failures.map(f64::from),
        forwarding_gateway: f64::from(t.forwarding[0]),
        forwarding_refused: f64::from(t.forwarding[1]),
        status: t.http.status,
        error: t.http.error,
        duration_seconds: t.http.duration.as_secs_f64(),
        first_byte_seconds: t.http.phases.processing.map(|d| d.as_secs_f64()),
        signature: t.http.proxy_signature.map(str::to_owned),
        loss: counted.map(|e| e.loss_ratio()),
        rtt_avg_seconds: echoes.and_then(|e| e.rtt).map(|r| r.avg.as_secs_f64()),
        rtt_stddev_seconds: echoes.and_then(|e| e.rtt).map(|r| r.stddev.as_secs_f64()),
        measured_by: if counted.is_some() || t.tcp.is_some() {
            measured_by
        } else if t.icmp.is_some() && !t.icmp_silent {
            "ICMP"
        } else {
            "TCP handshakes"
        },
        icmp_silent: t.icmp_silent,
        admits: !t.admission.refused,
        echoes_stopped: stopped,
        cert_expiry_seconds: t.http.cert_not_after.map(|at| {
            match at.duration_since(std::time::SystemTime::now()) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            }
        }),
    }
}

// ---- reading it back from metrics ------------------------------------------

/// One sample of the Prometheus text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The samples of a text exposition; lines that do not parse are skipped.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(sample)
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = if let Some(body) = rest.strip_prefix('{') {
        parse_labels(body)?
    } else {
        (Vec::new(), rest)
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",...}` with the text format's escapes; returns the labels and what
/// follows the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((key.trim().to_owned(), value));
        s = &rest[end + 1..];
    }
}

/// A scrape, indexed by name.
pub struct Scrape(BTreeMap<String, Vec<Sample>>);

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut map: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for s in samples(text) {
            map.entry(s.name.clone()).or_default().push(s);
        }
        Scrape(map)
    }

    pub fn all(&self, name: &str) -> &[Sample] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The first sample of `name` whose labels include `want`.
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.all(name)
            .iter()
            .find(|s| want.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
    }
}

/// The agent's evidence from one scrape, and the access log's rates from
/// the difference to an earlier one `seconds` before.
pub fn agent_from_metrics(now: &Scrape, before: Option<(&Scrape, f64)>) -> AgentEvidence {
    let mut a = AgentEvidence {
        cpu_usage_ratio: now.get(names::HOST_CPU_USAGE_RATIO, &[]),
        memory_usage_ratio: now.get(names::HOST_MEMORY_USAGE_RATIO, &[]),
        forwarding_ranges: now.get(names::AGENT_FORWARDING_RANGES, &[]),
        ..AgentEvidence::default()
    };
    for s in now.all(names::NETWORK_USAGE_RATIO) {
        let iface = s.label("interface").unwrap_or("?").to_owned();
        if a.network_usage.as_ref().is_none_or(|(_, u)| s.value > *u) {
            a.network_usage = Some((iface, s.value));
        }
    }
    for s in now.all(names::HOST_SATURATED_SECONDS) {
        match s.label("resource") {
            Some("cpu") => a.cpu_saturated_seconds = Some(s.value),
            Some("memory") => a.memory_saturated_seconds = Some(s.value),
            _ => {}
        }
    }
    for s in now.all(names::NETWORK_SATURATED_SECONDS) {
        let link = format!(
            "{} ({})",
            s.label("interface").unwrap_or("?"),
            s.label("direction").unwrap_or("?")
        );
        if a.network_saturated
            .as_ref()
            .is_none_or(|(_, h)| s.value > *h)
        {
            a.network_saturated = Some((link, s.value));
        }
    }
    for s in now.all(names::PROCESS_UP) {
        if let Some(p) = s.label("process") {
            a.processes.push((p.to_owned(), s.value > 0.0));
        }
    }
    for s in now.all(names::WEB_PORT_LISTENING) {
        if let Some(port) = s.label("port").and_then(|p| p.parse().ok()) {
            a.web_ports.push((port, s.value > 0.0));
        }
    }
    for s in now.all(names::FIREWALL_VERDICT) {
        if let (true, Some(r), Some(v)) = (s.value > 0.0, s.label("range"), s.label("verdict")) {
            a.firewall.push((r.to_owned(), v.to_owned()));
        }
    }
    for s in now.all(names::CONNECTIONS) {
        let slot = match s.label("class") {
            Some("forwarding") => &mut a.connections_forwarding,
            Some("other") => &mut a.connections_other,
            _ => continue,
        };
        *slot = Some(slot.unwrap_or(0.0) + s.value);
    }
    if let Some((before, seconds)) = before.filter(|(_, s)| *s > 0.0) {
        for s in now.all(names::ACCESS_LOG_RESPONSES_TOTAL) {
            let (Some(class), Some(status)) = (s.label("class"), s.label("status")) else {
                continue;
            };
            let was = before
                .get(
                    names::ACCESS_LOG_RESPONSES_TOTAL,
                    &[("class", class), ("status", status)],
                )
                .unwrap_or(0.0);
            let rate = (s.value - was).max(0.0) / seconds;
            a.log_rates
                .push((class.to_owned(), status.to_owned(), rate));
        }
    }
    a
}

/// One site's evidence from two scrapes of a prober (`before` some rounds
/// earlier than `now`), with the agent's.
pub fn from_metrics(
    site: &str,
    now: &Scrape,
    before: &Scrape,
    agent: Option<AgentEvidence>,
) -> Evidence {
    let mut targets = Vec::new();
    for s in now.all(names::PROBE_SUCCESS) {
        if s.label("site") != Some(site) {
            continue;
        }
        let (Some(path), Some(address)) = (s.label("path"), s.label("address")) else {
            continue;
        };
        targets.push(target(site, path, address, now, before));
    }
    Evidence {
        targets,
        vantage_cut_off: now.get(names::VANTAGE_UP, &[]) == Some(0.0),
        agent,
        keepalive: KeepaliveEvidence::from_metrics(site, now),
    }
}

/// One target's evidence: its counts over the two scrapes, its gauges now.
fn target(site: &str, path: &str, address: &str, now: &Scrape, before: &Scrape) -> TargetEvidence {
    let path = if path == "proxy" {
        Path::Proxy
    } else {
        Path::Origin
    };
    let key = [
        ("site", site),
        ("path", path.as_str()),
        ("address", address),
    ];
    let delta = |name: &str, extra: &[(&str, &str)]| {
        let want: Vec<(&str, &str)> = key.iter().chain(extra).copied().collect();
        let n = now.get(name, &want).unwrap_or(0.0);
        let b = before.get(name, &want).unwrap_or(0.0);
        (n - b).max(0.0)
    };
    let gauge = |name: &str, extra: &[(&str, &str)]| {
        let want: Vec<(&str, &str)> = key.iter().chain(extra).copied().collect();
        now.get(name, &want)
    };
    let mut failures = [0.0; Kind::ALL.len()];
    for k in Kind::ALL {
        failures[k.index()] = delta(names::PROBE_FAILURES_TOTAL, &[("kind", k.as_str())]);
    }
    let error = now
        .all(names::PROBE_ERROR)
        .iter()
        .find(|e| key.iter().all(|(k, v)| e.label(k) == Some(*v)) && e.value > 0.0)
        .and_then(|e| e.label("error"))
        .and_then(ErrorKind::from_name);
    let silent = gauge(names::ICMP_SILENT, &[]) == Some(1.0);
    let rtt = |stat: &str| {
        let icmp = gauge(names::ICMP_RTT_SECONDS, &[("stat", stat)]).filter(|_| !silent);
        icmp.or_else(|| gauge(names::TCP_RTT_SECONDS, &[("stat", stat)]))
    };
    let sent = delta(names::PATH_ECHOES_SENT_TOTAL, &[]);
    let lost = delta(names::PATH_ECHOES_LOST_TOTAL, &[]);
    let icmp_loss = gauge(names::ICMP_PACKET_LOSS_RATIO, &[]).filter(|_| !silent);
    let now_loss = icmp_loss.or_else(|| gauge(names::TCP_PACKET_LOSS_RATIO, &[]));
    let admits = gauge(names::ORIGIN_ADMITS_PROBER, &[]) != Some(0.0);
    let status = gauge(names::HTTP_STATUS_CODE, &[]).filter(|s| *s > 0.0);
    TargetEvidence {
        path,
        address: address.to_owned(),
        requests: delta(names::PROBES_TOTAL, &[]),
        failures,
        forwarding_gateway: delta(names::FORWARDING_FAILURES_TOTAL, &[("kind", "gateway")]),
        forwarding_refused: delta(names::FORWARDING_FAILURES_TOTAL, &[("kind", "refused")]),
        status: status.map(|s| s as u16),
        error,
        duration_seconds: gauge(names::PROBE_DURATION_SECONDS, &[]).unwrap_or(0.0),
        first_byte_seconds: gauge(names::HTTP_DURATION_SECONDS, &[("phase", "processing")]),
        signature: None,
        loss: (sent > 0.0).then(|| lost / sent),
        rtt_avg_seconds: rtt("avg"),
        rtt_stddev_seconds: rtt("stddev"),
        measured_by: if silent { "TCP handshakes" } else { "ICMP" },
        icmp_silent: silent,
        admits,
        echoes_stopped: !admits
            && now_loss == Some(1.0)
            && now.get(names::PATH_ECHOES_SENT_TOTAL, &key).unwrap_or(0.0) > 0.0,
        cert_expiry_seconds: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::prober::probe::{EchoRound, HttpOutcome};
    use crate::prober::results::TargetResult;

    #[test]
    fn the_larger_loss_of_icmp_and_tcp_handshakes_is_the_paths() {
        let echoes = |received| EchoRound {
            sent: 30,
            received,
            rtt: None,
        };
        let mut t = TargetResult::new(Path::Proxy, "198.51.100.10", HttpOutcome::default());
        // A lucky draw of ICMP (3 of 30 lost) beside TCP handshakes that
        // lost 11: the path is lossy.
        t.icmp = Some(echoes(27));
        t.tcp = Some(echoes(19));
        let e = target_from_round(&t);
        assert!(e.lossy(), "{e:?}");
        assert_eq!(e.measured_by, "TCP handshakes");
        // ICMP the larger: ICMP's.
        t.tcp = Some(echoes(30));
        let e = target_from_round(&t);
        assert_eq!((e.loss, e.measured_by), (Some(0.1), "ICMP"));
        // No reply at all to either: no loss counted (down, not lossy).
        t.icmp = Some(echoes(0));
        t.tcp = Some(echoes(0));
        assert_eq!(target_from_round(&t).loss, None);
        // An ICMP-silent address: TCP only.
        t.icmp_silent = true;
        t.tcp = Some(echoes(20));
        assert!(target_from_round(&t).lossy());
    }

    use super::*;

    #[test]
    fn text_format_samples_with_escapes() {
        let s = samples(
            "# HELP x y\nx_total{a=\"1\",b=\"q\\\"uo\\\\te\"} 3\nplain 1.5\ninf{l=\"x\"} +Inf\nbroken{a=\"1\" 2\n",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label("b"), Some("q\"uo\\te"));
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].name, "plain");
        assert_eq!(s[2].value, f64::INFINITY);
    }

    #[test]
    fn reads_the_agent_families() {
        let text = "# HELP x y\nbadgateway_host_cpu_usage_ratio 0.95\n\
            badgateway_process_up{process=\"nginx\"} 0\n\
            badgateway_connections{class=\"other\",port=\"80\"} 60\n\
            badgateway_connections{class=\"other\",port=\"443\"} 40\n\
            badgateway_firewall_verdict{range=\"198.51.100.0/24\",verdict=\"blocked\"} 1\n\
            badgateway_firewall_verdict{range=\"198.51.100.0/24\",verdict=\"allowed\"} 0\n\
            badgateway_network_usage_ratio{interface=\"eth0\",direction=\"receive\"} 0.2\n\
            badgateway_network_usage_ratio{interface=\"eth0\",direction=\"transmit\"} 0.97\n\
            badgateway_access_log_responses_total{class=\"forwarding\",status=\"429\"} 30\n";
        let before = Scrape::parse(
            "badgateway_access_log_responses_total{class=\"forwarding\",status=\"429\"} 10\n",
        );
        let a = agent_from_metrics(&Scrape::parse(text), Some((&before, 4.0)));
        assert_eq!(a.cpu_usage_ratio, Some(0.95));
        assert_eq!(a.processes, vec![("nginx".to_owned(), false)]);
        assert_eq!(a.connections_other, Some(100.0));
        assert_eq!(a.connections_forwarding, None);
        assert_eq!(
            a.firewall,
            vec![("198.51.100.0/24".to_owned(), "blocked".to_owned())]
        );
        assert_eq!(a.network_usage, Some(("eth0".to_owned(), 0.97)));
        assert_eq!(a.log_rate("forwarding", &["429"]), Some(5.0));
    }
}
