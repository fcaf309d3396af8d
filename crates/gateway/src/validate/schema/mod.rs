//! JSON Schema, compiled once at load and run per request.
//!
//! Why these options: formats are checked (a `date-time` that is not one is an error, not
//! a comment); patterns run on the `regex` crate's linear-time engine, so no pattern in a
//! spec can be turned into a ReDoS by a crafted value (lookaround and backreferences, which
//! need backtracking, are refused at load); nothing is fetched, since the crate is built
//! without its HTTP and file resolvers. Errors name the failing place as a JSON pointer and
//! describe the rule with the value masked, so a rejected password or injection payload is
//! never echoed to the client or the log.

use std::collections::HashSet;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, Registry, Validator};
use serde_json::{Map, Value};

use crate::rejection::{FieldError, MAX_ERRORS};

/// A compiled schema.
pub struct Schema {
    validator: Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Schema")
    }
}

/// Which JSON Schema dialect a schema is written in, when it does not say (`$schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Draft7,
    Draft202012,
}

/// Where a shared document is registered: references into it are rebased onto this URI.
const DOCUMENT_URI: &str = "urn:palisade:openapi";

/// A document (an OpenAPI spec) that many schemas' local `$ref`s resolve in, prepared once:
/// integer formats bounded, closed when strict, and registered for every schema compiled
/// in it. Why: compiling each schema as the root of its own copy of the spec made loading
/// quadratic in time and memory; here each schema is compiled on its own, its `#/…`
/// references pointing into the one registered document.
pub struct SharedDocument {
    registry: Registry<'static>,
    /// How the document was closed (`None`: not strict), for the schemas compiled in it.
    closing: Option<Closing>,
}

impl std::fmt::Debug for SharedDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDocument")
    }
}

impl SharedDocument {
    /// Prepares `document` (JSON Schema 2020-12 throughout, as OpenAPI specs are loaded).
    pub fn new(document: &Value, strict: bool) -> Result<SharedDocument, String> {
        let mut document = document.clone();
        bound_integer_formats(&mut document);
        let closing = strict.then(|| {
            let closing = Closing::of(&document, Draft::Draft202012);
            close_document(&mut document, &closing);
            closing
        });
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .retrieve_known_draft_meta_schemas(false)
            .add(DOCUMENT_URI, document)
            .and_then(|builder| builder.prepare())
            .map_err(|e| format!("invalid document: {e}"))?;
        Ok(SharedDocument { registry, closing })
    }
}

impl Schema {
    /// Compiles `schema`, a document of its own. With `strict`, unknown members are
    /// refused wherever the schema does not say otherwise (see `close_objects`).
    pub fn compile(schema: &Value, dialect: Dialect, strict: bool) -> Result<Schema, String> {
        let mut schema = schema.clone();
        let draft = match (schema.get("$schema").and_then(Value::as_str), dialect) {
            (Some(uri), _) if uri.contains("draft-07") => Draft::Draft7,
            (Some(uri), _) if uri.contains("2020-12") => Draft::Draft202012,
            (Some(uri), _) => {
                return Err(format!(
                    "unsupported $schema `{uri}`: use draft 2020-12 or draft 7"
                ));
            }
            (None, Dialect::Draft7) => Draft::Draft7,
            (None, Dialect::Draft202012) => Draft::Draft202012,
        };
        bound_integer_formats(&mut schema);
        if strict {
            close(&mut schema, draft);
        }
        build(&schema, draft, None)
    }

    /// Compiles `schema`, one of `document`'s (a parameter, body or response schema of a
    /// spec): closed as the document was, its local references resolved in it.
    pub fn compile_in(schema: &Value, document: &SharedDocument) -> Result<Schema, String> {
        if let Some(uri) = schema.get("$schema").and_then(Value::as_str)
            && !uri.contains("2020-12")
        {
            return Err(format!(
                "unsupported $schema `{uri}`: schemas in an OpenAPI document are JSON Schema 2020-12"
            ));
        }
        let mut schema = schema.clone();
        bound_integer_formats(&mut schema);
        if let Some(closing) = &document.closing {
            // Pointers from this schema's root: `#/$defs/…` refers to its own (see
            // `rebase_refs`), and the document's `#/components/…` do not occur in it.
            let mut own = Closing::of(&schema, Draft::Draft202012);
            own.open.extend(closing.open.iter().cloned());
            close_objects(&mut schema, Some(String::new()), false, &own);
        }
        rebase_refs(&mut schema, DOCUMENT_URI);
        build(&schema, Draft::Draft202012, Some(&document.registry))
    }

