//! A real, throw-away Redis server for tests.
//!
//! State the gateway keeps in Redis (the rate-limit store) must be tested against the real
//! thing: a fake would agree with whatever the gateway believes about expiry, key names and
//! what a dead server looks like. [`RedisServer::start`] runs Debian's
//! `redis-server` (`/usr/bin/redis-server`, or the program in `PALISADE_REDIS_SERVER`) as a
//! child process on a port of 127.0.0.1 reserved for it ([`crate::ports`]), with
//! its working directory and log inside a temporary directory under `/tmp`. Persistence is
//! off (`--save ""`, `--appendonly no`): nothing reaches the disk, so
//! [`RedisServer::stop`] (a `SIGKILL`, as in a crash) followed by [`RedisServer::restart`]
//! brings the server back on the same port but *empty*. [`RedisServer::pause`] and
//! [`RedisServer::resume`] (`SIGSTOP`/`SIGCONT`) freeze it with its connections open, as a
//! stalled server looks to clients: what they send queues up and runs on resume. Dropping
//! the value kills the server, waits for it, and removes the directory.
//!
//! Tests talk to it through [`RedisServer::command`], which speaks just enough RESP over a
//! fresh [`TcpStream`] to send one command and parse one reply ([`RespValue`]), so a test can
//! check what the gateway stored without a Redis client library.
//!
//! [`RedisCluster::start`] runs several such servers with `--cluster-enabled yes`, joins
//! them with `redis-cli --cluster create` (`/usr/bin/redis-cli`, or `PALISADE_REDIS_CLI`),
//! all primaries, no replicas, and waits until every node reports `cluster_state:ok`.
//!
//! Only std is used, so this works from sync tests and from inside tokio tests alike
//! (starting blocks for a few tens of milliseconds; a cluster takes a few seconds).

