//! Checklist #9, secrets rotate without downtime: the real gateway with its key pepper and
//! JWT HS secret in `${file:…}` files, rotated by editing the files and the config and
//! reloading (POST /reload, then SIGHUP), never restarting. During the window `[new, old]`
//! both generations of credentials work; after it only the new pepper and secret are
//! configured, keys made under the old pepper still work (their use re-hashed them) and
//! tokens signed with the old secret are refused. On PostgreSQL, a key upgraded by one
//! instance keeps working on another that has already dropped the old pepper.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;

use palisade_testkit::gateway::log_event;
use palisade_testkit::jwks::{JwksServer, SigningKey};
use palisade_testkit::{GatewayProcess, PostgresServer, RecordingUpstream};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const AUDIENCE: &str = "orders-api";

/// A fresh random secret (48 hex characters), made at test time: none is committed.
fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TOML value: one `${file:secrets/NAME}` reference, or a list of them.
fn refs(names: &[&str]) -> String {
    let refs: Vec<String> = (names.iter())
        .map(|n| format!("\"${{file:secrets/{n}}}\""))
        .collect();
    match &refs[..] {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn config(upstream: &RecordingUpstream, issuer: &str, peppers: &[&str], jwt: &[&str]) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${{file:secrets/admin}}"

[store]
url = "sqlite://keys.db"
key_pepper = {peppers}

[auth.jwt]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["HS256"]
secret = {jwt}

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
"#,
        peppers = refs(peppers),
        jwt = refs(jwt),
        url = upstream.url()
    )
}

/// An HS256 token for `subject`, signed with `secret`.
fn token(issuer: &JwksServer, secret: &str, subject: &str) -> String {
    issuer.sign_with_header(
        json!({"alg": "HS256", "typ": "JWT"}),
        issuer.claims(subject, AUDIENCE),
        SigningKey::Hmac(secret.as_bytes()),
    )
}

async fn call(gw: &GatewayProcess, header: (&str, String)) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/api/orders", gw.http_url()))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap()
}

fn with_key(key: &str) -> (&'static str, String) {
    ("x-api-key", key.to_owned())
}

fn with_token(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// 200, and the upstream saw `subject`.
async fn assert_ok(
    gw: &GatewayProcess,
    upstream: &RecordingUpstream,
    header: (&str, String),
    subject: &str,
    what: &str,
) {
    upstream.clear();
    let response = call(gw, header).await;
    assert_eq!(response.status(), 200, "{what}");
    let seen = upstream
        .last()
        .unwrap_or_else(|| panic!("{what}: not forwarded"));
    assert_eq!(seen.header("x-palisade-subject"), Some(subject), "{what}");
}

/// 401 with the one problem body every failed authentication gets, and nothing forwarded.
async fn assert_refused(
    gw: &GatewayProcess,
    upstream: &RecordingUpstream,
    header: (&str, String),
    what: &str,
) {
    upstream.clear();
    let response = call(gw, header).await;
    assert_eq!(response.status(), 401, "{what}");
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"palisade\", error=\"invalid_token\"",
        "{what}"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401, "{what}");
    assert_eq!(
        problem["detail"], "valid credentials are required",
        "{what}"
    );
    assert!(upstream.last().is_none(), "{what}: forwarded");
}

async fn reload(gw: &GatewayProcess, admin_token: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 200, "{}", response.text().await.unwrap());
}

/// `pepper` of key `id` as the admin API lists it.
async fn pepper_of(gw: &GatewayProcess, admin_token: &str, id: &str) -> String {
    let list: Value = reqwest::Client::new()
        .get(format!("{}/keys", gw.admin_url()))
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = (list["keys"].as_array().unwrap().iter())
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} not listed: {list}"));
    key["pepper"].as_str().unwrap().to_owned()
}

