// Why one file: the lab's scenario table and its report; each scenario is a
// few lines of the table.
//! The end-to-end lab: the deployments operators run, each built for real
//! in network namespaces (see `world.rs`), and in each the faults that make
//! a site behind a protecting proxy answer 502, injected for real: the
//! right alert fires, alerts of other causes stay quiet, `diagnose` names
//! the same cause, and everything recovers.
//!
//! Deployments, each its own set of hosts, run at the same time:
//!
//! - `plain-*`: HTTP at the proxy and the origin, ICMP answered; the
//!   classic faults, split in two so they run side by side;
//! - `https-edge`: HTTPS at the proxy, plain HTTP to the origin, proxy and
//!   origin dropping ICMP echo requests, the agent's web ports left at the
//!   default [80, 443] on an origin that serves 80 only;
//! - `allowlisted-origin`: an origin whose firewall admits only the
//!   forwarding range on its web port (not the probers), nginx with
//!   real_ip on and the `combined` log;
//! - `tls-both`: HTTPS at the proxy and at the origin, the proxy checking
//!   the origin's certificate: the origin's certificate expires, the proxy
//!   refuses the probers itself (nginx `deny`), the proxy goes down;
//! - `many-forwarding-ips`: three proxy addresses, one of which forwards
//!   from three forwarding IPs in turn; the origin logs
//!   `$realip_remote_addr`; a third prober runs on the proxy host bound to
//!   a forwarding IP.
//!
//! Not a libtest harness: it runs the deployments in threads, prints one
//! table, and fails when anything in it failed. `cargo test --test lab`
//! runs it; an argument selects deployments whose name contains it.

#[path = "../common/mod.rs"]
mod common;
mod run;
mod world;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Netns, ORIGIN_IP, PROXY_IP};
use run::{scenario, with_rule, On, Scenario};
use world::{
    burn_cpu, hold_connections, iptables, proxy_server, proxy_server_to_tls_origin, visitors,
    Deployment, World,
};

/// A deployment's scenarios, made in its own thread.
type Scenarios = fn() -> Vec<Scenario>;

fn main() {
    require_root();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let started = Instant::now();
    let reports = run_all(deployments(&filter));
    print_table(&reports);
    let mut problems: Vec<String> = reports.iter().flat_map(|r| r.problems.clone()).collect();
    if filter.is_empty() {
        check_dashboard_panels(&reports, &mut problems);
    }
    println!("lab: {:.0} s", started.elapsed().as_secs_f64());
    let failed = reports.iter().filter(|r| !r.problems.is_empty()).count();
    println!(
        "test result: {}. {} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s",
        if problems.is_empty() { "ok" } else { "FAILED" },
        reports.len() - failed,
        failed.max(usize::from(!problems.is_empty() && failed == 0)),
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() {
        eprintln!("\nlab problems:\n{}", problems.join("\n"));
        std::process::exit(1);
    }
}

/// The lab builds network namespaces: it exits unless run as root.
fn require_root() {
    let uid = std::process::Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|o| o.stdout.starts_with(b"0\n")) {
        eprintln!("the lab builds network namespaces: run it as root (tests/run.sh)");
        std::process::exit(1);
    }
}

/// Every deployment and its scenarios, or those whose name contains one
/// of `filter`.
fn deployments(filter: &[String]) -> Vec<(Deployment, Scenarios)> {
    let all: Vec<(Deployment, Scenarios)> = vec![
        (
            Deployment::plain("plain-forwarding-origin"),
            plain_forwarding_and_origin,
        ),
        (
            Deployment::plain("plain-network-host"),
            plain_network_and_host,
        ),
        (https_edge(), https_edge_scenarios),
        (allowlisted_origin(), allowlisted_origin_scenarios),
        (tls_both(), tls_both_scenarios),
        (many_forwarding_ips(), many_forwarding_ips_scenarios),
    ];
    all.into_iter()
        .filter(|(d, _)| filter.is_empty() || filter.iter().any(|f| d.name.contains(f.as_str())))
        .collect()
}

