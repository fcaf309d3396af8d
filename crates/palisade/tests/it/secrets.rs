//! Checklist #9: a secret handed to palisade leaves it only where it must (the key shown once
//! at creation) — never in `--help`, `config schema`, error messages, metrics or the admin
//! API. (Everything the gateway prints is searched for secrets by the harness, in every
//! integration test; this file covers what it answers.)

use crate::common;

use std::time::Duration;

use palisade_testkit::{GatewayProcess, RecordingUpstream, secrets};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const TOKEN: &str = "secrets-test-admin-token-6c1f0e9a42";
const PEPPER: &str = "secrets-test-pepper-0f3b8a7d5e2c9146a8b7";
const HS_SECRET: &str = "secrets-test-hs256-secret-5d9e2b7f1c3a8e40";
const WEBHOOK: &str = "http://127.0.0.1:9/hooks/secrets-test-webhook-token-77e1";

#[test]
fn help_and_schema_never_show_a_secret_from_the_environment() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["keys", "--help"],
        vec!["config", "schema"],
    ] {
        let output = secrets::checked_output(
            std::process::Command::new(BIN)
                .args(&args)
                .env("PALISADE_ADMIN_TOKEN", TOKEN)
                .env("PALISADE_KEY_PEPPER", PEPPER)
                .env("JWT_SECRET", HS_SECRET),
        );
        assert!(output.status.success(), "{args:?}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!text.is_empty(), "{args:?} printed nothing");
        for secret in [TOKEN, PEPPER, HS_SECRET] {
            assert!(!text.contains(secret), "{args:?} printed a secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_admin_answers_and_reload_errors_never_show_a_secret() {
    let upstream = RecordingUpstream::start().await;
    let config = format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${{env:PALISADE_ADMIN_TOKEN}}"

[store]
url = "sqlite://keys.db"
key_pepper = "${{env:PALISADE_KEY_PEPPER}}"

[auth.jwt]
issuer = "https://issuer.test/"
audiences = ["api"]
algorithms = ["HS256"]
secret = "${{env:JWT_SECRET}}"

[alerts]
webhook = "${{env:ALERT_WEBHOOK}}"

[[upstream]]
name = "app"
url = "{}"

[[route]]
name = "items"
path = "/items"
methods = ["GET"]
upstream = "app"
"#,
        upstream.url()
    );
    let gw = GatewayProcess::builder(BIN)
        .config(config.clone())
        .env("PALISADE_ADMIN_TOKEN", TOKEN)
        .env("PALISADE_KEY_PEPPER", PEPPER)
        .env("JWT_SECRET", HS_SECRET)
        .env("ALERT_WEBHOOK", WEBHOOK)
        .start();
    let client = reqwest::Client::new();
    let (key, _) = common::create_key(&gw, TOKEN, json!({ "name": "a", "subject": "s" })).await;
    let key_secret = key.rsplit_once('_').unwrap().1.to_owned();
    let all_secrets = [
        TOKEN,
        PEPPER,
        HS_SECRET,
        WEBHOOK,
        key.as_str(),
        key_secret.as_str(),
    ];

    // Traffic that fails authentication with the real key's secret in several places.
    for value in [key.clone(), format!("Bearer {key}")] {
        let response = client
            .get(format!("{}/items?api_key={key}", gw.http_url()))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success() || response.status() == 401);
        let body = response.text().await.unwrap();
        for secret in all_secrets {
            assert!(!body.contains(secret), "a response body holds a secret");
        }
    }
    let admin = |path: &str| {
        client
            .get(format!("{}{path}", gw.admin_url()))
            .bearer_auth(TOKEN)
    };
    for path in ["/metrics", "/keys", "/readyz", "/healthz"] {
        let response = admin(path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.is_empty(), "{path}");
        for secret in all_secrets {
            assert!(!body.contains(secret), "{path} answers with a secret");
        }
    }
    // A reload that fails on a secret names the key, never the value.
    gw.write_config(&config.replace(
        "secret = \"${env:JWT_SECRET}\"",
        &format!("secret = \"{HS_SECRET}\""),
    ));
    let reload = client
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 422);
    let body = reload.text().await.unwrap();
    assert!(body.contains("auth.jwt.secret"), "{body}");
    assert!(!body.contains(HS_SECRET), "{body}");
    tokio::task::block_in_place(|| {
        gw.wait_for_event("config_reload_failed", Duration::from_secs(5))
            .expect("the failed reload is logged");
    });
    // The harness checks stdout and stderr for every recorded secret when `gw` drops.
    secrets::record(&key_secret);
}

/// A secret written around a reference is still written in the file: the store URLs'
/// passwords and the webhook with a literal part make `palisade check` fail control 9
/// (under `allow_literal_secrets`; without it the config does not load).
#[test]
fn check_fails_a_secret_written_around_a_reference() {
    secrets::record("Hunter2LiteralPw");
    secrets::record("LiteralWebhookToken");
    let config = r#"
allow_literal_secrets = true

[server]
http = "127.0.0.1:0"

[store]
url = "postgres://palisade:Hunter2LiteralPw@${env:DBHOST}/palisade?sslpassword=Hunter2LiteralPw"
key_pepper = "${env:PALISADE_KEY_PEPPER}"

[rate_limit]
store = "redis://:Hunter2LiteralPw@${env:DBHOST}:6379/0"

[alerts]
webhook = "https://hooks.example/LiteralWebhookToken${env:DBHOST}"

[[upstream]]
name = "app"
url = "http://127.0.0.1:9"

[[route]]
name = "items"
path = "/items"
methods = ["GET"]
upstream = "app"
auth = "public"
"#;
    let run = |config: &str| {
        GatewayProcess::builder(BIN)
            .config(config)
            .args(["check", "-c", "{config}", "--format", "json"])
            .env("DBHOST", "db.internal")
            .env("PALISADE_KEY_PEPPER", PEPPER)
            .run_to_exit(Duration::from_secs(20))
    };
    let (code, stdout, stderr) = run(config);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let control = report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == 9)
        .unwrap();
    assert_eq!(control["status"], "FAIL", "{control}");
    let mut keys: Vec<&str> = control["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["alerts.webhook", "rate_limit.store", "store.url"]);
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("Hunter2LiteralPw") && !text.contains("LiteralWebhookToken"),
            "{text}"
        );
    }
    // Without it, the config does not load (exit 2), and the message does not quote it.
    let (code, stdout, stderr) = run(&config.replace("allow_literal_secrets = true", ""));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("this URL holds a password"), "{stderr}");
    assert!(!stderr.contains("Hunter2LiteralPw"), "{stderr}");
}
