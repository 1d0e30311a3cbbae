//! The real binary as a child process on a port of its own choosing
//! (`--web.listen-address 127.0.0.1:0`), found from its log: no two tests
//! ever race for a port.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::paths::BIN;
use super::{wait, Proc};

/// Start the exporter with `args` (and a listen address on port 0), its
/// output in `log`; returns it and the address it serves on.
pub fn spawn(args: &[&str], log: &Path) -> (Proc, SocketAddr) {
    spawn_with(&[], args, log)
}

/// [`spawn`] with `wrapper` (e.g. `prlimit --nofile=40:40`) in front.
pub fn spawn_with(wrapper: &[&str], args: &[&str], log: &Path) -> (Proc, SocketAddr) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(args)
        .args(["--web.listen-address", "127.0.0.1:0", "--log.level", "info"]);
    let mut p = Proc::spawn(&mut cmd, log);
    let addr = served_address(&mut p);
    (p, addr)
}

/// The address the exporter logged it serves on.
pub fn served_address(p: &mut Proc) -> SocketAddr {
    wait::until(Duration::from_secs(15), Duration::from_millis(50), || {
        let log = p.log_text();
        let served = log
            .lines()
            .filter(|l| l.contains("serving HTTP"))
            .filter_map(|l| l.split("address=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .find_map(|a| {
                // Strip colour codes, if any.
                let a: String = a
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                    .collect();
                a.parse().ok()
            });
        assert!(
            served.is_some() || !p.exited(),
            "the exporter exited:\n{log}"
        );
        served.ok_or(format!("the exporter never served:\n{log}"))
    })
}
