//! Host saturation: CPU and memory usage, load, and per-interface traffic
//! against the configured link capacity. The seed rule of thumb: above 90%
//! for a long time means the web service is in trouble.
//!
//! Usage ratios come from cumulative counters: each scrape compares with the
//! previous one (the first with a reading taken at start), never one racy
//! sample.
//!
//! "For long" is measured here, where the readings are: for each resource,
//! how long its usage has stayed above the saturation threshold, reading
//! after reading (`badgateway_host_saturated_seconds`,
//! `badgateway_network_saturated_seconds`). `diagnose` and the alert rules
//! both judge that one number against the same durations, so a moment of
//! full CPU is never named saturation by one and not by the other.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use procfs_core::net::InterfaceDeviceStatus;
use procfs_core::{KernelStats, LoadAverage};
use prometheus::proto::MetricFamily;

use super::{procfs, Collector, CollectorError};
use crate::config::InterfaceConfig;
use crate::diagnosis::thresholds::SATURATION;
use crate::exposition::names;
use crate::exposition::Family;

pub struct Saturation {
    procfs: PathBuf,
    /// Configured interfaces and their capacity; empty: every interface
    /// but loopback, without a usage ratio.
    interfaces: BTreeMap<String, InterfaceConfig>,
    last: Mutex<Last>,
}

/// Bytes received and sent per interface, at one moment.
type NetReading = (Instant, BTreeMap<String, (u64, u64)>);

#[derive(Default)]
struct Last {
    cpu: Option<CpuReading>,
    cpu_ratio: Option<f64>,
    net: Option<NetReading>,
    /// Per (interface, direction): the last ratio computed.
    net_ratio: BTreeMap<(String, &'static str), f64>,
    /// Since when each resource ("cpu", "memory", "net/<interface>/<direction>")
    /// has been above the threshold, reading after reading.
    above_since: BTreeMap<String, Instant>,
    missing_logged: HashSet<String>,
}

#[derive(Clone, Copy)]
struct CpuReading {
    busy: u64,
    total: u64,
    cpus: usize,
    at: Instant,
}

impl Last {
    /// A resource read `ratio` over a window that began at `from`: above
    /// the threshold, it has been since the run's first window began;
    /// at or below it, the run ends.
    fn held(&mut self, resource: String, ratio: f64, from: Instant) {
        if ratio > SATURATION {
            self.above_since.entry(resource).or_insert(from);
        } else {
            self.above_since.remove(&resource);
        }
    }

    fn held_seconds(&self, resource: &str, now: Instant) -> f64 {
        self.above_since
            .get(resource)
            .map_or(0.0, |since| now.duration_since(*since).as_secs_f64())
    }
}

impl Saturation {
    pub fn new(procfs: PathBuf, interfaces: BTreeMap<String, InterfaceConfig>) -> Saturation {
        let s = Saturation {
            procfs,
            interfaces,
            last: Mutex::new(Last::default()),
        };
        // A first reading, so the first scrape already has a window.
        if let Ok(cpu) = s.cpu() {
            s.lock().cpu = Some(cpu);
        }
        if let Ok(net) = s.net() {
            s.lock().net = Some((Instant::now(), net));
        }
        s
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Last> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cpu(&self) -> Result<CpuReading, CollectorError> {
        let stat: KernelStats = procfs::read_si(&self.procfs, "stat")?;
        let t = &stat.total;
        // Saturating: the kernel's counters are far from 2^64, a corrupt
        // file may not be.
        let sum = |v: &[u64]| v.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let busy = sum(&[
            t.user,
            t.nice,
            t.system,
            t.irq.unwrap_or(0),
            t.softirq.unwrap_or(0),
            t.steal.unwrap_or(0),
        ]);
        Ok(CpuReading {
            busy,
            total: sum(&[busy, t.idle, t.iowait.unwrap_or(0)]),
            cpus: stat.cpu_time.len(),
            at: Instant::now(),
        })
    }

    fn net(&self) -> Result<BTreeMap<String, (u64, u64)>, CollectorError> {
        let dev: InterfaceDeviceStatus = procfs::read(&self.procfs, "net/dev")?;
        Ok(dev
            .0
            .into_values()
            .filter(|d| {
                if self.interfaces.is_empty() {
                    d.name != "lo"
                } else {
                    self.interfaces.contains_key(&d.name)
                }
            })
            .map(|d| (d.name, (d.recv_bytes, d.sent_bytes)))
            .collect())
    }
}

impl Collector for Saturation {
    /// Reads CPU, memory, load and traffic, updates the windows and the
    /// saturation runs, and reports, in this order: CPU usage, memory usage,
    /// how long CPU and memory have been saturated, the load averages, the
    /// traffic counters, the links' capacity, usage and saturation, and the
    /// CPU count.
    fn collect(&self) -> Result<Vec<MetricFamily>, CollectorError> {
        let cpu = self.cpu()?;
        let mem = Memory::read(&self.procfs)?;
        let load: LoadAverage = procfs::read(&self.procfs, "loadavg")?;
        let net = self.net()?;
        let now = Instant::now();
        let mut last = self.lock();

        let mut out = Vec::new();
        out.extend(last.cpu_usage(cpu));
        let memory_ratio = memory_ratio(&mem);
        out.push(last.memory_usage(memory_ratio, now));
        out.push(last.host_saturated(memory_ratio.is_some(), now));
        out.extend(load_averages(&load));
        out.extend(traffic(&net));
        out.extend(self.links(&mut last, net, now));
        let mut cpus = Family::gauge(names::HOST_CPUS, "CPUs the kernel reports.");
        cpus.push(&[], cpu.cpus as f64);
        out.push(cpus.into_family());
        Ok(out)
    }
}

impl Last {
    /// CPU: the share of ticks spent busy since the previous reading.
    /// Within one tick there is no new window: keep the last ratio. No
    /// family before the first window.
    fn cpu_usage(&mut self, cpu: CpuReading) -> Option<MetricFamily> {
        if let Some(prev) = self.cpu {
            let total = cpu.total.saturating_sub(prev.total);
            if total > 0 {
                let busy = cpu.busy.saturating_sub(prev.busy);
                let ratio = (busy as f64 / total as f64).clamp(0.0, 1.0);
                self.cpu_ratio = Some(ratio);
                self.held("cpu".into(), ratio, prev.at);
                self.cpu = Some(cpu);
            }
        } else {
            self.cpu = Some(cpu);
        }
        let ratio = self.cpu_ratio?;
        let mut f = Family::gauge(
            names::HOST_CPU_USAGE_RATIO,
            "Share of CPU time spent busy (not idle or waiting for I/O) since the previous scrape, 0..1.",
        );
        f.push(&[], ratio);
        Some(f.into_family())
    }

