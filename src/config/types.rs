//! The validated configuration that the rest of the crate codes against.
//!
//! One file of ~500 lines (50 of them tests): the whole shape, read in one place.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Default time between two probes of a site.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default time a probe may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of ICMP echo requests per round.
pub const DEFAULT_ICMP_COUNT: u32 = 10;
/// Default gap between two ICMP echo requests.
pub const DEFAULT_ICMP_INTERVAL: Duration = Duration::from_millis(200);
/// Default number of HTTP requests through each proxy address per round.
pub const DEFAULT_PROXY_REQUESTS: u32 = 3;
/// Default idle timeout of the proxy's connections to the origin: AWS ALB's
/// and nginx's (`keepalive_timeout` of an upstream block), the common
/// ones; an origin that closes idle connections sooner races the proxy.
pub const DEFAULT_PROXY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of a proxy's DNS addresses probed per round.
pub const DEFAULT_MAX_PROXY_ADDRESSES: u32 = 8;
/// Default number of response body bytes a probe reads.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 65_536;
/// Default ports the agent watches.
pub const DEFAULT_WEB_PORTS: [u16; 2] = [80, 443];
/// Status ranges a probe accepts unless a site says otherwise.
pub const DEFAULT_EXPECT_STATUS: StatusRange = StatusRange {
    low: 200,
    high: 399,
};

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub probe: ProbeDefaults,
    pub sites: Vec<Site>,
    /// `None` unless the file has an `agent:` section.
    pub agent: Option<AgentConfig>,
}

/// The `probe:` section: defaults for every site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeDefaults {
    pub interval: Duration,
    pub timeout: Duration,
    /// ICMP echoes to every address.
    pub icmp: EchoSettings,
    /// TCP handshakes to the web port, where ICMP cannot measure the path
    /// (an address that never answers echoes, ICMP off or unavailable).
    pub tcp: EchoSettings,
    /// HTTP requests through each proxy address per round, at once.
    pub proxy_requests: u32,
    /// The proxy's idle timeout for its connections to the origin; `None`
    /// (`off`) when the origin's is not watched.
    pub proxy_idle_timeout: Option<Duration>,
    /// A proxy found by DNS: at most this many of its addresses are probed.
    pub max_proxy_addresses: u32,
    pub body_limit_bytes: usize,
}

impl Default for ProbeDefaults {
    fn default() -> Self {
        ProbeDefaults {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            icmp: EchoSettings::default(),
            tcp: EchoSettings::default(),
            proxy_requests: DEFAULT_PROXY_REQUESTS,
            proxy_idle_timeout: Some(DEFAULT_PROXY_IDLE_TIMEOUT),
            max_proxy_addresses: DEFAULT_MAX_PROXY_ADDRESSES,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
        }
    }
}

/// A round of echoes (ICMP echo requests, or TCP handshakes) to one
/// address: how many, and how far apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoSettings {
    pub enabled: bool,
    /// Echoes per round, 1..=1000.
    pub count: u32,
    /// Gap between two echoes.
    pub interval: Duration,
}

impl Default for EchoSettings {
    fn default() -> Self {
        EchoSettings {
            enabled: true,
            count: DEFAULT_ICMP_COUNT,
            interval: DEFAULT_ICMP_INTERVAL,
        }
    }
}

