//! Checklist #3 end to end: RBAC, and object ownership (BOLA/IDOR) enforced by the real
//! gateway in front of the real sample API, which trusts whatever it is sent.

use std::time::Duration;

use crate::common;

use palisade_testkit::config::ADMIN_TOKEN;
use palisade_testkit::{GatewayProcess, RecordingUpstream, TestConfig};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// The sample API on a free port (alice owns orders 1 and 3, bob owns 2).
async fn sample_api() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(palisade_sample_api::serve(listener));
    format!("http://{addr}")
}

fn config(api: &str, recorder: &str, mode: &str) -> TestConfig {
    TestConfig::new().store("sqlite://keys.db").tables(&format!(
        r#"
[limits]
max_inspect_body = "64KiB"

[[upstream]]
name = "api"
url = "{api}"

[[upstream]]
name = "recorder"
url = "{recorder}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "api"
roles = ["customer", "admin"]
owner = {{ field = "/ownerId", collection = "/items", on_create = "set", bypass_roles = ["admin"], mode = "{mode}" }}

[[route]]
name = "order"
path = "/api/orders/{{id}}"
methods = ["GET", "PUT", "DELETE", "OPTIONS", "PROPFIND"]
upstream = "api"
roles = ["customer", "admin"]
owner = {{ field = "/ownerId", bypass_roles = ["admin"], mode = "{mode}" }}
request_fields = {{ deny = ["/ownerId"] }}

[[route]]
name = "profile"
path = "/users/{{user_id}}/profile"
methods = ["GET"]
upstream = "recorder"
owner = {{ param = "user_id", claim = "sub", bypass_roles = ["admin"] }}
response_fields = {{ deny = ["/method"] }}

[[route]]
name = "reports"
path = "/reports"
methods = ["GET"]
upstream = "recorder"
scopes = ["reports:read"]

[[route]]
name = "orders-strict"
host = "strict.test"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "api"
owner = {{ field = "/ownerId", collection = "/items", collection_mode = "deny", on_create = "enforce" }}

[[route]]
name = "big"
path = "/big"
methods = ["GET"]
upstream = "recorder"
owner = {{ field = "/ownerId" }}
"#
    ))
}

struct Setup {
    gw: GatewayProcess,
    recorder: RecordingUpstream,
    alice: String,
    bob: String,
    admin: String,
}

async fn setup(mode: &str) -> Setup {
    let api = sample_api().await;
    let recorder = RecordingUpstream::start().await;
    let gw = config(&api, &recorder.url(), mode).gateway(BIN).start();
    let mut keys = Vec::new();
    for (subject, role) in [
        ("alice", "customer"),
        ("bob", "customer"),
        ("root", "admin"),
    ] {
        let body = json!({"name": subject, "subject": subject, "roles": [role]});
        keys.push(common::create_key(&gw, ADMIN_TOKEN, body).await.0);
    }
    let [alice, bob, admin] = <[String; 3]>::try_from(keys).unwrap();
    Setup {
        gw,
        recorder,
        alice,
        bob,
        admin,
    }
}

async fn call(
    gw: &GatewayProcess,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call_host(gw, None, method, path, key, body).await
}

