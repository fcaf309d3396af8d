//! OpenAPI documents, loaded as config: the operations the gateway routes and validates.
//!
//! Input: an OpenAPI 3.0.x or 3.1.x document, JSON or YAML. Output: a [`Spec`]: the document
//! itself with every schema in the JSON Schema 2020-12 dialect, and one [`Operation`] per
//! path and method with its parameters, request body, responses and `x-palisade` extension.
//! Failure: a message naming the offending place as a JSON pointer into the document.
//!
//! Only local references are followed. A `$ref` to a file or URL anywhere in the document is
//! refused at load, so the gateway never reads or fetches anything the operator did not hand
//! it. References to parameters, request bodies, responses and path items are resolved here;
//! schema `$ref`s are kept as they are, to be compiled against [`Spec::document`].
//!
//! A spec is a security policy, so it is read strictly: an unknown field in a path item,
//! operation, parameter, request body, response or media type is an error rather than
//! ignored (a `GET:` or `requestbody:` typo would otherwise silently drop a check).
//!
//! Loading only: nothing here validates a request.

use std::collections::HashMap;
use std::path::Path;

use http::Method;
use serde_json::{Map, Value};

/// Longest chain of `$ref`s followed for one parameter, body, response or path item.
const MAX_REF_CHAIN: usize = 32;

/// The operations of a path item, in the order they are listed.
const METHODS: [(&str, Method); 8] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

/// Which OpenAPI version a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecVersion {
    /// OpenAPI 3.0.x: schemas are an extended subset of JSON Schema draft 4/5, converted
    /// to 2020-12 at load.
    V30,
    /// OpenAPI 3.1.x: schemas are JSON Schema 2020-12 already.
    V31,
}

/// A `content` map as a list: media type (as written, e.g. "application/json") → its schema,
/// in serde_json's key order.
pub type MediaTypes = Vec<(String, Option<Value>)>;

/// A loaded OpenAPI document.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The `openapi` version the document declares.
    pub version: SpecVersion,
    /// The whole document, with OpenAPI 3.0 schema dialect converted to JSON Schema 2020-12
    /// (`nullable` and boolean `exclusiveMinimum`/`exclusiveMaximum` rewritten), so every
    /// schema and every local `$ref` inside it can be resolved against this document root.
    pub document: Value,
    /// Every operation under `paths`: paths in serde_json's key order, then each path's
    /// methods in the order get, put, post, delete, options, head, patch, trace.
    pub operations: Vec<Operation>,
}

/// One path and method of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The path template with OpenAPI `{param}` segments, e.g. `/api/orders/{id}` (same
    /// syntax as our router, which uses matchit 0.9). A parameter is always a whole segment.
    pub path: String,
    /// The operation's method.
    pub method: Method,
    /// The operation's `operationId`, unique in the document.
    pub operation_id: Option<String>,
    /// Path-level and operation-level parameters merged (operation wins on same name+in;
    /// header names compare case-insensitively), `$ref`s to #/components/parameters
    /// resolved. Every `{name}` of `path` has a path parameter here, and no other path
    /// parameter is. `Accept`, `Content-Type` and `Authorization` header parameters are
    /// left out, as OpenAPI says they are ignored.
    pub parameters: Vec<Parameter>,
    /// The request body, `$ref` resolved.
    pub body: Option<RequestBody>,
    /// Per status code string ("200", "2XX", "default"): media type → schema (schema may
    /// contain local $refs). `$ref`s to responses are resolved.
    pub responses: Vec<(String, MediaTypes)>,
    /// The operation's `x-palisade` extension object, if any (auth, roles, scopes, owner,
    /// rate_limit, upstream...) as raw JSON.
    pub extension: Option<Value>,
    /// JSON pointer (RFC 6901, escaped) of the operation inside `document`, e.g.
    /// `/paths/~1api~1orders/post`, for error messages. For a path item reached through a
    /// `$ref`, this is where the operation is written (`/components/pathItems/…`).
    pub pointer: String,
}

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLocation {
    /// A `{name}` segment of the path template.
    Path,
    /// The query string.
    Query,
    /// A request header (name compared case-insensitively).
    Header,
    /// A cookie.
    Cookie,
}

impl ParamLocation {
    /// The `in` value of the parameter, as errors name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamLocation::Path => "path",
            ParamLocation::Query => "query",
            ParamLocation::Header => "header",
            ParamLocation::Cookie => "cookie",
        }
    }
}

/// One parameter of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    /// The parameter's name, as written.
    pub name: String,
    /// Where it is read from.
    pub location: ParamLocation,
    /// Whether a request must carry it; always `true` for path parameters.
    pub required: bool,
    /// Its schema (JSON Schema 2020-12; may contain local `$ref`s). `None` when the
    /// parameter has no `schema`: any value is accepted.
    pub schema: Option<Value>,
    /// Its serialization `style` (`form`, `simple`, …), when given.
    pub style: Option<String>,
    /// Its `explode` flag, when given.
    pub explode: Option<bool>,
}

/// The request body of an operation.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBody {
    /// Whether a request must carry a body.
    pub required: bool,
    /// Media type (as written, e.g. "application/json") → schema.
    pub content: MediaTypes,
}

/// Reads and parses the OpenAPI document at `path` (see [`parse`]).
pub fn load(path: &Path) -> Result<Spec, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses an OpenAPI document: JSON when it starts with `{`, YAML otherwise.
pub fn parse(text: &str) -> Result<Spec, String> {
    let mut document = parse_text(text)?;
    if !document.is_object() {
        return Err("an OpenAPI document must be an object (a mapping)".to_owned());
    }
    let version = spec_version(&document)?;
    if version == SpecVersion::V31 {
        check_dialect(&document)?;
    }
    refuse_remote_refs(&document, &mut String::new())?;
    if version == SpecVersion::V30 {
        upgrade::document(&mut document)?;
    }
    let operations = operations(&document)?;
    Ok(Spec {
        version,
        document,
        operations,
    })
}

fn parse_text(text: &str) -> Result<Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("the document is not valid JSON: {e}"))
    } else {
        yaml_serde::from_str(text).map_err(|e| format!("the document is not valid YAML: {e}"))
    }
}

fn spec_version(doc: &Value) -> Result<SpecVersion, String> {
    let declared = match doc.get("openapi") {
        Some(Value::String(v)) => v,
        // YAML reads an unquoted `openapi: 3.1` as a number.
        Some(other) => {
            return Err(format!(
                "`openapi` at /openapi must be a string such as \"3.1.0\", not {other} \
                 (quote it in YAML)"
            ));
        }
        None if doc.get("swagger").is_some() => {
            return Err(
                "Swagger 2.0 documents (`swagger` at /swagger) are not supported: \
                 convert the document to OpenAPI 3.0 or 3.1"
                    .to_owned(),
            );
        }
        None => {
            return Err(
                "`openapi` at /openapi is missing: it names the OpenAPI version \
                 (3.0.x or 3.1.x)"
                    .to_owned(),
            );
        }
    };
    // "3.1.0", also "3.1.1-rc1": minor version, then a patch number.
    let patch_ok = |rest: &str| {
        let patch = rest.split(['-', '+']).next().unwrap_or("");
        !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit())
    };
    match declared.split_at_checked(4) {
        Some(("3.0.", rest)) if patch_ok(rest) => Ok(SpecVersion::V30),
        Some(("3.1.", rest)) if patch_ok(rest) => Ok(SpecVersion::V31),
        _ => Err(format!(
            "`openapi` at /openapi is \"{declared}\": only OpenAPI 3.0.x and 3.1.x are supported"
        )),
    }
}

/// Schemas are compiled as JSON Schema 2020-12; a 3.1 document that declares another
/// default dialect would be validated by rules it does not mean, so it is refused.
fn check_dialect(doc: &Value) -> Result<(), String> {
    match doc.get("jsonSchemaDialect") {
        None => Ok(()),
        Some(Value::String(d))
            if d.starts_with("https://spec.openapis.org/oas/3.1/dialect/")
                || d.trim_end_matches('#') == "https://json-schema.org/draft/2020-12/schema" =>
        {
            Ok(())
        }
        Some(other) => Err(format!(
            "`jsonSchemaDialect` at /jsonSchemaDialect is {other}: only JSON Schema 2020-12 \
             (the OpenAPI 3.1 default) is supported"
        )),
    }
}

