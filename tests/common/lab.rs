//! The internet of a test: a vantage host, a protecting proxy and an
//! origin in network namespaces behind one router, with nginx as the proxy
//! and the exporter on the vantage host.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::netns::{link, Netns};
use super::paths::BIN;
use super::proc::Proc;
use super::{metrics, wait};

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
            BIN,
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
        let mut text = String::new();
        let found = wait::poll(within, Duration::from_millis(200), || {
            text = self
                .vantage
                .http_get(listen, "/metrics")
                .map(|(_, b)| b)
                .unwrap_or_default();
            Some(metrics::Scrape::parse(&text)).filter(|s| ready(s))
        });
        if let Some((scrape, _)) = found {
            return scrape;
        }
        let logs: Vec<String> = self.procs.iter().map(|p| p.log_text()).collect();
        panic!(
            "condition not met within {within:?}; last scrape:\n{text}\nlogs:\n{}",
            logs.join("\n---\n")
        );
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
