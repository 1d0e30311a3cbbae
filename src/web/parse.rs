//! What the web configuration's files share at the bottom: its error, and
//! the helpers that read its values.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Why a web configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a value of the wrong
    /// kind; `line` and `column` count from 1.
    #[error("web config file {path}{}: {message}", at(*line, *column))]
    Parse {
        path: String,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// The YAML is well formed but a setting cannot be used; `key` is its
    /// dotted path, e.g. `tls_server_config.cert_file`.
    #[error("web config file {path}: {key}: {message}")]
    Invalid {
        path: String,
        key: String,
        message: String,
    },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l} column {c}"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

/// An empty string is "not set", as in exporter-toolkit.
pub(super) fn set(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Reads a string-valued setting through `parse`. The check runs inside the
/// visitor so that serde_norway gives its error the value's key path and
/// line, not those of the enclosing mapping.
pub(super) fn parse_str<'de, D, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }
    impl<T> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V { expecting, parse })
}
