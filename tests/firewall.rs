//! The firewall collector against real rules: each test loads a rule set
//! with the real `iptables` / `nft` into a network namespace of its own and
//! reads it back through `ip netns exec NS iptables-save` etc. Needs root.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use badgateway_exporter::agent::firewall::{
    evaluate, Evaluation, FirewallCollector, FirewallVerdict,
};
use badgateway_exporter::agent::{Collector, Os};
use badgateway_exporter::config::{AgentConfig, FirewallMode};
use FirewallVerdict::*;

/// A network namespace, deleted on drop (also when the test fails) with
/// the rules in it.
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bgwfw{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name], None);
        Ns(name)
    }

    /// Runs a shell script inside the namespace; panics when it fails.
    fn sh(&self, script: &str) {
        run(&["ip", "netns", "exec", &self.0, "sh", "-ec", script], None);
    }

    /// Loads an nft script (`nft -f -`).
    fn nft(&self, script: &str) {
        run(
            &["ip", "netns", "exec", &self.0, "nft", "-f", "-"],
            Some(script),
        );
    }

    fn os(&self) -> Os {
        let cmd = |words: &[&str]| {
            let mut v: Vec<String> = ["ip", "netns", "exec", &self.0]
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.extend(words.iter().map(|s| s.to_string()));
            v
        };
        Os {
            iptables_save: cmd(&["iptables-save"]),
            ip6tables_save: cmd(&["ip6tables-save"]),
            nft_list: cmd(&["nft", "-j", "list", "ruleset"]),
            ..Os::default()
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config(ranges: &[&str], ports: &[u16], mode: FirewallMode) -> AgentConfig {
    AgentConfig {
        forwarding_ranges: ranges.iter().map(|r| r.parse().expect("range")).collect(),
        web_ports: ports.to_vec(),
        firewall: mode,
        ..AgentConfig::default()
    }
}

const RANGES: [&str; 3] = ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"];

/// Verdicts for RANGES on ports 80 and 443.
fn judge(ns: &Ns, mode: FirewallMode) -> Vec<FirewallVerdict> {
    let e = evaluate(&config(&RANGES, &[80, 443], mode), &ns.os()).expect("evaluate");
    e.ranges.iter().map(|r| r.verdict).collect()
}

fn iptables(script: &str) -> Vec<FirewallVerdict> {
    let ns = Ns::new();
    ns.sh(script);
    judge(&ns, FirewallMode::Iptables)
}

fn nft(script: &str) -> Vec<FirewallVerdict> {
    let ns = Ns::new();
    ns.nft(script);
    judge(&ns, FirewallMode::Nftables)
}

#[test]
fn drop_of_the_range() {
    let v = iptables("iptables -A INPUT -s 198.51.100.0/24 -j DROP");
    assert_eq!(v, [Blocked, Allowed, Allowed]);
}

#[test]
fn reject_on_one_port() {
    let v = iptables(
        "iptables -A INPUT -s 203.0.113.0/24 -p tcp --dport 443 -j REJECT --reject-with tcp-reset",
    );
    assert_eq!(v, [Allowed, Blocked, Allowed]);
}

#[test]
fn accept_before_drop() {
    let v = iptables(
        "iptables -A INPUT -s 198.51.100.0/24 -j ACCEPT
         iptables -A INPUT -p tcp -j DROP",
    );
    assert_eq!(v, [Allowed, Blocked, Blocked]);
}

#[test]
fn user_chain_with_return() {
    let v = iptables(
        "iptables -N CHECK
         iptables -A CHECK -s 203.0.113.0/24 -j RETURN
         iptables -A CHECK -s 192.0.2.0/24 -j RETURN
         iptables -A CHECK -j DROP
         iptables -A INPUT -p tcp -m multiport --dports 80,443 -j CHECK
         iptables -A INPUT -s 192.0.2.0/24 -j DROP",
    );
    assert_eq!(v, [Blocked, Allowed, Blocked]);
}

#[test]
fn policy_drop_with_an_allowlist() {
    let v = iptables(
        "iptables -A INPUT -i lo -j ACCEPT
         iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
         iptables -A INPUT -s 198.51.100.0/24 -p tcp -m multiport --dports 80,443 -j ACCEPT
         iptables -A INPUT -s 203.0.113.0/25 -p tcp -m multiport --dports 80,443 -j ACCEPT
         iptables -P INPUT DROP",
    );
    // 203.0.113.128/25 is not on the list: part of the range is dropped.
    assert_eq!(v, [Allowed, Blocked, Blocked]);
}

#[test]
fn hashlimit_is_rate_limited() {
    let v = iptables(
        "iptables -A INPUT -p tcp --dport 443 -m hashlimit --hashlimit-above 20/sec --hashlimit-burst 50 \
           --hashlimit-mode srcip --hashlimit-name web -j DROP",
    );
    assert_eq!(v, [RateLimited; 3]);
}

#[test]
fn one_banned_address_inside_the_range() {
    let v = iptables(
        "iptables -N f2b-nginx
         iptables -A f2b-nginx -s 198.51.100.77/32 -j REJECT --reject-with icmp-port-unreachable
         iptables -A f2b-nginx -j RETURN
         iptables -A INPUT -p tcp -m multiport --dports 80,443 -j f2b-nginx",
    );
    assert_eq!(v, [Blocked, Allowed, Allowed]);
}

#[test]
fn inverted_source_match() {
    let v = iptables("iptables -A INPUT ! -s 198.51.100.0/24 -p tcp --dport 443 -j DROP");
    assert_eq!(v, [Allowed, Blocked, Blocked]);
}

#[test]
fn undecidable_matches_are_unknown() {
    let v =
        iptables("iptables -A INPUT -s 198.51.100.0/24 -m string --string evil --algo bm -j DROP");
    assert_eq!(v, [Unknown, Allowed, Allowed]);
    let v = iptables(
        "iptables -A INPUT -s 203.0.113.0/24 -m mark --mark 0x1 -j ACCEPT
         iptables -A INPUT -s 203.0.113.0/24 -j DROP",
    );
    assert_eq!(v, [Allowed, Unknown, Allowed]);
}

#[test]
fn empty_ruleset_allows() {
    let ns = Ns::new();
    let e: Evaluation =
        evaluate(&config(&RANGES, &[80, 443], FirewallMode::Auto), &ns.os()).expect("evaluate");
    let verdicts: Vec<FirewallVerdict> = e.ranges.iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts, [Allowed; 3]);
    assert!(e.rules.iter().all(|(_, n)| *n == 0), "{:?}", e.rules);
}

#[test]
fn established_only_accept_then_drop() {
    let v = iptables(
        "iptables -A INPUT -s 198.51.100.0/24 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
         iptables -A INPUT -s 198.51.100.0/24 -j DROP",
    );
    assert_eq!(v, [Blocked, Allowed, Allowed]);
}

#[test]
fn ipv6_ban_inside_the_range() {
    let ns = Ns::new();
    ns.sh("ip6tables -A INPUT -s 2001:db8:0:1::/64 -p tcp -j DROP");
    let cfg = config(
        &["2001:db8::/32", "2001:db8:1::/48"],
        &[443],
        FirewallMode::Iptables,
    );
    let e = evaluate(&cfg, &ns.os()).expect("evaluate");
    let verdicts: Vec<FirewallVerdict> = e.ranges.iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts, [Blocked, Allowed]);
}

