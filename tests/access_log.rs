// Why one file: one subject, the access-log collector: appends and every
// kind of rotation on real files.
//! The access_log collector against real files in temporary directories:
//! appends, rotations of every kind, partial and oversized lines. Counts
//! are awaited by polling with a bound, never by fixed sleeps; every
//! reading also checks that no counter went backwards.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use badgateway_exporter::agent::access_log::{AccessLogCollector, POLL_INTERVAL};
use badgateway_exporter::agent::Collector;
use badgateway_exporter::config::{AccessLogConfig, LogFormat};
use common::{paths, wait};

const BOUND: Duration = Duration::from_secs(10);

/// Every series of the collector, by `name{labels}`.
type Snapshot = BTreeMap<String, f64>;

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
    collector: Option<AccessLogCollector>,
    last: Snapshot,
}

impl Log {
    fn new() -> Log {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access.log");
        Log {
            _dir: dir,
            path,
            collector: None,
            last: Snapshot::new(),
        }
    }

    fn start(&mut self, format: LogFormat, ranges: &[&str]) {
        let config = AccessLogConfig {
            path: self.path.clone(),
            peer_variable: format.default_peer().into(),
            format,
        };
        let ranges: Vec<ipnet::IpNet> = ranges.iter().map(|r| r.parse().expect("range")).collect();
        self.collector = Some(AccessLogCollector::start(&config, &ranges));
    }

    fn append(&self, text: &str) {
        append(&self.path, text);
    }

    /// The collector's series now, or its error; checks monotony.
    fn read(&mut self) -> Result<Snapshot, String> {
        let c = self.collector.as_ref().expect("started");
        let families = c.collect().map_err(|e| e.to_string())?;
        let mut now = Snapshot::new();
        for f in families {
            for m in f.get_metric() {
                let labels: Vec<String> = m
                    .get_label()
                    .iter()
                    .map(|l| format!("{}={}", l.name(), l.value()))
                    .collect();
                let key = format!("{}{{{}}}", f.name(), labels.join(","));
                now.insert(key, m.get_counter().get_value());
            }
        }
        for (k, old) in &self.last {
            let new = now.get(k).copied().unwrap_or(f64::NAN);
            assert!(new >= *old, "{k} went from {old} to {new}");
        }
        self.last = now.clone();
        Ok(now)
    }

    /// Wait until the counters are exactly `want`, then a few polls more
    /// to see that nothing is counted twice late.
    async fn expect(&mut self, want: &Want) {
        let want = want.snapshot();
        wait::until_async(BOUND, Duration::from_millis(50), || match self.read() {
            Ok(got) if got == want => Ok(()),
            got => Err(format!(
                "wanted {}\ngot {}",
                show(&want),
                got.map_or_else(|e| e, |g| show(&g))
            )),
        })
        .await;
        tokio::time::sleep(POLL_INTERVAL * 3).await;
        assert_eq!(
            self.read().map(|g| show(&g)),
            Ok(show(&want)),
            "changed later"
        );
    }

    /// Wait until `collect` fails; returns its message.
    async fn expect_error(&mut self) -> String {
        wait::until_async(BOUND, Duration::from_millis(50), || match self.read() {
            Err(e) => Ok(e),
            Ok(_) => Err("collect kept working".into()),
        })
        .await
    }
}

fn show(s: &Snapshot) -> String {
    let nonzero: Vec<String> = s
        .iter()
        .filter(|(_, v)| **v != 0.0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!("{} series, nonzero: {nonzero:#?}", s.len())
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log");
    f.write_all(text.as_bytes()).expect("write log");
}

/// One combined-format line.
fn line(addr: &str, status: u16) -> String {
    format!(
        "{addr} - - [12/May/2025:10:00:01 +0000] \"GET /x HTTP/1.1\" {status} 12 \"-\" \"test\"\n"
    )
}

fn lines(spec: &[(&str, u16, usize)]) -> String {
    spec.iter()
        .flat_map(|(a, s, n)| std::iter::repeat_n(line(a, *s), *n))
        .collect()
}

/// The expected counters; every unnamed response series is 0.
#[derive(Default, Clone)]
struct Want {
    responses: Vec<(&'static str, &'static str, u64)>,
    lines: u64,
    malformed: u64,
    rotations: u64,
}

impl Want {
    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new();
        for class in ["forwarding", "other"] {
            for status in [
                "403", "429", "444", "499", "500", "502", "503", "504", "1xx", "2xx", "3xx", "4xx",
                "5xx",
            ] {
                let n = self
                    .responses
                    .iter()
                    .filter(|(c, st, _)| *c == class && *st == status)
                    .map(|r| r.2)
                    .sum::<u64>();
                let key = format!(
                    "badgateway_access_log_responses_total{{class={class},status={status}}}"
                );
                s.insert(key, n as f64);
            }
        }
        for (name, n) in [
            ("lines", self.lines),
            ("malformed_lines", self.malformed),
            ("rotations", self.rotations),
        ] {
            s.insert(format!("badgateway_access_log_{name}_total{{}}"), n as f64);
        }
        s
    }
}

