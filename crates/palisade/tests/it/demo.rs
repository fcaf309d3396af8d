//! `palisade demo`: the README's first command, as a new user runs it.

use std::process::Command;

use palisade_testkit::GatewayProcess;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const FREE_PORTS: [&str; 9] = [
    "demo",
    "--http",
    "127.0.0.1:0",
    "--https",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
];

fn insecure_client() -> reqwest::Client {
    // The demo's certificate is self-signed, as the tour's `curl -k` says.
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_serves_the_sample_api_through_every_layer_and_prints_a_tour() {
    let gw = GatewayProcess::builder(BIN).args(FREE_PORTS).start();
    let base = gw.https_url();
    let client = insecure_client();
    // The tour is printed after the ready line; give it a moment to be read.
    gw.wait_for_log(
        |line| {
            line.as_str()
                .is_some_and(|l| l.contains("Stop with Ctrl-C."))
        },
        std::time::Duration::from_secs(10),
    );
    let stdout = gw.stdout();
    let key_of = |who: &str| {
        let prefix = format!("export {who}=");
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("the tour prints {who}'s key:\n{stdout}"))
    };
    let (alice, bob) = (key_of("ALICE"), key_of("BOB"));
    assert!(alice.starts_with("pal_") && bob.starts_with("pal_") && alice != bob);

    // Private unless public: no key, no orders.
    let anonymous = client
        .get(format!("{base}/api/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"palisade\""
    );
    let login = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "alice", "password": "wonderland"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "login is public");
    // The login limit: five per address per 15 minutes (one used above).
    for _ in 0..4 {
        let attempt = client
            .post(format!("{base}/api/login"))
            .json(&serde_json::json!({"username": "alice", "password": "guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            attempt.status(),
            401,
            "wrong password, still under the limit"
        );
    }
    let limited = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "alice", "password": "wonderland"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    let orders = client
        .get(format!("{base}/api/orders"))
        .header("X-Api-Key", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 200);
    assert_eq!(
        orders.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert!(orders.headers().get("x-powered-by").is_none());
    let body: serde_json::Value = orders.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "alice sees her two orders only: {body}");
    assert!(items.iter().all(|o| o["ownerId"] == "alice"));

    // The tour's BOLA steps: bob cannot read or delete alice's order; she and admin can.
    let admin = key_of("ADMIN");
    let as_key = |method: reqwest::Method, key: &str| {
        client
            .request(method, format!("{base}/api/orders/1"))
            .header("X-Api-Key", key.to_owned())
    };
    assert_eq!(
        as_key(reqwest::Method::GET, &bob)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        as_key(reqwest::Method::DELETE, &bob)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let still_there = as_key(reqwest::Method::GET, &alice).send().await.unwrap();
    assert_eq!(still_there.status(), 200);
    assert_eq!(
        still_there.json::<serde_json::Value>().await.unwrap()["item"],
        "book"
    );
    assert_eq!(
        as_key(reqwest::Method::GET, &admin)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let crash = client
        .get(format!("{base}/api/debug/crash"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(crash.status(), 500);
    assert_eq!(crash.headers()["content-type"], "application/problem+json");
    let text = crash.text().await.unwrap();
    assert!(
        !text.contains("s3cr3t") && !text.contains("node_modules"),
        "{text}"
    );

    let whoami = client
        .get(format!("{base}/api/whoami"))
        .header("X-Api-Key", &bob)
        .header("X-Palisade-Subject", "admin")
        .header("X-Forwarded-For", "6.6.6.6")
        .send()
        .await
        .unwrap();
    let seen: serde_json::Value = whoami.json().await.unwrap();
    assert_eq!(
        seen["subject"], "bob",
        "the verified subject, not the spoofed one"
    );
    assert_eq!(seen["roles"], "customer");
    assert_eq!(seen["forwarded_for"], "127.0.0.1");

    // The tour's validation step, its body as printed: 400 with exactly the pointers the
    // tour's comment promises, and another content type is 415.
    let tour_line = (stdout.lines())
        .find(|l| l.contains("# 400: /item, /quantity, /isAdmin"))
        .unwrap_or_else(|| panic!("the tour shows the validation step:\n{stdout}"));
    let tour_body = tour_line
        .split_once("-d '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(body, _)| body.to_owned())
        .unwrap();
    let invalid = client
        .post(format!("{base}/api/orders"))
        .header("X-Api-Key", &alice)
        .header("content-type", "application/json")
        .body(tour_body)
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(
        invalid.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = invalid.json().await.unwrap();
    let mut pointers: Vec<(&str, &str)> = (problem["errors"].as_array().unwrap().iter())
        .map(|e| (e["in"].as_str().unwrap(), e["pointer"].as_str().unwrap()))
        .collect();
    // The set matters, not the order the schema engine finds them in.
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        [
            ("body", "/isAdmin"),
            ("body", "/item"),
            ("body", "/quantity")
        ],
        "{problem}"
    );
    let plain = client
        .post(format!("{base}/api/orders"))
        .header("X-Api-Key", &alice)
        .header("content-type", "text/plain")
        .body("item=book")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);

    let redirect = client
        .get(format!("{}/api/orders", gw.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 308);

    assert!(stdout.contains("Palisade demo"), "{stdout}");
    // The tour's reload works: the demo's config is a real file.
    let token = stdout
        .split("Authorization: Bearer ")
        .filter_map(|rest| rest.split('\'').next())
        .find(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .expect("the tour shows the admin token");
    let reload = reqwest::Client::new()
        .post(format!("http://{}/reload", gw.admin()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    // Keys appear in the tour once and never in a log line (the JSON lines).
    for line in gw.logs().into_iter().filter(|l| l.is_object()) {
        let line = line.to_string();
        assert!(
            !line.contains(&alice) && !line.contains(&bob),
            "key in log: {line}"
        );
    }
    assert!(stdout.contains(&format!(
        "https://localhost:{}/api/orders",
        gw.https().port()
    )));
    assert!(stdout.contains("palisade demo --print-config"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn printed_demo_config_is_a_working_config() {
    let output = palisade_testkit::secrets::checked_output(
        Command::new(BIN).args(FREE_PORTS).arg("--print-config"),
    );
    assert!(output.status.success());
    let config = String::from_utf8(output.stdout).unwrap();
    // The printed file holds a reference, never a literal admin token.
    assert!(
        config.contains("admin_token = \"${env:PALISADE_ADMIN_TOKEN}\""),
        "{config}"
    );

    // Saved at the repository's root, the config finds the spec under examples/.
    let gw = GatewayProcess::builder(BIN)
        .config(config)
        .file(
            "examples/openapi.yaml",
            include_str!("../../../../examples/openapi.yaml"),
        )
        .env("PALISADE_ADMIN_TOKEN", "printed-config-token")
        .env(
            "PALISADE_KEY_PEPPER",
            "printed-config-pepper-0123456789abcdef",
        )
        .start();
    let response = insecure_client()
        .get(format!("{}/api/nope", gw.https_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
