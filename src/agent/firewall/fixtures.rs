//! The evaluators on outputs captured from a real machine
//! (tests/fixtures/firewall, made by its capture.sh).

use std::path::Path;

use serde_json::Value;

use super::evaluate::{judge_outputs, Captured, Evaluation, Outputs};
use super::iptables;
use super::model::Family;
use super::nftables::{self, Skip};
use super::verdict::FirewallVerdict::{self, *};
use crate::config::AgentConfig;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/firewall")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cap(name: &str) -> Option<Captured> {
    let stderr = name.replace(".txt", ".stderr");
    let stderr_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/firewall")
        .join(&stderr);
    Some(Captured {
        command: name.to_owned(),
        stdout: fixture(name),
        stderr: std::fs::read_to_string(stderr_path).unwrap_or_default(),
    })
}

fn config(ranges: &[&str], ports: &[u16]) -> AgentConfig {
    AgentConfig {
        forwarding_ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
        web_ports: ports.to_vec(),
        ..AgentConfig::default()
    }
}

fn verdicts(e: &Evaluation) -> Vec<FirewallVerdict> {
    e.ranges.iter().map(|r| r.verdict).collect()
}

fn run(ranges: &[&str], ports: &[u16], outputs: Outputs) -> Evaluation {
    judge_outputs(&config(ranges, ports), &outputs).unwrap()
}

#[test]
fn iptables_mixed() {
    let out = Outputs {
        iptables: cap("mixed.iptables-save.txt"),
        ..Outputs::default()
    };
    let ranges = [
        "198.51.100.0/24",   // one address banned in BANS
        "198.51.100.128/25", // allowed by WEB
        "203.0.113.0/25",    // hashlimit on 443
        "203.0.113.192/26",  // 200-210 banned by iprange
        "192.0.2.0/25",      // allowed only with a mark: cannot tell
        "192.0.2.128/25",    // logged, then the policy drops it
    ];
    let e = run(&ranges, &[80, 443], out);
    assert_eq!(
        verdicts(&e),
        [Blocked, Allowed, RateLimited, Blocked, Unknown, Blocked]
    );
    assert_eq!(e.ranges[2].ports, [(80, Allowed), (443, RateLimited)]);
    assert_eq!(e.rules, [("iptables", 15)]);
}

#[test]
fn ufw_limit_and_allow() {
    let out = Outputs {
        iptables: cap("ufw.iptables-save.txt"),
        ..Outputs::default()
    };
    let e = run(&["203.0.113.0/24", "198.51.100.0/24"], &[80, 443], out);
    // `ufw limit 80/tcp` rejects a source above 6 connections in 30 s.
    assert_eq!(e.ranges[0].ports, [(80, RateLimited), (443, Allowed)]);
    assert_eq!(verdicts(&e), [RateLimited, Blocked]);
}

#[test]
fn ip6tables_ban_and_connlimit() {
    let out = Outputs {
        ip6tables: cap("v6.ip6tables-save.txt"),
        ..Outputs::default()
    };
    let e = run(
        &["2001:db8::/32", "2001:db8:1::/48", "2001:db8:2::/48"],
        &[443, 8443],
        out,
    );
    assert_eq!(e.ranges[0].verdict, Blocked);
    assert_eq!(e.ranges[1].ports, [(443, Allowed), (8443, RateLimited)]);
    assert_eq!(e.ranges[2].ports, [(443, Allowed), (8443, Blocked)]);
}

