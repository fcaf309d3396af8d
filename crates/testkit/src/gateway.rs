//! Launches the real `palisade` binary for integration tests.
//!
//! Tests run the binary, not the library, so that what is tested is what ships: CLI parsing,
//! config loading, provider set-up, signals, exit codes.
//!
//! Protocol with the binary: it writes JSON lines to stdout; for each listener one line with
//! `"event":"listening"`, `"listener":"http"|"https"|"admin"` and `"addr":"127.0.0.1:PORT"`,
//! then one line with `"event":"ready"`. Fields may sit at the top level or under `"fields"`
//! (tracing-subscriber's JSON layout); [`log_field`] accepts both.
//!
//! Each process gets its own temporary directory, which is also its working directory, so
//! relative paths in the config (`cert = "server.pem"`) resolve to files added with
//! [`GatewayBuilder::file`]. Only std is used (threads, `std::process`, the `kill` command),
//! so the launcher works from sync tests and from inside tokio tests alike.

use std::{
    ffi::OsString,
    fs,
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;

/// The config file name inside the process's directory.
pub const CONFIG_FILE: &str = "palisade.toml";

/// How long [`GatewayBuilder::start`] waits for the `ready` line by default.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A field of a log line, at the top level or under `"fields"`.
pub fn log_field<'a>(line: &'a Value, key: &str) -> Option<&'a Value> {
    line.get(key)
        .or_else(|| line.get("fields").and_then(|f| f.get(key)))
}

/// The `event` field of a log line, if it is a string.
pub fn log_event(line: &Value) -> Option<&str> {
    log_field(line, "event").and_then(Value::as_str)
}

/// Builds the process's directory, arguments and environment, then starts it.
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    bin: PathBuf,
    config: Option<String>,
    files: Vec<(PathBuf, Vec<u8>)>,
    env: Vec<(OsString, Option<OsString>)>,
    args: Option<Vec<String>>,
    ready_timeout: Duration,
}

impl GatewayBuilder {
    /// The config text, written to `<dir>/palisade.toml`. Without it no config file is
    /// written (for "missing config" tests).
    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    /// An extra file at `relative_path` inside the directory (parents are created). A file
    /// whose name looks secret (`token`, `pepper`, `secret`, `password`…) is recorded as
    /// a secret, as [`secret_file`](Self::secret_file) does.
    pub fn file(mut self, relative_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        if crate::secrets::is_secret_name(&relative_path.as_ref().to_string_lossy()) {
            crate::secrets::record_file_contents(contents.as_ref());
        }
        self.files.push((
            relative_path.as_ref().to_owned(),
            contents.as_ref().to_vec(),
        ));
        self
    }

    /// A file holding a secret (read with `${file:…}`): written like [`file`](Self::file),
    /// and its contents recorded, so the leak check looks for them.
    pub fn secret_file(self, relative_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        crate::secrets::record_file_contents(contents.as_ref());
        self.file(relative_path, contents)
    }

    /// Sets an environment variable for the process (the rest is inherited).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        let (key, value) = (key.into(), value.into());
        // A secret by its name is recorded, so the leak check looks for it.
        if crate::secrets::is_secret_name(&key.to_string_lossy()) {
            crate::secrets::record(value.to_string_lossy());
        }
        self.env.push((key, Some(value)));
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// Replaces the default arguments `serve -c {config}`. In each argument `{config}` becomes
    /// the config file's path and `{dir}` the directory, e.g. `["check", "-c", "{config}"]`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// How long [`start`](Self::start) waits for `ready` (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Spawns the process and waits for its `ready` line; panics with everything it printed
    /// if it exits first or is not ready in time.
    pub fn start(self) -> GatewayProcess {
        let timeout = self.ready_timeout;
        let mut gw = self.spawn();
        let deadline = Instant::now() + timeout;
        loop {
            if gw.find_log(|v| log_event(v) == Some("ready")).is_some() {
                return gw;
            }
            if let Some(status) = gw.try_exit_status() {
                gw.wait_readers(Duration::from_secs(2));
                panic!(
                    "palisade exited with {status} before it was ready\n{}",
                    gw.describe()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "palisade was not ready within {timeout:?}\n{}",
                    gw.describe()
                );
            }
            gw.wait_for_output(Duration::from_millis(50));
        }
    }

