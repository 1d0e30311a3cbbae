//! What a person should do next, per reason: the runbook's first steps with
//! this site's host, addresses and forwarding ranges filled in.

use crate::config::Site;
use crate::diagnosis::{Cause, Finding, Reason};

/// What the steps can name.
pub struct Context<'a> {
    pub site: &'a Site,
    /// Forwarding ranges known from the agent; empty when unknown.
    pub ranges: Vec<String>,
}

/// This site's names, filled into the steps' commands.
struct Words {
    host: String,
    port: u16,
    url: String,
    origin: String,
    proxy: String,
    /// `curl` asking the origin straight, the domain pinned to its address.
    pinned: String,
    /// The forwarding ranges, comma-separated, or a placeholder.
    range: String,
    /// What the placeholder means, when it is one.
    range_note: &'static str,
    first_range: String,
}

impl Words {
    fn new(cx: &Context) -> Words {
        let site = cx.site;
        let host = site.host().to_owned();
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
        let proxy = site
            .proxy
            .first()
            .map(|a| a.ip.to_string())
            .unwrap_or_else(|| host.clone());
        Words {
            url: site.url.to_string(),
            host,
            port,
            origin,
            proxy,
            pinned,
            range,
            range_note,
            first_range,
        }
    }
}

/// The steps for one finding, picked by its cause.
pub fn next_steps(f: &Finding, cx: &Context) -> Vec<String> {
    let w = Words::new(cx);
    match f.reason.cause() {
        Cause::ForwardingIpBlocked => forwarding(f.reason, &w),
        Cause::OriginAbnormal => origin(f.reason, &w),
        Cause::NetworkLinkage => network(f.reason, &w),
        Cause::Proxy | Cause::Exporter => proxy_or_exporter(f.reason, &w),
    }
}

/// The forwarding IPs refused or limited: find the rule, allow the range.
fn forwarding(reason: Reason, w: &Words) -> Vec<String> {
    use Reason::*;
    let Words {
        pinned,
        range,
        range_note,
        first_range,
        ..
    } = w;
    match reason {
        ProxyFailsOriginOk | FirewallBlocksForwardingRange => vec![
            format!("Confirm the origin answers when asked directly: {pinned}"),
            "On the origin, find what refuses the forwarding IPs: `iptables -nL INPUT --line-numbers`, `nft list ruleset`, `fail2ban-client status`, and the host security software's block list.".into(),
            format!("Allow the forwarding range{range_note} before any drop rule:\n     iptables -I INPUT -s {range} -p tcp -m multiport --dports 80,443 -j ACCEPT\n     nft insert rule inet filter input ip saddr {{ {range} }} tcp dport {{ 80, 443 }} accept\n     firewall-cmd --permanent --zone=trusted --add-source={first_range} && firewall-cmd --reload\n     ufw insert 1 allow from {first_range} to any port 80,443 proto tcp"),
            "Add the range to the allowlists of fail2ban (`ignoreip`), the WAF and any cloud security group too.".into(),
        ],
        ForwardingIpRateLimited => vec![
            "Find the limits that hit the forwarding IPs: `iptables-save | grep -E 'limit|hashlimit|connlimit|recent'`, `nft list ruleset | grep limit`, nginx `limit_req`/`limit_conn`, the WAF's rate rules.".into(),
            format!("Exempt the forwarding range{range_note} from them: all the site's traffic arrives from these few addresses, so per-IP limits throttle every visitor at once (nginx: `geo $limited {{ default 1; {first_range} 0; }}` and key the zone on it)."),
        ],
        _ => Vec::new(),
    }
}

