//! Schema validation (checklist #5): input that does not match the API's schema never
//! reaches the upstream.
//!
//! Input: a route's schemas (from `validate = { … }` files or an OpenAPI operation), the
//! request's path parameters, query, headers and body. Output: the body to forward — the
//! document that was validated, re-serialized, so the gateway and the upstream can never
//! read two different payloads. Failure: `Rejection::Invalid` (400 with one error per
//! problem: where, as `in` + JSON pointer, and which rule, never the submitted value),
//! `UnsupportedMediaType` (415), `PayloadTooLarge` (413), and an `invalid_request` event.
//!
//! Modules: `params`, `request_body` (with `forms` and `media`) and `responses` check each part of
//! a request or response; `schema` compiles JSON Schema (once, at load) and reports errors.
//! The schemas come from the config (`config::openapi` loads a spec).
//!
//! Why parameters are strict about repetition: `?role=user&role=admin` read as `user` here
//! and as `admin` upstream (HTTP parameter pollution) would validate one value and act on
//! another, so a parameter given twice is refused unless its schema is an array.

mod forms;
mod media;
mod params;
mod request_body;
mod responses;
pub(crate) mod schema;

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, COOKIE};
use http::{HeaderMap, Method};
use serde_json::{Map, Number, Value};

use crate::body::{self, Body, read_limited};
use crate::config::{Config, ConfigError, ResponseMode, RouteValidation};
use crate::ctx::RequestCtx;
use crate::headers::{is_json_media as is_json, media_essence, utf8_charset};
use crate::json::parse_strict;
use crate::observe::security::{Scope, security_event};
use crate::rejection::Rejection;
use crate::rejection::{FieldError, MAX_ERRORS};
use schema::{Dialect, Schema};

use crate::config::openapi::{ParamLocation, Parameter};

use forms::*;
use media::*;
use params::*;

/// How a textual parameter value is read before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    Array(Box<Kind>),
    /// An object, with its named properties' kinds.
    Object(HashMap<String, Kind>),
}

/// The OpenAPI serialization styles the gateway reads; any other is refused at load, since
/// a value read another way than the upstream reads it is a value never checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Query and cookie: `a=1&a=2` (exploded) or `a=1,2`; objects as `x=1&y=2` or `p=x,1,y,2`.
    Form,
    /// Path and header: `1,2`; objects as `x,1,y,2` or (exploded) `x=1,y=2`.
    Simple,
    /// Query arrays: `a=1%202`.
    SpaceDelimited,
    /// Query arrays: `a=1|2`.
    PipeDelimited,
    /// Query objects: `p[x]=1&p[y]=2`.
    DeepObject,
}

pub(super) struct Param {
    name: String,
    location: ParamLocation,
    required: bool,
    kind: Kind,
    style: Style,
    /// Arrays as repeated parameters (`a=1&a=2`), not delimited lists (`a=1,2`); objects as
    /// one parameter per property.
    exploded: bool,
    schema: Option<Schema>,
}

/// A whole-object schema over the query or the headers, with each member's kind.
pub(super) struct ObjectRule {
    schema: Schema,
    kinds: HashMap<String, Kind>,
}

/// Media ranges and their compiled schemas.
pub(super) type CompiledMedia = Vec<(String, Option<Schema>)>;

/// A request body schema, with its properties' kinds for reading a form's text values.
pub(super) struct BodySchema {
    schema: Schema,
    kinds: HashMap<String, Kind>,
    /// Its `properties` and `required` names: a form name differing from one only in
    /// case, brackets or punctuation is refused (see [`shadowed_names`]).
    declared: Vec<String>,
}

