// Why one file: one subject, the prober against real hosts and firewall
// rules, sharing one lab.
//! The prober against real hosts: a vantage, nginx as the protecting proxy
//! and an origin, each in its own network namespace, with real firewall
//! rules on the origin. Each test builds its own lab, so they run in
//! parallel without sharing anything.

mod common;

use std::time::Duration;

use common::metrics::Scrape;
use common::origin::OriginServer;
use common::{Lab, ORIGIN_IP, PROXY_IP};

const WAIT: Duration = Duration::from_secs(20);

fn config(icmp: bool) -> String {
    format!(
        "probe:\n  interval: 2s\n  timeout: 2s\n  icmp: {{enabled: {icmp}, count: 5, interval: 20ms}}\n\
         sites:\n  - name: shop\n    url: http://www.example.com/healthz\n    proxy: [{PROXY_IP}]\n    origin: [{ORIGIN_IP}]\n"
    )
}

fn value(s: &Scrape, name: &str, path: &str) -> Option<f64> {
    s.get(name, &[("site", "shop"), ("path", path)])
}

fn error_kind(s: &Scrape, path: &str) -> Option<String> {
    let found = s.find(
        "badgateway_probe_error",
        &[("site", "shop"), ("path", path)],
    );
    found.first().map(|x| x.labels["error"].clone())
}

/// A lab with the proxy's nginx and the origin server running.
fn lab(upstream_timeout: &str) -> (Lab, OriginServer) {
    let mut lab = Lab::new();
    let origin = OriginServer::start(
        Some(&lab.origin.name),
        format!("{ORIGIN_IP}:80").parse().unwrap(),
    );
    lab.start_proxy_nginx(upstream_timeout);
    (lab, origin)
}

#[test]
fn healthy_site_both_paths_succeed() {
    let (mut lab, _origin) = lab("1s");
    let listen = lab.start_exporter(&config(true));
    let s = lab.scrape_until(listen, WAIT, |s| {
        value(s, "badgateway_probe_success", "proxy") == Some(1.0)
            && value(s, "badgateway_probe_success", "origin") == Some(1.0)
            && value(s, "badgateway_icmp_packet_loss_ratio", "origin").is_some()
    });
    assert_eq!(
        value(&s, "badgateway_http_status_code", "proxy"),
        Some(200.0)
    );
    assert_eq!(
        value(&s, "badgateway_http_status_code", "origin"),
        Some(200.0)
    );
    assert_eq!(
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(0.0)
    );
    assert_eq!(error_kind(&s, "proxy"), None);
    assert_eq!(
        value(&s, "badgateway_icmp_packet_loss_ratio", "proxy"),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "badgateway_icmp_packet_loss_ratio", "origin"),
        Some(0.0)
    );
    // The address label is the configured address.
    assert!(s
        .get(
            "badgateway_probe_success",
            &[("site", "shop"), ("path", "origin"), ("address", ORIGIN_IP)]
        )
        .is_some());
    // Phases are real: a connect over veth takes more than nothing and
    // less than the whole probe.
    for path in ["proxy", "origin"] {
        let phase = |p: &str| {
            s.get(
                "badgateway_http_duration_seconds",
                &[("site", "shop"), ("path", path), ("phase", p)],
            )
            .unwrap()
        };
        let total = value(&s, "badgateway_probe_duration_seconds", path).unwrap();
        assert!(phase("connect") > 0.0 && phase("connect") < total, "{path}");
        assert!(
            phase("processing") > 0.0 && phase("processing") < total,
            "{path}"
        );
        assert_eq!(
            phase("resolve"),
            0.0,
            "{path}: pinned addresses need no DNS"
        );
        assert_eq!(phase("tls"), 0.0, "{path}: plain http has no TLS");
    }
    let rtt = s
        .get(
            "badgateway_icmp_rtt_seconds",
            &[("site", "shop"), ("path", "origin"), ("stat", "avg")],
        )
        .unwrap();
    assert!(rtt > 0.0 && rtt < 0.5, "rtt {rtt}");
}

/// The origin's firewall drops the proxy's forwarding IP: the proxy times
/// out upstream (504) while the origin answers the vantage.
#[test]
fn forwarding_ip_dropped_by_origin_firewall() {
    let (mut lab, _origin) = lab("1s");
    lab.origin.exec(&[
        "iptables", "-A", "INPUT", "-s", PROXY_IP, "-p", "tcp", "--dport", "80", "-j", "DROP",
    ]);
    let listen = lab.start_exporter(&config(false));
    let s = lab.scrape_until(listen, WAIT, |s| {
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]) == Some(1.0)
    });
    assert_eq!(value(&s, "badgateway_probe_success", "proxy"), Some(0.0));
    assert_eq!(
        value(&s, "badgateway_http_status_code", "proxy"),
        Some(504.0)
    );
    assert_eq!(error_kind(&s, "proxy").as_deref(), Some("http_status"));
    assert_eq!(value(&s, "badgateway_probe_success", "origin"), Some(1.0));
    assert_eq!(
        value(&s, "badgateway_http_status_code", "origin"),
        Some(200.0)
    );
}