    pub fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Adds the errors of `instance` (up to `MAX_ERRORS` in all) to `out`, in `location`,
    /// pointers prefixed with `prefix` (a parameter's `/name`, or empty for a body).
    pub fn errors(
        &self,
        instance: &Value,
        location: &'static str,
        prefix: &str,
        out: &mut Vec<FieldError>,
    ) {
        // Most requests are valid: the short-circuiting check is several times cheaper.
        if self.validator.is_valid(instance) {
            return;
        }
        // A member a failing part described counts as unevaluated too (the part's
        // annotations are dropped): reported as unknown only when nothing else is wrong there.
        let mut unevaluated = Vec::new();
        for error in self.validator.iter_errors(instance) {
            let at = format!("{prefix}{}", error.instance_path());
            // Unknown and missing members are reported at the member, not at its object.
            let (members, detail) = match error.kind() {
                ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                    unevaluated.extend(unexpected.iter().map(|m| format!("{at}/{}", escape(m))));
                    continue;
                }
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    (unexpected.clone(), "is not allowed here")
                }
                ValidationErrorKind::Required { property } => (
                    property.as_str().map(str::to_owned).into_iter().collect(),
                    "is required",
                ),
                _ => (Vec::new(), ""),
            };
            if members.is_empty() {
                let detail = match error.kind() {
                    // The engine's own text for these quotes the member name sent, which may
                    // be the secret or payload; the name is masked like any value.
                    ValidationErrorKind::PropertyNames { error } => format!(
                        "has a member name that breaks propertyNames: {}",
                        error.masked_with("the name")
                    ),
                    _ => error.masked().to_string(),
                };
                push(out, location, at.clone(), detail);
            }
            for member in members {
                push(
                    out,
                    location,
                    format!("{at}/{}", escape(&member)),
                    detail.to_owned(),
                );
            }
        }
        for member in unevaluated {
            let explained = out.iter().any(|e| {
                e.location == location
                    && (e.pointer == member || e.pointer.starts_with(&format!("{member}/")))
            });
            if !explained {
                push(out, location, member, "is not allowed here".to_owned());
            }
        }
    }
}

/// Why a schema does not compile, with the JSON pointer of the place in it; a pattern the
/// linear-time engine cannot run says so rather than calling it invalid.
fn compile_error(error: &jsonschema::ValidationError<'_>) -> String {
    if let ValidationErrorKind::Format { format } = error.kind()
        && format == "regex"
    {
        return format!(
            "invalid schema: the pattern at {} cannot be used: patterns run on a linear-time \
             engine, and lookaround and backreferences are not supported",
            error.schema_path()
        );
    }
    let at = error.instance_path().to_string();
    format!(
        "invalid schema at {}: {}",
        if at.is_empty() { "/" } else { &at },
        error.masked()
    )
}

