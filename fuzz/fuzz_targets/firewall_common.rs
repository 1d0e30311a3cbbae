//! What the two firewall targets share: the ranges and ports judged, and
//! the check that a judgement covers every range.

use badgateway_exporter::agent::firewall::{judge_outputs, Outputs};
use badgateway_exporter::config::{AgentConfig, FirewallMode};

/// Judge `outputs` as the collector would in `mode`: never a panic, and
/// a verdict for every forwarding range when it works.
pub fn judge(mode: FirewallMode, outputs: &Outputs) {
    let config = AgentConfig {
        forwarding_ranges: ["198.51.100.0/24", "203.0.113.0/25", "2001:db8::/48"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect(),
        web_ports: vec![80, 443, 8443],
        firewall: mode,
        ..AgentConfig::default()
    };
    if let Ok(eval) = judge_outputs(&config, outputs) {
        assert_eq!(eval.ranges.len(), config.forwarding_ranges.len());
    }
}
