//! Checklist #1 through real sockets: the redirect listener, HSTS, TLS versions, ALPN and
//! certificate reload, against the real binary and a recording upstream.

use std::time::Duration;

use palisade_testkit::raw::{self, tls_version};
use palisade_testkit::{GatewayProcess, HandshakeOutcome, RecordingUpstream, TestPki};

const HSTS: &str = "max-age=63072000; includeSubDomains";

fn config(upstream: &RecordingUpstream) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"

[server.tls]
cert = "server.pem"
key = "server.key"
hsts = "{HSTS}"

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "app"
auth = "public"
"#,
        url = upstream.url()
    )
}

fn start(upstream: &RecordingUpstream, pki: &TestPki) -> GatewayProcess {
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config(upstream))
        .file("server.pem", &pki.cert_pem)
        .file("server.key", &pki.key_pem)
        .start()
}

/// A client that trusts only `pki`'s CA and opens a new connection for every client.
fn client(pki: &TestPki, http1_only: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none());
    let builder = if http1_only {
        builder.http1_only()
    } else {
        builder
    };
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_answers_only_with_a_redirect_to_https() {
    let upstream = RecordingUpstream::start().await;
    let pki = TestPki::new();
    let gw = start(&upstream, &pki);
    let http = gw.http();
    let https_port = gw.https().port();

    let cases: [(&str, &str); 3] = [
        ("GET", "/api/orders?page=2"),
        ("POST", "/api/orders"),
        // Nothing is routed on plain http, not even unknown or odd paths.
        ("GET", "/anything/../else"),
    ];
    for (method, target) in cases {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost:{}\r\nContent-Length: 2\r\n\r\n{{}}",
            http.port()
        );
        let response = raw::send(http, request.as_bytes()).await;
        assert_eq!(response.status, 308, "{method} {target}");
        assert_eq!(
            response.header("location"),
            Some(format!("https://localhost:{https_port}{target}").as_str()),
            "{method} {target}"
        );
        assert!(response.body.is_empty());
        assert!(response.header("x-request-id").is_some());
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        // HSTS is an https-only header (RFC 6797 §7.2).
        assert_eq!(response.header("strict-transport-security"), None);
    }

    // Without a usable host there is nowhere to redirect to.
    let response = raw::send(http, b"GET /api/orders HTTP/1.0\r\n\r\n").await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(response.json()["status"], 400);

    assert!(
        upstream.requests().is_empty(),
        "plain http must never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_https_response_carries_hsts_over_h2_and_http1() {
    let upstream = RecordingUpstream::start().await;
    let pki = TestPki::new();
    let gw = start(&upstream, &pki);
    let base = gw.https_url();

    for (http1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let client = client(&pki, http1_only);
        let ok = client
            .get(format!("{base}/api/orders"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.version(), version, "ALPN picks the protocol");
        assert_eq!(ok.headers()["strict-transport-security"], HSTS);
        assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
        assert!(ok.headers().get("server").is_none());
        let body: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(body["upstream"], "ok");
        assert_eq!(body["path"], "/api/orders");

        // The gateway's own errors carry it too.
        let missing = client.get(format!("{base}/nope")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.headers()["strict-transport-security"], HSTS);
        assert_eq!(
            missing.headers()["content-type"],
            "application/problem+json"
        );
        let problem: serde_json::Value = missing.json().await.unwrap();
        assert_eq!(problem["status"], 404);
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|r| r.header("x-forwarded-proto") == Some("https"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_below_1_2_is_refused() {
    let upstream = RecordingUpstream::start().await;
    let pki = TestPki::new();
    let gw = start(&upstream, &pki);

    for old in [tls_version::TLS1_0, tls_version::TLS1_1] {
        match raw::tls_handshake_with_version(gw.https(), old).await {
            // protocol_version (70) or handshake_failure (40), fatal (2).
            HandshakeOutcome::Alert { level, description } => {
                assert_eq!(level, 2, "fatal alert for {old:#06x}");
                assert!(
                    [70, 40].contains(&description),
                    "alert {description} for {old:#06x}"
                );
            }
            other => panic!("TLS {old:#06x} must be refused, got {other:?}"),
        }
    }
    assert!(matches!(
        raw::tls_handshake_with_version(gw.https(), tls_version::TLS1_2).await,
        HandshakeOutcome::ServerHello { version: 0x0303 }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_without_a_restart() {
    let upstream = RecordingUpstream::start().await;
    let old = TestPki::new();
    let new = TestPki::new();
    let gw = start(&upstream, &old);
    let url = format!("{}/api/orders", gw.https_url());

    assert_eq!(
        client(&old, false).get(&url).send().await.unwrap().status(),
        200
    );
    assert!(
        client(&new, false).get(&url).send().await.is_err(),
        "new CA not served yet"
    );

    gw.write_file("server.pem", &new.cert_pem);
    gw.write_file("server.key", &new.key_pem);
    gw.signal("HUP");
    gw.wait_for_event("config_reloaded", Duration::from_secs(10))
        .expect("reload logged");

    assert_eq!(
        client(&new, false).get(&url).send().await.unwrap().status(),
        200
    );
    assert!(
        client(&old, false).get(&url).send().await.is_err(),
        "old certificate retired"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn self_signed_development_certificate_is_made_at_start() {
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(
            config(&upstream)
                .replace(
                    "cert = \"server.pem\"\nkey = \"server.key\"",
                    "self_signed = true",
                )
                .replace(&format!("hsts = \"{HSTS}\"\n"), ""),
        )
        .start();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/api/orders", gw.https_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The default HSTS policy: one year.
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_over_http2_gets_its_413() {
    let upstream = RecordingUpstream::start().await;
    let pki = TestPki::new();
    let gw = start(&upstream, &pki);
    let response = client(&pki, false)
        .post(format!("{}/api/orders", gw.https_url()))
        .header("content-type", "application/json")
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(upstream.requests().is_empty());
}
