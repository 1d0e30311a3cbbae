// Why one file: one subject, diagnose against real faults, sharing one
// small world.
//! `diagnose` from the vantage host against real faults: the verdict, the
//! exit code and the JSON fields.

mod common;

use std::time::Duration;

use common::origin::OriginServer;
use common::paths::BIN;
use common::wait;
use common::{Lab, ORIGIN_IP, PROXY_IP};
use serde_json::Value;

const URL: &str = "http://www.example.com/healthz";

fn lab(with_origin: bool) -> (Lab, Option<OriginServer>) {
    let mut lab = Lab::new();
    let origin = with_origin.then(|| {
        OriginServer::start(
            Some(&lab.origin.name),
            format!("{ORIGIN_IP}:80").parse().unwrap(),
        )
    });
    lab.start_proxy_nginx("1s");
    (lab, origin)
}

/// Run diagnose on the vantage host; (exit code, stdout, stderr).
fn diagnose(lab: &Lab, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        BIN, "diagnose", URL, "--origin", ORIGIN_IP, "--proxy", PROXY_IP,
    ];
    // Defaults for the tests, unless the test sets its own.
    for (flag, value) in [("--timeout", "3s"), ("--count", "5")] {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, value]);
        }
    }
    args.extend_from_slice(extra);
    let out = lab.vantage.output(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(lab: &Lab, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--output", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = diagnose(lab, &args);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v)
}

#[test]
fn healthy_site() {
    let (lab, _origin) = lab(true);
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["healthy"], true);
    assert_eq!(v["cause"], Value::Null);
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["path"], "proxy");
    assert_eq!(targets[0]["status"], 200);
    assert_eq!(targets[1]["path"], "origin");
    assert_eq!(targets[1]["icmp"]["loss_ratio"], 0.0);
    assert!(targets[1]["phases"]["connect"].as_f64().unwrap() > 0.0);
    let (code, text, _) = diagnose(&lab, &[]);
    assert_eq!(code, 0);
    assert!(text.contains("VERDICT  healthy"), "{text}");
}

#[test]
fn forwarding_ip_blocked_names_the_cause_and_the_fix() {
    let (lab, _origin) = lab(true);
    lab.origin.exec(&[
        "iptables", "-A", "INPUT", "-s", PROXY_IP, "-p", "tcp", "--dport", "80", "-j", "DROP",
    ]);
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "forwarding_ip_blocked");
    assert_eq!(v["reason"], "proxy_fails_origin_ok");
    assert_eq!(v["forwarding_ip_blocked"], true);
    assert_eq!(v["targets"][0]["status"], 504);
    assert_eq!(v["targets"][1]["status"], 200);
    let steps = v["findings"][0]["next_steps"].as_array().unwrap();
    assert!(steps
        .iter()
        .any(|s| s.as_str().unwrap().contains("iptables -I INPUT")));
    let (code, text, _) = diagnose(&lab, &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("VERDICT  forwarding_ip_blocked / proxy_fails_origin_ok"),
        "{text}"
    );
    assert!(text.contains("NEXT STEPS"), "{text}");
    assert!(
        text.contains(&format!("--resolve www.example.com:80:{ORIGIN_IP}")),
        "{text}"
    );
    // Piped: no colour codes.
    assert!(!text.contains('\x1b'), "{text}");
}

#[test]
fn origin_web_server_down() {
    let (lab, _none) = lab(false);
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "origin_abnormal");
    assert_eq!(v["reason"], "web_service_down");
    assert_eq!(v["forwarding_ip_blocked"], false);
    assert_eq!(v["targets"][1]["error"], "connect_refused");
}

#[test]
fn origin_unreachable() {
    let (lab, _origin) = lab(true);
    // The origin's link goes down.
    lab.origin.exec(&["ip", "link", "set", "eth0", "down"]);
    let (code, v) = json(&lab, &["--timeout", "1s"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "origin_abnormal");
    assert_eq!(v["reason"], "origin_unreachable");
    assert_eq!(v["targets"][1]["icmp"]["loss_ratio"], 1.0);
}

#[test]
fn origin_slower_than_the_proxy_waits() {
    let (lab, origin) = lab(true);
    let origin = origin.unwrap();
    origin.set(200, Duration::from_millis(1500));
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "origin_abnormal");
    assert_eq!(v["reason"], "origin_slow");
    assert_eq!(v["forwarding_ip_blocked"], false);
}

