//! The end-to-end lab: every cause of a 502 injected for real, the right
//! alert fires, and alerts of other causes stay quiet.
//!
//! Hosts, each a network namespace behind one router, documentation
//! addresses only:
//!
//! ```text
//! vantage v1 192.0.2.2 ─┐                 ┌─ proxy 198.51.100.10 (nginx; its forwarding IP)
//! vantage v2 192.0.2.66 ─┼──── router ─────┼─ origin 203.0.113.5 (nginx + a backend + the agent)
//! monitor 192.0.2.130 ──┘                 └─ (Prometheus, Alertmanager, a webhook sink)
//! ```
//!
//! Prometheus scrapes both probers (label `vantage`) and the agent, and
//! evaluates the project's own `rules/` with one test-only rewrite: every
//! `for:` and every range selector of minutes is divided by TIME_SCALE, so
//! a 1m `for:` becomes 3 s and a 5m window 15 s. Alertmanager runs
//! `deploy/alertmanager.yml` with its waits shortened; its receivers already
//! post to 127.0.0.1:9099, where the sink listens.
//!
//! One test runs the scenarios in order; each is injected, its alert
//! awaited (bounded), removed, and recovery awaited. A table is printed at
//! the end and any miss fails the run.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::origin::OriginServer;
use common::{nginx_conf, Lab, Netns, Proc, ORIGIN_IP, PROXY_IP};
use serde_json::Value;

/// Minutes in the rules become this many times fewer seconds... per minute:
/// 60 s / 20 = 3 s.
const TIME_SCALE: u64 = 20;
const V2_IP: &str = "192.0.2.66";
const MONITOR_IP: &str = "192.0.2.130";
const PROMETHEUS: &str = "127.0.0.1:9090";
const CAUSES: &str = "forwarding_ip_blocked|origin_abnormal|network_linkage";

