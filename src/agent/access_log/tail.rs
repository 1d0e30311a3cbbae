// Why one file: ~370 lines of code; the rest is its tests.
//! A polling tailer: each `poll` reads what was appended, and notices by
//! stat (device and inode at the path, size of the open file) when the log
//! was renamed away, truncated, or deleted and created anew. See the module
//! above for why polling rather than inotify.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::count::Sink;

/// A longer line is counted as malformed and skipped up to its newline.
pub const MAX_LINE: usize = 16 * 1024;
/// Per open file; always leaves room for a read after a kept partial line.
const BUF_SIZE: usize = 64 * 1024;
/// At most this much is read per poll, so a huge new file is taken in
/// steps (`Polled::more`) rather than in one long blocking call.
const POLL_BUDGET: u64 = 32 * 1024 * 1024;
/// A rotated-away file is still read until it has been quiet this long:
/// the web server writes into it until it reopens its log (nginx on
/// USR1, Apache's old children until they exit).
const DRAIN: Duration = Duration::from_secs(10);
/// A missing file is only reported after this long, so the instant between
/// logrotate's rename and the new file's creation is not a failure.
pub const MISSING_GRACE: Duration = Duration::from_secs(5);
/// Bytes remembered before the read position to notice a file that was
/// truncated and then grew past that position between two polls.
const PRINT: usize = 32;

/// Why the log cannot be followed right now.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("access log {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("cannot open access log {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read access log {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// The outcome of one poll.
#[derive(Debug, Default)]
pub struct Polled {
    /// The read budget ran out: poll again without waiting.
    pub more: bool,
    pub problem: Option<TailError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    No,
    /// Started mid-line (at the end of a file being written): drop the
    /// fragment without counting it.
    Silent,
    /// Inside a line longer than `MAX_LINE`.
    Oversized,
}

/// One open file and the partial line read from it.
struct Reader {
    file: File,
    id: (u64, u64),
    pos: u64,
    buf: Box<[u8]>,
    /// The partial line, at `buf[..kept]`.
    kept: usize,
    skip: Skip,
    print: [u8; PRINT],
    print_len: usize,
}

