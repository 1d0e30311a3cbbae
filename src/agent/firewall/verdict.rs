//! Runs a [`Program`] for one packet as the kernel would, and folds the
//! results over the addresses of a forwarding range and the web ports.
//!
//! A condition we cannot decide forks the walk: both sides are followed,
//! and the packet's verdict is known only when they agree. Rate limits fork
//! too, but their two sides are "normal traffic" and "above the rate",
//! which is exactly what `rate_limited` reports.
//!
//! One file because the packet walk and the fold over a range share their
//! private vocabulary (`Fate`, `Flags`, the step budget) and nothing else
//! uses it; a third of it is the tests of both.

use std::net::IpAddr;

use ipnet::IpNet;

use super::model::{addr_bits, bits_addr, Action, Family, Match, Program};

/// The answer for a packet, a port or a range. The order is the precedence
/// used to combine them (the greatest wins):
///
/// - `Blocked` first: a rule that certainly drops part of the range (one
///   banned forwarding IP, one port) is a cause of 502s, whatever the
///   uncertainty elsewhere.
/// - `RateLimited` next: certain, but bites only under load.
/// - `Unknown` before `Allowed`: a range is `allowed` only when every
///   address and port of it certainly passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FirewallVerdict {
    Allowed,
    Unknown,
    RateLimited,
    Blocked,
}

impl FirewallVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallVerdict::Allowed => "allowed",
            FirewallVerdict::Blocked => "blocked",
            FirewallVerdict::RateLimited => "rate_limited",
            FirewallVerdict::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for FirewallVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Work allowed for one packet, in rules visited over all forks: enough
/// for tens of thousands of rules, and a bound when undecidable rules
/// multiply the forks.
const MAX_STEPS: usize = 200_000;
/// Nested jumps; the kernel allows fewer.
const MAX_DEPTH: usize = 64;
/// Work allowed for one range over all its regions and ports; past it the
/// regions left are `unknown` (unless one is already `blocked`).
const RANGE_STEPS: usize = 50_000_000;
/// Regions of one range evaluated apart (one per distinct address block
/// that rules mention inside it); beyond this the range is `unknown`.
pub const MAX_REGIONS: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Accept,
    Drop,
    Undecided,
}

/// How a path got where it is: through an undecidable fork, through the
/// "above the rate" side of a rate limit.
#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    unknown: bool,
    over: bool,
}

/// A paused walk: which base chain, where in which chain, the call stack.
#[derive(Clone, Debug)]
struct State {
    base: usize,
    chain: usize,
    rule: usize,
    stack: Vec<(usize, usize)>,
    flags: Flags,
}

/// The verdict of `program` for a new TCP connection from `addr` to
/// `port`.
pub fn packet_verdict(program: &Program, addr: IpAddr, port: u16) -> FirewallVerdict {
    let mut budget = MAX_STEPS;
    classify(&walk(program, addr, port, &mut budget))
}

/// The walk's end points; `budget` is the steps left, shared by the
/// packets of a range.
///
/// Each path runs through its base chain to a fate there; one accepted goes
/// on to the next base chain on the hook, any other fate ends it. A fork
/// leaves its other side pending.
fn walk(program: &Program, addr: IpAddr, port: u16, budget: &mut usize) -> Vec<(Fate, Flags)> {
    let family = Family::of(addr);
    let Some(first) = start(program, 0, family, Flags::default()) else {
        return vec![(Fate::Accept, Flags::default())];
    };
    let mut walker = Walker {
        program,
        addr,
        port,
        steps: 0,
        budget,
        pending: vec![first],
    };
    let mut leaves = Vec::new();
    while let Some(mut st) = walker.pending.pop() {
        let Some(base) = program.bases.get(st.base) else {
            leaves.push((Fate::Undecided, st.flags));
            continue;
        };
        let fate = walker.through_base(&mut st, base.policy);
        if fate == Fate::Accept {
            // Accepted by this base chain: the next one on the hook runs.
            match start(program, st.base + 1, family, st.flags) {
                Some(next) => walker.pending.push(next),
                None => leaves.push((Fate::Accept, st.flags)),
            }
        } else {
            leaves.push((fate, st.flags));
        }
    }
    leaves
}

/// One packet's walk in progress.
struct Walker<'a> {
    program: &'a Program,
    addr: IpAddr,
    port: u16,
    /// Rules visited for this packet, over all forks.
    steps: usize,
    /// Steps left for the range.
    budget: &'a mut usize,
    /// Paths not followed yet: the other sides of forks, and paths accepted
    /// by one base chain waiting for the next.
    pending: Vec<State>,
}

