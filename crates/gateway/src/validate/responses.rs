//! Upstream responses against the spec (`validate_responses`): reported or enforced.

use super::*;

/// The schemas of the response pattern that `status` falls under: the exact code, then
/// its class (`2XX`), then `default`.
pub(super) fn response_media(
    responses: &[(String, CompiledMedia)],
    status: http::StatusCode,
) -> Option<&[(String, Option<Schema>)]> {
    let code = status.as_str();
    let class = format!("{}XX", &code[..1]);
    [code, class.as_str(), "DEFAULT"]
        .iter()
        .find_map(|pattern| {
            (responses.iter())
                .find(|(p, _)| p == pattern)
                .map(|(_, media)| media.as_slice())
        })
}

impl Validation {
    /// Checks a JSON response against the spec when `validate_responses` is on: a
    /// mismatch is logged (`invalid_response`, pointers only) and, with `enforce`, answered
    /// with a generic 502 instead, so a leaked field never leaves. A response too large to
    /// read (past `max_inspect`) cannot be checked: passed with `log`, 502 with `enforce`.
    pub async fn check_response(
        &self,
        ctx: &RequestCtx,
        route: usize,
        upstream: &str,
        response: http::Response<Body>,
        max_inspect: u64,
    ) -> Result<http::Response<Body>, Rejection> {
        let Some(rules) = self
            .rules(route)
            .filter(|r| r.response_mode != ResponseMode::Off)
        else {
            return Ok(response);
        };
        // A HEAD answer, 204 and 304 carry no body to check.
        let status = response.status();
        if ctx.method == Method::HEAD
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
        {
            return Ok(response);
        }
        let enforce = rules.response_mode == ResponseMode::Enforce;
        let declared = (response.headers().get(http::header::CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let Some(media) = response_media(&rules.responses, status) else {
            // A status the spec does not list: the spec may be incomplete, so it is only
            // logged, in either mode.
            response_event(ctx, upstream, status, "undeclared_status", &[]);
            return Ok(response);
        };
        let essence = media_essence(response.headers());
        if media.is_empty() || (essence.is_none() && declared == Some(0)) {
            // Declared without content, or nothing sent: nothing to check.
            return Ok(response);
        }
        let schema = match most_specific(media, essence.as_deref()) {
            // Not one of the declared media types (text/plain where only JSON is): a
            // response the spec does not describe cannot have been checked.
            None => {
                response_event(ctx, upstream, status, "undeclared_media_type", &[]);
                return unchecked(enforce, upstream, response);
            }
            Some(None) => return Ok(response),
            Some(Some(schema)) if essence.as_deref().is_some_and(is_json) => schema,
            Some(Some(_)) => {
                // A schema for a media type the gateway does not read (`*/*` answered
                // with HTML, say).
                response_event(ctx, upstream, status, "unchecked_media_type", &[]);
                return unchecked(enforce, upstream, response);
            }
        };
        if !enforce && declared.is_none_or(|length| length > max_inspect) {
            // Only logging: a response that cannot be read whole is passed untouched.
            response_event(ctx, upstream, response.status(), "unchecked_size", &[]);
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let Ok(bytes) = read_limited(body, max_inspect).await else {
            response_event(ctx, upstream, parts.status, "too_large", &[]);
            return Err(Rejection::UncheckableResponse {
                upstream: upstream.to_owned(),
                why: "the response is larger than limits.max_inspect_body",
            });
        };
        let mut errors = Vec::new();
        match parse_strict(&bytes) {
            Ok(document) => schema.errors(&document, "response", "", &mut errors),
            Err(_) => errors.push(error("response", "", "is not valid JSON")),
        }
        if !errors.is_empty() {
            response_event(ctx, upstream, parts.status, "schema", &errors);
            if enforce {
                return Err(Rejection::InvalidResponse {
                    upstream: upstream.to_owned(),
                });
            }
        }
        Ok(http::Response::from_parts(parts, body::full(bytes)))
    }
}

/// A response that could not be checked: passed when only logging, 502 when enforcing.
pub(super) fn unchecked(
    enforce: bool,
    upstream: &str,
    response: http::Response<Body>,
) -> Result<http::Response<Body>, Rejection> {
    if enforce {
        return Err(Rejection::InvalidResponse {
            upstream: upstream.to_owned(),
        });
    }
    Ok(response)
}

pub(super) fn response_event(
    ctx: &RequestCtx,
    upstream: &str,
    status: http::StatusCode,
    reason: &'static str,
    errors: &[FieldError],
) {
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    security_event!(
        warn,
        Scope::of(ctx),
        "invalid_response",
        reason,
        upstream,
        status = status.as_u16(),
        errors = errors.len(),
        pointers = pointers.join(" "),
    );
}
