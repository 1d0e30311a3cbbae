//! The `agent:` section: the role on the origin server.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::Validator;
use crate::config::error::quote;
use crate::config::position::YamlPath;
use crate::config::raw::{RawAccessLog, RawAgent, RawInterface};
use crate::config::types::*;
use crate::config::values;

impl Validator<'_> {
    pub(super) fn agent(&mut self, path: &YamlPath, raw: RawAgent) -> Option<AgentConfig> {
        let before = self.error_count();
        let mut agent = AgentConfig {
            sites: self.site_labels(&path.key("sites"), raw.sites.unwrap_or_default()),
            forwarding_ranges: self.forwarding_ranges(
                &path.key("forwarding_ranges"),
                raw.forwarding_ranges.unwrap_or_default(),
            ),
            ..AgentConfig::default()
        };
        if let Some(ports) = raw.web_ports {
            agent.web_ports = self.web_ports(&path.key("web_ports"), ports);
            agent.web_ports_configured = true;
        }
        agent.processes = self.processes(&path.key("processes"), raw.processes.unwrap_or_default());
        agent.interfaces = self.interfaces(
            &path.key("interfaces"),
            raw.interfaces.map(|m| m.0).unwrap_or_default(),
        );
        if let Some(log) = raw.access_log {
            agent.access_log = self.access_log(&path.key("access_log"), log);
        }
        if let Some(mode) = self.firewall(&path.key("firewall"), raw.firewall.as_deref()) {
            agent.firewall = mode;
        }
        (self.error_count() == before).then_some(agent)
    }

    /// `agent.sites`: the labels of the sites this origin serves.
    fn site_labels(&mut self, path: &YamlPath, list: Vec<String>) -> Vec<String> {
        let mut labels = HashSet::new();
        let mut out = Vec::new();
        for (i, label) in list.into_iter().enumerate() {
            let item = path.index(i);
            if let Err(why) = values::name(&label) {
                self.error(
                    &item,
                    format!("invalid site label {}: {why}", quote(&label)),
                );
            } else if !labels.insert(label.clone()) {
                self.error(&item, format!("duplicate site label {}", quote(&label)));
            } else {
                out.push(label);
            }
        }
        out
    }

    fn forwarding_ranges(&mut self, path: &YamlPath, list: Vec<String>) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        for (i, text) in list.iter().enumerate() {
            match values::cidr(text) {
                Ok(net) => out.push(net),
                Err(why) => self.error(
                    &path.index(i),
                    format!("invalid forwarding range {}: {why}", quote(text)),
                ),
            }
        }
        out
    }

    /// `agent.web_ports`, when set: replaces the default [80, 443].
    fn web_ports(&mut self, path: &YamlPath, ports: Vec<i64>) -> Vec<u16> {
        if ports.is_empty() {
            self.error(
                path,
                "must list at least one port (leave the key out for the default [80, 443])",
            );
        }
        let mut out = Vec::new();
        for (i, n) in ports.into_iter().enumerate() {
            match values::port_integer(n) {
                Ok(port) if out.contains(&port) => {
                    self.error(&path.index(i), format!("duplicate port {port}"));
                }
                Ok(port) => out.push(port),
                Err(why) => self.error(&path.index(i), why),
            }
        }
        out
    }

    fn processes(&mut self, path: &YamlPath, list: Vec<String>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, process) in list.into_iter().enumerate() {
            if process.is_empty() || process.contains('/') {
                self.error(
                    &path.index(i),
                    format!(
                        "invalid process name {}: expected a non-empty command name without '/', e.g. nginx",
                        quote(&process)
                    ),
                );
            } else {
                out.push(process);
            }
        }
        out
    }

    fn interfaces(
        &mut self,
        path: &YamlPath,
        entries: Vec<(String, RawInterface)>,
    ) -> BTreeMap<String, InterfaceConfig> {
        let mut out = BTreeMap::new();
        for (i, (name, raw)) in entries.into_iter().enumerate() {
            let entry = path.entry(i, &name);
            if let Err(why) = interface_name(&name) {
                self.key_error(
                    &entry,
                    format!("invalid interface name {}: {why}", quote(&name)),
                );
                continue;
            }
            if out.contains_key(&name) {
                self.key_error(&entry, format!("duplicate interface {}", quote(&name)));
                continue;
            }
            if let Some(interface) = self.interface(&entry, raw) {
                out.insert(name, interface);
            }
        }
        out
    }

    /// One entry of `agent.interfaces`, its name already checked.
    fn interface(&mut self, entry: &YamlPath, raw: RawInterface) -> Option<InterfaceConfig> {
        let Some(text) = raw.capacity else {
            self.error(
                entry,
                "missing required key `capacity` (the link speed, e.g. 1Gbit)",
            );
            return None;
        };
        match values::capacity(&text) {
            Ok(bits) => Some(InterfaceConfig {
                capacity_bits_per_second: bits,
            }),
            Err(why) => {
                self.error(
                    &entry.key("capacity"),
                    format!("invalid capacity {}: {why}", quote(&text)),
                );
                None
            }
        }
    }

    /// `agent.firewall`: None for `auto` (the default) and for a bad mode
    /// (reported).
    fn firewall(&mut self, path: &YamlPath, mode: Option<&str>) -> Option<FirewallMode> {
        match mode {
            None | Some("auto") => None,
            Some("iptables") => Some(FirewallMode::Iptables),
            Some("nftables") => Some(FirewallMode::Nftables),
            Some("off") => Some(FirewallMode::Off),
            Some(other) => {
                self.error(
                    path,
                    format!(
                        "unknown firewall mode {}; expected auto, iptables, nftables or off",
                        quote(other)
                    ),
                );
                None
            }
        }
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
        if peer == "status" {
            self.error(
                &path.key(at),
                "$status is the answer's status, not the connecting peer's address: name \
                 $remote_addr, or $realip_remote_addr when nginx's real_ip is on"
                    .to_owned(),
            );
            return None;
        }
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
