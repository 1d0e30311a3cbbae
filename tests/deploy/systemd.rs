//! The systemd unit: `systemd-analyze verify` and `security --offline`,
//! what operators rely on in it, and its sysusers file through
//! `systemd-sysusers --root`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::paths::{read, root, BIN};
use crate::common::proc::{both, must, output};
use crate::tools::{need, tempdir, write};

/// `[Section]` → (key, value) lines of a systemd unit, in order.
fn unit_sections(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value");
        out.entry(section.clone())
            .or_default()
            .push((k.trim().to_owned(), v.trim().to_owned()));
    }
    out
}

const UNIT: &str = "deploy/systemd/badgateway-exporter.service";

fn unit_values(key: &str) -> Vec<String> {
    unit_sections(&read(UNIT))
        .get("Service")
        .expect("[Service]")
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

pub fn unit_value(key: &str) -> String {
    let v = unit_values(key);
    assert_eq!(v.len(), 1, "{UNIT}: one {key}= expected, found {v:?}");
    v[0].clone()
}

/// The unit with ExecStart pointing at the binary under test, in `dir`.
fn unit_for_test(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = read(UNIT).replace("/usr/local/bin/badgateway-exporter", BIN);
    let path = dir.join("badgateway-exporter.service");
    write(&path, &edit(text));
    path
}

fn systemd_verify(unit: &Path) -> Output {
    need("systemd-analyze", "systemd");
    output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(unit)
            .env("SYSTEMD_LOG_COLOR", "0"),
    )
}

#[test]
fn systemd_unit_verifies_and_a_broken_one_does_not() {
    let dir = tempdir();
    let unit = unit_for_test(dir.path(), |t| t);
    let out = systemd_verify(&unit);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        both(&out)
    );

    // Each broken copy fails: a non-zero exit or a warning.
    let broken: &[(&str, &str, &str)] = &[
        (
            "misspelt key",
            "ProtectSystem=strict",
            "ProtectSytem=strict",
        ),
        ("no ExecStart", "\nExecStart=", "\nExecStrat="),
        (
            "bad boolean",
            "NoNewPrivileges=yes",
            "NoNewPrivileges=maybe",
        ),
        (
            "missing binary",
            &format!("ExecStart={BIN}"),
            "ExecStart=/nonexistent/badgateway-exporter",
        ),
    ];
    for (what, from, to) in broken {
        let bad_dir = tempdir();
        let bad = unit_for_test(bad_dir.path(), |t| {
            assert!(t.contains(from), "{what}: {from:?} not in the unit");
            t.replacen(from, to, 1)
        });
        let out = systemd_verify(&bad);
        assert!(
            !out.status.success() || !out.stderr.is_empty(),
            "{what}: systemd-analyze verify accepted it"
        );
    }
}

#[test]
fn systemd_unit_runs_the_exporter_as_documented() {
    // What operators rely on, exactly.
    assert_eq!(
        unit_value("ExecStart"),
        "/usr/local/bin/badgateway-exporter --config /etc/badgateway-exporter/config.yml"
    );
    assert_eq!(unit_value("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value("User"), "badgateway-exporter");
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
    ] {
        assert_eq!(unit_value(key), value, "{key}");
    }
    // Two capabilities, the same in both sets (systemd ignores a misspelt
    // capability name silently, so the names are checked here).
    let caps = |key: &str| -> BTreeSet<String> {
        unit_value(key)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let want: BTreeSet<String> = ["CAP_NET_RAW", "CAP_NET_ADMIN"].map(String::from).into();
    assert_eq!(caps("AmbientCapabilities"), want);
    assert_eq!(caps("CapabilityBoundingSet"), want);
    let families: BTreeSet<String> = unit_value("RestrictAddressFamilies")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        families,
        ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]
            .map(String::from)
            .into()
    );
    // The agent must see every process and the /proc files of the host.
    assert_ne!(unit_value("ProtectProc"), "invisible");
    assert_ne!(unit_value("ProcSubset"), "pid");
    assert!(unit_value("SupplementaryGroups")
        .split_whitespace()
        .any(|g| g == "adm"));
    assert!(unit_value("ReadOnlyPaths").contains("/var/log/nginx"));
}

/// `systemd-analyze security --offline`: the exposure score of a unit.
fn exposure(unit: &Path) -> f64 {
    let out = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(unit)
            .env("SYSTEMD_COLORS", "0"),
    );
    let text = both(&out);
    text.lines()
        .find_map(|l| l.split_once("Overall exposure level for ").map(|x| x.1))
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
}

#[test]
fn systemd_unit_exposure_is_low() {
    need("systemd-analyze", "systemd");
    let dir = tempdir();
    let unit = unit_for_test(dir.path(), |t| t);
    let score = exposure(&unit);
    assert!(score <= 3.0, "exposure {score} > 3.0");

    // The same service without its sandboxing scores far worse: the score
    // read above is the real one.
    let bare_dir = tempdir();
    let bare = bare_dir.path().join("badgateway-exporter.service");
    write(
        &bare,
        &format!("[Service]\nExecStart={BIN} --config /etc/badgateway-exporter/config.yml\n"),
    );
    let bare_score = exposure(&bare);
    assert!(bare_score > 8.0, "bare unit scored {bare_score}");
}

#[test]
fn sysusers_file_creates_the_units_user() {
    need("systemd-sysusers", "systemd");
    let dir = tempdir();
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    must(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", dir.path().display()))
            .arg(root().join("deploy/systemd/badgateway-exporter.sysusers")),
    );
    let passwd = fs::read_to_string(dir.path().join("etc/passwd")).expect("passwd");
    let user = unit_value("User");
    let entry = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no {user} in:\n{passwd}"));
    let fields: Vec<&str> = entry.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system user: {entry}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{entry}");
    let group = fs::read_to_string(dir.path().join("etc/group")).expect("group");
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("{}:", unit_value("Group")))),
        "{group}"
    );
}
