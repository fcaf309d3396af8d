//! The pipeline: every request passes the checklist in this order.
//!
//! ```text
//! head limits → host → canonical path → route (400/404/405)
//!   → rate limit per ip/route/header, address lockout → authenticate → Principal
//!   → rate limit per client → authorize → Permit → validate parameters
//!   → body limit → rate limit per body field, account lockout → validate body
//!   → field rules → proxy → upstream → validate response → owner/field checks
//!   → rescue (problem+json) → response headers → access log / metrics
//! ```
//! `docs/pipeline.md` draws the whole order with each phase's answers.
//! A `Pipeline` is one immutable build of the pipeline from one `Config`; a reload builds
//! a new one and swaps it in atomically, so a request sees one config from start to end.

use std::sync::Arc;

use http::header::{HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use palisade_store::KeyService;

use crate::authn::Authenticator;
use crate::authn::jwt::JwtVerifier;
use crate::authz::Authorizer;
use crate::authz::inspect;
use crate::body::Body;
use crate::config::{Config, ConfigError, LimitsConfig};
use crate::ctx::{ConnInfo, RequestCtx};
use crate::headers;
use crate::limits;
use crate::observe::{LoggedBody, Metrics};
use crate::path;
use crate::proxy::{Outgoing, Upstreams};
use crate::ratelimit;
use crate::ratelimit::RateLimiter;
use crate::ratelimit::store::RateStore;
use crate::rejection::Rejection;
use crate::rescue::{self, rescue_panics};
use crate::routes::{RouteMiss, Router};
use crate::tls::Tls;
use crate::validate::Validation;

/// One build of the pipeline from one config.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub config: Config,
    router: Router,
    route_names: Vec<Arc<str>>,
    upstreams: Upstreams,
    authn: Authenticator,
    limiter: RateLimiter,
    authz: Authorizer,
    validation: Validation,
    keys: Option<KeyService>,
    pub tls: Option<Tls>,
    pub metrics: Arc<Metrics>,
}

impl Pipeline {
    /// Builds every phase from `config`; any error names the file, line and key. `keys` is
    /// the key service for `config.store` and `rate_store` the rate-limit store (both
    /// opened by the server and kept across reloads).
    pub(crate) fn build(
        config: Config,
        metrics: Arc<Metrics>,
        keys: Option<KeyService>,
        rate_store: RateStore,
    ) -> Result<Pipeline, ConfigError> {
        let router = Router::build(&config.routes)
            .map_err(|e| config.error_at(&format!("route[{}].path", e.route), e.message))?;
        let upstreams = Upstreams::build(&config)?;
        let tls = Tls::build(&config)?;
        let limiter = RateLimiter::new(&config, rate_store, metrics.clone())
            .map_err(|message| config.error_at("rate_limit", message))?;
        let validation = Validation::build(&config)?;
        let jwt = config
            .auth
            .jwt
            .as_ref()
            .map(JwtVerifier::new)
            .transpose()
            .map_err(|message| config.error_at("auth.jwt", message))?;
        let route_names = config
            .routes
            .iter()
            .map(|r| Arc::from(r.name.as_str()))
            .collect();
        Ok(Pipeline {
            router,
            route_names,
            upstreams,
            authn: Authenticator::new(keys.clone(), jwt),
            limiter,
            keys,
            authz: Authorizer::new(),
            validation,
            tls,
            metrics,
            config,
        })
    }

    pub(crate) fn limits(&self) -> &LimitsConfig {
        &self.config.limits
    }

    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The API-key service, when `[store]` is configured.
    pub(crate) fn keys(&self) -> Option<&KeyService> {
        self.keys.as_ref()
    }
}