#[test]
fn nft_named_set_containing_the_range() {
    let v = nft(
        "table inet web {
           set proxies { type ipv4_addr; flags interval; elements = { 198.51.100.0/24, 203.0.113.0/25 } }
           chain input {
             type filter hook input priority 0; policy drop;
             ct state established,related accept
             iifname lo accept
             ip saddr @proxies tcp dport { 80, 443 } accept
           }
         }",
    );
    assert_eq!(v, [Allowed, Blocked, Blocked]);
}

#[test]
fn nft_port_range() {
    let ns = Ns::new();
    ns.nft(
        "table ip t {
           chain input { type filter hook input priority 0; tcp dport 400-500 ip saddr 192.0.2.0/24 drop; }
         }",
    );
    let only_80 =
        evaluate(&config(&RANGES, &[80], FirewallMode::Nftables), &ns.os()).expect("evaluate");
    assert!(only_80.ranges.iter().all(|r| r.verdict == Allowed));
    assert_eq!(
        judge(&ns, FirewallMode::Nftables),
        [Allowed, Allowed, Blocked]
    );
}

#[test]
fn nft_limit_and_later_base_chain() {
    // An accept in the first base chain does not save the packet from a
    // drop in a later one.
    let v = nft("table inet a {
           chain input { type filter hook input priority -10; policy accept;
             tcp dport 443 limit rate over 100/second drop
             accept
           }
         }
         table ip b {
           chain input { type filter hook input priority 10; ip saddr 192.0.2.0/24 drop; }
         }");
    assert_eq!(v, [RateLimited, RateLimited, Blocked]);
}

