//! The matches of one iptables rule, decided for our packet: a new TCP
//! connection (SYN, conntrack NEW, not DNATed) from a forwarding IP to a
//! web port, on a non-loopback interface we cannot name. Whatever cannot be
//! decided from that is `Cond::UNKNOWN`, never a guess.

use std::net::IpAddr;

use ipnet::IpNet;

use super::ipt_lex::{Target, Token};
use super::model::{AddrSet, Cond, Family, PortSet};

/// The rule's condition and target, from the words after `-A CHAIN`.
pub fn rule_cond(tokens: &[Token], family: Family) -> (Cond, Target) {
    let mut conds = Vec::new();
    let mut module: Option<Module> = None;
    let mut negate = false;
    let mut target = Target::None;
    let mut i = 0;
    while i < tokens.len() {
        let word = &tokens[i];
        i += 1;
        if !word.quoted && word.text == "!" {
            negate = true;
            continue;
        }
        let start = i;
        while i < tokens.len() && !is_option(&tokens[i]) {
            i += 1;
        }
        let args: Vec<&str> = tokens[start..i].iter().map(|t| t.text.as_str()).collect();
        let first = args.first().copied().unwrap_or("");
        let cond = match word.text.as_str() {
            _ if word.quoted => Cond::UNKNOWN,
            "-s" | "--source" => source(first, family),
            "-d" | "--destination" => destination(first),
            "-p" | "--protocol" => Cond::from_bool(matches!(first, "tcp" | "6" | "all" | "0")),
            "-i" | "--in-interface" => interface(first),
            // Only non-first fragments match `-f`; a SYN is a first one.
            "-f" | "--fragment" => Cond::FALSE,
            "-c" | "--set-counters" | "-4" | "--ipv4" | "-6" | "--ipv6" => Cond::TRUE,
            "-m" | "--match" => {
                conds.extend(module.take().map(Module::finish));
                module = Some(Module::new(first));
                Cond::TRUE
            }
            "-j" | "--jump" => {
                target = Target::Jump(first.to_owned());
                break;
            }
            "-g" | "--goto" => {
                target = Target::Goto(first.to_owned());
                break;
            }
            option => {
                // Module options apply `!` themselves: on a rate option it
                // flips the side of the rate the match holds on.
                let cond = match module.as_mut() {
                    Some(m) => m.option(option, &args, negate),
                    // `-p tcp --dport 80` without `-m tcp`: the protocol's
                    // implicit module (iptables-save always names it).
                    None => Module::new("tcp").option(option, &args, negate),
                };
                conds.push(cond);
                negate = false;
                continue;
            }
        };
        conds.push(if negate { cond.negate() } else { cond });
        negate = false;
    }
    conds.extend(module.take().map(Module::finish));
    (Cond::All(conds), target)
}

fn is_option(t: &Token) -> bool {
    !t.quoted && (t.text == "!" || (t.text.len() > 1 && t.text.starts_with('-')))
}

/// The current `-m` module: its options, and what it decides as a whole
/// (a rate limit, a protocol we are not).
struct Module {
    name: String,
    /// For rate modules: whether the match holds above the rate.
    over: Option<bool>,
}

impl Module {
    fn new(name: &str) -> Module {
        let over = match name {
            "limit" | "hashlimit" => Some(false),
            "connlimit" => Some(true),
            _ => None,
        };
        Module {
            name: name.to_owned(),
            over,
        }
    }

    fn option(&mut self, option: &str, args: &[&str], negate: bool) -> Cond {
        match self.decide(option, args, negate) {
            Some(cond) if negate => cond.negate(),
            Some(cond) => cond,
            None => Cond::TRUE,
        }
    }

