//! Reads an origin agent's `/metrics` for `diagnose --agent URL`.

use std::time::Duration;

use crate::diagnosis::verdict::AgentEvidence;

pub async fn fetch(url: &str) -> Result<AgentEvidence, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("reading the agent at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the agent at {url} answered {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("reading the agent at {url}: {e}"))?;
    Ok(parse(&text))
}

/// One sample of the text format: name, labels, value.
fn samples(text: &str) -> impl Iterator<Item = (&str, Vec<(&str, &str)>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match head.split_once('{') {
                None => (head, Vec::new()),
                Some((n, rest)) => (n, labels(rest.strip_suffix('}')?)),
            };
            Some((name, labels, value))
        })
}

/// Label pairs; values here never hold quotes or commas (bounded label
/// values the agent itself writes).
fn labels(text: &str) -> Vec<(&str, &str)> {
    text.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect()
}

fn label<'a>(labels: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

pub fn parse(text: &str) -> AgentEvidence {
    let mut a = AgentEvidence::default();
    for (name, labels, value) in samples(text) {
        match name {
            "badgateway_host_cpu_usage_ratio" => a.cpu_usage_ratio = Some(value),
            "badgateway_host_memory_usage_ratio" => a.memory_usage_ratio = Some(value),
            "badgateway_network_usage_ratio" => {
                let iface = label(&labels, "interface").unwrap_or("?").to_owned();
                if a.network_usage.as_ref().is_none_or(|(_, u)| value > *u) {
                    a.network_usage = Some((iface, value));
                }
            }
            "badgateway_process_up" => {
                if let Some(p) = label(&labels, "process") {
                    a.processes.push((p.to_owned(), value > 0.0));
                }
            }
            "badgateway_web_port_listening" => {
                if let Some(port) = label(&labels, "port").and_then(|p| p.parse().ok()) {
                    a.web_ports.push((port, value > 0.0));
                }
            }
            "badgateway_firewall_verdict" if value > 0.0 => {
                if let (Some(r), Some(v)) = (label(&labels, "range"), label(&labels, "verdict")) {
                    a.firewall.push((r.to_owned(), v.to_owned()));
                }
            }
            "badgateway_connections" => {
                let slot = match label(&labels, "class") {
                    Some("forwarding") => &mut a.connections_forwarding,
                    Some("other") => &mut a.connections_other,
                    _ => continue,
                };
                *slot = Some(slot.unwrap_or(0.0) + value);
            }
            "badgateway_access_log_responses_total"
                if label(&labels, "class") == Some("forwarding") =>
            {
                if let Some(s) = label(&labels, "status") {
                    a.forwarding_responses.push((s.to_owned(), value));
                }
            }
            _ => {}
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agent_families() {
        let text = "# HELP x y\nbadgateway_host_cpu_usage_ratio 0.95\n\
            badgateway_process_up{process=\"nginx\"} 0\n\
            badgateway_connections{class=\"other\",port=\"80\"} 60\n\
            badgateway_connections{class=\"other\",port=\"443\"} 40\n\
            badgateway_firewall_verdict{range=\"198.51.100.0/24\",verdict=\"blocked\"} 1\n\
            badgateway_firewall_verdict{range=\"198.51.100.0/24\",verdict=\"allowed\"} 0\n\
            badgateway_network_usage_ratio{interface=\"eth0\",direction=\"receive\"} 0.2\n\
            badgateway_network_usage_ratio{interface=\"eth0\",direction=\"transmit\"} 0.97\n";
        let a = parse(text);
        assert_eq!(a.cpu_usage_ratio, Some(0.95));
        assert_eq!(a.processes, vec![("nginx".to_owned(), false)]);
        assert_eq!(a.connections_other, Some(100.0));
        assert_eq!(a.connections_forwarding, None);
        assert_eq!(
            a.firewall,
            vec![("198.51.100.0/24".to_owned(), "blocked".to_owned())]
        );
        assert_eq!(a.network_usage, Some(("eth0".to_owned(), 0.97)));
    }
}
