//! Listeners, connections, reload and shutdown.
//!
//! Three listeners, bound once at start:
//! - `https`: TLS (rustls, 1.2 and 1.3), HTTP/2 or HTTP/1.1 by ALPN, every request to
//!   the pipeline.
//! - `http`: with TLS configured it answers every request with a 308 to the same host
//!   and path on https and serves nothing else; without TLS (development, or behind a
//!   TLS-terminating balancer) it serves the pipeline over HTTP/1.1.
//! - `admin`: health, readiness, metrics and reload (see `admin`).
//!
//! `https` and `http` are served by the workers (`workers`): each binds its own socket to
//! the listener's address and accepts on it in a runtime of its own. The admin listener,
//! signals, reloads and the key store's background work stay on the runtime that called
//! [`Server::start`].
//!
//! The current pipeline is kept by `running`: each connection loads it per request, a
//! reload stores a new one, and a config that fails to load never replaces a good one.
//! Shutdown stops accepting, lets in-flight requests finish for up to
//! `limits.drain_timeout`, then returns.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HOST, LOCATION};
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use palisade_store::KeyService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body;
use crate::config::{Config, ConfigError};
use crate::ctx::{ConnInfo, RequestCtx};
use crate::headers;
use crate::observe::{LoggedBody, Metrics};
use crate::park::{Activity, Parkable, QUIET_BEFORE_PARKING, Tracked, TrackedResponse};
use crate::pipeline;
use crate::rescue::problem_response;
use crate::running::{Bound, Running, Stores, install_process_wide};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot start a worker thread: {source}")]
    Worker { source: std::io::Error },
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Server;

/// Handle to a running gateway: its addresses, reload and shutdown.
pub struct ServerHandle {
    pub(crate) running: Arc<Running>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    drain_timeout: Duration,
}

/// What a serving listener does with its connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    /// Serves the pipeline; `tls` says whether connections are TLS.
    Serve { tls: bool },
    /// Answers everything with a redirect to https.
    Redirect,
}

impl Server {
    /// Builds the pipeline from `config`, binds every listener and starts serving.
    /// Logs one `listening` line per listener and a `ready` line when all are bound.
    pub async fn start(config: Config) -> Result<ServerHandle, StartError> {
        let metrics = Arc::new(Metrics::new());
        let drain_timeout = config.limits.drain_timeout;
        let addrs = (config.server.http, config.server.https, config.server.admin);
        let has_tls = config.server.tls.is_some();
        let stores = Stores::new(&config);
        let pipeline = stores.build(config, &metrics).await?;
        install_process_wide(&pipeline.config);

        let bind = |listener: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind {
                    listener,
                    addr,
                    source,
                })
        };
        // The serving listeners: one socket per worker, all on the same port.
        let workers = crate::workers::count();
        let bind_group = |listener: &'static str, addr: SocketAddr| {
            crate::workers::bind_group(addr, workers).map_err(|source| StartError::Bind {
                listener,
                addr,
                source,
            })
        };
        let https = addrs.1.map(|addr| bind_group("https", addr)).transpose()?;
        let http = addrs.0.map(|addr| bind_group("http", addr)).transpose()?;
        let admin = match addrs.2 {
            Some(addr) => Some(bind("admin", addr).await?),
            None => None,
        };
        let group_addr = |group: &Option<Vec<std::net::TcpListener>>| {
            group
                .as_ref()
                .and_then(|sockets| sockets.first()?.local_addr().ok())
        };
        let bound = Bound {
            http: group_addr(&http),
            https: group_addr(&https),
            admin: admin.as_ref().and_then(|l| l.local_addr().ok()),
        };
        let running = Arc::new(Running::new(pipeline, stores, metrics, bound));

        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let http_kind = if has_tls {
            Role::Redirect
        } else {
            Role::Serve { tls: false }
        };
        log_listening("https", bound.https);
        log_listening("http", bound.http);
        // Worker `i` serves the `i`th socket of each group.
        let mut https = https.map(Vec::into_iter);
        let mut http = http.map(Vec::into_iter);
        for index in 0..workers {
            let listeners: Vec<(std::net::TcpListener, Role)> = [
                https
                    .as_mut()
                    .and_then(Iterator::next)
                    .map(|l| (l, Role::Serve { tls: true })),
                http.as_mut()
                    .and_then(Iterator::next)
                    .map(|l| (l, http_kind)),
            ]
            .into_iter()
            .flatten()
            .collect();
            let running = running.clone();
            let stopped = stopped.clone();
            let worker = crate::workers::spawn(index, move || {
                serve_worker(listeners, running, stopped, drain_timeout)
            })
            .map_err(|source| StartError::Worker { source })?;
            tasks.spawn(async move {
                let _ = worker.await;
            });
        }
        if let Some(listener) = admin {
            log_listening("admin", bound.admin);
            tasks.spawn(crate::admin::serve(
                listener,
                running.clone(),
                stopped.clone(),
            ));
        }
        tracing::info!(
            event = "ready",
            http = bound.http.map(|a| a.to_string()),
            https = bound.https.map(|a| a.to_string()),
            admin = bound.admin.map(|a| a.to_string()),
        );
        Ok(ServerHandle {
            running,
            stop,
            tasks,
            drain_timeout,
        })
    }
}

