//! Who connects to the web ports: established inbound TCP connections split
//! by source class (inside the forwarding ranges, or anything else), the
//! half-open ones (SYN received), and whether each web port listens.
//! Traffic from outside the forwarding ranges means the origin's address is
//! known and it can be attacked around the proxy.
//!
//! A configured web port reports whether it listens from the start. The
//! default ports (80 and 443, when `web_ports` is left out) are a guess:
//! one reports only once something has been seen listening on it, so an
//! origin that serves on one of them does not read as down on the other.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::IpNet;
use procfs_core::net::{TcpNetEntries, TcpState};
use prometheus::proto::MetricFamily;

use super::sock_diag;
pub use super::sock_diag::Filter;
use super::{procfs, Collector, CollectorError};
use crate::exposition::names;
use crate::exposition::Family;

pub struct Connections {
    procfs: PathBuf,
    ranges: Vec<IpNet>,
    web_ports: Vec<u16>,
    /// Ports whose listening state is reported: every configured port, and
    /// each default port once seen listening.
    watched: Mutex<BTreeSet<u16>>,
    /// Where the sockets are read from; netlink falls back to the files
    /// once the kernel refuses it.
    source: Mutex<Source>,
}

/// Where a connection comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Forwarding,
    Other,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Forwarding => "forwarding",
            Class::Other => "other",
        }
    }

    /// The class of a source address; an IPv4 address seen through an
    /// IPv6 socket (`::ffff:a.b.c.d`) counts as the IPv4 address.
    pub fn of(ip: IpAddr, ranges: &[IpNet]) -> Class {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ranges.iter().any(|r| r.contains(&ip)) {
            Class::Forwarding
        } else {
            Class::Other
        }
    }
}

/// Where the sockets are read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// netlink `sock_diag`, the kernel filtering as much as it can: used
    /// when the procfs root is the live `/proc`, as long as the kernel
    /// answers.
    Netlink(Filter),
    /// `net/tcp` and `net/tcp6` under the procfs root: fixtures, a host's
    /// /proc mounted elsewhere, or where netlink is not allowed.
    Files,
}

/// What one reading counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Established inbound connections by source class and web port.
    pub established: BTreeMap<(Class, u16), u64>,
    /// The same in SYN_RECV.
    pub half_open: BTreeMap<(Class, u16), u64>,
    /// Whether each web port has a listening socket.
    pub listening: BTreeMap<u16, bool>,
}

/// The states counted, as `TCP_*` numbers (linux/tcp_states.h).
const ESTABLISHED: u8 = 1;
const SYN_RECV: u8 = 3;
const LISTEN: u8 = 10;

impl Counts {
    fn new(web_ports: &[u16]) -> Counts {
        Counts {
            listening: web_ports.iter().map(|p| (*p, false)).collect(),
            ..Counts::default()
        }
    }

    /// Count one socket in `state` (a `TCP_*` number) on `local_port`,
    /// connected to `remote`.
    fn add(&mut self, state: u8, local_port: u16, remote: IpAddr, ranges: &[IpNet]) {
        if !self.listening.contains_key(&local_port) {
            return;
        }
        let class = || Class::of(remote, ranges);
        match state {
            LISTEN => {
                self.listening.insert(local_port, true);
            }
            ESTABLISHED => *self.established.entry((class(), local_port)).or_insert(0) += 1,
            SYN_RECV => *self.half_open.entry((class(), local_port)).or_insert(0) += 1,
            _ => {}
        }
    }
}

