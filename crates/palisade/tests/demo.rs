//! `palisade demo`: the README's first command, as a new user runs it.

use std::process::Command;

use palisade_testkit::GatewayProcess;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const FREE_PORTS: [&str; 9] = [
    "demo",
    "--http",
    "127.0.0.1:0",
    "--https",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
];

fn insecure_client() -> reqwest::Client {
    // The demo's certificate is self-signed, as the tour's `curl -k` says.
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_serves_the_sample_api_through_every_layer_and_prints_a_tour() {
    let gw = GatewayProcess::builder(BIN).args(FREE_PORTS).start();
    let base = gw.https_url();
    let client = insecure_client();

    let orders = client
        .get(format!("{base}/api/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 200);
    assert_eq!(
        orders.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert!(orders.headers().get("x-powered-by").is_none());
    let body: serde_json::Value = orders.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 3);

    let crash = client
        .get(format!("{base}/api/debug/crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(crash.status(), 500);
    assert_eq!(crash.headers()["content-type"], "application/problem+json");
    let text = crash.text().await.unwrap();
    assert!(
        !text.contains("s3cr3t") && !text.contains("node_modules"),
        "{text}"
    );

    let whoami = client
        .get(format!("{base}/api/whoami"))
        .header("X-Palisade-Subject", "admin")
        .header("X-Forwarded-For", "6.6.6.6")
        .send()
        .await
        .unwrap();
    let seen: serde_json::Value = whoami.json().await.unwrap();
    assert_eq!(seen["subject"], serde_json::Value::Null);
    assert_eq!(seen["forwarded_for"], "127.0.0.1");

    let redirect = client
        .get(format!("{}/api/orders", gw.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);

    let stdout = gw.stdout();
    assert!(stdout.contains("Palisade demo"), "{stdout}");
    assert!(stdout.contains(&format!(
        "https://localhost:{}/api/orders",
        gw.https().port()
    )));
    assert!(stdout.contains("palisade demo --print-config"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_demo_config_is_a_working_config() {
    let output = Command::new(BIN)
        .args(FREE_PORTS)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(output.status.success());
    let config = String::from_utf8(output.stdout).unwrap();
    // The printed file holds a reference, never a literal admin token.
    assert!(
        config.contains("admin_token = \"${env:PALISADE_ADMIN_TOKEN}\""),
        "{config}"
    );

    let gw = GatewayProcess::builder(BIN)
        .config(config)
        .env("PALISADE_ADMIN_TOKEN", "printed-config-token")
        .start();
    let response = insecure_client()
        .get(format!("{}/api/nope", gw.https_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
