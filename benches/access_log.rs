//! Benchmark: access-log lines per second on one core, combined format.
//!
//!   cargo bench --bench access_log [-- LINES]      (default 1,000,000)
//!
//! Prints, over the same in-memory buffer, two anchors that any machine
//! can be compared by (memchr newline count, `str::lines().count()`), the
//! parser alone (split + parse + classify + count), and the whole tailer
//! reading the same bytes from a file (page cache). Best of 5 runs each.

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use badgateway_exporter::agent::access_log::count::{LineCounter, Sink};
use badgateway_exporter::agent::access_log::parse::LineFormat;
use badgateway_exporter::agent::access_log::tail::Tailer;
use badgateway_exporter::config::LogFormat;

const RUNS: usize = 5;

/// Lines like a busy site's: a third from the forwarding ranges, some
/// IPv6, mostly 2xx with refusals and errors mixed in.
fn make_log(lines: usize) -> Vec<u8> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let statuses = [200, 200, 200, 200, 304, 404, 403, 429, 503, 502, 301, 200];
    let paths = [
        "/",
        "/index.html",
        "/api/v1/items?page=3&sort=desc",
        "/static/app.3f9c2b.js",
        "/login",
    ];
    let mut out = Vec::with_capacity(lines * 180);
    for _ in 0..lines {
        let r = next();
        let addr = match r % 6 {
            0 | 1 => format!("192.0.2.{}", r % 251),
            2 => format!("2001:db8:{:x}::{:x}", r % 0xffff, (r >> 16) % 0xffff),
            _ => format!("198.51.{}.{}", (r >> 8) % 256, r % 251),
        };
        let status = statuses[(r >> 20) as usize % statuses.len()];
        let path = paths[(r >> 28) as usize % paths.len()];
        let _ = writeln!(
            out,
            "{addr} - - [12/May/2025:10:{:02}:{:02} +0000] \"GET {path} HTTP/1.1\" {status} {} \"https://www.example.com/\" \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"",
            (r >> 32) % 60,
            (r >> 40) % 60,
            (r >> 44) % 100_000,
        );
    }
    out
}

/// The best time of `RUNS`, and the last result.
fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        last = Some(black_box(f()));
        best = best.min(started.elapsed());
    }
    (best, last.expect("RUNS > 0"))
}

fn counter() -> LineCounter {
    let format = LineFormat::new(&LogFormat::Combined, "remote_addr").expect("combined compiles");
    let ranges = ["192.0.2.0/24".parse().expect("range")];
    LineCounter::new(format, &ranges)
}

fn report(what: &str, lines: usize, took: Duration, anchor: Option<Duration>) {
    let per_sec = lines as f64 / took.as_secs_f64();
    let ratio = anchor.map_or(String::new(), |a| {
        format!(
            "  ({:.1}x the memchr anchor's time)",
            took.as_secs_f64() / a.as_secs_f64()
        )
    });
    println!(
        "{what:<40} {:>8.2} M lines/s  {:>8.1} ms{ratio}",
        per_sec / 1e6,
        took.as_secs_f64() * 1e3
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let log = make_log(n);
    println!(
        "{n} combined lines, {:.0} bytes/line, best of {RUNS}, one core",
        log.len() as f64 / n as f64
    );

    let (memchr_time, count) = best(|| memchr::memchr_iter(b'\n', &log).count());
    assert_eq!(count, n);
    report("anchor: memchr newline count", n, memchr_time, None);
    let text = std::str::from_utf8(&log).expect("utf-8");
    let (lines_time, count) = best(|| text.lines().count());
    assert_eq!(count, n);
    report(
        "anchor: str::lines().count()",
        n,
        lines_time,
        Some(memchr_time),
    );

    let (parse_time, counts) = best(|| {
        let mut c = counter();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &log) {
            c.line(&log[start..nl]);
            start = nl + 1;
        }
        c.take()
    });
    assert_eq!(counts.lines, n as u64);
    assert_eq!(counts.malformed, 0, "the generated lines all parse");
    report("parse + classify + count", n, parse_time, Some(memchr_time));

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    // Time only the tailer, not writing the file.
    let (mut tail_best, mut tail_lines) = (Duration::MAX, 0);
    for _ in 0..RUNS {
        std::fs::write(&path, b"").expect("create");
        let (mut tailer, problem) = Tailer::new(&path);
        assert!(problem.is_none(), "{problem:?}");
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&log))
            .expect("write");
        let mut c = counter();
        let started = Instant::now();
        while tailer.poll(&mut c).more {}
        tail_best = tail_best.min(started.elapsed());
        tail_lines = c.counts().lines;
    }
    assert_eq!(tail_lines, n as u64);
    report(
        "tailer: read file + parse + count",
        n,
        tail_best,
        Some(memchr_time),
    );
}
