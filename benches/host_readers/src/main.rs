//! One "reading" is what the agent's saturation and processes collectors
//! need per scrape: CPU times, memory, load average, interface counters,
//! and the names of running processes. Each side does it `N` times; the
//! figure is the median of 5 batches, in microseconds per reading.

use std::fs::File;
use std::hint::black_box;
use std::time::Instant;

use procfs_core::net::InterfaceDeviceStatus;
use procfs_core::{ExplicitSystemInfo, FromRead, FromReadSI, KernelStats, LoadAverage, Meminfo};
use sysinfo::{Networks, ProcessRefreshKind, ProcessesToUpdate, System};

const SI: ExplicitSystemInfo = ExplicitSystemInfo {
    boot_time_secs: 0,
    ticks_per_second: 100,
    page_size: 4096,
    is_little_endian: cfg!(target_endian = "little"),
};

fn procfs_core_reading() -> usize {
    let stat = KernelStats::from_read(File::open("/proc/stat").unwrap(), &SI).unwrap();
    let mem = Meminfo::from_read(File::open("/proc/meminfo").unwrap()).unwrap();
    let load = LoadAverage::from_read(File::open("/proc/loadavg").unwrap()).unwrap();
    let dev = InterfaceDeviceStatus::from_read(File::open("/proc/net/dev").unwrap()).unwrap();
    let mut names = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name();
        if name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
                names += black_box(comm.len()).min(1);
            }
        }
    }
    black_box((stat.cpu_time.len(), mem.mem_total, load.one, dev.0.len()));
    names
}

fn sysinfo_reading(sys: &mut System, nets: &mut Networks) -> usize {
    sys.refresh_cpu_usage();
    sys.refresh_memory();
    let load = System::load_average();
    nets.refresh(true);
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    black_box((sys.global_cpu_usage(), sys.used_memory(), load.one, nets.len()));
    sys.processes().len()
}

fn median_us(mut batch: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..5).map(|_| batch()).collect();
    v.sort_by(f64::total_cmp);
    v[2]
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let only = std::env::args().nth(2);
    if only.as_deref() != Some("sysinfo") {
        let procs = procfs_core_reading();
        let us = median_us(|| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(procfs_core_reading());
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        });
        println!("procfs-core  {us:8.1} µs per reading  ({procs} processes)");
    }
    if only.as_deref() != Some("procfs-core") {
        let mut sys = System::new();
        let mut nets = Networks::new_with_refreshed_list();
        let procs = sysinfo_reading(&mut sys, &mut nets);
        let us = median_us(|| {
            let t = Instant::now();
            for _ in 0..n {
                black_box(sysinfo_reading(&mut sys, &mut nets));
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        });
        println!("sysinfo      {us:8.1} µs per reading  ({procs} processes)");
    }
}
