//! Request size limits: the request head (431) and the body (413).
//!
//! Input: the request as hyper parsed it and `[limits]`. Output: a body safe to forward.
//! Failure: `HeadersTooLarge`, `PayloadTooLarge`, `BodyTimeout`.
//!
//! Why bodies are handled in two ways: a body with a declared `Content-Length` is checked
//! against `max_body` before any byte is read and then streamed (hyper enforces that the
//! declared length is exact). A body without one (HTTP/1 chunked, HTTP/2 without
//! `content-length`) cannot be judged up front, so it is read into memory up to `max_body`
//! and forwarded with a `Content-Length`: the upstream never sees a truncated body, and
//! never sees chunked framing from us, which removes one request-smuggling surface.
//! Memory held per request is thus bounded by `max_body`.

use std::time::Duration;

use http::HeaderMap;
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::rejection::Rejection;

/// Rejects a request head larger than `max_bytes` (request line and every header).
///
/// hyper's own buffer limit is set above this one, so that an oversized head normally
/// gets this check's problem+json answer rather than hyper's bare 431.
pub(crate) fn check_head(
    uri: &http::Uri,
    headers: &HeaderMap,
    max_bytes: usize,
) -> Result<(), Rejection> {
    // Approximate wire size: "name: value\r\n" per header, plus the request target.
    let size = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + uri.to_string().len();
    if size > max_bytes {
        return Err(Rejection::HeadersTooLarge { limit: max_bytes });
    }
    Ok(())
}

/// Turns the client's body into the body sent upstream, enforcing `max_body`.
pub(crate) async fn limit_body(
    incoming: Incoming,
    max_body: u64,
    read_timeout: Duration,
) -> Result<Body, Rejection> {
    if incoming.is_end_stream() {
        return Ok(body::empty());
    }
    if let Some(declared) = incoming.size_hint().exact() {
        if declared > max_body {
            return Err(Rejection::PayloadTooLarge { limit: max_body });
        }
        return Ok(body::boxed(incoming));
    }
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let collected = tokio::time::timeout(read_timeout, Limited::new(incoming, limit).collect())
        .await
        .map_err(|_| Rejection::BodyTimeout)?;
    match collected {
        Ok(collected) => Ok(body::full(collected.to_bytes())),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::PayloadTooLarge { limit: max_body })
        }
        Err(_) => Err(Rejection::BadRequest("the request body could not be read")),
    }
}
