//! The proxy: one pooled HTTP client per `[[upstream]]`.
//!
//! Input: a `Permit` (proof that authentication and authorization ran), the request
//! head with its canonical path, and a size-checked body. Output: the upstream's
//! response with its body streaming. Failure: `UpstreamUnavailable` (502) when the
//! upstream cannot be reached or breaks the connection, `UpstreamTimeout` (504) when it
//! does not answer within `limits.request_timeout` (or the upstream's `timeout`), and
//! `UpstreamFailed` (the upstream's own 5xx status, generic body) when it answers 5xx.
//!
//! The request line sent upstream is built from the canonical path, never from the
//! client's raw path: the upstream serves exactly the path that was routed and authorized.
//! The headers it receives are rebuilt by `upstream_headers`.

mod upstream_headers;

use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_LENGTH, COOKIE, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::authz::Permit;
use crate::body::{self, Body};
use crate::config::{Config, ConfigError, IpNet, UpstreamConfig};
use crate::ctx::RequestCtx;
use crate::rejection::Rejection;

/// How much of an upstream 5xx body is kept for the log (never for the client).
const EXCERPT_BYTES: usize = 2048;

/// One configured upstream with its connection pool.
pub(crate) struct Upstream {
    pub name: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    /// The URL's path without a trailing slash, put before every canonical path.
    base_path: String,
    timeout: Duration,
    /// One pool per worker (`workers`): a request reuses connections its own thread drives.
    clients: Box<[Client<HttpsConnector<HttpConnector>, Body>]>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field(
                "url",
                &format_args!("{}://{}{}", self.scheme, self.authority, self.base_path),
            )
            .finish()
    }
}

/// The request parts the proxy needs, already canonicalized by earlier phases.
pub(crate) struct Outgoing<'a> {
    pub head: http::request::Parts,
    pub body: Body,
    /// The canonical path that was routed.
    pub path: &'a str,
    /// The host the client addressed, passed as `X-Forwarded-Host`.
    pub original_host: Option<&'a str>,
    pub trusted_proxies: &'a [IpNet],
    /// Pass `Authorization` / `X-Api-Key` on (the route's `forward_credentials`).
    pub forward_credentials: bool,
}

