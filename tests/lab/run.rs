// Why one file: a scenario run and its checks (what fired, what must stay
// quiet, recovery, the dashboard) share one timeline and its report.
//! Runs one deployment's scenarios in order: the healthy baseline first,
//! then each fault injected, its alert awaited (bounded), held where it
//! must not flap, removed, and recovery awaited. Every miss is a problem;
//! the table of what fired and when is the report.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::world::{self, Deployment, World, SITE_CAUSES};

pub type Step = Box<dyn Fn(&mut World) + Send + Sync>;

pub struct Scenario {
    pub name: &'static str,
    pub cause: &'static str,
    pub reason: &'static str,
    /// What `diagnose` from the first vantage names: the same cause, except
    /// where one vantage cannot see it (then `healthy`).
    pub diagnose: &'static str,
    pub inject: Step,
    pub remove: Step,
    pub within: Duration,
    /// Once fired, the alert must stay firing this long: a fault that fails
    /// a share of the requests must not flap.
    pub steady: Duration,
    /// A further check once it fired: a problem, if any.
    pub check: Option<fn(&World) -> Option<String>>,
    /// The fault reaches beyond its namespaces (CPU load: every agent
    /// reads the one /proc/stat): inject it only once every other
    /// deployment has finished.
    pub alone: bool,
}

/// Deployments still running; a scenario that must run alone waits for
/// the others to finish.
pub static RUNNING: (std::sync::Mutex<usize>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Mark this deployment finished.
pub fn finished() {
    let (count, changed) = &RUNNING;
    *count.lock().unwrap() -= 1;
    changed.notify_all();
}

fn wait_alone() {
    let (count, changed) = &RUNNING;
    let mut n = count.lock().unwrap();
    while *n > 1 {
        n = changed.wait(n).unwrap();
    }
}

/// With `BADGATEWAY_LAB_CAPTURE` set, each scenario's metrics are recorded
/// there once its alert fires (see `World::capture`).
fn capture_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("BADGATEWAY_LAB_CAPTURE").map(Into::into)
}

pub fn scenario(
    name: &'static str,
    (cause, reason): (&'static str, &'static str),
    within: u64,
    inject: impl Fn(&mut World) + Send + Sync + 'static,
    remove: impl Fn(&mut World) + Send + Sync + 'static,
) -> Scenario {
    Scenario {
        name,
        cause,
        reason,
        diagnose: if cause == "exporter" {
            "exporter"
        } else {
            cause
        },
        inject: Box::new(inject),
        remove: Box::new(remove),
        within: Duration::from_secs(within),
        steady: Duration::ZERO,
        check: None,
        alone: false,
    }
}

/// The host a scenario's firewall rule goes on.
#[derive(Clone, Copy)]
pub enum On {
    Origin,
    Router,
}

impl On {
    fn host(self, w: &World) -> &crate::common::Netns {
        match self {
            On::Origin => &w.lab.origin,
            On::Router => &w.lab.router,
        }
    }
}

/// A scenario whose fault is one iptables rule on `on`: appended, then
/// deleted.
pub fn with_rule(
    name: &'static str,
    expected: (&'static str, &'static str),
    within: u64,
    on: On,
    rule: &'static str,
) -> Scenario {
    scenario(
        name,
        expected,
        within,
        move |w| world::iptables(on.host(w), "-A", rule),
        move |w| world::iptables(on.host(w), "-D", rule),
    )
}

/// What a deployment's run found.
pub struct Report {
    pub name: &'static str,
    pub rows: Vec<String>,
    pub problems: Vec<String>,
    /// Dashboard panels (by title) that returned data during a scenario of
    /// their row's cause.
    pub panels_with_data: BTreeSet<String>,
    pub seconds: f64,
}

