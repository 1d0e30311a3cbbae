//! Where the loss starts, found by the path probe on a real route: a
//! prober, a router and an origin in three namespaces; the router drops
//! most echo requests it forwards to the origin, so the loss starts at
//! hop 2 (the origin) and not at hop 1 (the router, which answers for
//! itself).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::lab::nginx_conf;
use common::metrics::Scrape;
use common::netns::{link, unique, Netns};
use common::paths::BIN;
use common::wait;

const ORIGIN: &str = "198.51.100.10";
const EXPORTER: &str = "127.0.0.1:9502";

#[test]
fn the_path_probe_finds_the_hop_where_loss_starts() {
    let prober = Netns::new("pp");
    let router = Netns::new("pr");
    let origin = Netns::new("po");
    link(
        &prober,
        &unique("pa"),
        "192.0.2.1/24",
        &router,
        &unique("ra"),
        "192.0.2.254/24",
    );
    link(
        &router,
        &unique("rb"),
        "198.51.100.254/24",
        &origin,
        &unique("ob"),
        &format!("{ORIGIN}/24"),
    );
    prober.exec(&[
        "ip",
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.0.2.254",
    ]);
    origin.exec(&["ip", "route", "add", "default", "via", "198.51.100.254"]);
    router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // Every time-exceeded answered: the loss measured is the path's.
    router.exec(&["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"]);
    router.exec(&[
        "iptables",
        "-A",
        "FORWARD",
        "-d",
        ORIGIN,
        "-p",
        "icmp",
        "--icmp-type",
        "echo-request",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.6",
        "-j",
        "DROP",
    ]);
    let dir = tempfile::tempdir().expect("temp dir");
    let web = dir.path().join("web");
    let conf = nginx_conf(
        &web,
        &format!("  server {{ listen {ORIGIN}:80; location / {{ return 200 \"ok\\n\"; }} }}\n"),
    );
    let _nginx = origin.spawn_nginx(&web, &conf);
    prober.wait_listening(format!("{ORIGIN}:80").parse().unwrap());

    let file = dir.path().join("prober.yml");
    std::fs::write(
        &file,
        format!(
            "probe:\n  interval: 2s\n  timeout: 1s\n  proxy_idle_timeout: \"off\"\n  icmp: {{count: 20, interval: 20ms}}\n  tcp: {{enabled: false}}\nsites:\n  - name: shop\n    url: http://www.example.com/\n    proxy: [{ORIGIN}]\n    origin: [{ORIGIN}]\n"
        ),
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();
    let _exporter = prober.spawn(
        &[BIN, "--config", &file, "--web.listen-address", EXPORTER],
        &dir.path().join("prober.log"),
    );
    let addr: SocketAddr = EXPORTER.parse().unwrap();
    let s = wait::until(Duration::from_secs(40), Duration::from_millis(500), || {
        let (_, text) = prober
            .http_get(addr, "/metrics")
            .map_err(|e| e.to_string())?;
        let s = Scrape::parse(&text);
        let traced = s.has("badgateway_path_loss_start_hop");
        traced.then_some(s).ok_or(text)
    });
    let traced = s.find("badgateway_path_loss_start_hop", &[("site", "shop")]);
    assert_eq!(traced.len(), 1, "one path probed at a time: {traced:?}");
    let path = traced[0].labels["path"].clone();
    let at = |extra: &[(&'static str, &'static str)]| {
        let mut l = vec![
            ("site", "shop"),
            ("path", path.as_str()),
            ("address", ORIGIN),
        ];
        l.extend_from_slice(extra);
        l
    };
    assert_eq!(s.get("badgateway_path_loss_start_hop", &at(&[])), Some(2.0));
    assert_eq!(
        s.get("badgateway_path_hop_loss_ratio", &at(&[("hop", "1")])),
        Some(0.0)
    );
    let hop2 = s
        .get("badgateway_path_hop_loss_ratio", &at(&[("hop", "2")]))
        .unwrap();
    assert!(hop2 > 0.0 && hop2 < 1.0, "hop 2 lost {hop2}");
    assert_eq!(
        s.get("badgateway_path_hop_loss_ratio", &at(&[("hop", "3")])),
        None,
        "the origin is hop 2"
    );
    assert!(s
        .get("badgateway_path_route_id", &at(&[]))
        .is_some_and(|v| v > 0.0));
    assert!(s
        .get("badgateway_path_trace_timestamp_seconds", &at(&[]))
        .is_some());
}
