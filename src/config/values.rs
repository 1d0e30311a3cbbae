//! Parsers for the scalar values of the config file.
//!
//! Each returns the reason a value is wrong as a sentence fragment; the
//! caller adds the YAML path and the quoted value.
//!
//! One file of ~500 lines (140 of them tests): small readers of one subject.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::error::{quote, ParseValueError};
use super::types::{Address, StatusRange};

const ADDRESS_EXAMPLES: &str =
    "expected an IP address with an optional port, e.g. 203.0.113.5, 203.0.113.5:8080, 2001:db8::1 or [2001:db8::1]:8443";

impl FromStr for StatusRange {
    type Err = ParseValueError;

    /// Parses `200` or `200-399`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        status_range(s)
            .map_err(|why| ParseValueError(format!("invalid status range {}: {why}", quote(s))))
    }
}

impl FromStr for Address {
    type Err = ParseValueError;

    /// Parses `203.0.113.5`, `203.0.113.5:8080`, `2001:db8::1` or
    /// `[2001:db8::1]:8443`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        address(s).map_err(|why| ParseValueError(format!("invalid address {}: {why}", quote(s))))
    }
}

/// A humantime duration such as `15s`, `1m30s` or `200ms`.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; expected e.g. 15s, 1m30s or 200ms".into());
    }
    // humantime's own message for `15` ("time unit needed, for example
    // 15sec or 15ms") is fine, but this is the common mistake, so say it
    // plainly.
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("missing unit: add a unit, e.g. {t}s or {t}ms"));
    }
    humantime::parse_duration(t).map_err(|e| match e {
        humantime::DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            format!("missing unit after {value}: add a unit, e.g. {value}s")
        }
        humantime::DurationError::UnknownUnit { unit, .. } => format!(
            "unknown unit {}; use ms, s, m or h, e.g. 15s, 1m30s or 200ms",
            quote(&unit)
        ),
        humantime::DurationError::NumberOverflow => "too large".into(),
        // humantime's other messages give a character offset, which reads
        // oddly next to a line and column.
        _ => "not a duration; expected e.g. 15s, 1m30s or 200ms".into(),
    })
}

/// An IP literal with an optional port (see [`Address`]).
pub(crate) fn address(s: &str) -> Result<Address, String> {
    if s.is_empty() {
        return Err(format!("empty; {ADDRESS_EXAMPLES}"));
    }
    if s.contains('%') {
        return Err(format!(
            "IPv6 zone indexes (%...) are not supported; {ADDRESS_EXAMPLES}"
        ));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(format!("missing closing ']'; {ADDRESS_EXAMPLES}"));
        };
        let ip: Ipv6Addr = inside.parse().map_err(|_| {
            format!(
                "{} is not an IPv6 address; {ADDRESS_EXAMPLES}",
                quote(inside)
            )
        })?;
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port_number(port)?),
                None => return Err(format!("unexpected text after ']'; {ADDRESS_EXAMPLES}")),
            },
        };
        return Ok(Address {
            ip: IpAddr::V6(ip),
            port,
        });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Address { ip, port: None });
    }
    match s.split_once(':') {
        // One colon: IPv4 (or a hostname) with a port.
        Some((host, port)) if !port.contains(':') => {
            let ip: Ipv4Addr = host.parse().map_err(|_| not_an_ip(host))?;
            let port = port_number(port)?;
            Ok(Address {
                ip: IpAddr::V4(ip),
                port: Some(port),
            })
        }
        Some(_) => Err(format!(
            "not a valid IPv6 address (an IPv6 address with a port is written [2001:db8::1]:8443); {ADDRESS_EXAMPLES}"
        )),
        None => Err(not_an_ip(s)),
    }
}

fn not_an_ip(host: &str) -> String {
    let hostname_like = host.bytes().any(|b| b.is_ascii_alphabetic())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if hostname_like {
        format!(
            "hostnames are not allowed here, only IP addresses (the url host is what gets resolved by DNS); {ADDRESS_EXAMPLES}"
        )
    } else {
        format!("not a valid IP address; {ADDRESS_EXAMPLES}")
    }
}

/// A TCP port, 1..=65535.
fn port_number(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "port {} is not a number; expected 1-65535",
            quote(s)
        ));
    }
    match s.parse::<u32>() {
        Ok(0) => Err("port 0 is not allowed; expected 1-65535".into()),
        Ok(port) => u16::try_from(port)
            .map_err(|_| format!("port {port} is out of range; expected 1-65535")),
        Err(_) => Err(format!("port {s} is out of range; expected 1-65535")),
    }
}

/// Checks a port given as a YAML integer.
pub(crate) fn port_integer(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(0) => Err("port 0 is not allowed; expected 1-65535".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("port {n} is out of range; expected 1-65535")),
    }
}

