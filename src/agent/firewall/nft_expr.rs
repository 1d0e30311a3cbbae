//! nftables JSON expressions decided for our packet (see `model`): the
//! left side of a match says what is compared (`ip saddr`, `tcp dport`,
//! `ct state`, ...), the right side with what (a value, prefix, range,
//! anonymous or named set, flags), the operator how.
//!
//! One file because the left side (`Operand`), the right side (`Elem`) and
//! the decision over both share private types no other file needs; split,
//! each part would have to expose them to the others.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::ipt_match::destination_set;
use super::model::{AddrSet, Cond, Family, PortSet};

/// The table a rule is in: its named sets and maps.
pub struct Scope<'a> {
    pub sets: &'a HashMap<&'a str, &'a Value>,
}

/// A literal our packet has, in the spellings nft may print it.
#[derive(Clone, Copy, Debug)]
enum Lit {
    S(&'static str),
    N(u64),
}

const TCP: &[Lit] = &[Lit::S("tcp"), Lit::N(6)];
const TCP_FLAGS: &[(&str, u64)] = &[
    ("fin", 1),
    ("syn", 2),
    ("rst", 4),
    ("psh", 8),
    ("ack", 16),
    ("urg", 32),
    ("ecn", 64),
    ("cwr", 128),
];
const CT_STATE: &[(&str, u64)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];
const CT_STATUS: &[(&str, u64)] = &[
    ("expected", 1),
    ("seen-reply", 2),
    ("assured", 4),
    ("confirmed", 8),
    ("snat", 16),
    ("dnat", 32),
    ("dying", 512),
];

/// What the left side of a match is, for our packet.
#[derive(Clone, Debug)]
enum Operand {
    Saddr,
    Daddr,
    Dport,
    Lit(&'static [Lit]),
    /// Differs by family: nfproto, meta protocol, ct l3proto.
    FamLit(&'static [Lit], &'static [Lit]),
    /// A bitmask and the packet's value of it.
    Flags(&'static [(&'static str, u64)], u64),
    Iface,
    IfType,
    /// A header the packet does not have (`udp dport`): never matches.
    Absent,
    Unknown,
    Concat(Vec<Operand>),
}

/// A right-hand value.
#[derive(Clone, Debug)]
enum Elem {
    S(String),
    N(u64),
    Prefix(IpNet),
    Range(Box<Elem>, Box<Elem>),
    Concat(Vec<Elem>),
    /// `["established", "related"]` or `{"|": [...]}`: flags together.
    Flags(Vec<Elem>),
    Bad,
}

pub fn compile_match(body: &Value, scope: &Scope) -> Cond {
    let op = body.get("op").and_then(Value::as_str).unwrap_or("==");
    let (Some(left), Some(right)) = (body.get("left"), body.get("right")) else {
        return Cond::UNKNOWN;
    };
    let mut needs = Vec::new();
    let operand = operand(left, &mut needs);
    let (list, is_set) = match right.as_str().and_then(|s| s.strip_prefix('@')) {
        Some(name) => match scope.sets.get(name).and_then(|s| elems(s)) {
            Some(list) => (list.iter().map(elem).collect(), true),
            None if scope.sets.contains_key(name) => (Vec::new(), true),
            None => return Cond::UNKNOWN,
        },
        None => match right.get("set").and_then(Value::as_array) {
            Some(list) => (list.iter().map(elem).collect(), true),
            None => (vec![elem(right)], false),
        },
    };
    let cond = decide(&operand, op, &list, is_set);
    if needs.is_empty() {
        return cond;
    }
    // `ip saddr != X` still needs an IPv4 packet: the family is outside
    // the negation.
    let mut all: Vec<Cond> = needs.into_iter().map(Cond::Family).collect();
    all.push(cond);
    Cond::All(all)
}

/// The elements of a named set or map (`[key, value]` pairs for maps).
pub fn elems(set: &Value) -> Option<&Vec<Value>> {
    set.get("elem").and_then(Value::as_array)
}

