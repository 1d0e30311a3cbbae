//! The `access_log` collector: follows the web server's access log and
//! counts responses by source class and status, so that an origin that
//! refuses or rate-limits the proxy's forwarding IPs (403/429/503 to them,
//! 2xx to everyone else) shows in numbers.
//!
//! Metrics:
//! - `badgateway_access_log_responses_total{class,status}`: `class` is
//!   `forwarding` when the client address is inside one of
//!   `agent.forwarding_ranges`, else `other`; with no ranges configured
//!   every response is `other`, which still shows the origin's statuses.
//!   `status` is one of 403, 429, 444, 499, 500, 502, 503, 504 exactly, or
//!   else `1xx`..`5xx`. All 26 series exist from the start, at 0, so the
//!   first refusal is an increase rather than a new series.
//! - `badgateway_access_log_lines_total`: every line read.
//! - `badgateway_access_log_malformed_lines_total`: lines that do not fit
//!   the format, and lines longer than 16 KiB (skipped unbuffered).
//! - `badgateway_access_log_rotations_total`: the file was renamed away,
//!   deleted and created anew, or truncated in place.
//!
//! While the file is missing (at start, or for more than 5 s later) or
//! unreadable, `collect` fails with a message naming the path: the scrape
//! goes on with `badgateway_collector_success{collector="access_log"} 0`
//! and without these counters, which come back unchanged when the file
//! does. They never go backwards, so `rate()` sees no reset.
//!
//! Tailing polls the file every 250 ms (stat of the path: device and
//! inode; fstat of the open file: size) rather than using a crate:
//! - `linemux` 0.3 (last release 2022, on notify 5) was tried against the
//!   scenarios below: after a copytruncate followed by more writes it
//!   resumed at the old offset and lost lines, and once the file was
//!   deleted and created again it delivered nothing more. It also reads
//!   whole lines into an unbounded buffer.
//! - `notify` (inotify) only says that something changed; the rename,
//!   truncation and reopen handling is the same code either way, and
//!   inotify misses changes on network file systems and through some
//!   container bind mounts. A poll costs two stat calls.
//!
//! The poll starts at the end of the file (no history replayed); a file
//! renamed away is read on until it has been quiet for 10 s (the server
//! writes into it until it reopens its log) while the new one is read from
//! its start; a shrunken file, or one whose last bytes before our position
//! changed (truncated and written past that point between two polls), is
//! read again from 0; a file deleted and created later is read from its
//! start. Each open file has one fixed 64 KiB buffer.

pub mod count;
pub mod parse;
pub mod tail;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use prometheus::proto::MetricFamily;

use super::{Collector, CollectorError};
use crate::config::AccessLogConfig;
use crate::exposition::names;
use crate::exposition::Family;
use count::{LineCounter, Totals, CLASSES, STATUSES};
use parse::LineFormat;
use tail::Tailer;

/// How often the file is looked at; lines are counted within this delay.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What the background task leaves for `collect`.
#[derive(Default)]
struct Shared {
    totals: Totals,
    /// Why the log cannot be followed right now, if it cannot.
    problem: Mutex<Option<String>>,
}

impl Shared {
    fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }
}

pub struct AccessLogCollector {
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AccessLogCollector {
    /// Open the log (at its end) and start following it in a background
    /// task, stopped when the collector is dropped. Call inside a tokio
    /// runtime. A bad custom format or a missing runtime is not fatal:
    /// `collect` reports it.
    pub fn start(config: &AccessLogConfig, forwarding_ranges: &[IpNet]) -> AccessLogCollector {
        let shared = Arc::new(Shared::default());
        let format = match LineFormat::new(&config.format, &config.peer_variable) {
            Ok(f) => f,
            Err(e) => {
                shared.set_problem(Some(e.to_string()));
                return AccessLogCollector { shared, task: None };
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            shared.set_problem(Some(
                "access log collector started outside the runtime".into(),
            ));
            return AccessLogCollector { shared, task: None };
        };
        let (tailer, problem) = Tailer::new(&config.path);
        shared.set_problem(problem.map(|e| e.to_string()));
        let counter = LineCounter::new(format, forwarding_ranges);
        let task = runtime.spawn(follow(tailer, counter, Arc::clone(&shared)));
        AccessLogCollector {
            shared,
            task: Some(task),
        }
    }
}

/// Poll the file forever. Reads are blocking file I/O, so each poll runs
/// on the blocking pool and hands the tailer back.
async fn follow(mut tailer: Tailer, mut counter: LineCounter, shared: Arc<Shared>) {
    loop {
        let job = tokio::task::spawn_blocking(move || {
            let polled = tailer.poll(&mut counter);
            (tailer, counter, polled)
        });
        let (t, c, polled) = match job.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "access log tailer stopped");
                shared.set_problem(Some(format!("access log tailer stopped: {e}")));
                return;
            }
        };
        (tailer, counter) = (t, c);
        shared.totals.add(&counter.take());
        shared.set_problem(polled.problem.map(|e| e.to_string()));
        if !polled.more {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for AccessLogCollector {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Collector for AccessLogCollector {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError> {
        let problem = self
            .shared
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(p) = problem.as_ref() {
            return Err(CollectorError::new(p.clone()));
        }
        drop(problem);
        let c = self.shared.totals.get();
        let mut responses = Family::counter(
            names::ACCESS_LOG_RESPONSES_TOTAL,
            "Responses in the web server's access log, by client class (forwarding: from agent.forwarding_ranges) and status.",
        );
        for (class, row) in CLASSES.iter().zip(&c.responses) {
            for (status, n) in STATUSES.iter().zip(row) {
                responses.push(&[("class", class), ("status", status)], *n as f64);
            }
        }
        let single = |name: &str, help: &str, n: u64| {
            let mut f = Family::counter(name, help);
            f.push(&[], n as f64);
            f.into_family()
        };
        Ok(vec![
            responses.into_family(),
            single(
                names::ACCESS_LOG_LINES_TOTAL,
                "Lines read from the access log.",
                c.lines,
            ),
            single(
                names::ACCESS_LOG_MALFORMED_LINES_TOTAL,
                "Access log lines that did not fit the configured format, or longer than 16 KiB.",
                c.malformed,
            ),
            single(
                names::ACCESS_LOG_ROTATIONS_TOTAL,
                "Times the access log was renamed away, deleted and created anew, or truncated.",
                c.rotations,
            ),
        ])
    }
}
