//! Debian's chromium, headless, for the tests that look at a page as a
//! browser renders it. Each run has a fresh profile and a process group of
//! its own, killed whole when the run ends, also when the test fails:
//! chromium's helper processes do not outlive it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::wait;

/// The flags every run takes: no sandbox (the tests run as root), no GPU,
/// nothing fetched from the network behind the test's back.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Whether chromium can be run here; when it cannot, why the caller may
/// skip (only when not root: as root, tests/run.sh installs it, and a
/// missing browser is a failure).
pub fn available() -> Result<(), String> {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    // The owner of this process's own /proc entry is its effective user.
    let root =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc/self"))
            == 0;
    assert!(
        !root,
        "chromium is not installed (tests/run.sh installs it: apt-get install chromium)"
    );
    Err("chromium is not installed and the test does not run as root".into())
}

/// A chromium process group, killed on drop.
struct Group {
    child: Child,
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Run chromium on `url` with `args` after the common flags, a fresh
/// profile under `dir`, for at most a minute; returns its stdout. Panics
/// when it fails or hangs, with its log.
pub fn run(dir: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir_in(dir).expect("profile dir");
    let out = dir.join(format!("chromium-{}.out", std::process::id()));
    let log = dir.join(format!("chromium-{}.log", std::process::id()));
    let mut cmd = Command::new("chromium");
    cmd.args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&log).expect("log file"));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut group = Group {
        child: cmd.spawn().expect("start chromium"),
    };
    let ended = wait::poll(Duration::from_secs(60), Duration::from_millis(50), || {
        group.child.try_wait().ok().flatten()
    });
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let Some((status, _)) = ended else {
        panic!("chromium did not finish within a minute:\n{}", log_text());
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        log_text()
    );
    drop(group);
    std::fs::read_to_string(&out).expect("chromium's output")
}
