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
//! Modules: `schema` compiles JSON Schema (once, at load) and reports errors; `depth`
//! bounds nesting before any parser runs; `openapi` loads a spec into routes' schemas.
//!
//! Why parameters are strict about repetition: `?role=user&role=admin` read as `user` here
//! and as `admin` upstream (HTTP parameter pollution) would validate one value and act on
//! another, so a parameter given twice is refused unless its schema is an array.

pub mod schema;

use std::collections::HashMap;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, COOKIE};
use http::{HeaderMap, Method};
use serde_json::{Map, Number, Value};

use crate::body::{self, Body, read_limited};
use crate::config::{Config, ConfigError, ResponseMode, RouteValidation};
use crate::ctx::RequestCtx;
use crate::json::parse_strict;
use crate::observe::security::{Scope, security_event};
use crate::rejection::Rejection;
use crate::rejection::{FieldError, MAX_ERRORS};
use schema::{Dialect, Schema};

use crate::config::openapi::{ParamLocation, Parameter};

/// How a textual parameter value is read before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
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
enum Style {
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

struct Param {
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
struct ObjectRule {
    schema: Schema,
    kinds: HashMap<String, Kind>,
}

/// Media ranges and their compiled schemas.
type CompiledMedia = Vec<(String, Option<Schema>)>;

/// A request body schema, with its properties' kinds for reading a form's text values.
struct BodySchema {
    schema: Schema,
    kinds: HashMap<String, Kind>,
    /// Its `properties` and `required` names: a form name differing from one only in
    /// case, brackets or punctuation is refused (see [`shadowed_names`]).
    declared: Vec<String>,
}

struct BodyRule {
    /// `None`: the operation takes no body at all.
    required: Option<Required>,
    media: Vec<(String, Option<BodySchema>)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Required {
    No,
    Always,
    OnWrites,
}

#[derive(Default)]
struct RouteRules {
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

