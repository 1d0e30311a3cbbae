// Why one file: one subject, the agent's collectors over captured /proc,
// plus one real origin.
//! The origin agent's collectors on procfs fixtures captured from a real
//! machine (copied to a temp dir where a test changes them), and the agent
//! in the binary on a real origin host in a network namespace.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use badgateway_exporter::agent::connections::{Class, Connections, Counts, Filter, Source};
use badgateway_exporter::agent::processes::Processes;
use badgateway_exporter::agent::saturation::Saturation;
use badgateway_exporter::agent::Collector;
use badgateway_exporter::config::InterfaceConfig;
use common::metrics::Scrape;
use common::paths::BIN;
use common::wait;
use common::{Lab, Netns, ORIGIN_IP, PROXY_IP, VANTAGE_IP};

/// A copy of the fixture tree that a test may change.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proc");
    copy_tree(Path::new("tests/fixtures/procfs"), &root);
    (dir, root)
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Render a collector's families as text and parse them back.
fn scrape(c: &dyn Collector) -> Scrape {
    let mut families = c.collect().unwrap_or_else(|e| panic!("{e}"));
    // As the agent does: a family with no series is left out.
    families.retain(|f| !f.get_metric().is_empty());
    Scrape::from_families(&families)
}

#[test]
fn cpu_ratio_comes_from_the_counters_between_scrapes() {
    let (_dir, root) = fixture();
    let s = Saturation::new(root.clone(), Default::default());
    // The fixture's first line: cpu 310917 0 28508 293340 1359 0 1343 79 0 0
    // Add 300 busy ticks (user 200, system 100) and 100 idle.
    let stat = fs::read_to_string(root.join("stat")).unwrap();
    let stat = stat.replacen(
        "cpu  310917 0 28508 293340",
        "cpu  311117 0 28608 293440",
        1,
    );
    fs::write(root.join("stat"), stat).unwrap();
    let m = scrape(&s);
    assert_eq!(m.get("badgateway_host_cpu_usage_ratio", &[]), Some(0.75));
    // No new ticks: the last ratio stays rather than a 0/0.
    let m = scrape(&s);
    assert_eq!(m.get("badgateway_host_cpu_usage_ratio", &[]), Some(0.75));
    assert_eq!(m.get("badgateway_host_cpus", &[]), Some(2.0));
}

/// Add `busy` and `idle` ticks to the fixture's first cpu line.
fn add_ticks(root: &Path, busy: u64, idle: u64) {
    let stat = fs::read_to_string(root.join("stat")).unwrap();
    let mut lines: Vec<String> = stat.lines().map(str::to_owned).collect();
    let mut f: Vec<u64> = lines[0]
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    f[0] += busy;
    f[3] += idle;
    lines[0] = format!(
        "cpu  {}",
        f.iter().map(u64::to_string).collect::<Vec<_>>().join(" ")
    );
    fs::write(root.join("stat"), lines.join("\n") + "\n").unwrap();
}

#[test]
fn saturation_is_held_reading_after_reading() {
    let (_dir, root) = fixture();
    let s = Saturation::new(root.clone(), Default::default());
    let held = |m: &Scrape| {
        m.get("badgateway_host_saturated_seconds", &[("resource", "cpu")])
            .unwrap()
    };
    // Three windows of 95% busy: held since the first window began.
    let started = Instant::now();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        add_ticks(&root, 95, 5);
        let m = scrape(&s);
        assert_eq!(m.get("badgateway_host_cpu_usage_ratio", &[]), Some(0.95));
    }
    let m = scrape(&s);
    let h = held(&m);
    assert!(
        h >= 0.6 && h <= started.elapsed().as_secs_f64() + 0.2,
        "held {h}"
    );
    // One window at 50%: the run ends.
    add_ticks(&root, 50, 50);
    let m = scrape(&s);
    assert_eq!(held(&m), 0.0);
    // 90% exactly is not above the threshold.
    add_ticks(&root, 90, 10);
    assert_eq!(held(&scrape(&s)), 0.0);
    // Memory: the fixture's 2.6% used is not saturated.
    assert_eq!(
        m.get(
            "badgateway_host_saturated_seconds",
            &[("resource", "memory")]
        ),
        Some(0.0)
    );
    // A full machine: MemAvailable down to 5% of MemTotal.
    let meminfo = fs::read_to_string(root.join("meminfo")).unwrap();
    fs::write(
        root.join("meminfo"),
        meminfo.replace("MemAvailable:   24048968 kB", "MemAvailable:    1234204 kB"),
    )
    .unwrap();
    scrape(&s);
    std::thread::sleep(Duration::from_millis(300));
    let m = scrape(&s);
    let mem = m
        .get(
            "badgateway_host_saturated_seconds",
            &[("resource", "memory")],
        )
        .unwrap();
    assert!(mem >= 0.3, "memory held {mem}");
}

