//! The bottom of everything the exporter exposes: its metric names
//! (`names`), families built at scrape time (`Family`, the agent's
//! collectors: few series, so the `prometheus` crate's model is cheap
//! enough there), the text format's samples, values and escapes (the
//! prober writes its thousands of sites' series as text with them), and
//! how a collector reports that it worked.

pub mod names;

use std::fmt::Write as _;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// The series of one family, gathered by a collector.
pub struct Family(MetricFamily);

impl Family {
    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    /// A counter; its name must end in `_total`.
    pub fn counter(name: &str, help: &str) -> Family {
        debug_assert!(name.ends_with("_total"), "{name}");
        Family::new(name, help, MetricType::COUNTER)
    }

    fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut mf = MetricFamily::default();
        mf.set_name(name.to_owned());
        mf.set_help(help.to_owned());
        mf.set_field_type(kind);
        Family(mf)
    }

    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let pairs = labels
            .iter()
            .map(|(n, v)| {
                let mut p = LabelPair::default();
                p.set_name((*n).to_owned());
                p.set_value((*v).to_owned());
                p
            })
            .collect();
        let mut m = Metric::default();
        m.set_label(pairs);
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
    }

    pub fn into_family(self) -> MetricFamily {
        self.0
    }
}

/// One run of a collector (an agent collector, or the prober's ICMP
/// sockets): all `badgateway_collector_success` and
/// `badgateway_collector_duration_seconds` come from these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CollectorRun {
    pub name: &'static str,
    pub ok: bool,
    /// How long it took at this scrape; `None` for one that does not run
    /// at scrape time.
    pub seconds: Option<f64>,
}

/// The success and duration families of `runs`.
pub fn collector_families(runs: &[CollectorRun]) -> Vec<MetricFamily> {
    let mut success = Family::gauge(
        names::COLLECTOR_SUCCESS,
        "1 when the collector worked on its last run; 0 when it failed (e.g. no permission).",
    );
    let mut duration = Family::gauge(
        names::COLLECTOR_DURATION_SECONDS,
        "How long the collector took at this scrape.",
    );
    for r in runs {
        success.push(&[("collector", r.name)], bool_value(r.ok));
        if let Some(s) = r.seconds {
            duration.push(&[("collector", r.name)], s);
        }
    }
    [success, duration]
        .into_iter()
        .map(Family::into_family)
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}

/// Append one sample line: `name{labels extra} value`. `labels` and
/// `extra` are already escaped; `extra` starts with a comma when set.
pub fn sample(out: &mut String, name: &str, labels: &str, extra: &str, value: f64) {
    // Pushed piece by piece: this runs for every series of every round.
    out.push_str(name);
    out.push('{');
    out.push_str(labels);
    out.push_str(extra);
    out.push_str("} ");
    push_value(out, value);
    out.push('\n');
}

/// `value` as the text format spells it: whole numbers (statuses, counts,
/// flags: most samples) by `itoa`, others by `ryu` (shortest round-trip
/// digits, `7.0286e-5` style, which every Prometheus parser reads); both
/// skip `std::fmt`, which cost a scrape of 10,000 sites tens of ms.
pub fn push_value(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else if value.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(value));
    } else {
        let _ = write!(out, "{}", Value(value));
    }
}

pub fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// A sample value as the text format spells it.
pub struct Value(pub f64);

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
pub fn escape(v: &str) -> std::borrow::Cow<'_, str> {
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

    #[test]
    fn collector_runs() {
        let f = collector_families(&[
            CollectorRun {
                name: "icmp",
                ok: false,
                seconds: None,
            },
            CollectorRun {
                name: "saturation",
                ok: true,
                seconds: Some(0.5),
            },
        ]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].get_metric().len(), 2);
        assert_eq!(f[1].get_metric().len(), 1);
    }
}
