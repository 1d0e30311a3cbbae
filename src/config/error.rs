//! Error types of the config module and the helpers that word their messages.

use std::fmt;

/// One problem in a config file, with its position when known.
///
/// `line` and `column` are 1-based, the way editors count; the column counts
/// characters, not bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order; never empty when
/// returned by [`crate::config::Config::load`] or
/// [`crate::config::Config::parse`].
///
/// Displays as one error per line: `FILE:LINE:COLUMN: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join_lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn join_lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a single value (an address, a status range) could not be parsed.
/// Returned by the `FromStr` impls of the public value types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseValueError(pub String);

/// Longest part of an offending value quoted in a message, in characters.
const QUOTE_LIMIT: usize = 60;
/// Longest message taken over from serde_norway; its messages can quote a
/// whole multi-megabyte scalar.
const MESSAGE_LIMIT: usize = 400;

/// Quotes a value for a message: escaped (so control characters and
/// newlines cannot break the one-line-per-error output) and truncated.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{:?}", format!("{}…", &value[..cut])),
        None => format!("{value:?}"),
    }
}

/// Cuts a message at `MESSAGE_LIMIT` characters.
pub(crate) fn limit_message(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MESSAGE_LIMIT) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// Turns a serde_norway error message into ours: drops the position it
/// appends (we print positions as the `FILE:LINE:COLUMN` prefix), words
/// Rust type names for operators, and adds a "did you mean" hint to
/// unknown keys.
pub(crate) fn reword_serde_message(raw: &str, line: usize, column: usize) -> String {
    let mut message = raw
        .replacen(&format!(" at line {line} column {column}"), "", 1)
        .replace("expected i64", "expected an integer")
        .replace("expected u64", "expected an integer");
    if let Some(hint) = did_you_mean(&message) {
        message.push_str(&format!("; did you mean `{hint}`?"));
    }
    limit_message(message)
}

/// For serde's "unknown field `timout`, expected one of `name`, `timeout`"
/// returns the closest expected name, if it is close enough to be a typo.
fn did_you_mean(message: &str) -> Option<String> {
    const MARKER: &str = "unknown field `";
    let start = message.find(MARKER)? + MARKER.len();
    let rest = &message[start..];
    let end = rest.find('`')?;
    let unknown = &rest[..end];
    let expected = rest.get(end + 1..)?.split_once("expected")?.1;
    let candidates = expected.split('`').skip(1).step_by(2);
    candidates
        .map(|candidate| (edit_distance(&unknown.to_lowercase(), candidate), candidate))
        .filter(|&(distance, candidate)| {
            // Allow about one typo per three characters, at most two.
            distance <= 2 && distance * 3 <= candidate.chars().count().max(3)
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate.to_string())
}

/// Levenshtein distance, with a transposition counted as one edit so that
/// `tiemout` is as close to `timeout` as `timout` is.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Keys are short; anything long is not a typo of one.
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_omits_unknown_parts() {
        let mut e = ConfigError {
            file: "cfg.yml".into(),
            line: Some(7),
            column: Some(14),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "cfg.yml:7:14: boom");
        e.column = None;
        assert_eq!(e.to_string(), "cfg.yml:7: boom");
        e.line = None;
        assert_eq!(e.to_string(), "cfg.yml: boom");
        let all = ConfigErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string(), "cfg.yml: boom\ncfg.yml: boom");
    }

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
        let long = "x".repeat(100);
        let q = quote(&long);
        assert!(q.starts_with("\"xxx") && q.ends_with("…\""), "{q}");
        assert_eq!(q.chars().count(), 60 + 3);
        // Multi-byte characters are cut at a character boundary.
        assert!(quote(&"é".repeat(100)).ends_with("…\""));
    }

    #[test]
    fn hints_close_field_names() {
        let msg = "sites[0]: unknown field `timout`, expected one of `name`, `timeout`, `tls`";
        assert_eq!(did_you_mean(msg).as_deref(), Some("timeout"));
        let msg = "unknown field `Agent`, expected one of `probe`, `sites`, `agent`";
        assert_eq!(did_you_mean(msg).as_deref(), Some("agent"));
        let msg = "unknown field `zzz`, expected `probe` or `sites`";
        assert_eq!(did_you_mean(msg), None);
        assert_eq!(did_you_mean("invalid type: string"), None);
        assert_eq!(edit_distance("tiemout", "timeout"), 1);
    }

    #[test]
    fn rewording_drops_position() {
        let m = reword_serde_message(
            "probe.icmp.count: invalid type: string \"ten\", expected i64 at line 3 column 12",
            3,
            12,
        );
        assert_eq!(
            m,
            "probe.icmp.count: invalid type: string \"ten\", expected an integer"
        );
    }
}