    /// Memory: the ratio read now (memory has no window), empty when the
    /// kernel reports no memory.
    fn memory_usage(&mut self, ratio: Option<f64>, now: Instant) -> MetricFamily {
        let mut f = Family::gauge(
            names::HOST_MEMORY_USAGE_RATIO,
            "Share of memory not available to new work: 1 - MemAvailable/MemTotal, 0..1.",
        );
        if let Some(ratio) = ratio {
            f.push(&[], ratio);
            self.held("memory".into(), ratio, now);
        }
        f.into_family()
    }

    /// How long CPU and memory have been saturated, for each that has a
    /// usage ratio.
    fn host_saturated(&self, memory: bool, now: Instant) -> MetricFamily {
        let mut held = Family::gauge(
            names::HOST_SATURATED_SECONDS,
            "How long the resource's usage has stayed above 90%, reading after reading (0: not above now).",
        );
        if self.cpu_ratio.is_some() {
            held.push(&[("resource", "cpu")], self.held_seconds("cpu", now));
        }
        if memory {
            held.push(&[("resource", "memory")], self.held_seconds("memory", now));
        }
        held.into_family()
    }

    /// One link direction's window, from the previous reading at `at`:
    /// its usage ratio against `bytes_per_second`, and the saturation run.
    fn link_window(
        &mut self,
        name: &str,
        direction: &'static str,
        bytes: (u64, u64),
        at: Instant,
        seconds: f64,
        bytes_per_second: f64,
    ) {
        let (now_bytes, prev_bytes) = bytes;
        let rate = now_bytes.saturating_sub(prev_bytes) as f64 / seconds;
        let ratio = rate / bytes_per_second;
        self.net_ratio.insert((name.to_owned(), direction), ratio);
        self.held(format!("net/{name}/{direction}"), ratio, at);
    }
}

/// What [`memory_ratio`] needs of /proc/meminfo, in bytes.
#[derive(Debug, PartialEq, Eq)]
struct Memory {
    total: u64,
    /// MemAvailable, or on kernels without it MemFree + Buffers + Cached.
    available: u64,
}

impl Memory {
    /// Read by hand rather than with procfs-core's `Meminfo`, which panics
    /// on a value whose kB overflow 64 bits in bytes, and on a name that
    /// ends in a non-ASCII character.
    fn read(root: &std::path::Path) -> Result<Memory, CollectorError> {
        // The kernel writes about 1.5 KiB.
        let text = procfs::read_text(root, "meminfo", 1 << 20)?;
        Memory::parse(&text).map_err(|e| {
            CollectorError::new(format!("parsing {}: {e}", root.join("meminfo").display()))
        })
    }

