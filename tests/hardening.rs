//! The web endpoint's bounds, on the real binary: a cap on open
//! connections, on scrapes in flight, on a request head's size and time,
//! memory held by half-sent requests, and basic auth that takes as long
//! for an unknown user as for a wrong password. Every exporter listens on
//! 127.0.0.1 port 0 and is stopped on drop.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::exporter::served_address;
use common::http::base64;
use common::metrics::Scrape;
use common::paths::BIN;
use common::{http, wait, Proc};

/// The exporter binary, started with `args`, and where it listens.
struct Exporter {
    proc: Proc,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// `files`: (name, text) written to a temporary directory first; `{dir}`
    /// in `args` names it.
    fn start(files: &[(&str, &str)], args: &[&str]) -> Exporter {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let d = dir.path().display().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let mut proc = Proc::spawn(
            Command::new(BIN)
                .args(["--web.listen-address", "127.0.0.1:0", "--log.level", "info"])
                .args(&args),
            &dir.path().join("exporter.log"),
        );
        let addr = served_address(&mut proc);
        Exporter {
            proc,
            addr,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    fn get(&self, path: &str) -> (u16, String) {
        common::http_get(self.addr, path).unwrap()
    }

    fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Read until the peer closes; what came, and how long that took.
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "still open after {:?}; got {:?}",
                    start.elapsed(),
                    String::from_utf8_lossy(&got)
                )
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
    (got, start.elapsed())
}

// ---------------------------------------------------------------------------
// --web.max-connections

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let e = Exporter::start(&[], &["--web.max-connections", "3"]);
    // Three idle connections fill the cap (the server has accepted each
    // when a request on a fourth one fails).
    let held: Vec<TcpStream> = (0..3).map(|_| connect(e.addr)).collect();
    wait::until(Duration::from_secs(10), Duration::from_millis(50), || {
        let mut s = connect(e.addr);
        let _ = s.write_all(b"GET /-/healthy HTTP/1.0\r\n\r\n");
        let (got, took) = read_until_closed(&mut s);
        if got.is_empty() {
            assert!(took < Duration::from_secs(2), "closed after {took:?}");
            Ok(())
        } else {
            Err(format!(
                "a fourth connection was served: {:?}",
                String::from_utf8_lossy(&got)
            ))
        }
    });
    // One freed: served again, and the refusals counted.
    drop(held);
    let scrape =
        wait::until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || match http::http_get(e.addr, "/metrics") {
                Ok((200, body)) => Ok(Scrape::parse(&body)),
                other => Err(format!("{other:?}")),
            },
        );
    let refused = scrape
        .get("badgateway_exporter_web_connections_refused_total", &[])
        .unwrap();
    assert!(refused >= 1.0, "{}", scrape.text);
    // This scrape's own connection is open.
    let open = scrape
        .get("badgateway_exporter_web_connections", &[])
        .unwrap();
    assert!((1.0..=3.0).contains(&open), "{}", scrape.text);
}