    /// Checks path parameters, the query, headers and cookies of `route`.
    pub fn check_request(
        &self,
        ctx: &RequestCtx,
        route: usize,
        path_params: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), Rejection> {
        let Some(rules) = self.rules(route) else {
            return Ok(());
        };
        let mut errors = Vec::new();
        // Decoded strictly: a value that is not UTF-8 is refused, not replaced, since the
        // upstream would read the original bytes and the gateway would have checked others.
        let query_pairs = decode_pairs(query.unwrap_or("").as_bytes(), "query", &mut errors);
        // An exploded object's properties are query names of their own (`?x=1&y=2`).
        let declared: Vec<&str> = (rules.params.iter())
            .filter(|p| p.location == ParamLocation::Query)
            .flat_map(|p| {
                let own = std::iter::once(p.name.as_str());
                let members = match (&p.kind, p.style, p.exploded) {
                    (Kind::Object(kinds), Style::Form, true) => {
                        kinds.keys().map(String::as_str).collect()
                    }
                    _ => Vec::new(),
                };
                own.chain(members)
            })
            .collect();
        // `?LIMIT=1000`, `?limit[]=1000` or `?li.mit` beside a declared `limit`: upstreams
        // that fold case, strip `[]` (PHP, Rails, qs) or map `.` and spaces to `_` (PHP)
        // would act on a value the gateway never checked.
        for (name, _) in &query_pairs {
            let folded = folded_name(name);
            let shadows = declared.iter().any(|declared| {
                declared != name
                    && folded_name(declared) == folded
                    && !(rules.params.iter()).any(|p| {
                        p.name == *declared
                            && p.style == Style::DeepObject
                            && deep_member(name, &p.name).is_some()
                    })
            });
            if shadows {
                let detail =
                    "differs from a declared parameter only in case, brackets or punctuation";
                capped(&mut errors, error("query", &pointer_to(name), detail));
            }
        }
        let cookies = cookies(headers);
        // `SID=…` beside a declared `sid`: an upstream that folds cookie names would read
        // the unchecked one.
        for (name, _) in &cookies {
            let shadows = (rules.params.iter()).any(|p| {
                p.location == ParamLocation::Cookie
                    && p.name != *name
                    && p.name.eq_ignore_ascii_case(name)
            });
            if shadows {
                let detail = "differs from a declared cookie only in case";
                capped(&mut errors, error("cookie", &pointer_to(name), detail));
            }
        }
        for param in &rules.params {
            let location = param.location.as_str();
            let raw: Vec<String> = match param.location {
                // The router's values are still percent-encoded; the upstream decodes them.
                ParamLocation::Path => (path_params.iter())
                    .filter(|(name, _)| *name == param.name)
                    .filter_map(|(_, v)| {
                        let decoded = percent_encoding::percent_decode_str(v).decode_utf8();
                        if decoded.is_err() {
                            capped(
                                &mut errors,
                                error(location, &pointer_to(&param.name), NOT_UTF8),
                            );
                        }
                        decoded.ok().map(|d| d.into_owned())
                    })
                    .collect(),
                ParamLocation::Query => (query_pairs.iter())
                    .filter(|(name, _)| *name == param.name)
                    .map(|(_, v)| v.clone())
                    .collect(),
                ParamLocation::Header => (headers.get_all(param.name.as_str()).iter())
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
                ParamLocation::Cookie => (cookies.iter())
                    .filter(|(name, _)| *name == param.name)
                    .filter_map(|(_, v)| {
                        if v.is_err() {
                            capped(
                                &mut errors,
                                error(location, &pointer_to(&param.name), NOT_UTF8),
                            );
                        }
                        v.clone().ok()
                    })
                    .collect(),
            };
            check_param(param, raw, &query_pairs, &mut errors);
        }
        if let Some(rule) = &rules.query {
            let object = object_of(&query_pairs, &rule.kinds, "query", "", &mut errors);
            rule.schema.errors(&object, "query", "", &mut errors);
        }
        if let Some(rule) = &rules.headers {
            // Only the headers the schema names: every request carries others (Host,
            // Accept, …) that the schema has no say about.
            let pairs: Vec<(String, String)> = (headers.iter())
                .filter(|(n, _)| rule.kinds.contains_key(n.as_str()))
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let object = object_of(&pairs, &rule.kinds, "header", "", &mut errors);
            rule.schema.errors(&object, "header", "", &mut errors);
        }
        reject_if_any(ctx, errors)
    }

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

/// The schemas of the response pattern that `status` falls under: the exact code, then
/// its class (`2XX`), then `default`.
fn response_media(
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

/// The kind a schema's `type` asks for (following one local `$ref` into the document).
fn kind_of(schema: &Value, document: Option<&Value>) -> Kind {
    kind_at(schema, document, 0)
}

/// Nesting deeper than this is read as text (a `$ref` cycle must not recurse forever).
const MAX_KIND_DEPTH: usize = 8;

fn kind_at(schema: &Value, document: Option<&Value>, depth: usize) -> Kind {
    if depth > MAX_KIND_DEPTH {
        return Kind::Text;
    }
    let schema = resolved(schema, document);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let wanted = types.into_iter().find(|t| *t != "null").unwrap_or("string");
    match wanted {
        "integer" => Kind::Integer,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        "array" => Kind::Array(Box::new(
            schema
                .get("items")
                .map(|items| kind_at(items, document, depth + 1))
                .unwrap_or(Kind::Text),
        )),
        "object" => Kind::Object(property_kinds(schema, document, depth + 1)),
        _ => Kind::Text,
    }
}

/// `schema`, or the schema its local `$ref` points to in `document`.
fn resolved<'s>(schema: &'s Value, document: Option<&'s Value>) -> &'s Value {
    match (schema.get("$ref").and_then(Value::as_str), document) {
        (Some(reference), Some(document)) => reference
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer))
            .unwrap_or(schema),
        _ => schema,
    }
}

/// The kinds of the `properties` an object schema names.
fn property_kinds(schema: &Value, document: Option<&Value>, depth: usize) -> HashMap<String, Kind> {
    if depth > MAX_KIND_DEPTH {
        return HashMap::new();
    }
    (resolved(schema, document)
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten())
    .map(|(name, s)| (name.clone(), kind_at(s, document, depth + 1)))
    .collect()
}

/// A headers schema with its `properties` names and `required` entries lower-cased, as
/// header names are compared.
fn lower_case_members(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        *properties = std::mem::take(properties)
            .into_iter()
            .map(|(name, s)| (name.to_ascii_lowercase(), s))
            .collect();
    }
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        for name in required.iter_mut() {
            if let Value::String(name) = name {
                *name = name.to_ascii_lowercase();
            }
        }
    }
    schema
}

/// The style of parameter `p`, refused at load where the gateway would read the value
/// differently than the spec says it is sent.
fn param_style(p: &Parameter, kind: &Kind) -> Result<Style, String> {
    let style = match (p.location, p.style.as_deref()) {
        (ParamLocation::Query | ParamLocation::Cookie, None | Some("form")) => Style::Form,
        (ParamLocation::Path | ParamLocation::Header, None | Some("simple")) => Style::Simple,
        (ParamLocation::Query, Some("spaceDelimited")) => Style::SpaceDelimited,
        (ParamLocation::Query, Some("pipeDelimited")) => Style::PipeDelimited,
        (ParamLocation::Query, Some("deepObject")) => Style::DeepObject,
        (location, Some(other)) => {
            return Err(format!(
                "parameter `{}` (in {}): style `{other}` is not supported there; use {}",
                p.name,
                location.as_str(),
                match location {
                    ParamLocation::Query => "form, spaceDelimited, pipeDelimited or deepObject",
                    ParamLocation::Cookie => "form",
                    ParamLocation::Path | ParamLocation::Header => "simple",
                }
            ));
        }
    };
    let fits = match style {
        Style::SpaceDelimited | Style::PipeDelimited => matches!(kind, Kind::Array(_)),
        Style::DeepObject => matches!(kind, Kind::Object(_)),
        // Object cookies would be read one cookie per property, which nothing sends.
        Style::Form if p.location == ParamLocation::Cookie => !matches!(kind, Kind::Object(_)),
        Style::Form | Style::Simple => true,
    };
    if !fits {
        return Err(format!(
            "parameter `{}` (in {}): style `{}` does not fit its schema's type; {}",
            p.name,
            p.location.as_str(),
            p.style.as_deref().unwrap_or("form"),
            match style {
                Style::DeepObject => "deepObject describes objects",
                Style::Form => "object cookies are not supported",
                _ => "spaceDelimited and pipeDelimited describe arrays",
            }
        ));
    }
    if let (Style::Form, ParamLocation::Query, Kind::Object(kinds)) = (style, p.location, kind)
        && kinds.is_empty()
        && p.explode != Some(false)
    {
        // Its members would be every query name, which the gateway cannot tell apart from
        // the other parameters.
        return Err(format!(
            "parameter `{}` (in query): an exploded form object must list its `properties`",
            p.name
        ));
    }
    Ok(style)
}

/// A textual value read as `kind`; left as text when it is not one (the schema then says
/// what was expected).
fn typed(text: &str, kind: &Kind) -> Value {
    match kind {
        Kind::Integer => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        Kind::Number => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(text.to_owned())),
        Kind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        Kind::Text | Kind::Array(_) | Kind::Object(_) => Value::String(text.to_owned()),
    }
}