/// Rate statements: `limit`, `quota`, `ct count`, and `meter` / dynamic
/// set updates that carry one. `None`: not such a statement.
pub fn rate_statement(key: &str, body: &Value) -> Option<Cond> {
    let inv = |b: &Value| b.get("inv").and_then(Value::as_bool).unwrap_or(false);
    match key {
        // A named limit or quota object: which side it holds on is in the
        // object, which we do not read.
        "limit" | "quota" | "ct count" if body.is_string() => Some(Cond::UNKNOWN),
        "limit" | "quota" | "ct count" => Some(Cond::rate(inv(body))),
        "meter" | "set" | "map" => {
            let stmts: Vec<&Value> = match body.get("stmt") {
                Some(Value::Array(list)) => list.iter().collect(),
                Some(one) => vec![one],
                None => Vec::new(),
            };
            let rate = stmts.iter().find_map(|s| {
                let (k, b) = s.as_object()?.iter().next()?;
                matches!(k.as_str(), "limit" | "quota" | "ct count").then(|| Cond::rate(inv(b)))
            });
            Some(rate.unwrap_or(Cond::TRUE))
        }
        _ => None,
    }
}

/// What `left` names, by its kind: a packet header field, a `meta`, `ct`
/// or `fib` key, a masked bitfield, or a concatenation. The address
/// families a header field implies are added to `needs`.
fn operand(left: &Value, needs: &mut Vec<Family>) -> Operand {
    let Some((kind, body)) = left.as_object().and_then(|o| o.iter().next()) else {
        return Operand::Unknown;
    };
    let key = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    match kind.as_str() {
        "payload" => payload_operand(key("protocol"), key("field"), needs),
        "meta" => meta_operand(key("key")),
        // `ct original saddr` and the like carry a direction: not decided.
        "ct" if body.get("dir").is_none() => ct_operand(key("key")),
        "fib" => {
            let flags = body.get("flags").and_then(Value::as_array);
            let daddr = flags.is_some_and(|f| f.iter().any(|x| x.as_str() == Some("daddr")));
            if key("result") == "type" && daddr {
                Operand::Lit(&[Lit::S("local"), Lit::N(2)])
            } else {
                Operand::Unknown
            }
        }
        "&" => masked_operand(body, needs),
        "concat" => match body.as_array() {
            Some(list) => Operand::Concat(list.iter().map(|v| operand(v, needs)).collect()),
            None => Operand::Unknown,
        },
        _ => Operand::Unknown,
    }
}

/// A header field: `ip saddr`, `tcp dport`, ...; `ip`/`ip6` fields need
/// that family.
fn payload_operand(proto: &str, field: &str, needs: &mut Vec<Family>) -> Operand {
    let family = match proto {
        "ip" => Some(Family::V4),
        "ip6" => Some(Family::V6),
        _ => None,
    };
    needs.extend(family);
    match (proto, field) {
        ("ip" | "ip6", "saddr") => Operand::Saddr,
        ("ip" | "ip6", "daddr") => Operand::Daddr,
        // Assumes no IPv6 extension headers before TCP.
        ("ip", "protocol") | ("ip6", "nexthdr") => Operand::Lit(TCP),
        ("ip", "version") => Operand::Lit(&[Lit::N(4)]),
        ("ip6", "version") => Operand::Lit(&[Lit::N(6)]),
        ("tcp" | "th", "dport") => Operand::Dport,
        ("tcp", "flags") => Operand::Flags(TCP_FLAGS, 2),
        (
            "udp" | "udplite" | "sctp" | "dccp" | "icmp" | "icmpv6" | "igmp" | "esp" | "ah"
            | "comp" | "gre",
            _,
        ) => Operand::Absent,
        _ => Operand::Unknown,
    }
}

/// `meta <key>`.
fn meta_operand(key: &str) -> Operand {
    match key {
        "l4proto" => Operand::Lit(TCP),
        "nfproto" => Operand::FamLit(&[Lit::S("ipv4"), Lit::N(2)], &[Lit::S("ipv6"), Lit::N(10)]),
        "protocol" => Operand::FamLit(
            &[Lit::S("ip"), Lit::N(0x0800)],
            &[Lit::S("ip6"), Lit::N(0x86dd)],
        ),
        "iifname" | "iif" => Operand::Iface,
        "iiftype" => Operand::IfType,
        "pkttype" => Operand::Lit(&[Lit::S("host"), Lit::N(0)]),
        _ => Operand::Unknown,
    }
}

