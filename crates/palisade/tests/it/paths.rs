//! Checklist #4 through real sockets: the canonical path and routing.
//!
//! Every case is sent as raw bytes (a real client would normalize `/../` before sending)
//! to the real binary, and checked three ways: what the client got, what the recording
//! upstream received (exactly the canonical path, or nothing at all), and what the access
//! log recorded.

use crate::common;

use common::{assert_gateway_headers, assert_problem, log_line};

use palisade_testkit::gateway::log_field;
use palisade_testkit::{GatewayProcess, RecordingUpstream, raw};

fn config(upstream_url: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"

[limits]
max_body = "1MiB"
header_timeout = "1s"
request_timeout = "2s"

[[upstream]]
name = "app"
url = "{upstream_url}"

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
name = "admin"
path = "/admin"
methods = ["GET"]
upstream = "app"
auth = "public"
"#
    )
}

/// What a request must come to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 from the upstream, which received exactly this path and query.
    Forwarded(&'static str),
    /// Refused by palisade with this status and problem slug; the access log records
    /// `log_path` ("-" when the path was refused before it was canonical).
    Refused(u16, &'static str, &'static str),
}

/// `METHOD target HTTP/1.1` with one Host header.
fn request(method: &str, target: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// The first line of a raw request, to name the case in failure messages.
fn request_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().next().unwrap_or_default().to_owned()
}

/// The log's form of a path and query: values redacted, names kept.
fn redacted(path_and_query: &str) -> String {
    match path_and_query.split_once('?') {
        None => path_and_query.to_owned(),
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) => format!("{name}=***"),
                    None => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_path_is_routed_as_canonicalized_or_refused() {
    use Expect::{Forwarded, Refused};
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config(&upstream.url()))
        .start();
    let addr = gw.http();

    let get = |target: &str| request("GET", target);
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        // Dot segments are resolved (after decoding unreserved escapes), then routed.
        (get("/api/../admin"), Forwarded("/admin")),
        (get("/api/%2e%2e/admin"), Forwarded("/admin")),
        (get("/api/%2E%2e/admin"), Forwarded("/admin")),
        (get("/api/./orders"), Forwarded("/api/orders")),
        // Empty segments collapse.
        (get("//api/orders"), Forwarded("/api/orders")),
        (get("/api///orders"), Forwarded("/api/orders")),
        // Escapes of unreserved characters are decoded; others kept, upper-cased.
        (get("/api/orders/%41"), Forwarded("/api/orders/A")),
        (
            get("/api/orders/caf%c3%a9"),
            Forwarded("/api/orders/caf%C3%A9"),
        ),
        // The query is not the path: passed on byte for byte.
        (
            get("/api/orders/1?x=%2F&y=../z"),
            Forwarded("/api/orders/1?x=%2F&y=../z"),
        ),
        (request("HEAD", "/api/orders"), Forwarded("/api/orders")),
        // Ambiguous paths: refused, never guessed at.
        (get("/api/orders%2F1"), Refused(400, "bad-path", "-")),
        (get("/api/orders%2f1"), Refused(400, "bad-path", "-")),
        (get("/api/orders/1%00"), Refused(400, "bad-path", "-")),
        (get("/api;x=1/orders"), Refused(400, "bad-path", "-")),
        (
            get("/api/orders/1;jsessionid=x"),
            Refused(400, "bad-path", "-"),
        ),
        (get("/../admin"), Refused(400, "bad-path", "-")),
        (
            get("/api/orders/%2e%2e/%2e%2e/%2e%2e/admin"),
            Refused(400, "bad-path", "-"),
        ),
        (get("/api/orders\\1"), Refused(400, "bad-path", "-")),
        (get("/api/orders%5C1"), Refused(400, "bad-path", "-")),
        (get("/a%zz"), Refused(400, "bad-path", "-")),
        (
            get("/api/orders/%c0%ae%c0%ae/admin"),
            Refused(400, "bad-path", "-"),
        ),
        (request("OPTIONS", "*"), Refused(400, "bad-path", "-")),
        // Routing misses.
        (get("/nope"), Refused(404, "not-found", "/nope")),
        (
            request("DELETE", "/api/orders"),
            Refused(405, "method-not-allowed", "/api/orders"),
        ),
        // One host per request.
        (
            b"GET http://evil.example/admin HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            Refused(400, "bad-request", "-"),
        ),
        (
            b"GET /admin HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n".to_vec(),
            Refused(400, "bad-request", "-"),
        ),
        (
            b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".to_vec(),
            Refused(400, "bad-request", "-"),
        ),
    ];

    for (bytes, expect) in cases {
        let what = request_line(&bytes);
        upstream.clear();
        let rsp = raw::send(addr, &bytes).await;
        let id = assert_gateway_headers(&rsp, &what);
        let seen = upstream.requests();
        let log = log_line(&gw, "request", &id);
        match expect {
            Forwarded(path_and_query) => {
                assert_eq!(rsp.status, 200, "{what}: {}", rsp.body_str());
                assert_eq!(seen.len(), 1, "{what}: upstream saw {seen:?}");
                assert_eq!(seen[0].path_and_query, path_and_query, "{what}");
                let method = what.split(' ').next().unwrap();
                assert_eq!(seen[0].method, method, "{what}");
                assert_eq!(
                    log_field(&log, "path"),
                    Some(&redacted(path_and_query).into()),
                    "{what}"
                );
                assert_eq!(log_field(&log, "status"), Some(&200.into()), "{what}");
            }
            Refused(status, slug, log_path) => {
                assert_problem(&rsp, status, slug, &what);
                assert!(seen.is_empty(), "{what}: upstream saw {seen:?}");
                assert_eq!(log_field(&log, "path"), Some(&log_path.into()), "{what}");
                assert_eq!(log_field(&log, "status"), Some(&status.into()), "{what}");
                if status == 405 {
                    assert_eq!(rsp.header("allow"), Some("GET, HEAD, POST"), "{what}");
                }
            }
        }
    }
}