/// Checks one parameter: `raw` is its values as sent under its own name (decoded);
/// `query` the whole query, where exploded and deepObject objects keep their members.
fn check_param(
    param: &Param,
    raw: Vec<String>,
    query: &[(String, String)],
    errors: &mut Vec<FieldError>,
) {
    let location = param.location.as_str();
    let pointer = pointer_to(&param.name);
    let once = |errors: &mut Vec<FieldError>| {
        capped(errors, error(location, &pointer, "is given more than once"));
    };
    let value = match (&param.kind, raw.as_slice()) {
        (Kind::Object(kinds), raw) if param.location == ParamLocation::Query && param.exploded => {
            if !raw.is_empty() && !kinds.contains_key(&param.name) {
                // `?filter=open` beside a deepObject `filter`: a value under the object's own
                // name is not one of its members, and an upstream might still read it.
                let detail = "is an object: send its properties, not one value";
                capped(errors, error(location, &pointer, detail));
                return;
            }
            // deepObject `p[x]=1`, or exploded form: each property its own query name.
            let members: Vec<(String, String)> = if param.style == Style::DeepObject {
                (query.iter())
                    .filter_map(|(name, v)| {
                        deep_member(name, &param.name).map(|m| (m.to_owned(), v.clone()))
                    })
                    .collect()
            } else {
                (query.iter())
                    .filter(|(name, _)| kinds.contains_key(name))
                    .cloned()
                    .collect()
            };
            if members.is_empty() {
                if param.required {
                    capped(errors, error(location, &pointer, "is required"));
                }
                return;
            }
            if let Some((nested, _)) = members.iter().find(|(m, _)| m.contains(['[', ']'])) {
                // `p[a][b]`: nesting that some parsers build and others keep as a name.
                let at = format!("{pointer}{}", pointer_to(nested));
                capped(errors, error(location, &at, "nests deeper than one level"));
                return;
            }
            object_of(&members, kinds, location, &pointer, errors)
        }
        (_, []) => {
            if param.required {
                capped(errors, error(location, &pointer, "is required"));
            }
            return;
        }
        (Kind::Object(kinds), [one]) => {
            // `x,1,y,2`, or exploded simple `x=1,y=2`.
            let parts: Vec<&str> = one.split(',').collect();
            let members: Option<Vec<(String, String)>> = if param.exploded {
                (parts.iter())
                    .map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect()
            } else {
                parts.len().is_multiple_of(2).then(|| {
                    (parts.chunks(2))
                        .map(|kv| (kv[0].to_owned(), kv[1].to_owned()))
                        .collect()
                })
            };
            let Some(members) = members else {
                let detail = "is not a comma-separated list of names and values";
                capped(errors, error(location, &pointer, detail));
                return;
            };
            object_of(&members, kinds, location, &pointer, errors)
        }
        (Kind::Array(item), values) if param.style == Style::Simple => {
            // Simple arrays are comma lists whatever `explode` says; header lines given
            // twice are one list, as HTTP joins them.
            let joined = values.join(",");
            Value::Array(joined.split(',').map(|v| typed(v, item)).collect())
        }
        (Kind::Array(item), values) => {
            let items: Vec<Value> = if param.exploded {
                values.iter().map(|v| typed(v, item)).collect()
            } else if let [one] = values {
                let delimiter = match param.style {
                    Style::SpaceDelimited => ' ',
                    Style::PipeDelimited => '|',
                    _ => ',',
                };
                one.split(delimiter).map(|v| typed(v, item)).collect()
            } else {
                once(errors);
                return;
            };
            Value::Array(items)
        }
        (kind, [one]) => typed(one, kind),
        (_, _) => {
            once(errors);
            return;
        }
    };
    if let Some(schema) = &param.schema {
        schema.errors(&value, location, &pointer, errors);
    }
}

