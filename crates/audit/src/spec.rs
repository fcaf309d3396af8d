//! What the audit reads from an OpenAPI 3.0/3.1 document.
//!
//! Input: the document (YAML or JSON). Output: its [`Operation`]s with method, path,
//! whether they are public, path parameters and the JSON request body schema (local `$ref`s
//! resolved), and [`Spec::example`], which builds a body that matches a schema, so probes
//! reach the API's logic instead of its parser. Failure: a document that does not parse, or
//! has no `paths`, is a usage error. Remote `$ref`s are never fetched.
//!
//! An operation is public when its `security` (or the document's) is an empty list, or its
//! `x-palisade` says `auth: public`; everything else is expected to need credentials.

use std::path::Path;

use serde_json::{Map, Value, json};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

#[derive(Debug, Clone)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// The path template (`/api/orders/{id}`).
    pub path: String,
    pub operation_id: Option<String>,
    pub public: bool,
    /// Only an admin role may call it (`x-palisade.roles` all admin-like, or `x-admin: true`).
    pub admin_only: bool,
    /// Names of the template's path parameters.
    pub path_params: Vec<String>,
    /// The `application/json` request body schema, references resolved lazily by [`Spec`].
    pub body_schema: Option<Value>,
    pub body_required: bool,
}

impl Operation {
    /// `GET /api/orders/{id}`.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path with each parameter replaced by `value(name)`, percent-encoded.
    pub fn fill(&self, value: impl Fn(&str) -> String) -> String {
        let mut path = self.path.clone();
        for name in &self.path_params {
            let encoded: String = url::form_urlencoded::byte_serialize(value(name).as_bytes())
                .collect::<String>()
                .replace('+', "%20");
            path = path.replace(&format!("{{{name}}}"), &encoded);
        }
        path
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub doc: Value,
    pub operations: Vec<Operation>,
}

impl Spec {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Value = match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(_) => yaml_serde::from_str(text)
                .map_err(|e| format!("not an OpenAPI document (YAML or JSON): {e}"))?,
        };
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the document has no `paths`")?;
        let global_public = doc
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        let mut operations = Vec::new();
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let path_params = template_params(path);
            for method in METHODS {
                let Some(op) = item.get(method).and_then(Value::as_object) else {
                    continue;
                };
                let x = op.get("x-palisade");
                let public = match op.get("security").and_then(Value::as_array) {
                    Some(list) => list.is_empty(),
                    None => global_public,
                } || x.and_then(|x| x.get("auth")).and_then(Value::as_str)
                    == Some("public");
                let roles: Vec<&str> = x
                    .and_then(|x| x.get("roles"))
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let admin_only = op.get("x-admin").and_then(Value::as_bool) == Some(true)
                    || (!roles.is_empty() && roles.iter().all(|r| r.contains("admin")));
                let body = op.get("requestBody");
                let body_schema = body
                    .and_then(|b| b.get("content"))
                    .and_then(Value::as_object)
                    .and_then(|content| {
                        content
                            .iter()
                            .find(|(t, _)| t.contains("json"))
                            .and_then(|(_, media)| media.get("schema"))
                    })
                    .cloned();
                operations.push(Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    operation_id: op
                        .get("operationId")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    public,
                    admin_only,
                    path_params: path_params.clone(),
                    body_required: body
                        .and_then(|b| b.get("required"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    body_schema,
                });
            }
        }
        Ok(Spec { doc, operations })
    }

    /// Follows a local `$ref` (`#/components/schemas/Order`), up to 32 hops.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            let Some(pointer) = reference.strip_prefix('#') else {
                return schema;
            };
            match self.doc.pointer(pointer) {
                Some(target) => schema = target,
                None => return schema,
            }
        }
        schema
    }

    /// The operation with this method and path template.
    pub fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|op| op.method == method && op.path == path)
    }

    /// The operation a concrete request was sent to (`GET /things/42?x=1` →
    /// `GET /things/{id}`): every literal segment equal, every `{param}` segment any
    /// non-empty one; among several, the one with the fewest parameters (`/things/mine`
    /// before `/things/{id}`).
    pub fn operation_for(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method == method)
            .filter(|op| {
                let template: Vec<&str> = op.path.trim_end_matches('/').split('/').collect();
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.contains('{') && !s.is_empty()))
            })
            .min_by_key(|op| op.path_params.len())
    }

    /// A value that matches `schema`: examples and defaults first, then required members
    /// (or every member when none is required), values within the stated bounds.
    pub fn example(&self, schema: &Value) -> Value {
        self.example_at(schema, 0)
    }

    /// [`Spec::example`] when it is a JSON object, else an empty object: a body the audit
    /// can add members to (a schema's `example` may be a string or a list).
    pub fn object_example(&self, schema: &Value) -> Value {
        match self.example(schema) {
            object @ Value::Object(_) => object,
            _ => json!({}),
        }
    }

    fn example_at(&self, schema: &Value, depth: usize) -> Value {
        let schema = self.resolve(schema);
        if depth > 8 {
            return Value::Null;
        }
        for key in ["const", "example", "default"] {
            if let Some(v) = schema.get(key) {
                return v.clone();
            }
        }
        if let Some(v) = schema
            .get("examples")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return v.clone();
        }
        if let Some(v) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.iter().find(|v| !v.is_null()))
        {
            return v.clone();
        }
        for combinator in ["allOf", "oneOf", "anyOf"] {
            if let Some(first) = schema
                .get(combinator)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                if combinator == "allOf" {
                    let mut merged = Map::new();
                    for part in schema[combinator].as_array().into_iter().flatten() {
                        if let Value::Object(m) = self.example_at(part, depth + 1) {
                            merged.extend(m);
                        }
                    }
                    return Value::Object(merged);
                }
                return self.example_at(first, depth + 1);
            }
        }
        match schema_type(schema).as_deref() {
            Some("object") => {
                let props = schema.get("properties").and_then(Value::as_object);
                let required: Vec<&str> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut out = Map::new();
                if let Some(props) = props {
                    for (name, prop) in props {
                        if required.is_empty() || required.contains(&name.as_str()) {
                            out.insert(name.clone(), self.example_at(prop, depth + 1));
                        }
                    }
                }
                Value::Object(out)
            }
            Some("array") => {
                let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                match schema.get("items") {
                    Some(items) if min > 0 => json!([self.example_at(items, depth + 1)]),
                    _ => json!([]),
                }
            }
            Some("integer") => json!(number_in(schema) as i64),
            Some("number") => json!(number_in(schema)),
            Some("boolean") => json!(false),
            Some("null") => Value::Null,
            _ => json!(string_for(schema, "palisade-audit")),
        }
    }

    /// The free-text string members of an object schema (no pattern, enum or format): where
    /// the audit can put a marker that identifies its own objects.
    pub fn text_members(&self, schema: &Value) -> Vec<String> {
        let schema = self.resolve(schema);
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        props
            .iter()
            .filter(|(_, p)| {
                let p = self.resolve(p);
                schema_type(p).as_deref() == Some("string")
                    && p.get("pattern").is_none()
                    && p.get("enum").is_none()
                    && p.get("format").is_none()
                    && p.get("maxLength").and_then(Value::as_u64).unwrap_or(100) >= 24
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The schema's type (the first non-null one of a list).
pub fn schema_type(schema: &Value) -> Option<String> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(t.clone()),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .map(str::to_owned),
        _ if schema.get("properties").is_some() => Some("object".to_owned()),
        _ => None,
    }
}

fn number_in(schema: &Value) -> f64 {
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    let value = min.map_or(1.0, |m| m.max(1.0));
    match max {
        Some(max) if value > max => max,
        _ => value,
    }
}

/// A string that fits the schema's format, pattern and length, when one of a few
/// candidates does; otherwise `fallback`.
pub fn string_for(schema: &Value, fallback: &str) -> String {
    let candidates: Vec<String> = match schema.get("format").and_then(Value::as_str) {
        Some("date") => vec!["2030-01-31".into()],
        Some("date-time") => vec!["2030-01-31T12:00:00Z".into()],
        Some("email") => vec!["audit@example.com".into()],
        Some("uuid") => vec!["6f1c1e8e-3b7a-4c1e-9a53-0c0b7c5d2a11".into()],
        Some("uri") | Some("url") => vec!["https://example.com/".into()],
        _ => vec![
            fallback.to_owned(),
            "audit".into(),
            "1".into(),
            "2030-01-31".into(),
            "audit@example.com".into(),
        ],
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX) as usize;
    let pattern = schema
        .get("pattern")
        .and_then(Value::as_str)
        .and_then(|p| regex::Regex::new(p).ok());
    let fits = |c: &String| {
        let n = c.chars().count();
        n >= min && n <= max && pattern.as_ref().is_none_or(|re| re.is_match(c))
    };
    candidates
        .iter()
        .find(|c| fits(c))
        .cloned()
        .unwrap_or_else(|| {
            let mut s = fallback.to_owned();
            while s.chars().count() < min {
                s.push('x');
            }
            s.chars().take(max.max(1)).collect()
        })
}

/// `{id}` names in a path template.
fn template_params(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../examples/openapi.yaml");

    #[test]
    fn the_sample_spec_yields_its_operations_and_public_login() {
        let spec = Spec::parse(SAMPLE).unwrap();
        let login = spec.find("POST", "/api/login").unwrap();
        assert!(login.public);
        let get = spec.find("GET", "/api/orders/{id}").unwrap();
        assert!(!get.public);
        assert_eq!(get.path_params, ["id"]);
        assert_eq!(get.fill(|_| "a b/".into()), "/api/orders/a%20b%2F");
        assert_eq!(spec.operations.len(), 10);
    }

    #[test]
    fn examples_match_their_schemas() {
        let spec = Spec::parse(SAMPLE).unwrap();
        let create = spec.find("POST", "/api/orders").unwrap();
        let body = spec.example(create.body_schema.as_ref().unwrap());
        assert_eq!(body, json!({"item": "palisade-audit", "quantity": 1}));
        let task = spec.find("POST", "/api/tasks").unwrap();
        let body = spec.example(task.body_schema.as_ref().unwrap());
        assert_eq!(body, json!({"title": "palisade-audit", "done": false}));
        let update = spec.find("PUT", "/api/orders/{id}").unwrap();
        let body = spec.example(update.body_schema.as_ref().unwrap());
        assert_eq!(body, json!({"item": "palisade-audit", "quantity": 1}));
        let login = spec.find("POST", "/api/login").unwrap();
        let body = spec.example(login.body_schema.as_ref().unwrap());
        assert_eq!(body["username"], "palisade-audit");
        assert_eq!(
            spec.text_members(create.body_schema.as_ref().unwrap())[0],
            "item"
        );
    }

    #[test]
    fn an_example_that_is_not_an_object_still_gives_an_object_body() {
        let spec = Spec::parse(r#"{"paths": {}}"#).unwrap();
        let schema = json!({"type": "object", "example": "a string",
                            "properties": {"name": {"type": "string"}}});
        assert_eq!(spec.example(&schema), json!("a string"));
        let mut body = spec.object_example(&schema);
        body["name"] = json!("x"); // would panic on a string
        assert_eq!(body, json!({"name": "x"}));
    }
}
