//! The origin agent's whole `/metrics`, end to end, against a golden file:
//! the real binary over the captured /proc of tests/fixtures/procfs, and a
//! captured access log written to the log it tails after it started,
//! scraped once every collector has reported and every line is read (the
//! second reading of /proc, so the CPU's share is there too). What changes
//! from run to run (durations, timestamps, the build) is masked.
//!
//! After a deliberate change to the output, write the file again with
//! `BADGATEWAY_GOLDEN_UPDATE=1 cargo test --test golden` and read the diff.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Netns;

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/agent.metrics")
}

/// Only our own series, with what varies between runs masked: collector
/// durations, timestamps, and the build's version and revision.
fn masked(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let ours = line.starts_with("badgateway_")
            || line.starts_with("# HELP badgateway_")
            || line.starts_with("# TYPE badgateway_");
        if !ours {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let varies = name.ends_with("_duration_seconds") || name.ends_with("_timestamp_seconds");
        let line = if line.starts_with('#') || !varies {
            line.to_owned()
        } else {
            let (series, _) = line.rsplit_once(' ').expect("a value");
            format!("{series} <varies>")
        };
        let line = if name == "badgateway_build_info" && !line.starts_with('#') {
            "badgateway_build_info{<the build>} 1".to_owned()
        } else {
            line
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Every enabled collector has reported (the firewall one is turned off).
fn complete(text: &str) -> bool {
    ["saturation", "processes", "connections", "access_log"]
        .iter()
        .all(|c| {
            text.lines().any(|l| {
                l.starts_with(&format!(
                    "badgateway_collector_success{{collector=\"{c}\"}}"
                ))
            })
        })
}

fn scrape_agent(ns: &Netns, dir: &Path) -> String {
    let log_lines = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/access_log/combined.log"),
    )
    .expect("the captured access log");
    fs::write(dir.join("access.log"), "").expect("create the access log");
    let config = dir.join("agent.yml");
    fs::write(
        &config,
        format!(
            "agent:
  sites: [shop]
  forwarding_ranges: [198.51.100.0/24, 2001:db8::/32]
  web_ports: [80, 443]
  processes: [nginx]
  interfaces:
    eth0: {{capacity: 1Gbit}}
  access_log:
    path: {}
    format: combined
",
            dir.join("access.log").display()
        ),
    )
    .expect("write the config");
    let listen: SocketAddr = "127.0.0.1:9503".parse().unwrap();
    let procfs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procfs");
    let (config, procfs, listen_arg) = (
        config.to_string_lossy().into_owned(),
        procfs.to_string_lossy().into_owned(),
        listen.to_string(),
    );
    let _exporter = ns.spawn(
        &[
            env!("CARGO_BIN_EXE_badgateway-exporter"),
            "--config",
            &config,
            "--web.listen-address",
            &listen_arg,
            "--path.procfs",
            &procfs,
            "--no-collector.firewall",
        ],
        &dir.join("exporter.log"),
    );
    ns.wait_listening(listen);
    let scrape = || {
        ns.http_get(listen, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let until = Instant::now() + Duration::from_secs(20);
    let mut appended = false;
    let all_read = format!(
        "badgateway_access_log_lines_total {}",
        log_lines.lines().count()
    );
    loop {
        let text = scrape();
        if complete(&text) && !appended {
            // The log is tailed from its end: lines written now are read.
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(dir.join("access.log"))
                .expect("open the access log");
            std::io::Write::write_all(&mut f, log_lines.as_bytes()).expect("append");
            appended = true;
        } else if appended && text.lines().any(|l| l == all_read) {
            return text;
        }
        assert!(
            Instant::now() < until,
            "not every collector reported within 20 s; last scrape:\n{text}\nlog:\n{}",
            fs::read_to_string(dir.join("exporter.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_metrics_match_the_golden_file() {
    let ns = Netns::new("gold");
    ns.exec(&["ip", "link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let got = masked(&scrape_agent(&ns, dir.path()));
    let path = golden_path();
    if std::env::var_os("BADGATEWAY_GOLDEN_UPDATE").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &got).expect("write the golden file");
    }
    let want = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with BADGATEWAY_GOLDEN_UPDATE=1",
            path.display()
        )
    });
    if got != want {
        let diff: Vec<String> = diff_lines(&want, &got);
        panic!(
            "/metrics differs from {} (- golden, + now):\n{}\n\
             If the change is meant, rewrite it with BADGATEWAY_GOLDEN_UPDATE=1.",
            path.display(),
            diff.join("\n")
        );
    }
}

/// The lines only in one of the two texts, marked `-` (golden) or `+` (now).
fn diff_lines(want: &str, got: &str) -> Vec<String> {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let mut out: Vec<String> = w
        .iter()
        .filter(|l| !g.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        g.iter()
            .filter(|l| !w.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}

/// The comparison can fail: one changed value shows as a difference, and
/// masking leaves values that do not vary alone.
#[test]
fn a_changed_value_is_a_difference() {
    let a =
        "badgateway_host_cpus 4\nbadgateway_collector_duration_seconds{collector=\"x\"} 0.001\n";
    let b =
        "badgateway_host_cpus 8\nbadgateway_collector_duration_seconds{collector=\"x\"} 0.002\n";
    assert_eq!(
        diff_lines(&masked(a), &masked(b)),
        ["- badgateway_host_cpus 4", "+ badgateway_host_cpus 8"]
    );
}
