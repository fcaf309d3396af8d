//! A recording upstream: a real hyper server that remembers every request it received.
//!
//! Gateway tests assert on what actually reached the upstream: the exact path (was it the
//! normalized one?), the identity headers (were client copies stripped?), the body (was it
//! the validated one?). So this server records each request *before* answering, with the
//! path exactly as it arrived and headers in order with duplicates kept.
//!
//! Behaviour by path, so tests can provoke each upstream failure mode:
//!
//! | path           | answer                                                              |
//! |----------------|---------------------------------------------------------------------|
//! | `/slow…`       | sleeps `?ms=N` (default 5000), then the default JSON (a login answer for `…/login`) |
//! | `/fail…`       | 500 `text/plain` with a fake stack trace and `SECRET-STACK-TRACE`   |
//! | `/big…`        | 200 with `?bytes=N` (default 1 MiB) of `x`, streamed (`?json=1`: labelled JSON) |
//! | `…/login`      | JSON body with `password` = [`LOGIN_PASSWORD`]: 200 `{"token":"t","username":…}`; else 401 `{"error":"invalid credentials"}` |
//! | anything else  | 200 `{"upstream":"ok","method":…,"path":…}`                          |
//!
//! Every answer carries `Server: Apache/2.4.1 (Unix)` and `X-Powered-By: PHP/5.6`, the
//! fingerprints the gateway must strip. The server speaks HTTP/1.1 and HTTP/2 (h2c with prior
//! knowledge on plain TCP; ALPN on TLS).

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};

use crate::pki::TestPki;

/// Request bodies are recorded up to this many bytes; the rest is read and dropped.
pub const MAX_RECORDED_BODY: usize = 16 * 1024 * 1024;

/// The marker string in `/fail` bodies; a test that finds it in a client response has
/// caught a leak.
pub const SECRET_MARKER: &str = "SECRET-STACK-TRACE";

/// The one password that paths ending in `/login` accept (for auth-failure lockout tests).
pub const LOGIN_PASSWORD: &str = "correct-horse-battery-staple";

/// One request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// `uri.path_and_query()` exactly as received (no normalization, no decoding).
    pub path_and_query: String,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub version: String,
    /// Lower-case names, values as lossy UTF-8. Duplicates are kept; values of one name stay
    /// in wire order (hyper's `HeaderMap` groups repeated names at the first occurrence).
    pub headers: Vec<(String, String)>,
    /// The body, capped at [`MAX_RECORDED_BODY`].
    pub body: Vec<u8>,
}

impl Recorded {
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

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// The body as text (lossy UTF-8).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The requests received, shared with the server task.
#[derive(Default)]
struct Recording {
    requests: Mutex<Vec<Recorded>>,
    recorded: Notify,
}

impl Recording {
    fn lock(&self) -> MutexGuard<'_, Vec<Recorded>> {
        // A panicking test thread must not hide the requests from the next assertion.
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running recording upstream. Dropping it stops the server and closes its connections.
pub struct RecordingUpstream {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Recording>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RecordingUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingUpstream")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl RecordingUpstream {
    /// Starts a plain-HTTP upstream on `127.0.0.1:0`. Needs a tokio runtime.
    pub async fn start() -> Self {
        Self::start_inner(None).await
    }

