//! A tiny raw HTTP/1.1 client, and raw TLS probes, for tests that must control the bytes.
//!
//! Real clients (reqwest, hyper) normalize what they send: `/api/../x` becomes `/x`, duplicate
//! `Content-Length` headers are impossible, a header cannot be half-sent. Tests of path
//! normalization, request smuggling and slowloris need the exact bytes on the wire, so this
//! module writes them verbatim and parses just enough of the answer:
//!
//! - [`send`] / [`send_tls`]: write a request, read one response (Content-Length, chunked, or
//!   until close), everything within a 10 s deadline that panics with a clear message;
//! - [`RawConnection`]: the same on a kept connection, for pipelining and keep-alive tests;
//! - [`connection_closed_within`]: does the server drop a client that stalls mid-headers?
//! - [`tls_handshake_with_version`]: a hand-built ClientHello offering an old TLS version,
//!   since rustls (rightly) cannot be made to offer TLS 1.1.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, timeout, timeout_at},
};

/// How long a raw exchange may take before the test fails.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP response as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, values as sent (lossy UTF-8), in wire order, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The body after de-chunking.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy UTF-8).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the status and body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {:?}",
                self.status,
                self.body_str()
            )
        })
    }
}

/// Anything a raw connection can run over (TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A kept connection: write bytes verbatim, read responses one at a time.
///
/// Bytes read past the end of one response are kept for the next, so pipelined responses
/// parse correctly.
pub struct RawConnection {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    peer: SocketAddr,
    /// The response to a HEAD request has no body whatever its headers say; tracked from the
    /// first bytes of the last write (good enough for tests, which write whole requests).
    last_was_head: bool,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection")
            .field("peer", &self.peer)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl RawConnection {
    /// Opens a TCP connection; panics if it cannot within [`RAW_TIMEOUT`].
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = connect_tcp(addr).await;
        RawConnection {
            io: Box::new(tcp),
            buf: Vec::new(),
            peer: addr,
            last_was_head: false,
        }
    }

