//! The `agent:` section: the role on the origin server.

use std::collections::HashSet;
use std::path::PathBuf;

use super::Validator;
use crate::config::error::quote;
use crate::config::position::YamlPath;
use crate::config::raw::{RawAccessLog, RawAgent};
use crate::config::types::*;
use crate::config::values;

impl Validator<'_> {
    pub(super) fn agent(&mut self, path: &YamlPath, raw: RawAgent) -> Option<AgentConfig> {
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
