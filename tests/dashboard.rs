// Why one file: one subject, the dashboard: each test checks one promise of
// it (layout, variables, every panel's query against a real Prometheus, the
// runbook links), and they share the JSON walkers at the top.
//! The Grafana dashboard (grafana/badgateway.json) and its provisioning
//! files, checked without Grafana: layout, datasource variable, metric names
//! against README.md's metric tables, a row per cause with runbook links,
//! and every PromQL expression parsed by `promtool check rules`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::markdown::runbook_anchors;
use common::paths::{read, root};

use serde_json::Value;

use badgateway_exporter::diagnosis::Cause;

/// The causes of a failing site and their reasons: each has a row.
fn site_causes() -> Vec<(&'static str, Vec<&'static str>)> {
    Cause::ALL
        .iter()
        .filter(|c| **c != Cause::Exporter)
        .map(|c| (c.as_str(), c.reasons().map(|r| r.as_str()).collect()))
        .collect()
}

/// Metrics whose names are fixed but which README.md's tables do not list
/// yet (a collector being written). Each must at least be emitted by the
/// source (`announced_metrics_exist`), and leaves this list once README.md
/// documents it (`readme_lags_behind`). Empty: README.md documents every
/// metric the dashboard reads.
const ANNOUNCED: [&str; 0] = [];

const DATASOURCE_UID: &str = "${datasource}";

const DASHBOARD: &str = "grafana/badgateway.json";

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

fn top_panels(d: &Value) -> &Vec<Value> {
    d["panels"]
        .as_array()
        .expect("dashboard.panels is an array")
}

/// Every panel, rows and the panels nested in collapsed rows included.
fn all_panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in top_panels(d) {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter());
        }
    }
    out
}

fn title(p: &Value) -> &str {
    p["title"].as_str().unwrap_or("<untitled>")
}

fn is_row(p: &Value) -> bool {
    p["type"] == "row"
}

/// Each expanded row with the top-level panels below it, up to the next
/// row (Grafana's own grouping); a collapsed row holds its own `panels`.
fn rows(d: &Value) -> Vec<(&Value, Vec<&Value>)> {
    let mut sorted: Vec<&Value> = top_panels(d).iter().collect();
    sorted.sort_by_key(|p| (p["gridPos"]["y"].as_i64(), p["gridPos"]["x"].as_i64()));
    let mut out: Vec<(&Value, Vec<&Value>)> = Vec::new();
    for p in sorted {
        if is_row(p) {
            let mut members = Vec::new();
            if p["collapsed"] == true {
                members.extend(p["panels"].as_array().into_iter().flatten());
            }
            out.push((p, members));
        } else if let Some((_, members)) = out.last_mut() {
            members.push(p);
        }
    }
    out
}

/// (where, expression) for every PromQL expression: panel targets, the
/// dashboard's annotation queries, and the selectors inside the query
/// variables' `label_values(...)`.
fn expressions(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in all_panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_else(|| {
                panic!("panel {:?} target {} has no expr", title(p), t["refId"])
            });
            out.push((
                format!("panel {} {:?} target {}", p["id"], title(p), t["refId"]),
                expr.to_owned(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = a["expr"].as_str() {
            out.push((format!("annotation {:?}", a["name"]), expr.to_owned()));
        }
    }
    for v in variables(d).values() {
        if v["type"] != "query" {
            continue;
        }
        let q = variable_query(v);
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| {
                panic!(
                    "variable {}: expected label_values(...), got {q:?}",
                    v["name"]
                )
            });
        // label_values(selector, label): the selector is everything before
        // the last comma.
        let (selector, _label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        out.push((
            format!("variable {}", v["name"]),
            selector.trim().to_owned(),
        ));
    }
    out
}

fn variables(d: &Value) -> BTreeMap<String, &Value> {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("variable name").to_owned(), v))
        .collect()
}

fn variable_query(v: &Value) -> String {
    match &v["query"] {
        Value::String(s) => s.clone(),
        q => q["query"].as_str().expect("variable query").to_owned(),
    }
}

// ------------------------------------------------------------------ names

