//! `iptables-save` output, parsed and judged as the firewall collector
//! does (`judge_outputs`: parse, compile, evaluate every forwarding range
//! on every web port).
//!
//! Input: a flags byte, then the output. Bit 0: the output is
//! ip6tables-save's rather than iptables-save's; bit 1: stderr carries
//! iptables-nft's "legacy tables present" warning.

#![no_main]

#[path = "firewall_common.rs"]
mod firewall_common;

use badgateway_exporter::agent::firewall::{Captured, Outputs};
use badgateway_exporter::config::FirewallMode;
use firewall_common::judge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let captured = Captured {
        command: "iptables-save".into(),
        stdout: String::from_utf8_lossy(rest).into_owned(),
        stderr: if flags & 2 != 0 {
            "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
                .into()
        } else {
            String::new()
        },
    };
    let outputs = if flags & 1 == 0 {
        Outputs {
            iptables: Some(captured),
            ..Outputs::default()
        }
    } else {
        Outputs {
            ip6tables: Some(captured),
            ..Outputs::default()
        }
    };
    judge(FirewallMode::Iptables, &outputs);
});