/// `ct <key>`, without a direction.
fn ct_operand(key: &str) -> Operand {
    match key {
        "state" => Operand::Flags(CT_STATE, 8),
        // Assumes the connection is not NATed on its way in.
        "status" => Operand::Flags(CT_STATUS, 0),
        "direction" => Operand::Lit(&[Lit::S("original"), Lit::N(0)]),
        "l3proto" => Operand::FamLit(&[Lit::S("ipv4"), Lit::N(2)], &[Lit::S("ipv6"), Lit::N(10)]),
        "protocol" => Operand::Lit(TCP),
        _ => Operand::Unknown,
    }
}

/// `{"&": [flags, mask]}`: the flags with the packet's value masked.
fn masked_operand(body: &Value, needs: &mut Vec<Family>) -> Operand {
    match body.as_array().map(Vec::as_slice) {
        Some([inner, mask]) => match (operand(inner, needs), elem(mask)) {
            (Operand::Flags(names, value), mask) => match flag_value(&mask, names) {
                Some(m) => Operand::Flags(names, value & m),
                None => Operand::Unknown,
            },
            _ => Operand::Unknown,
        },
        _ => Operand::Unknown,
    }
}

fn elem(v: &Value) -> Elem {
    match v {
        Value::String(s) => Elem::S(s.clone()),
        Value::Number(n) => n.as_u64().map_or(Elem::Bad, Elem::N),
        Value::Array(list) => Elem::Flags(list.iter().map(elem).collect()),
        Value::Object(o) => match o.iter().next() {
            Some((k, b)) => match k.as_str() {
                "prefix" => {
                    let addr = b
                        .get("addr")
                        .and_then(Value::as_str)
                        .and_then(|a| a.parse::<IpAddr>().ok());
                    let len = b
                        .get("len")
                        .and_then(Value::as_u64)
                        .and_then(|l| u8::try_from(l).ok());
                    match addr.zip(len).and_then(|(a, l)| IpNet::new(a, l).ok()) {
                        Some(net) => Elem::Prefix(net),
                        None => Elem::Bad,
                    }
                }
                "range" => match b.as_array().map(Vec::as_slice) {
                    Some([lo, hi]) => Elem::Range(Box::new(elem(lo)), Box::new(elem(hi))),
                    _ => Elem::Bad,
                },
                "concat" => match b.as_array() {
                    Some(list) => Elem::Concat(list.iter().map(elem).collect()),
                    None => Elem::Bad,
                },
                "elem" => b.get("val").map_or(Elem::Bad, elem),
                "|" => match b.as_array() {
                    Some(list) => Elem::Flags(list.iter().map(elem).collect()),
                    None => Elem::Bad,
                },
                _ => Elem::Bad,
            },
            None => Elem::Bad,
        },
        _ => Elem::Bad,
    }
}

/// The condition for `operand op list`. `is_set`: the right side is a set,
/// so `==`/`in` mean membership, not a flag test.
fn decide(operand: &Operand, op: &str, list: &[Elem], is_set: bool) -> Cond {
    let cond = match (operand, op) {
        (Operand::Absent, _) => return Cond::FALSE,
        (Operand::Unknown, _) => return Cond::UNKNOWN,
        (Operand::Dport, "<" | "<=" | ">" | ">=") => match list {
            [Elem::N(n)] => {
                let n = u16::try_from(*n).unwrap_or(u16::MAX);
                let range = match op {
                    "<" if n == 0 => return Cond::FALSE,
                    "<" => (0, n - 1),
                    "<=" => (0, n),
                    ">" if n == u16::MAX => return Cond::FALSE,
                    ">" => (n + 1, u16::MAX),
                    _ => (n, u16::MAX),
                };
                return Cond::Dport(PortSet(vec![range]));
            }
            _ => return Cond::UNKNOWN,
        },
        (_, "==" | "in" | "!=") => member(operand, op, list, is_set),
        _ => return Cond::UNKNOWN,
    };
    if op == "!=" {
        cond.negate()
    } else {
        cond
    }
}

