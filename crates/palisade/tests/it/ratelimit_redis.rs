//! Checklist #4 with the shared store: gateway instances that count in one real
//! `redis-server` hold the combined limit under concurrent load, and when Redis dies each
//! `on_store_error` mode does what it says (`deny` 503, `allow` uncounted, `local` this
//! instance's memory) without a request hanging, then Redis decides again once it is back.
//! The same holds against a Redis Cluster (three primaries), the keys all in one slot.
//!
//! Requests go through reqwest with a client timeout ([`LIVENESS`]): a request that hangs
//! on a dead store fails the test. Nothing here asserts on durations.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_testkit::gateway::{log_event, log_field};
use palisade_testkit::{GatewayProcess, RawResponse, RecordingUpstream, RedisCluster, RedisServer};
use serde_json::Value;

use common::{assert_gateway_headers, assert_problem, log_line};

/// The longest any single request may take before the test calls it a hang.
const LIVENESS: Duration = Duration::from_secs(5);

/// How long a gateway may take to be decided by Redis again after the restart.
const RECOVERY: Duration = Duration::from_secs(10);

/// One public route, `/api/items`, limited by `policy`, counting in `store`. The client
/// address is varied through `X-Forwarded-For` from the trusted loopback peer.
///
/// `store_timeout` is raised from its 50 ms default: the tests run gateways, Redis and a
/// load generator side by side on a small machine, and a slow-but-alive Redis must not turn
/// into a fallback that the assertions would read as a gateway fault. A dead Redis refuses
/// connections at once, so the outage paths do not depend on this timeout.
fn start_gateway(
    upstream: &RecordingUpstream,
    store: &str,
    on_store_error: &str,
    policy: &str,
) -> GatewayProcess {
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(
            config(upstream, store, on_store_error, policy)
                .replace("on_store_error", "store_timeout = \"1s\"\non_store_error"),
        )
        .start()
}

/// The config of [`start_gateway`], with the default `store_timeout` (50 ms).
fn config(upstream: &RecordingUpstream, store: &str, on_store_error: &str, policy: &str) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]

[rate_limit]
store = "{store}"
on_store_error = "{on_store_error}"

[[upstream]]
name = "app"
url = "{upstream}"

[[route]]
name = "items"
path = "/api/items"
methods = ["GET"]
upstream = "app"
auth = "public"
rate_limit = {policy}
"#,
        upstream = upstream.url()
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(LIVENESS)
        .build()
        .unwrap()
}

/// `GET {base}/api/items` as client `ip`; the answer as a [`RawResponse`] so the `common`
/// problem helpers apply. Panics if no answer arrives within [`LIVENESS`].
async fn get(client: &reqwest::Client, base: &str, ip: &str) -> RawResponse {
    let url = format!("{base}/api/items");
    let response = client
        .get(&url)
        .header("x-forwarded-for", ip)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} as {ip}: no answer within {LIVENESS:?}: {e}"));
    let status = response.status().as_u16();
    let headers = (response.headers().iter())
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("GET {url} as {ip}: body not received: {e}"))
        .to_vec();
    RawResponse {
        status,
        headers,
        body,
    }
}

/// A 200 from the upstream (not from palisade) through the gateway; returns the request id.
fn assert_passed(rsp: &RawResponse, what: &str) -> String {
    assert_eq!(rsp.status, 200, "{what}: {}", rsp.body_str());
    let id = assert_gateway_headers(rsp, what);
    assert_eq!(rsp.json()["upstream"], "ok", "{what}");
    id
}

/// A 429 of policy `policy` (`limit` per `window_s`) with `Retry-After` and the IETF
/// headers; returns the request id.
fn assert_limited(
    rsp: &RawResponse,
    policy: &str,
    limit: u32,
    window_s: u64,
    what: &str,
) -> String {
    let id = assert_problem(rsp, 429, "rate-limited", what);
    let retry_after: u64 = (rsp.header("retry-after"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no numeric Retry-After in {rsp:?}"));
    assert!(
        (1..=window_s).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    assert_eq!(
        rsp.header("ratelimit-policy"),
        Some(format!("\"{policy}\";q={limit};w={window_s}").as_str()),
        "{what}"
    );
    let now = rsp.header("ratelimit").unwrap_or_default();
    assert!(
        now.starts_with(&format!("\"{policy}\";r=0;t=")),
        "{what}: RateLimit {now:?}"
    );
    id
}

/// The `rate_limit_fallback` of request `id`'s access line (`None`: Redis decided).
fn fallback_of(gw: &GatewayProcess, id: &str) -> Option<String> {
    let line = log_line(gw, "request", id);
    log_field(&line, "rate_limit_fallback").map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("rate_limit_fallback is not a string: {line}"))
            .to_owned()
    })
}