/// REJECT with a reset: the proxy answers 502 at once.
#[test]
fn forwarding_ip_rejected_by_origin_firewall() {
    let (mut lab, _origin) = lab("1s");
    lab.origin.exec(&[
        "iptables",
        "-A",
        "INPUT",
        "-s",
        PROXY_IP,
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]);
    let listen = lab.start_exporter(&config(false));
    let s = lab.scrape_until(listen, WAIT, |s| {
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]) == Some(1.0)
    });
    assert_eq!(
        value(&s, "badgateway_http_status_code", "proxy"),
        Some(502.0)
    );
    assert_eq!(value(&s, "badgateway_probe_success", "origin"), Some(1.0));
}

/// The firewall rule comes and goes while the exporter runs: the flag
/// follows.
#[test]
fn flag_follows_the_firewall_rule() {
    let (mut lab, _origin) = lab("1s");
    let listen = lab.start_exporter(&config(false));
    let flag = |s: &Scrape| s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]);
    lab.scrape_until(listen, WAIT, |s| flag(s) == Some(0.0));
    let rule = [
        "-s",
        PROXY_IP,
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ];
    let mut add = vec!["iptables", "-I", "INPUT"];
    add.extend_from_slice(&rule);
    lab.origin.exec(&add);
    lab.scrape_until(listen, WAIT, |s| flag(s) == Some(1.0));
    let mut del = vec!["iptables", "-D", "INPUT"];
    del.extend_from_slice(&rule);
    lab.origin.exec(&del);
    lab.scrape_until(listen, WAIT, |s| {
        flag(s) == Some(0.0) && value(s, "badgateway_probe_success", "proxy") == Some(1.0)
    });
}

/// No web server on the origin: both paths fail, and that is the origin,
/// not the forwarding IP.
#[test]
fn origin_web_server_stopped() {
    let mut lab = Lab::new();
    lab.start_proxy_nginx("1s");
    let listen = lab.start_exporter(&config(false));
    let s = lab.scrape_until(listen, WAIT, |s| {
        value(s, "badgateway_probe_success", "origin") == Some(0.0)
            && value(s, "badgateway_probe_success", "proxy") == Some(0.0)
    });
    assert_eq!(error_kind(&s, "origin").as_deref(), Some("connect_refused"));
    assert_eq!(
        value(&s, "badgateway_http_status_code", "origin"),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "badgateway_http_status_code", "proxy"),
        Some(502.0)
    );
    assert_eq!(
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(0.0)
    );
}

/// The origin answers after the probe's deadline: a `timeout` straight to
/// it, a 504 through the proxy, and no forwarding flag.
#[test]
fn origin_slower_than_the_timeout() {
    let (mut lab, origin) = lab("1s");
    origin.set(200, Duration::from_secs(4));
    let listen = lab.start_exporter(&config(false));
    let s = lab.scrape_until(listen, WAIT, |s| {
        value(s, "badgateway_probe_success", "origin") == Some(0.0)
    });
    assert_eq!(error_kind(&s, "origin").as_deref(), Some("timeout"));
    assert_eq!(
        value(&s, "badgateway_http_status_code", "proxy"),
        Some(504.0)
    );
    assert_eq!(
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(0.0)
    );
    let duration = value(&s, "badgateway_probe_duration_seconds", "origin").unwrap();
    assert!((1.9..3.0).contains(&duration), "gave up after {duration}s");
}

/// The origin answers us within our deadline but slower than the proxy
/// waits: the proxy fails while the origin answers, yet slowness, not a
/// blocked forwarding IP, explains it.
#[test]
fn origin_slower_than_the_proxy_waits_is_not_a_blocked_forwarding_ip() {
    let (mut lab, origin) = lab("1s");
    origin.set(200, Duration::from_millis(1400));
    let listen = lab.start_exporter(&config(false));
    let s = lab.scrape_until(listen, WAIT, |s| {
        value(s, "badgateway_probe_success", "origin") == Some(1.0)
            && value(s, "badgateway_http_status_code", "proxy") == Some(504.0)
    });
    assert_eq!(
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(0.0)
    );
}

/// The origin's own 500 is passed through the proxy: the origin fails on
/// both paths, no forwarding flag.
#[test]
fn origin_answering_500() {
    let (mut lab, origin) = lab("1s");
    origin.set(500, Duration::ZERO);
    let listen = lab.start_exporter(&config(false));
    let s = lab.scrape_until(listen, WAIT, |s| {
        value(s, "badgateway_http_status_code", "origin") == Some(500.0)
    });
    assert_eq!(error_kind(&s, "origin").as_deref(), Some("http_status"));
    assert_eq!(
        value(&s, "badgateway_http_status_code", "proxy"),
        Some(500.0)
    );
    assert_eq!(
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(0.0)
    );
}