/// `200` or `200-399`, within 100..=599.
pub(crate) fn status_range(s: &str) -> Result<StatusRange, String> {
    const EXPECTED: &str =
        "expected a status code like 200 or a range like 200-399, within 100-599";
    let t = s.trim();
    let (low, high) = match t.split_once('-') {
        Some((low, high)) => (low.trim(), high.trim()),
        None => (t, t),
    };
    let code = |part: &str| -> Result<u16, String> {
        if part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit()) {
            let n: u16 = part.parse().map_err(|_| EXPECTED.to_string())?;
            if (100..=599).contains(&n) {
                return Ok(n);
            }
            return Err(format!("status {n} is outside 100-599"));
        }
        if let (Some(first), Some("xx" | "xX" | "Xx" | "XX")) = (part.get(..1), part.get(1..)) {
            return Err(format!(
                "write a class such as {first}xx as the range {first}00-{first}99"
            ));
        }
        Err(EXPECTED.into())
    };
    let range = StatusRange {
        low: code(low)?,
        high: code(high)?,
    };
    if range.low > range.high {
        return Err(format!(
            "the range is reversed: {} is greater than {}; write {}-{}",
            range.low, range.high, range.high, range.low
        ));
    }
    Ok(range)
}

/// A CIDR block, or a bare IP meaning a single host. Host bits must be 0.
pub(crate) fn cidr(s: &str) -> Result<IpNet, String> {
    const EXPECTED: &str =
        "expected a CIDR block such as 198.51.100.0/24 or 2001:db8::/32, or a single IP address";
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = s.parse().map_err(|_| match s.split_once('/') {
        Some((addr, _)) if addr.parse::<IpAddr>().is_err() => {
            format!("{} is not an IP address; {EXPECTED}", quote(addr))
        }
        Some((_, prefix)) => format!(
            "prefix length {} is invalid: it must be 0-32 for IPv4 and 0-128 for IPv6",
            quote(prefix)
        ),
        None => format!("not an IP address or CIDR block; {EXPECTED}"),
    })?;
    let network = net.trunc();
    if network != net {
        return Err(format!(
            "host bits are set (the address is not the start of the block); did you mean {network}?"
        ));
    }
    Ok(net)
}

/// A link capacity such as `100Mbit`, `2.5Gbit` or `1000000bit`, in bit/s.
/// SI prefixes (1 Gbit = 10^9 bit), decimal fractions computed exactly.
pub(crate) fn capacity(s: &str) -> Result<u64, String> {
    const EXPECTED: &str =
        "expected a number and a unit, e.g. 100Mbit, 1Gbit, 2.5Gbit or 1000000bit";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(EXPECTED.into());
    }
    if unit.is_empty() {
        return Err(format!(
            "missing unit: add one, e.g. {number}Mbit or {number}bit"
        ));
    }
    // Byte units (MB, MiB) and "bps" are refused on purpose: link speeds
    // are quoted in bits, and `MBps` vs `Mbps` is too easy to get wrong.
    let multiplier: u128 = match unit
        .strip_suffix("/s")
        .unwrap_or(unit)
        .to_ascii_lowercase()
        .as_str()
    {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "tbit" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit {}; use bit, kbit, Mbit, Gbit or Tbit (per second, SI)",
                quote(unit)
            ))
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(format!("{} is not a number; {EXPECTED}", quote(number)));
    }
    let too_large = || format!("too large; the limit is {}bit", u64::MAX);
    // Bounded digit counts keep the numbers parseable as u128; the
    // arithmetic below is checked anyway.
    if whole.len() > 20 || fraction.len() > 12 {
        return Err(too_large());
    }
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let fraction_value: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let scaled = whole
        .checked_mul(multiplier)
        .and_then(|v| v.checked_mul(scale))
        .and_then(|v| v.checked_add(fraction_value.checked_mul(multiplier)?))
        .ok_or_else(too_large)?;
    if scaled % scale != 0 {
        return Err("that is not a whole number of bits per second".into());
    }
    match u64::try_from(scaled / scale) {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(bits) => Ok(bits),
        Err(_) => Err(too_large()),
    }
}

/// Site names and agent site labels: `[a-zA-Z0-9_.-]`, 1..=128 characters.
pub(crate) fn name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"
        ));
    }
    if s.len() > 128 {
        return Err(format!("is {} characters long; the limit is 128", s.len()));
    }
    Ok(())
}

/// An HTTP header name: an RFC 9110 token.
pub(crate) fn header_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("header name must not be empty".into());
    }
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if let Some(c) = s.chars().find(|&c| !is_tchar(c)) {
        return Err(format!(
            "header name contains {c:?}; header names are letters, digits and !#$%&'*+-.^_`|~ only"
        ));
    }
    Ok(())
}

/// An HTTP header value: visible ASCII, with spaces and tabs allowed.
pub(crate) fn header_value(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|&c| !(c == ' ' || c == '\t' || c.is_ascii_graphic()))
    {
        return Err(format!(
            "header value contains {c:?}; only visible ASCII characters, spaces and tabs are allowed"
        ));
    }
    Ok(())
}

