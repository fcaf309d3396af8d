//! Helpers shared by the integration tests that need API keys.

use palisade_testkit::GatewayProcess;

/// Creates a key through the admin API and checks the answer; returns `(key, id)`.
pub async fn create_key(
    gw: &GatewayProcess,
    admin_token: &str,
    body: serde_json::Value,
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
    let created: serde_json::Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("pal_{id}_")), "{key}");
    (key, id)
}
