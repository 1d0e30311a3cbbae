//! Test hosts for the integration tests: network namespaces joined by veth
//! pairs, with documentation addresses only, and the processes and servers
//! that run in them. Everything is torn down on drop, also when a test
//! fails.
#![allow(dead_code)]

pub mod metrics;
pub mod origin;
pub mod tls;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Run a command; panic with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A unique name for this process and call, short enough for the kernel.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace, deleted on drop with everything inside it
/// (interfaces, addresses, firewall rules).
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

    /// Run a command inside the namespace; panic when it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Run a command inside the namespace and return what it did, whatever
    /// its exit status.
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
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
        let out = fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {args:?}: {e}"));
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    /// Run `f` on a thread that has entered this namespace: sockets it
    /// opens live there.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("thread in namespace panicked")
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
        self.run(move || http_get(addr, &path))
    }

    /// Wait until something accepts TCP connections at `addr`.
    pub fn wait_listening(&self, addr: SocketAddr) {
        let ok = self.run(move || {
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
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

/// Minimal blocking HTTP/1.0 GET, enough for scraping /metrics in tests.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
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

/// A child process, stopped on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }

    pub fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The internet of a test: a vantage host, a protecting proxy and an
/// origin, each on its own documentation network behind one router.
///
/// ```text
/// vantage 192.0.2.2 ── router ── proxy 198.51.100.10 (its forwarding IP)
///                         └───── origin 203.0.113.5
/// ```
pub struct Lab {
    pub dir: tempfile::TempDir,
    // Dropped in this order: processes first, then the namespaces.
    pub procs: Vec<Proc>,
    /// Hosts added with `add_host`, each on its own network behind the router.
    pub extra: Vec<Netns>,
    pub vantage: Netns,
    pub proxy: Netns,
    pub origin: Netns,
    pub router: Netns,
}

pub const VANTAGE_IP: &str = "192.0.2.2";
pub const PROXY_IP: &str = "198.51.100.10";
pub const ORIGIN_IP: &str = "203.0.113.5";

impl Lab {
    pub fn new() -> Lab {
        let router = Netns::new("r");
        let vantage = Netns::new("v");
        let proxy = Netns::new("p");
        let origin = Netns::new("o");
        link(
            &router,
            "rv",
            "192.0.2.1/26",
            &vantage,
            "eth0",
            "192.0.2.2/26",
        );
        link(
            &router,
            "rp",
            "198.51.100.1/24",
            &proxy,
            "eth0",
            "198.51.100.10/24",
        );
        link(
            &router,
            "ro",
            "203.0.113.1/24",
            &origin,
            "eth0",
            "203.0.113.5/24",
        );
        router.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        vantage.exec(&["ip", "route", "add", "default", "via", "192.0.2.1"]);
        proxy.exec(&["ip", "route", "add", "default", "via", "198.51.100.1"]);
        origin.exec(&["ip", "route", "add", "default", "via", "203.0.113.1"]);
        Lab {
            dir: tempfile::tempdir().expect("temp dir"),
            procs: Vec::new(),
            extra: Vec::new(),
            vantage,
            proxy,
            origin,
            router,
        }
    }

    /// Another host behind the router: `router_cidr` on the router's side,
    /// `host_cidr` on the host's, the router its default gateway. Returns
    /// its index in `extra`.
    pub fn add_host(&mut self, role: &str, router_cidr: &str, host_cidr: &str) -> usize {
        let host = Netns::new(role);
        let n = self.extra.len();
        link(
            &self.router,
            &format!("rx{n}"),
            router_cidr,
            &host,
            "eth0",
            host_cidr,
        );
        let gateway = router_cidr.split('/').next().expect("cidr");
        host.exec(&["ip", "route", "add", "default", "via", gateway]);
        self.extra.push(host);
        n
    }

    /// The router drops echo requests to `ip` with `probability`: loss on
    /// the public path, since this kernel has no netem.
    pub fn drop_echoes_to(&self, ip: &str, probability: &str) {
        self.router.exec(&[
            "iptables",
            "-A",
            "FORWARD",
            "-p",
            "icmp",
            "--icmp-type",
            "echo-request",
            "-d",
            ip,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            probability,
            "-j",
            "DROP",
        ]);
    }

    /// nginx on the proxy host, forwarding to the origin on port 80 with
    /// `upstream_timeout` for connect and read.
    pub fn start_proxy_nginx(&mut self, upstream_timeout: &str) {
        let dir = self.dir.path().join("nginx-proxy");
        let conf = nginx_conf(
            &dir,
            &format!(
                "server {{\n  listen {PROXY_IP}:80;\n  location / {{\n    proxy_pass http://{ORIGIN_IP}:80;\n    \
                 proxy_set_header Host $host;\n    proxy_connect_timeout {upstream_timeout};\n    \
                 proxy_read_timeout {upstream_timeout};\n    proxy_send_timeout {upstream_timeout};\n  }}\n}}\n"
            ),
        );
        let p = self.proxy.spawn_nginx(&dir, &conf);
        self.procs.push(p);
        self.proxy
            .wait_listening(format!("{PROXY_IP}:80").parse().expect("addr"));
    }

    /// Start the exporter on the vantage host with `config` (YAML); returns
    /// the address its web interface listens on there.
    pub fn start_exporter(&mut self, config: &str) -> SocketAddr {
        self.start_exporter_with(&[], config)
    }

    /// Like `start_exporter`, with `wrapper` (e.g. `setpriv ...`) in front
    /// of the command.
    pub fn start_exporter_with(&mut self, wrapper: &[&str], config: &str) -> SocketAddr {
        let path = self.dir.path().join("exporter.yml");
        fs::write(&path, config).expect("write config");
        let listen: SocketAddr = "127.0.0.1:9502".parse().expect("addr");
        let (config_arg, listen_arg) = (path.to_string_lossy(), listen.to_string());
        let mut args = wrapper.to_vec();
        args.extend_from_slice(&[
            env!("CARGO_BIN_EXE_badgateway-exporter"),
            "--config",
            &config_arg,
            "--web.listen-address",
            &listen_arg,
            "--log.level",
            "debug",
        ]);
        let p = self
            .vantage
            .spawn(&args, &self.dir.path().join("exporter.log"));
        self.procs.push(p);
        self.vantage.wait_listening(listen);
        listen
    }

    /// Scrape the vantage exporter until `ready` holds on the metrics text,
    /// or panic after `within`.
    pub fn scrape_until(
        &self,
        listen: SocketAddr,
        within: Duration,
        ready: impl Fn(&metrics::Scrape) -> bool,
    ) -> metrics::Scrape {
        let until = Instant::now() + within;
        loop {
            let text = self
                .vantage
                .http_get(listen, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default();
            let scrape = metrics::Scrape::parse(&text);
            if ready(&scrape) {
                return scrape;
            }
            if Instant::now() > until {
                let logs: Vec<String> = self.procs.iter().map(|p| p.log_text()).collect();
                panic!(
                    "condition not met within {within:?}; last scrape:\n{text}\nlogs:\n{}",
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Write an nginx configuration that keeps every file under `dir`.
pub fn nginx_conf(dir: &Path, servers: &str) -> PathBuf {
    fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
    let d = dir.display();
    let conf = format!(
        "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  \
         fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
         {servers}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, conf).expect("write nginx.conf");
    path
}
