//! Where the loss starts, found by the path probe on a real route: a
//! prober, a router and an origin in three namespaces; the router drops
//! most echo requests it forwards to the origin, so the loss starts at
//! hop 2 (the origin) and not at hop 1 (the router, which answers for
//! itself). Over IPv4 and IPv6 (ICMPv6, hop limits).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::lab::nginx_conf;
use common::metrics::Scrape;
use common::netns::{link, unique, Netns};
use common::paths::BIN;
use common::wait;

const EXPORTER: &str = "127.0.0.1:9502";

/// One family's addresses: the prober's, the router's two, the origin's,
/// and the commands that differ.
struct Family {
    prober: &'static str,
    router_near: &'static str,
    router_far: &'static str,
    origin: &'static str,
    prefix: u8,
    far_net: &'static str,
    iptables: &'static str,
    echo_request: [&'static str; 2],
    sysctls: [&'static str; 2],
}

const V4: Family = Family {
    prober: "192.0.2.1",
    router_near: "192.0.2.254",
    router_far: "198.51.100.254",
    origin: "198.51.100.10",
    prefix: 24,
    far_net: "198.51.100.0/24",
    iptables: "iptables",
    echo_request: ["icmp", "echo-request"],
    sysctls: ["net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"],
};

const V6: Family = Family {
    prober: "2001:db8:1::1",
    router_near: "2001:db8:1::fe",
    router_far: "2001:db8:2::fe",
    origin: "2001:db8:2::10",
    prefix: 64,
    far_net: "2001:db8:2::/64",
    iptables: "ip6tables",
    echo_request: ["icmpv6", "echo-request"],
    sysctls: [
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv6.icmp.ratelimit=0",
    ],
};

/// Three namespaces on one route; the router drops 60 % of the echo
/// requests it forwards to the origin. Every time-exceeded is answered
/// (no ICMP rate limit): the loss measured is the path's.
fn route(f: &Family) -> (Netns, Netns, Netns) {
    let (prober, router, origin) = (Netns::new("pp"), Netns::new("pr"), Netns::new("po"));
    for ns in [&prober, &router, &origin] {
        // No duplicate address detection on the links made next: their
        // IPv6 addresses are usable at once.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    }
    let cidr = |a: &str| format!("{a}/{}", f.prefix);
    link(
        &prober,
        &unique("pa"),
        &cidr(f.prober),
        &router,
        &unique("ra"),
        &cidr(f.router_near),
    );
    link(
        &router,
        &unique("rb"),
        &cidr(f.router_far),
        &origin,
        &unique("ob"),
        &cidr(f.origin),
    );
    prober.exec(&["ip", "route", "add", f.far_net, "via", f.router_near]);
    origin.exec(&["ip", "route", "add", "default", "via", f.router_far]);
    for s in f.sysctls {
        router.exec(&["sysctl", "-qw", s]);
    }
    let [proto, kind] = f.echo_request;
    let flag = if f.iptables == "iptables" {
        "--icmp-type"
    } else {
        "--icmpv6-type"
    };
    router.exec(&[
        f.iptables,
        "-A",
        "FORWARD",
        "-d",
        f.origin,
        "-p",
        proto,
        flag,
        kind,
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.6",
        "-j",
        "DROP",
    ]);
    (prober, router, origin)
}

fn finds_where_loss_starts(f: &Family) {
    let (prober, _router, origin) = route(f);
    let dir = tempfile::tempdir().expect("temp dir");
    let web = dir.path().join("web");
    let socket: SocketAddr = SocketAddr::new(f.origin.parse().unwrap(), 80);
    let conf = nginx_conf(
        &web,
        &format!("  server {{ listen {socket}; location / {{ return 200 \"ok\\n\"; }} }}\n"),
    );
    let _nginx = origin.spawn_nginx(&web, &conf);
    prober.wait_listening(socket);

    let file = dir.path().join("prober.yml");
    std::fs::write(
        &file,
        format!(
            "probe:\n  interval: 2s\n  timeout: 1s\n  proxy_idle_timeout: \"off\"\n  icmp: {{count: 20, interval: 20ms}}\n  tcp: {{enabled: false}}\nsites:\n  - name: shop\n    url: http://www.example.com/\n    proxy: [\"{0}\"]\n    origin: [\"{0}\"]\n",
            f.origin
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
            ("address", f.origin),
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

#[test]
fn the_path_probe_finds_the_hop_where_loss_starts() {
    finds_where_loss_starts(&V4);
}

#[test]
fn the_path_probe_finds_the_hop_where_loss_starts_over_ipv6() {
    finds_where_loss_starts(&V6);
}