/// Every `event` line so far.
fn events(gw: &GatewayProcess, event: &str) -> Vec<Value> {
    (gw.logs().into_iter())
        .filter(|l| log_event(l) == Some(event))
        .collect()
}

/// One Prometheus sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// `GET /metrics` on the admin listener, parsed (no token needed: see admin.rs).
async fn scrape(gw: &GatewayProcess) -> Vec<Sample> {
    let text = client()
        .get(format!("{}/metrics", gw.admin_url()))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("metrics line {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.trim_end_matches('}');
                let labels = (body.split(',').filter(|p| !p.is_empty()))
                    .map(|pair| {
                        let (k, v) = pair
                            .split_once('=')
                            .unwrap_or_else(|| panic!("metrics line {line:?}"));
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push((name, labels, value));
    }
    samples
}

/// The sum of the samples of `name` whose labels include `labels` (0 when there are none).
fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    (samples.iter())
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

const CALLS: &str = "palisade_rate_limit_store_calls_total";
const FALLBACKS: &str = "palisade_rate_limit_store_fallbacks_total";
const LIMITED: &str = "palisade_rate_limited_total";

/// The rate-limit samples only, for failure messages.
fn rate_samples(samples: &[Sample]) -> Vec<&Sample> {
    (samples.iter())
        .filter(|(name, ..)| name.starts_with("palisade_rate_limit"))
        .collect()
}

/// `palisade:rl:{<32 lowercase hex>}`.
fn is_bucket_key(key: &str) -> bool {
    key.len() == 46
        && key.starts_with("palisade:rl:{")
        && key.ends_with('}')
        && key[13..45]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every rate-limit key in Redis, each checked for its form and a TTL in `(0, window]`.
fn bucket_keys(redis: &RedisServer, window_ms: i64) -> Vec<String> {
    let keys = redis.keys("palisade:rl:*");
    for key in &keys {
        assert!(is_bucket_key(key), "unexpected key name {key:?}");
        let ttl = redis.ttl_ms(key);
        // The script sets PX to the TAT's distance plus 1 ms.
        assert!(
            ttl > 0 && ttl <= window_ms + 1,
            "{key} must expire by itself within the window: PTTL {ttl}"
        );
    }
    assert_eq!(
        redis.keys("*").len(),
        keys.len(),
        "palisade wrote keys outside palisade:rl:*"
    );
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_one_redis_and_hold_the_combined_limit() {
    const LIMIT: u32 = 40;
    const REQUESTS: usize = 200;
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    // The route budget is what is tested; the per-ip policy (never reached) puts client
    // addresses into bucket names, so the test can check that none is stored in the clear.
    let policy = format!(
        r#"[
    {{ limit = {LIMIT}, window = "1h", per = "route", name = "shared-route" }},
    {{ limit = 1000, window = "1h", per = "ip", name = "shared-ip" }},
]"#
    );
    let gateways = [
        start_gateway(&upstream, &redis.url(), "local", &policy),
        start_gateway(&upstream, &redis.url(), "local", &policy),
    ];
    let ips: Vec<String> = (1..=10).map(|i| format!("203.0.113.{i}")).collect();

    // All requests wait at one barrier, then go at once, alternating between the gateways.
    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let (client, base, ip) = (
            client(),
            gateways[i % 2].http_url(),
            ips[i % ips.len()].clone(),
        );
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            (i % 2, get(&client, &base, &ip).await)
        });
    }
    let answers = tasks.join_all().await;

    let passed: Vec<_> = answers.iter().filter(|(_, r)| r.status == 200).collect();
    let limited: Vec<_> = answers.iter().filter(|(_, r)| r.status == 429).collect();
    let other: Vec<_> = (answers.iter())
        .filter(|(_, r)| r.status != 200 && r.status != 429)
        .map(|(g, r)| (g, r.status, r.body_str()))
        .collect();
    assert!(other.is_empty(), "answers other than 200/429: {other:?}");
    assert!(
        (LIMIT as usize - 1..=LIMIT as usize + 1).contains(&passed.len()),
        "{} of {REQUESTS} passed through two instances sharing a limit of {LIMIT}",
        passed.len()
    );
    for (g, rsp) in &passed {
        assert_passed(rsp, &format!("admitted by gateway {g}"));
    }
    for (g, rsp) in &limited {
        assert_limited(
            rsp,
            "shared-route",
            LIMIT,
            3600,
            &format!("refused by gateway {g}"),
        );
    }
    assert_eq!(
        upstream.requests().len(),
        passed.len(),
        "the upstream saw exactly the admitted requests"
    );

    // Every decision came from Redis: no call failed, nothing fell back.
    let mut refusals = 0.0;
    for (g, gw) in gateways.iter().enumerate() {
        let samples = scrape(gw).await;
        assert!(
            metric(&samples, CALLS, &[("outcome", "ok")]) >= (REQUESTS / 2) as f64,
            "gateway {g}: fewer Redis decisions than requests: {:?}",
            rate_samples(&samples)
        );
        for outcome in ["timeout", "error", "resting"] {
            assert_eq!(
                metric(&samples, CALLS, &[("outcome", outcome)]),
                0.0,
                "gateway {g}: store calls {outcome}\n{}",
                gw.stdout()
            );
        }
        assert_eq!(metric(&samples, FALLBACKS, &[]), 0.0, "gateway {g}");
        refusals += metric(
            &samples,
            LIMITED,
            &[("policy", "shared-route"), ("per", "route")],
        );
        assert!(events(gw, "rate_limit_store_unavailable").is_empty());
        for line in events(gw, "request") {
            assert!(
                log_field(&line, "rate_limit_fallback").is_none(),
                "gateway {g}: a fallback decided {line}"
            );
        }
    }
    assert_eq!(refusals, limited.len() as f64, "each 429 is counted once");

    // One route bucket plus one per admitted address, all expiring by themselves, none
    // naming a client address, the route or a policy.
    let keys = bucket_keys(&redis, 3_600_000);
    assert!(
        (2..=1 + ips.len()).contains(&keys.len()),
        "expected the route bucket and per-ip buckets: {keys:?}"
    );
    for key in &keys {
        for secret in ips.iter().map(String::as_str).chain([
            "127.0.0.1",
            "items",
            "shared-route",
            "shared-ip",
            "route",
        ]) {
            assert!(!key.contains(secret), "{secret:?} in the key {key}");
        }
    }
}

