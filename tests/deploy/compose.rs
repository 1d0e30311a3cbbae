//! `deploy/compose.yml`: `docker-compose config` (the Compose schema), its
//! services and mounts, and the configs it mounts (check-config, promtool,
//! `nginx -t`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_norway::Value;

use crate::common::paths::{read, root, BIN};
use crate::common::proc::{both, must, output};
use crate::common::yaml::{parse as yaml, seq_at, set_key, str_at};
use crate::prometheus::promtool_check_config;
use crate::tools::{need, tempdir, write};

/// `docker-compose config` of a compose file, resolved relative to deploy/.
fn compose_config(file: &Path) -> Output {
    need("docker-compose", "docker-compose");
    output(
        Command::new("docker-compose")
            .arg("--project-directory")
            .arg(root().join("deploy"))
            .arg("-f")
            .arg(file)
            .arg("config")
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1"),
    )
}

#[test]
fn compose_file_validates_and_mounts_what_exists() {
    let resolved = resolved_compose_file();
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
    let mounts = bind_mounts(&resolved);
    check_important_mounts(&mounts);
    check_grafana_provisioning(&services);

    // The configs it mounts pass their own checks.
    must(
        Command::new(BIN)
            .arg("check-config")
            .arg(mounted(&mounts, "/etc/badgateway-exporter/config.yml")),
    );
    let dir = tempdir();
    check_mounted_prometheus_config(&mounts, &services, dir.path());
    check_mounted_nginx_configs(&resolved, dir.path());
    broken_copies_fail_the_schema_check(dir.path());
}

/// `docker-compose config` of deploy/compose.yml, which must pass: the
/// file resolved.
fn resolved_compose_file() -> Value {
    let out = compose_config(&root().join("deploy/compose.yml"));
    assert!(
        out.status.success(),
        "docker-compose config:\n{}",
        both(&out)
    );
    yaml(&String::from_utf8_lossy(&out.stdout))
}

/// Every bind mount's source, by its destination; each source must exist.
fn bind_mounts(resolved: &Value) -> BTreeMap<String, String> {
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
    mounts
}

/// The source mounted at `dst`, which must be mounted.
fn mounted(mounts: &BTreeMap<String, String>, dst: &str) -> PathBuf {
    PathBuf::from(
        mounts
            .get(dst)
            .unwrap_or_else(|| panic!("nothing at {dst}")),
    )
}

/// The important mounts are there, from the repository's files.
fn check_important_mounts(mounts: &BTreeMap<String, String>) {
    let src = |dst: &str| mounted(mounts, dst);
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
}

/// The dashboard provider reads the directory the dashboard lands in, and
/// the datasource is the compose service.
fn check_grafana_provisioning(services: &BTreeSet<String>) {
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
}

/// The mounted prometheus.yml, its rule files pointed at rules/, passes
/// promtool, and alerts a compose service.
fn check_mounted_prometheus_config(
    mounts: &BTreeMap<String, String>,
    services: &BTreeSet<String>,
    dir: &Path,
) {
    let text = fs::read_to_string(mounted(mounts, "/etc/prometheus/prometheus.yml")).unwrap();
    let mut prom = yaml(&text);
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
    let out = promtool_check_config(&prom, dir);
    assert!(out.status.success(), "{}", both(&out));
    assert!(services.contains(
        str_at(&prom, "alerting.alertmanagers.0.static_configs.0.targets.0")
            .split(':')
            .next()
            .unwrap()
    ));
}

/// Every nginx config a service mounts passes `nginx -t`, wrapped in a
/// minimal main config.
fn check_mounted_nginx_configs(resolved: &Value, dir: &Path) {
    need("nginx", "nginx-light");
    for dst in ["/etc/nginx/conf.d/default.conf"] {
        for (name, svc) in resolved["services"].as_mapping().unwrap() {
            for v in seq_at(svc, "volumes") {
                let v = v.as_str().unwrap();
                if !v.contains(&format!(":{dst}")) {
                    continue;
                }
                let conf = v.split(':').next().unwrap();
                let wrapper = dir.join(format!("{}.nginx.conf", name.as_str().unwrap()));
                write(
                    &wrapper,
                    &format!(
                        "pid {}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n  access_log off;\n  include {conf};\n}}\n",
                        dir.display()
                    ),
                );
                must(
                    Command::new("nginx")
                        .args(["-t", "-q", "-e", "stderr", "-p"])
                        .arg(dir)
                        .arg("-c")
                        .arg(&wrapper),
                );
            }
        }
    }
}

/// A broken copy fails the schema check.
fn broken_copies_fail_the_schema_check(dir: &Path) {
    let good = read("deploy/compose.yml");
    for (what, from, to) in [
        ("misspelt key", "    read_only: true", "    read_onyl: true"),
        ("wrong type", "    cap_drop: [ALL]", "    cap_drop: ALL"),
    ] {
        assert!(good.contains(from), "{what}: {from:?}");
        let f = dir.join("compose.yml");
        write(&f, &good.replacen(from, to, 1));
        assert!(
            !compose_config(&f).status.success(),
            "docker-compose accepted the {what}"
        );
    }
}
