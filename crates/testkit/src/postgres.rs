//! A real, throw-away PostgreSQL server for tests.
//!
//! [`PostgresServer::start`] runs Debian's `initdb` and `pg_ctl` (the highest version under
//! `/usr/lib/postgresql/*/bin`, or the directory in `PALISADE_PG_BIN`) on a fresh data
//! directory inside a temporary directory under `/tmp`, on a port of 127.0.0.1 reserved for
//! it ([`crate::ports`]), with the Unix socket inside the temporary directory,
//! `trust` authentication and `fsync`/`full_page_writes` off for speed (committed data
//! survives [`PostgresServer::stop`] + [`PostgresServer::restart`], which is a crash of the
//! server, not of the machine; `synchronous_commit` stays on for that reason). Dropping the
//! value stops the server (`pg_ctl stop -m immediate`, then `kill -9` should it linger) and
//! removes the directory.
//!
//! PostgreSQL refuses to run as root. When the effective uid is 0 (asked of `id -u`; no
//! libc), the directory is handed to the `postgres` user and every PostgreSQL command runs
//! through `runuser -u postgres --`. The directory is created with mode 0755 so that user
//! can reach it.
//!
//! Only std is used, so this works from sync tests and from inside tokio tests alike
//! (starting blocks for about a second).

use std::{
    fs,
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::ports::{self, ReservedPort};

/// How long to wait for the server to accept TCP connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server, stopped and deleted on drop.
#[derive(Debug)]
pub struct PostgresServer {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Holds `port` for this server until it drops.
    reservation: Option<ReservedPort>,
    as_postgres_user: bool,
}

impl PostgresServer {
    /// Starts a fresh server; panics (with the server log) if it cannot.
    pub fn start() -> PostgresServer {
        match PostgresServer::try_start() {
            Ok(server) => server,
            Err(e) => panic!("cannot start a test PostgreSQL server: {e}"),
        }
    }

    /// Starts a fresh server.
    pub fn try_start() -> io::Result<PostgresServer> {
        let bin = find_bin_dir()?;
        let as_postgres_user = euid_is_root()?;
        let dir = tempfile::Builder::new()
            .prefix("palisade-pg-")
            .permissions(fs::Permissions::from_mode(0o755))
            .tempdir_in("/tmp")?;
        fs::create_dir(dir.path().join("sock"))?;
        if as_postgres_user {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir.path()))?;
        }
        let mut server = PostgresServer {
            dir,
            bin,
            port: 0,
            reservation: None,
            as_postgres_user,
        };
        let mut initdb = server.pg_command("initdb");
        initdb.arg("-D").arg(server.data_dir()).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        run(&mut initdb)?;

        let sock = server.dir.path().join("sock");
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(server.data_dir().join("postgresql.conf"))?;
        writeln!(
            conf,
            "\n# palisade-testkit\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\n\
             shared_buffers = 16MB\nmax_connections = 100\ninclude_if_exists = 'palisade-port.conf'",
            sock.display()
        )?;
        drop(conf);

        // A process that is not a test can still bind the port before the server: retry a
        // few times.
        let mut last_error = None;
        for _ in 0..5 {
            let reservation = ports::reserve(&[])?;
            server.port = reservation.port();
            server.reservation = Some(reservation);
            fs::write(
                server.data_dir().join("palisade-port.conf"),
                format!("port = {}\n", server.port),
            )?;
            match server.start_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let log = server.log();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(io::Error::other(format!("{e}\n--- server log ---\n{log}")));
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server at once (`-m immediate`: connections are cut, as in a crash). The
    /// data directory is kept, so [`PostgresServer::restart`] can bring it back.
    pub fn stop(&self) {
        let pid = fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned));
        let mut stop = self.pg_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        let _ = run(&mut stop);
        if let Some(pid) = pid.filter(|p| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty()) {
            let alive = Command::new("kill")
                .args(["-0", &pid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if alive {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
    }

    /// Starts the server again after [`PostgresServer::stop`], on the same port and data.
    pub fn restart(&self) {
        if let Err(e) = self.start_and_wait() {
            panic!(
                "cannot restart the test PostgreSQL server: {e}\n{}",
                self.log()
            );
        }
    }

    /// The data directory (for tests that inspect what reached the disk).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be able to enter the caller's working directory.
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn start_and_wait(&self) -> io::Result<()> {
        let mut start = self.pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("postgres.log"))
            .args(["-w", "-t", "60", "start"]);
        run(&mut start)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("PostgreSQL did not accept connections on {addr}"),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        // `dir` is removed when it drops, right after this.
    }
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Whether this process runs as root (PostgreSQL refuses to; other harnesses need it).
pub fn euid_is_root() -> io::Result<bool> {
    let out = run(Command::new("id").arg("-u"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `PALISADE_PG_BIN`, else the highest `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn find_bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PALISADE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(version) = name
            .split('.')
            .map(str::parse::<u32>)
            .collect::<Result<Vec<u32>, _>>()
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("initdb").is_file() && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)",
        )
    })
}

/// Speaks just enough of the PostgreSQL wire protocol (a v3 startup message) to prove that a
/// server at `addr` accepts `user` on `database`: true on `AuthenticationOk`.
pub fn startup_handshake(addr: SocketAddr, user: &str, database: &str) -> io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let len = u32::try_from(body.len() + 4).map_err(io::Error::other)?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(&body)?;
    let mut head = [0u8; 9];
    stream.read_exact(&mut head)?;
    // 'R', length 8, auth code 0 = AuthenticationOk.
    Ok(head[0] == b'R' && head[1..5] == 8u32.to_be_bytes() && head[5..9] == [0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_accepts_tcp_connections_and_cleans_up() {
        let server = PostgresServer::start();
        assert_ne!(server.port(), 5432);
        assert!(server.url().starts_with("postgres://postgres@127.0.0.1:"));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()));
        assert!(
            startup_handshake(addr, "postgres", "postgres").unwrap(),
            "no AuthenticationOk"
        );

        server.stop();
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
        server.restart();
        assert!(startup_handshake(addr, "postgres", "postgres").unwrap());

        let dir = server.dir.path().to_owned();
        drop(server);
        assert!(!dir.exists(), "data directory left behind");
        assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    }
}