/// Serves one request. Never fails: every rejection and every panic becomes a
/// problem+json response at the one rescue point below.
pub(crate) async fn handle(
    gw: Arc<Pipeline>,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Response<LoggedBody> {
    let mut ctx = RequestCtx::new(conn, request.method().clone());
    ctx.client_ip = headers::client_ip(
        conn.peer.ip(),
        request.headers(),
        &gw.config.server.trusted_proxies,
    );

    let close_after = ambiguous_transfer_coding(request.headers());
    let result = rescue_panics(phases(&gw, &mut ctx, request)).await;
    let mut response =
        result.unwrap_or_else(|rejection| rescue::respond(rejection, &ctx, &gw.metrics));
    // 4 (logins): a login charged in advance is refunded unless it failed (401/403).
    if ctx.login_attempt.is_some() {
        gw.limiter.settle_login(&mut ctx, response.status()).await;
    }

    if let Some(state) = &ctx.rate_limit {
        let (policy, now) = crate::quota::state::header_values(state);
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", now)] {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                response.headers_mut().entry(name).or_insert(value);
            }
        }
    }
    let hsts = gw.tls.as_ref().filter(|_| conn.tls).map(|tls| &tls.hsts);
    headers::finish_response(&mut response, ctx.id.as_str(), hsts);
    if close_after {
        // hyper ends an HTTP/1.1 connection after a response that says so.
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let status = response.status().as_u16();
    let metrics = gw.metrics.clone();
    response.map(|body| LoggedBody::new(body, ctx, status, metrics))
}

/// The checklist, in order. Each line is one phase; each returns early with a `Rejection`.
async fn phases(
    gw: &Pipeline,
    ctx: &mut RequestCtx,
    request: Request<Incoming>,
) -> Result<Response<Body>, Rejection> {
    let (head, incoming) = request.into_parts();
    limits::check_head(&head.uri, &head.headers, gw.config.limits.max_header_bytes)?;
    if head.method == Method::CONNECT {
        return Err(Rejection::BadRequest("CONNECT is not supported"));
    }
    // hyper accepts any coding list ending in `chunked` and decodes only the chunking;
    // `gzip, chunked` would reach the upstream as compressed bytes with no coding named.
    if ambiguous_transfer_coding(&head.headers) {
        return Err(Rejection::BadRequest(
            "only the chunked transfer coding is accepted",
        ));
    }
    let host = request_host(&head)?;

    // 8: one canonical path, used for routing, the log and the upstream request line.
    let canonical = path::canonicalize(head.uri.path()).map_err(Rejection::BadPath)?;
    ctx.query = head.uri.query().map(str::to_owned);
    let matched = gw
        .router
        .find(
            host.as_ref().map(|h| h.name.as_str()),
            &head.method,
            &canonical,
        )
        .map_err(|miss| match miss {
            RouteMiss::NotFound => Rejection::NotFound,
            RouteMiss::MethodNotAllowed { allow } => Rejection::MethodNotAllowed { allow },
        });
    ctx.path = Some(canonical);
    let matched = matched?;
    let route = matched.route;
    ctx.route = Some(gw.route_names[route].clone());
    let route_config = &gw.config.routes[route];
    let limits = &gw.config.limits;
    let trusted = &gw.config.server.trusted_proxies;

    // 4 (before auth): per ip, per route, per header, and address lockouts — cheap,
    // before any crypto.
    gw.limiter.before_auth(ctx, route, &head.headers).await?;
    // 2: who is calling → Principal.
    let principal = match gw
        .authn
        .authenticate(ctx, route_config, &head.headers)
        .await
    {
        Ok(principal) => {
            // Every later line about this request names who made it.
            (ctx.subject, ctx.key_id) = principal.identity();
            principal
        }
        Err(rejection) => {
            if matches!(rejection, Rejection::Unauthorized { guess: true, .. }) {
                gw.limiter.record_failure(ctx, route).await;
            }
            return Err(rejection);
        }
    };
    // 4 (after auth): per client, subject or key.
    gw.limiter.after_auth(ctx, route, &principal).await?;
    // 3: may they call this route (roles, scopes, owner by path) → Permit.
    let path = ctx
        .path
        .as_ref()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let permit = gw
        .authz
        .authorize(ctx, route_config, principal, &matched.params, &path)?;
    // 5 (schema): path parameters, query, headers and cookies.
    gw.validation
        .check_request(ctx, route, &matched.params, head.uri.query(), &head.headers)?;
    // 5 (size): the body, bounded before the upstream sees a byte.
    let body = limits::limit_body(incoming, limits.max_body, limits.request_timeout).await?;
    // 4 (body): per body field, and account lockouts on login routes.
    let (body, fields) = ratelimit::body::read_fields(
        &head.headers,
        head.uri.query(),
        body,
        limits.max_body,
        &gw.limiter.body_fields(route),
        gw.limiter.login_account_pointer(route),
    )
    .await?;
    gw.limiter.after_body(ctx, route, &fields).await?;
    // 5 (schema): the body; what was validated is what is forwarded.
    let body = gw
        .validation
        .check_body(
            ctx,
            route,
            &head.method,
            &head.headers,
            body,
            limits.max_body,
        )
        .await?;
    // 3 (fields): mass assignment and the owner of a create.
    let method = head.method.clone();
    let body = inspect::request_body(
        ctx,
        route_config,
        &permit,
        &method,
        &head.headers,
        body,
        limits.max_body,
    )
    .await?;

    let upstream = gw.upstreams.get(route_config.upstream);
    ctx.upstream = Some(upstream.name.clone());
    // 3 (objects): a write to an owned object is checked on the object first.
    if let Some(check) = permit.owner_check()
        && inspect::needs_preflight(&method, route_config)
    {
        let (status, bytes) = upstream
            .preflight(
                &permit,
                ctx,
                &check.object_path,
                trusted,
                limits.max_inspect_body,
            )
            .await?;
        inspect::preflight_verdict(ctx, &permit, check, &upstream.name, status, &bytes)?;
    }
    let mut head = head;
    inspect::prepare_inspected_request(route_config, &permit, &method, &mut head.headers);
    if method == Method::HEAD && permit.owner_check().is_some() {
        // A HEAD answer has no body to check: ask for the object, send only its head.
        head.method = Method::GET;
    }
    let response = upstream
        .forward(
            &permit,
            &*ctx,
            Outgoing {
                head,
                body,
                path: &path,
                original_host: host.as_ref().map(|h| h.authority.as_str()),
                trusted_proxies: trusted,
                forward_credentials: route_config.forward_credentials,
            },
        )
        .await?;
    // 5 (responses): the spec's schema, when responses are validated.
    let response = gw
        .validation
        .check_response(
            ctx,
            route,
            &upstream.name,
            response,
            limits.max_inspect_body,
        )
        .await?;
    // 3 (responses): owner of what is read, fields that never leave.
    let reading = inspect::Reading {
        upstream: &upstream.name,
        deadline: upstream.timeout(),
        max_bytes: limits.max_inspect_body,
    };
    inspect::response(ctx, route_config, &permit, &method, reading, response).await
}

