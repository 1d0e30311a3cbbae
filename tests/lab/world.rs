// Why one file: the one deployment builder the lab's scenarios share:
// hosts, links, nginx, the agent and the probers, and the faults set on
// them.
//! One deployment of the lab, built for real: hosts as network namespaces
//! behind one router, nginx as the proxy and the origin, the origin agent,
//! probers at two vantages (and on the proxy host where a deployment asks),
//! Debian's Prometheus with the project's rules, and Alertmanager posting
//! to a webhook sink.
//!
//! ```text
//! vantage v1 192.0.2.2 ─┐                 ┌─ proxy 198.51.100.10 (nginx; its forwarding IPs)
//! vantage v2 192.0.2.66 ─┼──── router ─────┼─ origin 203.0.113.5 (nginx + a backend + the agent)
//! monitor 192.0.2.130 ──┘                 └─ (Prometheus, Alertmanager, a webhook sink)
//! ```
//!
//! Prometheus evaluates `rules/` with one test-only rewrite: every `for:`,
//! `keep_firing_for:` and range selector of minutes is divided by
//! TIME_SCALE, so a 1m `for:` becomes 3 s and a 5m window 15 s.
//! Alertmanager runs `deploy/alertmanager.yml` with its waits shortened;
//! its receivers already post to 127.0.0.1:9099, where the sink listens.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::origin::OriginServer;
use crate::common::{self, nginx_conf, Lab, Netns, Proc, ORIGIN_IP, PROXY_IP};

/// Minutes in the rules become this many times fewer: 60 s / 20 = 3 s.
pub const TIME_SCALE: u64 = 20;
pub const V2_IP: &str = "192.0.2.66";
pub const MONITOR_IP: &str = "192.0.2.130";
const PROMETHEUS: &str = "127.0.0.1:9090";
/// The causes of a failing site; `exporter` alerts are the monitoring's own.
pub const SITE_CAUSES: &str = "forwarding_ip_blocked|origin_abnormal|network_linkage|proxy";

/// What makes one deployment differ from the plain one (HTTP everywhere,
/// one proxy address forwarding from itself, ICMP answered).
pub struct Deployment {
    pub name: &'static str,
    /// Addresses on the proxy host beside PROXY_IP, in 198.51.100.0/24.
    pub proxy_extra_ips: &'static [&'static str],
    /// The address the proxy host's own connections leave from, when not
    /// PROXY_IP (so that a prober there does not use a forwarding IP).
    pub proxy_route_src: Option<&'static str>,
    /// nginx `server` blocks of the proxy; `@DIR@` is its directory, `@LAB@`
    /// the lab's.
    pub proxy_servers: String,
    /// A server certificate for www.example.com in the proxy's directory
    /// (cert.pem, key.pem), from the lab's CA (ca.pem in the lab's
    /// directory).
    pub proxy_tls: bool,
    /// The origin serves https on 443 too, with a certificate of the lab's
    /// CA.
    pub origin_tls: bool,
    /// http-level nginx config on the origin: log formats, real_ip,
    /// limit_req zones.
    pub origin_http: String,
    /// The origin's access log format: combined, or one of origin_http's.
    pub origin_log: &'static str,
    /// The site's keys for the probers, below `- name: shop` (indented by 4).
    pub site: String,
    /// The agent's keys beside sites and forwarding_ranges (indented by 2).
    pub agent: String,
    /// A third prober, on the proxy host (vantage vp), with these site keys.
    pub proxy_host_site: Option<String>,
    /// Run once everything is up, before the baseline.
    pub prepare: fn(&World),
    /// `diagnose`'s arguments after its URL, besides --agent and output.
    pub diagnose: Vec<String>,
    /// Exporter alerts that fire in this deployment when healthy, as they
    /// should (an origin the probers may not probe straight).
    pub baseline_exporter: &'static [&'static str],
}

