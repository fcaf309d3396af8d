//! Where log lines go: stdout (default) or a file rotated by size, written by a thread of
//! its own so that logging never makes a request wait.
//!
//! Input: finished, already-masked JSON lines from the tracing layer. Output: the lines,
//! in order, on the destination; `palisade_log_lines_dropped_total` for lines that could
//! not be queued. Failure: a full queue drops the line and counts it (the writer then logs
//! a `log_lines_dropped` line with how many, so a gap is never silent); a destination that
//! fails to write counts the line as dropped too and is retried with the next line.
//!
//! Why a bounded queue and not a blocking write: a stalled stdout pipe or a slow disk
//! would otherwise stall every request task that logs. Losing a line is bad; losing the
//! service is worse; losing it without saying so is what this module exists to prevent.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

/// Lines waiting for the writer before new ones are dropped (about 8 MiB of typical lines).
const QUEUE_LINES: usize = 16 * 1024;

/// Lines dropped in this process: the queue was full or the destination failed.
pub static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    /// `path`, renamed to `path.1` (and `path.1` to `path.2`, …, up to `keep`) once it
    /// would pass `max_bytes`.
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
}

enum Message {
    Line(Vec<u8>),
    /// Write everything queued before this, then answer.
    Flush(SyncSender<()>),
}

/// The process's queue into the writer thread, once started.
static QUEUE: OnceLock<SyncSender<Message>> = OnceLock::new();

/// Starts the writer thread for `output`. Only the first call in a process takes effect
/// (the logger is process-wide); later calls return `Ok` and change nothing.
pub fn start(output: &LogOutput) -> io::Result<()> {
    if QUEUE.get().is_some() {
        return Ok(());
    }
    let destination: Box<dyn Write + Send> = match output {
        LogOutput::Stdout => Box::new(io::stdout()),
        LogOutput::File {
            path,
            max_bytes,
            keep,
        } => Box::new(RotatingFile::open(path, *max_bytes, *keep)?),
    };
    let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
    std::thread::Builder::new()
        .name("palisade-log".to_owned())
        .spawn(move || write_lines(receiver, destination))?;
    let _ = QUEUE.set(sender);
    Ok(())
}

/// Queues one line; never blocks. Before [`start`], lines go straight to stdout (startup
/// errors must still be seen).
pub fn enqueue(line: Vec<u8>) {
    match QUEUE.get() {
        Some(queue) => {
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                queue.try_send(Message::Line(line))
            {
                DROPPED.inc();
            }
        }
        None => {
            let _ = io::stdout().write_all(&line);
        }
    }
}

/// Waits (at most `timeout`) until every line queued so far is written: called before the
/// process exits, so its last lines are not lost with the thread.
pub fn flush(timeout: Duration) {
    let Some(queue) = QUEUE.get() else {
        return;
    };
    let (done, wait) = mpsc::sync_channel(1);
    let deadline = std::time::Instant::now() + timeout;
    let mut message = Message::Flush(done);
    // The queue may be full: retry until there is room or time is up.
    loop {
        match queue.try_send(message) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                message = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let _ = wait.recv_timeout(left);
}

/// The writer thread: lines in order, flushed whenever the queue runs dry, and a note
/// about dropped lines as soon as there is room to write one.
fn write_lines(receiver: Receiver<Message>, mut destination: Box<dyn Write + Send>) {
    let mut reported = 0;
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => {
                    if destination.write_all(&line).is_err() {
                        DROPPED.inc();
                    }
                }
                Message::Flush(done) => {
                    let _ = destination.flush();
                    let _ = done.try_send(());
                }
            }
            next = receiver.try_recv().ok();
        }
        let _ = destination.flush();
        let dropped = DROPPED.get();
        if dropped > reported {
            let line = dropped_line(dropped - reported, dropped);
            if destination.write_all(line.as_bytes()).is_ok() {
                reported = dropped;
                let _ = destination.flush();
            }
        }
    }
}

