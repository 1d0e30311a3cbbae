//! Reload storms against the real binary: a reload that changes nothing
//! changes nothing, a site whose settings did not change keeps its
//! schedule, and a site changed at every reload still runs on its old
//! phase.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::metrics::Scrape;
use common::origin::OriginServer;
use common::{exporter, http, http_get, wait, Proc};

/// Two sites on a 2 s interval: `late` starts half an interval in, longer
/// than the storm's gap between reloads. `mark` goes into a request header
/// of `late`, to change its settings without changing the other's.
fn config(port: u16, mark: u32) -> String {
    format!(
        "probe: {{interval: 2s, timeout: 1s, icmp: {{enabled: false}}, tcp: {{enabled: false}}}}\n\
         sites:\n\
         \x20 - name: early\n    url: http://www.example.com:{port}/\n    proxy: [127.0.0.1]\n    origin: [127.0.0.1]\n\
         \x20 - name: late\n    url: http://www.example.com:{port}/\n    proxy: [127.0.0.1]\n    origin: [127.0.0.1]\n    \
         headers: {{X-Mark: \"{mark}\"}}\n"
    )
}

fn start(file: &Path, log: &Path) -> (Proc, SocketAddr) {
    exporter::spawn(&["--config", &file.to_string_lossy()], log)
}

fn scrape(addr: SocketAddr) -> Scrape {
    Scrape::parse(&http_get(addr, "/metrics").unwrap_or_default().1)
}

fn rounds(s: &Scrape, site: &str) -> f64 {
    s.get(
        "badgateway_probes_total",
        &[("site", site), ("path", "origin")],
    )
    .unwrap_or(0.0)
}

/// Reload 5 times a second for `seconds`, calling `between` before each.
fn storm(addr: SocketAddr, seconds: u64, mut between: impl FnMut(u32)) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut i = 0;
    while Instant::now() < until {
        i += 1;
        between(i);
        let r = http::request(addr, "POST", "/-/reload", &[], None).expect("reload");
        assert_eq!(r.status, 200, "{}", r.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn both_probed(addr: SocketAddr) -> Scrape {
    wait::until(Duration::from_secs(15), Duration::from_millis(100), || {
        let s = scrape(addr);
        if rounds(&s, "early") > 0.0 && rounds(&s, "late") > 0.0 {
            Ok(s)
        } else {
            Err("both sites not probed yet".to_owned())
        }
    })
}

/// Rounds of each site during an 8 s storm of reloads; `change` says
/// whether each reload also changes the `late` site.
fn rounds_during_storm(change: bool) -> [f64; 2] {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let port = origin.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(&file, config(port, 0)).unwrap();
    let (_exporter, addr) = start(&file, &dir.path().join("exporter.log"));
    let before = both_probed(addr);
    storm(addr, 8, |i| {
        if change {
            std::fs::write(&file, config(port, i)).unwrap();
        }
    });
    let after = scrape(addr);
    ["early", "late"].map(|site| rounds(&after, site) - rounds(&before, site))
}

#[test]
fn a_storm_of_reloads_that_change_nothing_changes_nothing() {
    // 8 s at a 2 s interval: 4 rounds each, give or take one. Restarted
    // schedules would run `early` at every reload (40 times) and never
    // reach `late` (its start is 1 s in, the gap 0.2 s).
    let [early, late] = rounds_during_storm(false);
    assert!((3.0..=5.0).contains(&early), "early: {early} rounds in 8 s");
    assert!((3.0..=5.0).contains(&late), "late: {late} rounds in 8 s");
}

#[test]
fn a_site_changed_at_every_reload_still_runs_on_time() {
    // `late` restarted at its old phase each time: its rounds still come.
    let [early, late] = rounds_during_storm(true);
    assert!((3.0..=5.0).contains(&early), "early: {early} rounds in 8 s");
    assert!((3.0..=5.0).contains(&late), "late: {late} rounds in 8 s");
}