fn log_listening(listener: &str, addr: Option<SocketAddr>) {
    if let Some(addr) = addr {
        tracing::info!(event = "listening", listener, addr = %addr);
    }
}

impl ServerHandle {
    pub fn bound(&self) -> Bound {
        self.running.bound
    }

    /// The key service of the running pipeline, if the config has a `[store]`.
    pub fn keys(&self) -> Option<KeyService> {
        self.running.current().keys().cloned()
    }

    /// Serves until SIGTERM or SIGINT, reloading on SIGHUP, then drains and returns.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    // A failed reload is logged by `reload` and changes nothing.
                    let _ = self.running.reload().await;
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        tracing::info!(
            event = "shutdown",
            drain_timeout_ms = self.drain_timeout.as_millis() as u64,
            "draining in-flight requests"
        );
        self.shutdown().await;
        Ok(())
    }

    /// Stops accepting, waits for in-flight requests (bounded by `drain_timeout`).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        // Each accept loop bounds its own drain; this outer bound is a backstop.
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.drain_timeout + Duration::from_secs(1), all)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        // Last-used times are written in batches; write the pending batch before exiting,
        // once the drained requests have added theirs.
        if let Some(keys) = self.running.current().keys()
            && let Err(error) = keys.flush_last_used().await
        {
            tracing::warn!(event = "store_flush_failed", error = %error);
        }
        // The spans of the requests just drained; bounded, as the collector may be down.
        #[cfg(feature = "otel")]
        crate::observe::otel::flush(Duration::from_secs(5)).await;
        tracing::info!(event = "stopped");
    }
}

/// One worker's share of the serving listeners, until shutdown has drained them all.
async fn serve_worker(
    listeners: Vec<(std::net::TcpListener, Role)>,
    running: Arc<Running>,
    stopped: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    let mut loops = JoinSet::new();
    for (socket, role) in listeners {
        let listener = match socket
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(socket))
        {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(event = "listener_failed", worker = crate::workers::current(), error = %error);
                continue;
            }
        };
        loops.spawn(accept_loop(
            listener,
            role,
            running.clone(),
            stopped.clone(),
            drain_timeout,
        ));
    }
    while loops.join_next().await.is_some() {}
}

