//! The status page at `/` from the real binary: a healthy site against a
//! local HTTP server and a site on a closed port, read as HTML and as a
//! headless browser renders it; the one-site view and its log; an unknown
//! site; an exporter with no sites.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::exporter::spawn;
use common::origin::OriginServer;
use common::{browser, http_get, wait, Proc};

/// A path with what HTML must escape (the URL parser encodes `<`, `>` and
/// `"` itself; `&` and `'` stay as they are).
const PATH: &str = "/a&b'c<b>\"";

fn config(up: u16, down: u16) -> String {
    format!(
        "probe:\n  interval: 1s\n  timeout: 1s\n  icmp: {{enabled: false}}\nsites:\n\
         - name: up\n  url: \"http://127.0.0.1:{up}{}\"\n  proxy: [127.0.0.1]\n  origin: [127.0.0.1]\n\
         - name: down\n  url: http://127.0.0.1:{down}/\n  proxy: [127.0.0.1]\n  origin: [127.0.0.1]\n",
        PATH.replace('"', "\\\"")
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The exporter probing both sites, once each has a few rounds behind it
/// and the healthy one is judged healthy.
fn start(dir: &Path) -> (OriginServer, Proc, SocketAddr) {
    let origin = OriginServer::start(None, "127.0.0.1:0".parse().unwrap());
    let file = dir.join("config.yml");
    std::fs::write(&file, config(origin.addr.port(), closed_port())).unwrap();
    let (exporter, addr) = spawn(
        &["--config", file.to_str().unwrap()],
        &dir.join("exporter.log"),
    );
    wait::until(Duration::from_secs(20), Duration::from_millis(200), || {
        let (_, page) = http_get(addr, "/").map_err(|e| e.to_string())?;
        let rounds = page.matches("<tr class=\"healthy\"><td>20").count();
        let failed = page.matches("<td>proxy: proxy_unreachable</td>").count();
        if page.contains("<tr class=\"healthy\"><td><a href=\"#site-up\">")
            && rounds >= 2
            && failed >= 2
        {
            Ok(())
        } else {
            Err(format!("not yet:\n{page}"))
        }
    });
    (origin, exporter, addr)
}

#[test]
fn the_page_shows_verdicts_targets_and_history_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let (_origin, _exporter, addr) = start(dir.path());
    let (status, page) = http_get(addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for link in ["href=\"metrics\"", "href=\"-/healthy\"", "href=\"-/ready\""] {
        assert!(page.contains(link), "{link}:\n{page}");
    }
    assert!(page.contains(env!("CARGO_PKG_VERSION")));
    // The failing site first, with the cause and reason diagnose gives.
    let down = page
        .find("<tr class=\"failing\"><td><a href=\"#site-down\">")
        .expect(&page);
    let up = page
        .find("<tr class=\"healthy\"><td><a href=\"#site-up\">")
        .expect(&page);
    assert!(down < up, "{page}");
    assert!(
        page.contains("<td>proxy</td><td>proxy_unreachable</td>"),
        "{page}"
    );
    assert!(page.contains("1 not healthy, 1 healthy"), "{page}");
    assert!(
        page.contains("<p class=\"verdict healthy\">healthy</p>"),
        "{page}"
    );
    assert!(
        page.contains("<strong>proxy</strong>: proxy_unreachable"),
        "{page}"
    );
    // Its evidence, and its targets' last results.
    assert!(
        page.contains("<li>proxy 127.0.0.1: connect_refused"),
        "{page}"
    );
    assert!(
        page.contains("<td>proxy</td><td>127.0.0.1</td><td>-</td><td>connect_refused</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td>origin</td><td>127.0.0.1</td><td>200</td><td>-</td>"),
        "{page}"
    );
    assert_eq!(page.matches("<table class=\"targets\">").count(), 2);
    assert_eq!(page.matches("<table class=\"history\">").count(), 2);
    // The URL escaped: never raw in the page.
    assert!(page.contains("/a&amp;b&#39;c%3Cb%3E%22"), "{page}");
    assert!(!page.contains("a&b'c"), "{page}");
    assert!(!page.contains("<b>"), "{page}");
}

#[test]
fn one_site_its_log_and_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_origin, _exporter, addr) = start(dir.path());
    let (status, page) = http_get(addr, "/?site=down").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<h3 id=\"site-down\">down</h3>"), "{page}");
    assert!(!page.contains("site-up"), "{page}");
    assert!(page.contains("href=\"?site=down&amp;debug=1\""), "{page}");
    assert!(!page.contains("<pre"), "{page}");

    let (status, page) = http_get(addr, "/?site=down&debug=1").unwrap();
    assert_eq!(status, 200);
    let log = page
        .split_once("<pre id=\"log\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(log, _)| log)
        .expect(&page);
    for line in [
        "path=proxy address=&quot;127.0.0.1&quot; msg=&quot;Probing HTTP&quot; requests=",
        "msg=&quot;Probe failed&quot; error=connect_refused detail=&quot;connecting to 127.0.0.1:",
        "connect_ms=",
        "msg=&quot;TCP handshakes&quot; sent=",
        "cause=proxy reason=proxy_unreachable",
    ] {
        assert!(log.contains(line), "{line}:\n{log}");
    }

    let (status, page) = http_get(addr, "/?site=up&debug=1").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("msg=&quot;Probe succeeded&quot;"), "{page}");
    assert!(page.contains("status_code=200"), "{page}");

    let (status, page) = http_get(addr, "/?site=nope%3Cb%3E").unwrap();
    assert_eq!(status, 404);
    assert!(
        page.contains("No site named &quot;nope&lt;b&gt;&quot; is probed here."),
        "{page}"
    );
    assert!(page.contains("href=\"metrics\""), "{page}");
}

#[test]
fn no_sites_a_short_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_exporter, addr) = spawn(&[], &dir.path().join("exporter.log"));
    let (status, page) = http_get(addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("<p id=\"no-sites\">No sites are probed here."),
        "{page}"
    );
    assert!(page.contains("origin agent"), "{page}");
    assert!(page.contains("href=\"metrics\""), "{page}");
    assert!(!page.contains("<table"), "{page}");
}

/// As a browser builds the page: the headings, the sites table with one
/// row per site, and a screenshot that is a real PNG.
#[test]
fn a_headless_browser_renders_the_page() {
    if let Err(why) = browser::available() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_origin, _exporter, addr) = start(dir.path());
    let url = format!("http://{addr}/");
    let dom = browser::run(dir.path(), &["--dump-dom"], &url);
    assert!(dom.contains("<h1>badgateway-exporter</h1>"), "{dom}");
    assert!(dom.contains("<h2>Sites</h2>"), "{dom}");
    let table = dom
        .split_once("<table id=\"sites\">")
        .and_then(|(_, rest)| rest.split_once("</table>"))
        .map(|(t, _)| t)
        .expect(&dom);
    let body = table.split_once("<tbody>").expect(table).1;
    assert_eq!(body.matches("<tr").count(), 2, "{table}");
    assert!(
        body.contains("#site-down") && body.contains("#site-up"),
        "{table}"
    );
    assert_eq!(dom.matches("<section class=\"site\">").count(), 2, "{dom}");

    let png = dir.path().join("page.png");
    let shot = format!("--screenshot={}", png.display());
    browser::run(dir.path(), &[&shot, "--window-size=1200,900"], &url);
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.len() > 1000, "{} bytes", bytes.len());
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
}
