//! Where the loss starts: an MTR-style path probe. Echo requests with a
//! growing TTL (IPv4) or hop limit (IPv6), a few per hop, each answered by
//! the router where it expired (ICMP time exceeded) or by the address
//! itself (echo reply): each hop's address and loss, up to the address.
//! Raw ICMP sockets (CAP_NET_RAW): a datagram socket does not hand over the
//! routers' time-exceeded messages. Blocking, on a thread of its own
//! (`spawn_blocking`): one probe is a few seconds of waiting, rarely.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// One hop of the path: who answered at this TTL, and how many of the
/// echoes sent with it got an answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    pub ttl: u8,
    /// `None` when nothing answered at this TTL.
    pub address: Option<IpAddr>,
    pub sent: u32,
    pub received: u32,
}

impl Hop {
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        f64::from(self.sent - self.received) / f64::from(self.sent)
    }
}

/// The hops up to the address (or up to the last TTL tried).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub hops: Vec<Hop>,
    /// The address itself answered.
    pub reached: bool,
}

impl Trace {
    /// The first hop from which every hop on, the address included, lost
    /// echoes: where the loss starts. A router that answers few
    /// time-exceeded messages (many limit them) but passes traffic on shows
    /// loss of its own that later hops do not: that is not where loss
    /// starts. `None` when the address lost nothing or was not reached.
    pub fn loss_starts_at(&self) -> Option<u8> {
        if !self.reached || self.hops.last()?.received == self.hops.last()?.sent {
            return None;
        }
        let lossy_tail = self
            .hops
            .iter()
            .rev()
            .take_while(|h| h.received < h.sent)
            .count();
        Some(self.hops[self.hops.len() - lossy_tail].ttl)
    }

    /// A short identity of the route: a hash of the hops' addresses in
    /// order (FNV-1a, 32 bits), so a route change shows as a new value.
    pub fn route_id(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for hop in &self.hops {
            let text = hop
                .address
                .map_or_else(|| "*".to_owned(), |a| a.to_string());
            for b in text.bytes().chain(std::iter::once(b'|')) {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
        }
        h
    }
}

/// How a path probe runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_hops: u8,
    pub per_hop: u32,
    /// How long the answers to one hop's echoes are waited for.
    pub wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_hops: 16,
            per_hop: 10,
            wait: Duration::from_secs(1),
        }
    }
}

/// Probe the path to `target`, from `source` when given. Blocking.
pub fn trace(target: IpAddr, source: Option<IpAddr>, settings: Settings) -> io::Result<Trace> {
    let v6 = target.is_ipv6();
    let socket = if v6 {
        Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?
    } else {
        Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?
    };
    if let Some(s) = source {
        socket.bind(&SockAddr::from(SocketAddr::new(s, 0)))?;
    }
    let id: u16 = rand::random();
    let to = SockAddr::from(SocketAddr::new(target, 0));
    let mut out = Trace::default();
    for ttl in 1..=settings.max_hops {
        if v6 {
            socket.set_unicast_hops_v6(u32::from(ttl))?;
        } else {
            socket.set_ttl_v4(u32::from(ttl))?;
        }
        for k in 0..settings.per_hop {
            let seq = u16::from(ttl) << 8 | (k as u16 & 0xff);
            socket.send_to(&echo_request(v6, id, seq), &to)?;
        }
        out.hops.push(Hop {
            ttl,
            address: None,
            sent: settings.per_hop,
            received: 0,
        });
        collect(&socket, v6, id, target, settings.wait, &mut out)?;
        if out.reached {
            break;
        }
    }
    Ok(out)
}

/// Read answers for `wait`, counting each against the hop its sequence
/// number names (a late answer to an earlier hop counts there).
fn collect(
    socket: &Socket,
    v6: bool,
    id: u16,
    target: IpAddr,
    wait: Duration,
    out: &mut Trace,
) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        socket.set_read_timeout(Some(left))?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // SAFETY: recv_from initialised the first n bytes.
        let packet: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        let Some(from) = from.as_socket().map(|s| s.ip()) else {
            continue;
        };
        let Some((seq, reply)) = answer(&packet, v6, id) else {
            continue;
        };
        let ttl = (seq >> 8) as u8;
        let Some(hop) = out.hops.iter_mut().find(|h| h.ttl == ttl) else {
            continue;
        };
        hop.received = (hop.received + 1).min(hop.sent);
        hop.address = Some(from);
        if reply && from == target {
            out.reached = true;
        }
    }
}

