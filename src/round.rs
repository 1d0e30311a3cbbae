//! One probe round of a site: every (path, address) probed at once, HTTP
//! and ICMP, and the forwarding flag decided from that same round. The
//! scheduler runs rounds on each site's interval; `diagnose` runs one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;

use crate::config::{Address, IcmpSettings, Site};
use crate::diagnosis;
use crate::probe::http::{self, Destination};
use crate::probe::icmp::Pingers;
use crate::probe::{IcmpOutcome, Path};
use crate::results::{SiteResult, TargetResult};

/// What a round of one site needs.
pub struct SiteProber {
    pub site: Site,
    pub tls: Arc<rustls::ClientConfig>,
    pub icmp: IcmpSettings,
    pub pingers: Arc<Pingers>,
}

impl SiteProber {
    pub async fn round(self: &Arc<Self>) -> SiteResult {
        let mut probes = JoinSet::new();
        let proxies: Vec<Option<Address>> = if self.site.proxy.is_empty() {
            vec![None]
        } else {
            self.site.proxy.iter().cloned().map(Some).collect()
        };
        let targets = proxies.into_iter().map(|a| (Path::Proxy, a)).chain(
            self.site
                .origin
                .iter()
                .cloned()
                .map(|a| (Path::Origin, Some(a))),
        );
        for (order, (path, address)) in targets.enumerate() {
            let me = Arc::clone(self);
            probes.spawn(async move { (order, me.probe_target(path, address).await) });
        }
        let mut targets = Vec::new();
        while let Some(done) = probes.join_next().await {
            match done {
                Ok(t) => targets.push(t),
                Err(e) => tracing::error!(site = %self.site.name, error = %e, "probe task failed"),
            }
        }
        targets.sort_by_key(|(order, _)| *order);
        let targets: Vec<TargetResult> = targets.into_iter().map(|(_, t)| t).collect();
        let blocked = diagnosis::forwarding_ip_blocked_in(&targets);
        SiteResult {
            targets,
            forwarding_ip_blocked: blocked,
            finished: SystemTime::now(),
        }
    }

    async fn probe_target(&self, path: Path, address: Option<Address>) -> TargetResult {
        let label = match &address {
            Some(a) => a.to_string(),
            None => self.site.host().to_owned(),
        };
        let destination = match &address {
            Some(a) => Destination::Pinned(a),
            None => Destination::Dns,
        };
        let ping_to = address.as_ref().map(|a| a.ip);
        let (outcome, icmp) = match ping_to {
            // A known address: HTTP and ICMP at once.
            Some(ip) => tokio::join!(
                http::probe(&self.site, destination, &self.tls),
                self.ping(ip)
            ),
            // Found by DNS: ping what the HTTP probe resolved.
            None => {
                let outcome = http::probe(&self.site, destination, &self.tls).await;
                let icmp = match outcome.resolved {
                    Some(ip) => self.ping(ip).await,
                    None => None,
                };
                (outcome, icmp)
            }
        };
        if let Some(err) = outcome.error {
            tracing::debug!(site = %self.site.name, %path, address = %label, error = %err,
                detail = outcome.detail.as_deref().unwrap_or(""), "probe failed");
        }
        TargetResult {
            path,
            address: label,
            http: outcome,
            icmp,
        }
    }

    async fn ping(&self, ip: IpAddr) -> Option<IcmpOutcome> {
        if !self.site.icmp {
            return None;
        }
        let wait = self.site.timeout.min(Duration::from_secs(5));
        let (count, interval) = (self.icmp.count, self.icmp.interval);
        let round = self
            .pingers
            .round(ip, self.site.source_address, count, interval, wait)
            .await;
        // A socket that cannot be opened is logged once by the pingers.
        round.ok()
    }
}
