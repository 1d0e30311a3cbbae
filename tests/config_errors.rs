// Why one file: a table of bad files and the exact error each must give;
// splitting the table would hide which positions are pinned.
//! Config loading end to end: malformed files must fail with the exact
//! position and a message naming the problem; good files must give the
//! exact values.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use badgateway_exporter::config::Path as ProbePath;
use badgateway_exporter::config::*;
use common::paths;

/// The start of a valid site, used by the cases that break one key.
/// Line 2 is `- name`, line 3 `url`, line 4 `origin`; lines 5+ are the
/// case's own.
const SITE: &str = "\
sites:
  - name: shop
    url: https://www.example.com/
    origin: [203.0.113.5]
";

struct Case {
    name: &'static str,
    content: Vec<u8>,
    /// Expected 1-based position of the (first) error.
    line: Option<usize>,
    column: Option<usize>,
    /// Each must appear in that error's message.
    words: &'static [&'static str],
}

fn case(
    name: &'static str,
    content: impl Into<Vec<u8>>,
    pos: Option<(usize, usize)>,
    words: &'static [&'static str],
) -> Case {
    Case {
        name,
        content: content.into(),
        line: pos.map(|p| p.0),
        column: pos.map(|p| p.1),
        words,
    }
}

fn site_with(extra: &str) -> String {
    format!("{SITE}{extra}")
}

/// An alias bomb that fits the schema, so serde_norway really expands it:
/// one site whose proxy list holds 299 aliases, then 400 aliases of that
/// site. Each `*s` costs 300 alias jumps; serde_norway allows 100 per event
/// (718 events here), so the 239th `*s`, on line 6 + 239, crosses the limit.
fn schema_alias_bomb() -> String {
    let mut text = String::from(
        "sites:\n  - &s\n    name: a\n    url: http://www.example.com/\n    origin: [203.0.113.5]\n    proxy: [&ip 198.51.100.1",
    );
    text.push_str(&", *ip".repeat(299));
    text.push_str("]\n");
    text.push_str(&"  - *s\n".repeat(400));
    text
}

/// Few alias jumps (so serde_norway's repetition limit would let it
/// through) that copy a lot: a 10 000-address proxy list shared by 150
/// sites. The 100th alias takes the expansion to 100 * 10 001 values, past
/// the limit. Returns the text and the position of that alias.
fn flat_alias_expansion() -> (String, usize, usize) {
    let mut text = String::from(
        "sites:\n  - name: a\n    url: http://www.example.com/\n    origin: [203.0.113.5]\n    proxy: &p [",
    );
    text.push_str(&"198.51.100.1, ".repeat(10_000));
    text.push_str("]\n");
    let mut expected = (0, 0);
    for i in 1..=150 {
        let line = format!(
            "  - {{name: s{i}, url: http://www.example.com/, origin: [203.0.113.5], proxy: *p}}\n"
        );
        if i == 100 {
            expected = (5 + i, line.find("*p").unwrap_or(0) + 1);
        }
        text.push_str(&line);
    }
    (text, expected.0, expected.1)
}

/// The classic "billion laughs": 9^9 strings if expanded.
fn billion_laughs() -> String {
    let mut text = String::from(
        "lol1: &lol1 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 2..=9 {
        let p = i - 1;
        text.push_str(&format!(
            "lol{i}: &lol{i} [*lol{p},*lol{p},*lol{p},*lol{p},*lol{p},*lol{p},*lol{p},*lol{p},*lol{p}]\n"
        ));
    }
    text.push_str("sites: *lol9\n");
    text
}