/// The member name of a deepObject query name: `filter[status]` of `filter` → `status`.
fn deep_member<'n>(name: &'n str, param: &str) -> Option<&'n str> {
    name.strip_prefix(param)?
        .strip_prefix('[')?
        .strip_suffix(']')
}

/// `name` as a JSON pointer of one token.
fn pointer_to(name: &str) -> String {
    format!("/{}", name.replace('~', "~0").replace('/', "~1"))
}

const NOT_UTF8: &str = "is not valid UTF-8 once percent-decoded";

const FORM: &str = "application/x-www-form-urlencoded";

/// `name=value` pairs of a query string or form body, `+` read as a space and percent
/// escapes decoded (as `form_urlencoded` does), except that a name or value that is not
/// UTF-8 is an error in `location`, never replaced.
fn decode_pairs(
    text: &[u8],
    location: &'static str,
    errors: &mut Vec<FieldError>,
) -> Vec<(String, String)> {
    let decode = |bytes: &[u8]| {
        let plus: Vec<u8> = (bytes.iter())
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect();
        String::from_utf8(percent_encoding::percent_decode(&plus).collect()).ok()
    };
    let mut pairs = Vec::new();
    for part in text.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(at) => (&part[..at], &part[at + 1..]),
            None => (part, &b""[..]),
        };
        match (decode(name), decode(value)) {
            (Some(name), Some(value)) => pairs.push((name, value)),
            (Some(name), None) => capped(errors, error(location, &pointer_to(&name), NOT_UTF8)),
            (None, _) => {
                let detail = "has a name that is not valid UTF-8 once percent-decoded";
                capped(errors, error(location, "", detail));
            }
        }
    }
    pairs
}

