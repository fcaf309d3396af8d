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
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: &Schema, instance: Value) -> Vec<FieldError> {
        let mut out = Vec::new();
        schema.errors(&instance, "body", "", &mut out);
        out
    }

    #[test]
    fn errors_point_at_the_field_and_never_echo_the_value() {
        let schema = Schema::compile(
            &json!({
                "type": "object",
                "required": ["title", "due"],
                "properties": {
                    "title": {"type": "string", "maxLength": 5},
                    "due": {"type": "string", "format": "date-time"},
                    "id": {"type": "string", "format": "uuid"},
                    "count": {"type": "integer", "minimum": 1}
                }
            }),
            Dialect::Draft202012,
            true,
        )
        .unwrap();
        let found = errors(
            &schema,
            json!({"title": "secret-password-123", "due": "tomorrow", "id": "not-a-uuid", "count": 0, "role": "admin"}),
        );
        let pointers: Vec<&str> = found.iter().map(|e| e.pointer.as_str()).collect();
        for expected in ["/title", "/due", "/id", "/count", "/role"] {
            assert!(pointers.contains(&expected), "{expected} in {found:?}");
        }
        for error in &found {
            for secret in ["secret-password-123", "tomorrow", "not-a-uuid", "admin"] {
                assert!(!error.detail.contains(secret), "{error:?}");
            }
        }
        eprintln!("{found:#?}");
    }

    /// Each rule the issue names, with a value that passes and one that fails at its pointer.
    #[test]
    fn every_rule_passes_and_fails_at_its_pointer() {
        let cases = [
            (
                json!({"type": "string", "format": "date-time"}),
                json!("2026-11-28T10:00:00Z"),
                json!("28/11/2026"),
            ),
            (
                json!({"type": "string", "format": "uuid"}),
                json!("6f1c1a52-3b1e-4c1a-9d2e-0a4b5c6d7e8f"),
                json!("6f1c1a52"),
            ),
            (
                json!({"type": "string", "format": "email"}),
                json!("alice@example.com"),
                json!("alice@"),
            ),
            (
                json!({"type": "string", "format": "uri"}),
                json!("https://example.com/a"),
                json!("not a uri"),
            ),
            (
                json!({"type": "integer", "format": "int32"}),
                json!(2_147_483_647),
                json!(2_147_483_648_i64),
            ),
            (
                json!({"type": "integer", "format": "int64"}),
                json!(-9_000_000_000_i64),
                json!(1.5),
            ),
            (
                json!({"type": "string", "enum": ["open", "shipped"]}),
                json!("open"),
                json!("lost"),
            ),
            (
                json!({"type": "string", "minLength": 2, "maxLength": 3}),
                json!("abc"),
                json!("abcd"),
            ),
            (
                json!({"type": "array", "maxItems": 1}),
                json!([1]),
                json!([1, 2]),
            ),
            (
                json!({"type": "string", "pattern": "^[a-z]+$"}),
                json!("abc"),
                json!("ABC"),
            ),
            (
                json!({"type": "number", "exclusiveMaximum": 10}),
                json!(9.5),
                json!(10),
            ),
        ];
        for (rule, good, bad) in cases {
            let schema = Schema::compile(
                &json!({"type": "object", "properties": {"field": rule}}),
                Dialect::Draft202012,
                true,
            )
            .unwrap();
            assert!(
                schema.is_valid(&json!({"field": good})),
                "{rule} accepts {good}"
            );
            let found = errors(&schema, json!({"field": bad}));
            assert_eq!(found.len(), 1, "{rule} refuses {bad}: {found:?}");
            assert_eq!(found[0].pointer, "/field", "{rule}");
        }
        let required = Schema::compile(
            &json!({"type": "object", "required": ["a"], "properties": {"a": {}}}),
            Dialect::Draft202012,
            true,
        )
        .unwrap();
        assert!(required.is_valid(&json!({"a": 1})));
        assert_eq!(errors(&required, json!({}))[0].pointer, "/a");
    }

    #[test]
    fn combined_schemas_stay_open_to_each_others_members() {
        let root = json!({
            "allOf": [{"$ref": "#/components/schemas/Base"}, {"properties": {"extra": {"type": "string"}}}],
            "components": {"schemas": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}}}
        });
        let schema = Schema::compile(&root, Dialect::Draft202012, true).unwrap();
        assert!(schema.is_valid(&json!({"id": 1, "extra": "x"})));
        assert_eq!(
            errors(&schema, json!({"id": 1, "role": "admin"}))[0].pointer,
            "/role"
        );
    }

    /// `errors` of `instance`, as pointers.
    fn pointers(schema: &Schema, instance: Value) -> Vec<String> {
        errors(schema, instance)
            .into_iter()
            .map(|e| e.pointer)
            .collect()
    }

    /// Issue 6 (a): a schema in `$defs` or `definitions` that a combination uses stays open
    /// to the other parts' members; unknown members are still refused, at their place.
    #[test]
    fn combined_definitions_stay_open_and_the_combination_is_closed() {
        for container in ["$defs", "definitions"] {
            let root = json!({
                "allOf": [
                    {"$ref": format!("#/{container}/Base")},
                    {"properties": {"extra": {"type": "string"}}}
                ],
                container: {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}}
            });
            let schema = Schema::compile(&root, Dialect::Draft202012, true).unwrap();
            assert!(
                schema.is_valid(&json!({"id": 1, "extra": "x"})),
                "{container}"
            );
            assert_eq!(
                pointers(&schema, json!({"id": 1, "role": "admin"})),
                ["/role"],
                "{container}"
            );
            assert_eq!(
                pointers(&schema, json!({"id": "1"})),
                ["/id"],
                "{container}"
            );
        }
    }

    /// Issue 6 (b): 2020-12's `$ref` with sibling `properties` extends the target.
    #[test]
    fn a_ref_with_sibling_properties_extends_its_target() {
        let root = json!({
            "$ref": "#/$defs/Child",
            "$defs": {
                "Base": {"type": "object", "properties": {"id": {"type": "integer"}}},
                "Child": {"$ref": "#/$defs/Alias", "properties": {"extra": {"type": "string"}}},
                // A target that is itself a reference: what it refers to stays open too.
                "Alias": {"$ref": "#/$defs/Base"}
            }
        });
        let schema = Schema::compile(&root, Dialect::Draft202012, true).unwrap();
        assert!(schema.is_valid(&json!({"id": 1, "extra": "x"})));
        assert_eq!(
            pointers(&schema, json!({"id": 1, "extra": "x", "isAdmin": true})),
            ["/isAdmin"]
        );
        assert_eq!(pointers(&schema, json!({"id": 1, "extra": 2})), ["/extra"]);
    }

    /// Issue 6 (c): a member that `then` adds is allowed when the condition holds, and only
    /// then; `if` itself is not closed (closing a condition would change what it tests).
    #[test]
    fn if_then_adds_members_under_its_condition() {
        for draft in [
            "https://json-schema.org/draft/2020-12/schema",
            "http://json-schema.org/draft-07/schema#",
        ] {
            let root = json!({
                "$schema": draft,
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"enum": ["card", "cash"]}},
                "if": {"properties": {"kind": {"const": "card"}}},
                "then": {"required": ["number"], "properties": {"number": {"type": "string"}}},
                "else": {"properties": {"change": {"type": "boolean"}}}
            });
            let schema = Schema::compile(&root, Dialect::Draft202012, true).unwrap();
            assert!(
                schema.is_valid(&json!({"kind": "card", "number": "4111"})),
                "{draft}"
            );
            assert!(
                schema.is_valid(&json!({"kind": "cash", "change": true})),
                "{draft}"
            );
            assert_eq!(
                pointers(
                    &schema,
                    json!({"kind": "card", "number": "4111", "isAdmin": true})
                ),
                ["/isAdmin"],
                "{draft}"
            );
            assert_eq!(
                pointers(&schema, json!({"kind": "card"})),
                ["/number"],
                "{draft}"
            );
        }
        // 2020-12 is exact: a member of the branch not taken is unknown.
        let root = json!({
            "type": "object",
            "properties": {"kind": {"enum": ["card", "cash"]}},
            "if": {"properties": {"kind": {"const": "card"}}},
            "then": {"properties": {"number": {"type": "string"}}}
        });
        let schema = Schema::compile(&root, Dialect::Draft202012, true).unwrap();
        assert_eq!(
            pointers(&schema, json!({"kind": "cash", "number": "4111"})),
            ["/number"]
        );
    }

    /// Issue 6 (d): draft 7 ignores `unevaluatedProperties`, so a draft-7 combination is
    /// closed with `additionalProperties: false` over its parts' members.
    #[test]
    fn draft7_combinations_refuse_unknown_members() {
        let root = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "allOf": [
                {"$ref": "#/definitions/Base"},
                {"properties": {"extra": {"type": "string"}}, "patternProperties": {"^x-": {}}}
            ],
            "definitions": {"Base": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}
        });
        let schema = Schema::compile(&root, Dialect::Draft202012, true).unwrap();
        assert!(schema.is_valid(&json!({"id": 1, "extra": "x", "x-trace": 1})));
        assert_eq!(
            pointers(&schema, json!({"id": 1, "isAdmin": true})),
            ["/isAdmin"]
        );
        assert_eq!(pointers(&schema, json!({"extra": "x"})), ["/id"]);
        // The same when it is the file's own default dialect.
        let mut unmarked = root.clone();
        unmarked.as_object_mut().unwrap().remove("$schema");
        let schema = Schema::compile(&unmarked, Dialect::Draft7, true).unwrap();
        assert_eq!(
            pointers(&schema, json!({"id": 1, "isAdmin": true})),
            ["/isAdmin"]
        );
        // Not strict: left open.
        let schema = Schema::compile(&root, Dialect::Draft202012, false).unwrap();
        assert!(schema.is_valid(&json!({"id": 1, "isAdmin": true})));
    }

    /// Draft 7: a definition that a combination keeps open is closed where it is used on
    /// its own (`$ref` wrapped, since draft 7 ignores a `$ref`'s siblings); a part that
    /// admits any member leaves its combination as written.
    #[test]
    fn draft7_open_definitions_are_closed_where_used() {
        let root = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "base": {"$ref": "#/definitions/Base"},
                "child": {"$ref": "#/definitions/Child"},
                "loose": {"allOf": [{"$ref": "#/definitions/Base"}, {"additionalProperties": true}]}
            },
            "definitions": {
                "Base": {"type": "object", "properties": {"id": {"type": "integer"}}},
                "Child": {"allOf": [{"$ref": "#/definitions/Base"}, {"properties": {"extra": {}}}]}
            }
        });
        let schema = Schema::compile(&root, Dialect::Draft7, true).unwrap();
        assert!(schema.is_valid(&json!({"base": {"id": 1}, "child": {"id": 1, "extra": 2}})));
        assert_eq!(
            pointers(&schema, json!({"base": {"id": 1, "x": 1}})),
            ["/base/x"]
        );
        assert_eq!(
            pointers(&schema, json!({"child": {"id": 1, "x": 1}})),
            ["/child/x"]
        );
        assert_eq!(pointers(&schema, json!({"isAdmin": true})), ["/isAdmin"]);
        assert!(schema.is_valid(&json!({"loose": {"id": 1, "anything": 1}})));
    }

    /// A spec's schemas compiled in the shared document: closed the same way, errors
    /// pointing into the instance (not into the spec).
    #[test]
    fn schemas_in_a_shared_document_are_closed_like_the_document() {
        let spec = json!({
            "openapi": "3.1.0",
            "components": {"schemas": {
                "Base": {"type": "object", "properties": {"id": {"type": "integer", "format": "int32"}}},
                "Child": {"$ref": "#/components/schemas/Base", "properties": {"extra": {"type": "string"}}},
                "Mixed": {"allOf": [{"$ref": "#/components/schemas/Base"}, {"$ref": "#/$defs/Tag"}]},
                "Title": {"type": "object", "properties": {"title": {"type": "string", "maxLength": 3}}}
            }},
            "$defs": {"Tag": {"properties": {"tag": {"type": "string"}}}}
        });
        let strict = SharedDocument::new(&spec, true).unwrap();
        let body = |name: &str, document: &SharedDocument| {
            let reference = format!("#/components/schemas/{name}");
            Schema::compile_in(&json!({"$ref": reference}), document).unwrap()
        };
        let child = body("Child", &strict);
        assert!(child.is_valid(&json!({"id": 1, "extra": "x"})));
        assert_eq!(
            pointers(&child, json!({"id": 1, "isAdmin": true})),
            ["/isAdmin"]
        );
        assert_eq!(pointers(&child, json!({"id": 2_147_483_648_i64})), ["/id"]);
        let mixed = body("Mixed", &strict);
        assert!(mixed.is_valid(&json!({"id": 1, "tag": "x"})));
        assert_eq!(
            pointers(&mixed, json!({"tag": "x", "extra": 1})),
            ["/extra"]
        );
        // Base is kept open for its combinations, and closed where used directly.
        let base = body("Base", &strict);
        assert_eq!(pointers(&base, json!({"id": 1, "extra": "x"})), ["/extra"]);
        let title = body("Title", &strict);
        assert_eq!(pointers(&title, json!({"title": "long"})), ["/title"]);
        // An inline schema (a path's) referring into the document is closed too.
        let inline = json!({"type": "object", "properties": {"base": {"$ref": "#/components/schemas/Base"}}});
        let inline = Schema::compile_in(&inline, &strict).unwrap();
        assert_eq!(
            pointers(&inline, json!({"base": {"id": 1}, "x": 1})),
            ["/x"]
        );
        assert_eq!(pointers(&inline, json!({"base": {"x": 1}})), ["/base/x"]);
        // Not strict: nothing closed.
        let open = SharedDocument::new(&spec, false).unwrap();
        assert!(body("Child", &open).is_valid(&json!({"id": 1, "isAdmin": true})));
        assert!(body("Base", &open).is_valid(&json!({"id": 1, "isAdmin": true})));
    }

    /// An operation's inline schema: its own `$defs` resolve in it (and stay open for its
    /// combinations), a member named like a keyword (`default`) is still a schema whose
    /// reference resolves in the document, and `const` data is not a reference.
    #[test]
    fn inline_schemas_keep_their_own_definitions() {
        let spec = json!({
            "openapi": "3.1.0",
            "components": {"schemas": {"Owner": {"type": "object", "properties": {"name": {"type": "string"}}}}}
        });
        let inline = json!({
            "allOf": [{"$ref": "#/$defs/Base"}, {"properties": {
                "default": {"$ref": "#/components/schemas/Owner"},
                "marker": {"const": {"$ref": "#/x"}}
            }}],
            "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}}}
        });
        let document = SharedDocument::new(&spec, true).unwrap();
        let schema = Schema::compile_in(&inline, &document).unwrap();
        assert!(
            schema.is_valid(&json!({"id": 1, "default": {"name": "a"}, "marker": {"$ref": "#/x"}}))
        );
        assert_eq!(
            pointers(&schema, json!({"id": 1, "isAdmin": true})),
            ["/isAdmin"]
        );
        assert_eq!(
            pointers(&schema, json!({"default": {"name": "a", "isAdmin": true}})),
            ["/default/isAdmin"]
        );
    }

    #[test]
    fn backtracking_patterns_are_refused_at_load() {
        let lookahead = json!({"type": "string", "pattern": "^(?=a)a+$"});
        let refused = Schema::compile(&lookahead, Dialect::Draft202012, true).unwrap_err();
        assert!(refused.contains("the pattern at /pattern"), "{refused}");
        assert!(refused.contains("lookaround and backreferences are not supported"));
        let backreference = json!({"properties": {"a": {"pattern": "^(a)\\1$"}}});
        let refused = Schema::compile(&backreference, Dialect::Draft202012, true).unwrap_err();
        assert!(refused.contains("/properties/a/pattern"), "{refused}");
        let wrong = Schema::compile(&json!({"type": 5}), Dialect::Draft202012, true).unwrap_err();
        assert!(wrong.starts_with("invalid schema at /type: "), "{wrong}");
    }
}
