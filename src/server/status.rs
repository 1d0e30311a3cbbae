// Why one file: the page's sections share one escaping writer and one
// table layout; split, each part would import the others.
//! The status page at `/`: plain HTML rendered on the server, no script.
//! For each site: its verdict, judged as `diagnose` judges a round (the
//! vantage judged over every site's latest result, as
//! `badgateway_vantage_up` is); each target's last result; the site's last
//! rounds. `?site=NAME` shows one site; `&debug=1` adds its last round as a
//! log, as blackbox_exporter's `debug=true` does. Every text that comes
//! from the configuration or the network is escaped.
//!
//! With many sites the page stays cheap: the sites that are not healthy
//! come first, then the healthy ones, [`PAGE`] a page (`?page=N`); only the
//! sites shown are judged afresh, the others are sorted by the verdict of
//! their last round, kept when it ended.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use serde::Deserialize;

use crate::config::Site;
use crate::diagnosis::{self, Evidence, Reason, Verdict};
use crate::prober::probe::{EchoRound, HttpOutcome};
use crate::prober::results::{Results, RoundSummary, SiteEntry, TargetResult};
use crate::prober::scheduler::Scheduler;

/// Sites shown on one page.
pub const PAGE: usize = 50;

/// What the page is asked for.
#[derive(Debug, Default, Deserialize)]
pub struct Query {
    /// One site only.
    pub site: Option<String>,
    /// With `site`: the last round as a log (`1` or `true`).
    pub debug: Option<String>,
    /// The page of the site list, from 1.
    pub page: Option<usize>,
}

impl Query {
    fn debug(&self) -> bool {
        matches!(self.debug.as_deref(), Some("1" | "true" | "yes"))
    }
}

/// The configuration of the sites probed here.
pub trait Sites {
    fn count(&self) -> usize;
    fn site(&self, name: &str) -> Option<&Site>;
}

impl Sites for Scheduler {
    fn count(&self) -> usize {
        self.len()
    }

    fn site(&self, name: &str) -> Option<&Site> {
        Scheduler::site(self, name)
    }
}

/// What the page is made from.
pub struct Context<'a> {
    pub results: &'a Results,
    pub sites: &'a dyn Sites,
    /// The origin agent runs in this exporter.
    pub agent: bool,
}

/// The page asked for by `q`, with its status.
pub fn render(ctx: &Context<'_>, q: &Query) -> (StatusCode, String) {
    let mut out = String::with_capacity(64 * 1024);
    let status = match &q.site {
        Some(name) => one_site(&mut out, ctx, name, q.debug()),
        None => {
            overview(&mut out, ctx, q.page.unwrap_or(1));
            StatusCode::OK
        }
    };
    out.push_str("</body>\n</html>\n");
    (status, out)
}

/// HTML-escape `s`: text and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `?site=NAME`, the name percent-encoded.
fn site_href(name: &str, debug: bool) -> String {
    let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    let debug = if debug { "&debug=1" } else { "" };
    escape(&format!("?site={name}{debug}"))
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em 2em}\
table{border-collapse:collapse;margin:.5em 0}\
th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}\
th{background:#eee}.failing{color:#a00}.healthy{color:#060}\
pre{background:#f6f6f6;padding:.5em;overflow-x:auto}";

/// The document's head, the title, what the exporter is and its links.
fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>badgateway-exporter</h1>\n\
         <p>Tells why a site behind a protecting proxy answers 502 Bad Gateway. Version {}.</p>\n\
         <nav><ul>\n<li><a href=\"metrics\">Metrics</a></li>\n<li><a href=\"-/healthy\">Health</a></li>\n\
         <li><a href=\"-/ready\">Readiness</a></li>\n</ul></nav>\n",
        escape(title),
        env!("CARGO_PKG_VERSION"),
    );
}