/// The host a request is for: its authority (for `X-Forwarded-Host`) and its lower-case
/// name without port (for routing).
pub(crate) struct RequestHost {
    pub authority: String,
    pub name: String,
}

/// Finds the one host a request addresses, refusing requests that name two.
///
/// Why strict: a proxy and an upstream that pick different hosts from `GET http://a/`
/// with `Host: b`, or from two `Host` headers, route one request two ways.
pub(crate) fn request_host(head: &http::request::Parts) -> Result<Option<RequestHost>, Rejection> {
    let mut host_headers = head.headers.get_all(HOST).iter();
    let header = host_headers.next();
    if host_headers.next().is_some() {
        return Err(Rejection::BadRequest("more than one Host header"));
    }
    let from_header = header
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|s| s.parse::<Authority>().ok())
                .filter(|a| !a.as_str().contains('@') && has_valid_port(a))
                .ok_or(Rejection::BadRequest("the Host header is not a valid host"))
        })
        .transpose()?;
    let from_uri = head.uri.authority().cloned();
    if from_uri.as_ref().is_some_and(|a| a.as_str().contains('@')) {
        return Err(Rejection::BadRequest(
            "the request target carries user information",
        ));
    }
    if from_uri.as_ref().is_some_and(|a| !has_valid_port(a)) {
        return Err(Rejection::BadRequest(
            "the request target's port is not valid",
        ));
    }
    let authority = match (from_uri, from_header) {
        (Some(uri), Some(header)) if !uri.host().eq_ignore_ascii_case(header.host()) => {
            return Err(Rejection::BadRequest(
                "the request target and the Host header name different hosts",
            ));
        }
        (Some(uri), _) => uri,
        (None, Some(header)) => header,
        // RFC 9112 §3.2: an HTTP/1.1 request without a host is invalid.
        (None, None) if head.version == Version::HTTP_11 => {
            return Err(Rejection::BadRequest("the Host header is required"));
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(RequestHost {
        // `api.example.com.` is the same host as `api.example.com` (a fully qualified
        // name); both must meet the same routes.
        name: authority.host().trim_end_matches('.').to_ascii_lowercase(),
        authority: authority.as_str().to_owned(),
    }))
}

