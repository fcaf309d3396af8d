//! Where log lines go: stdout (default) or a file rotated by size, written by a thread of
//! its own so that logging never makes a request wait.
//!
//! Input: finished, already-masked JSON lines from the tracing layer. Output: the lines,
//! in order, on the destination; `palisade_log_lines_dropped_total` for lines that could
//! not be queued. Failure: a full queue drops the line and counts it (the writer then logs
//! a `log_lines_dropped` line with how many, so a gap is never silent); a destination that
//! fails to write counts the lines as dropped too and is retried with the next batch.
//!
//! Why a bounded queue and not a blocking write: a stalled stdout pipe or a slow disk
//! would otherwise stall every request task that logs. Losing a line is bad; losing the
//! service is worse; losing it without saying so is what this module exists to prevent.
//!
//! Why a batch and not a channel of lines: handing each line over woke the writer thread
//! once per request, and on a busy gateway those wake-ups (a futex call and a context
//! switch each) cost more than formatting the line. A request appends its line to one
//! buffer under a lock held for a copy; the writer wakes when the buffer stops being
//! empty, lets lines gather for `BATCH_WINDOW`, then takes the whole buffer and writes it
//! with one call. A line reaches the destination at most `BATCH_WINDOW` plus one write
//! after it was logged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use crate::config::LogOutput;

/// Bytes waiting for the writer before new lines are dropped (about 16 000 typical lines).
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// How long the writer lets lines gather after the first of a batch arrives.
const BATCH_WINDOW: Duration = Duration::from_millis(10);

/// Lines dropped in this process: the queue was full or the destination failed.
pub static DROPPED: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The lines queued since the writer last took them.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
    /// Callers of [`flush`] waiting for everything queued before them to be written.
    flush_waiters: Vec<SyncSender<()>>,
    /// The writer sleeps on the condvar: the next line must wake it.
    writer_idle: bool,
    /// No more lines will come (tests): the writer writes what is left and returns.
    closed: bool,
}

