//! Checklist #5 end to end with JSON Schema files per route: what does not match never
//! reaches the upstream, each error names its place and rule (never the value), and the
//! upstream receives exactly the document that was validated.

use std::time::Duration;

use palisade_testkit::{GatewayProcess, RecordingUpstream};
use serde_json::{Value, json};

const ORDER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["item", "quantity"],
  "properties": {
    "item": { "type": "string", "minLength": 1, "maxLength": 20 },
    "quantity": { "type": "integer", "format": "int32", "minimum": 1 },
    "email": { "type": "string", "format": "email" },
    "code": { "type": "string", "pattern": "^(a+)+$" },
    "shipping": {
      "type": "object",
      "properties": { "street": { "type": "string" } }
    },
    "labels": {
      "type": "object",
      "propertyNames": { "maxLength": 3 },
      "additionalProperties": { "type": "string" }
    }
  }
}"#;

const QUERY_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "limit": { "type": "integer", "minimum": 1, "maximum": 100 },
    "tag": { "type": "array", "items": { "type": "string", "enum": ["new", "old"] } }
  }
}"#;

/// Header names as a team writes them: compared case-insensitively, as HTTP does.
const HEADERS_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["X-Tenant"],
  "properties": {
    "X-Tenant": { "type": "string", "pattern": "^[a-z]{2,8}$" },
    "X-Count": { "type": "integer", "minimum": 1 }
  }
}"#;

fn start(upstream: &RecordingUpstream) -> GatewayProcess {
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"

[limits]
max_body = "64KiB"
max_json_depth = 32

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "app"
auth = "public"
validate = {{ body = "schemas/order.json", query = "schemas/query.json" }}

[[route]]
name = "tenants"
path = "/api/tenants"
methods = ["GET"]
upstream = "app"
auth = "public"
validate = {{ headers = "schemas/headers.json" }}
"#,
        url = upstream.url()
    );
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .file("schemas/order.json", ORDER_SCHEMA)
        .file("schemas/query.json", QUERY_SCHEMA)
        .file("schemas/headers.json", HEADERS_SCHEMA)
        .start()
}