/// A TLS server name: a DNS name or an IP address.
pub(crate) fn server_name(s: &str) -> Result<(), String> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("not a valid DNS name or IP address; expected e.g. www.example.com".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("200ms"), Ok(Duration::from_millis(200)));
        assert!(duration("15").unwrap_err().contains("add a unit, e.g. 15s"));
        assert!(duration("").is_err());
        assert!(duration("fast").unwrap_err().contains("not a duration"));
        assert!(duration("1m30")
            .unwrap_err()
            .contains("missing unit after 30"));
        assert!(duration("15 parsecs")
            .unwrap_err()
            .contains("unknown unit \"parsecs\""));
        assert!(duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn addresses() {
        let a = |s: &str| address(s);
        assert_eq!(
            a("203.0.113.5:8080"),
            Ok(Address {
                ip: "203.0.113.5".parse().unwrap(),
                port: Some(8080)
            })
        );
        assert_eq!(a("2001:db8::1").unwrap().port, None);
        assert_eq!(a("[2001:db8::1]:8443").unwrap().port, Some(8443));
        for (bad, why) in [
            ("203.0.113.300", "not a valid IP address"),
            ("203.0.113.5:0", "port 0 is not allowed"),
            ("203.0.113.5:70000", "port 70000 is out of range"),
            ("203.0.113.5:99999999999", "out of range"),
            ("203.0.113.5:", "is not a number"),
            ("origin.example.com", "hostnames are not allowed"),
            ("origin.example.com:443", "hostnames are not allowed"),
            ("2001:db8::1:8443:zz", "IPv6"),
            ("[2001:db8::1", "missing closing"),
            ("[203.0.113.5]:80", "not an IPv6 address"),
            ("[2001:db8::1]8443", "after ']'"),
            ("fe80::1%eth0", "zone"),
            ("", "empty"),
            ("\u{0}\u{ffff}", "not a valid IP"),
        ] {
            let err = a(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn status_ranges() {
        assert_eq!(
            status_range("200"),
            Ok(StatusRange {
                low: 200,
                high: 200
            })
        );
        assert_eq!(
            status_range("200 - 399"),
            Ok(StatusRange {
                low: 200,
                high: 399
            })
        );
        assert!(status_range("600").unwrap_err().contains("outside 100-599"));
        assert!(status_range("300-200").unwrap_err().contains("reversed"));
        assert!(status_range("abc")
            .unwrap_err()
            .contains("expected a status code"));
        assert!(status_range("2xx").unwrap_err().contains("200-299"));
        assert!(status_range("-").is_err());
        assert!(status_range("099").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            cidr("198.51.100.0/24").unwrap().to_string(),
            "198.51.100.0/24"
        );
        assert_eq!(cidr("198.51.100.7").unwrap().to_string(), "198.51.100.7/32");
        assert_eq!(cidr("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        assert_eq!(cidr("2001:db8::/32").unwrap().to_string(), "2001:db8::/32");
        assert!(cidr("198.51.100.1/24")
            .unwrap_err()
            .contains("198.51.100.0/24"));
        assert!(cidr("198.51.100.0/33")
            .unwrap_err()
            .contains("prefix length"));
        assert!(cidr("nope/8").unwrap_err().contains("not an IP address"));
        assert!(cidr("nope").is_err());
    }

    #[test]
    fn capacities() {
        assert_eq!(capacity("100Mbit"), Ok(100_000_000));
        assert_eq!(capacity("1Gbit"), Ok(1_000_000_000));
        assert_eq!(capacity("10Gbit"), Ok(10_000_000_000));
        assert_eq!(capacity("2.5Gbit"), Ok(2_500_000_000));
        assert_eq!(capacity("1000000bit"), Ok(1_000_000));
        assert_eq!(capacity("100kbit"), Ok(100_000));
        assert_eq!(capacity("1 Gbit/s"), Ok(1_000_000_000));
        assert_eq!(capacity("0.000000001Gbit"), Ok(1));
        assert!(capacity("fast").is_err());
        assert!(capacity("1000").unwrap_err().contains("missing unit"));
        assert!(capacity("1.5bit").unwrap_err().contains("whole number"));
        assert!(capacity("0Mbit").unwrap_err().contains("greater than 0"));
        assert!(capacity("1MB").unwrap_err().contains("unknown unit"));
        assert!(capacity("99999999999Tbit")
            .unwrap_err()
            .contains("too large"));
        assert!(capacity("1..5Gbit").is_err());
        assert!(capacity("1.Gbit").is_err());
        assert!(capacity(".5Gbit").is_err());
    }

    #[test]
    fn names_and_headers() {
        assert!(name("shop-1.example_a").is_ok());
        assert!(name("").is_err());
        assert!(name("a b").unwrap_err().contains("' '"));
        assert!(name(&"a".repeat(129)).is_err());
        assert!(name(&"a".repeat(128)).is_ok());
        assert!(header_name("X-Probe").is_ok());
        assert!(header_name("X Probe").is_err());
        assert!(header_value("a b\tc").is_ok());
        assert!(header_value("é").is_err());
        assert!(server_name("www.example.com").is_ok());
        assert!(server_name("2001:db8::1").is_ok());
        assert!(server_name("bad name").is_err());
        assert!(server_name("").is_err());
    }
}