/// Counts a deployment out however its run ends, so nobody waits forever.
struct Done;

impl Drop for Done {
    fn drop(&mut self) {
        run::finished();
    }
}

/// Runs the deployments side by side, each in its thread, and joins every
/// thread, so that each world is torn down (its namespaces and processes)
/// even when another one failed.
fn run_all(chosen: Vec<(Deployment, Scenarios)>) -> Vec<run::Report> {
    *run::RUNNING.0.lock().unwrap() = chosen.len();
    let runs: Vec<_> = chosen
        .into_iter()
        .map(|(d, scenarios)| {
            let name = d.name;
            let thread = std::thread::spawn(move || {
                let _done = Done;
                run::run(&d, scenarios())
            });
            (name, thread)
        })
        .collect();
    runs.into_iter()
        .map(|(name, r)| r.join().unwrap_or_else(|panic| panicked(name, &*panic)))
        .collect()
}

/// The report of a deployment whose thread panicked.
fn panicked(name: &'static str, panic: &(dyn std::any::Any + Send)) -> run::Report {
    run::Report {
        name,
        rows: Vec::new(),
        problems: vec![format!(
            "{name}: the lab panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )],
        panels_with_data: BTreeSet::new(),
        seconds: 0.0,
    }
}

/// The table of every scenario's row, then each deployment's time.
fn print_table(reports: &[run::Report]) {
    println!("\n| deployment | scenario | expected | firing when it fired | seconds to alert | diagnose from v1 |");
    println!("|---|---|---|---|---|---|");
    for r in reports {
        for row in &r.rows {
            println!("{row}");
        }
    }
    for r in reports {
        println!("deployment {}: {:.0} s", r.name, r.seconds);
    }
}

/// Every cause panel of the dashboard returned data while a scenario of
/// its cause ran, in some deployment.
fn check_dashboard_panels(reports: &[run::Report], problems: &mut Vec<String>) {
    let seen: BTreeSet<&String> = reports.iter().flat_map(|r| &r.panels_with_data).collect();
    let panels = world::dashboard_panels();
    for (cause, title, _) in &panels {
        if !seen.contains(title) {
            problems.push(format!(
                "dashboard panel {title:?} ({cause}) returned no data in any of its scenarios"
            ));
        }
    }
    println!(
        "dashboard: {} of {} cause panels returned data during their scenarios",
        seen.len(),
        panels.len()
    );
}

// ---- the plain deployment -----------------------------------------------

const DROP_FORWARDING: &str = "INPUT -s 198.51.100.10 -p tcp --dport 80 -j DROP";
const LOSS_30: &str =
    "FORWARD -d 198.51.100.10 -m statistic --mode random --probability 0.3 -j DROP";

fn plain_forwarding_and_origin() -> Vec<Scenario> {
    const LIMIT: &str = "INPUT -s 198.51.100.0/24 -p tcp --dport 80 -m hashlimit --hashlimit-above 2/minute --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name lab -j DROP";
    vec![
        with_rule(
            "forwarding IP dropped (iptables)",
            ("forwarding_ip_blocked", "firewall_blocks_forwarding_range"),
            40,
            On::Origin,
            DROP_FORWARDING,
        ),
        scenario(
            "forwarding IP rejected (nftables)",
            ("forwarding_ip_blocked", "proxy_fails_origin_ok"),
            40,
            |w| {
                w.lab.origin.exec(&["nft", "add", "table", "inet", "lab"]);
                w.lab.origin.exec(&[
                    "nft",
                    "add chain inet lab input { type filter hook input priority 0 ; }",
                ]);
                w.lab.origin.exec(&[
                    "nft",
                    "add rule inet lab input ip saddr 198.51.100.10 tcp dport 80 reject with tcp reset",
                ]);
            },
            |w| {
                w.lab
                    .origin
                    .exec(&["nft", "delete", "table", "inet", "lab"]);
            },
        ),
        with_rule(
            "forwarding IP rate-limited (hashlimit)",
            ("forwarding_ip_blocked", "forwarding_ip_rate_limited"),
            60,
            On::Origin,
            LIMIT,
        ),
        scenario(
            "forwarding IP answered 429 (nginx)",
            ("forwarding_ip_blocked", "forwarding_ip_rate_limited"),
            60,
            |w| w.origin_extra("if ($remote_addr = 198.51.100.10) { return 429; }\n"),
            |w| w.origin_extra(""),
        ),
        scenario(
            "origin web server stopped",
            ("origin_abnormal", "web_service_down"),
            40,
            stop_web_server,
            |w| w.start_origin_nginx(),
        ),
        scenario(
            "origin answering 500",
            ("origin_abnormal", "origin_http_errors"),
            40,
            |w| w.backend.set(500, Duration::ZERO),
            |w| w.backend.set(200, Duration::ZERO),
        ),
        scenario(
            "origin slower than the proxy waits (504)",
            ("origin_abnormal", "origin_slow"),
            40,
            |w| w.backend.set(200, Duration::from_millis(800)),
            |w| w.backend.set(200, Duration::ZERO),
        ),
        scenario(
            "origin link down",
            ("origin_abnormal", "origin_unreachable"),
            40,
            link_down,
            link_up,
        ),
    ]
}

fn stop_web_server(w: &mut World) {
    if let Some(mut p) = w.origin_nginx.take() {
        p.stop();
    }
}

fn link_down(w: &mut World) {
    w.lab.origin.exec(&["ip", "link", "set", "eth0", "down"]);
}

fn link_up(w: &mut World) {
    w.lab.origin.exec(&["ip", "link", "set", "eth0", "up"]);
    w.lab
        .origin
        .exec(&["ip", "route", "replace", "default", "via", "203.0.113.1"]);
}

fn plain_network_and_host() -> Vec<Scenario> {
    const LOSS_80: &str =
        "FORWARD -d 198.51.100.10 -m statistic --mode random --probability 0.8 -j DROP";
    const PARTIAL: &str = "FORWARD -s 192.0.2.66 -d 198.51.100.10 -j DROP";
    vec![
        scenario(
            "origin exposed (connections from outside the ranges)",
            ("origin_abnormal", "origin_exposed"),
            60,
            |w| hold_connections(w, 60),
            |w| hold_connections(w, 0),
        ),
        with_rule(
            "30% packet loss on the proxy path",
            ("network_linkage", "packet_loss"),
            60,
            On::Router,
            LOSS_30,
        ),
        with_rule(
            "80% packet loss on the proxy path",
            ("network_linkage", "packet_loss"),
            60,
            On::Router,
            LOSS_80,
        ),
        Scenario {
            // Seen from the first vantage, all is well.
            diagnose: "healthy",
            ..with_rule(
                "proxy lost from one vantage of two",
                ("network_linkage", "partial_vantage_failure"),
                40,
                On::Router,
                PARTIAL,
            )
        },
        Scenario {
            diagnose: "healthy",
            ..scenario(
                "the second vantage loses its route out",
                ("exporter", "vantage_cut_off"),
                40,
                |w| cut_off(w.v2(), true),
                |w| cut_off(w.v2(), false),
            )
        },
        // Last, and alone: every agent of every deployment reads the one
        // /proc/stat of this machine. The burners run at nice 19, so the
        // web server still gets its share: its slowness under load is made
        // by the backend. Saturation is named once the agent has seen the
        // CPU above 90 % for a minute while the site fails (real seconds:
        // the agent measures them).
        Scenario {
            alone: true,
            ..scenario(
                "origin CPU saturated, its answers slower than the proxy waits",
                ("origin_abnormal", "cpu_saturated"),
                120,
                |w| {
                    burn_cpu(w, true);
                    w.backend.set(200, Duration::from_millis(800));
                },
                |w| {
                    w.backend.set(200, Duration::ZERO);
                    burn_cpu(w, false);
                },
            )
        },
    ]
}

/// The vantage's default route goes (its uplink), but the monitor, on the
/// vantage's side of the router, still scrapes it.
fn cut_off(v: &Netns, cut: bool) {
    if cut {
        v.exec(&["ip", "route", "del", "default"]);
        v.exec(&["ip", "route", "add", "192.0.2.128/26", "via", "192.0.2.65"]);
    } else {
        v.exec(&["ip", "route", "del", "192.0.2.128/26"]);
        v.exec(&["ip", "route", "add", "default", "via", "192.0.2.65"]);
    }
}

// ---- HTTPS at the edge, plain HTTP to the origin, ICMP dropped -----------

fn https_edge() -> Deployment {
    Deployment {
        proxy_servers: proxy_server(&format!("{PROXY_IP}:443"), "https", None, ""),
        proxy_tls: true,
        site: format!(
            "    url: https://www.example.com/healthz\n    proxy: [{PROXY_IP}]\n    origin: [{ORIGIN_IP}]\n    \
             origin_scheme: http\n    tls: {{ca_file: @DIR@/ca.pem}}\n"
        ),
        // web_ports left out: the default [80, 443], and the origin serves 80.
        agent: "  access_log: {path: @DIR@/nginx-origin/access.log, format: combined}\n".into(),
        prepare: |w| {
            for host in [&w.lab.proxy, &w.lab.origin] {
                host.drop_echo_requests();
            }
        },
        diagnose: [
            "https://www.example.com/healthz",
            "--proxy",
            PROXY_IP,
            "--origin",
            ORIGIN_IP,
            "--origin-scheme",
            "http",
            "--ca-file",
            "@DIR@/ca.pem",
        ]
        .map(String::from)
        .to_vec(),
        ..Deployment::plain("https-edge")
    }
}

fn https_edge_scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            check: Some(|w| {
                let silent = w.query("badgateway_icmp_silent == 1");
                (silent.len() < 4)
                    .then(|| format!("ICMP-silent targets: {silent:?}, expected all 4"))
            }),
            ..with_rule(
                "forwarding IP dropped behind an ICMP-silent HTTPS proxy",
                ("forwarding_ip_blocked", "proxy_fails_origin_ok"),
                40,
                On::Origin,
                DROP_FORWARDING,
            )
        },
        with_rule(
            "30% packet loss to an ICMP-silent proxy (TCP handshakes measure it)",
            ("network_linkage", "packet_loss"),
            60,
            On::Router,
            LOSS_30,
        ),
        scenario(
            "origin web server stopped (port 80 of the default web ports)",
            ("origin_abnormal", "web_service_down"),
            40,
            stop_web_server,
            |w| w.start_origin_nginx(),
        ),
    ]
}

