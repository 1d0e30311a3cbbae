//! The TCP handshake probe: a round of connection attempts to an address's
//! web port, turned into loss and round-trip statistics like an ICMP round.
//! It measures the path where ICMP cannot: an address that never answers
//! echo requests (many load balancers and Anti-DDoS edges), or a prober
//! without ICMP sockets.
//!
//! Each attempt is one SYN: the handshake completing, or a reset coming
//! back, is a reply, and its time is the round trip. An attempt waits less
//! than the kernel's first SYN retransmission (1 s), so a lost SYN or
//! SYN-ACK is a lost echo, not a slower one. The connection is reset at
//! once (linger 0), so neither side keeps it in TIME_WAIT and no request
//! reaches the web server.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{EchoRound, RttStats};

/// Longest wait for one handshake: under Linux's initial retransmission
/// timeout of 1 s, so every attempt is a single SYN.
pub const MAX_WAIT: Duration = Duration::from_millis(900);

/// Why a round could not run at all: no socket could be made or bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot open a TCP socket{bound}: {reason}")]
pub struct TcpError {
    /// " bound to ADDR", or nothing.
    bound: String,
    reason: String,
}

/// `count` handshakes to `target`, one every `interval`, each waiting at
/// most `wait` (capped at [`MAX_WAIT`]).
pub async fn round(
    target: SocketAddr,
    source: Option<IpAddr>,
    count: u32,
    interval: Duration,
    wait: Duration,
) -> Result<EchoRound, TcpError> {
    let wait = wait.min(MAX_WAIT);
    let mut attempts = JoinSet::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..count {
        ticker.tick().await;
        let socket = socket(target, source)?;
        attempts.spawn(handshake(socket, target, wait));
    }
    let mut rtts = Vec::with_capacity(count as usize);
    while let Some(done) = attempts.join_next().await {
        if let Ok(Some(rtt)) = done {
            rtts.push(rtt);
        }
    }
    Ok(EchoRound {
        sent: count,
        received: rtts.len() as u32,
        rtt: RttStats::from_samples(&rtts),
    })
}

fn socket(target: SocketAddr, source: Option<IpAddr>) -> Result<TcpSocket, TcpError> {
    let fail = |e: io::Error| TcpError {
        bound: source.map(|a| format!(" bound to {a}")).unwrap_or_default(),
        reason: e.to_string(),
    };
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(fail)?;
    // Linger 0: closing resets at once, without blocking.
    socket2::SockRef::from(&socket)
        .set_linger(Some(Duration::ZERO))
        .map_err(fail)?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(fail)?;
    }
    Ok(socket)
}

/// The round trip of one handshake, or `None` when nothing came back.
async fn handshake(socket: TcpSocket, target: SocketAddr, wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    match tokio::time::timeout(wait, socket.connect(target)).await {
        // Dropping the stream resets it (linger 0).
        Ok(Ok(_stream)) => Some(started.elapsed()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Some(started.elapsed()),
        _ => None,
    }
}
