// Why one file: one test over recordings, with the recorder, the Prometheus
// runner and the comparison it needs.
//! One verdict: on the same evidence, the crate's verdict (what
//! `diagnose` says) and the alert rules (what pages) name the same cause
//! and reason.
//!
//! The evidence is recorded, not made up: `tests/fixtures/verdict/` holds,
//! per lab scenario and vantage, what a prober and the origin's agent
//! exported, scraped twice a few rounds apart once the scenario's alert
//! fired (`BADGATEWAY_LAB_CAPTURE=dir cargo test --test lab` records them;
//! see the README). Each recording is judged twice:
//!
//! - by the crate: `diagnosis::evidence::from_metrics` over the two
//!   scrapes, then `diagnosis::judge`;
//! - by the rules: the recording becomes promtool input series (gauges
//!   held at their last value, counters rising at the rate the two scrapes
//!   measured) over 30 minutes of 15-second scrapes, as one prober and one
//!   agent would give Prometheus, and `promtool test rules` runs the
//!   project's rules over them.
//!
//! For each, the firing alerts of the site causes must be the crate's cause
//! (or none when the crate says healthy or names an exporter reason), and
//! the crate's reason must be firing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use badgateway_exporter::diagnosis::evidence::{agent_from_metrics, from_metrics, samples, Scrape};
use badgateway_exporter::diagnosis::{judge, Cause, Verdict};
use common::paths;
use serde::Deserialize;
use serde_norway::{Mapping, Value};

/// The causes a site's failures are put down to (alerts of these, beside
/// the exporter's own).
const SITE_CAUSES: [Cause; 4] = [
    Cause::ForwardingIpBlocked,
    Cause::OriginAbnormal,
    Cause::NetworkLinkage,
    Cause::Proxy,
];

/// Scrapes in the synthesized series, 15 s apart: 30 minutes, longer than
/// any rule's window plus its `for:`.
const STEPS: u32 = 120;
const STEP_SECONDS: u32 = 15;

#[derive(Deserialize)]
struct Meta {
    deployment: String,
    scenario: String,
    vantage: String,
    site: String,
    seconds: f64,
    captured_at: f64,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    cause: String,
    reason: String,
}

struct Recording {
    name: String,
    meta: Meta,
    prober: (String, String),
    agent: Option<(String, String)>,
}

fn fixtures() -> PathBuf {
    paths::root().join("tests/fixtures/verdict")
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn recordings() -> Vec<Recording> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("tests/fixtures/verdict")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let meta: Meta = serde_norway::from_str(
                &read(&dir, "meta.yml").unwrap_or_else(|| panic!("{name}: no meta.yml")),
            )
            .unwrap_or_else(|e| panic!("{name}/meta.yml: {e}"));
            let pair = |who: &str| {
                Some((
                    read(&dir, &format!("{who}.before.prom"))?,
                    read(&dir, &format!("{who}.after.prom"))?,
                ))
            };
            Recording {
                prober: pair("prober").unwrap_or_else(|| panic!("{name}: no prober scrapes")),
                agent: pair("agent"),
                name,
                meta,
            }
        })
        .collect()
}

/// The crate's verdict on a recording.
fn crate_verdict(r: &Recording) -> Verdict {
    let agent = r.agent.as_ref().map(|(before, after)| {
        agent_from_metrics(
            &Scrape::parse(after),
            Some((&Scrape::parse(before), r.meta.seconds)),
        )
    });
    let evidence = from_metrics(
        &r.meta.site,
        &Scrape::parse(&r.prober.1),
        &Scrape::parse(&r.prober.0),
        agent,
    );
    judge(&evidence)
}

/// `(cause, reason)` of the verdict, or `None` when healthy or when no
/// cause explains the failures.
fn named(v: &Verdict) -> Option<(&'static str, &'static str)> {
    v.first().map(|f| (f.cause().as_str(), f.reason.as_str()))
}

/// Family types from the `# TYPE` lines.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("# TYPE ")?.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

