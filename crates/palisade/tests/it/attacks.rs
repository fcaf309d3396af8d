//! The attack corpus (issue 10): one table of hostile HTTP/1.1 requests, each sent as raw
//! bytes to the real binary, with auth in play.
//!
//! Each case is bytes written at once on one connection (one request, or several: pipelined
//! requests and smuggling pairs), the statuses the client must read back in order, whether
//! the connection must then be closed, and exactly what the recording upstream must have
//! seen: nothing, or the canonical, authorized form of the request (method, path and query,
//! the identity the gateway verified, the forwarding headers the gateway set, the body).
//! Every forwarded request is also checked for headers that must never pass (the method and
//! URL overrides, client forwarding headers, framing headers).
//!
//! The config has a public route (`/pub`), a private route (`/api/items/{id}`, API key)
//! and a role-restricted admin route (`/admin/users`, API key with role `admin`).
//!
//! It extends, without repeating, `paths.rs` (dot segments, encoded slashes, backslashes,
//! `;`, NUL and one overlong escape in the path; absolute-form for another host; two
//! different `Host`s) and `proxy.rs` (spoofed identity and forwarding headers on a public
//! route, hop-by-hop headers, two different Content-Lengths, CL.TE).
//!
//! Decisions the corpus pins down:
//! - `X-HTTP-Method-Override`, `X-HTTP-Method` and `X-Method-Override` never change the
//!   method palisade routes and authorizes, and are removed before the upstream, which
//!   therefore cannot be talked into another method than the one authorized.
//! - `X-Original-URL` and `X-Rewrite-URL` are removed: the upstream cannot be routed to
//!   another path than the one authorized.
//! - HTTP/1 framing that two parsers could read two ways is refused (400) or read the one
//!   safe way and the connection closed; the body of a request is never parsed as a request.

use crate::common;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use common::assert_gateway_headers;
use palisade_testkit::config::ADMIN_TOKEN;
use palisade_testkit::raw::{self, RawConnection};
use palisade_testkit::{GatewayProcess, Recorded, RecordingUpstream, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

fn config(upstream: &RecordingUpstream) -> TestConfig {
    TestConfig::new().store("sqlite://keys.db").tables(&format!(
        r#"
[limits]
max_body = "64KiB"
header_timeout = "2s"
request_timeout = "3s"

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "public"
path = "/pub"
methods = ["GET", "POST"]
upstream = "app"
auth = "public"

[[route]]
name = "item"
path = "/api/items/{{id}}"
methods = ["GET", "PUT"]
upstream = "app"
auth = "api_key"

[[route]]
name = "admin"
path = "/admin/users"
methods = ["GET", "DELETE"]
upstream = "app"
auth = "api_key"
roles = ["admin"]
"#,
        url = upstream.url()
    ))
}

/// Whose verified identity the upstream must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No identity headers at all.
    Anonymous,
    /// The key of subject `svc-user`, role `user`.
    User,
    /// The key of subject `svc-admin`, role `admin`.
    Admin,
}

/// One request in the canonical, authorized form the upstream must receive.
#[derive(Debug, Clone)]
struct Canon {
    method: &'static str,
    path_and_query: String,
    who: Who,
    /// The exact body (sent with one Content-Length, or none when empty).
    body: Vec<u8>,
}

fn canon(method: &'static str, path_and_query: &str, who: Who) -> Canon {
    Canon {
        method,
        path_and_query: path_and_query.to_owned(),
        who,
        body: Vec::new(),
    }
}

fn canon_body(method: &'static str, path_and_query: &str, who: Who, body: &[u8]) -> Canon {
    Canon {
        body: body.to_vec(),
        ..canon(method, path_and_query, who)
    }
}

/// What happens to the connection after the expected answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The gateway closes it (the only safe end after ambiguous framing).
    Closed,
    /// Either way (a keep-alive is fine: what was sent is fully accounted for).
    Any,
}

/// One row of the corpus.
struct Case {
    category: &'static str,
    name: &'static str,
    /// Written at once on a fresh connection.
    bytes: Vec<u8>,
    /// The statuses read back, in order.
    answers: Vec<u16>,
    after: After,
    /// Every request the upstream saw, in order; empty: it saw nothing.
    upstream: Vec<Canon>,
}

fn case(
    category: &'static str,
    name: &'static str,
    bytes: impl Into<Vec<u8>>,
    answers: &[u16],
    after: After,
    upstream: Vec<Canon>,
) -> Case {
    Case {
        category,
        name,
        bytes: bytes.into(),
        answers: answers.to_vec(),
        after,
        upstream,
    }
}

/// `METHOD target HTTP/1.1`, `Host: localhost`, then `headers` (each ending in CRLF).
fn req(method: &str, target: &str, headers: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").into_bytes()
}

/// The same with a Content-Length body.
fn req_body(method: &str, target: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Headers that must never reach the upstream, whatever the client sent.
const NEVER_FORWARDED: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "forwarded",
    "x-real-ip",
    "x-forwarded-port",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "transfer-encoding",
    "te",
    "connection",
    "x-api-key",
    "authorization",
];

/// Checks one request the upstream received against its canonical form.
fn assert_canonical(name: &str, seen: &Recorded, want: &Canon, upstream: &RecordingUpstream) {
    assert_eq!(seen.method, want.method, "{name}: method");
    assert_eq!(
        seen.path_and_query, want.path_and_query,
        "{name}: path and query"
    );
    let (subject, roles) = match want.who {
        Who::Anonymous => (None, None),
        Who::User => (Some("svc-user"), Some("user")),
        Who::Admin => (Some("svc-admin"), Some("admin")),
    };
    let all = |header: &str| seen.header_all(header);
    assert_eq!(
        all("x-palisade-subject"),
        subject.into_iter().collect::<Vec<_>>(),
        "{name}: subject; headers {:?}",
        seen.headers
    );
    assert_eq!(
        all("x-palisade-roles"),
        roles.into_iter().collect::<Vec<_>>(),
        "{name}: roles; headers {:?}",
        seen.headers
    );
    assert_eq!(
        all("x-palisade-key-id").len(),
        usize::from(want.who != Who::Anonymous),
        "{name}: key id; headers {:?}",
        seen.headers
    );
    for header in NEVER_FORWARDED {
        assert_eq!(
            seen.header(header),
            None,
            "{name}: `{header}` reached the upstream; headers {:?}",
            seen.headers
        );
    }
    let stray: Vec<_> = seen
        .headers
        .iter()
        .filter(|(n, _)| {
            n.contains('_')
                || (n.starts_with("x-palisade-")
                    && ![
                        "x-palisade-subject",
                        "x-palisade-roles",
                        "x-palisade-key-id",
                    ]
                    .contains(&n.as_str()))
        })
        .collect();
    assert!(
        stray.is_empty(),
        "{name}: spoofable headers passed: {stray:?}"
    );
    assert_eq!(
        all("host"),
        [upstream.addr().to_string()],
        "{name}: Host is the upstream's"
    );
    assert_eq!(all("x-forwarded-for"), ["127.0.0.1"], "{name}");
    assert_eq!(all("x-forwarded-proto"), ["http"], "{name}");
    assert_eq!(all("x-request-id").len(), 1, "{name}");
    assert!(
        seen.body == want.body,
        "{name}: body {:?}, expected {:?}",
        seen.body_str(),
        String::from_utf8_lossy(&want.body)
    );
    let lengths = all("content-length");
    if want.body.is_empty() {
        assert!(
            lengths.is_empty() || lengths == ["0"],
            "{name}: content-length {lengths:?}"
        );
    } else {
        assert_eq!(
            lengths,
            [want.body.len().to_string()],
            "{name}: one Content-Length"
        );
    }
}

