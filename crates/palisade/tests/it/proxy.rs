//! Checklist #5, #6 and #7 through real sockets: what the upstream receives (headers
//! rebuilt, identity never taken from the client), what the client gets back when the
//! upstream fails (a generic problem, details only in the log), and the request limits.
//!
//! Requests are raw bytes, so that the test, not a client library, decides every header
//! and every framing byte.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use palisade_testkit::gateway::log_field;
use palisade_testkit::raw::{self, RawConnection};
use palisade_testkit::upstream::SECRET_MARKER;
use palisade_testkit::{GatewayProcess, Recorded, RecordingUpstream};
use serde_json::Value;

use common::{assert_gateway_headers, assert_problem, log_line};

const MIB: usize = 1 << 20;

/// One gateway in front of one recording upstream, reached through several upstream
/// entries: `app` (plain), `slowpoke` (same server, 1 s timeout) and `down` (a closed port).
fn config(upstream_url: &str, down: SocketAddr, trusted_proxies: &[&str]) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
trusted_proxies = {trusted_proxies:?}

[limits]
max_body = "1MiB"
header_timeout = "1s"
request_timeout = "2s"

[[upstream]]
name = "app"
url = "{upstream_url}"

[[upstream]]
name = "slowpoke"
url = "{upstream_url}"
timeout = "1s"

[[upstream]]
name = "down"
url = "http://{down}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "app"
auth = "public"

[[route]]
name = "order"
path = "/api/orders/{{id}}"
methods = ["GET", "PUT", "DELETE"]
upstream = "app"
auth = "public"

[[route]]
name = "fail"
path = "/fail"
methods = ["GET"]
upstream = "app"
auth = "public"

[[route]]
name = "slow"
path = "/slow"
methods = ["GET"]
upstream = "slowpoke"
auth = "public"

[[route]]
name = "down"
path = "/down"
methods = ["GET"]
upstream = "down"
auth = "public"
"#
    )
}

/// An address nothing listens on: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn start(trusted_proxies: &[&str]) -> (RecordingUpstream, GatewayProcess) {
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config(&upstream.url(), closed_port(), trusted_proxies))
        .start();
    (upstream, gw)
}

/// `GET target` with `Host: client.example` and `headers` (each line ending in CRLF).
fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: client.example\r\n{headers}\r\n").into_bytes()
}

/// The one request the upstream received since the last `clear`.
fn only_request(upstream: &RecordingUpstream) -> Recorded {
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "upstream saw {seen:?}");
    seen.into_iter().next().unwrap()
}

/// The first log line with this `event` and `request_id` (the access log line is written
fn field<'a>(line: &'a Value, key: &str) -> &'a Value {
    log_field(line, key).unwrap_or_else(|| panic!("no `{key}` in {line}"))
}

