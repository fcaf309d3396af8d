//! Why a request was not served: the one error type of every phase, as plain data.
//!
//! Phases build a `Rejection` and return it; `crate::rescue` alone turns it into a
//! response (its fixed status and public body) and logs its private cause. Keeping the
//! enum down here lets every control name it without knowing how it is rendered.

use http::{Method, StatusCode};

use crate::path::PathRejection;
use crate::quota::state::RateLimitState;

/// Why a request was not (or not successfully) served. The only error type of the pipeline.
#[derive(Debug)]
pub enum Rejection {
    /// The path cannot be canonicalized without ambiguity (encoded `/`, `..` above root, …).
    BadPath(PathRejection),
    /// Malformed request framing or headers (conflicting `Host`, CONNECT, …).
    BadRequest(&'static str),
    /// Missing, malformed, unknown, expired, revoked or forged credentials.
    /// `token_given`: a credential was presented (adds `error="invalid_token"`).
    Unauthorized {
        token_given: bool,
        /// The credential could be a guess or a forgery: counted by `auth_failures`.
        guess: bool,
    },
    /// The key store or the issuer's keys are unreachable for an uncached credential.
    AuthUnavailable,
    /// The request does not match its schema: each error names where and which rule.
    Invalid(Vec<FieldError>),
    /// The body's `Content-Type` is not one the route accepts.
    UnsupportedMediaType,
    /// A rate-limit policy refused the request.
    RateLimited {
        state: RateLimitState,
        retry_after: std::time::Duration,
    },
    /// The shared rate-limit store is failing and `on_store_error = "deny"`.
    RateLimitUnavailable,
    /// Authenticated, but without a role or scope the route needs.
    Forbidden,
    /// The body sets a field the route denies (mass assignment), or is not the JSON a
    /// field rule needs.
    ForbiddenField,
    /// The upstream's response broke the spec and `validate_responses = "enforce"`.
    InvalidResponse { upstream: String },
    /// An owner-checked response could not be checked (too large, not JSON): fail closed.
    UncheckableResponse { upstream: String, why: &'static str },
    /// No route for this path (or host).
    NotFound,
    /// The path is routed, but not for this method.
    MethodNotAllowed { allow: Vec<Method> },
    /// The body is larger than `limits.max_body`.
    PayloadTooLarge { limit: u64 },
    /// The request head is larger than `limits.max_header_bytes`.
    HeadersTooLarge { limit: usize },
    /// The client did not finish sending its body in time.
    BodyTimeout,
    /// The upstream could not be reached or broke the connection.
    UpstreamUnavailable { upstream: String, cause: String },
    /// The upstream did not answer within its timeout.
    UpstreamTimeout { upstream: String },
    /// The upstream answered 5xx; its status is kept, its body is not.
    UpstreamFailed {
        upstream: String,
        status: StatusCode,
        excerpt: String,
    },
    /// A bug in the gateway (a panic in a handler). Logged with its message.
    Internal { cause: String },
}

/// One thing wrong with the input: where (`in`: `body`, `query`, `path`, `header`,
/// `cookie`; `pointer`: RFC 6901 within it) and which rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    #[serde(rename = "in")]
    pub location: &'static str,
    pub pointer: String,
    pub detail: String,
}

/// At most this many errors are reported for one request (the first ones found).
pub(crate) const MAX_ERRORS: usize = 20;
