//! `iptables-save` / `ip6tables-save` output → the `filter` table's INPUT
//! chain as a [`Program`]. Matches are read by [`super::ipt_match`].

use std::collections::HashMap;

use super::ipt_lex::{tokenize, Target, Token};
use super::ipt_match::rule_cond;
use super::model::{target_action, Action, Base, Chain, Cond, Family, Program, Rule};

#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
}

/// What one `*-save` output says about the input path.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub program: Program,
    /// Rules in the `filter` table, all chains.
    pub rules: usize,
    /// The output had a `*filter` table. False also when iptables-nft says
    /// the table is "incompatible" (made with nft): then only the nftables
    /// evaluator can read it.
    pub has_filter: bool,
}

/// Parses the output; `stderr` carries iptables-nft's warning that
/// iptables-legacy rules exist too, which this output does not show.
pub fn parse(stdout: &str, stderr: &str, family: Family) -> Result<Parsed, IptablesError> {
    let mut table: Option<String> = None;
    let mut chains: Vec<(String, Action)> = Vec::new();
    let mut rules: Vec<(String, Vec<Token>)> = Vec::new();
    let mut has_filter = false;
    for (i, raw) in stdout.lines().enumerate() {
        let line_no = i + 1;
        let err = |why: &str| IptablesError::Line {
            line: line_no,
            why: why.to_owned(),
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            table = Some(name.to_owned());
            has_filter |= name == "filter";
            continue;
        }
        if line == "COMMIT" {
            table = None;
            continue;
        }
        let Some(current) = table.as_deref() else {
            return Err(err("a rule or chain outside of a table"));
        };
        if current != "filter" {
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            // `:INPUT DROP [0:0]`; user chains have `-` as policy.
            let mut words = decl.split_whitespace();
            let name = words.next().ok_or_else(|| err("a chain without a name"))?;
            let policy = match words.next() {
                Some("ACCEPT") => Action::Accept,
                Some("DROP") => Action::Drop,
                Some("-") => Action::Return,
                _ => return Err(err("a chain with an unknown policy")),
            };
            chains.push((name.to_owned(), policy));
        } else if line.starts_with("-A ") || line.starts_with('[') {
            let mut tokens = tokenize(line).ok_or_else(|| err("an unterminated quote"))?;
            // `iptables-save -c` puts `[packets:bytes]` first.
            if tokens.first().is_some_and(|t| t.text.starts_with('[')) {
                tokens.remove(0);
            }
            if tokens.len() < 2 || tokens[0].text != "-A" {
                return Err(err("expected `-A CHAIN ...`"));
            }
            let chain = tokens[1].text.clone();
            rules.push((chain, tokens.split_off(2)));
        } else {
            return Err(err("neither a chain, a rule nor COMMIT"));
        }
    }
    let mut program = compile(&chains, &rules, family);
    if stderr.contains("legacy tables present") {
        // Rules in iptables-legacy filter traffic too, and we cannot see
        // them: every answer is "unless those drop it".
        program.chains.push(Chain {
            name: "(iptables-legacy)".into(),
            rules: vec![Rule {
                cond: Cond::UNKNOWN,
                action: Action::Drop,
            }],
        });
        program.bases.push(Base {
            chain: program.chains.len() - 1,
            v4: family == Family::V4,
            v6: family == Family::V6,
            policy: Action::Accept,
        });
    }
    Ok(Parsed {
        program,
        rules: rules.len(),
        has_filter,
    })
}