    /// Opens a TLS connection with `config`, verifying the certificate for `server_name`.
    pub async fn connect_tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Self {
        let tcp = connect_tcp(addr).await;
        let name = ServerName::try_from(server_name.to_owned())
            .unwrap_or_else(|e| panic!("invalid TLS server name {server_name:?}: {e}"));
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = timeout(RAW_TIMEOUT, connector.connect(name, tcp))
            .await
            .unwrap_or_else(|_| panic!("TLS handshake with {addr} timed out after 10 s"))
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} failed: {e}"));
        RawConnection {
            io: Box::new(tls),
            buf: Vec::new(),
            peer: addr,
            last_was_head: false,
        }
    }

    /// Writes `bytes` exactly as given.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.last_was_head = bytes.starts_with(b"HEAD ");
        let peer = self.peer;
        self.write_within_timeout(bytes)
            .await
            .unwrap_or_else(|_| panic!("writing to {peer} timed out after 10 s"))
            .unwrap_or_else(|e| panic!("writing to {peer} failed: {e}"));
    }

    /// Writes `bytes`; `false` when the server has closed (or reset) the connection.
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        matches!(self.write_within_timeout(bytes).await, Ok(Ok(())))
    }

    async fn write_within_timeout(
        &mut self,
        bytes: &[u8],
    ) -> Result<io::Result<()>, tokio::time::error::Elapsed> {
        timeout(RAW_TIMEOUT, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
    }

    /// Writes `request` and reads one response; panics on error or after 10 s.
    pub async fn send(&mut self, request: &[u8]) -> RawResponse {
        self.write(request).await;
        self.read_response().await
    }

    /// Reads one response; panics (showing what arrived) on error or after 10 s.
    pub async fn read_response(&mut self) -> RawResponse {
        match self.try_read_response().await {
            Ok(rsp) => rsp,
            Err(e) => panic!(
                "no complete HTTP response from {}: {e}; bytes received and unparsed: {:?}",
                self.peer,
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads one response; `Err` when the server closes (or resets) before a complete one,
    /// or after 10 s (`ErrorKind::TimedOut`). For tests where "no answer" is the right answer.
    pub async fn try_read_response(&mut self) -> io::Result<RawResponse> {
        match timeout(RAW_TIMEOUT, self.read_response_inner()).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out after 10 s",
            )),
        }
    }

    /// True if the server closes the connection (EOF or error) within `within`; any bytes it
    /// sends first (e.g. a 408) are read and discarded.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 4096];
        loop {
            match timeout_at(deadline, self.io.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads more bytes into the buffer; returns how many (0 at EOF).
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads until `buf` holds `needle`; returns the index just past it.
    async fn fill_until(&mut self, needle: &[u8]) -> io::Result<usize> {
        let mut searched = 0;
        loop {
            if let Some(i) = find(&self.buf[searched..], needle) {
                return Ok(searched + i + needle.len());
            }
            searched = self.buf.len().saturating_sub(needle.len() - 1);
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-response",
                ));
            }
        }
    }

    /// Removes and returns the first `n` bytes of the buffer, reading more as needed.
    async fn take_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed after {} of {n} body bytes",
                        self.buf.len()
                    ),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn read_response_inner(&mut self) -> io::Result<RawResponse> {
        loop {
            let end = self.fill_until(b"\r\n\r\n").await?;
            let head: Vec<u8> = self.buf.drain(..end).collect();
            let (status, headers) = parse_head(&head)?;
            // Interim responses (100 Continue, 103 Early Hints) precede the real one.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let body = if self.last_was_head || status == 101 || status == 204 || status == 304 {
                Vec::new()
            } else if header("transfer-encoding")
                .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
            {
                self.read_chunked().await?
            } else if let Some(len) = header("content-length") {
                let len: usize = len.trim().parse().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad Content-Length {len:?}"),
                    )
                })?;
                self.take_exact(len).await?
            } else {
                self.read_to_close().await
            };
            return Ok(RawResponse {
                status,
                headers,
                body,
            });
        }
    }

    /// Chunked body (RFC 9112 §7.1): `size[;ext] CRLF data CRLF` … `0 CRLF [trailers] CRLF`.
    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let end = self.fill_until(b"\r\n").await?;
            let line: Vec<u8> = self.buf.drain(..end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {line:?}"),
                )
            })?;
            if size == 0 {
                // Trailer section: header lines until an empty line.
                loop {
                    let end = self.fill_until(b"\r\n").await?;
                    self.buf.drain(..end);
                    if end == 2 {
                        return Ok(body);
                    }
                }
            }
            let mut data = self.take_exact(size + 2).await?;
            if !data.ends_with(b"\r\n") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk data not followed by CRLF",
                ));
            }
            data.truncate(size);
            body.extend_from_slice(&data);
        }
    }

    /// A body delimited by the connection closing. Errors count as the end: a TLS peer that
    /// skips close_notify, or a reset after the last byte, still delimits the body.
    async fn read_to_close(&mut self) -> Vec<u8> {
        while let Ok(n) = self.fill().await {
            if n == 0 {
                break;
            }
        }
        std::mem::take(&mut self.buf)
    }
}

/// Sends `request` verbatim over a new TCP connection and reads one response.
pub async fn send(addr: SocketAddr, request: &[u8]) -> RawResponse {
    RawConnection::connect(addr).await.send(request).await
}

/// Sends `request` verbatim over a new TLS connection and reads one response.
pub async fn send_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    request: &[u8],
) -> RawResponse {
    RawConnection::connect_tls(addr, config, server_name)
        .await
        .send(request)
        .await
}

/// Slowloris probe: sends `initial_bytes` (e.g. half a request head), then waits. True if the
/// server closed the connection (read returned 0 or an error) before `within` elapsed.
pub async fn connection_closed_within(
    addr: SocketAddr,
    initial_bytes: &[u8],
    within: Duration,
) -> bool {
    let mut conn = RawConnection::connect(addr).await;
    // A server may close while we write; that is a close too.
    if conn.io.write_all(initial_bytes).await.is_err() {
        return true;
    }
    conn.closed_within(within).await
}

async fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let tcp = timeout(RAW_TIMEOUT, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("connecting to {addr} timed out after 10 s"))
        .unwrap_or_else(|e| panic!("connecting to {addr} failed: {e}"));
    // Tests write requests in pieces on purpose; don't let Nagle merge or delay them.
    let _ = tcp.set_nodelay(true);
    tcp
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses `HTTP/1.x NNN reason CRLF (name: value CRLF)* CRLF`.
fn parse_head(head: &[u8]) -> io::Result<(u16, Vec<(String, String)>)> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not an HTTP/1 status line: {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header line: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

/// What a server answered to a hand-built ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// The server agreed on `version` (from `supported_versions` if present, else
    /// ServerHello.server_version).
    ServerHello { version: u16 },
    /// The server refused with an alert, e.g. `description` 70 = protocol_version,
    /// 40 = handshake_failure.
    Alert { level: u8, description: u8 },
    /// The server closed (or reset) the connection without a record.
    Closed,
}

/// TLS protocol version numbers, for [`tls_handshake_with_version`].
pub mod tls_version {
    pub const TLS1_0: u16 = 0x0301;
    pub const TLS1_1: u16 = 0x0302;
    pub const TLS1_2: u16 = 0x0303;
}

/// Sends a minimal ClientHello offering exactly `version` (no `supported_versions`
/// extension, so TLS 1.3 cannot be negotiated) and reports the first record the server sends.
/// Panics on a connect failure, a 10 s timeout, or a first record that is neither a
/// handshake nor an alert.
pub async fn tls_handshake_with_version(addr: SocketAddr, version: u16) -> HandshakeOutcome {
    let mut tcp = connect_tcp(addr).await;
    let hello = client_hello(version, "localhost");
    let outcome = timeout(RAW_TIMEOUT, async {
        if tcp.write_all(&hello).await.is_err() {
            return HandshakeOutcome::Closed;
        }
        read_first_record(&mut tcp).await
    })
    .await;
    outcome.unwrap_or_else(|_| panic!("TLS probe of {addr}: no answer to ClientHello within 10 s"))
}