impl Deployment {
    /// The plain deployment; others change what differs.
    pub fn plain(name: &'static str) -> Deployment {
        Deployment {
            name,
            proxy_extra_ips: &[],
            proxy_route_src: None,
            proxy_servers: proxy_server(&format!("{PROXY_IP}:80"), "http", None, ""),
            proxy_tls: false,
            origin_tls: false,
            origin_http: String::new(),
            origin_log: "combined",
            site: format!(
                "    url: http://www.example.com/healthz\n    proxy: [{PROXY_IP}]\n    origin: [{ORIGIN_IP}]\n"
            ),
            agent: "  web_ports: [80]\n  access_log: {path: @DIR@/nginx-origin/access.log, format: combined}\n"
                .into(),
            proxy_host_site: None,
            prepare: |_| {},
            diagnose: vec![
                "http://www.example.com/healthz".into(),
                "--proxy".into(),
                PROXY_IP.into(),
                "--origin".into(),
                ORIGIN_IP.into(),
            ],
            baseline_exporter: &[],
        }
    }
}

/// An nginx server on the proxy host listening on `listen` (`ssl` when
/// `scheme` is https), forwarding to the origin's port 80, from `bind`
/// when given (a variable or an address), with `extra` in its location.
pub fn proxy_server(listen: &str, scheme: &str, bind: Option<&str>, extra: &str) -> String {
    proxy_server_to(
        listen,
        scheme,
        &format!("http://{ORIGIN_IP}:80"),
        bind,
        extra,
    )
}

/// The same, forwarding to the origin's https on 443 and verifying its
/// certificate against the lab's CA, for www.example.com.
pub fn proxy_server_to_tls_origin(listen: &str, scheme: &str, extra: &str) -> String {
    let verify = "    proxy_ssl_verify on;\n    proxy_ssl_trusted_certificate @LAB@/ca.pem;\n    \
                  proxy_ssl_name www.example.com;\n    proxy_ssl_server_name on;\n";
    proxy_server_to(
        listen,
        scheme,
        &format!("https://{ORIGIN_IP}:443"),
        None,
        &format!("{verify}{extra}"),
    )
}

fn proxy_server_to(
    listen: &str,
    scheme: &str,
    upstream: &str,
    bind: Option<&str>,
    extra: &str,
) -> String {
    let ssl = if scheme == "https" {
        " ssl;\n  ssl_certificate @DIR@/cert.pem;\n  ssl_certificate_key @DIR@/key.pem"
    } else {
        ""
    };
    let bind = bind
        .map(|b| format!("    proxy_bind {b};\n"))
        .unwrap_or_default();
    format!(
        "server {{\n  listen {listen}{ssl};\n  location / {{\n    proxy_pass {upstream};\n    \
         proxy_set_header Host $host;\n    proxy_set_header X-Forwarded-For $remote_addr;\n{bind}    \
         proxy_connect_timeout 500ms;\n    proxy_read_timeout 500ms;\n    proxy_send_timeout 500ms;\n{extra}  }}\n}}\n"
    )
}

pub struct World {
    pub name: &'static str,
    pub lab: Lab,
    pub dir: PathBuf,
    pub backend: OriginServer,
    pub origin_nginx: Option<Proc>,
    origin_conf: String,
    monitor: usize,
    v2: usize,
    pub sink: Arc<Mutex<Vec<Value>>>,
    diagnose_args: Vec<String>,
    pub proxy_nginx: Option<Proc>,
    proxy_conf: PathBuf,
    ca: Option<common::tls::TestCa>,
    /// Each prober's vantage and /metrics address.
    probers: Vec<(&'static str, String)>,
    /// Connections held open by a fault, closed by dropping the sender.
    pub held: Vec<std::sync::mpsc::Sender<()>>,
    /// Processes a fault started (CPU burners, visitors' load).
    pub background: Vec<Proc>,
}

impl World {
    pub fn monitor(&self) -> &Netns {
        &self.lab.extra[self.monitor]
    }