// ---- HTTPS at the proxy and at the origin ----------------------------------

fn tls_both() -> Deployment {
    Deployment {
        proxy_servers: proxy_server_to_tls_origin(
            &format!("{PROXY_IP}:443"),
            "https",
            "    include @DIR@/extra.conf;\n",
        ),
        proxy_tls: true,
        origin_tls: true,
        site: format!(
            "    url: https://www.example.com/healthz\n    proxy: [{PROXY_IP}]\n    origin: [{ORIGIN_IP}]\n    \
             tls: {{ca_file: @DIR@/ca.pem}}\n"
        ),
        agent: "  web_ports: [80, 443]\n  access_log: {path: @DIR@/nginx-origin/access.log, format: combined}\n"
            .into(),
        diagnose: [
            "https://www.example.com/healthz",
            "--proxy",
            PROXY_IP,
            "--origin",
            ORIGIN_IP,
            "--ca-file",
            "@DIR@/ca.pem",
        ]
        .map(String::from)
        .to_vec(),
        ..Deployment::plain("tls-both")
    }
}

fn tls_both_scenarios() -> Vec<Scenario> {
    vec![
        scenario(
            "the origin's certificate expired (the proxy checks it)",
            ("origin_abnormal", "origin_tls_error"),
            40,
            |w| w.origin_certificate(true),
            |w| w.origin_certificate(false),
        ),
        scenario(
            "the proxy refuses the probers itself (nginx deny: its own 403)",
            ("exporter", "proxy_own_answer"),
            60,
            |w| w.proxy_extra("deny 192.0.2.0/24;\n"),
            |w| w.proxy_extra(""),
        ),
        scenario(
            "the proxy down",
            ("proxy", "proxy_unreachable"),
            40,
            |w| w.stop_proxy_nginx(),
            |w| w.start_proxy_nginx(),
        ),
    ]
}