/// Builds a ClientHello record (RFC 5246 §6.2.1, §7.4.1.2; extensions RFC 6066, RFC 8422,
/// RFC 5246 §7.4.1.4.1):
///
/// ```text
/// TLSPlaintext {
///     ContentType   type = handshake(22)           u8
///     ProtocolVersion version = 0x0301             u16   (record layer; TLS 1.0 for compat)
///     uint16        length                         u16
///     Handshake {
///         HandshakeType msg_type = client_hello(1) u8
///         uint24        length                     u24
///         ClientHello {
///             ProtocolVersion client_version       u16   (the version under test)
///             Random          random               32 bytes
///             SessionID       session_id<0..32>    u8 length (0: empty)
///             CipherSuite     cipher_suites<2..2^16-2>  u16 length, u16 each
///             CompressionMethod compression_methods<1..2^8-1>  u8 length, [0 = null]
///             Extension       extensions<0..2^16-1>     u16 length, then each:
///                 ExtensionType extension_type u16, opaque extension_data<0..2^16-1>
///         }
///     }
/// }
/// ```
fn client_hello(version: u16, server_name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes()); // client_version
    // Random need not be random for a probe; it must only be 32 bytes.
    body.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    body.push(0); // session_id: empty

    // Suites valid for TLS 1.0–1.2. ECDHE-ECDSA ones match TestPki's P-256 key; the RSA and
    // CBC ones make the list look like a real old client's.
    let suites: [u16; 8] = [
        0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        0xc02f, // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        0xc030, // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        0xc009, // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
        0xc013, // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
        0x002f, // TLS_RSA_WITH_AES_128_CBC_SHA
    ];
    push_u16(&mut body, (suites.len() * 2) as u16);
    for suite in suites {
        push_u16(&mut body, suite);
    }
    body.extend_from_slice(&[1, 0]); // compression_methods: [null]

    let mut exts = Vec::new();
    // server_name(0): ServerNameList<u16> { name_type host_name(0) u8, HostName<u16> }.
    let name = server_name.as_bytes();
    let mut sni = Vec::new();
    push_u16(&mut sni, (name.len() + 3) as u16);
    sni.push(0);
    push_u16(&mut sni, name.len() as u16);
    sni.extend_from_slice(name);
    push_ext(&mut exts, 0x0000, &sni);
    // supported_groups(10): NamedGroupList<u16> { x25519(0x001d), secp256r1(0x0017) }.
    push_ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats(11): ECPointFormatList<u8> { uncompressed(0) }.
    push_ext(&mut exts, 0x000b, &[1, 0]);
    // signature_algorithms(13): SignatureSchemeList<u16>.
    let schemes: [u16; 8] = [
        0x0403, // ecdsa_secp256r1_sha256
        0x0503, // ecdsa_secp384r1_sha384
        0x0804, // rsa_pss_rsae_sha256
        0x0805, // rsa_pss_rsae_sha384
        0x0401, // rsa_pkcs1_sha256
        0x0501, // rsa_pkcs1_sha384
        0x0601, // rsa_pkcs1_sha512
        0x0201, // rsa_pkcs1_sha1 (what TLS 1.0/1.1 clients sign with)
    ];
    let mut sig = Vec::new();
    push_u16(&mut sig, (schemes.len() * 2) as u16);
    for scheme in schemes {
        push_u16(&mut sig, scheme);
    }
    push_ext(&mut exts, 0x000d, &sig);
    // Deliberately no supported_versions(43): client_version alone states what we offer.
    push_u16(&mut body, exts.len() as u16);
    body.extend_from_slice(&exts);

    let mut handshake = vec![1]; // msg_type: client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]); // uint24 length
    handshake.extend_from_slice(&body);

    let mut record = vec![22]; // content type: handshake
    push_u16(&mut record, 0x0301); // legacy record version
    push_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn push_ext(out: &mut Vec<u8>, ext_type: u16, data: &[u8]) {
    push_u16(out, ext_type);
    push_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// Reads one TLS record (`type u8, version u16, length u16, fragment`) and classifies it.
async fn read_first_record(tcp: &mut TcpStream) -> HandshakeOutcome {
    let mut header = [0u8; 5];
    if tcp.read_exact(&mut header).await.is_err() {
        return HandshakeOutcome::Closed;
    }
    let len = u16::from_be_bytes([header[3], header[4]]) as usize;
    let mut fragment = vec![0u8; len];
    if tcp.read_exact(&mut fragment).await.is_err() {
        return HandshakeOutcome::Closed;
    }
    match header[0] {
        // Alert { AlertLevel level u8, AlertDescription description u8 }
        21 if fragment.len() >= 2 => HandshakeOutcome::Alert {
            level: fragment[0],
            description: fragment[1],
        },
        22 => match parse_server_hello(&fragment) {
            Some(version) => HandshakeOutcome::ServerHello { version },
            None => {
                panic!("TLS probe: first handshake record is not a ServerHello: {fragment:02x?}")
            }
        },
        other => panic!(
            "TLS probe: unexpected first record type {other} (header {header:02x?}, \
             fragment {:?}); is this a TLS port?",
            String::from_utf8_lossy(&fragment)
        ),
    }
}

/// ServerHello (RFC 5246 §7.4.1.3): `msg_type(2) u8, length u24, server_version u16,
/// random[32], session_id<u8>, cipher_suite u16, compression_method u8, extensions<u16>`;
/// a `supported_versions(43)` extension (TLS 1.3, RFC 8446 §4.2.1) overrides server_version.
fn parse_server_hello(msg: &[u8]) -> Option<u16> {
    if *msg.first()? != 2 {
        return None;
    }
    let body = msg.get(4..)?;
    let legacy = u16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let mut i = 2 + 32;
    let sid_len = *body.get(i)? as usize;
    i += 1 + sid_len + 2 + 1; // session id, cipher suite, compression method
    if i + 2 > body.len() {
        return Some(legacy); // no extensions
    }
    let ext_end = (i + 2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize).min(body.len());
    i += 2;
    while i + 4 <= ext_end {
        let ext_type = u16::from_be_bytes([body[i], body[i + 1]]);
        let ext_len = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        if ext_type == 43 && ext_len == 2 {
            return Some(u16::from_be_bytes([*body.get(i + 4)?, *body.get(i + 5)?]));
        }
        i += 4 + ext_len;
    }
    Some(legacy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::TestPki;
    use tokio::net::TcpListener;

    /// A canned server: on each connection, reads one request head, writes `answer`
    /// verbatim and closes.
    async fn canned_server(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut tcp, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while find(&seen, b"\r\n\r\n").is_none() {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tcp.write_all(answer).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn content_length_body_and_headers() {
        let addr = canned_server(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nSet-Cookie: a=1\r\n\
              set-cookie: b=2\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
        )
        .await;
        let rsp = send(addr, b"GET /api/../x HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(rsp.status, 200);
        assert_eq!(rsp.header("Content-Type"), Some("application/json"));
        assert_eq!(rsp.header_all("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(rsp.json(), serde_json::json!({"ok": true}));
    }

    #[tokio::test]
    async fn chunked_body_with_interim_response_and_trailers() {
        let addr = canned_server(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        .await;
        let rsp = send(addr, b"POST / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(rsp.status, 201);
        assert_eq!(rsp.body_str(), "hello world");
    }

    #[tokio::test]
    async fn body_until_close_and_head() {
        let addr = canned_server(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it").await;
        let rsp = send(addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(rsp.body_str(), "all of it");

        let addr = canned_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n").await;
        let rsp = send(addr, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(rsp.header("content-length"), Some("100"));
        assert!(rsp.body.is_empty());
    }

    #[tokio::test]
    async fn pipelined_responses_on_one_connection() {
        let addr = canned_server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\noneHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\ntwo",
        )
        .await;
        let mut conn = RawConnection::connect(addr).await;
        let first = conn.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!((first.status, first.body_str().as_str()), (200, "one"));
        let second = conn.read_response().await;
        assert_eq!((second.status, second.body_str().as_str()), (404, "two"));
        assert!(conn.try_read_response().await.is_err(), "closed after two");
    }

    #[tokio::test]
    async fn slowloris_probe_sees_close_and_silence() {
        // A server that closes 100 ms after the connection opens…
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(tcp);
        });
        assert!(
            connection_closed_within(closing, b"GET / HTTP/1.1\r\nHost:", Duration::from_secs(5))
                .await
        );

        // …and one that waits forever.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let patient = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(tcp);
        });
        assert!(
            !connection_closed_within(
                patient,
                b"GET / HTTP/1.1\r\nHost:",
                Duration::from_millis(300)
            )
            .await
        );
    }

    /// A rustls server from TestPki: TLS 1.1 is refused with an alert, TLS 1.2 is accepted;
    /// then a real HTTP exchange over TLS with `send_tls`.
    #[tokio::test]
    async fn tls_version_probe_and_send_tls() {
        let pki = TestPki::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut chunk = [0u8; 1024];
                    let _ = tls.read(&mut chunk).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                        .await;
                    let _ = tls.flush().await;
                });
            }
        });

        match tls_handshake_with_version(addr, tls_version::TLS1_1).await {
            HandshakeOutcome::Alert { description, .. } => {
                assert!(matches!(description, 70 | 40), "alert {description}")
            }
            other => panic!("TLS 1.1 must be refused, got {other:?}"),
        }
        assert_eq!(
            tls_handshake_with_version(addr, tls_version::TLS1_2).await,
            HandshakeOutcome::ServerHello { version: 0x0303 }
        );

        let rsp = send_tls(
            addr,
            pki.client_config(&[b"http/1.1"]),
            "localhost",
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await;
        assert_eq!((rsp.status, rsp.body_str().as_str()), (200, "hi"));
    }

    #[tokio::test]
    async fn tls_probe_of_closed_port_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            drop(tcp);
        });
        assert_eq!(
            tls_handshake_with_version(addr, tls_version::TLS1_2).await,
            HandshakeOutcome::Closed
        );
    }

    #[test]
    fn client_hello_layout() {
        let hello = client_hello(0x0302, "localhost");
        assert_eq!(&hello[..3], &[22, 3, 1]);
        assert_eq!(
            u16::from_be_bytes([hello[3], hello[4]]) as usize,
            hello.len() - 5
        );
        assert_eq!(hello[5], 1);
        let hs_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(hs_len, hello.len() - 9);
        assert_eq!(&hello[9..11], &[3, 2]);
        assert!(find(&hello, b"localhost").is_some());
    }
}
