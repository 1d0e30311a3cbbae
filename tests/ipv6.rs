//! IPv6 end to end, on 2001:db8::/32 between two namespaces: a prober and
//! an origin with its agent. The probes (HTTP and ICMPv6) reach the origin
//! by its IPv6 address; the agent counts IPv6 connections by class and
//! reads an ip6tables rule that drops a forwarding range.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::lab::nginx_conf;
use common::metrics::Scrape;
use common::netns::{link, unique, Netns};
use common::paths::BIN;
use common::wait;

const ORIGIN: &str = "2001:db8:1::2";
/// The prober's own address, outside the forwarding range.
const PROBER: &str = "2001:db8:1::1";
/// A forwarding IP: the range the origin's agent is told about.
const FORWARDING: &str = "2001:db8:2::1";
const RANGE: &str = "2001:db8:2::/64";
const EXPORTER: &str = "127.0.0.1:9502";

fn scrape_until(ns: &Netns, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let addr: SocketAddr = EXPORTER.parse().unwrap();
    wait::until(Duration::from_secs(30), Duration::from_millis(300), || {
        let (_, text) = ns
            .http_get(addr, "/metrics")
            .map_err(|e| format!("{what}: {e}"))?;
        let s = Scrape::parse(&text);
        if ready(&s) {
            Ok(s)
        } else {
            Err(format!("{what}:\n{text}"))
        }
    })
}

/// Two namespaces on one IPv6 link; the prober also holds a forwarding
/// IP. No duplicate address detection: the addresses are usable at once.
fn link_v6() -> (Netns, Netns) {
    let prober = Netns::new("p6");
    let origin = Netns::new("o6");
    let (a, b) = (unique("p6"), unique("o6"));
    link(
        &prober,
        &a,
        &format!("{PROBER}/64"),
        &origin,
        &b,
        &format!("{ORIGIN}/64"),
    );
    // No duplicate address detection: the addresses are usable at once.
    prober.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{FORWARDING}/64"),
        "dev",
        &a,
        "nodad",
    ]);
    origin.exec(&["ip", "route", "add", "2001:db8:2::/64", "dev", &b]);
    for (ns, ifname) in [(&prober, &a), (&origin, &b)] {
        ns.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{ifname}.accept_dad=0"),
        ]);
    }
    (prober, origin)
}

/// nginx on the origin, reachable from the prober over IPv6.
fn serve(prober: &Netns, origin: &Netns, dir: &std::path::Path) -> common::Proc {
    let web = dir.join("web");
    let conf = nginx_conf(
        &web,
        "  server { listen [::]:80; location / { return 200 \"ok\\n\"; } }\n",
    );
    let nginx = origin.spawn_nginx(&web, &conf);
    let origin_web: SocketAddr = format!("[{ORIGIN}]:80").parse().unwrap();
    wait::until(Duration::from_secs(10), Duration::from_millis(200), || {
        prober
            .http_get(origin_web, "/")
            .map_err(|e| format!("the origin over IPv6: {e}"))
    });

    nginx
}

/// The origin's agent, with ip6tables dropping the forwarding range.
fn start_agent(origin: &Netns, dir: &std::path::Path) -> common::Proc {
    // The origin's agent, and a forwarding range dropped by ip6tables.
    origin.exec(&[
        "ip6tables",
        "-A",
        "INPUT",
        "-s",
        RANGE,
        "-p",
        "tcp",
        "--dport",
        "443",
        "-j",
        "DROP",
    ]);
    let agent_file = dir.join("agent.yml");
    std::fs::write(
        &agent_file,
        format!("agent:\n  sites: [v6]\n  forwarding_ranges: [\"{RANGE}\"]\n  web_ports: [80, 443]\n  processes: [nginx]\n"),
    )
    .unwrap();
    let agent_file = agent_file.to_string_lossy().into_owned();
    origin.spawn(
        &[
            BIN,
            "--config",
            &agent_file,
            "--web.listen-address",
            EXPORTER,
        ],
        &dir.join("agent.log"),
    )
}

