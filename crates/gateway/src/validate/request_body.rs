//! Request bodies: size, content type and charset, nesting depth, strict JSON, the
//! schema, and the re-serialized document that goes upstream.

use super::*;

impl Validation {
    /// Checks the body of `route` and returns the body to forward: JSON and
    /// `application/x-www-form-urlencoded` bodies are validated; any other media type the
    /// operation gives a schema for is 415, never passed unchecked.
    pub async fn check_body(
        &self,
        ctx: &RequestCtx,
        route: usize,
        method: &Method,
        headers: &HeaderMap,
        body: Body,
        max_body: u64,
    ) -> Result<Body, Rejection> {
        let Some(rule) = self.rules(route).and_then(|r| r.body.as_ref()) else {
            return Ok(body);
        };
        let bytes = read_limited(body, max_body)
            .await
            .map_err(|_| Rejection::PayloadTooLarge { limit: max_body })?;
        let Some(required) = rule.required else {
            if bytes.is_empty() {
                return Ok(body::empty());
            }
            let refused = vec![error("body", "", "this operation takes no request body")];
            return reject_if_any(ctx, refused).map(|()| body::empty());
        };
        let needs_body = match required {
            Required::No => false,
            Required::Always => true,
            Required::OnWrites => matches!(*method, Method::POST | Method::PUT | Method::PATCH),
        };
        if bytes.is_empty() {
            if needs_body {
                return reject_if_any(ctx, vec![error("body", "", "a request body is required")])
                    .map(|()| body::empty());
            }
            return Ok(body::empty());
        }
        if headers.get_all(CONTENT_TYPE).iter().nth(1).is_some() {
            // Two media types: the gateway and the upstream could each pick another.
            let refused = vec![error("header", "/content-type", "is given more than once")];
            return reject_if_any(ctx, refused).map(|()| body::empty());
        }
        let essence = media_essence(headers);
        let form = essence.as_deref() == Some(FORM);
        if (form || essence.as_deref().is_some_and(is_json)) && !utf8_charset(headers) {
            // The bytes are validated as UTF-8; an upstream that honours another charset
            // would decode something else.
            event(ctx, "media_type", &[]);
            return Err(Rejection::UnsupportedMediaType);
        }
        let Some(media) = most_specific(&rule.media, essence.as_deref()) else {
            event(ctx, "media_type", &[]);
            return Err(Rejection::UnsupportedMediaType);
        };
        if form && let Some(media) = media {
            return check_form(ctx, &bytes, media);
        }
        if !essence.as_deref().is_some_and(is_json) {
            if media.is_some() {
                // A schema the gateway cannot apply (a `*/*`, `text/plain` or multipart
                // schema read as such): passing the body unchecked would make the schema a
                // comment, so the media type is refused instead.
                event(ctx, "unchecked_media_type", &[]);
                return Err(Rejection::UnsupportedMediaType);
            }
            // No schema for this media type: the bytes pass as they are.
            return Ok(body::full(bytes));
        }
        let schema = media.as_ref().map(|m| &m.schema);
        if crate::json::depth::exceeds(&bytes, self.max_depth) {
            let detail = format!("nests deeper than {} levels", self.max_depth);
            return reject_if_any(ctx, vec![error("body", "", &detail)]).map(|()| body::empty());
        }
        let document = parse_strict(&bytes).map_err(|e| {
            let detail = if e.is_data() && e.to_string().contains("duplicate member") {
                "repeats a member name"
            } else if e.is_eof() {
                "ends before the JSON value does"
            } else {
                "is not valid JSON (or not UTF-8)"
            };
            event(ctx, "malformed_body", &[]);
            Rejection::Invalid(vec![error("body", "", detail)])
        })?;
        if let Some(schema) = schema {
            let mut errors = Vec::new();
            schema.errors(&document, "body", "", &mut errors);
            reject_if_any(ctx, errors)?;
        }
        // What was validated is what is sent.
        Ok(body::full(
            serde_json::to_vec(&document).unwrap_or_default(),
        ))
    }
}