async fn accept_loop(
    listener: TcpListener,
    role: Role,
    running: Arc<Running>,
    mut stopped: watch::Receiver<bool>,
    drain_timeout: Duration,
) {
    // Each connection holds a receiver: it learns of the drain through it, and the drain
    // is over when the last one is dropped.
    let (draining, drain_signal) = watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually EMFILE: back off briefly instead of spinning.
                tracing::warn!(event = "accept_failed", error = %error);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            role,
            running.clone(),
            drain_signal.clone(),
        ));
    }
    drop(listener);
    drop(drain_signal);
    let _ = draining.send(true);
    if tokio::time::timeout(drain_timeout, draining.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            event = "drain_timeout",
            "in-flight requests were cut off at the drain timeout"
        );
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    running: Arc<Running>,
    mut drain: watch::Receiver<bool>,
) {
    // What the connection needs from the current config, read once; the config itself is
    // not held, so that a reload does not wait for long-lived connections to end.
    let gateway = running.current();
    let limits = gateway.limits().clone();
    let tls_config = match role {
        Role::Serve { tls: true } => gateway.tls.as_ref().map(|tls| tls.server_config.clone()),
        _ => None,
    };
    drop(gateway);
    let conn = ConnInfo {
        peer,
        tls: role == Role::Serve { tls: true },
    };

    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Above `max_header_bytes`, so that an oversized head usually meets the
        // pipeline's problem+json 431 rather than hyper's bare one.
        .max_buf_size((limits.max_header_bytes * 4).max(64 * 1024));

    match role {
        Role::Redirect => {
            let https_port = running.https_port();
            let metrics = running.metrics.clone();
            let service = service_fn(move |request| {
                let response = redirect(conn, https_port, &request, metrics.clone());
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1.serve_connection(TokioIo::new(stream), service);
            until_drained(Box::pin(connection), &mut drain).await;
        }
        Role::Serve { tls: false } => {
            serve_parking(stream, &http1, running, conn, limits.header_timeout, drain).await;
        }
        // Boxed: the handshake's and HTTP/2's state would otherwise size every
        // connection's task, plain ones included.
        Role::Serve { tls: true } => {
            let Some(tls_config) = tls_config else {
                return;
            };
            Box::pin(serve_tls(
                stream, tls_config, http1, running, conn, limits, drain,
            ))
            .await;
        }
    }
}

/// Plain HTTP/1: hyper sessions on one socket, parked between requests (see `park`).
///
/// `header_timeout` bounds, as hyper alone did, the wait for each request head, idle time
/// included: a connection must have a request dispatched within `header_timeout` of its
/// start or of the end of its last busy session, whatever it sends meanwhile (blank lines,
/// which hyper skips, or half a head), and however often it is parked and resumed.
async fn serve_parking(
    stream: TcpStream,
    http1: &hyper::server::conn::http1::Builder,
    running: Arc<Running>,
    conn: ConnInfo,
    header_timeout: Duration,
    mut drain: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::default());
    let mut io = Parkable::new(stream, activity.clone(), QUIET_BEFORE_PARKING);
    let mut service = pipeline_service(running, conn, activity.clone());
    let mut deadline = tokio::time::Instant::now() + header_timeout;
    let mut dispatched_by_deadline = activity.dispatched();
    loop {
        // Boxed, so that hyper's connection state and buffers exist only while serving.
        let mut session = Box::new(http1.serve_connection(TokioIo::new(io), service));
        let mut shutting_down = false;
        let mut deadline_met = false;
        // The session's own future: when it ends without parking it has flushed what it
        // wrote and shut the socket down (`Parkable` skips that shutdown when parked).
        let ended = loop {
            // Biased, the session first: bytes that arrive with the deadline are served, as
            // hyper parses before it looks at its own timer.
            tokio::select! {
                biased;
                ended = &mut *session => break ended,
                _ = drain.wait_for(|draining| *draining), if !shutting_down => {
                    std::pin::Pin::new(&mut *session).graceful_shutdown();
                    shutting_down = true;
                }
                _ = tokio::time::sleep_until(deadline), if !deadline_met => {
                    if activity.dispatched() == dispatched_by_deadline {
                        // No request in time: closed, as hyper's header timeout would.
                        return;
                    }
                    // From the first request on, hyper's own header timeout applies.
                    deadline_met = true;
                }
            }
        };
        if ended.is_err() {
            return;
        }
        let parts = session.into_parts();
        io = parts.io.into_inner();
        if !io.take_parked() {
            return;
        }
        service = parts.service;
        // Bytes hyper read but did not use cannot be handed to the next session. Parking
        // leaves none (see `park`); a session that ends with some is closed.
        let unused_bytes = !parts.read_buf.is_empty();
        drop(parts.read_buf);
        let draining = *drain.borrow();
        if activity.dispatched() != dispatched_by_deadline {
            deadline = tokio::time::Instant::now() + header_timeout;
            dispatched_by_deadline = activity.dispatched();
        }
        // Parked: no buffer is held until the client writes again.
        let resume = !unused_bytes
            && !draining
            && tokio::select! {
                biased;
                readable = io.stream().readable() => readable.is_ok(),
                _ = tokio::time::sleep_until(deadline) => false,
                _ = drain.wait_for(|draining| *draining) => false,
            };
        if !resume {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
            return;
        }
    }
}

/// TLS: HTTP/2 or HTTP/1.1 by ALPN, one hyper connection for the connection's life.
async fn serve_tls(
    stream: TcpStream,
    tls_config: Arc<rustls::ServerConfig>,
    http1: hyper::server::conn::http1::Builder,
    running: Arc<Running>,
    conn: ConnInfo,
    limits: crate::config::LimitsConfig,
    mut drain: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
    // The handshake shares the header deadline: a client that opens TLS and
    // stalls is a slowloris too.
    let stream = match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(event = "tls_handshake_failed", peer = %conn.peer, error = %error);
            return;
        }
        Err(_) => return,
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let service = pipeline_service(running, conn, Arc::new(Activity::default()));
    if h2 {
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(100)
            .max_header_list_size(u32::try_from(limits.max_header_bytes * 4).unwrap_or(u32::MAX))
            .keep_alive_interval(Duration::from_secs(30));
        until_drained(Box::pin(http2.serve_connection(io, service)), &mut drain).await;
    } else {
        until_drained(Box::pin(http1.serve_connection(io, service)), &mut drain).await;
    }
}

