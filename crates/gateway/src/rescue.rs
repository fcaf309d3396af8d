//! Safe errors (checklist #6): the single rescue point.
//!
//! Every phase returns `Result<_, Rejection>` (`crate::rejection`, a closed enum); this
//! module alone maps each variant to its fixed status and fixed public body, an RFC 9457
//! `application/problem+json` document carrying the request id. Causes (upstream error
//! text, upstream 5xx bodies, panic messages) are logged here with the request id and
//! never returned: a client learns what class of thing went wrong, not how.

use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use http::{Method, Response, StatusCode};
use serde::Serialize;

use crate::body::{self, Body};
use crate::ctx::RequestCtx;
use crate::observe::Metrics;
use crate::observe::security::{Scope, security_event};
use crate::rejection::{FieldError, Rejection};

/// The fixed public face of a rejection.
struct Public {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: Option<&'static str>,
}

impl Rejection {
    fn public(&self) -> Public {
        let p = |status, slug, title, detail| Public {
            status,
            slug,
            title,
            detail,
        };
        match self {
            Rejection::BadPath(why) => p(
                StatusCode::BAD_REQUEST,
                "bad-path",
                "Bad request path",
                Some(why.reason()),
            ),
            Rejection::BadRequest(why) => p(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad request",
                Some(*why),
            ),
            Rejection::Unauthorized { .. } => p(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                Some("valid credentials are required"),
            ),
            Rejection::AuthUnavailable => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "auth-unavailable",
                "Service unavailable",
                Some("credentials cannot be verified right now; retry later"),
            ),
            Rejection::Invalid(_) => p(
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
                Some("the request does not match the API's schema; see errors"),
            ),
            Rejection::UnsupportedMediaType => p(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                Some("this operation does not accept a body of this Content-Type"),
            ),
            Rejection::RateLimited { .. } => p(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                Some("the rate limit for this request is exhausted; retry after the time given"),
            ),
            Rejection::RateLimitUnavailable => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "rate-limit-unavailable",
                "Service unavailable",
                Some("rate limits cannot be checked right now; retry later"),
            ),
            Rejection::Forbidden => p(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                Some("the credentials do not grant access to this operation"),
            ),
            Rejection::ForbiddenField => p(
                StatusCode::BAD_REQUEST,
                "forbidden-field",
                "Bad request",
                Some("the request body sets a field that may not be set here"),
            ),
            Rejection::UncheckableResponse { .. } | Rejection::InvalidResponse { .. } => p(
                StatusCode::BAD_GATEWAY,
                "bad-gateway",
                "Bad gateway",
                Some("the service behind the gateway is unavailable"),
            ),
            Rejection::NotFound => p(StatusCode::NOT_FOUND, "not-found", "Not found", None),
            Rejection::MethodNotAllowed { .. } => p(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                None,
            ),
            Rejection::PayloadTooLarge { .. } => p(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                Some("the request body exceeds the size limit"),
            ),
            Rejection::HeadersTooLarge { .. } => p(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                "Request header fields too large",
                None,
            ),
            Rejection::BodyTimeout => p(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                Some("the request body was not received in time"),
            ),
            Rejection::UpstreamUnavailable { .. } => p(
                StatusCode::BAD_GATEWAY,
                "bad-gateway",
                "Bad gateway",
                Some("the service behind the gateway is unavailable"),
            ),
            Rejection::UpstreamTimeout { .. } => p(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "Gateway timeout",
                Some("the service behind the gateway did not answer in time"),
            ),
            Rejection::UpstreamFailed { status, .. } => Public {
                status: *status,
                slug: "upstream-error",
                title: "Upstream error",
                detail: Some("the service behind the gateway failed to handle the request"),
            },
            Rejection::Internal { .. } => p(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                None,
            ),
        }
    }

    /// The public status of this rejection.
    pub fn status(&self) -> StatusCode {
        self.public().status
    }

    /// A short machine-readable name, used in logs and metrics.
    pub fn kind(&self) -> &'static str {
        self.public().slug
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    request_id: &'a str,
    /// What was wrong, for a request that failed validation.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

/// The `type` URI of a problem: a URN, stable, and not a link anyone must host.
pub(crate) fn problem_type(slug: &str) -> String {
    format!("urn:palisade:problem:{slug}")
}