/// Proxy and origin drop ICMP echo requests while their web ports answer:
/// after a round they are ICMP-silent, TCP handshakes measure their paths,
/// and the judged loss counters count handshakes, none lost.
#[test]
fn icmp_silent_addresses_are_measured_by_tcp_handshakes() {
    let (mut lab, _origin) = lab("1s");
    for host in [&lab.proxy, &lab.origin] {
        host.drop_echo_requests();
    }
    let listen = lab.start_exporter(&config(true));
    let s = lab.scrape_until(listen, WAIT, |s| {
        ["proxy", "origin"].iter().all(|p| {
            value(s, "badgateway_icmp_silent", p) == Some(1.0)
                && value(s, "badgateway_path_echoes_sent_total", p) >= Some(10.0)
        })
    });
    for path in ["proxy", "origin"] {
        assert_eq!(
            value(&s, "badgateway_icmp_packet_loss_ratio", path),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "badgateway_tcp_packet_loss_ratio", path),
            Some(0.0)
        );
        assert!(value(&s, "badgateway_path_echoes_sent_total", path).unwrap() >= 10.0);
        assert_eq!(
            value(&s, "badgateway_path_echoes_lost_total", path),
            Some(0.0)
        );
        let rtt = s
            .get(
                "badgateway_tcp_rtt_seconds",
                &[("site", "shop"), ("path", path), ("stat", "avg")],
            )
            .unwrap();
        assert!(rtt > 0.0 && rtt < 0.5, "{path}: {rtt}");
    }
    assert_eq!(s.get("badgateway_vantage_up", &[]), Some(1.0));
}

/// Three proxy addresses on the proxy host, each forwarding from itself;
/// the origin drops one of them: that address alone counts forwarding
/// failures, the others and the origin's direct probes stay clean.
#[test]
fn only_the_blocked_proxy_address_counts_forwarding_failures() {
    let (mut lab, _origin) = lab("500ms");
    forward_from_two_more_proxy_addresses(&mut lab);
    drop_at_origin(&lab, "198.51.100.12");
    let yaml = format!(
        "probe:\n  interval: 1s\n  timeout: 1s\n  icmp: {{enabled: false}}\n  proxy_requests: 2\n\
         sites:\n  - name: shop\n    url: http://www.example.com/healthz\n    \
         proxy: [{PROXY_IP}, 198.51.100.11, 198.51.100.12]\n    origin: [{ORIGIN_IP}]\n"
    );
    let listen = lab.start_exporter(&yaml);
    // A dropped forwarding IP: the proxy gives up with a gateway error.
    let failures = |s: &Scrape, address: &str| {
        s.get(
            "badgateway_forwarding_failures_total",
            &[("site", "shop"), ("address", address), ("kind", "gateway")],
        )
    };
    let s = lab.scrape_until(listen, WAIT, |s| {
        failures(s, "198.51.100.12").is_some_and(|n| n >= 4.0)
    });
    assert_eq!(failures(&s, PROXY_IP), Some(0.0));
    assert_eq!(failures(&s, "198.51.100.11"), Some(0.0));
    let probes = s
        .get(
            "badgateway_probes_total",
            &[("site", "shop"), ("address", "198.51.100.12")],
        )
        .unwrap();
    // Two requests a round, every one of them failing at the forwarding hop.
    assert_eq!(failures(&s, "198.51.100.12"), Some(probes));
    assert_eq!(
        s.get(
            "badgateway_forwarding_failures_total",
            &[
                ("site", "shop"),
                ("address", "198.51.100.12"),
                ("kind", "refused")
            ],
        ),
        Some(0.0)
    );
    assert_eq!(
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "badgateway_origin_admits_prober",
            &[("site", "shop"), ("address", ORIGIN_IP)]
        ),
        Some(1.0)
    );
    let origin_failures: f64 = s
        .find(
            "badgateway_probe_failures_total",
            &[("site", "shop"), ("path", "origin")],
        )
        .iter()
        .map(|x| x.value)
        .sum();
    assert_eq!(origin_failures, 0.0);
}

/// 198.51.100.11 and .12 on the proxy host, each an nginx server
/// forwarding to the origin from itself.
fn forward_from_two_more_proxy_addresses(lab: &mut Lab) {
    let dir = lab.dir.path().join("nginx-proxy3");
    let mut servers = String::new();
    for ip in ["198.51.100.11", "198.51.100.12"] {
        lab.proxy
            .exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        servers.push_str(&format!(
            "server {{ listen {ip}:80; location / {{ proxy_pass http://{ORIGIN_IP}:80; proxy_bind {ip}; \
             proxy_connect_timeout 500ms; proxy_read_timeout 500ms; }} }}\n"
        ));
    }
    let conf = common::nginx_conf(&dir, &servers);
    let p = lab.proxy.spawn_nginx(&dir, &conf);
    lab.procs.push(p);
    lab.proxy
        .wait_listening("198.51.100.12:80".parse().unwrap());
}

/// The origin drops `source`'s connections to its web port.
fn drop_at_origin(lab: &Lab, source: &str) {
    lab.origin.exec(&[
        "iptables", "-A", "INPUT", "-s", source, "-p", "tcp", "--dport", "80", "-j", "DROP",
    ]);
}