#[test]
fn memory_load_and_interfaces() {
    let (_dir, root) = fixture();
    let mut ifaces = std::collections::BTreeMap::new();
    // 8 Mbit/s = 1,000,000 bytes/s.
    ifaces.insert(
        "eth0".to_owned(),
        InterfaceConfig {
            capacity_bits_per_second: 8_000_000,
        },
    );
    let s = Saturation::new(root.clone(), ifaces);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // eth0 received 400,000 more bytes; sent nothing more.
    eth0_received(&root, "eth0: 154997291", "eth0: 155397291");
    let m = scrape(&s);
    let elapsed = started.elapsed().as_secs_f64();
    check_memory_and_load(&m, &root);
    check_eth0_counters_and_usage(&m, elapsed);
    // Then a full link: 1,000,000 bytes more over less than a second.
    std::thread::sleep(Duration::from_millis(200));
    eth0_received(&root, "eth0: 155397291", "eth0: 156397291");
    let m = scrape(&s);
    let held = |m: &Scrape, direction: &str| {
        m.get(
            "badgateway_network_saturated_seconds",
            &[("interface", "eth0"), ("direction", direction)],
        )
    };
    assert!(
        held(&m, "receive").is_some_and(|h| h > 0.0),
        "{:?}",
        held(&m, "receive")
    );
    assert_eq!(held(&m, "transmit"), Some(0.0));
}

/// Move eth0's received bytes in the fixture's net/dev from `from` to `to`.
fn eth0_received(root: &Path, from: &str, to: &str) {
    let dev = fs::read_to_string(root.join("net/dev")).unwrap();
    fs::write(root.join("net/dev"), dev.replace(from, to)).unwrap();
}

