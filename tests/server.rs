//! The whole exporter, started in-process on 127.0.0.1:0 or as the real
//! binary: its HTTP interface, reload, and the exposition format.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use badgateway_exporter::server::{self, Settings};
use common::metrics::Scrape;
use common::origin::OriginServer;
use common::paths::BIN;
use common::{http, proc, wait};

/// The exporter running in this process on its own runtime thread.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Running {
    fn start(config_file: Option<&Path>) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let settings = Settings {
            config_file: config_file.map(Path::to_owned),
            web: None,
            ..Settings::default()
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                server::run(listener, settings, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string())
            })
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Running {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        common::http_get(self.addr, path).unwrap()
    }

    fn post(&self, path: &str) -> (u16, String) {
        let reply = http::request(self.addr, "POST", path, &[], Some("")).unwrap();
        (reply.status, reply.body)
    }

    fn scrape_until(&self, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        wait::until(Duration::from_secs(15), Duration::from_millis(100), || {
            let s = Scrape::parse(&self.get("/metrics").1);
            if ready(&s) {
                Ok(s)
            } else {
                Err(format!("not ready:\n{}", s.text))
            }
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn site_config(port: u16, name: &str) -> String {
    format!(
        "probe:\n  interval: 1s\n  timeout: 1s\n  icmp: {{count: 2, interval: 10ms}}\nsites:\n\
         - name: {name}\n  url: http://www.example.com:{port}/healthz\n  proxy: [127.0.0.1]\n  origin: [127.0.0.2]\n"
    )
}

#[test]
fn serves_landing_health_and_metrics_without_config() {
    let r = Running::start(None);
    let (status, body) = r.get("/");
    assert_eq!(status, 200);
    assert!(body.contains("href=\"metrics\""), "{body}");
    assert_eq!(r.get("/-/healthy").0, 200);
    assert_eq!(r.get("/-/ready").0, 200);
    assert_eq!(r.get("/nope").0, 404);
    let raw = http::request(r.addr, "GET", "/metrics", &[], None)
        .unwrap()
        .head;
    assert!(
        raw.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{raw}"
    );
    let s = Scrape::parse(&r.get("/metrics").1);
    assert_eq!(
        s.get("badgateway_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(s.get("badgateway_sites", &[]), Some(0.0));
    let info = s.find("badgateway_build_info", &[]);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["version"], env!("CARGO_PKG_VERSION"));
}

/// A live /metrics with probe results passes `promtool check metrics`.
#[test]
fn live_metrics_pass_promtool() {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    // The origin address 127.0.0.2 has no server on that port: one path
    // fails, so error series are exposed too.
    std::fs::write(&file, site_config(port, "shop")).unwrap();
    let r = Running::start(Some(&file));
    let s = r.scrape_until(|s| {
        s.get("badgateway_probe_success", &[("path", "proxy")]) == Some(1.0)
            && s.get("badgateway_probe_success", &[("path", "origin")]) == Some(0.0)
            && s.get("badgateway_icmp_packet_loss_ratio", &[("path", "origin")])
                .is_some()
    });
    let out = proc::output_with(
        Command::new("promtool").args(["check", "metrics"]),
        Some(&s.text),
    );
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}\n{}",
        proc::both(&out),
        s.text
    );
}

/// A good reload swaps the sites; a bad one is refused with the reason and
/// the old configuration keeps probing.
#[test]
fn reload_keeps_the_old_config_on_error() {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(&file, site_config(port, "first")).unwrap();
    let r = Running::start(Some(&file));
    r.scrape_until(|s| {
        s.get("badgateway_forwarding_ip_blocked", &[("site", "first")])
            .is_some()
    });

    std::fs::write(&file, site_config(port, "second")).unwrap();
    let (status, body) = r.post("/-/reload");
    assert_eq!(status, 200, "{body}");
    let s = r.scrape_until(|s| {
        s.get("badgateway_forwarding_ip_blocked", &[("site", "second")])
            .is_some()
    });
    assert!(s
        .find("badgateway_probe_success", &[("site", "first")])
        .is_empty());

    std::fs::write(
        &file,
        "sites:\n  - name: broken\n    url: http://x/\n    origin: [not-an-ip]\n",
    )
    .unwrap();
    let (status, body) = r.post("/-/reload");
    assert_eq!(status, 500);
    assert!(
        body.contains("c.yml:4:") && body.contains("not-an-ip"),
        "{body}"
    );
    let s = Scrape::parse(&r.get("/metrics").1);
    assert_eq!(
        s.get("badgateway_config_last_reload_successful", &[]),
        Some(0.0)
    );
    // Still probing the second site.
    let before = s
        .get(
            "badgateway_last_round_timestamp_seconds",
            &[("site", "second")],
        )
        .unwrap();
    r.scrape_until(|s| {
        s.get(
            "badgateway_last_round_timestamp_seconds",
            &[("site", "second")],
        )
        .is_some_and(|t| t > before)
    });
}

/// The binary: SIGHUP reloads, SIGTERM stops it cleanly.
#[test]
fn binary_reloads_on_sighup_and_stops_on_sigterm() {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(&file, site_config(origin.addr.port(), "one")).unwrap();
    // Find a free port for the binary.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut exporter = common::Proc::spawn(
        Command::new(BIN).args([
            "--config",
            &file.to_string_lossy(),
            "--web.listen-address",
            &addr.to_string(),
        ]),
        &dir.path().join("exporter.log"),
    );
    let pid = nix::unistd::Pid::from_raw(exporter.child.id() as i32);
    let wait_for = |site: &str| {
        wait::until(Duration::from_secs(15), Duration::from_millis(100), || {
            let (_, body) = common::http_get(addr, "/metrics").unwrap_or_default();
            Scrape::parse(&body)
                .get("badgateway_forwarding_ip_blocked", &[("site", site)])
                .map(drop)
                .ok_or(format!("site {site} never probed"))
        })
    };
    wait_for("one");
    std::fs::write(&file, site_config(origin.addr.port(), "two")).unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_for("two");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait::until(Duration::from_secs(10), Duration::from_millis(50), || {
        exporter
            .child
            .try_wait()
            .unwrap()
            .ok_or("did not stop on SIGTERM".to_owned())
    });
    assert!(status.success(), "{status}");
}

#[test]
fn first_load_failure_is_a_clear_error_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(&file, "probe:\n  intervall: 15s\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "--config",
            &file.to_string_lossy(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yml:2:3") && err.contains("intervall"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["--web.listen-address", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.listen-address"));
}

