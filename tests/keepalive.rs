//! The origin's idle timeout against the proxy's, measured from outside on
//! a real nginx: one origin closes idle connections after 2 s (shorter
//! than the 5 s the proxy keeps them), one after 30 s, one keeps none.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::lab::nginx_conf;
use common::metrics::Scrape;
use common::netns::Netns;
use common::paths::BIN;
use common::wait;

const EXPORTER: &str = "127.0.0.1:9502";

fn config() -> String {
    let mut c = String::from(
        "probe:\n  interval: 1s\n  timeout: 900ms\n  proxy_idle_timeout: 5s\n  icmp: {enabled: false}\n  tcp: {enabled: false}\nsites:\n",
    );
    for (name, port) in [("short", 8001), ("long", 8002), ("none", 8003)] {
        c.push_str(&format!(
            "  - name: {name}\n    url: http://{name}.example.com:{port}/\n    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n"
        ));
    }
    // A site whose proxy keeps no idle connection: nothing is watched.
    c.push_str("  - name: off\n    url: http://off.example.com:8001/\n    proxy: [127.0.0.1]\n    origin: [127.0.0.2]\n    proxy_idle_timeout: \"off\"\n");
    c
}

fn value(s: &Scrape, name: &str, site: &str) -> Option<f64> {
    s.get(
        name,
        &[("site", site), ("path", "origin"), ("address", "127.0.0.2")],
    )
}

#[test]
fn the_origins_idle_timeout_is_measured_and_compared_with_the_proxys() {
    let ns = Netns::new("ka");
    ns.exec(&["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let servers: String = [(8001, "2s"), (8002, "30s"), (8003, "0")]
        .iter()
        .map(|(port, keepalive)| {
            format!(
                "  server {{ listen 127.0.0.1:{port}; listen 127.0.0.2:{port}; keepalive_timeout {keepalive}; location / {{ return 200 \"ok\\n\"; }} }}\n"
            )
        })
        .collect();
    let conf = nginx_conf(dir.path(), &servers);
    let _nginx = ns.spawn_nginx(dir.path(), &conf);
    for port in [8001, 8002, 8003] {
        ns.wait_listening(format!("127.0.0.2:{port}").parse().unwrap());
    }
    let file = dir.path().join("config.yml");
    std::fs::write(&file, config()).unwrap();
    let file = file.to_string_lossy().into_owned();
    let _exporter = ns.spawn(
        &[BIN, "--config", &file, "--web.listen-address", EXPORTER],
        &dir.path().join("exporter.log"),
    );
    let addr: SocketAddr = EXPORTER.parse().unwrap();
    ns.wait_listening(addr);
    // Two watches of the 2 s origin take about 2 x (2 s + 1 s apart), and
    // the 30 s origin is held 6 s (the proxy's 5 s and a second) each.
    let s = wait::until(Duration::from_secs(40), Duration::from_millis(500), || {
        let (_, text) = ns.http_get(addr, "/metrics").map_err(|e| e.to_string())?;
        let s = Scrape::parse(&text);
        let ready = value(&s, "badgateway_origin_keepalive_mismatch", "short") == Some(1.0)
            && value(&s, "badgateway_origin_idle_timeout_seconds", "long").is_some()
            && value(&s, "badgateway_origin_idle_timeout_seconds", "none").is_some();
        ready.then_some(s).ok_or(text)
    });
    let short = value(&s, "badgateway_origin_idle_timeout_seconds", "short").unwrap();
    assert!(
        (1.8..3.0).contains(&short),
        "short origin closed after {short} s"
    );
    assert_eq!(
        value(&s, "badgateway_origin_idle_timeout_seconds", "long"),
        Some(f64::INFINITY)
    );
    assert_eq!(
        value(&s, "badgateway_origin_keepalive_mismatch", "long"),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "badgateway_origin_idle_timeout_seconds", "none"),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "badgateway_origin_keepalive_mismatch", "none"),
        Some(0.0)
    );
    assert_eq!(
        s.get(
            "badgateway_proxy_idle_timeout_seconds",
            &[("site", "short")]
        ),
        Some(5.0)
    );
    assert_eq!(
        s.get("badgateway_proxy_idle_timeout_seconds", &[("site", "off")]),
        None
    );
    assert_eq!(
        value(&s, "badgateway_origin_idle_timeout_seconds", "off"),
        None
    );
}
