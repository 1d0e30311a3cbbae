//! Pulls the connecting peer's address and the status out of one
//! access-log line. The peer is `$remote_addr` unless the format logs
//! `$realip_remote_addr` (nginx with `real_ip` on writes the visitor into
//! `$remote_addr`, and the peer, the proxy, there) or the config names
//! another variable.
//!
//! Every format, the predefined ones included, is compiled once into a
//! short list of steps that walk the line with `memchr::memmem` searches:
//! no regex, no allocation per line. Only the format up to the literal that
//! follows the last variable we need is checked; whatever comes after
//! (referer, user agent, fields an operator appended) is ignored, so a
//! `combined` log with extra trailing fields still counts.

use std::net::IpAddr;
use std::str::FromStr;

use memchr::memmem::Finder;

use crate::config::LogFormat;

/// Why a custom `log_format` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("access log format {format:?} has no ${var}")]
    Missing { format: String, var: String },
    #[error("access log format {format:?}: cannot tell where ${var} ends, it is followed by another variable with no text between")]
    Adjacent { format: String, var: String },
    #[error("access log format {format:?}: unterminated ${{ at byte {at}")]
    Unterminated { format: String, at: usize },
    #[error("access log format {format:?}: $status cannot be the peer's address")]
    PeerIsStatus { format: String },
}

/// One parsed line: what the counters need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub addr: IpAddr,
    pub status: u16,
}