/// The metric names documented in README.md: every backticked
/// `badgateway_...` (or recorded `badgateway:...`) in a table row, with
/// `{labels}` cut off. A name that starts with `_` (`_load5` after
/// `badgateway_host_load1`) replaces the last `_part` of the name before it
/// in the same row.
fn readme_metrics() -> BTreeSet<String> {
    let text = read("README.md");
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('|')) {
        let mut previous: Option<String> = None;
        for (i, code) in line.split('`').enumerate() {
            if i % 2 == 0 {
                continue; // outside backticks
            }
            let name = code.split('{').next().unwrap_or("").trim();
            let name = if name.starts_with("badgateway_") || name.starts_with("badgateway:") {
                name.to_owned()
            } else if name.starts_with('_') {
                match &previous {
                    Some(p) => format!("{}{name}", &p[..p.rfind('_').unwrap()]),
                    None => continue,
                }
            } else {
                continue;
            };
            if name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
            {
                previous = Some(name.clone());
                names.insert(name);
            }
        }
    }
    names
}

fn known_metrics() -> BTreeSet<String> {
    let mut names = readme_metrics();
    names.extend(["ALERTS", "up"].map(String::from));
    names.extend(ANNOUNCED.map(String::from));
    names
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end",
];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers outside
/// strings, label matchers `{...}`, ranges `[...]` and label lists
/// (`by (...)`, `on (...)`, ...) that are neither a function call,
/// an aggregation nor a keyword.
fn metric_names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' => i = skip_group(expr, i, b'{', b'}'),
            b'[' => i = skip_group(expr, i, b'[', b']'),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                i = after_identifier(expr, start, i, &mut names);
            }
            _ => i += 1,
        }
    }
    names
}

/// The identifier `expr[start..end]`: skips the label list it opens, or
/// pushes it to `names` unless it is a function, an aggregation or a
/// keyword. Returns where scanning goes on.
fn after_identifier(expr: &str, start: usize, end: usize, names: &mut Vec<String>) -> usize {
    let b = expr.as_bytes();
    let ident = &expr[start..end];
    let lower = ident.to_ascii_lowercase();
    let after = next_nonspace(b, end);
    if LABEL_LISTS.contains(&lower.as_str()) {
        if after < b.len() && b[after] == b'(' {
            return skip_group(expr, after, b'(', b')');
        }
    } else if AGGREGATIONS.contains(&lower.as_str())
        || KEYWORDS.contains(&lower.as_str())
        || (after < b.len() && b[after] == b'(')
    {
        // function, aggregation or keyword
    } else {
        names.push(ident.to_owned());
    }
    end
}

/// Skip from an opening byte at `i` to its closing one, strings inside
/// included; returns the index after the closing byte.
fn skip_group(expr: &str, mut i: usize, open: u8, close: u8) -> usize {
    let b = expr.as_bytes();
    let mut depth = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced {:?} in {expr:?}", open as char);
}

/// The index of the first non-space byte from `i`.
fn next_nonspace(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn badgateway_names(expr: &str) -> Vec<String> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = expr[from..].find("badgateway_") {
        let start = from + pos;
        let boundary =
            start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start + "badgateway_".len();
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_')
        {
            end += 1;
        }
        if boundary {
            out.push(expr[start..end].to_owned());
        }
        from = end;
    }
    out
}

#[test]
fn metric_name_extraction() {
    let e = r#"max by (instance, job) (rate(badgateway_a_total{status=~"5.*", x="on(y)"}[$__rate_interval]))
        and on(instance, job) group_left(site) badgateway_agent_site_info{site=~"$site"}
        / ignoring(stat) count without (le) (up offset 5m) * 2 or vector(0) unless time() > 1e3"#;
    assert_eq!(
        metric_names(e),
        ["badgateway_a_total", "badgateway_agent_site_info", "up"]
    );
    assert_eq!(
        badgateway_names(e),
        ["badgateway_a_total", "badgateway_agent_site_info"]
    );
}

