//! Strict by default, end to end (issue 6): unknown body members are refused wherever the
//! schema does not admit them, and members a combination adds are accepted: `allOf` over a
//! `$defs`/`definitions` schema, 2020-12's `$ref` beside `properties`, `if`/`then`, and
//! draft 7 (which has no `unevaluatedProperties`). Also: a spec of 300 operations loads, and
//! the JSON depth limit reaches as deep as the parser reads.

use palisade_testkit::{GatewayProcess, RecordingUpstream};
use serde_json::{Value, json};

/// OpenAPI 3.1: each schema combines a component that stays open for it.
const SPEC: &str = r##"
openapi: 3.1.0
info: { title: Accounts, version: "1" }
paths:
  /child:
    post:
      operationId: child
      x-palisade: { auth: public }
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Child" } } }
      responses: { "200": { description: ok } }
  /mixed:
    post:
      operationId: mixed
      x-palisade: { auth: public }
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Mixed" } } }
      responses: { "200": { description: ok } }
  /payment:
    post:
      operationId: payment
      x-palisade: { auth: public }
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Payment" } } }
      responses: { "200": { description: ok } }
  /base:
    post:
      operationId: base
      x-palisade: { auth: public }
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Base" } } }
      responses: { "200": { description: ok } }
components:
  schemas:
    Base:
      type: object
      required: [id]
      properties: { id: { type: integer } }
    Child:
      $ref: "#/components/schemas/Base"
      properties: { extra: { type: string } }
    Mixed:
      allOf:
        - $ref: "#/components/schemas/Mixed/$defs/Tagged"
        - properties: { extra: { type: string } }
      $defs:
        Tagged: { type: object, properties: { tag: { type: string } } }
    Payment:
      type: object
      required: [kind]
      properties: { kind: { enum: [card, cash] } }
      if: { properties: { kind: { const: card } } }
      then: { required: [number], properties: { number: { type: string } } }
"##;

/// A draft-7 file: `allOf` over `definitions` (draft 7 ignores `unevaluatedProperties`).
const DRAFT7: &str = r##"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "allOf": [
    { "$ref": "#/definitions/Base" },
    { "properties": { "extra": { "type": "string" } } }
  ],
  "definitions": {
    "Base": { "type": "object", "required": ["id"], "properties": { "id": { "type": "integer" } } }
  }
}"##;

/// A 2020-12 file: `allOf` over `$defs`.
const DEFS: &str = r##"{
  "allOf": [
    { "$ref": "#/$defs/Base" },
    { "properties": { "extra": { "type": "string" } } }
  ],
  "$defs": {
    "Base": { "type": "object", "properties": { "id": { "type": "integer" } } }
  }
}"##;

fn start_spec(upstream: &RecordingUpstream, spec: &str, strict: bool) -> GatewayProcess {
    let config = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\nurl = \"{}\"\n\n\
         [openapi]\nspec = \"openapi.yaml\"\nupstream = \"app\"\nstrict = {strict}\n",
        upstream.url()
    );
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .file("openapi.yaml", spec)
        .start()
}

fn start_files(upstream: &RecordingUpstream) -> GatewayProcess {
    let route = |name: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nmethods = [\"POST\"]\n\
             upstream = \"app\"\nauth = \"public\"\nvalidate = {{ body = \"{name}.json\" }}\n\n"
        )
    };
    let config = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"app\"\nurl = \"{}\"\n\n{}{}",
        upstream.url(),
        route("draft7"),
        route("defs"),
    );
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .file("draft7.json", DRAFT7)
        .file("defs.json", DEFS)
        .start()
}

/// POSTs `body` to `path`: `Ok(())` when it reached the upstream as sent, or the error
/// pointers of the 400 (when the upstream saw nothing).
async fn post(
    gw: &GatewayProcess,
    upstream: &RecordingUpstream,
    path: &str,
    body: Value,
) -> Result<(), Vec<String>> {
    let before = upstream.requests().len();
    let response = reqwest::Client::new()
        .post(format!("{}{path}", gw.http_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => {
            let received: Value = serde_json::from_slice(&upstream.last().unwrap().body).unwrap();
            assert_eq!(received, body, "{path}");
            Ok(())
        }
        400 => {
            assert_eq!(
                upstream.requests().len(),
                before,
                "{path}: nothing forwarded"
            );
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["type"], "urn:palisade:problem:invalid-request");
            Err((problem["errors"].as_array().unwrap().iter())
                .map(|e| {
                    assert_eq!(e["in"], "body", "{e}");
                    e["pointer"].as_str().unwrap().to_owned()
                })
                .collect())
        }
        other => panic!("{path}: unexpected {other}"),
    }
}