/// Every site, those not healthy first, one page of them.
fn overview(out: &mut String, ctx: &Context<'_>, page: usize) {
    head(out, "badgateway-exporter");
    out.push_str("<h2>Sites</h2>\n");
    let configured = ctx.sites.count();
    if configured == 0 {
        let agent = if ctx.agent {
            " This exporter runs the origin agent: its metrics are under Metrics."
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<p id=\"no-sites\">No sites are probed here.{agent}</p>"
        );
        return;
    }
    let all = ctx.results.overview();
    let cut_off = diagnosis::vantage_cut_off(all.iter().map(|(_, e, _)| &e.result));
    let (mut order, healthy): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|(_, _, last)| cut_off || !last.healthy_if_not_cut_off());
    let failing = order.len();
    order.extend(healthy);
    let pages = order.len().div_ceil(PAGE).max(1);
    let page = page.clamp(1, pages);
    let shown = &order[(page - 1) * PAGE..(page * PAGE).min(order.len())];
    let _ = writeln!(
        out,
        "<p id=\"counts\">{configured} site(s) probed: {failing} not healthy, {} healthy, {} \
         without a finished round yet. Sites not healthy first, {PAGE} a page: page {page} of {pages}.</p>",
        order.len() - failing,
        configured.saturating_sub(order.len()),
    );
    if cut_off {
        out.push_str("<p class=\"failing\">This vantage is cut off: what it probes fails from here, which says nothing about the sites.</p>\n");
    }
    let judged: Vec<Verdict> = shown
        .iter()
        .map(|(_, e, _)| judge(&e.result, cut_off))
        .collect();
    sites_table(out, shown, &judged);
    pager(out, page, pages);
    for ((name, entry, _), verdict) in shown.iter().zip(&judged) {
        let site = ctx.sites.site(name);
        site_section(out, ctx, name, site, entry, verdict);
    }
}

fn judge(result: &crate::prober::results::SiteResult, cut_off: bool) -> Verdict {
    diagnosis::judge(&Evidence::from_round(result, cut_off, None))
}

type Row<'a> = &'a (String, Arc<SiteEntry>, RoundSummary);