/// The line that reports a gap: how many lines since the last report, and in all.
fn dropped_line(since_last: u64, total: u64) -> String {
    format!(
        "{{\"timestamp\":\"{}\",\"level\":\"WARN\",\"event\":\"log_lines_dropped\",\"count\":{since_last},\"total\":{total}}}\n",
        super::clock::rfc3339_micros(std::time::SystemTime::now())
    )
}

/// A log file that moves aside to `path.1` when the next line would make it pass
/// `max_bytes`; the oldest of `keep` rotated files is deleted.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: BufWriter<File>,
    written: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            file: BufWriter::new(file),
            written,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            // No history kept: start the file again.
            self.file = BufWriter::new(File::create(&self.path)?);
            self.written = 0;
            return Ok(());
        }
        let _ = fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        fs::rename(&self.path, self.rotated(1))?;
        self.file = BufWriter::new(open_append(&self.path)?);
        self.written = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        // Logs are masked, but still say who called what: readable by the owner only.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A line is never split across files; one longer than the limit gets a file alone.
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "palisade-output-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_rotate_by_size_keep_whole_lines_and_drop_the_oldest() {
        let dir = temp_dir("rotate");
        let path = dir.join("palisade.log");
        let mut file = RotatingFile::open(&path, 100, 2).unwrap();
        // 40-byte lines: two fit in 100 bytes, the third rotates.
        let line = |n: usize| format!("{{\"n\":{n:03},\"pad\":\"{}\"}}\n", "x".repeat(21));
        assert_eq!(line(0).len(), 40);
        for n in 0..9 {
            file.write_all(line(n).as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let read = |p: &Path| fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), line(8));
        assert_eq!(read(&dir.join("palisade.log.1")), line(6) + &line(7));
        assert_eq!(read(&dir.join("palisade.log.2")), line(4) + &line(5));
        assert!(
            !dir.join("palisade.log.3").exists(),
            "only `keep` files kept"
        );
        // Reopening appends and counts what is already there.
        let mut again = RotatingFile::open(&path, 100, 2).unwrap();
        again.write_all(line(9).as_bytes()).unwrap();
        again.write_all(line(10).as_bytes()).unwrap();
        again.flush().unwrap();
        assert_eq!(read(&path), line(10));
        assert_eq!(read(&dir.join("palisade.log.1")), line(8) + &line(9));
        let _ = fs::remove_dir_all(&dir);
    }

    /// A destination that holds every write until released, like a stalled pipe.
    #[derive(Clone)]
    struct Stalled {
        gate: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap_or_else(|p| p.into_inner());
            (self.written.lock().unwrap_or_else(|p| p.into_inner())).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_destination_drops_and_reports_instead_of_blocking() {
        let stalled = Stalled {
            gate: Arc::new(Mutex::new(())),
            written: Arc::new(Mutex::new(Vec::new())),
        };
        let held = stalled.gate.lock().unwrap();
        let (sender, receiver) = mpsc::sync_channel(4);
        let destination = stalled.clone();
        let writer = std::thread::spawn(move || write_lines(receiver, Box::new(destination)));
        let before = DROPPED.get();
        let mut refused = 0;
        // The writer takes at most one line and blocks on it; four more fill the queue;
        // every other send must fail at once rather than wait.
        for n in 0..50 {
            if sender
                .try_send(Message::Line(format!("{{\"n\":{n}}}\n").into_bytes()))
                .is_err()
            {
                DROPPED.inc();
                refused += 1;
            }
        }
        assert!((45..=46).contains(&refused), "refused {refused}");
        drop(held);
        drop(sender);
        writer.join().unwrap();
        let written = String::from_utf8(stalled.written.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 50 - refused + 1, "{written}");
        // The lines that were queued come out in order, then the report of the gap.
        assert!(lines[0].starts_with("{\"n\":0}"), "{written}");
        let report: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert_eq!(report["event"], "log_lines_dropped");
        // Other tests in this process may drop lines too: at least ours are reported.
        assert!(report["count"].as_u64().unwrap() >= refused as u64);
        assert!(DROPPED.get() - before >= refused as u64);
    }
}