#[test]
fn auto_combines_iptables_and_native_nft() {
    let ns = Ns::new();
    ns.sh("iptables -A INPUT -s 198.51.100.0/24 -p tcp -m multiport --dports 80,443 -m limit --limit 50/s -j ACCEPT
           iptables -A INPUT -s 198.51.100.0/24 -j DROP");
    ns.nft(
        "table inet crowdsec {
              set bans { type ipv4_addr; elements = { 203.0.113.9 } }
              chain input { type filter hook input priority -10; ip saddr @bans drop; }
            }",
    );
    let e = evaluate(&config(&RANGES, &[80, 443], FirewallMode::Auto), &ns.os()).expect("evaluate");
    let verdicts: Vec<FirewallVerdict> = e.ranges.iter().map(|r| r.verdict).collect();
    assert_eq!(verdicts, [RateLimited, Blocked, Allowed]);
    assert_eq!(e.rules, [("iptables", 2), ("nftables", 1)]);
    // The nftables mode alone sees iptables-nft's multiport and limit as
    // unreadable xt matches.
    assert_eq!(
        judge(&ns, FirewallMode::Nftables),
        [Unknown, Blocked, Allowed]
    );
}

#[test]
fn errors_name_the_command_and_the_capability() {
    let ns = Ns::new();
    let mut os = ns.os();
    // The same command without the capabilities, as a non-root user.
    os.iptables_save = [
        "ip",
        "netns",
        "exec",
        &ns.0,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "iptables-save",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let err = evaluate(&config(&RANGES, &[80], FirewallMode::Iptables), &os)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("iptables-save") && err.contains("CAP_NET_ADMIN"),
        "{err}"
    );
    os.nft_list = vec!["/nonexistent/nft".into()];
    let err = evaluate(&config(&RANGES, &[80], FirewallMode::Nftables), &os)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nonexistent/nft") && err.contains("not found"),
        "{err}"
    );
    // In auto, a missing tool is a missing backend; iptables-save of the
    // namespace still answers.
    let mut os = ns.os();
    os.nft_list = vec!["/nonexistent/nft".into()];
    let e = evaluate(&config(&RANGES, &[80], FirewallMode::Auto), &os).expect("auto without nft");
    assert_eq!(e.rules, [("iptables", 0)]);
}