fn is_counter(types: &BTreeMap<String, String>, name: &str) -> bool {
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| {
            name.strip_suffix(s).filter(|f| {
                types
                    .get(*f)
                    .is_some_and(|t| t == "histogram" || t == "summary")
            })
        })
        .unwrap_or(name);
    matches!(
        types.get(family).map(String::as_str),
        Some("counter" | "histogram" | "summary")
    )
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn quote(v: &str) -> String {
    format!(
        "\"{}\"",
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

/// promtool input series for one target's two scrapes, with the labels
/// Prometheus adds.
fn series(
    before: &str,
    after: &str,
    target: &[(&str, &str)],
    seconds: f64,
    captured_at: f64,
    out: &mut Vec<Value>,
) {
    let types = types(after);
    let earlier = samples(before);
    for s in samples(after) {
        let mut labels: Vec<(String, String)> = s.labels.clone();
        let was = earlier
            .iter()
            .find(|e| e.name == s.name && e.labels == s.labels)
            .map(|e| e.value);
        for (k, v) in target {
            labels.push(((*k).to_owned(), (*v).to_owned()));
        }
        labels.sort();
        let selector = format!(
            "{}{{{}}}",
            s.name,
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", quote(v)))
                .collect::<Vec<_>>()
                .join(",")
        );
        let values = if is_counter(&types, &s.name) {
            // Rising at the measured rate (a reset between the scrapes:
            // from the later value).
            let rate = match was {
                Some(w) if s.value >= w && seconds > 0.0 => (s.value - w) / seconds,
                _ => 0.0,
            };
            format!(
                "{}+{}x{STEPS}",
                number(s.value),
                number(rate * f64::from(STEP_SECONDS))
            )
        } else if s.name.ends_with("_timestamp_seconds") {
            // A time: as far from the evaluation's end as from the capture.
            let end = f64::from(STEPS * STEP_SECONDS);
            format!("{}x{STEPS}", number(s.value - captured_at + end))
        } else {
            format!("{}x{STEPS}", number(s.value))
        };
        let mut m = Mapping::new();
        m.insert("series".into(), selector.into());
        m.insert("values".into(), values.into());
        out.push(Value::Mapping(m));
    }
}

fn up(job: &str, instance: &str, vantage: Option<&str>, value: u8) -> Value {
    let mut labels = format!("instance={},job={}", quote(instance), quote(job));
    if let Some(v) = vantage {
        write!(labels, ",vantage={}", quote(v)).unwrap();
    }
    let mut m = Mapping::new();
    m.insert("series".into(), format!("up{{{labels}}}").into());
    m.insert("values".into(), format!("{value}x{STEPS}").into());
    Value::Mapping(m)
}

fn expr_test(expr: String, expected: Option<&str>) -> Value {
    let mut t = Mapping::new();
    t.insert("expr".into(), expr.into());
    t.insert(
        "eval_time".into(),
        format!("{}s", STEPS * STEP_SECONDS).into(),
    );
    let samples: Vec<Value> = expected
        .map(|labels| {
            let mut s = Mapping::new();
            s.insert("labels".into(), labels.into());
            s.insert("value".into(), 1.into());
            Value::Mapping(s)
        })
        .into_iter()
        .collect();
    t.insert("exp_samples".into(), Value::Sequence(samples));
    Value::Mapping(t)
}

/// The promtool test group of one recording, expecting what the crate
/// said.
fn test_group(r: &Recording, verdict: Option<(&str, &str)>) -> Value {
    let m = &r.meta;
    let mut input = Vec::new();
    let instance = format!("{}:9502", m.vantage);
    series(
        &r.prober.0,
        &r.prober.1,
        &[
            ("instance", &instance),
            ("job", "badgateway"),
            ("vantage", &m.vantage),
        ],
        m.seconds,
        m.captured_at,
        &mut input,
    );
    input.push(up("badgateway", &instance, Some(&m.vantage), 1));
    let agent = ("origin:9502", "badgateway-agent");
    match &r.agent {
        Some((before, after)) => {
            series(
                before,
                after,
                &[("instance", agent.0), ("job", agent.1)],
                m.seconds,
                m.captured_at,
                &mut input,
            );
            input.push(up(agent.1, agent.0, None, 1));
        }
        None => input.push(up(agent.1, agent.0, None, 0)),
    }
    let causes = SITE_CAUSES
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("|");
    let site_cause = verdict
        .map(|(c, _)| c)
        .filter(|c| SITE_CAUSES.iter().any(|s| s.as_str() == *c));
    let mut tests = vec![expr_test(
        format!("group by (cause) (ALERTS{{alertstate=\"firing\",cause=~\"{causes}\"}})"),
        site_cause.map(|c| format!("{{cause=\"{c}\"}}")).as_deref(),
    )];
    if let Some((cause, reason)) = verdict {
        tests.push(expr_test(
            format!("group(ALERTS{{alertstate=\"firing\",cause=\"{cause}\",reason=\"{reason}\"}})"),
            Some("{}"),
        ));
    }
    let mut g = Mapping::new();
    g.insert("name".into(), r.name.clone().into());
    g.insert("interval".into(), format!("{STEP_SECONDS}s").into());
    g.insert("input_series".into(), Value::Sequence(input));
    g.insert("promql_expr_test".into(), Value::Sequence(tests));
    Value::Mapping(g)
}

fn describe(v: Option<(&str, &str)>) -> String {
    v.map_or("healthy".into(), |(c, r)| format!("{c}/{r}"))
}

#[test]
fn the_crate_and_the_rules_agree_on_the_recorded_lab() {
    let recs = recordings();
    assert!(
        recs.len() >= 20,
        "only {} recordings in tests/fixtures/verdict",
        recs.len()
    );
    let mut table = String::new();
    let mut groups = Vec::new();
    let mut named_causes = BTreeSet::new();
    for r in &recs {
        let v = crate_verdict(r);
        let n = named(&v);
        writeln!(
            table,
            "{:<90} expected {:<45} crate {}",
            r.name,
            format!("{}/{}", r.meta.expected.cause, r.meta.expected.reason),
            describe(n)
        )
        .unwrap();
        if r.meta.expected.cause == "none" {
            assert!(
                v.healthy(),
                "{} ({} / {}): a healthy baseline, but the crate says {}",
                r.name,
                r.meta.deployment,
                r.meta.scenario,
                describe(n)
            );
        }
        if let Some((c, _)) = n {
            named_causes.insert(c);
        }
        groups.push(test_group(r, n));
    }
    eprintln!("{table}");
    // The recordings are worth something only if they hold every cause.
    for c in Cause::ALL {
        assert!(
            named_causes.contains(c.as_str()),
            "no recording where the crate names {}: record the lab again",
            c.as_str()
        );
    }
    let files = write_test_files(&recs, groups);
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .args(&files)
        .output()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    if !out.status.success() {
        let report = each_failing_file_alone(&files);
        panic!("the rules disagree with the crate:\n{report}\nverdicts:\n{table}");
    }
}

/// One file per recording, kept under the target directory so that a
/// failure can be run again by hand: promtool names each file.
fn write_test_files(recs: &[Recording], groups: Vec<Value>) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("verdict-parity");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    recs.iter()
        .zip(groups)
        .map(|(r, g)| write_test_file(&dir, &r.name, g))
        .collect()
}

/// promtool's report interleaves its streams: name each failing recording
/// by running it alone; the failing files and their output.
fn each_failing_file_alone(files: &[PathBuf]) -> String {
    let mut report = String::new();
    for f in files {
        let one = Command::new("promtool")
            .args(["test", "rules"])
            .arg(f)
            .output()
            .expect("promtool");
        if !one.status.success() {
            writeln!(
                report,
                "{}:\n{}{}",
                f.display(),
                String::from_utf8_lossy(&one.stdout),
                String::from_utf8_lossy(&one.stderr)
            )
            .unwrap();
        }
    }
    report
}

/// A promtool test file of one group over the project's rules.
fn write_test_file(dir: &Path, name: &str, group: Value) -> PathBuf {
    let rules = paths::rule_files()
        .iter()
        .map(|f| f.to_string_lossy().into_owned().into())
        .collect();
    let mut file = Mapping::new();
    file.insert("rule_files".into(), Value::Sequence(rules));
    file.insert(
        "evaluation_interval".into(),
        format!("{STEP_SECONDS}s").into(),
    );
    file.insert("tests".into(), Value::Sequence(vec![group]));
    let path = dir.join(format!("{name}.test.yml"));
    std::fs::write(
        &path,
        serde_norway::to_string(&Value::Mapping(file)).unwrap(),
    )
    .unwrap();
    path
}

/// The comparison can fail: a recording of a blocked forwarding IP, judged
/// by the rules against a verdict it does not hold, is found out.
#[test]
fn a_disagreement_is_found() {
    let recs = recordings();
    let r = recs
        .iter()
        .find(|r| named(&crate_verdict(r)).is_some_and(|(c, _)| c == "forwarding_ip_blocked"))
        .expect("a recording the crate puts down to a blocked forwarding IP");
    let dir = tempfile::tempdir().unwrap();
    let path = write_test_file(
        dir.path(),
        "wrong",
        test_group(r, Some(("origin_abnormal", "web_service_down"))),
    );
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        !out.status.success(),
        "promtool accepted a verdict the rules do not hold for {}",
        r.name
    );
}
