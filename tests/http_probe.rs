//! The HTTP probe against small real servers on loopback: the failure kinds,
//! redirects, the body limit and the source address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use badgateway_exporter::config::{Config, Path, Site};
use badgateway_exporter::prober::probe::http::{probe, Destination};
use badgateway_exporter::prober::probe::{ErrorKind, HttpOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server that reads a request head, then does `answer` with the socket;
/// it records each peer address.
async fn server<F, Fut>(answer: F) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>)
where
    F: Fn(tokio::net::TcpStream, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&peers);
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, peer)) = listener.accept().await else {
                return;
            };
            seen.lock().unwrap().push(peer);
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                answer(s, String::from_utf8_lossy(&head).into_owned()).await;
            });
        }
    });
    (addr, peers)
}

fn site(port: u16, extra: &str) -> Site {
    let yaml = format!(
        "probe: {{interval: 5s, timeout: 1s}}\nsites:\n  - name: s\n    url: http://www.example.com:{port}/health?x=1\n    origin: [127.0.0.1]\n{extra}"
    );
    Config::parse(yaml.as_bytes(), "t.yml")
        .unwrap_or_else(|e| panic!("{e}"))
        .sites
        .remove(0)
}

/// Probe through the proxy path, pinned to the site's first origin address
/// (where the test server listens).
async fn run(site: &Site) -> HttpOutcome {
    run_on(site, Path::Proxy).await
}

async fn run_on(site: &Site, path: Path) -> HttpOutcome {
    let tls = badgateway_exporter::prober::tls::client_config(&site.tls).unwrap();
    probe(site, path, Destination::Pinned(&site.origin[0]), &tls).await
}

async fn reply(mut s: tokio::net::TcpStream, text: &'static str) {
    let _ = s.write_all(text.as_bytes()).await;
    let _ = s.shutdown().await;
}

#[tokio::test]
async fn request_names_the_domain_path_and_query() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&heads);
    let (addr, _) = server(move |s, head| {
        keep.lock().unwrap().push(head);
        reply(s, "HTTP/1.1 204 No Content\r\n\r\n")
    })
    .await;
    let out = run(&site(addr.port(), "")).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert_eq!(out.status, Some(204));
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /health?x=1 http/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("host: www.example.com:{}\r\n", addr.port())),
        "{head}"
    );
    assert!(head.contains("user-agent: badgateway-exporter/"), "{head}");
}

#[tokio::test]
async fn unexpected_status_is_http_status() {
    let (addr, _) = server(|s, _| reply(s, "HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n")).await;
    let out = run(&site(addr.port(), "")).await;
    assert_eq!(out.error, Some(ErrorKind::HttpStatus));
    assert_eq!(out.status, Some(503));
    // ...unless the site expects it.
    let out = run(&site(addr.port(), "    expect_status: [\"500-503\"]\n")).await;
    assert_eq!(out.error, None);
}

/// A 302 to `location`, for any request.
fn redirect_to(location: String) -> &'static str {
    Box::leak(
        format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
            .into_boxed_str(),
    )
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn redirects_are_not_followed_unless_asked() {
    // The site's own host on another port: followed, still pinned to the
    // path's address (the name is the site's, so is the address).
    let (target, _) = server(|s, _| reply(s, OK)).await;
    let hop = redirect_to(format!("http://www.example.com:{}/next", target.port()));
    let (addr, _) = server(move |s, _| reply(s, hop)).await;
    let out = run(&site(addr.port(), "    expect_status: [\"200\"]\n")).await;
    assert_eq!(out.status, Some(302));
    assert_eq!(out.error, Some(ErrorKind::HttpStatus));
    let out = run(&site(
        addr.port(),
        "    expect_status: [\"200\"]\n    follow_redirects: true\n",
    ))
    .await;
    assert_eq!(out.status, Some(200), "{:?}", out.detail);
    assert_eq!(out.error, None);
}

