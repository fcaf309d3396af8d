//! The gateway's per-request costs, piece by piece: `cargo bench -p palisade-gateway`.
//!
//! - `canonical_path`: normalizing a typical and a tricky request path;
//! - `authn/api_key_cached`: verifying an API key already in the cache (the hot path);
//! - `authn/jwt_rs256_first`, `authn/jwt_es256_first`: verifying a token never seen
//!   before (signature and claims, keys already loaded), and `authn/jwt_es256_remembered`:
//!   the same token again (signature remembered, claims checked: `authn::verified`);
//! - `ratelimit/memory_decision`: one GCRA decision in the memory store (one key of many).
//! - `validate/schema_1kib`, `validate/body_1kib`: a 1 KiB JSON order against its schema,
//!   and the whole body check (depth scan, strict parse, schema, re-serialization).
//! - `routes/match`: finding the route of a request in a table of 24 routes (static,
//!   parameterized, catch-all, one host-specific), and `routes/miss_405`;
//! - `rescue/unauthorized`, `rescue/not_found`: rendering a rejection into its
//!   problem+json response (the one rescue point, `rescue::respond`);
//! - `log/access_line`, `log/access_line_masked`: serializing one access-log line with the
//!   gateway's formatter (`observe::json_line`) and masking it (`observe::redact::mask_line`),
//!   for a line with no secret and for one with an API key in its path.

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use palisade_gateway::bench::JwtVerifier;
use palisade_gateway::bench::canonicalize;
use palisade_gateway::config::{JwtAlgorithm, JwtConfig, JwtKeySource};
use palisade_store::{KeyService, NewKey};
use palisade_testkit::jwks::{Algorithm, JwksServer};
use secrecy::{ExposeSecret, SecretString};

fn canonical_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("canonical_path");
    group.bench_function("plain", |b| {
        b.iter(|| canonicalize(std::hint::black_box("/api/orders/12345/items")))
    });
    group.bench_function("tricky", |b| {
        b.iter(|| canonicalize(std::hint::black_box("//api/./v1/%7Euser/../orders/%41%42")))
    });
    group.finish();
}

fn authn(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // API key: create one, verify it once so it is cached, then measure.
    let url = format!("sqlite://{}", dir.path().join("keys.db").display());
    let peppers = palisade_store::KeyPeppers::new(&[SecretString::from(
        "bench-pepper-0123456789abcdef0123456789",
    )])
    .unwrap();
    let (keys, key) = runtime.block_on(async {
        let keys = KeyService::open(&url, peppers, Duration::from_secs(3600))
            .await
            .unwrap();
        let issued = keys
            .create(NewKey {
                name: "bench".into(),
                subject: "bench".into(),
                roles: vec!["r".into()],
                scopes: vec!["s".into()],
                expires_in: None,
            })
            .await
            .unwrap();
        let key = issued.key.expose_secret().to_owned();
        keys.verify(&key).await.unwrap();
        (keys, key)
    });

    // JWT: keys from a JWKS file, tokens signed by the test issuer.
    let (issuer, rs256, es256, jwks_path) = runtime.block_on(async {
        let issuer = JwksServer::start().await;
        let rs = issuer.add_key(Algorithm::RS256);
        let es = issuer.add_key(Algorithm::ES256);
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, issuer.jwks().to_string()).unwrap();
        let rs256 = issuer.sign(&rs, issuer.claims("user", "api"));
        let es256 = issuer.sign(&es, issuer.claims("user", "api"));
        (issuer, rs256, es256, path)
    });
    let config = JwtConfig {
        issuer: issuer.issuer(),
        audiences: vec!["api".into()],
        algorithms: vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256],
        keys: JwtKeySource::JwksFile(jwks_path),
        roles_claim: "roles".into(),
        leeway: Duration::from_secs(30),
        max_token_bytes: 8192,
        jwks_refresh: Duration::from_secs(600),
        jwks_cooldown: Duration::from_secs(30),
    };
    let verifier = JwtVerifier::new(&config).unwrap();
    // A verifier of its own per iteration (built outside the timing): the token is new to it.
    let fresh = || JwtVerifier::new(&config).unwrap();

    let mut group = c.benchmark_group("authn");
    group.bench_function("api_key_cached", |b| {
        b.to_async(&runtime)
            .iter(|| async { keys.verify(&key).await.unwrap() })
    });
    for (name, token) in [("jwt_rs256_first", &rs256), ("jwt_es256_first", &es256)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_batched(
                fresh,
                |verifier| async move { verifier.verify(token).await.unwrap() },
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("jwt_es256_remembered", |b| {
        b.to_async(&runtime)
            .iter(|| async { verifier.verify(&es256).await.unwrap() })
    });
    group.finish();
}

fn ratelimit(c: &mut Criterion) {
    use palisade_gateway::bench::Quota;
    use palisade_gateway::bench::{Check, MemoryStore};
    let store = MemoryStore::new(1_000_000);
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1), None).unwrap();
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("route|policy|ip|10.0.{}.{}", i / 256, i % 256))
        .collect();
    let mut i = 0;
    c.bench_function("ratelimit/memory_decision", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            store.check_all(&[Check::take(keys[i].as_str(), quota)])
        })
    });
}

