//! Checklist #7, alerting: `[[alert]]` rules fire once when their threshold is crossed
//! inside the window, not before, respect their cooldown, reach a real webhook receiver,
//! and a webhook that never answers does not slow requests down.

use crate::common;

use std::hash::BuildHasher;
use std::time::Duration;

use palisade_testkit::gateway::{log_event, log_field};
use palisade_testkit::{GatewayProcess, RecordingUpstream};
use serde_json::Value;

/// A fresh random hex string (std only): secrets are generated per test, never committed.
fn generated() -> String {
    let state = std::collections::hash_map::RandomState::new();
    let a = state.hash_one(1u8);
    let b = state.hash_one(2u8);
    format!("{a:016x}{b:016x}")
}

/// A gateway with two JWT routes (so requests without a token fail with `auth_failed`),
/// an admin listener, the webhook at `webhook` and `rules` after it.
fn start(upstream: &RecordingUpstream, webhook: &str, rules: &str) -> GatewayProcess {
    GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .env("PALISADE_JWT_SECRET", generated())
        .env("PALISADE_ALERT_WEBHOOK", webhook)
        .config(format!(
            r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"

[auth.jwt]
issuer = "https://issuer.test/"
audiences = ["api"]
algorithms = ["HS256"]
secret = "${{env:PALISADE_JWT_SECRET}}"

[[upstream]]
name = "app"
url = "{}"

[[route]]
name = "private"
path = "/private"
methods = ["GET"]
upstream = "app"
auth = "jwt"

[[route]]
name = "other"
path = "/other"
methods = ["GET"]
upstream = "app"
auth = "jwt"

[alerts]
webhook = "${{env:PALISADE_ALERT_WEBHOOK}}"
{rules}
"#,
            upstream.url()
        ))
        .start()
}