#[test]
fn packet_loss_on_the_path() {
    let (lab, _origin) = lab(true);
    lab.drop_echoes_to(ORIGIN_IP, "0.5");
    let (code, v) = json(&lab, &["--count", "40"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "network_linkage");
    assert_eq!(v["reason"], "packet_loss");
    let loss = v["targets"][1]["icmp"]["loss_ratio"].as_f64().unwrap();
    assert!((0.2..0.8).contains(&loss), "{loss}");
}

#[test]
fn bad_input_is_a_usage_error() {
    let bin = BIN;
    for (args, needle) in [
        (
            vec!["diagnose", "not a url", "--origin", "203.0.113.5"],
            "invalid URL",
        ),
        (
            vec!["diagnose", "ftp://x.example/", "--origin", "203.0.113.5"],
            "invalid URL",
        ),
        (
            vec!["diagnose", URL, "--origin", "203.0.113.999"],
            "invalid --origin",
        ),
        (
            vec![
                "diagnose",
                URL,
                "--origin",
                "203.0.113.5",
                "--proxy",
                "nope",
            ],
            "invalid --proxy",
        ),
        (
            vec![
                "diagnose",
                URL,
                "--origin",
                "203.0.113.5",
                "--timeout",
                "soon",
            ],
            "invalid --timeout",
        ),
        (
            vec!["diagnose", URL, "--origin", "203.0.113.5", "--count", "0"],
            "invalid --count",
        ),
        (vec!["diagnose", URL], "--origin"),
        (
            vec![
                "diagnose",
                URL,
                "--origin",
                "203.0.113.5",
                "--output",
                "xml",
            ],
            "xml",
        ),
    ] {
        let out = std::process::Command::new(bin)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// With `--agent`, the origin agent's firewall verdict names the reason,
/// and its forwarding range fills the allowlist commands.
#[test]
fn agent_evidence_names_the_firewall_and_fills_the_range() {
    let (lab, _origin) = lab(true);
    lab.origin.exec(&[
        "iptables", "-A", "INPUT", "-s", PROXY_IP, "-p", "tcp", "--dport", "80", "-j", "DROP",
    ]);
    let config = lab.dir.path().join("agent.yml");
    std::fs::write(
        &config,
        "agent:\n  sites: [shop]\n  forwarding_ranges: [198.51.100.0/24]\n  web_ports: [80]\n  firewall: iptables\n",
    )
    .unwrap();
    let _agent = lab.origin.spawn(
        &[
            BIN,
            "--config",
            &config.to_string_lossy(),
            "--web.listen-address",
            &format!("{ORIGIN_IP}:9502"),
        ],
        &lab.dir.path().join("agent.log"),
    );
    let agent_url = format!("http://{ORIGIN_IP}:9502/metrics");
    lab.origin
        .wait_listening(format!("{ORIGIN_IP}:9502").parse().unwrap());
    // The firewall is evaluated in the background: wait for its verdict.
    wait::until(Duration::from_secs(15), Duration::from_millis(200), || {
        let (_, body) = lab
            .vantage
            .http_get(format!("{ORIGIN_IP}:9502").parse().unwrap(), "/metrics")
            .unwrap_or_default();
        if body.contains("badgateway_firewall_verdict{") {
            Ok(())
        } else {
            Err(format!("no firewall verdict:\n{body}"))
        }
    });
    let (code, v) = json(&lab, &["--agent", &agent_url]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "forwarding_ip_blocked");
    assert_eq!(v["reason"], "firewall_blocks_forwarding_range");
    assert_eq!(v["agent"]["firewall"][0][1], "blocked", "{v:#}");
    let steps = v["findings"][0]["next_steps"].to_string();
    assert!(
        steps.contains("iptables -I INPUT -s 198.51.100.0/24"),
        "{steps}"
    );

    // An agent that cannot be read is reported, and the verdict still comes.
    let (code, v) = json(&lab, &["--agent", "http://203.0.113.5:9/metrics"]);
    assert_eq!(code, 1);
    assert_eq!(v["reason"], "proxy_fails_origin_ok");
    assert!(
        v["agent_error"].as_str().unwrap().contains("203.0.113.5:9"),
        "{v:#}"
    );
}

/// Proxy and origin drop every echo request while their web ports answer:
/// a healthy site, the addresses ICMP-silent, their paths measured by TCP
/// handshakes. Never `packet_loss`.
#[test]
fn addresses_that_drop_icmp_are_silent_not_lossy() {
    let (lab, _origin) = lab(true);
    for host in [&lab.proxy, &lab.origin] {
        host.drop_echo_requests();
    }
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 0, "{v:#}");
    for t in v["targets"].as_array().unwrap() {
        assert_eq!(t["icmp"]["loss_ratio"], 1.0, "{t:#}");
        assert_eq!(t["icmp_silent"], true, "{t:#}");
        assert_eq!(t["tcp"]["loss_ratio"], 0.0, "{t:#}");
        assert!(
            t["tcp"]["rtt_seconds"]["avg"].as_f64().unwrap() > 0.0,
            "{t:#}"
        );
    }
    // A third of every packet to the proxy lost: the TCP handshakes show it.
    lab.router.exec(&[
        "iptables",
        "-A",
        "FORWARD",
        "-d",
        PROXY_IP,
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.3",
        "-j",
        "DROP",
    ]);
    let (code, v) = json(&lab, &["--count", "60"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "network_linkage", "{v:#}");
    assert_eq!(v["reason"], "packet_loss", "{v:#}");
    let loss = v["targets"][0]["tcp"]["loss_ratio"].as_f64().unwrap();
    assert!((0.1..0.6).contains(&loss), "TCP loss {loss}");
}

/// An origin whose web port drops everything but the forwarding range,
/// while its host answers echoes: the site works, the origin is not probed
/// straight, and that is no fault. When the site then fails, the prober
/// cannot tell why and says so rather than blame the origin.
#[test]
fn an_origin_that_admits_only_the_forwarding_range() {
    let (lab, _origin) = lab(true);
    lab.origin.exec(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "80",
        "-s",
        "198.51.100.0/24",
        "-j",
        "ACCEPT",
    ]);
    lab.origin.exec(&[
        "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "DROP",
    ]);
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 0, "{v:#}");
    let notes = v["notes"].to_string();
    assert!(notes.contains("does not admit"), "{notes}");
    // The forwarding IP blocked too: the proxy fails, the direct path is
    // no evidence, and the probes alone cannot name a cause: they say so.
    lab.origin.exec(&[
        "iptables", "-I", "INPUT", "1", "-s", PROXY_IP, "-p", "tcp", "--dport", "80", "-j", "DROP",
    ]);
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "exporter", "{v:#}");
    assert_eq!(v["reason"], "origin_not_probeable", "{v:#}");
    assert!(
        v["findings"][0]["evidence"]
            .to_string()
            .contains("cannot be probed straight"),
        "{v:#}"
    );
}

