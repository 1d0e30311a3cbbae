//! What must hold between the Kubernetes manifests: selectors select,
//! mounts and ports exist, Services and ServiceMonitors meet, and
//! kustomization.yaml lists every manifest; each check also shown to catch
//! a broken copy.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use crate::common::paths::read;
use crate::common::yaml::{at, parse as yaml, seq_at, set_key, str_at, string_map};
use crate::kubernetes::{k8s_docs, k8s_files, K8S};

/// A pod template or a Service: its name, labels and port names.
type Ported = (String, BTreeMap<String, String>, BTreeSet<String>);

/// What must hold between the manifests; the problems found.
fn k8s_problems(docs: &[Value]) -> Vec<String> {
    let mut p = Vec::new();
    metadata_problems(docs, &mut p);
    let pods = workload_problems(docs, &mut p);
    let services = service_problems(docs, &pods, &mut p);
    service_monitor_problems(docs, &services, &mut p);
    p
}

/// The documents of `kind`.
fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

/// Whether the selector `sel` (not empty) selects `labels`.
fn selects(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Every document has an apiVersion, a name, the app label, and a
/// namespace that one of them creates.
fn metadata_problems(docs: &[Value], p: &mut Vec<String>) {
    let namespaces: BTreeSet<String> = of_kind(docs, "Namespace")
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
}

/// Workloads: the selector selects the template; mounted ConfigMaps exist;
/// named probe ports exist. Returns each workload's pods.
fn workload_problems(docs: &[Value], p: &mut Vec<String>) -> Vec<Ported> {
    let configmaps: BTreeSet<&str> = of_kind(docs, "ConfigMap")
        .iter()
        .map(|d| str_at(d, "metadata.name"))
        .collect();
    let mut pods: Vec<Ported> = Vec::new();
    for w in of_kind(docs, "StatefulSet")
        .into_iter()
        .chain(of_kind(docs, "DaemonSet"))
    {
        let name = str_at(w, "metadata.name");
        let sel = string_map(at(w, "spec.selector.matchLabels"));
        let labels = string_map(at(w, "spec.template.metadata.labels"));
        if !selects(&sel, &labels) {
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
            container_problems(name, c, &volumes, &mut ports, p);
        }
        pods.push((name.to_owned(), labels, ports));
    }
    pods
}

/// One container of workload `name`: its ports join `ports`; it mounts
/// only `volumes`, probes named ports, and is locked down.
fn container_problems(
    name: &str,
    c: &Value,
    volumes: &BTreeSet<&str>,
    ports: &mut BTreeSet<String>,
    p: &mut Vec<String>,
) {
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

/// Services select pods and name their ports; the Service names are the
/// scrape jobs the rules expect. Returns each Service.
fn service_problems(docs: &[Value], pods: &[Ported], p: &mut Vec<String>) -> Vec<Ported> {
    let mut services: Vec<Ported> = Vec::new();
    for s in of_kind(docs, "Service") {
        let name = str_at(s, "metadata.name");
        if !name.starts_with("badgateway") {
            p.push(format!(
                "Service {name}: the rules expect jobs named badgateway*"
            ));
        }
        let sel = string_map(at(s, "spec.selector"));
        let selected: Vec<&Ported> = pods.iter().filter(|(_, l, _)| selects(&sel, l)).collect();
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
    services
}

/// ServiceMonitors select a Service by its labels and scrape a port it
/// has, and set the job to that Service's name.
fn service_monitor_problems(docs: &[Value], services: &[Ported], p: &mut Vec<String>) {
    for m in of_kind(docs, "ServiceMonitor") {
        let name = str_at(m, "metadata.name");
        let sel = string_map(at(m, "spec.selector.matchLabels"));
        let selected: Vec<&Ported> = services
            .iter()
            .filter(|(_, l, _)| selects(&sel, l))
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
            "StatefulSet",
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