#[tokio::test]
async fn a_redirect_to_another_host_leaves_a_pinned_path_alone() {
    // Following it by DNS would measure some other path: the redirect is
    // the answer, judged by the expected statuses.
    let (target, peers) = server(|s, _| reply(s, OK)).await;
    let hop = redirect_to(format!("http://127.0.0.2:{}/elsewhere", target.port()));
    let (addr, _) = server(move |s, _| reply(s, hop)).await;
    let out = run(&site(addr.port(), "    follow_redirects: true\n")).await;
    assert_eq!(
        (out.status, out.error),
        (Some(302), None),
        "{:?}",
        out.detail
    );
    let out = run(&site(
        addr.port(),
        "    expect_status: [\"200\"]\n    follow_redirects: true\n",
    ))
    .await;
    assert_eq!(out.status, Some(302));
    assert_eq!(out.error, Some(ErrorKind::HttpStatus));
    assert!(peers.lock().unwrap().is_empty(), "the other host was asked");
}

/// Probe with redirects followed; they must end in `too_many_redirects`.
async fn followed_in_vain(addr: SocketAddr) -> HttpOutcome {
    let out = run(&site(addr.port(), "    follow_redirects: true\n")).await;
    assert_eq!(
        out.error,
        Some(ErrorKind::TooManyRedirects),
        "{:?}",
        out.detail
    );
    out
}

#[tokio::test]
async fn a_redirect_loop_fails_with_its_own_kind() {
    // A 302 to itself: a loop at once, whatever the expected statuses
    // (3xx are expected by default).
    let (addr, _) = server(|s, _| async move {
        let port = s.local_addr().unwrap().port();
        let hop = redirect_to(format!("http://www.example.com:{port}/health?x=1"));
        reply(s, hop).await
    })
    .await;
    let out = followed_in_vain(addr).await;
    assert_eq!(out.status, Some(302));
    let detail = out.detail.unwrap();
    assert!(detail.starts_with("redirect loop: "), "{detail}");
    // Two URLs sending to each other.
    let (addr, _) = server(|s, head| async move {
        let port = s.local_addr().unwrap().port();
        let to = if head.starts_with("GET /a ") {
            "/b"
        } else {
            "/a"
        };
        reply(s, redirect_to(format!("http://www.example.com:{port}{to}"))).await
    })
    .await;
    followed_in_vain(addr).await;
    // A chain that never repeats ends at the limit.
    let (addr, _) = server(|s, head| async move {
        let port = s.local_addr().unwrap().port();
        let n: u32 = head
            .strip_prefix("GET /n")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        reply(
            s,
            redirect_to(format!("http://www.example.com:{port}/n{}", n + 1)),
        )
        .await
    })
    .await;
    let out = followed_in_vain(addr).await;
    assert!(out.detail.unwrap().starts_with("more than 10 redirects"));
}

#[tokio::test]
async fn closed_without_answer_is_reset() {
    let (addr, _) = server(|s, _| async move { drop(s) }).await;
    let out = run(&site(addr.port(), "")).await;
    assert_eq!(out.error, Some(ErrorKind::Reset), "{:?}", out.detail);
    assert_eq!(out.status, None);
}

#[tokio::test]
async fn garbage_is_http_protocol() {
    let (addr, _) = server(|s, _| reply(s, "SSH-2.0-OpenSSH_9.2\r\n\r\n")).await;
    let out = run(&site(addr.port(), "")).await;
    assert_eq!(out.error, Some(ErrorKind::HttpProtocol), "{:?}", out.detail);
}

#[tokio::test]
async fn silence_is_timeout_with_the_deadline_kept() {
    let (addr, _) = server(|s, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s)
    })
    .await;
    let out = run(&site(addr.port(), "")).await;
    assert_eq!(out.error, Some(ErrorKind::Timeout));
    assert!(
        out.duration >= Duration::from_millis(990) && out.duration < Duration::from_millis(1500),
        "{:?}",
        out.duration
    );
    assert!(out.phases.processing.unwrap() >= Duration::from_millis(900));
}

#[tokio::test]
async fn nothing_listening_is_connect_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = run(&site(port, "")).await;
    assert_eq!(out.error, Some(ErrorKind::ConnectRefused));
}

