//! The access-log line parser, through the line counter the tailer feeds.
//!
//! Input: a selector byte, then lines. Selector 0: the `combined` format;
//! 1: `common`; anything else: a custom nginx `log_format` on the first
//! line and the peer variable on the second (empty: the format's default
//! peer), as the config allows. Every following line is one log line.

#![no_main]

use badgateway_exporter::agent::access_log::count::{LineCounter, Sink};
use badgateway_exporter::agent::access_log::parse::LineFormat;
use badgateway_exporter::config::LogFormat;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut lines = rest.split(|&b| b == b'\n');
    let (format, peer) = match selector {
        0 => (LogFormat::Combined, None),
        1 => (LogFormat::Common, None),
        _ => {
            let (Some(format), Some(peer)) = (lines.next(), lines.next()) else {
                return;
            };
            let (Ok(format), Ok(peer)) = (std::str::from_utf8(format), std::str::from_utf8(peer))
            else {
                return;
            };
            let peer = peer.strip_prefix('$').unwrap_or(peer);
            let peer = (!peer.is_empty()).then(|| peer.to_owned());
            (LogFormat::Custom(format.to_owned()), peer)
        }
    };
    let peer = peer.unwrap_or_else(|| format.default_peer().to_owned());
    let Ok(line_format) = LineFormat::new(&format, &peer) else {
        return;
    };
    let ranges: Vec<IpNet> = ["198.51.100.0/24", "2001:db8::/32"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let mut counter = LineCounter::new(line_format, &ranges);
    let mut n = 0;
    for line in lines {
        counter.line(line);
        n += 1;
    }
    assert_eq!(counter.counts().lines, n);
});
