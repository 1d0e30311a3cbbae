//! Turns parsed lines into bounded counters: two source classes times
//! thirteen status labels, whatever the log contains.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::parse::LineFormat;

/// The `class` label: the client is one of the proxy's forwarding IPs, or not.
pub const CLASSES: [&str; 2] = ["forwarding", "other"];

/// The `status` label: the codes that tell a refusing or failing origin
/// apart exactly, every other code by its class.
pub const STATUSES: [&str; 13] = [
    "403", "429", "444", "499", "500", "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx",
];

/// The index in `STATUSES` of a status in 100..=599.
pub fn status_index(status: u16) -> usize {
    match status {
        403 => 0,
        429 => 1,
        444 => 2,
        499 => 3,
        500 => 4,
        502 => 5,
        503 => 6,
        504 => 7,
        // 1xx..5xx; the parser never yields anything outside 100..=599.
        _ => 8 + usize::from(status / 100).clamp(1, 5) - 1,
    }
}

/// The forwarding ranges, split by family so a check is a few mask
/// compares and never allocates.
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl Forwarding {
    pub fn new(ranges: &[IpNet]) -> Forwarding {
        let mut f = Forwarding::default();
        for r in ranges {
            match r {
                IpNet::V4(n) => f.v4.push(*n),
                IpNet::V6(n) => f.v6.push(*n),
            }
        }
        f
    }

    /// The parser has already turned `::ffff:a.b.c.d` into IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.iter().any(|n| n.contains(&a)),
            IpAddr::V6(a) => self.v6.iter().any(|n| n.contains(&a)),
        }
    }
}

/// Counts gathered by the tailer between two publications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// `[class][status]`, indexed like `CLASSES` and `STATUSES`.
    pub responses: [[u64; STATUSES.len()]; CLASSES.len()],
    pub lines: u64,
    pub malformed: u64,
    pub rotations: u64,
}

/// What the tailer hands lines to.
pub trait Sink {
    /// One complete line, without its newline.
    fn line(&mut self, line: &[u8]);
    /// A line longer than the tailer keeps; it was skipped.
    fn oversized(&mut self);
    /// The file was replaced or truncated.
    fn rotated(&mut self);
}

/// Parses and classifies lines into `Counts`.
pub struct LineCounter {
    format: LineFormat,
    forwarding: Forwarding,
    counts: Counts,
}

impl LineCounter {
    pub fn new(format: LineFormat, ranges: &[IpNet]) -> LineCounter {
        LineCounter {
            format,
            forwarding: Forwarding::new(ranges),
            counts: Counts::default(),
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The counts so far, leaving zeros.
    pub fn take(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }
}

impl Sink for LineCounter {
    fn line(&mut self, line: &[u8]) {
        self.counts.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self.format.parse(line) {
            Some(e) => {
                let class = usize::from(!self.forwarding.contains(e.addr));
                self.counts.responses[class][status_index(e.status)] += 1;
            }
            None => self.counts.malformed += 1,
        }
    }

    fn oversized(&mut self) {
        self.counts.lines += 1;
        self.counts.malformed += 1;
    }

    fn rotated(&mut self) {
        self.counts.rotations += 1;
    }
}

/// The running totals, read at scrape; they only ever grow.
#[derive(Debug, Default)]
pub struct Totals {
    responses: [[AtomicU64; STATUSES.len()]; CLASSES.len()],
    lines: AtomicU64,
    malformed: AtomicU64,
    rotations: AtomicU64,
}

impl Totals {
    pub fn add(&self, c: &Counts) {
        let add = |a: &AtomicU64, n: u64| {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        };
        for (totals, counts) in self.responses.iter().zip(&c.responses) {
            for (t, n) in totals.iter().zip(counts) {
                add(t, *n);
            }
        }
        add(&self.lines, c.lines);
        add(&self.malformed, c.malformed);
        add(&self.rotations, c.rotations);
    }

    pub fn get(&self) -> Counts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut c = Counts {
            lines: get(&self.lines),
            malformed: get(&self.malformed),
            rotations: get(&self.rotations),
            ..Counts::default()
        };
        for (counts, totals) in c.responses.iter_mut().zip(&self.responses) {
            for (n, t) in counts.iter_mut().zip(totals) {
                *n = get(t);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for (code, label) in [
            (101, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (403, "403"),
            (404, "4xx"),
            (429, "429"),
            (444, "444"),
            (499, "499"),
            (500, "500"),
            (501, "5xx"),
            (504, "504"),
            (599, "5xx"),
        ] {
            assert_eq!(STATUSES[status_index(code)], label, "{code}");
        }
    }

    #[test]
    fn ranges() {
        let f = Forwarding::new(&[
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        assert!(f.contains("192.0.2.200".parse().unwrap()));
        assert!(!f.contains("198.51.100.1".parse().unwrap()));
        assert!(f.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!f.contains("2001:db9::5".parse().unwrap()));
        assert!(!Forwarding::new(&[]).contains("192.0.2.1".parse().unwrap()));
    }
}
