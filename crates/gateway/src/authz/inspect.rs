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

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, ETAG};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Body as _;
use serde_json::Value;

use super::{OwnerCheck, Permit, owner_violation};
use crate::body::{self, Body, read_limited};
use crate::config::{CollectionMode, OnCreate, OwnerMode, OwnerSource, RouteConfig};
use crate::ctx::RequestCtx;
use crate::headers::{is_json_media, media_essence};
use crate::json::{
    any_matching, filter_owned, owner_of, parse_strict, remove_matching, set_field, values_at,
};
use crate::observe::security::{Scope, security_event};
use crate::rejection::Rejection;

/// Whether a request with `method` on `route` writes to an object that must be owned, and
/// so needs a preflight GET. A POST is a write to an object unless the rule treats the
/// route as a collection (it has `collection` or `on_create`).
pub(crate) fn needs_preflight(method: &Method, route: &RouteConfig) -> bool {
    let Some(rule) = &route.owner else {
        return false;
    };
    if !matches!(rule.source, OwnerSource::Field(_)) {
        return false;
    }
    // Every method but GET and HEAD (whose responses are checked instead) is treated as
    // a write: OPTIONS, PROPFIND or QUERY must not be a way around the check.
    match *method {
        Method::GET | Method::HEAD => false,
        Method::POST => rule.collection.is_none() && rule.on_create.is_none(),
        _ => true,
    }
}

/// Whether the request body must be read and checked: a field rule, a create with an
/// owner rule, or a write that could set the owner field.
fn owner_in_body(
    route: &RouteConfig,
    permit: &Permit,
    method: &Method,
) -> Option<(String, OnCreate)> {
    let rule = route.owner.as_ref()?;
    let OwnerSource::Field(field) = &rule.source else {
        return None;
    };
    // Bypass roles may write any owner; they got no owner check in their permit.
    permit.owner_check()?;
    match *method {
        Method::POST => rule.on_create.map(|mode| (field.clone(), mode)),
        // An update may not move the object to someone else, or plant one on them.
        Method::PUT | Method::PATCH => Some((field.clone(), OnCreate::Enforce)),
        _ => None,
    }
}

/// Applies `request_fields.deny` and the owner field rules to the body. The body sent
/// upstream is the document that was checked, re-serialized, never the original bytes.
pub(crate) async fn request_body(
    ctx: &RequestCtx,
    route: &RouteConfig,
    permit: &Permit,
    method: &Method,
    headers: &HeaderMap,
    body: Body,
    max_body: u64,
) -> Result<Body, Rejection> {
    let owner_rule = owner_in_body(route, permit, method);
    if (route.request_deny.is_empty() && owner_rule.is_none()) || body.is_end_stream() {
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
    let mut doc = parse_strict(&bytes).map_err(|_| {
        Rejection::BadRequest("the request body is not valid JSON, or repeats a member")
    })?;
    if let Some(pointer) = route.request_deny.iter().find(|p| any_matching(&doc, p)) {
        security_event!(
            info,
            Scope::of(ctx),
            "invalid_request",
            "denied_field",
            field = %pointer,
        );
        return Err(Rejection::ForbiddenField);
    }
    if let (Some((field, mode)), Some(check)) = (owner_rule, permit.owner_check()) {
        match mode {
            OnCreate::Enforce => {
                let foreign = values_at(&doc, &field)
                    .iter()
                    .any(|v| owner_text(v).as_deref() != Some(check.expected.as_str()));
                if foreign {
                    owner_violation(ctx, permit.principal(), "owner_field_in_body", check.mode);
                    if check.mode == OwnerMode::Enforce {
                        return Err(Rejection::Forbidden);
                    }
                }
            }
            OnCreate::Set => {
                if !set_field(&mut doc, &field, Value::String(check.expected.clone())) {
                    return Err(Rejection::BadRequest(
                        "the request body is not a JSON object",
                    ));
                }
            }
        }
    }
    Ok(body::full(serde_json::to_vec(&doc).unwrap_or_default()))
}

/// An owner value as text: strings as they are, integers in decimal; anything else (a
/// float, an array, an object) is never an owner.
fn owner_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Request headers that would let the upstream answer with something other than the
/// whole current representation, which the response checks need: conditional requests
/// (a 304 would confirm the object exists), ranges (a 206 fragment cannot be checked) and
/// content codings (a compressed body cannot be parsed).
pub(crate) fn prepare_inspected_request(
    route: &RouteConfig,
    permit: &Permit,
    method: &Method,
    headers: &mut HeaderMap,
) {
    let owner_read =
        permit.owner_check().is_some() && matches!(*method, Method::GET | Method::HEAD);
    if !owner_read && route.response_deny.is_empty() {
        return;
    }
    for name in [
        http::header::IF_NONE_MATCH,
        http::header::IF_MODIFIED_SINCE,
        http::header::IF_MATCH,
        http::header::IF_UNMODIFIED_SINCE,
        http::header::IF_RANGE,
        http::header::RANGE,
        http::header::ACCEPT_ENCODING,
    ] {
        headers.remove(name);
    }
}

/// Checks the preflight GET's answer for an owned write.
pub(crate) fn preflight_verdict(
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
    let doc: Value = parse_strict(bytes).map_err(|_| Rejection::UncheckableResponse {
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

/// How much of an upstream's response the checks may read, and for how long.
pub(crate) struct Reading<'a> {
    /// The upstream's name, for the rejection when the body cannot be checked.
    pub upstream: &'a str,
    pub deadline: Duration,
    /// `limits.max_inspect_body`.
    pub max_bytes: u64,
}

/// The response-side checks: owner (GET/HEAD) and denied fields.
pub(crate) async fn response(
    ctx: &RequestCtx,
    route: &RouteConfig,
    permit: &Permit,
    method: &Method,
    reading: Reading<'_>,
    response: Response<Body>,
) -> Result<Response<Body>, Rejection> {
    let owner = permit
        .owner_check()
        .filter(|_| matches!(*method, Method::GET | Method::HEAD));
    if owner.is_none() && route.response_deny.is_empty() {
        return Ok(response);
    }
    let status = response.status();
    let uncheckable = |why| Rejection::UncheckableResponse {
        upstream: reading.upstream.to_owned(),
        why,
    };
    if owner.is_some() && !status.is_success() {
        // Only a checked 2xx object reaches the client. The upstream's own 404 (or a 409,
        // a redirect, a 304 carrying someone's ETag) could differ from a missing object's
        // answer or carry the object itself: every other status looks like "not found".
        return Err(Rejection::NotFound);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        return Err(uncheckable("partial content"));
    }
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(response);
    }
    let (mut parts, body) = response.into_parts();
    if !is_json(&parts.headers) {
        return match owner {
            Some(_) => Err(uncheckable("not JSON")),
            // Field rules name JSON fields; a body that is not JSON has none.
            None => Ok(Response::from_parts(parts, body)),
        };
    }
    let bytes =
        match tokio::time::timeout(reading.deadline, read_limited(body, reading.max_bytes)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err(uncheckable("too large")),
            Err(_) => return Err(uncheckable("body timeout")),
        };
    let mut doc: Value = parse_strict(&bytes).map_err(|_| uncheckable("invalid JSON"))?;
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
                            doc = parse_strict(&bytes).map_err(|_| uncheckable("invalid JSON"))?;
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

fn is_json(headers: &HeaderMap) -> bool {
    media_essence(headers).is_some_and(|essence| is_json_media(&essence))
}
