// Why one file: ~370 lines of code; the rest is its tests.
//! The small rule language both backends compile into.
//!
//! Everything about the packet we ask about is fixed except its source
//! address and destination port: it is the first TCP segment (SYN) of a new
//! connection from a forwarding IP to a web port of this host, arriving on
//! some non-loopback interface we cannot name. So every match on anything
//! else (protocol, conntrack state, `-i lo`, ...) is decided while
//! compiling, and a rule reduces to a [`Cond`] over the source address and
//! the port, plus an [`Action`].

use std::net::IpAddr;

use ipnet::IpNet;

/// What the packet's source address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// An address as a number, so that v4 and v6 share the interval code.
pub fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`addr_bits`]; `None` when `bits` is too big for v4.
pub fn bits_addr(family: Family, bits: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(bits)
            .ok()
            .map(|b| IpAddr::from(b.to_be_bytes())),
        Family::V6 => Some(IpAddr::from(bits.to_be_bytes())),
    }
}

/// Source addresses, as sorted and merged inclusive intervals per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrSet {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl AddrSet {
    pub fn from_net(net: IpNet) -> AddrSet {
        let mut set = AddrSet::default();
        set.insert_net(net);
        set.finish();
        set
    }

    pub fn insert_net(&mut self, net: IpNet) {
        let net = net.trunc();
        self.insert_range(net.network(), net.broadcast());
    }

    /// Adds `lo..=hi`; false (and nothing added) when they are of
    /// different families or out of order.
    pub fn insert_range(&mut self, lo: IpAddr, hi: IpAddr) -> bool {
        let (a, b) = (addr_bits(lo), addr_bits(hi));
        if Family::of(lo) != Family::of(hi) || a > b {
            return false;
        }
        self.list_mut(Family::of(lo)).push((a, b));
        true
    }

    /// Sorts and merges; call once after the inserts.
    pub fn finish(&mut self) {
        for list in [&mut self.v4, &mut self.v6] {
            list.sort_unstable();
            let mut merged: Vec<(u128, u128)> = Vec::with_capacity(list.len());
            for &(lo, hi) in list.iter() {
                match merged.last_mut() {
                    Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            *list = merged;
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        let list = self.list(Family::of(addr));
        let bits = addr_bits(addr);
        // The last interval starting at or before `bits`.
        let i = list.partition_point(|&(lo, _)| lo <= bits);
        i > 0 && list[i - 1].1 >= bits
    }

    pub fn intervals(&self, family: Family) -> &[(u128, u128)] {
        self.list(family)
    }

    fn list(&self, family: Family) -> &Vec<(u128, u128)> {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn list_mut(&mut self, family: Family) -> &mut Vec<(u128, u128)> {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

/// Destination ports as inclusive intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet(pub Vec<(u16, u16)>);

impl PortSet {
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }
}

/// Whether a condition holds for one packet. `Maybe` forks the walk: one
/// side where it holds, one where it does not. `unknown` says the fork
/// depends on something we cannot see (a mark, an ipset, the interface);
/// `over` says it depends on the traffic rate instead: `Some(true)` when it
/// holds above the rate, `Some(false)` when it holds below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Yes,
    No,
    Maybe { unknown: bool, over: Option<bool> },
}

impl Match {
    fn from_bool(b: bool) -> Match {
        if b {
            Match::Yes
        } else {
            Match::No
        }
    }

    fn not(self) -> Match {
        match self {
            Match::Yes => Match::No,
            Match::No => Match::Yes,
            Match::Maybe { unknown, over } => Match::Maybe {
                unknown,
                over: over.map(|o| !o),
            },
        }
    }

    /// Two undecided conditions together. Rate conditions that disagree on
    /// the side they hold on cannot be told apart by one rate: unknown.
    fn merge(self, other: Match) -> Match {
        match (self, other) {
            (
                Match::Maybe {
                    unknown: u1,
                    over: o1,
                },
                Match::Maybe {
                    unknown: u2,
                    over: o2,
                },
            ) => match (o1, o2) {
                (Some(a), Some(b)) if a != b => Match::Maybe {
                    unknown: true,
                    over: None,
                },
                _ => Match::Maybe {
                    unknown: u1 || u2,
                    over: o1.or(o2),
                },
            },
            (m @ Match::Maybe { .. }, _) | (_, m) => m,
        }
    }
}

/// A condition on the packet, built by the backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    Const(Match),
    /// The packet is IPv4 (or IPv6): nftables' `ip saddr` implies it.
    Family(Family),
    Src(AddrSet),
    Dport(PortSet),
    Not(Box<Cond>),
    All(Vec<Cond>),
    Any(Vec<Cond>),
}

impl Cond {
    pub const TRUE: Cond = Cond::Const(Match::Yes);
    pub const FALSE: Cond = Cond::Const(Match::No);
    pub const UNKNOWN: Cond = Cond::Const(Match::Maybe {
        unknown: true,
        over: None,
    });

    pub fn from_bool(b: bool) -> Cond {
        Cond::Const(Match::from_bool(b))
    }

    /// A rate limit (`limit`, `hashlimit`, `connlimit`, `recent`, `ct
    /// count`, `quota`) that holds above the rate when `over`, below it
    /// otherwise.
    pub fn rate(over: bool) -> Cond {
        Cond::Const(Match::Maybe {
            unknown: false,
            over: Some(over),
        })
    }

    pub fn negate(self) -> Cond {
        match self {
            Cond::Const(m) => Cond::Const(m.not()),
            Cond::Not(inner) => *inner,
            c => Cond::Not(Box::new(c)),
        }
    }

    pub fn eval(&self, addr: IpAddr, port: u16) -> Match {
        match self {
            Cond::Const(m) => *m,
            Cond::Family(f) => Match::from_bool(Family::of(addr) == *f),
            Cond::Src(set) => Match::from_bool(set.contains(addr)),
            Cond::Dport(ports) => Match::from_bool(ports.contains(port)),
            Cond::Not(c) => c.eval(addr, port).not(),
            Cond::All(cs) => {
                let mut acc = Match::Yes;
                for c in cs {
                    match c.eval(addr, port) {
                        Match::No => return Match::No,
                        Match::Yes => {}
                        m => acc = acc.merge(m),
                    }
                }
                acc
            }
            Cond::Any(cs) => {
                let mut acc = Match::No;
                for c in cs {
                    match c.eval(addr, port) {
                        Match::Yes => return Match::Yes,
                        Match::No => {}
                        m => acc = acc.merge(m),
                    }
                }
                acc
            }
        }
    }

    /// Every source interval this condition mentions, for the regions of a
    /// forwarding range that must be evaluated apart.
    pub fn source_intervals(&self, family: Family, out: &mut Vec<(u128, u128)>) {
        match self {
            Cond::Src(set) => out.extend_from_slice(set.intervals(family)),
            Cond::Not(c) => c.source_intervals(family, out),
            Cond::All(cs) | Cond::Any(cs) => {
                for c in cs {
                    c.source_intervals(family, out);
                }
            }
            Cond::Const(_) | Cond::Family(_) | Cond::Dport(_) => {}
        }
    }
}

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No verdict (LOG, counter, a mark): the next rule.
    Continue,
    Accept,
    /// DROP and REJECT alike: the connection fails.
    Drop,
    Return,
    Jump(usize),
    Goto(usize),
    /// A verdict we cannot predict (NFQUEUE, an unknown target).
    Undecided,
}

/// iptables targets (also the `xt` targets nftables shows) that are not
/// user chains. `None`: not a target we know; the caller decides.
pub fn target_action(name: &str) -> Option<Action> {
    Some(match name {
        "ACCEPT" => Action::Accept,
        "DROP" | "REJECT" | "TARPIT" => Action::Drop,
        "RETURN" => Action::Return,
        // Targets that only log, mark or account, then let the packet go
        // on to the next rule.
        "LOG" | "NFLOG" | "ULOG" | "AUDIT" | "MARK" | "CONNMARK" | "CT" | "NOTRACK" | "SET"
        | "CLASSIFY" | "DSCP" | "TOS" | "TCPMSS" | "TRACE" | "SECMARK" | "CONNSECMARK" | "TTL"
        | "HL" | "IDLETIMER" | "LED" | "RATEEST" | "CHECKSUM" | "TEE" | "ECN" => Action::Continue,
        // The verdict is made elsewhere (userspace, the SYN proxy).
        "QUEUE" | "NFQUEUE" | "SYNPROXY" => Action::Undecided,
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub cond: Cond,
    pub action: Action,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A chain the kernel runs on the input hook. Its policy is `Accept` or
/// `Drop`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base {
    pub chain: usize,
    pub v4: bool,
    pub v6: bool,
    pub policy: Action,
}

impl Base {
    pub fn sees(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// One backend's rules: base chains in the order the kernel runs them; an
/// accept in one goes on to the next, a drop is final.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub chains: Vec<Chain>,
    pub bases: Vec<Base>,
}

impl Program {
    pub fn source_intervals(&self, family: Family) -> Vec<(u128, u128)> {
        let mut out = Vec::new();
        for chain in &self.chains {
            for rule in &chain.rules {
                rule.cond.source_intervals(family, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_set_merges_and_finds() {
        let mut s = AddrSet::default();
        s.insert_net("198.51.100.0/25".parse().unwrap());
        s.insert_net("198.51.100.128/25".parse().unwrap());
        s.insert_net("2001:db8::/32".parse().unwrap());
        s.finish();
        assert_eq!(s.intervals(Family::V4).len(), 1);
        assert!(s.contains("198.51.100.255".parse().unwrap()));
        assert!(!s.contains("198.51.101.0".parse().unwrap()));
        assert!(s.contains("2001:db8::1".parse().unwrap()));
        assert!(!s.contains("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn rate_conditions_negate_and_merge() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let over = Cond::rate(true);
        assert_eq!(
            over.clone().negate().eval(a, 80),
            Match::Maybe {
                unknown: false,
                over: Some(false)
            }
        );
        let both = Cond::All(vec![over, Cond::rate(false)]);
        assert_eq!(
            both.eval(a, 80),
            Match::Maybe {
                unknown: true,
                over: None
            }
        );
        let any = Cond::Any(vec![Cond::UNKNOWN, Cond::Dport(PortSet(vec![(80, 80)]))]);
        assert_eq!(any.eval(a, 80), Match::Yes);
    }
}