/// `host` or `host:port` with a port of at most five digits that fits in 16 bits (an empty
/// port is allowed, RFC 3986 §3.2.3). `http::uri::Authority` accepts `localhost:abc`, which
/// RFC 9112 §3.2 makes a 400: such a value would otherwise reach the upstream as
/// `X-Forwarded-Host`, for it to build links with.
fn has_valid_port(authority: &Authority) -> bool {
    let Some(rest) = authority.as_str().get(authority.host().len()..) else {
        return false;
    };
    match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some("") => true,
        Some(port) => {
            port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok()
        }
    }
}

/// True when a request names a transfer coding other than exactly one `chunked`: refused
/// in `phases`, and the connection is closed after the answer (RFC 9112 §6.1), since
/// whatever follows on it was framed by a reading that another hop may not share.
fn ambiguous_transfer_coding(headers: &http::HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    codings.next().is_some_and(|coding| {
        !coding.as_bytes().eq_ignore_ascii_case(b"chunked") || codings.next().is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, hosts: &[&str]) -> http::request::Parts {
        let mut builder = Request::builder().uri(uri);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn host_from_header_is_lowercased_without_port() {
        let host = request_host(&head("/x", &["API.Example.com:8443"]))
            .unwrap()
            .unwrap();
        assert_eq!(host.name, "api.example.com");
        assert_eq!(host.authority, "API.Example.com:8443");
    }

    #[test]
    fn http_1_1_needs_a_host_and_a_trailing_dot_is_the_same_host() {
        assert!(matches!(
            request_host(&head("/x", &[])),
            Err(Rejection::BadRequest(_))
        ));
        let host = request_host(&head("/x", &["api.example.com."]))
            .unwrap()
            .unwrap();
        assert_eq!(host.name, "api.example.com");
    }

    #[test]
    fn two_host_headers_are_rejected() {
        assert!(matches!(
            request_host(&head("/x", &["a.example", "b.example"])),
            Err(Rejection::BadRequest(_))
        ));
    }

    #[test]
    fn absolute_form_naming_another_host_is_rejected() {
        assert!(matches!(
            request_host(&head("http://evil.example/x", &["api.example"])),
            Err(Rejection::BadRequest(_))
        ));
        let same = request_host(&head("http://api.example/x", &["API.example"]))
            .unwrap()
            .unwrap();
        assert_eq!(same.name, "api.example");
    }

    #[test]
    fn a_port_must_be_a_port() {
        for bad in [
            "localhost:abc",
            "localhost:99999",
            "localhost:+80",
            "localhost:000080",
        ] {
            assert!(request_host(&head("/x", &[bad])).is_err(), "{bad}");
        }
        for good in [
            "localhost",
            "localhost:",
            "localhost:8080",
            "[::1]:443",
            "[::1]",
        ] {
            assert!(request_host(&head("/x", &[good])).is_ok(), "{good}");
        }
        assert!(request_host(&head("http://localhost:abc/x", &["localhost"])).is_err());
    }

    #[test]
    fn userinfo_in_host_is_rejected() {
        assert!(request_host(&head("/x", &["user@api.example"])).is_err());
    }
}
