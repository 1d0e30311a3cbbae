//! The ICMP probe: a round of echoes to one address, turned into loss and
//! round-trip statistics. One socket per address family (and per bound
//! source address) is shared by every pinger; each round uses a random
//! identifier and process-wide unique sequence numbers, so two sites behind
//! one proxy address never take each other's replies.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use surge_ping::{Client, PingIdentifier, PingSequence, ICMP};
use tokio::task::JoinSet;

use super::{EchoRound, RttStats};

/// Sequence numbers are unique across all pingers of the process: with
/// unprivileged (datagram) sockets the kernel owns the identifier, so the
/// sequence is what tells concurrent rounds to one host apart.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

const PAYLOAD: [u8; 16] = *b"badgateway-probe";

#[derive(Debug, thiserror::Error)]
pub enum IcmpError {
    #[error("cannot open an ICMP socket for {family}{bound}: {reason}")]
    Socket {
        family: &'static str,
        /// " bound to ADDR", or nothing.
        bound: String,
        reason: String,
    },
}

type SocketKey = (bool, Option<IpAddr>);

/// The shared ICMP sockets, opened on first use and kept.
#[derive(Default)]
pub struct Pingers {
    clients: Mutex<HashMap<SocketKey, Client>>,
    /// Sockets that failed to open on their last try; each failure is
    /// logged when it starts, not every round.
    failed: Mutex<HashSet<SocketKey>>,
}

impl Pingers {
    pub fn new() -> Pingers {
        Pingers::default()
    }

    /// The client for `target`'s family, bound to `source` when given.
    /// Must run inside a tokio runtime: a client owns a receive task.
    fn client(&self, target: IpAddr, source: Option<IpAddr>) -> Result<Client, IcmpError> {
        let key = (target.is_ipv6(), source);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        match open(target.is_ipv6(), source) {
            Ok(client) => {
                clients.insert(key, client.clone());
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                Ok(client)
            }
            Err(e) => {
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                if failed.insert(key) {
                    tracing::error!(error = %e, "ICMP probes cannot run; HTTP probes go on");
                }
                Err(e)
            }
        }
    }

    /// Try to open the unbound IPv4 socket, so that a missing permission
    /// shows at start rather than at the first round.
    pub fn check(&self) -> Result<(), IcmpError> {
        self.client(IpAddr::from([127, 0, 0, 1]), None).map(drop)
    }

    /// True when every socket tried so far could be opened: what
    /// `collector_success{collector="icmp"}` reports.
    pub fn healthy(&self) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Send `count` echoes to `target`, one every `interval`, each waiting
    /// at most `wait` for its reply.
    pub async fn round(
        &self,
        target: IpAddr,
        source: Option<IpAddr>,
        count: u32,
        interval: Duration,
        wait: Duration,
    ) -> Result<EchoRound, IcmpError> {
        let client = self.client(target, source)?;
        let ident = PingIdentifier(rand::random());
        let mut echoes = JoinSet::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..count {
            ticker.tick().await;
            let seq = PingSequence(SEQUENCE.fetch_add(1, Ordering::Relaxed));
            let client = client.clone();
            echoes.spawn(async move {
                let mut pinger = client.pinger(target, ident).await;
                pinger.timeout(wait);
                pinger.ping(seq, &PAYLOAD).await.map(|(_, rtt)| rtt)
            });
        }
        let mut rtts = Vec::with_capacity(count as usize);
        while let Some(done) = echoes.join_next().await {
            if let Ok(Ok(rtt)) = done {
                rtts.push(rtt);
            }
        }
        Ok(EchoRound {
            sent: count,
            received: rtts.len() as u32,
            rtt: RttStats::from_samples(&rtts),
        })
    }
}

/// Open an unprivileged datagram socket where the system allows it, and a
/// raw socket otherwise.
fn open(v6: bool, source: Option<IpAddr>) -> Result<Client, IcmpError> {
    let mut builder = surge_ping::Config::builder()
        .kind(if v6 { ICMP::V6 } else { ICMP::V4 })
        .sock_type_hint(socket2::Type::DGRAM);
    if let Some(ip) = source {
        builder = builder.bind(SocketAddr::new(ip, 0));
    }
    Client::new(&builder.build()).map_err(|e| IcmpError::Socket {
        family: if v6 { "IPv6" } else { "IPv4" },
        bound: source.map(|a| format!(" bound to {a}")).unwrap_or_default(),
        reason: e.to_string(),
    })
}