// ---- an origin that admits only the forwarding range ---------------------

fn allowlisted_origin() -> Deployment {
    Deployment {
        // nginx's real_ip on, the combined log: the log shows the visitor.
        origin_http: "set_real_ip_from 198.51.100.0/24;\nreal_ip_header X-Forwarded-For;\n".into(),
        prepare: |w| {
            iptables(&w.lab.origin, "-A", "INPUT -i lo -j ACCEPT");
            iptables(
                &w.lab.origin,
                "-A",
                "INPUT -p tcp --dport 80 -s 198.51.100.0/24 -j ACCEPT",
            );
            iptables(&w.lab.origin, "-A", "INPUT -p tcp --dport 80 -j DROP");
        },
        baseline_exporter: &["origin_not_probeable"],
        ..Deployment::plain("allowlisted-origin")
    }
}

/// The page that says "cannot tell from here" must stay quiet while the
/// origin agent names the cause.
fn no_catch_all(w: &World) -> Option<String> {
    let r = w.query("ALERTS{alertname=\"BadGatewaySiteFailsOriginNotProbeable\"}");
    (!r.is_empty()).then(|| format!("the cannot-tell page fired or is pending: {r:?}"))
}

fn allowlisted_origin_scenarios() -> Vec<Scenario> {
    const BLOCK: &str = "INPUT 1 -s 198.51.100.10 -p tcp --dport 80 -j DROP";
    const UNBLOCK: &str = "INPUT -s 198.51.100.10 -p tcp --dport 80 -j DROP";
    vec![
        Scenario {
            check: Some(no_catch_all),
            ..scenario(
                "forwarding IP dropped on an origin the probers may not probe",
                ("forwarding_ip_blocked", "firewall_blocks_forwarding_range"),
                50,
                |w| iptables(&w.lab.origin, "-I", BLOCK),
                |w| iptables(&w.lab.origin, "-D", UNBLOCK),
            )
        },
        Scenario {
            check: Some(no_catch_all),
            ..scenario(
                "origin web server stopped on an origin the probers may not probe",
                ("origin_abnormal", "web_service_down"),
                40,
                stop_web_server,
                |w| w.start_origin_nginx(),
            )
        },
        scenario(
            "link down of an origin the probers may not probe",
            ("origin_abnormal", "origin_unreachable"),
            40,
            link_down,
            link_up,
        ),
        with_rule(
            "30% packet loss on the proxy path",
            ("network_linkage", "packet_loss"),
            60,
            On::Router,
            LOSS_30,
        ),
    ]
}

