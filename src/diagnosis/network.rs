//! Cause `network_linkage`: packet loss or jitter on the public path, or
//! failures from some vantages only.
//!
//! Rules (`rules/network_linkage.rules.yml`):
//! `BadGatewayPacketLoss` (from the record
//! `badgateway:path_loss:ratio_rate5m`), `BadGatewayJitter` (from
//! `badgateway:path_rtt_seconds`), `BadGatewayPartialVantageFailure` (which
//! needs several vantages: one vantage's verdict cannot see it).
//!
//! A faulty path loses or delays packets while both ends are fine. Its loss
//! is measured by the echoes that measure the path: ICMP, or TCP handshakes
//! to the web port of an address that never answers ICMP (silent is not
//! lossy); a round in which nothing came back is left out (the path was
//! down, not lossy).

use super::evidence::Evidence;
use super::thresholds::*;
use super::{Reason, Verdict};

pub(super) fn judge(e: &Evidence, v: &mut Verdict) {
    for t in &e.targets {
        if let Some(loss) = t.loss.filter(|l| *l > LOSS_SHARE) {
            v.add(
                Reason::PacketLoss,
                vec![format!(
                    "{} to {} {} lost {:.0}% of its echoes",
                    t.measured_by,
                    t.path,
                    t.address,
                    loss * 100.0
                )],
            );
        }
        if let (Some(avg), Some(stddev)) = (t.rtt_avg_seconds, t.rtt_stddev_seconds) {
            if (stddev >= JITTER_SECONDS && stddev >= JITTER_SHARE_OF_RTT * avg)
                || stddev >= JITTER_ABSOLUTE_SECONDS
            {
                v.add(
                    Reason::Jitter,
                    vec![format!(
                        "{} to {} {}: round trip {:.1} ms on average, {:.1} ms standard deviation",
                        t.measured_by,
                        t.path,
                        t.address,
                        avg * 1000.0,
                        stddev * 1000.0
                    )],
                );
            }
        }
    }
}