/// `n` bytes of `a`.
fn filler(n: usize) -> String {
    "a".repeat(n)
}

fn cases(user: &str, admin: &str) -> Vec<Case> {
    use After::{Any, Closed};
    use Who::{Admin, Anonymous, User};
    let user_key = format!("X-Api-Key: {user}\r\n");
    let admin_key = format!("X-Api-Key: {admin}\r\n");
    let get = |target: &str| req("GET", target, "");
    let get_user = |target: &str| req("GET", target, &user_key);
    let get_admin = |target: &str| req("GET", target, &admin_key);
    // What a smuggler hopes the upstream reads as a second request.
    let smuggled = format!("GET /admin/users HTTP/1.1\r\nHost: localhost\r\n{admin_key}\r\n");
    let smuggled = smuggled.as_bytes();
    let chunk_of = |data: &[u8]| {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n0\r\n\r\n");
        out
    };

    let mut cases = vec![
        // ---- paths: double encoding ------------------------------------------------------
        // `%25` is an encoded `%`: a server that decodes twice would read `..` or `/`.
        case("path", "double-encoded dot segment", get("/pub/%252e%252e/admin/users"), &[400], Any, vec![]),
        case("path", "double-encoded dots under a private route", get_user("/api/items/%252e%252e"), &[400], Any, vec![]),
        case("path", "double-encoded slash", get_user("/api/items/1%252fadmin"), &[400], Any, vec![]),
        case("path", "double-encoded slash, lower and upper", get_user("/api/items/1%252F..%252Fadmin"), &[400], Any, vec![]),
        case("path", "double-encoded backslash", get_user("/api/items/1%255c..%255cadmin"), &[400], Any, vec![]),
        case("path", "triple-encoded dot segment", get("/pub/%25252e%25252e/admin/users"), &[400], Any, vec![]),
        // ---- paths: overlong and invalid UTF-8 ---------------------------------------------
        case("path", "overlong 2-byte slash", get("/pub%c0%afadmin/users"), &[400], Any, vec![]),
        case("path", "overlong 3-byte dot", get("/pub/%e0%80%ae%e0%80%ae/admin/users"), &[400], Any, vec![]),
        case("path", "overlong 4-byte dot", get("/pub/%f0%80%80%ae%f0%80%80%ae/admin/users"), &[400], Any, vec![]),
        case("path", "overlong 2-byte backslash", get("/pub/..%c1%9cadmin/users"), &[400], Any, vec![]),
        case("path", "lone continuation byte", get("/api/items/%80"), &[400], Any, vec![]),
        case("path", "UTF-16 style escape", get("/pub/%u002e%u002e/admin/users"), &[400], Any, vec![]),
        case("path", "fullwidth full stops", get("/pub/%ef%bc%8e%ef%bc%8e/admin/users"), &[400], Any, vec![]),
        case("path", "raw non-ASCII byte", b"GET /api/items/\xc3\xa9 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Any, vec![]),
        // ---- paths: trailing dots and slashes ------------------------------------------------
        case("path", "trailing dot on the admin route, no key", get("/admin/users."), &[404], Any, vec![]),
        // A trailing slash is kept (`/admin/users/` is another resource than `/admin/users`),
        // so these meet no route: never forwarded, whatever the key.
        case("path", "trailing dot segment on the admin route, no key", get("/admin/users/."), &[404], Any, vec![]),
        case("path", "trailing encoded dot segment, user key", get_user("/admin/users/%2e"), &[404], Any, vec![]),
        case("path", "trailing dot segment, admin key", get_admin("/admin/users/."), &[404], Any, vec![]),
        case("path", "trailing slash on the admin route, no key", get("/admin/users/"), &[404], Any, vec![]),
        case("path", "trailing slashes on the admin route, no key", get("/admin/users//"), &[404], Any, vec![]),
        case("path", "trailing dot-dot climbs back into admin, user key", get_user("/admin/users/x/.."), &[404], Any, vec![]),
        case("path", "public prefix climbs into admin, no key", get("/pub/../admin/users"), &[401], Any, vec![]),
        case("path", "mixed raw and encoded dots, no key", get("/pub/.%2E/admin/users"), &[401], Any, vec![]),
        case("path", "mixed dots resolve to the public route", get("/admin/%2e./pub"), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("path", "trailing dots on an id", get_user("/api/items/7.."), &[200], Any, vec![canon("GET", "/api/items/7..", User)]),
        case("path", "three dots are a name", get_user("/api/items/..."), &[200], Any, vec![canon("GET", "/api/items/...", User)]),
        // ---- paths: case where it matters -----------------------------------------------------
        case("path", "upper-case route, no key", get("/ADMIN/USERS"), &[404], Any, vec![]),
        case("path", "escaped lower-case letter is the letter, no key", get("/admin/%75sers"), &[401], Any, vec![]),
        case("path", "escaped upper-case letter is another route", get_admin("/admin/%55sers"), &[404], Any, vec![]),
        case("path", "escaped letter, admin key, canonical upstream path", get_admin("/%61dmin/users"), &[200], Any, vec![canon("GET", "/admin/users", Admin)]),
        case("path", "lower-case hex escape is upper-cased", get_user("/api/items/%e2%82%ac"), &[200], Any, vec![canon("GET", "/api/items/%E2%82%AC", User)]),
        case("path", "lower-case method is another method", req("get", "/pub", ""), &[405], Any, vec![]),
        case("path", "lower-case method on the admin route", req("delete", "/admin/users", &admin_key), &[405], Any, vec![]),
        // ---- paths: NUL and controls elsewhere -------------------------------------------------
        case("path", "encoded NUL then dot segment", get("/pub/%00/../admin/users"), &[400], Any, vec![]),
        case("path", "encoded tab", get("/api/items/1%09"), &[400], Any, vec![]),
        // A fragment is never sent upstream: what follows `#` is dropped before routing.
        case("path", "fragment in the request target", get("/pub#/../admin/users"), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("path", "fragment on the admin route, no key", get("/admin/users#/../../pub"), &[401], Any, vec![]),
        // ---- framing: header syntax ------------------------------------------------------------
        case("framing", "NUL in a header value", req("GET", "/pub", "X-A: a\0b\r\n"), &[400], Closed, vec![]),
        case("framing", "NUL in an API key", req("GET", "/api/items/1", &format!("X-Api-Key: {user}\0\r\n")), &[400], Closed, vec![]),
        case("framing", "NUL in a header name", req("GET", "/pub", "X-A\0: a\r\n"), &[400], Closed, vec![]),
        case("framing", "obs-fold continuation line", req("GET", "/pub", "X-A: a\r\n b\r\n"), &[400], Closed, vec![]),
        case("framing", "obs-fold hiding a Transfer-Encoding", req_body("POST", "/pub", "X-A: a\r\n\tTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), &[400], Closed, vec![]),
        case("framing", "bare CR in a header value", req("GET", "/pub", "X-A: a\rX-Palisade-Subject: svc-admin\r\n"), &[400], Closed, vec![]),
        case("framing", "bare CR as a line ending", b"GET /pub HTTP/1.1\rHost: localhost\r\r".to_vec(), &[400], Closed, vec![]),
        // RFC 9112 §2.2 lets a recipient read a bare LF as a line end; hyper does, and then
        // the header it ends is an ordinary header, read the same way by the gateway.
        case("framing", "bare LF line endings", b"GET /pub HTTP/1.1\nHost: localhost\n\n".to_vec(), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("framing", "bare LF splits a header into two", req("GET", "/pub", "X-A: a\nX-Palisade-Roles: admin\r\n"), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("framing", "bare LF before a private route's key", format!("GET /admin/users HTTP/1.1\nHost: localhost\n{}\n\n", user_key.trim_end()).into_bytes(), &[403], Any, vec![]),
        case("framing", "space before the colon", req("GET", "/pub", "X-Api-Key : x\r\n"), &[400], Closed, vec![]),
        case("framing", "header without a colon", req("GET", "/pub", "X-A a\r\n"), &[400], Closed, vec![]),
        case("framing", "two spaces in the request line", b"GET  /pub HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Closed, vec![]),
        case("framing", "extra token in the request line", b"GET /pub HTTP/1.1 x\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Closed, vec![]),
        case("framing", "HTTP/1.2", b"GET /pub HTTP/1.2\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Closed, vec![]),
        case("framing", "HTTP/0.9 request line", b"GET /pub\r\n\r\n".to_vec(), &[400], Closed, vec![]),
        // ---- framing: chunked bodies ----------------------------------------------------------
        case("framing", "negative chunk size", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"-1\r\nx\r\n0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "chunk size overflowing 64 bits", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"10000000000000001\r\nx\r\n0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "chunk size with a 0x prefix", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"0x5\r\nhello\r\n0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "chunk size with a space inside", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"5 5\r\nhello\r\n0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "chunk data longer than its size", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"3\r\nhello\r\n0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "a chunk extension is dropped, the data kept", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"5;name=\"v\"\r\nhello\r\n0\r\n\r\n").collect::<Vec<_>>(), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"hello")]),
        case("framing", "chunk extensions of 64 KiB", {
            let mut b = req("POST", "/pub", "Transfer-Encoding: chunked\r\n");
            b.extend_from_slice(format!("1;x={}\r\nh\r\n0\r\n\r\n", filler(64 * 1024)).as_bytes());
            b
        }, &[400], Closed, vec![]),
        case("framing", "many small chunk extensions", {
            let mut b = req("POST", "/pub", "Transfer-Encoding: chunked\r\n");
            for _ in 0..4096 {
                b.extend_from_slice(format!("1;{}\r\nh\r\n", filler(30)).as_bytes());
            }
            b.extend_from_slice(b"0\r\n\r\n");
            b
        }, &[400], Closed, vec![]),
        case("framing", "a bare LF in a chunk extension", req("POST", "/pub", "Transfer-Encoding: chunked\r\n").into_iter().chain(*b"5;a\nb\r\nhello\r\n0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        // ---- framing: Transfer-Encoding variants ------------------------------------------------
        case("framing", "TE chunked, identity", req_body("POST", "/pub", "Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n"), &[400], Closed, vec![]),
        case("framing", "TE identity, chunked", req("POST", "/pub", "Transfer-Encoding: identity, chunked\r\n").into_iter().chain(*b"0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "TE gzip, chunked", req("POST", "/pub", "Transfer-Encoding: gzip, chunked\r\n").into_iter().chain(*b"0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "TE xchunked", req_body("POST", "/pub", "Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), &[400], Closed, vec![]),
        case("framing", "TE chunked twice", req("POST", "/pub", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n").into_iter().chain(*b"0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "TE with a vertical tab", req("POST", "/pub", "Transfer-Encoding:\x0bchunked\r\n").into_iter().chain(*b"0\r\n\r\n").collect::<Vec<_>>(), &[400], Closed, vec![]),
        // Optional whitespace around a field value is not part of it (RFC 9110 §5.5).
        case("framing", "TE with a leading space is chunked", req("POST", "/pub", "Transfer-Encoding:  chunked\r\n").into_iter().chain(*b"2\r\nhi\r\n0\r\n\r\n").collect::<Vec<_>>(), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"hi")]),
        case("framing", "TE in upper case is chunked", req("POST", "/pub", "TRANSFER-ENCODING: CHUNKED\r\n").into_iter().chain(*b"2\r\nhi\r\n0\r\n\r\n").collect::<Vec<_>>(), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"hi")]),
        case("framing", "TE in HTTP/1.0", b"POST /pub HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), &[400], Closed, vec![]),
        case("framing", "TE in HTTP/1.0 with a Content-Length", concat(&[b"POST /pub HTTP/1.0\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", smuggled]), &[400], Closed, vec![]),
        // ---- framing: Content-Length ----------------------------------------------------------
        case("framing", "two equal Content-Lengths", req("POST", "/pub", "Content-Length: 5\r\nContent-Length: 5\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"hello")]),
        case("framing", "two Content-Lengths in one field, unequal", req("POST", "/pub", "Content-Length: 5, 50\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "Content-Length with a plus sign", req("POST", "/pub", "Content-Length: +5\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "Content-Length with a minus sign", req("POST", "/pub", "Content-Length: -5\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "Content-Length with a space inside", req("POST", "/pub", "Content-Length: 1 0\r\n").into_iter().chain(*b"helloworld").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "Content-Length in hex", req("POST", "/pub", "Content-Length: 0x5\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "Content-Length overflowing 64 bits", req("POST", "/pub", "Content-Length: 18446744073709551621\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[400], Closed, vec![]),
        case("framing", "Content-Length padded with spaces", req("POST", "/pub", "Content-Length:   5   \r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"hello")]),
        case("framing", "Content-Length with leading zeros", req("POST", "/pub", "Content-Length: 005\r\n").into_iter().chain(*b"hello").collect::<Vec<_>>(), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"hello")]),
        // ---- framing: smuggling pairs on one connection -----------------------------------------
        // Both Transfer-Encoding and Content-Length: read as chunked (RFC 9112 §6.3), the
        // body forwarded with its own length, and the connection closed after the answer
        // (§6.1), so whatever a length-reading hop would see as a second request is never
        // read as one here. TE.CL: the smuggled request is body.
        case("smuggling", "TE.CL", concat(&[&req("POST", "/pub", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"), &chunk_of(smuggled)]), &[200], Closed, vec![canon_body("POST", "/pub", Anonymous, smuggled)]),
        case("smuggling", "CL.TE with the TE first", concat(&[&req("POST", "/pub", &format!("Transfer-Encoding: chunked\r\nContent-Length: {}\r\n", 5 + smuggled.len())), b"0\r\n\r\n", smuggled]), &[200], Closed, vec![canon("POST", "/pub", Anonymous)]),
        case("smuggling", "TE.TE: chunked and an unknown coding", concat(&[&req("POST", "/pub", "Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n"), b"0\r\n\r\n", smuggled]), &[400], Closed, vec![]),
        case("smuggling", "TE.TE: an unknown coding then chunked", concat(&[&req("POST", "/pub", "Transfer-Encoding: cow\r\nTransfer-Encoding: chunked\r\n"), b"0\r\n\r\n", smuggled]), &[400], Closed, vec![]),
        case("smuggling", "TE.TE: header name with a trailing space", concat(&[&req("POST", "/pub", &format!("Transfer-Encoding : chunked\r\nContent-Length: {}\r\n", 5 + smuggled.len())), b"0\r\n\r\n", smuggled]), &[400], Closed, vec![]),
        case("smuggling", "TE.TE: obs-folded chunked", concat(&[&req("POST", "/pub", &format!("Transfer-Encoding: x\r\n chunked\r\nContent-Length: {}\r\n", 5 + smuggled.len())), b"0\r\n\r\n", smuggled]), &[400], Closed, vec![]),
        case("smuggling", "CL.CL: unequal lengths in two fields", concat(&[&req("POST", "/pub", &format!("Content-Length: 0\r\nContent-Length: {}\r\n", smuggled.len())), smuggled]), &[400], Closed, vec![]),
        // A request in a body is a body: forwarded byte for byte, never parsed.
        case("smuggling", "a request inside a Content-Length body", req_body("POST", "/pub", "", smuggled), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, smuggled)]),
        case("smuggling", "a request inside a chunked body", concat(&[&req("POST", "/pub", "Transfer-Encoding: chunked\r\n"), &chunk_of(smuggled)]), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, smuggled)]),
        // A GET with a body: the body is the GET's, not a second request.
        case("smuggling", "GET with a body that is a request", req_body("GET", "/pub", "", smuggled), &[200], Any, vec![canon_body("GET", "/pub", Anonymous, smuggled)]),
        // ---- framing: pipelining -----------------------------------------------------------------
        case("pipelining", "two requests in one write", concat(&[&get("/pub?n=1"), &get("/pub?n=2")]), &[200, 200], Any, vec![canon("GET", "/pub?n=1", Anonymous), canon("GET", "/pub?n=2", Anonymous)]),
        case("pipelining", "refused then allowed, identities not carried over", concat(&[&get_admin("/pub?n=1"), &get("/admin/users"), &get_user("/api/items/3")]), &[200, 401, 200], Any, vec![canon("GET", "/pub?n=1", Anonymous), canon("GET", "/api/items/3", User)]),
        case("pipelining", "a body then a request", concat(&[&req_body("POST", "/pub", "", b"{\"a\":1}"), &get_user("/api/items/4")]), &[200, 200], Any, vec![canon_body("POST", "/pub", Anonymous, b"{\"a\":1}"), canon("GET", "/api/items/4", User)]),
        case("pipelining", "a bad path does not stop the next request", concat(&[&get("/pub/%2e%2e%2f"), &get("/pub?n=3")]), &[400, 200], Any, vec![canon("GET", "/pub?n=3", Anonymous)]),
        case("pipelining", "a framing error ends the connection", concat(&[&req("GET", "/pub", "X-A: a\r\n b\r\n"), &get("/pub?n=4")]), &[400], Closed, vec![]),
        // ---- headers: Host -------------------------------------------------------------------
        case("host", "two equal Host headers", b"GET /pub HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "no Host in HTTP/1.1", b"GET /pub HTTP/1.1\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "empty Host", b"GET /pub HTTP/1.1\r\nHost:\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with userinfo", b"GET /pub HTTP/1.1\r\nHost: admin:secret@localhost\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with a port and userinfo", b"GET /pub HTTP/1.1\r\nHost: localhost:80@evil.example\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with a path", b"GET /pub HTTP/1.1\r\nHost: localhost/admin\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with a non-numeric port", b"GET /pub HTTP/1.1\r\nHost: localhost:abc\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with an out-of-range port", b"GET /pub HTTP/1.1\r\nHost: localhost:99999\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with a signed port", b"GET /pub HTTP/1.1\r\nHost: localhost:+80\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with two ports", b"GET /pub HTTP/1.1\r\nHost: localhost:80:81\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with a space", b"GET /pub HTTP/1.1\r\nHost: local host\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "Host with a port is the same host", b"GET /pub HTTP/1.1\r\nHost: LOCALHOST:8080\r\n\r\n".to_vec(), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("host", "absolute-form with userinfo", b"GET http://user@localhost/pub HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Any, vec![]),
        case("host", "absolute-form with another port, same host", b"GET http://localhost:1/pub HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        // Absolute-form naming another host in both places is not an open proxy: it is
        // routed like any request and only ever reaches the configured upstream.
        case("host", "absolute-form for another host, agreeing Host", b"GET http://evil.example/pub HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("host", "absolute-form for another host, admin route, no key", b"GET http://evil.example/admin/users HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(), &[401], Any, vec![]),
        case("host", "absolute-form with dot segments", b"GET http://localhost/pub/../admin/users HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[401], Any, vec![]),
        case("host", "authority-form outside CONNECT", b"GET localhost:80 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[400], Any, vec![]),
        // ---- headers: method and URL overrides --------------------------------------------------
        case("override", "X-HTTP-Method-Override on a public POST", req_body("POST", "/pub", "X-HTTP-Method-Override: DELETE\r\n", b"{}"), &[200], Any, vec![canon_body("POST", "/pub", Anonymous, b"{}")]),
        case("override", "X-HTTP-Method-Override to a method the route refuses", req("GET", "/api/items/1", &format!("{user_key}X-HTTP-Method-Override: DELETE\r\n")), &[200], Any, vec![canon("GET", "/api/items/1", User)]),
        case("override", "X-Method-Override and X-HTTP-Method", req("GET", "/api/items/1", &format!("{user_key}X-Method-Override: PUT\r\nX-HTTP-Method: PUT\r\n")), &[200], Any, vec![canon("GET", "/api/items/1", User)]),
        case("override", "override cannot turn a refused method into an allowed one", req("DELETE", "/api/items/1", &format!("{user_key}X-HTTP-Method-Override: GET\r\n")), &[405], Any, vec![]),
        case("override", "override header names in odd case", req("GET", "/admin/users", &format!("{admin_key}x-http-METHOD-override: DELETE\r\nX-METHOD-OVERRIDE: DELETE\r\n")), &[200], Any, vec![canon("GET", "/admin/users", Admin)]),
        case("override", "_method in the query is only a query", get_user("/api/items/1?_method=DELETE"), &[200], Any, vec![canon("GET", "/api/items/1?_method=DELETE", User)]),
        case("override", "X-Original-URL to the admin route", req("GET", "/pub", "X-Original-URL: /admin/users\r\n"), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("override", "X-Rewrite-URL to the admin route", req("GET", "/pub", "X-Rewrite-URL: /admin/users?x=1\r\n"), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("override", "X-Original-URL with a user key", req("GET", "/api/items/1", &format!("{user_key}X-Original-URL: /admin/users\r\nX-Original-Host: admin.internal\r\nX-Host: admin.internal\r\n")), &[200], Any, vec![canon("GET", "/api/items/1", User)]),
        case("override", "X-Original-URL does not route, no key", req("GET", "/admin/users", "X-Original-URL: /pub\r\n"), &[401], Any, vec![]),
        // ---- headers: identity and forwarding ----------------------------------------------------
        case("identity", "spoofed roles with a user key", req("GET", "/admin/users", &format!("{user_key}X-Palisade-Roles: admin\r\n")), &[403], Any, vec![]),
        case("identity", "spoofed subject with a user key", req("GET", "/api/items/1", &format!("{user_key}X-Palisade-Subject: svc-admin\r\nX-Palisade-Key-Id: other\r\n")), &[200], Any, vec![canon("GET", "/api/items/1", User)]),
        case("identity", "spoofed identity, no key, private route", req("GET", "/api/items/1", "X-Palisade-Subject: svc-user\r\nX-Palisade-Roles: user\r\nX-Palisade-Key-Id: k\r\n"), &[401], Any, vec![]),
        case("identity", "spoofed identity in upper case and underscores", req("GET", "/pub", "X-PALISADE-SUBJECT: svc-admin\r\nX_Palisade_Roles: admin\r\nx-palisade_key-id: k\r\nX-Palisade-Scopes: all\r\n"), &[200], Any, vec![canon("GET", "/pub", Anonymous)]),
        case("identity", "spoofed identity twice, admin key", req("GET", "/admin/users", &format!("X-Palisade-Subject: root\r\n{admin_key}X-Palisade-Subject: root\r\n")), &[200], Any, vec![canon("GET", "/admin/users", Admin)]),
        case("identity", "X-Forwarded-For loopback does not unlock a private route", req("GET", "/api/items/1", "X-Forwarded-For: 127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n"), &[401], Any, vec![]),
        case("identity", "forwarding headers from an untrusted peer, user key", req("GET", "/api/items/1", &format!("{user_key}X-Forwarded-For: 10.0.0.1, 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Server: admin\r\nForwarded: for=6.6.6.6;proto=https;host=admin.internal\r\n")), &[200], Any, vec![canon("GET", "/api/items/1", User)]),
        case("identity", "two API keys", req("GET", "/admin/users", &format!("{user_key}{admin_key}")), &[401], Any, vec![]),
        case("identity", "an API key and a bearer token", req("GET", "/admin/users", &format!("{user_key}Authorization: Bearer {admin}\r\n")), &[401], Any, vec![]),
        case("identity", "admin key as a bearer token", req("GET", "/admin/users", &format!("Authorization: Bearer {admin}\r\n")), &[200], Any, vec![canon("GET", "/admin/users", Admin)]),
        case("identity", "admin key with a changed secret", req("GET", "/admin/users", &format!("X-Api-Key: {}x\r\n", admin)), &[401], Any, vec![]),
    ];
    // Large counts of headers and oversize pieces are refused whole.
    cases.push(case(
        "framing",
        "a request line over the head limit",
        get(&format!("/pub?q={}", filler(40 * 1024))),
        &[431],
        Any,
        vec![],
    ));
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn the_attack_corpus_reaches_the_upstream_only_in_canonical_authorized_form() {
    let upstream = Arc::new(RecordingUpstream::start().await);
    let gw = config(&upstream).gateway(BIN).start();
    let (user, _) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "user", "subject": "svc-user", "roles": ["user"]}),
    )
    .await;
    let (admin, _) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "admin", "subject": "svc-admin", "roles": ["admin"]}),
    )
    .await;
    let addr = gw.http();

    let cases = cases(&user, &admin);
    let mut names = HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases named {:?}", case.name);
    }
    // Every case runs, and every failure is reported with the case's name.
    let mut failures = Vec::new();
    let total = cases.len();
    for case in cases {
        let name = format!("[{}] {}", case.category, case.name);
        upstream.clear();
        if let Err(error) = tokio::spawn(run_case(addr, case, upstream.clone())).await {
            let message = match error.try_into_panic() {
                Ok(panic) => panic
                    .downcast::<String>()
                    .map(|s| *s)
                    .or_else(|p| p.downcast::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|_| "panicked".to_owned()),
                Err(error) => error.to_string(),
            };
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} corpus cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("attack corpus: {total} cases passed");

    // Still serving after all of it (and it wrote no secret: checked when `gw` drops).
    let rsp = raw::send(addr, &req("GET", "/pub", "")).await;
    assert_eq!(rsp.status, 200, "after the corpus: {}", rsp.body_str());
}

async fn run_case(addr: SocketAddr, case: Case, upstream: Arc<RecordingUpstream>) {
    let name = format!("[{}] {}", case.category, case.name);
    let mut conn = RawConnection::connect(addr).await;
    conn.write(&case.bytes).await;
    for (i, want) in case.answers.iter().enumerate() {
        let rsp = conn.try_read_response().await.unwrap_or_else(|e| {
            panic!(
                "{name}: answer {} of {}: none ({e})",
                i + 1,
                case.answers.len()
            )
        });
        assert_eq!(
            rsp.status,
            *want,
            "{name}: answer {}: {}",
            i + 1,
            rsp.body_str()
        );
        // Palisade's own answers carry its headers; hyper's bare answers to a head it
        // cannot parse (no request ever formed) carry none.
        if rsp.header("x-request-id").is_some() {
            assert_gateway_headers(&rsp, &name);
        }
    }
    if case.after == After::Closed {
        match conn.try_read_response().await {
            Err(e) if e.kind() != ErrorKind::TimedOut => {}
            other => panic!("{name}: the connection was not closed: {other:?}"),
        }
    }
    // Every answer is in, so every request the gateway forwarded has been recorded.
    let seen = upstream.requests();
    assert_eq!(
        seen.len(),
        case.upstream.len(),
        "{name}: the upstream saw {:#?}",
        seen.iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect::<Vec<_>>()
    );
    for (seen, want) in seen.iter().zip(&case.upstream) {
        assert_canonical(&name, seen, want, &upstream);
    }
}

// ---- HTTP/2 ---------------------------------------------------------------------------
//
// Palisade speaks HTTP/2 on its TLS listener (ALPN `h2`); the plain listener is HTTP/1.1
// only. Abuse that a conforming client library cannot produce is written as raw frames
// (RFC 9113 §4.1: length u24, type u8, flags u8, stream id u31) with HPACK literals that
// never use the dynamic table (RFC 7541 §6.2.2); the normal requests around them go
// through the `h2` crate.

mod h2_raw {
    use std::net::SocketAddr;
    use std::time::Duration;

    use palisade_testkit::TestPki;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio_rustls::client::TlsStream;

    pub(super) const HEADERS: u8 = 0x1;
    pub(super) const RST_STREAM: u8 = 0x3;
    pub(super) const SETTINGS: u8 = 0x4;
    pub(super) const PING: u8 = 0x6;
    pub(super) const GOAWAY: u8 = 0x7;
    pub(super) const CONTINUATION: u8 = 0x9;
    pub(super) const END_STREAM: u8 = 0x1;
    pub(super) const END_HEADERS: u8 = 0x4;
    pub(super) const ACK: u8 = 0x1;
    pub(super) const CANCEL: u32 = 0x8;

    pub(super) async fn tls(addr: SocketAddr, pki: &TestPki) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[b"h2"]));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls
    }

    pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `first` holds the flag bits.
    fn int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
        let max = (1usize << n) - 1;
        if value < max {
            out.push(first | value as u8);
            return;
        }
        out.push(first | max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128) as u8 | 0x80);
            value /= 128;
        }
        out.push(value as u8);
    }

    /// Literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2).
    pub(super) fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00];
        int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name);
        int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
        out
    }

    /// A request's header block from `(name, value)` pairs in the order given.
    pub(super) fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        fields
            .iter()
            .flat_map(|(n, v)| literal(n.as_bytes(), v.as_bytes()))
            .collect()
    }

    /// `GET path` with every pseudo-header in place.
    pub(super) fn get(path: &str) -> Vec<u8> {
        block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", path),
            (":authority", "localhost"),
        ])
    }

    #[derive(Debug, Clone)]
    pub(super) struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        pub(super) fn error_code(&self) -> Option<u32> {
            let at = match self.kind {
                RST_STREAM => 0,
                GOAWAY => 4,
                _ => return None,
            };
            let bytes = self.payload.get(at..at + 4)?;
            Some(u32::from_be_bytes(bytes.try_into().ok()?))
        }

        /// The `:status` of a response HEADERS frame, when it is the first field and coded
        /// as a static-table entry or a literal with `:status` as its indexed name.
        pub(super) fn status(&self) -> Option<u16> {
            let first = *self.payload.first()?;
            if first & 0x80 != 0 {
                return match first & 0x7f {
                    8 => Some(200),
                    9 => Some(204),
                    10 => Some(206),
                    11 => Some(304),
                    12 => Some(400),
                    13 => Some(404),
                    14 => Some(500),
                    _ => None,
                };
            }
            let name_index = if first & 0x40 != 0 {
                first & 0x3f
            } else {
                first & 0x0f
            };
            if name_index != 8 {
                return None;
            }
            let header = *self.payload.get(1)?;
            let len = usize::from(header & 0x7f);
            let value = self.payload.get(2..2 + len)?;
            let text = if header & 0x80 != 0 {
                huffman_digits(value)?
            } else {
                String::from_utf8(value.to_vec()).ok()?
            };
            text.parse().ok()
        }
    }

    /// Huffman-decodes a string of ASCII digits (RFC 7541 Appendix B: `0`-`2` are 5 bits,
    /// `3`-`9` 6 bits); the padding is the most significant bits of EOS, all ones.
    fn huffman_digits(bytes: &[u8]) -> Option<String> {
        let bits: Vec<u8> = bytes
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
            .collect();
        let mut out = String::new();
        let mut i = 0;
        while i < bits.len() {
            if bits[i..].iter().all(|b| *b == 1) && bits.len() - i < 8 {
                break;
            }
            let take = |n: usize| -> Option<u8> {
                bits.get(i..i + n)
                    .map(|s| s.iter().fold(0u8, |acc, b| (acc << 1) | b))
            };
            match take(5)? {
                0..=2 => {
                    out.push((b'0' + take(5)?) as char);
                    i += 5;
                }
                _ => {
                    let six = take(6)?;
                    if !(0b011001..=0b011111).contains(&six) {
                        return None;
                    }
                    out.push((b'3' + six - 0b011001) as char);
                    i += 6;
                }
            }
        }
        Some(out)
    }

    /// What came back while waiting.
    #[derive(Debug)]
    pub(super) enum Event {
        Frame(Frame),
        /// EOF or a read error: the server closed the connection.
        Closed,
        /// Nothing within the wait.
        Quiet,
    }

    /// A raw HTTP/2 client connection: the preface and an empty SETTINGS are sent on
    /// connect; the server's SETTINGS and PINGs are acknowledged as they are read.
    pub(super) struct Conn {
        pub io: TlsStream<TcpStream>,
        buf: Vec<u8>,
        pub goaway: Option<Frame>,
    }

    impl Conn {
        pub(super) async fn open(addr: SocketAddr, pki: &TestPki) -> Conn {
            let mut io = tls(addr, pki).await;
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend(frame(SETTINGS, 0, 0, &[]));
            io.write_all(&hello).await.unwrap();
            Conn {
                io,
                buf: Vec::new(),
                goaway: None,
            }
        }

        /// Writes bytes; false when the server has closed the connection.
        pub(super) async fn write(&mut self, bytes: &[u8]) -> bool {
            self.io.write_all(bytes).await.is_ok() && self.io.flush().await.is_ok()
        }

        /// The next frame, or `Closed`, or `Quiet` after `within`.
        pub(super) async fn next(&mut self, within: Duration) -> Event {
            let deadline = tokio::time::Instant::now() + within;
            loop {
                if self.buf.len() >= 9 {
                    let len =
                        u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                    if self.buf.len() >= 9 + len {
                        let raw: Vec<u8> = self.buf.drain(..9 + len).collect();
                        let frame = Frame {
                            kind: raw[3],
                            flags: raw[4],
                            stream: u32::from_be_bytes([raw[5], raw[6], raw[7], raw[8]])
                                & 0x7fff_ffff,
                            payload: raw[9..].to_vec(),
                        };
                        match frame.kind {
                            SETTINGS if frame.flags & ACK == 0 => {
                                let _ = self.write(&self::frame(SETTINGS, ACK, 0, &[])).await;
                            }
                            PING if frame.flags & ACK == 0 => {
                                let ack = self::frame(PING, ACK, 0, &frame.payload);
                                let _ = self.write(&ack).await;
                            }
                            GOAWAY => self.goaway = Some(frame.clone()),
                            _ => {}
                        }
                        return Event::Frame(frame);
                    }
                }
                let mut chunk = [0u8; 16 * 1024];
                match tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await {
                    Err(_) => return Event::Quiet,
                    Ok(Ok(0)) | Ok(Err(_)) => return Event::Closed,
                    Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        }

        /// Reads until a frame on `stream` that ends or refuses it (HEADERS, RST_STREAM), a
        /// GOAWAY, or the close; `None` when the server said nothing for `within`.
        pub(super) async fn outcome(&mut self, stream: u32, within: Duration) -> Option<Event> {
            loop {
                match self.next(within).await {
                    Event::Frame(f)
                        if (f.stream == stream && matches!(f.kind, HEADERS | RST_STREAM))
                            || f.kind == GOAWAY =>
                    {
                        return Some(Event::Frame(f));
                    }
                    Event::Frame(_) => {}
                    Event::Closed => return Some(Event::Closed),
                    Event::Quiet => return None,
                }
            }
        }

        /// Reads and drops frames until the server closes the connection or is quiet for
        /// `quiet`; true when it closed.
        pub(super) async fn drain(&mut self, quiet: Duration) -> bool {
            loop {
                match self.next(quiet).await {
                    Event::Frame(_) => {}
                    Event::Closed => return true,
                    Event::Quiet => return false,
                }
            }
        }
    }
}

use std::time::Duration;

use palisade_testkit::TestPki;

const MIB: u64 = 1024 * 1024;

fn h2_config(upstream: &RecordingUpstream) -> String {
    format!(
        r#"
[server]
https = "127.0.0.1:0"

[server.tls]
cert = "server.pem"
key = "server.key"

[limits]
header_timeout = "2s"
request_timeout = "3s"

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "public"
path = "/pub"
methods = ["GET", "POST"]
upstream = "app"
auth = "public"
"#,
        url = upstream.url()
    )
}

fn h2_start(upstream: &RecordingUpstream, pki: &TestPki) -> GatewayProcess {
    GatewayProcess::builder(BIN)
        .config(h2_config(upstream))
        .file("server.pem", &pki.cert_pem)
        .file("server.key", &pki.key_pem)
        .start()
}

/// `VmRSS` or `VmHWM` (peak) of a process, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// One normal GET over a fresh connection through the `h2` crate: its status.
async fn h2_get(addr: SocketAddr, pki: &TestPki, path: &str, host: Option<&str>) -> u16 {
    let tls = h2_raw::tls(addr, pki).await;
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(format!("https://localhost:{}{path}", addr.port()));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let (response, _) = client
        .send_request(request.body(()).unwrap(), true)
        .unwrap();
    let status = response.await.unwrap().status().as_u16();
    drop(client);
    driver.abort();
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_pseudo_header_abuse_is_refused_per_stream() {
    use h2_raw::{Conn, END_HEADERS, END_STREAM, Event, GOAWAY, HEADERS, RST_STREAM, block};
    let upstream = RecordingUpstream::start().await;
    let pki = TestPki::new();
    let gw = h2_start(&upstream, &pki);
    let addr = gw.https();

    let base = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/pub"),
        (":authority", "localhost"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut fields = base.to_vec();
        fields.extend_from_slice(extra);
        block(&fields)
    };
    let without = |name: &str| {
        block(
            &base
                .iter()
                .copied()
                .filter(|(n, _)| *n != name)
                .collect::<Vec<_>>(),
        )
    };
    // Each must be refused on its stream (RST_STREAM) or with the connection (GOAWAY, or
    // a close), before the pipeline: the upstream sees none of them.
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("missing :path", without(":path")),
        ("missing :method", without(":method")),
        ("missing :scheme", without(":scheme")),
        (
            "empty :path",
            block(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", ""),
                (":authority", "localhost"),
            ]),
        ),
        ("two :path", with(&[(":path", "/admin")])),
        ("unknown pseudo-header", with(&[(":foo", "bar")])),
        (
            "pseudo-header after a regular one",
            block(&[
                (":method", "GET"),
                (":scheme", "https"),
                ("x-a", "1"),
                (":path", "/pub"),
                (":authority", "localhost"),
            ]),
        ),
        ("upper-case header name", with(&[("X-Api-Key", "pal_x_y")])),
        (
            "upper-case pseudo-header",
            block(&[
                (":METHOD", "GET"),
                (":scheme", "https"),
                (":path", "/pub"),
                (":authority", "localhost"),
            ]),
        ),
        ("connection header", with(&[("connection", "keep-alive")])),
        ("keep-alive header", with(&[("keep-alive", "timeout=5")])),
        (
            "transfer-encoding header",
            with(&[("transfer-encoding", "chunked")]),
        ),
        ("upgrade header", with(&[("upgrade", "h2c")])),
        ("te other than trailers", with(&[("te", "gzip")])),
        (
            "CRLF in a header value",
            with(&[("x-a", "a\r\nx-palisade-subject: admin")]),
        ),
        ("NUL in a header value", with(&[("x-a", "a\0b")])),
        ("space in a header name", with(&[("x a", "1")])),
        ("colon inside a header name", with(&[("x:a", "1")])),
        (":status in a request", with(&[(":status", "200")])),
        (
            "CONNECT with a :path",
            block(&[
                (":method", "CONNECT"),
                (":scheme", "https"),
                (":path", "/pub"),
                (":authority", "localhost"),
            ]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, header_block) in &refused {
        upstream.clear();
        let mut conn = Conn::open(addr, &pki).await;
        conn.write(&h2_raw::frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            header_block,
        ))
        .await;
        let outcome = conn.outcome(1, Duration::from_secs(10)).await;
        let refused_ok = match &outcome {
            Some(Event::Frame(f)) if f.kind == RST_STREAM || f.kind == GOAWAY => true,
            Some(Event::Closed) => true,
            // A 400 from palisade is a refusal too (nothing forwarded, checked below).
            Some(Event::Frame(f)) if f.kind == HEADERS => f.status() == Some(400),
            _ => false,
        };
        if !refused_ok {
            failures.push(format!("{name}: not refused: {outcome:?}"));
        }
        // If the connection survived, it still serves a good request on the next stream.
        if conn.goaway.is_none() && !matches!(outcome, Some(Event::Closed)) {
            conn.write(&h2_raw::frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                3,
                &h2_raw::get("/pub"),
            ))
            .await;
            match conn.outcome(3, Duration::from_secs(10)).await {
                Some(Event::Frame(f)) if f.kind == HEADERS && f.status() == Some(200) => {}
                other => failures.push(format!("{name}: the next stream failed: {other:?}")),
            }
        }
        let seen: Vec<_> = upstream
            .requests()
            .into_iter()
            .map(|r| format!("{} {} {:?}", r.method, r.path_and_query, r.headers))
            .collect();
        let expected =
            usize::from(conn.goaway.is_none() && !matches!(outcome, Some(Event::Closed)));
        if seen.len() != expected
            || upstream
                .requests()
                .iter()
                .any(|r| r.path_and_query != "/pub" || r.header("x-a").is_some())
        {
            failures.push(format!("{name}: the upstream saw {seen:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} HTTP/2 cases failed:\n{}",
        failures.len(),
        refused.len(),
        failures.join("\n")
    );

    // Legal at the HTTP/2 level, refused by palisade: `:authority` and `host` disagree
    // (two hosts for one request), as with HTTP/1.1's absolute-form.
    upstream.clear();
    assert_eq!(
        h2_get(addr, &pki, "/pub", Some("evil.example")).await,
        400,
        ":authority vs host"
    );
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    assert_eq!(
        h2_get(addr, &pki, "/pub", Some("localhost")).await,
        200,
        "agreeing host"
    );
    // Dot segments in `:path` are resolved like HTTP/1.1's: the upstream gets the canonical path.
    upstream.clear();
    assert_eq!(
        h2_get(addr, &pki, "/x/../pub", None).await,
        200,
        "dot segments"
    );
    assert_eq!(upstream.requests().len(), 1);
    assert_eq!(upstream.requests()[0].path_and_query, "/pub");
    println!(
        "HTTP/2 pseudo-header corpus: {} raw cases + 3",
        refused.len()
    );
}

/// Thousands of streams opened and reset at once (CVE-2023-44487), then a CONTINUATION
/// flood (a header block that never ends, CVE-2024-27316 class) and a flood of empty
/// CONTINUATION frames: each is cut off by the gateway (GOAWAY or close) well before the
/// client runs out of frames, the gateway stays up and serves the next request, and its
/// peak RSS stays within 50 MiB of the warmed-up figure.
#[tokio::test(flavor = "multi_thread")]
async fn http2_floods_are_cut_off_with_bounded_memory() {
    use h2_raw::{CANCEL, CONTINUATION, Conn, END_HEADERS, END_STREAM, HEADERS, RST_STREAM, frame};
    let upstream = RecordingUpstream::start().await;
    let pki = TestPki::new();
    let gw = h2_start(&upstream, &pki);
    let addr = gw.https();
    let pid = gw.pid();
    for _ in 0..20 {
        assert_eq!(h2_get(addr, &pki, "/pub", None).await, 200, "warm-up");
    }
    let baseline = memory(pid, "VmRSS");
    let bound = baseline + 50 * MIB;

    // Rapid reset: 20,000 streams, each HEADERS then RST_STREAM(CANCEL), in 64 KiB writes.
    let mut conn = Conn::open(addr, &pki).await;
    let streams = 20_000u32;
    let mut batch = Vec::new();
    let mut written_streams = 0u32;
    let mut cut_off = false;
    for i in 0..streams {
        let id = 1 + 2 * i;
        batch.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &h2_raw::get("/pub"),
        ));
        batch.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
        if batch.len() >= 64 * 1024 || i + 1 == streams {
            if !conn.write(&batch).await {
                cut_off = true;
                break;
            }
            written_streams = i + 1;
            batch.clear();
        }
    }
    let closed = conn.drain(Duration::from_secs(5)).await;
    let goaway = conn.goaway.clone();
    println!(
        "rapid reset: {written_streams} of {streams} streams written; goaway {:?}; closed {closed}; \
         upstream saw {}",
        goaway.as_ref().and_then(|g| g.error_code()),
        upstream.requests().len()
    );
    assert!(
        cut_off || goaway.is_some() || closed,
        "rapid reset: the gateway took {streams} opened-and-reset streams without a GOAWAY"
    );
    assert!(
        memory(pid, "VmHWM") <= bound,
        "rapid reset: peak RSS {} > {bound}",
        memory(pid, "VmHWM")
    );
    assert_eq!(
        h2_get(addr, &pki, "/pub", None).await,
        200,
        "after the rapid reset"
    );

    // CONTINUATION flood with content: one header block of up to 64 MiB.
    for (label, payload) in [
        (
            "CONTINUATION flood",
            h2_raw::literal(b"x-flood", &vec![b'a'; 8 * 1024]),
        ),
        ("empty CONTINUATION flood", Vec::new()),
    ] {
        let mut conn = Conn::open(addr, &pki).await;
        conn.write(&frame(HEADERS, END_STREAM, 1, &h2_raw::get("/pub")))
            .await;
        let one = frame(CONTINUATION, 0, 1, &payload);
        let per_write = (64 * 1024 / one.len().max(1)).max(1);
        let batch: Vec<u8> = one.repeat(per_write);
        let budget = 64 * MIB as usize;
        let mut sent = 0usize;
        let mut frames = 0usize;
        let mut reaction = None;
        while sent < budget && frames < 2_000_000 {
            if !conn.write(&batch).await {
                reaction = Some("write failed: connection closed".to_owned());
                break;
            }
            sent += batch.len();
            frames += per_write;
            // Has the server said anything? (Not a timing assertion: a short poll.)
            match conn.next(Duration::from_millis(1)).await {
                h2_raw::Event::Frame(f) if f.kind == h2_raw::GOAWAY || f.kind == RST_STREAM => {
                    reaction = Some(format!("frame type {} code {:?}", f.kind, f.error_code()));
                    break;
                }
                h2_raw::Event::Closed => {
                    reaction = Some("closed".to_owned());
                    break;
                }
                _ => {}
            }
        }
        println!("{label}: {frames} frames, {sent} bytes sent; reaction: {reaction:?}");
        assert!(
            reaction.is_some(),
            "{label}: the gateway accepted {frames} CONTINUATION frames ({sent} bytes) of one header block"
        );
        drop(conn);
        assert!(
            memory(pid, "VmHWM") <= bound,
            "{label}: peak RSS {} > baseline {baseline} + 50 MiB",
            memory(pid, "VmHWM")
        );
        assert_eq!(
            h2_get(addr, &pki, "/pub", None).await,
            200,
            "after the {label}"
        );
    }
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.path_and_query == "/pub" && r.header("x-flood").is_none()),
        "a flooded header block reached the upstream"
    );
}
