//! Checklist #2 with JWTs, end to end: the real gateway verifying tokens from a real JWKS
//! endpoint, picking up the issuer's key rotation without a restart, and refusing forgeries.

use std::time::Duration;

use palisade_testkit::jwks::{Algorithm, JwksServer, SigningKey};
use palisade_testkit::{GatewayProcess, RecordingUpstream};
use serde_json::json;

const AUDIENCE: &str = "orders-api";

fn start(upstream: &RecordingUpstream, issuer: &JwksServer) -> GatewayProcess {
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"

[auth.jwt]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256"]
jwks_url = "{jwks}"
roles_claim = "realm_access.roles"
jwks_cooldown = "1s"

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
auth = "jwt"

[[route]]
name = "tenant"
path = "/tenants/{{tenant}}/data"
methods = ["GET"]
upstream = "app"
owner = {{ param = "tenant", claim = "tenant_id" }}
"#,
        issuer = issuer.issuer(),
        jwks = issuer.jwks_url(),
        url = upstream.url()
    );
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .start()
}

async fn call(gw: &GatewayProcess, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/orders", gw.http_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_from_the_issuer_authenticate_and_forgeries_do_not() {
    let upstream = RecordingUpstream::start().await;
    let issuer = JwksServer::start().await;
    let kid = issuer.add_key(Algorithm::ES256);
    let gw = start(&upstream, &issuer);

    let mut claims = issuer.claims("user-42", AUDIENCE);
    claims["realm_access"] = json!({"roles": ["customer"]});
    claims["scope"] = json!("orders:read profile");
    let token = issuer.sign(&kid, claims.clone());
    let response = call(&gw, &token).await;
    assert_eq!(response.status(), 200);
    let seen = upstream.last().unwrap();
    assert_eq!(seen.header("x-palisade-subject"), Some("user-42"));
    assert_eq!(seen.header("x-palisade-roles"), Some("customer"));
    assert_eq!(
        seen.header("x-palisade-scopes"),
        Some("orders:read profile")
    );
    assert_eq!(
        seen.header("authorization"),
        None,
        "the token stays at the gateway"
    );

    upstream.clear();
    let mut expired = claims.clone();
    expired["exp"] = json!(palisade_testkit::jwks::now_secs() - 3600);
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("another-api");
    let forgeries = [
        (
            "alg none",
            issuer.sign_with_header(
                json!({"alg": "none", "typ": "JWT"}),
                claims.clone(),
                SigningKey::Unsigned,
            ),
        ),
        (
            "HS256 keyed with the public key",
            issuer.sign_with_header(
                json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
                claims.clone(),
                SigningKey::Hmac(issuer.public_pem(&kid).as_bytes()),
            ),
        ),
        ("expired", issuer.sign(&kid, expired)),
        ("wrong audience", issuer.sign(&kid, wrong_audience)),
        (
            "jku pointing elsewhere",
            issuer.sign_with_header(
                json!({"alg": "ES256", "kid": kid, "jku": "http://127.0.0.1:9/jwks.json"}),
                claims.clone(),
                SigningKey::Kid(&kid),
            ),
        ),
        ("bad signature", {
            let mut t = token.clone();
            let last = t.pop().unwrap();
            t.push(if last == 'A' { 'B' } else { 'A' });
            t
        }),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (name, forged) in forgeries {
        let response = call(&gw, &forged).await;
        assert_eq!(response.status(), 401, "{name}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"palisade\", error=\"invalid_token\"",
            "{name}"
        );
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            problem["detail"], "valid credentials are required",
            "{name}"
        );
    }
    assert!(
        upstream.requests().is_empty(),
        "no forged token reached the upstream"
    );
    for line in gw.logs() {
        assert!(
            !line.to_string().contains(&token),
            "a token in the log: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_at_the_issuer_needs_no_restart() {
    let upstream = RecordingUpstream::start().await;
    let issuer = JwksServer::start().await;
    let old = issuer.add_key(Algorithm::RS256);
    let gw = start(&upstream, &issuer);
    let claims = issuer.claims("user-7", AUDIENCE);
    assert_eq!(
        call(&gw, &issuer.sign(&old, claims.clone())).await.status(),
        200
    );

    // The issuer rotates: a new kid appears, the old one is withdrawn.
    let new = issuer.add_key(Algorithm::RS256);
    issuer.remove_key(&old);
    // Unknown-kid refreshes are limited by the 1 s cooldown; the first one may fall in it.
    let token = issuer.sign(&new, claims);
    let mut status = call(&gw, &token).await.status();
    for _ in 0..20 {
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = call(&gw, &token).await.status();
    }
    assert_eq!(status, 200, "the new key is fetched without a restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenancy_compares_a_path_parameter_with_a_token_claim() {
    let upstream = RecordingUpstream::start().await;
    let issuer = JwksServer::start().await;
    let kid = issuer.add_key(Algorithm::ES256);
    let gw = start(&upstream, &issuer);
    let mut claims = issuer.claims("user-1", AUDIENCE);
    claims["tenant_id"] = json!("acme");
    let token = issuer.sign(&kid, claims);
    let get = |path: &str| {
        reqwest::Client::new()
            .get(format!("{}{path}", gw.http_url()))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get("/tenants/acme/data").await.unwrap().status(), 200);
    assert_eq!(get("/tenants/globex/data").await.unwrap().status(), 404);
    assert_eq!(
        upstream.requests().len(),
        1,
        "the other tenant's request never left"
    );
    // A token without the claim owns nothing.
    let bare = issuer.sign(&kid, issuer.claims("user-2", AUDIENCE));
    let response = reqwest::Client::new()
        .get(format!("{}/tenants/acme/data", gw.http_url()))
        .bearer_auth(&bare)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
