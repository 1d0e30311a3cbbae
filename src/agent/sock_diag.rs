// Why one file: ~310 lines of code; the rest is its tests.
//! TCP sockets from the kernel over netlink `sock_diag`, as `ss` reads
//! them: the kernel filters by state (the request's bitmask) and by local
//! port (a small `INET_DIAG_REQ_BYTECODE` program), so it neither walks into
//! nor formats the sockets the agent does not count. Reading
//! `/proc/net/tcp` instead has the kernel print every socket of the
//! namespace as text at each scrape.
//!
//! The messages are built and parsed with the rust-netlink crates
//! (`netlink-packet-core`, `netlink-packet-sock-diag`, `netlink-sys`); the
//! crates have no type for the bytecode attribute, so its few ops are
//! encoded here (see [`bytecode`]) and carried in a `DefaultNla`.
//!
//! Reads the network namespace of the calling thread, which is what the
//! agent's own `/proc/net` shows.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, DoneBuffer, Emitable, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    Parseable, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

/// `INET_DIAG_REQ_BYTECODE`, the request attribute holding a filter
/// program (linux/inet_diag.h).
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `TCPDIAG_GETSOCK`: the first inet_diag request (`struct inet_diag_req`,
/// linux/inet_diag.h), still served. Its dump asks for both families at
/// once (the kernel sets `AF_UNSPEC`), so the table of established
/// sockets, which the kernel walks bucket by bucket whatever the filter, is
/// walked once instead of once per family as with `SOCK_DIAG_BY_FAMILY`.
const TCPDIAG_GETSOCK: u16 = 18;
/// Bytecode ops (linux/inet_diag.h `enum { INET_DIAG_BC_NOP, ... }`).
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_EQ: u8 = 11;

/// A socket as the kernel reports it: only what the agent counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `TCP_*` state (linux/tcp_states.h); request sockets report
    /// `TCP_SYN_RECV`.
    pub state: u8,
    pub local_port: u16,
    pub remote: IpAddr,
}

/// How much the kernel filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// By state and by local port (bytecode).
    StatesAndPorts,
    /// By state only: every socket in those states comes back.
    States,
}

/// Every TCP socket (IPv4 and IPv6) of the calling thread's network
/// namespace in one of `states` (`TCP_*` numbers), and, with
/// [`Filter::StatesAndPorts`], with its local port in `ports`. A kernel
/// without IPv6 answers the IPv4 half alone.
pub fn tcp_sockets(
    states: &[u8],
    ports: &[u16],
    filter: Filter,
    mut each: impl FnMut(Entry),
) -> io::Result<()> {
    // Both families in one walk; the sockets are handed on only once the
    // dump is complete, so that a kernel refusing it halfway counts nothing
    // twice.
    let mut found = Vec::new();
    if dump_sockets(Family::Both, states, ports, filter, |e| found.push(e)).is_ok() {
        found.into_iter().for_each(each);
        return Ok(());
    }
    // A kernel without the first request: one dump per family.
    dump_sockets(Family::One(AF_INET), states, ports, filter, &mut each)?;
    match dump_sockets(Family::One(AF_INET6), states, ports, filter, &mut each) {
        // No inet6 diag handler: a kernel without IPv6.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// One dump: the TCP sockets of `family` in `states` (and on `ports`, with
/// [`Filter::StatesAndPorts`]).
pub fn dump_sockets(
    family: Family,
    states: &[u8],
    ports: &[u16],
    filter: Filter,
    mut each: impl FnMut(Entry),
) -> io::Result<()> {
    let states = states.iter().fold(StateFlags::empty(), |s, n| {
        s | StateFlags::from_bits_retain(1 << n)
    });
    let ports = match filter {
        Filter::StatesAndPorts if ports.is_empty() => return Ok(()),
        Filter::StatesAndPorts => Some(ports),
        Filter::States => None,
    };
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    // The kernel sizes its dump datagrams by the largest read it has seen,
    // up to 32 KiB.
    let mut buf = vec![0u8; 32 * 1024];
    dump(
        &socket,
        &request(family, &states, ports),
        &mut buf,
        &mut each,
    )
}

/// Which sockets a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 and IPv6 in one dump (`TCPDIAG_GETSOCK`).
    Both,
    /// `AF_INET` or `AF_INET6` (`SOCK_DIAG_BY_FAMILY`).
    One(u8),
}

/// `struct inet_diag_req`, the body of `TCPDIAG_GETSOCK`, which
/// `netlink-packet-sock-diag` does not model: family, source and
/// destination prefix lengths, extensions, the socket id (the crate's
/// [`SocketId`] encoding), the states, and a field no longer used.
#[derive(Debug)]
struct BothFamiliesRequest {
    states: StateFlags,
}

impl netlink_packet_core::NetlinkSerializable for BothFamiliesRequest {
    fn message_type(&self) -> u16 {
        TCPDIAG_GETSOCK
    }
    fn buffer_len(&self) -> usize {
        4 + SocketId::new_v4().buffer_len() + 4 + 4
    }
    fn serialize(&self, buf: &mut [u8]) {
        let id = SocketId::new_v4();
        let end = 4 + id.buffer_len();
        // The kernel's dump ignores the family for AF_UNSPEC.
        buf[..4].copy_from_slice(&[AF_INET, 0, 0, 0]);
        id.emit(&mut buf[4..end]);
        buf[end..end + 4].copy_from_slice(&self.states.bits().to_ne_bytes());
        buf[end + 4..end + 8].fill(0);
    }
}

fn dump(
    socket: &Socket,
    request: &[u8],
    buf: &mut [u8],
    each: &mut impl FnMut(Entry),
) -> io::Result<()> {
    socket.send(request, 0)?;
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        if n > buf.len() {
            return Err(invalid("sock_diag datagram larger than the buffer"));
        }
        if parse_datagram(&buf[..n], each)? {
            return Ok(());
        }
    }
}