#[test]
fn check_config_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, site_config(8080, "shop")).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", &good.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "sites:\n  - name: a\n    url: ftp://x/\n    origin: [1.2.3.999]\n  - name: a\n    url: http://y/\n    origin: [203.0.113.5:0]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", &bad.to_string_lossy()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // Every error, each with its place.
    assert!(err.lines().count() >= 4, "{err}");
    for place in ["bad.yml:3:", "bad.yml:4:", "bad.yml:5:", "bad.yml:7:"] {
        assert!(err.contains(place), "missing {place} in:\n{err}");
    }

    let out = Command::new(BIN)
        .args(["check-config", "/nonexistent/file.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.yml"));
}

/// `--web.config.file`: basic auth guards /metrics; a bad file stops the
/// start with a clear error.
#[test]
fn web_config_file_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = common::Proc::spawn(
        Command::new(BIN).args([
            "--web.config.file",
            &web.to_string_lossy(),
            "--web.listen-address",
            &addr.to_string(),
        ]),
        &dir.path().join("exporter.log"),
    );
    let (status, _) = wait::until(Duration::from_secs(10), Duration::from_millis(50), || {
        common::http_get(addr, "/metrics").map_err(|e| e.to_string())
    });
    assert_eq!(status, 401);
    // prometheus:s3cret
    let authorized = http::request(
        addr,
        "GET",
        "/metrics",
        &[("Authorization", "Basic cHJvbWV0aGV1czpzM2NyZXQ=")],
        None,
    )
    .unwrap();
    assert_eq!(authorized.status, 200, "{authorized:?}");
    assert!(authorized.body.contains("badgateway_build_info"));
    child.stop();

    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "--web.config.file",
            &web.to_string_lossy(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web.yml") && err.contains("prometheus"),
        "{err}"
    );
}

/// A scraper that accepts gzip (Prometheus does) gets the same text,
/// compressed; one that does not gets plain text.
#[test]
fn metrics_are_gzipped_when_asked() {
    use std::io::{Read, Write};
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(&file, site_config(origin.addr.port(), "shop")).unwrap();
    let r = Running::start(Some(&file));
    r.scrape_until(|s| {
        s.get("badgateway_forwarding_ip_blocked", &[("site", "shop")])
            .is_some()
    });
    let fetch = |gzip: bool| -> (String, Vec<u8>) {
        let mut s = std::net::TcpStream::connect(r.addr).unwrap();
        let accept = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n{accept}\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..at]).to_lowercase();
        (head, raw[at + 4..].to_vec())
    };
    let (head, body) = fetch(true);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(
        text.contains("badgateway_probe_success{site=\"shop\""),
        "{text}"
    );
    assert!(
        body.len() * 3 < text.len(),
        "{} of {}",
        body.len(),
        text.len()
    );
    let (head, body) = fetch(false);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("badgateway_probe_success"));
}
