//! How `diagnose` shows its result: the verdict first, then the evidence
//! (proxy and origin side by side), then the next steps; or the same as
//! JSON for scripts (the schema is in the README).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::steps::{self, Context};
use crate::config::Site;
use crate::diagnosis::{AgentEvidence, Verdict};
use crate::prober::probe::EchoRound;
use crate::prober::results::{SiteResult, TargetResult};

/// Colour only on a terminal, and never when NO_COLOR is set.
pub fn colour_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A line on stderr while the round runs, when a person is watching.
pub struct Progress {
    started: Instant,
    shown: bool,
}

impl Progress {
    pub fn start(site: &Site, json: bool) -> Progress {
        let shown = !json && std::io::stderr().is_terminal();
        if shown {
            let proxies = if site.proxy.is_empty() {
                format!("{} (every address by DNS)", site.host())
            } else {
                join(site.proxy.iter().map(|a| a.to_string()))
            };
            eprint!(
                "probing {} through the proxy {} and straight to the origin {} ...",
                site.url,
                proxies,
                join(site.origin.iter().map(|a| a.to_string()))
            );
        }
        Progress {
            started: Instant::now(),
            shown,
        }
    }

    pub fn finish(self) {
        if self.shown {
            eprintln!(" done in {:.1} s", self.started.elapsed().as_secs_f64());
        }
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

pub struct Report<'a> {
    pub site: &'a Site,
    pub round: &'a SiteResult,
    pub verdict: &'a Verdict,
    pub agent: &'a Result<AgentEvidence, String>,
    pub icmp_available: bool,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

impl Report<'_> {
    fn context(&self) -> Context<'_> {
        Context {
            site: self.site,
            ranges: match self.agent {
                Ok(a) => a.firewall.iter().map(|(r, _)| r.clone()).collect(),
                Err(_) => Vec::new(),
            },
        }
    }

    /// The report for a terminal: the verdict, the evidence table and the
    /// next steps, in that order.
    pub fn text(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| {
            if colour {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_owned()
            }
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            paint("1", &format!("badgateway diagnose {}", self.site.url))
        );
        let _ = writeln!(out);
        self.verdict_text(&mut out, &paint);
        self.evidence_text(&mut out);
        self.steps_text(&mut out);
        out
    }

    /// The VERDICT line, the other findings, and what was left unexplained,
    /// spoke against a cause, or is worth a note.
    fn verdict_text(&self, out: &mut String, paint: &dyn Fn(&str, &str) -> String) {
        let v = self.verdict;
        if v.healthy() {
            let _ = writeln!(out, "VERDICT  {}", paint("1;32", "healthy"));
            let _ = writeln!(
                out,
                "         Through the proxy and straight to the origin both answer as expected."
            );
        } else if let Some(first) = v.findings.first() {
            let _ = writeln!(
                out,
                "VERDICT  {}",
                paint(
                    "1;31",
                    &format!("{} / {}", first.cause().as_str(), first.reason.as_str())
                )
            );
            let _ = writeln!(out, "         {}", first.reason.meaning());
            for f in &v.findings[1..] {
                let _ = writeln!(
                    out,
                    "  also   {} / {}: {}",
                    f.cause().as_str(),
                    f.reason.as_str(),
                    f.reason.meaning()
                );
            }
        } else {
            let _ = writeln!(
                out,
                "VERDICT  {}",
                paint("1;33", "failing, cause not determined")
            );
        }
        for u in &v.unexplained {
            let _ = writeln!(out, "  failing {u}");
        }
        for a in &v.against {
            let _ = writeln!(out, "  against {a}");
        }
        for n in &v.notes {
            let _ = writeln!(out, "  note   {n}");
        }
    }

    /// The EVIDENCE table (one row per target), each finding's evidence and
    /// the origin agent's line.
    fn evidence_text(&self, out: &mut String) {
        let _ = writeln!(out, "\nEVIDENCE");
        let _ = writeln!(
            out,
            "  {:<7} {:<24} {:>6} {:>6} {:<16} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>8}",
            "path",
            "address",
            "failed",
            "status",
            "error",
            "connect",
            "tls",
            "1st byte",
            "total ms",
            "loss",
            "rtt ms",
            "jitter"
        );
        for t in &self.round.targets {
            let _ = writeln!(out, "{}", row(t));
        }
        if !self.icmp_available {
            let _ = writeln!(out, "  (no ICMP: run as root, grant CAP_NET_RAW, or allow unprivileged ping with sysctl net.ipv4.ping_group_range)");
        }
        for f in &self.verdict.findings {
            for e in &f.evidence {
                let _ = writeln!(out, "  - {e}");
            }
        }
        match self.agent {
            Ok(a) => {
                let _ = writeln!(out, "  origin agent: {}", agent_line(a));
            }
            Err(e) if e != "no --agent given" => {
                let _ = writeln!(out, "  origin agent: not read: {e}");
            }
            Err(_) => {}
        }
    }

    /// NEXT STEPS, numbered across the findings; nothing when there are none.
    fn steps_text(&self, out: &mut String) {
        let cx = self.context();
        let mut n = 0;
        let mut steps_text = String::new();
        for f in &self.verdict.findings {
            for s in steps::next_steps(f, &cx) {
                n += 1;
                let _ = writeln!(steps_text, "  {n}. {s}");
            }
        }
        if n > 0 {
            let _ = writeln!(out, "\nNEXT STEPS");
            out.push_str(&steps_text);
        }
    }

