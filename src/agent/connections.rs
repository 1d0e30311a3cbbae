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
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use ipnet::IpNet;
use procfs_core::net::{TcpNetEntries, TcpState};
use prometheus::proto::MetricFamily;

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
        Connections {
            procfs,
            ranges: ranges.to_vec(),
            web_ports: web_ports.to_vec(),
            watched: Mutex::new(watched),
        }
    }
}

impl Collector for Connections {
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError> {
        let mut entries: TcpNetEntries = procfs::read_si(&self.procfs, "net/tcp")?;
        // A host without IPv6 has no tcp6 table: that is not a failure.
        if self.procfs.join("net/tcp6").exists() {
            let v6: TcpNetEntries = procfs::read_si(&self.procfs, "net/tcp6")?;
            entries.0.extend(v6.0);
        }
        let mut established: BTreeMap<(Class, u16), u64> = BTreeMap::new();
        let mut half_open: BTreeMap<(Class, u16), u64> = BTreeMap::new();
        let mut listening: BTreeMap<u16, bool> =
            self.web_ports.iter().map(|p| (*p, false)).collect();
        for e in &entries.0 {
            let port = e.local_address.port();
            if !self.web_ports.contains(&port) {
                continue;
            }
            let class = Class::of(e.remote_address.ip(), &self.ranges);
            match e.state {
                TcpState::Listen => {
                    listening.insert(port, true);
                }
                TcpState::Established => *established.entry((class, port)).or_insert(0) += 1,
                TcpState::SynRecv | TcpState::NewSynRecv => {
                    *half_open.entry((class, port)).or_insert(0) += 1
                }
                _ => {}
            }
        }
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
