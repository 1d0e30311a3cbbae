//! Cause `proxy`: the protecting proxy itself cannot be reached: it refuses
//! TCP, its TLS handshake fails, or nothing answers, so no 502 is even
//! returned.
//!
//! Rules (`rules/proxy.rules.yml`):
//! `BadGatewayProxyUnreachable`, and `BadGatewayCertificateExpiresSoon`
//! for the proxy's certificate.
//!
//! A proxy that cannot be reached fails every request before any HTTP
//! answer, from every vantage, over a path that is not merely lossy (loss
//! makes connections time out too, and `network.rs` says so). From some
//! vantages only, it is the path from those: partial_vantage_failure.

use super::answer::Kind;
use super::evidence::Evidence;
use super::thresholds::*;
use super::{Reason, Verdict};
use crate::prober::probe::Path;

pub(super) fn judge(e: &Evidence, v: &mut Verdict) {
    for p in e.of(Path::Proxy) {
        let unanswered = p.failed_kind(Kind::Unanswered);
        if p.requests > 0.0 && p.share(unanswered) >= PROXY_UNREACHABLE_SHARE && !p.lossy() {
            v.add(
                Reason::ProxyUnreachable,
                vec![
                    p.describe(),
                    format!(
                        "{} never answered {:.0} of {:.0} requests at HTTP: it refuses the connection, does not answer it, or fails TLS",
                        p.address, unanswered, p.requests
                    ),
                ],
            );
        }
    }
}