    pub fn json(&self) -> String {
        let v = self.verdict;
        let cx = self.context();
        let findings: Vec<Value> = v
            .findings
            .iter()
            .map(|f| {
                json!({
                    "cause": f.cause().as_str(),
                    "reason": f.reason.as_str(),
                    "summary": f.reason.meaning(),
                    "evidence": f.evidence,
                    "next_steps": steps::next_steps(f, &cx),
                })
            })
            .collect();
        let first = v.findings.first();
        let doc = json!({
            "url": self.site.url.as_str(),
            "healthy": v.healthy(),
            "cause": first.map(|f| f.cause().as_str()),
            "reason": first.map(|f| f.reason.as_str()),
            "findings": findings,
            "unexplained": v.unexplained,
            "against": v.against,
            "notes": v.notes,
            "forwarding_ip_blocked": self.round.forwarding_ip_blocked,
            "targets": self.round.targets.iter().map(target_json).collect::<Vec<_>>(),
            "icmp_available": self.icmp_available,
            "agent": self.agent.as_ref().ok(),
            "agent_error": self.agent.as_ref().err().filter(|e| *e != "no --agent given"),
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

/// One target's line: its requests (failed of sent), the representative
/// request's status and phases, and the path's loss from the echoes that
/// measure it (`tcp` after the figure when TCP handshakes did, for an
/// ICMP-silent address).
fn row(t: &TargetResult) -> String {
    let h = &t.http;
    let (loss, rtt, jitter) = match t.path_echoes() {
        Some(e) => (
            format!(
                "{:.0}%{}",
                e.loss_ratio() * 100.0,
                if t.icmp.is_some() && !t.icmp_silent {
                    ""
                } else {
                    " tcp"
                }
            ),
            ms(e.rtt.map(|r| r.avg)),
            ms(e.rtt.map(|r| r.stddev)),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    format!(
        "  {:<7} {:<24} {:>6} {:>6} {:<16} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8} {:>8}",
        t.path.as_str(),
        t.address,
        format!("{}/{}", t.failed_requests(), t.requests),
        h.status.map_or("-".into(), |s| s.to_string()),
        h.error.map_or("-", |e| e.as_str()),
        ms(h.phases.connect),
        ms(h.phases.tls),
        ms(h.phases.processing),
        ms(Some(h.duration)),
        loss,
        rtt,
        jitter
    )
}

fn agent_line(a: &AgentEvidence) -> String {
    let mut parts = Vec::new();
    let held = |s: Option<f64>| {
        s.filter(|s| *s > 0.0)
            .map(|s| format!(" (above 90% for {s:.0} s)"))
            .unwrap_or_default()
    };
    if let Some(c) = a.cpu_usage_ratio {
        parts.push(format!(
            "CPU {:.0}%{}",
            c * 100.0,
            held(a.cpu_saturated_seconds)
        ));
    }
    if let Some(m) = a.memory_usage_ratio {
        parts.push(format!(
            "memory {:.0}%{}",
            m * 100.0,
            held(a.memory_saturated_seconds)
        ));
    }
    for (p, up) in &a.processes {
        parts.push(format!("{p} {}", if *up { "up" } else { "DOWN" }));
    }
    for (r, v) in &a.firewall {
        parts.push(format!("firewall {r}: {v}"));
    }
    if let (Some(f), Some(o)) = (a.connections_forwarding, a.connections_other) {
        parts.push(format!("connections {f:.0} forwarding / {o:.0} other"));
    }
    if parts.is_empty() {
        "no evidence in its metrics".into()
    } else {
        parts.join(", ")
    }
}

fn target_json(t: &TargetResult) -> Value {
    let h = &t.http;
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let echoes = |r: Option<EchoRound>| {
        r.map(|i| {
            json!({
                "sent": i.sent,
                "received": i.received,
                "loss_ratio": i.loss_ratio(),
                "rtt_seconds": i.rtt.map(|r| json!({
                    "min": r.min.as_secs_f64(),
                    "avg": r.avg.as_secs_f64(),
                    "max": r.max.as_secs_f64(),
                    "stddev": r.stddev.as_secs_f64(),
                })),
            })
        })
    };
    json!({
        "path": t.path.as_str(),
        "address": t.address,
        "resolved": h.resolved.map(|ip| ip.to_string()),
        "success": t.failed_requests() == 0,
        "requests": t.requests,
        "failed_requests": t.failed_requests(),
        "failures": crate::diagnosis::answer::Kind::ALL
            .iter()
            .filter(|k| t.failures[k.index()] > 0)
            .map(|k| (k.as_str(), t.failures[k.index()]))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "forwarding_failures": t.forwarding_failures(),
        "proxy_signature": h.proxy_signature,
        "cert_not_after": h.cert_not_after.and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
        "status": h.status,
        "error": h.error.map(|e| e.as_str()),
        "detail": h.detail,
        "duration_seconds": h.duration.as_secs_f64(),
        "phases": {
            "resolve": secs(h.phases.resolve),
            "connect": secs(h.phases.connect),
            "tls": secs(h.phases.tls),
            "processing": secs(h.phases.processing),
            "transfer": secs(h.phases.transfer),
        },
        "icmp": echoes(t.icmp),
        "icmp_silent": t.icmp_silent,
        "tcp": echoes(t.tcp),
    })
}