/// The queue between the tasks that log and the writer thread.
struct Queue {
    batch: Mutex<Batch>,
    wake: Condvar,
    capacity: usize,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            batch: Mutex::new(Batch::default()),
            wake: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Batch> {
        // A panic while the lock was held leaves a batch of whole lines: keep using it.
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends one line unless the queue is full; never waits for the writer.
    fn push(&self, line: &[u8]) -> bool {
        let mut batch = self.lock();
        if batch.bytes.len() + line.len() > self.capacity {
            return false;
        }
        batch.bytes.extend_from_slice(line);
        batch.lines += 1;
        if std::mem::take(&mut batch.writer_idle) {
            drop(batch);
            self.wake.notify_one();
        }
        true
    }

    fn request_flush(&self, done: SyncSender<()>) {
        self.lock().flush_waiters.push(done);
        self.wake.notify_one();
    }

    #[cfg(test)]
    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// The process's queue into the writer thread, once started.
static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();

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
    let queue = Arc::new(Queue::new(QUEUE_BYTES));
    let for_writer = queue.clone();
    std::thread::Builder::new()
        .name("palisade-log".to_owned())
        .spawn(move || write_lines(&for_writer, destination, BATCH_WINDOW))?;
    let _ = QUEUE.set(queue);
    Ok(())
}

/// Queues one line; never blocks on the writer. Before [`start`], lines go straight to
/// stdout (startup errors must still be seen).
pub fn enqueue(line: &[u8]) {
    match QUEUE.get() {
        Some(queue) => {
            if !queue.push(line) {
                DROPPED.inc();
            }
        }
        None => {
            let _ = io::stdout().write_all(line);
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
    queue.request_flush(done);
    let _ = wait.recv_timeout(timeout);
}

/// The writer thread: batches in order, the destination flushed after each, and a note
/// about dropped lines as soon as there is room to write one.
fn write_lines(queue: &Queue, mut destination: Box<dyn Write + Send>, window: Duration) {
    let mut reported = 0;
    // The buffer the last batch was written from, emptied: the next batch is swapped into
    // it, so a steady load allocates nothing here.
    let mut spare = Vec::new();
    loop {
        let mut batch = queue.lock();
        while batch.bytes.is_empty() && batch.flush_waiters.is_empty() && !batch.closed {
            batch.writer_idle = true;
            batch = queue.wake.wait(batch).unwrap_or_else(|p| p.into_inner());
        }
        batch.writer_idle = false;
        // Let the batch gather; lines arriving now do not wake the writer (it is not idle),
        // but a flush request or the close does, cutting the window short.
        let gathered_by = std::time::Instant::now() + window;
        while batch.flush_waiters.is_empty() && !batch.closed {
            let left = gathered_by.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            batch = match queue.wake.wait_timeout(batch, left) {
                Ok((batch, _)) => batch,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let bytes = std::mem::replace(&mut batch.bytes, std::mem::take(&mut spare));
        let lines = std::mem::take(&mut batch.lines);
        let waiters = std::mem::take(&mut batch.flush_waiters);
        let closed = batch.closed;
        drop(batch);

        if !bytes.is_empty() && destination.write_all(&bytes).is_err() {
            DROPPED.inc_by(lines);
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
        for done in waiters {
            let _ = done.try_send(());
        }
        spare = bytes;
        spare.clear();
        // A burst may have grown the buffer to the queue's size: do not keep that for ever.
        spare.shrink_to(1024 * 1024);
        if closed && queue.lock().bytes.is_empty() {
            return;
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
        // A batch of lines usually fits whole; otherwise it goes line by line, so that the
        // limit holds per line: a line is never split across files, and one longer than
        // the limit gets a file alone.
        if self.written + buf.len() as u64 <= self.max_bytes {
            self.file.write_all(buf)?;
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        for line in buf.split_inclusive(|b| *b == b'\n') {
            if self.written > 0 && self.written + line.len() as u64 > self.max_bytes {
                self.rotate()?;
            }
            self.file.write_all(line)?;
            self.written += line.len() as u64;
        }
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
        // A batch of several lines (as the writer hands them over) is split at lines.
        let batch = line(20) + &line(21) + &line(22);
        again.write_all(batch.as_bytes()).unwrap();
        again.flush().unwrap();
        assert_eq!(read(&path), line(21) + &line(22));
        assert_eq!(read(&dir.join("palisade.log.1")), line(10) + &line(20));
        assert_eq!(read(&dir.join("palisade.log.2")), line(8) + &line(9));
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
        // Room for five 8-byte lines.
        let queue = Arc::new(Queue::new(40));
        let destination = stalled.clone();
        let for_writer = queue.clone();
        let writer = std::thread::spawn(move || {
            write_lines(&for_writer, Box::new(destination), Duration::ZERO)
        });
        let before = DROPPED.get();
        assert!(queue.push(b"{\"n\":0}\n"));
        // The writer takes that line and blocks writing it.
        while !queue.lock().bytes.is_empty() {
            std::thread::yield_now();
        }
        // Five more fill the queue; every other push must fail at once rather than wait.
        let mut refused = 0;
        for n in 1..50 {
            if !queue.push(format!("{{\"n\":{n}}}\n").as_bytes()) {
                DROPPED.inc();
                refused += 1;
            }
        }
        assert_eq!(refused, 44);
        drop(held);
        queue.close();
        writer.join().unwrap();
        let written = String::from_utf8(stalled.written.lock().unwrap().clone()).unwrap();
        // The lines that were queued come out in order; the report of the gap follows the
        // batch the writer was stuck on.
        let (reports, lines): (Vec<&str>, Vec<&str>) = written
            .lines()
            .partition(|line| line.contains("log_lines_dropped"));
        let expected: Vec<String> = (0..6).map(|n| format!("{{\"n\":{n}}}")).collect();
        assert_eq!(lines, expected, "{written}");
        let report: serde_json::Value = serde_json::from_str(reports[0]).unwrap();
        assert_eq!(report["event"], "log_lines_dropped");
        // Other tests in this process may drop lines too: at least ours are reported.
        assert!(report["count"].as_u64().unwrap() >= refused as u64);
        assert!(DROPPED.get() - before >= refused as u64);
    }

    #[test]
    fn flush_waits_for_lines_queued_before_it_and_batches_keep_order() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let stalled = Stalled {
            gate: Arc::new(Mutex::new(())),
            written: written.clone(),
        };
        let queue = Arc::new(Queue::new(1 << 20));
        let for_writer = queue.clone();
        // A long window: only the flush request makes these lines go out soon.
        let writer = std::thread::spawn(move || {
            write_lines(&for_writer, Box::new(stalled), Duration::from_secs(30))
        });
        for n in 0..1000 {
            assert!(queue.push(format!("{n}\n").as_bytes()));
        }
        let (done, wait) = mpsc::sync_channel(1);
        queue.request_flush(done);
        wait.recv_timeout(Duration::from_secs(10))
            .expect("flush answered");
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        // (A report of lines another test dropped may come between batches.)
        let numbers: Vec<usize> = text.lines().filter_map(|l| l.parse().ok()).collect();
        assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
        queue.close();
        writer.join().unwrap();
    }
}
