//! Command line: run the exporter, or one of its one-shot commands.

use std::path::PathBuf;

use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::agent::COLLECTORS;
use crate::cmd::diagnose::Request;

#[derive(Debug, Parser)]
#[command(
    name = "badgateway-exporter",
    version,
    about = "Tells why a site behind a protecting proxy answers 502 Bad Gateway, as Prometheus metrics.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Configuration file (YAML). Without it, runs the origin agent on this
    /// host with built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on for the web interface and metrics.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9502"
    )]
    pub listen_address: String,

    /// Web configuration (TLS, basic auth), in the Prometheus exporter-toolkit format.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Scrapes of /metrics served at once, counted until the answer is
    /// sent; one more is answered 503 at once (as node_exporter's flag).
    /// 0: no limit.
    #[arg(long = "web.max-requests", value_name = "N", default_value_t = crate::server::DEFAULT_MAX_REQUESTS)]
    pub max_requests: usize,

    /// Connections open at once to the web server; one accepted beyond it
    /// is closed at once. Lowered, with a warning, to half of what the
    /// open-files limit (RLIMIT_NOFILE) leaves, so that the probes keep
    /// their sockets. 0: no cap.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = crate::web::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Only log messages with this severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// procfs mount point, read by the origin agent.
    #[arg(long = "path.procfs", value_name = "PATH", default_value = "/proc")]
    pub procfs: PathBuf,

    /// Probe only this shard of the configured sites: `I/N` (I from 0),
    /// the sites whose name Prometheus' hashmod puts at I modulo N. N
    /// probers of one vantage with the same configuration split its
    /// sites, each site in exactly one (in a StatefulSet:
    /// `--shard=$(POD_INDEX)/N`).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::prober::shard::Shard>,

    /// The agent collectors turned off (`--no-collector.NAME`, one flag
    /// per registered collector: see [`command`]).
    #[arg(skip)]
    pub disabled_collectors: Vec<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The command line: the options above, and a `--no-collector.NAME` flag
/// for each collector the agent registers.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for c in COLLECTORS {
        let flag = format!("no-collector.{}", c.name);
        cmd = cmd.arg(
            Arg::new(flag.clone())
                .long(flag)
                .action(ArgAction::SetTrue)
                .help(format!(
                    "Turn off the agent's {} collector ({}).",
                    c.name, c.about
                )),
        );
    }
    cmd
}

/// Parse the process's arguments; exits with clap's message on bad ones.
pub fn parse() -> Cli {
    parse_from(std::env::args_os())
}

/// Parse `args` (the program's name first).
pub fn parse_from<I, T>(args: I) -> Cli
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.disabled_collectors = COLLECTORS
        .iter()
        .filter(|c| matches.get_flag(&format!("no-collector.{}", c.name)))
        .map(|c| c.name.to_owned())
        .collect();
    cli
}

// Parsed once per run: the size of the diagnose variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file: exit 0 when it is good, otherwise
    /// print every error with its line and column and exit 1.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// Probe a site once, through the proxy and straight to the origin, and
    /// print which cause explains a 502, the evidence and the next steps.
    /// Exit code: 0 healthy, 1 a cause found, 2 usage or input error.
    Diagnose(Request),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Resolve a listen address written as Prometheus exporters write it:
/// `:9502` means every interface.
pub fn listen_addresses(text: &str) -> Result<Vec<std::net::SocketAddr>, String> {
    let bad = || {
        format!("invalid --web.listen-address {text:?}: expected HOST:PORT, [IPv6]:PORT or :PORT")
    };
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad())?;
        return Ok(vec![
            std::net::SocketAddr::from(([0u16; 8], port)),
            std::net::SocketAddr::from(([0u8; 4], port)),
        ]);
    }
    use std::net::ToSocketAddrs;
    let found: Vec<_> = text.to_socket_addrs().map_err(|_| bad())?.collect();
    if found.is_empty() {
        return Err(bad());
    }
    Ok(found)
}

/// Descriptors kept for everything but web connections, before halving
/// (listeners, files the agent reads, the runtime's own).
const FDS_RESERVED: u64 = 64;

/// The cap on web connections for an open-files soft limit of
/// `soft_limit`: `wanted` (0: no cap), or less, so that connections can
/// hold at most half of the descriptors left after a reserve, and the
/// probes' sockets the other half. `Err` carries the lowered cap.
pub fn connection_cap(wanted: usize, soft_limit: Option<u64>) -> Result<usize, usize> {
    let Some(soft) = soft_limit else {
        return Ok(wanted);
    };
    let budget = usize::try_from(soft.saturating_sub(FDS_RESERVED) / 2)
        .unwrap_or(usize::MAX)
        .max(1);
    if wanted == 0 || wanted > budget {
        Err(budget)
    } else {
        Ok(wanted)
    }
}

/// The soft limit on open files (RLIMIT_NOFILE) from `/proc/self/limits`;
/// `None` when unknown or unlimited.
pub fn open_files_soft_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_limits() {
        let cli = parse_from(["badgateway-exporter"]);
        assert_eq!((cli.max_requests, cli.max_connections), (40, 256));
        let cli = parse_from([
            "badgateway-exporter",
            "--web.max-requests=64",
            "--web.max-connections",
            "10",
        ]);
        assert_eq!((cli.max_requests, cli.max_connections), (64, 10));
        let help = command().render_long_help().to_string();
        assert!(help.contains("--web.max-requests") && help.contains("--web.max-connections"));
        assert_eq!(connection_cap(256, Some(20000)), Ok(256));
        assert_eq!(connection_cap(256, None), Ok(256));
        // 1024 - 64 = 960 left, 480 for connections.
        assert_eq!(connection_cap(256, Some(1024)), Ok(256));
        assert_eq!(connection_cap(1000, Some(1024)), Err(480));
        assert_eq!(connection_cap(256, Some(256)), Err(96));
        assert_eq!(connection_cap(0, Some(1024)), Err(480));
        assert_eq!(connection_cap(5, Some(10)), Err(1));
        assert!(open_files_soft_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn a_flag_for_every_collector() {
        let cli = parse_from([
            "badgateway-exporter",
            "--no-collector.firewall",
            "--no-collector.access_log",
        ]);
        assert_eq!(cli.disabled_collectors, ["firewall", "access_log"]);
        let help = command().render_long_help().to_string();
        for c in COLLECTORS {
            assert!(
                help.contains(&format!("--no-collector.{}", c.name)),
                "{help}"
            );
        }
        assert!(command()
            .try_get_matches_from(["badgateway-exporter", "--no-collector.nope"])
            .is_err());
    }
}
