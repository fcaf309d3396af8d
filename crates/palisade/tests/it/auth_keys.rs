//! Checklist #2 with API keys, end to end: keys made through the admin API and the CLI,
//! verified by the real gateway against a real SQLite store, and never seen in a log.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;

use palisade_testkit::config::{ADMIN_TOKEN, KEY_PEPPER};
use palisade_testkit::{GatewayProcess, RecordingUpstream, TestConfig, secrets};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

fn config(upstream: &RecordingUpstream) -> TestConfig {
    TestConfig::new().store("sqlite://keys.db").tables(&format!(
        r#"
[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "public"
path = "/public"
methods = ["GET"]
upstream = "app"
auth = "public"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"

[[route]]
name = "partner"
path = "/partner"
methods = ["GET"]
upstream = "app"
auth = "api_key"
forward_credentials = true
"#,
        url = upstream.url()
    ))
}

fn start(upstream: &RecordingUpstream) -> GatewayProcess {
    config(upstream).gateway(BIN).start()
}

async fn create_key(gw: &GatewayProcess, body: serde_json::Value) -> (String, String) {
    common::create_key(gw, ADMIN_TOKEN, body).await
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn assert_unauthorized(response: reqwest::Response, token_given: bool) {
    assert_eq!(response.status(), 401);
    let challenge = if token_given {
        "Bearer realm=\"palisade\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"palisade\""
    };
    assert_eq!(response.headers()["www-authenticate"], challenge);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401);
    assert_eq!(problem["request_id"], request_id.as_str());
    // The body never says which check failed.
    assert_eq!(problem["detail"], "valid credentials are required");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_authenticate_and_identity_reaches_the_upstream() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let orders = format!("{}/api/orders", gw.http_url());
    let (key, id) = create_key(
        &gw,
        serde_json::json!({"name": "billing", "subject": "svc-billing", "roles": ["service"], "scopes": ["orders:read", "orders:write"]}),
    )
    .await;

    // Public routes need nothing; private ones answer 401 without a key.
    assert_eq!(
        get(&format!("{}/public", gw.http_url()), &[])
            .await
            .status(),
        200
    );
    assert_unauthorized(get(&orders, &[]).await, false).await;
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.path() != "/api/orders")
    );

    for (name, value) in [
        ("x-api-key", key.clone()),
        ("authorization", format!("Bearer {key}")),
    ] {
        upstream.clear();
        let response = get(&orders, &[(name, &value), ("x-palisade-subject", "admin")]).await;
        assert_eq!(response.status(), 200, "{name}");
        let seen = upstream.last().unwrap();
        assert_eq!(seen.header("x-palisade-subject"), Some("svc-billing"));
        assert_eq!(seen.header("x-palisade-roles"), Some("service"));
        assert_eq!(
            seen.header("x-palisade-scopes"),
            Some("orders:read orders:write")
        );
        assert_eq!(seen.header("x-palisade-key-id"), Some(id.as_str()));
        // The credential stays at the gateway unless the route forwards it.
        assert_eq!(seen.header("x-api-key"), None);
        assert_eq!(seen.header("authorization"), None);
    }

    // forward_credentials = true passes the key on.
    upstream.clear();
    let response = get(
        &format!("{}/partner", gw.http_url()),
        &[("x-api-key", &key)],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        upstream.last().unwrap().header("x-api-key"),
        Some(key.as_str())
    );

    // Forged, malformed, misplaced and doubled credentials.
    let (prefix, secret) = key.rsplit_once('_').unwrap();
    let mut forged_secret = secret.to_owned();
    let last = forged_secret.pop().unwrap();
    forged_secret.push(if last == 'a' { 'b' } else { 'a' });
    let forged = format!("{prefix}_{forged_secret}");
    upstream.clear();
    assert_unauthorized(get(&orders, &[("x-api-key", &forged)]).await, true).await;
    assert_unauthorized(
        get(&orders, &[("x-api-key", "pal_nonexistent0_abc")]).await,
        true,
    )
    .await;
    assert_unauthorized(
        get(&orders, &[("authorization", "Basic YTpi")]).await,
        false,
    )
    .await;
    assert_unauthorized(get(&format!("{orders}?api_key={key}"), &[]).await, false).await;
    let bearer = format!("Bearer {key}");
    assert_unauthorized(
        get(&orders, &[("x-api-key", &key), ("authorization", &bearer)]).await,
        true,
    )
    .await;
    assert!(
        upstream.requests().is_empty(),
        "no rejected request reached the upstream"
    );

    // Each failure is an auth_failed event with a reason, never the key.
    let failed = gw
        .wait_for_log(
            |l| l.to_string().contains("\"auth_failed\"") && l.to_string().contains("wrong_secret"),
            Duration::from_secs(5),
        )
        .expect("auth_failed event for the forged key");
    assert!(
        failed.to_string().contains(&id),
        "the public key id is logged: {failed}"
    );
    for line in gw.logs() {
        let line = line.to_string();
        assert!(
            !line.contains(secret),
            "the key's secret leaked into a log line: {line}"
        );
        assert!(
            !line.contains(&forged_secret),
            "a presented secret leaked: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_and_rotation_through_the_admin_api() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let orders = format!("{}/api/orders", gw.http_url());
    let client = reqwest::Client::new();
    let (revoked, revoked_id) =
        create_key(&gw, serde_json::json!({"name": "a", "subject": "a"})).await;
    let (old, old_id) = create_key(&gw, serde_json::json!({"name": "b", "subject": "b"})).await;
    assert_eq!(get(&orders, &[("x-api-key", &revoked)]).await.status(), 200);

    // Revocation takes effect on the next request.
    let response = client
        .delete(format!("{}/keys/{revoked_id}", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_unauthorized(get(&orders, &[("x-api-key", &revoked)]).await, true).await;

    // Rotation: the new key works at once, the old one until the overlap ends.
    let rotated = client
        .post(format!("{}/keys/{old_id}/rotate", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"overlap": "2s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 201);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let new = secrets::record_api_key(rotated["key"].as_str().unwrap());
    assert_eq!(rotated["info"]["subject"], "b");
    assert_eq!(get(&orders, &[("x-api-key", &new)]).await.status(), 200);
    assert_eq!(get(&orders, &[("x-api-key", &old)]).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = get(&orders, &[("x-api-key", &old)]).await.status();
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old key outlived its overlap"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&orders, &[("x-api-key", &new)]).await.status(), 200);

    // The list shows states, never a secret.
    let list = client
        .get(format!("{}/keys", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let text = list.text().await.unwrap();
    for key in [&revoked, &old, &new] {
        let secret = key.rsplit_once('_').unwrap().1;
        assert!(!text.contains(secret), "a secret in GET /keys: {text}");
    }
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let state_of = |id: &str| {
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["state"].clone())
    };
    assert_eq!(state_of(&revoked_id), Some("revoked".into()));
    assert_eq!(state_of(&old_id), Some("expired".into()));

    // Without the admin token, key management is refused.
    let anonymous = client
        .get(format!("{}/keys", gw.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_cli_manages_the_same_store_the_gateway_reads() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let cli = |args: &[&str]| {
        secrets::checked_output(
            Command::new(BIN)
                .arg("keys")
                .arg("-c")
                .arg(gw.config_path())
                .args(args)
                .env("PALISADE_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("PALISADE_KEY_PEPPER", KEY_PEPPER),
        )
    };
    let created = cli(&[
        "create",
        "--name",
        "ci",
        "--subject",
        "ci-bot",
        "--roles",
        "deployer",
        "--scopes",
        "a,b",
        "--expires",
        "90d",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("pal_"), "stdout is the key alone: {key:?}");
    // From now on the key is a secret no output may show.
    secrets::record_api_key(&key);
    let stderr = String::from_utf8(created.stderr).unwrap();
    assert!(stderr.contains("shown only now"), "{stderr}");
    let id = key.split('_').nth(1).unwrap().to_owned();
    // The change is a security event on stderr, in the gateway's schema, made by `cli`.
    let event = event_line(&stderr, "key_created");
    assert_eq!(event["key_id"], id.as_str(), "{event}");
    assert_eq!(event["subject"], "ci-bot", "{event}");
    assert_eq!(event["reason"], "created", "{event}");
    assert_eq!(event["actor"], "cli", "{event}");

    // The running gateway verifies a key it has never seen by reading the store.
    upstream.clear();
    let response = get(
        &format!("{}/api/orders", gw.http_url()),
        &[("x-api-key", &key)],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        upstream.last().unwrap().header("x-palisade-subject"),
        Some("ci-bot")
    );
    assert_eq!(
        upstream.last().unwrap().header("x-palisade-scopes"),
        Some("a b")
    );

    let listed = cli(&["list"]);
    assert!(listed.status.success());
    let table = String::from_utf8(listed.stdout).unwrap();
    assert!(
        table.contains(&id) && table.contains("ci-bot") && table.contains("active"),
        "{table}"
    );
    assert!(
        !table.contains(key.rsplit_once('_').unwrap().1),
        "a secret in the list"
    );

    let revoked = cli(&["revoke", &id]);
    assert!(revoked.status.success());
    let event = event_line(&String::from_utf8(revoked.stderr).unwrap(), "key_revoked");
    assert_eq!(event["key_id"], id.as_str(), "{event}");
    assert_eq!(event["reason"], "cli", "{event}");
    assert_eq!(event["actor"], "cli", "{event}");
    let unknown = cli(&["revoke", "doesnotexist"]);
    assert_eq!(unknown.status.code(), Some(2));
    let listed = cli(&["list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(list[0]["state"], "revoked");

    // A rotation: the new key alone on stdout, `key_created` (rotated) naming the old one.
    let created = cli(&["create", "--name", "ci2"]);
    let old_key = secrets::record_api_key(String::from_utf8(created.stdout).unwrap().trim());
    let old_id = old_key.split('_').nth(1).unwrap();
    let rotated = cli(&["rotate", old_id]);
    assert!(rotated.status.success());
    let new_key = secrets::record_api_key(String::from_utf8(rotated.stdout).unwrap().trim());
    assert!(
        new_key.starts_with("pal_") && !new_key.contains('\n'),
        "{new_key:?}"
    );
    let event = event_line(&String::from_utf8(rotated.stderr).unwrap(), "key_created");
    assert_eq!(
        event["key_id"],
        new_key.split('_').nth(1).unwrap(),
        "{event}"
    );
    assert_eq!(event["reason"], "rotated", "{event}");
    assert_eq!(event["replaces"], old_id, "{event}");
    assert_eq!(event["actor"], "cli", "{event}");
}

/// The one JSON line of `event` in a command's stderr, with the shared security-event fields.
fn event_line(stderr: &str, event: &str) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|l: &serde_json::Value| l["event"] == event)
        .collect();
    assert_eq!(lines.len(), 1, "one {event} line in:\n{stderr}");
    let line = lines.into_iter().next().unwrap();
    for field in [
        "timestamp",
        "level",
        "request_id",
        "client_ip",
        "route",
        "subject",
        "key_id",
        "reason",
    ] {
        assert!(
            line[field].as_str().is_some_and(|v| !v.is_empty()),
            "`{field}` missing in {line}"
        );
    }
    line
}
