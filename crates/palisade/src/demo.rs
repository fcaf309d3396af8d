//! `palisade demo`: the gateway in front of the bundled sample API, with a guided tour.
//!
//! The demo config is the same TOML a user would write; `--print-config` prints it so it
//! can be saved and served with `palisade serve` (next to `palisade sample-api`).

use std::net::SocketAddr;
use std::path::Path;

use palisade_gateway::{Config, Server};

use crate::Failure;

#[derive(clap::Args)]
pub struct DemoArgs {
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
fn demo_config(args: &DemoArgs, api: SocketAddr, admin_token: &str) -> String {
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

[[upstream]]
name = "sample"
url = "http://{api}"

[[route]]
name = "login"
path = "/api/login"
methods = ["POST"]
upstream = "sample"
auth = "public"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "sample"
auth = "public"

[[route]]
name = "order"
path = "/api/orders/{{id}}"
methods = ["GET", "PUT", "DELETE"]
upstream = "sample"
auth = "public"

[[route]]
name = "tasks"
path = "/api/tasks"
methods = ["GET", "POST"]
upstream = "sample"
auth = "public"

[[route]]
name = "whoami"
path = "/api/whoami"
methods = ["GET"]
upstream = "sample"
auth = "public"

[[route]]
name = "crash"
path = "/api/debug/crash"
methods = ["GET"]
upstream = "sample"
auth = "public"
"#,
        http = args.http,
        https = args.https,
        admin = args.admin,
    )
}

pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.print_config {
        println!(
            "{}",
            demo_config(&args, args.api, "${env:PALISADE_ADMIN_TOKEN}")
        );
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

    let admin_token = random_token();
    let text = demo_config(&args, api, &admin_token);
    let config = Config::from_str(&text, Path::new("demo.toml"))
        .map_err(|e| Failure::Config(e.to_string()))?;
    let server = Server::start(config)
        .await
        .map_err(|e| Failure::Config(e.to_string()))?;
    let bound = server.bound();
    println!(
        "{}",
        tour(
            bound.http.unwrap_or(args.http),
            bound.https.unwrap_or(args.https),
            bound.admin.unwrap_or(args.admin),
            api,
            &admin_token
        )
    );
    server
        .run_until_signalled()
        .await
        .map_err(|e| Failure::Config(format!("cannot install signal handlers: {e}")))
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
) -> String {
    let base = format!("https://localhost:{}", https.port());
    format!(
        r#"
Palisade demo: the gateway on {https} (TLS, self-signed) and {http} (redirects only),
in front of the sample API on {api}. The sample API trusts whatever it is sent; every
layer below is the gateway's doing. -k accepts the self-signed certificate.

 1  TLS everywhere: plain http only redirects (308), https responses carry HSTS
      curl -si http://localhost:{http_port}/api/orders | head -3
      curl -ksi {base}/api/orders | grep -i strict-transport

 2  One canonical path: tricks are normalized once or refused with 400
      curl -ksi --path-as-is '{base}/api/tasks/../orders/1' | head -1          # routed as /api/orders/1
      curl -ksi --path-as-is '{base}/api/orders%2F1' | head -1                 # encoded slash: 400
      curl -ksi --path-as-is '{base}/api/../../etc/passwd' | head -1           # above the root: 400
      curl -ksi -X DELETE {base}/api/orders | head -1                          # 405 with Allow

 3  Identity and forwarding headers come from the gateway, never from the client
      curl -ks -H 'X-Palisade-Subject: admin' -H 'X-Forwarded-For: 6.6.6.6' {base}/api/whoami

 4  Safe errors: the API's stack trace and fingerprints never reach the client
      curl -ksi {base}/api/debug/crash

 5  Limits: a 2 MiB body against the 1 MiB limit is refused before the API sees it
      head -c 2097152 /dev/zero | curl -ksi -X POST -H 'Content-Type: application/json' --data-binary @- {base}/api/tasks | head -1

 6  Operations: metrics, readiness, and a reload that never takes a bad config
      curl -s http://{admin}/metrics | grep palisade_requests
      curl -s http://{admin}/readyz
      curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/reload

Every request above appears below as one JSON log line. Authentication, authorization,
rate limits and schema validation join this tour as they land.
Write this config out with `palisade demo --print-config > palisade.toml`.
Stop with Ctrl-C.
"#,
        http_port = http.port(),
    )
}
