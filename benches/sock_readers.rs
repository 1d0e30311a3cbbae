//! CPU per reading of this machine's TCP sockets by each source the
//! connections collector has: /proc/net/tcp{,6}, netlink sock_diag with the
//! kernel filtering states and ports, and with states only. User and
//! system time of the reading thread, 500 readings each:
//! `cargo bench --bench sock_readers` (as root for netlink everywhere).

use std::fs;
use std::path::PathBuf;

use badgateway_exporter::agent::connections::{Connections, Filter, Source};

fn main() {
    let ticks = || -> (u64, u64) {
        let stat = fs::read_to_string("/proc/thread-self/stat").unwrap();
        let f: Vec<u64> = stat
            .rsplit(") ")
            .next()
            .unwrap()
            .split(' ')
            .skip(11)
            .take(2)
            .map(|n| n.parse().unwrap())
            .collect();
        (f[0], f[1])
    };
    let c = Connections::new(PathBuf::from("/proc/thread-self"), &[], &[80, 443], true);
    let n = 500;
    for source in [
        Source::Files,
        Source::Netlink(Filter::StatesAndPorts),
        Source::Netlink(Filter::States),
    ] {
        let (u0, s0) = ticks();
        for _ in 0..n {
            c.count_from(source).unwrap();
        }
        let (u1, s1) = ticks();
        // Ticks are 10 ms.
        println!(
            "{source:?}: user {:.3} ms, system {:.3} ms per reading",
            (u1 - u0) as f64 * 10.0 / n as f64,
            (s1 - s0) as f64 * 10.0 / n as f64
        );
    }
}
