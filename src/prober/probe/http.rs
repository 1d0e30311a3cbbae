// Why one file: one file of ~580 lines: every step shares one `Hop` and one
// deadline, and the error kinds each step maps to must be read side by
// side.
//! The HTTP probe. It does each step itself (DNS, TCP connect, TLS, the
//! HTTP exchange) so that every phase is a real measurement, and so the
//! site's host can be pinned to one address while Host and SNI stay the
//! domain, as a hosts-file entry would.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::TlsConnector;

use super::{ErrorKind, HttpOutcome, Phases};
use crate::config::{Address, HttpMethod, Path, Site};

/// At most this many redirects are followed when a site asks for it.
const MAX_REDIRECTS: usize = 10;

const USER_AGENT: &str = concat!("badgateway-exporter/", env!("CARGO_PKG_VERSION"));

/// Where one probe connects: a pinned address, or the URL host by DNS.
#[derive(Clone, Copy, Debug)]
pub enum Destination<'a> {
    Pinned(&'a Address),
    Dns,
}

/// Probe `site` once on `path` (its scheme, port and source address),
/// pinned to `destination`, within the site's timeout.
pub async fn probe(
    site: &Site,
    path: Path,
    destination: Destination<'_>,
    tls: &Arc<rustls::ClientConfig>,
) -> HttpOutcome {
    let started = Instant::now();
    let deadline = started + site.timeout;
    let mut phases = Phases::default();
    // The first request goes to the path's scheme and port; Host and SNI
    // stay the url's, as the proxy sends them to the origin.
    let first = request_url(site, path);
    let mut url = first.clone();
    let mut host_header = authority(&site.url);
    let mut resolved = None;
    let mut visited = vec![first.clone()];
    let mut cert_not_after = None;
    let result = loop {
        // The first authority keeps the path's address and port; another
        // scheme or port of the same host keeps the address (a hosts-file
        // entry binds the name, whatever the port).
        let same = same_authority(&url, &first);
        let pinned = match destination {
            Destination::Pinned(addr) if same => Some(addr.socket_addr(site.port_on(path))),
            Destination::Pinned(addr) => Some(SocketAddr::new(
                addr.ip,
                url.port_or_known_default().unwrap_or(80),
            )),
            Destination::Dns => None,
        };
        if !same {
            host_header = authority(&url);
        }
        let hop = Hop {
            site,
            url: &url,
            host_header: &host_header,
            pinned,
            source: site.source_on(path),
            tls,
            deadline,
        };
        match hop.run(&mut phases).await {
            Ok(answer) => {
                resolved = Some(answer.peer);
                cert_not_after = answer.cert_not_after.or(cert_not_after);
                let next = match &answer.location {
                    Some(location) if site.follow_redirects => url.join(location).ok(),
                    _ => None,
                };
                match redirect(next, &visited, destination) {
                    Redirect::Follow(next) => {
                        visited.push(next.clone());
                        url = next;
                    }
                    Redirect::Stop => break Ok(answer),
                    Redirect::Fail(detail) => {
                        let mut f = Failure::new(ErrorKind::TooManyRedirects, detail);
                        f.status = Some(answer.status);
                        break Err(f);
                    }
                }
            }
            Err(failure) => {
                if failure.peer.is_some() {
                    resolved = failure.peer;
                }
                cert_not_after = failure.cert_not_after.or(cert_not_after);
                break Err(failure);
            }
        }
    };
    let mut outcome = judge(site, result);
    outcome.resolved = resolved;
    outcome.phases = phases;
    outcome.duration = started.elapsed();
    outcome.cert_not_after = cert_not_after;
    outcome
}

/// How an origin treated an idle keep-alive connection (`hold_idle`).
#[derive(Clone, Debug, PartialEq)]
pub enum Idle {
    /// It closed the connection this long after its answer.
    Closed(Duration),
    /// Still open when the watch ended.
    StillOpen,
    /// It does not keep connections open: `Connection: close`, or closed
    /// at once.
    NoKeepAlive,
    /// No answer to hold idle after: the detail.
    Failed(String),
}

/// Closing sooner than this after the answer is not keeping alive.
const AT_ONCE: Duration = Duration::from_millis(100);

/// The largest answer read before holding its connection idle.
const IDLE_BODY_LIMIT: usize = 1 << 20;

