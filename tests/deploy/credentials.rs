//! The credentials of each deployment, emulated with setpriv: the exporter
//! in a network namespace with a real firewall rule against the forwarding
//! range, a web server log readable by group adm only, and a site probed
//! with ICMP on loopback. The firewall, ICMP and access-log collectors work
//! with the credentials the files give and fail without them.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::Value;

use crate::common::metrics::Scrape;
use crate::common::paths::{read, BIN};
use crate::common::proc::output;
use crate::common::yaml::{at, seq_at, str_at};
use crate::common::{wait, Netns, Proc};
use crate::kubernetes::k8s_object;
use crate::systemd::unit_value;
use crate::tools::{need, tempdir, write};

/// Who the exporter runs as, and with which capabilities.
#[derive(Clone, Debug)]
struct Creds {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    /// Raised into the ambient set (systemd's AmbientCapabilities=).
    ambient: Vec<String>,
    bounding: Vec<String>,
}

/// `CAP_NET_RAW` / `NET_RAW` → `net_raw`, as setpriv wants them.
fn setpriv_cap(name: &str) -> String {
    name.trim_start_matches("CAP_").to_lowercase()
}

fn cap_list(caps: &[String]) -> String {
    let mut s = String::from("-all");
    for c in caps {
        s.push_str(",+");
        s.push_str(c);
    }
    s
}

fn gid_of(group: &str) -> u32 {
    let groups = fs::read_to_string("/etc/group").unwrap();
    groups
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == group).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no group {group} on this host"))
}

/// The systemd unit's: its User (a stand-in uid: the user does not exist
/// here), SupplementaryGroups, AmbientCapabilities, CapabilityBoundingSet.
fn unit_creds() -> Creds {
    Creds {
        uid: 65534,
        gid: 65534,
        groups: unit_value("SupplementaryGroups")
            .split_whitespace()
            .map(gid_of)
            .collect(),
        ambient: unit_value("AmbientCapabilities")
            .split_whitespace()
            .map(setpriv_cap)
            .collect(),
        bounding: unit_value("CapabilityBoundingSet")
            .split_whitespace()
            .map(setpriv_cap)
            .collect(),
    }
}

/// The agent DaemonSet's: its runAsUser, supplementalGroups and added
/// capabilities (bounding, permitted, effective; no ambient set, as
/// Kubernetes does).
fn agent_pod_creds() -> Creds {
    let ds = k8s_object("DaemonSet", "badgateway-agent");
    let pod = at(&ds, "spec.template.spec");
    let container = at(pod, "containers.0");
    Creds {
        uid: at(pod, "securityContext.runAsUser").as_u64().unwrap() as u32,
        gid: at(pod, "securityContext.runAsGroup").as_u64().unwrap() as u32,
        groups: seq_at(pod, "securityContext.supplementalGroups")
            .iter()
            .map(|g| g.as_u64().unwrap() as u32)
            .collect(),
        ambient: Vec::new(),
        bounding: seq_at(container, "securityContext.capabilities.add")
            .iter()
            .map(|c| setpriv_cap(c.as_str().unwrap()))
            .collect(),
    }
}

struct Emulated {
    metrics: Scrape,
    log: String,
}

/// Run the exporter with `creds` (no_new_privs on, as everywhere) in a new
/// network namespace whose firewall drops the forwarding range, with
/// `ping_group_range` set when given; return its metrics once the firewall
/// collector has decided and a probe round has run.
fn emulate(creds: &Creds, ping_group_range: Option<&str>) -> Emulated {
    need("setpriv", "util-linux");
    need("iptables", "iptables");
    need("curl", "curl");
    let dir = tempdir();
    let ns = namespace_dropping_the_range(ping_group_range);
    let log_path = debian_access_log(dir.path());
    let config = agent_and_prober_config(dir.path(), &log_path);
    let args = setpriv_exporter_args(creds, &config);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut exporter = Proc::spawn(&mut ns.cmd(&argv), &dir.path().join("exporter.log"));

    let scrape = || {
        let out = output(&mut ns.cmd(&["curl", "-sf", "http://127.0.0.1:9502/metrics"]));
        Scrape::parse(&String::from_utf8_lossy(&out.stdout))
    };
    wait::until(Duration::from_secs(30), Duration::from_millis(200), || {
        let m = scrape();
        if firewall_icmp_and_round_decided(&m) {
            return Ok(());
        }
        assert!(
            !exporter.exited(),
            "exporter exited:\n{}",
            exporter.log_text()
        );
        Err(format!(
            "no firewall verdict or probe round:\n{}\n{}",
            m.text,
            exporter.log_text()
        ))
    });
    // The access log is polled every 250 ms: let it try to open.
    std::thread::sleep(Duration::from_millis(1500));
    Emulated {
        metrics: scrape(),
        log: exporter.log_text(),
    }
}

