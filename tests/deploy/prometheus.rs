//! `deploy/prometheus.yml` and `deploy/prometheus-agent.yml` through
//! `promtool check config`, and the helpers that run a real Prometheus on
//! them (see `scrape.rs`).

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_norway::Value;

use crate::common::paths::{read, root};
use crate::common::proc::{both, must, output};
use crate::common::yaml::{parse as yaml, seq_at, set_key, str_at};
use crate::common::{http_get, wait, Proc};
use crate::tools::{free_port, need, tempdir, write};

/// How often a test asks Prometheus whether something has happened yet.
pub const EVERY: Duration = Duration::from_millis(500);

/// deploy/prometheus.yml with the rule files pointed at the repository's.
pub fn prometheus_config() -> Value {
    let mut config = yaml(&read("deploy/prometheus.yml"));
    let rules: Vec<Value> = seq_at(&config, "rule_files")
        .iter()
        .map(|r| {
            // A file of rules/, or the glob of them all (`*.rules.yml`).
            let name = Path::new(r.as_str().unwrap()).file_name().unwrap();
            let path = root().join("rules").join(name);
            let matches = match name.to_str().unwrap().strip_prefix('*') {
                Some(suffix) => crate::common::paths::rule_files()
                    .iter()
                    .any(|f| f.to_string_lossy().ends_with(suffix)),
                None => path.is_file(),
            };
            assert!(matches, "rule file {r:?} is not in rules/");
            Value::String(path.to_string_lossy().into_owned())
        })
        .collect();
    set_key(&mut config, "rule_files", Value::Sequence(rules));
    config
}

pub fn promtool_check_config(config: &Value, dir: &Path) -> Output {
    let f = dir.join("prometheus.yml");
    write(&f, &serde_norway::to_string(config).unwrap());
    output(Command::new("promtool").args(["check", "config"]).arg(&f))
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
        !output(Command::new("promtool").args(["check", "config"]).arg(&f))
            .status
            .success()
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
    assert!(!output(
        Command::new("promtool")
            .args(["check", "config", "--agent"])
            .arg(&f)
    )
    .status
    .success());
    let config = yaml(&read("deploy/prometheus-agent.yml"));
    assert!(config["rule_files"].is_null() && config["alerting"].is_null());
    assert!(!seq_at(&config, "remote_write").is_empty());
    assert!(vantages_of(&config).len() >= 2);
}

/// A Prometheus server started for a test, killed on drop.
pub struct Prometheus {
    proc: Proc,
    pub addr: SocketAddr,
}

impl Prometheus {
    pub fn start(config: &Value, dir: &Path) -> Prometheus {
        Prometheus::start_with(config, dir, &[])
    }

    /// Started with `config` and the extra flags, its files in `dir`.
    pub fn start_with(config: &Value, dir: &Path, flags: &[&str]) -> Prometheus {
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
        wait::until(Duration::from_secs(30), Duration::from_millis(100), || {
            if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
                return Ok(());
            }
            assert!(!p.exited(), "prometheus exited:\n{}", p.log_text());
            Err(format!("prometheus not ready:\n{}", p.log_text()))
        });
        Prometheus { proc: p, addr }
    }

    pub fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(self.addr, path).expect("prometheus API");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    pub fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        self.api(&format!("/api/v1/query?query={q}"))["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        self.proc.log_text()
    }
}

/// Every static target of every job in `config` replaced by `target`.
pub fn point_targets_at(config: &mut Value, target: &str) {
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
pub fn fast(config: &mut Value) {
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
pub fn vantages_of(config: &Value) -> Vec<String> {
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
pub fn rules_evaluate_cleanly(prometheus: &Prometheus) {
    let want: BTreeSet<String> = seq_at(&crate::common::paths::rule_groups(), "groups")
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
    wait::until(Duration::from_secs(20), EVERY, || {
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
