//! `palisade demo`: the gateway in front of the bundled sample API, with a guided tour.
//!
//! The demo config is the same TOML a user would write; `--print-config` prints it so it
//! can be saved and served with `palisade serve` (next to `palisade sample-api`).

use std::net::SocketAddr;
use std::path::Path;

use palisade_gateway::{Config, Server};

use crate::Failure;

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Plain-HTTP listener (redirects to https).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// HTTPS listener (self-signed certificate).
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    /// Admin listener (/healthz, /readyz, /metrics, /reload).
    #[arg(long, default_value = "127.0.0.1:9090")]
    admin: SocketAddr,
    /// Where the sample API listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    api: SocketAddr,
    /// Print the demo config (palisade.toml) and exit.
    #[arg(long)]
    print_config: bool,
}

/// The demo's palisade.toml, for the given addresses.
fn demo_config(args: &DemoArgs, api: SocketAddr, secrets: &DemoSecrets) -> String {
    format!(
        r#"# Palisade demo config: the gateway in front of the bundled sample API.
# Run the API with `palisade sample-api --listen {api}` and this file with
# `PALISADE_ADMIN_TOKEN=... palisade serve -c palisade.toml`.

[server]
http = "{http}"
https = "{https}"
admin = "{admin}"
admin_token = "{admin_token}"

[server.tls]
self_signed = true                  # development only: use cert/key files in production
hsts = "max-age=31536000"

[limits]
max_body = "1MiB"
request_timeout = "10s"

[rate_limit]
# Ten failed logins (or wrong keys) lock out that address, and that account from any address.
auth_failures = {{ limit = 10, window = "15m", per = ["ip", "account"] }}

[store]
url = "sqlite://{store}"
key_pepper = "{pepper}"

[[upstream]]
name = "sample"
url = "http://{api}"

# Every route, its schemas and its policy (roles, owner rules, rate limits, the login) come
# from the OpenAPI spec: each operation's `x-palisade` holds what a [[route]] would. Requests
# that do not match the spec get 400 with a list of what was wrong; paths and methods
# outside it get 404 and 405.
[openapi]
spec = "{spec}"
"#,
        http = args.http,
        https = args.https,
        admin = args.admin,
        admin_token = secrets.admin_token,
        store = secrets.store,
        pepper = secrets.pepper,
        spec = secrets.spec,
    )
}

/// The sample API's OpenAPI spec, which the demo config's routes come from.
const SPEC: &str = include_str!("../../../examples/openapi.yaml");