/// Refuses every `$ref` or `$dynamicRef` string anywhere in the document that is not a
/// same-document reference. Deliberately blind to context: a remote reference inside an
/// example is refused too, which is rare and harmless, while a context-aware walk could
/// miss one in a place it misjudged.
fn refuse_remote_refs(value: &Value, pointer: &mut String) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let ("$ref" | "$dynamicRef", Value::String(target)) = (key.as_str(), child)
                    && !target.starts_with('#')
                {
                    return Err(format!(
                        "remote {key} `{target}` at {pointer}/{key} is refused: only local \
                         references (#/…) are followed"
                    ));
                }
                let len = pointer.len();
                push_token(pointer, key);
                refuse_remote_refs(child, pointer)?;
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                refuse_remote_refs(child, pointer)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Appends `/token` to a JSON pointer, escaped (RFC 6901: `~` → `~0`, `/` → `~1`).
fn push_token(pointer: &mut String, token: &str) {
    pointer.push('/');
    for c in token.chars() {
        match c {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            c => pointer.push(c),
        }
    }
}

/// `pointer` extended by one escaped token.
fn child(pointer: &str, token: &str) -> String {
    let mut out = pointer.to_owned();
    push_token(&mut out, token);
    out
}

/// The JSON pointer a local reference names: `#/components/x%20y` → `/components/x y`
/// (still `~`-escaped, as `Value::pointer` expects).
fn local_pointer(reference: &str) -> Result<String, &'static str> {
    let fragment = reference
        .strip_prefix('#')
        .ok_or("only local references (#/…) are followed")?;
    let decoded = percent_decode(fragment).ok_or("its percent-encoding is invalid")?;
    if !decoded.is_empty() && !decoded.starts_with('/') {
        return Err("only JSON pointer references (#/…) are followed here, not anchors");
    }
    Ok(decoded)
}

/// Percent-decodes a URI fragment; `None` for a broken escape or non-UTF-8 result.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Checked by hand: `from_str_radix` would also take a sign (`%+1`).
            let hex = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Follows `$ref`s from `value`, found at `pointer`, to the object they end at; returns it
/// with its own pointer. Cycles and chains longer than [`MAX_REF_CHAIN`] are errors, so a
/// hostile document cannot make the loader spin.
fn resolve<'a>(
    doc: &'a Value,
    value: &'a Value,
    pointer: &str,
) -> Result<(&'a Value, String), String> {
    let mut current = value;
    let mut chain = vec![pointer.to_owned()];
    while let Some(reference) = current.get("$ref") {
        let at = format!("{}/$ref", chain.last().map_or("", String::as_str));
        let Value::String(reference) = reference else {
            return Err(format!("`$ref` at {at} must be a string"));
        };
        let target =
            local_pointer(reference).map_err(|why| format!("$ref `{reference}` at {at}: {why}"))?;
        if chain.contains(&target) {
            chain.push(target);
            return Err(format!(
                "$ref `{reference}` at {at} closes a reference cycle: {}",
                chain.join(" → ")
            ));
        }
        if chain.len() > MAX_REF_CHAIN {
            return Err(format!(
                "$ref chain from {pointer} is longer than {MAX_REF_CHAIN} references"
            ));
        }
        current = doc.pointer(&target).ok_or_else(|| {
            format!("$ref `{reference}` at {at} points to nothing in this document")
        })?;
        chain.push(target);
    }
    let end = chain.pop().unwrap_or_default();
    Ok((current, end))
}

/// Refuses fields a `what` object does not have; `x-` extensions are always allowed.
fn check_fields(
    object: &Map<String, Value>,
    allowed: &[&str],
    pointer: &str,
    what: &str,
) -> Result<(), String> {
    for key in object.keys() {
        if !key.starts_with("x-") && !allowed.contains(&key.as_str()) {
            return Err(format!(
                "`{key}` at {} is not a field of {what} (expected one of: {})",
                child(pointer, key),
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// `value` as an object, or an error naming `what` it should be.
fn object<'a>(
    value: &'a Value,
    pointer: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} at {pointer} must be an object"))
}

/// An optional boolean field.
fn flag(object: &Map<String, Value>, key: &str, pointer: &str) -> Result<Option<bool>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!(
            "`{key}` at {} must be true or false",
            child(pointer, key)
        )),
    }
}

/// An optional string field.
fn text(object: &Map<String, Value>, key: &str, pointer: &str) -> Result<Option<String>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!(
            "`{key}` at {} must be a string",
            child(pointer, key)
        )),
    }
}

const PATH_ITEM_FIELDS: &[&str] = &[
    "$ref",
    "summary",
    "description",
    "servers",
    "parameters",
    "get",
    "put",
    "post",
    "delete",
    "options",
    "head",
    "patch",
    "trace",
];
const OPERATION_FIELDS: &[&str] = &[
    "tags",
    "summary",
    "description",
    "externalDocs",
    "operationId",
    "parameters",
    "requestBody",
    "responses",
    "callbacks",
    "deprecated",
    "security",
    "servers",
];
const PARAMETER_FIELDS: &[&str] = &[
    "name",
    "in",
    "description",
    "required",
    "deprecated",
    "allowEmptyValue",
    "style",
    "explode",
    "allowReserved",
    "schema",
    "example",
    "examples",
    "content",
];
const REQUEST_BODY_FIELDS: &[&str] = &["description", "content", "required"];
const RESPONSE_FIELDS: &[&str] = &["description", "headers", "content", "links"];
const MEDIA_TYPE_FIELDS: &[&str] = &["schema", "example", "examples", "encoding"];

fn operations(doc: &Value) -> Result<Vec<Operation>, String> {
    let paths = match doc.get("paths") {
        // 3.1 makes `paths` optional (a document of components or webhooks only).
        None => return Ok(Vec::new()),
        Some(paths) => object(paths, "/paths", "`paths`")?,
    };
    let mut operations = Vec::new();
    // Templates with parameter names erased: `/a/{x}` and `/a/{y}` are the same path to
    // OpenAPI and a conflict to the router.
    let mut shapes: HashMap<String, &str> = HashMap::new();
    let mut operation_ids: HashMap<String, String> = HashMap::new();
    for (path, item) in paths {
        if path.starts_with("x-") {
            continue;
        }
        let item_pointer = child("/paths", path);
        let names = template_names(path, &item_pointer)?;
        if let Some(other) = shapes.insert(erase_names(path), path) {
            return Err(format!(
                "paths `{other}` and `{path}` (at {item_pointer}) differ only in parameter \
                 names: OpenAPI treats them as the same path, and the router cannot tell them \
                 apart"
            ));
        }
        let (item, item_pointer) = path_item(doc, item, &item_pointer)?;
        let common = parameters(
            doc,
            item.get("parameters"),
            &child(&item_pointer, "parameters"),
        )?;
        for (key, method) in &METHODS {
            let Some(op) = item.get(*key) else {
                continue;
            };
            let pointer = child(&item_pointer, key);
            let operation = operation(doc, path, &names, method, op, pointer, &common)?;
            if let Some(id) = &operation.operation_id
                && let Some(first) = operation_ids.insert(id.clone(), operation.pointer.clone())
            {
                return Err(format!(
                    "operationId `{id}` at {}/operationId is already used at {first}: \
                     operation ids must be unique",
                    operation.pointer
                ));
            }
            operations.push(operation);
        }
    }
    Ok(operations)
}

