//! Checklist #5 from an OpenAPI spec: operations become validated routes, `x-palisade`
//! carries their policy, a `[[route]]` may override one, and anything outside the spec is
//! 404/405 or a load error.

use std::time::Duration;

use palisade_testkit::{GatewayProcess, RecordingUpstream, TestConfig};
use serde_json::{Value, json};

/// OpenAPI 3.1, YAML: path, query, header and cookie parameters, a body by `$ref`.
const SPEC_31: &str = r##"
openapi: 3.1.0
info: { title: Orders, version: "1" }
paths:
  /api/orders:
    get:
      operationId: listOrders
      x-palisade: { auth: public }
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 50 } }
        - { name: status, in: query, schema: { type: string, enum: [open, shipped] } }
        - { name: X-Tenant, in: header, required: true, schema: { type: string, pattern: "^[a-z]{2,8}$" } }
        - { name: session, in: cookie, schema: { type: string, maxLength: 8 } }
      responses: { "200": { description: ok } }
    post:
      operationId: createOrder
      x-palisade: { auth: public }
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/NewOrder" }
      responses: { "201": { description: created } }
  /api/orders/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: integer, format: int32, minimum: 1 } }
    get:
      operationId: getOrder
      x-palisade: { auth: public }
      responses: { "200": { description: ok } }
    delete:
      operationId: deleteOrder
      responses: { "204": { description: deleted } }
  /api/leaky:
    get:
      operationId: leaky
      x-palisade: { auth: public }
      responses:
        "2XX":
          description: ok
          content:
            application/json:
              schema:
                type: object
                required: [upstream]
                properties: { upstream: { type: string }, method: { type: string } }
  /api/notes:
    post:
      operationId: createNote
      x-palisade: { auth: public, strict: false }
      requestBody:
        content:
          application/json:
            schema: { type: object, properties: { text: { type: string, maxLength: 5 } } }
      responses: { "201": { description: created } }
  /api/ping:
    get:
      operationId: ping
      x-palisade: { auth: public, rate_limit: { limit: 2, window: 1m, per: ip, name: ping } }
      responses: { "200": { description: ok } }
components:
  schemas:
    NewOrder:
      type: object
      required: [item, quantity]
      properties:
        item: { type: string, maxLength: 20 }
        quantity: { type: integer, minimum: 1 }
        note: { type: [string, "null"] }
"##;

/// OpenAPI 3.0, JSON: `nullable` and a boolean `exclusiveMinimum`.
const SPEC_30: &str = r##"{
  "openapi": "3.0.3",
  "info": {"title": "Orders", "version": "1"},
  "paths": {
    "/api/orders": {
      "post": {
        "x-palisade": {"auth": "public"},
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object",
          "required": ["quantity"],
          "properties": {
            "quantity": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
            "note": {"type": "string", "nullable": true}
          }
        }}}},
        "responses": {"201": {"description": "created"}}
      }
    }
  }
}"##;

fn config(upstream: &RecordingUpstream, spec: &str, extra: &str) -> TestConfig {
    TestConfig::new().store("sqlite://keys.db").tables(&format!(
        r#"
[[upstream]]
name = "app"
url = "{url}"

[openapi]
spec = "{spec}"
{extra}"#,
        url = upstream.url()
    ))
}

fn start(upstream: &RecordingUpstream, file: &str, spec: &str, extra: &str) -> GatewayProcess {
    config(upstream, file, extra)
        .gateway(env!("CARGO_BIN_EXE_palisade"))
        .file(file, spec)
        .start()
}

