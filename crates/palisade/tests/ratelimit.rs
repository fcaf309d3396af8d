//! Checklist #4 end to end: 429s with `Retry-After` and the IETF `RateLimit` headers, per ip
//! before authentication and per client after it, against the real gateway.

mod common;

use palisade_testkit::{GatewayProcess, RecordingUpstream};

const TOKEN: &str = "ratelimit-test-admin-token-0123";
const PEPPER: &str = "ratelimit-test-pepper-0123456789abcdef0123";

fn start(upstream: &RecordingUpstream) -> GatewayProcess {
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${{env:PALISADE_ADMIN_TOKEN}}"
# The test varies the client address through X-Forwarded-For from this trusted peer.
trusted_proxies = ["127.0.0.1"]

[rate_limit]
headers = "always"

[store]
url = "sqlite://keys.db"
key_pepper = "${{env:PALISADE_KEY_PEPPER}}"

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "app"
auth = "public"
rate_limit = {{ limit = 3, window = "15m", per = "ip", name = "login-ip" }}

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
rate_limit = [
    {{ limit = 50, window = "1m", per = "ip", name = "orders-ip" }},
    {{ limit = 5, window = "1m", per = "client", name = "orders-client" }},
]
"#,
        url = upstream.url()
    );
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .env("PALISADE_ADMIN_TOKEN", TOKEN)
        .env("PALISADE_KEY_PEPPER", PEPPER)
        .start()
}

async fn login_from(gw: &GatewayProcess, ip: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/login", gw.http_url()))
        .header("x-forwarded-for", ip)
        .json(&serde_json::json!({"username": "alice", "password": palisade_testkit::upstream::LOGIN_PASSWORD}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_is_limited_per_address_with_retry_after_and_ratelimit_headers() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);

    for remaining in [2, 1, 0] {
        let response = login_from(&gw, "203.0.113.7").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            "\"login-ip\";q=3;w=900"
        );
        let now = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            now.starts_with(&format!("\"login-ip\";r={remaining};t=")),
            "{now}"
        );
    }
    let refused = login_from(&gw, "203.0.113.7").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 3 per 15 minutes: the next one is admissible 5 minutes after the first.
    assert!(
        (290..=300).contains(&retry_after),
        "retry-after {retry_after}"
    );
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"login-ip\";q=3;w=900"
    );
    assert!(
        refused.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"login-ip\";r=0;t=")
    );
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["type"], "urn:palisade:problem:rate-limited");
    assert_eq!(
        upstream.requests().len(),
        3,
        "the refused attempt never reached the upstream"
    );

    // Another address has its own budget.
    assert_eq!(login_from(&gw, "198.51.100.2").await.status(), 200);
    let event = gw
        .wait_for_log(
            |l| l.to_string().contains("\"rate_limited\""),
            std::time::Duration::from_secs(5),
        )
        .expect("rate_limited event");
    let event = event.to_string();
    assert!(
        event.contains("login-ip") && event.contains("203.0.113.7"),
        "{event}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_floods_cannot_spend_a_clients_quota() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream);
    let (key, _) = common::create_key(
        &gw,
        TOKEN,
        serde_json::json!({"name": "app", "subject": "app"}),
    )
    .await;
    let orders = format!("{}/api/orders", gw.http_url());
    let client = reqwest::Client::new();

    // Twenty requests without (or with forged) credentials: 401s, counted per ip only.
    for i in 0..20 {
        let response = client
            .get(&orders)
            .header("x-forwarded-for", "192.0.2.66")
            .header("x-api-key", format!("pal_forged{i:05}_x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    // The client's own quota (5 per minute) is untouched.
    for _ in 0..5 {
        let response = client
            .get(&orders)
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let refused = client
        .get(&orders)
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"orders-client\";q=5;w=60"
    );
    for line in gw.logs() {
        assert!(!line.to_string().contains(&key), "a key in the log: {line}");
    }
}
