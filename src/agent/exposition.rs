//! Builds metric families for the agent's collectors: few series, made at
//! scrape time, so the `prometheus` crate's model is cheap enough here.

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
