//! The PrometheusRule, generated from `rules/` by
//! `deploy/kubernetes/generate-prometheusrule.sh`: the same rules, and
//! Prometheus accepts them.

use std::process::Command;

use crate::common::paths::{read, root, rule_files, rule_groups};
use crate::common::proc::must;
use crate::common::yaml::docs as yaml_docs;
use crate::tools::{tempdir, write};

const PROMETHEUSRULE: &str = "deploy/kubernetes/prometheusrule.yaml";
const GENERATOR: &str = "deploy/kubernetes/generate-prometheusrule.sh";

/// What generate-prometheusrule.sh writes: its header, then each rule file
/// (name, text) after a comment naming it, less its `groups:` line, with
/// two spaces before every non-empty line.
fn generate_prometheusrule(script: &str, rules: &[(String, String)]) -> String {
    let header: String = script
        .split_once("<<'HEADER'\n")
        .and_then(|(_, rest)| rest.split_once("\nHEADER\n"))
        .map(|(h, _)| format!("{h}\n"))
        .expect("the script's HEADER here-document");
    let mut out = header;
    for (name, text) in rules {
        out.push_str(&format!("  # ----- rules/{name}\n"));
        for line in text.split_inclusive('\n') {
            if line == "groups:\n" {
                continue;
            }
            if !line.starts_with('\n') {
                out.push_str("  ");
            }
            out.push_str(line);
        }
    }
    out
}

/// Every file of rules/, by name, with its text.
fn rules() -> Vec<(String, String)> {
    rule_files()
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name.clone(), read(&format!("rules/{name}")))
        })
        .collect()
}

#[test]
fn prometheusrule_is_the_rules_files() {
    let script = read(GENERATOR);
    let rules = rules();
    let committed = read(PROMETHEUSRULE);
    let generated = generate_prometheusrule(&script, &rules);
    assert!(
        generated == committed,
        "{PROMETHEUSRULE} is stale: run {GENERATOR}"
    );
    // The script itself prints the same.
    let printed = must(Command::new("sh").arg(root().join(GENERATOR)).arg("-"));
    assert_eq!(printed, committed, "{GENERATOR} - differs from the file");

    // Same rules, as data; and Prometheus accepts them.
    let spec = yaml_docs(&committed).remove(0)["spec"].clone();
    assert_eq!(spec, rule_groups());
    let dir = tempdir();
    let f = dir.path().join("spec.rules.yml");
    write(&f, &serde_norway::to_string(&spec).unwrap());
    must(Command::new("promtool").args(["check", "rules"]).arg(&f));

    // A changed rule makes the check fail.
    let mut changed = rules.clone();
    changed[1].1 = changed[1].1.replacen("for: 1m", "for: 2m", 1);
    assert_ne!(changed, rules);
    assert_ne!(generate_prometheusrule(&script, &changed), committed);
}