fn client() -> reqwest::Client {
    // A safety net so that a gateway that hangs fails the test instead of stalling it.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GET `path` without credentials: must be the gateway's 401.
async fn unauthenticated(client: &reqwest::Client, gw: &GatewayProcess, path: &str) {
    let response = client
        .get(format!("{}{path}", gw.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{path}");
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
        "{path}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

/// The `alert` and `auth_failed` lines so far, in order, as (event, alert or route).
fn alert_trail(gw: &GatewayProcess) -> Vec<(String, String)> {
    gw.logs()
        .iter()
        .filter_map(|line| {
            let event = log_event(line)?;
            let what = match event {
                "alert" => log_field(line, "alert")?,
                "auth_failed" => log_field(line, "route")?,
                _ => return None,
            };
            Some((event.to_owned(), what.as_str()?.to_owned()))
        })
        .collect()
}

fn pair(event: &str, what: &str) -> (String, String) {
    (event.to_owned(), what.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_fires_once_at_its_threshold_and_rests_for_its_cooldown() {
    let upstream = RecordingUpstream::start().await;
    let receiver = RecordingUpstream::start().await;
    let token = generated();
    let webhook = format!("{}/hooks/alerts?token={token}", receiver.url());
    let gw = start(
        &upstream,
        &webhook,
        r#"
[[alert]]
name = "login_failures"
event = "auth_failed"
route = "private"
threshold = 3
window = "1h"
cooldown = "1h"

[[alert]]
name = "expired_tokens"
event = "auth_failed"
reason = "expired"
threshold = 1
window = "1h"

[[alert]]
name = "sentinel"
event = "auth_failed"
route = "other"
threshold = 1
window = "1m"
"#,
    );
    let client = client();

    // threshold - 1 failures, then the threshold-th.
    for _ in 0..3 {
        unauthenticated(&client, &gw, "/private").await;
    }
    let posts = receiver.wait_for_requests(1, Duration::from_secs(15)).await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    let post = &posts[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path_and_query, format!("/hooks/alerts?token={token}"));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&post.body).unwrap();
    let fired_at = body["fired_at"].as_str().unwrap().to_owned();
    assert!(
        fired_at.len() == 20 && fired_at.ends_with('Z') && fired_at.as_bytes()[10] == b'T',
        "{fired_at}"
    );
    assert_eq!(
        body,
        serde_json::json!({
            "alert": "login_failures",
            "event": "auth_failed",
            "route": "private",
            "reason": null,
            "threshold": 3,
            "count": 3,
            "window_seconds": 3600,
            "fired_at": fired_at,
            "text": "palisade alert login_failures: 3 auth_failed events on route private within 3600s",
        })
    );
    // Not before: the alert line follows the third failure, and only it.
    let line = tokio::task::block_in_place(|| {
        gw.wait_for_log(|l| log_event(l) == Some("alert"), Duration::from_secs(5))
    })
    .expect("an alert line");
    assert_eq!(log_field(&line, "level"), Some(&Value::from("WARN")));
    assert_eq!(
        log_field(&line, "trigger_event"),
        Some(&Value::from("auth_failed"))
    );
    assert_eq!(log_field(&line, "count"), Some(&Value::from(3)));
    assert_eq!(log_field(&line, "window_seconds"), Some(&Value::from(3600)));
    assert_eq!(
        alert_trail(&gw),
        [
            pair("auth_failed", "private"),
            pair("auth_failed", "private"),
            pair("auth_failed", "private"),
            pair("alert", "login_failures"),
        ]
    );

    // Inside the cooldown, more failures fire nothing; then the sentinel (threshold 1 on
    // another route) fires, so anything the cooldown let through would be seen before it.
    for _ in 0..4 {
        unauthenticated(&client, &gw, "/private").await;
    }
    unauthenticated(&client, &gw, "/other").await;
    tokio::task::block_in_place(|| {
        gw.wait_for_log(
            |l| {
                log_event(l) == Some("alert")
                    && log_field(l, "alert") == Some(&Value::from("sentinel"))
            },
            Duration::from_secs(5),
        )
    })
    .expect("the sentinel's alert line");
    let trail = alert_trail(&gw);
    let alerts: Vec<&str> = (trail.iter())
        .filter(|(event, _)| event == "alert")
        .map(|(_, name)| name.as_str())
        .collect();
    assert_eq!(alerts, ["login_failures", "sentinel"], "{trail:?}");
    let posts = receiver.wait_for_requests(2, Duration::from_secs(15)).await;
    let names: Vec<String> = (posts.iter())
        .map(|p| serde_json::from_slice::<Value>(&p.body).unwrap()["alert"].to_string())
        .collect();
    assert_eq!(names, [r#""login_failures""#, r#""sentinel""#]);

    let metrics = common::metrics(&gw).await;
    for expected in [
        r#"palisade_alerts_fired_total{alert="login_failures"} 1"#,
        r#"palisade_alerts_fired_total{alert="sentinel"} 1"#,
        r#"palisade_security_events_total{event="auth_failed",reason="missing_credentials",route="private"} 7"#,
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    assert!(!metrics.contains("expired_tokens"), "{metrics}");
    assert!(
        !metrics.contains("palisade_alert_webhook_failures_total{"),
        "{metrics}"
    );
    // The webhook URL (and its token) never reaches the log.
    assert!(!gw.stdout().contains(&token), "{}", gw.stdout());
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_never_answers_does_not_slow_requests() {
    // Accepts connections and never answers, holding each one open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let (accepted, mut held) = tokio::sync::mpsc::unbounded_channel();
    let holder = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if accepted.send(stream).is_err() {
                return;
            }
        }
    });
    let upstream = RecordingUpstream::start().await;
    // Five rules that fire on the first failure: more deliveries than the sender runs at once.
    let rules: String = (1..=5)
        .map(|i| {
            format!(
                "[[alert]]\nname = \"hang{i}\"\nevent = \"auth_failed\"\nthreshold = 1\nwindow = \"1m\"\n"
            )
        })
        .collect();
    let gw = start(&upstream, &hook, &rules);
    let client = client();
    unauthenticated(&client, &gw, "/private").await;
    // A delivery is now stuck on the silent receiver.
    let first = held.recv().await.expect("the webhook was called");

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..40 {
        let client = client.clone();
        let url = format!("{}/{}", gw.http_url(), ["private", "other"][i % 2]);
        requests.spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    }
    let mut statuses = Vec::new();
    while let Some(done) = requests.join_next().await {
        statuses.push(done.unwrap().unwrap().as_u16());
    }
    assert_eq!(statuses, vec![401; 40]);

    // All answered while the receiver still holds the webhook's connection: the gateway
    // has neither given up on it nor been waiting for it.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match first.try_read(&mut buf) {
            Ok(0) => panic!("the gateway closed the webhook connection before requests finished"),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    let head = String::from_utf8_lossy(&seen);
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    let fired: Vec<Value> = (gw.logs().into_iter())
        .filter(|l| log_event(l) == Some("alert"))
        .collect();
    assert_eq!(fired.len(), 5, "{fired:?}");
    assert!(
        !gw.stdout().contains("alert_webhook_failed"),
        "no delivery has failed yet: {}",
        gw.stdout()
    );
    holder.abort();
}

#[test]
fn check_writes_prometheus_rules_for_every_effective_rule() {
    let config = r#"
[server]
http = "127.0.0.1:0"

[[upstream]]
name = "app"
url = "http://127.0.0.1:9"

[[route]]
name = "login"
path = "/login"
methods = ["POST"]
upstream = "app"
auth = "public"

[[alert]]
name = "rate_limited_spike"
event = "rate_limited"
threshold = 40
window = "1m"

[[alert]]
event = "auth_failed"
route = "login"
reason = "wrong_secret"
threshold = 5
window = "90s"
cooldown = "1h"
"#;
    let (code, stdout, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .args(["check", "-c", "{config}", "--emit-prometheus-rules", "-"])
        .run_to_exit(Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    let expected = [
        (
            "auth_failed_spike",
            r#"sum(increase(palisade_security_events_total{event="auth_failed"}[5m])) >= 100"#,
            "15m",
        ),
        (
            "rate_limited_spike",
            r#"sum(increase(palisade_security_events_total{event="rate_limited"}[1m])) >= 40"#,
            "1m",
        ),
        (
            "upstream_error_spike",
            r#"sum(increase(palisade_security_events_total{event="upstream_error"}[5m])) >= 50"#,
            "15m",
        ),
        (
            "auth_failed_login_wrong_secret_spike",
            r#"sum(increase(palisade_security_events_total{event="auth_failed",route="login",reason="wrong_secret"}[90s])) >= 5"#,
            "1h",
        ),
    ];
    assert!(
        stdout.starts_with("# Prometheus alerting rules"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "summary: 5 or more auth_failed events on route login (wrong_secret) within 90s\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("groups:\n- name: palisade\n  rules:\n"),
        "{stdout}"
    );
    let mut rest = stdout.as_str();
    for (name, expr, cooldown) in expected {
        let at = rest
            .find(&format!("- alert: {name}\n"))
            .unwrap_or_else(|| panic!("{name} in order in\n{stdout}"));
        rest = &rest[at..];
        let next = rest[1..].find("- alert:").map_or(rest.len(), |n| n + 1);
        let rule = &rest[..next];
        assert!(rule.contains(&format!("expr: {expr}\n")), "{name}: {rule}");
        assert!(
            rule.contains(&format!("cooldown: {cooldown}\n")),
            "{name}: {rule}"
        );
        assert!(rule.contains("severity: warning\n"), "{name}: {rule}");
        rest = &rest[1..];
    }

    // The same to a file.
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("palisade-rules.yml");
    let (code, file_stdout, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(config)
        .args([
            "check",
            "-c",
            "{config}",
            "--emit-prometheus-rules",
            path.to_str().unwrap(),
        ])
        .run_to_exit(Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(file_stdout, "");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), stdout);
}

#[test]
fn a_literal_webhook_url_is_refused_without_being_printed() {
    let token = generated();
    let (code, stdout, stderr) = GatewayProcess::builder(env!("CARGO_BIN_EXE_palisade"))
        .config(format!(
            r#"
[server]
http = "127.0.0.1:0"

[alerts]
webhook = "https://hooks.example.com/services/{token}"
"#
        ))
        .args(["check", "-c", "{config}"])
        .run_to_exit(Duration::from_secs(30));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("palisade.toml:6: key `alerts.webhook`"),
        "{stderr}"
    );
    assert!(stderr.contains("write it as a reference"), "{stderr}");
    assert!(
        !stderr.contains(&token) && !stdout.contains(&token),
        "{stderr}"
    );
}