    /// The option's condition, or `None` for rate options, which change
    /// the module's condition instead.
    fn decide(&mut self, option: &str, args: &[&str], negate: bool) -> Option<Cond> {
        let first = args.first().copied().unwrap_or("");
        Some(match (self.name.as_str(), option) {
            ("tcp", "--dport" | "--destination-port") => ports(first),
            ("tcp", "--syn") => Cond::TRUE,
            ("tcp", "--tcp-flags") => tcp_flags(args),
            ("multiport", "--dports" | "--destination-ports") => ports(first),
            // Either port: the source port could be anything.
            ("multiport", "--ports") => Cond::Any(vec![ports(first), Cond::UNKNOWN]),
            ("conntrack", "--ctstate") | ("state", "--state") => {
                Cond::from_bool(list(first).any(|s| s == "NEW"))
            }
            // A new connection has no status bits yet.
            ("conntrack", "--ctstatus") => Cond::from_bool(list(first).any(|s| s == "NONE")),
            ("conntrack", "--ctdir") => Cond::from_bool(first == "ORIGINAL"),
            ("conntrack", "--ctproto") => Cond::from_bool(matches!(first, "tcp" | "6")),
            ("addrtype", "--dst-type") => Cond::from_bool(list(first).any(|s| s == "LOCAL")),
            ("addrtype", "--src-type") => Cond::from_bool(list(first).any(|s| s == "UNICAST")),
            ("addrtype", "--limit-iface-in" | "--limit-iface-out") => Cond::TRUE,
            ("iprange", "--src-range") => src_range(first),
            ("pkttype", "--pkt-type") => Cond::from_bool(matches!(first, "unicast" | "host")),
            ("comment", _) => Cond::TRUE,
            ("limit", "--limit" | "--limit-burst") => Cond::TRUE,
            ("hashlimit", "--hashlimit-above") => return self.rate(true, negate),
            ("hashlimit", "--hashlimit-upto" | "--hashlimit") => return self.rate(false, negate),
            ("hashlimit", o) if o.starts_with("--hashlimit-") => Cond::TRUE,
            ("connlimit", "--connlimit-above") => return self.rate(true, negate),
            ("connlimit", "--connlimit-upto") => return self.rate(false, negate),
            ("connlimit", "--connlimit-mask" | "--connlimit-saddr" | "--connlimit-daddr") => {
                Cond::TRUE
            }
            // Holds for an address seen (often) recently: a dynamic ban.
            ("recent", "--rcheck" | "--update" | "--remove") => return self.rate(true, negate),
            ("recent", _) => Cond::TRUE,
            _ => Cond::UNKNOWN,
        })
    }

    fn rate(&mut self, over: bool, negate: bool) -> Option<Cond> {
        self.over = Some(over != negate);
        None
    }

    fn finish(self) -> Cond {
        if let Some(over) = self.over {
            return Cond::rate(over);
        }
        match self.name.as_str() {
            "tcp" | "multiport" | "conntrack" | "state" | "addrtype" | "iprange" | "pkttype"
            | "comment" | "recent" => Cond::TRUE,
            // Other protocols' headers: never on a TCP packet.
            "udp" | "udplite" | "sctp" | "dccp" | "icmp" | "icmp6" | "icmpv6" | "mh" | "esp"
            | "ah" | "igmp" => Cond::FALSE,
            // mark, set, string, u32, owner, time, geoip, ...: cannot tell.
            _ => Cond::UNKNOWN,
        }
    }
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim)
}

/// `-s 198.51.100.0/24`, `-s 2001:db8::1/128`, `-s 10.0.0.0/255.0.0.0`.
fn source(text: &str, family: Family) -> Cond {
    match parse_net(text) {
        Some(net) if Family::of(net.network()) == family => Cond::Src(AddrSet::from_net(net)),
        _ => Cond::UNKNOWN,
    }
}

pub fn parse_net(text: &str) -> Option<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    let (addr, mask) = match text.split_once('/') {
        Some((a, m)) => (a.parse::<IpAddr>().ok()?, Some(m)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let len = match mask {
        None => match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        },
        // A dotted mask; only contiguous ones are prefixes.
        Some(m) => ipnet::ip_mask_to_prefix(m.parse::<IpAddr>().ok()?).ok()?,
    };
    IpNet::new(addr, len).ok()
}

