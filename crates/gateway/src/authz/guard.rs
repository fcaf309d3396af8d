//! The body-level half of authorization: what can only be decided on JSON.
//!
//! - `request_body`: field rules on the request (`request_fields.deny`: mass assignment)
//!   and the owner field of a create (`on_create`). Input: the size-limited body. Output:
//!   the body to forward (re-serialized only when it was changed). Failure: 400.
//! - `preflight`: before a write to an owner-checked object, a GET of the object with the
//!   caller's identity; the write goes ahead only if the caller owns it. Failure: 404.
//! - `response`: the owner check of a GET (single object or collection) and
//!   `response_fields.deny`. Input: the upstream's response, read whole up to
//!   `limits.max_inspect_body`. Failure: 404 (not the owner; also for the upstream's own 404,
//!   so both look the same), 403 (a collection in `deny` mode), 502 when the response is
//!   too large or not JSON: an owner check that cannot be made fails closed, never open.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use serde_json::Value;

use super::json::{any_matching, filter_owned, owner_of, remove_matching, set_field};
use super::{OwnerCheck, Permit, owner_violation};
use crate::body::{self, Body};
use crate::config::{CollectionMode, OnCreate, OwnerMode, OwnerSource, RouteConfig};
use crate::ctx::RequestCtx;
use crate::errors::Rejection;

/// Whether a request with `method` on `route` writes to an object that must be owned, and
/// so needs a preflight GET. A POST is a write to an object unless the rule treats the
/// route as a collection (it has `collection` or `on_create`).
pub fn needs_preflight(method: &Method, route: &RouteConfig) -> bool {
    let Some(rule) = &route.owner else {
        return false;
    };
    if !matches!(rule.source, OwnerSource::Field(_)) {
        return false;
    }
    match *method {
        Method::PUT | Method::PATCH | Method::DELETE => true,
        Method::POST => rule.collection.is_none() && rule.on_create.is_none(),
        _ => false,
    }
}

/// Applies `request_fields.deny` and `on_create` to the body.
pub async fn request_body(
    ctx: &RequestCtx,
    route: &RouteConfig,
    permit: &Permit,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    max_body: u64,
) -> Result<Body, Rejection> {
    let on_create = route
        .owner
        .as_ref()
        .and_then(|rule| rule.on_create)
        .filter(|_| *method == Method::POST);
    if (route.request_deny.is_empty() && on_create.is_none()) || body.is_end_stream() {
        return Ok(body);
    }
    let bytes = read_limited(body, max_body)
        .await
        .map_err(|_| Rejection::PayloadTooLarge { limit: max_body })?;
    if bytes.is_empty() {
        return Ok(body::empty());
    }
    if !is_json(headers) {
        return Err(Rejection::ForbiddenField);
    }
    let mut doc: Value = serde_json::from_slice(&bytes)
        .map_err(|_| Rejection::BadRequest("the request body is not valid JSON"))?;
    if let Some(pointer) = route.request_deny.iter().find(|p| any_matching(&doc, p)) {
        tracing::info!(
            event = "invalid_request",
            request_id = ctx.id.as_str(),
            route = %route.name,
            reason = "denied_field",
            field = %pointer,
        );
        return Err(Rejection::ForbiddenField);
    }
    let Some(on_create) = on_create else {
        return Ok(body::full(bytes));
    };
    // `on_create` is only ever set on an owner rule with a `field` (config validation).
    let Some(rule) = &route.owner else {
        return Ok(body::full(bytes));
    };
    let OwnerSource::Field(field) = &rule.source else {
        return Ok(body::full(bytes));
    };
    let Some(expected) = super::claim_value(permit.principal(), &rule.claim) else {
        owner_violation(ctx, permit.principal(), "claim_missing", rule.mode);
        return Err(Rejection::Forbidden);
    };
    match on_create {
        OnCreate::Enforce => match owner_of(&doc, field) {
            Some(owner) if owner != expected => {
                owner_violation(ctx, permit.principal(), "create_for_another", rule.mode);
                if rule.mode == OwnerMode::Enforce {
                    return Err(Rejection::Forbidden);
                }
                Ok(body::full(bytes))
            }
            _ => Ok(body::full(bytes)),
        },
        OnCreate::Set => {
            if !set_field(&mut doc, field, Value::String(expected)) {
                return Err(Rejection::BadRequest(
                    "the request body is not a JSON object",
                ));
            }
            Ok(body::full(serde_json::to_vec(&doc).unwrap_or_default()))
        }
    }
}

