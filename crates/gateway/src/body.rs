//! The one response/request body type the pipeline passes around.
//!
//! Upstream bodies stream through untouched; bodies the gateway writes itself (errors,
//! redirects) are small, complete buffers. Boxing both into one type keeps every phase's
//! signature simple; the cost is one allocation per body, far below a network round trip.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body whose errors are boxed.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes the gateway produced.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body with no bytes (redirects, 204s, HEAD answers).
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Any body whose errors convert into `BoxError`, such as hyper's `Incoming`.
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}