/// One probed site, with every default already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    /// http or https, always with a host.
    pub url: url::Url,
    /// The proxy's addresses; empty means "resolve the url host by DNS",
    /// again whenever the answer's TTL runs out, and probe each address.
    pub proxy: Vec<Address>,
    /// The origin's addresses; never empty.
    pub origin: Vec<Address>,
    /// Never empty.
    pub expect_status: Vec<StatusRange>,
    /// The local address probes through the proxy leave from.
    pub source_address: Option<IpAddr>,
    /// The local address probes straight to the origin leave from; never
    /// `source_address` unless configured so, because a prober on the proxy
    /// host binds that to a forwarding IP, which a block would also hit.
    pub origin_source_address: Option<IpAddr>,
    /// The scheme straight to the origin; `None` means the url's.
    pub origin_scheme: Option<Scheme>,
    /// The port straight to the origin (an address's own port wins); `None`
    /// means the url's port, or the origin scheme's default port when that
    /// scheme differs from the url's.
    pub origin_port: Option<u16>,
    /// The site's `interval`, or `probe.interval`.
    pub interval: Duration,
    /// The site's `timeout`, or `probe.timeout`; never above `interval`.
    pub timeout: Duration,
    pub follow_redirects: bool,
    pub method: HttpMethod,
    /// Extra request headers in file order; never `Host`.
    pub headers: Vec<(String, String)>,
    pub tls: TlsSettings,
    /// The site's `icmp`, or `probe.icmp.enabled`.
    pub icmp: bool,
    /// The site's `proxy_requests`, or `probe.proxy_requests`: requests
    /// through each proxy address per round, so that a fault failing a
    /// share of the proxy's requests shows within minutes.
    pub proxy_requests: u32,
    /// The site's `proxy_idle_timeout`, or `probe.proxy_idle_timeout`: the
    /// proxy's idle timeout for its connections to the origin, which the
    /// origin's own is compared with; `None` (`off`) watches nothing.
    pub proxy_idle_timeout: Option<Duration>,
    /// The site's `max_proxy_addresses`, or `probe.max_proxy_addresses`:
    /// a proxy found by DNS has at most this many of its addresses probed,
    /// the lowest first.
    pub max_proxy_addresses: u32,
    /// From `probe.body_limit_bytes`.
    pub body_limit_bytes: usize,
}

impl Site {
    /// The url host: a domain name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        let host = self.url.host_str().unwrap_or_default();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The url port, or the scheme's default port.
    pub fn port(&self) -> u16 {
        // Validation admits only http and https, which have known default
        // ports, so the fallback is never used.
        self.url.port_or_known_default().unwrap_or(80)
    }

    /// The url's scheme.
    pub fn scheme(&self) -> Scheme {
        if self.url.scheme() == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        }
    }

    /// The scheme a probe on `path` speaks.
    pub fn scheme_on(&self, path: Path) -> Scheme {
        match path {
            Path::Proxy => self.scheme(),
            Path::Origin => self.origin_scheme.unwrap_or(self.scheme()),
        }
    }

    /// The port a probe on `path` connects to when the address gives none.
    pub fn port_on(&self, path: Path) -> u16 {
        match path {
            Path::Proxy => self.port(),
            Path::Origin => match (self.origin_port, self.origin_scheme) {
                (Some(port), _) => port,
                (None, Some(scheme)) if scheme != self.scheme() => scheme.default_port(),
                (None, _) => self.port(),
            },
        }
    }

    /// The local address probes on `path` are bound to, if any.
    pub fn source_on(&self, path: Path) -> Option<IpAddr> {
        match path {
            Path::Proxy => self.source_address,
            Path::Origin => self.origin_source_address,
        }
    }

    /// Whether a response status counts as success for this site.
    pub fn status_expected(&self, code: u16) -> bool {
        self.expect_status.iter().any(|range| range.contains(code))
    }
}

/// Which way a probe reaches the site: through the protecting proxy, or
/// straight to the origin with the site's host pinned to the origin address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    Proxy,
    Origin,
}

impl Path {
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Proxy => "proxy",
            Path::Origin => "origin",
        }
    }
}

impl serde::Serialize for Path {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// http or https.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    pub insecure_skip_verify: bool,
    /// A PEM bundle added to the trust roots; it existed at load time.
    pub ca_file: Option<PathBuf>,
    /// SNI and certificate name override; `None` means the url host.
    pub server_name: Option<String>,
}

/// An inclusive range of HTTP status codes, within 100..=599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(&self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// An IP address with an optional port, as written in `proxy` and `origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    pub ip: IpAddr,
    /// `None` means the url port.
    pub port: Option<u16>,
}

impl Address {
    /// The socket address to connect to, with `default_port` (normally
    /// [`Site::port`]) when the address has none.
    pub fn socket_addr(&self, default_port: u16) -> SocketAddr {
        SocketAddr::new(self.ip, self.port.unwrap_or(default_port))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (IpAddr::V6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
            (ip, Some(port)) => write!(f, "{ip}:{port}"),
            (ip, None) => write!(f, "{ip}"),
        }
    }
}