// ---- several proxy addresses and forwarding IPs ---------------------------

const PEER_LOG: &str = "$remote_addr $realip_remote_addr [$time_local] \"$request\" $status";

fn many_forwarding_ips() -> Deployment {
    let split = "split_clients \"${request_id}\" $forwarding_ip {\n  33.3% 198.51.100.20;\n  33.3% 198.51.100.21;\n  * 198.51.100.22;\n}\n";
    let proxies = "[198.51.100.10, 198.51.100.11, 198.51.100.12]";
    Deployment {
        proxy_extra_ips: &[
            "198.51.100.11",
            "198.51.100.12",
            "198.51.100.20",
            "198.51.100.21",
            "198.51.100.22",
            "198.51.100.30",
        ],
        // The proxy host's own connections (its prober's direct probes)
        // leave from an address that is not a forwarding IP.
        proxy_route_src: Some("198.51.100.30"),
        proxy_servers: format!(
            "{split}{}{}{}",
            proxy_server("198.51.100.10:80", "http", Some("$forwarding_ip"), ""),
            proxy_server("198.51.100.11:80", "http", Some("198.51.100.11"), ""),
            proxy_server("198.51.100.12:80", "http", Some("198.51.100.12"), ""),
        ),
        origin_http: format!(
            "set_real_ip_from 198.51.100.0/24;\nreal_ip_header X-Forwarded-For;\n\
             log_format peer '{PEER_LOG}';\n\
             limit_req_zone $realip_remote_addr zone=peers:1m rate=2r/s;\n"
        ),
        origin_log: "peer",
        site: format!(
            "    url: http://www.example.com/healthz\n    proxy: {proxies}\n    origin: [{ORIGIN_IP}]\n"
        ),
        agent: format!(
            "  web_ports: [80]\n  access_log: {{path: @DIR@/nginx-origin/access.log, format: '{PEER_LOG}'}}\n"
        ),
        // On the proxy host, bound to the forwarding IP of 198.51.100.11.
        proxy_host_site: Some(format!(
            "    url: http://www.example.com/healthz\n    proxy: {proxies}\n    origin: [{ORIGIN_IP}]\n    \
             source_address: 198.51.100.11\n"
        )),
        diagnose: [
            "http://www.example.com/healthz",
            "--proxy",
            "198.51.100.10",
            "--proxy",
            "198.51.100.11",
            "--proxy",
            "198.51.100.12",
            "--origin",
            ORIGIN_IP,
        ]
        .map(String::from)
        .to_vec(),
        ..Deployment::plain("many-forwarding-ips")
    }
}

