//! Checklist #4 end to end: 429s with `Retry-After` and the IETF `RateLimit` headers, per ip
//! before authentication and per client after it, against the real gateway.

mod common;

use palisade_testkit::{GatewayProcess, RecordingUpstream};

const TOKEN: &str = "ratelimit-test-admin-token-0123";
const PEPPER: &str = "ratelimit-test-pepper-0123456789abcdef0123";

/// A gateway with an API-key store and one upstream; `rest` adds `[rate_limit]` and routes.
fn start_with(upstream: &RecordingUpstream, rest: &str) -> GatewayProcess {
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${{env:PALISADE_ADMIN_TOKEN}}"
# The tests vary the client address through X-Forwarded-For from this trusted peer.
trusted_proxies = ["127.0.0.1"]

[store]
url = "sqlite://keys.db"
key_pepper = "${{env:PALISADE_KEY_PEPPER}}"

[[upstream]]
name = "app"
url = "{url}"
{rest}"#,
        url = upstream.url()
    );
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .env("PALISADE_ADMIN_TOKEN", TOKEN)
        .env("PALISADE_KEY_PEPPER", PEPPER)
        .start()
}

fn start(upstream: &RecordingUpstream) -> GatewayProcess {
    start_with(
        upstream,
        r#"
[rate_limit]
headers = "always"

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "app"
auth = "public"
rate_limit = { limit = 3, window = "15m", per = "ip", name = "login-ip" }

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
rate_limit = [
    { limit = 50, window = "1m", per = "ip", name = "orders-ip" },
    { limit = 5, window = "1m", per = "client", name = "orders-client" },
]
"#,
    )
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

/// A gateway with the failed-authentication lockout: 4 failures per 15 minutes per
/// address and per account, a login route, and a limit per body field.
fn start_with_lockout(upstream: &RecordingUpstream) -> GatewayProcess {
    start_with(
        upstream,
        r#"
[rate_limit]
auth_failures = { limit = 4, window = "15m", per = ["ip", "account"] }

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "app"
auth = "public"
login = { account = "/username" }

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"

[[route]]
name = "reset"
path = "/api/password-reset"
methods = ["POST"]
upstream = "app"
auth = "public"
rate_limit = { limit = 2, window = "1h", per = { body = "/email" }, name = "reset-email" }
"#,
    )
}

async fn login(gw: &GatewayProcess, ip: &str, username: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/login", gw.http_url()))
        .header("x-forwarded-for", ip)
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn assert_locked_out(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 429, "{what}");
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"auth_failures\";q=4;w=900",
        "{what}"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 4 per 15 minutes: the next try is allowed about 225 s after the first failure.
    assert!((200..=225).contains(&retry_after), "{what}: {retry_after}");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:palisade:problem:rate-limited",
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_sprayed_from_many_addresses_locks_the_account() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_with_lockout(&upstream);
    let password = palisade_testkit::upstream::LOGIN_PASSWORD;

    // Four guesses at alice's password, each from a different address: each address has
    // failed once only, but the account has failed four times.
    for i in 1..=4 {
        let response = login(&gw, &format!("198.51.100.{i}"), "alice", "guess").await;
        assert_eq!(response.status(), 401, "guess {i} reaches the upstream");
    }
    // Now alice is locked out, from a fresh address, with the right password, and under
    // another spelling of her name; the upstream sees none of it.
    assert_locked_out(
        login(&gw, "198.51.100.50", "alice", password).await,
        "right password",
    )
    .await;
    assert_locked_out(
        login(&gw, "198.51.100.51", " ALICE", "guess").await,
        "case and spaces",
    )
    .await;
    assert_eq!(upstream.requests().len(), 4);

    // Other accounts, from the same addresses, are not affected.
    let bob = login(&gw, "198.51.100.1", "bob", password).await;
    assert_eq!(bob.status(), 200);
    assert_eq!(upstream.requests().len(), 5);

    // A body that could name two accounts is refused before it is counted or forwarded.
    let ambiguous = reqwest::Client::new()
        .post(format!("{}/api/login", gw.http_url()))
        .header("x-forwarded-for", "198.51.100.60")
        .header("content-type", "application/json")
        .body(r#"{"username": "carol", "UserName": "alice", "password": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ambiguous.status(), 400);
    assert_eq!(upstream.requests().len(), 5);

    // Form logins name their account too.
    let form = reqwest::Client::new()
        .post(format!("{}/api/login", gw.http_url()))
        .header("x-forwarded-for", "198.51.100.61")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=Alice&password=guess")
        .send()
        .await
        .unwrap();
    assert_locked_out(form, "form body").await;

    let event = tokio::task::block_in_place(|| {
        gw.wait_for_log(
            |l| {
                l["event"] == "rate_limited"
                    && l["policy"] == "auth_failures"
                    && l["per"] == "account"
            },
            std::time::Duration::from_secs(5),
        )
    })
    .expect("a rate_limited event for the account");
    assert!(
        !event.to_string().to_lowercase().contains("alice"),
        "the event names the kind, never the account: {event}"
    );
    let metrics = common::metrics(&gw).await;
    assert!(
        metrics.contains(r#"palisade_rate_limited_total{policy="auth_failures",per="account"} 3"#),
        "{metrics}"
    );
    // Every security event is counted from the log, by event, reason and route.
    assert!(
        metrics.contains(
            r#"palisade_security_events_total{event="rate_limited",reason="lockout",route="login"} 3"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_keys_from_one_address_locks_that_address_only() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_with_lockout(&upstream);
    let (key, _) = common::create_key(
        &gw,
        TOKEN,
        serde_json::json!({"name": "app", "subject": "app"}),
    )
    .await;
    let orders = format!("{}/api/orders", gw.http_url());
    let client = reqwest::Client::new();
    let get = |ip: &'static str, api_key: Option<String>| {
        let mut request = client.get(&orders).header("x-forwarded-for", ip);
        if let Some(api_key) = api_key {
            request = request.header("x-api-key", api_key);
        }
        request.send()
    };

    // Requests without credentials guess nothing, and neither does a real key that was
    // revoked (an old client may keep sending it): 401s, never a lockout.
    let (revoked, revoked_id) = common::create_key(
        &gw,
        TOKEN,
        serde_json::json!({"name": "old", "subject": "app"}),
    )
    .await;
    let deleted = client
        .delete(format!("{}/keys/{revoked_id}", gw.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    for _ in 0..10 {
        assert_eq!(get("192.0.2.10", None).await.unwrap().status(), 401);
        let old = get("192.0.2.10", Some(revoked.clone())).await.unwrap();
        assert_eq!(old.status(), 401);
    }
    assert_eq!(
        get("192.0.2.10", Some(key.clone())).await.unwrap().status(),
        200
    );

    // Four wrong keys from one address lock it out, even for a valid key.
    for i in 0..4 {
        let forged = format!("pal_forged{i:05}_{}", "x".repeat(43));
        assert_eq!(get("192.0.2.66", Some(forged)).await.unwrap().status(), 401);
    }
    assert_locked_out(
        get("192.0.2.66", Some(key.clone())).await.unwrap(),
        "locked address",
    )
    .await;
    // The lockout covers the login route too, and no other address.
    assert_locked_out(
        login(&gw, "192.0.2.66", "dave", "guess").await,
        "login from the locked address",
    )
    .await;
    assert_eq!(get("192.0.2.67", Some(key)).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_per_body_field_count_each_value_apart() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_with_lockout(&upstream);
    let reset = |body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/password-reset", gw.http_url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        reset(r#"{"email": "a@example.com"}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reset(r#"{"Email": "A@example.com"}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    let refused = reset(r#"{"email": "a@example.com "}"#).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["ratelimit-policy"],
        "\"reset-email\";q=2;w=3600"
    );
    assert_eq!(
        reset(r#"{"email": "b@example.com"}"#)
            .await
            .unwrap()
            .status(),
        200
    );
    // The body forwarded is the one the limit read, byte for byte.
    let last = upstream.last().unwrap();
    assert_eq!(last.body_str(), r#"{"email": "b@example.com"}"#);
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_in_flight_at_once_cannot_outrun_the_lockout() {
    let upstream = RecordingUpstream::start().await;
    // The upstream takes 300 ms to refuse each login, so all guesses are in flight at once.
    let gw = start_with(
        &upstream,
        &format!(
            r#"
[rate_limit]
auth_failures = {{ limit = 4, window = "15m", per = ["account"] }}

[[upstream]]
name = "slow"
url = "{url}/slow"

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "slow"
auth = "public"
login = {{ account = "/username" }}
"#,
            url = upstream.url()
        ),
    );
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..20 {
        let request = reqwest::Client::new()
            .post(format!("{}/api/login?ms=300", gw.http_url()))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&serde_json::json!({"username": "carol", "password": format!("guess{i}")}));
        guesses.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses: Vec<u16> = guesses.join_all().await;
    let guessed = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        guessed, 4,
        "only the allowance reached the upstream: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 16);
    assert_eq!(upstream.requests().len(), 4);

    // A successful login gives its advance charge back: it never locks anyone out.
    let dave = |password: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/login?ms=1", gw.http_url()))
            .json(&serde_json::json!({"username": "dave", "password": password}))
            .send()
    };
    for _ in 0..8 {
        let ok = dave(palisade_testkit::upstream::LOGIN_PASSWORD)
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    // A login that names no account, or names it twice, is refused before the upstream.
    let unnamed = reqwest::Client::new()
        .post(format!("{}/api/login?username=carol", gw.http_url()))
        .json(&serde_json::json!({"username": "dave", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unnamed.status(), 400);
}