/// A new network namespace whose firewall drops the forwarding range on
/// port 80, with `ping_group_range` set when given.
fn namespace_dropping_the_range(ping_group_range: Option<&str>) -> Netns {
    let ns = Netns::new("d");
    ns.exec(&[
        "iptables",
        "-A",
        "INPUT",
        "-s",
        "198.51.100.0/24",
        "-p",
        "tcp",
        "--dport",
        "80",
        "-j",
        "DROP",
    ]);
    if let Some(range) = ping_group_range {
        ns.exec(&[
            "sysctl",
            "-q",
            &format!("net.ipv4.ping_group_range={range}"),
        ]);
    }
    ns
}

/// The web server's log, as Debian's nginx leaves it: www-data:adm 0640.
fn debian_access_log(dir: &Path) -> PathBuf {
    let log_path = dir.join("access.log");
    write(&log_path, "");
    chown(&log_path, Some(33), Some(gid_of("adm"))).unwrap();
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o640)).unwrap();
    log_path
}

/// A config for one exporter both prober (one site, refused on loopback)
/// and agent reading `log_path`, every collector on; its path.
fn agent_and_prober_config(dir: &Path, log_path: &Path) -> PathBuf {
    let config = dir.join("config.yml");
    write(
        &config,
        &format!(
            "probe: {{interval: 2s, timeout: 1s, icmp: {{count: 2, interval: 10ms}}}}\n\
             sites:\n\
             \x20 - name: local\n\
             \x20   url: http://www.example.com/\n\
             \x20   proxy: [\"127.0.0.1:9\"]\n\
             \x20   origin: [\"127.0.0.1:9\"]\n\
             agent:\n\
             \x20 sites: [local]\n\
             \x20 forwarding_ranges: [198.51.100.0/24]\n\
             \x20 web_ports: [80]\n\
             \x20 access_log: {{path: {}, format: combined}}\n\
             \x20 firewall: auto\n",
            log_path.display()
        ),
    );
    config
}

/// `setpriv` running the exporter with `config` under `creds`, no new
/// privileges.
fn setpriv_exporter_args(creds: &Creds, config: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "setpriv".into(),
        format!("--reuid={}", creds.uid),
        format!("--regid={}", creds.gid),
    ];
    if creds.groups.is_empty() {
        args.push("--clear-groups".into());
    } else {
        let g: Vec<String> = creds.groups.iter().map(u32::to_string).collect();
        args.push(format!("--groups={}", g.join(",")));
    }
    args.push(format!("--inh-caps={}", cap_list(&creds.ambient)));
    args.push(format!("--ambient-caps={}", cap_list(&creds.ambient)));
    args.push(format!("--bounding-set={}", cap_list(&creds.bounding)));
    args.push("--no-new-privs".into());
    args.push(BIN.into());
    args.push(format!("--config={}", config.display()));
    args.push("--web.listen-address=127.0.0.1:9502".into());
    args
}

/// The firewall collector has a verdict or failed, ICMP has sent or
/// failed, and a probe round of the site has run.
fn firewall_icmp_and_round_decided(m: &Scrape) -> bool {
    let firewall = m
        .get("badgateway_firewall_evaluation_timestamp_seconds", &[])
        .is_some()
        || m.get("badgateway_collector_success", &[("collector", "firewall")]) == Some(0.0);
    let icmp = m.has("badgateway_icmp_packet_loss_ratio")
        || m.get("badgateway_collector_success", &[("collector", "icmp")]) == Some(0.0);
    let round = m
        .get(
            "badgateway_last_round_timestamp_seconds",
            &[("site", "local")],
        )
        .is_some();
    firewall && icmp && round
}

fn success(e: &Emulated, collector: &str) -> f64 {
    e.metrics
        .get("badgateway_collector_success", &[("collector", collector)])
        .unwrap_or_else(|| panic!("no collector_success for {collector}:\n{}", e.metrics.text))
}

fn range_blocked(e: &Emulated) -> Option<f64> {
    e.metrics.get(
        "badgateway_firewall_forwarding_range_blocked",
        &[("range", "198.51.100.0/24")],
    )
}

