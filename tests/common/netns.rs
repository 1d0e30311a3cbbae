//! Test hosts: network namespaces joined by veth pairs. Each namespace has
//! a name unique to this process and call, and is deleted on drop with
//! everything inside it (interfaces, addresses, firewall rules), also when
//! a test fails.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::proc::{must, must_with, output, sh, Proc};
use super::{http, wait};

/// A unique name for this process and call, short enough for the kernel.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace with its loopback up. Names start with "bgw", which
/// .ci/run clears.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = unique(&format!("bgw{role}"));
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// The words of a command that runs inside the namespace, for code that
    /// takes a command line (the agent's `Os`).
    pub fn words(&self, args: &[&str]) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect()
    }

    /// Run a command inside the namespace; panic when it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        must(&mut self.cmd(args))
    }

    /// Run a command inside the namespace with `input` on its stdin; panic
    /// when it fails.
    pub fn exec_with_input(&self, args: &[&str], input: &str) -> String {
        must_with(&mut self.cmd(args), Some(input))
    }

    /// Run a command inside the namespace and return what it did, whatever
    /// its exit status.
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        output(&mut self.cmd(args))
    }

    /// Start nginx in the foreground with `conf`, keeping its files in `dir`.
    pub fn spawn_nginx(&self, dir: &Path, conf: &Path) -> Proc {
        let (log, prefix, conf) = (
            dir.join("error.log").to_string_lossy().into_owned(),
            dir.to_string_lossy().into_owned(),
            conf.to_string_lossy().into_owned(),
        );
        self.spawn(
            &[
                "nginx",
                "-e",
                &log,
                "-p",
                &prefix,
                "-c",
                &conf,
                "-g",
                "daemon off;",
            ],
            &dir.join("stdout.log"),
        )
    }

    /// Start a long-running process inside the namespace.
    pub fn spawn(&self, args: &[&str], log: &Path) -> Proc {
        Proc::spawn(&mut self.cmd(args), log)
    }

    /// Run `f` on a thread that has entered this namespace: sockets it
    /// opens live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// Its file, for `enter`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// The host drops every ICMP echo request sent to it, as many load
    /// balancers and Anti-DDoS edges do.
    pub fn drop_echo_requests(&self) {
        self.exec(&[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-request",
            "-j",
            "DROP",
        ]);
    }

    /// A plain HTTP GET from inside the namespace: (status, body).
    pub fn http_get(&self, addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
        let path = path.to_owned();
        self.run(move || http::http_get(addr, &path))
    }

    /// Wait until something accepts TCP connections at `addr`.
    pub fn wait_listening(&self, addr: SocketAddr) {
        let ok = self.run(move || {
            wait::poll(Duration::from_secs(10), Duration::from_millis(50), || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(drop)
            })
            .is_some()
        });
        assert!(ok, "nothing listens on {addr} in {}", self.name);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes still inside would keep nothing alive but their own
        // sockets; the namespace goes regardless.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Move the calling thread into the network namespace at `path`.
pub fn enter(path: &str) {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// Join two namespaces with a veth pair and give each end an address.
pub fn link(a: &Netns, a_if: &str, a_cidr: &str, b: &Netns, b_if: &str, b_cidr: &str) {
    sh(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    for (ns, ifname, cidr) in [(a, a_if, a_cidr), (b, b_if, b_cidr)] {
        ns.exec(&["ip", "addr", "add", cidr, "dev", ifname]);
        ns.exec(&["ip", "link", "set", ifname, "up"]);
    }
}
