//! `diagnose`: one round of the exporter's own probes for a site, from a
//! person's terminal, then the verdict, the evidence and the next steps.
//! Exit code 0 healthy, 1 a cause found, 2 a usage or input error.

mod agent;
mod report;
mod steps;

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Address, Config};
use crate::diagnosis::evidence::{agent_from_metrics, Scrape};
use crate::diagnosis::{self, AgentEvidence, Evidence};
use crate::prober::probe::icmp::Pingers;
use crate::prober::round::SiteProber;

/// What a person asked for on the command line (`diagnose --help`).
#[derive(Clone, Debug, clap::Args)]
pub struct Request {
    /// The site's URL, e.g. https://www.example.com/healthz
    pub url: String,
    /// The origin server's address (IP or IP:PORT); repeat for several.
    #[arg(long, value_name = "ADDR", required = true)]
    pub origin: Vec<String>,
    /// The proxy's address; repeat for several. Default: DNS of the URL's host.
    #[arg(long, value_name = "ADDR")]
    pub proxy: Vec<String>,
    /// Local address the probes through the proxy leave from.
    #[arg(long, value_name = "ADDR")]
    pub source: Option<String>,
    /// Local address the probes straight to the origin leave from.
    /// Default: the kernel's choice, never --source: on the proxy host,
    /// --source may be a forwarding IP, which a block also hits.
    #[arg(long, value_name = "ADDR")]
    pub origin_source: Option<String>,
    /// Scheme straight to the origin (http or https). Default: the URL's.
    #[arg(long, value_name = "SCHEME")]
    pub origin_scheme: Option<String>,
    /// Port straight to the origin. Default: the URL's, or the origin
    /// scheme's own when it differs from the URL's.
    #[arg(long, value_name = "PORT")]
    pub origin_port: Option<u16>,
    /// A PEM file of CA certificates to trust beside the system's (a
    /// proxy or origin with a private CA).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// HTTP requests through each proxy address, at once: a fault that
    /// fails a share of the proxy's requests needs several to show (a
    /// third failing shows in 3 of 20 or more, 98 times in 100).
    #[arg(long, default_value_t = 20)]
    pub requests: u32,
    /// ICMP echoes (and TCP handshakes) per address.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// How long each HTTP probe may take.
    #[arg(long, default_value = "5s")]
    pub timeout: String,
    /// An origin agent's metrics URL, e.g. http://203.0.113.5:9502/metrics
    #[arg(long, value_name = "URL")]
    pub agent: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// How the report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl Request {
    fn json(&self) -> bool {
        self.output == Output::Json
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("{0}")]
    Input(String),
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Run the diagnosis; returns the process exit code.
pub fn run(request: Request) -> Result<u8, DiagnoseError> {
    let site = site(&request)?;
    let runtime = tokio::runtime::Runtime::new().map_err(DiagnoseError::Runtime)?;
    runtime.block_on(async move {
        let tls = crate::prober::tls::client_config(&site.tls)
            .map_err(|e| DiagnoseError::Input(e.to_string()))?;
        let progress = report::Progress::start(&site, request.json());
        let prober = Arc::new(SiteProber {
            edges: crate::prober::edges::Edges::for_site(&site),
            icmp: crate::config::EchoSettings {
                enabled: true,
                count: request.count,
                interval: Duration::from_millis(200),
            },
            tcp: crate::config::EchoSettings {
                enabled: true,
                count: request.count,
                interval: Duration::from_millis(200),
            },
            site,
            tls,
            pingers: Arc::new(Pingers::new()),
            tcp_always: true,
        });
        // The agent is read before and after the round: its access log's
        // rates over the round, as the rules take them over a window.
        let before = fetch_agent(request.agent.as_deref()).await;
        let started = std::time::Instant::now();
        let round = prober.round(None).await;
        let after = fetch_agent(request.agent.as_deref()).await;
        let seconds = started.elapsed().as_secs_f64();
        progress.finish();
        let agent: Result<AgentEvidence, String> = after.map(|now| {
            let now = Scrape::parse(&now);
            let before = before.ok().map(|b| Scrape::parse(&b));
            agent_from_metrics(&now, before.as_ref().map(|b| (b, seconds)))
        });
        let cut_off = diagnosis::vantage_cut_off([&round]);
        let evidence = Evidence::from_round(&round, cut_off, agent.as_ref().ok().cloned());
        let verdict = diagnosis::judge(&evidence);
        let report = report::Report {
            site: &prober.site,
            round: &round,
            verdict: &verdict,
            agent: &agent,
            icmp_available: prober.pingers.healthy(),
        };
        if request.json() {
            println!("{}", report.json());
        } else {
            print!("{}", report.text(report::colour_wanted()));
        }
        Ok(if verdict.healthy() { 0 } else { 1 })
    })
}

async fn fetch_agent(url: Option<&str>) -> Result<String, String> {
    match url {
        None => Err("no --agent given".into()),
        Some(u) => agent::fetch(u).await,
    }
}

/// Check every argument and build the site to probe, with the exporter's
/// own defaults (expected status 200-399, body limit, no redirects).
fn site(r: &Request) -> Result<crate::config::Site, DiagnoseError> {
    check(r)?;
    // Everything is checked: let the config loader fill in the defaults,
    // so diagnose probes exactly as the exporter would.
    let mut config = Config::parse(site_yaml(r).as_bytes(), "command line")
        .map_err(|e| DiagnoseError::Input(e.to_string()))?;
    Ok(config.sites.remove(0))
}

fn bad(what: &str, value: &str, why: String) -> DiagnoseError {
    DiagnoseError::Input(format!("invalid {what} {value:?}: {why}"))
}

/// Every argument, checked on its own; the first bad one is the error.
fn check(r: &Request) -> Result<(), DiagnoseError> {
    let url = url::Url::parse(&r.url).map_err(|e| bad("URL", &r.url, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(
            "URL",
            &r.url,
            "expected http:// or https:// with a host".into(),
        ));
    }
    if r.origin.is_empty() {
        return Err(DiagnoseError::Input(
            "--origin is required: the origin server's address (IP, or IP:PORT)".into(),
        ));
    }
    for (flag, values) in [("--origin", &r.origin), ("--proxy", &r.proxy)] {
        for v in values {
            Address::from_str(v).map_err(|e| bad(flag, v, e.to_string()))?;
        }
    }
    for (flag, value) in [
        ("--source", &r.source),
        ("--origin-source", &r.origin_source),
    ] {
        if let Some(s) = value {
            IpAddr::from_str(s).map_err(|e| bad(flag, s, e.to_string()))?;
        }
    }
    if let Some(s) = &r.origin_scheme {
        if !matches!(s.as_str(), "http" | "https") {
            return Err(bad("--origin-scheme", s, "expected http or https".into()));
        }
    }
    if let Some(ca) = &r.ca_file {
        if !ca.is_file() {
            let shown = ca.to_string_lossy();
            return Err(bad("--ca-file", &shown, "no such file".into()));
        }
    }
    if r.origin_port == Some(0) {
        return Err(bad("--origin-port", "0", "expected 1 to 65535".into()));
    }
    if !(1..=100).contains(&r.requests) {
        return Err(bad(
            "--requests",
            &r.requests.to_string(),
            "expected 1 to 100".into(),
        ));
    }
    check_timeout(&r.timeout)?;
    if !(1..=1000).contains(&r.count) {
        return Err(bad(
            "--count",
            &r.count.to_string(),
            "expected 1 to 1000".into(),
        ));
    }
    Ok(())
}

fn check_timeout(t: &str) -> Result<(), DiagnoseError> {
    let timeout = humantime::parse_duration(t).map_err(|e| bad("--timeout", t, e.to_string()))?;
    if timeout.is_zero() || timeout > Duration::from_secs(300) {
        return Err(bad(
            "--timeout",
            t,
            "expected more than 0 and at most 5m".into(),
        ));
    }
    Ok(())
}

/// The site as a configuration file would say it.
fn site_yaml(r: &Request) -> String {
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
    let mut yaml = format!(
        "probe: {{interval: 5m, timeout: {}}}\nsites:\n  - name: diagnose\n    url: {}\n    origin: {}\n",
        serde_json::to_string(&r.timeout).unwrap_or_default(),
        serde_json::to_string(&r.url).unwrap_or_default(),
        list(&r.origin)
    );
    if !r.proxy.is_empty() {
        yaml.push_str(&format!("    proxy: {}\n", list(&r.proxy)));
    }
    let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
    for (key, value) in [
        ("source_address", &r.source),
        ("origin_source_address", &r.origin_source),
        ("origin_scheme", &r.origin_scheme),
    ] {
        if let Some(v) = value {
            yaml.push_str(&format!("    {key}: {}\n", json(v)));
        }
    }
    if let Some(port) = r.origin_port {
        yaml.push_str(&format!("    origin_port: {port}\n"));
    }
    yaml.push_str(&format!("    proxy_requests: {}\n", r.requests));
    if let Some(ca) = &r.ca_file {
        yaml.push_str(&format!(
            "    tls: {{ca_file: {}}}\n",
            json(&ca.to_string_lossy())
        ));
    }
    yaml
}
