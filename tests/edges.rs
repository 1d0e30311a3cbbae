//! A proxy found by DNS: every address a real DNS server (dnsmasq) answers
//! for the url host is probed as its own target, and the targets follow
//! the answers as they change. The exporter, dnsmasq and an HTTP server
//! run in a network namespace whose resolv.conf (`/etc/netns/NAME`, which
//! `ip netns exec` mounts over /etc/resolv.conf) names that dnsmasq; the
//! addresses are documentation ones on the namespace's loopback, so
//! nothing leaves the machine.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::metrics::Scrape;
use common::{exporter, wait, Netns, Proc};

/// Where dnsmasq listens inside the namespace.
const DNS_IP: &str = "127.0.0.53";
/// The edge addresses DNS may answer, and the origin.
const EDGES: [&str; 3] = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];
const ORIGIN: &str = "192.0.2.20";
/// A second name, answered with an A and an AAAA record all along.
const DUAL: &str = "dual.example.com";
const DUAL_EDGES: [&str; 2] = ["192.0.2.13", "2001:db8::13"];
const PORT: u16 = 8080;
const HOST: &str = "www.example.com";

/// A namespace with the edges and the origin on its loopback, one HTTP
/// server answering on all of them, a DNS server answering from a hosts
/// file the test rewrites, and a resolv.conf naming it. Everything goes on
/// drop: the processes, the namespace, its /etc/netns directory.
struct World {
    // Stopped before the namespace goes (fields drop in order).
    dns: Proc,
    _web: Proc,
    _etc: EtcNetns,
    ns: Netns,
    dir: tempfile::TempDir,
}

/// `/etc/netns/NAME`, removed on drop.
struct EtcNetns(PathBuf);

impl Drop for EtcNetns {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

impl World {
    fn new(answers: &[&str]) -> World {
        World::with(answers, &format!("nameserver {DNS_IP}\n"), DNS_IP)
    }

