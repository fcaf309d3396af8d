//! Checklist #4 end to end: 429s with `Retry-After` and the IETF `RateLimit` headers, per ip
//! before authentication and per client after it, against the real gateway.

use crate::common;

use palisade_testkit::config::ADMIN_TOKEN;
use palisade_testkit::{GatewayProcess, RecordingUpstream, TestConfig};

/// A gateway with an API-key store and one upstream; `rest` adds `[rate_limit]` and routes.
fn start_with(upstream: &RecordingUpstream, rest: &str) -> GatewayProcess {
    TestConfig::new()
        // The tests vary the client address through X-Forwarded-For from this trusted peer.
        .server(r#"trusted_proxies = ["127.0.0.1"]"#)
        .store("sqlite://keys.db")
        .tables(&format!(
            "[[upstream]]\nname = \"app\"\nurl = \"{url}\"\n{rest}",
            url = upstream.url()
        ))
        .gateway(env!("CARGO_BIN_EXE_palisade"))
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

[[route]]
name = "small"
path = "/api/small"
methods = ["GET"]
upstream = "app"
rate_limit = { limit = 3, window = "1m", per = "ip", name = "small-ip" }
"#,
    )
}

/// A 429 of `policy` (`limit` per `window_s`): `Retry-After` within the window, the IETF
/// headers naming the policy, and a problem+json body.
async fn assert_limited(
    response: reqwest::Response,
    policy: &str,
    limit: u32,
    window_s: u64,
    what: &str,
) {
    assert_eq!(response.status(), 429, "{what}");
    let headers = response.headers().clone();
    let retry_after: u64 = (headers.get("retry-after"))
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no numeric Retry-After in {headers:?}"));
    assert!(
        (1..=window_s).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    assert_eq!(
        headers["ratelimit-policy"],
        format!("\"{policy}\";q={limit};w={window_s}").as_str(),
        "{what}"
    );
    let now = headers["ratelimit"].to_str().unwrap();
    assert!(
        now.starts_with(&format!("\"{policy}\";r=0;t=")),
        "{what}: RateLimit {now}"
    );
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{what}"
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 429, "{what}");
    assert_eq!(
        problem["type"], "urn:palisade:problem:rate-limited",
        "{what}"
    );
}

/// `GET {gw}{path}` from `ip`, with `key` as `X-Api-Key` if given, and extra headers.
async fn get_as(
    gw: &GatewayProcess,
    path: &str,
    ip: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", gw.http_url()))
        .header("x-forwarded-for", ip);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
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
    let (key, id) = common::create_key(
        &gw,
        ADMIN_TOKEN,
        serde_json::json!({"name": "app", "subject": "app"}),
    )
    .await;
    // The victim's own key id with a wrong secret, from the victim's own address: the
    // closest an attacker can come to the victim's buckets without the secret.
    let secret = key.strip_prefix(&format!("pal_{id}_")).unwrap();
    let last = if secret.ends_with('0') { "1" } else { "0" };
    let forged = format!("pal_{id}_{}{last}", &secret[..secret.len() - 1]);
    assert_ne!(forged, key);
    let victim_ip = "192.0.2.66";
    for i in 0..8 {
        let response = get_as(&gw, "/api/orders", victim_ip, Some(&forged), &[]).await;
        assert_eq!(response.status(), 401, "forgery {i}");
    }
    // The client's own quota (5 per minute) is untouched.
    for i in 0..5 {
        let response = get_as(&gw, "/api/orders", victim_ip, Some(&key), &[]).await;
        assert_eq!(response.status(), 200, "victim request {i}");
    }
    assert_limited(
        get_as(&gw, "/api/orders", victim_ip, Some(&key), &[]).await,
        "orders-client",
        5,
        60,
        "victim over its own quota",
    )
    .await;
    assert_eq!(upstream.requests().len(), 5);

    // Per-ip policies run before authentication: a flood without credentials is stopped
    // by its address's budget (3), not by authentication alone.
    for i in 0..3 {
        let response = get_as(&gw, "/api/small", "192.0.2.99", None, &[]).await;
        assert_eq!(response.status(), 401, "anonymous request {i}");
    }
    assert_limited(
        get_as(&gw, "/api/small", "192.0.2.99", None, &[]).await,
        "small-ip",
        3,
        60,
        "anonymous flood",
    )
    .await;
    for line in gw.logs() {
        assert!(!line.to_string().contains(&key), "a key in the log: {line}");
    }
}