/// `call` with a `Host` header, for host-specific routes.
async fn call_host(
    gw: &GatewayProcess,
    host: Option<&str>,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", gw.http_url()));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The 404 a non-owner gets is exactly the 404 of an object that does not exist.
fn assert_not_found(body: &Value) {
    assert_eq!(body["type"], "urn:palisade:problem:not-found", "{body}");
    assert_eq!(body["status"], 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_read_and_write_their_objects_and_nobody_else_does() {
    let s = setup("enforce").await;
    let gw = &s.gw;

    // Reads: the owner, another user, an admin with bypass, nobody.
    let (status, order) = call(gw, "GET", "/api/orders/1", Some(&s.alice), None).await;
    assert_eq!(status, 200);
    assert_eq!(order["ownerId"], "alice");
    let (status, body) = call(gw, "GET", "/api/orders/1", Some(&s.bob), None).await;
    assert_eq!(status, 404);
    assert_not_found(&body);
    let (_, missing) = call(gw, "GET", "/api/orders/999", Some(&s.bob), None).await;
    assert_eq!(missing["type"], body["type"]);
    assert_eq!(missing["title"], body["title"]);
    assert_eq!(
        call(gw, "GET", "/api/orders/1", Some(&s.admin), None)
            .await
            .0,
        200
    );
    assert_eq!(call(gw, "GET", "/api/orders/1", None, None).await.0, 401);

    // Writes by a non-owner never reach the API: the order is unchanged afterwards.
    let (status, body) = call(gw, "DELETE", "/api/orders/1", Some(&s.bob), None).await;
    assert_eq!(status, 404);
    assert_not_found(&body);
    let (status, _) = call(
        gw,
        "PUT",
        "/api/orders/1",
        Some(&s.bob),
        Some(json!({"item": "stolen"})),
    )
    .await;
    assert_eq!(status, 404);
    let (_, order) = call(gw, "GET", "/api/orders/1", Some(&s.alice), None).await;
    assert_eq!(order["item"], "book", "bob's write never reached the API");

    // The owner may write; mass assignment of the owner field is refused (400).
    let (status, updated) = call(
        gw,
        "PUT",
        "/api/orders/1",
        Some(&s.alice),
        Some(json!({"quantity": 5})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["quantity"], 5);
    let (status, body) = call(
        gw,
        "PUT",
        "/api/orders/1",
        Some(&s.alice),
        Some(json!({"ownerId": "bob"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "urn:palisade:problem:forbidden-field");

    // Lists are filtered to the caller's objects; the admin sees all.
    let (_, list) = call(gw, "GET", "/api/orders", Some(&s.bob), None).await;
    let owners: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["ownerId"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["bob"]);
    let (_, all) = call(gw, "GET", "/api/orders", Some(&s.admin), None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);

    // Creating in another user's name: the owner is set to the caller.
    let (status, created) = call(
        gw,
        "POST",
        "/api/orders",
        Some(&s.bob),
        Some(json!({"item": "lamp", "quantity": 1, "ownerId": "alice"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["ownerId"], "bob");

    // The owner deletes; then it is gone for everyone.
    assert_eq!(
        call(gw, "DELETE", "/api/orders/1", Some(&s.alice), None)
            .await
            .0,
        204
    );
    assert_eq!(
        call(gw, "GET", "/api/orders/1", Some(&s.admin), None)
            .await
            .0,
        404
    );

    // Each denial is an owner_violation event naming the caller.
    let violation = gw
        .wait_for_log(
            |l| l.to_string().contains("\"owner_violation\""),
            Duration::from_secs(5),
        )
        .expect("owner_violation logged");
    assert!(violation.to_string().contains("bob"), "{violation}");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_scopes_params_fields_and_uncheckable_responses() {
    let s = setup("enforce").await;
    let gw = &s.gw;

    // A path parameter bound to the caller.
    let (status, profile) = call(gw, "GET", "/users/alice/profile", Some(&s.alice), None).await;
    assert_eq!(status, 200);
    assert_eq!(profile["path"], "/users/alice/profile");
    // response_fields: the denied field never leaves the gateway.
    assert!(profile.get("method").is_none(), "{profile}");
    assert_eq!(profile["upstream"], "ok");
    s.recorder.clear();
    let (status, body) = call(gw, "GET", "/users/alice/profile", Some(&s.bob), None).await;
    assert_eq!(status, 404);
    assert_not_found(&body);
    assert!(
        s.recorder.requests().is_empty(),
        "a param mismatch never reaches the upstream"
    );

    // Roles and scopes: 403 with a problem body.
    let (status, body) = call(gw, "GET", "/reports", Some(&s.alice), None).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "urn:palisade:problem:forbidden");
    let (eve, _) =
        common::create_key(gw, ADMIN_TOKEN, json!({"name": "norole", "subject": "eve"})).await;
    assert_eq!(
        call(gw, "GET", "/api/orders", Some(&eve), None).await.0,
        403
    );

    // A response that cannot be checked fails closed: not JSON, invalid JSON, too large.
    for (query, why) in [
        ("bytes=10", "not JSON"),
        ("bytes=10&json=1", "invalid JSON"),
        ("bytes=200000&json=1", "too large"),
    ] {
        let (status, body) = call(gw, "GET", &format!("/big?{query}"), Some(&s.alice), None).await;
        assert_eq!(status, 502, "{query}: {body}");
        assert_eq!(body["type"], "urn:palisade:problem:bad-gateway");
        let request_id = body["request_id"].as_str().unwrap().to_owned();
        let logged = gw
            .wait_for_log(
                |l| l.to_string().contains(&request_id) && l.to_string().contains("uncheckable"),
                Duration::from_secs(5),
            )
            .expect("the cause is logged");
        assert!(logged.to_string().contains(why), "{query}: {logged}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn report_mode_lets_requests_through_and_logs_them() {
    let s = setup("report").await;
    let gw = &s.gw;
    let (status, order) = call(gw, "GET", "/api/orders/1", Some(&s.bob), None).await;
    assert_eq!(status, 200, "report mode does not block");
    assert_eq!(order["ownerId"], "alice");
    let (_, list) = call(gw, "GET", "/api/orders", Some(&s.bob), None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        3,
        "report mode does not filter"
    );
    let event = gw
        .wait_for_log(
            |l| {
                l.to_string().contains("\"owner_violation\"")
                    && l.to_string().contains("\"report\"")
            },
            Duration::from_secs(5),
        )
        .expect("the would-be denial is logged");
    assert!(
        event.to_string().contains("read_unowned") || event.to_string().contains("unowned_items")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_owner_mode_with_owner_other_user_admin_and_nobody() {
    let s = setup("enforce").await;
    let gw = &s.gw;

    // param: owner 200, other 404, admin bypass 200, nobody 401.
    for (key, status) in [
        (Some(&s.alice), 200),
        (Some(&s.bob), 404),
        (Some(&s.admin), 200),
        (None, 401),
    ] {
        let (got, _) = call(
            gw,
            "GET",
            "/users/alice/profile",
            key.map(String::as_str),
            None,
        )
        .await;
        assert_eq!(got, status, "param rule, key {key:?}");
    }
    // collection (filter): nobody gets 401 before the upstream is asked.
    assert_eq!(call(gw, "GET", "/api/orders", None, None).await.0, 401);

    // collection in deny mode: a list holding someone else's item is refused (403);
    // the admin has no bypass on this route either.
    let strict = Some("strict.test");
    let (status, body) = call_host(gw, strict, "GET", "/api/orders", Some(&s.alice), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:palisade:problem:forbidden");

    // on_create = "enforce": creating in another's name is refused, in one's own allowed.
    let as_alice = json!({"item": "pen", "quantity": 1, "ownerId": "alice"});
    let (status, _) = call_host(
        gw,
        strict,
        "POST",
        "/api/orders",
        Some(&s.bob),
        Some(as_alice.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, created) = call_host(
        gw,
        strict,
        "POST",
        "/api/orders",
        Some(&s.alice),
        Some(as_alice),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["ownerId"], "alice");
    let (_, all) = call(gw, "GET", "/api/orders", Some(&s.admin), None).await;
    let alice_pens = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["item"] == "pen")
        .count();
    assert_eq!(alice_pens, 2, "bob's create as alice never reached the API");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_method_header_or_body_trick_gets_around_the_owner_check() {
    let s = setup("enforce").await;
    let gw = &s.gw;

    // Methods other than GET/HEAD are writes: checked on the object first.
    for method in ["OPTIONS", "PROPFIND"] {
        let (status, body) = call(gw, method, "/api/orders/1", Some(&s.bob), None).await;
        assert_eq!(status, 404, "{method}");
        assert_not_found(&body);
    }

    // A conditional request cannot confirm that someone else's object exists.
    let response = reqwest::Client::new()
        .get(format!("{}/api/orders/1", gw.http_url()))
        .header("x-api-key", &s.bob)
        .header("if-none-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.headers().get("etag").is_none());
    // ... and the owner always gets the whole, checked object.
    let response = reqwest::Client::new()
        .get(format!("{}/api/orders/1", gw.http_url()))
        .header("x-api-key", &s.alice)
        .header("if-none-match", "*")
        .header("range", "bytes=0-5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["ownerId"], "alice");

    // Bodies: a repeated member, or the owner field in another case, never gets through.
    let raw = |body: &'static str, key: &str| {
        reqwest::Client::new()
            .put(format!("{}/api/orders/2", gw.http_url()))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let duplicate = raw(r#"{"quantity":1,"quantity":2}"#, &s.bob).await.unwrap();
    assert_eq!(duplicate.status(), 400);
    let cased = raw(r#"{"OwnerID":"alice"}"#, &s.bob).await.unwrap();
    assert_eq!(
        cased.status(),
        400,
        "a denied field in another case is still denied"
    );
    let (_, order) = call(gw, "GET", "/api/orders/2", Some(&s.bob), None).await;
    assert_eq!(order["ownerId"], "bob");
    assert_eq!(order["quantity"], 2, "no rejected write reached the API");
}