/// The origin failing: the server, its web server, its load, its exposure.
fn origin(reason: Reason, w: &Words) -> Vec<String> {
    use Reason::*;
    let Words {
        host,
        origin,
        pinned,
        range,
        range_note,
        ..
    } = w;
    match reason {
        OriginUnreachable => vec![
            format!("Check the path from here: `ping {origin}`, `mtr -rwc 20 {origin}`."),
            "From the origin's console: is the server up, are its interface and routes up (`ip link`, `ip route`)?".into(),
            "Ask the data center or hosting provider about an outage on the server or its link.".into(),
        ],
        WebServiceDown => vec![
            "On the origin: `systemctl status nginx` (or apache2, httpd, ...), `ss -ltnp`, `journalctl -u nginx -n 50`.".into(),
            "Restart it (`systemctl restart nginx`) and find why it stopped (out of memory, a bad config: `nginx -t`).".into(),
        ],
        OriginHttpErrors => vec![
            format!("See the error the origin gives: {pinned}"),
            "Read the web server's error log and the application's logs on the origin; check the application's own backends (database, upstreams).".into(),
        ],
        OriginSlow => vec![
            format!("Time the origin directly: {} -w 'connect %{{time_connect}} first byte %{{time_starttransfer}} total %{{time_total}}\\n'", pinned),
            "On the origin: `top`, the slow requests in the logs, the database and upstreams the application waits on.".into(),
            "Add capacity or fix the slow path; raising the proxy's origin timeout only hides it.".into(),
        ],
        CpuSaturated | MemorySaturated => vec![
            "On the origin: `top -o %CPU` / `top -o %MEM`: which process uses it?".into(),
            "If it is the web server under a flood, check who connects (`origin_exposed`); otherwise add capacity.".into(),
        ],
        BandwidthSaturated => vec![
            "On the origin: `iftop` or `nload` on the busy interface: whose traffic fills it?".into(),
            "Traffic from outside the forwarding ranges means a direct attack: allow only the ranges on the web ports; otherwise raise the link's capacity.".into(),
        ],
        OriginExposed => vec![
            "On the origin, list who connects: `ss -tn state established '( sport = :80 or sport = :443 )'`.".into(),
            format!("Accept the web ports only from the forwarding range{range_note}: `iptables -A INPUT -p tcp -m multiport --dports 80,443 ! -s {range} -j DROP`."),
            "Then change the origin's address, and keep it out of DNS records, mail headers and public history.".into(),
        ],
        OriginTlsError => vec![
            format!("See what the origin's TLS says: `openssl s_client -connect {origin}:443 -servername {host} </dev/null | openssl x509 -noout -dates -subject -issuer`."),
            "Renew or fix the certificate (its dates, its names, the whole chain) and reload the web server; check what TLS the proxy expects of the origin (its SSL mode, a client certificate).".into(),
        ],
        _ => Vec::new(),
    }
}

/// Loss or jitter on the path: measure it hop by hop.
fn network(reason: Reason, w: &Words) -> Vec<String> {
    use Reason::*;
    let Words { origin, .. } = w;
    match reason {
        PacketLoss | Jitter => vec![
            format!("Measure the path: `mtr -rwc 100 {origin}` (and to the proxy address), from here and from another network."),
            "If the loss is in your provider's network, call the ISP or move the proxy's linkage (another line, region or route).".into(),
        ],
        _ => Vec::new(),
    }
}

/// What is not a 502 cause: the proxy itself out of reach, or our own view
/// (a vantage cut off, an origin we may not probe, the proxy answering us
/// itself). The exporter's own troubles (a target down, a collector
/// failing) have their steps in the runbook only.
fn proxy_or_exporter(reason: Reason, w: &Words) -> Vec<String> {
    use Reason::*;
    let Words {
        host,
        port,
        url,
        proxy,
        ..
    } = w;
    match reason {
        ProxyUnreachable => vec![
            format!("Check the proxy from here: `curl -sv -o /dev/null --resolve {host}:{port}:{proxy} '{url}'`, `nc -vz -w 5 {proxy} {port}`."),
            "Check the proxy service (its status page, its health, the DNS records that point at it, its certificate) and its account with the provider.".into(),
        ],
        VantageCutOff => vec![
            "Check this machine's network: `ip route` (a default route?), `ip link` (interfaces up?), `resolvectl status` or /etc/resolv.conf (a resolver?).".into(),
            "Run diagnose again from a machine whose network works, or from the proxy host.".into(),
        ],
        ProxyOwnAnswer => vec![
            "The proxy answers the prober itself (its WAF, a bot challenge, its own error page): allowlist the prober's address in the proxy's WAF or security level, or probe a path its rules let through.".into(),
            format!("See the page: `curl -s --resolve {host}:{port}:{proxy} '{url}' | head -40`."),
        ],
        OriginNotProbeable => vec![
            "Admit this prober's address on the origin's web ports next to the forwarding ranges, or run diagnose from a host the origin admits.".into(),
            "Ask the origin agent (`--agent`): it sees the firewall and the web server from inside.".into(),
        ],
        _ => Vec::new(),
    }
}
