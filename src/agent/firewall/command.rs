//! Runs `iptables-save` and `nft` with a deadline. Blocking: called from
//! the collector's background task through `spawn_blocking`.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Far more than any ruleset; bounds the memory a broken tool can take.
const MAX_OUTPUT: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no command configured")]
    Empty,
    #[error("`{0}` not found")]
    NotFound(String),
    #[error("`{0}` could not start: {1}")]
    Spawn(String, std::io::Error),
    #[error("`{0}` did not finish within {1} s and was killed")]
    Timeout(String, u64),
    #[error("`{cmd}` failed ({status}): {stderr}{}", if *.permission { " (reading the firewall needs root or CAP_NET_ADMIN)" } else { "" })]
    Failed {
        cmd: String,
        status: String,
        stderr: String,
        permission: bool,
    },
    #[error("`{0}` printed more than {MAX_OUTPUT} bytes")]
    TooLarge(String),
}

impl CommandError {
    /// The tool is not installed: in `auto` mode that backend is absent,
    /// not broken.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CommandError::NotFound(_))
    }
}

/// What a command printed.
#[derive(Clone, Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv`, killing it after `timeout`; a non-zero exit is an error.
pub fn run(argv: &[String], timeout: Duration) -> Result<Output, CommandError> {
    let (program, args) = argv.split_first().ok_or(CommandError::Empty)?;
    let cmd = argv.join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CommandError::NotFound(cmd.clone()),
            _ => CommandError::Spawn(cmd.clone(), e),
        })?;
    // Readers on their own threads, so a big output cannot fill the pipe
    // while we wait for the exit.
    let stdout = read_on_thread(child.stdout.take());
    let stderr = read_on_thread(child.stderr.take());
    let status = wait(&mut child, timeout, &cmd)?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default())
        .trim()
        .to_owned();
    if stdout.len() as u64 > MAX_OUTPUT {
        return Err(CommandError::TooLarge(cmd));
    }
    if !status.success() {
        return Err(failure(cmd, status, &stderr));
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    })
}

/// Reads the pipe to its end (at most one byte past [`MAX_OUTPUT`]) on a
/// thread of its own.
fn read_on_thread<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = pipe {
            let _ = p.take(MAX_OUTPUT + 1).read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for the child's exit; past `timeout`, kills it.
fn wait(child: &mut Child, timeout: Duration, cmd: &str) -> Result<ExitStatus, CommandError> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::Timeout(cmd.to_owned(), timeout.as_secs()));
            }
            Err(e) => return Err(CommandError::Spawn(cmd.to_owned(), e)),
        }
    }
}

/// The error for a non-zero exit: not found when a wrapper could not find
/// the tool, else its status and the first lines of what it printed to
/// stderr, flagging a lack of permission.
fn failure(cmd: String, status: ExitStatus, stderr: &str) -> CommandError {
    // A wrapper (`ip netns exec`, `nsenter`) that could not find it.
    if stderr.contains("No such file or directory") && stderr.contains("exec") {
        return CommandError::NotFound(cmd);
    }
    let lower = stderr.to_lowercase();
    let permission = [
        "permission denied",
        "operation not permitted",
        "you must be root",
    ]
    .iter()
    .any(|p| lower.contains(p));
    let status = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    };
    let stderr = if stderr.is_empty() {
        "no error message".to_owned()
    } else {
        stderr.lines().take(3).collect::<Vec<_>>().join(" / ")
    };
    CommandError::Failed {
        cmd,
        status,
        stderr,
        permission,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn reports_missing_failing_and_slow_commands() {
        let t = Duration::from_secs(5);
        let e = run(&argv(&["/nonexistent/iptables-save"]), t).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = run(
            &argv(&[
                "sh",
                "-c",
                "echo 'Permission denied (you must be root)' >&2; exit 4",
            ]),
            t,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("exit status 4") && text.contains("CAP_NET_ADMIN"),
            "{text}"
        );
        let e = run(&argv(&["sleep", "5"]), Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, CommandError::Timeout(..)), "{e}");
        let out = run(&argv(&["sh", "-c", "echo out; echo err >&2"]), t).unwrap();
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err"));
        assert!(matches!(run(&[], t), Err(CommandError::Empty)));
    }
}