/// The parameter names of a path template, in order. A parameter must be a whole segment
/// (`/files/{name}`), the one form the router matches; `/files/{name}.json` is refused.
fn template_names(path: &str, pointer: &str) -> Result<Vec<String>, String> {
    if !path.starts_with('/') {
        return Err(format!("path `{path}` at {pointer} must start with `/`"));
    }
    let mut names: Vec<String> = Vec::new();
    for segment in path.split('/').skip(1) {
        if !segment.contains(['{', '}']) {
            continue;
        }
        let name = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|n| !n.is_empty() && !n.contains(['{', '}', '*']));
        let Some(name) = name else {
            return Err(format!(
                "path `{path}` at {pointer}: segment `{segment}` is not supported: a path \
                 parameter must be a whole segment with a plain name, like `/files/{{name}}` \
                 (not `/files/{{name}}.json` or `/files/{{*rest}}`)"
            ));
        };
        if names.iter().any(|n| n == name) {
            return Err(format!(
                "path `{path}` at {pointer} uses the parameter `{{{name}}}` twice"
            ));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// `/a/{x}/b` → `/a/{}/b`.
fn erase_names(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// A path item, its `$ref` (3.1: to `#/components/pathItems/…`) followed. Next to a `$ref`
/// only `summary` and `description` are allowed: merging two path items is undefined in
/// OpenAPI, and guessing could drop an operation.
fn path_item<'a>(
    doc: &'a Value,
    item: &'a Value,
    pointer: &str,
) -> Result<(&'a Map<String, Value>, String), String> {
    let outer = object(item, pointer, "a path item")?;
    check_fields(outer, PATH_ITEM_FIELDS, pointer, "a path item")?;
    if outer.contains_key("$ref")
        && let Some(key) = outer.keys().find(|k| {
            !matches!(k.as_str(), "$ref" | "summary" | "description") && !k.starts_with("x-")
        })
    {
        return Err(format!(
            "`{key}` at {}: a path item with a `$ref` may only add `summary` and `description`",
            child(pointer, key)
        ));
    }
    let (item, pointer) = resolve(doc, item, pointer)?;
    let resolved = object(item, &pointer, "a path item")?;
    check_fields(resolved, PATH_ITEM_FIELDS, &pointer, "a path item")?;
    Ok((resolved, pointer))
}

fn operation(
    doc: &Value,
    path: &str,
    names: &[String],
    method: &Method,
    op: &Value,
    pointer: String,
    common: &[Parameter],
) -> Result<Operation, String> {
    let obj = object(op, &pointer, "an operation")?;
    check_fields(obj, OPERATION_FIELDS, &pointer, "an operation")?;
    let operation_id = text(obj, "operationId", &pointer)?;

    let mut merged = common.to_vec();
    for param in parameters(doc, obj.get("parameters"), &child(&pointer, "parameters"))? {
        match merged.iter_mut().find(|p| same_parameter(p, &param)) {
            Some(slot) => *slot = param,
            None => merged.push(param),
        }
    }
    for name in names {
        let declared = merged
            .iter()
            .any(|p| p.location == ParamLocation::Path && p.name == *name);
        if !declared {
            return Err(format!(
                "{method} {path} at {pointer}: path parameter `{name}` is not declared (add it \
                 to the operation's or the path's `parameters` with `in: path`)"
            ));
        }
    }
    if let Some(extra) = merged
        .iter()
        .find(|p| p.location == ParamLocation::Path && !names.contains(&p.name))
    {
        return Err(format!(
            "{method} {path} at {pointer}: path parameter `{}` is declared but the path \
             template has no `{{{}}}`",
            extra.name, extra.name
        ));
    }

    let body = obj
        .get("requestBody")
        .map(|b| request_body(doc, b, &child(&pointer, "requestBody")))
        .transpose()?;
    let responses = match obj.get("responses") {
        None => Vec::new(),
        Some(r) => responses(doc, r, &child(&pointer, "responses"))?,
    };
    Ok(Operation {
        path: path.to_owned(),
        method: method.clone(),
        operation_id,
        parameters: merged,
        body,
        responses,
        extension: obj.get("x-palisade").cloned(),
        pointer,
    })
}

/// Same parameter per OpenAPI: same `in` and `name`; header names are case-insensitive.
fn same_parameter(a: &Parameter, b: &Parameter) -> bool {
    a.location == b.location
        && match a.location {
            ParamLocation::Header => a.name.eq_ignore_ascii_case(&b.name),
            _ => a.name == b.name,
        }
}

fn location_name(location: ParamLocation) -> &'static str {
    match location {
        ParamLocation::Path => "path",
        ParamLocation::Query => "query",
        ParamLocation::Header => "header",
        ParamLocation::Cookie => "cookie",
    }
}

/// A `parameters` list at `pointer`, references resolved.
fn parameters(doc: &Value, list: Option<&Value>, pointer: &str) -> Result<Vec<Parameter>, String> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = list else {
        return Err(format!("`parameters` at {pointer} must be an array"));
    };
    let mut out: Vec<Parameter> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (value, at) = resolve(doc, item, &format!("{pointer}/{i}"))?;
        let Some(param) = parameter(value, &at)? else {
            continue;
        };
        if out.iter().any(|p| same_parameter(p, &param)) {
            return Err(format!(
                "{} parameter `{}` at {at} is listed twice in {pointer}",
                location_name(param.location),
                param.name
            ));
        }
        out.push(param);
    }
    Ok(out)
}

/// One parameter object; `None` for the header parameters OpenAPI says to ignore.
fn parameter(value: &Value, pointer: &str) -> Result<Option<Parameter>, String> {
    let obj = object(value, pointer, "a parameter")?;
    check_fields(obj, PARAMETER_FIELDS, pointer, "a parameter")?;
    let name = text(obj, "name", pointer)?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("the parameter at {pointer} has no `name`"))?;
    let location = match text(obj, "in", pointer)?.as_deref() {
        Some("path") => ParamLocation::Path,
        Some("query") => ParamLocation::Query,
        Some("header") => ParamLocation::Header,
        Some("cookie") => ParamLocation::Cookie,
        Some(other) => {
            return Err(format!(
                "`in` at {pointer}/in is `{other}`: expected path, query, header or cookie"
            ));
        }
        None => return Err(format!("parameter `{name}` at {pointer} has no `in`")),
    };
    // OpenAPI: "If in is "header" and the name field is "Accept", "Content-Type" or
    // "Authorization", the parameter definition SHALL be ignored."
    if location == ParamLocation::Header
        && ["accept", "content-type", "authorization"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
    {
        return Ok(None);
    }
    // A `content` parameter is a serialized document (JSON in a query string, say): checking
    // it as a plain value would be wrong either way, so it is refused rather than skipped.
    if obj.contains_key("content") {
        return Err(format!(
            "parameter `{name}` at {pointer}/content: parameters described by `content` are \
             not supported; describe the value with `schema`"
        ));
    }
    let required = flag(obj, "required", pointer)?.unwrap_or(false);
    Ok(Some(Parameter {
        name,
        location,
        // OpenAPI requires `required: true` on path parameters; a path without the segment
        // would not match the route anyway.
        required: required || location == ParamLocation::Path,
        schema: obj.get("schema").cloned(),
        style: text(obj, "style", pointer)?,
        explode: flag(obj, "explode", pointer)?,
    }))
}

fn request_body(doc: &Value, value: &Value, pointer: &str) -> Result<RequestBody, String> {
    let (value, pointer) = resolve(doc, value, pointer)?;
    let obj = object(value, &pointer, "a request body")?;
    check_fields(obj, REQUEST_BODY_FIELDS, &pointer, "a request body")?;
    let content = obj
        .get("content")
        .ok_or_else(|| format!("the request body at {pointer} has no `content`"))?;
    Ok(RequestBody {
        required: flag(obj, "required", &pointer)?.unwrap_or(false),
        content: media_types(content, &child(&pointer, "content"))?,
    })
}

/// A `content` map: media type → schema.
fn media_types(content: &Value, pointer: &str) -> Result<MediaTypes, String> {
    let map = object(content, pointer, "`content`")?;
    let mut out = Vec::with_capacity(map.len());
    for (media_type, value) in map {
        let at = child(pointer, media_type);
        let obj = object(value, &at, "a media type object")?;
        check_fields(obj, MEDIA_TYPE_FIELDS, &at, "a media type object")?;
        out.push((media_type.clone(), obj.get("schema").cloned()));
    }
    Ok(out)
}

fn responses(
    doc: &Value,
    value: &Value,
    pointer: &str,
) -> Result<Vec<(String, MediaTypes)>, String> {
    let map = object(value, pointer, "`responses`")?;
    let mut out = Vec::with_capacity(map.len());
    for (status, response) in map {
        if status.starts_with("x-") {
            continue;
        }
        let at = child(pointer, status);
        if !is_status_key(status) {
            return Err(format!(
                "response `{status}` at {at}: a response key is a status code (`200`), a range \
                 (`2XX`) or `default`"
            ));
        }
        let (response, at) = resolve(doc, response, &at)?;
        let obj = object(response, &at, "a response")?;
        check_fields(obj, RESPONSE_FIELDS, &at, "a response")?;
        let content = match obj.get("content") {
            None => Vec::new(),
            Some(c) => media_types(c, &child(&at, "content"))?,
        };
        out.push((status.clone(), content));
    }
    Ok(out)
}

