//! `nft -j list ruleset` → the chains on the input hook as a [`Program`].
//! Expressions are decided by [`super::nft_expr`].

use std::collections::HashMap;

use serde_json::Value;

use super::model::{target_action, Action, Base, Chain, Cond, Program, Rule};
use super::nft_expr::{compile_match, rate_statement, Scope};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no `nftables` array at the top")]
    Shape,
}

/// Which tables the iptables evaluator already covers, so that they are
/// not read twice: iptables-nft's tables show up in nft's listing too, with
/// their extension matches as opaque `xt` expressions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Skip {
    /// iptables-save read the IPv4 `filter` table.
    pub ip: bool,
    /// ip6tables-save read the IPv6 `filter` table.
    pub ip6: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub program: Program,
    /// Rules in the tables read (ip, ip6, inet; not the skipped ones).
    pub rules: usize,
    /// `family name` of each table left to the iptables evaluator.
    pub skipped: Vec<String>,
}

#[derive(Default)]
struct Table<'a> {
    chains: Vec<ChainDef<'a>>,
    /// Position of each chain in `chains`.
    by_name: HashMap<&'a str, usize>,
    sets: HashMap<&'a str, &'a Value>,
    has_xt: bool,
}

struct ChainDef<'a> {
    name: &'a str,
    /// Hook, priority and policy of a base chain.
    base: Option<(&'a str, i64, &'a str)>,
    rules: Vec<&'a [Value]>,
}