/// The `agent:` section: the role on the origin server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Site labels the agent reports for.
    pub sites: Vec<String>,
    /// Where the proxy's connections come from; host bits are never set.
    pub forwarding_ranges: Vec<ipnet::IpNet>,
    /// Never empty, no duplicates.
    pub web_ports: Vec<u16>,
    /// `web_ports` was written in the file. The default [80, 443] is a
    /// guess: a default port on which nothing was ever seen listening is
    /// not reported as down.
    pub web_ports_configured: bool,
    /// Web server process names; empty means auto-detect.
    pub processes: Vec<String>,
    pub interfaces: BTreeMap<String, InterfaceConfig>,
    pub access_log: Option<AccessLogConfig>,
    pub firewall: FirewallMode,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            sites: Vec::new(),
            forwarding_ranges: Vec::new(),
            web_ports: DEFAULT_WEB_PORTS.to_vec(),
            web_ports_configured: false,
            processes: Vec::new(),
            interfaces: BTreeMap::new(),
            access_log: None,
            firewall: FirewallMode::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Link capacity in bit/s (SI: 1 Gbit = 1_000_000_000); never 0.
    pub capacity_bits_per_second: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub path: PathBuf,
    pub format: LogFormat,
    /// The format's variable (without `$`) that holds the connecting
    /// peer's address, by which lines are classed.
    pub peer_variable: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// nginx's predefined `combined` format (the default).
    #[default]
    Combined,
    /// The Common Log Format.
    Common,
    /// A custom nginx `log_format` string; it contains `$status` and the
    /// peer variable.
    Custom(String),
}

impl LogFormat {
    /// The variable that holds the connecting peer when the config names
    /// none: `$realip_remote_addr` where the format logs it (nginx with
    /// `real_ip` on writes the visitor into `$remote_addr`), else
    /// `$remote_addr`.
    pub fn default_peer(&self) -> &'static str {
        match self {
            LogFormat::Custom(f) if has_variable(f, "realip_remote_addr") => "realip_remote_addr",
            _ => "remote_addr",
        }
    }

    /// The format string, the predefined ones spelt out.
    pub fn text(&self) -> &str {
        match self {
            LogFormat::Combined => COMBINED_FORMAT,
            LogFormat::Common => COMMON_FORMAT,
            LogFormat::Custom(f) => f,
        }
    }
}

/// nginx's predefined `combined` format; Apache's is the same.
pub const COMBINED_FORMAT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";
/// The Common Log Format.
pub const COMMON_FORMAT: &str =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent";

/// Whether an nginx format string uses `$name` or `${name}`.
pub fn has_variable(format: &str, name: &str) -> bool {
    format.contains(&format!("${{{name}}}"))
        || format.match_indices('$').any(|(i, _)| {
            let rest = &format[i + 1..];
            rest.starts_with(name)
                && !rest[name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FirewallMode {
    #[default]
    Auto,
    Iptables,
    Nftables,
    Off,
}

impl FirewallMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallMode::Auto => "auto",
            FirewallMode::Iptables => "iptables",
            FirewallMode::Nftables => "nftables",
            FirewallMode::Off => "off",
        }
    }
}

impl fmt::Display for FirewallMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_display_round_trips() {
        for text in [
            "203.0.113.5",
            "203.0.113.5:8080",
            "2001:db8::1",
            "[2001:db8::1]:8443",
            "::ffff:192.0.2.1",
        ] {
            let address: Address = text.parse().expect(text);
            assert_eq!(address.to_string(), text);
            assert_eq!(address.to_string().parse::<Address>(), Ok(address));
        }
        // Brackets without a port are accepted and normalised away.
        let a: Address = "[2001:db8::1]".parse().unwrap();
        assert_eq!(a.to_string(), "2001:db8::1");
        assert_eq!(
            a.socket_addr(443),
            "[2001:db8::1]:443".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn address_errors_explain() {
        let err = "www.example.com".parse::<Address>().unwrap_err().0;
        assert!(err.contains("hostname"), "{err}");
        let err = "203.0.113.5:0".parse::<Address>().unwrap_err().0;
        assert!(err.contains("port 0"), "{err}");
    }

    #[test]
    fn status_range_parses_and_displays() {
        let r: StatusRange = "200-399".parse().unwrap();
        assert_eq!(
            r,
            StatusRange {
                low: 200,
                high: 399
            }
        );
        assert!(r.contains(200) && r.contains(399) && !r.contains(400));
        assert_eq!(r.to_string(), "200-399");
        assert_eq!("204".parse::<StatusRange>().unwrap().to_string(), "204");
        assert!("600".parse::<StatusRange>().is_err());
    }
}