#[test]
fn readme_table_parsing() {
    let names = readme_metrics();
    for n in [
        "badgateway_probe_success",
        "badgateway_icmp_rtt_seconds",
        "badgateway_host_load1",
        "badgateway_host_load5",
        "badgateway_host_load15",
        "badgateway_config_last_reload_success_timestamp_seconds",
        "badgateway_agent_site_info",
    ] {
        assert!(names.contains(n), "README.md parsing lost {n}: {names:?}");
    }
}

/// README.md lags behind for the announced metrics only: a name it
/// documents leaves `ANNOUNCED`, so that the list stays what it says.
#[test]
fn readme_lags_behind() {
    let readme = readme_metrics();
    let documented: Vec<&str> = ANNOUNCED
        .into_iter()
        .filter(|n| readme.contains(*n))
        .collect();
    assert!(
        documented.is_empty(),
        "README.md's metric tables document {documented:?}: remove them from ANNOUNCED"
    );
}

/// An announced metric that README.md does not list yet is at least a
/// quoted name in the exporter's source.
#[test]
fn announced_metrics_exist() {
    fn sources(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut src = String::new();
    sources(&root().join("src"), &mut src);
    let readme = readme_metrics();
    for n in ANNOUNCED {
        assert!(
            readme.contains(n) || src.contains(&format!("\"{n}\"")),
            "{n}: neither in README.md's tables nor a name in src/"
        );
    }
}

// ------------------------------------------------------------------ checks

#[test]
fn identity_and_schema() {
    let d = dashboard();
    assert_eq!(
        d["uid"], "badgateway",
        "the dashboard uid is what links and provisioning rely on"
    );
    assert!(d["schemaVersion"].as_i64().unwrap() >= 36, "schemaVersion");
    assert!(
        d.get("__inputs").is_none(),
        "no __inputs: the dashboard is provisioned, not imported"
    );
    let text = read(DASHBOARD);
    assert!(
        !text.contains("${DS_"),
        "no ${{DS_...}} import placeholders"
    );
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn variables_datasource_site_vantage() {
    let d = dashboard();
    let vars = variables(&d);
    let ds = vars.get("datasource").expect("variable datasource");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");

    for (name, query) in [
        ("site", "label_values(badgateway_probe_success, site)"),
        (
            "vantage",
            r#"label_values(badgateway_probe_success{site=~"$site"}, vantage)"#,
        ),
    ] {
        let v = vars.get(name).unwrap_or_else(|| panic!("variable {name}"));
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(variable_query(v), query, "{name}");
        assert_eq!(v["multi"], true, "{name} multi");
        assert_eq!(v["includeAll"], true, "{name} include all");
        assert_eq!(
            v["datasource"],
            serde_json::json!({"type": "prometheus", "uid": DATASOURCE_UID}),
            "{name} datasource"
        );
    }
}

#[test]
fn panel_ids_unique_and_grid_sane() {
    let d = dashboard();
    let mut ids = BTreeSet::new();
    for p in all_panels(&d) {
        let id = p["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("panel {:?} has no id", title(p)));
        assert!(
            ids.insert(id),
            "panel id {id} ({:?}) is used twice",
            title(p)
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_i64(),
            g["y"].as_i64(),
            g["w"].as_i64(),
            g["h"].as_i64(),
        );
        let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
            panic!("panel {id} {:?}: gridPos {g}", title(p));
        };
        assert!(
            x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= 24,
            "panel {id} {:?}: gridPos {g}",
            title(p)
        );
        if is_row(p) {
            assert_eq!((x, w, h), (0, 24, 1), "row {:?} spans the width", title(p));
        }
    }
}

fn overlaps(panels: &[&Value]) -> Vec<String> {
    let rect = |p: &Value| {
        let g = &p["gridPos"];
        let v = |k: &str| g[k].as_i64().unwrap();
        (v("x"), v("y"), v("x") + v("w"), v("y") + v("h"))
    };
    let mut found = Vec::new();
    for (i, a) in panels.iter().enumerate() {
        for b in &panels[i + 1..] {
            let (ax0, ay0, ax1, ay1) = rect(a);
            let (bx0, by0, bx1, by1) = rect(b);
            if ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1 {
                found.push(format!(
                    "{:?} {} and {:?} {}",
                    title(a),
                    a["gridPos"],
                    title(b),
                    b["gridPos"]
                ));
            }
        }
    }
    found
}

#[test]
fn no_panels_overlap() {
    let d = dashboard();
    let top: Vec<&Value> = top_panels(&d).iter().collect();
    let mut found = overlaps(&top);
    // Panels inside a collapsed row are laid out on their own when it opens.
    for row in top.iter().filter(|p| is_row(p) && p["collapsed"] == true) {
        let nested: Vec<&Value> = row["panels"].as_array().into_iter().flatten().collect();
        found.extend(overlaps(&nested));
    }
    assert!(
        found.is_empty(),
        "overlapping panels:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_panel_and_target_uses_the_datasource_variable() {
    let d = dashboard();
    let want = serde_json::json!({"type": "prometheus", "uid": DATASOURCE_UID});
    let mut with_targets = 0;
    for p in all_panels(&d) {
        assert_eq!(
            p["datasource"],
            want,
            "panel {} {:?} datasource",
            p["id"],
            title(p)
        );
        let targets = p["targets"].as_array();
        if let Some(ts) = targets {
            with_targets += 1;
            assert!(
                !ts.is_empty(),
                "panel {:?} has an empty targets list",
                title(p)
            );
            let mut refs = BTreeSet::new();
            for t in ts {
                assert_eq!(
                    t["datasource"],
                    want,
                    "panel {:?} target {} datasource",
                    title(p),
                    t["refId"]
                );
                assert!(
                    refs.insert(t["refId"].to_string()),
                    "panel {:?}: refId {} twice",
                    title(p),
                    t["refId"]
                );
            }
        } else {
            assert!(
                ["row", "text", "alertlist"].contains(&p["type"].as_str().unwrap_or("")),
                "panel {:?} ({}) has no targets",
                title(p),
                p["type"]
            );
        }
    }
    assert!(
        with_targets > 20,
        "only {with_targets} panels query anything"
    );
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if a.get("expr").is_some() {
            assert_eq!(a["datasource"], want, "annotation {:?}", a["name"]);
        }
    }
}

#[test]
fn every_metric_is_documented() {
    let d = dashboard();
    let known = known_metrics();
    let mut unknown = Vec::new();
    for (place, expr) in expressions(&d) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place}: no metric found in {expr:?}");
        for n in names.into_iter().chain(badgateway_names(&expr)) {
            if !known.contains(&n) {
                unknown.push(format!("{place}: {n}"));
            }
            if n.ends_with("_total") {
                assert!(
                    expr.contains("rate(") || expr.contains("increase("),
                    "{place}: counter {n} read without rate()/increase()"
                );
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics not in README.md's tables (nor ALERTS, up, or the announced ones):\n{}",
        unknown.join("\n")
    );
}

#[test]
fn one_row_per_cause_linking_its_runbook_sections() {
    let d = dashboard();
    let rows = rows(&d);
    assert_eq!(title(rows[0].0), "Verdict", "the verdict row comes first");
    for (cause, reasons) in site_causes() {
        let matching: Vec<_> = rows
            .iter()
            .filter(|(r, _)| {
                title(r).starts_with(&format!("Cause: {cause} "))
                    || r["repeat"].as_str().is_some_and(|s| s.contains(cause))
            })
            .collect();
        assert_eq!(matching.len(), 1, "exactly one row for cause {cause}");
        let (row, members) = matching[0];
        assert!(
            members.len() >= 3,
            "row {:?} proves little: {} panels",
            title(row),
            members.len()
        );
        // Every reason's runbook section is linked from the row, in a text
        // panel or a panel link.
        let mut text = String::new();
        for p in members {
            text.push_str(p["options"]["content"].as_str().unwrap_or(""));
            for l in p["links"].as_array().into_iter().flatten() {
                text.push_str(l["url"].as_str().unwrap_or(""));
                text.push('\n');
            }
        }
        for reason in reasons {
            let anchor = format!("runbook/{cause}.md#{reason}");
            assert!(
                text.contains(&anchor),
                "row {:?} does not link {anchor}",
                title(row)
            );
        }
    }
}

/// Alert list, runbook text panel, cause table and history over ALERTS.
#[test]
fn verdict_row_panels() {
    let d = dashboard();
    let panels = all_panels(&d);
    assert!(
        panels.iter().any(|p| p["type"] == "alertlist"),
        "an alert list panel"
    );
    assert!(
        panels.iter().any(|p| p["type"] == "text"
            && p["options"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("runbook/") && c.contains(".md#"))),
        "a text panel linking the runbook"
    );
    let rows = rows(&d);
    let verdict = &rows[0].1;
    let exprs = |p: &&Value| -> Vec<String> {
        p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["expr"].as_str().map(String::from))
            .collect()
    };
    let has = |kind: &str, needle: &str| {
        verdict
            .iter()
            .any(|p| p["type"] == kind && exprs(p).iter().any(|e| e.contains(needle)))
    };
    assert!(
        has("table", r#"ALERTS{alertstate="firing", cause!="""#),
        "cause firing now"
    );
    assert!(has("state-timeline", "ALERTS{"), "cause history");
    assert!(
        has("stat", "badgateway_forwarding_ip_blocked"),
        "forwarding flag"
    );
    assert!(
        has("timeseries", "badgateway_probe_success"),
        "proxy vs origin success"
    );
}

/// Links to the runbook point at sections that exist: the page of each
/// cause, docs/runbook/<cause>.md, has a section for every reason the
/// dashboard links.
#[test]
fn runbook_anchors_exist() {
    let anchors = runbook_anchors();
    let text = read(DASHBOARD);
    for (cause, reasons) in site_causes() {
        for r in &reasons {
            let link = format!("{cause}.md#{r}");
            assert!(
                text.contains(&format!("runbook/{link}")),
                "no link to {link}"
            );
            assert!(
                anchors.contains(&link),
                "docs/runbook/{cause}.md has no section #{r}"
            );
        }
    }
}

#[test]
fn provisioning_files() {
    let read = common::yaml::load;
    let ds = read("grafana/provisioning/datasources/prometheus.yml");
    let list = ds["datasources"].as_sequence().expect("datasources");
    let prom = list
        .iter()
        .find(|d| d["uid"].as_str() == Some("prometheus"))
        .expect("a datasource with uid prometheus");
    assert_eq!(prom["type"].as_str(), Some("prometheus"));
    assert_eq!(prom["url"].as_str(), Some("http://prometheus:9090"));

    let dash = read("grafana/provisioning/dashboards/badgateway.yml");
    let providers = dash["providers"].as_sequence().expect("providers");
    assert!(
        providers.iter().any(|p| p["type"].as_str() == Some("file")
            && p["options"]["path"].as_str() == Some("/var/lib/grafana/dashboards")),
        "a file provider reading /var/lib/grafana/dashboards"
    );
}

// ------------------------------------------------------------------ promtool

/// Grafana's variables replaced the way Grafana would send them.
fn substitute(expr: &str, values: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').expect("unclosed ${");
            let name = inner[..end].split(':').next().unwrap();
            (name, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        let value = values
            .get(name)
            .unwrap_or_else(|| panic!("unknown variable ${name} in {expr:?}"));
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

fn promtool_check_rules(file: &Path) -> std::process::Output {
    Command::new("promtool")
        .args(["check", "rules"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool must be installed (tests/run.sh installs Debian's prometheus package): {e}")
        })
}

#[test]
fn promtool_parses_every_expression() {
    let d = dashboard();
    let exprs = expressions(&d);
    // One site and vantage; several (Grafana's regex form of a multi-value);
    // and "All" (the variables' allValue).
    let variants: [(&str, &str); 3] = [
        ("shop", "fra1"),
        ("(shop|blog)", "(fra1|sgp1)"),
        (".*", ".*"),
    ];
    let mut yaml = String::from("groups:\n");
    for (n, (site, vantage)) in variants.iter().enumerate() {
        let values: BTreeMap<&str, &str> = [
            ("site", *site),
            ("vantage", *vantage),
            ("__rate_interval", "1m"),
            ("__interval", "30s"),
            ("__interval_ms", "30000"),
            ("__range", "3h"),
            ("__range_s", "10800"),
        ]
        .into_iter()
        .collect();
        yaml.push_str(&format!("  - name: dashboard_variant_{n}\n    rules:\n"));
        for (i, (place, expr)) in exprs.iter().enumerate() {
            let e = substitute(expr, &values);
            assert!(!e.contains('$'), "{place}: unsubstituted variable in {e:?}");
            // A JSON string is a valid YAML double-quoted scalar.
            yaml.push_str(&format!(
                "      # {place}\n      - record: dashboard:expr_{i}:variant_{n}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &yaml).unwrap();
    let out = promtool_check_rules(&file);
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!("SUCCESS: {} rules found", exprs.len() * variants.len());
    assert!(
        stdout.contains(&want),
        "promtool: expected {want:?}, got:\n{stdout}"
    );
}

/// The check above would prove nothing if promtool accepted anything.
#[test]
fn promtool_rejects_a_broken_expression() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.rules.yml");
    std::fs::write(
        &file,
        "groups:\n  - name: broken\n    rules:\n      - record: dashboard:broken\n        expr: \"sum by (site) (rate(badgateway_probe_success[1m])\"\n",
    )
    .unwrap();
    let out = promtool_check_rules(&file);
    assert!(
        !out.status.success(),
        "promtool accepted an unbalanced expression"
    );
}

/// The expression of the panel titled `panel`, target `ref_id`, with "All"
/// selected.
fn panel_expr(d: &Value, panel: &str, ref_id: &str) -> String {
    let p = all_panels(d)
        .into_iter()
        .find(|p| title(p) == panel)
        .unwrap_or_else(|| panic!("no panel titled {panel:?}"));
    let t = p["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["refId"] == ref_id)
        .unwrap_or_else(|| panic!("panel {panel:?} has no target {ref_id}"));
    let values: BTreeMap<&str, &str> =
        [("site", ".*"), ("vantage", ".*"), ("__rate_interval", "1m")]
            .into_iter()
            .collect();
    substitute(t["expr"].as_str().unwrap(), &values)
}

/// What the key panels compute, on sample series, with `promtool test
/// rules`: the cause history's encoding, the per-site join of agent metrics
/// when one origin serves two sites (no many-to-many error), the firewall
/// verdict's encoding, the refused share per client class, and the share
/// of vantages where a site works.
#[test]
fn key_panels_compute_what_they_say_on_sample_series() {
    let d = dashboard();
    let agent = r#"instance="origin1:9502", job="agent""#;
    let yaml = promtool_panel_test(&sample_series(agent), &panel_expectations(&d, agent));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.test.yml");
    std::fs::write(&file, &yaml).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool must be installed (tests/run.sh installs Debian's prometheus package): {e}")
        });
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}\n{yaml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The input series: alerts, an agent serving two sites, its firewall
/// verdicts and access log, and probes from two vantages.
fn sample_series(agent: &str) -> Vec<(String, &'static str)> {
    vec![
        (r#"ALERTS{alertname="BadGatewayForwardingIpBlocked", alertstate="firing", cause="forwarding_ip_blocked", reason="proxy_fails_origin_ok", severity="critical", site="shop"}"#.to_owned(), "1x10"),
        (r#"ALERTS{alertname="BadGatewayOriginSlow", alertstate="pending", cause="origin_abnormal", reason="origin_slow", severity="warning", site="blog"}"#.to_owned(), "1x10"),
        (format!(r#"badgateway_agent_site_info{{{agent}, site="shop"}}"#), "1x10"),
        (format!(r#"badgateway_agent_site_info{{{agent}, site="blog"}}"#), "1x10"),
        (format!(r#"badgateway_host_cpu_usage_ratio{{{agent}}}"#), "0.95x10"),
        (format!(r#"badgateway_firewall_verdict{{{agent}, range="198.51.100.0/24", verdict="blocked"}}"#), "1x10"),
        (format!(r#"badgateway_firewall_verdict{{{agent}, range="198.51.100.0/24", verdict="allowed"}}"#), "0x10"),
        (format!(r#"badgateway_firewall_verdict{{{agent}, range="203.0.113.0/24", verdict="blocked"}}"#), "0x10"),
        (format!(r#"badgateway_firewall_verdict{{{agent}, range="203.0.113.0/24", verdict="allowed"}}"#), "1x10"),
        (format!(r#"badgateway_access_log_responses_total{{{agent}, class="forwarding", status="403"}}"#), "0+60x10"),
        (format!(r#"badgateway_access_log_responses_total{{{agent}, class="forwarding", status="2xx"}}"#), "0+60x10"),
        (format!(r#"badgateway_access_log_responses_total{{{agent}, class="other", status="403"}}"#), "0+0x10"),
        (format!(r#"badgateway_access_log_responses_total{{{agent}, class="other", status="2xx"}}"#), "0+120x10"),
        (r#"badgateway_probe_success{instance="p1", job="prober", vantage="fra1", site="shop", path="proxy", address="198.51.100.10"}"#.to_owned(), "1x10"),
        (r#"badgateway_probe_success{instance="p2", job="prober", vantage="sgp1", site="shop", path="proxy", address="198.51.100.10"}"#.to_owned(), "0x10"),
        (r#"badgateway_probe_success{instance="p1", job="prober", vantage="fra1", site="shop", path="origin", address="203.0.113.5"}"#.to_owned(), "1x10"),
        (r#"badgateway_probe_success{instance="p2", job="prober", vantage="sgp1", site="shop", path="origin", address="203.0.113.5"}"#.to_owned(), "1x10"),
    ]
}

/// Each key panel's query and the samples it must give at 5m.
fn panel_expectations(d: &Value, agent: &str) -> Vec<(String, Vec<(String, f64)>)> {
    vec![
        (
            panel_expr(d, "Cause history", "A"),
            vec![("{}".into(), 2.0)],
        ),
        (
            panel_expr(d, "Cause history", "B"),
            vec![("{}".into(), 1.0)],
        ),
        (
            panel_expr(d, "Cause history", "C"),
            vec![("{}".into(), 0.0)],
        ),
        (
            panel_expr(d, "Origin CPU usage", "A"),
            vec![
                (format!(r#"{{{agent}, site="shop"}}"#), 0.95),
                (format!(r#"{{{agent}, site="blog"}}"#), 0.95),
            ],
        ),
        (
            panel_expr(d, "Firewall verdict per forwarding range", "A"),
            vec![
                (format!(r#"{{{agent}, range="198.51.100.0/24"}}"#), 3.0),
                (format!(r#"{{{agent}, range="203.0.113.0/24"}}"#), 0.0),
            ],
        ),
        (
            panel_expr(d, "Share of responses refused: forwarding vs other", "A"),
            vec![
                (format!(r#"{{{agent}, class="forwarding"}}"#), 0.5),
                (format!(r#"{{{agent}, class="other"}}"#), 0.0),
            ],
        ),
        (
            panel_expr(d, "Share of vantages where the site works", "A"),
            vec![
                (r#"{site="shop", path="proxy"}"#.into(), 0.5),
                (r#"{site="shop", path="origin"}"#.into(), 1.0),
            ],
        ),
    ]
}

/// A `promtool test rules` file: `input` series, and each of `cases`'
/// expressions with its expected samples.
fn promtool_panel_test(input: &[(String, &str)], cases: &[(String, Vec<(String, f64)>)]) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let mut yaml = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (series, values) in input {
        yaml.push_str(&format!(
            "      - series: {}\n        values: {}\n",
            q(series),
            q(values)
        ));
    }
    yaml.push_str("    promql_expr_test:\n");
    for (expr, samples) in cases {
        yaml.push_str(&format!(
            "      - expr: {}\n        eval_time: 5m\n        exp_samples:\n",
            q(expr)
        ));
        for (labels, value) in samples {
            yaml.push_str(&format!(
                "          - labels: {}\n            value: {value}\n",
                q(labels)
            ));
        }
    }
    yaml
}