/// Turns a rejection into its response, logging the private cause. The one rescue point.
pub fn respond(rejection: Rejection, ctx: &RequestCtx, metrics: &Metrics) -> Response<Body> {
    record_cause(&rejection, ctx, metrics);
    let public = rejection.public();
    let errors = match &rejection {
        Rejection::Invalid(errors) => errors.as_slice(),
        _ => &[],
    };
    let mut response = problem_with_errors(
        public.status,
        public.slug,
        public.title,
        public.detail,
        ctx.id.as_str(),
        errors,
    );
    if let Rejection::Unauthorized { token_given, .. } = rejection {
        // RFC 6750 §3: the scheme and realm always; `invalid_token` only when one was sent.
        let challenge = if token_given {
            "Bearer realm=\"palisade\", error=\"invalid_token\""
        } else {
            "Bearer realm=\"palisade\""
        };
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    if let Rejection::RateLimited { state, retry_after } = &rejection {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let (policy, now) = crate::quota::state::header_values(state);
        let headers = response.headers_mut();
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", now)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    if matches!(rejection, Rejection::AuthUnavailable) {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    if matches!(rejection, Rejection::RateLimitUnavailable) {
        // The store is retried every half second: a client may come back at once.
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let Rejection::MethodNotAllowed { allow } = &rejection {
        let list = allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::from_str(&list) {
            response.headers_mut().insert(ALLOW, value);
        }
    }
    response
}

/// A problem+json response. Public so the admin API answers in the same shape.
pub(crate) fn problem_response(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: Option<&str>,
    request_id: &str,
) -> Response<Body> {
    problem_with_errors(status, slug, title, detail, request_id, &[])
}

fn problem_with_errors(
    status: StatusCode,
    slug: &str,
    title: &str,
    detail: Option<&str>,
    request_id: &str,
    errors: &[FieldError],
) -> Response<Body> {
    let problem = Problem {
        kind: problem_type(slug),
        title,
        status: status.as_u16(),
        detail,
        request_id,
        errors,
    };
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = Response::new(body::full(json));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Logs what the client is not told, and counts upstream failures: one match over the
/// private causes.
fn record_cause(rejection: &Rejection, ctx: &RequestCtx, metrics: &Metrics) {
    let scope = || Scope::of(ctx);
    match rejection {
        Rejection::UpstreamUnavailable { upstream, cause } => {
            metrics.record_upstream_error(upstream, "unavailable");
            security_event!(warn, scope(), "upstream_error", "unavailable", upstream = %upstream, cause = %cause);
        }
        Rejection::UpstreamTimeout { upstream } => {
            metrics.record_upstream_error(upstream, "timeout");
            security_event!(warn, scope(), "upstream_error", "timeout", upstream = %upstream);
        }
        Rejection::UpstreamFailed {
            upstream,
            status,
            excerpt,
        } => {
            metrics.record_upstream_error(upstream, "status");
            security_event!(warn, scope(), "upstream_error", "status", upstream = %upstream, status = status.as_u16(), body_excerpt = %excerpt);
        }
        Rejection::UncheckableResponse { upstream, why } => {
            security_event!(warn, scope(), "upstream_error", "uncheckable", upstream = %upstream, why);
        }
        Rejection::Internal { cause } => {
            tracing::error!(event = "internal_error", request_id = ctx.id.as_str(), cause = %cause);
        }
        // Client errors are recorded by the access log line and by the phase that
        // refused them.
        _ => {}
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a handler panicked".to_owned())
}

/// Runs a request future, turning a panic inside it into `Rejection::Internal`, so a
/// bug costs one request a generic 500 and the server keeps serving.
pub(crate) async fn rescue_panics<F, T>(future: F) -> Result<T, Rejection>
where
    F: Future<Output = Result<T, Rejection>>,
{
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            Err(Rejection::Internal {
                cause: panic_message(panic.as_ref()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::ConnInfo;
    use crate::path::PathRejection;
    use http_body_util::BodyExt;

    fn every_variant() -> Vec<Rejection> {
        vec![
            Rejection::BadPath(PathRejection::EncodedSlash),
            Rejection::BadRequest("conflicting Host headers"),
            Rejection::Unauthorized {
                token_given: true,
                guess: true,
            },
            Rejection::AuthUnavailable,
            Rejection::RateLimitUnavailable,
            Rejection::Invalid(vec![FieldError {
                location: "body",
                pointer: "/title".to_owned(),
                detail: "value is longer than 200 characters".to_owned(),
            }]),
            Rejection::UnsupportedMediaType,
            Rejection::RateLimited {
                state: crate::quota::state::RateLimitState {
                    policy: "login".into(),
                    limit: 5,
                    window: std::time::Duration::from_secs(900),
                    remaining: 0,
                    reset: std::time::Duration::from_secs(180),
                },
                retry_after: std::time::Duration::from_millis(179_500),
            },
            Rejection::Forbidden,
            Rejection::ForbiddenField,
            Rejection::InvalidResponse {
                upstream: "orders".to_owned(),
            },
            Rejection::UncheckableResponse {
                upstream: "orders".into(),
                why: "too large",
            },
            Rejection::NotFound,
            Rejection::MethodNotAllowed {
                allow: vec![Method::GET, Method::HEAD],
            },
            Rejection::PayloadTooLarge { limit: 1024 },
            Rejection::HeadersTooLarge { limit: 16384 },
            Rejection::BodyTimeout,
            Rejection::UpstreamUnavailable {
                upstream: "orders".into(),
                cause: "connect error: Connection refused (os error 111) 10.1.2.3:5432".into(),
            },
            Rejection::UpstreamTimeout {
                upstream: "orders".into(),
            },
            Rejection::UpstreamFailed {
                upstream: "orders".into(),
                status: StatusCode::SERVICE_UNAVAILABLE,
                excerpt: "Traceback: at db.py line 3 password=hunter2".into(),
            },
            Rejection::Internal {
                cause: "panicked at src/pipeline.rs:10: index out of bounds".into(),
            },
        ]
    }

    /// Snapshot over every variant: fixed status, fixed fields, and no internals in the body.
    #[tokio::test]
    async fn every_rejection_renders_a_problem_without_internals() {
        let ctx = RequestCtx::new(
            ConnInfo {
                peer: "127.0.0.1:1".parse().unwrap(),
                tls: false,
            },
            Method::GET,
        );
        let expected_status = [
            400, 400, 401, 503, 503, 400, 415, 429, 403, 400, 502, 502, 404, 405, 413, 431, 408,
            502, 504, 503, 500,
        ];
        let variants = every_variant();
        assert_eq!(
            variants.len(),
            expected_status.len(),
            "one status per variant"
        );
        for (rejection, status) in variants.into_iter().zip(expected_status) {
            let kind = rejection.kind();
            let response = respond(rejection, &ctx, &Metrics::new());
            assert_eq!(response.status().as_u16(), status, "{kind}");
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "application/problem+json",
                "{kind}"
            );
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let text = std::str::from_utf8(&bytes).unwrap();
            for secret in [
                "10.1.2.3",
                "hunter2",
                "Traceback",
                "pipeline.rs",
                "orders",
                "os error",
            ] {
                assert!(!text.contains(secret), "{kind} leaked {secret}: {text}");
            }
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let keys: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            for key in &keys {
                // `errors` (where and which rule, never a value) only on invalid requests.
                let allowed = ["type", "title", "status", "detail", "request_id"].contains(key)
                    || (*key == "errors" && kind == "invalid-request");
                assert!(allowed, "{kind}: unexpected field {key}");
            }
            assert_eq!(json["status"], status, "{kind}");
            assert_eq!(json["request_id"], ctx.id.as_str(), "{kind}");
            assert_eq!(json["type"], format!("urn:palisade:problem:{kind}"));
            assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()));
        }
    }

    #[test]
    fn unauthorized_carries_a_bearer_challenge() {
        let ctx = RequestCtx::new(
            ConnInfo {
                peer: "127.0.0.1:1".parse().unwrap(),
                tls: false,
            },
            Method::GET,
        );
        let missing = respond(
            Rejection::Unauthorized {
                token_given: false,
                guess: false,
            },
            &ctx,
            &Metrics::new(),
        );
        assert_eq!(
            missing.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"palisade\""
        );
        let invalid = respond(
            Rejection::Unauthorized {
                token_given: true,
                guess: true,
            },
            &ctx,
            &Metrics::new(),
        );
        assert_eq!(
            invalid.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"palisade\", error=\"invalid_token\""
        );
        let unavailable = respond(Rejection::AuthUnavailable, &ctx, &Metrics::new());
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let ctx = RequestCtx::new(
            ConnInfo {
                peer: "127.0.0.1:1".parse().unwrap(),
                tls: false,
            },
            Method::DELETE,
        );
        let response = respond(
            Rejection::MethodNotAllowed {
                allow: vec![Method::GET, Method::HEAD, Method::POST],
            },
            &ctx,
            &Metrics::new(),
        );
        assert_eq!(response.headers()[ALLOW], "GET, HEAD, POST");
    }

    #[tokio::test]
    async fn a_panic_becomes_an_internal_rejection() {
        let result: Result<(), Rejection> =
            rescue_panics(async { panic!("boom at secret.rs:1") }).await;
        match result {
            Err(Rejection::Internal { cause }) => assert!(cause.contains("boom")),
            other => panic!("expected Internal, got {other:?}"),
        }
    }
}
