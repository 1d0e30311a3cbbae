//! Commands run to their end, and child processes that cannot outlive
//! their test.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::wait;

/// A child process with its output in a log file, stopped on drop
/// (SIGTERM, then SIGKILL), also when the test fails.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdin closed and stdout and stderr into `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Proc {
        let out = fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig);
    }

    /// SIGTERM, and SIGKILL when it has not ended 10 s later.
    pub fn stop(&mut self) {
        if self.exited() {
            return;
        }
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let ended = wait::poll(Duration::from_secs(10), Duration::from_millis(20), || {
            self.exited().then_some(())
        });
        if ended.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Run `cmd` to its end with `input` on its stdin (none: closed) and
/// return what it did, whatever its exit status; panics when it cannot
/// start (a missing tool).
pub fn output_with(cmd: &mut Command, input: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run.sh installs the tools)"));
    if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

/// Run `cmd` with stdin closed; see `output_with`.
pub fn output(cmd: &mut Command) -> Output {
    output_with(cmd, None)
}

/// Its stdout and stderr, for a message.
pub fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run `cmd`, which must succeed; returns its stdout.
pub fn must(cmd: &mut Command) -> String {
    must_with(cmd, None)
}

/// Run `cmd` with `input` on its stdin; it must succeed. Returns its stdout.
pub fn must_with(cmd: &mut Command, input: Option<&str>) -> String {
    let out = output_with(cmd, input);
    assert!(out.status.success(), "{cmd:?} failed:\n{}", both(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `must` for a command given as words.
pub fn sh(args: &[&str]) -> String {
    must(Command::new(args[0]).args(&args[1..]))
}