/// A realistic 1 KiB order: the whole per-request cost of the body check (depth scan,
/// strict parse, schema, re-serialization) and the schema alone.
fn validation(c: &mut Criterion) {
    use palisade_gateway::bench::depth;
    use palisade_gateway::bench::parse_strict;
    use palisade_gateway::bench::{Dialect, Schema};
    let schema = Schema::compile(
        &serde_json::json!({
            "type": "object",
            "required": ["customer", "items", "shipping"],
            "properties": {
                "customer": {"type": "string", "format": "email", "maxLength": 254},
                "orderedAt": {"type": "string", "format": "date-time"},
                "reference": {"type": "string", "format": "uuid"},
                "note": {"type": "string", "maxLength": 500},
                "shipping": {
                    "type": "object",
                    "required": ["street", "city", "postcode"],
                    "properties": {
                        "street": {"type": "string", "maxLength": 100},
                        "city": {"type": "string", "maxLength": 60},
                        "postcode": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"}
                    }
                },
                "items": {
                    "type": "array", "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["sku", "quantity"],
                        "properties": {
                            "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                            "quantity": {"type": "integer", "format": "int32", "minimum": 1},
                            "gift": {"type": "boolean"}
                        }
                    }
                }
            }
        }),
        Dialect::Draft202012,
        true,
    )
    .unwrap();
    let items: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"sku": format!("ABC-{i:04}"), "quantity": i + 1, "gift": i % 2 == 0}))
        .collect();
    let body = serde_json::json!({
        "customer": "alice@example.com",
        "orderedAt": "2026-11-28T10:00:00Z",
        "reference": "6f1c1a52-3b1e-4c1a-9d2e-0a4b5c6d7e8f",
        "note": "Leave at the door, please; ring twice. ".repeat(4),
        "shipping": {"street": "1 Main Street", "city": "Springfield", "postcode": "AB1 2CD"},
        "items": items,
    })
    .to_string();
    assert!((900..1300).contains(&body.len()), "{} bytes", body.len());
    let document = parse_strict(body.as_bytes()).unwrap();
    assert!(schema.is_valid(&document));
    c.bench_function("validate/schema_1kib", |b| {
        b.iter(|| schema.is_valid(&document))
    });
    c.bench_function("validate/body_1kib", |b| {
        b.iter(|| {
            assert!(!depth::exceeds(body.as_bytes(), 64));
            let document = parse_strict(body.as_bytes()).unwrap();
            assert!(schema.is_valid(&document));
            serde_json::to_vec(&document).unwrap()
        })
    });
}

