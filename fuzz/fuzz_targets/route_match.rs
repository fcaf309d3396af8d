//! `Router::find` on fuzzed method, host and path: never panics, and every answer agrees
//! with the route table (a match names a route that lists the method and serves the host;
//! a 405 lists only other methods, sorted, without duplicates, HEAD with GET).
//!
//! The router is built once, from a config text run through the real loader.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use palisade_gateway::Config;
use palisade_gateway::path::canonicalize;
use palisade_gateway::routes::{RouteMiss, Router, STANDARD_METHODS};

const CONFIG: &str = r#"
[server]
http = "127.0.0.1:8080"

[[upstream]]
name = "api"
url = "http://127.0.0.1:3000"

[[route]]
name = "root"
path = "/"
methods = ["GET"]
upstream = "api"
auth = "public"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET", "POST"]
upstream = "api"
auth = "public"

[[route]]
name = "orders-slash"
path = "/api/orders/"
methods = ["GET"]
upstream = "api"
auth = "public"

[[route]]
name = "order"
path = "/api/orders/{id}"
methods = ["GET", "PUT", "DELETE"]
upstream = "api"
auth = "public"

[[route]]
name = "order-item"
path = "/api/orders/{id}/items/{item}"
methods = ["GET", "PATCH"]
upstream = "api"
auth = "public"

[[route]]
name = "static"
path = "/static/{*rest}"
methods = ["GET"]
upstream = "api"
auth = "public"

[[route]]
name = "tenant-orders"
host = "tenant.example.com"
path = "/api/orders"
methods = ["PATCH", "OPTIONS"]
upstream = "api"
auth = "public"

[[route]]
name = "tenant-any"
host = "tenant.example.com"
path = "/t/{name}"
methods = ["GET", "POST"]
upstream = "api"
auth = "public"
"#;

struct Table {
    config: Config,
    router: Router,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = Config::from_str(CONFIG, Path::new("/fuzz/palisade.toml"))
            .unwrap_or_else(|e| panic!("the fuzz config does not load: {e}"));
        let router = Router::build(&config.routes).expect("the fuzz routes build");
        Table { config, router }
    })
}

const HOSTS: [Option<&str>; 3] = [None, Some("tenant.example.com"), Some("other.example.com")];

fuzz_target!(|data: &[u8]| {
    let [m, h, rest @ ..] = data else { return };
    // Past the known methods, the method is an extension token taken from the input.
    let (method, rest) = match STANDARD_METHODS.get(usize::from(*m)) {
        Some(method) => (method.clone(), rest),
        None => {
            let len = usize::from(*m % 16).min(rest.len());
            match Method::from_bytes(&rest[..len]) {
                Ok(method) => (method, &rest[len..]),
                Err(_) => return,
            }
        }
    };
    let host = HOSTS[usize::from(*h) % HOSTS.len()];
    let raw = String::from_utf8_lossy(rest);
    let Ok(path) = canonicalize(&raw) else { return };

    let t = table();
    match t.router.find(host, &method, &path) {
        Ok(matched) => {
            let route = &t.config.routes[matched.route];
            let listed = route.methods.contains(&method)
                || (method == Method::HEAD && route.methods.contains(&Method::GET));
            assert!(listed, "{method} matched route {} without it", route.name);
            if let Some(only) = &route.host {
                assert_eq!(
                    host,
                    Some(only.as_str()),
                    "route {} serves another host",
                    route.name
                );
            }
            for (name, value) in &matched.params {
                assert!(
                    route.path.contains(&format!("{{{name}}}"))
                        || route.path.contains(&format!("{{*{name}}}"))
                );
                assert!(
                    path.as_str().contains(value.as_str()),
                    "param {name}={value:?} not in {path}"
                );
                if !route.path.contains("{*") {
                    assert!(
                        !value.is_empty() && !value.contains('/'),
                        "param {name}={value:?}"
                    );
                }
            }
        }
        Err(RouteMiss::NotFound) => {}
        Err(RouteMiss::MethodNotAllowed { allow }) => {
            assert!(!allow.is_empty());
            assert!(
                !allow.contains(&method),
                "405 for {method} although it is allowed"
            );
            let mut sorted = allow.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), allow.len(), "duplicate methods in {allow:?}");
            if allow.contains(&Method::GET) {
                assert!(allow.contains(&Method::HEAD));
            }
        }
    }
});
