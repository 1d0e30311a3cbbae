//! ICMP rounds against real hosts, with loss made by the router's firewall
//! (`iptables -m statistic`), since this kernel has no netem.

mod common;

use std::time::Duration;

use common::{Lab, ORIGIN_IP, PROXY_IP};

/// Half the echoes to the origin are dropped on the way: its loss ratio
/// lands near 0.5 while the proxy's stays at 0.
#[test]
fn loss_ratio_follows_dropped_echoes() {
    let mut lab = Lab::new();
    lab.drop_echoes_to(ORIGIN_IP, "0.5");
    // Two sites behind the same proxy address, pinged at the same time:
    // neither may take the other's replies.
    let config = format!(
        "probe:\n  interval: 10s\n  timeout: 2s\n  icmp: {{count: 200, interval: 5ms}}\nsites:\n\
         - name: a\n  url: http://a.example.com/\n  proxy: [{PROXY_IP}]\n  origin: [{ORIGIN_IP}]\n\
         - name: b\n  url: http://b.example.com/\n  proxy: [{PROXY_IP}]\n  origin: [{ORIGIN_IP}]\n"
    );
    let listen = lab.start_exporter(&config);
    let loss = |s: &common::metrics::Scrape, site: &str, path: &str| {
        s.get(
            "badgateway_icmp_packet_loss_ratio",
            &[("site", site), ("path", path)],
        )
    };
    let s = lab.scrape_until(listen, Duration::from_secs(30), |s| {
        ["a", "b"]
            .iter()
            .all(|site| loss(s, site, "origin").is_some() && loss(s, site, "proxy").is_some())
    });
    for site in ["a", "b"] {
        assert_eq!(loss(&s, site, "proxy"), Some(0.0), "site {site}");
        let origin = loss(&s, site, "origin").unwrap();
        // 200 echoes at p=0.5: the standard deviation is 0.035.
        assert!(
            (0.35..=0.65).contains(&origin),
            "site {site}: origin loss {origin}"
        );
        // Every round sends all 200 echoes, and rounds add up.
        let sent = s
            .get(
                "badgateway_path_echoes_sent_total",
                &[("site", site), ("path", "origin")],
            )
            .unwrap();
        assert!(sent >= 200.0 && sent % 200.0 == 0.0, "echoes sent {sent}");
        let jitter = s
            .get(
                "badgateway_icmp_rtt_seconds",
                &[("site", site), ("path", "proxy"), ("stat", "stddev")],
            )
            .unwrap();
        assert!((0.0..0.1).contains(&jitter), "jitter {jitter}");
    }
    assert_eq!(
        s.get("badgateway_collector_success", &[("collector", "icmp")]),
        Some(1.0)
    );
}

/// All echoes dropped: loss 1 and no round-trip statistics.
#[test]
fn unreachable_origin_has_total_loss() {
    let mut lab = Lab::new();
    lab.router
        .exec(&["iptables", "-A", "FORWARD", "-d", ORIGIN_IP, "-j", "DROP"]);
    let config = format!(
        "probe:\n  interval: 10s\n  timeout: 1s\n  icmp: {{count: 5, interval: 10ms}}\nsites:\n\
         - name: a\n  url: http://a.example.com/\n  proxy: [{PROXY_IP}]\n  origin: [{ORIGIN_IP}]\n"
    );
    let listen = lab.start_exporter(&config);
    let s = lab.scrape_until(listen, Duration::from_secs(20), |s| {
        s.get(
            "badgateway_icmp_packet_loss_ratio",
            &[("site", "a"), ("path", "origin")],
        )
        .is_some()
    });
    assert_eq!(
        s.get(
            "badgateway_icmp_packet_loss_ratio",
            &[("site", "a"), ("path", "origin")]
        ),
        Some(1.0)
    );
    assert!(s
        .find(
            "badgateway_icmp_rtt_seconds",
            &[("site", "a"), ("path", "origin")]
        )
        .is_empty());
    assert_eq!(
        s.get(
            "badgateway_probe_error",
            &[("site", "a"), ("path", "origin")]
        ),
        Some(1.0)
    );
    let kind = &s.find(
        "badgateway_probe_error",
        &[("site", "a"), ("path", "origin")],
    )[0]
    .labels["error"];
    assert_eq!(kind, "connect_timeout");
}

/// No ICMP socket can be opened (an unprivileged user, and unprivileged
/// ping not allowed): the collector says so, one log line explains, and
/// HTTP probing goes on.
#[test]
fn without_icmp_sockets_http_probing_goes_on() {
    let mut lab = Lab::new();
    lab.vantage
        .exec(&["sysctl", "-qw", "net.ipv4.ping_group_range=1 0"]);
    // The unprivileged user must be able to read the config.
    std::fs::set_permissions(
        lab.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = format!(
        "probe:\n  interval: 10s\n  timeout: 1s\n  icmp: {{count: 3, interval: 10ms}}\nsites:\n\
         - name: a\n  url: http://a.example.com/\n  proxy: [{PROXY_IP}]\n  origin: [{ORIGIN_IP}]\n"
    );
    let listen = lab.start_exporter_with(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &config,
    );
    let s = lab.scrape_until(listen, Duration::from_secs(20), |s| {
        s.get(
            "badgateway_probe_success",
            &[("site", "a"), ("path", "origin")],
        )
        .is_some()
    });
    assert_eq!(
        s.get("badgateway_collector_success", &[("collector", "icmp")]),
        Some(0.0)
    );
    assert!(s.find("badgateway_icmp_packet_loss_ratio", &[]).is_empty());
    // Nothing listens on the origin: the HTTP probe ran and says so.
    assert_eq!(
        s.get(
            "badgateway_http_status_code",
            &[("site", "a"), ("path", "origin")]
        ),
        Some(0.0)
    );
    let log = lab.procs[0].log_text();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains("ICMP probes cannot run"), "{log}");
    assert!(log.contains("CAP_NET_RAW"), "{log}");
}
