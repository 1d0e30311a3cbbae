//! When a path loses echoes, find where the loss starts: a path probe
//! (`probe::path`) of the lossiest target, started after a round that saw
//! loss, at most one at a time per site and once a minute per target. Its
//! result is kept until the next one and copied into every round.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::prober::probe::path::{self, Trace};
use crate::prober::probe::Path;
use crate::prober::results::{SiteResult, TargetResult};
use crate::prober::round::SiteProber;

/// A target's path is probed again no sooner than this.
const MIN_GAP: Duration = Duration::from_secs(60);

/// The last path probe of one target.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetTrace {
    pub path: Path,
    /// The target's `address` label.
    pub address: String,
    pub trace: Trace,
    pub at: SystemTime,
}

#[derive(Default)]
struct State {
    running: bool,
    /// Raw sockets are not allowed here: no more path probes.
    unavailable: bool,
    started: HashMap<(Path, String), Instant>,
    done: Vec<TargetTrace>,
}

/// A site's path probes, shared by its rounds and the probe in flight.
#[derive(Clone, Default)]
pub struct Traces(Arc<Mutex<State>>);

impl Traces {
    /// The last path probe of each target of the latest round (those of
    /// targets gone were dropped by `after_round`; a probe finishing since
    /// is of a target of that round).
    pub fn current(&self) -> Vec<TargetTrace> {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state.done.clone()
    }

    /// After a round: probe the path of its lossiest target, if one lost
    /// echoes while others came back, none is being probed, and it was not
    /// probed within a minute.
    pub fn after_round(&self, prober: &Arc<SiteProber>, result: &SiteResult) {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Targets gone from the round (an edge address DNS no longer gives)
        // take their probe and its time with them.
        let present = |path: Path, address: &str| {
            result
                .targets
                .iter()
                .any(|t| t.path == path && t.address == address)
        };
        state
            .started
            .retain(|(path, address), _| present(*path, address));
        state.done.retain(|d| present(d.path, &d.address));
        if state.running || state.unavailable {
            return;
        }
        let now = Instant::now();
        let Some((t, ip)) = lossiest(result, |t| {
            state
                .started
                .get(&(t.path, t.address.clone()))
                .is_none_or(|at| now.duration_since(*at) >= MIN_GAP)
        }) else {
            return;
        };
        state.running = true;
        state.started.insert((t.path, t.address.clone()), now);
        let (path, address) = (t.path, t.address.clone());
        let source = prober.site.source_on(path);
        let site = prober.site.name.clone();
        let me = self.clone();
        tokio::spawn(async move {
            let probe = tokio::task::spawn_blocking(move || {
                path::trace(ip, source, path::Settings::default())
            });
            let done = probe.await;
            let mut state = me.0.lock().unwrap_or_else(|p| p.into_inner());
            state.running = false;
            match done {
                Ok(Ok(trace)) => {
                    state
                        .done
                        .retain(|d| (d.path, &d.address) != (path, &address));
                    state.done.push(TargetTrace {
                        path,
                        address,
                        trace,
                        at: SystemTime::now(),
                    });
                }
                Ok(Err(e)) => {
                    state.unavailable = true;
                    tracing::warn!(%site, error = %e, "cannot probe where a path's loss starts (raw ICMP sockets need CAP_NET_RAW); path probes are off for this site");
                }
                Err(_) => {}
            }
        });
    }
}

/// The target whose echoes lost the most this round (some came back: a
/// path that answers nothing is down, not lossy), measured by ICMP, with
/// the address it was probed at.
fn lossiest(
    result: &SiteResult,
    due: impl Fn(&TargetResult) -> bool,
) -> Option<(&TargetResult, IpAddr)> {
    result
        .targets
        .iter()
        .filter(|t| !t.icmp_silent)
        .filter_map(|t| {
            let echoes = t.icmp.filter(|e| e.received > 0 && e.received < e.sent)?;
            let ip = t.http.resolved.or_else(|| t.address.parse().ok())?;
            Some((t, ip, echoes.loss_ratio()))
        })
        .filter(|(t, _, _)| due(t))
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .map(|(t, ip, _)| (t, ip))
}