/// Renders the collector's families as `name{labels} value` lines.
fn lines(c: &FirewallCollector) -> Result<Vec<String>, String> {
    let families = c.collect().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for f in families {
        for m in f.get_metric() {
            let labels: Vec<String> = m
                .get_label()
                .iter()
                .map(|l| format!("{}=\"{}\"", l.name(), l.value()))
                .collect();
            out.push(format!(
                "{}{{{}}} {}",
                f.name(),
                labels.join(","),
                m.get_gauge().get_value()
            ));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_reports_through_collect() {
    let ns = Ns::new();
    ns.sh("iptables -A INPUT -s 198.51.100.0/24 -p tcp --dport 443 -j DROP");
    let cfg = config(
        &["198.51.100.0/24", "203.0.113.0/24"],
        &[80, 443],
        FirewallMode::Auto,
    );
    let c = FirewallCollector::start(&cfg, &ns.os());
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until the first evaluation ends, only the range count is there.
    let got = loop {
        match lines(&c) {
            Ok(l)
                if l.iter()
                    .any(|x| x.starts_with("badgateway_firewall_verdict")) =>
            {
                break l
            }
            Ok(l) if Instant::now() < deadline => {
                assert!(l.iter().all(|x| !x.contains("verdict")), "{l:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("no evaluation in time: {other:?}"),
        }
    };
    for want in [
        "badgateway_firewall_verdict{range=\"198.51.100.0/24\",verdict=\"blocked\"} 1",
        "badgateway_firewall_verdict{range=\"203.0.113.0/24\",verdict=\"allowed\"} 1",
        "badgateway_firewall_port_verdict{range=\"198.51.100.0/24\",port=\"80\",verdict=\"allowed\"} 1",
        "badgateway_firewall_port_verdict{range=\"198.51.100.0/24\",port=\"443\",verdict=\"blocked\"} 1",
        "badgateway_firewall_forwarding_range_blocked{range=\"198.51.100.0/24\"} 1",
        "badgateway_firewall_forwarding_range_blocked{range=\"203.0.113.0/24\"} 0",
        "badgateway_firewall_rules{backend=\"iptables\"} 1",
        "badgateway_firewall_rules{backend=\"nftables\"} 0",
        "badgateway_firewall_forwarding_ranges{} 2",
    ] {
        assert!(got.iter().any(|l| l == want), "missing {want} in {got:#?}");
    }
    assert_eq!(
        got.iter()
            .filter(|l| l.starts_with("badgateway_firewall_verdict{"))
            .count(),
        2
    );
    assert!(got
        .iter()
        .any(|l| l.starts_with("badgateway_firewall_evaluation_timestamp_seconds{} ")));

    // Without forwarding ranges: a zero count and nothing else, no error.
    let none = FirewallCollector::start(&config(&[], &[80], FirewallMode::Auto), &ns.os());
    assert_eq!(
        lines(&none).unwrap(),
        ["badgateway_firewall_forwarding_ranges{} 0"]
    );
    // Off: nothing at all.
    let off = FirewallCollector::start(&config(&RANGES, &[80], FirewallMode::Off), &ns.os());
    assert_eq!(lines(&off).unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_reports_errors() {
    let os = Os {
        iptables_save: vec!["/nonexistent/iptables-save".into()],
        ..Os::default()
    };
    let c = FirewallCollector::start(&config(&RANGES, &[80], FirewallMode::Iptables), &os);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Ok while the first evaluation is under way; then the error.
        if let Err(e) = lines(&c) {
            assert!(
                e.contains("/nonexistent/iptables-save") && e.contains("not found"),
                "{e}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no evaluation in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `f` on a thread inside namespace `ns`: sockets it makes live there.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in namespace")
}

/// Whether the kernel lets a connection from `src` reach 192.0.2.1:80.
fn kernel_allows(client: &Ns, src: &str) -> bool {
    let src: std::net::IpAddr = src.parse().expect("address");
    in_ns(&client.0, move || {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&std::net::SocketAddr::new(src, 0).into())
            .expect("bind");
        let dst: std::net::SocketAddr = "192.0.2.1:80".parse().expect("address");
        s.connect_timeout(&dst.into(), Duration::from_secs(2))
            .is_ok()
    })
}

/// The evaluator against the kernel itself: a client namespace with
/// forwarding addresses connects to a listener behind the rules.
#[test]
fn kernel_agrees() {
    let (origin, client) = (Ns::new(), Ns::new());
    let (o, c) = (origin.0.as_str(), client.0.as_str());
    for cmd in [
        vec![
            "ip", "-n", o, "link", "add", "vo", "type", "veth", "peer", "name", "vc", "netns", c,
        ],
        vec!["ip", "-n", o, "addr", "add", "192.0.2.1/24", "dev", "vo"],
        vec!["ip", "-n", o, "link", "set", "vo", "up"],
        vec!["ip", "-n", o, "link", "set", "lo", "up"],
        vec![
            "ip",
            "-n",
            o,
            "route",
            "add",
            "198.51.100.0/24",
            "dev",
            "vo",
        ],
        vec!["ip", "-n", o, "route", "add", "203.0.113.0/24", "dev", "vo"],
        vec!["ip", "-n", c, "addr", "add", "192.0.2.2/24", "dev", "vc"],
        vec!["ip", "-n", c, "link", "set", "vc", "up"],
    ] {
        run(&cmd, None);
    }
    let sources = ["198.51.100.7", "198.51.100.8", "203.0.113.5"];
    for s in sources {
        run(
            &[
                "ip",
                "-n",
                c,
                "addr",
                "add",
                &format!("{s}/32"),
                "dev",
                "vc",
            ],
            None,
        );
    }
    // The kernel completes handshakes into the backlog without accept().
    let _listener = in_ns(o, || {
        std::net::TcpListener::bind("192.0.2.1:80").expect("listen")
    });
    let ranges: Vec<String> = sources.iter().map(|s| format!("{s}/32")).collect();
    let ranges: Vec<&str> = ranges.iter().map(String::as_str).collect();
    let check = |mode: FirewallMode, want: [FirewallVerdict; 3]| {
        let e = evaluate(&config(&ranges, &[80], mode), &origin.os()).expect("evaluate");
        let got: Vec<FirewallVerdict> = e.ranges.iter().map(|r| r.verdict).collect();
        assert_eq!(got, want, "{mode}");
        for (src, verdict) in sources.iter().zip(want) {
            assert_eq!(
                kernel_allows(&client, src),
                verdict == Allowed,
                "{mode}: from {src}"
            );
        }
    };
    origin.sh("iptables -P INPUT DROP
         iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
         iptables -A INPUT -s 198.51.100.8 -j REJECT
         iptables -A INPUT -s 198.51.100.0/24 -p tcp -m multiport --dports 80,443 -j ACCEPT");
    check(FirewallMode::Iptables, [Allowed, Blocked, Blocked]);
    origin.sh("iptables -P INPUT ACCEPT; iptables -F INPUT");
    origin.nft(
        "table inet f {
           set bans { type ipv4_addr; elements = { 198.51.100.7 } }
           chain input { type filter hook input priority 0; policy accept;
             ip saddr @bans reject
             ip saddr != 198.51.100.0/24 tcp dport 80 drop
           }
         }",
    );
    check(FirewallMode::Auto, [Blocked, Allowed, Blocked]);
}
