//! Compiling and running JSON Schema: every rule, closing unknown members, errors that never echo a value.

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
    let inline =
        json!({"type": "object", "properties": {"base": {"$ref": "#/components/schemas/Base"}}});
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