/// Runs a hyper connection to its end, shutting it down gracefully when the drain starts.
async fn until_drained<C: GracefulConnection>(
    mut connection: std::pin::Pin<Box<C>>,
    drain: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = drain.wait_for(|draining| *draining) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

fn pipeline_service(
    running: Arc<Running>,
    conn: ConnInfo,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Tracked<LoggedBody>>,
    Error = Infallible,
    Future = InFlight,
> + Clone
+ Unpin {
    service_fn(move |request: Request<Incoming>| {
        let finished = activity.dispatch(!http_body::Body::is_end_stream(request.body()));
        // Loaded per request: a reload applies to the next request on every connection.
        let gateway = running.current();
        // Not an `async` block around the pipeline's future: that would hold the future
        // inline and move its kilobytes once more, on the request's first poll.
        Box::pin(TrackedResponse::new(
            pipeline::handle(gateway, conn, request),
            finished,
        )) as InFlight
    })
}

/// A request being served. Boxed because hyper sets aside room for one in-flight request
/// future per connection for the connection's whole life: unboxed, every idle keep-alive
/// connection would hold the pipeline's state machine (some kilobytes) while waiting.
type InFlight = std::pin::Pin<
    Box<dyn Future<Output = Result<Response<Tracked<LoggedBody>>, Infallible>> + Send>,
>;

/// The plain-http answer when TLS is configured: 308 to the same host and path on https.
///
/// 308 (not 301) so that clients repeat the method and body. Only the host is taken from
/// the request, and only once it parses as a host; the port is palisade's https port.
fn redirect(
    conn: ConnInfo,
    https_port: Option<u16>,
    request: &Request<Incoming>,
    metrics: Arc<Metrics>,
) -> Response<LoggedBody> {
    let ctx = RequestCtx::new(conn, request.method().clone());
    let host = request
        .uri()
        .authority()
        .cloned()
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<Authority>().ok())
        })
        .filter(|a| !a.as_str().contains('@'));
    let target = host.and_then(|authority| {
        let host = authority.host();
        let port = match https_port {
            Some(443) | None => String::new(),
            Some(port) => format!(":{port}"),
        };
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let path = if path.starts_with('/') { path } else { "/" };
        http::HeaderValue::from_str(&format!("https://{host}{port}{path}")).ok()
    });
    let mut response = match target {
        Some(location) => {
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(LOCATION, location);
            response
        }
        None => problem_response(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            Some("a valid Host header is required"),
            ctx.id.as_str(),
        ),
    };
    headers::finish_response(&mut response, ctx.id.as_str(), None);
    let status = response.status().as_u16();
    response.map(|b| LoggedBody::new(b, ctx, status, metrics))
}
