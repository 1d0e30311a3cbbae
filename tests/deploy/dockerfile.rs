//! The Dockerfile: `hadolint`, and its structure against Cargo.toml (the
//! build stage copies every file cargo needs to build the binary).

use crate::common::paths::{read, root};
use crate::common::proc::{both, output, output_with};
use crate::tools::hadolint;

#[test]
fn dockerfile_passes_hadolint_and_a_bad_one_does_not() {
    let out = output(hadolint().arg(root().join("deploy/Dockerfile")));
    assert!(out.status.success(), "hadolint:\n{}", both(&out));

    let good = read("deploy/Dockerfile");
    for (what, from, to) in [
        ("root user", "USER 10001:10001", "USER root"),
        ("unpinned base", "FROM debian:bookworm-slim", "FROM debian"),
        ("lists kept", " && rm -rf /var/lib/apt/lists/* \\\n", ""),
    ] {
        assert!(
            good.contains(from),
            "{what}: {from:?} not in the Dockerfile"
        );
        let out = output_with(hadolint().arg("-"), Some(&good.replacen(from, to, 1)));
        assert!(!out.status.success(), "hadolint accepted the {what}");
    }
}

/// The instructions of a Dockerfile: (INSTRUCTION, arguments), continuation
/// lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        if let Some(stripped) = t.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (i, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((i.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_structure() {
    let ins = dockerfile_instructions(&read("deploy/Dockerfile"));
    check_stages_and_base_images(&ins);
    for (i, a) in &ins {
        assert!(
            !(i == "ADD" && (a.contains("http://") || a.contains("https://"))),
            "ADD of a URL: {a}"
        );
    }
    let runtime = ins
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("a final stage");
    check_final_stage(&ins[runtime..]);
    check_build_stage_copies_what_cargo_needs(&ins[..runtime]);
}

/// Multi-stage, from rust on bookworm, every base image with a pinned tag.
fn check_stages_and_base_images(ins: &[(String, String)]) {
    let froms: Vec<&String> = ins
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {froms:?}");
    assert!(froms[0].starts_with("rust:") && froms[0].contains("bookworm"));
    for f in &froms {
        let image = f.split_whitespace().next().unwrap();
        let tag = image.split_once(':').map(|x| x.1).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest",
            "base image without a pinned tag: {f}"
        );
    }
}

/// The final stage: a slim base, a numeric non-root USER, the port, the
/// binary from the build stage as entrypoint, the firewall tools and CAs.
fn check_final_stage(final_stage: &[(String, String)]) {
    assert!(
        final_stage[0].1.starts_with("debian:bookworm-slim")
            || final_stage[0].1.contains("distroless")
    );
    let user = final_stage
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER in the final stage");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER, which runAsNonRoot can check");
    assert_ne!(uid, 0);
    assert!(final_stage
        .iter()
        .any(|(i, a)| i == "EXPOSE" && a == "9502"));
    assert!(final_stage
        .iter()
        .any(|(i, a)| i == "ENTRYPOINT" && a.contains("/usr/local/bin/badgateway-exporter")));
    assert!(final_stage
        .iter()
        .any(|(i, a)| i == "COPY" && a.starts_with("--from=build")));
    let installs = final_stage
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for pkg in ["iptables", "nftables", "ca-certificates"] {
        assert!(installs.contains(pkg), "the image lacks {pkg}");
    }
}

/// The build stage copies everything cargo needs: the manifest, the lock
/// file, the build script and every target's source, and the
/// .dockerignore lets them through.
fn check_build_stage_copies_what_cargo_needs(build_stages: &[(String, String)]) {
    let copied: Vec<String> = build_stages
        .iter()
        .filter(|(i, _)| i == "COPY")
        .flat_map(|(_, a)| {
            let words: Vec<&str> = a.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let ignore = read("deploy/Dockerfile.dockerignore");
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for n in &files_cargo_needs() {
        assert!(root().join(n).exists(), "{n} does not exist");
        let covered = |list: &[&str]| {
            list.iter()
                .any(|c| n == c || n.starts_with(&format!("{c}/")))
        };
        let copied: Vec<&str> = copied.iter().map(String::as_str).collect();
        assert!(covered(&copied), "the build stage does not COPY {n}");
        assert!(covered(&allowed), "Dockerfile.dockerignore leaves out {n}");
    }
}

/// What cargo reads to build the binary: the manifest, the lock file, the
/// build script, src and every non-test target's file, per Cargo.toml.
fn files_cargo_needs() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let mut needed: Vec<String> = vec!["Cargo.toml".into(), "Cargo.lock".into()];
    if root().join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    needed.push("src".into());
    let mut section = "";
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line;
        }
        if section == "[[bench]]" {
            if let Some(name) = line.strip_prefix("name = ") {
                needed.push(format!("benches/{}.rs", name.trim_matches('"')));
            }
        }
        // A test target's file is not needed to build the binary (cargo
        // checks it only when building tests), unlike a bench's.
        if let (Some(path), false) = (line.strip_prefix("path = "), section == "[[test]]") {
            needed.push(path.trim_matches('"').to_owned());
        }
    }
    needed
}