pub(crate) async fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.print_config {
        let references = DemoSecrets {
            admin_token: "${env:PALISADE_ADMIN_TOKEN}".to_owned(),
            pepper: "${env:PALISADE_KEY_PEPPER}".to_owned(),
            store: "palisade.db".to_owned(),
            spec: "examples/openapi.yaml".to_owned(),
        };
        println!("{}", demo_config(&args, args.api, &references));
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(args.api).await.map_err(|e| {
        Failure::Config(format!(
            "cannot start the sample API on {}: {e} (choose another address with --api)",
            args.api
        ))
    })?;
    let api = listener
        .local_addr()
        .map_err(|e| Failure::Config(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = palisade_sample_api::serve(listener).await {
            tracing::error!(event = "sample_api_failed", error = %error);
        }
    });

    // The demo's key store lives in a fresh directory for this run only.
    let dir = std::env::temp_dir().join(format!("palisade-demo-{}", random_token()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Config(format!("cannot create {}: {e}", dir.display())))?;
    // The run's secrets go in files beside the config (readable by this user only), and
    // the config refers to them, as a production config refers to mounted secrets.
    let admin_token = random_token();
    let pepper = format!("{}{}", random_token(), random_token());
    for (name, value) in [("admin-token", &admin_token), ("key-pepper", &pepper)] {
        write_private(&dir.join(name), value)
            .map_err(|e| Failure::Config(format!("cannot write {name}: {e}")))?;
    }
    let secrets = DemoSecrets {
        admin_token: "${file:admin-token}".to_owned(),
        pepper: "${file:key-pepper}".to_owned(),
        store: dir.join("demo.db").display().to_string(),
        spec: dir.join("openapi.yaml").display().to_string(),
    };
    std::fs::write(dir.join("openapi.yaml"), SPEC)
        .map_err(|e| Failure::Config(format!("cannot write the spec to {}: {e}", dir.display())))?;
    // Written to a file so that a reload has something to read, and the user something
    // to edit.
    let config_path = dir.join("palisade.toml");
    write_private(&config_path, &demo_config(&args, api, &secrets))
        .map_err(|e| Failure::Config(format!("cannot write {}: {e}", config_path.display())))?;
    let config = Config::load(&config_path).map_err(|e| Failure::Config(e.to_string()))?;
    let server = Server::start(config)
        .await
        .map_err(|e| Failure::Config(e.to_string()))?;
    let keys = demo_keys(&server).await?;
    let bound = server.bound();
    println!(
        "{}",
        tour(
            bound.http.unwrap_or(args.http),
            bound.https.unwrap_or(args.https),
            bound.admin.unwrap_or(args.admin),
            api,
            &admin_token,
            &keys,
            &config_path,
        )
    );
    let result = server
        .run_until_signalled()
        .await
        .map_err(|e| Failure::Config(format!("cannot install signal handlers: {e}")));
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// The references to a demo run's secrets (files it made up, or, with `--print-config`,
/// environment variables), and where its store and spec are.
struct DemoSecrets {
    admin_token: String,
    pepper: String,
    store: String,
    /// The OpenAPI spec (not a secret: it travels with the paths above).
    spec: String,
}

/// The demo's callers: two customers and an admin, one API key each.
struct DemoKeys {
    alice: String,
    bob: String,
    admin: String,
}

async fn demo_keys(server: &palisade_gateway::ServerHandle) -> Result<DemoKeys, Failure> {
    use secrecy::ExposeSecret;
    let keys = server
        .keys()
        .ok_or_else(|| Failure::Config("the demo config has no [store]".to_owned()))?;
    let mut issued = Vec::new();
    for (subject, role) in [
        ("alice", "customer"),
        ("bob", "customer"),
        ("admin", "admin"),
    ] {
        let new = palisade_store::NewKey {
            name: format!("demo-{subject}"),
            subject: subject.to_owned(),
            roles: vec![role.to_owned()],
            scopes: vec!["orders".to_owned(), "tasks".to_owned()],
            expires_in: None,
        };
        let key = keys
            .create(new)
            .await
            .map_err(|e| Failure::Config(format!("cannot create the demo keys: {e}")))?;
        issued.push(key.key.expose_secret().to_owned());
    }
    let [alice, bob, admin] = <[String; 3]>::try_from(issued)
        .map_err(|_| Failure::Config("demo keys missing".to_owned()))?;
    Ok(DemoKeys { alice, bob, admin })
}

/// 128 bits from the OS RNG, hex: the demo's admin token, valid for this run only.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if let Some(provider) = rustls::crypto::CryptoProvider::get_default() {
        let _ = provider.secure_random.fill(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tour(
    http: SocketAddr,
    https: SocketAddr,
    admin: SocketAddr,
    api: SocketAddr,
    token: &str,
    keys: &DemoKeys,
    config_path: &Path,
) -> String {
    let base = format!("https://localhost:{}", https.port());
    let DemoKeys {
        alice,
        bob,
        admin: admin_key,
    } = keys;
    format!(
        r#"
Palisade demo: the gateway on {https} (TLS, self-signed) and {http} (redirects only),
in front of the sample API on {api}. The sample API trusts whatever it is sent; every
layer below is the gateway's doing. -k accepts the self-signed certificate.

This run's API keys (shown once; stored only as HMAC hashes):
      export ALICE={alice}
      export BOB={bob}
      export ADMIN={admin_key}

 1  TLS everywhere: plain http only redirects (308), https responses carry HSTS
      curl -si http://localhost:{http_port}/api/orders | head -3
      curl -ksi -H "X-Api-Key: $ALICE" {base}/api/orders | grep -i strict-transport

 2  Authentication: private unless marked public; 401 without a valid key
      curl -ksi {base}/api/orders | head -1                                   # 401
      curl -ksi -H 'X-Api-Key: pal_forgedforged_x' {base}/api/orders | head -1  # 401
      curl -ks -H "Authorization: Bearer $ALICE" {base}/api/orders             # 200
      curl -ks -X POST -H 'Content-Type: application/json' -d '{{"username":"alice","password":"wonderland"}}' {base}/api/login   # public

 3  Authorization: roles per route, and objects only for their owners (BOLA/IDOR)
      curl -ks -H "X-Api-Key: $BOB" {base}/api/orders                          # only bob's orders
      curl -ksi -H "X-Api-Key: $BOB" {base}/api/orders/1 | head -1             # alice's order: 404
      curl -ksi -H "X-Api-Key: $BOB" -X DELETE {base}/api/orders/1 | head -1   # 404, and it is still there:
      curl -ks -H "X-Api-Key: $ALICE" {base}/api/orders/1                      # 200 for its owner
      curl -ks -H "X-Api-Key: $ADMIN" {base}/api/orders/1                      # 200: admin bypass (logged)
      curl -ksi -H "X-Api-Key: $ALICE" -X PUT -H 'Content-Type: application/json' -d '{{"ownerId":"bob"}}' {base}/api/orders/1 | head -1   # 400: mass assignment

 4  Rate limits: the sixth login attempt in 15 minutes from one address gets 429;
    ten failed logins (or wrong keys) lock out the address, and ten failed logins for one
    account lock it from every address; both cool down, one more try per 90 s
      for i in 1 2 3 4 5 6; do curl -ksi -X POST -H 'Content-Type: application/json' -d '{{"username":"alice","password":"guess"}}' {base}/api/login | grep -iE '^HTTP|^retry-after|^ratelimit'; done

 5  One canonical path: tricks are normalized once or refused with 400
      curl -ksi -H "X-Api-Key: $ALICE" --path-as-is '{base}/api/tasks/../orders/1' | head -1   # routed as /api/orders/1
      curl -ksi --path-as-is '{base}/api/orders%2F1' | head -1                 # encoded slash: 400
      curl -ksi --path-as-is '{base}/api/../../etc/passwd' | head -1           # above the root: 400
      curl -ksi -X DELETE {base}/api/orders | head -1                          # 405 with Allow

 6  Identity comes from the gateway, never from the client
      curl -ks -H "X-Api-Key: $BOB" -H 'X-Palisade-Subject: admin' -H 'X-Forwarded-For: 6.6.6.6' {base}/api/whoami

 7  Safe errors: the API's stack trace and fingerprints never reach the client
      curl -ksi -H "X-Api-Key: $ALICE" {base}/api/debug/crash

 8  Validation against the OpenAPI spec: 400 with where and which rule (never the value),
    415 for another content type, 413 past the size limit, all before the API sees a byte
      curl -ks -X POST -H "X-Api-Key: $ALICE" -H 'Content-Type: application/json' -d '{{"item":"","quantity":"two","isAdmin":true}}' {base}/api/orders   # 400: /item, /quantity, /isAdmin
      curl -ksi -X POST -H "X-Api-Key: $ALICE" -H 'Content-Type: text/plain' -d 'item=book' {base}/api/orders | head -1   # 415
      head -c 2097152 /dev/zero | curl -ksi --http1.1 -H "X-Api-Key: $ALICE" -X POST -H 'Content-Type: application/json' --data-binary @- {base}/api/tasks | head -1   # 413

 9  Operations: metrics, readiness, keys, and a reload that never takes a bad config
      curl -s http://{admin}/metrics | grep palisade_requests
      curl -s http://{admin}/readyz
      curl -s -H 'Authorization: Bearer {token}' http://{admin}/keys
      curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/reload

Every request above appears below as one JSON log line (failed authentications as
`auth_failed`, `forbidden`, `owner_violation`, `rate_limited` and `invalid_request`
events, never with the key or the values sent).
This run's config is {config}: edit it, then reload (SIGHUP or POST /reload above).
Write a reusable one with `palisade demo --print-config > palisade.toml`.
Stop with Ctrl-C.
"#,
        http_port = http.port(),
        config = config_path.display(),
    )
}