use std::{
    fs,
    io::{self, BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::ports::{self, ReservedPort};

/// How long to wait for the server to answer `PING`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`RedisServer::stop`] waits for the port to stop accepting connections.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect, read and write timeout of [`RedisServer::command`].
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Redis server, killed and deleted on drop.
#[derive(Debug)]
pub struct RedisServer {
    dir: TempDir,
    program: PathBuf,
    port: u16,
    /// Holds `port` (and a cluster node's bus port) for this server until it drops.
    reservation: Option<ReservedPort>,
    /// Extra server arguments, kept for [`RedisServer::restart`].
    extra_args: Vec<String>,
    /// `None` between [`RedisServer::stop`] and [`RedisServer::restart`].
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a fresh server; panics (with the server log) if it cannot.
    pub fn start() -> RedisServer {
        match RedisServer::try_start() {
            Ok(server) => server,
            Err(e) => panic!("cannot start a test Redis server: {e}"),
        }
    }

    /// Starts a fresh server with extra `redis-server` arguments (e.g.
    /// `["--cluster-enabled", "yes"]`); panics (with the server log) if it cannot.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        match RedisServer::try_start_with(extra_args) {
            Ok(server) => server,
            Err(e) => panic!("cannot start a test Redis server: {e}"),
        }
    }

    /// Starts a fresh server. The error carries the server log.
    pub fn try_start() -> io::Result<RedisServer> {
        RedisServer::try_start_with(&[])
    }

    /// Starts a fresh server with extra arguments. The error carries the server log.
    pub fn try_start_with(extra_args: &[&str]) -> io::Result<RedisServer> {
        let program = std::env::var_os("PALISADE_REDIS_SERVER")
            .map_or_else(|| PathBuf::from("/usr/bin/redis-server"), PathBuf::from);
        let dir = tempfile::Builder::new()
            .prefix("palisade-redis-")
            .tempdir_in("/tmp")?;
        let mut server = RedisServer {
            dir,
            program,
            port: 0,
            reservation: None,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            child: Mutex::new(None),
        };

        // A cluster node also listens on its port + 10000 (the cluster bus).
        let offsets: &[u16] = if extra_args.contains(&"--cluster-enabled") {
            &[10_000]
        } else {
            &[]
        };
        // A process that is not a test can still bind the port before the server: retry a
        // few times.
        let mut last_error = None;
        for _ in 0..5 {
            let reservation = ports::reserve(offsets)?;
            server.port = reservation.port();
            server.reservation = Some(reservation);
            let log_before = server.log().len();
            match server.start_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let log = server.log();
                    let attempt = log.get(log_before..).unwrap_or(&log);
                    if !attempt.contains("already in use") {
                        return Err(io::Error::other(format!("{e}\n--- server log ---\n{log}")));
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port the server listens on (the same after [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far (its own log lines and anything it wrote to stdout/stderr),
    /// across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the server at once (`SIGKILL`: connections are cut, as in a crash), waits for
    /// the process to exit and for the port to stop accepting connections. Does nothing if
    /// it is already stopped. Panics if the port still accepts after [`STOP_TIMEOUT`].
    pub fn stop(&self) {
        if let Some(mut child) = self.lock_child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
            if Instant::now() > deadline {
                panic!(
                    "{} still accepts connections after the test Redis server was killed",
                    self.addr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and commands queue up
    /// unanswered, as with a server stalled by a long command, swapping or a VM pause. Each
    /// queued command runs on [`RedisServer::resume`]. Panics if it is not running.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again (`SIGCONT`); it then answers what queued up.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let child = self.lock_child();
        let pid = child
            .as_ref()
            .unwrap_or_else(|| panic!("SIG{name}: the test Redis server is not running"))
            .id();
        let status = Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("run `kill -s {name} {pid}`: {e}"));
        assert!(status.success(), "`kill -s {name} {pid}` failed");
    }

    /// Starts the server again after [`RedisServer::stop`], on the same port, and waits until
    /// it answers `PING`. Nothing was persisted: it comes back empty. If it is still running
    /// it is stopped first. Panics (with the server log) if it cannot start.
    pub fn restart(&self) {
        self.stop();
        if let Err(e) = self.start_and_wait() {
            panic!("cannot restart the test Redis server: {e}\n{}", self.log());
        }
    }

    /// Sends one command (`args[0]` is its name) as a RESP array of bulk strings over a fresh
    /// connection and returns the reply. A Redis error reply is `Ok(RespValue::Error(_))`;
    /// `Err` means the server could not be reached or answered something unparsable.
    pub fn command(&self, args: &[&str]) -> io::Result<RespValue> {
        let stream = TcpStream::connect_timeout(&self.addr(), COMMAND_TIMEOUT)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        (&stream).write_all(&encode_command(args))?;
        read_value(&mut BufReader::new(&stream))
    }

    /// `KEYS pattern`, sorted (Redis answers in no particular order). Panics on failure.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let reply = self.expect_reply(&["KEYS", pattern]);
        let mut keys = reply
            .as_strings()
            .unwrap_or_else(|| panic!("KEYS {pattern} answered {reply:?}"));
        keys.sort();
        keys
    }

    /// `PTTL key`: the remaining time to live in milliseconds, `-1` if the key has no expiry,
    /// `-2` if it does not exist. Panics on failure.
    pub fn ttl_ms(&self, key: &str) -> i64 {
        let reply = self.expect_reply(&["PTTL", key]);
        reply
            .as_integer()
            .unwrap_or_else(|| panic!("PTTL {key} answered {reply:?}"))
    }

    /// `INFO section`, as text. Panics on failure.
    pub fn info(&self, section: &str) -> String {
        let reply = self.expect_reply(&["INFO", section]);
        reply
            .as_string()
            .unwrap_or_else(|| panic!("INFO {section} answered {reply:?}"))
    }

    fn expect_reply(&self, args: &[&str]) -> RespValue {
        match self.command(args) {
            Ok(RespValue::Error(e)) => panic!("{args:?} failed: {e}"),
            Ok(reply) => reply,
            Err(e) => panic!("{args:?} failed: {e}\n--- server log ---\n{}", self.log()),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        // A test that panicked while holding the lock must not keep the server from dying.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spawns the server on `self.port` and waits until it answers `PING`. On failure the
    /// process is killed and reaped.
    fn start_and_wait(&self) -> io::Result<()> {
        // Errors from before the log file is open (bad arguments) go to stderr: same file.
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let port = self.port.to_string();
        let mut child = Command::new(&self.program)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(&self.extra_args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.program.display())))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        let outcome = loop {
            if let Some(status) = child.try_wait()? {
                break Err(io::Error::other(format!(
                    "redis-server on port {port} exited ({status})"
                )));
            }
            if self.ping() {
                break Ok(());
            }
            if Instant::now() > deadline {
                break Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("Redis did not answer PING on {}", self.addr()),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        };
        match outcome {
            Ok(()) => {
                *self.lock_child() = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// True when the server answers `+PONG` to a raw `PING`.
    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && reply == *b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.lock_child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // `dir` is removed when it drops, right after this.
    }
}

/// How long [`RedisCluster::start`] waits for `cluster_state:ok` on every node.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Redis Cluster of primaries (no replicas), each node a [`RedisServer`].
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` (at least 3, as `redis-cli --cluster create` requires) cluster-mode
    /// servers, spreads the 16384 slots over them and waits until the cluster is ready.
    /// Panics (with the tool's output or the node's log) if it cannot.
    pub fn start(primaries: usize) -> RedisCluster {
        assert!(primaries >= 3, "a Redis Cluster needs at least 3 primaries");
        let nodes: Vec<RedisServer> = (0..primaries)
            .map(|_| {
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
            })
            .collect();
        let cli = std::env::var_os("PALISADE_REDIS_CLI")
            .map_or_else(|| PathBuf::from("/usr/bin/redis-cli"), PathBuf::from);
        let output = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", cli.display()));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + CLUSTER_READY_TIMEOUT;
        for node in &cluster.nodes {
            while !(node.expect_reply(&["CLUSTER", "INFO"]).as_string())
                .is_some_and(|info| info.contains("cluster_state:ok"))
            {
                assert!(
                    Instant::now() < deadline,
                    "node {} never reported cluster_state:ok\n{}",
                    node.port(),
                    node.log()
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// The cluster's nodes, in start order.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node (primary) that owns `key`'s slot: `CLUSTER KEYSLOT`, then each node's own
    /// slot ranges (its `myself` line of `CLUSTER NODES`).
    pub fn owner_of(&self, key: &str) -> &RedisServer {
        let slot = self.nodes[0]
            .expect_reply(&["CLUSTER", "KEYSLOT", key])
            .as_integer()
            .unwrap_or_else(|| panic!("CLUSTER KEYSLOT {key} gave no integer"));
        (self.nodes.iter())
            .find(|node| {
                let nodes = node.expect_reply(&["CLUSTER", "NODES"]);
                let text = nodes.as_string().unwrap_or_default();
                let myself = text.lines().find(|l| l.contains("myself")).unwrap_or("");
                // Slot ranges follow the 8 fixed fields: `0-5460`, or a single `42`.
                myself.split(' ').skip(8).any(|range| {
                    let (low, high) = range.split_once('-').unwrap_or((range, range));
                    match (low.parse::<i64>(), high.parse::<i64>()) {
                        (Ok(low), Ok(high)) => (low..=high).contains(&slot),
                        _ => false,
                    }
                })
            })
            .unwrap_or_else(|| panic!("no node owns slot {slot}"))
    }

    /// Per node (in start order), the keys it holds matching `pattern`, sorted.
    pub fn keys_by_node(&self, pattern: &str) -> Vec<Vec<String>> {
        self.nodes.iter().map(|n| n.keys(pattern)).collect()
    }
}

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3 foo`; `None` is the nil bulk string (`$-1`), e.g. `GET` of a missing key.
    Bulk(Option<Vec<u8>>),
    /// `*2 …`; `None` is the nil array (`*-1`). Elements may themselves be arrays.
    Array(Option<Vec<RespValue>>),
}

impl RespValue {
    /// The value of an [`RespValue::Integer`].
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            RespValue::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes of a non-nil [`RespValue::Bulk`] or of a [`RespValue::Simple`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            RespValue::Bulk(Some(b)) => Some(b),
            RespValue::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// [`RespValue::as_bytes`] as text (lossy UTF-8).
    pub fn as_string(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// The elements of a non-nil array as text (lossy UTF-8), if every one is a non-nil
    /// bulk or simple string (as in the reply to `KEYS`).
    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            RespValue::Array(Some(items)) => items.iter().map(RespValue::as_string).collect(),
            _ => None,
        }
    }

    /// True for the nil bulk string and the nil array.
    pub fn is_nil(&self) -> bool {
        matches!(self, RespValue::Bulk(None) | RespValue::Array(None))
    }
}

/// `args` as a RESP array of bulk strings.
fn encode_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One `\r\n`-terminated line, without the terminator.
fn read_line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(if line.is_empty() {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a reply",
            )
        } else {
            invalid(format!(
                "unterminated RESP line {:?}",
                String::from_utf8_lossy(&line)
            ))
        });
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// A length or integer field; `-1` (nil) comes back as `None`.
fn read_length(text: &str) -> io::Result<Option<usize>> {
    match text.parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(n) => usize::try_from(n)
            .map(Some)
            .map_err(|_| invalid(format!("bad RESP length {n}"))),
        Err(_) => Err(invalid(format!("bad RESP length {text:?}"))),
    }
}

/// Parses one RESP2 value (arrays recursively).
fn read_value(reader: &mut impl BufRead) -> io::Result<RespValue> {
    let line = read_line(reader)?;
    let Some((&kind, rest)) = line.split_first() else {
        return Err(invalid("empty RESP line"));
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(RespValue::Simple(text)),
        b'-' => Ok(RespValue::Error(text)),
        b':' => text
            .parse()
            .map(RespValue::Integer)
            .map_err(|_| invalid(format!("bad RESP integer {text:?}"))),
        b'$' => match read_length(&text)? {
            None => Ok(RespValue::Bulk(None)),
            Some(len) => {
                let mut data = vec![0u8; len + 2];
                reader.read_exact(&mut data)?;
                if !data.ends_with(b"\r\n") {
                    return Err(invalid("RESP bulk string not followed by CRLF"));
                }
                data.truncate(len);
                Ok(RespValue::Bulk(Some(data)))
            }
        },
        b'*' => match read_length(&text)? {
            None => Ok(RespValue::Array(None)),
            Some(n) => (0..n)
                .map(|_| read_value(reader))
                .collect::<io::Result<Vec<_>>>()
                .map(|items| RespValue::Array(Some(items))),
        },
        other => Err(invalid(format!(
            "unknown RESP type byte {:?}",
            char::from(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RespValue {
        RespValue::Bulk(Some(s.as_bytes().to_vec()))
    }

    #[test]
    fn parses_nested_replies() {
        let wire = b"*3\r\n:1\r\n*2\r\n$4\r\na\r\nb\r\n$-1\r\n*-1\r\n+OK\r\n-ERR no\r\n$0\r\n\r\n";
        let mut reader = &wire[..];
        assert_eq!(
            read_value(&mut reader).unwrap(),
            RespValue::Array(Some(vec![
                RespValue::Integer(1),
                RespValue::Array(Some(vec![bulk("a\r\nb"), RespValue::Bulk(None)])),
                RespValue::Array(None),
            ]))
        );
        assert_eq!(
            read_value(&mut reader).unwrap(),
            RespValue::Simple("OK".into())
        );
        assert_eq!(
            read_value(&mut reader).unwrap(),
            RespValue::Error("ERR no".into())
        );
        assert_eq!(read_value(&mut reader).unwrap(), bulk(""));
        assert_eq!(
            read_value(&mut reader).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert!(read_value(&mut &b"$5\r\nab\r\n"[..]).is_err());
        assert!(read_value(&mut &b"?1\r\n"[..]).is_err());
        assert_eq!(
            encode_command(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn commands_stop_restart_and_cleanup() {
        let server = RedisServer::start();
        assert_ne!(server.port(), 6379);
        assert_eq!(
            server.url(),
            format!("redis://127.0.0.1:{}/", server.port())
        );
        assert!(server.log().contains("Ready to accept connections"));

        assert_eq!(
            server.command(&["PING"]).unwrap(),
            RespValue::Simple("PONG".into())
        );
        assert_eq!(
            server.command(&["SET", "rl:alice", "va lue"]).unwrap(),
            RespValue::Simple("OK".into())
        );
        assert_eq!(
            server.command(&["GET", "rl:alice"]).unwrap().as_string(),
            Some("va lue".into())
        );
        assert!(server.command(&["GET", "missing"]).unwrap().is_nil());
        assert_eq!(
            server
                .command(&["INCRBY", "counter", "5"])
                .unwrap()
                .as_integer(),
            Some(5)
        );
        assert!(matches!(
            server.command(&["INCR", "rl:alice"]).unwrap(),
            RespValue::Error(e) if e.starts_with("ERR")
        ));
        server
            .command(&["SET", "rl:bob", "1", "PX", "60000"])
            .unwrap();
        assert_eq!(server.keys("rl:*"), ["rl:alice", "rl:bob"]);
        assert!(server.keys("nothing:*").is_empty());
        let ttl = server.ttl_ms("rl:bob");
        assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
        assert_eq!(server.ttl_ms("rl:alice"), -1);
        assert_eq!(server.ttl_ms("missing"), -2);
        // A nested reply from the real server: SCAN answers [cursor, [keys…]].
        let scan = server.command(&["SCAN", "0", "COUNT", "100"]).unwrap();
        let RespValue::Array(Some(parts)) = &scan else {
            panic!("SCAN answered {scan:?}");
        };
        assert_eq!(parts[0].as_string().as_deref(), Some("0"));
        assert_eq!(parts[1].as_strings().map(|k| k.len()), Some(3));

        // Paused, the server accepts nothing it answers; resumed, it answers what queued up.
        server.pause();
        let queued = TcpStream::connect_timeout(&server.addr(), COMMAND_TIMEOUT).unwrap();
        queued
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        (&queued)
            .write_all(&encode_command(&["SET", "queued", "1"]))
            .unwrap();
        assert!(read_value(&mut BufReader::new(&queued)).is_err(), "paused");
        server.resume();
        queued.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
        assert_eq!(
            read_value(&mut BufReader::new(&queued)).unwrap(),
            RespValue::Simple("OK".into())
        );
        assert!(server.ping());
        server.command(&["DEL", "queued"]).unwrap();

        let port = server.port();
        server.stop();
        assert!(!server.ping());
        assert!(server.command(&["PING"]).is_err());
        server.stop(); // idempotent

        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(
            server.command(&["PING"]).unwrap(),
            RespValue::Simple("PONG".into())
        );
        assert!(server.keys("*").is_empty(), "nothing is persisted");

        let dir = server.dir.path().to_owned();
        let addr = server.addr();
        drop(server);
        assert!(!dir.exists(), "directory left behind");
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }
}
