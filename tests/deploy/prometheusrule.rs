//! The PrometheusRule, generated from `rules/` by
//! `deploy/kubernetes/generate-prometheusrule.sh`: the same rules, and
//! Prometheus accepts them.

use std::process::Command;

use crate::common::paths::{read, root};
use crate::common::proc::must;
use crate::common::yaml::{docs as yaml_docs, parse as yaml};
use crate::tools::{tempdir, write};

const RULES: &str = "rules/badgateway.rules.yml";
const PROMETHEUSRULE: &str = "deploy/kubernetes/prometheusrule.yaml";
const GENERATOR: &str = "deploy/kubernetes/generate-prometheusrule.sh";

/// What generate-prometheusrule.sh writes: its header, then the rules file
/// with two spaces before every non-empty line.
fn generate_prometheusrule(script: &str, rules: &str) -> String {
    let header: String = script
        .split_once("<<'HEADER'\n")
        .and_then(|(_, rest)| rest.split_once("\nHEADER\n"))
        .map(|(h, _)| format!("{h}\n"))
        .expect("the script's HEADER here-document");
    let mut out = header;
    for line in rules.split_inclusive('\n') {
        if !line.starts_with('\n') {
            out.push_str("  ");
        }
        out.push_str(line);
    }
    out
}

#[test]
fn prometheusrule_is_the_rules_file() {
    let script = read(GENERATOR);
    let rules = read(RULES);
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
    assert_eq!(spec, yaml(&rules));
    let dir = tempdir();
    let f = dir.path().join("spec.rules.yml");
    write(&f, &serde_norway::to_string(&spec).unwrap());
    must(Command::new("promtool").args(["check", "rules"]).arg(&f));

    // A changed rule makes the check fail.
    let changed = rules.replacen("for: 1m", "for: 2m", 1);
    assert_ne!(changed, rules);
    assert_ne!(generate_prometheusrule(&script, &changed), committed);
}