/// Policies for the cross-phase tests, counting in `store`.
fn phase_policies(store: &str) -> String {
    format!(
        r#"
[rate_limit]
store = "{store}"
on_store_error = "deny"
# Generous: a slow test machine must not turn Redis answers into fallbacks.
store_timeout = "1s"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
rate_limit = [
    {{ limit = 10, window = "1h", per = "ip", name = "orders-ip" }},
    {{ limit = 2, window = "1h", per = "client", name = "orders-client" }},
]

[[route]]
name = "reset"
path = "/api/password-reset"
methods = ["POST"]
upstream = "app"
auth = "public"
rate_limit = [
    {{ limit = 4, window = "1h", per = "ip", name = "reset-ip" }},
    {{ limit = 1, window = "1h", per = {{ body = "/email" }}, name = "reset-email" }},
]

[[route]]
name = "report"
path = "/api/report"
methods = ["GET"]
upstream = "app"
rate_limit = [
    {{ limit = 3, window = "1h", per = "route", name = "report-route" }},
    {{ limit = 1, window = "1h", per = "client", name = "report-client" }},
]
"#
    )
}

/// A request refused (429) by a later rate-limit phase keeps what the earlier phases took:
/// the quota counted before authentication bounds the work done for an address or route.
async fn refused_requests_still_spend_earlier_phases(gw: &GatewayProcess) {
    let new_key = |name: &'static str| {
        common::create_key(
            gw,
            ADMIN_TOKEN,
            serde_json::json!({"name": name, "subject": name}),
        )
    };
    let (key, _) = new_key("one").await;

    // 1. A client stuck at its own limit (after authentication) still spends its
    // address's budget (before authentication) with every refused request: 6 of 10.
    let ip = "203.0.113.9";
    for i in 0..2 {
        let response = get_as(gw, "/api/orders", ip, Some(&key), &[]).await;
        assert_eq!(response.status(), 200, "keyed request {i}");
    }
    for i in 0..4 {
        let response = get_as(gw, "/api/orders", ip, Some(&key), &[]).await;
        assert_limited(response, "orders-client", 2, 3600, &format!("over {i}")).await;
    }
    for i in 0..4 {
        let response = get_as(gw, "/api/orders", ip, None, &[]).await;
        assert_eq!(
            response.status(),
            401,
            "anonymous request {i}: 4 left of 10"
        );
    }
    assert_limited(
        get_as(gw, "/api/orders", ip, None, &[]).await,
        "orders-ip",
        10,
        3600,
        "the address's budget, spent by the 200s, the client's 429s and the 401s",
    )
    .await;
    assert_limited(
        get_as(gw, "/api/orders", ip, Some(&key), &[]).await,
        "orders-ip",
        10,
        3600,
        "the key is now refused before authentication",
    )
    .await;

    // 2. Refused per body field (after the body): the address's budget is spent too, so
    // naming a refused value again and again cannot buy unlimited body parsing.
    let reset = |email: &str| {
        reqwest::Client::new()
            .post(format!("{}/api/password-reset", gw.http_url()))
            .header("x-forwarded-for", "203.0.113.10")
            .json(&serde_json::json!({ "email": email }))
            .send()
    };
    assert_eq!(reset("a@example.com").await.unwrap().status(), 200);
    for i in 0..3 {
        let response = reset("a@example.com").await.unwrap();
        assert_limited(response, "reset-email", 1, 3600, &format!("a again {i}")).await;
    }
    assert_limited(
        reset("b@example.com").await.unwrap(),
        "reset-ip",
        4,
        3600,
        "4 taken from the address: 1 admitted, 3 refused per email",
    )
    .await;

    // 3. A `route` budget is anyone's to spend: a client hammering past its own limit
    // spends it for everyone (route quotas are against floods, not a client's budget).
    assert_eq!(
        get_as(gw, "/api/report", "203.0.113.11", Some(&key), &[])
            .await
            .status(),
        200
    );
    for i in 0..2 {
        let response = get_as(gw, "/api/report", "203.0.113.11", Some(&key), &[]).await;
        assert_limited(response, "report-client", 1, 3600, &format!("report {i}")).await;
    }
    let (other, _) = new_key("two").await;
    assert_limited(
        get_as(gw, "/api/report", "203.0.113.12", Some(&other), &[]).await,
        "report-route",
        3,
        3600,
        "the route's 3 spent by one admitted and two refused requests",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_later_still_spends_earlier_phases_in_memory() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_with(&upstream, &phase_policies("memory"));
    refused_requests_still_spend_earlier_phases(&gw).await;
    assert_eq!(upstream.requests().len(), 2 + 1 + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_later_still_spends_earlier_phases_in_redis() {
    let redis = palisade_testkit::RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = start_with(&upstream, &phase_policies(&redis.url()));
    refused_requests_still_spend_earlier_phases(&gw).await;
    assert_eq!(upstream.requests().len(), 2 + 1 + 1);
    // Redis decided everything: no call failed, nothing fell back.
    let metrics = common::metrics(&gw).await;
    for line in metrics.lines().filter(|l| {
        l.starts_with("palisade_rate_limit_store_fallbacks_total")
            || (l.starts_with("palisade_rate_limit_store_calls_total")
                && !l.contains("outcome=\"ok\""))
    }) {
        assert!(line.ends_with(" 0"), "{line}\n{metrics}");
    }
    assert!(
        metrics.contains("palisade_rate_limit_store_calls_total{outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(!redis.keys("palisade:rl:*").is_empty());
}

/// `[rate_limit] default` and the `per` kinds not covered above: a header, the subject and
/// the key.
#[tokio::test(flavor = "multi_thread")]
async fn default_policies_and_per_header_subject_and_key() {
    let upstream = RecordingUpstream::start().await;
    let gw = start_with(
        &upstream,
        r#"
[rate_limit]
default = { limit = 3, window = "1h", per = "client", name = "overall" }

[[route]]
name = "a"
path = "/api/a"
methods = ["GET"]
upstream = "app"

[[route]]
name = "b"
path = "/api/b"
methods = ["GET"]
upstream = "app"

[[route]]
name = "c"
path = "/api/c"
methods = ["GET"]
upstream = "app"
rate_limit = { limit = 1, window = "1h", per = "key", name = "c-key" }

[[route]]
name = "tenant"
path = "/api/tenant"
methods = ["GET"]
upstream = "app"
auth = "public"
rate_limit = { limit = 2, window = "10m", per = { header = "X-Tenant" }, name = "tenant" }

[[route]]
name = "sub"
path = "/api/sub"
methods = ["GET"]
upstream = "app"
rate_limit = { limit = 2, window = "1h", per = "subject", name = "per-subject" }
"#,
    );
    let key_of = |name: &'static str, subject: &'static str| {
        common::create_key(
            &gw,
            ADMIN_TOKEN,
            serde_json::json!({"name": name, "subject": subject}),
        )
    };
    let (k1, _) = key_of("k1", "shared").await;
    let (k2, _) = key_of("k2", "shared").await;
    let (k3, _) = key_of("k3", "other").await;
    let ip = "198.51.100.30";
    let status = |r: reqwest::Response| r.status().as_u16();

    // The default applies to routes without their own, one budget across them.
    for path in ["/api/a", "/api/b", "/api/a"] {
        let response = get_as(&gw, path, ip, Some(&k1), &[]).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers().get("ratelimit").is_none(), "on_429 only");
    }
    assert_limited(
        get_as(&gw, "/api/b", ip, Some(&k1), &[]).await,
        "overall",
        3,
        3600,
        "the default's budget is shared by a and b",
    )
    .await;
    // Another client has its own.
    assert_eq!(status(get_as(&gw, "/api/b", ip, Some(&k2), &[]).await), 200);
    // A route's own policy replaces the default: c admits k1, whose default budget is
    // spent, and counts per key: k2 (same subject) has its own.
    assert_eq!(status(get_as(&gw, "/api/c", ip, Some(&k1), &[]).await), 200);
    assert_limited(
        get_as(&gw, "/api/c", ip, Some(&k1), &[]).await,
        "c-key",
        1,
        3600,
        "per key",
    )
    .await;
    assert_eq!(status(get_as(&gw, "/api/c", ip, Some(&k2), &[]).await), 200);

    // Per header: each tenant counts apart; no header counts under the empty value.
    for _ in 0..2 {
        let response = get_as(&gw, "/api/tenant", ip, None, &[("x-tenant", "t1")]).await;
        assert_eq!(response.status(), 200);
    }
    assert_limited(
        get_as(&gw, "/api/tenant", ip, None, &[("x-tenant", "t1")]).await,
        "tenant",
        2,
        600,
        "tenant t1",
    )
    .await;
    let t2 = get_as(&gw, "/api/tenant", ip, None, &[("x-tenant", "t2")]).await;
    assert_eq!(t2.status(), 200);
    assert_eq!(status(get_as(&gw, "/api/tenant", ip, None, &[]).await), 200);

    // Per subject: two keys of one subject share a budget; another subject has its own.
    assert_eq!(
        status(get_as(&gw, "/api/sub", ip, Some(&k1), &[]).await),
        200
    );
    assert_eq!(
        status(get_as(&gw, "/api/sub", ip, Some(&k2), &[]).await),
        200
    );
    for key in [&k1, &k2] {
        assert_limited(
            get_as(&gw, "/api/sub", ip, Some(key), &[]).await,
            "per-subject",
            2,
            3600,
            "subject shared",
        )
        .await;
    }
    assert_eq!(
        status(get_as(&gw, "/api/sub", ip, Some(&k3), &[]).await),
        200
    );
    let metrics = common::metrics(&gw).await;
    for (policy, per, n) in [
        ("overall", "client", 1),
        ("c-key", "key", 1),
        ("tenant", "header", 1),
        ("per-subject", "subject", 2),
    ] {
        let series =
            format!("palisade_rate_limited_total{{policy=\"{policy}\",per=\"{per}\"}} {n}");
        assert!(metrics.contains(&series), "{series}\n{metrics}");
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
        ADMIN_TOKEN,
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
        ADMIN_TOKEN,
        serde_json::json!({"name": "old", "subject": "app"}),
    )
    .await;
    let deleted = client
        .delete(format!("{}/keys/{revoked_id}", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
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
