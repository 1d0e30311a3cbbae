//! The web configuration file: its YAML shape, loading it, and the one
//! error type of the `web` module. Each section's values are checked as they
//! are read; the TLS section is turned into a rustls configuration by `tls`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::Deserialize;

use super::auth::{AuthState, Users};
use super::headers::Headers;
use super::limit::{GoDuration, RateLimiter};
pub use super::parse::WebConfigError;
use super::tls::{self, RawTls};

/// A loaded and checked web configuration. Share it as `Arc<WebConfig>`;
/// it holds the basic-auth cache and the rate limiter's state.
pub struct WebConfig {
    path: PathBuf,
    pub(super) tls: Option<Arc<ServerConfig>>,
    /// (user, bcrypt hash), in file order.
    pub(super) users: Vec<(String, String)>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) limiter: Option<RateLimiter>,
    pub(super) auth: AuthState,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No hashes, no keys.
        f.debug_struct("WebConfig")
            .field("path", &self.path)
            .field("tls", &self.tls.is_some())
            .field(
                "basic_auth_users",
                &self.users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .field("headers", &self.headers)
            .field("rate_limit", &self.limiter.is_some())
            .finish()
    }
}

impl WebConfig {
    /// Read and check the web configuration file at `path`. Relative file
    /// names inside it are taken from the file's own directory.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let shown = path.display().to_string();
        let raw = read_raw(path, &shown)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let invalid = |key: &str, message: String| WebConfigError::Invalid {
            path: shown.clone(),
            key: key.to_owned(),
            message,
        };

        let tls = tls_config(raw.tls_server_config, &dir, &shown, &invalid)?;
        let headers = http_headers(raw.http_server_config);
        let users: Vec<(String, String)> = raw
            .basic_auth_users
            .map(|u| u.0.into_iter().map(|(n, h)| (n, h.0)).collect())
            .unwrap_or_default();
        let max_cost = max_bcrypt_cost(&users);
        let limiter = rate_limiter(raw.rate_limit, &shown);

        Ok(WebConfig {
            path: path.to_path_buf(),
            tls,
            users,
            headers,
            limiter,
            auth: AuthState::new(max_cost),
        })
    }

    /// The file this configuration was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the server speaks TLS with this configuration.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether requests need basic-auth credentials.
    pub fn basic_auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }
}

/// The file as written; an empty file is an empty configuration.
fn read_raw(path: &Path, shown: &str) -> Result<RawWebConfig, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: shown.to_owned(),
        source,
    })?;
    match serde_norway::from_str::<Option<RawWebConfig>>(&text) {
        Ok(raw) => Ok(raw.unwrap_or_default()),
        Err(e) => Err(parse_error(shown, &e)),
    }
}

/// The rustls configuration, or `None` (plain HTTP) when the section is
/// absent or enables nothing; TLS settings without anything that enables
/// TLS are warned about.
fn tls_config(
    section: Option<RawTls>,
    dir: &Path,
    shown: &str,
    invalid: &dyn Fn(&str, String) -> WebConfigError,
) -> Result<Option<Arc<ServerConfig>>, WebConfigError> {
    Ok(match section {
        Some(t) if t.is_enabled() => Some(Arc::new(tls::server_config(t, dir, invalid)?)),
        Some(t) => {
            if t.has_any_setting() {
                tracing::warn!(
                    file = %shown,
                    "tls_server_config names no certificate, key, client CA or \
                     client_auth_type; serving plain HTTP"
                );
            }
            None
        }
        None => None,
    })
}

/// The extra response headers; `http2` is accepted and ignored.
fn http_headers(section: Option<RawHttp>) -> Vec<(HeaderName, HeaderValue)> {
    let Some(http) = section else {
        return Vec::new();
    };
    if let Some(h2) = http.http2 {
        tracing::debug!(
            http2 = h2,
            "http_server_config.http2 is ignored: the server speaks HTTP/1.1"
        );
    }
    http.headers.map(|h| h.0).unwrap_or_default()
}

/// The highest bcrypt cost among the users' hashes (the default cost
/// without any): every failed check costs one hash at this cost, so that
/// an unknown user takes as long as a wrong password for any known one.
fn max_bcrypt_cost(users: &[(String, String)]) -> u32 {
    users
        .iter()
        .filter_map(|(_, h)| h.parse::<bcrypt::HashParts>().ok())
        .map(|p| p.get_cost())
        .max()
        .unwrap_or(bcrypt::DEFAULT_COST)
}

/// The rate limiter, `None` without a section or with a zero interval; a
/// burst of 0 is warned about (it refuses every request).
fn rate_limiter(section: Option<RawRateLimit>, shown: &str) -> Option<RateLimiter> {
    let r = section?;
    let interval = r.interval.map(|d| d.0).unwrap_or(Duration::ZERO);
    if interval.is_zero() {
        return None;
    }
    let limiter = RateLimiter::new(interval, r.burst.unwrap_or(0));
    if limiter.burst == 0 {
        tracing::warn!(
            file = %shown,
            "rate_limit.burst is 0: every request will be refused with 429"
        );
    }
    Some(limiter)
}

/// Turns serde_norway's one error into ours, with its position apart.
fn parse_error(path: &str, e: &serde_norway::Error) -> WebConfigError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            // serde_norway appends " at line L column C"; we show it apart.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
            (Some(loc.line()), Some(loc.column()))
        }
        None => (None, None),
    };
    WebConfigError::Parse {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

// ---------------------------------------------------------------------------
// The file's shape.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of web settings")]
struct RawWebConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<Users>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping of HTTP settings")]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<Headers>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a mapping with interval and burst")]
struct RawRateLimit {
    #[serde(default)]
    interval: Option<GoDuration>,
    #[serde(default)]
    burst: Option<u32>,
}