    pub fn v2(&self) -> &Netns {
        &self.lab.extra[self.v2]
    }

    pub fn query(&self, promql: &str) -> Vec<Value> {
        let q: String = url::form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let (status, body) = self
            .monitor()
            .http_get(
                PROMETHEUS.parse().unwrap(),
                &format!("/api/v1/query?query={q}"),
            )
            .unwrap_or((0, String::new()));
        if status != 200 {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// (cause, reason) of every alert in `state` (a regex) whose cause
    /// matches `causes` (a regex).
    pub fn alerts(&self, state: &str, causes: &str) -> BTreeSet<(String, String)> {
        self.query(&format!(
            "ALERTS{{alertstate=~\"{state}\",cause=~\"{causes}\"}}"
        ))
        .iter()
        .map(|r| {
            let m = &r["metric"];
            (
                m["cause"].as_str().unwrap_or("").to_owned(),
                m["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
    }

    /// Every alert firing now, of any cause.
    pub fn firing(&self) -> BTreeSet<(String, String)> {
        self.alerts("firing", ".+")
    }

    pub fn start_origin_nginx(&mut self) {
        let dir = self.dir.join("nginx-origin");
        let conf = nginx_conf(&dir, &self.origin_conf);
        if !dir.join("extra.conf").exists() {
            fs::write(dir.join("extra.conf"), "").unwrap();
        }
        let p = self.lab.origin.spawn_nginx(&dir, &conf);
        self.origin_nginx = Some(p);
        self.lab
            .origin
            .wait_listening(format!("{ORIGIN_IP}:80").parse().unwrap());
    }

    pub fn start_proxy_nginx(&mut self) {
        let dir = self.dir.join("nginx-proxy");
        let p = self.lab.proxy.spawn_nginx(&dir, &self.proxy_conf);
        self.proxy_nginx = Some(p);
        let listen = fs::read_to_string(&self.proxy_conf).unwrap_or_default();
        let port = if listen.contains(":443 ssl") { 443 } else { 80 };
        self.lab
            .proxy
            .wait_listening(format!("{PROXY_IP}:{port}").parse().unwrap());
    }

    pub fn stop_proxy_nginx(&mut self) {
        if let Some(mut p) = self.proxy_nginx.take() {
            p.stop();
        }
    }

    /// Put `snippet` into the proxy's location and reload its nginx.
    pub fn proxy_extra(&self, snippet: &str) {
        let dir = self.dir.join("nginx-proxy");
        fs::write(dir.join("extra.conf"), snippet).unwrap();
        self.lab.proxy.exec(&[
            "nginx",
            "-e",
            &dir.join("error.log").to_string_lossy(),
            "-p",
            &dir.to_string_lossy(),
            "-c",
            &self.proxy_conf.to_string_lossy(),
            "-s",
            "reload",
        ]);
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Give the origin's https a certificate of the lab's CA, valid or
    /// expired, and reload it.
    pub fn origin_certificate(&self, expired: bool) {
        let dir = self.dir.join("nginx-origin");
        self.ca
            .as_ref()
            .expect("a deployment with origin_tls")
            .leaf(&dir, "www.example.com", expired);
        self.origin_extra(&fs::read_to_string(dir.join("extra.conf")).unwrap_or_default());
    }

    /// Put `snippet` into the origin server block and reload nginx.
    pub fn origin_extra(&self, snippet: &str) {
        let dir = self.dir.join("nginx-origin");
        fs::write(dir.join("extra.conf"), snippet).unwrap();
        let conf = dir.join("nginx.conf");
        self.lab.origin.exec(&[
            "nginx",
            "-e",
            &dir.join("error.log").to_string_lossy(),
            "-p",
            &dir.to_string_lossy(),
            "-c",
            &conf.to_string_lossy(),
            "-s",
            "reload",
        ]);
        std::thread::sleep(Duration::from_millis(500));
    }

    /// `diagnose` from the first vantage, with the origin's agent: the
    /// cause it names ("healthy" when none), and its whole answer.
    pub fn diagnose(&self) -> (String, String) {
        let agent = format!("http://{ORIGIN_IP}:9502/metrics");
        let mut args: Vec<&str> = vec![env!("CARGO_BIN_EXE_badgateway-exporter"), "diagnose"];
        args.extend(self.diagnose_args.iter().map(String::as_str));
        args.extend([
            "--timeout",
            "1s",
            "--count",
            "30",
            "--requests",
            "30",
            "--agent",
            &agent,
            "--output",
            "json",
        ]);
        let out = self.lab.vantage.output(&args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let cause = match &v["cause"] {
            Value::String(c) => c.clone(),
            Value::Null if v["healthy"] == true => "healthy".into(),
            _ => format!("no cause ({})", String::from_utf8_lossy(&out.stderr).trim()),
        };
        let summary = format!(
            "findings {} unexplained {} notes {} targets {}",
            v["findings"], v["unexplained"], v["notes"], v["targets"]
        );
        (cause, summary)
    }

    /// Record what every prober and the agent export, twice
    /// `CAPTURE_SPAN` apart, under `into/<deployment>--<scenario>--<vantage>/`
    /// (one directory per vantage, each with the agent's): the recorded
    /// rounds the verdict parity test judges with the crate and with the
    /// rules. `expected` is the scenario's (cause, reason).
    pub fn capture(&self, into: &Path, scenario: &str, expected: (&str, &str)) {
        let scrape = |addr: &str| -> Option<String> {
            let (status, body) = self
                .monitor()
                .http_get(addr.parse().unwrap(), "/metrics")
                .ok()?;
            (status == 200).then(|| keep_own_series(&body))
        };
        let agent_addr = format!("{ORIGIN_IP}:9502");
        let take = || {
            let probers: Vec<Option<String>> =
                self.probers.iter().map(|(_, a)| scrape(a)).collect();
            (probers, scrape(&agent_addr))
        };
        let started = std::time::SystemTime::now();
        let before = take();
        std::thread::sleep(CAPTURE_SPAN);
        let after = take();
        let seconds = started.elapsed().unwrap_or(CAPTURE_SPAN).as_secs_f64();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for (i, (vantage, _)) in self.probers.iter().enumerate() {
            let (Some(b), Some(a)) = (&before.0[i], &after.0[i]) else {
                continue;
            };
            let dir = into.join(format!("{}--{}--{vantage}", self.name, slug(scenario)));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("prober.before.prom"), b).unwrap();
            fs::write(dir.join("prober.after.prom"), a).unwrap();
            if let (Some(b), Some(a)) = (&before.1, &after.1) {
                fs::write(dir.join("agent.before.prom"), b).unwrap();
                fs::write(dir.join("agent.after.prom"), a).unwrap();
            }
            fs::write(
                dir.join("meta.yml"),
                format!(
                    "deployment: {}\nscenario: {scenario:?}\nvantage: {vantage}\nsite: shop\n\
                     seconds: {seconds:.3}\ncaptured_at: {at}\nexpected: {{cause: {}, reason: {}}}\n",
                    self.name, expected.0, expected.1
                ),
            )
            .unwrap();
        }
    }

    /// The last lines of every log of the world.
    pub fn logs(&self) -> String {
        [
            "agent.log",
            "prober0.log",
            "prober1.log",
            "proberp.log",
            "prometheus.log",
            "alertmanager.log",
            "nginx-proxy/error.log",
            "nginx-origin/error.log",
        ]
        .iter()
        .filter_map(|f| {
            let text = fs::read_to_string(self.dir.join(f)).ok()?;
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            Some(format!(
                "--- {} {f}\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ))
        })
        .collect::<Vec<_>>()
        .join("\n")
    }
}

/// How far apart the two scrapes of a capture are: a few rounds.
pub const CAPTURE_SPAN: Duration = Duration::from_secs(8);

/// The exporter's own families only (no HELP lines: the fixtures stay
/// small), in the text format.
fn keep_own_series(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("badgateway_") || l.starts_with("# TYPE badgateway_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A scenario's name as a directory name.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    s.trim_matches('-')
        .chars()
        .take(60)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// Build and start everything of `d`; returns when Prometheus and
/// Alertmanager listen.
pub fn build(d: &Deployment) -> World {
    let mut lab = Lab::new();
    let v2 = lab.add_host("w", "192.0.2.65/26", &format!("{V2_IP}/26"));
    let monitor = lab.add_host("m", "192.0.2.129/26", &format!("{MONITOR_IP}/26"));
    let dir = lab.dir.path().to_owned();
    let backend = OriginServer::start(Some(&lab.origin.name), "127.0.0.1:8081".parse().unwrap());
    address_proxy_host(&lab, d);
    let ca = (d.proxy_tls || d.origin_tls).then(|| common::tls::TestCa::new(&dir));
    let proxy_conf = proxy_conf(&lab, d, ca.as_ref());
    let sink = sink(&lab.extra[monitor]);
    let origin_conf = origin_conf(&dir, d, ca.as_ref());
    let mut w = World {
        name: d.name,
        lab,
        dir: dir.clone(),
        backend,
        origin_nginx: None,
        origin_conf,
        monitor,
        v2,
        sink,
        diagnose_args: d
            .diagnose
            .iter()
            .map(|a| a.replace("@DIR@", &dir.to_string_lossy()))
            .collect(),
        held: Vec::new(),
        background: Vec::new(),
        proxy_nginx: None,
        proxy_conf,
        ca,
        probers: prober_addresses(d),
    };
    w.start_proxy_nginx();
    w.start_origin_nginx();
    start_agent(&mut w, d);
    start_probers(&mut w, d);
    start_monitoring(&mut w, d);
    w
}

/// The proxy host's extra addresses, and the source of its own
/// connections where the deployment moves it.
fn address_proxy_host(lab: &Lab, d: &Deployment) {
    for ip in d.proxy_extra_ips {
        lab.proxy
            .exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    }
    if let Some(src) = d.proxy_route_src {
        lab.proxy.exec(&[
            "ip",
            "route",
            "replace",
            "default",
            "via",
            "198.51.100.1",
            "src",
            src,
        ]);
    }
}

/// Where the origin's nginx passes every request: the backend.
const ORIGIN_LOCATION: &str =
    "location / { proxy_pass http://127.0.0.1:8081; proxy_set_header Host $host; }";

/// The origin's nginx configuration (http, https too where the deployment
/// asks, with a certificate of the lab's CA), in `dir`/nginx-origin.
fn origin_conf(dir: &Path, d: &Deployment, ca: Option<&common::tls::TestCa>) -> String {
    let origin_dir = dir.join("nginx-origin");
    fs::create_dir_all(&origin_dir).unwrap();
    let tls_listen = if d.origin_tls {
        ca.expect("a CA")
            .leaf(&origin_dir, "www.example.com", false);
        format!(
            "  listen {ORIGIN_IP}:443 ssl;\n  ssl_certificate {0}/cert.pem;\n  ssl_certificate_key {0}/key.pem;\n",
            origin_dir.display()
        )
    } else {
        String::new()
    };
    format!(
        "{}\nserver {{\n  listen {ORIGIN_IP}:80;\n{tls_listen}  access_log {1}/access.log {2};\n  include {1}/extra.conf;\n  \
         {ORIGIN_LOCATION}\n}}\n",
        d.origin_http,
        origin_dir.display(),
        d.origin_log,
    )
}

/// Each prober's vantage and /metrics address: the two vantages, and the
/// proxy host where the deployment runs a prober there.
fn prober_addresses(d: &Deployment) -> Vec<(&'static str, String)> {
    [
        ("v1", "192.0.2.2:9502".to_owned()),
        ("v2", format!("{V2_IP}:9502")),
    ]
    .into_iter()
    .chain(
        d.proxy_host_site
            .is_some()
            .then(|| ("vp", format!("{PROXY_IP}:9502"))),
    )
    .collect()
}

/// The proxy's nginx configuration, and its certificate where it serves
/// https.
fn proxy_conf(lab: &Lab, d: &Deployment, ca: Option<&common::tls::TestCa>) -> PathBuf {
    let dir = lab.dir.path().join("nginx-proxy");
    fs::create_dir_all(&dir).unwrap();
    if d.proxy_tls {
        ca.expect("a CA").leaf(&dir, "www.example.com", false);
    }
    if !dir.join("extra.conf").exists() {
        fs::write(dir.join("extra.conf"), "").unwrap();
    }
    let servers = d
        .proxy_servers
        .replace("@DIR@", &dir.to_string_lossy())
        .replace("@LAB@", &lab.dir.path().to_string_lossy());
    nginx_conf(&dir, &servers)
}

fn start_agent(w: &mut World, d: &Deployment) {
    let agent = w.dir.join("agent.yml");
    fs::write(
        &agent,
        format!(
            "agent:\n  sites: [shop]\n  forwarding_ranges: [198.51.100.0/24]\n  processes: [nginx]\n  \
             interfaces: {{eth0: {{capacity: 100Mbit}}}}\n  firewall: auto\n{}",
            d.agent.replace("@DIR@", &w.dir.to_string_lossy())
        ),
    )
    .unwrap();
    let p = spawn_exporter(
        &w.lab.origin,
        &agent,
        &format!("{ORIGIN_IP}:9502"),
        &w.dir.join("agent.log"),
    );
    w.lab.procs.push(p);
}

/// The exporter on host `ns` with `config`, listening on `listen`.
fn spawn_exporter(ns: &Netns, config: &Path, listen: &str, log: &Path) -> Proc {
    ns.spawn(
        &[
            env!("CARGO_BIN_EXE_badgateway-exporter"),
            "--config",
            &config.to_string_lossy(),
            "--web.listen-address",
            listen,
        ],
        log,
    )
}

fn prober_config(site: &str, dir: &Path) -> String {
    format!(
        "probe:\n  interval: 1s\n  timeout: 1s\n  icmp: {{count: 10, interval: 20ms}}\n  tcp: {{count: 10, interval: 20ms}}\n\
         sites:\n  - name: shop\n{}",
        site.replace("@DIR@", &dir.to_string_lossy())
    )
}

fn start_probers(w: &mut World, d: &Deployment) {
    let prober = w.dir.join("prober.yml");
    fs::write(&prober, prober_config(&d.site, &w.dir)).unwrap();
    for (i, ns) in [&w.lab.vantage, &w.lab.extra[w.v2]].into_iter().enumerate() {
        let log = w.dir.join(format!("prober{i}.log"));
        let p = spawn_exporter(ns, &prober, "0.0.0.0:9502", &log);
        w.lab.procs.push(p);
    }
    if let Some(site) = &d.proxy_host_site {
        let path = w.dir.join("prober-proxy-host.yml");
        fs::write(&path, prober_config(site, &w.dir)).unwrap();
        let listen = format!("{PROXY_IP}:9502");
        let p = spawn_exporter(&w.lab.proxy, &path, &listen, &w.dir.join("proberp.log"));
        w.lab.procs.push(p);
    }
}

fn start_monitoring(w: &mut World, d: &Deployment) {
    let dir = &w.dir;
    // Every rule file of rules/, its durations scaled to the lab's time.
    let rules = dir.join("rules");
    fs::create_dir_all(&rules).unwrap();
    for f in common::paths::rule_files() {
        let original = fs::read_to_string(&f).unwrap();
        fs::write(rules.join(f.file_name().unwrap()), scale_rules(&original)).unwrap();
    }
    let rules = rules.join("*.rules.yml");
    let proxy_host = if d.proxy_host_site.is_some() {
        format!("  - targets: ['{PROXY_IP}:9502']\n    labels: {{vantage: vp}}\n")
    } else {
        String::new()
    };
    let prom = dir.join("prometheus.yml");
    fs::write(
        &prom,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}}\n\
             rule_files: [{}]\n\
             alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:9093']}}]}}]}}\n\
             scrape_configs:\n\
             - job_name: badgateway\n  static_configs:\n  - targets: ['192.0.2.2:9502']\n    labels: {{vantage: v1}}\n  \
             - targets: ['{V2_IP}:9502']\n    labels: {{vantage: v2}}\n{proxy_host}\
             - job_name: badgateway-agent\n  static_configs:\n  - targets: ['{ORIGIN_IP}:9502']\n",
            rules.display()
        ),
    )
    .unwrap();
    let am = dir.join("alertmanager.yml");
    let am_text = fs::read_to_string("deploy/alertmanager.yml")
        .unwrap()
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s");
    fs::write(&am, am_text).unwrap();
    let am_bin = if which("prometheus-alertmanager") {
        "prometheus-alertmanager"
    } else {
        "alertmanager"
    };
    let monitor = &w.lab.extra[w.monitor];
    let p = monitor.spawn(
        &[
            am_bin,
            &format!("--config.file={}", am.display()),
            &format!("--storage.path={}", dir.join("am").display()),
            "--web.listen-address=127.0.0.1:9093",
            "--cluster.listen-address=",
        ],
        &dir.join("alertmanager.log"),
    );
    w.lab.procs.push(p);
    let p = monitor.spawn(
        &[
            "prometheus",
            &format!("--config.file={}", prom.display()),
            &format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            &format!("--web.listen-address={PROMETHEUS}"),
        ],
        &dir.join("prometheus.log"),
    );
    w.lab.procs.push(p);
    monitor.wait_listening(PROMETHEUS.parse().unwrap());
    monitor.wait_listening("127.0.0.1:9093".parse().unwrap());
}

fn which(bin: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Rewrite durations in the rules for the lab (see the module doc).
pub fn scale_rules(text: &str) -> String {
    let scale = |n: u64, unit: &str| -> String {
        let secs = match unit {
            "m" => n * 60,
            "h" => n * 3600,
            _ => n,
        };
        format!("{}s", (secs / TIME_SCALE).max(1))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut l = line.to_owned();
        for key in ["for: ", "keep_firing_for: "] {
            if let Some(rest) = l.trim_start().strip_prefix(key) {
                let rest = rest.trim();
                let (n, unit) = rest.split_at(rest.len() - 1);
                if let Ok(n) = n.parse::<u64>() {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    l = format!("{indent}{key}{}", scale(n, unit));
                }
            }
        }
        // Range selectors of minutes: [5m] -> [15s]. Days stay.
        let mut scaled = String::new();
        let mut rest = l.as_str();
        while let Some(open) = rest.find('[') {
            scaled.push_str(&rest[..open + 1]);
            rest = &rest[open + 1..];
            let close = rest.find(']').unwrap_or(0);
            let inner = &rest[..close];
            match inner.strip_suffix('m').and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => scaled.push_str(&scale(n, "m")),
                None => scaled.push_str(inner),
            }
            rest = &rest[close..];
        }
        scaled.push_str(rest);
        out.push_str(&scaled);
        out.push('\n');
    }
    out
}

/// A webhook sink: keeps every body posted to it.
fn sink(monitor: &Netns) -> Arc<Mutex<Vec<Value>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&got);
    let path = format!("/var/run/netns/{}", monitor.name);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        common::enter(&path);
        let listener = TcpListener::bind("127.0.0.1:9099").expect("sink");
        ready_tx.send(()).expect("ready");
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            // Read the head, then Content-Length bytes of body.
            let body = loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
                let text = String::from_utf8_lossy(&raw).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body.to_owned());
                    }
                }
            };
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Some(b) = body.and_then(|b| serde_json::from_str(&b).ok()) {
                keep.lock().unwrap().push(b);
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(5))
        .expect("sink started");
    got
}

/// Wait until `ready` holds, polling; `None` after `within`.
pub fn wait_for<T>(within: Duration, ready: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    common::wait::poll(within, Duration::from_millis(250), ready)
}

/// The dashboard's panels, by the cause of their row: (row cause, panel
/// title, its queries with the variables filled for the lab).
pub fn dashboard_panels() -> Vec<(String, String, Vec<String>)> {
    let d: Value =
        serde_json::from_str(&fs::read_to_string("grafana/badgateway.json").unwrap()).unwrap();
    let mut row = String::new();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            let title = p["title"].as_str().unwrap_or("");
            row = [
                "forwarding_ip_blocked",
                "origin_abnormal",
                "network_linkage",
            ]
            .into_iter()
            .find(|c| title.contains(c))
            .unwrap_or("")
            .to_owned();
            continue;
        }
        let exprs: Vec<String> = p["targets"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t["expr"].as_str())
                    .map(|e| {
                        e.replace("${site:regex}", "shop")
                            .replace("$site", "shop")
                            .replace("$vantage", ".*")
                            .replace("$__rate_interval", "15s")
                            .replace("$__interval", "5s")
                            .replace("$__range", "5m")
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !row.is_empty() && !exprs.is_empty() {
            out.push((
                row.clone(),
                p["title"].as_str().unwrap_or("").to_owned(),
                exprs,
            ));
        }
    }
    out
}

/// Run `iptables OP RULE...` in `ns`.
pub fn iptables(ns: &Netns, op: &str, rule: &str) {
    let mut args = vec!["iptables", op];
    args.extend(rule.split_whitespace());
    ns.exec(&args);
}

/// Hold `n` idle connections from the second vantage to the origin's web
/// port (0 closes them).
pub fn hold_connections(w: &mut World, n: usize) {
    w.held.clear();
    if n == 0 {
        return;
    }
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let path = format!("/var/run/netns/{}", w.v2().name);
    std::thread::spawn(move || {
        common::enter(&path);
        let conns: Vec<_> = (0..n)
            .filter_map(|_| std::net::TcpStream::connect((ORIGIN_IP, 80)).ok())
            .collect();
        ready_tx.send(conns.len()).unwrap();
        let _ = stopped.recv();
    });
    let opened = ready.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(opened, n);
    w.held.push(stop);
}

/// Busy loops on every core, at the lowest priority so the lab keeps
/// running: the kernel still counts nice time as busy.
pub fn burn_cpu(w: &mut World, on: bool) {
    w.background.clear();
    if on {
        for i in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
            let p = w.lab.origin.spawn(
                &["nice", "-n", "19", "sh", "-c", "while :; do :; done"],
                &w.dir.join(format!("burn{i}.log")),
            );
            w.background.push(p);
        }
    }
}

/// A steady stream of requests through the proxy address `to` from the
/// second vantage (`per_second`), as visitors would send: 0 stops it.
pub fn visitors(w: &mut World, to: &str, per_second: u32) {
    w.background.clear();
    if per_second == 0 {
        return;
    }
    let url = format!("http://{to}/healthz");
    let script = format!(
        "while :; do curl -s -o /dev/null -m 1 -H 'Host: www.example.com' {url} & sleep {}; done",
        1.0 / f64::from(per_second)
    );
    let p = w
        .v2()
        .spawn(&["sh", "-c", &script], &w.dir.join("visitors.log"));
    w.background.push(p);
}
