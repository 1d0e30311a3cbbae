//! What kind of failure a request is, and who made a failing answer: the
//! host never answered, the exchange broke, the proxy spoke about its
//! upstream (502, 504, a CDN's 52x), the proxy answered with a page of its
//! own (its WAF, a challenge), or an answer was passed on from upstream.
//! The prober counts requests by kind (`badgateway_probe_failures_total`);
//! the cause files read the kinds.

use crate::prober::probe::{ErrorKind, HttpOutcome};

/// The kind of a failed request: the `kind` label of
/// `badgateway_probe_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The host never answered at HTTP: refused, connect time-out,
    /// unreachable, no route, no name, or the TLS handshake failed.
    Unanswered,
    /// Connected, then no complete answer: a time-out, a reset, garbage.
    Broken,
    /// A proxy's answer about its upstream: 502, 504, a CDN's 520-524, 530.
    Gateway,
    /// A CDN's 525 or 526: its TLS handshake with its upstream failed.
    UpstreamTls,
    /// A page the proxy made itself, not about its upstream: its WAF, a
    /// challenge, its own error (told by the page's signature).
    Proxy,
    /// A refusal without a proxy's signature: 401, 403, 407, 429, 503.
    Refused,
    /// Another server error without a proxy's signature: 500, 501, ...
    Error,
    /// Any other answer not expected: a 404, a redirect.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Unanswered,
        Kind::Broken,
        Kind::Gateway,
        Kind::UpstreamTls,
        Kind::Proxy,
        Kind::Refused,
        Kind::Error,
        Kind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unanswered => "unanswered",
            Kind::Broken => "broken",
            Kind::Gateway => "gateway",
            Kind::UpstreamTls => "upstream_tls",
            Kind::Proxy => "proxy",
            Kind::Refused => "refused",
            Kind::Error => "error",
            Kind::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// Statuses a proxy makes about its upstream.
pub fn is_gateway_status(status: u16) -> bool {
    matches!(status, 502 | 504 | 520..=524 | 530)
}

/// Statuses a proxy uses when its upstream did not answer in time (nginx
/// 504; a CDN's 522 connection timed out and 524 a timeout occurred).
pub fn is_upstream_timeout_status(status: u16) -> bool {
    matches!(status, 504 | 522 | 524)
}

/// The kind of a failed request; `None` when it succeeded.
pub fn kind(outcome: &HttpOutcome) -> Option<Kind> {
    let error = outcome.error?;
    Some(match error {
        ErrorKind::Dns
        | ErrorKind::SourceAddress
        | ErrorKind::LocalResource
        | ErrorKind::ConnectRefused
        | ErrorKind::ConnectTimeout
        | ErrorKind::Unreachable
        | ErrorKind::NoRoute
        | ErrorKind::Tls => Kind::Unanswered,
        ErrorKind::Timeout | ErrorKind::Reset | ErrorKind::HttpProtocol => Kind::Broken,
        // The site answers, with redirects that lead nowhere: an answer of
        // its own, not a gateway's.
        ErrorKind::TooManyRedirects => Kind::Other,
        ErrorKind::HttpStatus => {
            let status = outcome.status.unwrap_or(0);
            if outcome.proxy_signature.is_some() {
                Kind::Proxy
            } else if matches!(status, 525 | 526) {
                Kind::UpstreamTls
            } else if is_gateway_status(status) {
                Kind::Gateway
            } else if matches!(status, 401 | 403 | 407 | 429 | 503) {
                Kind::Refused
            } else if status >= 500 {
                Kind::Error
            } else {
                Kind::Other
            }
        }
    })
}

/// What a failing answer carried, as far as telling its maker goes.
pub struct Carried<'a> {
    pub status: u16,
    /// Header (lower-case name, value) pairs.
    pub headers: &'a [(String, String)],
    /// The start of the body.
    pub body: &'a [u8],
}

/// The headers worth keeping from a failing answer to tell its maker.
pub const TELLING_HEADERS: [&str; 9] = [
    "server",
    "via",
    "x-cache",
    "cf-ray",
    "cf-mitigated",
    "x-amz-cf-id",
    "x-sucuri-id",
    "x-iinfo",
    "x-served-by",
];