#[test]
fn systemd_unit_credentials_are_enough_for_every_collector() {
    let creds = unit_creds();
    let e = emulate(&creds, None);
    let show = format!("{creds:?}\n{}\n{}", e.metrics.text, e.log);
    assert_eq!(success(&e, "firewall"), 1.0, "{show}");
    assert_eq!(range_blocked(&e), Some(1.0), "{show}");
    assert_eq!(success(&e, "access_log"), 1.0, "{show}");
    // Raw ICMP sockets (CAP_NET_RAW): ping_group_range is off here.
    assert_eq!(success(&e, "icmp"), 1.0, "{show}");
    assert_eq!(
        e.metrics
            .get("badgateway_icmp_packet_loss_ratio", &[("path", "origin")]),
        Some(0.0),
        "{show}"
    );
    assert_eq!(success(&e, "processes"), 1.0, "{show}");
    assert_eq!(success(&e, "connections"), 1.0, "{show}");
}

#[test]
fn without_the_units_capabilities_firewall_and_icmp_fail() {
    let creds = Creds {
        ambient: Vec::new(),
        bounding: Vec::new(),
        ..unit_creds()
    };
    let e = emulate(&creds, None);
    let show = format!("{}\n{}", e.metrics.text, e.log);
    assert_eq!(success(&e, "firewall"), 0.0, "{show}");
    assert_eq!(range_blocked(&e), None, "{show}");
    assert_eq!(success(&e, "icmp"), 0.0, "{show}");
    assert_eq!(success(&e, "access_log"), 1.0, "{show}");
}

#[test]
fn without_the_units_adm_group_the_access_log_fails() {
    let creds = Creds {
        groups: Vec::new(),
        ..unit_creds()
    };
    let e = emulate(&creds, None);
    let show = format!("{}\n{}", e.metrics.text, e.log);
    assert_eq!(success(&e, "access_log"), 0.0, "{show}");
    assert_eq!(success(&e, "firewall"), 1.0, "{show}");
}

#[test]
fn kubernetes_agent_security_context_reads_the_firewall() {
    let creds = agent_pod_creds();
    assert_eq!(creds.uid, 0, "see agent.yaml: why uid 0");
    let e = emulate(&creds, None);
    let show = format!("{creds:?}\n{}\n{}", e.metrics.text, e.log);
    assert_eq!(success(&e, "firewall"), 1.0, "{show}");
    assert_eq!(range_blocked(&e), Some(1.0), "{show}");
    // Root without CAP_DAC_OVERRIDE reads the log through supplementalGroups.
    assert_eq!(success(&e, "access_log"), 1.0, "{show}");
    assert_eq!(success(&e, "icmp"), 1.0, "{show}");
}

#[test]
fn kubernetes_agent_as_non_root_would_not_read_the_firewall() {
    // What runAsNonRoot with the same added capabilities gives: Kubernetes
    // sets no ambient capabilities, so they are gone at exec.
    let creds = Creds {
        uid: 10001,
        gid: 10001,
        ..agent_pod_creds()
    };
    let e = emulate(&creds, None);
    let show = format!("{}\n{}", e.metrics.text, e.log);
    assert_eq!(success(&e, "firewall"), 0.0, "{show}");
    assert!(
        e.log.contains("CAP_NET_ADMIN"),
        "the log says why: {}",
        e.log
    );
}

#[test]
fn kubernetes_prober_pings_without_capabilities_through_its_sysctl() {
    let deploy = k8s_object("StatefulSet", "badgateway-prober-eu-west");
    let pod = at(&deploy, "spec.template.spec");
    let container = at(pod, "containers.0");
    assert_eq!(
        seq_at(container, "securityContext.capabilities.drop"),
        &[Value::String("ALL".into())]
    );
    assert!(at(container, "securityContext.capabilities.add").is_null());
    let sysctl = seq_at(pod, "securityContext.sysctls")
        .iter()
        .find(|s| str_at(s, "name") == "net.ipv4.ping_group_range")
        .expect("the ping_group_range sysctl");
    let creds = Creds {
        uid: at(pod, "securityContext.runAsUser").as_u64().unwrap() as u32,
        gid: at(pod, "securityContext.runAsGroup").as_u64().unwrap() as u32,
        groups: Vec::new(),
        ambient: Vec::new(),
        bounding: Vec::new(),
    };
    let e = emulate(&creds, Some(str_at(sysctl, "value")));
    let show = format!("{}\n{}", e.metrics.text, e.log);
    assert_eq!(success(&e, "icmp"), 1.0, "{show}");
    assert_eq!(
        e.metrics
            .get("badgateway_icmp_packet_loss_ratio", &[("path", "origin")]),
        Some(0.0),
        "{show}"
    );
    // And the image's uid/gid are the ones the sysctl names.
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains(&format!("USER {}:{}", creds.uid, creds.gid)),
        "the image's USER is not {}:{}",
        creds.uid,
        creds.gid
    );
}