enum Step {
    /// Text that must be right here (the start of the line, or after the
    /// three digits of `$status`).
    Literal(Vec<u8>),
    /// Variables we don't need: skip to the next occurrence of the text
    /// after them, and past it. `quoted`: that text starts with `"`, so a
    /// `\"` inside the value (Apache's escape) is not its end.
    Skip {
        until: Finder<'static>,
        quoted: bool,
    },
    /// The peer's address, up to the text after it, or to the end of the
    /// line.
    Addr { until: Option<Finder<'static>> },
    /// `$status`: always three digits, so nothing needs to follow it.
    Status,
}

/// A compiled log format.
pub struct LineFormat {
    steps: Vec<Step>,
}

enum Token<'a> {
    Text(&'a [u8]),
    Var(&'a str),
}

/// Splits an nginx `log_format` string into text and `$name` / `${name}`.
fn tokenize(format: &str) -> Result<Vec<Token<'_>>, FormatError> {
    let bytes = format.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut tokens = Vec::new();
    let (mut i, mut text_start) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let end = bytes[i + 2..].iter().position(|&b| b == b'}').ok_or(
                FormatError::Unterminated {
                    format: format.to_owned(),
                    at: i,
                },
            )?;
            (&format[i + 2..i + 2 + end], i + 3 + end)
        } else {
            let len = bytes[i + 1..].iter().take_while(|&&b| is_name(b)).count();
            (&format[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() {
            // A lone `$` is literal text in nginx too.
            i += 1;
            continue;
        }
        if text_start < i {
            tokens.push(Token::Text(&bytes[text_start..i]));
        }
        tokens.push(Token::Var(name));
        i = next;
        text_start = next;
    }
    if text_start < bytes.len() {
        tokens.push(Token::Text(&bytes[text_start..]));
    }
    Ok(tokens)
}

impl LineFormat {
    /// `peer`: the variable (without `$`) that holds the connecting peer.
    pub fn new(format: &LogFormat, peer: &str) -> Result<LineFormat, FormatError> {
        LineFormat::compile(format.text(), peer)
    }

    /// Compile an nginx `log_format` string that contains `$status` and
    /// the variable `peer`.
    pub fn compile(format: &str, peer: &str) -> Result<LineFormat, FormatError> {
        let tokens = tokenize(format)?;
        // Both are needed, from different variables.
        if peer == "status" {
            return Err(FormatError::PeerIsStatus {
                format: format.to_owned(),
            });
        }
        for var in [peer, "status"] {
            if !tokens
                .iter()
                .any(|t| matches!(t, Token::Var(v) if *v == var))
            {
                return Err(FormatError::Missing {
                    format: format.to_owned(),
                    var: var.to_owned(),
                });
            }
        }
        let adjacent = |var: &str| FormatError::Adjacent {
            format: format.to_owned(),
            var: var.to_owned(),
        };
        let finder = |text: &[u8]| Finder::new(text).into_owned();
        let mut steps = Vec::new();
        let (mut have_addr, mut have_status) = (false, false);
        // A skipped variable waiting for the text that ends it.
        let mut skipping: Option<&str> = None;
        let mut i = 0;
        while !(have_addr && have_status) {
            // A second peer or `$status` is skipped like any other.
            let needed = |v: &str| {
                if v == peer {
                    !have_addr
                } else {
                    v == "status" && !have_status
                }
            };
            match (&tokens[i], tokens.get(i + 1)) {
                (Token::Text(t), _) => {
                    steps.push(match skipping.take() {
                        Some(_) => Step::Skip {
                            until: finder(t),
                            quoted: t.starts_with(b"\""),
                        },
                        None => Step::Literal(t.to_vec()),
                    });
                }
                (Token::Var(v), next) if needed(v) => {
                    if let Some(prev) = skipping {
                        return Err(adjacent(prev));
                    }
                    have_addr |= *v == peer;
                    have_status |= *v == "status" && *v != peer;
                    let Some(Token::Text(t)) = next else {
                        if *v != peer {
                            steps.push(Step::Status);
                        } else if next.is_none() {
                            steps.push(Step::Addr { until: None });
                        } else {
                            return Err(adjacent(v));
                        }
                        i += 1;
                        continue;
                    };
                    if *v != peer {
                        steps.push(Step::Status);
                        steps.push(Step::Literal(t.to_vec()));
                    } else {
                        steps.push(Step::Addr {
                            until: Some(finder(t)),
                        });
                    }
                    // The text after it has been used up by this step.
                    i += 1;
                }
                (Token::Var(v), _) => skipping = Some(skipping.unwrap_or(v)),
            }
            i += 1;
        }
        Ok(LineFormat { steps })
    }

    /// The client address and status of one line (no newline), or `None`
    /// when the line does not fit the format.
    pub fn parse(&self, line: &[u8]) -> Option<Entry> {
        let (mut pos, mut addr, mut status) = (0, None, None);
        for step in &self.steps {
            let rest = &line[pos..];
            match step {
                Step::Literal(t) => {
                    if !rest.starts_with(t) {
                        return None;
                    }
                    pos += t.len();
                }
                Step::Skip { until, quoted } => {
                    let at = find(rest, until, *quoted)?;
                    pos += at + until.needle().len();
                }
                Step::Addr { until } => {
                    let end = match until {
                        Some(f) => f.find(rest)?,
                        None => rest.len(),
                    };
                    addr = Some(parse_addr(&rest[..end])?);
                    pos += end + until.as_ref().map_or(0, |f| f.needle().len());
                }
                Step::Status => {
                    status = Some(parse_status(rest.get(..3)?)?);
                    pos += 3;
                }
            }
        }
        Some(Entry {
            addr: addr?,
            status: status?,
        })
    }
}

/// The first `until` in `hay`; with `quoted`, one preceded by an odd number
/// of backslashes is an escaped quote inside the value, not its end.
fn find(hay: &[u8], until: &Finder<'_>, quoted: bool) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + until.find(&hay[from..])?;
        let backslashes = hay[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if !quoted || backslashes % 2 == 0 {
            return Some(at);
        }
        from = at + 1;
    }
}

fn parse_addr(text: &[u8]) -> Option<IpAddr> {
    // The longest textual IPv6 address is 45 bytes; refusing longer input
    // early keeps garbage cheap.
    if text.len() > 45 {
        return None;
    }
    let addr = IpAddr::from_str(std::str::from_utf8(text).ok()?).ok()?;
    // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`.
    Some(match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    })
}

fn parse_status(digits: &[u8]) -> Option<u16> {
    let mut n = 0u16;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u16::from(d - b'0');
    }
    (100..=599).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addr: &str, status: u16) -> Option<Entry> {
        Some(Entry {
            addr: addr.parse().ok()?,
            status,
        })
    }

    #[test]
    fn combined_and_common() {
        let f = LineFormat::new(&LogFormat::Combined, "remote_addr").unwrap();
        let line = br#"203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 403 12 "-" "curl/8""#;
        assert_eq!(f.parse(line), entry("203.0.113.7", 403));
        let common = br#"2001:db8::1 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 -"#;
        assert_eq!(f.parse(common), entry("2001:db8::1", 200));
        let escaped = br#"::ffff:192.0.2.1 - - [t] "GET /\"x\" \\" 503 0"#;
        assert_eq!(f.parse(escaped), entry("192.0.2.1", 503));
        for bad in [
            &b""[..],
            b"garbage",
            br#"1.2.3.4 - - [t] "GET /" 20x 1"#,
            br#"1.2.3.4 - - [t] "GET /" 700 1"#,
            br#"1.2.3.4 - - [t] "GET /" 2000 1"#,
            br#"1.2.3 - - [t] "GET /" 200 1"#,
            br#"1.2.3.4 - - [t] "GET /\" 200 1"#,
        ] {
            assert_eq!(f.parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn custom() {
        let f = LineFormat::compile("${status}|$request_time|$remote_addr", "remote_addr").unwrap();
        assert_eq!(f.parse(b"429|0.001|192.0.2.9"), entry("192.0.2.9", 429));
        assert_eq!(f.parse(b"429 0.001|192.0.2.9"), None);
        let f = LineFormat::compile(
            "[$time_local] $host$uri $remote_addr: $status$body_bytes_sent",
            "remote_addr",
        )
        .unwrap();
        assert_eq!(
            f.parse(b"[t] a.example/x 192.0.2.1: 5021234"),
            entry("192.0.2.1", 502)
        );
        assert_eq!(f.parse(b"(t] a.example/x 192.0.2.1: 502"), None);
    }

    /// nginx with real_ip on: `$remote_addr` is the visitor, and
    /// `$realip_remote_addr` the connecting peer (the proxy).
    #[test]
    fn the_peer_variable_is_read_instead_of_remote_addr() {
        let format = LogFormat::Custom(
            "$remote_addr [$time_local] \"$request\" $status peer=$realip_remote_addr".into(),
        );
        assert_eq!(format.default_peer(), "realip_remote_addr");
        let f = LineFormat::new(&format, format.default_peer()).unwrap();
        assert_eq!(
            f.parse(b"192.0.2.50 [t] \"GET / HTTP/1.1\" 200 peer=198.51.100.10"),
            entry("198.51.100.10", 200)
        );
        // The peer first, the visitor after it.
        let f = LineFormat::compile(
            "$realip_remote_addr $remote_addr $status",
            "realip_remote_addr",
        )
        .unwrap();
        assert_eq!(
            f.parse(b"198.51.100.10 192.0.2.50 429"),
            entry("198.51.100.10", 429)
        );
        assert_eq!(LogFormat::Combined.default_peer(), "remote_addr");
        assert_eq!(
            LogFormat::Custom("$remote_addr $status $realip_remote_addr_x".into()).default_peer(),
            "remote_addr"
        );
        assert!(matches!(
            LineFormat::new(&LogFormat::Combined, "realip_remote_addr"),
            Err(FormatError::Missing { var, .. }) if var == "realip_remote_addr"
        ));
    }

    #[test]
    fn bad_formats() {
        assert!(matches!(
            LineFormat::compile("$remote_addr $request", "remote_addr"),
            Err(FormatError::Missing { var, .. }) if var == "status"
        ));
        assert!(matches!(
            LineFormat::compile("$remote_addr$status", "remote_addr"),
            Err(FormatError::Adjacent { .. })
        ));
        assert!(matches!(
            LineFormat::compile("$host$remote_addr $status", "remote_addr"),
            Err(FormatError::Adjacent { .. })
        ));
        assert!(matches!(
            LineFormat::compile("${remote_addr $status", "remote_addr"),
            Err(FormatError::Unterminated { .. })
        ));
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/access_log_line.rs`): with
    /// `$status` as the peer variable, compiling ran past the end of the
    /// format looking for a `$status` that was not the peer.
    #[test]
    fn status_as_the_peer_is_refused() {
        assert!(matches!(
            LineFormat::compile("$status", "status"),
            Err(FormatError::PeerIsStatus { .. })
        ));
        assert!(matches!(
            LineFormat::compile("$remote_addr $status $status", "status"),
            Err(FormatError::PeerIsStatus { .. })
        ));
    }
}