#[test]
fn the_connection_cap_fits_the_open_files_limit() {
    // prlimit --nofile=200: (200 - 64) / 2 = 68 connections at most.
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::spawn(
        Command::new("prlimit")
            .args(["--nofile=200:200", BIN])
            .args(["--web.listen-address", "127.0.0.1:0"])
            .args(["--web.max-connections", "1000"]),
        &dir.path().join("log"),
    );
    served_address(&mut p);
    let log = p.log_text();
    assert!(
        log.contains("--web.max-connections lowered") && log.contains("max_connections=68"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------
// --web.max-requests

/// A configuration of `n` sites whose addresses refuse at once.
fn refusing_sites(n: usize) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // released: nothing listens there
    let mut c = String::from(
        "probe:\n  interval: 10s\n  timeout: 1s\n  icmp: {enabled: false}\n  tcp: {enabled: false}\nsites:\n",
    );
    for i in 0..n {
        c.push_str(&format!(
            "- name: site{i}\n  url: http://site{i}.example.com:{port}/healthz\n  proxy: [127.0.0.1]\n  origin: [127.0.0.2]\n"
        ));
    }
    c
}

#[test]
fn scrapes_over_the_limit_get_503_while_one_is_being_sent() {
    // A scrape larger than the server's socket can buffer (tcp_wmem's
    // most, 4 MiB by default): about 4.2 KB a refusing site.
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let wanted = wmem_max + 1024 * 1024;
    let e = Exporter::start(
        &[("config.yml", &refusing_sites(wanted / 4000))],
        &["--config", "{dir}/config.yml", "--web.max-requests", "1"],
    );
    let size = wait::until(Duration::from_secs(40), Duration::from_millis(500), || {
        let (status, body) = e.get("/metrics");
        if status == 200 && body.len() > wanted {
            Ok(body.len())
        } else {
            Err(format!("{status}, {} bytes", body.len()))
        }
    });
    // A scrape whose client reads nothing: it stays in flight.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&e.addr.into()).unwrap();
    let mut stalled: TcpStream = sock.into();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    stalled.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // Another one now: refused at once.
    let started = Instant::now();
    let (status, body) = e.get("/metrics");
    assert_eq!(status, 503, "a {size}-byte scrape in flight, yet: {status}");
    assert!(
        body.contains("Limit of concurrent requests reached (1)"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The stalled client goes: scrapes are served again, the 503 counted.
    drop(stalled);
    let scrape =
        wait::until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || match http::http_get(e.addr, "/metrics") {
                Ok((200, body)) => Ok(Scrape::parse(&body)),
                other => Err(format!("{:?}", other.map(|(s, _)| s))),
            },
        );
    assert!(
        scrape
            .get("badgateway_exporter_web_scrapes_refused_total", &[])
            .unwrap()
            >= 1.0
    );
}

// ---------------------------------------------------------------------------
// Request heads: size and time.

#[test]
fn an_oversized_request_head_gets_431_at_once() {
    let e = Exporter::start(&[], &[]);
    let mut s = connect(e.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ")
        .unwrap();
    // 64 KiB of one header, never ended: far past the 16 KiB budget
    // (hyper's default budget, ~400 KiB, would wait for more).
    let _ = s.write_all(&[b'a'; 64 * 1024]);
    let (got, took) = read_until_closed(&mut s);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 431"), "{got:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_slow_request_head_is_dropped_after_10_s() {
    let e = Exporter::start(&[], &[]);
    let mut s = connect(e.addr);
    s.set_nonblocking(true).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let start = Instant::now();
    // One header byte a second, never ending the head.
    let closed = loop {
        std::thread::sleep(Duration::from_millis(500));
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break start.elapsed(),
        }
        if s.write_all(b"X").is_err() {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still open after 20 s (hyper's default is 30 s)"
        );
    };
    assert!(
        closed >= Duration::from_secs(8) && closed < Duration::from_secs(14),
        "closed after {closed:?}"
    );
}

/// Resident memory while 400 connections each hold a half-sent request
/// head of `bytes`, against the exporter with `args`; (before, while) in
/// KiB.
fn rss_with_half_sent_heads(args: &[&str], bytes: usize) -> (u64, u64) {
    let e = Exporter::start(&[], args);
    e.scrape();
    let before = rss_kib(e.pid());
    let mut head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    head.resize(bytes, b'a');
    let mut held = Vec::new();
    for _ in 0..400 {
        let Ok(mut s) = TcpStream::connect_timeout(&e.addr, Duration::from_secs(5)) else {
            continue;
        };
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        // Refused or answered 431 part way: the write fails, that is fine.
        let _ = s.write_all(&head);
        held.push(s);
    }
    // Let the server read what it will.
    std::thread::sleep(Duration::from_secs(2));
    let during = rss_kib(e.pid());
    eprintln!(
        "400 connections with {} KiB half-sent heads, {args:?}: RSS {} -> {} KiB",
        bytes / 1024,
        before,
        during
    );
    drop(held);
    (before, during)
}

#[test]
fn half_sent_request_heads_hold_little_memory() {
    // 390 KiB heads (the figure: 9 MB -> 172 MB with hyper's
    // defaults), and heads just under the 16 KiB budget, held until the
    // header timeout by at most --web.max-connections (256) connections.
    for bytes in [390 * 1024, 15 * 1024] {
        let (before, during) = rss_with_half_sent_heads(&[], bytes);
        assert!(
            during < before + 24 * 1024,
            "{bytes}-byte heads: RSS {before} -> {during} KiB"
        );
    }
}

// ---------------------------------------------------------------------------
// Basic auth timing.

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time of 9 requests with these credentials (after one unmeasured).
fn auth_time(addr: SocketAddr, user: &str, password: &str) -> (u16, Duration) {
    let cred = base64(format!("{user}:{password}").as_bytes());
    let auth = format!("Basic {cred}");
    let mut status = 0;
    let mut times = Vec::new();
    for i in 0..10 {
        let start = Instant::now();
        let r =
            http::request(addr, "GET", "/-/healthy", &[("Authorization", &auth)], None).unwrap();
        if i > 0 {
            times.push(start.elapsed());
        }
        status = r.status;
    }
    (status, median(times))
}

#[test]
fn a_failed_login_takes_the_slowest_users_time_whoever_it_names() {
    let fast = bcrypt::hash("secret", 4).unwrap();
    let slow = bcrypt::hash("secret", 9).unwrap();
    let web = format!("basic_auth_users:\n  fast: '{fast}'\n  slow: '{slow}'\n");
    let e = Exporter::start(
        &[("web.yml", &web)],
        &["--web.config.file", "{dir}/web.yml"],
    );
    let (ok, _) = auth_time(e.addr, "fast", "secret");
    assert_eq!(ok, 200);
    let (s1, slow_wrong) = auth_time(e.addr, "slow", "wrong");
    let (s2, fast_wrong) = auth_time(e.addr, "fast", "wrong");
    let (s3, unknown) = auth_time(e.addr, "nobody", "wrong");
    assert_eq!((s1, s2, s3), (401, 401, 401));
    eprintln!(
        "median 401 times: slow user {slow_wrong:?}, fast user {fast_wrong:?}, unknown user {unknown:?}"
    );
    // The same work for all three (2^9 rounds); the cost-4 hash alone is
    // 1/32 of it. A generous factor keeps this off scheduling noise.
    assert!(
        unknown * 3 >= slow_wrong,
        "unknown {unknown:?} vs slow {slow_wrong:?}"
    );
    assert!(
        fast_wrong * 3 >= slow_wrong,
        "fast {fast_wrong:?} vs slow {slow_wrong:?}"
    );
}