/// The destination is one of this host's addresses, and we do not know
/// which: only addresses that can never be it (multicast, broadcast,
/// loopback from a non-loopback interface, link-local) are decided.
pub fn destination(text: &str) -> Cond {
    match parse_net(text) {
        Some(net) => destination_set(&AddrSet::from_net(net)),
        None => Cond::UNKNOWN,
    }
}

pub fn destination_set(set: &AddrSet) -> Cond {
    const NEVER: [&str; 8] = [
        "224.0.0.0/4",
        "255.255.255.255/32",
        "127.0.0.0/8",
        "0.0.0.0/8",
        "ff00::/8",
        "::1/128",
        "fe80::/10",
        "::/128",
    ];
    let mut never = AddrSet::default();
    for n in NEVER {
        if let Ok(net) = n.parse() {
            never.insert_net(net);
        }
    }
    never.finish();
    let whole = |f| set.intervals(f).first() == Some(&(0, max_bits(f)));
    if whole(Family::V4) || whole(Family::V6) {
        return Cond::TRUE;
    }
    let inside_never = [Family::V4, Family::V6].iter().all(|&f| {
        set.intervals(f).iter().all(|&(lo, hi)| {
            never
                .intervals(f)
                .iter()
                .any(|&(nlo, nhi)| nlo <= lo && hi <= nhi)
        })
    });
    if inside_never {
        Cond::FALSE
    } else {
        Cond::UNKNOWN
    }
}

fn max_bits(f: Family) -> u128 {
    match f {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    }
}

/// `-i lo` never sees the forwarding traffic; any other name might.
fn interface(name: &str) -> Cond {
    match name {
        "+" => Cond::TRUE,
        "lo" | "lo+" => Cond::FALSE,
        _ => Cond::UNKNOWN,
    }
}

/// `80`, `8000:8080`, `:1023`, `1024:`, and comma lists of them.
fn ports(text: &str) -> Cond {
    let mut set = Vec::new();
    for part in list(text) {
        let parsed = match part.split_once(':') {
            Some((lo, hi)) => {
                let lo = if lo.is_empty() {
                    Some(0)
                } else {
                    lo.parse().ok()
                };
                let hi = if hi.is_empty() {
                    Some(u16::MAX)
                } else {
                    hi.parse().ok()
                };
                lo.zip(hi)
            }
            None => part.parse().ok().map(|p| (p, p)),
        };
        match parsed {
            Some(range) => set.push(range),
            // A service name we would have to look up.
            None => return Cond::UNKNOWN,
        }
    }
    Cond::Dport(PortSet(set))
}

/// `--tcp-flags MASK COMP`: our SYN has only SYN set.
fn tcp_flags(args: &[&str]) -> Cond {
    fn bits(s: &str) -> Option<u8> {
        list(s).try_fold(0u8, |acc, f| {
            Some(
                acc | match f {
                    "FIN" => 0x01,
                    "SYN" => 0x02,
                    "RST" => 0x04,
                    "PSH" => 0x08,
                    "ACK" => 0x10,
                    "URG" => 0x20,
                    "ALL" => 0x3f,
                    "NONE" => 0,
                    _ => return None,
                },
            )
        })
    }
    match (
        args.first().and_then(|m| bits(m)),
        args.get(1).and_then(|c| bits(c)),
    ) {
        (Some(mask), Some(comp)) => Cond::from_bool((0x02 & mask) == comp),
        _ => Cond::UNKNOWN,
    }
}

/// `--src-range 198.51.100.1-198.51.100.9`.
fn src_range(text: &str) -> Cond {
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<IpAddr>().ok()?, b.parse::<IpAddr>().ok()?)));
    let mut set = AddrSet::default();
    match parsed {
        Some((lo, hi)) if set.insert_range(lo, hi) => {
            set.finish();
            Cond::Src(set)
        }
        _ => Cond::UNKNOWN,
    }
}
