//! `[openapi]`: an OpenAPI spec's operations become routes, with their schemas.
//!
//! Input: the loaded spec (`config::openapi`) and the `[[route]]`s already validated.
//! Output: the routes of the config: each `[[route]]` (one that matches an operation by
//! path and method takes that operation's schemas), then every operation no `[[route]]`
//! covered, its policy read from `x-palisade` exactly like a `[[route]]` table. Failure: a
//! config error naming the route, or the operation as `file#/paths/…`.
//!
//! Why `unknown_routes = "deny"` by default: the spec is then the whole API. A route that
//! is not in it would be served without validation, which is the gap this control closes.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::model::BodySpec;
use super::model::{ResponseMode, RouteConfig, RouteValidation, UpstreamConfig};
use super::openapi::{self, Operation};
use super::raw::{RawOpenApi, RawRoute, RawUnknownRoutes, RawValidateResponses};
use super::{ConfigError, LoadCtx};

/// The spec's operations merged with `routes` (the `[[route]]`s, in file order).
pub(super) fn merge(
    o: &RawOpenApi,
    mut routes: Vec<RouteConfig>,
    upstreams: &[UpstreamConfig],
    ctx: &LoadCtx<'_>,
    build_route: &dyn Fn(&str, &RawRoute) -> Result<RouteConfig, ConfigError>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let spec_path = ctx.path("openapi.spec", &o.spec)?;
    let spec = openapi::load(&spec_path).map_err(|message| {
        ctx.error(
            "openapi.spec",
            format!("{}: {message}", spec_path.display()),
        )
    })?;
    let document = Arc::new(spec.document.clone());
    let file = spec_path.display().to_string();
    let validation_of = |op: &Operation, route_strict: bool| {
        Arc::new(RouteValidation {
            source: format!("{file}#{}", op.pointer),
            document: Some(document.clone()),
            params: op.parameters.clone(),
            query: None,
            headers: None,
            body: op.body.as_ref().map(|b| BodySpec {
                required: b.required,
                writes_only: false,
                content: b.content.clone(),
            }),
            responses: op.responses.clone(),
            response_mode: match o.validate_responses {
                RawValidateResponses::Off => ResponseMode::Off,
                RawValidateResponses::Log => ResponseMode::Log,
                RawValidateResponses::Enforce => ResponseMode::Enforce,
            },
            strict: o.strict && route_strict,
        })
    };

    let mut covered = vec![false; spec.operations.len()];
    for (i, route) in routes.iter_mut().enumerate() {
        let shape = template_shape(&route.path);
        let matching: Vec<usize> = (spec.operations.iter().enumerate())
            .filter(|(_, op)| {
                template_shape(&op.path) == shape && route.methods.contains(&op.method)
            })
            .map(|(j, _)| j)
            .collect();
        let unlisted: Vec<&http::Method> = (route.methods.iter())
            .filter(|m| !matching.iter().any(|&j| spec.operations[j].method == **m))
            .collect();
        if !unlisted.is_empty() && o.unknown_routes == RawUnknownRoutes::Deny {
            let methods: Vec<&str> = unlisted.iter().map(|m| m.as_str()).collect();
            return Err(ctx.error(
                &format!("route[{i}].path"),
                format!(
                    "route `{}` ({} {}) is not an operation of the OpenAPI spec: add it to the spec, or set `[openapi] unknown_routes = \"allow\"`",
                    route.name,
                    methods.join(", "),
                    route.path
                ),
            ));
        }
        match matching.as_slice() {
            [] => {}
            [j] => {
                let op = &spec.operations[*j];
                if route.validation.is_some() {
                    return Err(ctx.error(
                        &format!("route[{i}].validate"),
                        format!(
                            "route `{}` is the spec's operation {} {}, whose schemas apply: remove `validate` (or change the spec)",
                            route.name, op.method, op.path
                        ),
                    ));
                }
                if route.path != op.path {
                    return Err(ctx.error(
                        &format!("route[{i}].path"),
                        format!(
                            "route `{}` overrides the spec's {} {}: write the path with the spec's parameter names",
                            route.name, op.method, op.path
                        ),
                    ));
                }
                covered[*j] = true;
                route.validation = Some(validation_of(op, route.strict));
            }
            several => {
                let methods: Vec<&str> = several
                    .iter()
                    .map(|&j| spec.operations[j].method.as_str())
                    .collect();
                return Err(ctx.error(
                    &format!("route[{i}].methods"),
                    format!(
                        "route `{}` covers {} operations of the spec ({}): give each its own [[route]], since each has its own schemas",
                        route.name,
                        several.len(),
                        methods.join(", ")
                    ),
                ));
            }
        }
    }

    for (j, op) in spec.operations.iter().enumerate() {
        if covered[j] {
            continue;
        }
        let key = format!("{file}#{}/x-palisade", op.pointer);
        let raw = raw_route(op, o, upstreams).map_err(|message| ctx.error(&key, message))?;
        let mut route = build_route(&key, &raw)?;
        route.validation = Some(validation_of(op, route.strict));
        routes.push(route);
    }
    Ok(routes)
}

/// The `[[route]]` an operation stands for: its `x-palisade` policy, its path and method,
/// a name from its `operationId` (or method and path).
fn raw_route(
    op: &Operation,
    o: &RawOpenApi,
    upstreams: &[UpstreamConfig],
) -> Result<RawRoute, String> {
    let mut policy = match &op.extension {
        None => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err("`x-palisade` must be an object".to_owned()),
    };
    for reserved in ["name", "path", "methods", "validate"] {
        if policy.contains_key(reserved) {
            return Err(format!(
                "`x-palisade` cannot set `{reserved}`: the spec defines it"
            ));
        }
    }
    let name = op
        .operation_id
        .clone()
        .unwrap_or_else(|| format!("{} {}", op.method, op.path));
    policy.insert("name".into(), Value::String(route_name(&name)));
    policy.insert("path".into(), Value::String(op.path.clone()));
    policy.insert(
        "methods".into(),
        Value::Array(vec![Value::String(op.method.to_string())]),
    );
    if !policy.contains_key("upstream") {
        let upstream = match (&o.upstream, upstreams) {
            (Some(name), _) => name.clone(),
            (None, [only]) => only.name.clone(),
            (None, _) => {
                return Err(
                    "no upstream: set `x-palisade.upstream`, or `[openapi] upstream`".to_owned(),
                );
            }
        };
        policy.insert("upstream".into(), Value::String(upstream));
    }
    serde_json::from_value(Value::Object(policy)).map_err(|e| format!("invalid `x-palisade`: {e}"))
}

/// A route name from an operation id: letters, digits, `-`, `_` and `.`, others as `-`.
fn route_name(id: &str) -> String {
    let name: String = id
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "root".to_owned()
    } else {
        name
    }
}

/// A path template with its parameter names erased: `/a/{id}` and `/a/{orderId}` are the
/// same route.
fn template_shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