/// Every bad file, section by section.
fn cases() -> Vec<Case> {
    [
        syntax_and_type_cases(),
        key_and_document_cases(),
        nesting_and_alias_limit_cases(),
        refused_before_parsing_cases(),
        probe_section_cases(),
        site_address_cases(),
        site_url_name_status_and_timing_cases(),
        site_source_origin_and_proxy_cases(),
        site_request_and_tls_cases(),
        agent_range_and_port_cases(),
        agent_interface_label_and_process_cases(),
        agent_access_log_and_firewall_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// YAML syntax and wrong types: stopped by serde_norway.
fn syntax_and_type_cases() -> Vec<Case> {
    vec![
        case(
            "yaml syntax error: unclosed flow sequence",
            "probe:\n  interval: 15s\nsites: [\n  {name: shop\n",
            Some((5, 1)),
            &["did not find expected"],
        ),
        case(
            "yaml syntax error: bad indentation",
            "probe:\n  interval: 15s\n timeout: 5s\n",
            Some((3, 2)),
            &["did not find expected key"],
        ),
        case(
            "wrong type: string for count",
            "probe:\n  icmp:\n    count: ten\n",
            Some((3, 12)),
            &[
                "probe.icmp.count",
                "invalid type",
                "\"ten\"",
                "expected an integer",
            ],
        ),
        case(
            "wrong type: list for a site",
            "sites: [[1]]\n",
            Some((1, 9)),
            &["sites[0]", "invalid type: sequence", "expected a site"],
        ),
        case(
            "top level is a list",
            "- a\n- b\n",
            Some((1, 1)),
            &[
                "invalid type: sequence",
                "mapping with the keys `probe`, `sites` and `agent`",
            ],
        ),
    ]
}

/// Unknown and duplicate keys, more than one document: stopped by
/// serde_norway.
fn key_and_document_cases() -> Vec<Case> {
    vec![
        case(
            "unknown top-level key",
            "prob:\n  interval: 15s\n",
            Some((1, 1)),
            &[
                "unknown field `prob`",
                "expected one of",
                "did you mean `probe`?",
            ],
        ),
        case(
            "misspelt key inside a site",
            site_with("    timout: 3s\n"),
            Some((5, 5)),
            &[
                "sites[0]",
                "unknown field `timout`",
                "did you mean `timeout`?",
            ],
        ),
        case(
            "unknown key in agent",
            "agent:\n  web_port: [80]\n",
            Some((2, 3)),
            &[
                "agent",
                "unknown field `web_port`",
                "did you mean `web_ports`?",
            ],
        ),
        case(
            "duplicate key",
            "probe:\n  interval: 15s\n  interval: 20s\n",
            Some((3, 3)),
            &["probe", "duplicate field `interval`"],
        ),
        case(
            "two documents",
            "probe: {}\n---\nsites: []\n",
            Some((2, 1)),
            &["second YAML document", "single document"],
        ),
    ]
}

/// Deep nesting and alias bombs: stopped by the parser's limits.
fn nesting_and_alias_limit_cases() -> Vec<Case> {
    vec![
        case(
            "deep nesting",
            format!("sites: {}{}\n", "[".repeat(200), "]".repeat(200)),
            // The root mapping is level 1, the 128th `[` level 129.
            Some((1, 7 + 128)),
            &["nested deeper than 128 levels"],
        ),
        case(
            // libyaml alone would take hours on this.
            "deep nesting filling the size limit",
            format!("sites: {}", "[".repeat(4 * 1024 * 1024 - 10)),
            // Unclosed, so the scanner's read-ahead stops first, at its own
            // limit of 256 open brackets.
            Some((1, 7 + 256)),
            &["nested deeper than 128 levels"],
        ),
        case(
            "deep nesting of flow mappings",
            format!("sites: {}", "{a: ".repeat(1000)),
            Some((1, 4 * 127 + 8)),
            &["nested deeper than 128 levels"],
        ),
        case(
            "alias bomb within the schema",
            schema_alias_bomb(),
            Some((6 + 239, 5)),
            &["aliases expand too much", "alias bomb"],
        ),
        case(
            // 9^9 strings if expanded; the aliases pass 1 000 000 values at
            // the first `*lol6`: 9 * (10 + 91 + 820 + 7381 + 66430) = 672 588
            // before line 7, plus 597 871 for it.
            "billion laughs",
            billion_laughs(),
            Some((7, 14)),
            &["aliases expand to more than 1000000 values", "alias bomb"],
        ),
        {
            let (text, line, column) = flat_alias_expansion();
            case(
                "large anchored list aliased by many sites",
                text,
                Some((line, column)),
                &["aliases expand to more than 1000000 values", "alias bomb"],
            )
        },
    ]
}

/// Binary, oversized and empty files: refused before parsing.
fn refused_before_parsing_cases() -> Vec<Case> {
    vec![
        case(
            "binary junk with NUL",
            b"\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe\x03\x00>\x00".to_vec(),
            Some((1, 8)),
            &["NUL byte", "binary"],
        ),
        case(
            "non-UTF-8 bytes",
            b"probe:\n  interval: 15s\xe9\n".to_vec(),
            Some((2, 16)),
            &["not valid UTF-8", "0xe9"],
        ),
        case(
            "40 MB file",
            vec![b'#'; 40 * 1024 * 1024],
            None,
            &["too large", "41943040 bytes", "33554432"],
        ),
        case("empty file", "", None, &["config file is empty"]),
        case(
            "only comments",
            "# probe:\n#   interval: 15s\n\n",
            None,
            &["config file is empty"],
        ),
        case("only null", "~\n", None, &["config file is empty"]),
    ]
}

/// The `probe` section: durations, counts and limits.
fn probe_section_cases() -> Vec<Case> {
    vec![
        case(
            "bad duration",
            "probe:\n  interval: fast\n",
            Some((2, 13)),
            &[
                "probe.interval",
                "invalid duration \"fast\"",
                "not a duration",
                "15s",
            ],
        ),
        case(
            "bare-number duration",
            "probe:\n  timeout: 15\n",
            Some((2, 12)),
            &["probe.timeout", "\"15\"", "add a unit, e.g. 15s"],
        ),
        case(
            "zero interval",
            "probe:\n  interval: 0s\n",
            Some((2, 13)),
            &["probe.interval", "\"0s\" is zero", "greater than 0"],
        ),
        case(
            "timeout longer than interval",
            "probe:\n  interval: 5s\n  timeout: 10s\n",
            Some((3, 12)),
            &["probe.timeout", "timeout 10s is longer than interval 5s"],
        ),
        case(
            "icmp count 0",
            "probe:\n  icmp: {count: 0}\n",
            Some((2, 17)),
            &["probe.icmp.count", "0 is out of range", "1 to 1000"],
        ),
        case(
            "body limit above 64 MiB",
            "probe:\n  body_limit_bytes: 100000000\n",
            Some((2, 21)),
            &["probe.body_limit_bytes", "100000000", "64 MiB"],
        ),
        case(
            "tcp count out of range",
            "probe:\n  tcp: {count: 0}\n",
            Some((2, 16)),
            &["probe.tcp.count", "out of range"],
        ),
    ]
}

/// Sites: origin addresses and required keys.
fn site_address_cases() -> Vec<Case> {
    vec![
        case(
            "bad IP address",
            "sites:\n  - name: shop\n    url: https://www.example.com/\n    origin: [203.0.113.300]\n",
            Some((4, 14)),
            &["sites[0].origin[0]", "invalid address \"203.0.113.300\"", "not a valid IP address"],
        ),
        case(
            "address with port 0",
            "sites:\n  - name: shop\n    url: https://www.example.com/\n    origin: [\"203.0.113.5:0\"]\n",
            Some((4, 14)),
            &["sites[0].origin[0]", "\"203.0.113.5:0\"", "port 0 is not allowed"],
        ),
        case(
            "hostname as origin",
            "sites:\n  - name: shop\n    url: https://www.example.com/\n    origin: [origin.example.com]\n",
            Some((4, 14)),
            &["sites[0].origin[0]", "\"origin.example.com\"", "hostnames are not allowed"],
        ),
        case(
            "IPv6 with port but no brackets in proxy",
            site_with("    proxy:\n      - 198.51.100.10\n      - 2001:db8::1:8443:x\n"),
            Some((7, 9)),
            &["sites[0].proxy[1]", "[2001:db8::1]:8443"],
        ),
        case(
            "empty origin list",
            "sites:\n  - name: shop\n    url: https://www.example.com/\n    origin: []\n",
            Some((4, 13)),
            &["sites[0].origin", "at least one origin address"],
        ),
        case(
            "missing origin",
            "sites:\n  - name: shop\n    url: https://www.example.com/\n",
            Some((2, 5)),
            &["sites[0]", "missing required key `origin`"],
        ),
        case(
            "missing url",
            "sites:\n  - name: shop\n    origin: [203.0.113.5]\n",
            Some((2, 5)),
            &["sites[0]", "missing required key `url`"],
        ),
        case(
            "missing name",
            "sites:\n  - url: https://www.example.com/\n    origin: [203.0.113.5]\n",
            Some((2, 5)),
            &["sites[0]", "missing required key `name`"],
        ),
    ]
}

/// Sites: URL, name, expected status and timing.
fn site_url_name_status_and_timing_cases() -> Vec<Case> {
    vec![
        case(
            "url with ftp scheme",
            "sites:\n  - name: shop\n    url: ftp://www.example.com/\n    origin: [203.0.113.5]\n",
            Some((3, 10)),
            &["sites[0].url", "unsupported URL scheme \"ftp\"", "http or https"],
        ),
        case(
            "url without host",
            "sites:\n  - name: shop\n    url: \"https://\"\n    origin: [203.0.113.5]\n",
            Some((3, 10)),
            &["sites[0].url", "invalid URL \"https://\"", "empty host"],
        ),
        case(
            "bad site name",
            "sites:\n  - name: my shop\n    url: https://www.example.com/\n    origin: [203.0.113.5]\n",
            Some((2, 11)),
            &["sites[0].name", "invalid site name \"my shop\"", "' '"],
        ),
        case(
            "duplicate site names",
            format!("{SITE}  - name: shop\n    url: http://www.example.com/\n    origin: [203.0.113.6]\n"),
            Some((5, 11)),
            &["sites[1].name", "duplicate site name \"shop\"", "sites[0].name (line 2, column 11)"],
        ),
        case(
            "status code 600",
            site_with("    expect_status: [\"600\"]\n"),
            Some((5, 21)),
            &["sites[0].expect_status[0]", "invalid status range \"600\"", "outside 100-599"],
        ),
        case(
            "status range reversed",
            site_with("    expect_status: [200, \"300-200\"]\n"),
            Some((5, 26)),
            &["sites[0].expect_status[1]", "\"300-200\"", "reversed"],
        ),
        case(
            "status not a number",
            site_with("    expect_status: [abc]\n"),
            Some((5, 21)),
            &["sites[0].expect_status[0]", "\"abc\"", "200-399"],
        ),
        case(
            "site timeout longer than site interval",
            site_with("    interval: 10s\n    timeout: 30s\n"),
            Some((6, 14)),
            &["sites[0].timeout", "timeout 30s is longer than interval 10s"],
        ),
        case(
            "site interval shorter than the default timeout",
            site_with("    interval: 2s\n"),
            Some((5, 15)),
            &["sites[0].interval", "timeout 5s (from probe.timeout) is longer than interval 2s"],
        ),
    ]
}

/// Sites: source addresses, origin scheme and port, proxy requests.
fn site_source_origin_and_proxy_cases() -> Vec<Case> {
    vec![
        case(
            "bad source address",
            site_with("    source_address: 198.51.100.20:80\n"),
            Some((5, 21)),
            &[
                "sites[0].source_address",
                "\"198.51.100.20:80\"",
                "IP address",
            ],
        ),
        case(
            "bad origin source address",
            site_with("    origin_source_address: eth0\n"),
            Some((5, 28)),
            &["sites[0].origin_source_address", "\"eth0\"", "IP address"],
        ),
        case(
            "unsupported origin scheme",
            site_with("    origin_scheme: ftp\n"),
            Some((5, 20)),
            &["sites[0].origin_scheme", "\"ftp\"", "http or https"],
        ),
        case(
            "origin port out of range",
            site_with("    origin_port: 70000\n"),
            Some((5, 18)),
            &["sites[0].origin_port", "70000", "1-65535"],
        ),
        case(
            "origin port zero",
            site_with("    origin_port: 0\n"),
            Some((5, 18)),
            &["sites[0].origin_port", "port 0"],
        ),
        case(
            "proxy requests out of range",
            site_with("    proxy_requests: 101\n"),
            Some((5, 21)),
            &["sites[0].proxy_requests", "1 to 100"],
        ),
        case(
            "proxy idle timeout out of range",
            site_with(
                "    proxy_idle_timeout: 2h
",
            ),
            Some((5, 25)),
            &["sites[0].proxy_idle_timeout", "`off`, or 1s to 1h"],
        ),
        case(
            "proxy idle timeout not a duration",
            site_with(
                "    proxy_idle_timeout: never
",
            ),
            Some((5, 25)),
            &["sites[0].proxy_idle_timeout", "invalid duration"],
        ),
        case(
            "max proxy addresses out of range",
            site_with("    max_proxy_addresses: 65\n"),
            Some((5, 26)),
            &["sites[0].max_proxy_addresses", "65", "1 to 64"],
        ),
        case(
            "max proxy addresses zero in probe",
            "probe:\n  max_proxy_addresses: 0\n",
            Some((2, 24)),
            &["probe.max_proxy_addresses", "0 is out of range", "1 to 64"],
        ),
    ]
}

/// Sites: method, headers and TLS.
fn site_request_and_tls_cases() -> Vec<Case> {
    vec![
        case(
            "unsupported method",
            site_with("    method: POST\n"),
            Some((5, 13)),
            &["sites[0].method", "\"POST\"", "GET or HEAD"],
        ),
        case(
            "header name with a space",
            site_with("    headers:\n      X Probe: \"1\"\n"),
            Some((6, 7)),
            &[
                "sites[0].headers.\"X Probe\"",
                "invalid header name \"X Probe\"",
            ],
        ),
        case(
            "Host header",
            site_with("    headers: {X-Probe: \"1\", host: www.example.com}\n"),
            Some((5, 29)),
            &["sites[0].headers.host", "Host header", "tls.server_name"],
        ),
        case(
            "header value with a newline",
            site_with("    headers: {X-Probe: \"a\\nb\"}\n"),
            Some((5, 24)),
            &["sites[0].headers.X-Probe", "invalid value \"a\\nb\""],
        ),
        case(
            "missing CA file",
            site_with("    tls:\n      ca_file: /nonexistent/badgateway/ca.pem\n"),
            Some((6, 16)),
            &[
                "sites[0].tls.ca_file",
                "\"/nonexistent/badgateway/ca.pem\"",
                "does not exist",
            ],
        ),
        case(
            "bad server name",
            site_with("    tls: {server_name: \"www example com\"}\n"),
            Some((5, 24)),
            &[
                "sites[0].tls.server_name",
                "\"www example com\"",
                "DNS name",
            ],
        ),
    ]
}

/// The `agent` section: forwarding ranges and web ports.
fn agent_range_and_port_cases() -> Vec<Case> {
    vec![
        case(
            "bad CIDR",
            "agent:\n  forwarding_ranges: [198.51.100.0/33]\n",
            Some((2, 23)),
            &[
                "agent.forwarding_ranges[0]",
                "\"198.51.100.0/33\"",
                "prefix length",
            ],
        ),
        case(
            "CIDR with host bits",
            "agent:\n  forwarding_ranges: [198.51.100.1/24]\n",
            Some((2, 23)),
            &["agent.forwarding_ranges[0]", "host bits", "198.51.100.0/24"],
        ),
        case(
            "not a CIDR",
            "agent:\n  forwarding_ranges:\n    - proxy.example.com\n",
            Some((3, 7)),
            &[
                "agent.forwarding_ranges[0]",
                "\"proxy.example.com\"",
                "CIDR",
            ],
        ),
        case(
            "port 70000 in web_ports",
            "agent:\n  web_ports: [80, 70000]\n",
            Some((2, 19)),
            &[
                "agent.web_ports[1]",
                "port 70000 is out of range",
                "1-65535",
            ],
        ),
        case(
            "duplicate web port",
            "agent:\n  web_ports: [443, 443]\n",
            Some((2, 20)),
            &["agent.web_ports[1]", "duplicate port 443"],
        ),
        case(
            "empty web_ports",
            "agent:\n  web_ports: []\n",
            Some((2, 14)),
            &["agent.web_ports", "at least one port"],
        ),
    ]
}

/// The `agent` section: interface capacities, site labels, processes.
fn agent_interface_label_and_process_cases() -> Vec<Case> {
    vec![
        case(
            "bad capacity",
            "agent:\n  interfaces:\n    eth0: {capacity: fast}\n",
            Some((3, 22)),
            &[
                "agent.interfaces.eth0.capacity",
                "invalid capacity \"fast\"",
                "1Gbit",
            ],
        ),
        case(
            "capacity without unit",
            "agent:\n  interfaces:\n    eth0: {capacity: 1000}\n",
            Some((3, 22)),
            &["agent.interfaces.eth0.capacity", "missing unit"],
        ),
        case(
            "missing capacity",
            "agent:\n  interfaces:\n    eth0: {}\n",
            Some((3, 11)),
            &["agent.interfaces.eth0", "missing required key `capacity`"],
        ),
        case(
            "bad agent site label",
            "agent:\n  sites: [shop, \"a/b\"]\n",
            Some((2, 17)),
            &["agent.sites[1]", "invalid site label \"a/b\""],
        ),
        case(
            "process with a slash",
            "agent:\n  processes: [/usr/sbin/nginx]\n",
            Some((2, 15)),
            &["agent.processes[0]", "without '/'"],
        ),
    ]
}

/// The `agent` section: access log format and firewall mode.
fn agent_access_log_and_firewall_cases() -> Vec<Case> {
    vec![
        case(
            "custom log format without $status",
            "agent:\n  access_log: {path: /var/log/a.log, format: '$remote_addr $request'}\n",
            Some((2, 46)),
            &["agent.access_log.format", "$status", "$realip_remote_addr"],
        ),
        case(
            "custom log format without the peer",
            "agent:\n  access_log: {path: /var/log/a.log, format: '$http_x_forwarded_for $status'}\n",
            Some((2, 46)),
            &["agent.access_log.format", "no $remote_addr", "real_ip"],
        ),
        case(
            "peer variable the format lacks",
            "agent:\n  access_log: {path: /var/log/a.log, peer_variable: realip_remote_addr}\n",
            Some((2, 53)),
            &["agent.access_log.peer_variable", "no $realip_remote_addr"],
        ),
        case(
            "the status as the peer",
            "agent:\n  access_log: {path: /var/log/a.log, peer_variable: $status}\n",
            Some((2, 53)),
            &["agent.access_log.peer_variable", "not the connecting peer's address"],
        ),
        case(
            "access log without path",
            "agent:\n  access_log:\n    format: common\n",
            Some((3, 5)),
            &["agent.access_log", "missing required key `path`"],
        ),
        case(
            "unknown firewall mode",
            "agent:\n  firewall: ipfw\n",
            Some((2, 13)),
            &["agent.firewall", "\"ipfw\"", "auto, iptables, nftables or off"],
        ),
    ]
}

fn write_temp(content: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("create temp file");
    file.write_all(content).expect("write temp file");
    file.flush().expect("flush temp file");
    file
}

#[test]
fn malformed_configs_fail_with_position_and_message() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in &cases {
        let file = write_temp(&case.content);
        let started = Instant::now();
        let result = Config::load(file.path());
        let elapsed = started.elapsed();
        let errors = match result {
            Ok(config) => {
                failures.push(format!(
                    "{}: loaded, expected an error: {config:?}",
                    case.name
                ));
                continue;
            }
            Err(errors) => errors,
        };
        // Nothing may take long, alias bombs and 40 MB files included.
        if elapsed > Duration::from_secs(2) {
            failures.push(format!("{}: took {elapsed:?}", case.name));
        }
        // SHOW_CONFIG_ERRORS=1 prints every message, to review the wording.
        if std::env::var_os("SHOW_CONFIG_ERRORS").is_some() {
            eprintln!("--- {}\n{errors}", case.name);
        }
        let first = &errors.0[0];
        let file_name = file.path().display().to_string();
        if first.file != file_name {
            failures.push(format!(
                "{}: file {:?}, expected {file_name:?}",
                case.name, first.file
            ));
        }
        if (first.line, first.column) != (case.line, case.column) {
            failures.push(format!(
                "{}: position {:?}:{:?}, expected {:?}:{:?} ({})",
                case.name, first.line, first.column, case.line, case.column, first.message
            ));
        }
        for word in case.words {
            if !first.message.contains(word) {
                failures.push(format!(
                    "{}: message lacks {word:?}: {}",
                    case.name, first.message
                ));
            }
        }
        // Display: `FILE:LINE:COLUMN: MESSAGE`, one line per error.
        let shown = errors.to_string();
        let expected_start = match (case.line, case.column) {
            (Some(l), Some(c)) => format!("{file_name}:{l}:{c}: "),
            _ => format!("{file_name}: "),
        };
        if !shown.starts_with(&expected_start) || shown.lines().count() != errors.0.len() {
            failures.push(format!("{}: bad display: {shown}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_semantic_error_is_reported() {
    let text = "\
probe:
  interval: 0s
sites:
  - name: shop
    url: ftp://www.example.com/
    origin: [\"203.0.113.5:0\", 203.0.113.6]
agent:
  web_ports: [80, 70000]
";
    let file = write_temp(text.as_bytes());
    let errors = Config::load(file.path()).unwrap_err();
    let got: Vec<(Option<usize>, Option<usize>, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.split(':').next().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some(2), Some(13), "probe.interval"),
            (Some(5), Some(10), "sites[0].url"),
            (Some(6), Some(14), "sites[0].origin[0]"),
            (Some(8), Some(19), "agent.web_ports[1]"),
        ],
        "{errors}"
    );
    assert_eq!(errors.to_string().lines().count(), 4, "{errors}");
}

#[test]
fn display_matches_documented_format() {
    let text = "sites:\n  - name: a\n    url: http://www.example.com/\n    origin: [203.0.113.5]\n  - name: b\n    url: http://www.example.com/\n    origin: [203.0.113.300]\n";
    let errors = Config::parse(text.as_bytes(), "cfg.yml").unwrap_err();
    assert_eq!(
        errors.to_string(),
        "cfg.yml:7:14: sites[1].origin[0]: invalid address \"203.0.113.300\": not a valid IP address; \
         expected an IP address with an optional port, e.g. 203.0.113.5, 203.0.113.5:8080, 2001:db8::1 or [2001:db8::1]:8443"
    );
}

#[test]
fn missing_file_is_an_error() {
    let errors = Config::load(Path::new("/nonexistent/badgateway/config.yml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors
        .to_string()
        .starts_with("/nonexistent/badgateway/config.yml: cannot open config file"));
}

fn fixtures() -> PathBuf {
    paths::root().join("tests/fixtures/config")
}

fn addr(text: &str) -> Address {
    text.parse().unwrap()
}

#[test]
fn full_example_values() {
    let dir = fixtures();
    let config = load_full_example(&dir);
    assert_eq!(config.probe, full_example_probe());
    let shop = &config.sites[0];
    assert_eq!(shop, &full_example_shop(&dir));
    check_shop_host_scheme_and_ports(shop);
    check_api_takes_the_defaults(&config.sites[1]);
    assert_eq!(config.agent.expect("agent section"), full_example_agent());
}

/// tests/fixtures/config/full.yml, every key set, with its CA path filled in.
fn load_full_example(dir: &Path) -> Config {
    let text = std::fs::read_to_string(dir.join("full.yml"))
        .unwrap()
        .replace("@FIXTURES@", &dir.display().to_string());
    let file = write_temp(text.as_bytes());
    Config::load(file.path()).unwrap_or_else(|e| panic!("{e}"))
}

/// The example's `probe` section.
fn full_example_probe() -> ProbeDefaults {
    ProbeDefaults {
        interval: Duration::from_secs(20),
        timeout: Duration::from_secs(4),
        icmp: EchoSettings {
            enabled: false,
            count: 5,
            interval: Duration::from_secs(1),
        },
        tcp: EchoSettings {
            enabled: true,
            count: 4,
            interval: Duration::from_millis(300),
        },
        proxy_requests: 5,
        proxy_idle_timeout: Some(Duration::from_secs(75)),
        max_proxy_addresses: 6,
        body_limit_bytes: 131_072,
    }
}

/// The example's first site, `shop`, with every key set.
fn full_example_shop(dir: &Path) -> Site {
    Site {
        name: "shop".into(),
        url: "https://www.example.com:8443/healthz?full=1"
            .parse()
            .unwrap(),
        proxy: vec![
            Address {
                ip: "198.51.100.10".parse().unwrap(),
                port: None,
            },
            Address {
                ip: "198.51.100.11".parse().unwrap(),
                port: Some(8443),
            },
            Address {
                ip: "2001:db8::10".parse().unwrap(),
                port: None,
            },
            Address {
                ip: "2001:db8::11".parse().unwrap(),
                port: Some(9443),
            },
        ],
        origin: vec![addr("203.0.113.5"), addr("203.0.113.6:8080")],
        expect_status: vec![
            StatusRange {
                low: 200,
                high: 200,
            },
            StatusRange {
                low: 301,
                high: 302,
            },
            StatusRange {
                low: 200,
                high: 399,
            },
        ],
        source_address: Some("2001:db8::20".parse::<IpAddr>().unwrap()),
        origin_source_address: Some("2001:db8::21".parse::<IpAddr>().unwrap()),
        origin_scheme: Some(Scheme::Http),
        origin_port: Some(8081),
        interval: Duration::from_secs(120),
        timeout: Duration::from_secs(90),
        follow_redirects: true,
        method: HttpMethod::Head,
        headers: vec![
            ("X-Probe".into(), "1".into()),
            ("Accept".into(), "text/html, */*".into()),
        ],
        tls: TlsSettings {
            insecure_skip_verify: true,
            ca_file: Some(dir.join("ca.pem")),
            server_name: Some("origin.example.com".into()),
        },
        // The site's own switch wins over probe.icmp.enabled: false.
        icmp: true,
        proxy_requests: 2,
        proxy_idle_timeout: None,
        max_proxy_addresses: 3,
        body_limit_bytes: 131_072,
    }
}

/// What `shop` derives: host, port and scheme on each path, statuses.
fn check_shop_host_scheme_and_ports(shop: &Site) {
    assert_eq!(shop.host(), "www.example.com");
    assert_eq!(shop.port(), 8443);
    // Straight to the origin: http on origin_port, unless the address has
    // its own port; through the proxy: the url's https on 8443.
    assert_eq!(shop.scheme_on(ProbePath::Origin), Scheme::Http);
    assert_eq!(shop.scheme_on(ProbePath::Proxy), Scheme::Https);
    assert_eq!(shop.port_on(ProbePath::Origin), 8081);
    assert_eq!(shop.port_on(ProbePath::Proxy), 8443);
    assert_eq!(
        shop.origin[1]
            .socket_addr(shop.port_on(ProbePath::Origin))
            .port(),
        8080
    );
    assert!(shop.status_expected(301) && !shop.status_expected(404));
    assert_eq!(shop.proxy[3].to_string(), "[2001:db8::11]:9443");
}

/// Everything the second site, `api.v2`, leaves out comes from the defaults.
fn check_api_takes_the_defaults(api: &Site) {
    assert_eq!(api.name, "api.v2");
    assert_eq!(api.host(), "2001:db8::7");
    assert_eq!(api.port(), 80);
    assert_eq!(api.origin, vec![addr("[2001:db8::7]:8080")]);
    assert!(api.proxy.is_empty());
    assert_eq!(
        api.expect_status,
        vec![StatusRange {
            low: 200,
            high: 399
        }]
    );
    assert_eq!(api.source_address, None);
    assert_eq!(api.origin_source_address, None);
    assert_eq!(api.scheme_on(ProbePath::Origin), Scheme::Http);
    assert_eq!(api.port_on(ProbePath::Origin), 80);
    assert_eq!(api.interval, Duration::from_secs(20));
    assert_eq!(api.timeout, Duration::from_secs(4));
    assert!(!api.follow_redirects);
    assert_eq!(api.method, HttpMethod::Get);
    assert!(api.headers.is_empty());
    assert_eq!(api.tls, TlsSettings::default());
    assert!(!api.icmp, "inherits probe.icmp.enabled: false");
    assert_eq!(api.proxy_requests, 5, "inherits probe.proxy_requests");
    assert_eq!(
        api.proxy_idle_timeout,
        Some(Duration::from_secs(75)),
        "inherits probe.proxy_idle_timeout"
    );
    assert_eq!(
        api.max_proxy_addresses, 6,
        "inherits probe.max_proxy_addresses"
    );
    assert_eq!(api.body_limit_bytes, 131_072);
}

/// The example's `agent` section.
fn full_example_agent() -> AgentConfig {
    let expected_interfaces: BTreeMap<String, InterfaceConfig> = [
        ("eth0", 100_000_000),
        ("bond0", 2_500_000_000),
        ("lo", 1_000_000),
        ("eth1", 10_000),
    ]
    .into_iter()
    .map(|(name, bits)| {
        (
            name.to_string(),
            InterfaceConfig {
                capacity_bits_per_second: bits,
            },
        )
    })
    .collect();
    AgentConfig {
        sites: vec!["shop".into(), "api.v2".into()],
        forwarding_ranges: [
            "198.51.100.0/24",
            "2001:db8::/32",
            "192.0.2.1/32",
            "2001:db8:1::1/128",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect(),
        web_ports: vec![8080],
        web_ports_configured: true,
        processes: vec!["nginx".into(), "haproxy".into()],
        interfaces: expected_interfaces,
        access_log: Some(AccessLogConfig {
            path: "/var/log/nginx/access.log".into(),
            format: LogFormat::Custom("$remote_addr - [$time_local] \"$request\" $status".into()),
            peer_variable: "remote_addr".into(),
        }),
        firewall: FirewallMode::Nftables,
    }
}

#[test]
fn deploy_example_parses() {
    let path = paths::root().join("deploy/example.yml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.probe,
        ProbeDefaults::default(),
        "the example shows the defaults"
    );
    assert_eq!(config.sites.len(), 2);
    let shop = &config.sites[0];
    assert_eq!(shop.url.scheme(), "https");
    assert_eq!(shop.proxy.len(), 3);
    assert_eq!(shop.origin.len(), 2);
    assert_eq!(shop.timeout, Duration::from_secs(3));
    let api = &config.sites[1];
    assert_eq!(api.url.scheme(), "http");
    assert_eq!(api.max_proxy_addresses, 4);
    assert!(
        api.proxy.is_empty(),
        "the http site resolves the proxy by DNS"
    );
    assert_eq!(api.method, HttpMethod::Head);
    let agent = config.agent.expect("agent section");
    assert_eq!(agent.web_ports, vec![80, 443]);
    assert_eq!(agent.firewall, FirewallMode::Auto);
    assert_eq!(
        agent.access_log.map(|l| l.format),
        Some(LogFormat::Combined)
    );
    assert_eq!(
        agent.interfaces["eth1"].capacity_bits_per_second,
        2_500_000_000
    );
}

#[test]
fn default_values() {
    let config = Config::default();
    assert!(config.sites.is_empty());
    assert!(config.agent.is_none());
    assert_eq!(config.probe.interval, Duration::from_secs(15));
    assert_eq!(config.probe.timeout, Duration::from_secs(5));
    assert_eq!(
        config.probe.icmp,
        EchoSettings {
            enabled: true,
            count: 10,
            interval: Duration::from_millis(200),
        }
    );
    assert_eq!(config.probe.body_limit_bytes, 65_536);

    let agent = AgentConfig::default();
    assert_eq!(agent.web_ports, vec![80, 443]);
    assert_eq!(agent.firewall, FirewallMode::Auto);
    assert!(agent.processes.is_empty() && agent.access_log.is_none());
}

#[test]
fn minimal_files_get_defaults() {
    // An explicit empty mapping is a deliberate "all defaults".
    assert_eq!(Config::parse(b"{}", "t.yml").unwrap(), Config::default());
    let config = Config::parse(b"agent: {}\n", "t.yml").unwrap();
    assert_eq!(config.agent, Some(AgentConfig::default()));
    let config = Config::parse(SITE.as_bytes(), "t.yml").unwrap();
    let site = &config.sites[0];
    assert_eq!(
        (site.interval, site.timeout),
        (Duration::from_secs(15), Duration::from_secs(5))
    );
    assert!(site.icmp);
    assert_eq!(site.body_limit_bytes, 65_536);
    assert!(site.status_expected(200) && site.status_expected(399) && !site.status_expected(502));
}
