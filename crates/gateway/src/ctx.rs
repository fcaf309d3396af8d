//! The per-request context: what every phase may read and what the log records.
//!
//! Built once when a request arrives (request id, peer, start time); the routing phase
//! adds the canonical path and route, later phases add what they learn. It is the only
//! state that travels alongside a request, so the access log and the error rescue see
//! the same facts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::Method;

use crate::path::CanonicalPath;

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The request arrived over TLS (the https listener).
    pub tls: bool,
}

/// An address written as `Display` writes it, IPv4 in one piece: the client address goes
/// into the access line and `X-Forwarded-For` of every request, and std's formatter
/// writes an IPv4 address as seven pieces through the formatting machinery.
pub(crate) struct IpText(pub IpAddr);

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v4 = match self.0 {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => return v6.fmt(f),
        };
        let mut text = [0u8; 15];
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                text[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                text[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                text[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            text[len] = b'0' + octet % 10;
            len += 1;
        }
        // Digits and dots only: always UTF-8.
        f.pad(std::str::from_utf8(&text[..len]).map_err(|_| std::fmt::Error)?)
    }
}

/// A request id: unique per process run, unguessable across runs.
///
/// A random per-process prefix plus a counter costs nothing per request, unlike reading
/// the OS RNG each time. Client-supplied `X-Request-Id` values are never reused: they are
/// attacker-controlled text that would otherwise flow into every log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    pub fn next() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Twenty hex digits: eight of the process prefix, twelve of the counter (written
        // by hand: one id per request, and `format!` cost more than the rest of it).
        if n >> 48 != 0 {
            return RequestId(format!("{:08x}{:012x}", process_prefix(), n).into());
        }
        let mut text = [0u8; 20];
        put_hex(&mut text[..8], u64::from(process_prefix()));
        put_hex(&mut text[8..], n);
        // Hex digits only: always UTF-8.
        RequestId(std::str::from_utf8(&text).unwrap_or_default().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes the low digits of `value` into `out` as lower-case hex, zero-padded.
fn put_hex(out: &mut [u8], mut value: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn process_prefix() -> u32 {
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u32> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        // The installed crypto provider's RNG is the OS RNG; failure here is not fatal
        // for an identifier, so fall back to the clock.
        let random = rustls::crypto::CryptoProvider::get_default()
            .map(|p| p.secure_random.fill(&mut bytes).is_ok())
            .unwrap_or(false);
        if random {
            u32::from_be_bytes(bytes)
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
                .unwrap_or(0)
        }
    })
}

/// Everything the gateway knows about one request, filled in phase by phase.
#[derive(Debug)]
pub struct RequestCtx {
    pub id: RequestId,
    pub conn: ConnInfo,
    /// The client's address: the peer, or, when the peer is a trusted proxy, the
    /// nearest untrusted address it forwarded for.
    pub client_ip: IpAddr,
    pub method: Method,
    pub started: Instant,
    /// Set by routing; `None` when the path was rejected before it was canonical.
    pub path: Option<CanonicalPath>,
    /// The raw query string, if any (logged with its values redacted).
    pub query: Option<String>,
    /// Name of the matched route.
    pub route: Option<Arc<str>>,
    /// Name of the upstream the request was forwarded to.
    pub upstream: Option<Arc<str>>,
    /// The authenticated subject, once authentication has passed.
    pub subject: Option<Arc<str>>,
    /// The public id of the API key that authenticated the request.
    pub key_id: Option<Arc<str>>,
    /// The tightest rate-limit policy's state, when `RateLimit` headers go on every response.
    pub rate_limit: Option<crate::quota::state::RateLimitState>,
    /// The `on_store_error` mode that decided this request's rate limits, when the shared
    /// store failed (`local`, `deny` or `allow`).
    pub rate_limit_fallback: Option<&'static str>,
    /// What `auth_failures` charged this login in advance (refunded unless it fails).
    pub login_attempt: Option<crate::quota::state::LoginAttempt>,
    /// The quota earlier rate-limit phases took, refunded if a later one refuses.
    pub rate_taken: crate::quota::state::Taken,
}

impl RequestCtx {
    pub fn new(conn: ConnInfo, method: Method) -> Self {
        RequestCtx {
            id: RequestId::next(),
            conn,
            client_ip: conn.peer.ip(),
            method,
            started: Instant::now(),
            path: None,
            query: None,
            route: None,
            upstream: None,
            subject: None,
            key_id: None,
            rate_limit: None,
            rate_limit_fallback: None,
            login_attempt: None,
            rate_taken: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_reads_as_std_writes_it() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "9.99.199.200",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText(ip).to_string(), ip.to_string());
            assert_eq!(
                format!("{:>16}", IpText(ip)),
                format!("{:>16}", ip.to_string())
            );
        }
    }

    #[test]
    fn request_ids_are_distinct_and_fixed_width() {
        let a = RequestId::next();
        let b = RequestId::next();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 20);
        assert!(a.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a.as_str()[..8], format!("{:08x}", process_prefix()));
        let counter = |id: &RequestId| u64::from_str_radix(&id.as_str()[8..], 16).unwrap();
        assert!(counter(&b) > counter(&a), "{a:?} then {b:?}");
        let mut text = [0u8; 12];
        put_hex(&mut text, 0xabc_0123_4def);
        assert_eq!(&text, b"0abc01234def");
    }
}
