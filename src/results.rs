//! The latest probe results, written by the scheduler's site tasks and read
//! by a scrape. A scrape never waits on a probe: it only takes a read lock
//! long enough to clone the entries the last rounds left here. Each entry
//! carries its own rendering as metrics, made once when the round ends, so
//! a scrape only concatenates.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::metrics::SiteExposition;
use crate::probe::{HttpOutcome, IcmpOutcome, Path};

/// What one round found on one (path, address) of a site.
#[derive(Clone, Debug)]
pub struct TargetResult {
    pub path: Path,
    /// The `address` label: the configured address, or the URL host when
    /// the proxy is found by DNS.
    pub address: String,
    pub http: HttpOutcome,
    /// `None` when ICMP is off for the site or could not run.
    pub icmp: Option<IcmpOutcome>,
}

/// What the last complete round of a site found.
#[derive(Clone, Debug)]
pub struct SiteResult {
    pub targets: Vec<TargetResult>,
    pub forwarding_ip_blocked: bool,
    pub finished: SystemTime,
}

/// A site's latest result with its metrics already rendered.
#[derive(Debug)]
pub struct SiteEntry {
    pub result: SiteResult,
    pub exposition: SiteExposition,
}

#[derive(Default)]
pub struct Results {
    sites: RwLock<BTreeMap<String, Arc<SiteEntry>>>,
}

impl Results {
    pub fn new() -> Results {
        Results::default()
    }

    pub fn record(&self, site: &str, result: SiteResult) {
        let entry = Arc::new(SiteEntry {
            exposition: SiteExposition::render(site, &result),
            result,
        });
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        match sites.get_mut(site) {
            Some(slot) => *slot = entry,
            None => {
                sites.insert(site.to_owned(), entry);
            }
        }
    }

    /// Forget sites that are no longer configured, after a reload.
    pub fn retain_sites(&self, keep: impl Fn(&str) -> bool) {
        let mut sites = self.sites.write().unwrap_or_else(|p| p.into_inner());
        sites.retain(|name, _| keep(name));
    }

    /// The latest entries, in site-name order.
    pub fn snapshot(&self) -> Vec<Arc<SiteEntry>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.values().cloned().collect()
    }

    /// The latest result of one site.
    pub fn site(&self, name: &str) -> Option<Arc<SiteEntry>> {
        let sites = self.sites.read().unwrap_or_else(|p| p.into_inner());
        sites.get(name).cloned()
    }
}
