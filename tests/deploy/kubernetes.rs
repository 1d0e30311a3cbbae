//! The Kubernetes manifests: `kubernetes-validate --strict` (offline
//! schemas), what each workload needs for its role, their configs through
//! `check-config`, and the ServiceMonitors' fields.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_norway::{Mapping, Value};

use crate::common::paths::{read, root, BIN};
use crate::common::proc::{both, must, output};
use crate::common::yaml::{at, docs as yaml_docs, parse as yaml, seq_at, str_at};
use crate::tools::{kubernetes_validate, tempdir, write, KUBERNETES_VERSIONS};

pub const K8S: &str = "deploy/kubernetes";

/// The manifest files (all but kustomization.yaml), sorted.
pub fn k8s_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join(K8S))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

pub fn k8s_docs() -> Vec<(PathBuf, Value)> {
    k8s_files()
        .into_iter()
        .flat_map(|f| {
            let text = fs::read_to_string(&f).unwrap();
            yaml_docs(&text).into_iter().map(move |d| (f.clone(), d))
        })
        .collect()
}

pub fn k8s_object(kind: &str, name: &str) -> Value {
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
        let out = output(
            kubernetes_validate()
                .args(["--strict", "--kubernetes-version", version])
                .args(&files),
        );
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
        let out = output(kubernetes_validate().arg("--strict").arg(&bad));
        assert!(
            !out.status.success(),
            "kubernetes-validate accepted the {what}"
        );
    }
}

#[test]
fn kubernetes_workloads_are_what_the_roles_need() {
    // The agent: the host's network namespace, its /proc mounted read-only
    // where the flag points, two capabilities. (/sys is not needed: nothing
    // reads it.)
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
    let m = seq_at(c, "volumeMounts")
        .iter()
        .find(|m| str_at(m, "mountPath") == "/host/proc")
        .expect("no mount at /host/proc");
    assert_eq!(m["readOnly"].as_bool(), Some(true), "/host/proc");
    let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
    assert_eq!(str_at(v, "hostPath.path"), "/proc");
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

    prober_is_sharded_by_its_pods();

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

/// The prober: non-root, no capability, a StatefulSet whose pods are the
/// shards of the vantage's sites (N in --shard is its replicas), the
/// vantage label on its pods.
fn prober_is_sharded_by_its_pods() {
    let deploy = k8s_object("StatefulSet", "badgateway-prober-eu-west");
    let pod = at(&deploy, "spec.template.spec");
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    let replicas = at(&deploy, "spec.replicas").as_u64().expect("replicas");
    let container = at(pod, "containers.0");
    let args: Vec<&str> = seq_at(container, "args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&format!("--shard=$(POD_INDEX)/{replicas}").as_str()),
        "{args:?}"
    );
    let index = seq_at(container, "env")
        .iter()
        .find(|e| e["name"] == "POD_INDEX")
        .expect("POD_INDEX");
    assert_eq!(
        str_at(index, "valueFrom.fieldRef.fieldPath"),
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    assert_eq!(
        str_at(&deploy, "spec.template.metadata.labels.vantage"),
        "eu-west"
    );
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
pub fn servicemonitor_relabel_configs(name: &str) -> Value {
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
