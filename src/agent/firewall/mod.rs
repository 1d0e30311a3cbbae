//! The firewall collector: what this host's own firewall does with a new
//! TCP connection from each forwarding range to each web port.
//!
//! A background task reads the rules (`iptables-save`, `ip6tables-save`,
//! `nft -j list ruleset`; never at scrape time) at start, within a fraction
//! of a second of every ruleset change that `nft monitor` reports (nftables
//! and iptables-nft), and every 30 s besides; every 5 s instead where no
//! change can be heard (no `nft`, or iptables on the legacy backend). It
//! compiles
//! them into the small language of [`model`] and runs it as the kernel
//! would ([`verdict`]). Each range gets one verdict — `allowed`, `blocked`,
//! `rate_limited` or `unknown` — combined over its addresses and the web
//! ports by the precedence documented on [`FirewallVerdict`].
//!
//! In `auto` mode both backends are read and a range is as bad as the
//! worse of the two (a drop in either is final in the kernel). Tables that
//! iptables-nft made appear in nft's listing too, with their extension
//! matches unreadable; the nftables side skips them when iptables-save has
//! read them.
//!
//! Until the first evaluation has finished (normally milliseconds after
//! start), `collect` reports only the range count rather than block a
//! scrape.

use crate::exposition::names;

mod command;
mod evaluate;
#[cfg(test)]
mod fixtures;
mod ipt_lex;
mod ipt_match;
pub mod iptables;
pub mod model;
mod nft_expr;
pub mod nftables;
pub mod verdict;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::proto::MetricFamily;

use super::{Collector, CollectorError, Os};
use crate::config::{AgentConfig, FirewallMode};
use crate::exposition::Family;
pub use command::CommandError;
pub use evaluate::{evaluate, judge_outputs, Captured, Evaluation, FirewallError, Outputs};
pub use verdict::{FirewallVerdict, RangeVerdict};

/// How often the rules are read again while changes are heard.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// How often they are read where no change can be heard.
pub const DEAF_INTERVAL: Duration = Duration::from_secs(5);
/// A burst of changes (a ruleset restored rule by rule) is read once, this
/// long after its last change.
const SETTLE: Duration = Duration::from_millis(200);

enum State {
    /// `firewall: off`: nothing to report.
    Off,
    /// No forwarding ranges: nothing to judge.
    NoRanges,
    Pending,
    Done(Evaluation, SystemTime),
    Failed(String),
}

/// The collector; see the module documentation.
pub struct FirewallCollector {
    state: Arc<Mutex<State>>,
    ranges: usize,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FirewallCollector {
    /// Starts the background evaluation (first one at once, then every
    /// [`INTERVAL`]). Call inside the tokio runtime; the task stops when
    /// the collector is dropped.
    pub fn start(config: &AgentConfig, os: &Os) -> FirewallCollector {
        FirewallCollector::start_every(config, os, INTERVAL)
    }

    /// [`start`](Self::start) with another interval.
    pub fn start_every(config: &AgentConfig, os: &Os, interval: Duration) -> FirewallCollector {
        let ranges = config.forwarding_ranges.len();
        let (state, run) = if config.firewall == FirewallMode::Off {
            (State::Off, false)
        } else if ranges == 0 {
            // The agent says once that no ranges are configured.
            (State::NoRanges, false)
        } else {
            (State::Pending, true)
        };
        let state = Arc::new(Mutex::new(state));
        let mut task = None;
        if run {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    let job = Arc::new((config.clone(), os.clone()));
                    task = Some(handle.spawn(run_loop(job, Arc::clone(&state), interval)));
                }
                Err(_) => {
                    *lock(&state) = State::Failed(
                        "the firewall collector was started outside the tokio runtime".into(),
                    );
                }
            }
        }
        FirewallCollector {
            state,
            ranges,
            task,
        }
    }
}

