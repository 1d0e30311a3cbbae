//! `--shard I/N`: N probers given one configuration split its sites, each
//! site probed by exactly one of them; a bad shard is refused at start.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::metrics::Scrape;
use common::origin::OriginServer;
use common::paths::BIN;
use common::{exporter, http_get, wait};

const SITES: usize = 30;
const SHARDS: usize = 3;

fn config(port: u16) -> String {
    let mut text = String::from(
        "probe: {interval: 2s, timeout: 1s, icmp: {enabled: false}, tcp: {enabled: false}}\nsites:\n",
    );
    for i in 0..SITES {
        text.push_str(&format!(
            "  - name: site-{i}\n    url: http://www.example.com:{port}/\n    \
             proxy: [127.0.0.1]\n    origin: [127.0.0.1]\n"
        ));
    }
    text
}

/// The sites a prober has finished a round of.
fn probed(addr: SocketAddr) -> BTreeSet<String> {
    let (_, body) = http_get(addr, "/metrics").unwrap_or_default();
    Scrape::parse(&body)
        .find("badgateway_forwarding_ip_blocked", &[])
        .iter()
        .filter_map(|s| s.labels.get("site").cloned())
        .collect()
}

#[test]
fn shards_split_the_sites_each_in_exactly_one() {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(&file, config(origin.addr.port())).unwrap();
    let mut probers = Vec::new();
    for i in 0..SHARDS {
        probers.push(exporter::spawn(
            &[
                "--config",
                &file.to_string_lossy(),
                "--shard",
                &format!("{i}/{SHARDS}"),
            ],
            &dir.path().join(format!("shard{i}.log")),
        ));
    }
    // Every shard has finished a round of each of its sites (the spread
    // puts them all within one interval).
    let shares: Vec<BTreeSet<String>> = probers
        .iter()
        .map(|(_, addr)| {
            wait::until(Duration::from_secs(20), Duration::from_millis(200), || {
                let (_, body) = http_get(*addr, "/metrics").unwrap_or_default();
                let scrape = Scrape::parse(&body);
                let want = scrape.get("badgateway_sites", &[]).unwrap_or(-1.0);
                let got = probed(*addr);
                if want >= 0.0 && got.len() as f64 == want {
                    Ok(got)
                } else {
                    Err(format!("{} of {want} sites probed", got.len()))
                }
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for (i, share) in shares.iter().enumerate() {
        assert!(!share.is_empty(), "shard {i} has no site");
        for site in share {
            assert!(all.insert(site.clone()), "{site} in two shards");
        }
    }
    assert_eq!(all.len(), SITES, "{all:?}");
}

#[test]
fn a_bad_shard_is_refused_at_start() {
    for (shard, why) in [("3/3", "I must be below N"), ("1", "expected I/N")] {
        let out = Command::new(BIN).args(["--shard", shard]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{shard}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--shard") && err.contains(why),
            "{shard}: {err}"
        );
    }
}