/// Ask the origin at `addr` once, with keep-alive, as the proxy does, read
/// the whole answer, then hold the connection idle until the origin closes
/// it or `watch` passes.
pub async fn hold_idle(
    site: &Site,
    addr: &Address,
    tls: &Arc<rustls::ClientConfig>,
    watch: Duration,
) -> Idle {
    let url = request_url(site, Path::Origin);
    let host_header = authority(&site.url);
    let peer = addr.socket_addr(site.port_on(Path::Origin));
    let hop = Hop {
        site,
        url: &url,
        host_header: &host_header,
        pinned: Some(peer),
        source: site.source_on(Path::Origin),
        tls,
        deadline: Instant::now() + site.timeout,
    };
    let mut phases = Phases::default();
    let stream = match hop.connect(peer, &mut phases).await {
        Ok(s) => s,
        Err(f) => return Idle::Failed(f.detail),
    };
    if url.scheme() == "https" {
        match hop
            .handshake(stream, &url_host(&site.url), &mut phases)
            .await
        {
            Ok(s) => hop.idle_exchange(s, watch).await,
            Err(f) => Idle::Failed(f.detail),
        }
    } else {
        hop.idle_exchange(stream, watch).await
    }
}

/// What the last hop's answer or failure means for the probe: an expected
/// status, an unexpected one (and whether the proxy made that answer
/// itself), or the failure's kind. The caller fills in the timings.
fn judge(site: &Site, result: Result<Answer, Failure>) -> HttpOutcome {
    let mut outcome = HttpOutcome::default();
    match result {
        Ok(answer) if site.status_expected(answer.status) => {
            outcome.status = Some(answer.status);
        }
        Ok(answer) => {
            let carried = crate::diagnosis::answer::Carried {
                status: answer.status,
                headers: &answer.carried.headers,
                body: &answer.carried.body,
            };
            outcome.status = Some(answer.status);
            outcome.error = Some(ErrorKind::HttpStatus);
            outcome.detail = Some(format!("unexpected status {}", answer.status));
            outcome.proxy_signature = crate::diagnosis::answer::proxy_signature(&carried);
        }
        Err(failure) => {
            outcome.status = failure.status;
            outcome.error = Some(failure.kind);
            outcome.detail = Some(failure.detail);
        }
    }
    outcome
}

/// The url a probe on `path` requests first: the site's url with the
/// path's scheme and port.
fn request_url(site: &Site, path: Path) -> url::Url {
    let mut url = site.url.clone();
    let scheme = site.scheme_on(path);
    if scheme != site.scheme() {
        // http <-> https on a url with a host always succeeds.
        let _ = url.set_scheme(scheme.as_str());
    }
    let port = site.port_on(path);
    let _ = url.set_port((port != scheme.default_port()).then_some(port));
    url
}

/// The Host header for `url`: its host, and its port when not the default.
fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// What to do with an answer's redirect.
enum Redirect {
    Follow(url::Url),
    /// Not followed: the redirect is the answer, judged by its status.
    Stop,
    /// A loop, or too many: the probe fails.
    Fail(String),
}

/// Redirects are followed (when the site asks) to http and https URLs of
/// the site's own host, which stay pinned to the path's address; on a
/// pinned path, a redirect to another host is not followed, since the
/// pinned address serves only the site's name and DNS would lead the probe
/// off the path it measures. A URL visited before is a loop; more than
/// `MAX_REDIRECTS` fail too.
fn redirect(next: Option<url::Url>, visited: &[url::Url], destination: Destination) -> Redirect {
    let Some(next) = next.filter(|n| matches!(n.scheme(), "http" | "https")) else {
        return Redirect::Stop;
    };
    let first = &visited[0];
    if matches!(destination, Destination::Pinned(_)) && next.host_str() != first.host_str() {
        return Redirect::Stop;
    }
    if let Some(at) = visited.iter().position(|v| *v == next) {
        let chain: Vec<&str> = visited[at..].iter().map(url::Url::as_str).collect();
        return Redirect::Fail(format!(
            "redirect loop: {} -> {}",
            chain.join(" -> "),
            next.as_str()
        ));
    }
    if visited.len() > MAX_REDIRECTS {
        return Redirect::Fail(format!(
            "more than {MAX_REDIRECTS} redirects, the last to {next}"
        ));
    }
    Redirect::Follow(next)
}

fn same_authority(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

struct Hop<'a> {
    site: &'a Site,
    /// Scheme, port (when not pinned), path and query of the request.
    url: &'a url::Url,
    host_header: &'a str,
    pinned: Option<SocketAddr>,
    source: Option<IpAddr>,
    tls: &'a Arc<rustls::ClientConfig>,
    deadline: Instant,
}

