//! Turns the latest results into Prometheus metrics at scrape time, beside
//! the exporter's own self-metrics. Reads shared state only: it never
//! starts or waits on a probe.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

use crate::results::Results;

/// The exporter's own metrics, set by the server as things happen.
pub struct SelfMetrics {
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp_seconds: IntGauge,
    pub collector_success: IntGaugeVec,
    pub sites: IntGauge,
}

/// Build the registry every scrape gathers from.
pub fn registry(results: Arc<Results>) -> (Registry, SelfMetrics) {
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
            Opts::new(
                "badgateway_collector_success",
                "1 when the collector worked on its last run; 0 when it failed (e.g. no permission).",
            ),
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
        Box::new(ProbeCollector::new(results)),
    ] {
        registry.register(c).expect("metric names are unique");
    }
    (registry, me)
}

/// The probe metric families, in the order they are exposed.
const FAMILIES: [(&str, &str); 10] = [
    ("badgateway_probe_success", "1 when the last HTTP probe got an expected status."),
    ("badgateway_http_status_code", "Status of the last HTTP probe; 0 when no response came."),
    ("badgateway_http_duration_seconds", "Time the last HTTP probe spent in each phase (resolve, connect, tls, processing to the first byte, transfer); 0 for a phase not reached."),
    ("badgateway_probe_duration_seconds", "How long the last HTTP probe took in all."),
    ("badgateway_probe_error", "1 for the kind of failure of the last HTTP probe; absent when it succeeded."),
    ("badgateway_icmp_packet_loss_ratio", "Share of ICMP echoes of the last round that got no reply, 0..1."),
    ("badgateway_icmp_rtt_seconds", "ICMP round-trip time over the last round: min, avg, max, and stddev (jitter)."),
    ("badgateway_icmp_packets_sent", "ICMP echoes sent in the last round."),
    ("badgateway_forwarding_ip_blocked", "1 when, in the last round, every probe through the proxy failed at the proxy-to-origin hop while every probe straight to the origin succeeded."),
    ("badgateway_last_round_timestamp_seconds", "Unix time the last probe round of the site finished."),
];

struct ProbeCollector {
    results: Arc<Results>,
    descs: Vec<Desc>,
}

impl ProbeCollector {
    fn new(results: Arc<Results>) -> ProbeCollector {
        let descs = FAMILIES
            .iter()
            .map(|(name, help)| {
                Desc::new((*name).into(), (*help).into(), vec![], Default::default())
                    .expect("valid metric")
            })
            .collect();
        ProbeCollector { results, descs }
    }
}

/// Accumulates the series of one family.
struct Family(MetricFamily);

impl Family {
    fn gauge(name: &str, help: &str) -> Family {
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_owned());
        mf.set_help(help.to_owned());
        mf.set_field_type(MetricType::GAUGE);
        Family(mf)
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let pairs = labels
            .iter()
            .map(|(n, v)| {
                let mut p = LabelPair::default();
                p.set_name((*n).to_owned());
                p.set_value((*v).to_owned());
                p
            })
            .collect();
        let mut g = Gauge::default();
        g.set_value(value);
        let mut m = Metric::from_gauge(g);
        m.set_label(pairs);
        self.0.mut_metric().push(m);
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl Collector for ProbeCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut f: Vec<Family> = FAMILIES
            .iter()
            .map(|(name, help)| Family::gauge(name, help))
            .collect();
        self.results.read(|sites| {
            for (site, result) in sites {
                for t in &result.targets {
                    let base = [
                        ("site", site.as_str()),
                        ("path", t.path.as_str()),
                        ("address", t.address.as_str()),
                    ];
                    let h = &t.http;
                    f[0].push(&base, bool_value(h.success()));
                    f[1].push(&base, f64::from(h.status.unwrap_or(0)));
                    for (phase, d) in h.phases.iter() {
                        let labels = [base[0], base[1], base[2], ("phase", phase)];
                        f[2].push(&labels, d.map_or(0.0, |d| d.as_secs_f64()));
                    }
                    f[3].push(&base, h.duration.as_secs_f64());
                    if let Some(kind) = h.error {
                        let labels = [base[0], base[1], base[2], ("error", kind.as_str())];
                        f[4].push(&labels, 1.0);
                    }
                    if let Some(icmp) = &t.icmp {
                        f[5].push(&base, icmp.loss_ratio());
                        if let Some(rtt) = &icmp.rtt {
                            for (stat, d) in [
                                ("min", rtt.min),
                                ("avg", rtt.avg),
                                ("max", rtt.max),
                                ("stddev", rtt.stddev),
                            ] {
                                let labels = [base[0], base[1], base[2], ("stat", stat)];
                                f[6].push(&labels, d.as_secs_f64());
                            }
                        }
                        f[7].push(&base, f64::from(icmp.sent));
                    }
                }
                let site_label = [("site", site.as_str())];
                f[8].push(&site_label, bool_value(result.forwarding_ip_blocked));
                let finished = result
                    .finished
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                f[9].push(&site_label, finished);
            }
        });
        f.into_iter()
            .map(|f| f.0)
            .filter(|mf| !mf.get_metric().is_empty())
            .collect()
    }
}