async fn post(
    gw: &GatewayProcess,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/orders", gw.http_url()))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The problem's `errors`, as (in, pointer, detail) triples.
async fn errors_of(response: reqwest::Response) -> Vec<(String, String, String)> {
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:palisade:problem:invalid-request");
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("in"), text("pointer"), text("detail"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_body_passes_as_the_document_that_was_validated() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    // Whitespace and escapes are the client's; the upstream gets the parsed document.
    let sent = "{ \"item\" : \"b\\u006fok\", \"quantity\": 2 }";
    let response = post(&gw, "application/json; charset=utf-8", sent).await;
    assert_eq!(response.status(), 200);
    let received: Value = serde_json::from_slice(&upstream.last().unwrap().body).unwrap();
    assert_eq!(received, json!({"item": "book", "quantity": 2}));
    assert_eq!(
        upstream.last().unwrap().body_str(),
        r#"{"item":"book","quantity":2}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_broken_rule_is_named_by_pointer_without_the_value() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let body = json!({
        "item": "a-very-long-secret-title-value",
        "quantity": "two",
        "email": "not-an-email",
        "role": "admin",
        "shipping": {"street": "Main", "isAdmin": true}
    });
    let errors = errors_of(post(&gw, "application/json", body.to_string()).await).await;
    let places: Vec<(&str, &str)> = errors
        .iter()
        .map(|(i, p, _)| (i.as_str(), p.as_str()))
        .collect();
    for expected in ["/item", "/quantity", "/email", "/role", "/shipping/isAdmin"] {
        assert!(
            places.contains(&("body", expected)),
            "{expected} in {errors:?}"
        );
    }
    let role = errors.iter().find(|(_, p, _)| p == "/role").unwrap();
    assert_eq!(role.2, "is not allowed here");
    for (_, _, detail) in &errors {
        for value in [
            "a-very-long-secret-title-value",
            "two",
            "not-an-email",
            "admin",
        ] {
            assert!(!detail.contains(value), "the value leaked: {detail}");
        }
    }
    // A missing required field is named at the field.
    let errors = errors_of(post(&gw, "application/json", r#"{"item": "book"}"#).await).await;
    assert_eq!(
        errors,
        [("body".into(), "/quantity".into(), "is required".into())]
    );
    assert!(
        upstream.requests().is_empty(),
        "nothing invalid reached the upstream"
    );

    let event = tokio::task::block_in_place(|| {
        gw.wait_for_log(|l| l["event"] == "invalid_request", Duration::from_secs(5))
    })
    .expect("an invalid_request event");
    assert!(!event.to_string().contains("secret-title"), "{event}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_ambiguous_deep_and_foreign_bodies_are_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let cases: [(&str, &str, Vec<u8>, u16, &str); 6] = [
        (
            "duplicate member",
            "application/json",
            br#"{"item": "a", "item": "b", "quantity": 1}"#.to_vec(),
            400,
            "repeats a member name",
        ),
        (
            "invalid UTF-8",
            "application/json",
            b"{\"item\": \"\xff\xfe\", \"quantity\": 1}".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "truncated",
            "application/json",
            br#"{"item": "a", "quantity""#.to_vec(),
            400,
            "ends before",
        ),
        (
            "10 000 levels",
            "application/json",
            ("[".repeat(10_000) + &"]".repeat(10_000)).into_bytes(),
            400,
            "deeper than 32",
        ),
        ("not JSON at all", "text/plain", b"item=a".to_vec(), 415, ""),
        (
            "no body on POST",
            "application/json",
            Vec::new(),
            400,
            "body is required",
        ),
    ];
    for (what, content_type, body, status, detail) in cases {
        let response = post(&gw, content_type, body).await;
        assert_eq!(response.status(), status, "{what}");
        let problem: Value = response.json().await.unwrap();
        if status == 400 {
            let first = problem["errors"][0]["detail"].as_str().unwrap_or("");
            assert!(first.contains(detail), "{what}: {problem}");
            assert_eq!(problem["errors"][0]["in"], "body", "{what}");
        } else {
            assert_eq!(
                problem["type"],
                "urn:palisade:problem:unsupported-media-type"
            );
        }
    }
    let huge = format!(r#"{{"item": "{}", "quantity": 1}}"#, "x".repeat(70_000));
    assert_eq!(post(&gw, "application/json", huge).await.status(), 413);
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catastrophic_pattern_runs_in_linear_time() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    // `^(a+)+$` against many a's and a final mismatch takes a backtracking engine
    // exponential time; the linear engine answers at once (this test would never end).
    let body = json!({"item": "x", "quantity": 1, "code": format!("{}!", "a".repeat(50_000))});
    let errors = errors_of(post(&gw, "application/json", body.to_string()).await).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1, "/code");
    let body = json!({"item": "x", "quantity": 1, "code": "a".repeat(50_000)});
    assert_eq!(
        post(&gw, "application/json", body.to_string())
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn query_parameters_are_typed_and_never_given_twice() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let get = |query: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/api/orders?{query}", gw.http_url()))
            .send()
    };
    assert_eq!(get("limit=5&tag=new&tag=old").await.unwrap().status(), 200);
    let errors = errors_of(get("limit=abc").await.unwrap()).await;
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].0.as_str(), errors[0].1.as_str()),
        ("query", "/limit")
    );
    let errors = errors_of(get("limit=500").await.unwrap()).await;
    assert_eq!(errors[0].1, "/limit");
    // Parameter pollution: two values where the schema has one.
    let errors = errors_of(get("limit=5&limit=1000").await.unwrap()).await;
    assert_eq!(
        errors,
        [(
            "query".into(),
            "/limit".into(),
            "is given more than once".into()
        )]
    );
    let errors = errors_of(get("tag=new&tag=deleted").await.unwrap()).await;
    assert_eq!(errors[0].1, "/tag/1");
    let errors = errors_of(get("debug=1").await.unwrap()).await;
    assert_eq!(
        errors[0].1, "/debug",
        "strict: unknown parameters are refused"
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_schema_with_a_remote_ref_does_not_load() {
    let (code, _, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(
            r#"
[server]
http = "127.0.0.1:0"
[[upstream]]
name = "app"
url = "http://127.0.0.1:9"
[[route]]
name = "orders"
path = "/api/orders"
methods = ["POST"]
upstream = "app"
auth = "public"
validate = { body = "order.json" }
"#,
        )
        .file(
            "order.json",
            r#"{"type": "object", "properties": {"x": {"$ref": "https://evil.example/s.json"}}}"#,
        )
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2, "a config error: {stderr}");
    assert!(
        stderr.contains("remote $ref `https://evil.example/s.json` is refused")
            && stderr.contains("route[0].validate.body"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_headers_schema_checks_the_headers_it_names_and_only_those() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let get = |headers: &[(&str, &str)]| {
        let mut request = reqwest::Client::new().get(format!("{}/api/tenants", gw.http_url()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // Every request carries headers the schema does not name (Host, Accept, …): not an
    // error, whatever strictness says about unknown members.
    let ok = get(&[("x-tenant", "acme"), ("X-Count", "2"), ("x-other", "1")]);
    assert_eq!(ok.await.unwrap().status(), 200);
    assert_eq!(upstream.requests().len(), 1);
    // (headers sent, the one error expected: pointer, part of its detail)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 4] = [
        (&[], "/x-tenant", "is required"),
        (&[("X-Tenant", "ACME!")], "/x-tenant", ""),
        (&[("x-tenant", "acme"), ("x-count", "0")], "/x-count", ""),
        (
            &[("x-tenant", "acme"), ("x-tenant", "corp")],
            "/x-tenant",
            "is given more than once",
        ),
    ];
    for (headers, pointer, detail) in cases {
        let errors = errors_of(get(headers).await.unwrap()).await;
        assert_eq!(errors.len(), 1, "{headers:?}: {errors:?}");
        let (location, at, said) = &errors[0];
        assert_eq!(
            (location.as_str(), at.as_str()),
            ("header", pointer),
            "{headers:?}"
        );
        assert!(said.contains(detail), "{headers:?}: {said}");
        assert!(!said.contains("ACME!"), "the value is never echoed: {said}");
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "no refused request went upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_name_that_breaks_property_names_is_not_echoed() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let ok = json!({"item": "book", "quantity": 1, "labels": {"abc": "x"}});
    assert_eq!(
        post(&gw, "application/json", ok.to_string()).await.status(),
        200
    );
    let secret = json!({"item": "book", "quantity": 1, "labels": {"SECRETKEY": "x"}});
    let errors = errors_of(post(&gw, "application/json", secret.to_string()).await).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (location, pointer, detail) = &errors[0];
    assert_eq!((location.as_str(), pointer.as_str()), ("body", "/labels"));
    assert!(detail.contains("propertyNames"), "{detail}");
    assert!(detail.contains("longer than 3 characters"), "{detail}");
    assert!(
        !detail.contains("SECRETKEY"),
        "the name is never echoed: {detail}"
    );
}
