//! The `sites:` list: one probed site each.
//!
//! One file of ~440 lines: a site entry's keys, read in the order `site` lists them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use humantime::format_duration;

use super::{Probe, Validator};
use crate::config::error::quote;
use crate::config::position::YamlPath;
use crate::config::raw::{RawSite, RawTls};
use crate::config::types::*;
use crate::config::values;

impl Validator<'_> {
    pub(super) fn site(
        &mut self,
        path: &YamlPath,
        raw: RawSite,
        probe: &Probe,
        names: &mut HashMap<String, YamlPath>,
    ) -> Option<Site> {
        let name = self.site_name(path, raw.name, names);
        let url = self.url(path, raw.url);
        let proxy = self.addresses(&path.key("proxy"), raw.proxy.unwrap_or_default());
        let origin = self.origin(path, raw.origin);
        let expect_status = self.expect_status(&path.key("expect_status"), raw.expect_status);
        let source_address = self.source_address(&path.key("source_address"), raw.source_address);
        let origin_source_address = self.source_address(
            &path.key("origin_source_address"),
            raw.origin_source_address,
        );
        let origin_scheme = self.origin_scheme(&path.key("origin_scheme"), raw.origin_scheme);
        let origin_port = self.origin_port(&path.key("origin_port"), raw.origin_port);
        let (interval, timeout) = self.site_timing(path, raw.interval, raw.timeout, probe);
        let method = self.method(&path.key("method"), raw.method);
        let headers = self.headers(&path.key("headers"), raw.headers.map(|h| h.0));
        let tls = self.tls(&path.key("tls"), raw.tls.unwrap_or_default());
        let proxy_requests = match raw.proxy_requests {
            None => Some(probe.defaults.proxy_requests),
            Some(n) => self.proxy_requests(&path.key("proxy_requests"), n),
        };
        let proxy_idle_timeout = match raw.proxy_idle_timeout {
            None => Some(probe.defaults.proxy_idle_timeout),
            Some(text) => self.idle_timeout(&path.key("proxy_idle_timeout"), &text),
        };
        let max_proxy_addresses = match raw.max_proxy_addresses {
            None => Some(probe.defaults.max_proxy_addresses),
            Some(n) => self.max_proxy_addresses(&path.key("max_proxy_addresses"), n),
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
            proxy_idle_timeout: proxy_idle_timeout?,
            max_proxy_addresses: max_proxy_addresses?,
            body_limit_bytes: probe.defaults.body_limit_bytes,
        })
    }

    /// `origin`: required, at least one address.
    fn origin(&mut self, site: &YamlPath, list: Option<Vec<String>>) -> Option<Vec<Address>> {
        match list {
            Some(list) if !list.is_empty() => self.addresses(&site.key("origin"), list),
            Some(_) => {
                self.error(
                    &site.key("origin"),
                    "must list at least one origin address, e.g. [203.0.113.5]",
                );
                None
            }
            None => {
                self.error(
                    site,
                    "missing required key `origin` (the origin server's addresses, e.g. [203.0.113.5])",
                );
                None
            }
        }
    }

    /// `Some(None)` when not set, `None` when invalid (reported).
    fn origin_scheme(&mut self, path: &YamlPath, text: Option<String>) -> Option<Option<Scheme>> {
        match text.as_deref() {
            None => Some(None),
            Some("http") => Some(Some(Scheme::Http)),
            Some("https") => Some(Some(Scheme::Https)),
            Some(other) => {
                self.error(
                    path,
                    format!(
                        "unsupported origin scheme {}; expected http or https",
                        quote(other)
                    ),
                );
                None
            }
        }
    }

    /// `Some(None)` when not set, `None` when invalid (reported).
    fn origin_port(&mut self, path: &YamlPath, n: Option<i64>) -> Option<Option<u16>> {
        let Some(n) = n else {
            return Some(None);
        };
        match values::port_integer(n) {
            Ok(port) => Some(Some(port)),
            Err(why) => {
                self.error(path, why);
                None
            }
        }
    }

    fn method(&mut self, path: &YamlPath, text: Option<String>) -> Option<HttpMethod> {
        match text.as_deref() {
            None => Some(HttpMethod::Get),
            Some(m) if m.eq_ignore_ascii_case("GET") => Some(HttpMethod::Get),
            Some(m) if m.eq_ignore_ascii_case("HEAD") => Some(HttpMethod::Head),
            Some(m) => {
                self.error(
                    path,
                    format!("unsupported method {}; expected GET or HEAD", quote(m)),
                );
                None
            }
        }
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
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}
