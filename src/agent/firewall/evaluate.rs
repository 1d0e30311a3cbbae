//! One evaluation: run the tools the mode asks for ([`gather`]), then
//! parse and judge what they printed ([`judge_outputs`]), which tests feed with
//! captured outputs.

use std::time::Duration;

use ipnet::IpNet;

use super::command::{self, CommandError};
use super::model::{Family, Program};
use super::verdict::{judge_range, RangeVerdict};
use super::{iptables, nftables};
use crate::agent::Os;
use crate::config::{AgentConfig, FirewallMode};

/// A tool that takes longer is stuck (a held lock, a hung netlink socket).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("`{cmd}` printed output that cannot be read: {source}")]
    Iptables {
        cmd: String,
        source: iptables::IptablesError,
    },
    #[error("`{cmd}` printed output that cannot be read: {source}")]
    Nft {
        cmd: String,
        source: nftables::NftError,
    },
    #[error("none of `{0}` found: nothing to read the firewall with")]
    NoTool(String),
}

/// What one tool printed.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// The command, for messages.
    pub command: String,
    pub stdout: String,
    pub stderr: String,
}

/// The outputs read; `None`: not asked for, or not installed (`auto`).
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub iptables: Option<Captured>,
    pub ip6tables: Option<Captured>,
    pub nft: Option<Captured>,
}

/// One evaluation of the rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// In the order of `forwarding_ranges`.
    pub ranges: Vec<RangeVerdict>,
    /// Rules read per backend (`iptables`, `nftables`), for the backends
    /// that were read.
    pub rules: Vec<(&'static str, usize)>,
    /// iptables rules were read from the legacy backend (x_tables), whose
    /// changes no nftables event announces: they are polled for.
    pub legacy_iptables: bool,
}

/// Runs the tools `config.firewall` asks for and judges every forwarding
/// range. Blocking.
pub fn evaluate(config: &AgentConfig, os: &Os) -> Result<Evaluation, FirewallError> {
    if config.firewall == FirewallMode::Off || config.forwarding_ranges.is_empty() {
        return Ok(Evaluation::default());
    }
    judge_outputs(config, &gather(config, os)?)
}

fn gather(config: &AgentConfig, os: &Os) -> Result<Outputs, FirewallError> {
    let mode = config.firewall;
    let has = |v4: bool| {
        config
            .forwarding_ranges
            .iter()
            .any(|r| matches!(r, IpNet::V4(_)) == v4)
    };
    // In `auto` a missing tool means that backend is not there; when the
    // mode names one, it is an error.
    let required = mode != FirewallMode::Auto;
    let ipt = matches!(mode, FirewallMode::Auto | FirewallMode::Iptables);
    let nft = matches!(mode, FirewallMode::Auto | FirewallMode::Nftables);
    let mut tried = Vec::new();
    let mut fetch = |wanted: bool, argv: &[String]| -> Result<Option<Captured>, FirewallError> {
        if !wanted {
            return Ok(None);
        }
        tried.push(argv.join(" "));
        match command::run(argv, COMMAND_TIMEOUT) {
            Ok(out) => Ok(Some(Captured {
                command: argv.join(" "),
                stdout: out.stdout,
                stderr: out.stderr,
            })),
            Err(e) if e.is_not_found() && !required => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    let outputs = Outputs {
        iptables: fetch(ipt && has(true), &os.iptables_save)?,
        ip6tables: fetch(ipt && has(false), &os.ip6tables_save)?,
        nft: fetch(nft, &os.nft_list)?,
    };
    if outputs.iptables.is_none() && outputs.ip6tables.is_none() && outputs.nft.is_none() {
        return Err(FirewallError::NoTool(tried.join("`, `")));
    }
    Ok(outputs)
}

/// Parses the outputs and judges every forwarding range on every web port.
/// iptables-nft tables that iptables-save has read are skipped on the nft
/// side.
pub fn judge_outputs(config: &AgentConfig, outputs: &Outputs) -> Result<Evaluation, FirewallError> {
    let mut programs: Vec<Program> = Vec::new();
    let mut rules = Vec::new();
    let mut skip = nftables::Skip::default();
    let mut ipt_rules = None;
    for (captured, family) in [
        (&outputs.iptables, Family::V4),
        (&outputs.ip6tables, Family::V6),
    ] {
        let Some(c) = captured else { continue };
        let parsed = iptables::parse(&c.stdout, &c.stderr, family).map_err(|source| {
            FirewallError::Iptables {
                cmd: c.command.clone(),
                source,
            }
        })?;
        match family {
            Family::V4 => skip.ip = parsed.has_filter,
            Family::V6 => skip.ip6 = parsed.has_filter,
        }
        *ipt_rules.get_or_insert(0) += parsed.rules;
        programs.push(parsed.program);
    }
    rules.extend(ipt_rules.map(|n| ("iptables", n)));
    if let Some(c) = &outputs.nft {
        let parsed = nftables::parse(&c.stdout, skip).map_err(|source| FirewallError::Nft {
            cmd: c.command.clone(),
            source,
        })?;
        rules.push(("nftables", parsed.rules));
        programs.push(parsed.program);
    }
    let refs: Vec<&Program> = programs.iter().collect();
    let ranges = config
        .forwarding_ranges
        .iter()
        .map(|&r| judge_range(&refs, r, &config.web_ports))
        .collect();
    let legacy_iptables = [&outputs.iptables, &outputs.ip6tables]
        .into_iter()
        .flatten()
        .any(|c| {
            c.stdout.lines().next().is_some_and(|first| {
                first.starts_with("# Generated by") && !first.contains("nf_tables")
            })
        });
    Ok(Evaluation {
        ranges,
        rules,
        legacy_iptables,
    })
}