impl Walker<'_> {
    /// Follows `st` through its base chain (whose policy is `policy`) to
    /// its fate there, rule by rule; out of steps, the fate is undecided.
    fn through_base(&mut self, st: &mut State, policy: Action) -> Fate {
        loop {
            if !self.step() {
                return Fate::Undecided;
            }
            let Some(chain) = self.program.chains.get(st.chain) else {
                return Fate::Undecided;
            };
            let Some(rule) = chain.rules.get(st.rule) else {
                // The end of a chain: back to the caller, or the policy.
                match st.stack.pop() {
                    Some((c, r)) => {
                        (st.chain, st.rule) = (c, r);
                        continue;
                    }
                    None => return policy_fate(policy),
                }
            };
            st.rule += 1;
            if rule.action == Action::Continue {
                continue;
            }
            match rule.cond.eval(self.addr, self.port) {
                Match::No => continue,
                Match::Yes => {}
                Match::Maybe { unknown, over } => self.fork(st, unknown, over),
            }
            if let Some(fate) = act(st, rule.action, policy) {
                return fate;
            }
        }
    }

    /// Counts a step against both limits; `false` when either is spent.
    fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps > MAX_STEPS || *self.budget == 0 {
            return false;
        }
        *self.budget -= 1;
        true
    }

    /// A rule that may or may not match: the path where it does not is
    /// left pending, `st` goes on as the path where it does. A rate limit
    /// (`over`) says which side is above the rate.
    fn fork(&mut self, st: &mut State, unknown: bool, over: Option<bool>) {
        let mut miss = st.clone();
        miss.flags.unknown |= unknown;
        miss.flags.over |= over == Some(false);
        self.pending.push(miss);
        st.flags.unknown |= unknown;
        st.flags.over |= over == Some(true);
    }
}

/// A matched rule's action: the path's fate, or `None` when it goes on
/// (after a return, jump or goto, at the rule it leads to).
fn act(st: &mut State, action: Action, policy: Action) -> Option<Fate> {
    match action {
        Action::Continue => None,
        Action::Accept => Some(Fate::Accept),
        Action::Drop => Some(Fate::Drop),
        Action::Undecided => Some(Fate::Undecided),
        Action::Return => match st.stack.pop() {
            Some((c, r)) => {
                (st.chain, st.rule) = (c, r);
                None
            }
            None => Some(policy_fate(policy)),
        },
        Action::Jump(target) => {
            if st.stack.len() >= MAX_DEPTH {
                return Some(Fate::Undecided);
            }
            st.stack.push((st.chain, st.rule));
            (st.chain, st.rule) = (target, 0);
            None
        }
        Action::Goto(target) => {
            (st.chain, st.rule) = (target, 0);
            None
        }
    }
}

/// The walk's state at the first base chain from `from` on that sees the
/// packet's family; `None` when there is none left (the packet passes).
fn start(program: &Program, from: usize, family: Family, flags: Flags) -> Option<State> {
    let (i, base) = program
        .bases
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, b)| b.sees(family))?;
    Some(State {
        base: i,
        chain: base.chain,
        rule: 0,
        stack: Vec::new(),
        flags,
    })
}

fn policy_fate(policy: Action) -> Fate {
    match policy {
        Action::Accept => Fate::Accept,
        Action::Drop => Fate::Drop,
        _ => Fate::Undecided,
    }
}

/// Normal traffic takes the "below the rate" side of every rate limit:
/// those paths say whether the packet passes at all. The paths above some
/// rate say whether it is rate-limited.
fn classify(leaves: &[(Fate, Flags)]) -> FirewallVerdict {
    let normal: Vec<&(Fate, Flags)> = leaves.iter().filter(|(_, f)| !f.over).collect();
    if normal.is_empty() || normal.iter().any(|(fate, _)| *fate == Fate::Undecided) {
        return FirewallVerdict::Unknown;
    }
    if normal.iter().all(|(fate, _)| *fate == Fate::Drop) {
        return FirewallVerdict::Blocked;
    }
    if normal.iter().any(|(fate, _)| *fate != Fate::Accept) {
        return FirewallVerdict::Unknown;
    }
    let over = leaves.iter().filter(|(_, f)| f.over);
    let mut verdict = FirewallVerdict::Allowed;
    for (fate, flags) in over {
        match fate {
            Fate::Drop if !flags.unknown => return FirewallVerdict::RateLimited,
            Fate::Accept => {}
            _ => verdict = FirewallVerdict::Unknown,
        }
    }
    verdict
}

/// The verdict for a forwarding range and each web port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeVerdict {
    pub range: IpNet,
    pub verdict: FirewallVerdict,
    /// In the order of the configured ports.
    pub ports: Vec<(u16, FirewallVerdict)>,
}

