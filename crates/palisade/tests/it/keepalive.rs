//! Idle keep-alive connections are parked between requests without hyper's buffers
//! (`gateway/src/park.rs`). Parking must never change what a client sees: these tests hold
//! connections idle long enough to be parked and check that the next bytes are read as they
//! would have been, that the rest of a body is never read as a request, and that a parked
//! connection still ends at `header_timeout` and at shutdown.

use std::time::Duration;

use palisade_testkit::raw::RawConnection;
use palisade_testkit::{GatewayProcess, RecordingUpstream};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Long enough for the gateway to park an idle connection (it parks as soon as the response
/// is flushed); the tests pass either way, this only makes them exercise the parked path.
const IDLE: Duration = Duration::from_millis(300);

async fn start(drain_timeout: &str) -> (RecordingUpstream, GatewayProcess) {
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(BIN)
        .config(format!(
            r#"
[server]
http = "127.0.0.1:0"

[limits]
header_timeout = "2s"
drain_timeout = "{drain_timeout}"

[[upstream]]
name = "app"
url = "{}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "app"
auth = "public"

[[route]]
name = "big"
path = "/big"
methods = ["GET"]
upstream = "app"
auth = "public"
"#,
            upstream.url()
        ))
        .start();
    (upstream, gw)
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: client.example\r\n\r\n").into_bytes()
}

fn upstream_paths(upstream: &RecordingUpstream) -> Vec<String> {
    upstream
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_serves_again_and_again() {
    let (upstream, gw) = start("5s").await;
    let mut conn = RawConnection::connect(gw.http()).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let rsp = conn.send(&get(&format!("/api/orders?n={n}"))).await;
        assert_eq!(rsp.status, 200, "{}", rsp.body_str());
        assert_eq!(rsp.json()["upstream"], "ok");
        ids.push(rsp.header("x-request-id").unwrap().to_owned());
        tokio::time::sleep(IDLE).await;
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "each request has its own id: {ids:?}");
    assert_eq!(
        upstream_paths(&upstream),
        ["/api/orders?n=0", "/api/orders?n=1", "/api/orders?n=2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipelined_request_cut_by_an_idle_gap_is_served_whole() {
    let (upstream, gw) = start("5s").await;
    let mut conn = RawConnection::connect(gw.http()).await;
    conn.write(b"GET /api/orders?n=1 HTTP/1.1\r\nHost: client.example\r\n\r\nGET /api/orders?n=2 HTTP/1.1\r\nHo")
        .await;
    let first = conn.read_response().await;
    assert_eq!(first.status, 200, "{}", first.body_str());
    tokio::time::sleep(IDLE).await;
    conn.write(b"st: client.example\r\n\r\n").await;
    let second = conn.read_response().await;
    assert_eq!(second.status, 200, "{}", second.body_str());
    assert_eq!(
        upstream_paths(&upstream),
        ["/api/orders?n=1", "/api/orders?n=2"]
    );
}

/// The gateway answers before reading a body (404) while the client is mid-body, on bytes
/// that end like a request head; the rest of the body holds a request. Had the idle
/// connection been parked there, a new session would read that request. The connection is
/// closed instead (hyper's doing, for a body the service dropped unread): what follows an
/// unread body cannot be told from a request, so nothing after it is ever read.
#[tokio::test(flavor = "multi_thread")]
async fn the_rest_of_an_unread_body_is_never_read_as_a_request() {
    let (upstream, gw) = start("5s").await;
    let first_part = b"{\"a\":\"\r\n\r\n";
    let smuggled = b"GET /api/orders?smuggled=1 HTTP/1.1\r\nHost: client.example\r\n\r\n";
    let length = first_part.len() + smuggled.len();
    let mut conn = RawConnection::connect(gw.http()).await;
    conn.write(
        format!("POST /nowhere HTTP/1.1\r\nHost: client.example\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    conn.write(first_part).await;
    let refused = conn.read_response().await;
    assert_eq!(refused.status, 404, "{}", refused.body_str());
    assert!(conn.closed_within(Duration::from_secs(5)).await);
    assert!(upstream_paths(&upstream).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_at_the_header_timeout() {
    let (_upstream, gw) = start("5s").await;
    let mut conn = RawConnection::connect(gw.http()).await;
    let rsp = conn.send(&get("/api/orders")).await;
    assert_eq!(rsp.status, 200, "{}", rsp.body_str());
    assert!(
        conn.closed_within(Duration::from_secs(8)).await,
        "an idle connection outlived header_timeout (2s)"
    );
}

/// SIGTERM with idle (parked) connections open: they are closed, not waited for, so the
/// process exits well before its drain timeout (60 s here) and says nothing was cut.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_idle_connections_without_waiting() {
    let (_upstream, mut gw) = start("60s").await;
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut conn = RawConnection::connect(gw.http()).await;
        assert_eq!(conn.send(&get("/api/orders")).await.status, 200);
        conns.push(conn);
    }
    tokio::time::sleep(IDLE).await;
    gw.signal("TERM");
    for conn in &mut conns {
        assert!(conn.closed_within(Duration::from_secs(10)).await);
    }
    let (code, stdout) = tokio::task::spawn_blocking(move || {
        let code = gw.wait_exit(Duration::from_secs(30));
        (code, gw.stdout())
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stdout.contains("\"drain_timeout\""), "{stdout}");
}

/// Blank lines between requests are allowed and skipped (RFC 9112 §2.2), and they end like a
/// request head, so a connection sending only those every 0.5 s is parked again and again.
/// Each park must not buy it a new `header_timeout`: it is closed one timeout after its last
/// request. Sent every 50 ms (never quiet long enough to park), hyper's own header timer
/// closes it the same way.
#[tokio::test(flavor = "multi_thread")]
async fn blank_lines_do_not_keep_a_connection_open() {
    let (_upstream, gw) = start("5s").await;
    for gap in [Duration::from_millis(500), Duration::from_millis(50)] {
        blank_lines_until_closed(&gw, gap).await;
    }
}

async fn blank_lines_until_closed(gw: &GatewayProcess, gap: Duration) {
    let mut conn = RawConnection::connect(gw.http()).await;
    assert_eq!(conn.send(&get("/api/orders")).await.status, 200);
    let started = std::time::Instant::now();
    // Every `gap`, well inside the 2 s header timeout, for up to 10 s.
    let closed = loop {
        if conn.closed_within(gap).await {
            break true;
        }
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
        if !conn.try_write(b"\r\n\r\n").await {
            break true;
        }
    };
    assert!(
        closed,
        "blank lines every {gap:?} kept the connection open for 10 s"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "blank lines every {gap:?}: closed only after {:?} (header_timeout 2 s)",
        started.elapsed()
    );
}

/// SIGTERM while a slow reader's response is still partly inside the gateway, on an
/// HTTP/1.0 connection: the response ends with the connection (no length, no chunks), so a
/// cut would look complete to the client. It is sent whole before the connection ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_closing_connection_sends_its_whole_response_at_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BYTES: usize = 4_000_000;
    let (upstream, mut gw) = start("60s").await;
    let mut conn = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
    conn.write_all(
        format!("GET /big?bytes={BYTES} HTTP/1.0\r\nHost: client.example\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    upstream.wait_for_requests(1, Duration::from_secs(10)).await;
    // The socket buffers fill up; the rest waits in the gateway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("TERM");
    let mut received = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("the response stalled")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert!(
        received.starts_with(b"HTTP/1.0 200"),
        "{:?}",
        String::from_utf8_lossy(&received[..head_end])
    );
    let body = &received[head_end..];
    assert_eq!(body.len(), BYTES, "the response was cut");
    assert!(body.iter().all(|&b| b == b'x'));
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

/// An upload the gateway refuses before reading it (here a 404): the client is still
/// sending when the answer goes out. Closing with its bytes unread would make the kernel
/// reset the connection, and a reset makes the client's kernel discard the answer it has
/// not read yet. The client reads the whole refusal.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_upload_still_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: usize = 32 * 1024 * 1024;
    let (upstream, gw) = start("5s").await;
    for _ in 0..5 {
        let conn = tokio::net::TcpStream::connect(gw.http()).await.unwrap();
        let (mut reader, mut writer) = conn.into_split();
        let sending = tokio::spawn(async move {
            let head = format!(
                "POST /nowhere HTTP/1.1\r\nHost: client.example\r\nContent-Type: application/octet-stream\r\nContent-Length: {BODY}\r\n\r\n"
            );
            writer.write_all(head.as_bytes()).await?;
            let chunk = vec![b'u'; 64 * 1024];
            for _ in 0..BODY / chunk.len() {
                writer.write_all(&chunk).await?;
            }
            Ok::<_, std::io::Error>(())
        });
        // The answer comes while the body is still being sent; read it only a little later,
        // so that it waits in the client's kernel when the gateway closes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut received = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut received)).await;
        sending.abort();
        let text = String::from_utf8_lossy(&received);
        assert!(
            matches!(read, Ok(Ok(_))) || text.contains("\r\n\r\n{"),
            "the answer was lost: {read:?}, received {text:?}"
        );
        assert!(text.starts_with("HTTP/1.1 404"), "{text:?}");
        assert!(text.contains("\"status\":404"), "{text:?}");
    }
    assert!(upstream_paths(&upstream).is_empty());
}
