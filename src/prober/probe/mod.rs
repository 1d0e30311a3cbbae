//! The probes: one kind per file. Each takes a target and a deadline and
//! returns a result; a failed probe is a result too, never an error that
//! could break a scrape.

pub mod http;
pub mod icmp;
pub mod path;
pub mod tcp;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use crate::config::Path;

/// The kind of a failed probe: a small, fixed vocabulary so that the
/// `error` label stays bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The host name did not resolve.
    Dns,
    /// The source address could not be bound.
    SourceAddress,
    /// This host could not open a socket for the probe (out of file
    /// descriptors, memory or local ports): the request never left it.
    LocalResource,
    /// TCP connect answered with RST.
    ConnectRefused,
    /// TCP connect got no answer before the deadline.
    ConnectTimeout,
    /// No route to the host or network (a router's ICMP unreachable).
    Unreachable,
    /// This host has no route to the address: its own network is down.
    NoRoute,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// Connected, but no complete answer before the deadline.
    Timeout,
    /// The server answered with something that is not HTTP.
    HttpProtocol,
    /// A complete answer, but its status is not an expected one.
    HttpStatus,
    /// Redirects were followed until they came back to a URL already
    /// visited, or past the limit.
    TooManyRedirects,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Dns,
        ErrorKind::SourceAddress,
        ErrorKind::LocalResource,
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectTimeout,
        ErrorKind::Unreachable,
        ErrorKind::NoRoute,
        ErrorKind::Tls,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::HttpProtocol,
        ErrorKind::HttpStatus,
        ErrorKind::TooManyRedirects,
    ];

    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::SourceAddress => "source_address",
            ErrorKind::LocalResource => "local_resource",
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::Tls => "tls",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpProtocol => "http_protocol",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::TooManyRedirects => "too_many_redirects",
        }
    }

    /// True when the failure happened before any HTTP exchange could start:
    /// the host did not accept a connection at all.
    pub fn is_connect_failure(self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectRefused
                | ErrorKind::ConnectTimeout
                | ErrorKind::Unreachable
                | ErrorKind::NoRoute
        )
    }

    /// True when the failure is this host's own: no route out, no name
    /// resolution, a source address it does not have, no socket.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            ErrorKind::NoRoute
                | ErrorKind::Dns
                | ErrorKind::SourceAddress
                | ErrorKind::LocalResource
        )
    }

    /// True when the failure left no sign that a packet reached the host
    /// and came back: no name, no socket, no answer to the connect. A
    /// refused connect is an answer (the host sent a reset).
    pub fn reached_nothing(self) -> bool {
        matches!(
            self,
            ErrorKind::Dns
                | ErrorKind::SourceAddress
                | ErrorKind::LocalResource
                | ErrorKind::ConnectTimeout
                | ErrorKind::Unreachable
                | ErrorKind::NoRoute
        )
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time spent in each step of one HTTP probe, named as blackbox_exporter
/// names them. A step that did not happen stays `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases {
    pub resolve: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    /// From the request written to the first byte of the response head.
    pub processing: Option<Duration>,
    /// Reading the response body.
    pub transfer: Option<Duration>,
}

impl Phases {
    pub fn iter(&self) -> [(&'static str, Option<Duration>); 5] {
        [
            ("resolve", self.resolve),
            ("connect", self.connect),
            ("tls", self.tls),
            ("processing", self.processing),
            ("transfer", self.transfer),
        ]
    }
}

/// The outcome of one HTTP probe.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpOutcome {
    /// The address actually connected to (after DNS, when the target is a name).
    pub resolved: Option<IpAddr>,
    /// The HTTP status, when a response head arrived.
    pub status: Option<u16>,
    pub phases: Phases,
    pub duration: Duration,
    /// `None` when the status was an expected one.
    pub error: Option<ErrorKind>,
    /// A short human explanation of the failure, for logs and `diagnose`.
    pub detail: Option<String>,
    /// A failing answer that a proxy made itself, not about its upstream:
    /// the name of the page's signature (`diagnosis::answer`).
    pub proxy_signature: Option<&'static str>,
    /// When the earliest certificate of the server's chain expires: from a
    /// TLS handshake, or from one that failed on an expired certificate.
    pub cert_not_after: Option<std::time::SystemTime>,
}

impl HttpOutcome {
    pub fn success(&self) -> bool {
        self.error.is_none()
    }

    /// Some packet of this probe came back from the host: a connection was
    /// made or refused.
    pub fn reached(&self) -> bool {
        self.error.is_none_or(|e| !e.reached_nothing())
    }
}

/// The outcome of one round of echoes to an address: ICMP echo requests,
/// or TCP handshakes to its web port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EchoRound {
    pub sent: u32,
    pub received: u32,
    /// Round-trip statistics over the replies; `None` when none came back.
    pub rtt: Option<RttStats>,
}

impl EchoRound {
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        f64::from(self.sent - self.received) / f64::from(self.sent)
    }

    /// Every echo of the round was lost: the path carried nothing, so it
    /// is down or filtered, not lossy.
    pub fn silent(&self) -> bool {
        self.sent > 0 && self.received == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RttStats {
    pub min: Duration,
    pub avg: Duration,
    pub max: Duration,
    /// Population standard deviation: the jitter.
    pub stddev: Duration,
}

impl RttStats {
    pub fn from_samples(samples: &[Duration]) -> Option<RttStats> {
        if samples.is_empty() {
            return None;
        }
        let secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
        let n = secs.len() as f64;
        let avg = secs.iter().sum::<f64>() / n;
        let var = secs.iter().map(|s| (s - avg).powi(2)).sum::<f64>() / n;
        let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = secs.iter().copied().fold(0.0, f64::max);
        Some(RttStats {
            min: Duration::from_secs_f64(min),
            avg: Duration::from_secs_f64(avg),
            max: Duration::from_secs_f64(max),
            stddev: Duration::from_secs_f64(var.sqrt()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_stats_of_known_samples() {
        let ms = |v: u64| Duration::from_millis(v);
        let s = RttStats::from_samples(&[ms(10), ms(20), ms(30)]).unwrap();
        assert_eq!(s.min, ms(10));
        assert_eq!(s.max, ms(30));
        assert!((s.avg.as_secs_f64() - 0.020).abs() < 1e-9);
        // population stddev of 10,20,30 ms is sqrt(200/3) ms
        assert!((s.stddev.as_secs_f64() - (200.0f64 / 3.0).sqrt() / 1000.0).abs() < 1e-9);
        assert_eq!(RttStats::from_samples(&[]), None);
    }

    #[test]
    fn loss_ratio() {
        let o = EchoRound {
            sent: 10,
            received: 7,
            rtt: None,
        };
        assert!((o.loss_ratio() - 0.3).abs() < 1e-12);
        let none = EchoRound {
            sent: 0,
            received: 0,
            rtt: None,
        };
        assert_eq!(none.loss_ratio(), 0.0);
    }
}
