//! Cause `exporter`: what the prober cannot see: its own network is cut
//! off, the origin does not admit its direct probes, or the proxy answers
//! it with pages of its own.
//!
//! Rules (`rules/exporter.rules.yml`):
//! `BadGatewayVantageCutOff` (from the record `badgateway:vantage_cut_off`),
//! `BadGatewayOriginNotProbeable`, `BadGatewaySiteFailsOriginNotProbeable`,
//! `BadGatewayProxyOwnAnswer`; and the exporter's own health
//! (`BadGatewayExporterDown`, `BadGatewayCollectorFailing`,
//! `BadGatewayConfigReloadFailed`, `BadGatewayProbesStale`).

use std::collections::HashSet;

use super::answer::Kind;
use super::evidence::Evidence;
use super::forwarding::origin_refused_forwarding;
use super::thresholds::*;
use super::{Reason, Verdict};
use crate::prober::probe::Path;
use crate::prober::results::SiteResult;

/// Addresses that must all go silent at once, when the failures are not
/// this host's own, before the prober blames its own network: a proxy and
/// an origin both down is a site's outage; three addresses and more, all
/// the sites this prober watches, is the prober.
pub const CUT_OFF_ADDRESSES: usize = 3;

/// This prober's own network is cut off: in the latest round of every site
/// nothing came back from any address, and every failure was this host's
/// own (no route out, no name resolution, no source address), or at least
/// [`CUT_OFF_ADDRESSES`] different addresses went silent together. A
/// prober that could not open a socket for some request (out of file
/// descriptors or ports) is cut off too, whatever else came back: its
/// failures say nothing about the sites.
pub fn vantage_cut_off<'a>(rounds: impl IntoIterator<Item = &'a SiteResult>) -> bool {
    let rounds: Vec<&SiteResult> = rounds.into_iter().collect();
    if rounds.iter().any(|r| r.out_of_sockets()) {
        return true;
    }
    let mut any = false;
    let mut all_local = true;
    let mut addresses = HashSet::new();
    for round in rounds {
        if round.reached_anything() {
            return false;
        }
        any = true;
        all_local &= round.failed_locally();
        if addresses.len() < CUT_OFF_ADDRESSES {
            addresses.extend(round.targets.iter().map(|t| t.address.as_str()));
        }
    }
    any && (all_local || addresses.len() >= CUT_OFF_ADDRESSES)
}

/// A vantage cut off says nothing else: true when it is.
pub(super) fn cut_off(e: &Evidence, v: &mut Verdict) -> bool {
    if e.vantage_cut_off {
        v.add(
            Reason::VantageCutOff,
            e.targets.iter().map(|t| t.describe()).collect(),
        );
    }
    e.vantage_cut_off
}

pub(super) fn judge(e: &Evidence, v: &mut Verdict) {
    let agent = e.agent.as_ref();
    let refused_by_origin = origin_refused_forwarding(agent);
    for p in e.of(Path::Proxy) {
        // Its own pages by their signature, and refusals the origin did
        // not make (its access log shows none to the forwarding IPs).
        let own = p.failed_kind(Kind::Proxy)
            + if refused_by_origin == Some(false) {
                p.forwarding_refused
            } else {
                0.0
            };
        if p.requests > 0.0 && p.share(own) >= PROXY_OWN_SHARE {
            let mut evidence = vec![p.describe()];
            if refused_by_origin == Some(false) && p.forwarding_refused > 0.0 {
                evidence.push(
                    "the origin's access log shows no refusal of the forwarding IPs: the proxy made these answers itself".into(),
                );
            }
            v.add(Reason::ProxyOwnAnswer, evidence);
        }
    }
    let refused: Vec<_> = e.of(Path::Origin).filter(|o| !o.admits).collect();
    for o in &refused {
        v.notes.push(format!(
            "{}: this origin does not admit the prober's direct probes while the site works through the proxy (it admits only the forwarding ranges?): its failures say nothing about the origin; admit the prober's address, or run a prober on an allowed host",
            o.describe()
        ));
    }
    let proxy_fails = e.of(Path::Proxy).any(|p| p.failed() > 0.0);
    let origin_evidence = e.of(Path::Origin).any(|o| o.admits);
    if proxy_fails && v.findings.is_empty() {
        if !origin_evidence && !refused.is_empty() {
            v.add(
                Reason::OriginNotProbeable,
                vec!["the proxy fails and the origin cannot be probed straight from here: a blocked forwarding IP and a failing origin look the same from this prober (the origin agent tells them apart)".into()],
            );
        } else {
            for p in e.of(Path::Proxy).filter(|p| p.failed() > 0.0) {
                v.unexplained.push(format!(
                    "{}: the proxy fails and no cause explains it",
                    p.describe()
                ));
            }
        }
    }
}