/// Memory usage and load, as the fixture's meminfo and loadavg say.
fn check_memory_and_load(m: &Scrape, root: &Path) {
    // MemTotal 24684084 kB, MemAvailable 24048968 kB.
    let mem = m.get("badgateway_host_memory_usage_ratio", &[]).unwrap();
    assert!(
        (mem - (1.0 - 24048968.0 / 24684084.0)).abs() < 1e-12,
        "{mem}"
    );
    let load: f64 = fs::read_to_string(root.join("loadavg"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((m.get("badgateway_host_load1", &[]).unwrap() - load).abs() < 1e-6);
}

/// eth0's bytes, capacity and usage after it received 400,000 bytes in
/// `elapsed` seconds; no other interface is reported.
fn check_eth0_counters_and_usage(m: &Scrape, elapsed: f64) {
    assert_eq!(
        m.get(
            "badgateway_network_receive_bytes_total",
            &[("interface", "eth0")]
        ),
        Some(155397291.0)
    );
    // Only the configured interface is reported.
    assert!(m
        .find(
            "badgateway_network_receive_bytes_total",
            &[("interface", "ifb0")]
        )
        .is_empty());
    assert_eq!(
        m.get(
            "badgateway_network_capacity_bytes_per_second",
            &[("interface", "eth0")]
        ),
        Some(1_000_000.0)
    );
    let rx = m
        .get(
            "badgateway_network_usage_ratio",
            &[("interface", "eth0"), ("direction", "receive")],
        )
        .unwrap();
    // 400,000 bytes over between 0.5 s and `elapsed`, against 1,000,000 B/s.
    assert!(
        rx <= 0.8 + 1e-9 && rx >= 0.4 / elapsed,
        "rx {rx}, elapsed {elapsed}"
    );
    assert_eq!(
        m.get(
            "badgateway_network_usage_ratio",
            &[("interface", "eth0"), ("direction", "transmit")]
        ),
        Some(0.0)
    );
}

#[test]
fn processes_by_name() {
    let (_dir, root) = fixture();
    let configured = Processes::new(root.clone(), &["nginx".to_owned(), "haproxy".to_owned()]);
    let m = scrape(&configured);
    assert_eq!(
        m.get("badgateway_process_up", &[("process", "nginx")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("badgateway_processes", &[("process", "nginx")]),
        Some(2.0)
    );
    assert_eq!(
        m.get("badgateway_process_up", &[("process", "haproxy")]),
        Some(0.0)
    );

    // Detection: the known web servers running are reported; one that
    // stops then reads 0 instead of vanishing.
    let detect = Processes::new(root.clone(), &[]);
    let m = scrape(&detect);
    assert_eq!(
        m.get("badgateway_process_up", &[("process", "nginx")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("badgateway_process_up", &[("process", "apache2")]),
        Some(1.0)
    );
    assert!(m
        .find("badgateway_process_up", &[("process", "sshd")])
        .is_empty());
    fs::remove_dir_all(root.join("2040")).unwrap();
    let m = scrape(&detect);
    assert_eq!(
        m.get("badgateway_process_up", &[("process", "apache2")]),
        Some(0.0)
    );
}

/// The fixture was captured with 3 connections from 198.51.100.10 and 2
/// from 192.0.2.9 to port 80 (an IPv6 dual-stack listener, so the peers
/// are IPv4-mapped), and 1 and 4 to port 443 (IPv4).
#[test]
fn connections_by_class_from_captured_tables() {
    let (_dir, root) = fixture();
    let c = Connections::new(
        root.clone(),
        &["198.51.100.0/24".parse().unwrap()],
        &[80, 443, 8080],
        true,
    );
    let m = scrape(&c);
    let n = |class: &str, port: &str| {
        m.get(
            "badgateway_connections",
            &[("class", class), ("port", port)],
        )
    };
    assert_eq!(n("forwarding", "80"), Some(3.0));
    assert_eq!(n("other", "80"), Some(2.0));
    assert_eq!(n("forwarding", "443"), Some(1.0));
    assert_eq!(n("other", "443"), Some(4.0));
    assert_eq!(n("other", "8080"), Some(0.0));
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "80")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "443")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "8080")]),
        Some(0.0)
    );

    // The same ports as the default guess rather than configured: 8080,
    // where nothing was ever seen listening, is not reported as down.
    let guessed = Connections::new(root, &[], &[80, 443, 8080], false);
    let m = scrape(&guessed);
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "80")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "8080")]),
        None
    );
}

/// A default port that was seen listening and then stops reads 0 rather
/// than vanish: the web server on it died.
#[test]
fn a_default_port_seen_listening_then_closed_reads_zero() {
    let (_dir, root) = fixture();
    let c = Connections::new(root.clone(), &[], &[80, 443], false);
    let m = scrape(&c);
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "443")]),
        Some(1.0)
    );
    // Drop every listener from the captured tables.
    for table in ["net/tcp", "net/tcp6"] {
        let path = root.join(table);
        let text = fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text
            .lines()
            .enumerate()
            .filter(|(i, l)| *i == 0 || l.split_whitespace().nth(3) != Some("0A"))
            .map(|(_, l)| l)
            .collect();
        fs::write(&path, kept.join("\n") + "\n").unwrap();
    }
    let m = scrape(&c);
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "443")]),
        Some(0.0)
    );
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "80")]),
        Some(0.0)
    );
}

#[test]
fn a_missing_procfs_is_a_collector_error_naming_the_file() {
    let c = Connections::new(PathBuf::from("/nonexistent/proc"), &[], &[80], true);
    let e = c.collect().unwrap_err().to_string();
    assert!(e.contains("/nonexistent/proc/net/tcp"), "{e}");
}

#[test]
fn the_live_proc_is_read_over_netlink_and_any_other_root_as_files() {
    let live = Connections::new(PathBuf::from("/proc"), &[], &[80], true);
    assert_eq!(live.source(), Source::Netlink(Filter::StatesAndPorts));
    let (_dir, root) = fixture();
    let files = Connections::new(root, &[], &[80], true);
    assert_eq!(files.source(), Source::Files);
}

/// A TCP connection from `from` to `to`, left open.
fn connect_from(from: &str, to: std::net::SocketAddr) -> socket2::Socket {
    let from = std::net::SocketAddr::new(from.parse().unwrap(), 0);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    s.bind(&from.into()).unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
    s
}