/// `default`, `100`–`599`, or `1XX`–`5XX`.
fn is_status_key(key: &str) -> bool {
    if key == "default" {
        return true;
    }
    match key.as_bytes() {
        [b'1'..=b'5', b'X', b'X'] => true,
        [b'1'..=b'5', second, third] => second.is_ascii_digit() && third.is_ascii_digit(),
        _ => false,
    }
}

/// OpenAPI 3.0 schemas rewritten in place as JSON Schema 2020-12.
///
/// Every schema the document can use is visited: those in `components.schemas` and every
/// schema under a parameter, header, media type, request body, response, path item,
/// operation or callback, recursing through the subschema keywords, plus every target of a
/// local `$ref` met on the way (a schema kept under an `x-` key, say). The rewrite is
/// idempotent, so reaching a schema twice is harmless.
mod upgrade {
    use std::collections::HashSet;

    use serde_json::{Map, Value, json};

    use super::{child, local_pointer};

    /// What a visited object is, to know where its schemas are.
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    enum Kind {
        Schema,
        /// A parameter or a header: `schema`, or `content`.
        Parameter,
        RequestBody,
        Response,
        PathItem,
        Operation,
        /// A callback: expression → path item.
        Callback,
    }

    /// Keywords that make a `nullable` schema reject `null` other than `type` and `enum`
    /// (which get `"null"` added): a nullable schema that has any of them becomes
    /// `anyOf: [<them>, {"type": "null"}]`.
    const REJECTS_NULL: &[&str] = &[
        "$ref",
        "$dynamicRef",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "const",
        "if",
        "then",
        "else",
    ];

    #[derive(Default)]
    struct Upgrade {
        seen: HashSet<(String, Kind)>,
        /// `$ref` targets still to visit.
        pending: Vec<(String, Kind)>,
    }

    pub(super) fn document(doc: &mut Value) -> Result<(), String> {
        let mut up = Upgrade::default();
        if let Some(Value::Object(paths)) = doc.get_mut("paths") {
            for (path, item) in paths.iter_mut() {
                if !path.starts_with("x-") {
                    up.visit(item, &child("/paths", path), Kind::PathItem)?;
                }
            }
        }
        if let Some(Value::Object(components)) = doc.get_mut("components") {
            for (section, kind) in [
                ("schemas", Kind::Schema),
                ("parameters", Kind::Parameter),
                ("headers", Kind::Parameter),
                ("requestBodies", Kind::RequestBody),
                ("responses", Kind::Response),
                ("callbacks", Kind::Callback),
            ] {
                if let Some(Value::Object(entries)) = components.get_mut(section) {
                    let at = child("/components", section);
                    for (name, entry) in entries.iter_mut() {
                        up.visit(entry, &child(&at, name), kind)?;
                    }
                }
            }
        }
        while let Some((pointer, kind)) = up.pending.pop() {
            if up.seen.contains(&(pointer.clone(), kind)) {
                continue;
            }
            // A dangling reference is reported where it is used, not here.
            if let Some(target) = doc.pointer_mut(&pointer) {
                up.visit(target, &pointer, kind)?;
            }
        }
        Ok(())
    }

    impl Upgrade {
        fn visit(&mut self, node: &mut Value, pointer: &str, kind: Kind) -> Result<(), String> {
            if !self.seen.insert((pointer.to_owned(), kind)) {
                return Ok(());
            }
            // Outside schemas a `$ref` replaces the object: visit its target instead.
            if kind != Kind::Schema
                && let Some(Value::String(reference)) = node.get("$ref")
            {
                if let Ok(target) = local_pointer(reference) {
                    self.pending.push((target, kind));
                }
                return Ok(());
            }
            match kind {
                Kind::Schema => self.schema(node, pointer),
                Kind::Parameter => {
                    if let Some(schema) = node.get_mut("schema") {
                        self.visit(schema, &child(pointer, "schema"), Kind::Schema)?;
                    }
                    self.content(node, pointer)
                }
                Kind::RequestBody => self.content(node, pointer),
                Kind::Response => {
                    self.each(node, pointer, "headers", Kind::Parameter)?;
                    self.content(node, pointer)
                }
                Kind::PathItem => {
                    self.list(node, pointer, "parameters", Kind::Parameter)?;
                    for key in [
                        "get", "put", "post", "delete", "options", "head", "patch", "trace",
                    ] {
                        if let Some(op) = node.get_mut(key) {
                            self.visit(op, &child(pointer, key), Kind::Operation)?;
                        }
                    }
                    Ok(())
                }
                Kind::Operation => {
                    self.list(node, pointer, "parameters", Kind::Parameter)?;
                    if let Some(body) = node.get_mut("requestBody") {
                        self.visit(body, &child(pointer, "requestBody"), Kind::RequestBody)?;
                    }
                    self.each(node, pointer, "responses", Kind::Response)?;
                    self.each(node, pointer, "callbacks", Kind::Callback)
                }
                Kind::Callback => {
                    if let Value::Object(map) = node {
                        for (expression, item) in map.iter_mut() {
                            if !expression.starts_with("x-") {
                                self.visit(item, &child(pointer, expression), Kind::PathItem)?;
                            }
                        }
                    }
                    Ok(())
                }
            }
        }

        /// Every value of the map at `node[key]` (skipping `x-` extensions).
        fn each(
            &mut self,
            node: &mut Value,
            pointer: &str,
            key: &str,
            kind: Kind,
        ) -> Result<(), String> {
            if let Some(Value::Object(map)) = node.get_mut(key) {
                let at = child(pointer, key);
                for (name, value) in map.iter_mut() {
                    if !name.starts_with("x-") {
                        self.visit(value, &child(&at, name), kind)?;
                    }
                }
            }
            Ok(())
        }

        /// Every item of the array at `node[key]`.
        fn list(
            &mut self,
            node: &mut Value,
            pointer: &str,
            key: &str,
            kind: Kind,
        ) -> Result<(), String> {
            if let Some(Value::Array(items)) = node.get_mut(key) {
                let at = child(pointer, key);
                for (i, value) in items.iter_mut().enumerate() {
                    self.visit(value, &format!("{at}/{i}"), kind)?;
                }
            }
            Ok(())
        }

        /// The schemas of a `content` map and the headers of its encodings.
        fn content(&mut self, node: &mut Value, pointer: &str) -> Result<(), String> {
            let Some(Value::Object(content)) = node.get_mut("content") else {
                return Ok(());
            };
            let at = child(pointer, "content");
            for (media_type, media) in content.iter_mut() {
                let media_at = child(&at, media_type);
                if let Some(schema) = media.get_mut("schema") {
                    self.visit(schema, &child(&media_at, "schema"), Kind::Schema)?;
                }
                if let Some(Value::Object(encodings)) = media.get_mut("encoding") {
                    let encoding_at = child(&media_at, "encoding");
                    for (property, encoding) in encodings.iter_mut() {
                        self.each(
                            encoding,
                            &child(&encoding_at, property),
                            "headers",
                            Kind::Parameter,
                        )?;
                    }
                }
            }
            Ok(())
        }

        /// Rewrites one schema object, then recurses into its subschemas (after the
        /// rewrite, so pointers name where they end up).
        fn schema(&mut self, node: &mut Value, pointer: &str) -> Result<(), String> {
            let Value::Object(map) = node else {
                return Ok(());
            };
            exclusive_bound(map, "exclusiveMinimum", "minimum", pointer)?;
            exclusive_bound(map, "exclusiveMaximum", "maximum", pointer)?;
            nullable(map, pointer)?;
            if let Some(Value::String(reference)) = map.get("$ref")
                && let Ok(target) = local_pointer(reference)
            {
                self.pending.push((target, Kind::Schema));
            }
            for (key, value) in map.iter_mut() {
                let at = child(pointer, key);
                match (key.as_str(), value) {
                    (
                        "properties" | "patternProperties" | "$defs" | "definitions"
                        | "dependentSchemas",
                        Value::Object(schemas),
                    ) => {
                        for (name, schema) in schemas.iter_mut() {
                            self.visit(schema, &child(&at, name), Kind::Schema)?;
                        }
                    }
                    (
                        "allOf" | "anyOf" | "oneOf" | "prefixItems" | "items",
                        Value::Array(schemas),
                    ) => {
                        for (i, schema) in schemas.iter_mut().enumerate() {
                            self.visit(schema, &format!("{at}/{i}"), Kind::Schema)?;
                        }
                    }
                    (
                        "items"
                        | "additionalProperties"
                        | "additionalItems"
                        | "not"
                        | "contains"
                        | "propertyNames"
                        | "if"
                        | "then"
                        | "else"
                        | "unevaluatedItems"
                        | "unevaluatedProperties"
                        | "contentSchema",
                        schema,
                    ) => self.visit(schema, &at, Kind::Schema)?,
                    _ => {}
                }
            }
            Ok(())
        }
    }