/// Checks a form body against `media` and returns the form to forward, re-encoded from
/// the pairs that were validated.
fn check_form(ctx: &RequestCtx, bytes: &[u8], media: &BodySchema) -> Result<Body, Rejection> {
    let mut errors = Vec::new();
    let pairs = decode_pairs(bytes, "body", &mut errors);
    reject_if_any(ctx, errors)?;
    let mut errors = Vec::new();
    // `AMOUNT=…` or `amount[]=…` beside a declared `amount`: as for the query, an upstream
    // that folds names would read a value the gateway never checked.
    for name in shadowed_names(&pairs, &media.declared) {
        let detail = "differs from a declared property only in case, brackets or punctuation";
        capped(&mut errors, error("body", &pointer_to(name), detail));
    }
    reject_if_any(ctx, errors)?;
    let mut errors = Vec::new();
    let object = object_of(&pairs, &media.kinds, "body", "", &mut errors);
    media.schema.errors(&object, "body", "", &mut errors);
    reject_if_any(ctx, errors)?;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(&pairs);
    Ok(body::full(form.finish().into_bytes()))
}

/// Name/value pairs as one object, values typed by `kinds`; a name given twice is an error
/// unless its kind is an array. Errors' pointers start with `prefix`.
fn object_of(
    pairs: &[(String, String)],
    kinds: &HashMap<String, Kind>,
    location: &'static str,
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Value {
    let mut object = Map::new();
    for (name, value) in pairs {
        let kind = kinds.get(name).cloned().unwrap_or(Kind::Text);
        match (&kind, object.get_mut(name)) {
            (Kind::Array(item), Some(Value::Array(items))) => items.push(typed(value, item)),
            (Kind::Array(item), None) => {
                object.insert(name.clone(), Value::Array(vec![typed(value, item)]));
            }
            (_, Some(_)) => {
                let pointer = format!("{prefix}{}", pointer_to(name));
                if !errors
                    .iter()
                    .any(|e| e.pointer == pointer && e.location == location)
                {
                    capped(errors, error(location, &pointer, "is given more than once"));
                }
            }
            (_, None) => {
                object.insert(name.clone(), typed(value, &kind));
            }
        }
    }
    Value::Object(object)
}

/// The names of `pairs` that are not in `declared` but fold (see [`folded_name`]) to a
/// name that is, each once.
fn shadowed_names<'p>(pairs: &'p [(String, String)], declared: &[String]) -> Vec<&'p str> {
    let mut out: Vec<&str> = Vec::new();
    for (name, _) in pairs {
        let folded = folded_name(name);
        let shadows = !declared.contains(name)
            && (declared.iter()).any(|declared| folded_name(declared) == folded);
        if shadows && !out.contains(&name.as_str()) {
            out.push(name);
        }
    }
    out
}