    /// `Name:   value [kB]` lines; lines of other names are not looked at.
    fn parse(text: &str) -> Result<Memory, String> {
        let mut fields: [Option<u64>; 5] = [None; 5];
        const NAMES: [&str; 5] = ["MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached"];
        for line in text.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let Some(i) = NAMES.iter().position(|n| *n == name) else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let value = words
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{name}: not a number: {rest:?}"))?;
            let bytes = match words.next() {
                None => Some(value),
                Some("kB") => value.checked_mul(1024),
                Some(unit) => return Err(format!("{name}: unknown unit {unit:?}")),
            };
            fields[i] = Some(bytes.ok_or_else(|| format!("{name}: {value} kB is too large"))?);
        }
        let [total, available, free, buffers, cached] = fields;
        let total = total.ok_or("no MemTotal")?;
        let available = match (available, free, buffers, cached) {
            (Some(a), ..) => a,
            (None, Some(f), Some(b), Some(c)) => f.saturating_add(b).saturating_add(c),
            _ => return Err("neither MemAvailable nor MemFree, Buffers and Cached".into()),
        };
        Ok(Memory { total, available })
    }
}

/// 1 - MemAvailable/MemTotal (free, cached and buffers on kernels without
/// MemAvailable); `None` when MemTotal is 0.
fn memory_ratio(mem: &Memory) -> Option<f64> {
    (mem.total > 0).then(|| 1.0 - (mem.available as f64 / mem.total as f64).clamp(0.0, 1.0))
}

/// The 1, 5 and 15 minute load averages.
fn load_averages(load: &LoadAverage) -> Vec<MetricFamily> {
    [
        (names::HOST_LOAD1, load.one, "Load average over 1 minute."),
        (names::HOST_LOAD5, load.five, "Load average over 5 minutes."),
        (
            names::HOST_LOAD15,
            load.fifteen,
            "Load average over 15 minutes.",
        ),
    ]
    .into_iter()
    .map(|(name, value, help)| {
        let mut f = Family::gauge(name, help);
        // Two decimals, as the kernel writes it, without f32 noise.
        f.push(&[], (f64::from(value) * 100.0).round() / 100.0);
        f.into_family()
    })
    .collect()
}

/// Bytes received and sent, per interface read.
fn traffic(net: &BTreeMap<String, (u64, u64)>) -> [MetricFamily; 2] {
    let mut rx = Family::counter(
        names::NETWORK_RECEIVE_BYTES_TOTAL,
        "Bytes received on the interface.",
    );
    let mut tx = Family::counter(
        names::NETWORK_TRANSMIT_BYTES_TOTAL,
        "Bytes sent on the interface.",
    );
    for (name, (r, t)) in net {
        rx.push(&[("interface", name)], *r as f64);
        tx.push(&[("interface", name)], *t as f64);
    }
    [rx.into_family(), tx.into_family()]
}

/// The families about configured links, filled by [`Saturation::links`].
struct LinkFamilies {
    capacity: Family,
    usage: Family,
    held: Family,
}

impl LinkFamilies {
    fn new() -> LinkFamilies {
        LinkFamilies {
            capacity: Family::gauge(
                names::NETWORK_CAPACITY_BYTES_PER_SECOND,
                "The configured capacity of the interface's link.",
            ),
            usage: Family::gauge(
                names::NETWORK_USAGE_RATIO,
                "Traffic since the previous scrape as a share of the configured capacity, per direction, 0..1 (above 1 when the capacity is set too low).",
            ),
            held: Family::gauge(
                names::NETWORK_SATURATED_SECONDS,
                "How long the interface's traffic has stayed above 90% of its configured capacity, per direction, reading after reading (0: not above now).",
            ),
        }
    }

    /// The interface's last usage ratio and saturation run, per direction
    /// that has one.
    fn push_usage(&mut self, last: &Last, name: &str, now: Instant) {
        for direction in DIRECTIONS {
            if let Some(ratio) = last.net_ratio.get(&(name.to_owned(), direction)) {
                let labels = [("interface", name), ("direction", direction)];
                self.usage.push(&labels, *ratio);
                let resource = format!("net/{name}/{direction}");
                self.held.push(&labels, last.held_seconds(&resource, now));
            }
        }
    }

