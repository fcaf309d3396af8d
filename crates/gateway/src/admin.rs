//! The admin API, on its own listener: `/healthz`, `/readyz`, `/metrics`, `POST /reload`.
//!
//! Reads are open to whoever can reach the admin address, which is loopback unless the
//! operator chose otherwise (and then config validation demands an `admin_token`).
//! Writes (`/reload`) always need `Authorization: Bearer <admin_token>`, compared in
//! constant time; with no token configured, writes are refused. Errors are problem+json
//! like the gateway's own.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use palisade_store::{IssuedKey, KeyService, NewKey};

use crate::config::HumanDuration;
use crate::ctx::RequestId;
use crate::observe::security::{Scope, security_event};
use crate::rescue::problem_response;
use crate::running::Running;

/// Serves the admin API until `stopped` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    running: Arc<Running>,
    mut stopped: watch::Receiver<bool>,
) {
    let app = router(running);
    let shutdown = async move {
        let _ = stopped.changed().await;
    };
    // The peer address names the client in the `auth_failed` event of a wrong token.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(event = "admin_failed", error = %error);
    }
}

fn router(running: Arc<Running>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", axum::routing::delete(revoke_key))
        .route("/keys/{id}/rotate", post(rotate_key))
        .fallback(not_found)
        .with_state(running)
}

/// Liveness: the process is up and its runtime answers.
async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

/// Readiness: a config is loaded and every upstream accepts a TCP connection.
async fn readyz(State(running): State<Arc<Running>>) -> Response {
    let gateway = running.current();
    let checks = gateway.upstreams().iter().map(|upstream| async move {
        let reachable = upstream.reachable(Duration::from_secs(1)).await;
        (upstream.name.to_string(), reachable)
    });
    let results = futures_util::future::join_all(checks).await;
    let ready = results.iter().all(|(_, reachable)| *reachable);
    let upstreams: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(name, reachable)| {
            (
                name,
                serde_json::Value::from(if reachable { "up" } else { "down" }),
            )
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        serde_json::json!({ "status": if ready { "ready" } else { "not ready" }, "config": "loaded", "upstreams": upstreams }),
    )
}

async fn metrics(State(running): State<Arc<Running>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        running.metrics.encode(),
    )
        .into_response()
}

async fn reload(
    State(running): State<Arc<Running>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = require_token(&running, &headers, peer.ip()) {
        return denied;
    }
    match running.reload().await {
        Ok(()) => json(StatusCode::OK, serde_json::json!({ "status": "reloaded" })),
        // The operator asked, so the operator sees why: the message names file, line and key.
        Err(error) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "status": "failed", "error": error.to_string(), "running": "previous config" }),
        ),
    }
}

/// The body of `POST /keys`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    subject: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// A duration such as `90d`.
    expires: Option<String>,
}

/// The body of `POST /keys/{id}/rotate` (optional).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// How long the old key keeps working, e.g. `1h`; default `[store] rotation_overlap`.
    overlap: Option<String>,
}

/// Every `/keys` endpoint needs the admin token and a configured store.
#[allow(clippy::result_large_err)]
fn key_service(
    running: &Running,
    headers: &HeaderMap,
    client: IpAddr,
) -> Result<KeyService, Response> {
    require_token(running, headers, client)?;
    running.current().keys().cloned().ok_or_else(|| {
        problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            Some("no [store] is configured, so there are no API keys"),
        )
    })
}

async fn list_keys(
    State(running): State<Arc<Running>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let keys = match key_service(&running, &headers, peer.ip()) {
        Ok(keys) => keys,
        Err(denied) => return denied,
    };
    match keys.list().await {
        Ok(list) => json(StatusCode::OK, serde_json::json!({ "keys": list })),
        Err(error) => store_failed(&error),
    }
}

async fn create_key(
    State(running): State<Arc<Running>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let keys = match key_service(&running, &headers, peer.ip()) {
        Ok(keys) => keys,
        Err(denied) => return denied,
    };
    let request: CreateKey = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return bad_request(&error.to_string()),
    };
    let expires_in = match request
        .expires
        .as_deref()
        .map(str::parse::<HumanDuration>)
        .transpose()
    {
        Ok(expires) => expires.map(|d| d.0),
        Err(message) => return bad_request(&format!("expires: {message}")),
    };
    let new = NewKey {
        name: request.name,
        subject: request.subject,
        roles: request.roles,
        scopes: request.scopes,
        expires_in,
    };
    match keys.create(new).await {
        Ok(issued) => issued_response(&issued, "created", None),
        Err(palisade_store::StoreError::Invalid(why)) => bad_request(why),
        Err(error) => store_failed(&error),
    }
}

