//! A JSON request body through the validation steps the gateway runs (`validate`): the
//! nesting check before parsing (`depth::exceeds`), the strict parse that refuses
//! duplicate members (`authz::json::parse_strict`), and a fixed strict schema.
//!
//! Invariants: the depth scan agrees with the parsed document's real depth; the parsed
//! document re-serializes to text that parses back to the same document (what is
//! validated is what is sent); errors are capped, point into the body, and exist exactly
//! when the document is invalid.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade_gateway::authz::json::parse_strict;
use palisade_gateway::validate::depth;
use palisade_gateway::validate::schema::{Dialect, MAX_ERRORS, Schema};
use serde_json::{Value, json};

const MAX_DEPTH: usize = 32;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = json!({
            "type": "object",
            "required": ["item", "quantity"],
            "properties": {
                "item": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z][a-z0-9-]*$" },
                "quantity": { "type": "integer", "format": "int32", "minimum": 1, "maximum": 1000 },
                "price": { "type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01 },
                "email": { "type": "string", "format": "email" },
                "due": { "type": "string", "format": "date-time" },
                "id": { "type": "string", "format": "uuid" },
                "tags": { "type": "array", "items": { "type": "string" }, "uniqueItems": true, "maxItems": 8 },
                "address": {
                    "type": "object",
                    "properties": {
                        "street": { "type": "string" },
                        "zip": { "type": "string", "pattern": "^[0-9]{5}$" }
                    }
                },
                "payment": {
                    "oneOf": [
                        { "type": "object", "properties": { "card": { "type": "string" } }, "required": ["card"] },
                        { "type": "object", "properties": { "iban": { "type": "string" } }, "required": ["iban"] }
                    ]
                },
                "status": { "enum": ["new", "paid", null] },
                "note": { "type": ["string", "null"], "maxLength": 280 }
            }
        });
        Schema::compile(&schema, Dialect::Draft202012, true).expect("the fuzz schema compiles")
    })
}

fn depth_of(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let too_deep = depth::exceeds(data, MAX_DEPTH);
    // The gateway stops here when too deep; the target parses anyway (serde_json's own
    // recursion limit holds) to check the scan against the real depth.
    let Ok(document) = parse_strict(data) else {
        return;
    };
    assert_eq!(
        too_deep,
        depth_of(&document) > MAX_DEPTH,
        "depth scan disagrees"
    );
    if too_deep {
        return;
    }
    let sent = serde_json::to_vec(&document).expect("a parsed document serializes");
    assert_eq!(parse_strict(&sent).expect("what is sent parses"), document);

    let schema = schema();
    let mut errors = Vec::new();
    schema.errors(&document, "body", "", &mut errors);
    assert!(errors.len() <= MAX_ERRORS);
    assert_eq!(errors.is_empty(), schema.is_valid(&document));
    for error in &errors {
        assert_eq!(error.location, "body");
        assert!(
            error.pointer.is_empty() || error.pointer.starts_with('/'),
            "{error:?}"
        );
    }
});