impl Upstream {
    fn build(
        index: usize,
        config: &UpstreamConfig,
        limits_timeout: Duration,
        all: &Config,
    ) -> Result<Self, ConfigError> {
        let key = |field: &str| format!("upstream[{index}].{field}");
        let scheme = config.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = config
            .url
            .authority()
            .cloned()
            .ok_or_else(|| all.error_at(&key("url"), "the URL has no host"))?;
        let base_path = config.url.path().trim_end_matches('/').to_owned();
        let timeout = config.timeout.unwrap_or(limits_timeout);

        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &config.ca {
            // A private CA replaces the public roots: an internal upstream is trusted only
            // through the certificate authority the operator named.
            Some(ca_path) => {
                let mut roots = rustls::RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(ca_path).map_err(|e| {
                    all.error_at(
                        &key("ca"),
                        format!("cannot read {}: {e}", ca_path.display()),
                    )
                })?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        all.error_at(&key("ca"), format!("bad PEM in {}: {e}", ca_path.display()))
                    })?;
                    roots.add(cert).map_err(|e| {
                        all.error_at(
                            &key("ca"),
                            format!("bad certificate in {}: {e}", ca_path.display()),
                        )
                    })?;
                }
                let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| all.error_at(&key("ca"), e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                builder.with_tls_config(tls)
            }
            None => builder
                .with_provider_and_webpki_roots(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .map_err(|e| all.error_at(&key("url"), e.to_string()))?,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = builder.https_or_http().enable_http1().wrap_connector(http);
        let clients = (0..crate::workers::count())
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(60))
                    .build(connector.clone())
            })
            .collect();
        Ok(Upstream {
            name: config.name.as_str().into(),
            scheme,
            authority,
            base_path,
            timeout,
            clients,
        })
    }

    /// Sends the request upstream. Contract: the caller has routed, authenticated and
    /// authorized it (the `Permit`), and limited its body.
    pub(crate) async fn forward(
        &self,
        permit: &Permit,
        ctx: &RequestCtx,
        outgoing: Outgoing<'_>,
    ) -> Result<Response<Body>, Rejection> {
        let Outgoing {
            mut head,
            body,
            path,
            original_host,
            trusted_proxies,
            forward_credentials,
        } = outgoing;
        head.uri = self.upstream_uri(path, ctx.query.as_deref())?;
        // HTTP/2 allows the cookie header to be split; HTTP/1.1 does not (RFC 9113 §8.2.3),
        // and servers disagree on which of several lines they read.
        if head.version == Version::HTTP_2 {
            join_cookies(&mut head.headers);
        }
        // The upstream speaks HTTP/1.1 whatever the client spoke; hyper frames it, and
        // sets `Content-Length` from the body itself, so the client's spelling of it
        // (`0005`, say) never travels on.
        head.version = Version::HTTP_11;
        head.headers.remove(CONTENT_LENGTH);
        upstream_headers::prepare(
            &mut head.headers,
            ctx,
            original_host,
            trusted_proxies,
            permit.principal(),
            forward_credentials,
        );
        // An empty POST/PUT/PATCH that arrived without a length (HTTP/2, or a chunked body
        // with no chunks) still tells the upstream its length: some servers insist.
        if body.is_end_stream()
            && !head.headers.contains_key(CONTENT_LENGTH)
            && matches!(head.method, Method::POST | Method::PUT | Method::PATCH)
        {
            head.headers
                .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        let request = Request::from_parts(head, body);

        let response = self.send(request).await?;

        let (parts, incoming) = response.into_parts();
        if parts.status.is_server_error() {
            let excerpt = read_excerpt(incoming).await;
            return Err(Rejection::UpstreamFailed {
                upstream: self.name.to_string(),
                status: parts.status,
                excerpt,
            });
        }
        Ok(Response::from_parts(parts, body::boxed(incoming)))
    }

    /// Sends one request, mapping failures to 502 and a missed deadline to 504.
    async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<Response<hyper::body::Incoming>, Rejection> {
        let client = crate::workers::own(&self.clients);
        match tokio::time::timeout(self.timeout, client.request(request)).await {
            Err(_elapsed) => Err(Rejection::UpstreamTimeout {
                upstream: self.name.to_string(),
            }),
            Ok(Err(error)) => Err(Rejection::UpstreamUnavailable {
                upstream: self.name.to_string(),
                cause: error_chain(&error),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// The preflight of an owned write: GET `path` with the caller's identity (and nothing
    /// else of the client's), read whole up to `limit` bytes.
    pub(crate) async fn preflight(
        &self,
        permit: &Permit,
        ctx: &RequestCtx,
        path: &str,
        trusted_proxies: &[IpNet],
        limit: u64,
    ) -> Result<(http::StatusCode, bytes::Bytes), Rejection> {
        let mut request = Request::new(body::empty());
        *request.uri_mut() = self.upstream_uri(path, None)?;
        let headers = request.headers_mut();
        headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        upstream_headers::prepare(
            headers,
            ctx,
            None,
            trusted_proxies,
            permit.principal(),
            false,
        );
        let response = self.send(request).await?;
        let status = response.status();
        let read = body::read_limited(body::boxed(response.into_body()), limit);
        let uncheckable = |why| Rejection::UncheckableResponse {
            upstream: self.name.to_string(),
            why,
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Ok(bytes)) => Ok((status, bytes)),
            Ok(Err(_)) => Err(uncheckable("preflight too large")),
            Err(_) => Err(uncheckable("preflight body timeout")),
        }
    }

    fn upstream_uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        let mut target = String::with_capacity(
            self.base_path.len() + path.len() + 1 + query.map_or(0, str::len),
        );
        target.push_str(&self.base_path);
        target.push_str(path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        let path_and_query = PathAndQuery::try_from(target)
            .map_err(|_| Rejection::BadRequest("the query string is not valid"))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| Rejection::BadRequest("the query string is not valid"))
    }

    /// The time this upstream has to answer (its own `timeout` or `limits.request_timeout`).
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether a TCP connection to the upstream opens within `within` (for `/readyz`).
    pub(crate) async fn reachable(&self, within: Duration) -> bool {
        let port = self
            .authority
            .port_u16()
            .unwrap_or(if self.scheme == Scheme::HTTPS {
                443
            } else {
                80
            });
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        matches!(
            tokio::time::timeout(within, tokio::net::TcpStream::connect((host, port))).await,
            Ok(Ok(_))
        )
    }
}

/// Every upstream of one config, indexed like `Config::upstreams`.
#[derive(Debug)]
pub(crate) struct Upstreams(Vec<Upstream>);

impl Upstreams {
    pub(crate) fn build(config: &Config) -> Result<Self, ConfigError> {
        config
            .upstreams
            .iter()
            .enumerate()
            .map(|(index, upstream)| {
                Upstream::build(index, upstream, config.limits.request_timeout, config)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Upstreams)
    }

    pub(crate) fn get(&self, index: usize) -> &Upstream {
        &self.0[index]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Upstream> {
        self.0.iter()
    }
}

/// Joins several `cookie` header lines into one, separated by `; `.
fn join_cookies(headers: &mut http::HeaderMap) {
    let mut lines = headers.get_all(COOKIE).iter();
    if lines.next().is_none() || lines.next().is_none() {
        return;
    }
    let joined = headers
        .get_all(COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, value);
    }
}

/// The first bytes of a failed upstream's body, lossily decoded, for the log.
async fn read_excerpt(incoming: hyper::body::Incoming) -> String {
    let mut excerpt = Vec::with_capacity(EXCERPT_BYTES);
    let mut body = incoming;
    let read = async {
        while excerpt.len() < EXCERPT_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let take = (EXCERPT_BYTES - excerpt.len()).min(data.len());
                        excerpt.extend_from_slice(&data[..take]);
                    }
                }
                _ => break,
            }
        }
    };
    // A failing upstream may also be a slow one; the excerpt is best effort.
    let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
    String::from_utf8_lossy(&excerpt).into_owned()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cookies_are_joined_into_one_line() {
        let mut headers = http::HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut headers);
        let lines: Vec<_> = headers.get_all(COOKIE).iter().collect();
        assert_eq!(lines, ["a=1; b=2"]);
    }
}
