// Why one file: one subject, the alert rules: promtool's tests, every
// alert's labels and runbook link, the Alertmanager routing, and the
// thresholds the crate shares with the rules.
//! The alerting side: the rules in `rules/`, their promtool unit tests, the
//! Alertmanager configuration in `deploy/alertmanager.yml` and the runbook
//! in `docs/runbook/` agree with each other and with the `cause`/`reason`
//! vocabulary, and pass Prometheus's and Alertmanager's own checks.
//!
//! promtool, amtool and alertmanager are installed by `tests/run.sh`
//! (Debian packages `prometheus` and `prometheus-alertmanager`); a missing
//! tool fails the test rather than skipping it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::markdown::runbook_anchors;
use common::paths::root;
use common::yaml::string_map;
use common::{http, wait, Proc};
use serde_norway::Value;

/// Every cause and the reasons that explain it. Each pair must have at
/// least one alert; no alert may use anything else.
use badgateway_exporter::diagnosis::Cause;

/// Every cause and its reasons, the exporter's own too: the crate's
/// vocabulary.
fn vocabulary() -> Vec<(&'static str, Vec<&'static str>)> {
    Cause::ALL
        .iter()
        .map(|c| (c.as_str(), c.reasons().map(|r| r.as_str()).collect()))
        .collect()
}

const RUNBOOK_BASE: &str = "https://runbooks.example.com/badgateway-exporter/runbook/";

const ALERTMANAGER_CONFIG: &str = "deploy/alertmanager.yml";

/// The receiver each (cause, severity) must reach.
fn expected_receiver(cause: &str, severity: &str) -> String {
    let team = cause.replace('_', "-");
    match severity {
        "critical" => format!("{team}-page"),
        _ => format!("{team}-ticket"),
    }
}

/// `dir`'s files ending in `.yml` or `.yaml`, sorted, relative to the crate.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
        })
        .map(|p| p.strip_prefix(root()).unwrap().to_owned())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {dir}/");
    files
}

fn rule_files() -> Vec<PathBuf> {
    yaml_files("rules")
}

fn rule_test_files() -> Vec<PathBuf> {
    yaml_files("rules/tests")
}

fn load(path: &Path) -> Value {
    common::yaml::load(path.to_str().expect("UTF-8 path"))
}

/// Runs a tool from the crate root; a tool that is not installed fails.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): tests/run.sh installs it (Debian packages prometheus, prometheus-alertmanager)")
        })
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn paths(files: &[PathBuf]) -> Vec<&str> {
    files.iter().map(|p| p.to_str().unwrap()).collect()
}

/// One alerting rule, as written.
#[derive(Debug)]
struct Alert {
    group: String,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    for_: Option<String>,
    expr: String,
    file: PathBuf,
}

fn alerts() -> Vec<Alert> {
    let mut out = Vec::new();
    for file in rule_files() {
        let doc = load(&file);
        let groups = doc["groups"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{file:?}: no groups"));
        for g in groups {
            let group = g["name"].as_str().unwrap().to_owned();
            for r in g["rules"].as_sequence().unwrap() {
                let Some(name) = r["alert"].as_str() else {
                    continue;
                };
                out.push(Alert {
                    group: group.clone(),
                    name: name.to_owned(),
                    labels: string_map(&r["labels"]),
                    annotations: string_map(&r["annotations"]),
                    for_: r["for"].as_str().map(str::to_owned),
                    expr: r["expr"].as_str().unwrap_or("").to_owned(),
                    file: file.clone(),
                });
            }
        }
    }
    assert!(!out.is_empty(), "no alerting rules in rules/");
    out
}

/// A Prometheus duration like `1m`, `90s`, `1h30m`, in seconds.
fn seconds(d: &str) -> u64 {
    let mut total = 0;
    let mut number = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                's' => "s",
                'm' => "m",
                'h' => "h",
                'd' => "d",
                'w' => "w",
                'y' => "y",
                _ => panic!("bad duration {d:?}"),
            }
        };
        let n: u64 = std::mem::take(&mut number)
            .parse()
            .unwrap_or_else(|_| panic!("bad duration {d:?}"));
        total += match unit {
            "ms" => 0,
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86400,
            "w" => n * 7 * 86400,
            _ => n * 365 * 86400,
        };
    }
    assert!(number.is_empty(), "bad duration {d:?}");
    total
}

