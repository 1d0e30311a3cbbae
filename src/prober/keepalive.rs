//! The origin's idle timeout against the proxy's. A proxy that keeps
//! connections to the origin open reuses an idle one for the next request;
//! an origin that closes idle connections sooner than the proxy stops
//! reusing them races it, and the requests that hit a connection the origin
//! is closing fail with a 502: the classic intermittent 502 behind a load
//! balancer. The watch asks each origin address once with keep-alive, then
//! holds the connection idle until the origin closes it or the proxy's own
//! idle timeout (plus a second) has passed; one address at a time, one
//! connection per site, again every interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::prober::probe::http::{hold_idle, Idle};
use crate::prober::round::SiteProber;

/// Held this much past the proxy's idle timeout: an origin still open then
/// outlasts the proxy.
const MARGIN: Duration = Duration::from_secs(1);

/// Idle connections held at once over all sites. Each holds a file
/// descriptor for up to the proxy's idle timeout, and the probes need
/// theirs: with many sites the watches take turns (an origin's idle timeout
/// is a setting, rarely changed), never the probes' sockets.
const HELD_AT_ONCE: usize = 32;
static HELD: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HELD_AT_ONCE);

/// The watch of one origin address: its last two measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginIdle {
    /// The `address` label of the origin target.
    pub address: String,
    pub last: Idle,
    pub before: Option<Idle>,
}

impl OriginIdle {
    /// The origin closed an idle connection sooner than the proxy's idle
    /// timeout twice in a row: one early close (a restart, a crash) is not
    /// a setting.
    pub fn mismatch(&self, proxy_idle: Duration) -> bool {
        let early = |i: &Idle| matches!(i, Idle::Closed(d) if *d < proxy_idle);
        early(&self.last) && self.before.as_ref().is_some_and(early)
    }

    /// The origin's idle timeout in seconds as measured: +Inf when it
    /// outlasted the watch, 0 when it keeps nothing open, `None` when the
    /// last watch got no answer.
    pub fn seconds(&self) -> Option<f64> {
        match &self.last {
            Idle::Closed(d) => Some(d.as_secs_f64()),
            Idle::StillOpen => Some(f64::INFINITY),
            Idle::NoKeepAlive => Some(0.0),
            Idle::Failed(_) => None,
        }
    }
}

/// The watches of a site's origin addresses, shared between the watch task
/// and the site's rounds, which copy them into each result.
pub type Watches = Arc<Mutex<Vec<OriginIdle>>>;

/// Watch every origin address of the site in turn, forever; `None` when
/// the site's `proxy_idle_timeout` is `off`.
pub async fn watch(prober: Arc<SiteProber>, watches: Watches) {
    let site = &prober.site;
    let Some(proxy_idle) = site.proxy_idle_timeout else {
        return;
    };
    loop {
        for address in &site.origin {
            let Ok(_turn) = HELD.acquire().await else {
                return;
            };
            let idle = hold_idle(site, address, &prober.tls, proxy_idle + MARGIN).await;
            let label = address.to_string();
            let mut all = watches.lock().unwrap_or_else(|p| p.into_inner());
            match all.iter_mut().find(|w| w.address == label) {
                Some(w) => {
                    let before = std::mem::replace(&mut w.last, idle);
                    w.before = Some(before);
                }
                None => all.push(OriginIdle {
                    address: label,
                    last: idle,
                    before: None,
                }),
            }
        }
        tokio::time::sleep(site.interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(last: Idle, before: Option<Idle>) -> OriginIdle {
        OriginIdle {
            address: "203.0.113.5".into(),
            last,
            before,
        }
    }

    #[test]
    fn a_mismatch_takes_two_early_closes() {
        let s = Duration::from_secs;
        let proxy = s(60);
        assert!(watched(Idle::Closed(s(5)), Some(Idle::Closed(s(5)))).mismatch(proxy));
        assert!(!watched(Idle::Closed(s(5)), None).mismatch(proxy));
        assert!(!watched(Idle::Closed(s(5)), Some(Idle::StillOpen)).mismatch(proxy));
        assert!(!watched(Idle::Closed(s(5)), Some(Idle::Failed("x".into()))).mismatch(proxy));
        assert!(!watched(Idle::Closed(s(75)), Some(Idle::Closed(s(75)))).mismatch(proxy));
        assert!(!watched(Idle::NoKeepAlive, Some(Idle::NoKeepAlive)).mismatch(proxy));
        assert_eq!(
            watched(Idle::StillOpen, None).seconds(),
            Some(f64::INFINITY)
        );
        assert_eq!(watched(Idle::NoKeepAlive, None).seconds(), Some(0.0));
        assert_eq!(watched(Idle::Failed("x".into()), None).seconds(), None);
    }
}