impl Drop for FirewallCollector {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run_loop(job: Arc<(AgentConfig, Os)>, state: Arc<Mutex<State>>, interval: Duration) {
    let mut changes = Monitor::start(&job.1.nft_monitor);
    let mut legacy = false;
    loop {
        let legacy_seen = evaluate_once(&job, &state).await;
        legacy = legacy_seen.unwrap_or(legacy);
        let heard = changes.running() && !legacy;
        let wait = if heard {
            interval
        } else {
            interval.min(DEAF_INTERVAL)
        };
        changes.next_change(wait).await;
    }
}

/// One evaluation into `state`; whether legacy iptables was read, when it
/// worked.
async fn evaluate_once(job: &Arc<(AgentConfig, Os)>, state: &Mutex<State>) -> Option<bool> {
    let job = Arc::clone(job);
    // The commands and the evaluation block: off the async workers.
    let result = tokio::task::spawn_blocking(move || evaluate(&job.0, &job.1)).await;
    let next = match result {
        Ok(Ok(eval)) => {
            tracing::debug!(ranges = eval.ranges.len(), "firewall evaluated");
            State::Done(eval, SystemTime::now())
        }
        Ok(Err(e)) => State::Failed(e.to_string()),
        Err(e) => State::Failed(format!("the firewall evaluation failed: {e}")),
    };
    let legacy = match &next {
        State::Done(eval, _) => Some(eval.legacy_iptables),
        _ => None,
    };
    *lock(state) = next;
    legacy
}

/// `nft monitor` as a child: a line for every ruleset change. Killed when
/// dropped, with the collector.
struct Monitor {
    lines: Option<tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>>,
    _child: Option<tokio::process::Child>,
}

impl Monitor {
    fn start(argv: &[String]) -> Monitor {
        let spawned = argv.split_first().map(|(cmd, args)| {
            tokio::process::Command::new(cmd)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
        });
        match spawned {
            Some(Ok(mut child)) => {
                let lines = child
                    .stdout
                    .take()
                    .map(|out| tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(out)));
                Monitor {
                    lines,
                    _child: Some(child),
                }
            }
            other => {
                if let Some(Err(e)) = other {
                    tracing::debug!(command = %argv.join(" "), error = %e, "no ruleset change events; the firewall is polled every 5 s");
                }
                Monitor {
                    lines: None,
                    _child: None,
                }
            }
        }
    }

    fn running(&self) -> bool {
        self.lines.is_some()
    }

    /// Wait for a change (then for the burst to settle) or for `wait`.
    async fn next_change(&mut self, wait: Duration) {
        let Some(lines) = self.lines.as_mut() else {
            tokio::time::sleep(wait).await;
            return;
        };
        match tokio::time::timeout(wait, lines.next_line()).await {
            Err(_) => return,
            Ok(Ok(Some(_))) => {}
            Ok(_) => {
                // The monitor ended: poll from now on.
                tracing::debug!("nft monitor ended; the firewall is polled every 5 s");
                self.lines = None;
                return;
            }
        }
        // Drain the rest of the burst.
        while let Ok(Ok(Some(_))) = tokio::time::timeout(SETTLE, lines.next_line()).await {}
    }
}

impl Collector for FirewallCollector {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError> {
        let mut count = Family::gauge(
            names::FIREWALL_FORWARDING_RANGES,
            "Forwarding ranges the firewall collector judges (agent.forwarding_ranges).",
        );
        count.push(&[], self.ranges as f64);
        match &*lock(&self.state) {
            State::Off => Ok(Vec::new()),
            State::NoRanges => Ok(vec![count.into_family()]),
            // The first evaluation is under way (it takes milliseconds): no
            // verdict yet is not a failure of the collector.
            State::Pending => Ok(vec![count.into_family()]),
            State::Failed(e) => Err(CollectorError::new(format!("firewall: {e}"))),
            State::Done(eval, at) => {
                let mut out = families(eval, *at);
                out.push(count.into_family());
                Ok(out)
            }
        }
    }
}

fn families(eval: &Evaluation, at: SystemTime) -> Vec<MetricFamily> {
    let mut verdict = Family::gauge(
        names::FIREWALL_VERDICT,
        "1 for what this host's firewall does with new TCP connections from the forwarding range to the web ports: allowed, blocked, rate_limited or unknown.",
    );
    let mut port = Family::gauge(
        names::FIREWALL_PORT_VERDICT,
        "1 for the firewall's verdict on new TCP connections from the forwarding range to this web port.",
    );
    let mut blocked = Family::gauge(
        names::FIREWALL_FORWARDING_RANGE_BLOCKED,
        "1 when this host's firewall drops or rejects new connections from (part of) the forwarding range to a web port.",
    );
    for r in &eval.ranges {
        let range = r.range.to_string();
        verdict.push(&[("range", &range), ("verdict", r.verdict.as_str())], 1.0);
        blocked.push(
            &[("range", &range)],
            f64::from(u8::from(r.verdict == FirewallVerdict::Blocked)),
        );
        for (p, v) in &r.ports {
            port.push(
                &[
                    ("range", &range),
                    ("port", &p.to_string()),
                    ("verdict", v.as_str()),
                ],
                1.0,
            );
        }
    }
    let mut rules = Family::gauge(
        names::FIREWALL_RULES,
        "Firewall rules read at the last evaluation, per backend.",
    );
    for (backend, n) in &eval.rules {
        rules.push(&[("backend", backend)], *n as f64);
    }
    let mut when = Family::gauge(
        names::FIREWALL_EVALUATION_TIMESTAMP_SECONDS,
        "When the firewall rules were last read and judged.",
    );
    when.push(
        &[],
        at.duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    );
    [verdict, port, blocked, rules, when]
        .into_iter()
        .map(Family::into_family)
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}