/// Every recording rule: (name, expression).
fn records() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in rule_files() {
        let doc = load(&file);
        for g in doc["groups"].as_sequence().unwrap() {
            for r in g["rules"].as_sequence().unwrap() {
                if let Some(name) = r["record"].as_str() {
                    out.push((name.to_owned(), r["expr"].as_str().unwrap_or("").to_owned()));
                }
            }
        }
    }
    out
}

/// An expression with the expressions of the records it reads, and theirs.
fn with_records(expr: &str, records: &[(String, String)]) -> String {
    let mut text = expr.to_owned();
    let mut seen = BTreeSet::new();
    loop {
        let more: Vec<&(String, String)> = records
            .iter()
            .filter(|(name, _)| text.contains(name.as_str()) && !seen.contains(name))
            .collect();
        if more.is_empty() {
            return text;
        }
        for (name, e) in more {
            seen.insert(name.clone());
            text.push('\n');
            text.push_str(e);
        }
    }
}

/// The rules judge with the crate's thresholds: every number and `for:`
/// that `diagnose` uses stands in the alert (or a record it reads).
#[test]
fn thresholds_are_the_crates() {
    let alerts = alerts();
    let records = records();
    let mut errors = Vec::new();
    for t in badgateway_exporter::diagnosis::thresholds::in_rules() {
        let Some(a) = alerts.iter().find(|a| a.name == t.alert) else {
            errors.push(format!("{}: no such alert", t.alert));
            continue;
        };
        if a.for_.as_deref() != Some(t.for_) {
            errors.push(format!(
                "{}: for {:?} in the rules, {} in the crate",
                t.alert, a.for_, t.for_
            ));
        }
        let text = with_records(&a.expr, &records);
        for f in &t.fragments {
            if !text.contains(f.as_str()) {
                errors.push(format!("{}: the crate's `{f}` is not in its rule", t.alert));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The check above can fail: a number changed in a copy of the rules is
/// found.
#[test]
fn a_changed_threshold_is_found() {
    let records = records();
    let alerts = alerts();
    let loss = alerts
        .iter()
        .find(|a| a.name == "BadGatewayPacketLoss")
        .unwrap();
    let changed = loss.expr.replace("> 0.1", "> 0.2");
    let text = with_records(&changed, &records);
    let t = badgateway_exporter::diagnosis::thresholds::in_rules()
        .into_iter()
        .find(|t| t.alert == "BadGatewayPacketLoss")
        .unwrap();
    assert!(t.fragments.iter().any(|f| !text.contains(f.as_str())));
}

#[test]
fn promtool_check_rules() {
    let files = rule_files();
    let mut args = vec!["check", "rules"];
    args.extend(paths(&files));
    assert_success("promtool check rules", &run("promtool", &args));
}

#[test]
fn promtool_unit_tests_pass() {
    let files = rule_test_files();
    let mut args = vec!["test", "rules"];
    args.extend(paths(&files));
    assert_success("promtool test rules", &run("promtool", &args));
}

/// The vocabulary, both ways: every cause/reason pair has an alert, and
/// every alert uses a pair of the vocabulary, in the group of its cause.
#[test]
fn every_reason_has_an_alert_and_no_alert_leaves_the_vocabulary() {
    let alerts = alerts();
    let mut errors = Vec::new();
    for (cause, reasons) in &vocabulary() {
        for reason in reasons {
            if !alerts.iter().any(|a| {
                a.labels.get("cause").map(String::as_str) == Some(*cause)
                    && a.labels.get("reason").map(String::as_str) == Some(*reason)
            }) {
                errors.push(format!("no alert with cause={cause} reason={reason}"));
            }
        }
    }
    for a in &alerts {
        let (Some(cause), Some(reason)) = (a.labels.get("cause"), a.labels.get("reason")) else {
            continue; // reported by every_alert_is_complete
        };
        match vocabulary().iter().find(|(c, _)| c == cause) {
            None => errors.push(format!("{}: unknown cause {cause:?}", a.name)),
            Some((_, reasons)) if !reasons.contains(&reason.as_str()) => errors.push(format!(
                "{}: reason {reason:?} is not one of {cause}'s",
                a.name
            )),
            Some(_) => {}
        }
        if &a.group != cause {
            errors.push(format!(
                "{}: cause {cause} but in group {} ({:?})",
                a.name, a.group, a.file
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Labels, annotations, naming, runbook links, and a `for` that keeps a
/// single failed round or scrape from firing.
#[test]
fn every_alert_is_complete() {
    let anchors = runbook_anchors();
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for a in alerts() {
        let n = &a.name;
        if !n.starts_with("BadGateway")
            || !n.chars().all(|c| c.is_ascii_alphanumeric())
            || n.len() <= "BadGateway".len()
        {
            errors.push(format!("{n}: not a BadGateway-prefixed CamelCase name"));
        }
        if !names.insert(n.clone()) {
            errors.push(format!("{n}: defined twice"));
        }
        for l in ["cause", "reason", "severity"] {
            if a.labels.get(l).is_none_or(|v| v.is_empty()) {
                errors.push(format!("{n}: no `{l}` label"));
            }
        }
        if let Some(s) = a.labels.get("severity") {
            if s != "critical" && s != "warning" {
                errors.push(format!("{n}: severity {s:?} is not critical or warning"));
            }
        }
        for k in ["summary", "description", "runbook_url"] {
            if a.annotations.get(k).is_none_or(|v| v.trim().is_empty()) {
                errors.push(format!("{n}: no `{k}` annotation"));
            }
        }
        if let Some(url) = a.annotations.get("runbook_url") {
            match url.strip_prefix(RUNBOOK_BASE) {
                None => errors.push(format!(
                    "{n}: runbook_url {url} does not start with {RUNBOOK_BASE}"
                )),
                Some(link) => {
                    let (page, anchor) = link.split_once(".md#").unwrap_or((link, ""));
                    if !anchors.contains(link) {
                        errors.push(format!(
                            "{n}: runbook_url {link} has no `## {anchor}` section in docs/runbook/{page}.md"
                        ));
                    }
                    if a.labels.get("cause").is_some_and(|c| c != page) {
                        errors.push(format!(
                            "{n}: runbook_url page {page}.md is not its cause {:?}",
                            a.labels["cause"]
                        ));
                    }
                    if a.labels.get("reason").is_some_and(|r| r != anchor) {
                        errors.push(format!(
                            "{n}: runbook_url anchor #{anchor} is not its reason {:?}",
                            a.labels["reason"]
                        ));
                    }
                }
            }
        }
        match &a.for_ {
            None => errors.push(format!("{n}: no `for`: one bad scrape would fire it")),
            Some(d) if seconds(d) < 60 => errors.push(format!("{n}: `for: {d}` is under a minute")),
            Some(_) => {}
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Each alert has a promtool case where it fires and one where it must
/// not (a blip, a look-alike of another cause, a value under the threshold).
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in rule_test_files() {
        let doc = load(&file);
        for t in doc["tests"].as_sequence().unwrap() {
            for case in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_owned();
                let firing = case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|s| !s.is_empty());
                if firing {
                    fires.insert(name);
                } else {
                    silent.insert(name);
                }
            }
        }
    }
    let mut errors = Vec::new();
    for a in alerts() {
        if !fires.contains(&a.name) {
            errors.push(format!("{}: no unit test where it fires", a.name));
        }
        if !silent.contains(&a.name) {
            errors.push(format!("{}: no unit test where it must not fire", a.name));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn amtool_check_config() {
    assert_success(
        "amtool check-config",
        &run("amtool", &["check-config", ALERTMANAGER_CONFIG]),
    );
}

/// Every (cause, severity) an alert can carry reaches its receiver, and
/// anything else the default one.
#[test]
fn routes_by_cause_and_severity() {
    let mut pairs: BTreeSet<(String, String)> = BTreeSet::new();
    for (cause, _) in &vocabulary() {
        for severity in ["critical", "warning"] {
            pairs.insert((cause.to_string(), severity.to_owned()));
        }
    }
    for a in alerts() {
        pairs.insert((a.labels["cause"].clone(), a.labels["severity"].clone()));
    }
    let mut errors = Vec::new();
    let mut route = |labels: &[String], expected: &str| {
        let mut args = vec![
            "config",
            "routes",
            "test",
            "--config.file",
            ALERTMANAGER_CONFIG,
        ];
        args.extend(labels.iter().map(String::as_str));
        let out = run("amtool", &args);
        assert_success("amtool config routes test", &out);
        let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if got != expected {
            errors.push(format!(
                "{labels:?}: routed to {got:?}, expected {expected:?}"
            ));
        }
    };
    for (cause, severity) in &pairs {
        route(
            &[
                format!("cause={cause}"),
                format!("severity={severity}"),
                "site=shop".to_owned(),
            ],
            &expected_receiver(cause, severity),
        );
    }
    route(
        &[
            "alertname=Watchdog".to_owned(),
            "severity=critical".to_owned(),
        ],
        "default",
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

// ---------------------------------------------------------------------------
// Inhibition, in a real Alertmanager: amtool cannot evaluate inhibit rules
// offline, so one is started on the configuration, sent alerts, and asked
// which of them it suppresses.

/// An Alertmanager process, stopped on drop.
struct Alertmanager {
    _process: Proc,
    addr: SocketAddr,
    _storage: tempfile::TempDir,
}

impl Alertmanager {
    fn start(config: &Path) -> Alertmanager {
        let storage = tempfile::tempdir().unwrap();
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        // Debian names the binary prometheus-alertmanager; upstream, alertmanager.
        let binary = ["prometheus-alertmanager", "alertmanager"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .expect("alertmanager is not installed: tests/run.sh installs it (Debian package prometheus-alertmanager)");
        let process = Proc::spawn(
            Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.path().display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn"),
            &storage.path().join("alertmanager.log"),
        );
        wait::until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            || match call(addr, "GET", "/-/ready", None) {
                Ok((200, _)) => Ok(()),
                other => Err(format!(
                    "alertmanager did not become ready on {addr}: {other:?}\n{}",
                    process.log_text()
                )),
            },
        );
        Alertmanager {
            _process: process,
            addr,
            _storage: storage,
        }
    }
}

/// One exchange with Alertmanager's API: (status, body).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http::request(addr, method, path, &[], body).map(|r| (r.status, r.body))
}

fn alert_json(labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k:?}: {v:?}"))
        .collect();
    format!(
        "{{\"labels\": {{{}}}, \"annotations\": {{}}}}",
        labels.join(", ")
    )
}

#[test]
fn inhibit_rules_silence_follow_on_alerts() {
    let am = Alertmanager::start(&root().join(ALERTMANAGER_CONFIG));
    let cases = inhibit_cases();
    post_alerts(&am, &cases);
    let states = alert_states_once_all_listed(&am, cases.len());
    let mut errors = Vec::new();
    for (labels, suppressed) in &cases {
        let map: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let expected = if *suppressed { "suppressed" } else { "active" };
        let got = states
            .get(&alert_key(&map))
            .map(String::as_str)
            .unwrap_or("missing");
        if got != expected {
            errors.push(format!("{map:?}: {got}, expected {expected}"));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Posts every case's alert to Alertmanager at once.
fn post_alerts(am: &Alertmanager, cases: &[InhibitCase]) {
    let body = format!(
        "[{}]",
        cases
            .iter()
            .map(|(l, _)| alert_json(l))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (status, answer) = call(am.addr, "POST", "/api/v2/alerts", Some(&body)).unwrap();
    assert_eq!(status, 200, "posting alerts: {answer}");
}

/// The key an alert is known by: its name and all its labels.
fn alert_key(labels: &BTreeMap<String, String>) -> String {
    format!(
        "{}/{}",
        labels["alertname"],
        serde_norway::to_string(labels).unwrap()
    )
}

/// Each listed alert's state (active, suppressed) by its key.
/// Alertmanager computes inhibition when asked; wait until it lists all.
fn alert_states_once_all_listed(am: &Alertmanager, count: usize) -> BTreeMap<String, String> {
    wait::until(Duration::from_secs(20), Duration::from_millis(200), || {
        let (status, answer) = call(am.addr, "GET", "/api/v2/alerts", None).unwrap();
        assert_eq!(status, 200, "{answer}");
        let listed: Value = serde_norway::from_str(&answer).unwrap();
        let states: BTreeMap<String, String> = listed
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    alert_key(&string_map(&a["labels"])),
                    a["status"]["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if states.len() == count {
            Ok(states)
        } else {
            Err(format!(
                "alertmanager lists {} of {count} alerts",
                states.len()
            ))
        }
    })
}

/// An alert's labels, and whether the inhibit rules must suppress it.
type InhibitCase = (&'static [(&'static str, &'static str)], bool);

/// Every alert posted to Alertmanager, group by group.
fn inhibit_cases() -> Vec<InhibitCase> {
    [
        origin_unreachable_inhibit_cases(),
        origin_unreachable_spares_cases(),
        web_service_down_inhibit_cases(),
        exporter_down_inhibit_cases(),
        critical_over_warning_inhibit_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// An unreachable origin silences its site's slowness, HTTP errors,
/// forwarding alerts and its agent's missing scrapes...
fn origin_unreachable_inhibit_cases() -> Vec<InhibitCase> {
    vec![
        (
            &[
                ("alertname", "BadGatewayOriginUnreachable"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_unreachable"),
                ("severity", "critical"),
                ("site", "shop"),
                ("address", "203.0.113.5"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginTimeout"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_slow"),
                ("severity", "critical"),
                ("site", "shop"),
                ("address", "203.0.113.5"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginHttpErrors"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_http_errors"),
                ("severity", "critical"),
                ("site", "shop"),
                ("address", "203.0.113.5"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayForwardingIpBlocked"),
                ("cause", "forwarding_ip_blocked"),
                ("reason", "proxy_fails_origin_ok"),
                ("severity", "critical"),
                ("site", "shop"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayForwardingIpRateLimited"),
                ("cause", "forwarding_ip_blocked"),
                ("reason", "forwarding_ip_rate_limited"),
                ("severity", "critical"),
                ("site", "shop"),
                ("instance", "origin-shop:9502"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayExporterDown"),
                ("cause", "exporter"),
                ("reason", "target_down"),
                ("severity", "critical"),
                ("site", "shop"),
                ("instance", "origin-shop:9502"),
                ("job", "badgateway-agent"),
            ],
            true,
        ),
    ]
}

/// ...but not its network alerts, nor another site's alerts.
fn origin_unreachable_spares_cases() -> Vec<InhibitCase> {
    vec![
        (
            &[
                ("alertname", "BadGatewayPacketLoss"),
                ("cause", "network_linkage"),
                ("reason", "packet_loss"),
                ("severity", "warning"),
                ("site", "shop"),
                ("path", "origin"),
                ("address", "203.0.113.5"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginTimeout"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_slow"),
                ("severity", "critical"),
                ("site", "blog"),
                ("address", "203.0.113.7"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "BadGatewayForwardingIpBlocked"),
                ("cause", "forwarding_ip_blocked"),
                ("reason", "proxy_fails_origin_ok"),
                ("severity", "critical"),
                ("site", "news"),
            ],
            false,
        ),
    ]
}

/// A web service down silences the site's HTTP errors, not its slowness.
fn web_service_down_inhibit_cases() -> Vec<InhibitCase> {
    vec![
        (
            &[
                ("alertname", "BadGatewayWebServiceDown"),
                ("cause", "origin_abnormal"),
                ("reason", "web_service_down"),
                ("severity", "critical"),
                ("site", "wiki"),
                ("instance", "origin-wiki:9502"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginHttpErrorRate"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_http_errors"),
                ("severity", "warning"),
                ("site", "wiki"),
                ("instance", "origin-wiki:9502"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginSlowerThanProxyWaits"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_slow"),
                ("severity", "critical"),
                ("site", "wiki"),
                ("vantage", "pa"),
            ],
            false,
        ),
    ]
}

/// A down exporter target silences the alerts from that instance.
fn exporter_down_inhibit_cases() -> Vec<InhibitCase> {
    vec![
        (
            &[
                ("alertname", "BadGatewayExporterDown"),
                ("cause", "exporter"),
                ("reason", "target_down"),
                ("severity", "critical"),
                ("instance", "origin-docs:9502"),
                ("job", "badgateway-agent"),
                ("site", "docs"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginCpuSaturated"),
                ("cause", "origin_abnormal"),
                ("reason", "cpu_saturated"),
                ("severity", "warning"),
                ("site", "docs"),
                ("instance", "origin-docs:9502"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayCollectorFailing"),
                ("cause", "exporter"),
                ("reason", "collector_failing"),
                ("severity", "warning"),
                ("instance", "origin-docs:9502"),
                ("collector", "firewall"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginCpuSaturated"),
                ("cause", "origin_abnormal"),
                ("reason", "cpu_saturated"),
                ("severity", "warning"),
                ("site", "docs"),
                ("instance", "origin-docs-2:9502"),
            ],
            false,
        ),
    ]
}

/// The critical alert of a reason makes the warning of the same reason redundant.
fn critical_over_warning_inhibit_cases() -> Vec<InhibitCase> {
    vec![
        (
            &[
                ("alertname", "BadGatewayOriginSlowerThanProxyWaits"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_slow"),
                ("severity", "critical"),
                ("site", "forum"),
                ("vantage", "pa"),
            ],
            false,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginSlow"),
                ("cause", "origin_abnormal"),
                ("reason", "origin_slow"),
                ("severity", "warning"),
                ("site", "forum"),
                ("address", "203.0.113.9"),
            ],
            true,
        ),
        (
            &[
                ("alertname", "BadGatewayOriginCpuSaturated"),
                ("cause", "origin_abnormal"),
                ("reason", "cpu_saturated"),
                ("severity", "warning"),
                ("site", "forum"),
                ("instance", "origin-forum:9502"),
            ],
            false,
        ),
    ]
}