/// The netlink reader (with the kernel's port filter, and with the state
/// filter alone) counts exactly what the /proc reader counts, and both
/// count what was built: one namespace, every address on its loopback.
///
/// - port 80, IPv4 listener: 3 connections from the forwarding range, 2
///   from outside;
/// - port 443, dual-stack IPv6 listener: 1 from the forwarding range
///   (seen as `::ffff:198.51.100.11`) and 1 from ::1;
/// - port 8443: 1 + 2 half-open, the handshakes' last ACK dropped;
/// - port 8080 closed; port 9000 (not a web port) listening with a
///   connection; and the client ends, whose remote port is a web port.
#[test]
fn netlink_and_proc_count_the_same_sockets() {
    let ns = Netns::new("c");
    for a in [
        "203.0.113.5/32",
        "198.51.100.10/32",
        "198.51.100.11/32",
        "192.0.2.9/32",
    ] {
        ns.exec(&["ip", "addr", "add", a, "dev", "lo"]);
    }
    ns.exec(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "8443",
        "--tcp-flags",
        "SYN,ACK,FIN,RST",
        "ACK",
        "-j",
        "DROP",
    ]);
    let (files, netlink, states_only) = ns.run(|| {
        let at = |a: &str| -> std::net::SocketAddr { a.parse().unwrap() };
        let _l80 = std::net::TcpListener::bind(at("203.0.113.5:80")).unwrap();
        let _l443 = std::net::TcpListener::bind(at("[::]:443")).unwrap();
        let _l8443 = std::net::TcpListener::bind(at("203.0.113.5:8443")).unwrap();
        let _l9000 = std::net::TcpListener::bind(at("203.0.113.5:9000")).unwrap();
        let mut held = Vec::new();
        for (from, to, n) in [
            ("198.51.100.10", "203.0.113.5:80", 3),
            ("192.0.2.9", "203.0.113.5:80", 2),
            ("198.51.100.11", "203.0.113.5:443", 1),
            ("::1", "[::1]:443", 1),
            ("198.51.100.10", "203.0.113.5:8443", 1),
            ("192.0.2.9", "203.0.113.5:8443", 2),
            ("192.0.2.9", "203.0.113.5:9000", 1),
        ] {
            for _ in 0..n {
                held.push(connect_from(from, at(to)));
            }
        }
        // /proc/self/net is the process's namespace; this thread's is here.
        let c = Connections::new(
            PathBuf::from("/proc/thread-self"),
            &["198.51.100.0/24".parse().unwrap()],
            &[80, 443, 8080, 8443],
            true,
        );
        // The server ends appear as the last ACKs arrive.
        let expected = expected_counts();
        wait::poll(Duration::from_secs(5), Duration::from_millis(50), || {
            (c.count_from(Source::Files).unwrap() == expected).then_some(())
        });
        one_walk_is_both_families();
        let counts = (
            c.count_from(Source::Files).unwrap(),
            c.count_from(Source::Netlink(Filter::StatesAndPorts))
                .unwrap(),
            c.count_from(Source::Netlink(Filter::States)).unwrap(),
        );
        drop(held);
        counts
    });
    let expected = expected_counts();
    assert_eq!(files, expected, "/proc");
    assert_eq!(netlink, expected, "netlink, states and ports");
    assert_eq!(states_only, expected, "netlink, states only");
}

/// The one-walk request (both families at once) gives the sockets of the
/// two per-family requests, IPv4 and IPv6 alike.
fn one_walk_is_both_families() {
    use badgateway_exporter::agent::sock_diag::{dump_sockets, Entry, Family};
    let dump = |family| {
        let mut found: Vec<Entry> = Vec::new();
        dump_sockets(
            family,
            &[1, 3, 10],
            &[80, 443, 8443],
            Filter::StatesAndPorts,
            |e| found.push(e),
        )
        .unwrap_or_else(|e| panic!("{family:?}: {e}"));
        found.sort_by_key(|e| (e.state, e.local_port, e.remote));
        found
    };
    let mut per_family = dump(Family::One(2));
    per_family.extend(dump(Family::One(10)));
    per_family.sort_by_key(|e| (e.state, e.local_port, e.remote));
    let both = dump(Family::Both);
    assert_eq!(both, per_family);
    // 5 + 2 established, 3 half-open, 3 listening.
    assert_eq!(both.len(), 13, "{both:?}");
    assert!(both.iter().any(|e| e.remote.is_ipv6()) && both.iter().any(|e| e.remote.is_ipv4()));
}