/// Waits until key `id` is listed with `pepper` (the re-hash runs beside the request).
async fn wait_for_pepper(gw: &GatewayProcess, admin_token: &str, id: &str, pepper: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = pepper_of(gw, admin_token, id).await;
        if now == pepper {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "key {id}: pepper {now}, expected {pepper}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `palisade keys list` (table) against the gateway's config.
fn cli_list(gw: &GatewayProcess) -> String {
    let out = palisade_testkit::secrets::checked_output(
        Command::new(BIN)
            .arg("keys")
            .arg("-c")
            .arg(gw.config_path())
            .arg("list"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The table row of key `id`.
fn row<'a>(table: &'a str, id: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not in\n{table}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn pepper_and_jwt_secret_rotate_across_reloads_without_downtime() {
    let upstream = RecordingUpstream::start().await;
    let issuer = JwksServer::start().await; // only for claims and signing
    let admin = random_secret();
    let (pepper_a, pepper_b) = (random_secret(), random_secret());
    let (s1, s2) = (random_secret(), random_secret());
    let gw = GatewayProcess::builder(BIN)
        .config(config(&upstream, &issuer.issuer(), &["pepper"], &["jwt"]))
        .secret_file("secrets/admin", &admin)
        .secret_file("secrets/pepper", &pepper_a)
        .secret_file("secrets/jwt", &s1)
        .start();

    // Generation 1: pepper A, secret S1.
    let (old_key, old_id) =
        common::create_key(&gw, &admin, json!({"name": "old", "subject": "svc-old"})).await;
    let old_token = token(&issuer, &s1, "alice");
    assert_ok(&gw, &upstream, with_key(&old_key), "svc-old", "old key").await;
    assert_ok(&gw, &upstream, with_token(&old_token), "alice", "S1 token").await;
    assert_eq!(pepper_of(&gw, &admin, &old_id).await, "current");
    assert!(row(&cli_list(&gw), &old_id).ends_with("current"));

    // Rotation window: the files now hold the new secrets, the old ones move beside them,
    // and the config lists both, new first. No restart.
    gw.write_secret_file("secrets/pepper", &pepper_b);
    gw.write_secret_file("secrets/pepper-old", &pepper_a);
    gw.write_secret_file("secrets/jwt", &s2);
    gw.write_secret_file("secrets/jwt-old", &s1);
    gw.write_config(&config(
        &upstream,
        &issuer.issuer(),
        &["pepper", "pepper-old"],
        &["jwt", "jwt-old"],
    ));
    reload(&gw, &admin).await;
    let table = cli_list(&gw);
    let old_row = row(&table, &old_id);
    assert!(old_row.contains(" old:"), "{table}");
    let old_fp = old_row.rsplit_once("old:").unwrap().1.to_owned();
    assert_eq!(old_fp.len(), 16, "{table}");
    assert!(
        !table.contains(&pepper_a) && !table.contains(&pepper_b),
        "a pepper in the list"
    );

    assert_ok(
        &gw,
        &upstream,
        with_key(&old_key),
        "svc-old",
        "old key, window",
    )
    .await;
    assert_ok(
        &gw,
        &upstream,
        with_token(&old_token),
        "alice",
        "S1 token, window",
    )
    .await;
    let (new_key, new_id) =
        common::create_key(&gw, &admin, json!({"name": "new", "subject": "svc-new"})).await;
    assert_ok(
        &gw,
        &upstream,
        with_key(&new_key),
        "svc-new",
        "new key, window",
    )
    .await;
    let new_token = token(&issuer, &s2, "bob");
    assert_ok(
        &gw,
        &upstream,
        with_token(&new_token),
        "bob",
        "S2 token, window",
    )
    .await;
    let stranger = token(&issuer, &random_secret(), "mallory");
    assert_refused(
        &gw,
        &upstream,
        with_token(&stranger),
        "unknown secret, window",
    )
    .await;
    // Its use moved the old key to the new pepper; the operator sees nothing left on A.
    wait_for_pepper(&gw, &admin, &old_id, "current").await;
    assert_eq!(pepper_of(&gw, &admin, &new_id).await, "current");
    let table = cli_list(&gw);
    assert!(!table.contains("old:"), "{table}");
    assert!(
        gw.logs()
            .iter()
            .any(|l| log_event(l) == Some("key_rehashed")),
        "the re-hash is logged"
    );

    // End of the window: only B and S2, reloaded by SIGHUP.
    std::fs::remove_file(gw.dir().join("secrets/pepper-old")).unwrap();
    std::fs::remove_file(gw.dir().join("secrets/jwt-old")).unwrap();
    gw.write_config(&config(&upstream, &issuer.issuer(), &["pepper"], &["jwt"]));
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (gw.logs().iter())
        .filter(|l| log_event(l) == Some("config_reloaded"))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "SIGHUP reload not logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ok(
        &gw,
        &upstream,
        with_key(&old_key),
        "svc-old",
        "upgraded old key, after",
    )
    .await;
    assert_ok(
        &gw,
        &upstream,
        with_key(&new_key),
        "svc-new",
        "new key, after",
    )
    .await;
    assert_ok(
        &gw,
        &upstream,
        with_token(&new_token),
        "bob",
        "S2 token, after",
    )
    .await;
    assert_refused(&gw, &upstream, with_token(&old_token), "S1 token, after").await;

    // No secret reached the log.
    let stdout = gw.stdout();
    for secret in [&admin, &pepper_a, &pepper_b, &s1, &s2] {
        assert!(!stdout.contains(secret.as_str()), "a secret in the log");
    }
    assert!(!stdout.contains(old_key.rsplit_once('_').unwrap().1));
}

/// A bad pepper list in a reload is refused with the element named, and the running config
/// (and its peppers) stays in force.
#[tokio::test(flavor = "multi_thread")]
async fn a_bad_pepper_list_never_replaces_a_good_one() {
    let upstream = RecordingUpstream::start().await;
    let issuer = JwksServer::start().await;
    let admin = random_secret();
    let pepper = random_secret();
    let s1 = random_secret();
    let gw = GatewayProcess::builder(BIN)
        .config(config(&upstream, &issuer.issuer(), &["pepper"], &["jwt"]))
        .secret_file("secrets/admin", &admin)
        .secret_file("secrets/pepper", &pepper)
        .secret_file("secrets/jwt", &s1)
        .start();
    let (key, _) = common::create_key(&gw, &admin, json!({"name": "k", "subject": "svc"})).await;

    gw.write_secret_file("secrets/same", &pepper);
    gw.write_config(&config(
        &upstream,
        &issuer.issuer(),
        &["pepper", "same"],
        &["jwt"],
    ));
    let response = reqwest::Client::new()
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(body.contains("store.key_pepper[1]"), "{body}");
    assert!(!body.contains(&pepper), "a pepper in the answer");
    assert_ok(
        &gw,
        &upstream,
        with_key(&key),
        "svc",
        "key after a refused reload",
    )
    .await;
}

fn pg_config(upstream: &RecordingUpstream, database: &PostgresServer, peppers: &[&str]) -> String {
    format!(
        r#"
[server]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "${{file:secrets/admin}}"

[store]
url = "{database}"
key_pepper = {peppers}

[[upstream]]
name = "app"
url = "{url}"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "app"
"#,
        database = database.url(),
        peppers = refs(peppers),
        url = upstream.url()
    )
}

/// Two instances on one PostgreSQL: both start on pepper A; both move to `[B, A]`; the key
/// is used on instance 1 (re-hashed under B); instance 2, which had the key cached under A,
/// then drops A and still accepts the key.
#[tokio::test(flavor = "multi_thread")]
async fn pepper_rotation_across_instances_on_postgres() {
    let database = PostgresServer::start();
    let upstream = RecordingUpstream::start().await;
    let admin = random_secret();
    let (pepper_a, pepper_b) = (random_secret(), random_secret());
    let start = || {
        GatewayProcess::builder(BIN)
            .config(pg_config(&upstream, &database, &["pepper"]))
            .secret_file("secrets/admin", &admin)
            .secret_file("secrets/pepper", &pepper_a)
            .start()
    };
    let (one, two) = (start(), start());
    let (key, id) =
        common::create_key(&one, &admin, json!({"name": "shared", "subject": "svc"})).await;
    assert_ok(&one, &upstream, with_key(&key), "svc", "instance 1, A").await;
    assert_ok(&two, &upstream, with_key(&key), "svc", "instance 2, A").await;

    for gw in [&one, &two] {
        gw.write_secret_file("secrets/pepper", &pepper_b);
        gw.write_secret_file("secrets/pepper-old", &pepper_a);
        gw.write_config(&pg_config(&upstream, &database, &["pepper", "pepper-old"]));
        reload(gw, &admin).await;
    }
    assert!(pepper_of(&two, &admin, &id).await.starts_with("old:"));
    assert_ok(&one, &upstream, with_key(&key), "svc", "instance 1, [B, A]").await;
    wait_for_pepper(&two, &admin, &id, "current").await;

    two.write_config(&pg_config(&upstream, &database, &["pepper"]));
    reload(&two, &admin).await;
    assert_ok(&two, &upstream, with_key(&key), "svc", "instance 2, B only").await;
    // A key the old pepper alone would verify does not exist any more.
    let (fresh, _) = common::create_key(
        &two,
        &admin,
        json!({"name": "fresh", "subject": "svc-fresh"}),
    )
    .await;
    assert_ok(
        &one,
        &upstream,
        with_key(&fresh),
        "svc-fresh",
        "instance 1, new key",
    )
    .await;
}

/// A reload that opens a new key store and then fails to build leaves the running
/// pipeline's store, and its revocation feed, as they were: a key revoked afterwards is
/// refused within the one-second bound, not after the cache's 30-second safety net.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_reload_keeps_revocations_arriving() {
    let database = PostgresServer::start();
    let upstream = RecordingUpstream::start().await;
    let admin = random_secret();
    let good = pg_config(&upstream, &database, &["pepper"]);
    let gw = GatewayProcess::builder(BIN)
        .config(good.clone())
        .secret_file("secrets/admin", &admin)
        .secret_file("secrets/pepper", random_secret())
        .file("schemas/broken.json", r#"{"type": 5}"#)
        .start();
    common::wait_for_message(&gw, "listening for key revocations");
    let (key, id) = common::create_key(&gw, &admin, json!({"name": "k", "subject": "svc"})).await;
    assert_ok(
        &gw,
        &upstream,
        with_key(&key),
        "svc",
        "cached before the reload",
    )
    .await;

    // Another URL for the same database opens a new store; the broken schema then fails
    // the build, so the reload is refused after the store was opened.
    let moved = good.replace(
        &database.url(),
        &format!("{}?application_name=palisade-moved", database.url()),
    );
    gw.write_config(&format!(
        "{moved}validate = {{ body = \"schemas/broken.json\" }}\n"
    ));
    let response = reqwest::Client::new()
        .post(format!("{}/reload", gw.admin_url()))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("route[0].validate"), "{body}");
    assert_ok(
        &gw,
        &upstream,
        with_key(&key),
        "svc",
        "after the refused reload",
    )
    .await;

    gw.write_config(&good);
    let revoked = palisade_testkit::secrets::checked_output(
        Command::new(BIN)
            .args(["keys", "-c"])
            .arg(gw.config_path())
            .args(["revoke", &id]),
    );
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    // The bound is one second; five leave room for a loaded machine and stay far below
    // the 30 s after which the cache would re-read the key without the feed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = call(&gw, with_key(&key)).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "before the revocation arrives");
        assert!(
            Instant::now() < deadline,
            "the revoked key still works 5 s later: the revocation feed was lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(
        &gw,
        &upstream,
        with_key(&key),
        "revoked after the refused reload",
    )
    .await;
}
