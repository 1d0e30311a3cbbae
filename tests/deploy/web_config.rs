//! `deploy/web-config.example.yml`: `promtool check web-config`, and the
//! exporter serving it (401 without the password, 200 with it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::paths::{read, BIN};
use crate::common::proc::{both, must, output};
use crate::common::{tls, Proc};
use crate::tools::{need, served_address, tempdir, write};

/// A CA and a server certificate for `badgateway.test`, in `dir`: the
/// CA's, the certificate's and the key's files.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = tls::certificates(dir, "badgateway.test");
    (ca, dir.join("cert.pem"), dir.join("key.pem"))
}

/// deploy/web-config.example.yml with its certificate paths in `dir`.
fn web_config_for_test(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let text = read("deploy/web-config.example.yml")
        .replace(
            "/etc/badgateway-exporter/tls/server.crt",
            &cert.to_string_lossy(),
        )
        .replace(
            "/etc/badgateway-exporter/tls/server.key",
            &key.to_string_lossy(),
        );
    assert!(!text.contains("/etc/badgateway-exporter/tls/server."));
    let f = dir.join("web-config.yml");
    write(&f, &text);
    f
}

#[test]
fn web_config_example_checks_and_serves_tls_with_basic_auth() {
    need("promtool", "prometheus");
    need("curl", "curl");
    let dir = tempdir();
    let (ca, cert, key) = make_certs(dir.path());
    let web = web_config_for_test(dir.path(), &cert, &key);
    must(
        Command::new("promtool")
            .args(["check", "web-config"])
            .arg(&web),
    );

    // Broken: a certificate that does not exist.
    let bad = dir.path().join("bad.yml");
    write(
        &bad,
        &fs::read_to_string(&web)
            .unwrap()
            .replace(&*cert.to_string_lossy(), "/nonexistent/server.crt"),
    );
    assert!(!output(
        Command::new("promtool")
            .args(["check", "web-config"])
            .arg(&bad)
    )
    .status
    .success());

    // The exporter serves it: HTTPS, and the password the comment names.
    let config = dir.path().join("config.yml");
    write(&config, "agent: {}\n");
    let mut exporter = Proc::spawn(
        Command::new(BIN)
            .arg(format!("--config={}", config.display()))
            .arg(format!("--web.config.file={}", web.display()))
            .arg("--web.listen-address=127.0.0.1:0"),
        &dir.path().join("exporter.log"),
    );
    let addr = served_address(&mut exporter);
    let curl = |auth: Option<&str>| -> String {
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("badgateway.test:{}:127.0.0.1", addr.port()))
            .arg(format!("https://badgateway.test:{}/metrics", addr.port()));
        if let Some(a) = auth {
            c.args(["-u", a]);
        }
        let out = output(&mut c);
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        if code == "000" {
            panic!("curl: {}\n{}", both(&out), exporter.log_text());
        }
        code
    };
    assert_eq!(curl(None), "401", "{}", exporter.log_text());
    assert_eq!(curl(Some("prometheus:wrong")), "401");
    assert_eq!(curl(Some("prometheus:change-me")), "200");
}
