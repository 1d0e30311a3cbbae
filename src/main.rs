use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use badgateway_exporter::agent::Os;
use badgateway_exporter::cli::{self, Cli, Command, LogLevel};
use badgateway_exporter::cmd::{check_config, diagnose};
use badgateway_exporter::server::{self, Settings};
use badgateway_exporter::web::{Limits, WebConfig};

fn main() -> ExitCode {
    let cli = cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config::run(&file),
        Some(Command::Diagnose(request)) => match diagnose::run(request) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("badgateway-exporter diagnose: {e}");
                ExitCode::from(2)
            }
        },
        None => serve(cli),
    }
}

/// Logs to stderr at `--log.level`; libraries at warn and above, unless
/// asked for less.
fn init_logging(level: LogLevel) {
    let ours = level.as_filter();
    let libraries = match level {
        LogLevel::Debug | LogLevel::Info => "warn",
        _ => ours,
    };
    let filter =
        tracing_subscriber::EnvFilter::new(format!("badgateway_exporter={ours},{libraries}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `--web.max-connections`, lowered (with a warning) to what the
/// open-files limit leaves.
fn max_connections(wanted: usize) -> usize {
    match cli::connection_cap(wanted, cli::open_files_soft_limit()) {
        Ok(n) => n,
        Err(lowered) => {
            tracing::warn!(
                wanted,
                max_connections = lowered,
                "--web.max-connections lowered to half of what the open-files limit \
                 (ulimit -n) leaves, so that the probes keep their sockets; raise \
                 LimitNOFILE / ulimit -n for more"
            );
            lowered
        }
    }
}

fn serve(cli: Cli) -> ExitCode {
    init_logging(cli.log_level);
    let addresses = match cli::listen_addresses(&cli.listen_address) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("badgateway-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    let web = match &cli.web_config_file {
        None => None,
        Some(path) => match WebConfig::load(path) {
            Ok(w) => Some(Arc::new(w)),
            Err(e) => {
                eprintln!("badgateway-exporter: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let max_connections = max_connections(cli.max_connections);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("badgateway-exporter: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match bind(&addresses).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "badgateway-exporter: listening on {}: {e}",
                    cli.listen_address
                );
                return ExitCode::FAILURE;
            }
        };
        let settings = Settings {
            os: Os {
                procfs: cli.procfs.clone(),
                ..Os::default()
            },
            disabled_collectors: cli.disabled_collectors.clone(),
            shard: cli.shard,
            config_file: cli.config,
            web,
            max_requests: cli.max_requests,
            limits: Limits {
                max_connections,
                ..Limits::default()
            },
        };
        match server::run(listener, settings, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("badgateway-exporter: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Bind the first address that works (`:PORT` tries IPv6 any, then IPv4).
async fn bind(addresses: &[std::net::SocketAddr]) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in addresses {
        match tokio::net::TcpListener::bind(a).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to listen on")))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}