    /// Spawns the process without waiting for anything.
    pub fn spawn(self) -> GatewayProcess {
        let dir = tempfile::Builder::new()
            .prefix("palisade-test-")
            .tempdir()
            .expect("create gateway tempdir");
        let config_path = dir.path().join(CONFIG_FILE);
        if let Some(config) = &self.config {
            fs::write(&config_path, config).expect("write palisade.toml");
        }
        for (rel, contents) in &self.files {
            let path = dir.path().join(rel);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create parent of test file");
            }
            fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("write test file {}: {e}", path.display()));
        }
        let args = self
            .args
            .unwrap_or_else(|| vec!["serve".into(), "-c".into(), "{config}".into()]);
        let config_str = config_path.to_string_lossy();
        let dir_str = dir.path().to_string_lossy();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{config}", &config_str)
                    .replace("{dir}", &dir_str)
            })
            .collect();

        let mut cmd = Command::new(&self.bin);
        cmd.args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} {args:?}: {e} (is the binary built?)",
                self.bin.display()
            )
        });

        let shared = Arc::new(CapturedOutput::default());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out_shared = shared.clone();
        thread::spawn(move || {
            // Bytes, not `lines()`: a line that is not UTF-8 must not end the reading (and
            // hide everything after it from the leak check).
            let mut reader = BufReader::new(stdout);
            let mut bytes = Vec::new();
            loop {
                bytes.clear();
                match reader.read_until(b'\n', &mut bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let raw = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line = String::from_utf8_lossy(raw).into_owned();
                let value =
                    serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line.clone()));
                let mut out = out_shared.lock();
                out.stdout_lines.push(line);
                out.logs.push(value);
                drop(out);
                out_shared.changed.notify_all();
            }
            out_shared.lock().stdout_done = true;
            out_shared.changed.notify_all();
        });
        let err_shared = shared.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        err_shared
                            .lock()
                            .stderr
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                        err_shared.changed.notify_all();
                    }
                }
            }
            err_shared.lock().stderr_done = true;
            err_shared.changed.notify_all();
        });

        GatewayProcess {
            child,
            status: None,
            dir,
            args,
            shared,
        }
    }

    /// Runs the process to completion (for `check`, `keys`, and config-error tests):
    /// returns (exit code, stdout, stderr). A process killed by signal N reports 128 + N.
    /// Panics if it is still running after `timeout`.
    pub fn run_to_exit(self, timeout: Duration) -> (i32, String, String) {
        let mut gw = self.spawn();
        match gw.wait_exit(timeout) {
            Some(code) => (code, gw.stdout(), gw.stderr()),
            None => panic!(
                "palisade still running after {timeout:?}\n{}",
                gw.describe()
            ),
        }
    }
}

#[derive(Default)]
struct Output {
    logs: Vec<Value>,
    stdout_lines: Vec<String>,
    stderr: String,
    stdout_done: bool,
    stderr_done: bool,
}

/// The gateway process's stdout and stderr as read so far, shared with the reader threads.
#[derive(Default)]
struct CapturedOutput {
    output: Mutex<Output>,
    /// Signalled on every new line of output and when a stream closes.
    changed: Condvar,
}

impl CapturedOutput {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running `palisade` process. Dropping it kills the process and removes its directory.
pub struct GatewayProcess {
    child: Child,
    status: Option<ExitStatus>,
    dir: TempDir,
    args: Vec<String>,
    shared: Arc<CapturedOutput>,
}

impl std::fmt::Debug for GatewayProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayProcess")
            .field("pid", &self.child.id())
            .field("args", &self.args)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl GatewayProcess {
    /// Starts building a process of the binary at `bin`
    /// (`env!("CARGO_BIN_EXE_palisade")` in integration tests).
    pub fn builder(bin: impl AsRef<Path>) -> GatewayBuilder {
        GatewayBuilder {
            bin: bin.as_ref().to_owned(),
            config: None,
            files: Vec::new(),
            env: Vec::new(),
            args: None,
            ready_timeout: READY_TIMEOUT,
        }
    }

    /// The HTTP listener's address; panics if the gateway announced none.
    pub fn http(&self) -> SocketAddr {
        self.listener("http")
    }

    /// The HTTPS listener's address; panics if the gateway announced none.
    pub fn https(&self) -> SocketAddr {
        self.listener("https")
    }

    /// The admin listener's address; panics if the gateway announced none.
    pub fn admin(&self) -> SocketAddr {
        self.listener("admin")
    }

    /// `http://127.0.0.1:PORT` of the HTTP listener.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http())
    }