struct Answer {
    peer: IpAddr,
    status: u16,
    location: Option<String>,
    /// What a failing answer carried that tells its maker.
    carried: Carried,
    cert_not_after: Option<SystemTime>,
}

/// The headers and the start of the body of an answer with an unexpected
/// status; empty otherwise.
#[derive(Debug, Default)]
struct Carried {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// How much of a failing answer's body is kept to tell its maker.
const BODY_KEPT: usize = 4096;

#[derive(Debug)]
struct Failure {
    kind: ErrorKind,
    detail: String,
    /// The status of the last answer, where there was one (a redirect).
    status: Option<u16>,
    peer: Option<IpAddr>,
    /// A handshake that failed on an expired certificate says when.
    cert_not_after: Option<SystemTime>,
}

impl Failure {
    fn new(kind: ErrorKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
            status: None,
            peer: None,
            cert_not_after: None,
        }
    }
}

impl Hop<'_> {
    async fn run(&self, phases: &mut Phases) -> Result<Answer, Failure> {
        let host = url_host(self.url);
        let port = self.url.port_or_known_default().unwrap_or(80);

        let peer = match self.pinned {
            Some(addr) => addr,
            None => match host.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, port),
                Err(_) => {
                    let started = Instant::now();
                    let found = timeout_at(
                        self.deadline,
                        tokio::net::lookup_host((host.as_str(), port)),
                    )
                    .await;
                    add(&mut phases.resolve, started.elapsed());
                    match found {
                        Err(_) => {
                            return Err(Failure::new(
                                ErrorKind::Dns,
                                format!("resolving {host} timed out"),
                            ))
                        }
                        Ok(Err(e)) => {
                            let kind = if out_of_resources(&e) {
                                ErrorKind::LocalResource
                            } else {
                                ErrorKind::Dns
                            };
                            return Err(Failure::new(kind, format!("resolving {host}: {e}")));
                        }
                        Ok(Ok(mut addrs)) => match addrs.next() {
                            Some(a) => a,
                            None => {
                                return Err(Failure::new(
                                    ErrorKind::Dns,
                                    format!("{host} has no address"),
                                ))
                            }
                        },
                    }
                }
            },
        };

        let with_peer = |mut f: Failure| {
            f.peer = Some(peer.ip());
            f
        };
        let stream = self.connect(peer, phases).await.map_err(with_peer)?;
        let mut cert_not_after = None;
        let answer = if self.url.scheme() == "https" {
            // SNI is the site's name even when the origin is asked for
            // over https under an http url.
            let sni = match self.pinned {
                Some(_) => url_host(&self.site.url),
                None => host,
            };
            let stream = self
                .handshake(stream, &sni, phases)
                .await
                .map_err(with_peer)?;
            cert_not_after = earliest_not_after(stream.get_ref().1.peer_certificates());
            self.exchange(stream, phases).await
        } else {
            self.exchange(stream, phases).await
        }
        .map_err(with_peer)?;
        Ok(Answer {
            peer: peer.ip(),
            cert_not_after,
            ..answer
        })
    }

    async fn connect(&self, peer: SocketAddr, phases: &mut Phases) -> Result<TcpStream, Failure> {
        let socket = match peer {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| Failure::new(ErrorKind::LocalResource, format!("opening a socket: {e}")))?;
        if let Some(source) = self.source {
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
                Failure::new(
                    ErrorKind::SourceAddress,
                    format!("binding source address {source}: {e}"),
                )
            })?;
        }
        let started = Instant::now();
        let connected = timeout_at(self.deadline, socket.connect(peer)).await;
        add(&mut phases.connect, started.elapsed());
        match connected {
            Err(_) => Err(Failure::new(
                ErrorKind::ConnectTimeout,
                format!("no answer from {peer} within the timeout"),
            )),
            Ok(Err(e)) => Err(Failure::new(
                connect_error_kind(&e, self.source.is_some()),
                format!("connecting to {peer}: {e}"),
            )),
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
        }
    }

    async fn handshake(
        &self,
        stream: TcpStream,
        host: &str,
        phases: &mut Phases,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
        let sni = self.site.tls.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(sni.to_owned())
            .map_err(|e| Failure::new(ErrorKind::Tls, format!("server name {sni:?}: {e}")))?;
        let started = Instant::now();
        let done = timeout_at(
            self.deadline,
            TlsConnector::from(Arc::clone(self.tls)).connect(name, stream),
        )
        .await;
        add(&mut phases.tls, started.elapsed());
        // A handshake that stalls or is reset (an MTU black hole, a
        // middlebox) fails TLS like a refused certificate does: the server
        // never got to answer at HTTP.
        match done {
            Err(_) => Err(Failure::new(
                ErrorKind::Tls,
                "TLS handshake did not finish within the timeout",
            )),
            Ok(Err(e)) => {
                let mut f = Failure::new(ErrorKind::Tls, format!("TLS: {e}"));
                f.cert_not_after = expired_at(&e);
                Err(f)
            }
            Ok(Ok(s)) => Ok(s),
        }
    }

    /// Send the request on a fresh connection and read a bounded body.
    /// Returns the status, a redirect's Location, and what an answer with
    /// an unexpected status carried.
    async fn exchange<S>(&self, stream: S, phases: &mut Phases) -> Result<Answer, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let timed_out =
            || Failure::new(ErrorKind::Timeout, "no complete answer within the timeout");
        let (mut sender, connection) = match timeout_at(
            self.deadline,
            hyper::client::conn::http1::handshake(TokioIo::new(stream)),
        )
        .await
        {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(hyper_failure(&e)),
            Ok(Ok(pair)) => pair,
        };
        let driver = tokio::spawn(connection);
        let request = self.request()?;

        let started = Instant::now();
        let head = timeout_at(self.deadline, sender.send_request(request)).await;
        add(&mut phases.processing, started.elapsed());
        let response = match head {
            Err(_) => {
                driver.abort();
                return Err(timed_out());
            }
            Ok(Err(e)) => {
                driver.abort();
                return Err(hyper_failure(&e));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let failing = !self.site.status_expected(status);
        let mut carried = Carried::default();
        if failing {
            for name in crate::diagnosis::answer::TELLING_HEADERS {
                if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
                    let v: String = v.chars().take(128).collect();
                    carried.headers.push((name.to_owned(), v));
                }
            }
        }
        let location = if response.status().is_redirection() {
            response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        } else {
            None
        };

        let started = Instant::now();
        let kept = failing.then_some(&mut carried.body);
        let limit = self.site.body_limit_bytes;
        let outcome = self.read_body(response.into_body(), kept, limit).await;
        add(&mut phases.transfer, started.elapsed());
        driver.abort();
        outcome.map(|_| Answer {
            peer: IpAddr::from([0, 0, 0, 0]),
            status,
            location,
            carried,
            cert_not_after: None,
        })
    }

    /// One request with keep-alive, its whole answer, then the connection
    /// held idle (its sender kept, so hyper does not close it) until the
    /// server closes it or `watch` passes.
    async fn idle_exchange<S>(&self, stream: S, watch: Duration) -> Idle
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handshake = hyper::client::conn::http1::handshake(TokioIo::new(stream));
        let (mut sender, connection) = match timeout_at(self.deadline, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Idle::Failed(hyper_failure(&e).detail),
            Err(_) => return Idle::Failed("no HTTP connection within the timeout".into()),
        };
        let mut driver = tokio::spawn(connection);
        let failed = |driver: &JoinHandle<_>, why: String| {
            driver.abort();
            Idle::Failed(why)
        };
        let mut request = match self.request() {
            Ok(r) => r,
            Err(f) => return failed(&driver, f.detail),
        };
        request.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("keep-alive"),
        );
        let response = match timeout_at(self.deadline, sender.send_request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return failed(&driver, hyper_failure(&e).detail),
            Err(_) => return failed(&driver, "no answer within the timeout".into()),
        };
        let closes = response
            .headers()
            .get(hyper::header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        // The whole answer, or the connection is not idle after it.
        match self
            .read_body(response.into_body(), None, IDLE_BODY_LIMIT)
            .await
        {
            Ok(true) => {}
            Ok(false) => return failed(&driver, "the answer is 1 MiB or more".into()),
            Err(f) => return failed(&driver, f.detail),
        }
        if closes {
            driver.abort();
            return Idle::NoKeepAlive;
        }
        let idle_since = Instant::now();
        let closed = tokio::time::timeout(watch, &mut driver).await;
        drop(sender);
        driver.abort();
        match closed {
            Err(_) => Idle::StillOpen,
            Ok(_) if idle_since.elapsed() < AT_ONCE => Idle::NoKeepAlive,
            Ok(_) => Idle::Closed(idle_since.elapsed()),
        }
    }

    /// Read the body up to `limit` bytes and within the deadline,
    /// keeping its first bytes in `kept` when asked (a failing answer's
    /// page, to tell who made it). True when the body ended within the
    /// limit, false when the limit came first.
    async fn read_body(
        &self,
        mut body: hyper::body::Incoming,
        mut kept: Option<&mut Vec<u8>>,
        limit: usize,
    ) -> Result<bool, Failure> {
        let mut read = 0usize;
        while read < limit {
            match timeout_at(self.deadline, body.frame()).await {
                Err(_) => {
                    return Err(Failure::new(
                        ErrorKind::Timeout,
                        "no complete answer within the timeout",
                    ))
                }
                Ok(None) => return Ok(true),
                Ok(Some(Err(e))) => return Err(hyper_failure(&e)),
                Ok(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    read += data.len();
                    if let Some(kept) = kept.as_deref_mut() {
                        let room = BODY_KEPT.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
        }
        Ok(false)
    }

    fn request(&self) -> Result<Request<Empty<Bytes>>, Failure> {
        let mut target = self.url.path().to_owned();
        if let Some(q) = self.url.query() {
            target.push('?');
            target.push_str(q);
        }
        let uri: Uri = target
            .parse()
            .map_err(|e| Failure::new(ErrorKind::HttpProtocol, format!("request target: {e}")))?;
        // The Host header names the domain (and a non-default port), never
        // the pinned address.
        let method = match self.site.method {
            HttpMethod::Get => hyper::Method::GET,
            HttpMethod::Head => hyper::Method::HEAD,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, self.host_header)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::ACCEPT, "*/*")
            .header(hyper::header::CONNECTION, "close");
        for (name, value) in &self.site.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Empty::new())
            .map_err(|e| Failure::new(ErrorKind::HttpProtocol, format!("request: {e}")))
    }
}