/// The prober: HTTP and ICMPv6 to the origin's IPv6 address succeed.
fn probes_succeed(prober: &Netns, dir: &std::path::Path) -> common::Proc {
    // The prober: the site's proxy and origin both at the origin's IPv6
    // address (the proxy here is the origin itself), ICMPv6 on.
    let prober_file = dir.join("prober.yml");
    std::fs::write(
        &prober_file,
        format!(
            "probe:\n  interval: 1s\n  timeout: 900ms\n  proxy_idle_timeout: \"off\"\n  icmp: {{count: 5, interval: 50ms}}\nsites:\n  - name: v6\n    url: http://v6.example.com/\n    proxy: [\"{ORIGIN}\"]\n    origin: [\"{ORIGIN}\"]\n"
        ),
    )
    .unwrap();
    let prober_file = prober_file.to_string_lossy().into_owned();
    let probes = prober.spawn(
        &[
            BIN,
            "--config",
            &prober_file,
            "--web.listen-address",
            EXPORTER,
        ],
        &dir.join("prober.log"),
    );
    let at = |path| [("site", "v6"), ("path", path), ("address", ORIGIN)];
    let s = scrape_until(prober, "the probes over IPv6", |s| {
        ["proxy", "origin"].iter().all(|p| {
            s.get("badgateway_probe_success", &at(p)) == Some(1.0)
                && s.get("badgateway_icmp_packet_loss_ratio", &at(p)) == Some(0.0)
        })
    });
    assert!(s
        .get(
            "badgateway_icmp_rtt_seconds",
            &[("site", "v6"), ("path", "origin"), ("stat", "avg")]
        )
        .is_some());
    assert_eq!(s.get("badgateway_vantage_up", &[]), Some(1.0));

    probes
}

/// The agent counts IPv6 connections by class and reads ip6tables.
fn agent_sees(prober: &Netns, origin: &Netns, dir: &std::path::Path) {
    // Two connections held open: one from the forwarding range, one from
    // the prober's own address.
    let _held = prober.spawn(
        &[
            "python3",
            "-c",
            &format!(
                "import socket, time\n\
                 a = socket.create_connection(('{ORIGIN}', 80), source_address=('{FORWARDING}', 0))\n\
                 b = socket.create_connection(('{ORIGIN}', 80), source_address=('{PROBER}', 0))\n\
                 print('held', flush=True)\n\
                 time.sleep(60)\n"
            ),
        ],
        &dir.join("held.log"),
    );
    let conn = |class| [("class", class), ("port", "80")];
    let s = scrape_until(origin, "the agent over IPv6", |s| {
        s.get("badgateway_connections", &conn("forwarding")) >= Some(1.0)
            && s.get("badgateway_connections", &conn("other")) >= Some(1.0)
            && s.get(
                "badgateway_firewall_forwarding_range_blocked",
                &[("range", RANGE)],
            )
            .is_some()
    });
    assert_eq!(
        s.get(
            "badgateway_firewall_forwarding_range_blocked",
            &[("range", RANGE)]
        ),
        Some(1.0),
        "ip6tables drops {RANGE} on port 443"
    );
    assert_eq!(
        s.get("badgateway_collector_success", &[("collector", "firewall")]),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "badgateway_collector_success",
            &[("collector", "connections")]
        ),
        Some(1.0)
    );
}

#[test]
fn probes_icmpv6_connections_and_the_firewall_over_ipv6() {
    let (prober, origin) = link_v6();
    let dir = tempfile::tempdir().expect("temp dir");
    let _nginx = serve(&prober, &origin, dir.path());
    let _agent = start_agent(&origin, dir.path());
    let _probes = probes_succeed(&prober, dir.path());
    agent_sees(&prober, &origin, dir.path());
}