    /// `https://localhost:PORT` of the HTTPS listener (the name [`crate::pki::TestPki`]
    /// certifies).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.https().port())
    }

    /// `http://127.0.0.1:PORT` of the admin listener.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin())
    }

    /// The address of listener `name` from its most recent `listening` line, if any.
    pub fn try_listener(&self, name: &str) -> Option<SocketAddr> {
        let out = self.shared.lock();
        out.logs
            .iter()
            .rev()
            .filter(|v| log_event(v) == Some("listening"))
            .filter(|v| log_field(v, "listener").and_then(Value::as_str) == Some(name))
            .find_map(|v| log_field(v, "addr")?.as_str()?.parse().ok())
    }

    fn listener(&self, name: &str) -> SocketAddr {
        self.try_listener(name).unwrap_or_else(|| {
            panic!(
                "palisade announced no `{name}` listener (no \"event\":\"listening\" line with \
                 \"listener\":\"{name}\" and a parseable \"addr\")\n{}",
                self.describe()
            )
        })
    }

    /// The process's directory (also its working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file's path (`<dir>/palisade.toml`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    /// Rewrites the config file (then [`signal`](Self::signal)`("HUP")` to reload).
    pub fn write_config(&self, toml: &str) {
        fs::write(self.config_path(), toml).expect("rewrite palisade.toml");
    }

    /// Writes a secret file inside the directory (a rotated secret), recording its contents.
    pub fn write_secret_file(&self, relative_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        crate::secrets::record_file_contents(contents.as_ref());
        self.write_file(relative_path, contents);
    }

    /// Writes a file inside the directory (e.g. a rotated certificate); recorded as a secret
    /// when its name looks secret, as with [`GatewayBuilder::file`].
    pub fn write_file(&self, relative_path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        if crate::secrets::is_secret_name(&relative_path.as_ref().to_string_lossy()) {
            crate::secrets::record_file_contents(contents.as_ref());
        }
        let path = self.dir.path().join(relative_path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent of test file");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far: parsed JSON, or `Value::String` for non-JSON lines.
    pub fn logs(&self) -> Vec<Value> {
        self.shared.lock().logs.clone()
    }

    /// Stdout so far, as printed.
    pub fn stdout(&self) -> String {
        let out = self.shared.lock();
        let mut text = out.stdout_lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.shared.lock().stderr.clone()
    }

    /// Waits up to `timeout` for a log line (any so far, or a new one) matching `pred`.
    pub fn wait_for_log(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = self.shared.lock();
        loop {
            if let Some(v) = out.logs.iter().find(|v| pred(v)) {
                return Some(v.clone());
            }
            let now = Instant::now();
            if now >= deadline || out.stdout_done {
                return None;
            }
            out = self
                .shared
                .changed
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits for a line whose `event` is `event`.
    pub fn wait_for_event(&self, event: &str, timeout: Duration) -> Option<Value> {
        self.wait_for_log(|v| log_event(v) == Some(event), timeout)
    }

    /// Sends a signal by name (`"HUP"`, `"TERM"`, `"INT"`, `"KILL"`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg("-s")
            .arg(name)
            .arg(self.child.id().to_string())
            .status()
            .expect("run `kill`");
        assert!(
            status.success(),
            "`kill -s {name} {}` failed",
            self.child.id()
        );
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code (128 + N when
    /// killed by signal N), or `None` if it is still running. Once it has exited, its
    /// remaining output is collected before returning.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                self.wait_readers(Duration::from_secs(2));
                return Some(exit_code(status));
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_exit_status().is_none()
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait on palisade");
        }
        self.status
    }

    fn find_log(&self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        self.shared.lock().logs.iter().find(|v| pred(v)).cloned()
    }

    /// Sleeps until new output arrives or `timeout` passes.
    fn wait_for_output(&self, timeout: Duration) {
        let out = self.shared.lock();
        let _ = self.shared.changed.wait_timeout(out, timeout);
    }

    /// After exit: lets the reader threads drain the pipes, so no last line is lost.
    fn wait_readers(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut out = self.shared.lock();
        while !(out.stdout_done && out.stderr_done) {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            out = self
                .shared
                .changed
                .wait_timeout(out, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Everything a failure message needs: command, directory, stdout and stderr.
    fn describe(&self) -> String {
        format!(
            "command: {:?}\ndir: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args,
            self.dir.path().display(),
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if self.try_exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A test already failing says why; a second panic here would abort the run.
        if thread::panicking() {
            return;
        }
        self.wait_readers(Duration::from_secs(2));
        let mut written = format!("{}\n{}", self.stdout(), self.stderr());
        for (name, text) in log_files(self.dir.path()) {
            written.push_str(&format!("\n--- {name}\n{text}"));
        }
        let leaks = crate::secrets::leaks_in(&written);
        assert!(
            leaks.is_empty(),
            "palisade wrote secrets to its stdout, stderr or log files: {leaks:?} (pid {})",
            self.child.id()
        );
    }
}

/// The log files in the gateway's directory (`*.log`, `*.log.N`), by name, with contents.
fn log_files(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_log = name.ends_with(".log") || name.contains(".log.");
            let text = is_log.then(|| fs::read(entry.path()).ok()).flatten()?;
            Some((name, String::from_utf8_lossy(&text).into_owned()))
        })
        .collect()
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in "binary": a shell script that speaks the launcher protocol, so the launcher
    /// is tested without the real gateway.
    ///
    /// The executable is written by `install`, not by this process: a file this process had
    /// open for writing can be inherited by a child another test thread forks at that moment,
    /// and exec'ing it then fails with "Text file busy" (ETXTBSY) — a flaky test.
    fn fake_gateway(script: &str) -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("fake-palisade.sh");
        fs::write(&source, format!("#!/bin/sh\n{script}\n")).unwrap();
        let path = dir.path().join("fake-palisade");
        let status = Command::new("install")
            .arg("-m755")
            .arg(&source)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "install failed: {status}");
        (dir, path)
    }

    #[test]
    fn start_reads_listeners_and_logs() {
        let (_bin_dir, bin) = fake_gateway(
            r#"
test -f "$3" || { echo "no config at $3" >&2; exit 2; }
test "$(cat certs/server.pem)" = PEM || exit 3
echo 'not json'
echo '{"event":"listening","listener":"http","addr":"127.0.0.1:18080"}'
echo '{"fields":{"event":"listening","listener":"admin","addr":"127.0.0.1:19090"}}'
trap 'echo "{\"event\":\"reloaded\"}"' USR1
trap 'echo "{\"event\":\"stopping\"}"; exit 0' TERM
# Ready only once the traps are set: a HUP sent on `ready` must find them.
echo "{\"event\":\"ready\",\"token\":\"$PALISADE_ADMIN_TOKEN\",\"cmd\":\"$1\"}"
while true; do sleep 0.05; done
"#,
        );
        let mut gw = GatewayProcess::builder(&bin)
            .config("[server]\n")
            .file("certs/server.pem", "PEM")
            .env("PALISADE_ADMIN_TOKEN", "t0k")
            .start();
        assert_eq!(gw.http(), "127.0.0.1:18080".parse().unwrap());
        assert_eq!(gw.admin_url(), "http://127.0.0.1:19090");
        assert!(gw.try_listener("https").is_none());
        assert_eq!(gw.config_path(), gw.dir().join("palisade.toml"));
        let ready = gw.wait_for_event("ready", Duration::from_secs(1)).unwrap();
        assert_eq!(ready["token"], "t0k");
        assert_eq!(ready["cmd"], "serve");
        assert_eq!(gw.logs()[0], Value::String("not json".into()));

        let https = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gw.https()));
        let msg = *https.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("no `https` listener"), "{msg}");

        // USR1, not HUP: a shell cannot trap a signal ignored when it started, and CI may
        // run under nohup.
        gw.signal("USR1");
        assert!(
            gw.wait_for_event("reloaded", Duration::from_secs(5))
                .is_some()
        );
        gw.signal("TERM");
        assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
        assert!(gw.stdout().contains("\"stopping\""));
    }

    #[test]
    fn run_to_exit_reports_code_and_output() {
        let (_bin_dir, bin) =
            fake_gateway(r#"echo "args: $*"; echo "bad key at line 3" >&2; exit 2"#);
        let (code, stdout, stderr) = GatewayProcess::builder(&bin)
            .args(["check", "-c", "{config}", "--dir", "{dir}"])
            .run_to_exit(Duration::from_secs(10));
        assert_eq!(code, 2);
        assert!(stdout.starts_with("args: check -c /"), "{stdout}");
        assert!(stdout.contains("palisade.toml --dir /"), "{stdout}");
        assert_eq!(stderr, "bad key at line 3\n");
    }

    #[test]
    fn start_panics_with_output_when_process_exits_early() {
        let (_bin_dir, bin) = fake_gateway(
            r#"echo '{"event":"starting"}'; echo "config error: unknown key" >&2; exit 2"#,
        );
        let result = std::panic::catch_unwind(|| GatewayProcess::builder(&bin).start());
        let msg = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("exited with exit status: 2"), "{msg}");
        assert!(msg.contains("config error: unknown key"), "{msg}");
        assert!(msg.contains("\"starting\""), "{msg}");
    }

    #[test]
    fn drop_kills_a_running_process() {
        let (_bin_dir, bin) = fake_gateway(r#"echo '{"event":"ready"}'; exec sleep 60"#);
        let gw = GatewayProcess::builder(&bin).start();
        let pid = gw.pid();
        drop(gw);
        // `kill -0` fails once the process is gone (it was reaped by Drop).
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive);
    }
}