/// Checks the preflight GET's answer for an owned write.
pub fn preflight_verdict(
    ctx: &RequestCtx,
    permit: &Permit,
    check: &OwnerCheck,
    upstream: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<(), Rejection> {
    if status == StatusCode::NOT_FOUND {
        return Err(Rejection::NotFound);
    }
    if !status.is_success() {
        return Err(Rejection::UncheckableResponse {
            upstream: upstream.to_owned(),
            why: "preflight status",
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| Rejection::UncheckableResponse {
        upstream: upstream.to_owned(),
        why: "preflight not JSON",
    })?;
    if owner_of(&doc, &check.field).as_deref() == Some(check.expected.as_str()) {
        return Ok(());
    }
    owner_violation(ctx, permit.principal(), "write_to_unowned", check.mode);
    match check.mode {
        OwnerMode::Enforce => Err(Rejection::NotFound),
        OwnerMode::Report => Ok(()),
    }
}

/// The response-side checks: owner (GET/HEAD) and denied fields.
pub async fn response(
    ctx: &RequestCtx,
    route: &RouteConfig,
    permit: &Permit,
    method: &Method,
    upstream: &str,
    response: Response<Body>,
    max_inspect: u64,
) -> Result<Response<Body>, Rejection> {
    let owner = permit
        .owner_check()
        .filter(|_| matches!(*method, Method::GET | Method::HEAD));
    if owner.is_none() && route.response_deny.is_empty() {
        return Ok(response);
    }
    let status = response.status();
    if owner.is_some() && status == StatusCode::NOT_FOUND {
        // The upstream's own 404 body could differ from ours; make both look the same.
        return Err(Rejection::NotFound);
    }
    if !status.is_success() || status == StatusCode::NO_CONTENT {
        return Ok(response);
    }
    let uncheckable = |why| Rejection::UncheckableResponse {
        upstream: upstream.to_owned(),
        why,
    };
    let (mut parts, body) = response.into_parts();
    if !is_json(&parts.headers) {
        return match owner {
            Some(_) => Err(uncheckable("not JSON")),
            // Field rules name JSON fields; a body that is not JSON has none.
            None => Ok(Response::from_parts(parts, body)),
        };
    }
    let bytes = read_limited(body, max_inspect)
        .await
        .map_err(|_| uncheckable("too large"))?;
    let mut doc: Value = serde_json::from_slice(&bytes).map_err(|_| uncheckable("invalid JSON"))?;
    let mut changed = false;
    if let Some(check) = owner {
        match &check.collection {
            Some(collection) => {
                let (_, removed) =
                    filter_owned(&mut doc, collection, &check.field, &check.expected)
                        .ok_or_else(|| uncheckable("no collection"))?;
                if removed > 0 {
                    owner_violation(ctx, permit.principal(), "unowned_items", check.mode);
                    match (check.mode, check.collection_mode) {
                        (OwnerMode::Report, _) => {
                            // Report mode lets the list through untouched.
                            doc = serde_json::from_slice(&bytes)
                                .map_err(|_| uncheckable("invalid JSON"))?;
                        }
                        (OwnerMode::Enforce, CollectionMode::Filter) => changed = true,
                        (OwnerMode::Enforce, CollectionMode::Deny) => {
                            return Err(Rejection::Forbidden);
                        }
                    }
                }
            }
            None => {
                if owner_of(&doc, &check.field).as_deref() != Some(check.expected.as_str()) {
                    owner_violation(ctx, permit.principal(), "read_unowned", check.mode);
                    if check.mode == OwnerMode::Enforce {
                        return Err(Rejection::NotFound);
                    }
                }
            }
        }
    }
    for pointer in &route.response_deny {
        changed |= remove_matching(&mut doc, pointer) > 0;
    }
    let bytes = if changed {
        // The representation changed: its length and validators with it.
        parts.headers.remove(ETAG);
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
    } else {
        bytes
    };
    parts.headers.remove(CONTENT_LENGTH);
    if let Ok(length) = http::HeaderValue::from_str(&bytes.len().to_string()) {
        parts.headers.insert(CONTENT_LENGTH, length);
    }
    Ok(Response::from_parts(parts, body::full(bytes)))
}

/// Reads a body whole, failing past `limit` bytes (declared or actual).
pub async fn read_limited(mut body: Body, limit: u64) -> Result<Bytes, ()> {
    if body.size_hint().lower() > limit {
        return Err(());
    }
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Some(data) = frame.data_ref() {
            if (buffer.len() + data.len()) as u64 > limit {
                return Err(());
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
        .unwrap_or(false)
}