/// OpenAPI's `int32` and `int64` formats describe numbers, which JSON Schema's `format`
/// (a string annotation) never checks: they become `minimum`/`maximum` bounds, kept as
/// they are where the schema already asks for tighter ones.
fn bound_integer_formats(root: &mut Value) {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                let range = match map.get("format").and_then(Value::as_str) {
                    Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
                    Some("int64") => Some((i64::MIN, i64::MAX)),
                    _ => None,
                };
                if let Some((low, high)) = range {
                    let tighter =
                        |current: Option<&Value>, bound: i64, keep_max: bool| match current
                            .and_then(Value::as_f64)
                        {
                            Some(c)
                                if (keep_max && c >= bound as f64)
                                    || (!keep_max && c <= bound as f64) =>
                            {
                                current.cloned()
                            }
                            _ => Some(Value::from(bound)),
                        };
                    if let Some(v) = tighter(map.get("minimum"), low, true) {
                        map.insert("minimum".into(), v);
                    }
                    if let Some(v) = tighter(map.get("maximum"), high, false) {
                        map.insert("maximum".into(), v);
                    }
                }
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Why these options: see the module comment. A shared document's registry (if any) is
/// where rebased references resolve.
fn build(
    schema: &Value,
    draft: Draft,
    registry: Option<&Registry<'static>>,
) -> Result<Schema, String> {
    let mut options = jsonschema::options()
        .with_draft(draft)
        .should_validate_formats(true)
        .with_pattern_options(PatternOptions::regex());
    if let Some(registry) = registry {
        options = options.with_registry(registry);
    }
    let validator = options.build(schema).map_err(|e| compile_error(&e))?;
    Ok(Schema { validator })
}

fn push(out: &mut Vec<FieldError>, location: &'static str, pointer: String, detail: String) {
    if out.len() < MAX_ERRORS {
        out.push(FieldError {
            location,
            pointer,
            detail,
        });
    }
}

/// What strict closing needs to know about a whole document (a schema file, or an OpenAPI
/// spec): its dialect, and which local `$ref` targets combinations use.
///
/// Why targets matter: a schema that `allOf` (or a `$ref` with sibling `properties`, or
/// `if`/`then`, …) combines with others must stay open, or it would refuse the members the
/// other parts add; the schema that combines it is closed instead. Where it is closed
/// depends on the dialect: 2020-12 has `unevaluatedProperties`, which sees the members every
/// part evaluated; draft 7 has no such keyword (it ignores it), so the combining schema gets
/// `additionalProperties: false` over the union of its parts' member names.
pub(crate) struct Closing {
    draft: Draft,
    /// Targets (decoded JSON pointers) that stay open at their top level.
    open: HashSet<String>,
    /// The document as written, to read parts' member names through `$ref`s (draft 7 only).
    root: Value,
}

/// Keywords whose subschemas apply to the same object as the schema that holds them: a
/// member one of them describes belongs to that object, so none is closed on its own.
const COMBINING: [&str; 9] = [
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "then",
    "else",
    "not",
    "dependentSchemas",
    "dependencies",
];

/// Keywords beside a 2020-12 `$ref` that add or admit members, so its target must not
/// refuse them (`Child: {$ref: Base, properties: {extra: …}}`).
const MEMBER_SIBLINGS: [&str; 11] = [
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "then",
    "else",
    "dependentSchemas",
];

impl Closing {
    pub(crate) fn of(root: &Value, draft: Draft) -> Closing {
        let mut open = HashSet::new();
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            match node {
                Value::Object(map) => {
                    for part in parts(map, true) {
                        open.extend(
                            part.get("$ref")
                                .and_then(Value::as_str)
                                .and_then(local_target),
                        );
                    }
                    // Draft 7 ignores a `$ref`'s siblings: nothing is combined there.
                    if draft != Draft::Draft7
                        && MEMBER_SIBLINGS.iter().any(|k| map.contains_key(*k))
                    {
                        open.extend(
                            map.get("$ref")
                                .and_then(Value::as_str)
                                .and_then(local_target),
                        );
                    }
                    stack.extend(map.values());
                }
                Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        // An open target that is only a reference leaves what it refers to open too.
        let mut pending: Vec<String> = open.iter().cloned().collect();
        while let Some(target) = pending.pop() {
            let next = (root.pointer(&target))
                .and_then(|node| node.get("$ref"))
                .and_then(Value::as_str)
                .and_then(local_target);
            if let Some(next) = next
                && open.insert(next.clone())
            {
                pending.push(next);
            }
        }
        Closing {
            draft,
            open,
            root: if draft == Draft::Draft7 {
                root.clone()
            } else {
                Value::Null
            },
        }
    }

    fn is_open(&self, at: Option<&str>) -> bool {
        // The root is what gets compiled: it is always closed.
        at.is_some_and(|p| !p.is_empty() && self.open.contains(p))
    }

    fn is_open_target(&self, reference: Option<&Value>) -> bool {
        reference
            .and_then(Value::as_str)
            .and_then(local_target)
            .is_some_and(|t| self.is_open(Some(&t)))
    }
}

/// The subschemas of `map` that apply to its own object (see `COMBINING`), with or
/// without `not`.
fn parts(map: &Map<String, Value>, with_not: bool) -> Vec<&Value> {
    let mut found = Vec::new();
    for keyword in COMBINING.iter().filter(|k| with_not || **k != "not") {
        match map.get(*keyword) {
            Some(Value::Array(items)) if matches!(*keyword, "allOf" | "anyOf" | "oneOf") => {
                found.extend(items)
            }
            Some(Value::Object(members))
                if matches!(*keyword, "dependentSchemas" | "dependencies") =>
            {
                found.extend(members.values().filter(|v| v.is_object()))
            }
            Some(schema @ Value::Object(_))
                if matches!(*keyword, "if" | "then" | "else" | "not") =>
            {
                found.push(schema)
            }
            _ => {}
        }
    }
    found
}

/// The JSON pointer (`~`-escaped, percent-decoded) a same-document `$ref` names.
fn local_target(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    crate::config::openapi::percent_decode(fragment).filter(|p| p.is_empty() || p.starts_with('/'))
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Closes the schemas of a standalone document (a schema file).
fn close(root: &mut Value, draft: Draft) {
    let closing = Closing::of(root, draft);
    close_objects(root, Some(String::new()), false, &closing);
}

/// Closes, in an OpenAPI document, every schema a `$ref` can reach (and every component
/// schema), so the document all of a spec's routes share is the closed one.
fn close_document(document: &mut Value, closing: &Closing) {
    let mut targets = std::collections::BTreeSet::new();
    let mut stack = vec![&*document];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                targets.extend(
                    map.get("$ref")
                        .and_then(Value::as_str)
                        .and_then(local_target),
                );
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    if let Some(Value::Object(schemas)) = document.pointer("/components/schemas") {
        targets.extend(
            schemas
                .keys()
                .map(|name| format!("/components/schemas/{}", escape(name))),
        );
    }
    for target in targets.into_iter().filter(|t| !t.is_empty()) {
        if let Some(node) = document.pointer_mut(&target) {
            close_objects(node, Some(target), false, closing);
        }
    }
}

/// Closes `schema` (at JSON pointer `at` in its document, when known) and the schemas in
/// it. A schema that is a `part` of a combination, or an open target, stays open at its top
/// level; one that says anything about other members (`additionalProperties`,
/// `unevaluatedProperties`) is left as written; otherwise an object schema that lists its
/// members is closed.
fn close_objects(schema: &mut Value, at: Option<String>, part: bool, closing: &Closing) {
    let Value::Object(map) = schema else {
        return;
    };
    let declared =
        map.contains_key("additionalProperties") || map.contains_key("unevaluatedProperties");
    if !part && !declared && !closing.is_open(at.as_deref()) {
        match closing.draft {
            Draft::Draft7 => close_draft7(map, closing),
            _ => {
                let combined = [
                    "allOf",
                    "anyOf",
                    "oneOf",
                    "if",
                    "then",
                    "else",
                    "dependentSchemas",
                ]
                .iter()
                .any(|k| map.contains_key(*k))
                    || closing.is_open_target(map.get("$ref"));
                if combined {
                    map.insert("unevaluatedProperties".into(), Value::Bool(false));
                } else if map.contains_key("properties") || map.contains_key("patternProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
            }
        }
    }
    let child = |suffix: &str| at.as_ref().map(|p| format!("{p}/{suffix}"));
    for (keyword, value) in map.iter_mut() {
        let kw = keyword.as_str();
        match kw {
            "allOf" | "anyOf" | "oneOf" => each_item(value, |i, s| {
                close_objects(s, child(&format!("{kw}/{i}")), true, closing)
            }),
            "if" | "then" | "else" | "not" => close_objects(value, child(kw), true, closing),
            "dependentSchemas" | "dependencies" => each_member(value, |name, s| {
                close_objects(s, child(&format!("{kw}/{}", escape(name))), true, closing)
            }),
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                each_member(value, |name, s| {
                    close_objects(s, child(&format!("{kw}/{}", escape(name))), false, closing)
                })
            }
            "items"
            | "additionalItems"
            | "prefixItems"
            | "additionalProperties"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties" => {
                if value.is_array() {
                    each_item(value, |i, s| {
                        close_objects(s, child(&format!("{kw}/{i}")), false, closing)
                    });
                } else {
                    close_objects(value, child(kw), false, closing);
                }
            }
            _ => {}
        }
    }
}

/// Member names a draft-7 combination's parts describe, and whether one of them admits
/// any other member (then the combination is left open, as its author wrote it).
#[derive(Default)]
struct Members {
    names: std::collections::BTreeSet<String>,
    patterns: std::collections::BTreeSet<String>,
    unbounded: bool,
}

impl Members {
    fn collect(&mut self, schema: &Value, closing: &Closing, seen: &mut HashSet<String>) {
        let Value::Object(map) = schema else {
            return;
        };
        // Draft 7: a `$ref` replaces its siblings.
        if let Some(reference) = map.get("$ref") {
            match reference.as_str().and_then(local_target) {
                Some(target) => {
                    if seen.insert(target.clone()) {
                        match closing.root.pointer(&target) {
                            Some(node) => self.collect(node, closing, seen),
                            None => self.unbounded = true,
                        }
                    }
                }
                None => self.unbounded = true,
            }
            return;
        }
        if !matches!(
            map.get("additionalProperties"),
            None | Some(Value::Bool(false))
        ) {
            self.unbounded = true;
        }
        let keys = |k: &str| {
            (map.get(k).and_then(Value::as_object).into_iter())
                .flat_map(|m| m.keys().cloned())
                .collect::<Vec<_>>()
        };
        self.names.extend(keys("properties"));
        self.patterns.extend(keys("patternProperties"));
        // `not` describes what must not match: its members are not the object's.
        for part in parts(map, false) {
            self.collect(part, closing, seen);
        }
    }
}

/// Draft 7 has no `unevaluatedProperties`: a combination is closed by listing every part's
/// members in its own `properties` (as `true`: the parts check them) beside
/// `additionalProperties: false`. A `$ref` to an open target is wrapped in an `allOf` first,
/// since draft 7 ignores a `$ref`'s siblings.
fn close_draft7(map: &mut Map<String, Value>, closing: &Closing) {
    let via_ref = closing.is_open_target(map.get("$ref"));
    let combined = via_ref
        || (!map.contains_key("$ref")
            && COMBINING
                .iter()
                .any(|k| *k != "not" && map.contains_key(*k)));
    if !combined {
        if !map.contains_key("$ref")
            && (map.contains_key("properties") || map.contains_key("patternProperties"))
        {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
        return;
    }
    let mut members = Members::default();
    members.collect(&Value::Object(map.clone()), closing, &mut HashSet::new());
    if members.unbounded {
        return;
    }
    if via_ref {
        // What draft 7 ignored beside the `$ref` moves with it, still ignored there; the
        // containers of definitions stay where references find them.
        let mut reference = Map::new();
        for key in map.keys().cloned().collect::<Vec<_>>() {
            if !matches!(key.as_str(), "definitions" | "$defs" | "$schema" | "$id") {
                reference.extend(map.remove_entry(&key));
            }
        }
        map.insert("allOf".into(), Value::Array(vec![Value::Object(reference)]));
    }
    for (keyword, found) in [
        ("properties", members.names),
        ("patternProperties", members.patterns),
    ] {
        if found.is_empty() {
            continue;
        }
        let listed = map
            .entry(keyword)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(listed) = listed {
            for name in found {
                listed.entry(name).or_insert(Value::Bool(true));
            }
        }
    }
    map.insert("additionalProperties".into(), Value::Bool(false));
}

/// Makes `schema`'s same-document references point into the shared document at `base`,
/// except those that resolve in `schema` itself (its own `$defs`, as when it was compiled
/// as the root of a copy of the spec); not below a nested `$id` (where `#` means that
/// resource), nor inside data (`const`, `enum`, examples, defaults).
fn rebase_refs(schema: &mut Value, base: &str) {
    let own = schema.clone();
    rebase(schema, &own, base, true);
}

fn rebase(schema: &mut Value, own: &Value, base: &str, top: bool) {
    let Value::Object(map) = schema else {
        if let Value::Array(items) = schema {
            items.iter_mut().for_each(|v| rebase(v, own, base, false));
        }
        return;
    };
    if !top && map.contains_key("$id") {
        return;
    }
    for (key, value) in map.iter_mut() {
        match (key.as_str(), value) {
            ("$ref", Value::String(target)) if target.starts_with('#') => {
                let resolves_here = local_target(target).is_some_and(|t| own.pointer(&t).is_some());
                if !resolves_here {
                    *target = format!("{base}{target}");
                }
            }
            ("const" | "enum" | "examples" | "example" | "default", _) => {}
            // Members named by the schema, each a schema (whatever its name).
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas"
                | "dependencies",
                Value::Object(members),
            ) => members
                .values_mut()
                .for_each(|v| rebase(v, own, base, false)),
            (_, value) => rebase(value, own, base, false),
        }
    }
}

fn each_item(value: &mut Value, mut f: impl FnMut(usize, &mut Value)) {
    if let Value::Array(items) = value {
        items.iter_mut().enumerate().for_each(|(i, v)| f(i, v));
    }
}

fn each_member(value: &mut Value, mut f: impl FnMut(&str, &mut Value)) {
    if let Value::Object(members) = value {
        members.iter_mut().for_each(|(k, v)| f(k, v));
    }
}

#[cfg(test)]
mod tests;
