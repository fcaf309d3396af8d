//! Checklist #10, `palisade check`: the ten-row report read from a config, with findings
//! that name the key, and exit 1 when a control fails.

use std::time::Duration;

use palisade_testkit::{GatewayProcess, TestPki};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

/// Runs `palisade check` on `config` (with `files` beside it); returns (exit, stdout, stderr).
fn check(config: &str, files: &[(&str, &str)], format: &str) -> (i32, String, String) {
    let mut builder = GatewayProcess::builder(BIN)
        .config(config)
        .args(["check", "-c", "{config}", "--format", format])
        .env("PALISADE_ADMIN_TOKEN", "check-test-admin-token-0123456789")
        .env(
            "PALISADE_KEY_PEPPER",
            "check-test-pepper-0123456789abcdef0123",
        )
        .env(
            "ALERT_WEBHOOK",
            "https://hooks.example/check-test-webhook-token",
        );
    for (name, contents) in files {
        builder = builder.file(name, contents);
    }
    builder.run_to_exit(Duration::from_secs(20))
}

fn statuses(json: &str) -> Vec<(u64, String)> {
    let report: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(report["command"], "check");
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_u64().unwrap(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn findings(json: &str, id: u64) -> Vec<Value> {
    let report: Value = serde_json::from_str(json).unwrap();
    report["controls"][(id - 1) as usize]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .cloned()
        .collect()
}

const SCHEMA: &str = r#"{"type": "object", "properties": {"item": {"type": "string"}}}"#;

const GOOD: &str = r#"
[server]
http = "127.0.0.1:0"
https = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${env:PALISADE_ADMIN_TOKEN}"

[server.tls]
cert = "server.pem"
key = "server.key"

[store]
url = "sqlite://keys.db"
key_pepper = "${env:PALISADE_KEY_PEPPER}"

[rate_limit]
default = { limit = 100, window = "15m", per = "client" }
auth_failures = { limit = 10, window = "15m", per = ["ip", "account"] }

[alerts]
webhook = "${env:ALERT_WEBHOOK}"

[[upstream]]
name = "app"
url = "http://127.0.0.1:3000"

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "app"
auth = "public"
login = { account = "/username" }
rate_limit = { limit = 5, window = "15m", per = "ip" }
validate = { body = "item.json" }

[[route]]
name = "orders"
path = "/api/orders"
methods = ["POST"]
upstream = "app"
validate = { body = "item.json" }

[[route]]
name = "order"
path = "/api/orders/{id}"
methods = ["GET"]
upstream = "app"
owner = { field = "/ownerId", claim = "sub" }
"#;

#[test]
fn a_config_with_every_control_in_place_passes() {
    let pki = TestPki::new();
    let files = [
        ("server.pem", pki.cert_pem.as_str()),
        ("server.key", pki.key_pem.as_str()),
        ("item.json", SCHEMA),
    ];
    let (code, stdout, stderr) = check(GOOD, &files, "json");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let expected: Vec<(u64, String)> = (1..=10)
        .map(|id| (id, if id == 10 { "NOT_TESTED" } else { "PASS" }.to_owned()))
        .collect();
    assert_eq!(statuses(&stdout), expected, "{stdout}");

    // The table: ten rows, what a config cannot show says why.
    let (code, table, _) = check(GOOD, &files, "table");
    assert_eq!(code, 0);
    assert!(table.starts_with("palisade check of "), "{table}");
    assert!(table.contains("10  Dependencies"), "{table}");
    assert!(
        table.contains("NOT TESTED (a config does not list dependencies"),
        "{table}"
    );
    assert!(table.contains("no control failed"), "{table}");
}

#[test]
fn each_gap_fails_or_warns_its_own_control_and_names_the_key() {
    let bad = r#"
allow_literal_secrets = true

[server]
http = "127.0.0.1:0"
admin = "0.0.0.0:0"
admin_token = "check-test-literal-admin-token-77"
trusted_proxies = ["0.0.0.0/0"]

[alerts]
builtin = false

[[upstream]]
name = "app"
url = "http://10.0.0.7:3000"

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "app"
auth = "public"

[[route]]
name = "signup"
path = "/api/users"
methods = ["POST"]
upstream = "app"
auth = "public"

[[route]]
name = "order"
path = "/api/orders/{orderId}"
methods = ["GET", "PUT"]
upstream = "app"
roles = ["customer"]
"#;
    let with_store = format!(
        "{bad}\n[store]\nurl = \"sqlite://keys.db\"\nkey_pepper = \"check-test-literal-pepper-0123456789abcdef\"\n"
    );
    let (code, stdout, stderr) = check(&with_store, &[], "json");
    assert_eq!(code, 1, "a failed control exits 1\n{stdout}{stderr}");
    let got = statuses(&stdout);
    let status = |id: u64| got[(id - 1) as usize].1.as_str();
    assert_eq!(status(1), "FAIL", "no TLS");
    assert_eq!(status(2), "WARN", "a public route that writes");
    assert_eq!(status(3), "WARN", "an object route without an owner rule");
    assert_eq!(status(4), "FAIL", "login without a stricter limit");
    assert_eq!(status(5), "FAIL", "nothing validated");
    assert_eq!(status(6), "PASS");
    assert_eq!(status(7), "WARN", "no alert rules");
    assert_eq!(status(8), "FAIL", "admin on 0.0.0.0, every proxy trusted");
    assert_eq!(status(9), "FAIL", "literal secrets");
    assert_eq!(status(10), "NOT_TESTED");

    let location = |id: u64| -> Vec<String> {
        findings(&stdout, id)
            .iter()
            .map(|f| f["location"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(location(1), ["server.tls"]);
    assert_eq!(
        location(2),
        ["route `signup` (POST /api/users)"],
        "login is public on purpose"
    );
    assert_eq!(
        location(3),
        ["route `order` (GET,PUT /api/orders/{orderId})"]
    );
    assert!(location(4).contains(&"route `login` (POST /api/login)".to_owned()));
    assert!(location(4).contains(&"rate_limit.auth_failures".to_owned()));
    assert!(location(8).contains(&"server.admin".to_owned()));
    assert!(location(8).contains(&"server.trusted_proxies[0]".to_owned()));
    assert!(location(8).contains(&"upstream `app`".to_owned()));
    let mut secrets = location(9);
    secrets.sort();
    assert_eq!(secrets, ["server.admin_token", "store.key_pepper"]);
    // Findings name keys, never the secrets themselves.
    assert!(!stdout.contains("check-test-literal"), "{stdout}");

    // Without allow_literal_secrets, the same config does not even load: exit 2.
    let refused = with_store.replace("allow_literal_secrets = true", "");
    let (code, _, stderr) = check(&refused, &[], "table");
    assert_eq!(code, 2);
    assert!(stderr.contains("server.admin_token"), "{stderr}");
    assert!(!stderr.contains("check-test-literal"), "{stderr}");
}

#[test]
fn sarif_and_junit_carry_the_same_verdicts() {
    let pki = TestPki::new();
    let files = [
        ("server.pem", pki.cert_pem.as_str()),
        ("server.key", pki.key_pem.as_str()),
        ("item.json", SCHEMA),
    ];
    let (code, sarif, _) = check(GOOD, &files, "sarif");
    assert_eq!(code, 0);
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["runs"][0]["tool"]["driver"]["name"], "palisade-check");
    let (code, junit, _) = check(GOOD, &files, "junit");
    assert_eq!(code, 0);
    assert!(
        junit.contains("<testsuite name=\"palisade check "),
        "{junit}"
    );
    assert!(junit.contains("tests=\"10\" failures=\"0\""), "{junit}");
}

/// Control `id`'s status and its non-info findings' (title, location) for `config`.
fn control(config: &str, files: &[(&str, &str)], id: u64) -> (String, Vec<(String, String)>) {
    let (code, stdout, stderr) = check(config, files, "json");
    assert!(code == 0 || code == 1, "{stdout}{stderr}");
    let status = statuses(&stdout)[(id - 1) as usize].1.clone();
    let found = findings(&stdout, id)
        .iter()
        .map(|f| {
            (
                f["title"].as_str().unwrap_or("").to_owned(),
                f["location"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (status, found)
}

#[test]
fn a_self_signed_certificate_warns() {
    let config = GOOD.replace(
        "cert = \"server.pem\"\nkey = \"server.key\"",
        "self_signed = true",
    );
    assert!(config.contains("self_signed = true"));
    let files = [("item.json", SCHEMA)];
    assert_eq!(
        control(&config, &files, 1),
        (
            "WARN".to_owned(),
            vec![(
                "self-signed certificate".to_owned(),
                "server.tls.self_signed".to_owned()
            )]
        )
    );
}

#[test]
fn a_short_hsts_max_age_fails_and_180_days_pass() {
    let pki = TestPki::new();
    let files = [
        ("server.pem", pki.cert_pem.as_str()),
        ("server.key", pki.key_pem.as_str()),
        ("item.json", SCHEMA),
    ];
    let with_hsts = |value: &str| {
        GOOD.replace(
            "key = \"server.key\"",
            &format!("key = \"server.key\"\nhsts = \"{value}\""),
        )
    };
    assert_eq!(
        control(&with_hsts("max-age=86400; includeSubDomains"), &files, 1),
        (
            "FAIL".to_owned(),
            vec![(
                "HSTS max-age under 180 days".to_owned(),
                "server.tls.hsts".to_owned()
            )]
        )
    );
    assert_eq!(
        control(&with_hsts("max-age=15552000"), &files, 1),
        ("PASS".to_owned(), vec![])
    );
}

#[test]
fn alert_rules_without_a_webhook_warn() {
    let pki = TestPki::new();
    let files = [
        ("server.pem", pki.cert_pem.as_str()),
        ("server.key", pki.key_pem.as_str()),
        ("item.json", SCHEMA),
    ];
    let config = GOOD.replace("webhook = \"${env:ALERT_WEBHOOK}\"\n", "");
    assert!(!config.contains("ALERT_WEBHOOK"));
    assert_eq!(
        control(&config, &files, 7),
        (
            "WARN".to_owned(),
            vec![(
                "alerts are only logged".to_owned(),
                "alerts.webhook".to_owned()
            )]
        )
    );
}

#[test]
fn a_parameter_that_only_ends_in_id_is_not_an_object_id() {
    // `{grid}` names no object: no owner rule is asked for.
    let pki = TestPki::new();
    let files = [
        ("server.pem", pki.cert_pem.as_str()),
        ("server.key", pki.key_pem.as_str()),
        ("item.json", SCHEMA),
    ];
    let route = "\n[[route]]\nname = \"grid\"\npath = \"/api/maps/{grid}\"\nmethods = [\"GET\"]\nupstream = \"app\"\n";
    assert_eq!(
        control(&format!("{GOOD}{route}"), &files, 3),
        ("PASS".to_owned(), vec![])
    );
    let route = route.replace("{grid}", "{gridId}");
    assert_eq!(
        control(&format!("{GOOD}{route}"), &files, 3).0,
        "WARN",
        "{{gridId}} is one"
    );
}

#[test]
fn a_schema_serve_cannot_compile_fails_check_with_the_same_message() {
    let pki = TestPki::new();
    let serve = |schema: &str| {
        GatewayProcess::builder(BIN)
            .config(GOOD)
            .env("PALISADE_ADMIN_TOKEN", "check-test-admin-token-0123456789")
            .env(
                "PALISADE_KEY_PEPPER",
                "check-test-pepper-0123456789abcdef0123",
            )
            .env(
                "ALERT_WEBHOOK",
                "https://hooks.example/check-test-webhook-token",
            )
            .file("server.pem", &pki.cert_pem)
            .file("server.key", &pki.key_pem)
            .file("item.json", schema)
            .run_to_exit(Duration::from_secs(20))
    };
    let cases = [
        (
            r#"{"type": 5}"#,
            "key `route[0].validate`: route `login`: invalid schema at /type",
        ),
        (
            r#"{"type": "object", "properties": {"item": {"type": "string", "pattern": "^(?=a)a+$"}}}"#,
            "/properties/item/pattern",
        ),
    ];
    for (schema, expected) in cases {
        let files = [
            ("server.pem", pki.cert_pem.as_str()),
            ("server.key", pki.key_pem.as_str()),
            ("item.json", schema),
        ];
        let (code, stdout, stderr) = check(GOOD, &files, "json");
        assert_eq!(code, 2, "{schema}: {stdout}{stderr}");
        assert!(
            stdout.is_empty(),
            "no report for a config serve refuses: {stdout}"
        );
        assert!(stderr.contains(expected), "{schema}: {stderr}");
        let (served, _, serve_stderr) = serve(schema);
        assert_eq!(served, 2, "{serve_stderr}");
        let message = |text: &str| {
            (text.lines())
                .find_map(|l| l.split_once("palisade.toml:"))
                .map(|(_, message)| message.to_owned())
        };
        assert!(message(&stderr).is_some(), "{stderr}");
        assert_eq!(message(&stderr), message(&serve_stderr), "{serve_stderr}");
    }
    let (_, _, stderr) = check(
        GOOD,
        &[
            ("server.pem", pki.cert_pem.as_str()),
            ("server.key", pki.key_pem.as_str()),
            ("item.json", cases[1].0),
        ],
        "json",
    );
    assert!(
        stderr.contains("lookaround and backreferences are not supported"),
        "{stderr}"
    );
}