fn expected_counts() -> Counts {
    use Class::{Forwarding, Other};
    Counts {
        established: [
            ((Forwarding, 80), 3),
            ((Other, 80), 2),
            ((Forwarding, 443), 1),
            ((Other, 443), 1),
        ]
        .into_iter()
        .collect(),
        half_open: [((Forwarding, 8443), 1), ((Other, 8443), 2)]
            .into_iter()
            .collect(),
        listening: [(80, true), (443, true), (8080, false), (8443, true)]
            .into_iter()
            .collect(),
    }
}

/// Open `n` connections from `from` to the origin's port 80 and keep them.
fn hold_connections(from: &Netns, n: usize) -> std::sync::mpsc::Sender<()> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let path = from.path();
    std::thread::spawn(move || {
        common::enter(&path);
        let conns: Vec<_> = (0..n)
            .map(|_| std::net::TcpStream::connect((ORIGIN_IP, 80)).unwrap())
            .collect();
        ready_tx.send(()).unwrap();
        let _ = stopped.recv();
        drop(conns);
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    stop
}

/// The binary as an origin agent on the origin host: connections from the
/// proxy (inside the forwarding range) and from the vantage (outside) are
/// counted exactly, and the web server's port shows as listening.
#[test]
fn agent_counts_connections_on_a_real_origin() {
    let lab = Lab::new();
    let _web = common::origin::OriginServer::start(
        Some(&lab.origin.name),
        format!("{ORIGIN_IP}:80").parse().unwrap(),
    );
    let listen = "127.0.0.1:9502".parse().unwrap();
    let (_agent, log) = start_origin_agent(&lab, listen);
    let _from_proxy = hold_connections(&lab.proxy, 7);
    let _from_vantage = hold_connections(&lab.vantage, 4);
    let m = scrape_until_forwarding_counted(&lab, listen, 7.0);
    assert_eq!(
        m.get(
            "badgateway_connections",
            &[("class", "forwarding"), ("port", "80")]
        ),
        Some(7.0),
        "{}\n{}",
        m.text,
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        m.get(
            "badgateway_connections",
            &[("class", "other"), ("port", "80")]
        ),
        Some(4.0)
    );
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "80")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("badgateway_web_port_listening", &[("port", "443")]),
        Some(0.0)
    );
    assert_eq!(
        m.get("badgateway_agent_site_info", &[("site", "shop")]),
        Some(1.0)
    );
    assert_eq!(m.get("badgateway_agent_forwarding_ranges", &[]), Some(1.0));
    for c in ["saturation", "processes", "connections"] {
        assert_eq!(
            m.get("badgateway_collector_success", &[("collector", c)]),
            Some(1.0),
            "{c}"
        );
    }
    let _ = VANTAGE_IP;
}

/// The binary as an agent on the origin host, the proxy's address its
/// forwarding range, web ports 80 and 443, on `listen`; and its log.
fn start_origin_agent(lab: &Lab, listen: std::net::SocketAddr) -> (common::Proc, PathBuf) {
    let config = lab.dir.path().join("agent.yml");
    fs::write(
        &config,
        format!("agent:\n  sites: [shop]\n  forwarding_ranges: [{PROXY_IP}/32]\n  web_ports: [80, 443]\n"),
    )
    .unwrap();
    let log = lab.dir.path().join("agent.log");
    let agent = lab.origin.spawn(
        &[
            BIN,
            "--config",
            &config.to_string_lossy(),
            "--web.listen-address",
            &listen.to_string(),
        ],
        &log,
    );
    lab.origin.wait_listening(listen);
    (agent, log)
}

/// The agent's metrics once it counts `forwarding` connections to port
/// 80, or after 10 s; the caller's assertions say what is missing if they
/// never are.
fn scrape_until_forwarding_counted(
    lab: &Lab,
    listen: std::net::SocketAddr,
    forwarding: f64,
) -> Scrape {
    let mut m = Scrape::default();
    wait::poll(Duration::from_secs(10), Duration::from_millis(100), || {
        let text = lab
            .origin
            .http_get(listen, "/metrics")
            .map(|r| r.1)
            .unwrap_or_default();
        m = Scrape::parse(&text);
        let counted = m.get(
            "badgateway_connections",
            &[("class", "forwarding"), ("port", "80")],
        );
        (counted == Some(forwarding)).then_some(())
    });
    m
}