    /// 3.0's boolean `exclusiveMinimum: true` (with `minimum: m`) is 2020-12's
    /// `exclusiveMinimum: m`; `false` just means the bound is inclusive.
    fn exclusive_bound(
        map: &mut Map<String, Value>,
        key: &str,
        bound: &str,
        pointer: &str,
    ) -> Result<(), String> {
        match map.get(key) {
            Some(Value::Bool(true)) => {
                let Some(limit) = map.remove(bound).filter(Value::is_number) else {
                    return Err(format!(
                        "`{key}: true` at {} needs a numeric `{bound}` to make exclusive",
                        child(pointer, key)
                    ));
                };
                map.insert(key.to_owned(), limit);
            }
            Some(Value::Bool(false)) => {
                map.remove(key);
            }
            _ => {}
        }
        Ok(())
    }

    /// 3.0's `nullable: true`: `null` is added to `type` and `enum`, and keywords that
    /// would still reject it are moved under `anyOf: [<them>, {"type": "null"}]`. Only those
    /// move, so annotations and the other keywords keep their place; a `$ref` into a moved
    /// keyword (`#/components/schemas/X/allOf/0` of a nullable `X`) would no longer resolve,
    /// a rare pattern this conversion accepts as a limitation.
    fn nullable(map: &mut Map<String, Value>, pointer: &str) -> Result<(), String> {
        match map.remove("nullable") {
            None | Some(Value::Bool(false)) => return Ok(()),
            Some(Value::Bool(true)) => {}
            Some(_) => {
                return Err(format!(
                    "`nullable` at {} must be true or false",
                    child(pointer, "nullable")
                ));
            }
        }
        let null = || Value::String("null".to_owned());
        match map.get_mut("type") {
            Some(Value::String(t)) if t != "null" => {
                let t = std::mem::take(t);
                map.insert("type".to_owned(), json!([t, "null"]));
            }
            Some(Value::Array(types)) if !types.contains(&null()) => types.push(null()),
            _ => {}
        }
        if let Some(Value::Array(values)) = map.get_mut("enum")
            && !values.contains(&Value::Null)
        {
            values.push(Value::Null);
        }
        let mut moved = Map::new();
        for key in REJECTS_NULL {
            if let Some(value) = map.remove(*key) {
                moved.insert((*key).to_owned(), value);
            }
        }
        if !moved.is_empty() {
            map.insert(
                "anyOf".to_owned(),
                json!([Value::Object(moved), {"type": "null"}]),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `text`, panicking with the error.
    fn ok(text: &str) -> Spec {
        parse(text).unwrap_or_else(|e| panic!("expected the spec to load, got: {e}"))
    }

    /// Parses `text`, which must fail, and returns the message.
    fn err(text: &str) -> String {
        match parse(text) {
            Ok(spec) => panic!("expected an error, got {spec:#?}"),
            Err(e) => e,
        }
    }

    fn op<'a>(spec: &'a Spec, method: Method, path: &str) -> &'a Operation {
        spec.operations
            .iter()
            .find(|o| o.method == method && o.path == path)
            .unwrap_or_else(|| panic!("no {method} {path} in {:#?}", spec.operations))
    }

    fn param<'a>(op: &'a Operation, name: &str) -> &'a Parameter {
        op.parameters
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no parameter {name} in {:#?}", op.parameters))
    }

    const ORDERS_31: &str = r##"
openapi: 3.1.0
info: { title: Orders, version: "1" }
paths:
  /api/orders:
    get:
      operationId: listOrders
      parameters:
        - { name: limit, in: query, schema: { type: integer, maximum: 100 } }
        - { name: X-Tenant, in: header, required: true, schema: { type: string } }
        - { name: Authorization, in: header, schema: { type: string } }
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: { $ref: "#/components/schemas/OrderList" }
        "4XX": { $ref: "#/components/responses/Problem" }
    post:
      operationId: createOrder
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/NewOrder" }
      responses:
        "201": { description: created }
      x-palisade:
        roles: [customer]
        owner: { field: /ownerId, on_create: set }
  /api/orders/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: string, pattern: "^[0-9]+$" } }
    delete:
      responses:
        default: { description: whatever }
  x-internal: {}
components:
  schemas:
    NewOrder:
      type: object
      additionalProperties: false
      required: [item]
      properties:
        item: { type: string, maxLength: 100 }
        note: { type: [string, "null"] }
    OrderList:
      type: object
      properties:
        items: { type: array, items: { $ref: "#/components/schemas/NewOrder" } }
  responses:
    Problem:
      description: a problem
      content:
        application/problem+json:
          schema: { type: object }
