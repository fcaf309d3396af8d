//! Checklist #7: every security event shares one schema — time, event, request id, client
//! ip, route, principal (subject, key id), reason — whatever layer logged it.

use crate::common;

use std::time::Duration;

use palisade_testkit::config::ADMIN_TOKEN;
use palisade_testkit::gateway::log_event;
use palisade_testkit::{RecordingUpstream, TestConfig};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn every_security_event_carries_the_shared_fields() {
    let upstream = RecordingUpstream::start().await;
    let (_down, down) = common::refusing_port();
    let gw = TestConfig::new()
        .store("sqlite://keys.db")
        .tables(&format!(
            r#"
[[upstream]]
name = "app"
url = "{app}"

[[upstream]]
name = "down"
url = "http://127.0.0.1:{down}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["POST"]
upstream = "app"
roles = ["customer"]
validate = {{ body = "order.json" }}

[[route]]
name = "staff"
path = "/api/staff"
methods = ["GET"]
upstream = "app"
roles = ["admin"]

[[route]]
name = "profile"
path = "/users/{{user_id}}/profile"
methods = ["GET"]
upstream = "app"
owner = {{ param = "user_id", claim = "sub" }}

[[alert]]
name = "any_forbidden"
event = "forbidden"
threshold = 1
window = "1m"

[[route]]
name = "ping"
path = "/api/ping"
methods = ["GET"]
upstream = "app"
auth = "public"
rate_limit = {{ limit = 1, window = "1h", per = "ip", name = "ping-ip" }}

[[route]]
name = "broken"
path = "/api/broken"
methods = ["GET"]
upstream = "down"
auth = "public"
"#,
            app = upstream.url(),
            down = down
        ))
        .gateway(env!("CARGO_BIN_EXE_palisade"))
        .file(
            "order.json",
            r#"{"type": "object", "properties": {"qty": {"type": "integer"}}, "required": ["qty"]}"#,
        )
        .start();
    let client = reqwest::Client::new();
    let (key, key_id) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        json!({ "name": "shop", "subject": "shop-1", "roles": ["customer"] }),
    )
    .await;
    let url = |path: &str| format!("{}{path}", gw.http_url());
    let request_id =
        |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();

    // Each request below causes one event; its request id ties the line to it.
    let mut expected: Vec<(&str, String, u16)> = Vec::new();
    let r = client
        .get(url("/api/staff"))
        .header("x-api-key", format!("{key}x"))
        .send()
        .await
        .unwrap();
    expected.push(("auth_failed", request_id(&r), r.status().as_u16()));
    let r = client
        .get(url("/api/staff"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    expected.push(("forbidden", request_id(&r), r.status().as_u16()));
    let r = client
        .get(url("/users/someone-else/profile"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    expected.push(("owner_violation", request_id(&r), r.status().as_u16()));
    let r = client
        .post(url("/api/orders"))
        .header("x-api-key", &key)
        .json(&json!({ "qty": "three" }))
        .send()
        .await
        .unwrap();
    expected.push(("invalid_request", request_id(&r), r.status().as_u16()));
    let first = client.get(url("/api/ping")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let r = client.get(url("/api/ping")).send().await.unwrap();
    expected.push(("rate_limited", request_id(&r), r.status().as_u16()));
    let r = client.get(url("/api/broken")).send().await.unwrap();
    expected.push(("upstream_error", request_id(&r), r.status().as_u16()));
    let statuses: Vec<u16> = expected.iter().map(|e| e.2).collect();
    assert_eq!(statuses, [401, 403, 404, 400, 429, 502]);

    let admin = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{}{path}", gw.admin_url()))
            .bearer_auth(ADMIN_TOKEN)
    };
    assert_eq!(
        admin(reqwest::Method::POST, "/reload")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let revoke = admin(reqwest::Method::DELETE, &format!("/keys/{key_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);

    // A wrong or missing admin token: `auth_failed` on route `admin`, as loud as the gateway's.
    let mut admin_failures = Vec::new();
    for (token, reason) in [(None, "missing_credentials"), (Some("x"), "wrong_secret")] {
        let mut request = client.post(format!("{}/reload", gw.admin_url()));
        if let Some(token) = token {
            request = request.bearer_auth(format!("{ADMIN_TOKEN}{token}"));
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401);
        admin_failures.push((reason, request_id(&r)));
    }

    let find = |event: &str, pred: &dyn Fn(&Value) -> bool| {
        tokio::task::block_in_place(|| {
            gw.wait_for_log(
                |l| log_event(l) == Some(event) && pred(l),
                Duration::from_secs(5),
            )
        })
        .unwrap_or_else(|| panic!("no {event} line:\n{}", gw.stdout()))
    };
    let shared = [
        "timestamp",
        "level",
        "event",
        "request_id",
        "client_ip",
        "route",
        "subject",
        "key_id",
        "reason",
    ];
    let has_schema = |line: &Value| {
        for field in shared {
            assert!(
                line[field].as_str().is_some_and(|v| !v.is_empty()),
                "`{field}` missing in {line}"
            );
        }
    };
    for (event, id, _) in &expected {
        let line = find(event, &|l| l["request_id"] == id.as_str());
        has_schema(&line);
        assert_eq!(line["client_ip"], "127.0.0.1", "{line}");
    }
    // The route and the principal are named where they are known.
    let forbidden = find("forbidden", &|_| true);
    assert_eq!(forbidden["route"], "staff");
    assert_eq!(forbidden["subject"], "shop-1");
    assert_eq!(forbidden["key_id"], key_id.as_str());
    assert_eq!(forbidden["reason"], "missing_role");
    let failed = find("auth_failed", &|_| true);
    assert_eq!(
        failed["key_id"],
        key_id.as_str(),
        "the presented key's public id"
    );
    assert_eq!(failed["subject"], "-", "nobody was authenticated");
    let owner = find("owner_violation", &|_| true);
    assert_eq!(owner["route"], "profile", "{owner}");
    assert_eq!(owner["subject"], "shop-1", "{owner}");
    assert_eq!(owner["key_id"], key_id.as_str(), "{owner}");
    let invalid = find("invalid_request", &|_| true);
    assert_eq!(invalid["subject"], "shop-1");
    assert_eq!(find("rate_limited", &|_| true)["reason"], "limit");
    assert_eq!(find("upstream_error", &|_| true)["reason"], "unavailable");

    // Events outside a request have the same fields, `-` where there is no request.
    for event in ["key_created", "config_reloaded", "key_revoked", "alert"] {
        let line = find(event, &|_| true);
        has_schema(&line);
        assert_eq!(line["request_id"], "-", "{line}");
    }
    assert_eq!(find("key_created", &|_| true)["key_id"], key_id.as_str());
    assert_eq!(find("key_created", &|_| true)["subject"], "shop-1");
    assert_eq!(find("key_revoked", &|_| true)["key_id"], key_id.as_str());
    let alert = find("alert", &|_| true);
    assert_eq!(alert["alert"], "any_forbidden", "{alert}");
    assert_eq!(alert["trigger_event"], "forbidden", "{alert}");
    assert_eq!(alert["reason"], "threshold_crossed", "{alert}");

    for (reason, id) in &admin_failures {
        let line = find("auth_failed", &|l| l["request_id"] == id.as_str());
        has_schema(&line);
        assert_eq!(line["route"], "admin", "{line}");
        assert_eq!(line["reason"], *reason, "{line}");
        assert_eq!(line["client_ip"], "127.0.0.1", "{line}");
        assert_eq!(line["key_id"], "-", "{line}");
    }
    assert!(
        !gw.stdout().contains(&format!("{ADMIN_TOKEN}x")),
        "the guess is not logged"
    );

    // The access line names the principal too, so a request can be traced to a key.
    let access = find("request", &|l| l["route"] == "orders");
    assert_eq!(access["key_id"], key_id.as_str());
    // The metrics count every event by event, reason and route.
    let metrics = common::metrics(&gw).await;
    for series in [
        r#"palisade_security_events_total{event="forbidden",reason="missing_role",route="staff"} 1"#,
        r#"palisade_security_events_total{event="key_created",reason="created",route="-"} 1"#,
        r#"palisade_security_events_total{event="rate_limited",reason="limit",route="ping"} 1"#,
        r#"palisade_security_events_total{event="auth_failed",reason="missing_credentials",route="admin"} 1"#,
        r#"palisade_security_events_total{event="auth_failed",reason="wrong_secret",route="admin"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} not in\n{metrics}");
    }
}