fn compile(chains: &[(String, Action)], rules: &[(String, Vec<Token>)], family: Family) -> Program {
    let mut program = Program::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let names = chains
        .iter()
        .map(|(n, _)| n)
        .chain(rules.iter().map(|(n, _)| n));
    for name in names {
        index.entry(name.clone()).or_insert_with(|| {
            program.chains.push(Chain {
                name: name.clone(),
                rules: Vec::new(),
            });
            program.chains.len() - 1
        });
    }
    for (chain, tokens) in rules {
        let (cond, target) = rule_cond(tokens, family);
        // A user chain wins over a target of the same name, as in iptables.
        let action = match target {
            Target::None => Action::Continue,
            Target::Jump(name) => match index.get(&name) {
                Some(&i) => Action::Jump(i),
                None => target_action(&name).unwrap_or(Action::Undecided),
            },
            Target::Goto(name) => match index.get(&name) {
                Some(&i) => Action::Goto(i),
                None => Action::Undecided,
            },
        };
        if let Some(&i) = index.get(chain) {
            program.chains[i].rules.push(Rule { cond, action });
        }
    }
    let input = chains.iter().find(|(n, _)| n == "INPUT");
    if let Some((name, policy)) = input {
        if let Some(&i) = index.get(name) {
            program.bases.push(Base {
                chain: i,
                v4: family == Family::V4,
                v6: family == Family::V6,
                policy: *policy,
            });
        }
    }
    program
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::firewall::model::Match;

    #[test]
    fn refuses_garbage() {
        assert!(parse("hello\n", "", Family::V4).is_err());
        assert!(parse("*filter\n:INPUT MAYBE [0:0]\n", "", Family::V4).is_err());
        let empty = parse("", "", Family::V4).unwrap();
        assert!(empty.program.bases.is_empty());
        assert!(!empty.has_filter);
    }

    fn eval(rule: &str, addr: &str, port: u16) -> Match {
        let tokens = tokenize(rule).unwrap();
        let (cond, _) = rule_cond(&tokens, Family::V4);
        cond.eval(addr.parse().unwrap(), port)
    }

    #[test]
    fn decides_what_the_packet_fixes() {
        let a = "198.51.100.7";
        assert_eq!(eval("-i lo -j ACCEPT", a, 80), Match::No);
        assert_eq!(
            eval("! -i lo -s 198.51.100.0/24 -j ACCEPT", a, 80),
            Match::Yes
        );
        assert_eq!(
            eval(
                "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                a,
                80
            ),
            Match::No
        );
        assert_eq!(
            eval(
                "-m state --state NEW -p tcp -m tcp --dport 80 -j ACCEPT",
                a,
                80
            ),
            Match::Yes
        );
        assert_eq!(eval("-p udp -m udp --dport 80 -j ACCEPT", a, 80), Match::No);
        assert_eq!(
            eval(
                "-p tcp -m multiport --dports 22,8000:8080 -j ACCEPT",
                a,
                8080
            ),
            Match::Yes
        );
        assert_eq!(
            eval(
                "-p tcp -m multiport --dports 22,8000:8080 -j ACCEPT",
                a,
                443
            ),
            Match::No
        );
        assert_eq!(eval("! -s 192.0.2.0/24 -j DROP", a, 80), Match::Yes);
        assert_eq!(
            eval(
                "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m state --state NEW -j DROP",
                a,
                80
            ),
            Match::No
        );
        assert_eq!(eval("-d 224.0.0.0/4 -j DROP", a, 80), Match::No);
        assert_eq!(
            eval("-m addrtype --dst-type LOCAL -j ACCEPT", a, 80),
            Match::Yes
        );
        assert_eq!(
            eval(
                "-m iprange --src-range 198.51.100.1-198.51.100.9 -j DROP",
                a,
                80
            ),
            Match::Yes
        );
        assert_eq!(
            eval("-s 198.51.100.0/255.255.255.0 -j DROP", a, 80),
            Match::Yes
        );
    }

    #[test]
    fn leaves_the_rest_undecided() {
        let a = "198.51.100.7";
        let unknown = Match::Maybe {
            unknown: true,
            over: None,
        };
        assert_eq!(eval("-m mark --mark 0x1 -j DROP", a, 80), unknown);
        assert_eq!(
            eval("-m string --string \"x y\" --algo bm -j DROP", a, 80),
            unknown
        );
        assert_eq!(eval("-m set --match-set bans src -j DROP", a, 80), unknown);
        assert_eq!(eval("-i eth0 -j DROP", a, 80), unknown);
        assert_eq!(eval("-d 203.0.113.1/32 -j DROP", a, 80), unknown);
        assert_eq!(eval("-m tcp --dport http -j DROP", a, 80), unknown);
        assert_eq!(
            eval(
                "-m hashlimit --hashlimit-above 10/sec --hashlimit-name x -j DROP",
                a,
                80
            ),
            Match::Maybe {
                unknown: false,
                over: Some(true)
            }
        );
        assert_eq!(
            eval("-m limit --limit 5/min -j ACCEPT", a, 80),
            Match::Maybe {
                unknown: false,
                over: Some(false)
            }
        );
        assert_eq!(
            eval(
                "-m recent --name x --update --seconds 60 --hitcount 5 -j DROP",
                a,
                80
            ),
            Match::Maybe {
                unknown: false,
                over: Some(true)
            }
        );
    }
}
