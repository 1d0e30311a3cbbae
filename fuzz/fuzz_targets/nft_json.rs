//! `nft -j list ruleset` output, parsed and judged as the firewall
//! collector does (`judge_outputs`: parse, compile, evaluate every
//! forwarding range on every web port).
//!
//! Input: a flags byte, then the JSON. Bits 0 and 1: iptables-save and
//! ip6tables-save read a `filter` table too, so nft's `ip filter` and
//! `ip6 filter` tables are left to them (`auto` mode).

#![no_main]

use badgateway_exporter::agent::firewall::{judge_outputs, Captured, Outputs};
use badgateway_exporter::config::{AgentConfig, FirewallMode};
use libfuzzer_sys::fuzz_target;

const EMPTY_FILTER: &str = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(json) = std::str::from_utf8(rest) else {
        return;
    };
    let filter = |bit: u8, command: &str| {
        (flags & bit != 0).then(|| Captured {
            command: command.into(),
            stdout: EMPTY_FILTER.into(),
            stderr: String::new(),
        })
    };
    let outputs = Outputs {
        iptables: filter(1, "iptables-save"),
        ip6tables: filter(2, "ip6tables-save"),
        nft: Some(Captured {
            command: "nft -j list ruleset".into(),
            stdout: json.to_owned(),
            stderr: String::new(),
        }),
    };
    let config = AgentConfig {
        forwarding_ranges: ["198.51.100.0/24", "203.0.113.0/25", "2001:db8::/48"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect(),
        web_ports: vec![80, 443, 8443],
        firewall: FirewallMode::Auto,
        ..AgentConfig::default()
    };
    if let Ok(eval) = judge_outputs(&config, &outputs) {
        assert_eq!(eval.ranges.len(), config.forwarding_ranges.len());
    }
});
