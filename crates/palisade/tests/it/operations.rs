//! Checklist #7 and #8 in operation: the admin listener, reload (SIGHUP and POST /reload)
//! that never takes a bad config, and a SIGTERM that drains in-flight requests.

use std::time::Duration;

use palisade_testkit::config::ADMIN_TOKEN;
use palisade_testkit::{GatewayProcess, RecordingUpstream, TestConfig};

fn config(upstream_url: &str, extra_route: &str) -> TestConfig {
    TestConfig::new().tables(&format!(
        r#"
[limits]
drain_timeout = "10s"

[[upstream]]
name = "app"
url = "{upstream_url}"

[[route]]
name = "old"
path = "/old"
methods = ["GET"]
upstream = "app"
auth = "public"

[[route]]
name = "slow"
path = "/slow"
methods = ["GET"]
upstream = "app"
auth = "public"
{extra_route}
"#
    ))
}

fn start(upstream_url: &str) -> GatewayProcess {
    config(upstream_url, "")
        .gateway(env!("CARGO_BIN_EXE_palisade"))
        .start()
}

async fn get(url: String) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream.url());
    let admin = gw.admin_url();

    let health = get(format!("{admin}/healthz")).await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    let ready = get(format!("{admin}/readyz")).await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["upstreams"]["app"], "up");

    assert_eq!(get(format!("{}/old", gw.http_url())).await.status(), 200);
    assert_eq!(
        get(format!("{}/missing", gw.http_url())).await.status(),
        404
    );
    let metrics = get(format!("{admin}/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"palisade_requests_total{route="old",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"palisade_requests_total{route="-",status="404"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"palisade_request_duration_seconds_count{route="old"} 1"#),
        "{metrics}"
    );

    // An upstream that goes away makes the gateway unready, and is counted when used.
    drop(upstream);
    let unready = get(format!("{admin}/readyz")).await;
    assert_eq!(unready.status(), 503);
    assert_eq!(
        unready.json::<serde_json::Value>().await.unwrap()["upstreams"]["app"],
        "down"
    );
    assert_eq!(get(format!("{}/old", gw.http_url())).await.status(), 502);
    let metrics = get(format!("{admin}/metrics")).await.text().await.unwrap();
    assert!(
        metrics
            .contains(r#"palisade_upstream_errors_total{upstream="app",reason="unavailable"} 1"#),
        "{metrics}"
    );

    // Unknown admin paths answer in the same problem shape.
    let missing = get(format!("{admin}/nope")).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_config_never_replaces_the_running_one() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream.url());
    let http = gw.http_url();
    assert_eq!(get(format!("{http}/old")).await.status(), 200);

    // SIGHUP with a syntax error: logged with file and line, old routes keep serving.
    gw.write_config("[server\nhttp = ");
    gw.signal("HUP");
    let failed = gw
        .wait_for_event("config_reload_failed", Duration::from_secs(10))
        .expect("failed reload logged");
    assert!(failed.to_string().contains("palisade.toml:1"), "{failed}");
    assert_eq!(get(format!("{http}/old")).await.status(), 200);

    // POST /reload with a config naming an unknown upstream: 422 with the located error.
    let client = reqwest::Client::new();
    gw.write_config(&config(
        &upstream.url(),
        "[[route]]\nname = \"bad\"\npath = \"/bad\"\nmethods = [\"GET\"]\nupstream = \"nope\"\nauth = \"public\"\n",
    )
    .render());
    let rejected = client
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 422);
    let body: serde_json::Value = rejected.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("route[2].upstream"),
        "{body}"
    );
    assert_eq!(get(format!("{http}/old")).await.status(), 200);
    assert_eq!(get(format!("{http}/bad")).await.status(), 404);

    // A good config swaps in: the new route serves, the removed one is gone.
    let good = config(
        &upstream.url(),
        "[[route]]\nname = \"new\"\npath = \"/new\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n",
    )
    .render()
    .replace(
        "[[route]]\nname = \"old\"\npath = \"/old\"\nmethods = [\"GET\"]\nupstream = \"app\"\nauth = \"public\"\n",
        "",
    );
    gw.write_config(&good);
    let accepted = client
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(get(format!("{http}/new")).await.status(), 200);
    assert_eq!(get(format!("{http}/old")).await.status(), 404);
    assert_eq!(
        upstream
            .requests()
            .iter()
            .filter(|r| r.path() == "/new")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_requires_the_admin_token() {
    let upstream = RecordingUpstream::start().await;
    let gw = start(&upstream.url());
    let client = reqwest::Client::new();
    let url = format!("{}/reload", gw.admin_url());

    let missing = client.post(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(
        missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let wrong = client
        .post(&url)
        .bearer_auth("test-admin-token-0123456788")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        gw.wait_for_event("config_reloaded", Duration::from_millis(200))
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let upstream = RecordingUpstream::start().await;
    let mut gw = start(&upstream.url());
    let slow = tokio::spawn(get(format!("{}/slow?ms=1500", gw.http_url())));
    upstream.wait_for_requests(1, Duration::from_secs(10)).await;

    gw.signal("TERM");
    let response = slow.await.unwrap();
    assert_eq!(response.status(), 200, "the in-flight request finishes");
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["upstream"],
        "ok"
    );
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}