const FWD: &[&str] = &["192.0.2.0/24", "2001:db8:f::/48"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_what_is_appended_after_start() {
    let mut log = Log::new();
    log.append(&lines(&[("192.0.2.1", 403, 5), ("198.51.100.1", 200, 5)]));
    log.start(LogFormat::Combined, FWD);
    log.append(&lines(&[
        ("192.0.2.1", 403, 2),
        ("192.0.2.77", 429, 1),
        ("198.51.100.1", 200, 3),
        ("192.0.2.1", 503, 1),
        ("198.51.100.2", 404, 1),
        ("198.51.100.3", 502, 1),
        ("192.0.2.255", 200, 1),
        ("198.51.100.3", 301, 1),
        ("198.51.100.3", 101, 1),
        ("192.0.2.9", 520, 1),
    ]));
    let want = Want {
        responses: vec![
            ("forwarding", "403", 2),
            ("forwarding", "429", 1),
            ("forwarding", "503", 1),
            ("forwarding", "2xx", 1),
            ("forwarding", "5xx", 1),
            ("other", "2xx", 3),
            ("other", "4xx", 1),
            ("other", "502", 1),
            ("other", "3xx", 1),
            ("other", "1xx", 1),
        ],
        lines: 13,
        ..Want::default()
    };
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_with_ipv6_escapes_and_malformed_lines() {
    let mut log = Log::new();
    log.append("");
    log.start(LogFormat::Combined, FWD);
    log.append(&paths::read("tests/fixtures/access_log/combined.log"));
    let want = Want {
        responses: vec![
            ("forwarding", "403", 2),
            ("forwarding", "429", 1),
            ("forwarding", "503", 1),
            ("forwarding", "2xx", 1),
            ("forwarding", "4xx", 1),
            ("forwarding", "504", 1),
            ("forwarding", "444", 1),
            ("other", "2xx", 2),
            ("other", "3xx", 1),
            ("other", "4xx", 1),
            ("other", "502", 1),
            ("other", "499", 1),
            ("other", "500", 1),
        ],
        lines: 18,
        malformed: 3,
        ..Want::default()
    };
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_loses_and_repeats_nothing() {
    let mut log = Log::new();
    log.append("");
    log.start(LogFormat::Combined, FWD);
    log.append(&lines(&[("192.0.2.1", 403, 3)]));
    let mut want = Want {
        responses: vec![("forwarding", "403", 3)],
        lines: 3,
        ..Want::default()
    };
    log.expect(&want).await;
    // logrotate's default: rename, create anew; the server writes into the
    // renamed file until it reopens its log.
    let mut server = OpenOptions::new()
        .append(true)
        .open(&log.path)
        .expect("open");
    fs::rename(&log.path, log.path.with_extension("log.1")).expect("rename");
    server
        .write_all(lines(&[("192.0.2.1", 429, 2)]).as_bytes())
        .expect("write");
    File::create(&log.path).expect("create");
    log.append(&lines(&[("198.51.100.1", 200, 4)]));
    want.responses
        .extend([("forwarding", "429", 2), ("other", "2xx", 4)]);
    want.lines += 6;
    want.rotations = 1;
    log.expect(&want).await;
    // The new file is being read by now; the old one still is too.
    server
        .write_all(lines(&[("192.0.2.1", 504, 1)]).as_bytes())
        .expect("write");
    want.responses.push(("forwarding", "504", 1));
    want.lines += 1;
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_restarts_from_zero() {
    let mut log = Log::new();
    log.append("");
    log.start(LogFormat::Combined, FWD);
    log.append(&lines(&[("192.0.2.1", 200, 5)]));
    let mut want = Want {
        responses: vec![("forwarding", "2xx", 5)],
        lines: 5,
        ..Want::default()
    };
    log.expect(&want).await;
    // Truncated, then fewer bytes than before.
    OpenOptions::new()
        .write(true)
        .open(&log.path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    log.append(&lines(&[("192.0.2.1", 503, 2)]));
    want.responses.push(("forwarding", "503", 2));
    want.lines += 2;
    want.rotations += 1;
    log.expect(&want).await;
    // Truncated and at once written past the old position: only the bytes
    // before that position tell.
    OpenOptions::new()
        .write(true)
        .open(&log.path)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    log.append(&lines(&[("198.51.100.1", 429, 6)]));
    want.responses.push(("other", "429", 6));
    want.lines += 6;
    want.rotations += 1;
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_that_vanishes_and_comes_back() {
    let mut log = Log::new();
    log.append("");
    log.start(LogFormat::Combined, FWD);
    log.append(&lines(&[("192.0.2.1", 403, 2)]));
    let mut want = Want {
        responses: vec![("forwarding", "403", 2)],
        lines: 2,
        ..Want::default()
    };
    log.expect(&want).await;
    fs::remove_file(&log.path).expect("remove");
    let error = log.expect_error().await;
    assert!(error.contains(&log.path.display().to_string()), "{error}");
    log.append(&lines(&[("192.0.2.1", 403, 1), ("198.51.100.1", 200, 1)]));
    want.responses
        .extend([("forwarding", "403", 1), ("other", "2xx", 1)]);
    want.lines += 2;
    want.rotations = 1;
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_at_start_is_an_error_then_read_from_its_start() {
    let mut log = Log::new();
    log.start(LogFormat::Common, FWD);
    let error = log.read().expect_err("missing file");
    assert!(error.contains(&log.path.display().to_string()), "{error}");
    log.append("192.0.2.3 - - [12/May/2025:10:00:01 +0000] \"GET / HTTP/1.0\" 403 -\n");
    let want = Want {
        responses: vec![("forwarding", "403", 1)],
        lines: 1,
        ..Want::default()
    };
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_line_waits_for_its_newline() {
    let mut log = Log::new();
    log.append(
        "198.51.100.1 - - [t] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n198.51.100.1 - - [t] \"GE",
    );
    log.start(LogFormat::Combined, FWD);
    // The fragment at the end at startup is history: not counted.
    log.append("T / HTTP/1.1\" 200 1 \"-\" \"x\"\n");
    log.append("192.0.2.4 - - [12/May/2025:10:00:01 +0000] \"GET / HTTP/1.1\" 4");
    log.expect(&Want::default()).await;
    log.append("29 0 \"-\" \"x\"\n");
    let want = Want {
        responses: vec![("forwarding", "429", 1)],
        lines: 1,
        ..Want::default()
    };
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_lines() {
    let mut log = Log::new();
    log.append("");
    log.start(LogFormat::Combined, FWD);
    log.append("garbage\n\n192.0.2.1 - - [t] \"GET /\" abc 1\n");
    // A valid line with a 1 MB URL, written in pieces across polls.
    let head = "192.0.2.1 - - [12/May/2025:10:00:01 +0000] \"GET /";
    log.append(head);
    let chunk = "a".repeat(64 * 1024);
    for _ in 0..16 {
        log.append(&chunk);
    }
    log.append(" HTTP/1.1\" 200 0 \"-\" \"x\"\n");
    // A 20 KiB line that arrives whole is just as oversized.
    log.append(&line(&format!("192.0.2.1{}", " ".repeat(20 * 1024)), 200));
    log.append(&line("192.0.2.1", 403));
    let want = Want {
        responses: vec![("forwarding", "403", 1)],
        lines: 6,
        malformed: 5,
        ..Want::default()
    };
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_format_and_no_ranges() {
    let mut log = Log::new();
    log.append("");
    log.start(
        LogFormat::Custom(
            "$time_iso8601 $remote_addr \"$request\" ${status} rt=$request_time".into(),
        ),
        &[],
    );
    log.append(concat!(
        "2025-05-12T10:00:01+00:00 192.0.2.1 \"GET / HTTP/1.1\" 403 rt=0.001\n",
        "2025-05-12T10:00:01+00:00 2001:db8:f::1 \"GET / HTTP/1.1\" 200 rt=0.001\n",
        "2025-05-12T10:00:01+00:00 192.0.2.1 - \"GET / HTTP/1.1\" 403 rt=0.001\n",
    ));
    // No forwarding ranges: everything is `other`.
    let want = Want {
        responses: vec![("other", "403", 1), ("other", "2xx", 1)],
        lines: 3,
        malformed: 1,
        ..Want::default()
    };
    log.expect(&want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_custom_format_is_reported() {
    let mut log = Log::new();
    log.append("");
    log.start(LogFormat::Custom("$remote_addr$status".into()), FWD);
    let error = log.read().expect_err("bad format");
    assert!(error.contains("$remote_addr"), "{error}");
}