pub(super) struct BodyRule {
    /// `None`: the operation takes no body at all.
    required: Option<Required>,
    media: Vec<(String, Option<BodySchema>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Required {
    No,
    Always,
    OnWrites,
}

#[derive(Default)]
pub(super) struct RouteRules {
    params: Vec<Param>,
    query: Option<ObjectRule>,
    headers: Option<ObjectRule>,
    body: Option<BodyRule>,
    /// Status pattern (`200`, `2XX`, `default`) → media types and schemas; empty unless
    /// responses are validated.
    responses: Vec<(String, CompiledMedia)>,
    response_mode: ResponseMode,
}

/// The validation phase of one pipeline build: every route's schemas, compiled.
pub struct Validation {
    routes: Vec<Option<RouteRules>>,
    max_depth: usize,
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let validated = self.routes.iter().filter(|r| r.is_some()).count();
        f.debug_struct("Validation")
            .field("validated_routes", &validated)
            .finish()
    }
}

impl Validation {
    /// Compiles every route's schemas; an invalid schema is a config error at its route.
    pub fn build(config: &Config) -> Result<Validation, ConfigError> {
        let mut shared = SharedDocuments::default();
        let routes = (config.routes.iter().enumerate())
            .map(|(i, route)| match &route.validation {
                None => Ok(None),
                Some(v) => compile_route(v, &mut shared).map(Some).map_err(|message| {
                    config.error_at(
                        &format!("route[{i}].validate"),
                        format!("{}: {message}", v.source),
                    )
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Validation {
            routes,
            max_depth: config.limits.max_json_depth,
        })
    }

    fn rules(&self, route: usize) -> Option<&RouteRules> {
        self.routes.get(route).and_then(Option::as_ref)
    }
}

/// The shared documents of one build, one per spec document and strictness (a route can
/// turn `strict` off): each is prepared once, whatever the number of its operations.
#[derive(Default)]
struct SharedDocuments(Vec<(Arc<Value>, bool, Arc<schema::SharedDocument>)>);

impl SharedDocuments {
    fn get(
        &mut self,
        document: &Arc<Value>,
        strict: bool,
    ) -> Result<Arc<schema::SharedDocument>, String> {
        if let Some((_, _, shared)) =
            (self.0.iter()).find(|(d, s, _)| Arc::ptr_eq(d, document) && *s == strict)
        {
            return Ok(shared.clone());
        }
        let shared = Arc::new(schema::SharedDocument::new(document, strict)?);
        self.0.push((document.clone(), strict, shared.clone()));
        Ok(shared)
    }
}

fn compile_route(v: &RouteValidation, shared: &mut SharedDocuments) -> Result<RouteRules, String> {
    let document = v.document.as_deref();
    // A spec's schemas are compiled against the one prepared document their local
    // references (`#/components/schemas/…`) resolve in.
    let in_document = v
        .document
        .as_ref()
        .map(|d| shared.get(d, v.strict))
        .transpose()?;
    let compile = |schema: &Value| -> Result<Schema, String> {
        match &in_document {
            Some(document) => Schema::compile_in(schema, document),
            None => Schema::compile(schema, Dialect::Draft202012, v.strict),
        }
    };
    let params = (v.params.iter())
        .map(|p| {
            let schema = p.schema.as_ref().map(&compile).transpose()?;
            let kind = p
                .schema
                .as_ref()
                .map(|s| kind_of(s, document))
                .unwrap_or(Kind::Text);
            let style = param_style(p, &kind)?;
            Ok(Param {
                name: if p.location == ParamLocation::Header {
                    p.name.to_ascii_lowercase()
                } else {
                    p.name.clone()
                },
                location: p.location,
                required: p.required || p.location == ParamLocation::Path,
                kind,
                style,
                // OpenAPI defaults: `form` style explodes, the others do not.
                exploded: p.explode.unwrap_or(style == Style::Form),
                schema,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let object_rule = |schema: &Option<Value>, lower: bool| -> Result<Option<ObjectRule>, String> {
        let Some(schema) = schema else {
            return Ok(None);
        };
        if lower {
            // Header names are compared lower-case; so are the schema's.
            let schema = lower_case_members(schema);
            return Ok(Some(ObjectRule {
                kinds: property_kinds(&schema, document, 0),
                schema: compile(&schema)?,
            }));
        }
        Ok(Some(ObjectRule {
            schema: compile(schema)?,
            kinds: property_kinds(schema, document, 0),
        }))
    };
    let body = match &v.body {
        // An operation of a spec without a request body takes none: a body the spec does
        // not describe would reach the upstream unchecked.
        None if v.document.is_some() => Some(BodyRule {
            required: None,
            media: Vec::new(),
        }),
        None => None,
        Some(b) => Some(BodyRule {
            required: Some(match (b.required, b.writes_only) {
                (false, _) => Required::No,
                (true, false) => Required::Always,
                (true, true) => Required::OnWrites,
            }),
            media: (b.content.iter())
                .map(|(media, schema)| {
                    let compiled = match schema {
                        None => None,
                        Some(schema) => {
                            let kinds = property_kinds(schema, document, 0);
                            let required = (resolved(schema, document).get("required"))
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_owned);
                            let mut declared: Vec<String> =
                                kinds.keys().cloned().chain(required).collect();
                            declared.sort();
                            declared.dedup();
                            Some(BodySchema {
                                schema: compile(schema)?,
                                kinds,
                                declared,
                            })
                        }
                    };
                    Ok((media.to_ascii_lowercase(), compiled))
                })
                .collect::<Result<Vec<_>, String>>()?,
        }),
    };
    let responses = if v.response_mode == ResponseMode::Off {
        Vec::new()
    } else {
        (v.responses.iter())
            .map(|(status, media)| {
                let media = (media.iter())
                    .map(|(range, schema)| {
                        Ok((
                            range.to_ascii_lowercase(),
                            schema.as_ref().map(&compile).transpose()?,
                        ))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok((status.to_ascii_uppercase(), media))
            })
            .collect::<Result<Vec<_>, String>>()?
    };
    Ok(RouteRules {
        params,
        query: object_rule(&v.query, false)?,
        headers: object_rule(&v.headers, true)?,
        body,
        responses,
        response_mode: v.response_mode,
    })
}

/// Adds `error` unless `MAX_ERRORS` are already listed (a long query cannot make a huge
/// answer or log line).
pub(super) fn capped(errors: &mut Vec<FieldError>, error: FieldError) {
    if errors.len() < MAX_ERRORS {
        errors.push(error);
    }
}

pub(super) fn error(location: &'static str, pointer: &str, detail: &str) -> FieldError {
    FieldError {
        location,
        pointer: pointer.to_owned(),
        detail: detail.to_owned(),
    }
}

pub(super) fn reject_if_any(ctx: &RequestCtx, errors: Vec<FieldError>) -> Result<(), Rejection> {
    if errors.is_empty() {
        return Ok(());
    }
    event(ctx, "schema", &errors);
    Err(Rejection::Invalid(errors))
}

/// The `invalid_request` event: where the request was wrong, never what it sent.
pub(super) fn event(ctx: &RequestCtx, reason: &'static str, errors: &[FieldError]) {
    let pointers: Vec<String> = (errors.iter())
        .map(|e| format!("{}:{}", e.location, e.pointer))
        .collect();
    security_event!(
        info,
        Scope::of(ctx),
        "invalid_request",
        reason,
        errors = errors.len(),
        pointers = pointers.join(" "),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_media_range_decides_whatever_the_order() {
        let media = [
            ("*/*".to_owned(), "any"),
            ("application/*".to_owned(), "application"),
            ("application/*+json".to_owned(), "json suffix"),
            ("application/json".to_owned(), "exact"),
        ];
        assert_eq!(
            most_specific(&media, Some("application/json")),
            Some(&"exact")
        );
        assert_eq!(
            most_specific(&media, Some("application/problem+json")),
            Some(&"json suffix")
        );
        assert_eq!(
            most_specific(&media, Some("application/xml")),
            Some(&"application")
        );
        assert_eq!(most_specific(&media, Some("text/plain")), Some(&"any"));
        assert_eq!(most_specific(&media[3..], Some("text/plain")), None);
        assert_eq!(most_specific(&media, None), None);
    }

    /// Issue 6: a spec's operations share one prepared document (per strictness), however
    /// many there are, instead of each compiling its schemas in a copy of the spec.
    #[test]
    fn operations_of_one_spec_share_one_prepared_document() {
        let schemas: Map<String, Value> = (0..300)
            .map(|i| {
                let schema = serde_json::json!({
                    "type": "object",
                    "properties": {"title": {"type": "string", "maxLength": 5}}
                });
                (format!("Item{i}"), schema)
            })
            .collect();
        let document = Arc::new(serde_json::json!({
            "openapi": "3.1.0",
            "components": {"schemas": schemas}
        }));
        let route = |i: usize, strict: bool| RouteValidation {
            source: format!("spec#/paths/{i}"),
            document: Some(document.clone()),
            params: Vec::new(),
            query: None,
            headers: None,
            body: Some(crate::config::BodySpec {
                required: true,
                writes_only: false,
                content: vec![(
                    "application/json".to_owned(),
                    Some(serde_json::json!({"$ref": format!("#/components/schemas/Item{i}")})),
                )],
            }),
            responses: Vec::new(),
            response_mode: ResponseMode::Off,
            strict,
        };
        let mut shared = SharedDocuments::default();
        let rules: Vec<RouteRules> = (0..300)
            .map(|i| compile_route(&route(i, i % 2 == 0), &mut shared).unwrap())
            .collect();
        // One closed document for the strict routes, one as written for the others.
        assert_eq!(shared.0.len(), 2);
        let body = |r: &RouteRules| {
            let media = &r.body.as_ref().unwrap().media;
            let mut out = Vec::new();
            let instance = serde_json::json!({"title": "too long", "isAdmin": true});
            media[0]
                .1
                .as_ref()
                .unwrap()
                .schema
                .errors(&instance, "body", "", &mut out);
            out.into_iter().map(|e| e.pointer).collect::<Vec<_>>()
        };
        assert_eq!(body(&rules[298]), ["/title", "/isAdmin"]);
        assert_eq!(body(&rules[299]), ["/title"]);
    }

    #[test]
    fn lenient_framework_spellings_fold_to_one_name() {
        assert_eq!(folded_name("Limit"), "limit");
        assert_eq!(folded_name("limit[]"), "limit");
        assert_eq!(folded_name("page.size"), "page_size");
        assert_eq!(folded_name("a[b"), "a[b");
    }
}
