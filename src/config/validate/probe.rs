//! The `probe:` section: defaults every site inherits.

use std::time::Duration;

use humantime::format_duration;

use super::{Probe, Validator};
use crate::config::error::quote;
use crate::config::position::YamlPath;
use crate::config::raw::{RawEchoes, RawProbe};
use crate::config::types::*;

const MAX_ICMP_COUNT: i64 = 1000;
const MIN_ICMP_INTERVAL: Duration = Duration::from_millis(1);
const MAX_ICMP_INTERVAL: Duration = Duration::from_secs(60);
const MAX_BODY_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

impl Validator<'_> {
    pub(super) fn probe(&mut self, path: &YamlPath, raw: RawProbe) -> Probe {
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
                proxy_idle_timeout: match raw.proxy_idle_timeout {
                    None => Some(DEFAULT_PROXY_IDLE_TIMEOUT),
                    Some(text) => self
                        .idle_timeout(&path.key("proxy_idle_timeout"), &text)
                        .unwrap_or(Some(DEFAULT_PROXY_IDLE_TIMEOUT)),
                },
                max_proxy_addresses: raw
                    .max_proxy_addresses
                    .and_then(|n| self.max_proxy_addresses(&path.key("max_proxy_addresses"), n))
                    .unwrap_or(DEFAULT_MAX_PROXY_ADDRESSES),
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
}
