//! Upstreams over https: trusted through the CA the operator names, refused otherwise.

use palisade_testkit::{GatewayProcess, RecordingUpstream, TestPki};

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_is_verified_against_the_configured_ca() {
    let pki = TestPki::new();
    let upstream = RecordingUpstream::start_tls(&pki).await;
    let url = upstream.url();
    assert!(url.starts_with("https://"));
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"

[[upstream]]
name = "private-ca"
url = "{url}"
ca = "upstream-ca.pem"

[[upstream]]
name = "public-roots"
url = "{url}"

[[route]]
name = "trusted"
path = "/trusted"
methods = ["GET"]
upstream = "private-ca"
auth = "public"

[[route]]
name = "untrusted"
path = "/untrusted"
methods = ["GET"]
upstream = "public-roots"
auth = "public"
"#
    );
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .file("upstream-ca.pem", &pki.ca_pem)
        .start();

    let ok = reqwest::get(format!("{}/trusted", gw.http_url()))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["path"], "/trusted");
    assert_eq!(upstream.requests().len(), 1);

    // A certificate from an unknown CA is a failed upstream: 502, and nothing is sent.
    let refused = reqwest::get(format!("{}/untrusted", gw.http_url()))
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 502);
    assert_eq!(
        upstream.requests().len(),
        1,
        "no request over an unverified connection"
    );
}