/// One row per site shown: its verdict, when its last round ended, and
/// how many of that round's requests failed.
fn sites_table(out: &mut String, shown: &[Row<'_>], judged: &[Verdict]) {
    out.push_str(
        "<table id=\"sites\">\n<thead><tr><th>Site</th><th>Verdict</th><th>Reason</th>\
         <th>Last round</th><th>Failed requests</th></tr></thead>\n<tbody>\n",
    );
    for ((name, entry, last), verdict) in shown.iter().zip(judged) {
        let (class, cause, reason) = verdict_words(verdict);
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td><a href=\"#site-{id}\">{id}</a> (<a href=\"{href}\">alone</a>)</td>\
             <td>{cause}</td><td>{reason}</td><td>{}</td><td>{} of {}</td></tr>",
            when(entry.result.finished),
            last.failed,
            last.requests,
            id = escape(name),
            href = site_href(name, false),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// (class, cause, reason) of a verdict, for a table cell.
fn verdict_words(v: &Verdict) -> (&'static str, &'static str, &'static str) {
    match v.first() {
        _ if v.healthy() => ("healthy", "healthy", ""),
        Some(f) => ("failing", f.cause().as_str(), f.reason.as_str()),
        None => ("failing", "unexplained", "a failure no cause explains"),
    }
}

fn pager(out: &mut String, page: usize, pages: usize) {
    if pages < 2 {
        return;
    }
    out.push_str("<p class=\"pager\">");
    if page > 1 {
        let _ = write!(out, "<a href=\"?page={}\">previous page</a> ", page - 1);
    }
    if page < pages {
        let _ = write!(out, "<a href=\"?page={}\">next page</a>", page + 1);
    }
    out.push_str("</p>\n");
}

/// `?site=NAME`: that site alone, with its log when `debug`.
fn one_site(out: &mut String, ctx: &Context<'_>, name: &str, debug: bool) -> StatusCode {
    head(out, &format!("{name} - badgateway-exporter"));
    out.push_str("<p><a href=\"./\">All sites</a></p>\n");
    let Some(site) = ctx.sites.site(name) else {
        let _ = writeln!(
            out,
            "<h2>Unknown site</h2>\n<p id=\"unknown-site\" class=\"failing\">No site named \
             &quot;{}&quot; is probed here.</p>",
            escape(name)
        );
        return StatusCode::NOT_FOUND;
    };
    let Some(entry) = ctx.results.site(name) else {
        let _ = writeln!(
            out,
            "<h2 id=\"site-{id}\">{id}</h2>\n<p>{}</p>\n<p>Its first round has not finished yet.</p>",
            escape(site.url.as_str()),
            id = escape(name),
        );
        return StatusCode::OK;
    };
    let all = ctx.results.snapshot();
    let cut_off = diagnosis::vantage_cut_off(all.iter().map(|e| &e.result));
    drop(all);
    let verdict = judge(&entry.result, cut_off);
    site_section(out, ctx, name, Some(site), &entry, &verdict);
    if debug {
        let _ = writeln!(
            out,
            "<h2 id=\"debug\">Last round, as a log</h2>\n<pre id=\"log\">{}</pre>",
            escape(&round_log(name, &entry, &verdict))
        );
    } else {
        let _ = writeln!(
            out,
            "<p><a href=\"{}\">The last round as a log</a></p>",
            site_href(name, true)
        );
    }
    StatusCode::OK
}

/// A site's verdict, its targets' last results and its last rounds.
fn site_section(
    out: &mut String,
    ctx: &Context<'_>,
    name: &str,
    site: Option<&Site>,
    entry: &SiteEntry,
    verdict: &Verdict,
) {
    let id = escape(name);
    let _ = writeln!(
        out,
        "<section class=\"site\">\n<h3 id=\"site-{id}\">{id}</h3>"
    );
    if let Some(site) = site {
        let _ = writeln!(
            out,
            "<p class=\"url\">{}, every {}</p>",
            escape(site.url.as_str()),
            humantime::format_duration(site.interval)
        );
    }
    verdict_block(out, verdict);
    out.push_str("<h4>Targets, last round</h4>\n");
    targets_table(out, &entry.result.targets);
    out.push_str("<h4>Last rounds</h4>\n");
    history_table(out, &ctx.results.history(name));
    out.push_str("</section>\n");
}

/// The verdict: healthy, or the first finding's cause and reason with its
/// evidence, then the other findings and what no cause explains.
fn verdict_block(out: &mut String, v: &Verdict) {
    if v.healthy() {
        out.push_str("<p class=\"verdict healthy\">healthy</p>\n");
    } else if v.findings.is_empty() {
        out.push_str(
            "<p class=\"verdict failing\"><strong>unexplained</strong>: a failure no cause explains</p>\n",
        );
    }
    for (i, f) in v.findings.iter().enumerate() {
        let lead = if i == 0 { "" } else { "Also: " };
        let _ = writeln!(
            out,
            "<p class=\"verdict failing\">{lead}<strong>{}</strong>: {} &mdash; {}</p>",
            f.cause().as_str(),
            f.reason.as_str(),
            escape(f.reason.meaning()),
        );
        list(out, "evidence", &f.evidence);
    }
    for (title, lines) in [
        ("Unexplained", &v.unexplained),
        ("Against", &v.against),
        ("Notes", &v.notes),
    ] {
        if !lines.is_empty() {
            let _ = writeln!(out, "<p>{title}:</p>");
            list(out, &title.to_ascii_lowercase(), lines);
        }
    }
}

fn list(out: &mut String, class: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "<ul class=\"{class}\">");
    for l in lines {
        let _ = writeln!(out, "<li>{}</li>", escape(l));
    }
    out.push_str("</ul>\n");
}

/// Each (path, address): the round's first failed request (else its
/// last), its phases, and the echoes.
fn targets_table(out: &mut String, targets: &[TargetResult]) {
    out.push_str(
        "<table class=\"targets\">\n<thead><tr><th>Path</th><th>Address</th><th>Status</th>\
         <th>Error</th><th>Detail</th><th>Failed requests</th><th>Resolve ms</th><th>Connect ms</th>\
         <th>TLS ms</th><th>Processing ms</th><th>Transfer ms</th><th>Total ms</th>\
         <th>ICMP</th><th>TCP handshakes</th></tr></thead>\n<tbody>\n",
    );
    for t in targets {
        let h = &t.http;
        let class = if h.success() { "healthy" } else { "failing" };
        let _ = write!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td>",
            t.path.as_str(),
            escape(&t.address),
            h.status.map_or("-".into(), |s| s.to_string()),
            h.error.map_or("-", |e| e.as_str()),
            escape(h.detail.as_deref().unwrap_or("-")),
            t.failed_requests(),
            t.requests,
        );
        for (_, d) in h.phases.iter() {
            let _ = write!(out, "<td>{}</td>", ms(d));
        }
        let _ = writeln!(
            out,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            ms(Some(h.duration)),
            echo(t.icmp.as_ref()),
            echo(t.tcp.as_ref()),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The site's last rounds, newest first.
fn history_table(out: &mut String, history: &[RoundSummary]) {
    out.push_str(
        "<table class=\"history\">\n<thead><tr><th>Finished</th><th>Verdict</th>\
         <th>Failed requests</th></tr></thead>\n<tbody>\n",
    );
    for r in history.iter().rev() {
        let (class, words) = summary_words(r);
        let _ = writeln!(
            out,
            "<tr class=\"{class}\"><td>{}</td><td>{words}</td><td>{} of {}</td></tr>",
            when(r.finished),
            r.failed,
            r.requests
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

/// (class, "cause: reason" or "healthy") of a past round.
fn summary_words(r: &RoundSummary) -> (&'static str, String) {
    let reason = if r.cut_off {
        Some(Reason::VantageCutOff.as_str())
    } else {
        r.reason
    };
    match reason {
        Some(reason) => {
            let cause = Reason::from_name(reason).map_or("", |r| r.cause().as_str());
            ("failing", format!("{cause}: {reason}"))
        }
        None if r.unexplained => ("failing", "unexplained failure".into()),
        None => ("healthy", "healthy".into()),
    }
}

/// A time, and how long ago it was.
fn when(t: SystemTime) -> String {
    let ago = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    format!("{} ({ago} s ago)", humantime::format_rfc3339_seconds(t))
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

/// Echoes of a round: loss, and the round trip's average and deviation.
fn echo(e: Option<&EchoRound>) -> String {
    let Some(e) = e else {
        return "-".into();
    };
    let rtt = e.rtt.map_or(String::new(), |r| {
        format!(
            ", rtt {} &plusmn; {} ms",
            ms(Some(r.avg)),
            ms(Some(r.stddev))
        )
    });
    format!("{:.0}% lost of {}{rtt}", e.loss_ratio() * 100.0, e.sent)
}

/// The last round as blackbox_exporter's debug output tells a probe: one
/// line per step, `key=value` (plain text; the caller escapes it).
fn round_log(name: &str, entry: &SiteEntry, verdict: &Verdict) -> String {
    let r = &entry.result;
    let ts = humantime::format_rfc3339_millis(r.finished);
    let mut log = format!(
        "Logs for the last round of site {name:?}:\nts={ts} msg=\"Round finished\" targets={} forwarding_ip_blocked={}\n",
        r.targets.len(),
        r.forwarding_ip_blocked
    );
    for t in &r.targets {
        target_log(&mut log, &ts.to_string(), t);
    }
    let _ = writeln!(log, "\nVerdict:");
    if verdict.healthy() {
        let _ = writeln!(log, "healthy");
    }
    for f in &verdict.findings {
        let _ = writeln!(
            log,
            "cause={} reason={}",
            f.cause().as_str(),
            f.reason.as_str()
        );
        for e in &f.evidence {
            let _ = writeln!(log, "  {e}");
        }
    }
    for u in &verdict.unexplained {
        let _ = writeln!(log, "unexplained: {u}");
    }
    log
}

fn target_log(log: &mut String, ts: &str, t: &TargetResult) {
    let at = format!("ts={ts} path={} address={:?}", t.path.as_str(), t.address);
    let h: &HttpOutcome = &t.http;
    let _ = writeln!(
        log,
        "{at} msg=\"Probing HTTP\" requests={} failed={} unsent={} (the first failed request is shown, else the last)",
        t.requests,
        t.failed_requests(),
        t.unsent
    );
    if let Some(ip) = h.resolved {
        let _ = writeln!(log, "{at} msg=\"Resolved target address\" ip={ip}");
    }
    let phases: Vec<String> = h
        .phases
        .iter()
        .iter()
        .map(|(p, d)| format!("{p}_ms={}", ms(*d)))
        .collect();
    let _ = writeln!(
        log,
        "{at} msg=\"Phases\" {} duration_ms={}",
        phases.join(" "),
        ms(Some(h.duration))
    );
    if let Some(s) = h.status {
        let _ = writeln!(log, "{at} msg=\"Received HTTP response\" status_code={s}");
    }
    match h.error {
        None => {
            let _ = writeln!(log, "{at} msg=\"Probe succeeded\"");
        }
        Some(e) => {
            let detail = h.detail.as_deref().unwrap_or("");
            let _ = writeln!(log, "{at} msg=\"Probe failed\" error={e} detail={detail:?}");
        }
    }
    if let Some(sig) = h.proxy_signature {
        let _ = writeln!(log, "{at} msg=\"The proxy's own page\" signature={sig}");
    }
    for (what, e) in [("ICMP echoes", &t.icmp), ("TCP handshakes", &t.tcp)] {
        if let Some(e) = e {
            let rtt = e.rtt.map_or(String::new(), |r| {
                format!(
                    " rtt_min_ms={} rtt_avg_ms={} rtt_max_ms={} rtt_stddev_ms={}",
                    ms(Some(r.min)),
                    ms(Some(r.avg)),
                    ms(Some(r.max)),
                    ms(Some(r.stddev))
                )
            });
            let _ = writeln!(
                log,
                "{at} msg=\"{what}\" sent={} received={}{rtt}",
                e.sent, e.received
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::answer::Kind;
    use crate::prober::probe::{ErrorKind, Path, Phases};

    /// The sites of a configuration, as the scheduler runs them.
    impl Sites for crate::config::Config {
        fn count(&self) -> usize {
            self.sites.len()
        }

        fn site(&self, name: &str) -> Option<&Site> {
            self.sites.iter().find(|s| s.name == name)
        }
    }

    const NASTY: &str = "<b>&\"'";

    fn target() -> TargetResult {
        let http = HttpOutcome {
            status: Some(502),
            error: Some(ErrorKind::HttpStatus),
            detail: Some(format!("a detail {NASTY}")),
            phases: Phases {
                connect: Some(Duration::from_micros(1500)),
                ..Phases::default()
            },
            duration: Duration::from_millis(3),
            ..HttpOutcome::default()
        };
        let mut t = TargetResult::new(Path::Proxy, "198.51.100.10", http);
        t.requests = 3;
        t.failures = [1; Kind::ALL.len()];
        t.icmp = Some(EchoRound {
            sent: 4,
            received: 3,
            rtt: None,
        });
        t
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(escape(NASTY), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(site_href("a b&c", true), "?site=a+b%26c&amp;debug=1");
    }

    #[test]
    fn a_target_row_escapes_what_the_network_said() {
        let mut out = String::new();
        targets_table(&mut out, &[target()]);
        assert!(out.contains("a detail &lt;b&gt;&amp;&quot;&#39;"), "{out}");
        assert!(!out.contains(NASTY), "{out}");
        assert!(out.contains("<td>502</td><td>http_status</td>"), "{out}");
        assert!(out.contains("<td>1.5</td>"), "{out}");
        assert!(out.contains("25% lost of 4"), "{out}");
    }

    #[test]
    fn the_verdict_shows_its_evidence_escaped() {
        let mut v = Verdict::default();
        let mut out = String::new();
        verdict_block(&mut out, &v);
        assert!(out.contains("class=\"verdict healthy\">healthy<"), "{out}");
        v.findings.push(diagnosis::Finding::new(
            Reason::ProxyUnreachable,
            vec![NASTY.into()],
        ));
        let mut out = String::new();
        verdict_block(&mut out, &v);
        assert!(
            out.contains("<strong>proxy</strong>: proxy_unreachable"),
            "{out}"
        );
        assert!(out.contains("<li>&lt;b&gt;&amp;&quot;&#39;</li>"), "{out}");
    }

    #[test]
    fn a_past_round_in_words() {
        let t = target();
        let result = crate::prober::results::SiteResult::new(vec![t], SystemTime::now());
        let r = RoundSummary::new(&result, Some("web_service_down"), false, false);
        assert_eq!(r.failed, Kind::ALL.len() as u32);
        assert_eq!(summary_words(&r).1, "origin_abnormal: web_service_down");
        let cut = RoundSummary { cut_off: true, ..r };
        assert_eq!(summary_words(&cut).1, "exporter: vantage_cut_off");
        let ok = RoundSummary { reason: None, ..r };
        assert_eq!(summary_words(&ok), ("healthy", "healthy".into()));
        let log = round_log(
            "s",
            &SiteEntry {
                labels: crate::prober::results::Labels::new("s", &result),
                result,
            },
            &Verdict::default(),
        );
        assert!(
            log.contains("msg=\"Probe failed\" error=http_status"),
            "{log}"
        );
        assert!(log.contains("connect_ms=1.5"), "{log}");
    }

    /// 10,000 sites, half failing: one page of 50, failing first, counted,
    /// and rendered quickly.
    #[test]
    fn ten_thousand_sites_one_page() {
        const N: usize = 10_000;
        let mut yaml =
            String::from("probe: {interval: 1h, timeout: 1s, icmp: {enabled: false}}\nsites:\n");
        for i in 0..N {
            let _ = writeln!(
                yaml,
                "- {{name: s{i:05}, url: 'http://127.0.0.1:1/', origin: [127.0.0.1]}}"
            );
        }
        let config = crate::config::Config::parse(yaml.as_bytes(), "test").unwrap();
        let results = Results::new();
        for i in 0..N {
            let mut t = target();
            let failing = i % 2 == 1;
            if !failing {
                t.http.error = None;
                t.http.status = Some(200);
                t.failures = [0; Kind::ALL.len()];
            }
            let result = crate::prober::results::SiteResult::new(vec![t], SystemTime::now());
            let reason = failing.then_some("proxy_unreachable");
            let summary = RoundSummary::new(&result, reason, false, false);
            results.record(&format!("s{i:05}"), result, summary);
        }
        let ctx = Context {
            results: &results,
            sites: &config,
            agent: false,
        };
        let started = std::time::Instant::now();
        let (status, page) = render(&ctx, &Query::default());
        let took = started.elapsed();
        eprintln!("10,000 sites, page 1: {took:?}");
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("10000 site(s) probed: 5000 not healthy, 5000 healthy"),
            "{page}"
        );
        assert!(page.contains("page 1 of 200"), "{page}");
        let table = page.split("<table id=\"sites\">").nth(1).unwrap();
        let table = table.split("</table>").next().unwrap();
        assert_eq!(table.matches("<tr class=\"failing\">").count(), PAGE);
        assert!(table.contains("#site-s00001\""), "{table}");
        assert!(page.contains("href=\"?page=2\">next page"), "{page}");
        // Past the failing ones: the healthy ones, from the first.
        let q = Query {
            page: Some(101),
            ..Query::default()
        };
        let (_, page) = render(&ctx, &q);
        assert!(page.contains("<a href=\"#site-s00000\">"), "{page}");
        // Generous for a debug build on a busy machine; a release build
        // takes a few milliseconds.
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