    /// Starts a TLS upstream on `127.0.0.1:0` presenting `pki`'s server certificate
    /// (valid for `localhost`); clients must trust `pki.ca_pem`.
    pub async fn start_tls(pki: &TestPki) -> Self {
        Self::start_inner(Some(tokio_rustls::TlsAcceptor::from(pki.server_config()))).await
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recording upstream");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Recording::default());
        let is_tls = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, tls, shared.clone()));
        RecordingUpstream {
            addr,
            tls: is_tls,
            shared,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` for TLS (the certificate's name).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().clone()
    }

    /// The most recent request, if any.
    pub fn last(&self) -> Option<Recorded> {
        self.shared.lock().last().cloned()
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.shared.lock().clear();
    }

    /// Waits until at least `n` requests are recorded (or `within` passes); returns them all.
    pub async fn wait_for_requests(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Register interest before checking, so a request landing in between wakes us.
            let notified = self.shared.recorded.notified();
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.requests();
            }
        }
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task:
        // a test that drops the upstream gets "upstream down", not lingering keep-alives.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Recording>,
) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(req, shared.clone()));
            let builder = auto::Builder::new(TokioExecutor::new());
            // Errors here are clients (often the gateway under test) hanging up: not ours.
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                }
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Recording>,
) -> Result<Response<UpstreamBody>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let mut recorded_body = Vec::new();
    // Read the whole body (the client must be able to finish sending), keeping at most the cap.
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            let room = MAX_RECORDED_BODY.saturating_sub(recorded_body.len());
            recorded_body.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let path = parts.uri.path().to_owned();
    // Answered from the body, which moves into the record below.
    let login = path
        .ends_with("/login")
        .then(|| login_response(&recorded_body));
    let query = parts.uri.query().unwrap_or("").to_owned();
    let method = parts.method.as_str().to_owned();
    let recorded = Recorded {
        method: method.clone(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_default(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: recorded_body,
    };
    shared.lock().push(recorded);
    shared.recorded.notify_waiters();

    let mut rsp = if path.starts_with("/slow") {
        let ms = query_param(&query, "ms").unwrap_or(5000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        // `/slow/…/login` answers like a login, late (for tests of attempts in flight).
        login.unwrap_or_else(|| ok_json(&method, &path))
    } else if path.starts_with("/fail") {
        let mut rsp = Response::new(UpstreamBody::full(failure_body()));
        *rsp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        rsp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        rsp
    } else if path.starts_with("/big") {
        let bytes = query_param(&query, "bytes").unwrap_or(1024 * 1024);
        let mut rsp = Response::new(UpstreamBody::repeat(bytes));
        // `?json=1` labels the bytes as JSON, for tests of size limits on JSON inspection.
        let content_type = if query.contains("json=1") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        rsp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        rsp
    } else if let Some(rsp) = login {
        rsp
    } else {
        ok_json(&method, &path)
    };
    let headers = rsp.headers_mut();
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("Apache/2.4.1 (Unix)"),
    );
    headers.insert("x-powered-by", HeaderValue::from_static("PHP/5.6"));
    Ok(rsp)
}

fn ok_json(method: &str, path: &str) -> Response<UpstreamBody> {
    let body = serde_json::json!({ "upstream": "ok", "method": method, "path": path });
    let mut rsp = Response::new(UpstreamBody::full(body.to_string()));
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}

/// 200 `{"token":"t","username":…}` if the JSON body's `password` is [`LOGIN_PASSWORD`],
/// else 401 `{"error":"invalid credentials"}` (also for a body that is not JSON).
fn login_response(body: &[u8]) -> Response<UpstreamBody> {
    let credentials: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let (status, body) = if credentials["password"] == LOGIN_PASSWORD {
        (
            StatusCode::OK,
            serde_json::json!({ "token": "t", "username": credentials["username"] }),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": "invalid credentials" }),
        )
    };
    let mut rsp = Response::new(UpstreamBody::full(body.to_string()));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    rsp
}

fn failure_body() -> String {
    format!(
        "{SECRET_MARKER}\n\
         java.lang.NullPointerException: Cannot invoke \"Order.getOwner()\" because \"order\" is null\n\
         \tat com.example.orders.OrderService.find(OrderService.java:142)\n\
         \tat com.example.orders.OrderController.get(OrderController.java:57)\n\
         \tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n\
         Traceback (most recent call last):\n\
         \x20 File \"/srv/app/orders/views.py\", line 88, in get_order\n\
         \x20   row = db.execute(\"SELECT * FROM orders WHERE id = %s\", order_id)\n\
         psycopg2.OperationalError: could not connect to server db.internal:5432 \
         (user=admin password=hunter2)\n\
         {SECRET_MARKER}\n"
    )
}

/// `name=N` from a query string, if present and numeric.
fn query_param(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// The upstream's response body: either one buffer, or `remaining` bytes of `x` produced
/// 64 KiB at a time, so `/big` really streams (and on HTTP/1.1 goes out chunked, since no
/// exact size is announced).
struct UpstreamBody {
    full: Option<Bytes>,
    remaining: u64,
}

const REPEAT_CHUNK: usize = 64 * 1024;
static XS: [u8; REPEAT_CHUNK] = [b'x'; REPEAT_CHUNK];

impl UpstreamBody {
    fn full(data: impl Into<Bytes>) -> Self {
        UpstreamBody {
            full: Some(data.into()),
            remaining: 0,
        }
    }

    fn repeat(len: u64) -> Self {
        UpstreamBody {
            full: None,
            remaining: len,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.full.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = (self.remaining).min(REPEAT_CHUNK as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&XS[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        match &self.full {
            Some(data) => SizeHint::with_exact(data.len() as u64),
            None if self.remaining == 0 => SizeHint::with_exact(0),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw;

    #[tokio::test]
    async fn records_exact_request_and_answers_json() {
        let up = RecordingUpstream::start().await;
        assert!(up.url().starts_with("http://127.0.0.1:"));
        let rsp = raw::send(
            up.addr(),
            b"POST /api/../x%2F?q=1 HTTP/1.1\r\nHost: up\r\nX-A: 1\r\nX-B: 2\r\nx-a: 3\r\n\
              Content-Length: 5\r\n\r\nhello",
        )
        .await;
        assert_eq!(rsp.status, 200);
        assert_eq!(rsp.header("server"), Some("Apache/2.4.1 (Unix)"));
        assert_eq!(rsp.header("x-powered-by"), Some("PHP/5.6"));
        assert_eq!(rsp.header("content-type"), Some("application/json"));
        assert_eq!(
            rsp.json(),
            serde_json::json!({"upstream":"ok","method":"POST","path":"/api/../x%2F"})
        );

        let reqs = up.requests();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path_and_query, "/api/../x%2F?q=1");
        assert_eq!(r.path(), "/api/../x%2F");
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.header_all("x-a"), ["1", "3"]);
        assert_eq!(r.header("X-B"), Some("2"));
        assert_eq!(r.body, b"hello");
        assert!(r.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));

        up.clear();
        assert!(up.requests().is_empty());
    }

    #[tokio::test]
    async fn login_accepts_only_the_right_password() {
        let up = RecordingUpstream::start().await;
        let login = |body: &str| {
            format!(
                "POST /api/v1/login HTTP/1.1\r\nHost: up\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };

        let rsp = raw::send(
            up.addr(),
            login(r#"{"username":"alice","password":"correct-horse-battery-staple"}"#).as_bytes(),
        )
        .await;
        assert_eq!(rsp.status, 200);
        assert_eq!(rsp.header("content-type"), Some("application/json"));
        assert_eq!(rsp.header("x-powered-by"), Some("PHP/5.6"));
        assert_eq!(
            rsp.json(),
            serde_json::json!({"token":"t","username":"alice"})
        );

        for body in [
            r#"{"username":"alice","password":"hunter2"}"#,
            r#"{"username":"alice"}"#,
            "not json",
        ] {
            let rsp = raw::send(up.addr(), login(body).as_bytes()).await;
            assert_eq!(rsp.status, 401, "{body}");
            assert_eq!(rsp.header("content-type"), Some("application/json"));
            assert_eq!(
                rsp.json(),
                serde_json::json!({"error":"invalid credentials"})
            );
        }

        // Only the end of the path counts; the request is recorded as usual.
        let rsp = raw::send(up.addr(), b"GET /login/x HTTP/1.1\r\nHost: up\r\n\r\n").await;
        assert_eq!(rsp.json()["upstream"], "ok");
        let reqs = up.requests();
        assert_eq!(reqs.len(), 5);
        assert_eq!(
            reqs[1].body_str(),
            r#"{"username":"alice","password":"hunter2"}"#
        );
    }

    #[tokio::test]
    async fn fail_big_and_slow_paths() {
        let up = RecordingUpstream::start().await;
        let rsp = raw::send(up.addr(), b"GET /fail HTTP/1.1\r\nHost: up\r\n\r\n").await;
        assert_eq!(rsp.status, 500);
        assert!(
            rsp.header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(rsp.body_str().contains(SECRET_MARKER));
        assert!(rsp.body_str().contains("OrderService.java:142"));
        assert_eq!(rsp.header("x-powered-by"), Some("PHP/5.6"));

        let rsp = raw::send(
            up.addr(),
            b"GET /big?bytes=200000 HTTP/1.1\r\nHost: up\r\n\r\n",
        )
        .await;
        assert_eq!(rsp.status, 200);
        assert_eq!(rsp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(rsp.body.len(), 200_000);
        assert!(rsp.body.iter().all(|b| *b == b'x'));

        let started = std::time::Instant::now();
        let rsp = raw::send(up.addr(), b"GET /slow?ms=200 HTTP/1.1\r\nHost: up\r\n\r\n").await;
        assert_eq!(rsp.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(200));

        // Recorded before answering: the slow request is visible while it still sleeps.
        let addr = up.addr();
        let pending = tokio::spawn(async move {
            raw::send(addr, b"GET /slow?ms=3000 HTTP/1.1\r\nHost: up\r\n\r\n").await
        });
        let reqs = up.wait_for_requests(4, Duration::from_secs(2)).await;
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[3].path_and_query, "/slow?ms=3000");
        assert!(!pending.is_finished());
        pending.abort();
    }

    #[tokio::test]
    async fn tls_upstream_speaks_h1_and_h2() {
        let pki = TestPki::new();
        let up = RecordingUpstream::start_tls(&pki).await;
        assert!(up.url().starts_with("https://localhost:"));

        let rsp = raw::send_tls(
            up.addr(),
            pki.client_config(&[b"http/1.1"]),
            "localhost",
            b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await;
        assert_eq!(rsp.status, 200);
        assert_eq!(rsp.json()["path"], "/hello");

        // HTTP/2 through hyper's client over the same TLS config, negotiated by ALPN.
        let tcp = tokio::net::TcpStream::connect(up.addr()).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(&[b"h2"]));
        let tls = connector
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::builder()
            .method("PUT")
            .uri(format!("https://localhost:{}/h2?x=1", up.addr().port()))
            .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let rsp = sender.send_request(req).await.unwrap();
        assert_eq!(rsp.status(), 200);
        let body = rsp.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["method"], "PUT");

        let last = up.last().unwrap();
        assert_eq!(last.version, "HTTP/2.0");
        assert_eq!(last.path_and_query, "/h2?x=1");
        assert_eq!(last.body, b"{}");
    }
}