impl<'a> Table<'a> {
    /// The chain called `name`, added if new.
    fn chain(&mut self, name: &'a str) -> &mut ChainDef<'a> {
        let i = *self.by_name.entry(name).or_insert_with(|| {
            self.chains.push(ChainDef {
                name,
                base: None,
                rules: Vec::new(),
            });
            self.chains.len() - 1
        });
        &mut self.chains[i]
    }

    /// Files one listing item of this table: a chain (with its hook,
    /// priority and policy if a base chain), a rule, or a set or map.
    fn add(&mut self, kind: &str, body: &'a Value) {
        match kind {
            "chain" => {
                let base = body.get("hook").and_then(Value::as_str).map(|hook| {
                    let policy = body
                        .get("policy")
                        .and_then(Value::as_str)
                        .unwrap_or("accept");
                    (hook, priority(body.get("prio")), policy)
                });
                self.chain(str_of(body, "name")).base = base;
            }
            "rule" => {
                let exprs = body
                    .get("expr")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                self.has_xt |= exprs.iter().any(|e| e.get("xt").is_some());
                self.chain(str_of(body, "chain")).rules.push(exprs);
            }
            "set" | "map" => {
                self.sets.insert(str_of(body, "name"), body);
            }
            _ => {}
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A table's key: (family, name).
type TableKey<'a> = (&'a str, &'a str);

/// An input base chain with what orders it: (priority, listing position).
type OrderedBase = (i64, usize, Base);

/// The chains of the ip, ip6 and inet tables as one [`Program`], its bases
/// the input hook's base chains in priority order (listing order among
/// equals); tables iptables-save already read are left out, and named in
/// [`Parsed::skipped`].
pub fn parse(json: &str, skip: Skip) -> Result<Parsed, NftError> {
    if json.trim().is_empty() {
        // Older nft prints nothing for an empty ruleset.
        return Ok(Parsed::default());
    }
    let root: Value = serde_json::from_str(json)?;
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(NftError::Shape)?;
    let (order, tables) = tables(items);
    let mut out = Parsed::default();
    let mut bases: Vec<OrderedBase> = Vec::new();
    for (family, name) in order {
        let Some(table) = tables.get(&(family, name)) else {
            continue;
        };
        let (v4, v6) = match family {
            "ip" => (true, false),
            "ip6" => (false, true),
            "inet" => (true, true),
            // arp, bridge, netdev: not on the IP input path.
            _ => continue,
        };
        if owned_by_iptables(family, name, table, skip) {
            out.skipped.push(format!("{family} {name}"));
            continue;
        }
        compile_table((family, name), table, (v4, v6), &mut out, &mut bases);
    }
    bases.sort_by_key(|(prio, pos, _)| (*prio, *pos));
    out.program.bases = bases.into_iter().map(|(_, _, b)| b).collect();
    Ok(out)
}

/// The listing's tables, in listing order and by key, each with its chains,
/// rules and sets; items of other kinds are passed over.
fn tables(items: &[Value]) -> (Vec<TableKey<'_>>, HashMap<TableKey<'_>, Table<'_>>) {
    let mut order: Vec<TableKey> = Vec::new();
    let mut tables: HashMap<TableKey, Table> = HashMap::new();
    for item in items {
        let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let family = str_of(body, "family");
        let key = match kind.as_str() {
            "table" => (family, str_of(body, "name")),
            "chain" | "rule" | "set" | "map" => (family, str_of(body, "table")),
            _ => continue,
        };
        if !tables.contains_key(&key) {
            order.push(key);
        }
        tables.entry(key).or_default().add(kind, body);
    }
    (order, tables)
}

/// Appends the table's chains to the program, counting its rules, and its
/// input base chains to `bases`. Jumps resolve within the table.
fn compile_table(
    (family, name): TableKey,
    table: &Table,
    (v4, v6): (bool, bool),
    out: &mut Parsed,
    bases: &mut Vec<OrderedBase>,
) {
    let offset = out.program.chains.len();
    let index: HashMap<&str, usize> = table
        .chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name, offset + i))
        .collect();
    let scope = Scope { sets: &table.sets };
    for def in &table.chains {
        let mut chain = Chain {
            name: format!("{family} {name} {}", def.name),
            rules: Vec::new(),
        };
        for exprs in &def.rules {
            out.rules += 1;
            compile_rule(exprs, &scope, &index, &mut chain.rules);
        }
        if let Some(("input", prio, policy)) = def.base {
            let policy = if policy == "drop" {
                Action::Drop
            } else {
                Action::Accept
            };
            let chain = out.program.chains.len();
            let base = Base {
                chain,
                v4,
                v6,
                policy,
            };
            bases.push((prio, bases.len(), base));
        }
        out.program.chains.push(chain);
    }
}

/// iptables-nft's tables: `filter` with its capitalised built-in chains, or
/// anything using `xt` extensions — when iptables-save read that family.
fn owned_by_iptables(family: &str, name: &str, table: &Table, skip: Skip) -> bool {
    let covered = match family {
        "ip" => skip.ip,
        "ip6" => skip.ip6,
        _ => false,
    };
    let builtin = table
        .chains
        .iter()
        .any(|c| matches!(c.name, "INPUT" | "FORWARD" | "OUTPUT"));
    covered && (table.has_xt || name == "filter" && builtin)
}

/// `"prio": 0`, or the names newer nft may print.
fn priority(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.as_str() {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "security" => 50,
            "srcnat" => 100,
            _ => 0,
        },
        _ => 0,
    }
}

/// One nft rule → one rule, or several for a verdict map (one per entry,
/// each with the rule's earlier conditions).
fn compile_rule(exprs: &[Value], scope: &Scope, index: &HashMap<&str, usize>, out: &mut Vec<Rule>) {
    let mut conds: Vec<Cond> = Vec::new();
    for expr in exprs {
        let Some((key, body)) = expr.as_object().and_then(|o| o.iter().next()) else {
            conds.push(Cond::UNKNOWN);
            continue;
        };
        if let Some(action) = verdict(expr, index) {
            out.push(Rule {
                cond: Cond::All(conds),
                action,
            });
            return;
        }
        match key.as_str() {
            "match" => conds.push(compile_match(body, scope)),
            "vmap" => {
                vmap(body, scope, index, &conds, out);
                // No entry found ends the rule: the next rule runs.
                return;
            }
            "xt" => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or("");
                if body.get("type").and_then(Value::as_str) == Some("target") {
                    let action = target_action(name).unwrap_or(Action::Undecided);
                    out.push(Rule {
                        cond: Cond::All(conds),
                        action,
                    });
                    return;
                }
                conds.push(Cond::UNKNOWN);
            }
            // Statements that count, log or set something and go on.
            "counter" | "log" | "mangle" | "notrack" | "ct helper" | "ct timeout"
            | "ct expectation" | "secmark" | "dup" | "snat" | "dnat" | "masquerade"
            | "redirect" | "flow" | "tproxy" | "synproxy-config" => {}
            _ => match rate_statement(key, body) {
                Some(cond) => conds.push(cond),
                // queue, synproxy, fwd, an expression we do not know.
                None if matches!(key.as_str(), "queue" | "synproxy" | "fwd") => {
                    out.push(Rule {
                        cond: Cond::All(conds),
                        action: Action::Undecided,
                    });
                    return;
                }
                None => conds.push(Cond::UNKNOWN),
            },
        }
    }
}

