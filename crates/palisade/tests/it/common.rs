//! Helpers shared by the integration tests: API keys, palisade's response headers and
//! problem bodies, and log lines.

use std::time::Duration;

use palisade_testkit::gateway::{log_event, log_field};
use palisade_testkit::{GatewayProcess, RawResponse};
use serde_json::Value;

/// Creates a key through the admin API and checks the answer; returns `(key, id)`.
pub(crate) async fn create_key(
    gw: &GatewayProcess,
    admin_token: &str,
    body: Value,
) -> (String, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/keys", gw.admin_url()))
        .bearer_auth(admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.unwrap();
    // The whole key and its secret part alone: the leak check looks for both.
    let key = palisade_testkit::secrets::record_api_key(created["key"].as_str().unwrap());
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("pal_{id}_")), "{key}");
    (key, id)
}

/// The status of `GET /api/orders` with the API key `key`.
pub(crate) async fn status_with(gw: &GatewayProcess, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/api/orders", gw.http_url()))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The headers palisade puts on (or removes from) every response; returns the request id.
/// `what` names the case in failure messages.
pub(crate) fn assert_gateway_headers(rsp: &RawResponse, what: &str) -> String {
    let id = rsp
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no x-request-id in {rsp:?}"));
    assert!(!id.is_empty(), "{what}: empty x-request-id");
    assert_eq!(
        rsp.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(rsp.header("server"), None, "{what}: {rsp:?}");
    assert_eq!(rsp.header("x-powered-by"), None, "{what}: {rsp:?}");
    id.to_owned()
}

/// A palisade problem+json answer with this status and slug, tied to the request id;
/// returns the id.
pub(crate) fn assert_problem(rsp: &RawResponse, status: u16, slug: &str, what: &str) -> String {
    assert_eq!(rsp.status, status, "{what}: {}", rsp.body_str());
    let id = assert_gateway_headers(rsp, what);
    assert_eq!(
        rsp.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let body = rsp.json();
    assert_eq!(
        body["type"],
        format!("urn:palisade:problem:{slug}"),
        "{what}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: {body}"
    );
    assert_eq!(body["status"], status, "{what}");
    assert_eq!(body["request_id"], id.as_str(), "{what}");
    id
}

/// The first log line with this `event` and `request_id` (the access log line is written
/// when the response body ends, so it may trail the response by a moment).
pub(crate) fn log_line(gw: &GatewayProcess, event: &str, id: &str) -> Value {
    tokio::task::block_in_place(|| {
        gw.wait_for_log(
            |v| {
                log_event(v) == Some(event)
                    && log_field(v, "request_id").and_then(Value::as_str) == Some(id)
            },
            Duration::from_secs(5),
        )
    })
    .unwrap_or_else(|| panic!("no {event} log line for request {id}\n{}", gw.stdout()))
}

/// The admin API's `/metrics` text (readable without the token).
pub(crate) async fn metrics(gw: &GatewayProcess) -> String {
    let response = reqwest::get(format!("{}/metrics", gw.admin_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A port of 127.0.0.1 that refuses connections for as long as the socket lives: it is
/// bound but never listens, so no other socket can take the port meanwhile (a port found
/// free and released could be bound by anything before the test is done with it).
pub(crate) fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Waits for a log line whose message contains `text`; panics otherwise.
pub(crate) fn wait_for_message(gw: &GatewayProcess, text: &str) {
    tokio::task::block_in_place(|| {
        gw.wait_for_log(
            |l| l["message"].as_str().is_some_and(|m| m.contains(text)),
            Duration::from_secs(30),
        )
    })
    .unwrap_or_else(|| panic!("no log line saying {text:?}\n{}", gw.stdout()));
}