#[tokio::test]
async fn the_body_read_is_bounded() {
    // An endless body: the probe stops at its limit and succeeds.
    let (addr, _) = server(|mut s, _| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
        for _ in 0..10_000 {
            if s.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await;
    // The default limit is 64 KiB.
    let out = run(&site(addr.port(), "")).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert!(
        out.duration < Duration::from_millis(900),
        "{:?}",
        out.duration
    );
}

#[tokio::test]
async fn source_address_is_bound() {
    let (addr, peers) =
        server(|s, _| reply(s, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
    let out = run(&site(addr.port(), "    source_address: 127.0.0.3\n")).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert_eq!(peers.lock().unwrap()[0].ip().to_string(), "127.0.0.3");
    // An address this host does not have cannot be bound.
    let out = run(&site(addr.port(), "    source_address: 192.0.2.77\n")).await;
    assert_eq!(
        out.error,
        Some(ErrorKind::SourceAddress),
        "{:?}",
        out.detail
    );
}

#[tokio::test]
async fn source_address_binds_the_proxy_path_and_origin_source_address_the_origin_path() {
    let (addr, peers) =
        server(|s, _| reply(s, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
    let both = "    source_address: 127.0.0.3\n    origin_source_address: 127.0.0.4\n";
    let out = run_on(&site(addr.port(), both), Path::Origin).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    // The origin path never takes the proxy path's address by default: a
    // prober on the proxy host binds that to a forwarding IP.
    let only_proxy = "    source_address: 127.0.0.3\n";
    let out = run_on(&site(addr.port(), only_proxy), Path::Origin).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    let peers: Vec<String> = peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.ip().to_string())
        .collect();
    assert_eq!(peers, ["127.0.0.4", "127.0.0.1"]);
}

/// A site served over https at the proxy (here: nothing listens on the
/// url's port) and plain http straight to the origin on another port: the
/// origin probe speaks http to that port, with the url's host in Host.
#[tokio::test]
async fn origin_scheme_and_port_reach_a_plain_http_origin() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&heads);
    let (addr, _) = server(move |s, head| {
        keep.lock().unwrap().push(head);
        reply(s, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    })
    .await;
    let yaml = format!(
        "sites:\n  - name: s\n    url: https://www.example.com/health\n    origin: [127.0.0.1]\n    \
         origin_scheme: http\n    origin_port: {}\n",
        addr.port()
    );
    let site = Config::parse(yaml.as_bytes(), "t.yml")
        .unwrap()
        .sites
        .remove(0);
    let out = run_on(&site, Path::Origin).await;
    assert_eq!(out.error, None, "{:?}", out.detail);
    assert_eq!(out.phases.tls, None, "no TLS to a plain http origin");
    let head = heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nhost: www.example.com\r\n"),
        "Host stays the url's host, without the origin port: {head}"
    );
    // The proxy path keeps the url's scheme and port: https on 443 here,
    // where nothing listens.
    let out = run_on(&site, Path::Proxy).await;
    assert_eq!(
        out.error,
        Some(ErrorKind::ConnectRefused),
        "{:?}",
        out.detail
    );

    // origin_scheme alone takes that scheme's default port.
    let yaml = "sites:\n  - name: s\n    url: https://www.example.com/\n    origin: [127.0.0.1]\n    origin_scheme: http\n";
    let site = Config::parse(yaml.as_bytes(), "t.yml")
        .unwrap()
        .sites
        .remove(0);
    assert_eq!(site.port_on(Path::Origin), 80);
    assert_eq!(site.port_on(Path::Proxy), 443);
    // An address's own port wins over origin_port.
    let yaml = "sites:\n  - name: s\n    url: http://www.example.com/\n    origin: [\"127.0.0.1:81\"]\n    origin_port: 8080\n";
    let site = Config::parse(yaml.as_bytes(), "t.yml")
        .unwrap()
        .sites
        .remove(0);
    assert_eq!(
        site.origin[0]
            .socket_addr(site.port_on(Path::Origin))
            .port(),
        81
    );
}