fn refused(pointers: &[&str]) -> Result<(), Vec<String>> {
    Err(pointers.iter().map(|p| p.to_string()).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spec_accepts_what_its_combinations_add_and_refuses_the_rest() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_spec(&upstream, SPEC, true);
    let post = |path: &'static str, body: Value| post(&gw, &upstream, path, body);

    // `$ref` beside `properties` (2020-12): both the target's members and the sibling's.
    assert_eq!(post("/child", json!({"id": 1, "extra": "x"})).await, Ok(()));
    assert_eq!(
        post("/child", json!({"id": 1, "extra": "x", "isAdmin": true})).await,
        refused(&["/isAdmin"])
    );
    assert_eq!(
        post("/child", json!({"extra": "x"})).await,
        refused(&["/id"])
    );
    // `allOf` over a schema in `$defs`.
    assert_eq!(
        post("/mixed", json!({"tag": "a", "extra": "x"})).await,
        Ok(())
    );
    assert_eq!(
        post("/mixed", json!({"tag": "a", "role": "admin"})).await,
        refused(&["/role"])
    );
    // `if`/`then` adds `number` for cards, and only for cards.
    assert_eq!(
        post("/payment", json!({"kind": "card", "number": "4111"})).await,
        Ok(())
    );
    assert_eq!(post("/payment", json!({"kind": "cash"})).await, Ok(()));
    assert_eq!(
        post("/payment", json!({"kind": "cash", "number": "4111"})).await,
        refused(&["/number"])
    );
    assert_eq!(
        post(
            "/payment",
            json!({"kind": "card", "number": "4111", "isAdmin": true})
        )
        .await,
        refused(&["/isAdmin"])
    );
    // The component the combinations keep open is closed where it is used on its own.
    assert_eq!(post("/base", json!({"id": 1})).await, Ok(()));
    assert_eq!(
        post("/base", json!({"id": 1, "extra": "x"})).await,
        refused(&["/extra"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_false_keeps_a_specs_schemas_open() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_spec(&upstream, SPEC, false);
    let post = |path: &'static str, body: Value| post(&gw, &upstream, path, body);
    assert_eq!(post("/base", json!({"id": 1, "extra": "x"})).await, Ok(()));
    assert_eq!(
        post("/child", json!({"id": 1, "isAdmin": true})).await,
        Ok(())
    );
    // Still checked: types and required members.
    assert_eq!(post("/child", json!({"id": "1"})).await, refused(&["/id"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_files_in_draft_7_and_2020_12_refuse_unknown_members_of_combinations() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_files(&upstream);
    let post = |path: &'static str, body: Value| post(&gw, &upstream, path, body);
    for path in ["/draft7", "/defs"] {
        assert_eq!(
            post(path, json!({"id": 1, "extra": "x"})).await,
            Ok(()),
            "{path}"
        );
        assert_eq!(
            post(path, json!({"id": 1, "isAdmin": true})).await,
            refused(&["/isAdmin"]),
            "{path}"
        );
        assert_eq!(
            post(path, json!({"id": 1, "extra": 2})).await,
            refused(&["/extra"]),
            "{path}"
        );
    }
}

/// Loading used to compile every schema in its own copy of the spec (quadratic: a
/// 300-operation spec took minutes and gigabytes); now it starts within the usual
/// readiness wait, and every operation validates.
#[tokio::test(flavor = "multi_thread")]
async fn a_spec_of_300_operations_loads_and_validates_each() {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for i in 0..300 {
        schemas.insert(
            format!("Item{i}"),
            json!({
                "type": "object",
                "required": ["title"],
                "properties": {
                    "title": {"type": "string", "maxLength": 200},
                    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
                    "owner": {"$ref": "#/components/schemas/Owner"},
                    "description": {"type": "string", "description": "x".repeat(300)}
                }
            }),
        );
        let item = json!({"$ref": format!("#/components/schemas/Item{i}")});
        paths.insert(
            format!("/items{i}/{{id}}"),
            json!({"put": {
                "operationId": format!("put{i}"),
                "x-palisade": {"auth": "public"},
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": item}}},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": item}}}}
            }}),
        );
    }
    schemas.insert(
        "Owner".into(),
        json!({"type": "object", "properties": {"name": {"type": "string"}}}),
    );
    let spec = json!({
        "openapi": "3.1.0",
        "info": {"title": "Big", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas}
    });
    let upstream = RecordingUpstream::start().await;
    let gw = start_spec(&upstream, &spec.to_string(), true);
    let client = reqwest::Client::new();
    for i in [0, 150, 299] {
        let url = format!("{}/items{i}/7", gw.http_url());
        let ok = client
            .put(&url)
            .json(&json!({"title": "t", "owner": {"name": "a"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200, "{url}");
        let bad = client
            .put(&url)
            .json(&json!({"title": "t", "owner": {"name": "a", "isAdmin": true}}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{url}");
        let problem: Value = bad.json().await.unwrap();
        assert_eq!(
            problem["errors"],
            json!([{"in": "body", "pointer": "/owner/isAdmin", "detail": "is not allowed here"}])
        );
    }
}

fn depth_config(upstream: &RecordingUpstream, depth: usize) -> String {
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n\n[limits]\nmax_json_depth = {depth}\n\n\
         [[upstream]]\nname = \"app\"\nurl = \"{}\"\n\n[[route]]\nname = \"any\"\n\
         path = \"/any\"\nmethods = [\"POST\"]\nupstream = \"app\"\nauth = \"public\"\n\
         validate = {{ body = \"any.json\" }}\n",
        upstream.url()
    )
}

/// `limits.max_json_depth` goes no higher than the parser reads (127), so a body past the
/// limit is told why: its nesting, not "not valid JSON".
#[tokio::test(flavor = "multi_thread")]
async fn the_depth_limit_goes_as_deep_as_the_parser_and_names_the_problem() {
    let upstream = RecordingUpstream::start().await;
    let (code, _, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(depth_config(&upstream, 128))
        .file("any.json", r#"{"type": "array"}"#)
        .run_to_exit(std::time::Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("limits.max_json_depth") && stderr.contains("must be between 1 and 127"),
        "{stderr}"
    );

    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(depth_config(&upstream, 127))
        .file("any.json", r#"{"type": "array"}"#)
        .start();
    let send = |depth: usize| {
        reqwest::Client::new()
            .post(format!("{}/any", gw.http_url()))
            .header("content-type", "application/json")
            .body("[".repeat(depth) + &"]".repeat(depth))
            .send()
    };
    let deepest = send(127).await.unwrap();
    assert_eq!(deepest.status(), 200);
    assert_eq!(
        upstream.last().unwrap().body_str(),
        "[".repeat(127) + &"]".repeat(127)
    );
    let deeper = send(128).await.unwrap();
    assert_eq!(deeper.status(), 400);
    let problem: Value = deeper.json().await.unwrap();
    assert_eq!(
        problem["errors"],
        json!([{"in": "body", "pointer": "", "detail": "nests deeper than 127 levels"}])
    );
}

/// OpenAPI 3.0 (its schemas read as JSON Schema 2020-12 once converted): `allOf` over a
/// component, with `nullable`, closed the same way.
#[tokio::test(flavor = "multi_thread")]
async fn an_openapi_30_spec_is_closed_the_same_way() {
    let spec = r##"{
      "openapi": "3.0.3",
      "info": {"title": "Users", "version": "1"},
      "paths": {"/users": {"post": {
        "operationId": "createUser",
        "x-palisade": {"auth": "public"},
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "allOf": [
            {"$ref": "#/components/schemas/Named"},
            {"type": "object", "properties": {"email": {"type": "string", "nullable": true}}}
          ]
        }}}},
        "responses": {"201": {"description": "created"}}
      }}},
      "components": {"schemas": {
        "Named": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
      }}
    }"##;
    let upstream = RecordingUpstream::start().await;
    let gw = start_spec(&upstream, spec, true);
    let post = |body: Value| post(&gw, &upstream, "/users", body);
    assert_eq!(post(json!({"name": "a", "email": null})).await, Ok(()));
    assert_eq!(
        post(json!({"name": "a", "isAdmin": true})).await,
        refused(&["/isAdmin"])
    );
    assert_eq!(post(json!({"email": "a@b"})).await, refused(&["/name"]));
}
