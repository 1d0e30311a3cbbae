//! Command line: run the exporter, or one of its one-shot commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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

    /// Only log messages with this severity or above.
    #[arg(long = "log.level", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file: exit 0 when it is good, otherwise
    /// print every error with its line and column and exit 1.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
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