/// A dump request for TCP sockets of `family` in `states`, with the port
/// filter when `ports` is given.
pub fn request(family: Family, states: &StateFlags, ports: Option<&[u16]>) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let (base, mut buf) = match family {
        Family::Both => {
            let payload = BothFamiliesRequest {
                states: states.clone(),
            };
            serialized(NetlinkMessage::new(
                header,
                netlink_packet_core::NetlinkPayload::InnerMessage(payload),
            ))
        }
        Family::One(family) => serialized(NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: states.clone(),
                socket_id: if family == AF_INET6 {
                    SocketId::new_v6()
                } else {
                    SocketId::new_v4()
                },
            })
            .into(),
        )),
    };
    let nla = ports.map(|p| DefaultNla::new(INET_DIAG_REQ_BYTECODE, bytecode(p)));
    let total = base + nla.as_ref().map_or(0, |n| n.buffer_len());
    buf.resize(total, 0);
    if let Some(nla) = nla {
        nla.emit(&mut buf[base..]);
        NetlinkBuffer::new(&mut buf[..]).set_length(total as u32);
    }
    buf
}

/// A message's bytes, and their length.
fn serialized<I: netlink_packet_core::NetlinkSerializable + std::fmt::Debug>(
    mut message: NetlinkMessage<I>,
) -> (usize, Vec<u8>) {
    message.finalize();
    let mut buf = vec![0u8; message.buffer_len()];
    message.serialize(&mut buf);
    (buf.len(), buf)
}

/// The filter program "local port is one of `ports`", as `ss` writes
/// `sport = :80 or sport = :443`. Each op is `{code: u8, yes: u8, no: u16}`,
/// native byte order; `yes`/`no` are how many bytes to jump ahead when the
/// condition holds or not, and a socket passes when the program ends
/// exactly at its last byte (jumping 4 bytes past it rejects).
///
/// ```text
/// S_EQ yes=8 no=12, port   ; match: on to the JMP; else: the next S_EQ
/// JMP  yes=4 no=rest+4     ; (always takes `no`) to the end: accept
/// ...                      ; the same for each port but the last
/// S_EQ yes=8 no=12, port   ; match: the end, accept; else 4 past: reject
/// ```
///
/// The kernel checks the program once (`inet_diag_bc_audit`): every jump a
/// multiple of 4, within the program or 4 past it, and every `no` target on
/// the chain of `yes` jumps, which the JMPs provide.
pub fn bytecode(ports: &[u16]) -> Vec<u8> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let op = |out: &mut Vec<u8>, code: u8, yes: u8, no: u16| {
        out.push(code);
        out.push(yes);
        out.extend_from_slice(&no.to_ne_bytes());
    };
    let mut out = Vec::with_capacity(ports.len() * 12);
    for (i, port) in ports.iter().enumerate() {
        op(&mut out, INET_DIAG_BC_S_EQ, 8, 12);
        op(&mut out, 0, 0, *port);
        let after = ports.len() - i - 1;
        if after > 0 {
            // What follows this JMP: the other ports, 12 bytes each but the
            // last (8).
            let rest = after * 12 - 4;
            op(&mut out, INET_DIAG_BC_JMP, 4, (rest + 4) as u16);
        }
    }
    out
}