    fn into_families(self) -> [MetricFamily; 3] {
        [
            self.capacity.into_family(),
            self.usage.into_family(),
            self.held.into_family(),
        ]
    }
}

/// A link's directions, in the order of the (received, sent) pairs.
const DIRECTIONS: [&str; 2] = ["receive", "transmit"];

/// Windows shorter than this are too short to measure traffic over.
const MIN_WINDOW_SECONDS: f64 = 0.1;

impl Saturation {
    /// Per configured interface: its capacity, and per direction the usage
    /// ratio over the window since the previous reading and how long it has
    /// been saturated. A configured interface missing from `net/dev` is
    /// logged once. `net` becomes the previous reading, unless this window
    /// was too short to use.
    fn links(
        &self,
        last: &mut Last,
        net: BTreeMap<String, (u64, u64)>,
        now: Instant,
    ) -> [MetricFamily; 3] {
        let mut families = LinkFamilies::new();
        let previous = last.net.take();
        for (name, iface) in &self.interfaces {
            let bytes_per_second = iface.capacity_bits_per_second as f64 / 8.0;
            families
                .capacity
                .push(&[("interface", name)], bytes_per_second);
            let Some(&current) = net.get(name) else {
                if last.missing_logged.insert(name.clone()) {
                    tracing::warn!(interface = %name, "configured interface not found in net/dev");
                }
                continue;
            };
            if let Some((at, prev)) = &previous {
                let seconds = now.duration_since(*at).as_secs_f64();
                if let (Some(&prev), true) = (prev.get(name), seconds >= MIN_WINDOW_SECONDS) {
                    let pairs = [(current.0, prev.0), (current.1, prev.1)];
                    for (direction, bytes) in DIRECTIONS.into_iter().zip(pairs) {
                        last.link_window(name, direction, bytes, *at, seconds, bytes_per_second);
                    }
                }
            }
            families.push_usage(last, name, now);
        }
        // Keep the older reading when this window was too short to use.
        let keep_previous = previous
            .as_ref()
            .is_some_and(|(at, _)| now.duration_since(*at).as_secs_f64() < MIN_WINDOW_SECONDS);
        last.net = if keep_previous {
            previous
        } else {
            Some((now, net))
        };
        families.into_families()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_with_and_without_mem_available() {
        let text = "MemTotal:       2000 kB\nMemFree:         500 kB\nMemAvailable:   1500 kB\n\
                    Buffers:          10 kB\nCached:          90 kB\nHugePages_Total:       0\n";
        let m = Memory::parse(text).unwrap();
        assert_eq!((m.total, m.available), (2000 * 1024, 1500 * 1024));
        assert_eq!(memory_ratio(&m), Some(0.25));
        let old = "MemTotal: 2000 kB\nMemFree: 500 kB\nBuffers: 10 kB\nCached: 90 kB\n";
        assert_eq!(Memory::parse(old).unwrap().available, 600 * 1024);
        assert!(Memory::parse("MemFree: 500 kB\n").is_err());
        assert!(Memory::parse("MemTotal: 2000 kB\n").is_err());
        assert!(Memory::parse("MemTotal: many kB\nMemAvailable: 1 kB\n").is_err());
    }

    /// The fixture procfs tree with `rel` replaced by `content`.
    fn procfs_with(rel: &str, content: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/procfs");
        for f in ["stat", "meminfo", "loadavg", "net/dev"] {
            let to = dir.path().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(fixtures.join(f), to).unwrap();
        }
        std::fs::write(dir.path().join(rel), content).unwrap();
        dir
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/procfs.rs`): procfs-core's
    /// `Meminfo` panicked multiplying a value this large by 1024 (with
    /// overflow checks; it wrapped without). Reading its code showed the
    /// second: it panicked on a field name ending in a multi-byte
    /// character.
    #[test]
    fn meminfo_values_too_large_and_odd_names_are_errors() {
        let big = "MemTotal: 17777777777777771710 kB\nMemAvailable: 1 kB\n";
        let root = procfs_with("meminfo", big);
        let s = Saturation::new(root.path().to_path_buf(), BTreeMap::new());
        let e = s.collect().expect_err("an error");
        assert!(
            e.to_string()
                .contains("MemTotal: 17777777777777771710 kB is too large"),
            "{e}"
        );
        let odd = "MemTotal: 4 kB\nMemAvailable: 1 kB\n\u{e9}: 1 kB\n";
        let root = procfs_with("meminfo", odd);
        let s = Saturation::new(root.path().to_path_buf(), BTreeMap::new());
        assert!(s.collect().is_ok());
    }

    /// Replayed through the procfs fuzz target after reading the code (the
    /// fuzzer had not reached numbers this large): summing the CPU
    /// counters overflowed.
    #[test]
    fn cpu_counters_near_2_pow_64_do_not_overflow() {
        let stat = "cpu  18446744073709551615 18446744073709551615 1 1 1 1 1 1 0 0\n\
                    cpu0 1 1 1 1 1 1 1 1 0 0\nctxt 1\nbtime 1\nprocesses 1\n";
        let root = procfs_with("stat", stat);
        let s = Saturation::new(root.path().to_path_buf(), BTreeMap::new());
        assert!(s.collect().is_ok());
    }
}