/// Rewrite durations in the rules for the lab (see the module doc).
fn scale_rules(text: &str) -> String {
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
        if let Some(rest) = l.trim_start().strip_prefix("for: ") {
            let rest = rest.trim();
            let (n, unit) = rest.split_at(rest.len() - 1);
            if let Ok(n) = n.parse::<u64>() {
                let indent = &line[..line.len() - line.trim_start().len()];
                l = format!("{indent}for: {}", scale(n, unit));
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

struct World {
    lab: Lab,
    dir: PathBuf,
    backend: OriginServer,
    origin_nginx: Option<Proc>,
    monitor: usize,
    v2: usize,
    sink: Arc<Mutex<Vec<Value>>>,
}

impl World {
    fn monitor(&self) -> &Netns {
        &self.lab.extra[self.monitor]
    }
    fn v2(&self) -> &Netns {
        &self.lab.extra[self.v2]
    }

    fn query(&self, promql: &str) -> Vec<Value> {
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

    /// (cause, reason) of every product alert firing now.
    fn firing(&self) -> BTreeSet<(String, String)> {
        self.alerts("firing")
    }

    /// (cause, reason) of every product alert in `state` (a regex).
    fn alerts(&self, state: &str) -> BTreeSet<(String, String)> {
        self.query(&format!(
            "ALERTS{{alertstate=~\"{state}\",cause=~\"{CAUSES}\"}}"
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

    fn start_origin_nginx(&mut self) {
        let dir = self.dir.join("nginx-origin");
        let conf = nginx_conf(
            &dir,
            &format!(
                "server {{\n  listen {ORIGIN_IP}:80;\n  access_log {0}/access.log combined;\n  include {0}/extra.conf;\n  \
                 location / {{ proxy_pass http://127.0.0.1:8081; proxy_set_header Host $host; }}\n}}\n",
                dir.display()
            ),
        );
        if !dir.join("extra.conf").exists() {
            fs::write(dir.join("extra.conf"), "").unwrap();
        }
        let p = self.lab.origin.spawn_nginx(&dir, &conf);
        self.origin_nginx = Some(p);
        self.lab
            .origin
            .wait_listening(format!("{ORIGIN_IP}:80").parse().unwrap());
    }

    fn origin_extra(&self, snippet: &str) {
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
}

fn build() -> World {
    let mut lab = Lab::new();
    let v2 = lab.add_host("w", "192.0.2.65/26", &format!("{V2_IP}/26"));
    let monitor = lab.add_host("m", "192.0.2.129/26", &format!("{MONITOR_IP}/26"));
    let dir = lab.dir.path().to_owned();
    let backend = OriginServer::start(Some(&lab.origin.name), "127.0.0.1:8081".parse().unwrap());
    lab.start_proxy_nginx("500ms");
    let sink = sink(&lab.extra[monitor]);
    let mut w = World {
        lab,
        dir: dir.clone(),
        backend,
        origin_nginx: None,
        monitor,
        v2,
        sink,
    };
    w.start_origin_nginx();

    // The agent on the origin.
    let agent = dir.join("agent.yml");
    fs::write(
        &agent,
        format!(
            "agent:\n  sites: [shop]\n  forwarding_ranges: [198.51.100.0/24]\n  web_ports: [80]\n  processes: [nginx]\n  \
             interfaces: {{eth0: {{capacity: 100Mbit}}}}\n  access_log: {{path: {}/nginx-origin/access.log, format: combined}}\n  firewall: auto\n",
            dir.display()
        ),
    )
    .unwrap();
    let p = w.lab.origin.spawn(
        &[
            env!("CARGO_BIN_EXE_badgateway-exporter"),
            "--config",
            &agent.to_string_lossy(),
            "--web.listen-address",
            &format!("{ORIGIN_IP}:9502"),
        ],
        &dir.join("agent.log"),
    );
    w.lab.procs.push(p);

    // A prober on each vantage.
    let prober = dir.join("prober.yml");
    fs::write(
        &prober,
        format!(
            "probe:\n  interval: 1s\n  timeout: 1s\n  icmp: {{count: 10, interval: 20ms}}\nsites:\n  - name: shop\n    \
             url: http://www.example.com/healthz\n    proxy: [{PROXY_IP}]\n    origin: [{ORIGIN_IP}]\n"
        ),
    )
    .unwrap();
    for (i, ns) in [&w.lab.vantage, &w.lab.extra[w.v2]].into_iter().enumerate() {
        let p = ns.spawn(
            &[
                env!("CARGO_BIN_EXE_badgateway-exporter"),
                "--config",
                &prober.to_string_lossy(),
                "--web.listen-address",
                "0.0.0.0:9502",
            ],
            &dir.join(format!("prober{i}.log")),
        );
        w.lab.procs.push(p);
    }

    // Prometheus with the scaled rules, and Alertmanager.
    let rules = dir.join("rules.yml");
    let original = fs::read_to_string("rules/badgateway.rules.yml").unwrap();
    fs::write(&rules, scale_rules(&original)).unwrap();
    let prom = dir.join("prometheus.yml");
    fs::write(
        &prom,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}}\n\
             rule_files: [{}]\n\
             alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:9093']}}]}}]}}\n\
             scrape_configs:\n\
             - job_name: badgateway\n  static_configs:\n  - targets: ['192.0.2.2:9502']\n    labels: {{vantage: v1}}\n  \
             - targets: ['{V2_IP}:9502']\n    labels: {{vantage: v2}}\n\
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
    w
}

fn which(bin: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Wait until `ready` holds, polling; `None` after `within`.
fn wait_for<T>(within: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(t) = ready() {
            return Some((t, start.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// The dashboard's panels, by the cause of their row: (row cause, panel
/// title, its queries with the variables filled for the lab).
fn dashboard_panels() -> Vec<(String, String, Vec<String>)> {
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

struct Outcome {
    name: &'static str,
    expected: String,
    fired: String,
    seconds: Option<f64>,
    /// The cause `diagnose` named from the first vantage.
    diagnosed: String,
    problems: Vec<String>,
}

/// `diagnose` from the first vantage, with the origin's agent: the cause
/// it names ("healthy" when none).
fn diagnose(w: &World) -> String {
    let out = w.lab.vantage.output(&[
        env!("CARGO_BIN_EXE_badgateway-exporter"),
        "diagnose",
        "http://www.example.com/healthz",
        "--origin",
        ORIGIN_IP,
        "--proxy",
        PROXY_IP,
        "--timeout",
        "1s",
        "--count",
        "30",
        "--agent",
        &format!("http://{ORIGIN_IP}:9502/metrics"),
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    match &v["cause"] {
        Value::String(c) => c.clone(),
        Value::Null if v["healthy"] == true => "healthy".into(),
        _ => format!("no cause ({})", String::from_utf8_lossy(&out.stderr).trim()),
    }
}

type Step = Box<dyn Fn(&mut World)>;

struct Scenario {
    name: &'static str,
    cause: &'static str,
    /// What `diagnose` from the first vantage names: the same cause, except
    /// where one vantage cannot see it (a failure from another vantage).
    diagnose: Option<&'static str>,
    reason: &'static str,
    inject: Step,
    remove: Step,
    within: Duration,
}

fn scenario(
    name: &'static str,
    cause: &'static str,
    reason: &'static str,
    within: u64,
    inject: impl Fn(&mut World) + 'static,
    remove: impl Fn(&mut World) + 'static,
) -> Scenario {
    Scenario {
        name,
        cause,
        diagnose: Some(cause),
        reason,
        inject: Box::new(inject),
        remove: Box::new(remove),
        within: Duration::from_secs(within),
    }
}

fn iptables(ns: &Netns, op: &str, rule: &str) {
    let mut args = vec!["iptables", op];
    args.extend(rule.split_whitespace());
    ns.exec(&args);
}

fn scenarios() -> Vec<Scenario> {
    const DROP: &str = "INPUT -s 198.51.100.10 -p tcp --dport 80 -j DROP";
    const LIMIT: &str = "INPUT -s 198.51.100.0/24 -p tcp --dport 80 -m hashlimit --hashlimit-above 2/minute --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name lab -j DROP";
    const LOSS: &str =
        "FORWARD -d 198.51.100.10 -m statistic --mode random --probability 0.3 -j DROP";
    const PARTIAL: &str = "FORWARD -s 192.0.2.66 -d 198.51.100.10 -j DROP";
    vec![
        scenario(
            "forwarding IP dropped (iptables)",
            "forwarding_ip_blocked",
            "firewall_blocks_forwarding_range",
            40,
            |w| iptables(&w.lab.origin, "-A", DROP),
            |w| iptables(&w.lab.origin, "-D", DROP),
        ),
        scenario(
            "forwarding IP rejected (nftables)",
            "forwarding_ip_blocked",
            "proxy_fails_origin_ok",
            40,
            |w| {
                w.lab.origin.exec(&["nft", "add", "table", "inet", "lab"]);
                w.lab.origin.exec(&[
                    "nft",
                    "add chain inet lab input { type filter hook input priority 0 ; }",
                ]);
                w.lab.origin.exec(&["nft", "add rule inet lab input ip saddr 198.51.100.10 tcp dport 80 reject with tcp reset"]);
            },
            |w| {
                w.lab
                    .origin
                    .exec(&["nft", "delete", "table", "inet", "lab"]);
            },
        ),
        scenario(
            "forwarding IP rate-limited (hashlimit)",
            "forwarding_ip_blocked",
            "forwarding_ip_rate_limited",
            60,
            |w| iptables(&w.lab.origin, "-A", LIMIT),
            |w| iptables(&w.lab.origin, "-D", LIMIT),
        ),
        scenario(
            "forwarding IP answered 429 (nginx)",
            "forwarding_ip_blocked",
            "forwarding_ip_rate_limited",
            60,
            |w| w.origin_extra("if ($remote_addr = 198.51.100.10) { return 429; }\n"),
            |w| w.origin_extra(""),
        ),
        scenario(
            "origin web server stopped",
            "origin_abnormal",
            "web_service_down",
            40,
            |w| {
                if let Some(mut p) = w.origin_nginx.take() {
                    p.stop();
                }
            },
            |w| w.start_origin_nginx(),
        ),
        scenario(
            "origin answering 500",
            "origin_abnormal",
            "origin_http_errors",
            40,
            |w| w.backend.set(500, Duration::ZERO),
            |w| w.backend.set(200, Duration::ZERO),
        ),
        scenario(
            "origin slower than the proxy waits (504)",
            "origin_abnormal",
            "origin_slow",
            40,
            |w| w.backend.set(200, Duration::from_millis(800)),
            |w| w.backend.set(200, Duration::ZERO),
        ),
        scenario(
            "origin link down",
            "origin_abnormal",
            "origin_unreachable",
            40,
            |w| {
                w.lab.origin.exec(&["ip", "link", "set", "eth0", "down"]);
            },
            |w| {
                w.lab.origin.exec(&["ip", "link", "set", "eth0", "up"]);
                w.lab
                    .origin
                    .exec(&["ip", "route", "replace", "default", "via", "203.0.113.1"]);
            },
        ),
        scenario(
            "origin exposed (connections from outside the ranges)",
            "origin_abnormal",
            "origin_exposed",
            60,
            |w| hold_connections(w, 60),
            |w| hold_connections(w, 0),
        ),
        scenario(
            "origin CPU saturated",
            "origin_abnormal",
            "cpu_saturated",
            90,
            |w| burn_cpu(w, true),
            |w| burn_cpu(w, false),
        ),
        scenario(
            "30% packet loss on the proxy path",
            "network_linkage",
            "packet_loss",
            60,
            |w| iptables(&w.lab.router, "-A", LOSS),
            |w| iptables(&w.lab.router, "-D", LOSS),
        ),
        Scenario {
            // Seen from the first vantage, all is well.
            diagnose: None,
            ..scenario(
                "proxy lost from one vantage of two",
                "network_linkage",
                "partial_vantage_failure",
                40,
                |w| iptables(&w.lab.router, "-A", PARTIAL),
                |w| iptables(&w.lab.router, "-D", PARTIAL),
            )
        },
    ]
}

thread_local! {
    static HELD: std::cell::RefCell<Vec<std::sync::mpsc::Sender<()>>> = const { std::cell::RefCell::new(Vec::new()) };
    static BURNERS: std::cell::RefCell<Vec<Proc>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Hold `n` idle connections from the second vantage to the origin's web
/// port (0 closes them).
fn hold_connections(w: &mut World, n: usize) {
    HELD.with(|h| h.borrow_mut().clear());
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
    HELD.with(|h| h.borrow_mut().push(stop));
}

/// Busy loops on every core, at the lowest priority so the lab keeps
/// running: the kernel still counts nice time as busy.
fn burn_cpu(w: &mut World, on: bool) {
    BURNERS.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        if on {
            for i in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
                b.push(w.lab.origin.spawn(
                    &["nice", "-n", "19", "sh", "-c", "while :; do :; done"],
                    &w.dir.join(format!("burn{i}.log")),
                ));
            }
        }
    });
}

#[test]
fn every_cause_fires_its_alert_and_only_its_cause() {
    let mut w = build();
    let mut outcomes = Vec::new();
    let panels = dashboard_panels();
    // Panels that returned data while a scenario of their row's cause ran.
    let mut panels_with_data = BTreeSet::new();

    // Baseline: every target up, and no cause alert at all.
    let up = wait_for(Duration::from_secs(60), || {
        let r = w.query("sum(up{job=~\"badgateway.*\"})");
        (r.first()?["value"][1].as_str()? == "3").then_some(())
    });
    assert!(
        up.is_some(),
        "targets not up: {:?}\n{}",
        w.query("up"),
        logs(&w)
    );
    let settle = wait_for(Duration::from_secs(60), || {
        let ok = w.query("badgateway_probe_success == 1").len() == 4;
        ok.then_some(())
    });
    assert!(settle.is_some(), "probes not succeeding:\n{}", logs(&w));
    std::thread::sleep(Duration::from_secs(10));
    let baseline = w.firing();
    let diagnosed = diagnose(&w);
    let mut problems = Vec::new();
    if !baseline.is_empty() {
        problems.push(format!("alerts firing: {}", join(&baseline)));
    }
    if diagnosed != "healthy" {
        problems.push(format!("diagnose named {diagnosed}"));
    }
    outcomes.push(Outcome {
        name: "healthy baseline",
        expected: "none".into(),
        fired: join(&baseline),
        seconds: None,
        diagnosed,
        problems,
    });

    for s in scenarios() {
        w.sink.lock().unwrap().clear();
        let started = Instant::now();
        (s.inject)(&mut w);
        let mut problems = Vec::new();
        let mut diagnosed = String::from("-");
        let want = (s.cause.to_owned(), s.reason.to_owned());
        let hit = wait_for(s.within, || {
            let f = w.firing();
            f.contains(&want).then_some(f)
        });
        let (fired, seconds) = match &hit {
            Some((f, _)) => (join(f), Some(started.elapsed().as_secs_f64())),
            None => {
                problems.push(format!(
                    "{}/{} did not fire within {:?}",
                    s.cause, s.reason, s.within
                ));
                (join(&w.firing()), None)
            }
        };
        if let Some((f, _)) = &hit {
            let others: Vec<_> = f.iter().filter(|(c, _)| c != s.cause).collect();
            if !others.is_empty() {
                problems.push(format!("other causes fired: {others:?}"));
            }
            // The notification reached the receiver for its cause.
            let notified = wait_for(Duration::from_secs(15), || {
                let got = w.sink.lock().unwrap();
                got.iter()
                    .any(|n| {
                        n["status"] == "firing"
                            && n["alerts"].as_array().is_some_and(|a| {
                                a.iter().any(|x| {
                                    x["labels"]["reason"] == s.reason
                                        && x["labels"]["cause"] == s.cause
                                })
                            })
                    })
                    .then_some(())
            });
            if notified.is_none() {
                problems.push("no notification at the webhook".into());
            }
            diagnosed = diagnose(&w);
            let want = s.diagnose.unwrap_or("healthy");
            if diagnosed != want {
                problems.push(format!("diagnose named {diagnosed}, not {want}"));
            }
            for (cause, title, exprs) in &panels {
                if cause == s.cause && exprs.iter().any(|e| !w.query(e).is_empty()) {
                    panels_with_data.insert(title.clone());
                }
            }
            let leaked: Vec<String> = w
                .sink
                .lock()
                .unwrap()
                .iter()
                .filter(|n| n["status"] == "firing")
                .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
                .filter(|x| x["status"] == "firing")
                .map(|x| {
                    format!(
                        "{}/{}",
                        x["labels"]["cause"].as_str().unwrap_or(""),
                        x["labels"]["reason"].as_str().unwrap_or("")
                    )
                })
                .filter(|cr| !cr.starts_with(s.cause))
                .collect();
            if !leaked.is_empty() {
                problems.push(format!("notified other causes: {leaked:?}"));
            }
        }
        (s.remove)(&mut w);
        // Recovered: nothing firing, and nothing pending that could fire
        // during the next scenario.
        let recovered = wait_for(Duration::from_secs(90), || {
            w.alerts("firing|pending").is_empty().then_some(())
        });
        if recovered.is_none() {
            problems.push(format!(
                "not recovered: {}",
                join(&w.alerts("firing|pending"))
            ));
        }
        eprintln!(
            "{}: {}",
            s.name,
            if problems.is_empty() {
                "ok".into()
            } else {
                problems.join("; ")
            }
        );
        outcomes.push(Outcome {
            name: s.name,
            expected: format!("{}/{}", s.cause, s.reason),
            fired,
            seconds,
            diagnosed,
            problems,
        });
    }

    println!(
        "\n| scenario | expected | firing when it fired | seconds to alert | diagnose from v1 |"
    );
    println!("|---|---|---|---|---|");
    for o in &outcomes {
        let fired = if o.fired.is_empty() {
            "none"
        } else {
            o.fired.as_str()
        };
        let seconds = o.seconds.map_or("-".into(), |s| format!("{s:.1}"));
        println!(
            "| {} | {} | {} | {} | {} |",
            o.name, o.expected, fired, seconds, o.diagnosed
        );
    }
    let mut failed: Vec<String> = panels
        .iter()
        .filter(|(_, title, _)| !panels_with_data.contains(title))
        .map(|(cause, title, _)| {
            format!("dashboard panel {title:?} ({cause}) returned no data in any of its scenarios")
        })
        .collect();
    println!(
        "\ndashboard: {} of {} cause panels returned data during their scenarios",
        panels_with_data.len(),
        panels.len()
    );
    failed.extend(
        outcomes
            .iter()
            .filter(|o| !o.problems.is_empty())
            .map(|o| format!("{}: {}", o.name, o.problems.join("; "))),
    );
    assert!(failed.is_empty(), "{}\n{}", failed.join("\n"), logs(&w));
}

fn join(set: &BTreeSet<(String, String)>) -> String {
    set.iter()
        .map(|(c, r)| format!("{c}/{r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn logs(w: &World) -> String {
    [
        "agent.log",
        "prober0.log",
        "prober1.log",
        "prometheus.log",
        "alertmanager.log",
    ]
    .iter()
    .map(|f| {
        let text = fs::read_to_string(w.dir.join(f)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        format!(
            "--- {f}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })
    .collect::<Vec<_>>()
    .join("\n")
}