/// Hand each socket of one datagram of a dump to `each`; true once the
/// dump is done. A kernel error (`NLMSG_ERROR`, or a negative code in
/// `NLMSG_DONE`) is returned as the OS error it carries.
pub fn parse_datagram(mut data: &[u8], each: &mut impl FnMut(Entry)) -> io::Result<bool> {
    while !data.is_empty() {
        let msg = NetlinkBuffer::new_checked(data).map_err(|e| invalid(&e.to_string()))?;
        let len = msg.length() as usize;
        match msg.message_type() {
            NLMSG_DONE => {
                let code = DoneBuffer::new_checked(msg.payload())
                    .map(|d| d.code())
                    .unwrap_or(0);
                return if code < 0 {
                    Err(io::Error::from_raw_os_error(-code))
                } else {
                    Ok(true)
                };
            }
            NLMSG_ERROR => {
                let e =
                    ErrorBuffer::new_checked(msg.payload()).map_err(|e| invalid(&e.to_string()))?;
                let code = e.code().map_or(0, |c| c.get());
                return Err(io::Error::from_raw_os_error(code.abs()));
            }
            // The answer to either request.
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                let h = InetResponseHeader::parse(msg.payload())
                    .map_err(|e| invalid(&e.to_string()))?;
                each(Entry {
                    state: h.state,
                    local_port: h.socket_id.source_port,
                    remote: h.socket_id.destination_address,
                });
            }
            _ => {}
        }
        // Messages are 4-byte aligned within a datagram.
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or(&[]);
    }
    Ok(false)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program as the kernel's `inet_diag_bc_run` does, for a
    /// socket with local port `sport`.
    fn run(bc: &[u8], sport: u16) -> bool {
        let mut at = 0usize;
        let mut len = bc.len() as isize;
        while len > 0 {
            let (code, yes, no) = (
                bc[at],
                bc[at + 1] as isize,
                u16::from_ne_bytes([bc[at + 2], bc[at + 3]]) as isize,
            );
            let ok = match code {
                INET_DIAG_BC_S_EQ => sport == u16::from_ne_bytes([bc[at + 6], bc[at + 7]]),
                INET_DIAG_BC_JMP => false,
                _ => panic!("unexpected op {code}"),
            };
            let jump = if ok { yes } else { no };
            len -= jump;
            at = (at as isize + jump) as usize;
        }
        len == 0
    }

    /// Checks a program as the kernel's `inet_diag_bc_audit` does.
    fn audit(bc: &[u8]) -> bool {
        let valid_cc = |cc: isize| {
            let (mut at, mut len) = (0usize, bc.len() as isize);
            while len >= 0 {
                if cc > len {
                    return false;
                }
                if cc == len {
                    return true;
                }
                let yes = bc[at + 1] as isize;
                if yes < 4 || yes & 3 != 0 {
                    return false;
                }
                len -= yes;
                at += yes as usize;
            }
            false
        };
        let (mut at, mut len) = (0usize, bc.len() as isize);
        while len > 0 {
            let (code, yes, no) = (
                bc[at],
                bc[at + 1] as isize,
                u16::from_ne_bytes([bc[at + 2], bc[at + 3]]) as isize,
            );
            let min = if code == INET_DIAG_BC_S_EQ { 8 } else { 4 };
            if len < min {
                return false;
            }
            if no < min || no > len + 4 || no & 3 != 0 {
                return false;
            }
            if no < len && !valid_cc(len - no) {
                return false;
            }
            if yes < min || yes > len + 4 || yes & 3 != 0 {
                return false;
            }
            at += yes as usize;
            len -= yes;
        }
        len == 0
    }

    #[test]
    fn the_port_filter_passes_exactly_the_ports_and_the_kernel_would_take_it() {
        for ports in [
            &[80u16][..],
            &[80, 443],
            &[443, 80, 8080, 80],
            &[1, 2, 3, 4, 5],
        ] {
            let bc = bytecode(ports);
            assert!(audit(&bc), "{ports:?}");
            for sport in [0u16, 1, 2, 3, 4, 5, 6, 79, 80, 81, 443, 8080, 65535] {
                assert_eq!(run(&bc, sport), ports.contains(&sport), "{ports:?} {sport}");
            }
        }
    }

    #[test]
    fn the_request_carries_the_states_and_the_filter() {
        let states = StateFlags::LISTEN | StateFlags::ESTABLISHED;
        let plain = request(Family::One(AF_INET), &states, None);
        // nlmsghdr 16 + inet_diag_req_v2 56.
        assert_eq!(plain.len(), 72);
        let msg = NetlinkBuffer::new_checked(&plain[..]).unwrap();
        assert_eq!(msg.length(), 72);
        assert_eq!(msg.message_type(), SOCK_DIAG_BY_FAMILY);
        assert_eq!(msg.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        let p = msg.payload();
        assert_eq!((p[0], p[1]), (AF_INET, IPPROTO_TCP));
        assert_eq!(
            u32::from_ne_bytes(p[4..8].try_into().unwrap()),
            (1 << 10) | (1 << 1)
        );

        let filtered = request(Family::One(AF_INET6), &states, Some(&[80, 443]));
        let bc = bytecode(&[80, 443]);
        assert_eq!(filtered.len(), 72 + 4 + bc.len());
        let msg = NetlinkBuffer::new_checked(&filtered[..]).unwrap();
        assert_eq!(msg.length() as usize, filtered.len());
        let nla = &filtered[72..];
        assert_eq!(u16::from_ne_bytes([nla[0], nla[1]]) as usize, 4 + bc.len());
        assert_eq!(u16::from_ne_bytes([nla[2], nla[3]]), INET_DIAG_REQ_BYTECODE);
        assert_eq!(&nla[4..], &bc[..]);

        // struct inet_diag_req: 60 bytes, the states at 52.
        let both = request(Family::Both, &states, Some(&[80, 443]));
        assert_eq!(both.len(), 16 + 60 + 4 + bc.len());
        let msg = NetlinkBuffer::new_checked(&both[..]).unwrap();
        assert_eq!(msg.length() as usize, both.len());
        assert_eq!(msg.message_type(), TCPDIAG_GETSOCK);
        assert_eq!(msg.flags(), NLM_F_REQUEST | NLM_F_DUMP);
        let p = msg.payload();
        assert_eq!(
            u32::from_ne_bytes(p[52..56].try_into().unwrap()),
            (1 << 10) | (1 << 1)
        );
        assert_eq!(&both[16 + 60 + 4..], &bc[..]);
    }

    /// A datagram as the kernel sends it: two sockets, then the end.
    #[test]
    fn a_dump_datagram_gives_its_sockets_then_done() {
        use netlink_packet_sock_diag::inet::{InetResponse, InetResponseHeader};
        let response = |state: u8, sport: u16, remote: &str| {
            let mut id = SocketId::new_v6();
            id.source_port = sport;
            id.destination_address = remote.parse().unwrap();
            let mut m = NetlinkMessage::new(
                NetlinkHeader::default(),
                SockDiagMessage::InetResponse(Box::new(InetResponse {
                    header: InetResponseHeader {
                        family: AF_INET6,
                        state,
                        timer: None,
                        socket_id: id,
                        recv_queue: 0,
                        send_queue: 0,
                        uid: 0,
                        inode: 0,
                    },
                    nlas: Default::default(),
                }))
                .into(),
            );
            m.finalize();
            let mut b = vec![0u8; m.buffer_len()];
            m.serialize(&mut b);
            b
        };
        let mut data = response(1, 80, "::ffff:198.51.100.7");
        data.extend(response(10, 443, "::"));
        let mut done = NetlinkMessage::<SockDiagMessage>::new(
            NetlinkHeader::default(),
            netlink_packet_core::NetlinkPayload::Done(Default::default()),
        );
        done.finalize();
        let at = data.len();
        data.resize(at + done.buffer_len(), 0);
        done.serialize(&mut data[at..]);

        let mut seen = Vec::new();
        assert!(parse_datagram(&data, &mut |e| seen.push(e)).unwrap());
        assert_eq!(
            seen,
            vec![
                Entry {
                    state: 1,
                    local_port: 80,
                    remote: "::ffff:198.51.100.7".parse().unwrap()
                },
                Entry {
                    state: 10,
                    local_port: 443,
                    remote: "::".parse().unwrap()
                },
            ]
        );
        // Without the end: more to read.
        let mut n = 0;
        assert!(!parse_datagram(&data[..at], &mut |_| n += 1).unwrap());
        assert_eq!(n, 2);
    }

    #[test]
    fn a_kernel_error_is_the_os_error() {
        let mut m = NetlinkMessage::<SockDiagMessage>::new(
            NetlinkHeader::default(),
            netlink_packet_core::NetlinkPayload::Error({
                let mut e = netlink_packet_core::ErrorMessage::default();
                e.code = std::num::NonZeroI32::new(-1);
                e
            }),
        );
        m.finalize();
        let mut b = vec![0u8; m.buffer_len()];
        m.serialize(&mut b);
        let e = parse_datagram(&b, &mut |_| {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(1));
    }
}