/// A failing answer the proxy made itself, not about its upstream: the
/// name of the signature that says so. 52x and 502/504 pages are about the
/// upstream, never this. nginx's default error page is not a signature:
/// the origin's nginx writes the same page, and only the origin agent's
/// access log can tell (did the forwarding IPs get such answers?).
pub fn proxy_signature(a: &Carried<'_>) -> Option<&'static str> {
    if is_gateway_status(a.status) || matches!(a.status, 525 | 526) {
        return None;
    }
    let header = |name: &str| {
        a.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body_has = |needle: &str| memchr::memmem::find(a.body, needle.as_bytes()).is_some();
    let server = header("server").unwrap_or_default();
    if header("cf-mitigated").is_some() {
        return Some("cloudflare challenge");
    }
    if server == "cloudflare"
        && (body_has("Cloudflare Ray ID")
            || body_has("cf-error-details")
            || body_has("Attention Required!")
            || body_has("Just a moment..."))
    {
        return Some("cloudflare");
    }
    if header("x-cache").is_some_and(|v| v.contains("error from cloudfront"))
        && (a.status == 403 || body_has("The request could not be satisfied"))
    {
        return Some("cloudfront");
    }
    if server.starts_with("awselb") && matches!(a.status, 403 | 405 | 429) {
        return Some("aws load balancer");
    }
    if server == "akamaighost" && body_has("Access Denied") {
        return Some("akamai");
    }
    if header("x-sucuri-id").is_some() || body_has("Sucuri WebSite Firewall") {
        return Some("sucuri");
    }
    if header("x-iinfo").is_some() || body_has("Incapsula incident") {
        return Some("imperva");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried<'a>(status: u16, headers: &'a [(String, String)], body: &'a str) -> Carried<'a> {
        Carried {
            status,
            headers,
            body: body.as_bytes(),
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn signatures_of_pages_a_proxy_makes_itself() {
        let cf = h(&[("server", "cloudflare"), ("cf-ray", "8a1b2c3d4e5f-AMS")]);
        let page = "<title>Attention Required! | Cloudflare</title> ... Cloudflare Ray ID: 8a1b";
        assert_eq!(
            proxy_signature(&carried(403, &cf, page)),
            Some("cloudflare")
        );
        // Cloudflare's 52x pages speak about the origin: never its own.
        assert_eq!(proxy_signature(&carried(522, &cf, page)), None);
        assert_eq!(proxy_signature(&carried(526, &cf, page)), None);
        let challenge = h(&[("server", "cloudflare"), ("cf-mitigated", "challenge")]);
        assert_eq!(
            proxy_signature(&carried(403, &challenge, "")),
            Some("cloudflare challenge")
        );
        let cloudfront = h(&[("x-cache", "Error from cloudfront")]);
        assert_eq!(
            proxy_signature(&carried(
                403,
                &cloudfront,
                "The request could not be satisfied"
            )),
            Some("cloudfront")
        );
        assert_eq!(proxy_signature(&carried(502, &cloudfront, "")), None);
        let alb = h(&[("server", "awselb/2.0")]);
        assert_eq!(
            proxy_signature(&carried(403, &alb, "")),
            Some("aws load balancer")
        );
        // nginx's default page is written by the origin's nginx too.
        let nginx = h(&[("server", "nginx/1.22.1")]);
        let nginx_page = "<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden</h1></center><hr><center>nginx/1.22.1</center>";
        assert_eq!(proxy_signature(&carried(403, &nginx, nginx_page)), None);
    }

    #[test]
    fn kinds() {
        use crate::prober::probe::Phases;
        let o = |status: Option<u16>, error: Option<ErrorKind>, sig: Option<&'static str>| {
            HttpOutcome {
                resolved: None,
                status,
                phases: Phases::default(),
                duration: std::time::Duration::ZERO,
                error,
                detail: None,
                proxy_signature: sig,
                cert_not_after: None,
            }
        };
        let status = |s: u16| o(Some(s), Some(ErrorKind::HttpStatus), None);
        assert_eq!(kind(&o(Some(200), None, None)), None);
        assert_eq!(kind(&status(502)), Some(Kind::Gateway));
        assert_eq!(kind(&status(524)), Some(Kind::Gateway));
        assert_eq!(kind(&status(526)), Some(Kind::UpstreamTls));
        assert_eq!(kind(&status(429)), Some(Kind::Refused));
        assert_eq!(kind(&status(500)), Some(Kind::Error));
        assert_eq!(kind(&status(404)), Some(Kind::Other));
        assert_eq!(
            kind(&o(
                Some(403),
                Some(ErrorKind::HttpStatus),
                Some("cloudflare")
            )),
            Some(Kind::Proxy)
        );
        assert_eq!(
            kind(&o(None, Some(ErrorKind::Tls), None)),
            Some(Kind::Unanswered)
        );
        assert_eq!(
            kind(&o(None, Some(ErrorKind::Timeout), None)),
            Some(Kind::Broken)
        );
    }
}
