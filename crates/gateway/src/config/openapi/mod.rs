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

mod upgrade;

#[cfg(test)]
mod tests;
