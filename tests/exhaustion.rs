//! The prober at the end of its own resources: the real binary under a low
//! file-descriptor limit, probing a healthy but slow origin with more
//! requests at once than it has descriptors for. What it cannot send is
//! its own fault, never the site's.

mod common;

use std::time::Duration;

use common::metrics::Scrape;
use common::origin::OriginServer;
use common::{exporter, http_get, wait};

#[test]
fn a_prober_out_of_descriptors_blames_itself() {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    // Each request holds its socket for a while: the round needs them all
    // at once.
    origin.set(200, Duration::from_millis(1500));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(
        &file,
        format!(
            "probe: {{interval: 4s, timeout: 3s, icmp: {{enabled: false}}, tcp: {{enabled: false}}}}\n\
             sites:\n  - name: shop\n    url: http://www.example.com:{}/\n    \
             proxy: [127.0.0.1]\n    origin: [127.0.0.1]\n    proxy_requests: 60\n",
            origin.addr.port()
        ),
    )
    .unwrap();
    let (_exporter, addr) = exporter::spawn_with(
        &["prlimit", "--nofile=40:40"],
        &["--config", &file.to_string_lossy()],
        &dir.path().join("exporter.log"),
    );
    let scrape = wait::until(Duration::from_secs(30), Duration::from_millis(200), || {
        let (_, body) = http_get(addr, "/metrics").unwrap_or_default();
        let s = Scrape::parse(&body);
        let local = [
            ("site", "shop"),
            ("path", "proxy"),
            ("error", "local_resource"),
        ];
        match s.get("badgateway_probe_error", &local) {
            Some(1.0) => Ok(s),
            _ => Err(format!("no local_resource error yet:\n{body}")),
        }
    });
    // Ours: the vantage reads as cut off and the probes collector fails.
    assert_eq!(scrape.get("badgateway_vantage_up", &[]), Some(0.0));
    assert_eq!(
        scrape.get("badgateway_collector_success", &[("collector", "probes")]),
        Some(0.0)
    );
    // Not the site's: the requests that never left are not counted as
    // failures, and the origin answered every one that did.
    let proxy = [("site", "shop"), ("path", "proxy")];
    let failed: f64 = scrape
        .find("badgateway_probe_failures_total", &proxy)
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(failed, 0.0);
    let sent = scrape.get("badgateway_probes_total", &proxy).unwrap_or(0.0);
    assert!(sent < 60.0, "{sent} requests counted of 60 in a round");
    assert_eq!(
        scrape.get("badgateway_forwarding_ip_blocked", &[("site", "shop")]),
        Some(0.0)
    );
}
