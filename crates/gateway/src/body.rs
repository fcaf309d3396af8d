//! The one response/request body type the pipeline passes around.
//!
//! Upstream bodies stream through untouched; bodies the gateway writes itself (errors,
//! redirects) are small, complete buffers. Boxing both into one type keeps every phase's
//! signature simple; the cost is one allocation per body, far below a network round trip.

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body whose errors are boxed.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes the gateway produced.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body with no bytes (redirects, 204s, HEAD answers).
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Any body whose errors convert into `BoxError`, such as hyper's `Incoming`.
pub(crate) fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Declared or sent: more than the limit. Reading stops at the first byte past it.
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The sender failed before the end (a reset, a timeout of the body's own).
    #[error("the body could not be read: {0}")]
    Broken(BoxError),
}

/// Reads a body whole, failing past `limit` bytes (declared or actual).
pub(crate) async fn read_limited(mut body: Body, limit: u64) -> Result<Bytes, ReadError> {
    if body.size_hint().lower() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut buffer = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ReadError::Broken)?;
        if let Some(data) = frame.data_ref() {
            if (buffer.len() + data.len()) as u64 > limit {
                return Err(ReadError::TooLarge { limit });
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}