/// An ICMP echo request (type 8, or 128 for ICMPv6), with its checksum
/// (the kernel fills in ICMPv6's).
fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"badgateway-path!");
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Our echo's sequence number in an answer, and whether the answer is the
/// echo reply (else a time exceeded or unreachable about our echo). An
/// IPv4 raw socket hands over the IP header; an IPv6 one does not.
fn answer(packet: &[u8], v6: bool, id: u16) -> Option<(u16, bool)> {
    let icmp = if v6 {
        packet
    } else {
        packet.get(usize::from(packet.first()? & 0x0f) * 4..)?
    };
    let (reply, exceeded, unreachable, request) = if v6 { (129, 3, 1, 128) } else { (0, 11, 3, 8) };
    let echo_fields = |p: &[u8]| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes([*p.get(4)?, *p.get(5)?]),
            u16::from_be_bytes([*p.get(6)?, *p.get(7)?]),
        ))
    };
    match *icmp.first()? {
        t if t == reply => {
            let (got, seq) = echo_fields(icmp)?;
            (got == id).then_some((seq, true))
        }
        t if t == exceeded || t == unreachable => {
            // The expired packet's header follows the 8-byte ICMP header.
            let inner = icmp.get(8..)?;
            let inner_icmp = if v6 {
                inner.get(40..)?
            } else {
                inner.get(usize::from(inner.first()? & 0x0f) * 4..)?
            };
            if *inner_icmp.first()? != request {
                return None;
            }
            let (got, seq) = echo_fields(inner_icmp)?;
            (got == id).then_some((seq, false))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ttl: u8, received: u32) -> Hop {
        Hop {
            ttl,
            address: Some(IpAddr::from([192, 0, 2, ttl])),
            sent: 5,
            received,
        }
    }

    #[test]
    fn the_loss_starts_where_every_later_hop_loses_too() {
        let trace = |hops: Vec<Hop>| Trace {
            hops,
            reached: true,
        };
        assert_eq!(
            trace(vec![hop(1, 5), hop(2, 3), hop(3, 2)]).loss_starts_at(),
            Some(2)
        );
        // A router that answers few time-exceeded messages, the address
        // losing nothing: no loss.
        assert_eq!(
            trace(vec![hop(1, 1), hop(2, 5), hop(3, 5)]).loss_starts_at(),
            None
        );
        // Loss at hop 1 that hop 2 does not carry on: it starts at 3.
        assert_eq!(
            trace(vec![hop(1, 2), hop(2, 5), hop(3, 3)]).loss_starts_at(),
            Some(3)
        );
        let mut t = trace(vec![hop(1, 5), hop(2, 3)]);
        t.reached = false;
        assert_eq!(t.loss_starts_at(), None);
    }

    #[test]
    fn the_route_id_follows_the_hops() {
        let a = Trace {
            hops: vec![hop(1, 5), hop(2, 5)],
            reached: true,
        };
        let mut b = a.clone();
        b.hops[0].received = 1;
        assert_eq!(a.route_id(), b.route_id(), "loss is not a route change");
        b.hops[0].address = Some(IpAddr::from([192, 0, 2, 99]));
        assert_ne!(a.route_id(), b.route_id());
    }

    #[test]
    fn answers_are_read_from_both_families() {
        let req = echo_request(false, 7, 0x0203);
        assert_eq!(checksum(&req), 0, "a packet with its checksum sums to zero");
        // An echo reply behind a 20-byte IPv4 header.
        let mut reply = vec![0x45; 1];
        reply.extend([0; 19]);
        reply.extend([0, 0, 0, 0, 0, 7, 2, 3]);
        assert_eq!(answer(&reply, false, 7), Some((0x0203, true)));
        assert_eq!(answer(&reply, false, 8), None, "another prober's");
        // A time exceeded quoting our request.
        let mut exceeded = vec![0x45];
        exceeded.extend([0; 19]);
        exceeded.extend([11, 0, 0, 0, 0, 0, 0, 0, 0x45]);
        exceeded.extend([0; 19]);
        exceeded.extend(&req[..8]);
        assert_eq!(answer(&exceeded, false, 7), Some((0x0203, false)));
        // ICMPv6: no IP header; a time exceeded quotes a 40-byte header.
        assert_eq!(
            answer(&[129, 0, 0, 0, 0, 7, 2, 3], true, 7),
            Some((0x0203, true))
        );
        let mut v6 = vec![3, 0, 0, 0, 0, 0, 0, 0];
        v6.extend([0; 40]);
        v6.extend(&echo_request(true, 7, 0x0203)[..8]);
        assert_eq!(answer(&v6, true, 7), Some((0x0203, false)));
        assert_eq!(answer(&[], true, 7), None);
        assert_eq!(
            answer(&[0x4f], false, 7),
            None,
            "a header longer than the packet"
        );
    }
}