/// `{"accept": null}`, `{"jump": {"target": "x"}}`, ...; `None` if not a
/// verdict. A jump to a chain we do not have is undecided.
fn verdict(v: &Value, index: &HashMap<&str, usize>) -> Option<Action> {
    let (key, body) = v.as_object()?.iter().next()?;
    let chain = || {
        body.get("target")
            .and_then(Value::as_str)
            .and_then(|t| index.get(t).copied())
    };
    Some(match key.as_str() {
        "accept" => Action::Accept,
        "drop" | "reject" => Action::Drop,
        "return" => Action::Return,
        "continue" => Action::Continue,
        "jump" => chain().map_or(Action::Undecided, Action::Jump),
        "goto" => chain().map_or(Action::Undecided, Action::Goto),
        _ => return None,
    })
}

/// `ct state vmap { established : accept, ... }` or `tcp dport vmap @m`.
fn vmap(
    body: &Value,
    scope: &Scope,
    index: &HashMap<&str, usize>,
    prefix: &[Cond],
    out: &mut Vec<Rule>,
) {
    let key = body.get("key").cloned().unwrap_or(Value::Null);
    let entries: Vec<(Value, Option<Action>)> = match body.get("data") {
        Some(Value::String(name)) => match name.strip_prefix('@').and_then(|n| scope.sets.get(n)) {
            // A map without elements never matches.
            Some(map) => match map.get("elem").and_then(Value::as_array) {
                Some(list) => list.iter().map(|e| entry(e, index)).collect(),
                None => Vec::new(),
            },
            None => vec![(Value::Null, None)],
        },
        Some(data) => match data.get("set").and_then(Value::as_array) {
            Some(list) => list.iter().map(|e| entry(e, index)).collect(),
            None => vec![(Value::Null, None)],
        },
        None => vec![(Value::Null, None)],
    };
    for (k, action) in entries {
        let mut cond = prefix.to_vec();
        match (k.is_null(), action) {
            (false, Some(action)) => {
                let m = serde_json::json!({"op": "==", "left": key, "right": k});
                cond.push(compile_match(&m, scope));
                out.push(Rule {
                    cond: Cond::All(cond),
                    action,
                });
            }
            // An entry or map we cannot read: it may apply, doing anything.
            _ => {
                cond.push(Cond::UNKNOWN);
                out.push(Rule {
                    cond: Cond::All(cond),
                    action: Action::Undecided,
                });
            }
        }
    }
}

/// A map entry `[key, verdict]`, keys possibly wrapped in `{"elem": ...}`.
fn entry(e: &Value, index: &HashMap<&str, usize>) -> (Value, Option<Action>) {
    match e.as_array().map(Vec::as_slice) {
        Some([k, v]) => {
            let k = k.get("elem").and_then(|el| el.get("val")).unwrap_or(k);
            (k.clone(), verdict(v, index))
        }
        _ => (Value::Null, None),
    }
}
