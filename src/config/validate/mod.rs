//! The semantic pass: raw structs in, validated [`Config`] out, with every
//! problem collected (not just the first) and positioned via [`PosIndex`].

//!
//! One file per section (`probe`, `sites`, `agent`); here the entry point,
//! the error collection, and the value readers the sections share.

mod agent;
mod probe;
mod sites;

use std::collections::HashMap;
use std::time::Duration;

use humantime::format_duration;

use super::error::{quote, ConfigError, ConfigErrors};
use super::position::{Pos, PosIndex, YamlPath};
use super::raw::RawConfig;
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
const MAX_PROXY_REQUESTS: i64 = 100;
const MAX_PROXY_ADDRESSES: i64 = 64;

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

    // ---- value readers shared by the sections ----------------------------

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

    /// A proxy's idle timeout: `off`, or a duration from 1s to 1h.
    /// `Some(None)` is `off`; `None` an error, reported.
    fn idle_timeout(&mut self, path: &YamlPath, text: &str) -> Option<Option<Duration>> {
        if text.trim() == "off" {
            return Some(None);
        }
        let d = self.duration(path, text)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d) {
            self.error(
                path,
                format!(
                    "{} is out of range; expected `off`, or 1s to 1h",
                    quote(text)
                ),
            );
            return None;
        }
        Some(Some(d))
    }

    fn max_proxy_addresses(&mut self, path: &YamlPath, n: i64) -> Option<u32> {
        match u32::try_from(n) {
            Ok(n) if (1..=MAX_PROXY_ADDRESSES).contains(&i64::from(n)) => Some(n),
            _ => {
                self.error(
                    path,
                    format!("{n} is out of range; expected 1 to {MAX_PROXY_ADDRESSES} addresses of a proxy found by DNS"),
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
}
