//! The semantic pass: raw structs in, validated [`Config`] out, with every
//! problem collected (not just the first) and positioned via [`PosIndex`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use humantime::format_duration;

use super::error::{quote, ConfigError, ConfigErrors};
use super::position::{Pos, PosIndex, YamlPath};
use super::raw::{RawAccessLog, RawAgent, RawConfig, RawEchoes, RawProbe, RawSite, RawTls};
use super::types::*;
use super::values;

/// Past this many errors the rest are summarised in one line: a file of
/// thousands of broken entries should not flood the terminal.
const MAX_REPORTED: usize = 100;
/// Errors kept for sorting into file order before the cut to
/// `MAX_REPORTED`; beyond it they are only counted, so that a 4 MiB file of
/// broken entries does not build a huge list.
const MAX_COLLECTED: usize = 10_000;
/// Longest probe interval or timeout. Far longer than any sensible probe
/// period, and keeps `Instant + interval` arithmetic downstream from
/// overflowing.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_ICMP_COUNT: i64 = 1000;
const MIN_ICMP_INTERVAL: Duration = Duration::from_millis(1);
const MAX_ICMP_INTERVAL: Duration = Duration::from_secs(60);
const MAX_BODY_LIMIT_BYTES: i64 = 64 * 1024 * 1024;
const MAX_PROXY_REQUESTS: i64 = 100;

pub(crate) fn validate(
    raw: RawConfig,
    file: &str,
    index: &PosIndex,
) -> Result<Config, ConfigErrors> {
    let mut v = Validator {
        file,
        index,
        errors: Vec::new(),
        uncollected: 0,
    };
    let root = YamlPath::root();
    let probe = v.probe(&root.key("probe"), raw.probe.unwrap_or_default());
    let sites_path = root.key("sites");
    let mut names: HashMap<String, YamlPath> = HashMap::new();
    let sites: Vec<Option<Site>> = raw
        .sites
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, site)| v.site(&sites_path.index(i), site, &probe, &mut names))
        .collect();
    let agent = raw.agent.map(|agent| v.agent(&root.key("agent"), agent));
    v.finish(|| Config {
        probe: probe.defaults.clone(),
        sites: sites.into_iter().flatten().collect(),
        agent: agent.flatten(),
    })
}

/// The probe defaults, plus which of the two durations were valid: a bad
/// `probe.timeout` is reported once, not again for every site.
struct Probe {
    defaults: ProbeDefaults,
    interval_ok: bool,
    timeout_ok: bool,
}

struct Validator<'a> {
    file: &'a str,
    index: &'a PosIndex,
    errors: Vec<(Option<Pos>, String)>,
    /// Errors past `MAX_COLLECTED`, counted only.
    uncollected: usize,
}

