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
use jsonschema::{Draft, PatternOptions, Validator};
use serde_json::Value;

/// One thing wrong with the input: where (`in`: `body`, `query`, `path`, `header`,
/// `cookie`; `pointer`: RFC 6901 within it) and which rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    #[serde(rename = "in")]
    pub location: &'static str,
    pub pointer: String,
    pub detail: String,
}

/// At most this many errors are reported for one request (the first ones found).
pub const MAX_ERRORS: usize = 20;

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

impl Schema {
    /// Compiles `schema`. With `strict`, every object schema that lists `properties` and
    /// says nothing about other members gets `additionalProperties: false` (see
    /// `close_objects`), so unknown fields are refused (mass assignment).
    pub fn compile(schema: &Value, dialect: Dialect, strict: bool) -> Result<Schema, String> {
        let mut schema = schema.clone();
        bound_integer_formats(&mut schema);
        if strict {
            close(&mut schema);
        }
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
        let validator = jsonschema::options()
            .with_draft(draft)
            .should_validate_formats(true)
            .with_pattern_options(PatternOptions::regex())
            .build(&schema)
            .map_err(|e| compile_error(&e))?;
        Ok(Schema { validator })
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
        for error in self.validator.iter_errors(instance) {
            let at = format!("{prefix}{}", error.instance_path());
            // Unknown and missing members are reported at the member, not at its object.
            let (members, detail) = match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected }
                | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
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
                let escaped = member.replace('~', "~0").replace('/', "~1");
                push(out, location, format!("{at}/{escaped}"), detail.to_owned());
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

fn push(out: &mut Vec<FieldError>, location: &'static str, pointer: String, detail: String) {
    if out.len() < MAX_ERRORS {
        out.push(FieldError {
            location,
            pointer,
            detail,
        });
    }
}

/// Adds `additionalProperties: false` to object schemas that list `properties` and leave
/// other members open. Schemas combined by `allOf`/`anyOf`/`oneOf` are left open (closing
/// each part would refuse the other parts' members); the combining schema gets
/// `unevaluatedProperties: false` instead, which sees every part's members (2020-12). The
/// same holds for a component schema that some combination refers to by `$ref`.
fn close(root: &mut Value) {
    let mut combined = HashSet::new();
    combined_refs(root, &mut combined);
    if let Some(Value::Object(schemas)) = root.pointer_mut("/components/schemas") {
        for (name, schema) in schemas.iter_mut() {
            let target = format!(
                "#/components/schemas/{}",
                name.replace('~', "~0").replace('/', "~1")
            );
            close_objects(schema, combined.contains(&target), &combined);
        }
    }
    close_objects(root, false, &combined);
}

/// Every `$ref` that is directly one of the parts of an `allOf`/`anyOf`/`oneOf`.
fn combined_refs(value: &Value, found: &mut HashSet<String>) {
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            Value::Object(map) => {
                for (key, child) in map {
                    if let ("allOf" | "anyOf" | "oneOf", Value::Array(parts)) =
                        (key.as_str(), child)
                    {
                        found.extend(
                            (parts.iter())
                                .filter_map(|p| p.get("$ref").and_then(Value::as_str))
                                .map(str::to_owned),
                        );
                    }
                    stack.push(child);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

fn close_objects(schema: &mut Value, in_combination: bool, combined_components: &HashSet<String>) {
    let Value::Object(map) = schema else {
        return;
    };
    let combined = ["allOf", "anyOf", "oneOf"]
        .iter()
        .any(|k| map.contains_key(*k));
    let open =
        !map.contains_key("additionalProperties") && !map.contains_key("unevaluatedProperties");
    // A direct use of a component that combinations keep open: closed here instead, with
    // `unevaluatedProperties`, which sees the members the `$ref` evaluated.
    let open_component = (map.get("$ref").and_then(Value::as_str))
        .is_some_and(|target| combined_components.contains(target));
    if open && !in_combination {
        if combined || open_component {
            map.insert("unevaluatedProperties".into(), Value::Bool(false));
        } else if map.contains_key("properties") {
            map.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
    for (keyword, value) in map.iter_mut() {
        match keyword.as_str() {
            "allOf" | "anyOf" | "oneOf" => {
                each_item(value, |s| close_objects(s, true, combined_components))
            }
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                each_member(value, |s| close_objects(s, false, combined_components))
            }
            "items"
            | "additionalProperties"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties" => {
                if value.is_array() {
                    each_item(value, |s| close_objects(s, false, combined_components));
                } else {
                    close_objects(value, false, combined_components);
                }
            }
            "prefixItems" => each_item(value, |s| close_objects(s, false, combined_components)),
            _ => {}
        }
    }
}

fn each_item(value: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Value::Array(items) = value {
        items.iter_mut().for_each(&mut f);
    }
}

fn each_member(value: &mut Value, mut f: impl FnMut(&mut Value)) {
    if let Value::Object(members) = value {
        members.values_mut().for_each(&mut f);
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
