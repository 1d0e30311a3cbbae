//! `nft -j list ruleset` output, parsed and judged as the firewall
//! collector does (`judge_outputs`: parse, compile, evaluate every
//! forwarding range on every web port).
//!
//! Input: a flags byte, then the JSON. Bits 0 and 1: iptables-save and
//! ip6tables-save read a `filter` table too, so nft's `ip filter` and
//! `ip6 filter` tables are left to them (`auto` mode).

#![no_main]

#[path = "firewall_common.rs"]
mod firewall_common;

use badgateway_exporter::agent::firewall::{Captured, Outputs};
use badgateway_exporter::config::FirewallMode;
use firewall_common::judge;
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
    judge(FirewallMode::Auto, &outputs);
});