/// When the earliest certificate of a chain expires.
fn earliest_not_after(chain: Option<&[CertificateDer<'_>]>) -> Option<SystemTime> {
    chain?
        .iter()
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let secs = cert.validity().not_after.timestamp();
            Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
        })
        .min()
}

/// The notAfter of a certificate a handshake refused as expired.
fn expired_at(e: &io::Error) -> Option<SystemTime> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    match tls {
        rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext {
            not_after,
            ..
        }) => Some(UNIX_EPOCH + Duration::from_secs(not_after.as_secs())),
        _ => None,
    }
}

/// The URL host as a bare name or address (IPv6 without brackets).
fn url_host(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => String::new(),
    }
}

fn add(slot: &mut Option<Duration>, d: Duration) {
    *slot = Some(slot.unwrap_or_default() + d);
}

/// The kernel refused this host's own resources: file descriptors (EMFILE,
/// ENFILE), buffers (ENOBUFS) or memory (ENOMEM).
fn out_of_resources(e: &io::Error) -> bool {
    const CODES: [i32; 4] = [24, 23, 105, 12];
    e.raw_os_error().is_some_and(|c| CODES.contains(&c))
}

fn connect_error_kind(e: &io::Error, bound: bool) -> ErrorKind {
    // ENETUNREACH: this host's routing table has no way there (its link or
    // default route is gone). EHOSTUNREACH, EHOSTDOWN: a router, or the
    // neighbour lookup, said there is no way to that host.
    const NO_ROUTE: i32 = 101;
    const UNREACHABLE: [i32; 2] = [113, 112];
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
        io::ErrorKind::ConnectionReset => ErrorKind::Reset,
        // Without a source address of ours, no free local port.
        io::ErrorKind::AddrNotAvailable if bound => ErrorKind::SourceAddress,
        io::ErrorKind::AddrNotAvailable => ErrorKind::LocalResource,
        _ if out_of_resources(e) => ErrorKind::LocalResource,
        _ if e.raw_os_error() == Some(NO_ROUTE) => ErrorKind::NoRoute,
        _ if e.raw_os_error().is_some_and(|c| UNREACHABLE.contains(&c)) => ErrorKind::Unreachable,
        // Anything else the kernel says about a connect means we did not
        // get through: charge it to reachability.
        _ => ErrorKind::Unreachable,
    }
}

/// An I/O error in the middle of an exchange: a reset stays a reset,
/// anything else is charged to the step it happened in.
fn io_error_kind(e: &io::Error, otherwise: ErrorKind) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ErrorKind::Reset,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => otherwise,
    }
}

fn hyper_failure(e: &hyper::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Failure::new(
                io_error_kind(io, ErrorKind::Reset),
                format!("HTTP: {e}: {io}"),
            );
        }
        source = s.source();
    }
    let kind = if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ErrorKind::HttpProtocol
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        // Closed before a complete message, or canceled: the peer hung up.
        ErrorKind::Reset
    };
    Failure::new(kind, format!("HTTP: {e}"))
}
