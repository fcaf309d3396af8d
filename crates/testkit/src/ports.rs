//! Ports for test servers that are started on a port chosen in advance (Redis, PostgreSQL),
//! reserved for as long as the server's value lives, its restarts included.
//!
//! A port found free by binding port 0 lies in the kernel's ephemeral range. While its
//! server is down (between `stop` and `restart`) the kernel may hand it to any new socket
//! of any process: a gateway listening on port 0, a client's connection, another test run's
//! probe. The restart then fails, or reaches someone else's server. So these ports are
//! taken below that range, where the kernel assigns none, and each is claimed across
//! processes by binding an abstract Unix socket named after it: a second claim fails, and
//! the kernel releases the name when its holder exits, however it exits.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
    io,
    net::{Ipv4Addr, TcpListener},
    os::linux::net::SocketAddrExt,
    os::unix::net::{SocketAddr, UnixListener},
};

/// The lowest port handed out.
const FIRST: u16 = 10_000;

/// Ports of 127.0.0.1 claimed by this process until dropped: `port()` and, for a server
/// that also listens at fixed offsets from it (a Redis Cluster bus), those.
#[derive(Debug)]
pub struct ReservedPort {
    port: u16,
    _claims: Vec<UnixListener>,
}

impl ReservedPort {
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reserves a port that no process listens on, with `port + offset` for each of `offsets`
/// (`&[]`: the port alone), below the kernel's ephemeral range.
pub fn reserve(offsets: &[u16]) -> io::Result<ReservedPort> {
    let span = offsets.iter().copied().max().unwrap_or(0);
    let end = ephemeral_start()?.saturating_sub(span);
    if end <= FIRST {
        return Err(io::Error::other(format!(
            "no ports below the ephemeral range leave room for offsets {offsets:?}"
        )));
    }
    let seed = RandomState::new();
    for attempt in 0u32..10_000 {
        let mut hasher = seed.build_hasher();
        hasher.write_u32(attempt);
        let port = FIRST + (hasher.finish() % u64::from(end - FIRST)) as u16;
        let ports: Vec<u16> = std::iter::once(port)
            .chain(offsets.iter().map(|o| port + o))
            .collect();
        let Some(claims) = ports.iter().map(|&p| claim(p)).collect::<Option<Vec<_>>>() else {
            continue;
        };
        // Claimed by no test; now make sure nothing else listens there either.
        if ports
            .iter()
            .all(|&p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok())
        {
            return Ok(ReservedPort {
                port,
                _claims: claims,
            });
        }
    }
    Err(io::Error::other("no free port below the ephemeral range"))
}

/// The claim on `port`, or `None` if another test holds it.
fn claim(port: u16) -> Option<UnixListener> {
    let name = format!("palisade-testkit-port-{port}");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    UnixListener::bind_addr(&addr).ok()
}

/// The first port of the kernel's ephemeral range (the default range starts at 32768).
fn ephemeral_start() -> io::Result<u16> {
    let range = match std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(32_768),
        Err(e) => return Err(e),
    };
    range
        .split_whitespace()
        .next()
        .and_then(|first| first.parse().ok())
        .ok_or_else(|| io::Error::other(format!("ip_local_port_range: {range:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_is_below_the_ephemeral_range_and_claimed_once() {
        let reserved = reserve(&[10_000]).unwrap();
        let port = reserved.port();
        assert!(port >= FIRST && port + 10_000 < ephemeral_start().unwrap());
        assert!(claim(port).is_none(), "claimed twice");
        assert!(claim(port + 10_000).is_none(), "offset claimed twice");
        drop(reserved);
        assert!(claim(port).is_some(), "released on drop");
    }
}