async fn errors_of(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:palisade:problem:invalid-request",
        "{problem}"
    );
    (problem["errors"].as_array().unwrap().iter())
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_owned();
            (text("in"), text("pointer"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_are_the_routes_and_every_parameter_is_checked() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, "openapi.yaml", SPEC_31, "");
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", gw.http_url());
    let list = |query: &str, tenant: Option<&str>, cookie: Option<&str>| {
        let mut request = client.get(url(&format!("/api/orders{query}")));
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };

    assert_eq!(
        list("?limit=5&status=open", Some("acme"), Some("session=abc"))
            .await
            .unwrap()
            .status(),
        200
    );
    // (query, X-Tenant, Cookie, the one error expected: in, pointer)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        (&'a str, &'a str),
    );
    let cases: [Case<'_>; 5] = [
        ("?limit=0", Some("acme"), None, ("query", "/limit")),
        ("?status=lost", Some("acme"), None, ("query", "/status")),
        ("", None, None, ("header", "/x-tenant")),
        ("", Some("ACME!"), None, ("header", "/x-tenant")),
        (
            "",
            Some("acme"),
            Some("session=far-too-long"),
            ("cookie", "/session"),
        ),
    ];
    for (query, tenant, cookie, (location, pointer)) in cases {
        let response = list(query, tenant, cookie).await.unwrap();
        assert_eq!(response.status(), 400, "{query} {tenant:?} {cookie:?}");
        let errors = errors_of(response).await;
        assert_eq!(
            errors,
            [(location.to_owned(), pointer.to_owned())],
            "{query} {tenant:?} {cookie:?}"
        );
    }

    // A name that lenient upstreams read as the declared one is refused.
    for (query, pointer) in [("?LIMIT=1000", "/LIMIT"), ("?limit%5B%5D=1000", "/limit[]")] {
        let errors = errors_of(list(query, Some("acme"), None).await.unwrap()).await;
        assert_eq!(
            errors,
            [("query".to_owned(), pointer.to_owned())],
            "{query}"
        );
    }
    // A byte that is not UTF-8 elsewhere in the Cookie header does not hide the cookie.
    let cookie = reqwest::header::HeaderValue::from_bytes(b"session=far-too-long; z=\xff").unwrap();
    let response = client
        .get(url("/api/orders"))
        .header("x-tenant", "acme")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        errors_of(response).await,
        [("cookie".to_owned(), "/session".to_owned())]
    );

    // Path parameters: typed and bounded.
    assert_eq!(
        client
            .get(url("/api/orders/7"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for bad in [
        "/api/orders/0",
        "/api/orders/seven",
        "/api/orders/99999999999",
    ] {
        let errors = errors_of(client.get(url(bad)).send().await.unwrap()).await;
        assert_eq!(errors, [("path".to_owned(), "/id".to_owned())], "{bad}");
    }

    // Bodies by `$ref`, strict: unknown members refused, `null` where the type allows it.
    let create = |body: Value| client.post(url("/api/orders")).json(&body).send();
    assert_eq!(
        create(json!({"item": "book", "quantity": 1, "note": null}))
            .await
            .unwrap()
            .status(),
        200
    );
    let errors = errors_of(
        create(json!({"item": "book", "quantity": 0, "isAdmin": true}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        errors,
        [
            ("body".to_owned(), "/quantity".to_owned()),
            ("body".to_owned(), "/isAdmin".to_owned())
        ]
    );

    // JSON in another charset would be decoded differently upstream.
    let latin1 = client
        .post(url("/api/orders"))
        .header("content-type", "application/json; charset=iso-8859-1")
        .body(r#"{"item": "book", "quantity": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(latin1.status(), 415);
    // An operation without a request body takes none; one Content-Type only.
    let with_body = client
        .get(url("/api/orders/7"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        errors_of(with_body).await,
        [("body".to_owned(), String::new())]
    );
    let two_types = client
        .post(url("/api/orders"))
        .header("content-type", "application/json")
        .header("content-type", "text/plain")
        .body(r#"{"item": "book", "quantity": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        errors_of(two_types).await,
        [("header".to_owned(), "/content-type".to_owned())]
    );

    // Outside the spec: 404, and 405 with the spec's methods.
    assert_eq!(
        client
            .get(url("/api/customers"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let put = client.put(url("/api/orders/7")).send().await.unwrap();
    assert_eq!(put.status(), 405);
    let allow = put.headers()["allow"].to_str().unwrap().to_owned();
    assert!(
        allow.contains("GET") && allow.contains("DELETE") && !allow.contains("PUT"),
        "{allow}"
    );

    // `x-palisade` is the policy: the DELETE names none, so it needs credentials; the ping
    // is limited to 2 per minute.
    assert_eq!(
        client
            .delete(url("/api/orders/7"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let ping = client.get(url("/api/ping")).send().await.unwrap();
        statuses.push(ping.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "ping: 2 per minute");
    let routes: Vec<String> = (upstream.requests().iter())
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        routes.len(),
        5,
        "only valid requests reached the upstream: {routes:?}"
    );

    let event = tokio::task::block_in_place(|| {
        gw.wait_for_log(
            |l| l["event"] == "invalid_request" && l["route"] == "getOrder",
            Duration::from_secs(5),
        )
    });
    assert!(event.is_some(), "operation ids name the routes in events");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openapi_3_0_spec_loads_with_its_own_dialect() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, "openapi.json", SPEC_30, "");
    let client = reqwest::Client::new();
    let create = |body: Value| {
        client
            .post(format!("{}/api/orders", gw.http_url()))
            .json(&body)
            .send()
    };
    assert_eq!(
        create(json!({"quantity": 1, "note": null}))
            .await
            .unwrap()
            .status(),
        200
    );
    // exclusiveMinimum: true with minimum 0 means "more than 0".
    let errors = errors_of(create(json!({"quantity": 0})).await.unwrap()).await;
    assert_eq!(errors, [("body".to_owned(), "/quantity".to_owned())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_may_override_an_operation_and_keeps_its_schema() {
    let upstream = RecordingUpstream::start().await;
    let overriding = r#"
[[route]]
name = "create"
path = "/api/orders"
methods = ["POST"]
upstream = "app"
auth = "public"
rate_limit = { limit = 2, window = "1m", per = "ip" }
"#;
    let gw = start(&upstream, "openapi.yaml", SPEC_31, overriding);
    let client = reqwest::Client::new();
    let create = |body: Value| {
        client
            .post(format!("{}/api/orders", gw.http_url()))
            .json(&body)
            .send()
    };
    let errors = errors_of(create(json!({"item": "book"})).await.unwrap()).await;
    assert_eq!(errors, [("body".to_owned(), "/quantity".to_owned())]);
    assert_eq!(
        create(json!({"item": "book", "quantity": 1}))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        create(json!({"item": "book", "quantity": 1}))
            .await
            .unwrap()
            .status(),
        429
    );
}

fn load_failure(upstream_url: &str, file: &str, spec: &str, extra: &str) -> String {
    let config = format!(
        "[server]\nhttp = \"127.0.0.1:0\"\n[[upstream]]\nname = \"app\"\nurl = \"{upstream_url}\"\n[openapi]\nspec = \"{file}\"\n{extra}"
    );
    let (code, _, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .file(file, spec)
        .file("q.json", r#"{"type": "object"}"#)
        .run_to_exit(Duration::from_secs(20));
    assert_eq!(code, 2, "a config error: {stderr}");
    stderr
}

#[test]
fn specs_that_cannot_be_trusted_or_matched_do_not_load() {
    let remote = SPEC_30.replace(
        r#""note": {"type": "string", "nullable": true}"#,
        r#""note": {"$ref": "https://schemas.example/note.json"}"#,
    );
    let stderr = load_failure("http://127.0.0.1:9", "openapi.json", &remote, "");
    assert!(
        stderr.contains("remote $ref `https://schemas.example/note.json`"),
        "{stderr}"
    );

    let outside = "[[route]]\nname = \"extra\"\npath = \"/api/customers\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n";
    let stderr = load_failure("http://127.0.0.1:9", "openapi.json", SPEC_30, outside);
    assert!(
        stderr.contains("route[0].path") && stderr.contains("not an operation of the OpenAPI spec"),
        "{stderr}"
    );
    let stderr = load_failure(
        "http://127.0.0.1:9",
        "openapi.json",
        r#"{"swagger": "2.0"}"#,
        "",
    );
    assert!(stderr.contains("openapi.spec"), "{stderr}");
    // An overriding route keeps the operation's schemas: no files of its own, and the
    // spec's parameter names.
    let own_schema = "[[route]]\nname = \"create\"\npath = \"/api/orders\"\nmethods = [\"POST\"]\nupstream = \"app\"\nauth = \"public\"\nvalidate = { query = \"q.json\" }\n";
    let stderr = load_failure("http://127.0.0.1:9", "openapi.json", SPEC_30, own_schema);
    assert!(
        stderr.contains("route[0].validate") && stderr.contains("whose schemas apply"),
        "{stderr}"
    );
    let renamed = SPEC_31
        .replace("{id}", "{orderId}")
        .replace("name: id,", "name: orderId,");
    let override_by_id = "[[route]]\nname = \"one\"\npath = \"/api/orders/{id}\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n";
    let stderr = load_failure(
        "http://127.0.0.1:9",
        "openapi.yaml",
        &renamed,
        override_by_id,
    );
    assert!(stderr.contains("the spec's parameter names"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_that_break_the_spec_are_logged_or_replaced() {
    let upstream = RecordingUpstream::start().await;
    // The test upstream answers {"upstream", "method", "path"}: `path` is not in the spec.
    let logging = start(
        &upstream,
        "openapi.yaml",
        SPEC_31,
        "validate_responses = \"log\"\n",
    );
    let enforcing = start(
        &upstream,
        "openapi.yaml",
        SPEC_31,
        "validate_responses = \"enforce\"\n",
    );
    let get = |gw: &GatewayProcess, path: &str| reqwest::get(format!("{}{path}", gw.http_url()));

    let passed = get(&logging, "/api/leaky").await.unwrap();
    assert_eq!(passed.status(), 200);
    let body: Value = passed.json().await.unwrap();
    assert_eq!(
        body["path"], "/api/leaky",
        "log mode passes the response as it was"
    );
    let event = tokio::task::block_in_place(|| {
        logging.wait_for_log(|l| l["event"] == "invalid_response", Duration::from_secs(5))
    })
    .expect("an invalid_response event");
    assert_eq!(event["pointers"], "/path", "{event}");
    assert!(
        !event.to_string().contains("/api/leaky\""),
        "no values in the event: {event}"
    );

    let replaced = get(&enforcing, "/api/leaky").await.unwrap();
    assert_eq!(replaced.status(), 502);
    let problem: Value = replaced.json().await.unwrap();
    assert_eq!(problem["type"], "urn:palisade:problem:bad-gateway");
    assert!(!problem.to_string().contains("/api/leaky"), "{problem}");
    // A HEAD answer has no body to check.
    let head = reqwest::Client::new()
        .head(format!("{}/api/leaky", enforcing.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // A response the spec gives no schema for is not touched.
    assert_eq!(
        get(&enforcing, "/api/orders/3").await.unwrap().status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_false_keeps_one_operation_open() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, "openapi.yaml", SPEC_31, "");
    let note = |body: Value| {
        reqwest::Client::new()
            .post(format!("{}/api/notes", gw.http_url()))
            .json(&body)
            .send()
    };
    assert_eq!(
        note(json!({"text": "hi", "mood": "ok"}))
            .await
            .unwrap()
            .status(),
        200
    );
    let errors = errors_of(
        note(json!({"text": "too long", "mood": "ok"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        errors,
        [("body".to_owned(), "/text".to_owned())],
        "the rest still holds"
    );
}

/// Bodies that are not JSON, and the parameter styles beyond plain values.
const SPEC_STYLES: &str = r##"
openapi: 3.1.0
info: { title: Styles, version: "1" }
paths:
  /api/profile:
    post:
      x-palisade: { auth: public }
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [role]
              properties:
                role: { type: string, enum: [user] }
                age: { type: integer, minimum: 0 }
                tags: { type: array, items: { type: string, maxLength: 3 } }
      responses: { "200": { description: ok } }
  /api/any:
    post:
      x-palisade: { auth: public }
      requestBody:
        content:
          application/json: { schema: { $ref: "#/components/schemas/Role" } }
          "*/*": { schema: { $ref: "#/components/schemas/Role" } }
      responses: { "200": { description: ok } }
  /api/search:
    get:
      x-palisade: { auth: public }
      parameters:
        - { name: ids, in: query, schema: { type: array, items: { type: integer } } }
        - { name: csv, in: query, explode: false, schema: { type: array, items: { type: integer } } }
        - { name: sp, in: query, style: spaceDelimited, schema: { type: array, items: { type: integer } } }
        - { name: pipe, in: query, style: pipeDelimited, schema: { type: array, items: { type: integer } } }
        - name: filter
          in: query
          style: deepObject
          explode: true
          schema: { type: object, properties: { status: { type: string, enum: [open, closed] } } }
        - { name: point, in: query, schema: { $ref: "#/components/schemas/Point" } }
        - { name: name, in: query, schema: { type: string } }
        - { name: sid, in: cookie, schema: { type: string, pattern: "^[^'<>]*$" } }
        - { name: X-Point, in: header, schema: { $ref: "#/components/schemas/Point" } }
        - { name: X-Pt, in: header, explode: true, schema: { $ref: "#/components/schemas/Point" } }
        - { name: X-Ids, in: header, schema: { type: array, items: { type: integer } } }
      responses: { "200": { description: ok } }
components:
  schemas:
    Role: { type: object, properties: { role: { type: string, enum: [user] } } }
    Point: { type: object, properties: { x: { type: integer }, y: { type: integer } } }
"##;

#[tokio::test(flavor = "multi_thread")]
async fn forms_and_every_supported_parameter_style_are_checked() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, "openapi.yaml", SPEC_STYLES, "");
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", gw.http_url());
    let search = |query: &str, cookie: Option<&str>| {
        let mut request = client.get(url(&format!("/api/search{query}")));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };

    let all = "?ids=1&ids=2&csv=1,2&sp=1%202&pipe=1|2&filter%5Bstatus%5D=open&x=1&y=2&name=%C3%A9";
    let response = search(all, Some("sid=%41bc")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.requests().len(), 1);
    // (query, Cookie, the one error expected: in, pointer)
    let cases = [
        ("?ids=1&ids=x", None, ("query", "/ids/1")),
        ("?csv=1,x", None, ("query", "/csv/1")),
        ("?csv=1&csv=2", None, ("query", "/csv")),
        ("?sp=1%20x", None, ("query", "/sp/1")),
        ("?sp=1+x", None, ("query", "/sp/1")),
        ("?pipe=1|x", None, ("query", "/pipe/1")),
        (
            "?filter%5Bstatus%5D=lost",
            None,
            ("query", "/filter/status"),
        ),
        ("?filter[status]=lost", None, ("query", "/filter/status")),
        (
            "?filter[status]=open&filter[status]=open",
            None,
            ("query", "/filter/status"),
        ),
        (
            "?filter[status][x]=open",
            None,
            ("query", "/filter/status][x"),
        ),
        ("?filter=open", None, ("query", "/filter")),
        ("?point=x,1", None, ("query", "/point")),
        // Exploded form object: its properties are query names of their own.
        ("?x=abc", None, ("query", "/point/x")),
        ("?x=1&y=2&y=3", None, ("query", "/point/y")),
        ("?X=abc", None, ("query", "/X")),
        // Invalid UTF-8 is refused, not replaced.
        ("?name=%C0%A7", None, ("query", "/name")),
        // Cookies are checked as decoded, and one differing only in case is refused.
        ("", Some("sid=%3Cscript%3E"), ("cookie", "/sid")),
        ("", Some("sid=%C0%A7"), ("cookie", "/sid")),
        ("", Some("sid=ok; SID=%3Cscript%3E"), ("cookie", "/SID")),
    ];
    for (query, cookie, (location, pointer)) in cases {
        let response = search(query, cookie).await.unwrap();
        assert_eq!(
            errors_of(response).await,
            [(location.to_owned(), pointer.to_owned())],
            "{query} {cookie:?}"
        );
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "no refused request went upstream"
    );

    // Simple style headers: objects as `x,1,y,2` or (exploded) `x=1,y=2`, arrays as lists.
    let with_header = |name: &'static str, value: &'static str| {
        client.get(url("/api/search")).header(name, value).send()
    };
    for (name, value) in [
        ("x-point", "x,1,y,2"),
        ("x-pt", "x=1,y=2"),
        ("x-ids", "1,2"),
    ] {
        let response = with_header(name, value).await.unwrap();
        assert_eq!(response.status(), 200, "{name}: {value}");
    }
    for (name, value, pointer) in [
        ("x-point", "x,abc", "/x-point/x"),
        ("x-point", "x,1,y", "/x-point"),
        ("x-pt", "x=a", "/x-pt/x"),
        ("x-pt", "x", "/x-pt"),
        ("x-ids", "1,x", "/x-ids/1"),
    ] {
        let response = with_header(name, value).await.unwrap();
        assert_eq!(
            errors_of(response).await,
            [("header".to_owned(), pointer.to_owned())],
            "{name}: {value}"
        );
    }
    assert_eq!(
        upstream.requests().len(),
        4,
        "no refused header went upstream"
    );

    // A form is checked like a JSON body (values typed by the schema's properties) and
    // forwarded as the pairs that were validated.
    let form = |body: &'static [u8], content_type: &str| {
        client
            .post(url("/api/profile"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let urlencoded = "application/x-www-form-urlencoded";
    let response = form(b"role=user&age=3&tags=a&tags=b%20c", urlencoded)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let forwarded = upstream.last().unwrap();
    assert_eq!(forwarded.body_str(), "role=user&age=3&tags=a&tags=b+c");
    // (form, the errors expected: in, pointer)
    type Refused<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
    let refused: [Refused<'_>; 5] = [
        (
            b"role=admin&isAdmin=1",
            &[("body", "/role"), ("body", "/isAdmin")],
        ),
        (b"role=user&role=user", &[("body", "/role")]),
        (b"role=user&age=x", &[("body", "/age")]),
        (b"age=1", &[("body", "/role")]),
        (b"role=%FF", &[("body", "/role")]),
    ];
    for (body, expected) in refused {
        let expected: Vec<(String, String)> = (expected.iter())
            .map(|(l, p)| (l.to_string(), p.to_string()))
            .collect();
        let response = form(body, urlencoded).await.unwrap();
        assert_eq!(
            errors_of(response).await,
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let utf16 = form(
        b"role=admin",
        "application/x-www-form-urlencoded; charset=utf-16",
    );
    assert_eq!(utf16.await.unwrap().status(), 415);

    // `*/*` with a schema: JSON is validated; any other media type cannot be, so it is 415.
    let any = |content_type: &str, body: &'static str| {
        client
            .post(url("/api/any"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let admin = r#"{"role":"admin"}"#;
    let plain = any("text/plain", admin).await.unwrap();
    assert_eq!(plain.status(), 415);
    assert_eq!(plain.headers()["content-type"], "application/problem+json");
    assert_eq!(
        any("multipart/form-data; boundary=x", admin)
            .await
            .unwrap()
            .status(),
        415
    );
    assert_eq!(
        errors_of(any("application/json", admin).await.unwrap()).await,
        [("body".to_owned(), "/role".to_owned())]
    );
    assert_eq!(
        any("application/json", r#"{"role":"user"}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        upstream.requests().len(),
        6,
        "only the valid bodies went upstream"
    );
}

#[test]
fn parameter_styles_the_gateway_cannot_read_do_not_load() {
    let spec = |parameter: &str| {
        format!(
            "openapi: 3.1.0\ninfo: {{ title: t, version: \"1\" }}\npaths:\n  /api/items/{{id}}:\n    get:\n      x-palisade: {{ auth: public }}\n      parameters:\n        - {{ name: id, in: path, required: true, schema: {{ type: string }} }}\n        - {parameter}\n      responses: {{ \"200\": {{ description: ok }} }}\n"
        )
    };
    let cases = [
        (
            "{ name: tags, in: query, style: spaceDelimited, schema: { type: string } }",
            "parameter `tags` (in query): style `spaceDelimited` does not fit its schema's type",
        ),
        (
            "{ name: f, in: query, style: deepObject, schema: { type: array } }",
            "parameter `f` (in query): style `deepObject` does not fit its schema's type",
        ),
        (
            "{ name: h, in: header, style: form, schema: { type: string } }",
            "parameter `h` (in header): style `form` is not supported there; use simple",
        ),
        (
            "{ name: o, in: query, schema: { type: object } }",
            "parameter `o` (in query): an exploded form object must list its `properties`",
        ),
        (
            "{ name: c, in: cookie, schema: { type: object } }",
            "parameter `c` (in cookie): style `form` does not fit its schema's type; object cookies are not supported",
        ),
    ];
    for (parameter, message) in cases {
        let stderr = load_failure("http://127.0.0.1:9", "openapi.yaml", &spec(parameter), "");
        assert!(stderr.contains(message), "{parameter}: {stderr}");
    }
    let matrix = spec("{ name: q, in: query, schema: { type: string } }").replace(
        "in: path, required: true,",
        "in: path, required: true, style: matrix,",
    );
    let stderr = load_failure("http://127.0.0.1:9", "openapi.yaml", &matrix, "");
    assert!(
        stderr.contains(
            "parameter `id` (in path): style `matrix` is not supported there; use simple"
        ),
        "{stderr}"
    );
}

/// An upstream that answers `/api/leaky` with text where the spec declares JSON, and
/// `?status=418` with a status the spec does not list.
async fn text_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer: &[u8] = if head.starts_with(b"GET /api/leaky?status=418 ") {
                    b"HTTP/1.1 418 I'm a teapot\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret"
                };
                let _ = stream.write_all(answer).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_outside_the_declared_media_types_are_refused_when_enforcing() {
    let url = text_upstream().await;
    // The usual config, pointed at the text upstream instead.
    let recording = RecordingUpstream::start().await;
    let start = |mode: &str| {
        let extra = format!("validate_responses = \"{mode}\"\n");
        let config = config(&recording, "openapi.yaml", &extra);
        config
            .gateway(env!("CARGO_BIN_EXE_palisade"))
            .config(config.render().replace(&recording.url(), &url))
            .file("openapi.yaml", SPEC_31)
            .start()
    };
    let (enforcing, logging) = (start("enforce"), start("log"));
    let get = |gw: &GatewayProcess, path: &str| reqwest::get(format!("{}{path}", gw.http_url()));

    let replaced = get(&enforcing, "/api/leaky").await.unwrap();
    assert_eq!(replaced.status(), 502);
    let text = replaced.text().await.unwrap();
    assert!(!text.contains("secret"), "{text}");
    let event = tokio::task::block_in_place(|| {
        enforcing.wait_for_log(|l| l["event"] == "invalid_response", Duration::from_secs(5))
    })
    .expect("an invalid_response event");
    assert_eq!(event["reason"], "undeclared_media_type", "{event}");

    let passed = get(&logging, "/api/leaky").await.unwrap();
    assert_eq!(passed.status(), 200);
    assert_eq!(passed.text().await.unwrap(), "secret", "log mode passes it");
    let event = tokio::task::block_in_place(|| {
        logging.wait_for_log(|l| l["event"] == "invalid_response", Duration::from_secs(5))
    })
    .expect("an invalid_response event");
    assert_eq!(event["reason"], "undeclared_media_type", "{event}");

    // A status the spec does not list is logged, and passed in either mode.
    let teapot = get(&enforcing, "/api/leaky?status=418").await.unwrap();
    assert_eq!(teapot.status(), 418);
    let event = tokio::task::block_in_place(|| {
        enforcing.wait_for_log(
            |l| l["event"] == "invalid_response" && l["reason"] == "undeclared_status",
            Duration::from_secs(5),
        )
    })
    .expect("an undeclared_status event");
    assert_eq!(event["status"], 418, "{event}");
}

/// A form body whose schema allows names beyond its properties.
const SPEC_OPEN_FORM: &str = r##"
openapi: 3.1.0
info: { title: Payments, version: "1" }
paths:
  /api/pay:
    post:
      x-palisade: { auth: public }
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [amount]
              additionalProperties: true
              properties:
                amount: { type: integer, maximum: 100 }
      responses: { "200": { description: ok } }
"##;

#[tokio::test(flavor = "multi_thread")]
async fn a_form_name_shadowing_a_declared_property_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream, "openapi.yaml", SPEC_OPEN_FORM, "");
    let pay = |body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/pay", gw.http_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let response = pay("amount=5&note=x").await.unwrap();
    assert_eq!(response.status(), 200, "other names are allowed");
    assert_eq!(upstream.last().unwrap().body_str(), "amount=5&note=x");
    assert_eq!(upstream.requests().len(), 1);
    // PHP, Rails and qs read `AMOUNT` or `amount[]` as `amount`: the unchecked value.
    for (body, pointer) in [
        ("amount=5&AMOUNT=100000", "/AMOUNT"),
        ("amount=5&amount[]=100000", "/amount[]"),
        ("amount=5&amount%5B%5D=100000", "/amount[]"),
        ("amount=5&Amount[x]=100000", "/Amount[x]"),
    ] {
        let response = pay(body).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(
            errors_of(response).await,
            [("body".to_owned(), pointer.to_owned())],
            "{body}"
        );
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "no refused form went upstream"
    );
}