impl Reader {
    fn open(path: &Path, at_end: bool) -> io::Result<Reader> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let mut r = Reader {
            id: (meta.dev(), meta.ino()),
            pos: 0,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            kept: 0,
            skip: Skip::No,
            print: [0; PRINT],
            print_len: 0,
            file,
        };
        if at_end && meta.len() > 0 {
            r.pos = meta.len();
            r.print_len = PRINT.min(r.pos as usize);
            let mut print = [0; PRINT];
            r.file
                .read_exact_at(&mut print[..r.print_len], r.pos - r.print_len as u64)?;
            r.print = print;
            if r.print[r.print_len - 1] != b'\n' {
                r.skip = Skip::Silent;
            }
        }
        Ok(r)
    }

    /// The file got shorter, or the bytes before our position changed:
    /// it was truncated (copytruncate) and maybe written again since.
    fn truncated(&self) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < self.pos {
            return Ok(true);
        }
        if len == self.pos || self.print_len == 0 {
            return Ok(false);
        }
        let mut now = [0; PRINT];
        let now = &mut now[..self.print_len];
        self.file
            .read_exact_at(now, self.pos - self.print_len as u64)?;
        Ok(now != &self.print[..self.print_len])
    }

    fn restart(&mut self) {
        (self.pos, self.kept, self.skip, self.print_len) = (0, 0, Skip::No, 0);
    }

    /// Read what was appended, up to `budget` bytes; true if more is left.
    fn read(&mut self, sink: &mut dyn Sink, budget: &mut u64) -> io::Result<bool> {
        if self.truncated()? {
            self.restart();
            sink.rotated();
        }
        loop {
            if *budget == 0 {
                return Ok(true);
            }
            let n = match self.file.read_at(&mut self.buf[self.kept..], self.pos) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.remember(self.kept, n);
            self.pos += n as u64;
            *budget = budget.saturating_sub(n as u64);
            self.split(self.kept + n, sink);
        }
    }

    /// Keep the last bytes read, `buf[from..from + n]`, as the fingerprint.
    fn remember(&mut self, from: usize, n: usize) {
        let new = &self.buf[from..from + n];
        if n >= PRINT {
            self.print.copy_from_slice(&new[n - PRINT..]);
            self.print_len = PRINT;
            return;
        }
        let keep = (PRINT - n).min(self.print_len);
        self.print
            .copy_within(self.print_len - keep..self.print_len, 0);
        self.print[keep..keep + n].copy_from_slice(new);
        self.print_len = keep + n;
    }

    /// Hand over the complete lines in `buf[..end]`; keep the partial one.
    fn split(&mut self, end: usize, sink: &mut dyn Sink) {
        let data = &self.buf[..end];
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let line = trim_nul(&data[start..nl]);
            match std::mem::replace(&mut self.skip, Skip::No) {
                // Whether a long line arrived whole or in pieces, it is
                // oversized all the same.
                Skip::No if line.len() > MAX_LINE => sink.oversized(),
                Skip::No => sink.line(line),
                Skip::Oversized => sink.oversized(),
                Skip::Silent => {}
            }
            start = nl + 1;
        }
        let (from, len) = match self.skip {
            Skip::No => {
                let rest = trim_nul(&data[start..]);
                (end - rest.len(), rest.len())
            }
            _ => (end, 0),
        };
        if len > MAX_LINE {
            self.skip = Skip::Oversized;
            self.kept = 0;
        } else {
            self.buf.copy_within(from..end, 0);
            self.kept = len;
        }
    }

    /// Read the rest of a file that is being let go, and count a last line
    /// that never got its newline.
    fn finish(mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let mut unlimited = u64::MAX;
        self.read(sink, &mut unlimited)?;
        match self.skip {
            Skip::No if self.kept > 0 => sink.line(&self.buf[..self.kept]),
            Skip::Oversized => sink.oversized(),
            _ => {}
        }
        Ok(())
    }
}

/// A copytruncate with a writer that lacks O_APPEND leaves a hole of NUL
/// bytes before the next line; they are not part of it.
fn trim_nul(line: &[u8]) -> &[u8] {
    let n = line.iter().take_while(|&&b| b == 0).count();
    &line[n..]
}

/// Follows one log file by path.
pub struct Tailer {
    path: PathBuf,
    current: Option<Reader>,
    /// The file that was at the path before, read until `DRAIN` passes
    /// with nothing new in it.
    old: Option<(Reader, Instant)>,
    missing_since: Option<Instant>,
    ever_opened: bool,
    /// The file that was there at startup but could not be opened (no
    /// permission yet): once it can be, it is history too, so start at its
    /// end.
    unread_at_start: Option<(u64, u64)>,
}

impl Tailer {
    /// Open the log now and start at its end, so history is not replayed.
    /// A file that appears later is read from its start.
    pub fn new(path: &Path) -> (Tailer, Option<TailError>) {
        let mut t = Tailer {
            path: path.to_owned(),
            current: None,
            old: None,
            missing_since: None,
            ever_opened: false,
            unread_at_start: None,
        };
        let problem = match Reader::open(path, true) {
            Ok(r) => {
                t.current = Some(r);
                t.ever_opened = true;
                None
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                t.missing_since = Some(Instant::now());
                Some(TailError::Missing(t.path.clone()))
            }
            Err(source) => {
                t.unread_at_start = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
                Some(TailError::Open {
                    path: t.path.clone(),
                    source,
                })
            }
        };
        (t, problem)
    }