impl Connections {
    /// `configured`: the ports were written in the config, rather than the
    /// default guess.
    pub fn new(
        procfs: PathBuf,
        ranges: &[IpNet],
        web_ports: &[u16],
        configured: bool,
    ) -> Connections {
        let watched = if configured {
            web_ports.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        // netlink reads the agent's own network namespace, which is what
        // the live /proc/net shows; any other root is read as files.
        let source = if procfs == Path::new("/proc") {
            Source::Netlink(Filter::StatesAndPorts)
        } else {
            Source::Files
        };
        Connections {
            procfs,
            ranges: ranges.to_vec(),
            web_ports: web_ports.to_vec(),
            watched: Mutex::new(watched),
            source: Mutex::new(source),
        }
    }

    /// Where the next reading comes from.
    pub fn source(&self) -> Source {
        *self.source.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count from the current source. When netlink fails (not allowed,
    /// not supported, a kernel that refuses the port filter), say so once
    /// and fall back for good: to the state filter alone when the port
    /// filter was refused, else to the files.
    pub fn count(&self) -> Result<Counts, CollectorError> {
        loop {
            let source = self.source();
            let Source::Netlink(filter) = source else {
                return self.count_from(Source::Files);
            };
            match self.read_netlink(filter) {
                Ok(counts) => return Ok(counts),
                Err(e) => {
                    let next = if filter == Filter::StatesAndPorts
                        && e.kind() == io::ErrorKind::InvalidInput
                    {
                        Source::Netlink(Filter::States)
                    } else {
                        Source::Files
                    };
                    tracing::info!(
                        error = %e,
                        "connections: netlink sock_diag failed; reading {} from now on",
                        match next {
                            Source::Files => format!(
                                "{} and tcp6",
                                self.procfs.join("net/tcp").display()
                            ),
                            Source::Netlink(_) => "netlink filtered by state only".to_owned(),
                        }
                    );
                    *self.source.lock().unwrap_or_else(|p| p.into_inner()) = next;
                }
            }
        }
    }

    /// Count from `source`, with no fallback.
    pub fn count_from(&self, source: Source) -> Result<Counts, CollectorError> {
        match source {
            Source::Netlink(filter) => self.read_netlink(filter).map_err(|e| {
                CollectorError::new(format!("reading sockets over netlink sock_diag: {e}"))
            }),
            Source::Files => self.read_files(),
        }
    }

    fn read_netlink(&self, filter: Filter) -> io::Result<Counts> {
        let mut counts = Counts::new(&self.web_ports);
        sock_diag::tcp_sockets(
            &[ESTABLISHED, SYN_RECV, LISTEN],
            &self.web_ports,
            filter,
            |e| counts.add(e.state, e.local_port, e.remote, &self.ranges),
        )?;
        Ok(counts)
    }

    fn read_files(&self) -> Result<Counts, CollectorError> {
        let mut entries: TcpNetEntries = procfs::read_si(&self.procfs, "net/tcp")?;
        // A host without IPv6 has no tcp6 table: that is not a failure.
        if self.procfs.join("net/tcp6").exists() {
            let v6: TcpNetEntries = procfs::read_si(&self.procfs, "net/tcp6")?;
            entries.0.extend(v6.0);
        }
        let mut counts = Counts::new(&self.web_ports);
        for e in &entries.0 {
            let state = match e.state {
                TcpState::Listen => LISTEN,
                TcpState::Established => ESTABLISHED,
                TcpState::SynRecv | TcpState::NewSynRecv => SYN_RECV,
                _ => continue,
            };
            counts.add(
                state,
                e.local_address.port(),
                e.remote_address.ip(),
                &self.ranges,
            );
        }
        Ok(counts)
    }
}

impl Collector for Connections {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError> {
        let Counts {
            established,
            half_open,
            listening,
        } = self.count()?;
        let mut conns = Family::gauge(
            names::CONNECTIONS,
            "Established inbound TCP connections to a web port, by source class: forwarding (inside the forwarding ranges) or other.",
        );
        let mut syn = Family::gauge(
            names::CONNECTIONS_HALF_OPEN,
            "Inbound TCP connections to a web port still in SYN_RECV, by source class.",
        );
        let mut listen = Family::gauge(
            names::WEB_PORT_LISTENING,
            "1 when something listens on the web port.",
        );
        let mut watched = self.watched.lock().unwrap_or_else(|p| p.into_inner());
        watched.extend(listening.iter().filter(|(_, up)| **up).map(|(p, _)| *p));
        for port in &self.web_ports {
            let p = port.to_string();
            for class in [Class::Forwarding, Class::Other] {
                let labels = [("class", class.as_str()), ("port", p.as_str())];
                let n = |m: &BTreeMap<(Class, u16), u64>| {
                    m.get(&(class, *port)).copied().unwrap_or(0) as f64
                };
                conns.push(&labels, n(&established));
                syn.push(&labels, n(&half_open));
            }
            if watched.contains(port) {
                let up = listening.get(port).copied().unwrap_or(false);
                listen.push(&[("port", p.as_str())], if up { 1.0 } else { 0.0 });
            }
        }
        Ok(vec![
            conns.into_family(),
            syn.into_family(),
            listen.into_family(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_of_mapped_and_plain_addresses() {
        let ranges: Vec<IpNet> = vec!["198.51.100.0/24".parse().unwrap()];
        assert_eq!(
            Class::of("198.51.100.7".parse().unwrap(), &ranges),
            Class::Forwarding
        );
        assert_eq!(
            Class::of("::ffff:198.51.100.7".parse().unwrap(), &ranges),
            Class::Forwarding
        );
        assert_eq!(
            Class::of("192.0.2.1".parse().unwrap(), &ranges),
            Class::Other
        );
        assert_eq!(
            Class::of("2001:db8::1".parse().unwrap(), &ranges),
            Class::Other
        );
        assert_eq!(
            Class::of("198.51.100.7".parse().unwrap(), &[]),
            Class::Other
        );
    }
}