/// Redis works, dies, and comes back, under two gateways with `on_store_error = mode`.
async fn outage_and_recovery(mode: &str) {
    const POLICY: &str = r#"{ limit = 3, window = "1h", per = "ip", name = "items-ip" }"#;
    let limited = |rsp: &RawResponse, what: &str| assert_limited(rsp, "items-ip", 3, 3600, what);
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let a = start_gateway(&upstream, &redis.url(), mode, POLICY);
    let b = start_gateway(&upstream, &redis.url(), mode, POLICY);
    let (a_url, b_url) = (a.http_url(), b.http_url());
    let client = client();
    // Every 200 answered, to compare with what reached the upstream.
    let mut passed = 0;

    // 1. Through Redis: the two instances share one budget per address.
    let x = "192.0.2.10";
    for (url, what) in [
        (&a_url, "1st via a"),
        (&a_url, "2nd via a"),
        (&b_url, "3rd via b"),
    ] {
        let id = assert_passed(&get(&client, url, x).await, what);
        passed += 1;
        let gw = if url == &a_url { &a } else { &b };
        assert_eq!(fallback_of(gw, &id), None, "{what}: Redis decides");
    }
    let id = limited(&get(&client, &b_url, x).await, "4th via b");
    assert_eq!(fallback_of(&b, &id), None);
    limited(&get(&client, &a_url, x).await, "5th via a");
    assert_eq!(bucket_keys(&redis, 3_600_000).len(), 1);
    for gw in [&a, &b] {
        let samples = scrape(gw).await;
        assert!(metric(&samples, CALLS, &[("outcome", "ok")]) >= 2.0);
        assert_eq!(metric(&samples, FALLBACKS, &[]), 0.0);
    }
    assert_eq!(upstream.requests().len(), passed);

    // 2. Redis dies (SIGKILL: connections cut, as in a crash).
    redis.stop();
    let y = "192.0.2.20";
    let mut sent = [0usize; 2];
    for (g, (gw, url)) in [(&a, &a_url), (&b, &b_url)].into_iter().enumerate() {
        for ip in [x, y] {
            let mut answers = Vec::new();
            for _ in 0..5 {
                let rsp = get(&client, url, ip).await;
                assert!(
                    ![401, 500].contains(&rsp.status),
                    "gateway {g}, {ip}: {} during the outage: {}",
                    rsp.status,
                    rsp.body_str()
                );
                answers.push(rsp);
            }
            sent[g] += answers.len();
            for (n, rsp) in answers.iter().enumerate() {
                let what = format!("{mode}: gateway {g}, {ip}, request {n} without Redis");
                let id = match mode {
                    "deny" => {
                        let id = assert_problem(rsp, 503, "rate-limit-unavailable", &what);
                        assert_eq!(rsp.header("retry-after"), Some("1"), "{what}");
                        id
                    }
                    // Uncounted: even `x`, exhausted in Redis, and five in a row pass.
                    "allow" => assert_passed(rsp, &what),
                    // This instance's memory: a fresh budget of 3 on each instance.
                    "local" if n < 3 => assert_passed(rsp, &what),
                    "local" => limited(rsp, &what),
                    _ => unreachable!(),
                };
                if rsp.status == 200 {
                    passed += 1;
                }
                assert_eq!(
                    fallback_of(gw, &id).as_deref(),
                    Some(mode),
                    "{what}: the access line names the fallback"
                );
            }
        }
    }
    assert_eq!(upstream.requests().len(), passed);
    for (g, gw) in [&a, &b].into_iter().enumerate() {
        let unavailable = events(gw, "rate_limit_store_unavailable");
        assert_eq!(
            unavailable.len(),
            1,
            "gateway {g}: logged once per outage, not per request: {unavailable:?}"
        );
        let event = &unavailable[0];
        assert_eq!(event["level"], "WARN", "{event}");
        assert!(
            ["error", "timeout"].contains(
                &log_field(event, "reason")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
            "{event}"
        );
        assert!(events(gw, "rate_limit_store_recovered").is_empty());
        let samples = scrape(gw).await;
        let fallbacks = metric(&samples, FALLBACKS, &[("mode", mode)]);
        assert_eq!(
            fallbacks,
            sent[g] as f64,
            "gateway {g}: every request of the outage fell back: {:?}",
            rate_samples(&samples)
        );
        assert_eq!(metric(&samples, FALLBACKS, &[]), fallbacks, "only {mode}");
        let failed = metric(&samples, CALLS, &[("outcome", "error")])
            + metric(&samples, CALLS, &[("outcome", "timeout")]);
        let resting = metric(&samples, CALLS, &[("outcome", "resting")]);
        assert!(failed >= 1.0, "gateway {g}: {:?}", rate_samples(&samples));
        assert_eq!(
            failed + resting,
            fallbacks,
            "gateway {g}: {:?}",
            rate_samples(&samples)
        );
        // One refusal each through Redis; local refusals are counted like any other
        // (2 addresses, 2 refusals each).
        let refusals = metric(&samples, LIMITED, &[("policy", "items-ip"), ("per", "ip")]);
        let during = if mode == "local" { 4.0 } else { 0.0 };
        assert_eq!(
            refusals,
            1.0 + during,
            "gateway {g}: {:?}",
            rate_samples(&samples)
        );
    }

    // 3. Redis comes back, empty. Each gateway is decided by Redis again within RECOVERY.
    redis.restart();
    for (g, (gw, url)) in [(&a, &a_url), (&b, &b_url)].into_iter().enumerate() {
        let deadline = Instant::now() + RECOVERY;
        for n in 0.. {
            // A fresh address each time: the local fallback cannot refuse the probe.
            let probe = format!("10.{g}.{}.{}", n / 256, n % 256);
            let rsp = get(&client, url, &probe).await;
            let what = format!("{mode}: gateway {g}, probe {n} after the restart");
            assert!(![401, 500].contains(&rsp.status), "{what}: {rsp:?}");
            if rsp.status == 200 {
                passed += 1;
            }
            let id = assert_gateway_headers(&rsp, &what);
            if fallback_of(gw, &id).is_none() {
                assert_passed(&rsp, &what);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "gateway {g} not decided by Redis {RECOVERY:?} after the restart\n{}",
                gw.stdout()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let recovered = gw
            .wait_for_event("rate_limit_store_recovered", LIVENESS)
            .unwrap_or_else(|| panic!("gateway {g}: no recovery event\n{}", gw.stdout()));
        assert_eq!(
            events(gw, "rate_limit_store_recovered").len(),
            1,
            "{recovered}"
        );
    }
    assert!(
        bucket_keys(&redis, 3_600_000).len() >= 2,
        "the probes are counted in Redis again"
    );

    // The shared budget holds again across both instances.
    let z = "192.0.2.30";
    for (gw, url, what) in [(&a, &a_url, "a"), (&b, &b_url, "b"), (&a, &a_url, "a")] {
        let id = assert_passed(&get(&client, url, z).await, &format!("{z} via {what}"));
        passed += 1;
        assert_eq!(fallback_of(gw, &id), None);
    }
    let id = limited(&get(&client, &b_url, z).await, "4th after recovery via b");
    assert_eq!(fallback_of(&b, &id), None);
    if mode == "local" {
        // `y` is exhausted in a's memory, but Redis (restarted empty) decides now.
        let id = assert_passed(&get(&client, &a_url, y).await, "y via a after recovery");
        passed += 1;
        assert_eq!(fallback_of(&a, &id), None);
    }
    assert_eq!(upstream.requests().len(), passed);
    for gw in [&a, &b] {
        assert_eq!(events(gw, "rate_limit_store_unavailable").len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_with_on_store_error_deny_answers_503_and_recovers() {
    outage_and_recovery("deny").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_with_on_store_error_allow_passes_uncounted_and_recovers() {
    outage_and_recovery("allow").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_with_on_store_error_local_limits_per_instance_and_recovers() {
    outage_and_recovery("local").await;
}

/// A stalled Redis (SIGSTOP: connections open, nothing answered) under the default
/// `store_timeout` (50 ms): every request is answered at once by the fallback, the calls
/// are counted as timeouts, the gateway is decided by Redis again after SIGCONT, and the
/// scripts Redis then runs from its backlog, past their deadline, charge nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_redis_times_out_fast_and_its_late_scripts_charge_nothing() {
    const POLICY: &str = r#"{ limit = 3, window = "1h", per = "ip", name = "items-ip" }"#;
    let redis = RedisServer::start();
    let upstream = RecordingUpstream::start().await;
    let gw = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config(&upstream, &redis.url(), "deny", POLICY))
        .start();
    let url = gw.http_url();
    // One client: its connection stays on one gateway worker, so the calls under the pause
    // go out on the Redis connection the first request set up (scripts, with deadlines).
    let client = client();
    let x = "192.0.2.40";
    let id = assert_passed(&get(&client, &url, x).await, "before the pause");
    assert_eq!(fallback_of(&gw, &id), None);

    redis.pause();
    for n in 0..3 {
        // Past the rest after a failure: each request asks Redis again.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let started = Instant::now();
        let rsp = get(&client, &url, x).await;
        let took = started.elapsed();
        let what = format!("request {n} while Redis is stalled");
        let id = assert_problem(&rsp, 503, "rate-limit-unavailable", &what);
        assert_eq!(rsp.header("retry-after"), Some("1"), "{what}");
        assert!(
            took < Duration::from_millis(500),
            "{what}: answered in {took:?}"
        );
        assert_eq!(fallback_of(&gw, &id).as_deref(), Some("deny"), "{what}");
    }
    let samples = scrape(&gw).await;
    assert!(
        metric(&samples, CALLS, &[("outcome", "timeout")]) >= 1.0,
        "{:?}",
        rate_samples(&samples)
    );
    assert_eq!(
        metric(&samples, CALLS, &[("outcome", "timeout")])
            + metric(&samples, CALLS, &[("outcome", "error")])
            + metric(&samples, CALLS, &[("outcome", "resting")]),
        3.0,
        "{:?}",
        rate_samples(&samples)
    );
    assert_eq!(
        metric(&samples, FALLBACKS, &[("mode", "deny")]),
        3.0,
        "{:?}",
        rate_samples(&samples)
    );
    let unavailable = events(&gw, "rate_limit_store_unavailable");
    assert_eq!(unavailable.len(), 1, "{unavailable:?}");
    assert_eq!(
        log_field(&unavailable[0], "reason").and_then(Value::as_str),
        Some("timeout"),
        "{unavailable:?}"
    );

    redis.resume();
    let deadline = Instant::now() + RECOVERY;
    for n in 0.. {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rsp = get(&client, &url, &format!("10.9.0.{n}")).await;
        let id = assert_gateway_headers(&rsp, "probe after resume");
        if rsp.status == 200 && fallback_of(&gw, &id).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not decided by Redis {RECOVERY:?} after the resume\n{}",
            gw.stdout()
        );
    }
    gw.wait_for_event("rate_limit_store_recovered", LIVENESS)
        .expect("a recovery event");
    // `x` spent one of its three before the pause; the three calls that timed out, run by
    // Redis after the resume, spent nothing.
    for n in 0..2 {
        let id = assert_passed(&get(&client, &url, x).await, &format!("{x} again, {n}"));
        assert_eq!(fallback_of(&gw, &id), None);
    }
    let id = assert_limited(&get(&client, &url, x).await, "items-ip", 3, 3600, "4th");
    assert_eq!(fallback_of(&gw, &id), None);
}

/// Two gateways seeded with ONE node of a 3-primary Redis Cluster (not the node owning the
/// limiter's slot) hold a per-client limit together under concurrent load, with a per-ip
/// policy decided in the phase before it (so a request reaching both phases makes two script
/// calls): every key shares the hash tag `{palisade}`, so each call stays
/// one atomic script on the node that owns that slot, and no call fails or falls back.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_a_redis_cluster_and_hold_the_combined_limit() {
    const PER_CLIENT: u32 = 20;
    const REQUESTS: usize = 160;
    let cluster = RedisCluster::start(3);
    let owner = cluster.owner_of("{palisade}");
    let seed = (cluster.nodes().iter())
        .find(|n| n.port() != owner.port())
        .unwrap();
    let upstream = RecordingUpstream::start().await;
    // `client` on a public route is the address, counted after authentication; the per-ip
    // budget (before it) is the looser one, and requests refused later still spend it.
    let policy = format!(
        r#"[
    {{ limit = {}, window = "1h", per = "ip", name = "cluster-ip" }},
    {{ limit = {PER_CLIENT}, window = "1h", per = "client", name = "cluster-client" }},
]"#,
        PER_CLIENT * 2
    );
    let gateways = [
        start_gateway(&upstream, &seed.url(), "local", &policy),
        start_gateway(&upstream, &seed.url(), "local", &policy),
    ];
    let ips = ["198.51.100.1", "198.51.100.2"];

    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        // Gateway alternates every request, the address every two: each address is sent
        // to both gateways.
        let (client, base, ip) = (client(), gateways[i % 2].http_url(), ips[(i / 2) % 2]);
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            (i % 2, ip, get(&client, &base, ip).await)
        });
    }
    let answers = tasks.join_all().await;

    let other: Vec<_> = (answers.iter())
        .filter(|(_, _, r)| r.status != 200 && r.status != 429)
        .map(|(g, ip, r)| (g, ip, r.status, r.body_str()))
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 200/429 (no 503): {other:?}"
    );
    for ip in ips {
        let passed = (answers.iter())
            .filter(|(_, i, r)| *i == ip && r.status == 200)
            .count();
        assert!(
            (PER_CLIENT as usize - 1..=PER_CLIENT as usize + 1).contains(&passed),
            "{ip}: {passed} passed through two instances sharing a limit of {PER_CLIENT}"
        );
    }
    for (g, ip, rsp) in &answers {
        let what = format!("{ip} at gateway {g}");
        if rsp.status == 200 {
            assert_passed(rsp, &what);
        } else if rsp
            .header("ratelimit-policy")
            .is_some_and(|p| p.contains("cluster-ip"))
        {
            // Requests the client phase refuses still spend the ip quota, so once the
            // address has sent twice its client limit the ip policy refuses.
            assert_limited(rsp, "cluster-ip", PER_CLIENT * 2, 3600, &what);
        } else {
            assert_limited(rsp, "cluster-client", PER_CLIENT, 3600, &what);
        }
    }
    let passed = answers.iter().filter(|(_, _, r)| r.status == 200).count();
    assert_eq!(upstream.requests().len(), passed);

    // Every decision came from the cluster: no call failed, nothing fell back.
    for (g, gw) in gateways.iter().enumerate() {
        let samples = scrape(gw).await;
        // A request makes one call per phase it reaches: an admitted one two, a refused
        // one at least one.
        let admitted = (answers.iter())
            .filter(|(i, _, r)| *i == g && r.status == 200)
            .count();
        assert!(
            metric(&samples, CALLS, &[("outcome", "ok")]) >= (REQUESTS / 2 + admitted) as f64,
            "gateway {g}: fewer cluster decisions than requests and phases: {:?}",
            rate_samples(&samples)
        );
        for outcome in ["timeout", "error", "resting"] {
            assert_eq!(
                metric(&samples, CALLS, &[("outcome", outcome)]),
                0.0,
                "gateway {g}: store calls {outcome}\n{}",
                gw.stdout()
            );
        }
        assert_eq!(metric(&samples, FALLBACKS, &[]), 0.0, "gateway {g}");
        assert!(events(gw, "rate_limit_store_unavailable").is_empty());
        assert_eq!(
            events(gw, "rate_limit_store_cluster").len(),
            1,
            "gateway {g}"
        );
    }

    // A per-ip and a per-client bucket per address, all on the node owning `{palisade}`,
    // all expiring by themselves; the other nodes hold nothing.
    for (node, keys) in cluster.nodes().iter().zip(cluster.keys_by_node("*")) {
        if node.port() != owner.port() {
            assert!(keys.is_empty(), "node {}: {keys:?}", node.port());
            continue;
        }
        assert_eq!(keys.len(), 4, "{keys:?}");
        for key in &keys {
            assert!(
                key.len() == 55
                    && key.starts_with("palisade:rl:{palisade}:")
                    && key[23..].bytes().all(|b| b.is_ascii_hexdigit()),
                "unexpected key name {key:?}"
            );
            assert!(ips.iter().all(|ip| !key.contains(ip)), "{key}");
            let ttl = node.ttl_ms(key);
            assert!(ttl > 0 && ttl <= 3_600_001, "{key}: PTTL {ttl}");
        }
    }
}

/// A Redis Cluster has only database 0: a cluster URL naming another one stops the load
/// with a message saying so and naming the key, instead of every request failing later.
#[test]
fn a_redis_cluster_url_with_a_database_number_is_refused_at_load() {
    // A one-node cluster (it owns every slot) is still a cluster.
    let redis = RedisServer::start_with(&["--cluster-enabled", "yes"]);
    let added = redis
        .command(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"])
        .unwrap();
    assert_eq!(added.as_string().as_deref(), Some("OK"), "{added:?}");
    let upstream = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(RecordingUpstream::start());
    let (code, stdout, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config(
            &upstream,
            &format!("redis://127.0.0.1:{}/2", redis.port()),
            "local",
            "{ limit = 3, window = \"1h\", per = \"ip\" }",
        ))
        .run_to_exit(Duration::from_secs(30));
    assert_ne!(code, 0, "{stdout}\n{stderr}");
    let output = format!("{stdout}\n{stderr}");
    assert!(output.contains("rate_limit.store"), "{output}");
    assert!(output.contains("only database 0"), "{output}");
    assert!(redis.keys("*").is_empty(), "nothing was written");
}