impl Validator<'_> {
    /// Reports a problem with the value at `path`.
    fn error(&mut self, path: &YamlPath, problem: impl std::fmt::Display) {
        let pos = self.index.value_pos(path);
        self.push(pos, path, problem);
    }

    /// Reports a problem with the key of the mapping entry at `path`.
    fn key_error(&mut self, path: &YamlPath, problem: impl std::fmt::Display) {
        let pos = self.index.key_pos(path);
        self.push(pos, path, problem);
    }

    fn push(&mut self, pos: Option<Pos>, path: &YamlPath, problem: impl std::fmt::Display) {
        if self.errors.len() >= MAX_COLLECTED {
            self.uncollected += 1;
            return;
        }
        let message = if path.is_root() {
            problem.to_string()
        } else {
            format!("{path}: {problem}")
        };
        self.errors.push((pos, message));
    }

    fn error_count(&self) -> usize {
        self.errors.len() + self.uncollected
    }

    fn finish(mut self, config: impl FnOnce() -> Config) -> Result<Config, ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(config());
        }
        // File order reads best; errors without a position go last.
        self.errors
            .sort_by_key(|(pos, _)| pos.map_or((usize::MAX, usize::MAX), |p| (p.line, p.column)));
        let total = self.errors.len() + self.uncollected;
        let mut errors: Vec<ConfigError> = self
            .errors
            .into_iter()
            .take(MAX_REPORTED)
            .map(|(pos, message)| ConfigError {
                file: self.file.to_string(),
                line: pos.map(|p| p.line),
                column: pos.map(|p| p.column),
                message,
            })
            .collect();
        if total > MAX_REPORTED {
            errors.push(ConfigError {
                file: self.file.to_string(),
                line: None,
                column: None,
                message: format!("... and {} more errors", total - MAX_REPORTED),
            });
        }
        Err(ConfigErrors(errors))
    }

    // ---- probe ------------------------------------------------------------

    fn probe(&mut self, path: &YamlPath, raw: RawProbe) -> Probe {
        let interval = raw
            .interval
            .map(|s| self.interval(&path.key("interval"), &s));
        let timeout = raw.timeout.map(|s| self.timeout(&path.key("timeout"), &s));
        let mut probe = Probe {
            defaults: ProbeDefaults {
                interval: interval.flatten().unwrap_or(DEFAULT_INTERVAL),
                timeout: timeout.flatten().unwrap_or(DEFAULT_TIMEOUT),
                icmp: self.echoes(&path.key("icmp"), raw.icmp.unwrap_or_default()),
                tcp: self.echoes(&path.key("tcp"), raw.tcp.unwrap_or_default()),
                proxy_requests: raw
                    .proxy_requests
                    .and_then(|n| self.proxy_requests(&path.key("proxy_requests"), n))
                    .unwrap_or(DEFAULT_PROXY_REQUESTS),
                body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            },
            interval_ok: interval != Some(None),
            timeout_ok: timeout != Some(None),
        };
        if probe.interval_ok && probe.timeout_ok && probe.defaults.timeout > probe.defaults.interval
        {
            // Point at whichever of the two the file sets; timeout first.
            let at = if timeout.is_some() {
                "timeout"
            } else {
                "interval"
            };
            let default = if timeout.is_none() {
                " (the default; set probe.timeout too)"
            } else {
                ""
            };
            self.error(
                &path.key(at),
                format!(
                    "timeout {}{default} is longer than interval {}; a probe must end before the next one starts",
                    format_duration(probe.defaults.timeout),
                    format_duration(probe.defaults.interval),
                ),
            );
            // Sites inherit both; do not report the same clash for each.
            probe.timeout_ok = false;
        }
        if let Some(limit) = raw.body_limit_bytes {
            let path = path.key("body_limit_bytes");
            match usize::try_from(limit) {
                Ok(bytes) if (1..=MAX_BODY_LIMIT_BYTES).contains(&limit) => {
                    probe.defaults.body_limit_bytes = bytes;
                }
                _ => self.error(
                    &path,
                    format!(
                        "{limit} is out of range; expected a number of bytes from 1 to {MAX_BODY_LIMIT_BYTES} (64 MiB)"
                    ),
                ),
            }
        }
        probe
    }

    fn echoes(&mut self, path: &YamlPath, raw: RawEchoes) -> EchoSettings {
        let mut icmp = EchoSettings::default();
        if let Some(enabled) = raw.enabled {
            icmp.enabled = enabled;
        }
        if let Some(count) = raw.count {
            match u32::try_from(count) {
                Ok(n) if (1..=MAX_ICMP_COUNT).contains(&count) => icmp.count = n,
                _ => self.error(
                    &path.key("count"),
                    format!("{count} is out of range; expected 1 to {MAX_ICMP_COUNT} per round"),
                ),
            }
        }
        if let Some(text) = raw.interval {
            let path = path.key("interval");
            if let Some(d) = self.duration(&path, &text) {
                if d < MIN_ICMP_INTERVAL || d > MAX_ICMP_INTERVAL {
                    self.error(
                        &path,
                        format!(
                            "{} is out of range; expected 1ms to {}",
                            quote(&text),
                            format_duration(MAX_ICMP_INTERVAL)
                        ),
                    );
                } else {
                    icmp.interval = d;
                }
            }
        }
        icmp
    }

    fn proxy_requests(&mut self, path: &YamlPath, n: i64) -> Option<u32> {
        match u32::try_from(n) {
            Ok(n) if (1..=MAX_PROXY_REQUESTS).contains(&i64::from(n)) => Some(n),
            _ => {
                self.error(
                    path,
                    format!("{n} is out of range; expected 1 to {MAX_PROXY_REQUESTS} requests per round"),
                );
                None
            }
        }
    }

    fn duration(&mut self, path: &YamlPath, text: &str) -> Option<Duration> {
        match values::duration(text) {
            Ok(d) => Some(d),
            Err(why) => {
                self.error(path, format!("invalid duration {}: {why}", quote(text)));
                None
            }
        }
    }

    /// A probe interval or timeout: a duration in (0, 24h].
    fn positive_duration(&mut self, path: &YamlPath, text: &str, what: &str) -> Option<Duration> {
        let d = self.duration(path, text)?;
        if d.is_zero() {
            self.error(
                path,
                format!("{what} {} is zero; it must be greater than 0", quote(text)),
            );
            return None;
        }
        if d > MAX_INTERVAL {
            self.error(
                path,
                format!(
                    "{what} {} is too long; the limit is {}",
                    quote(text),
                    format_duration(MAX_INTERVAL)
                ),
            );
            return None;
        }
        Some(d)
    }

    fn interval(&mut self, path: &YamlPath, text: &str) -> Option<Duration> {
        self.positive_duration(path, text, "interval")
    }

    fn timeout(&mut self, path: &YamlPath, text: &str) -> Option<Duration> {
        self.positive_duration(path, text, "timeout")
    }

    // ---- sites ------------------------------------------------------------

    fn site(
        &mut self,
        path: &YamlPath,
        raw: RawSite,
        probe: &Probe,
        names: &mut HashMap<String, YamlPath>,
    ) -> Option<Site> {
        let name = self.site_name(path, raw.name, names);
        let url = self.url(path, raw.url);
        let proxy = self.addresses(&path.key("proxy"), raw.proxy.unwrap_or_default());
        let origin = match raw.origin {
            Some(list) if !list.is_empty() => self.addresses(&path.key("origin"), list),
            Some(_) => {
                self.error(
                    &path.key("origin"),
                    "must list at least one origin address, e.g. [203.0.113.5]",
                );
                None
            }
            None => {
                self.error(
                    path,
                    "missing required key `origin` (the origin server's addresses, e.g. [203.0.113.5])",
                );
                None
            }
        };
        let expect_status = self.expect_status(&path.key("expect_status"), raw.expect_status);
        let source_address = self.source_address(&path.key("source_address"), raw.source_address);
        let origin_source_address = self.source_address(
            &path.key("origin_source_address"),
            raw.origin_source_address,
        );
        let origin_scheme = match raw.origin_scheme.as_deref() {
            None => Some(None),
            Some("http") => Some(Some(Scheme::Http)),
            Some("https") => Some(Some(Scheme::Https)),
            Some(other) => {
                self.error(
                    &path.key("origin_scheme"),
                    format!(
                        "unsupported origin scheme {}; expected http or https",
                        quote(other)
                    ),
                );
                None
            }
        };
        let origin_port = match raw.origin_port {
            None => Some(None),
            Some(n) => match values::port_integer(n) {
                Ok(port) => Some(Some(port)),
                Err(why) => {
                    self.error(&path.key("origin_port"), why);
                    None
                }
            },
        };
        let (interval, timeout) = self.site_timing(path, raw.interval, raw.timeout, probe);
        let method = match raw.method.as_deref() {
            None => Some(HttpMethod::Get),
            Some(m) if m.eq_ignore_ascii_case("GET") => Some(HttpMethod::Get),
            Some(m) if m.eq_ignore_ascii_case("HEAD") => Some(HttpMethod::Head),
            Some(m) => {
                self.error(
                    &path.key("method"),
                    format!("unsupported method {}; expected GET or HEAD", quote(m)),
                );
                None
            }
        };
        let headers = self.headers(&path.key("headers"), raw.headers.map(|h| h.0));
        let tls = self.tls(&path.key("tls"), raw.tls.unwrap_or_default());
        let proxy_requests = match raw.proxy_requests {
            None => Some(probe.defaults.proxy_requests),
            Some(n) => self.proxy_requests(&path.key("proxy_requests"), n),
        };

        Some(Site {
            name: name?,
            url: url?,
            proxy: proxy?,
            origin: origin?,
            expect_status: expect_status?,
            source_address: source_address?,
            origin_source_address: origin_source_address?,
            origin_scheme: origin_scheme?,
            origin_port: origin_port?,
            interval: interval?,
            timeout: timeout?,
            follow_redirects: raw.follow_redirects.unwrap_or(false),
            method: method?,
            headers: headers?,
            tls: tls?,
            // A per-site switch wins over `probe.icmp.enabled` both ways.
            icmp: raw.icmp.unwrap_or(probe.defaults.icmp.enabled),
            proxy_requests: proxy_requests?,
            body_limit_bytes: probe.defaults.body_limit_bytes,
        })
    }

    /// An optional local address to bind: `Some(None)` when not set, `None`
    /// when invalid (reported).
    fn source_address(&mut self, path: &YamlPath, text: Option<String>) -> Option<Option<IpAddr>> {
        let Some(text) = text else {
            return Some(None);
        };
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(Some(ip)),
            Err(_) => {
                self.error(
                    path,
                    format!(
                        "invalid source address {}: expected an IP address of this host, e.g. 198.51.100.20 or 2001:db8::20",
                        quote(&text)
                    ),
                );
                None
            }
        }
    }

    fn site_name(
        &mut self,
        site: &YamlPath,
        name: Option<String>,
        names: &mut HashMap<String, YamlPath>,
    ) -> Option<String> {
        let Some(name) = name else {
            self.error(
                site,
                "missing required key `name` (a unique label such as shop)",
            );
            return None;
        };
        let path = site.key("name");
        if let Err(why) = values::name(&name) {
            self.error(&path, format!("invalid site name {}: {why}", quote(&name)));
            return None;
        }
        if let Some(first) = names.get(&name) {
            let at = match self.index.value_pos(first) {
                Some(pos) => format!("{first} ({pos})"),
                None => first.to_string(),
            };
            self.error(
                &path,
                format!(
                    "duplicate site name {}: already used by {at}; site names must be unique",
                    quote(&name)
                ),
            );
            return None;
        }
        names.insert(name.clone(), path);
        Some(name)
    }

    fn url(&mut self, site: &YamlPath, text: Option<String>) -> Option<url::Url> {
        let Some(text) = text else {
            self.error(
                site,
                "missing required key `url` (the address to probe, e.g. https://www.example.com/healthz)",
            );
            return None;
        };
        let path = site.key("url");
        let url = match url::Url::parse(&text) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    &path,
                    format!(
                        "invalid URL {}: {e}; expected e.g. https://www.example.com/healthz",
                        quote(&text)
                    ),
                );
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") {
            self.error(
                &path,
                format!(
                    "unsupported URL scheme {} in {}; expected http or https",
                    quote(url.scheme()),
                    quote(&text)
                ),
            );
            return None;
        }
        // http(s) URLs always parse with a host, but an empty one would make
        // every probe fail, so keep the check explicit.
        if url.host_str().is_none_or(str::is_empty) {
            self.error(&path, format!("URL {} has no host", quote(&text)));
            return None;
        }
        Some(url)
    }

    fn addresses(&mut self, path: &YamlPath, list: Vec<String>) -> Option<Vec<Address>> {
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, text) in list.iter().enumerate() {
            let path = path.index(i);
            let why = match values::address(text) {
                Ok(a) if a.ip.is_unspecified() || a.ip.is_multicast() || is_broadcast(a.ip) => {
                    "an unspecified, multicast or broadcast address cannot be connected to"
                        .to_string()
                }
                Ok(a) => {
                    out.push(a);
                    continue;
                }
                Err(why) => why,
            };
            self.error(&path, format!("invalid address {}: {why}", quote(text)));
            ok = false;
        }
        ok.then_some(out)
    }

    fn expect_status(
        &mut self,
        path: &YamlPath,
        list: Option<Vec<String>>,
    ) -> Option<Vec<StatusRange>> {
        let Some(list) = list else {
            return Some(vec![DEFAULT_EXPECT_STATUS]);
        };
        if list.is_empty() {
            self.error(
                path,
                "must list at least one status or range (the default is [\"200-399\"])",
            );
            return None;
        }
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, text) in list.iter().enumerate() {
            match values::status_range(text) {
                Ok(range) => out.push(range),
                Err(why) => {
                    self.error(
                        &path.index(i),
                        format!("invalid status range {}: {why}", quote(text)),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Resolves a site's interval and timeout against the probe defaults.
    fn site_timing(
        &mut self,
        site: &YamlPath,
        interval: Option<String>,
        timeout: Option<String>,
        probe: &Probe,
    ) -> (Option<Duration>, Option<Duration>) {
        let own_interval = interval.is_some();
        let own_timeout = timeout.is_some();
        let interval = match interval {
            Some(text) => self.interval(&site.key("interval"), &text),
            None => Some(probe.defaults.interval),
        };
        let timeout = match timeout {
            Some(text) => self.timeout(&site.key("timeout"), &text),
            None => Some(probe.defaults.timeout),
        };
        let inherited_ok = (own_interval || probe.interval_ok) && (own_timeout || probe.timeout_ok);
        if let (Some(i), Some(t)) = (interval, timeout) {
            if t > i && (own_interval || own_timeout) && inherited_ok {
                // Point at the site's own timeout if it has one, else at its
                // own interval, and say where an inherited value comes from.
                let at = if own_timeout { "timeout" } else { "interval" };
                let interval_origin = if own_interval {
                    ""
                } else {
                    " (from probe.interval)"
                };
                let timeout_origin = if own_timeout {
                    ""
                } else {
                    " (from probe.timeout)"
                };
                self.error(
                    &site.key(at),
                    format!(
                        "timeout {}{timeout_origin} is longer than interval {}{interval_origin}; a probe must end before the next one starts",
                        format_duration(t),
                        format_duration(i),
                    ),
                );
                return (Some(i), None);
            }
        }
        (interval, timeout)
    }

    fn headers(
        &mut self,
        path: &YamlPath,
        entries: Option<Vec<(String, String)>>,
    ) -> Option<Vec<(String, String)>> {
        let entries = entries.unwrap_or_default();
        // Lower-cased name -> the name as first written.
        let mut seen: HashMap<String, &str> = HashMap::new();
        let mut ok = true;
        for (i, (name, value)) in entries.iter().enumerate() {
            let entry = path.entry(i, name);
            if let Err(why) = values::header_name(name) {
                self.key_error(
                    &entry,
                    format!("invalid header name {}: {why}", quote(name)),
                );
                ok = false;
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if lower == "host" {
                self.key_error(
                    &entry,
                    "the Host header cannot be set here: it comes from the url (set tls.server_name to change the TLS name)",
                );
                ok = false;
                continue;
            }
            if let Some(first) = seen.insert(lower, name) {
                self.key_error(
                    &entry,
                    format!(
                        "duplicate header {}: already set as {} (header names ignore case)",
                        quote(name),
                        quote(first)
                    ),
                );
                ok = false;
            }
            if let Err(why) = values::header_value(value) {
                self.error(
                    &entry,
                    format!(
                        "invalid value {} for header {}: {why}",
                        quote(value),
                        quote(name)
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(entries)
    }

    fn tls(&mut self, path: &YamlPath, raw: RawTls) -> Option<TlsSettings> {
        let mut ok = true;
        let ca_file = raw.ca_file.map(PathBuf::from);
        if let Some(file) = &ca_file {
            let path = path.key("ca_file");
            // Checked now so a typo fails at startup, not at the first
            // probe. Relative paths are relative to the working directory.
            let problem = match std::fs::metadata(file) {
                Ok(meta) if meta.is_file() => None,
                Ok(_) => Some("is not a regular file".to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some("does not exist".to_string())
                }
                Err(e) => Some(format!("cannot be read: {e}")),
            };
            if let Some(problem) = problem {
                let shown = file.to_string_lossy();
                self.error(&path, format!("CA file {} {problem}", quote(&shown)));
                ok = false;
            }
        }
        if let Some(name) = &raw.server_name {
            if let Err(why) = values::server_name(name) {
                self.error(
                    &path.key("server_name"),
                    format!("invalid server name {}: {why}", quote(name)),
                );
                ok = false;
            }
        }
        ok.then(|| TlsSettings {
            insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
            ca_file,
            server_name: raw.server_name,
        })
    }

    // ---- agent ------------------------------------------------------------

    fn agent(&mut self, path: &YamlPath, raw: RawAgent) -> Option<AgentConfig> {
        let before = self.error_count();
        let mut agent = AgentConfig::default();

        let sites_path = path.key("sites");
        let mut labels = HashSet::new();
        for (i, label) in raw.sites.unwrap_or_default().into_iter().enumerate() {
            let item = sites_path.index(i);
            if let Err(why) = values::name(&label) {
                self.error(
                    &item,
                    format!("invalid site label {}: {why}", quote(&label)),
                );
            } else if !labels.insert(label.clone()) {
                self.error(&item, format!("duplicate site label {}", quote(&label)));
            } else {
                agent.sites.push(label);
            }
        }

        let ranges_path = path.key("forwarding_ranges");
        for (i, text) in raw.forwarding_ranges.unwrap_or_default().iter().enumerate() {
            match values::cidr(text) {
                Ok(net) => agent.forwarding_ranges.push(net),
                Err(why) => self.error(
                    &ranges_path.index(i),
                    format!("invalid forwarding range {}: {why}", quote(text)),
                ),
            }
        }

        if let Some(ports) = raw.web_ports {
            let ports_path = path.key("web_ports");
            if ports.is_empty() {
                self.error(
                    &ports_path,
                    "must list at least one port (leave the key out for the default [80, 443])",
                );
            }
            agent.web_ports.clear();
            agent.web_ports_configured = true;
            for (i, n) in ports.into_iter().enumerate() {
                match values::port_integer(n) {
                    Ok(port) if agent.web_ports.contains(&port) => {
                        self.error(&ports_path.index(i), format!("duplicate port {port}"));
                    }
                    Ok(port) => agent.web_ports.push(port),
                    Err(why) => self.error(&ports_path.index(i), why),
                }
            }
        }

        let processes_path = path.key("processes");
        for (i, process) in raw.processes.unwrap_or_default().into_iter().enumerate() {
            if process.is_empty() || process.contains('/') {
                self.error(
                    &processes_path.index(i),
                    format!(
                        "invalid process name {}: expected a non-empty command name without '/', e.g. nginx",
                        quote(&process)
                    ),
                );
            } else {
                agent.processes.push(process);
            }
        }

        let interfaces_path = path.key("interfaces");
        for (i, (name, raw_iface)) in raw
            .interfaces
            .map(|m| m.0)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let entry = interfaces_path.entry(i, &name);
            if let Err(why) = interface_name(&name) {
                self.key_error(
                    &entry,
                    format!("invalid interface name {}: {why}", quote(&name)),
                );
                continue;
            }
            if agent.interfaces.contains_key(&name) {
                self.key_error(&entry, format!("duplicate interface {}", quote(&name)));
                continue;
            }
            let Some(text) = raw_iface.capacity else {
                self.error(
                    &entry,
                    "missing required key `capacity` (the link speed, e.g. 1Gbit)",
                );
                continue;
            };
            match values::capacity(&text) {
                Ok(bits) => {
                    agent.interfaces.insert(
                        name,
                        InterfaceConfig {
                            capacity_bits_per_second: bits,
                        },
                    );
                }
                Err(why) => self.error(
                    &entry.key("capacity"),
                    format!("invalid capacity {}: {why}", quote(&text)),
                ),
            }
        }

        if let Some(log) = raw.access_log {
            agent.access_log = self.access_log(&path.key("access_log"), log);
        }

        match raw.firewall.as_deref() {
            None | Some("auto") => {}
            Some("iptables") => agent.firewall = FirewallMode::Iptables,
            Some("nftables") => agent.firewall = FirewallMode::Nftables,
            Some("off") => agent.firewall = FirewallMode::Off,
            Some(other) => self.error(
                &path.key("firewall"),
                format!(
                    "unknown firewall mode {}; expected auto, iptables, nftables or off",
                    quote(other)
                ),
            ),
        }

        (self.error_count() == before).then_some(agent)
    }

    fn access_log(&mut self, path: &YamlPath, raw: RawAccessLog) -> Option<AccessLogConfig> {
        let file = match raw.path {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            Some(_) => {
                self.error(&path.key("path"), "must not be empty");
                None
            }
            None => {
                self.error(
                    path,
                    "missing required key `path` (the web server's access log file)",
                );
                None
            }
        };
        let format = match raw.format.as_deref() {
            None | Some("combined") => Some(LogFormat::Combined),
            Some("common") => Some(LogFormat::Common),
            Some(custom) if has_variable(custom, "status") => {
                Some(LogFormat::Custom(custom.to_string()))
            }
            Some(other) => {
                self.error(
                    &path.key("format"),
                    format!(
                        "{} is neither combined, common nor a usable custom nginx log_format (a custom format must contain $status and the peer's address: $remote_addr, or $realip_remote_addr when nginx's real_ip is on)",
                        quote(other)
                    ),
                );
                None
            }
        };
        let format = format?;
        let (peer, at) = match &raw.peer_variable {
            None => (format.default_peer().to_owned(), "format"),
            Some(v) => (v.strip_prefix('$').unwrap_or(v).to_owned(), "peer_variable"),
        };
        if !has_variable(format.text(), &peer) {
            self.error(
                &path.key(at),
                format!(
                    "the format has no ${peer}, the connecting peer's address by which lines are classed: \
                     $remote_addr, or $realip_remote_addr when nginx's real_ip is on (peer_variable names another)"
                ),
            );
            return None;
        }
        Some(AccessLogConfig {
            path: file?,
            format,
            peer_variable: peer,
        })
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// A Linux interface name: 1 to 15 bytes, no '/', no whitespace, not `.`
/// or `..` (the kernel's own rules).
fn interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be 1 to 15 characters long".into());
    }
    if name == "."
        || name == ".."
        || name.contains('/')
        || name.contains(|c: char| c.is_whitespace() || c == ':')
    {
        return Err("must not be . or .. nor contain '/', ':' or whitespace".into());
    }
    Ok(())
}