fn many_forwarding_ips_scenarios() -> Vec<Scenario> {
    const DROP_11: &str = "INPUT -s 198.51.100.11 -p tcp --dport 80 -j DROP";
    const BAN_21: &str = "INPUT -s 198.51.100.21 -p tcp --dport 80 -j DROP";
    vec![
        Scenario {
            check: Some(|w| {
                let named = w.query(
                    "ALERTS{alertname=\"BadGatewayForwardingIpBlocked\",alertstate=\"firing\",address=\"198.51.100.11\"}",
                );
                let others = w.query(
                    "ALERTS{alertname=\"BadGatewayForwardingIpBlocked\",address!=\"198.51.100.11\"}",
                );
                // The prober on the proxy host, bound to that very
                // forwarding IP for the proxy path, still reaches the
                // origin straight from another address.
                let direct =
                    w.query("badgateway_probe_success{vantage=\"vp\",path=\"origin\"} == 1");
                if named.is_empty() || !others.is_empty() {
                    Some(format!(
                        "the alert should name 198.51.100.11 only: {named:?} {others:?}"
                    ))
                } else if direct.is_empty() {
                    Some("the proxy-host prober's direct probe fails".into())
                } else {
                    None
                }
            }),
            ..with_rule(
                "the forwarding IP of one proxy address of three dropped",
                ("forwarding_ip_blocked", "proxy_fails_origin_ok"),
                40,
                On::Origin,
                DROP_11,
            )
        },
        Scenario {
            // About a third of the requests through 198.51.100.10 fail:
            // it fires, and holds without flapping for 30 s (10 minutes
            // of rules' time).
            steady: Duration::from_secs(30),
            check: Some(|w| {
                let named = w.query(
                    "ALERTS{alertname=\"BadGatewayForwardingIpBlocked\",alertstate=\"firing\",address=\"198.51.100.10\"}",
                );
                named
                    .is_empty()
                    .then(|| "the alert should name 198.51.100.10".into())
            }),
            ..with_rule(
                "one forwarding IP of three banned (a third of the requests fail)",
                ("forwarding_ip_blocked", "proxy_fails_origin_ok"),
                60,
                On::Origin,
                BAN_21,
            )
        },
        scenario(
            "a rate limit that bites at the proxy's volume only (nginx limit_req on the peer)",
            ("forwarding_ip_blocked", "forwarding_ip_rate_limited"),
            60,
            |w| {
                w.origin_extra("limit_req zone=peers burst=2 nodelay;\nlimit_req_status 429;\n");
                visitors(w, "198.51.100.11", 5);
            },
            |w| {
                visitors(w, "198.51.100.11", 0);
                w.origin_extra("");
            },
        ),
    ]
}