    /// With `resolv_conf` in the namespace, and the DNS server on `dns_ip`.
    fn with(answers: &[&str], resolv_conf: &str, dns_ip: &str) -> World {
        let ns = Netns::new("edg");
        let etc = EtcNetns(PathBuf::from("/etc/netns").join(&ns.name));
        fs::create_dir_all(&etc.0).expect("/etc/netns");
        fs::write(etc.0.join("resolv.conf"), resolv_conf).unwrap();
        for ip in EDGES.iter().chain([&ORIGIN]) {
            ns.exec(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        }
        let v6 = format!("{}/128", DUAL_EDGES[1]);
        ns.exec(&["ip", "addr", "add", &v6, "dev", "lo", "nodad"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let world_dir = dir.path().to_owned();
        fs::write(world_dir.join("index.html"), "ok\n").unwrap();
        let web = ns.spawn(
            &[
                "python3",
                "-m",
                "http.server",
                &PORT.to_string(),
                // Both families: Python's server is dual-stack on "::".
                "--bind",
                "::",
                "--directory",
                &world_dir.to_string_lossy(),
            ],
            &world_dir.join("web.log"),
        );
        let hosts = world_dir.join("hosts");
        write_hosts(&hosts, answers);
        let dns = ns.spawn(
            &[
                "dnsmasq",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                &format!("--addn-hosts={}", hosts.display()),
                "--local-ttl=2",
                "--port=53",
                &format!("--listen-address={dns_ip}"),
                "--bind-interfaces",
                "--keep-in-foreground",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
            ],
            &world_dir.join("dnsmasq.log"),
        );
        ns.wait_listening(format!("{}:{PORT}", EDGES[0]).parse().unwrap());
        World {
            dns,
            _web: web,
            _etc: etc,
            ns,
            dir,
        }
    }

    /// DNS answers `answers` for the host from now on.
    fn answer(&self, answers: &[&str]) {
        write_hosts(&self.dir.path().join("hosts"), answers);
        self.dns.signal(nix::sys::signal::Signal::SIGHUP);
    }

    /// The exporter inside the namespace with `sites` (YAML items).
    fn exporter(&self, sites: &str) -> (Proc, SocketAddr) {
        let config = self.dir.path().join("config.yml");
        let text = format!(
            "probe:\n  interval: 1s\n  timeout: 1s\n  icmp: {{enabled: false}}\n  tcp: {{enabled: false}}\n  proxy_requests: 1\nsites:\n{sites}"
        );
        fs::write(&config, text).unwrap();
        let wrapper = ["ip", "netns", "exec", &self.ns.name];
        let log = self.dir.path().join("exporter.log");
        let config = config.to_string_lossy().into_owned();
        exporter::spawn_with(&wrapper, &["--config", &config], &log)
    }

    /// Scrape until `ready` holds of the site's proxy targets, or panic
    /// with the last scrape.
    fn scrape_until(
        &self,
        at: SocketAddr,
        within: Duration,
        ready: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        wait::until(within, Duration::from_millis(250), || {
            let (status, body) = self
                .ns
                .http_get(at, "/metrics")
                .map_err(|e| e.to_string())?;
            let s = Scrape::parse(&body);
            if status == 200 && ready(&s) {
                Ok(s)
            } else {
                Err(format!("status {status}:\n{}", proxies_text(&s)))
            }
        })
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The site's next resolution is due within `window` seconds of now.
fn assert_next_resolution(s: &Scrape, site: &str, window: std::ops::RangeInclusive<f64>) {
    let next = s
        .get(
            "badgateway_proxy_dns_next_resolution_timestamp_seconds",
            &[("site", site)],
        )
        .expect("next resolution");
    let now = now();
    assert!(
        (now + window.start()..=now + window.end()).contains(&next),
        "next {next}, now {now}"
    );
}

fn write_hosts(path: &Path, answers: &[&str]) {
    let text: String = answers
        .iter()
        .map(|ip| format!("{ip} {HOST}\n"))
        .chain(DUAL_EDGES.iter().map(|ip| format!("{ip} {DUAL}\n")))
        .collect();
    fs::write(path, text).unwrap();
}

fn site(name: &str, extra: &str) -> String {
    format!("  - name: {name}\n    url: http://{HOST}:{PORT}/\n    origin: [{ORIGIN}]\n{extra}")
}

/// The `address` labels of the site's proxy targets.
fn proxies(s: &Scrape, site: &str) -> BTreeSet<String> {
    s.find(
        "badgateway_probe_success",
        &[("site", site), ("path", "proxy")],
    )
    .iter()
    .map(|x| x.labels["address"].clone())
    .collect()
}

/// The lines of a scrape about the proxy path, for a failure's message.
fn proxies_text(s: &Scrape) -> String {
    s.text
        .lines()
        .filter(|l| l.contains("path=\"proxy\"") || l.starts_with("badgateway_proxy_"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Exactly `addresses` are probed through the proxy, each succeeding, and
/// DNS found `found`.
fn probed_exactly(s: &Scrape, site: &str, addresses: &[&str], found: usize) -> bool {
    let want: BTreeSet<String> = addresses.iter().map(|a| a.to_string()).collect();
    proxies(s, site) == want
        && addresses.iter().all(|a| {
            s.get(
                "badgateway_probe_success",
                &[("site", site), ("path", "proxy"), ("address", a)],
            ) == Some(1.0)
        })
        && s.get("badgateway_proxy_addresses", &[("site", site)]) == Some(found as f64)
        && s.get("badgateway_proxy_dns_success", &[("site", site)]) == Some(1.0)
}

/// Answers of 2, then 3, then 1 address: each answer's addresses are
/// probed with their own `address` label, and a gone address's series go
/// within a few TTLs (2 s here, asked again after the 5 s floor).
#[test]
fn every_address_dns_answers_is_probed_and_gone_ones_leave() {
    let mut world = World::new(&EDGES[..2]);
    let (_exporter, at) = world.exporter(&site("cdn", ""));
    let within = Duration::from_secs(30);

    let s = world.scrape_until(at, within, |s| probed_exactly(s, "cdn", &EDGES[..2], 2));
    // The url host stands for no target once its addresses are known.
    assert!(!proxies(&s, "cdn").contains(HOST));
    assert_next_resolution(&s, "cdn", -1.0..=6.0);

    world.answer(&EDGES);
    world.scrape_until(at, within, |s| probed_exactly(s, "cdn", &EDGES, 3));

    world.answer(&EDGES[1..2]);
    let s = world.scrape_until(at, within, |s| probed_exactly(s, "cdn", &EDGES[1..2], 1));
    // Nothing of the gone addresses is left in any family.
    for gone in [EDGES[0], EDGES[2]] {
        let needle = format!("address=\"{gone}\"");
        assert!(!s.text.contains(&needle), "{gone} still shown");
    }
    // The address that stayed kept its counters all along.
    let probes = s
        .get(
            "badgateway_probes_total",
            &[("site", "cdn"), ("path", "proxy"), ("address", EDGES[1])],
        )
        .unwrap();
    assert!(probes >= 5.0, "{probes} probes of the address that stayed");

    // The DNS server goes: the failure shows, and the last good address
    // stays probed meanwhile.
    world.dns.stop();
    world.scrape_until(at, within, |s| {
        s.get("badgateway_proxy_dns_success", &[("site", "cdn")]) == Some(0.0)
            && proxies(s, "cdn") == BTreeSet::from([EDGES[1].to_owned()])
    });
}

/// More answers than `max_proxy_addresses`: the lowest two are probed,
/// and all three are counted as found. A and AAAA answers are probed
/// alike. A name DNS does not know fails the proxy path with the `dns`
/// error kind on the url host.
#[test]
fn only_the_first_max_addresses_are_probed_and_an_unknown_name_fails_as_dns() {
    let world = World::new(&[EDGES[2], EDGES[0], EDGES[1]]);
    let unknown = format!(
        "  - name: unknown\n    url: http://nowhere.example.com:{PORT}/\n    origin: [{ORIGIN}]\n"
    );
    let dual = format!("  - name: dual\n    url: http://{DUAL}:{PORT}/\n    origin: [{ORIGIN}]\n");
    let sites = site("capped", "    max_proxy_addresses: 2\n") + &unknown + &dual;
    let (_exporter, at) = world.exporter(&sites);
    let s = world.scrape_until(at, Duration::from_secs(30), |s| {
        probed_exactly(s, "capped", &EDGES[..2], 3)
            && probed_exactly(s, "dual", &DUAL_EDGES, 2)
            && s.get("badgateway_proxy_dns_success", &[("site", "unknown")]) == Some(0.0)
    });
    let dns_error = s.get(
        "badgateway_probe_error",
        &[
            ("site", "unknown"),
            ("path", "proxy"),
            ("address", "nowhere.example.com"),
            ("error", "dns"),
        ],
    );
    assert_eq!(dns_error, Some(1.0), "{}", proxies_text(&s));
    assert_eq!(
        s.get("badgateway_proxy_addresses", &[("site", "unknown")]),
        Some(0.0)
    );
    // The origin path of the same site is probed as ever.
    assert_eq!(
        s.get(
            "badgateway_probe_success",
            &[("site", "unknown"), ("path", "origin")]
        ),
        Some(1.0)
    );
}

/// A resolv.conf with no nameserver line, which the exporter's resolver
/// cannot use and glibc takes as 127.0.0.1: the system's resolver answers
/// instead, kept 30 s for want of a TTL.
#[test]
fn without_a_nameserver_line_the_system_resolver_answers() {
    let world = World::with(&EDGES[..2], "options ndots:1\n", "127.0.0.1");
    let (_exporter, at) = world.exporter(&site("cdn", ""));
    let s = world.scrape_until(at, Duration::from_secs(30), |s| {
        probed_exactly(s, "cdn", &EDGES[..2], 2)
    });
    assert_next_resolution(&s, "cdn", 20.0..=31.0);
}
