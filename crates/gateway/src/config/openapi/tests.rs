//! Loading OpenAPI documents: versions, references, strictness, the 3.0 upgrade.

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
        Some(json!({"roles": ["customer"], "owner": {"field": "/ownerId", "on_create": "set"}}))
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
    let spec = ok(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openapi/petstore-3.0.json"
    )));
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
        Some(json!({"type": "integer", "format": "int32", "exclusiveMinimum": 0, "maximum": 100}))
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
    assert!(
        e.starts_with(
            "remote $dynamicRef `https://x.example/tree#node` at /components/schemas/T/$dynamicRef"
        ),
        "{e}"
    );
    // Local ones are fine, and left alone.
    let spec = ok(&with_ref("#/components/schemas/B"));
    assert_eq!(
        spec.operations[0].responses[0].1[0].1,
        Some(json!({"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}}))
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