    pub fn poll(&mut self, sink: &mut dyn Sink) -> Polled {
        let mut budget = POLL_BUDGET;
        let mut polled = Polled::default();
        let now = Instant::now();
        // What was written before a rotation comes first.
        if let Some(cur) = &mut self.current {
            match cur.read(sink, &mut budget) {
                Ok(more) => polled.more |= more,
                Err(e) => polled.problem = Some(self.read_error(e)),
            }
        }
        self.drain_old(sink, &mut budget, &mut polled, now);
        let at_path = match std::fs::metadata(&self.path) {
            Ok(meta) => Some((meta.dev(), meta.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                let path = self.path.clone();
                polled.problem = Some(TailError::Open { path, source });
                return polled;
            }
        };
        if at_path.is_some() {
            self.missing_since = None;
        } else {
            self.missing_since.get_or_insert(now);
        }
        if self.current.as_ref().map(|c| c.id) != at_path {
            self.switch(at_path, sink, &mut budget, &mut polled, now);
        }
        if let Some(since) = self.missing_since {
            if !self.ever_opened || now.duration_since(since) >= MISSING_GRACE {
                polled.problem = Some(TailError::Missing(self.path.clone()));
            }
        }
        polled
    }

    /// The path no longer names the file we read.
    fn switch(
        &mut self,
        at_path: Option<(u64, u64)>,
        sink: &mut dyn Sink,
        budget: &mut u64,
        p: &mut Polled,
        now: Instant,
    ) {
        // Renamed away, deleted, or replaced: keep reading the old file.
        if let Some(cur) = self.current.take() {
            if let Some((old, _)) = self.old.take() {
                // Rotated twice within DRAIN: let the oldest go.
                let _ = old.finish(sink);
            }
            self.old = Some((cur, now + DRAIN));
        }
        if at_path.is_some() {
            let at_end = at_path == self.unread_at_start;
            match Reader::open(&self.path, at_end) {
                Ok(mut r) => {
                    if std::mem::replace(&mut self.ever_opened, true) {
                        sink.rotated();
                    }
                    self.unread_at_start = None;
                    match r.read(sink, budget) {
                        Ok(more) => p.more |= more,
                        Err(e) => p.problem = Some(self.read_error(e)),
                    }
                    self.current = Some(r);
                }
                // Gone again between stat and open: next poll.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    let path = self.path.clone();
                    p.problem = Some(TailError::Open { path, source });
                }
            }
        }
    }

    fn drain_old(&mut self, sink: &mut dyn Sink, budget: &mut u64, p: &mut Polled, now: Instant) {
        let Some((old, quiet_until)) = &mut self.old else {
            return;
        };
        let before = old.pos;
        match old.read(sink, budget) {
            Ok(more) => p.more |= more,
            Err(e) => {
                tracing::warn!(error = %e, "reading the rotated access log");
                self.old = None;
                return;
            }
        }
        if old.pos != before {
            *quiet_until = now + DRAIN;
        } else if now >= *quiet_until {
            if let Some((old, _)) = self.old.take() {
                let _ = old.finish(sink);
            }
        }
    }

    fn read_error(&self, source: io::Error) -> TailError {
        TailError::Read {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Lines {
        lines: Vec<Vec<u8>>,
        oversized: usize,
    }

    impl Sink for Lines {
        fn line(&mut self, line: &[u8]) {
            self.lines.push(line.to_vec());
        }
        fn oversized(&mut self) {
            self.oversized += 1;
        }
        fn rotated(&mut self) {}
    }

    #[test]
    fn a_huge_line_is_never_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"").unwrap();
        let (mut t, problem) = Tailer::new(&path);
        assert!(problem.is_none());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let mut sink = Lines::default();
        f.write_all(b"\0\0\0first\n").unwrap();
        for _ in 0..16 {
            f.write_all(&[b'x'; 64 * 1024]).unwrap();
            assert!(!t.poll(&mut sink).more);
            let r = t.current.as_ref().unwrap();
            assert!(r.kept <= MAX_LINE && r.buf.len() == BUF_SIZE);
        }
        f.write_all(b"tail of it\nlast\n").unwrap();
        t.poll(&mut sink);
        assert_eq!(sink.lines, [&b"first"[..], b"last"]);
        assert_eq!(sink.oversized, 1);
    }
}
