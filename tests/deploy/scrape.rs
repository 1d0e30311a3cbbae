//! A real Prometheus with `deploy/prometheus.yml` (and the
//! ServiceMonitors' relabelings) scraping a live exporter: rules loaded and
//! evaluated without error, targets up, `vantage` on the series; and the
//! regional layout of docs/scale.md, a Prometheus in agent mode remote
//! writing to a central one that runs the rules.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_norway::{Mapping, Value};

use crate::common::paths::{read, BIN};
use crate::common::yaml::{parse as yaml, seq_at, set_key, str_at};
use crate::common::{wait, Proc};
use crate::kubernetes::servicemonitor_relabel_configs;
use crate::prometheus::{
    fast, point_targets_at, prometheus_config, rules_evaluate_cleanly, vantages_of, Prometheus,
    EVERY,
};
use crate::tools::{free_port, served_address, tempdir, write};

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
    add_servicemonitor_jobs(&mut config, &target);
    let prometheus = Prometheus::start(&config, dir.path());

    // Every target is up, with the labels it should have...
    wait::until(Duration::from_secs(40), EVERY, || {
        targets_up_with_their_labels(&prometheus, &vantages)
    });
    // ...`up` says so, and the vantage reaches the exporter's series...
    wait::until(Duration::from_secs(20), EVERY, || {
        up_and_vantage_on_the_series(&prometheus, &vantages)
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

/// Two jobs scraping `target` through the ServiceMonitors' relabelings,
/// on targets carrying the Kubernetes metadata those read: a prober with
/// a vantage and one without, and an agent on a node.
fn add_servicemonitor_jobs(config: &mut Value, target: &str) {
    let mut jobs: Vec<Value> = seq_at(config, "scrape_configs").to_vec();
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
    set_key(config, "scrape_configs", Value::Sequence(jobs));
}

/// Every target is up, a badgateway one for each vantage, and the
/// ServiceMonitors' relabelings set job, vantage and instance and drop the
/// prober without a vantage.
fn targets_up_with_their_labels(
    prometheus: &Prometheus,
    vantages: &[String],
) -> Result<(), String> {
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
    for v in vantages {
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
}

/// `up` says every target is up, and each vantage reaches the exporter's
/// series.
fn up_and_vantage_on_the_series(
    prometheus: &Prometheus,
    vantages: &[String],
) -> Result<(), String> {
    let up = prometheus.query("up{job=\"badgateway\"} == 1");
    let agents = prometheus.query("up{job=\"badgateway-agent\"} == 1");
    let sites = prometheus.query("badgateway_sites{job=\"badgateway\"}");
    let with_vantage: BTreeSet<String> = sites
        .iter()
        .filter_map(|s| s["metric"]["vantage"].as_str().map(str::to_owned))
        .collect();
    if up.len() == vantages.len() + 1 && agents.len() == 2 && with_vantage.len() == vantages.len() {
        Ok(())
    } else {
        Err(format!("up {up:?}\nagents {agents:?}\nsites {sites:?}"))
    }
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
    wait::until(Duration::from_secs(60), EVERY, || {
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