/// This host has no route out: its own network, not the site.
#[test]
fn a_vantage_without_a_route_names_itself() {
    let (lab, _origin) = lab(true);
    lab.vantage.exec(&["ip", "route", "del", "default"]);
    let (code, v) = json(&lab, &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["cause"], "exporter", "{v:#}");
    assert_eq!(v["reason"], "vantage_cut_off", "{v:#}");
    assert_eq!(v["targets"][0]["error"], "no_route", "{v:#}");
}

/// HTTPS at the proxy (a test CA), plain HTTP straight to the origin.
#[test]
fn https_edge_with_a_plain_http_origin() {
    let (mut lab, _origin) = lab(true);
    let dir = lab.dir.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = common::tls::certificates(&dir, "www.example.com");
    let conf = common::nginx_conf(
        &dir,
        &format!(
            "server {{\n  listen {PROXY_IP}:443 ssl;\n  ssl_certificate {0}/cert.pem;\n  ssl_certificate_key {0}/key.pem;\n  \
             location / {{ proxy_pass http://{ORIGIN_IP}:80; proxy_set_header Host $host; }}\n}}\n",
            dir.display()
        ),
    );
    let p = lab.proxy.spawn_nginx(&dir, &conf);
    lab.procs.push(p);
    lab.proxy
        .wait_listening(format!("{PROXY_IP}:443").parse().unwrap());
    let ca = ca.to_string_lossy().into_owned();
    let out = lab.vantage.output(&[
        BIN,
        "diagnose",
        "https://www.example.com/healthz",
        "--origin",
        ORIGIN_IP,
        "--proxy",
        PROXY_IP,
        "--origin-scheme",
        "http",
        "--ca-file",
        &ca,
        "--count",
        "3",
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert!(
        v["targets"][0]["phases"]["tls"].as_f64().unwrap() > 0.0,
        "{v:#}"
    );
    assert_eq!(v["targets"][1]["phases"]["tls"], Value::Null, "{v:#}");
    assert_eq!(v["targets"][1]["status"], 200, "{v:#}");
}
