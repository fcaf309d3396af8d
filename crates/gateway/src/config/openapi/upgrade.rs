//! OpenAPI 3.0 schemas rewritten in place as JSON Schema 2020-12.
//!
//! Every schema the document can use is visited: those in `components.schemas` and every
//! schema under a parameter, header, media type, request body, response, path item,
//! operation or callback, recursing through the subschema keywords, plus every target of a
//! local `$ref` met on the way (a schema kept under an `x-` key, say). The rewrite is
//! idempotent, so reaching a schema twice is harmless.

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
                ("allOf" | "anyOf" | "oneOf" | "prefixItems" | "items", Value::Array(schemas)) => {
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