async fn revoke_key(
    State(running): State<Arc<Running>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let keys = match key_service(&running, &headers, peer.ip()) {
        Ok(keys) => keys,
        Err(denied) => return denied,
    };
    match keys.revoke(&id).await {
        Ok(true) => {
            security_event!(
                info,
                Scope::outside().key_id(Some(&id)),
                "key_revoked",
                "admin_api",
                actor = "admin_api",
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            Some("no active key with this id"),
        ),
        Err(error) => store_failed(&error),
    }
}

async fn rotate_key(
    State(running): State<Arc<Running>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let keys = match key_service(&running, &headers, peer.ip()) {
        Ok(keys) => keys,
        Err(denied) => return denied,
    };
    let request: RotateKey = if body.is_empty() {
        RotateKey::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => return bad_request(&error.to_string()),
        }
    };
    let overlap = match request
        .overlap
        .as_deref()
        .map(str::parse::<HumanDuration>)
        .transpose()
    {
        Ok(overlap) => overlap.map(|d| d.0),
        Err(message) => return bad_request(&format!("overlap: {message}")),
    };
    match keys.rotate(&id, overlap).await {
        Ok(issued) => issued_response(&issued, "rotated", Some(id.as_str())),
        Err(palisade_store::StoreError::NotFound(_) | palisade_store::StoreError::Revoked(_)) => {
            problem(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                Some("no active key with this id"),
            )
        }
        Err(error) => store_failed(&error),
    }
}

/// The one response that carries a full key: shown once, never stored or logged.
/// The 201 with a new key (shown once), and its `key_created` event (`reason` `created`
/// or `rotated`, with the key it `replaces`).
fn issued_response(issued: &IssuedKey, reason: &'static str, replaces: Option<&str>) -> Response {
    security_event!(
        info,
        Scope::outside()
            .key_id(Some(&issued.info.id))
            .subject(Some(&issued.info.subject)),
        "key_created",
        reason,
        replaces,
        actor = "admin_api",
    );
    let mut response = json(
        StatusCode::CREATED,
        serde_json::json!({ "key": issued.key.expose_secret(), "info": issued.info }),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn bad_request(detail: &str) -> Response {
    let id = RequestId::next();
    let mut response = json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({
            "type": crate::rescue::problem_type("bad-request"),
            "title": "Bad request",
            "status": 400,
            "detail": detail,
            "request_id": id.as_str(),
        }),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

fn store_failed(error: &palisade_store::StoreError) -> Response {
    tracing::error!(event = "store_error", error = %error);
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "Service unavailable",
        Some("the key store failed; see the server log"),
    )
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "not-found", "Not found", None)
}

/// Checks `Authorization: Bearer <admin_token>` in constant time. A failure is an
/// `auth_failed` event on route `admin` (counted and alerted on like the gateway's): a
/// guessed admin token must leave a trace.
#[allow(clippy::result_large_err)]
fn require_token(running: &Running, headers: &HeaderMap, client: IpAddr) -> Result<(), Response> {
    let gateway = running.current();
    let Some(expected) = gateway.config.server.admin_token.as_ref() else {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            Some("set server.admin_token to enable admin writes"),
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(
        presented
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        Ok(())
    } else {
        let id = RequestId::next();
        let reason = if presented.is_empty() {
            "missing_credentials"
        } else {
            "wrong_secret"
        };
        security_event!(
            info,
            Scope {
                request_id: id.as_str(),
                ..Scope::outside()
            }
            .client_ip(client)
            .route(Some("admin")),
            "auth_failed",
            reason
        );
        let mut response = problem_with_id(
            id,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            None,
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"palisade-admin\""),
        );
        Err(response)
    }
}

fn problem(status: StatusCode, slug: &str, title: &str, detail: Option<&str>) -> Response {
    problem_with_id(RequestId::next(), status, slug, title, detail)
}

/// A problem response whose request id (body and `X-Request-Id`) is `id`.
fn problem_with_id(
    id: RequestId,
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: Option<&str>,
) -> Response {
    let response = problem_response(status, slug, title, detail, id.as_str());
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = header::HeaderValue::from_str(id.as_str()) {
        parts.headers.insert(crate::headers::X_REQUEST_ID, value);
    }
    Response::from_parts(parts, axum::body::Body::new(body))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}