/// Whether the packet's value is in `list` (for flags without a set: the
/// flag test of `in`, or equality).
fn member(operand: &Operand, op: &str, list: &[Elem], is_set: bool) -> Cond {
    match operand {
        Operand::Saddr => match addr_set(list) {
            Some(set) => Cond::Src(set),
            None => Cond::UNKNOWN,
        },
        Operand::Daddr => match addr_set(list) {
            Some(set) => destination_set(&set),
            None => Cond::UNKNOWN,
        },
        Operand::Dport => {
            let ranges: Option<Vec<(u16, u16)>> = list.iter().map(port_range).collect();
            ranges.map_or(Cond::UNKNOWN, |r| Cond::Dport(PortSet(r)))
        }
        Operand::Lit(lits) => Cond::from_bool(list.iter().any(|e| lit_in(lits, e))),
        Operand::FamLit(v4, v6) => Cond::Any(vec![
            Cond::All(vec![
                Cond::Family(Family::V4),
                Cond::from_bool(list.iter().any(|e| lit_in(v4, e))),
            ]),
            Cond::All(vec![
                Cond::Family(Family::V6),
                Cond::from_bool(list.iter().any(|e| lit_in(v6, e))),
            ]),
        ]),
        Operand::Flags(names, value) => {
            let values: Option<Vec<u64>> = list.iter().map(|e| flag_value(e, names)).collect();
            match (values, is_set) {
                (Some(vs), true) => Cond::from_bool(vs.contains(value)),
                (Some(vs), false) if op == "in" => {
                    let mask = vs.iter().fold(0, |a, b| a | b);
                    Cond::from_bool(value & mask != 0)
                }
                (Some(vs), false) => Cond::from_bool(vs.first() == Some(value)),
                (None, _) => Cond::UNKNOWN,
            }
        }
        // We never arrive on loopback; any other name might be ours.
        Operand::Iface => {
            let lo = |e: &Elem| matches!(e, Elem::S(s) if s == "lo" || s == "lo*");
            if list.iter().all(lo) {
                Cond::FALSE
            } else {
                Cond::UNKNOWN
            }
        }
        Operand::IfType => {
            let lo = |e: &Elem| matches!(e, Elem::S(s) if s == "loopback");
            if list.iter().all(lo) {
                Cond::FALSE
            } else {
                Cond::UNKNOWN
            }
        }
        Operand::Concat(parts) => Cond::Any(
            list.iter()
                .map(|e| match e {
                    Elem::Concat(items) if items.len() == parts.len() => Cond::All(
                        parts
                            .iter()
                            .zip(items)
                            .map(|(p, item)| decide(p, "==", std::slice::from_ref(item), true))
                            .collect(),
                    ),
                    _ => Cond::UNKNOWN,
                })
                .collect(),
        ),
        Operand::Absent => Cond::FALSE,
        Operand::Unknown => Cond::UNKNOWN,
    }
}

fn addr_set(list: &[Elem]) -> Option<AddrSet> {
    let mut set = AddrSet::default();
    for e in list {
        match e {
            Elem::S(s) => {
                let a: IpAddr = s.parse().ok()?;
                set.insert_range(a, a);
            }
            Elem::Prefix(net) => set.insert_net(*net),
            Elem::Range(lo, hi) => match (&**lo, &**hi) {
                (Elem::S(a), Elem::S(b)) => {
                    if !set.insert_range(a.parse().ok()?, b.parse().ok()?) {
                        return None;
                    }
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    set.finish();
    Some(set)
}

fn port_range(e: &Elem) -> Option<(u16, u16)> {
    let port = |e: &Elem| match e {
        Elem::N(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    match e {
        Elem::Range(lo, hi) => Some((port(lo)?, port(hi)?)),
        e => port(e).map(|p| (p, p)),
    }
}

fn lit_in(lits: &[Lit], e: &Elem) -> bool {
    lits.iter().any(|lit| match (lit, e) {
        (Lit::S(a), Elem::S(b)) => a.eq_ignore_ascii_case(b),
        (Lit::N(a), Elem::N(b)) => a == b,
        (Lit::N(a), Elem::Range(lo, hi)) => {
            matches!((&**lo, &**hi), (Elem::N(l), Elem::N(h)) if l <= a && a <= h)
        }
        (_, Elem::Flags(list)) => list.iter().any(|x| lit_in(&[*lit], x)),
        _ => false,
    })
}

fn flag_value(e: &Elem, names: &[(&str, u64)]) -> Option<u64> {
    match e {
        Elem::N(n) => Some(*n),
        Elem::S(s) => names.iter().find(|(n, _)| n == s).map(|(_, v)| *v),
        Elem::Flags(list) => list
            .iter()
            .try_fold(0, |acc, x| Some(acc | flag_value(x, names)?)),
        _ => None,
    }
}