#[test]
fn native_nftables() {
    let out = Outputs {
        nft: cap("nft-native.nft.json"),
        ..Outputs::default()
    };
    let ranges = [
        "198.51.100.0/24",
        "192.0.2.0/25",
        "192.0.2.128/25",
        "203.0.113.0/24",
        "2001:db8::/32",
    ];
    let e = run(&ranges, &[80, 443], out.clone());
    assert_eq!(
        verdicts(&e),
        [Blocked, Allowed, Blocked, Blocked, RateLimited]
    );
    // 443 passes below `limit rate 10/second`, above it `sub` drops it.
    assert_eq!(e.ranges[2].ports, [(80, Blocked), (443, RateLimited)]);
    assert_eq!(e.rules, [("nftables", 17)]);
    // `tcp dport 8000-8080 accept`.
    let e = run(&["192.0.2.128/25"], &[8080], out);
    assert_eq!(verdicts(&e), [Allowed]);
}

/// nft-maps.nft.json with only the rules of `handles` left in chain
/// `input`, and its policy set: each expression form alone.
fn maps(handles: &[u64], policy: &str) -> Outputs {
    let mut root: Value = serde_json::from_str(&fixture("nft-maps.nft.json")).unwrap();
    let items = root["nftables"].as_array_mut().unwrap();
    items.retain(|item| match item.get("rule") {
        Some(r) if r["chain"] == "input" => handles.contains(&r["handle"].as_u64().unwrap()),
        _ => true,
    });
    for item in items.iter_mut() {
        if let Some(c) = item.get_mut("chain").filter(|c| c["name"] == "input") {
            c["policy"] = Value::from(policy);
        }
    }
    Outputs {
        nft: Some(Captured {
            command: "nft".into(),
            stdout: root.to_string(),
            stderr: String::new(),
        }),
        ..Outputs::default()
    }
}

#[test]
fn nftables_expression_forms() {
    let r = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"];
    let check = |handles: &[u64], policy: &str, ports: &[u16], want: [FirewallVerdict; 3]| {
        let e = run(&r, ports, maps(handles, policy));
        assert_eq!(
            verdicts(&e),
            want,
            "rules {handles:?}, policy {policy}, ports {ports:?}"
        );
    };
    // ct state vmap, iifname vmap, then the SYN accepted by tcp flags.
    check(&[9, 11, 12], "drop", &[80], [Allowed; 3]);
    check(&[13], "drop", &[80], [Allowed; 3]);
    check(&[14], "accept", &[80], [Allowed; 3]);
    // ip saddr . tcp dport @cc: 203.0.113.0/24 . 80 and 198.51.100.1 . 443.
    check(&[15], "drop", &[80], [Allowed, Blocked, Blocked]);
    check(&[15], "accept", &[443], [Allowed; 3]);
    // tcp dport vmap @pm { 80 : accept, 443 : drop }.
    check(&[16], "drop", &[80], [Allowed; 3]);
    check(&[16], "accept", &[443], [Blocked; 3]);
    // vmap jump/goto to `sub`, which drops 192.0.2.0/24.
    check(&[18], "accept", &[8080], [Allowed, Allowed, Blocked]);
    check(&[18], "accept", &[8081], [Allowed, Allowed, Blocked]);
    // meter, dynamic set with a limit, ct count, quota.
    for h in [20, 21, 23, 24] {
        check(&[h], "accept", &[80], [RateLimited; 3]);
    }
    check(&[22], "drop", &[80], [Blocked; 3]);
    // fib: daddr is local; the reverse-path check cannot be decided.
    check(&[25], "drop", &[80], [Allowed; 3]);
    check(&[26], "accept", &[80], [Allowed; 3]);
    check(&[27], "accept", &[80], [Unknown; 3]);
    check(&[29, 38, 39], "accept", &[80], [Allowed; 3]);
    check(&[30], "drop", &[80], [Allowed; 3]);
    check(&[31, 32, 35], "drop", &[80], [Blocked; 3]);
    // iifname { eth0, lo } accept: eth0 might be ours.
    check(&[34], "drop", &[80], [Unknown; 3]);
    // Named sets with timeouts and counters: one banned address each.
    check(&[36, 37], "accept", &[80], [Allowed, Blocked, Allowed]);
    check(&[40], "accept", &[80, 2000], [Blocked; 3]);
    check(&[41], "accept", &[2000], [Allowed; 3]);
    check(&[42, 43], "drop", &[80], [Blocked; 3]);
}