"##;

    #[test]
    fn loads_a_31_yaml_spec() {
        let spec = ok(ORDERS_31);
        assert_eq!(spec.version, SpecVersion::V31);
        let listed: Vec<(Method, &str)> = spec
            .operations
            .iter()
            .map(|o| (o.method.clone(), o.path.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (Method::GET, "/api/orders"),
                (Method::POST, "/api/orders"),
                (Method::DELETE, "/api/orders/{id}"),
            ]
        );

        let list = op(&spec, Method::GET, "/api/orders");
        assert_eq!(list.operation_id.as_deref(), Some("listOrders"));
        assert_eq!(list.pointer, "/paths/~1api~1orders/get");
        assert_eq!(list.extension, None);
        assert_eq!(list.body, None);
        // The Authorization header parameter is ignored, as OpenAPI says.
        assert_eq!(list.parameters.len(), 2);
        let limit = param(list, "limit");
        assert_eq!(limit.location, ParamLocation::Query);
        assert!(!limit.required);
        assert_eq!(
            limit.schema,
            Some(json!({"type": "integer", "maximum": 100}))
        );
        let tenant = param(list, "X-Tenant");
        assert_eq!(tenant.location, ParamLocation::Header);
        assert!(tenant.required);
        // An unquoted YAML `200:` key is the status "200"; a response `$ref` is resolved.
        assert_eq!(
            list.responses,
            [
                (
                    "200".to_owned(),
                    vec![(
                        "application/json".to_owned(),
                        Some(json!({"$ref": "#/components/schemas/OrderList"}))
                    )]
                ),
                (
                    "4XX".to_owned(),
                    vec![(
                        "application/problem+json".to_owned(),
                        Some(json!({"type": "object"}))
                    )]
                ),
            ]
        );

        let create = op(&spec, Method::POST, "/api/orders");
        let body = create.body.as_ref().expect("a body");
        assert!(body.required);
        assert_eq!(
            body.content,
            [(
                "application/json".to_owned(),
                Some(json!({"$ref": "#/components/schemas/NewOrder"}))
            )]
        );
        assert_eq!(
            create.extension,
            Some(
                json!({"roles": ["customer"], "owner": {"field": "/ownerId", "on_create": "set"}})
            )
        );
        assert_eq!(create.responses, [("201".to_owned(), vec![])]);

        let delete = op(&spec, Method::DELETE, "/api/orders/{id}");
        assert_eq!(delete.operation_id, None);
        let id = param(delete, "id");
        assert_eq!(id.location, ParamLocation::Path);
        assert!(id.required);
        assert_eq!(delete.responses, [("default".to_owned(), vec![])]);

        // 3.1 schemas are left exactly as written.
        let raw: Value = yaml_serde::from_str(ORDERS_31).unwrap();
        assert_eq!(spec.document, raw);
        // Schema `$ref`s resolve against the document.
        assert!(
            spec.document
                .pointer("/components/schemas/NewOrder")
                .is_some()
        );
    }

    #[test]
    fn loads_a_30_json_spec() {
        let spec = ok(include_str!(
            "../../tests/fixtures/openapi/petstore-3.0.json"
        ));
        assert_eq!(spec.version, SpecVersion::V30);
        let listed: Vec<(Method, &str, Option<&str>)> = spec
            .operations
            .iter()
            .map(|o| (o.method.clone(), o.path.as_str(), o.operation_id.as_deref()))
            .collect();
        assert_eq!(
            listed,
            [
                (Method::GET, "/pets", Some("listPets")),
                (Method::POST, "/pets", Some("createPet")),
                (Method::GET, "/pets/{petId}", Some("showPet")),
                (Method::PATCH, "/pets/{petId}", Some("updatePet")),
            ]
        );

        let list = op(&spec, Method::GET, "/pets");
        let limit = param(list, "limit");
        assert_eq!(limit.location, ParamLocation::Query);
        assert_eq!(limit.style.as_deref(), Some("form"));
        assert_eq!(limit.explode, Some(false));
        // `exclusiveMinimum: true` with `minimum: 0` became `exclusiveMinimum: 0`.
        assert_eq!(
            limit.schema,
            Some(
                json!({"type": "integer", "format": "int32", "exclusiveMinimum": 0, "maximum": 100})
            )
        );

        let create = op(&spec, Method::POST, "/pets");
        let body = create.body.as_ref().expect("a body");
        assert!(!body.required);
        assert_eq!(
            body.content,
            [(
                "application/json".to_owned(),
                Some(json!({"$ref": "#/components/schemas/NewPet"}))
            )]
        );
        assert_eq!(create.extension, Some(json!({"auth": "api_key"})));

        // Path-level `petId` (a `$ref`) and the operation's own `fields` are merged.
        let show = op(&spec, Method::GET, "/pets/{petId}");
        let names: Vec<&str> = show.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["petId", "fields"]);
        assert!(param(show, "petId").required);

        // The nullable schemas in components were converted.
        assert_eq!(
            spec.document
                .pointer("/components/schemas/Pet/properties/tag"),
            Some(&json!({"type": ["string", "null"], "maxLength": 32}))
        );
        assert_eq!(
            spec.document
                .pointer("/components/schemas/Pet/properties/owner"),
            Some(&json!({"anyOf": [{"$ref": "#/components/schemas/Owner"}, {"type": "null"}]}))
        );
    }

    /// A 3.0 document with one schema in components, `schema`, and one path using it.
    fn v30_with_schema(schema: Value) -> Spec {
        let doc = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/x": {"post": {
                    "requestBody": {"content": {"application/json": {"schema": schema.clone()}}},
                    "responses": {"204": {"description": "none"}}
                }}
            },
            "components": {"schemas": {"S": schema}}
        });
        ok(&doc.to_string())
    }

    /// The converted schema, as it is in components and in the operation's body.
    fn converted(schema: Value) -> Value {
        let spec = v30_with_schema(schema);
        let in_components = spec.document.pointer("/components/schemas/S").cloned();
        let body = spec.operations[0].body.clone().expect("a body");
        assert_eq!(body.content[0].1, in_components);
        in_components.expect("the schema")
    }

    #[test]
    fn converts_30_nullable() {
        // A type gets "null" added (and so does an enum).
        assert_eq!(
            converted(json!({"type": "string", "nullable": true})),
            json!({"type": ["string", "null"]})
        );
        assert_eq!(
            converted(json!({"type": "string", "enum": ["a", "b"], "nullable": true})),
            json!({"type": ["string", "null"], "enum": ["a", "b", null]})
        );
        assert_eq!(
            converted(json!({"enum": ["a"], "nullable": true})),
            json!({"enum": ["a", null]})
        );
        // A reference or a composition is wrapped, because it would still reject null.
        assert_eq!(
            converted(json!({"$ref": "#/components/schemas/T", "nullable": true})),
            json!({"anyOf": [{"$ref": "#/components/schemas/T"}, {"type": "null"}]})
        );
        assert_eq!(
            converted(json!({
                "type": "object",
                "allOf": [{"type": "object", "properties": {"a": {"type": "integer", "nullable": true}}}],
                "nullable": true
            })),
            json!({
                "type": ["object", "null"],
                "anyOf": [
                    {"allOf": [{"type": "object", "properties": {"a": {"type": ["integer", "null"]}}}]},
                    {"type": "null"}
                ]
            })
        );
        // `nullable: false`, or nullable without a type, only loses the keyword.
        assert_eq!(
            converted(json!({"type": "string", "nullable": false})),
            json!({"type": "string"})
        );
        assert_eq!(
            converted(json!({"nullable": true, "minLength": 1})),
            json!({"minLength": 1})
        );
        // Deep: properties, items, additionalProperties, not, oneOf.
        assert_eq!(
            converted(json!({
                "type": "object",
                "properties": {"list": {"type": "array", "items": {"type": "number", "nullable": true}}},
                "additionalProperties": {"type": "boolean", "nullable": true},
                "not": {"oneOf": [{"type": "string", "nullable": true}]},
                "example": {"nullable": true}
            })),
            json!({
                "type": "object",
                "properties": {"list": {"type": "array", "items": {"type": ["number", "null"]}}},
                "additionalProperties": {"type": ["boolean", "null"]},
                "not": {"oneOf": [{"type": ["string", "null"]}]},
                // Examples are data, not schemas: untouched.
                "example": {"nullable": true}
            })
        );
        let e = err(&json!({
            "openapi": "3.0.0", "info": {}, "paths": {},
            "components": {"schemas": {"S": {"nullable": "yes"}}}
        })
        .to_string());
        assert!(e.contains("/components/schemas/S/nullable"), "{e}");
    }

    #[test]
    fn converts_30_exclusive_bounds() {
        assert_eq!(
            converted(
                json!({"type": "number", "minimum": 0, "exclusiveMinimum": true,
                             "maximum": 10, "exclusiveMaximum": true})
            ),
            json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10})
        );
        assert_eq!(
            converted(
                json!({"type": "number", "minimum": 1.5, "exclusiveMinimum": false,
                             "maximum": 9, "exclusiveMaximum": false})
            ),
            json!({"type": "number", "minimum": 1.5, "maximum": 9})
        );
        let e = err(&json!({
            "openapi": "3.0.0", "info": {}, "paths": {},
            "components": {"schemas": {"S": {"type": "integer", "exclusiveMaximum": true}}}
        })
        .to_string());
        assert!(e.contains("/components/schemas/S/exclusiveMaximum"), "{e}");
        assert!(e.contains("maximum"), "{e}");
    }

    #[test]
    fn converts_30_schemas_everywhere() {
        let doc = json!({
            "openapi": "3.0.2",
            "info": {},
            "paths": {"/p/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "schema": {"type": "string", "nullable": true}}],
                "get": {
                    "parameters": [{"$ref": "#/components/parameters/Q"}],
                    "responses": {"200": {
                        "description": "ok",
                        "headers": {"X-H": {"schema": {"type": "integer", "nullable": true}}},
                        "content": {"application/json": {"schema": {"$ref": "#/x-hidden/Hidden"}}}
                    }}
                }
            }},
            "components": {"parameters": {"Q": {"name": "q", "in": "query",
                                                "schema": {"type": "string", "nullable": true}}}},
            "x-hidden": {"Hidden": {"type": "object", "nullable": true}}
        });
        let spec = ok(&doc.to_string());
        let nullable_string = json!({"type": ["string", "null"]});
        let get = op(&spec, Method::GET, "/p/{id}");
        assert_eq!(param(get, "id").schema.as_ref(), Some(&nullable_string));
        assert_eq!(param(get, "q").schema.as_ref(), Some(&nullable_string));
        let d = &spec.document;
        assert_eq!(
            d.pointer("/paths/~1p~1{id}/get/responses/200/headers/X-H/schema"),
            Some(&json!({"type": ["integer", "null"]}))
        );
        // Reached only through a schema `$ref`.
        assert_eq!(
            d.pointer("/x-hidden/Hidden"),
            Some(&json!({"type": ["object", "null"]}))
        );
    }

    fn with_ref(reference: &str) -> String {
        json!({
            "openapi": "3.1.0",
            "info": {},
            "paths": {"/a": {"get": {
                "responses": {"200": {"description": "ok", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "b": {"$ref": reference}
                    }}}
                }}}
            }}}
        })
        .to_string()
    }

    #[test]
    fn remote_refs_are_refused() {
        let at = "/paths/~1a/get/responses/200/content/application~1json/schema/properties/b/$ref";
        for reference in [
            "https://example.com/schemas/b.json",
            "http://169.254.169.254/latest/meta-data",
            "other.yaml#/components/schemas/B",
            "./file.json",
            "file:///etc/passwd",
            "",
        ] {
            let e = err(&with_ref(reference));
            assert_eq!(
                e,
                format!(
                    "remote $ref `{reference}` at {at} is refused: only local references (#/…) \
                     are followed"
                )
            );
        }
        // In a non-schema position, and as a $dynamicRef.
        let e = err(
            r#"{"openapi": "3.0.0", "info": {}, "paths": {"/a": {"get": {
            "parameters": [{"$ref": "params.yaml#/Limit"}], "responses": {}}}}}"#,
        );
        assert!(
            e.contains("`params.yaml#/Limit` at /paths/~1a/get/parameters/0/$ref"),
            "{e}"
        );
        let e = err(
            r#"{"openapi": "3.1.0", "info": {}, "components": {"schemas": {
            "T": {"$dynamicRef": "https://x.example/tree#node"}}}}"#,
        );
        assert!(e.starts_with("remote $dynamicRef `https://x.example/tree#node` at /components/schemas/T/$dynamicRef"), "{e}");
        // Local ones are fine, and left alone.
        let spec = ok(&with_ref("#/components/schemas/B"));
        assert_eq!(
            spec.operations[0].responses[0].1[0].1,
            Some(
                json!({"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}})
            )
        );
    }

    #[test]
    fn dangling_refs_are_errors() {
        let e = err(
            r##"{"openapi": "3.1.0", "info": {}, "paths": {"/a": {"get": {
            "parameters": [{"$ref": "#/components/parameters/Nope"}]}}}}"##,
        );
        assert_eq!(
            e,
            "$ref `#/components/parameters/Nope` at /paths/~1a/get/parameters/0/$ref points to \
             nothing in this document"
        );
        let e = err(
            r##"{"openapi": "3.1.0", "info": {}, "paths": {"/a": {"post": {
            "requestBody": {"$ref": "#/components/requestBodies/Gone"}}}}}"##,
        );
        assert!(
            e.contains("at /paths/~1a/post/requestBody/$ref points to nothing"),
            "{e}"
        );
        let e = err(
            r##"{"openapi": "3.1.0", "info": {}, "paths": {"/a": {"get": {
            "responses": {"404": {"$ref": "#/components/responses/NotThere"}}}}}}"##,
        );
        assert!(
            e.contains("at /paths/~1a/get/responses/404/$ref points to nothing"),
            "{e}"
        );
        // Anchors are for schemas; elsewhere only pointers are followed.
        let e = err(
            r##"{"openapi": "3.1.0", "info": {}, "paths": {"/a": {"get": {
            "parameters": [{"$ref": "#limit"}]}}}}"##,
        );
        assert!(e.contains("not anchors"), "{e}");
    }

    #[test]
    fn parameter_refs_are_resolved_and_merged() {
        let spec = ok(r##"
openapi: 3.1.0
info: {}
paths:
  /users/{user_id}/notes/{note~id}:
    parameters:
      - $ref: "#/components/parameters/UserId"
      - $ref: "#/components/parameters/Note%20Id"
      - { name: verbose, in: query, schema: { type: boolean } }
      - { name: X-Trace, in: header, schema: { type: string } }
    get:
      parameters:
        - { name: verbose, in: query, required: true, schema: { type: integer } }
        - { name: x-trace, in: header, required: true }
        - { name: verbose, in: header }
        - $ref: "#/components/parameters/Alias"
components:
  parameters:
    UserId: { name: user_id, in: path, required: true, schema: { type: string, format: uuid } }
    Note Id: { name: "note~id", in: path, style: simple, schema: { type: integer } }
    Alias: { $ref: "#/components/parameters/Page" }
    Page: { name: page, in: query, explode: true, schema: { type: integer, minimum: 1 } }
"##);
        let get = op(&spec, Method::GET, "/users/{user_id}/notes/{note~id}");
        let summary: Vec<(&str, ParamLocation, bool)> = get
            .parameters
            .iter()
            .map(|p| (p.name.as_str(), p.location, p.required))
            .collect();
        assert_eq!(
            summary,
            [
                ("user_id", ParamLocation::Path, true),
                // `required: true` absent, still required: it is a path parameter.
                ("note~id", ParamLocation::Path, true),
                // The operation's own definitions replace the path item's, in place.
                ("verbose", ParamLocation::Query, true),
                ("x-trace", ParamLocation::Header, true),
                ("verbose", ParamLocation::Header, false),
                ("page", ParamLocation::Query, false),
            ]
        );
        assert_eq!(
            param(get, "user_id").schema,
            Some(json!({"type": "string", "format": "uuid"}))
        );
        assert_eq!(param(get, "note~id").style.as_deref(), Some("simple"));
        assert_eq!(param(get, "page").explode, Some(true));
        assert_eq!(
            get.parameters[2].schema,
            Some(json!({"type": "integer"})),
            "the operation's verbose wins"
        );
        assert_eq!(get.parameters[3].schema, None);
    }

    #[test]
    fn parameter_ref_cycles_are_errors() {
        let e = err(r##"
openapi: 3.1.0
info: {}
paths:
  /a:
    get:
      parameters: [{ $ref: "#/components/parameters/A" }]
components:
  parameters:
    A: { $ref: "#/components/parameters/B" }
    B: { $ref: "#/components/parameters/A" }
"##);
        assert_eq!(
            e,
            "$ref `#/components/parameters/A` at /components/parameters/B/$ref closes a \
             reference cycle: /paths/~1a/get/parameters/0 → /components/parameters/A → \
             /components/parameters/B → /components/parameters/A"
        );
        // A reference to itself, in a 3.0 document (which the conversion also walks).
        let e = err(
            r##"{"openapi": "3.0.3", "info": {}, "paths": {"/a": {"get": {
            "parameters": [{"$ref": "#/paths/~1a/get/parameters/0"}], "responses": {}}}}}"##,
        );
        assert!(e.contains("closes a reference cycle"), "{e}");
        // A long chain without a cycle stops at the bound.
        let mut parameters = Map::new();
        for i in 0..40 {
            parameters.insert(
                format!("P{i}"),
                json!({"$ref": format!("#/components/parameters/P{}", i + 1)}),
            );
        }
        parameters.insert("P40".to_owned(), json!({"name": "p", "in": "query"}));
        let doc = json!({"openapi": "3.1.0", "info": {},
            "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/P0"}]}}},
            "components": {"parameters": parameters}});
        let e = err(&doc.to_string());
        assert!(e.contains("longer than 32 references"), "{e}");
    }

    #[test]
    fn path_parameters_must_match_the_template() {
        let e = err(r#"{"openapi": "3.1.0", "info": {}, "paths": {"/orders/{id}": {"get": {}}}}"#);
        assert_eq!(
            e,
            "GET /orders/{id} at /paths/~1orders~1{id}/get: path parameter `id` is not declared \
             (add it to the operation's or the path's `parameters` with `in: path`)"
        );
        // Declared on another operation only: still missing here.
        let e = err(
            r#"{"openapi": "3.1.0", "info": {}, "paths": {"/orders/{id}": {
            "get": {"parameters": [{"name": "id", "in": "path", "required": true}]},
            "delete": {}}}}"#,
        );
        assert!(
            e.starts_with("DELETE /orders/{id} at /paths/~1orders~1{id}/delete"),
            "{e}"
        );
        // Declared but not in the template.
        let e = err(
            r#"{"openapi": "3.1.0", "info": {}, "paths": {"/orders": {"get": {
            "parameters": [{"name": "id", "in": "path", "required": true}]}}}}"#,
        );
        assert!(
            e.contains("path parameter `id` is declared but the path template"),
            "{e}"
        );
    }

    #[test]
    fn path_templates_the_router_cannot_match_are_refused() {
        for (path, needle) in [
            (
                "/files/{name}.json",
                "segment `{name}.json` is not supported",
            ),
            ("/files/v{n}", "segment `v{n}` is not supported"),
            ("/files/{}", "segment `{}` is not supported"),
            ("/files/{*rest}", "segment `{*rest}` is not supported"),
            ("/a/{x}/b/{x}", "uses the parameter `{x}` twice"),
            ("files", "must start with `/`"),
        ] {
            let doc = json!({"openapi": "3.1.0", "info": {}, "paths": {path: {}}});
            let e = err(&doc.to_string());
            assert!(e.contains(needle), "{path}: {e}");
            assert!(e.contains(&child("/paths", path)), "{path}: {e}");
        }
        let e = err(r#"{"openapi": "3.1.0", "info": {}, "paths": {"/a/{x}": {}, "/a/{y}": {}}}"#);
        assert!(e.contains("differ only in parameter names"), "{e}");
    }

    #[test]
    fn swagger_and_other_versions_are_refused() {
        let e = err("swagger: \"2.0\"\ninfo: { title: t, version: \"1\" }\npaths: {}\n");
        assert!(
            e.contains("Swagger 2.0") && e.contains("not supported"),
            "{e}"
        );
        for (text, needle) in [
            (
                "openapi: 3.2.0\n",
                "only OpenAPI 3.0.x and 3.1.x are supported",
            ),
            (
                "openapi: \"3.1\"\n",
                "only OpenAPI 3.0.x and 3.1.x are supported",
            ),
            ("openapi: 3.1\n", "must be a string"),
            ("info: {}\n", "is missing"),
        ] {
            let e = err(text);
            assert!(e.contains(needle) && e.contains("/openapi"), "{text}: {e}");
        }
        assert!(err("- a list").contains("must be an object"));
        assert!(err("{not json").contains("not valid JSON"));
        assert!(err("a: [unclosed").contains("not valid YAML"));
        let e = err("openapi: 3.1.0\njsonSchemaDialect: http://json-schema.org/draft-07/schema#\n");
        assert!(e.contains("/jsonSchemaDialect"), "{e}");
        ok("openapi: 3.1.1\njsonSchemaDialect: https://spec.openapis.org/oas/3.1/dialect/base\n");
        assert_eq!(ok("openapi: 3.0.4\n").operations, []);
    }

    #[test]
    fn typos_in_the_structure_are_errors() {
        for (doc, needle) in [
            (
                json!({"GET": {}}),
                "`GET` at /paths/~1a/GET is not a field of a path item",
            ),
            (
                json!({"post": {"requestbody": {}}}),
                "`requestbody` at /paths/~1a/post/requestbody is not a field of an operation",
            ),
            (
                json!({"get": {"parameters": [{"name": "q", "in": "query", "require": true}]}}),
                "`require` at /paths/~1a/get/parameters/0/require is not a field of a parameter",
            ),
            (
                json!({"get": {"parameters": [{"name": "q", "in": "body"}]}}),
                "`in` at /paths/~1a/get/parameters/0/in is `body`",
            ),
            (
                json!({"get": {"parameters": [{"name": "q", "in": "query", "content": {}}]}}),
                "parameters described by `content` are not supported",
            ),
            (
                json!({"get": {"parameters": [{"name": "q", "in": "query"}, {"name": "q", "in": "query"}]}}),
                "query parameter `q` at /paths/~1a/get/parameters/1 is listed twice",
            ),
            (
                json!({"get": {"responses": {"20": {"description": "x"}}}}),
                "response `20` at /paths/~1a/get/responses/20",
            ),
            (
                json!({"post": {"requestBody": {"required": true}}}),
                "the request body at /paths/~1a/post/requestBody has no `content`",
            ),
            (
                json!({"post": {"requestBody": {"content": {"application/json": {"schemas": {}}}}}}),
                "`schemas` at /paths/~1a/post/requestBody/content/application~1json/schemas",
            ),
            (
                json!({"get": {"operationId": "x"}, "put": {"operationId": "x"}}),
                "operationId `x` at /paths/~1a/put/operationId is already used at /paths/~1a/get",
            ),
        ] {
            let spec = json!({"openapi": "3.1.0", "info": {}, "paths": {"/a": doc}});
            let e = err(&spec.to_string());
            assert!(e.contains(needle), "{doc}: {e}");
        }
    }

    #[test]
    fn path_item_refs_are_followed() {
        let spec = ok(r##"
openapi: 3.1.0
info: {}
paths:
  /things:
    $ref: "#/components/pathItems/Things"
    summary: things
components:
  pathItems:
    Things:
      get: { operationId: listThings, x-palisade: { auth: public } }
"##);
        let get = op(&spec, Method::GET, "/things");
        assert_eq!(get.pointer, "/components/pathItems/Things/get");
        assert_eq!(get.extension, Some(json!({"auth": "public"})));
        let e = err(r##"{"openapi": "3.1.0", "info": {}, "paths": {"/things": {
            "$ref": "#/components/pathItems/Things", "post": {}}},
            "components": {"pathItems": {"Things": {}}}}"##);
        assert!(
            e.contains("may only add `summary` and `description`"),
            "{e}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let e = load(Path::new("/nonexistent/openapi.yaml")).unwrap_err();
        assert!(
            e.starts_with("cannot read /nonexistent/openapi.yaml"),
            "{e}"
        );
    }

    /// `examples/openapi.yaml` describes every route of the demo config
    /// (crates/palisade/src/demo.rs), with the route's policy in `x-palisade`.
    #[test]
    fn the_example_spec_covers_the_demo_routes() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/openapi.yaml");
        let spec = load(Path::new(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.version, SpecVersion::V31);
        let demo_routes: [(&str, &str, &[Method]); 6] = [
            ("login", "/api/login", &[Method::POST]),
            ("orders", "/api/orders", &[Method::GET, Method::POST]),
            (
                "order",
                "/api/orders/{id}",
                &[Method::GET, Method::PUT, Method::DELETE],
            ),
            ("tasks", "/api/tasks", &[Method::GET, Method::POST]),
            ("whoami", "/api/whoami", &[Method::GET]),
            ("crash", "/api/debug/crash", &[Method::GET]),
        ];
        let mut expected = 0;
        for (name, path, methods) in demo_routes {
            for method in methods {
                expected += 1;
                let op = op(&spec, method.clone(), path);
                let ext = op
                    .extension
                    .as_ref()
                    .unwrap_or_else(|| panic!("{method} {path} ({name}) has no x-palisade"));
                assert_eq!(ext["upstream"], "sample", "{method} {path}");
                assert!(op.operation_id.is_some(), "{method} {path}");
                assert!(!op.responses.is_empty(), "{method} {path}");
                if matches!(*method, Method::POST | Method::PUT) {
                    let body = op.body.as_ref().expect("a body");
                    assert!(body.required, "{method} {path}");
                    let (media, schema) = &body.content[0];
                    assert_eq!(media, "application/json");
                    assert!(schema.is_some(), "{method} {path}");
                }
            }
        }
        assert_eq!(spec.operations.len(), expected, "{:#?}", spec.operations);

        let login = op(&spec, Method::POST, "/api/login");
        let ext = login.extension.as_ref().unwrap();
        assert_eq!(ext["auth"], "public");
        assert_eq!(
            ext["rate_limit"],
            json!({"limit": 5, "window": "15m", "per": "ip", "name": "login"})
        );
        assert_eq!(ext["login"], json!({"account": "/username"}));
        for method in [Method::GET, Method::POST] {
            let ext = op(&spec, method, "/api/orders").extension.clone().unwrap();
            assert_eq!(ext["roles"], json!(["customer", "admin"]));
            assert_eq!(
                ext["owner"],
                json!({"field": "/ownerId", "collection": "/items", "on_create": "set",
                       "bypass_roles": ["admin"]})
            );
        }
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let ext = op(&spec, method, "/api/orders/{id}")
                .extension
                .clone()
                .unwrap();
            assert_eq!(
                ext["owner"],
                json!({"field": "/ownerId", "bypass_roles": ["admin"]})
            );
            assert_eq!(ext["request_fields"], json!({"deny": ["/ownerId"]}));
        }
        let id = param(op(&spec, Method::GET, "/api/orders/{id}"), "id");
        assert_eq!(id.location, ParamLocation::Path);
        // Every schema `$ref` in the example resolves in the document.
        let mut refs = Vec::new();
        collect_refs(&spec.document, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = local_pointer(&r).unwrap();
            assert!(spec.document.pointer(&pointer).is_some(), "dangling {r}");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if let ("$ref", Value::String(r)) = (k.as_str(), v) {
                        out.push(r.clone());
                    }
                    collect_refs(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