/// A realistic route table: what a request costs to route once its path is canonical.
fn routes(c: &mut Criterion) {
    use http::Method;
    use palisade_gateway::bench::Router;
    use palisade_gateway::config::Config;
    let mut toml = String::from(
        "[server]\nhttp = \"127.0.0.1:8080\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n",
    );
    let resources = [
        "orders", "users", "invoices", "products", "carts", "payments",
    ];
    for (i, resource) in resources.iter().enumerate() {
        for (suffix, methods) in [
            ("", r#"["GET", "POST"]"#),
            ("/{id}", r#"["GET", "PUT", "DELETE"]"#),
            ("/{id}/items", r#"["GET"]"#),
        ] {
            toml.push_str(&format!(
                "[[route]]\nname = \"r{i}{}\"\npath = \"/api/v1/{resource}{suffix}\"\n\
                 methods = {methods}\nupstream = \"app\"\nauth = \"public\"\n",
                suffix.len()
            ));
        }
    }
    toml.push_str(
        "[[route]]\nname = \"static\"\npath = \"/static/{*rest}\"\nmethods = [\"GET\"]\n\
         upstream = \"app\"\nauth = \"public\"\n\
         [[route]]\nname = \"admin\"\npath = \"/api/v1/orders/{id}\"\nhost = \"admin.example.com\"\n\
         methods = [\"PATCH\"]\nupstream = \"app\"\nauth = \"public\"\n",
    );
    let config = Config::from_str(&toml, std::path::Path::new("bench.toml")).unwrap();
    let router = Router::build(&config.routes).unwrap();
    let path = canonicalize("/api/v1/payments/12345").unwrap();
    assert!(
        router
            .find(Some("api.example.com"), &Method::GET, &path)
            .is_ok()
    );
    let mut group = c.benchmark_group("routes");
    group.bench_function("match", |b| {
        b.iter(|| {
            router.find(
                Some("api.example.com"),
                &Method::GET,
                std::hint::black_box(&path),
            )
        })
    });
    group.bench_function("miss_405", |b| {
        b.iter(|| router.find(None, &Method::PATCH, std::hint::black_box(&path)))
    });
    group.finish();
}

/// A rejection rendered into its response: status, problem+json body with the request id,
/// headers (`WWW-Authenticate` for a 401). What every refused request costs to answer.
fn rescue(c: &mut Criterion) {
    use http::Method;
    use palisade_gateway::bench::Rejection;
    use palisade_gateway::bench::respond;
    use palisade_gateway::bench::{ConnInfo, RequestCtx};
    use palisade_gateway::observe::Metrics;
    let ctx = RequestCtx::new(
        ConnInfo {
            peer: "127.0.0.1:40000".parse().unwrap(),
            tls: false,
        },
        Method::GET,
    );
    let metrics = Metrics::new();
    let mut group = c.benchmark_group("rescue");
    group.bench_function("unauthorized", |b| {
        b.iter(|| {
            respond(
                Rejection::Unauthorized {
                    token_given: true,
                    guess: true,
                },
                &ctx,
                &metrics,
            )
        })
    });
    group.bench_function("not_found", |b| {
        b.iter(|| respond(Rejection::NotFound, &ctx, &metrics))
    });
    group.finish();
}

/// One access-log line as the gateway writes it: its JSON formatter, as in
/// `observe::init_logging`, then the masking every line goes through. The line is handed
/// to a sink here instead of the writer thread's queue.
fn log_line(c: &mut Criterion) {
    use palisade_gateway::observe::redact::mask_line;
    use tracing_subscriber::layer::SubscriberExt as _;

    struct Sink;
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            // As `redact::MaskedLine` does: mask, then copy into the writer's queue.
            let line = match std::str::from_utf8(buf) {
                Ok(line) => mask_line(line),
                Err(_) => std::borrow::Cow::Borrowed(""),
            };
            std::hint::black_box(line.as_bytes().to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .event_format(palisade_gateway::observe::json_line::JsonLine)
            .with_writer(|| Sink),
    );
    let client_ip: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    // The fields of `observe::access` (the line written for every request).
    let emit = |path: &str| {
        tracing::info!(
            event = "request",
            request_id = "5f3c9a1e000000001234",
            client_ip = %client_ip,
            method = "GET",
            route = "orders",
            subject = "svc-billing",
            key_id = "02eaGUt6L2Ll",
            path = %path,
            status = 200u16,
            latency_ms = 0.734,
            bytes = 57u64,
            upstream = "app",
            rate_limit_fallback = Option::<&str>::None,
            completed = true,
        );
    };
    let masked = "/api/orders/pal_02eaGUt6L2Ll_aUDtlyH4qgvx6bx4m0UchcH7sVGpECsvwGavag7zIki";
    tracing::subscriber::with_default(subscriber, || {
        let mut group = c.benchmark_group("log");
        group.bench_function("access_line", |b| {
            b.iter(|| emit("/api/orders/12345?page=***"))
        });
        group.bench_function("access_line_masked", |b| b.iter(|| emit(masked)));
        group.finish();
    });
}

criterion_group!(
    benches,
    canonical_path,
    routes,
    authn,
    ratelimit,
    validation,
    rescue,
    log_line
);
criterion_main!(benches);