/// A query name as lenient frameworks read it: lower-case, a trailing `[...]` dropped,
/// `.` and spaces as `_`.
fn folded_name(name: &str) -> String {
    let base = match name.find('[') {
        Some(at) if name.ends_with(']') => &name[..at],
        _ => name,
    };
    base.chars()
        .map(|c| {
            if c == '.' || c == ' ' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Every `name=value` of the `Cookie` headers, values percent-decoded (as cookie
/// libraries read them); `Err` for a value that is not UTF-8 once decoded. Bytes elsewhere
/// in the header that are not UTF-8 are never a reason to skip it (which would skip the
/// cookie parameters' checks).
fn cookies(headers: &HeaderMap) -> Vec<(String, Result<String, ()>)> {
    (headers.get_all(COOKIE).iter())
        .flat_map(|v| {
            (v.as_bytes().split(|b| *b == b';'))
                .filter_map(|pair| {
                    let at = pair.iter().position(|b| *b == b'=')?;
                    let name = String::from_utf8_lossy(&pair[..at]).trim().to_owned();
                    let value = pair[at + 1..].trim_ascii();
                    let decoded =
                        String::from_utf8(percent_encoding::percent_decode(value).collect())
                            .map_err(|_| ());
                    Some((name, decoded))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Adds `error` unless `MAX_ERRORS` are already listed (a long query cannot make a huge
/// answer or log line).
fn capped(errors: &mut Vec<FieldError>, error: FieldError) {
    if errors.len() < MAX_ERRORS {
        errors.push(error);
    }
}

fn error(location: &'static str, pointer: &str, detail: &str) -> FieldError {
    FieldError {
        location,
        pointer: pointer.to_owned(),
        detail: detail.to_owned(),
    }
}

fn reject_if_any(ctx: &RequestCtx, errors: Vec<FieldError>) -> Result<(), Rejection> {
    if errors.is_empty() {
        return Ok(());
    }
    event(ctx, "schema", &errors);
    Err(Rejection::Invalid(errors))
}

/// The `invalid_request` event: where the request was wrong, never what it sent.
fn event(ctx: &RequestCtx, reason: &'static str, errors: &[FieldError]) {
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

/// The lower-case `type/subtype` of the request's `Content-Type`.
fn media_essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// Whether `essence` falls under the media range `range` (`type/subtype`, `type/*`, `*/*`).
/// How specifically `range` (`type/subtype`, `type/*+suffix`, `type/*`, `*/*`) matches
/// `essence`: 3 exact … 0 anything; `None` when it does not.
fn media_match(range: &str, essence: &str) -> Option<u8> {
    let range = range.split(';').next().unwrap_or("").trim();
    if let Some((kind, suffix)) = range.split_once("/*+") {
        let fits =
            essence.starts_with(&format!("{kind}/")) && essence.ends_with(&format!("+{suffix}"));
        return fits.then_some(2);
    }
    match range.strip_suffix("/*") {
        Some("*") => Some(0),
        Some(kind) => (essence.split('/').next() == Some(kind)).then_some(1),
        None => (range == essence).then_some(3),
    }
}

/// The entry of `media` whose range matches `essence` most specifically, so a broad
/// `*/*` listed beside `application/json` never decides a JSON body (whatever the order).
fn most_specific<'m, T>(media: &'m [(String, T)], essence: Option<&str>) -> Option<&'m T> {
    let essence = essence?;
    (media.iter())
        .filter_map(|(range, value)| media_match(range, essence).map(|rank| (rank, value)))
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, value)| value)
}

/// Whether the `Content-Type` names no charset, or UTF-8.
fn utf8_charset(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    value
        .split(';')
        .skip(1)
        .all(|parameter| match parameter.split_once('=') {
            Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = charset.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        })
}

fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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
fn unchecked(
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

fn response_event(
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