fn join(set: &BTreeSet<(String, String)>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(|(c, r)| format!("{c}/{r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Exporter alerts that may fire in a scenario without being a problem:
/// the deployment's own, the expected one, and those that follow from a
/// dead origin host (its agent cannot be scraped).
fn tolerated(d: &Deployment, s: Option<&Scenario>, cause: &str, reason: &str) -> bool {
    cause == "exporter"
        && (d.baseline_exporter.contains(&reason)
            || s.is_some_and(|s| s.reason == reason)
            || reason == "target_down"
            || reason == "collector_failing")
}

pub fn run(d: &Deployment, scenarios: Vec<Scenario>) -> Report {
    let started = Instant::now();
    let mut w = world::build(d);
    (d.prepare)(&w);
    let panels = world::dashboard_panels();
    let mut report = Report {
        name: d.name,
        rows: Vec::new(),
        problems: Vec::new(),
        panels_with_data: BTreeSet::new(),
        seconds: 0.0,
    };
    if let Err(problem) = wait_up_and_settled(d, &w) {
        report.problems.push(problem);
        return report;
    }
    std::thread::sleep(Duration::from_secs(10));
    report.rows.push(baseline(d, &w, &mut report.problems));
    if let Some(into) = capture_dir() {
        w.capture(&into, "healthy baseline", ("none", "none"));
    }

    for s in scenarios {
        run_scenario(d, &mut w, &s, &panels, &mut report);
    }
    if !report.problems.is_empty() {
        report.problems.push(w.logs());
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// Waits until every target is up, then until the deployment has settled:
/// every request through the proxy works, and what the deployment expects
/// of the exporter alerts fires. The problem, with the logs, if not.
fn wait_up_and_settled(d: &Deployment, w: &World) -> Result<(), String> {
    let targets = if d.proxy_host_site.is_some() { 4 } else { 3 };
    let up = world::wait_for(Duration::from_secs(60), || {
        let r = w.query("sum(up{job=~\"badgateway.*\"})");
        (r.first()?["value"][1].as_str()? == targets.to_string()).then_some(())
    });
    if up.is_none() {
        return Err(format!("targets not up: {:?}\n{}", w.query("up"), w.logs()));
    }
    let settled = world::wait_for(Duration::from_secs(90), || {
        let failing = w.query("badgateway_probe_success{path=\"proxy\"} == 0");
        let working = w.query("badgateway_probe_success{path=\"proxy\"} == 1");
        let exporter = w.alerts("firing", "exporter");
        let expected = d
            .baseline_exporter
            .iter()
            .all(|r| exporter.contains(&("exporter".to_owned(), (*r).to_owned())));
        (failing.is_empty() && !working.is_empty() && expected).then_some(())
    });
    if settled.is_none() {
        return Err(format!(
            "not settled: proxy probes {:?}, exporter alerts {}\n{}",
            w.query("badgateway_probe_success{path=\"proxy\"}"),
            join(&w.alerts("firing", "exporter")),
            w.logs()
        ));
    }
    Ok(())
}

/// One scenario into the report: its row, its problems, and the panels of
/// its cause that showed data while it fired.
fn run_scenario(
    d: &Deployment,
    w: &mut World,
    s: &Scenario,
    panels: &[(String, String, Vec<String>)],
    report: &mut Report,
) {
    let mut problems = Vec::new();
    let (row, fired) = one(d, w, s, panels, &mut problems);
    if fired {
        for (cause, title, exprs) in panels {
            if cause == s.cause && exprs.iter().any(|e| !w.query(e).is_empty()) {
                report.panels_with_data.insert(title.clone());
            }
        }
    }
    eprintln!(
        "lab {} / {}: {}",
        d.name,
        s.name,
        if problems.is_empty() {
            "ok".into()
        } else {
            problems.join("; ")
        }
    );
    report.rows.push(row);
    report.problems.extend(
        problems
            .into_iter()
            .map(|p| format!("{} / {}: {p}", d.name, s.name)),
    );
}

fn baseline(d: &Deployment, w: &World, problems: &mut Vec<String>) -> String {
    let firing = w.firing();
    let wrong: BTreeSet<_> = firing
        .iter()
        .filter(|(c, r)| !tolerated(d, None, c, r))
        .cloned()
        .collect();
    if !wrong.is_empty() {
        problems.push(format!("{}: healthy, but firing: {}", d.name, join(&wrong)));
    }
    let (diagnosed, answer) = w.diagnose();
    if diagnosed != "healthy" {
        problems.push(format!(
            "{}: healthy, but diagnose named {diagnosed}: {answer}",
            d.name
        ));
    }
    format!(
        "| {} | healthy baseline | none | {} | - | {} |",
        d.name,
        join(&firing),
        diagnosed
    )
}

/// One scenario: returns its table row and whether its alert fired.
fn one(
    d: &Deployment,
    w: &mut World,
    s: &Scenario,
    panels: &[(String, String, Vec<String>)],
    problems: &mut Vec<String>,
) -> (String, bool) {
    let _ = panels;
    if s.alone {
        wait_alone();
    }
    w.sink.lock().unwrap().clear();
    let started = Instant::now();
    (s.inject)(w);
    let want = (s.cause.to_owned(), s.reason.to_owned());
    let hit = world::wait_for(s.within, || {
        let f = w.firing();
        f.contains(&want).then_some(f)
    });
    let mut diagnosed = String::from("-");
    let (fired, seconds) = match &hit {
        Some((f, _)) => (f.clone(), Some(started.elapsed().as_secs_f64())),
        None => {
            problems.push(format!(
                "{}/{} did not fire within {:?}",
                s.cause, s.reason, s.within
            ));
            (w.firing(), None)
        }
    };
    if hit.is_some() {
        diagnosed = check_while_firing(d, w, s, &fired, started, problems);
    }
    (s.remove)(w);
    check_recovered(d, w, problems);
    let row = format!(
        "| {} | {} | {}/{} | {} | {} | {} |",
        d.name,
        s.name,
        s.cause,
        s.reason,
        join(&fired),
        seconds.map_or("-".into(), |s| format!("{s:.1}")),
        diagnosed
    );
    (row, hit.is_some())
}

/// Once the scenario's alert fired: capture, no other cause firing, the
/// webhook notified, `diagnose`'s answer, the scenario's own check, held
/// without flapping, no other cause notified. Returns what `diagnose`
/// named.
fn check_while_firing(
    d: &Deployment,
    w: &World,
    s: &Scenario,
    fired: &BTreeSet<(String, String)>,
    started: Instant,
    problems: &mut Vec<String>,
) -> String {
    if let Some(into) = capture_dir() {
        w.capture(&into, s.name, (s.cause, s.reason));
    }
    let others: Vec<_> = fired
        .iter()
        .filter(|(c, r)| c != s.cause && !tolerated(d, Some(s), c, r))
        .collect();
    if !others.is_empty() {
        problems.push(format!("other causes fired: {others:?}"));
    }
    if !webhook_notified(w, s) {
        problems.push("no notification at the webhook".into());
    }
    let (diagnosed, answer) = w.diagnose();
    if diagnosed != s.diagnose {
        problems.push(format!(
            "diagnose named {diagnosed}, not {}: {answer}",
            s.diagnose
        ));
    }
    if let Some(problem) = s.check.and_then(|c| c(w)) {
        problems.push(problem);
    }
    check_held(w, s, started, problems);
    let leaked = notified_other_causes(d, w, s);
    if !leaked.is_empty() {
        problems.push(format!("notified other causes: {leaked:?}"));
    }
    diagnosed
}

/// Whether the webhook sink got a firing notification for the scenario's
/// (cause, reason) within 15 s.
fn webhook_notified(w: &World, s: &Scenario) -> bool {
    let notified = world::wait_for(Duration::from_secs(15), || {
        let got = w.sink.lock().unwrap();
        got.iter()
            .any(|n| {
                n["status"] == "firing"
                    && n["alerts"].as_array().is_some_and(|a| {
                        a.iter().any(|x| {
                            x["labels"]["reason"] == s.reason && x["labels"]["cause"] == s.cause
                        })
                    })
            })
            .then_some(())
    });
    notified.is_some()
}

/// Held: no fire/resolve cycle while the fault lasts (`s.steady`).
fn check_held(w: &World, s: &Scenario, started: Instant, problems: &mut Vec<String>) {
    let want = (s.cause.to_owned(), s.reason.to_owned());
    let until = Instant::now() + s.steady;
    while Instant::now() < until {
        if !w.firing().contains(&want) {
            problems.push(format!(
                "resolved after {:.1} s while the fault went on",
                started.elapsed().as_secs_f64()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Firing alerts the webhook got for causes other than the scenario's and
/// not tolerated, as `cause/reason`.
fn notified_other_causes(d: &Deployment, w: &World, s: &Scenario) -> Vec<String> {
    w.sink
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "firing")
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|x| x["status"] == "firing")
        .map(|x| {
            (
                x["labels"]["cause"].as_str().unwrap_or("").to_owned(),
                x["labels"]["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .filter(|(c, r)| c != s.cause && !tolerated(d, Some(s), c, r))
        .map(|(c, r)| format!("{c}/{r}"))
        .collect()
}

/// Recovered: nothing firing, and nothing pending that could fire during
/// the next scenario, but what the deployment always has.
fn check_recovered(d: &Deployment, w: &World, problems: &mut Vec<String>) {
    let recovered = world::wait_for(Duration::from_secs(120), || {
        let left: BTreeSet<_> = w
            .alerts("firing|pending", ".+")
            .into_iter()
            .filter(|(c, r)| !(c == "exporter" && d.baseline_exporter.contains(&r.as_str())))
            .collect();
        left.is_empty().then_some(())
    });
    if recovered.is_none() {
        problems.push(format!(
            "not recovered: {}",
            join(&w.alerts("firing|pending", SITE_CAUSES))
        ));
    }
}