/// Evaluates every region of `range` on every port with every program and
/// combines by precedence. A region is a block of addresses that no rule
/// tells apart; its first address stands for it.
pub fn judge_range(programs: &[&Program], range: IpNet, ports: &[u16]) -> RangeVerdict {
    let range = range.trunc();
    let family = Family::of(range.network());
    let (lo, hi) = (addr_bits(range.network()), addr_bits(range.broadcast()));
    let mut starts = vec![lo];
    for p in programs {
        for (a, b) in p.source_intervals(family) {
            if a > lo && a <= hi {
                starts.push(a);
            }
            if b >= lo && b < hi {
                starts.push(b + 1);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut port_verdicts: Vec<(u16, FirewallVerdict)> = ports
        .iter()
        .map(|&p| (p, FirewallVerdict::Allowed))
        .collect();
    if starts.len() > MAX_REGIONS {
        for pv in &mut port_verdicts {
            pv.1 = FirewallVerdict::Unknown;
        }
    }
    let mut budget = RANGE_STEPS;
    'regions: for bits in starts.iter().take(MAX_REGIONS) {
        let Some(addr) = bits_addr(family, *bits) else {
            continue;
        };
        for (port, verdict) in &mut port_verdicts {
            for p in programs {
                let leaves = walk(p, addr, *port, &mut budget);
                *verdict = (*verdict).max(classify(&leaves));
            }
        }
        // Blocked everywhere: nothing further can change the answer.
        if port_verdicts
            .iter()
            .all(|(_, v)| *v == FirewallVerdict::Blocked)
        {
            break 'regions;
        }
    }
    let verdict = port_verdicts
        .iter()
        .map(|(_, v)| *v)
        .max()
        .unwrap_or(FirewallVerdict::Allowed);
    RangeVerdict {
        range,
        verdict,
        ports: port_verdicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::firewall::model::{AddrSet, Base, Chain, Cond, PortSet, Rule};

    fn program(rules: Vec<Rule>, policy: Action) -> Program {
        Program {
            chains: vec![Chain {
                name: "INPUT".into(),
                rules,
            }],
            bases: vec![Base {
                chain: 0,
                v4: true,
                v6: true,
                policy,
            }],
        }
    }

    fn src(net: &str) -> Cond {
        Cond::Src(AddrSet::from_net(net.parse().unwrap()))
    }

    fn judge(p: &Program, range: &str) -> FirewallVerdict {
        judge_range(&[p], range.parse().unwrap(), &[80, 443]).verdict
    }

    #[test]
    fn a_banned_address_inside_the_range_blocks_it() {
        let p = program(
            vec![Rule {
                cond: src("198.51.100.7/32"),
                action: Action::Drop,
            }],
            Action::Accept,
        );
        assert_eq!(judge(&p, "198.51.100.0/24"), FirewallVerdict::Blocked);
        assert_eq!(judge(&p, "203.0.113.0/24"), FirewallVerdict::Allowed);
    }

    #[test]
    fn unknown_matters_only_when_the_outcome_differs() {
        let p = program(
            vec![Rule {
                cond: Cond::UNKNOWN,
                action: Action::Accept,
            }],
            Action::Accept,
        );
        assert_eq!(judge(&p, "198.51.100.0/24"), FirewallVerdict::Allowed);
        let p = program(
            vec![Rule {
                cond: Cond::UNKNOWN,
                action: Action::Accept,
            }],
            Action::Drop,
        );
        assert_eq!(judge(&p, "198.51.100.0/24"), FirewallVerdict::Unknown);
    }

    #[test]
    fn rate_limits_either_way_round() {
        // -m limit --limit 10/s -j ACCEPT; policy DROP
        let p = program(
            vec![Rule {
                cond: Cond::rate(false),
                action: Action::Accept,
            }],
            Action::Drop,
        );
        assert_eq!(judge(&p, "198.51.100.0/24"), FirewallVerdict::RateLimited);
        // -m hashlimit --hashlimit-above 10/s -j DROP; policy ACCEPT, on 443 only
        let cond = Cond::All(vec![
            Cond::Dport(PortSet(vec![(443, 443)])),
            Cond::rate(true),
        ]);
        let p = program(
            vec![Rule {
                cond,
                action: Action::Drop,
            }],
            Action::Accept,
        );
        let v = judge_range(&[&p], "198.51.100.0/24".parse().unwrap(), &[80, 443]);
        assert_eq!(
            v.ports,
            vec![
                (80, FirewallVerdict::Allowed),
                (443, FirewallVerdict::RateLimited)
            ]
        );
        assert_eq!(v.verdict, FirewallVerdict::RateLimited);
    }

    #[test]
    fn user_chains_return_and_goto() {
        let p = Program {
            chains: vec![
                Chain {
                    name: "INPUT".into(),
                    rules: vec![
                        Rule {
                            cond: Cond::TRUE,
                            action: Action::Jump(1),
                        },
                        Rule {
                            cond: src("198.51.100.0/24"),
                            action: Action::Goto(2),
                        },
                        Rule {
                            cond: Cond::TRUE,
                            action: Action::Accept,
                        },
                    ],
                },
                Chain {
                    name: "A".into(),
                    rules: vec![Rule {
                        cond: Cond::TRUE,
                        action: Action::Return,
                    }],
                },
                Chain::default(),
            ],
            bases: vec![Base {
                chain: 0,
                v4: true,
                v6: false,
                policy: Action::Drop,
            }],
        };
        // Goto into an empty chain falls to the policy of INPUT.
        assert_eq!(judge(&p, "198.51.100.0/24"), FirewallVerdict::Blocked);
        assert_eq!(judge(&p, "203.0.113.0/24"), FirewallVerdict::Allowed);
        // The base chain does not see IPv6.
        assert_eq!(judge(&p, "2001:db8::/32"), FirewallVerdict::Allowed);
    }
}