#[test]
fn auto_skips_what_iptables_read() {
    let out = Outputs {
        iptables: cap("auto.iptables-save.txt"),
        nft: cap("auto.nft.json"),
        ..Outputs::default()
    };
    let e = run(
        &["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"],
        &[80, 443],
        out,
    );
    // iptables rate-limits 198.51.100.0/24; the crowdsec set bans one
    // address of 203.0.113.0/24; `-m string` leaves the rest unknown.
    assert_eq!(verdicts(&e), [RateLimited, Blocked, Unknown]);
    assert_eq!(e.rules, [("iptables", 3), ("nftables", 1)]);
    let nft = nftables::parse(
        &fixture("auto.nft.json"),
        Skip {
            ip: true,
            ip6: false,
        },
    )
    .unwrap();
    assert_eq!(nft.skipped, ["ip filter"]);
    // Alone, nft sees iptables-nft's table with its matches unreadable.
    let alone = nftables::parse(&fixture("auto.nft.json"), Skip::default()).unwrap();
    assert_eq!((alone.rules, alone.skipped.len()), (4, 0));
}

#[test]
fn mixed_through_nft_alone_is_unknown_not_guessed() {
    let out = Outputs {
        nft: cap("mixed.nft.json"),
        ..Outputs::default()
    };
    let e = run(&["198.51.100.0/24", "198.51.100.128/25"], &[80], out);
    // The ban is a plain `ip saddr` match nft can read, but the
    // conntrack accept before it is an unreadable xt match: a NEW packet
    // might be accepted there for all nft can tell.
    assert_eq!(verdicts(&e), [Unknown, Unknown]);
}

#[test]
fn incompatible_filter_table_is_read_by_nft() {
    let ipt = iptables::parse(&fixture("incompatible.iptables-save.txt"), "", Family::V4).unwrap();
    assert!(!ipt.has_filter);
    let out = Outputs {
        iptables: cap("incompatible.iptables-save.txt"),
        nft: cap("incompatible.nft.json"),
        ..Outputs::default()
    };
    let e = run(&["203.0.113.0/24", "198.51.100.0/24"], &[80, 443], out);
    assert_eq!(verdicts(&e), [Allowed, Blocked]);
    assert_eq!(e.rules, [("iptables", 0), ("nftables", 2)]);
}

#[test]
fn hidden_legacy_rules_make_it_unknown() {
    let out = Outputs {
        iptables: cap("legacy.iptables-save.txt"),
        ..Outputs::default()
    };
    let e = run(&["198.51.100.0/24"], &[80], out);
    assert_eq!(verdicts(&e), [Unknown]);
}

#[test]
fn odd_output_is_an_error_not_a_panic() {
    let bad = |stdout: &str| Outputs {
        nft: Some(Captured {
            command: "nft -j list ruleset".into(),
            stdout: stdout.into(),
            stderr: String::new(),
        }),
        ..Outputs::default()
    };
    let cfg = config(&["198.51.100.0/24"], &[80]);
    for text in ["{", "[]", "{\"nftables\": 3}"] {
        let e = judge_outputs(&cfg, &bad(text)).unwrap_err().to_string();
        assert!(e.contains("nft -j list ruleset"), "{e}");
    }
    // Odd but valid JSON: unknown pieces, never a panic.
    let odd = r#"{"nftables": [{"chain": {"family": "inet", "table": "t", "name": "c", "hook": "input", "prio": "x", "policy": "drop"}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "x", "len": 99}}}}, {"accept": null}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "c", "expr": [7, {"jump": {"target": "nowhere"}}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "c"}}]}"#;
    let e = judge_outputs(&cfg, &bad(odd)).unwrap();
    assert_eq!(verdicts(&e), [Unknown]);
}