/// `body` as one chunked message body, in chunks of `chunk` bytes.
fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / chunk * 8 + 5);
    for piece in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Distinct bytes, so that a reordered or truncated body cannot pass for the original.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_headers_never_speak_for_the_gateway() {
    let (upstream, gw) = start(&[]).await;
    let addr = gw.http();

    // Spoofed identity and forwarding headers (and a spoofed request id).
    let rsp = raw::send(
        addr,
        &get(
            "/api/orders",
            "X-Palisade-Subject: admin\r\nx-palisade-roles: admin\r\nX-Palisade-Key-Id: k\r\n\
             X-Palisade-Anything: 1\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: evil\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
             X-Request-Id: spoofed-id\r\n",
        ),
    )
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_str());
    let id = assert_gateway_headers(&rsp, "");
    assert_ne!(id, "spoofed-id");
    let seen = only_request(&upstream);
    assert_eq!(seen.path_and_query, "/api/orders");
    let identity: Vec<_> = seen
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-palisade-"))
        .collect();
    assert!(
        identity.is_empty(),
        "identity headers reached the upstream: {identity:?}"
    );
    assert_eq!(seen.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.header_all("x-forwarded-host"), ["client.example"]);
    assert_eq!(seen.header("forwarded"), None);
    assert_eq!(seen.header("x-real-ip"), None);
    assert_eq!(seen.header_all("host"), [upstream.addr().to_string()]);
    assert_eq!(seen.header_all("x-request-id"), [id.as_str()]);
    let log = log_line(&gw, "request", &id);
    assert_eq!(field(&log, "client_ip"), "127.0.0.1");
    assert_eq!(field(&log, "status"), 200);

    // A success keeps the upstream's status and body, loses its fingerprints.
    assert_eq!(rsp.header("content-type"), Some("application/json"));
    assert_eq!(rsp.json()["upstream"], "ok");

    // Hop-by-hop headers, including one the client names in `Connection`, stop here.
    upstream.clear();
    let rsp = raw::send(
        addr,
        &get(
            "/api/orders/7",
            "Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nTE: trailers\r\n\
             Proxy-Authorization: Basic x\r\nX-Kept: 1\r\n",
        ),
    )
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_str());
    assert_gateway_headers(&rsp, "");
    let seen = only_request(&upstream);
    assert_eq!(seen.path_and_query, "/api/orders/7");
    for hop in ["connection", "x-secret", "te", "proxy-authorization"] {
        assert_eq!(seen.header(hop), None, "{hop} reached the upstream");
    }
    assert_eq!(seen.header("x-kept"), Some("1"), "end-to-end headers pass");

    // Query values never reach the log; the upstream still gets the whole query.
    upstream.clear();
    let rsp = raw::send(addr, &get("/api/orders?token=abc123secret&page=2", "")).await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_str());
    let id = assert_gateway_headers(&rsp, "");
    assert_eq!(
        only_request(&upstream).path_and_query,
        "/api/orders?token=abc123secret&page=2"
    );
    let log = log_line(&gw, "request", &id);
    assert_eq!(field(&log, "path"), "/api/orders?token=***&page=***");
    assert!(!gw.stdout().contains("abc123secret"), "{}", gw.stdout());
    assert!(!gw.stderr().contains("abc123secret"), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_extends_the_forwarding_chain() {
    let (upstream, gw) = start(&["127.0.0.1"]).await;

    let rsp = raw::send(
        gw.http(),
        &get(
            "/api/orders",
            "X-Forwarded-For: 6.6.6.6\r\nX-Palisade-Subject: admin\r\nX-Palisade-Roles: admin\r\n",
        ),
    )
    .await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_str());
    let id = assert_gateway_headers(&rsp, "");
    let seen = only_request(&upstream);
    assert_eq!(seen.header_all("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert!(
        seen.headers
            .iter()
            .all(|(n, _)| !n.starts_with("x-palisade-")),
        "trust in a proxy is not trust in its identity headers: {:?}",
        seen.headers
    );
    let log = log_line(&gw, "request", &id);
    assert_eq!(field(&log, "client_ip"), "6.6.6.6");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_reach_the_client_as_generic_problems() {
    let (upstream, gw) = start(&[]).await;
    let addr = gw.http();

    // 500 with a stack trace: the status passes, the trace and fingerprints do not.
    let rsp = raw::send(addr, &get("/fail", "")).await;
    let id = assert_problem(&rsp, 500, "upstream-error", "upstream-error");
    for leak in [SECRET_MARKER, "Apache", "PHP", "NullPointerException"] {
        assert!(
            !rsp.body_str().contains(leak),
            "{leak} leaked: {}",
            rsp.body_str()
        );
    }
    assert_eq!(only_request(&upstream).path_and_query, "/fail");
    // The whole story is in the log, under the same request id.
    let error = log_line(&gw, "upstream_error", &id);
    assert!(
        field(&error, "body_excerpt")
            .as_str()
            .is_some_and(|e| e.contains(SECRET_MARKER)),
        "{error}"
    );
    assert_eq!(field(&log_line(&gw, "request", &id), "status"), 500);

    // Nothing listening: 502.
    upstream.clear();
    let rsp = raw::send(addr, &get("/down", "")).await;
    let id = assert_problem(&rsp, 502, "bad-gateway", "bad-gateway");
    assert!(upstream.requests().is_empty());
    assert_eq!(
        field(&log_line(&gw, "upstream_error", &id), "reason"),
        "unavailable"
    );

    // Slower than the upstream's own 1 s timeout: 504. The upstream records before it
    // sleeps, so it has seen the request.
    upstream.clear();
    let rsp = raw::send(addr, &get("/slow?ms=5000", "")).await;
    let id = assert_problem(&rsp, 504, "gateway-timeout", "gateway-timeout");
    assert_eq!(only_request(&upstream).path_and_query, "/slow?ms=5000");
    assert_eq!(
        field(&log_line(&gw, "upstream_error", &id), "reason"),
        "timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_hold_before_the_upstream_sees_anything() {
    let (upstream, gw) = start(&[]).await;
    let addr = gw.http();

    // Declared 2 MiB: refused from the head alone, before a byte of body is sent (a
    // gateway that waited for the body would time this read out).
    let mut conn = RawConnection::connect(addr).await;
    let rsp = conn
        .send(
            format!(
                "POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                2 * MIB
            )
            .as_bytes(),
        )
        .await;
    assert_problem(&rsp, 413, "payload-too-large", "payload-too-large");
    assert!(upstream.requests().is_empty());

    // Chunked, one byte over the limit: the gateway reads up to the limit, then refuses.
    // (The last byte goes in its own write: bytes still being written when the gateway
    // answers and closes would fail the write, not the gateway.)
    let mut conn = RawConnection::connect(addr).await;
    conn.write(b"POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let full = chunked(&pattern(MIB), 64 * 1024);
    conn.write(&full[..full.len() - b"0\r\n\r\n".len()]).await;
    conn.write(b"1\r\nx\r\n").await;
    let rsp = conn.read_response().await;
    assert_problem(&rsp, 413, "payload-too-large", "payload-too-large");
    assert!(upstream.requests().is_empty());

    // Chunked within the limit (up to exactly the limit): buffered, then sent with a
    // Content-Length and no chunked framing, byte for byte.
    for len in [100 * 1024, MIB] {
        upstream.clear();
        let body = pattern(len);
        let mut request =
            b"POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(&chunked(&body, 10_000));
        let rsp = raw::send(addr, &request).await;
        assert_eq!(rsp.status, 200, "{len} bytes: {}", rsp.body_str());
        assert_gateway_headers(&rsp, "");
        let seen = only_request(&upstream);
        assert_eq!(seen.header_all("content-length"), [len.to_string()]);
        assert_eq!(seen.header("transfer-encoding"), None);
        assert!(
            seen.body == body,
            "{len} bytes: the upstream got a different body"
        );
    }

    // A 40 KiB header against the default 16 KiB head limit: palisade's own 431.
    upstream.clear();
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    let rsp = raw::send(addr, &get("/api/orders", &big)).await;
    assert_problem(&rsp, 431, "headers-too-large", "headers-too-large");
    assert!(upstream.requests().is_empty());
    // Far past hyper's read buffer (64 KiB), hyper answers first (a bare 431); only the
    // status is asserted, so either layer may answer.
    let huge = format!("X-Big: {}\r\n", "a".repeat(160 * 1024));
    let rsp = raw::send(addr, &get("/api/orders", &huge)).await;
    assert_eq!(rsp.status, 431);
    assert!(upstream.requests().is_empty());

    // Slowloris: half a head, then silence; the header timeout (1 s) closes it.
    assert!(
        raw::connection_closed_within(
            addr,
            b"GET /api/orders HTTP/1.1\r\nHost: x\r\n",
            Duration::from_secs(5)
        )
        .await,
        "a client stalled mid-head held its connection for 5 s"
    );
    let rsp = raw::send(addr, &get("/api/orders", "")).await;
    assert_eq!(
        rsp.status, 200,
        "the gateway stopped serving after a slowloris"
    );
    assert_eq!(only_request(&upstream).path_and_query, "/api/orders");
}

/// Framing that two parsers could read two ways is refused, or read the one safe way.
#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_never_smuggles_a_request() {
    let (upstream, gw) = start(&[]).await;
    let addr = gw.http();

    // Two different lengths: hyper refuses the head.
    let rsp = raw::send(
        addr,
        b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\n\
          hello",
    )
    .await;
    assert_eq!(rsp.status, 400);
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());

    // Content-Length and chunked together (CL.TE): the classic smuggling shape. Read as
    // chunked, the body is empty and `GET /api/orders/smuggled` follows; read by length,
    // it is body. Either refuse, or read it as chunked and close the connection after
    // answering (RFC 9112 §6.1): the smuggled request must never reach the upstream.
    let smuggled = b"GET /api/orders/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut request = format!(
        "POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        5 + smuggled.len()
    )
    .into_bytes();
    request.extend_from_slice(b"0\r\n\r\n");
    request.extend_from_slice(smuggled);
    let mut conn = RawConnection::connect(addr).await;
    let rsp = conn.send(&request).await;
    let after = conn.try_read_response().await;
    let seen = upstream.requests();
    assert!(
        seen.iter().all(|r| !r.path_and_query.contains("smuggled")),
        "a smuggled request reached the upstream: {seen:?}"
    );
    match after {
        Err(e) if e.kind() != std::io::ErrorKind::TimedOut => {}
        other => panic!("the connection was not closed after CL.TE: {other:?}"),
    }
    match rsp.status {
        400 => assert!(seen.is_empty(), "refused, yet the upstream saw {seen:?}"),
        200 => {
            let first = only_request(&upstream);
            assert_eq!(first.path_and_query, "/api/orders");
            assert!(
                first.body.is_empty(),
                "read by length: {:?}",
                first.body_str()
            );
            assert_eq!(first.header("transfer-encoding"), None);
        }
        other => panic!("CL.TE answered {other}: {rsp:?}"),
    }
}
