//! What a person should do next, per reason: the runbook's first steps with
//! this site's host, addresses and forwarding ranges filled in.

use crate::config::Site;
use crate::diagnosis::verdict::Finding;

/// What the steps can name.
pub struct Context<'a> {
    pub site: &'a Site,
    /// Forwarding ranges known from the agent; empty when unknown.
    pub ranges: Vec<String>,
}

/// One sentence on what the reason means.
pub fn meaning(reason: &str) -> &'static str {
    match reason {
        "proxy_fails_origin_ok" => "The proxy cannot get an answer from the origin, but the origin answers a direct request: the origin's firewall or host security refuses the proxy's forwarding IPs.",
        "firewall_blocks_forwarding_range" => "The origin's own firewall drops or rejects the proxy's forwarding range.",
        "forwarding_ip_rate_limited" => "The origin rate-limits the proxy's forwarding IPs (firewall limit rules, or the web server's request limits).",
        "origin_unreachable" => "The origin does not answer at all: the server, its data center or its link is down.",
        "web_service_down" => "The origin host is up but its web server does not accept connections.",
        "origin_http_errors" => "The origin answers, with errors of its own.",
        "origin_slow" => "The origin answers more slowly than the proxy is willing to wait.",
        "cpu_saturated" => "The origin's CPU is saturated.",
        "memory_saturated" => "The origin's memory is exhausted.",
        "bandwidth_saturated" => "The origin's network link is full.",
        "origin_exposed" => "Traffic reaches the origin from outside the proxy's forwarding ranges: its address is known and it can be attacked directly.",
        "packet_loss" => "Packets are lost on the network path.",
        "jitter" => "Round-trip times on the network path vary widely.",
        "partial_vantage_failure" => "The site fails from some vantage points and works from others: the network between them and the site is at fault, not the site.",
        "vantage_cut_off" => "This machine's own network is cut off (no route, no name resolution): nothing it probes answers, which says nothing about the site.",
        _ => "",
    }
}

pub fn next_steps(f: &Finding, cx: &Context) -> Vec<String> {
    let site = cx.site;
    let host = site.host();
    let port = site.port();
    let origin = site
        .origin
        .first()
        .map(|a| a.ip.to_string())
        .unwrap_or_default();
    let pinned = format!(
        "curl -sv --resolve {host}:{port}:{origin} '{}' -o /dev/null",
        site.url
    );
    let range = match cx.ranges.as_slice() {
        [] => "FORWARDING_RANGE".to_owned(),
        [one] => one.clone(),
        many => many.join(","),
    };
    let range_note = if cx.ranges.is_empty() {
        " (FORWARDING_RANGE: the back-to-origin ranges your proxy provider publishes)"
    } else {
        ""
    };
    let first_range = cx
        .ranges
        .first()
        .cloned()
        .unwrap_or_else(|| "FORWARDING_RANGE".into());
    match f.reason {
        "proxy_fails_origin_ok" | "firewall_blocks_forwarding_range" => vec![
            format!("Confirm the origin answers when asked directly: {pinned}"),
            "On the origin, find what refuses the forwarding IPs: `iptables -nL INPUT --line-numbers`, `nft list ruleset`, `fail2ban-client status`, and the host security software's block list.".into(),
            format!("Allow the forwarding range{range_note} before any drop rule:\n     iptables -I INPUT -s {range} -p tcp -m multiport --dports 80,443 -j ACCEPT\n     nft insert rule inet filter input ip saddr {{ {range} }} tcp dport {{ 80, 443 }} accept\n     firewall-cmd --permanent --zone=trusted --add-source={first_range} && firewall-cmd --reload\n     ufw insert 1 allow from {first_range} to any port 80,443 proto tcp"),
            "Add the range to the allowlists of fail2ban (`ignoreip`), the WAF and any cloud security group too.".into(),
        ],
        "forwarding_ip_rate_limited" => vec![
            "Find the limits that hit the forwarding IPs: `iptables-save | grep -E 'limit|hashlimit|connlimit|recent'`, `nft list ruleset | grep limit`, nginx `limit_req`/`limit_conn`, the WAF's rate rules.".into(),
            format!("Exempt the forwarding range{range_note} from them: all the site's traffic arrives from these few addresses, so per-IP limits throttle every visitor at once (nginx: `geo $limited {{ default 1; {first_range} 0; }}` and key the zone on it)."),
        ],
        "origin_unreachable" => vec![
            format!("Check the path from here: `ping {origin}`, `mtr -rwc 20 {origin}`."),
            "From the origin's console: is the server up, are its interface and routes up (`ip link`, `ip route`)?".into(),
            "Ask the data center or hosting provider about an outage on the server or its link.".into(),
        ],
        "web_service_down" => vec![
            "On the origin: `systemctl status nginx` (or apache2, httpd, ...), `ss -ltnp`, `journalctl -u nginx -n 50`.".into(),
            "Restart it (`systemctl restart nginx`) and find why it stopped (out of memory, a bad config: `nginx -t`).".into(),
        ],
        "origin_http_errors" => vec![
            format!("See the error the origin gives: {pinned}"),
            "Read the web server's error log and the application's logs on the origin; check the application's own backends (database, upstreams).".into(),
        ],
        "origin_slow" => vec![
            format!("Time the origin directly: {} -w 'connect %{{time_connect}} first byte %{{time_starttransfer}} total %{{time_total}}\\n'", pinned),
            "On the origin: `top`, the slow requests in the logs, the database and upstreams the application waits on.".into(),
            "Add capacity or fix the slow path; raising the proxy's origin timeout only hides it.".into(),
        ],
        "cpu_saturated" | "memory_saturated" => vec![
            "On the origin: `top -o %CPU` / `top -o %MEM`: which process uses it?".into(),
            "If it is the web server under a flood, check who connects (`origin_exposed`); otherwise add capacity.".into(),
        ],
        "bandwidth_saturated" => vec![
            "On the origin: `iftop` or `nload` on the busy interface: whose traffic fills it?".into(),
            "Traffic from outside the forwarding ranges means a direct attack: allow only the ranges on the web ports; otherwise raise the link's capacity.".into(),
        ],
        "origin_exposed" => vec![
            "On the origin, list who connects: `ss -tn state established '( sport = :80 or sport = :443 )'`.".into(),
            format!("Accept the web ports only from the forwarding range{range_note}: `iptables -A INPUT -p tcp -m multiport --dports 80,443 ! -s {range} -j DROP`."),
            "Then change the origin's address, and keep it out of DNS records, mail headers and public history.".into(),
        ],
        "vantage_cut_off" => vec![
            "Check this machine's network: `ip route` (a default route?), `ip link` (interfaces up?), `resolvectl status` or /etc/resolv.conf (a resolver?).".into(),
            "Run diagnose again from a machine whose network works, or from the proxy host.".into(),
        ],
        "packet_loss" | "jitter" => vec![
            format!("Measure the path: `mtr -rwc 100 {origin}` (and to the proxy address), from here and from another network."),
            "If the loss is in your provider's network, call the ISP or move the proxy's linkage (another line, region or route).".into(),
        ],
        _ => Vec::new(),
    }
}
