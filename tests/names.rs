//! Every metric name the rules, the dashboard, the runbook, the README and
//! the deployment files speak of is one the exporter writes
//! (`exposition::names::ALL`) or one the rules record; and the README
//! names every metric the exporter writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use badgateway_exporter::exposition::names;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `rules/*.rules.yml`: one file per cause and the shared recording rules.
fn rule_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("rules"))
        .expect("rules/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the rules file records and how its groups are named.
fn recorded() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut records = BTreeSet::new();
    let mut groups = BTreeSet::new();
    let docs: Vec<serde_norway::Value> = rule_files()
        .iter()
        .map(|f| serde_norway::from_str(&read(f)).expect("rules parse"))
        .collect();
    for g in docs
        .iter()
        .flat_map(|d| d["groups"].as_sequence().expect("groups"))
    {
        groups.insert(g["name"].as_str().expect("group name").to_owned());
        for r in g["rules"].as_sequence().expect("rules") {
            if let Some(name) = r["record"].as_str() {
                records.insert(name.to_owned());
            }
        }
    }
    assert!(!records.is_empty() && !groups.is_empty());
    (records, groups)
}

/// Every token of `text` that looks like one of our series' names:
/// `badgateway_…`, or a recorded `level:badgateway_…:ops` / `badgateway:…`.
fn tokens(text: &str) -> BTreeSet<String> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    text.split(|c: char| !is_word(c))
        .map(|t| t.trim_matches(':'))
        .filter(|t| {
            t.contains("badgateway_")
                || (t.contains(':') && t.split(':').any(|p| p == "badgateway"))
        })
        .map(str::to_owned)
        .collect()
}

/// The tokens of `text` that name nothing: neither a written metric (or a
/// prefix of some, as in `badgateway_host_*`), nor a recorded series, nor a
/// rule group, nor the crate.
fn unknown(text: &str, records: &BTreeSet<String>, groups: &BTreeSet<String>) -> Vec<String> {
    tokens(text)
        .into_iter()
        .filter(|t| {
            let known = if let Some(prefix) = t.strip_suffix('_') {
                // A wildcard such as `badgateway_*` or `badgateway_host_*`.
                names::ALL
                    .iter()
                    .any(|n| n.starts_with(&format!("{prefix}_")))
            } else if t.contains(':') {
                records.contains(t)
            } else {
                names::ALL.contains(&t.as_str()) || groups.contains(t) || t == "badgateway_exporter"
            };
            !known
        })
        .collect()
}

/// The written metrics `text` never names. A family written as one row of
/// a table (`badgateway_host_load1`, `_load5`, `_load15`) counts: its
/// suffixes stand for the whole name.
fn unnamed(text: &str) -> Vec<&'static str> {
    let said = tokens(text);
    names::ALL
        .iter()
        .copied()
        .filter(|n| {
            !said.contains(*n) && {
                // `_load5` after `badgateway_host_load1` in one line.
                let (stem, last) = n.rsplit_once('_').unwrap();
                !text
                    .lines()
                    .any(|l| l.contains(&format!("{stem}_")) && l.contains(&format!("`_{last}`")))
            }
        })
        .collect()
}

fn files() -> Vec<PathBuf> {
    let r = root();
    let mut out = vec![
        r.join("README.md"),
        r.join("grafana/badgateway.json"),
        r.join("grafana/README.md"),
        r.join("deploy/README.md"),
        r.join("deploy/kubernetes/prometheusrule.yaml"),
    ];
    out.extend(rule_files());
    for dir in ["rules/tests", "docs", "docs/runbook"] {
        for e in std::fs::read_dir(r.join(dir)).expect(dir) {
            let p = e.unwrap().path();
            if !out.contains(&p) && p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn every_name_spoken_of_is_written_or_recorded() {
    let (records, groups) = recorded();
    let mut problems = Vec::new();
    for f in files() {
        for t in unknown(&read(&f), &records, &groups) {
            problems.push(format!(
                "{}: {t}",
                f.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "names that the exporter does not write and the rules do not record:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_names_every_written_metric() {
    let missing = unnamed(&read(&root().join("README.md")));
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}

/// The two checks above can fail: a made-up name is caught, and so is a
/// README that leaves a metric out.
#[test]
fn the_checks_catch_what_they_look_for() {
    let (records, groups) = recorded();
    let text = "sum(badgateway_probe_success) + badgateway_no_such_metric \
                + site:badgateway_site_fails + site:badgateway_not_recorded \
                + badgateway_host_* + badgateway_nothing_*";
    assert_eq!(
        unknown(text, &records, &groups),
        [
            "badgateway_no_such_metric",
            "badgateway_nothing_",
            "site:badgateway_not_recorded"
        ]
    );
    let readme = read(&root().join("README.md"));
    let without = readme.replace(names::VANTAGE_UP, "badgateway_vantage");
    assert_eq!(unnamed(&without), [names::VANTAGE_UP]);
    let without = readme.replace("`_load15`", "");
    assert_eq!(unnamed(&without), [names::HOST_LOAD15]);
}

/// The README's collector table is the registered table: same names, same
/// order, same words.
#[test]
fn the_readme_lists_the_registered_collectors() {
    let readme = read(&root().join("README.md"));
    let rows: Vec<(String, String)> = readme
        .lines()
        .skip_while(|l| *l != "| collector | reports |")
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].trim_matches('`').to_owned(), cells[1].to_owned())
        })
        .collect();
    let registered: Vec<(String, String)> = badgateway_exporter::agent::COLLECTORS
        .iter()
        .map(|c| (c.name.to_owned(), c.about.to_owned()))
        .collect();
    assert_eq!(rows, registered, "README's collector table");
}
