//! The loader end to end: source text in, `Config` or a located `ConfigError` out.

use std::env::VarError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

const FILE: &str = "/etc/palisade/palisade.toml";

fn env(name: &str) -> Result<String, VarError> {
    match name {
        "PALISADE_ADMIN_TOKEN" => Ok("admin-t0ken-0123456789".into()),
        "ORDERS_HOST" => Ok("orders.internal".into()),
        "REDIS_PASSWORD" => Ok("s3cret".into()),
        "JWT_SECRET" => Ok("0123456789abcdef0123456789abcdef".into()),
        "SHORT_SECRET" => Ok("tooshort".into()),
        "KEY_PEPPER" => Ok("0123456789abcdef0123456789abcdef".into()),
        "OLD_KEY_PEPPER" => Ok("old-pepper-0123456789abcdef0123456789".into()),
        "OLD_JWT_SECRET" => Ok("old-jwt-secret-0123456789abcdef012345".into()),
        "SAME_AS_KEY_PEPPER" => Ok("0123456789abcdef0123456789abcdef".into()),
        "SHORT_PEPPER" => Ok("short-pepper".into()),
        "ALERT_WEBHOOK" => Ok("https://hooks.example.com/T0/hunter2-token".into()),
        "PLAIN_WEBHOOK" => Ok("http://hooks.example.com/hunter2-token".into()),
        "PG_URL" => Ok("postgres://u:hunter2-pg@db/p".into()),
        "PG_PORT" => Ok("5432".into()),
        _ => Err(VarError::NotPresent),
    }
}

fn load(source: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(source, Path::new(FILE), &env)
}

fn load_err(source: &str) -> ConfigError {
    match load(source) {
        Ok(_) => panic!("expected an error for:\n{source}"),
        Err(e) => e,
    }
}

/// The 1-based line of the first line of `source` containing `needle`.
fn line(source: &str, needle: &str) -> usize {
    source
        .lines()
        .position(|l| l.contains(needle))
        .expect(needle)
        + 1
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const MINIMAL: &str = r#"
[server]
http = "127.0.0.1:8080"

[[upstream]]
name = "orders"
url = "http://127.0.0.1:3000"

[[route]]
name = "orders"
path = "/api/orders"
methods = ["GET"]
upstream = "orders"
auth = "public"
"#;

const FULL: &str = r#"
[server]
http = "127.0.0.1:8080"
https = "127.0.0.1:8443"
admin = "0.0.0.0:9090"
admin_token = "${env:PALISADE_ADMIN_TOKEN}"
trusted_proxies = ["10.0.0.0/8", "::1", "192.168.1.7"]

[server.tls]
cert = "certs/server.pem"
key = "/abs/server.key"
hsts = "max-age=63072000; includeSubDomains"

[limits]
max_body = "2MiB"
request_timeout = "5s"
header_timeout = "500ms"
max_header_bytes = 8192
drain_timeout = "1m"

[[upstream]]
name = "orders"
url = "http://${env:ORDERS_HOST}:3000/v1"
timeout = "2s"

[[upstream]]
name = "billing"
url = "https://billing.internal"
ca = "certs/billing-ca.pem"

[[route]]
name = "order"
path = "/api/orders/{id}"
methods = ["get", "PUT"]
upstream = "orders"
auth = "public"
host = "API.Example.com"

[[route]]
name = "invoices"
path = "/api/invoices"
methods = ["GET"]
upstream = "billing"
auth = "public"
"#;

#[test]
fn full_config() {
    let c = load(FULL).unwrap();
    assert_eq!(c.source, PathBuf::from(FILE));

    let s = &c.server;
    assert_eq!(s.http, Some(addr("127.0.0.1:8080")));
    assert_eq!(s.https, Some(addr("127.0.0.1:8443")));
    assert_eq!(s.admin, Some(addr("0.0.0.0:9090")));
    assert_eq!(
        s.admin_token.as_ref().unwrap().expose_secret(),
        "admin-t0ken-0123456789"
    );
    let proxies: Vec<String> = s
        .trusted_proxies
        .iter()
        .map(|n| format!("{}/{}", n.addr, n.prefix))
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "::1/128", "192.168.1.7/32"]);
    assert!(s.trusted_proxies[0].contains("10.9.8.7".parse().unwrap()));

    let tls = s.tls.as_ref().unwrap();
    assert_eq!(
        tls.source,
        TlsSource::Files {
            cert: PathBuf::from("/etc/palisade/certs/server.pem"),
            key: PathBuf::from("/abs/server.key"),
        }
    );
    assert_eq!(tls.hsts, "max-age=63072000; includeSubDomains");

    let l = &c.limits;
    assert_eq!(l.max_body, 2 << 20);
    assert_eq!(l.request_timeout, Duration::from_secs(5));
    assert_eq!(l.header_timeout, Duration::from_millis(500));
    assert_eq!(l.max_header_bytes, 8192);
    assert_eq!(l.drain_timeout, Duration::from_secs(60));

    assert_eq!(c.upstreams.len(), 2);
    let orders = &c.upstreams[0];
    assert_eq!(orders.name, "orders");
    assert_eq!(orders.url.to_string(), "http://orders.internal:3000/v1");
    assert_eq!(orders.timeout, Some(Duration::from_secs(2)));
    assert_eq!(orders.ca, None);
    assert_eq!(
        c.upstreams[1].ca,
        Some(PathBuf::from("/etc/palisade/certs/billing-ca.pem"))
    );

    let order = &c.routes[0];
    assert_eq!(order.name, "order");
    assert_eq!(order.path, "/api/orders/{id}");
    assert_eq!(order.methods, [http::Method::GET, http::Method::PUT]);
    assert_eq!(order.upstream, 0);
    assert_eq!(order.host.as_deref(), Some("api.example.com"));
    assert_eq!(c.routes[1].upstream, 1);
    assert_eq!(c.routes[1].host, None);

    // Errors found after loading are located too.
    let err = c.error_at("route[1].path", "conflicts with `route[0]`");
    assert_eq!(err.line, Some(line(FULL, "/api/invoices")));
}

#[test]
fn defaults_applied() {
    let c = load(MINIMAL).unwrap();
    let s = &c.server;
    assert_eq!((s.https, s.admin, s.tls.is_none()), (None, None, true));
    assert!(s.admin_token.is_none());
    assert!(s.trusted_proxies.is_empty());
    let l = &c.limits;
    assert_eq!(l.max_body, 1 << 20);
    assert_eq!(l.request_timeout, Duration::from_secs(30));
    assert_eq!(l.header_timeout, Duration::from_secs(10));
    assert_eq!(l.max_header_bytes, 16 << 10);
    assert_eq!(l.drain_timeout, Duration::from_secs(10));
    assert_eq!(c.upstreams[0].timeout, None);

    // A partial [limits] keeps the defaults of the keys it leaves out.
    let c = load(&format!("{MINIMAL}\n[limits]\nmax_body = \"10MB\"\n")).unwrap();
    assert_eq!(c.limits.max_body, 10_000_000);
    assert_eq!(c.limits.request_timeout, Duration::from_secs(30));

    let c =
        load("[server]\nhttps = \"127.0.0.1:8443\"\n[server.tls]\nself_signed = true\n").unwrap();
    let tls = c.server.tls.unwrap();
    assert_eq!(tls.source, TlsSource::SelfSigned);
    assert_eq!(tls.hsts, "max-age=31536000");
    assert!(c.routes.is_empty() && c.upstreams.is_empty());
}

#[test]
fn unknown_top_level_key() {
    let src = format!("{MINIMAL}\n[servr]\nhttp = \"x\"\n");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("servr"));
    assert_eq!(err.line, Some(line(&src, "[servr]")));
    assert!(
        err.message
            .starts_with("unknown field `servr`, expected one of"),
        "{err}"
    );
    assert!(err.message.contains("`server`"), "{err}");
}

#[test]
fn unknown_nested_key() {
    let src = "[server]\nhttp = \"127.0.0.1:8080\"\nhtps = \"127.0.0.1:8443\"\n";
    let err = load_err(src);
    assert_eq!(err.key.as_deref(), Some("server.htps"));
    assert_eq!(err.line, Some(3));
    assert!(
        err.message
            .starts_with("unknown field `htps`, expected one of `http`, `https`"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("{FILE}:3: key `server.htps`: {}", err.message)
    );

    // Deeper, in an array of tables.
    let src = MINIMAL.replace(
        "methods = [\"GET\"]",
        "methods = [\"GET\"]\nmethod = \"GET\"",
    );
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[0].method"));
    assert_eq!(err.line, Some(line(&src, "method =")));

    // In a subtable.
    let src =
        "[server]\nhttps = \"127.0.0.1:8443\"\n[server.tls]\nself_signed = true\nself_sign = 1\n";
    let err = load_err(src);
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.tls.self_sign"), Some(5))
    );
}

#[test]
fn wrong_type() {
    let src = format!("{MINIMAL}\n[limits]\nmax_body = true\n");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("limits.max_body"));
    assert_eq!(err.line, Some(line(&src, "max_body")));
    assert!(
        err.message.contains("invalid type: boolean `true`"),
        "{err}"
    );

    let src = MINIMAL.replace("methods = [\"GET\"]", "methods = \"GET\"");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[0].methods"));

    let src = MINIMAL.replace("methods = [\"GET\"]", "methods = [\"GET\", 7]");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[0].methods[1]"));
}

#[test]
fn bad_duration() {
    let src = format!("{MINIMAL}\n[limits]\nrequest_timeout = \"30 s\"\n");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("limits.request_timeout"));
    assert_eq!(err.line, Some(line(&src, "request_timeout")));
    assert!(err.message.starts_with("invalid duration `30 s`"), "{err}");

    let src = MINIMAL.replace(
        "url = \"http://127.0.0.1:3000\"",
        "url = \"http://127.0.0.1:3000\"\ntimeout = \"0s\"",
    );
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("upstream[0].timeout"));
    assert!(err.message.contains("greater than zero"), "{err}");
}

#[test]
fn missing_env_reference() {
    let src = MINIMAL.replace(
        "http = \"127.0.0.1:8080\"",
        "http = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:9090\"\nadmin_token = \"${env:NOT_SET_ANYWHERE}\"",
    );
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("server.admin_token"));
    assert_eq!(err.line, Some(line(&src, "admin_token")));
    assert_eq!(err.message, "`${env:NOT_SET_ANYWHERE}` is not set");
}

#[test]
fn file_reference_with_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/admin"), "from-a-file-0123456789\n").unwrap();
    let src = MINIMAL.replace(
        "http = \"127.0.0.1:8080\"",
        "http = \"127.0.0.1:8080\"\nadmin = \"[::]:9090\"\nadmin_token = \"${file:secrets/admin}\"",
    );
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, &src).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.server.admin_token.as_ref().unwrap().expose_secret(),
        "from-a-file-0123456789"
    );
    // Secrets don't show in Debug output.
    let debug = format!("{c:?}");
    assert!(!debug.contains("from-a-file-0123456789"), "{debug}");
}

#[test]
fn route_naming_an_unknown_upstream() {
    let src = format!(
        "{MINIMAL}\n[[upstream]]\nname = \"billing\"\nurl = \"http://127.0.0.1:4000\"\n\n\
         [[route]]\nname = \"typo\"\npath = \"/x\"\nmethods = [\"GET\"]\nupstream = \"ordrs\"\nauth = \"public\"\n"
    );
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[1].upstream"));
    assert_eq!(err.line, Some(line(&src, "\"ordrs\"")));
    assert_eq!(
        err.to_string(),
        format!(
            "{FILE}:{}: key `route[1].upstream`: no upstream named `ordrs` (known: orders, billing)",
            line(&src, "\"ordrs\"")
        )
    );
}

#[test]
fn duplicate_names() {
    let src = format!(
        "{MINIMAL}\n[[route]]\nname = \"orders\"\npath = \"/y\"\nmethods = [\"POST\"]\nupstream = \"orders\"\nauth = \"public\"\n"
    );
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[1].name"));
    let second = src
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "name = \"orders\"")
        .nth(2);
    assert_eq!(err.line, second.map(|(i, _)| i + 1));
    assert!(
        err.message.starts_with("duplicate route name `orders`"),
        "{err}"
    );

    let src = format!("{MINIMAL}\n[[upstream]]\nname = \"orders\"\nurl = \"http://h\"\n");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("upstream[1].name"));
}

#[test]
fn https_without_tls() {
    let err = load_err("[server]\nhttps = \"127.0.0.1:8443\"\n");
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.https"), Some(2))
    );
    assert!(err.message.contains("[server.tls]"), "{err}");

    let err = load_err("[server]\nhttp = \"127.0.0.1:8080\"\n[server.tls]\nself_signed = true\n");
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.tls"), Some(3))
    );
}

#[test]
fn tls_forms() {
    let base = "[server]\nhttps = \"127.0.0.1:8443\"\n[server.tls]\n";
    let err = load_err(&format!(
        "{base}cert = \"c.pem\"\nkey = \"k.pem\"\nself_signed = true\n"
    ));
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.tls.self_signed"), Some(6))
    );
    assert!(err.message.contains("exclude each other"), "{err}");

    let err = load_err(&format!("{base}cert = \"c.pem\"\n"));
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.tls.key"), Some(3))
    );
    let err = load_err(&format!("{base}hsts = \"max-age=1\"\n"));
    assert_eq!(err.key.as_deref(), Some("server.tls"));
    let err = load_err(&format!(
        "{base}self_signed = true\nhsts = \"includeSubDomains\"\n"
    ));
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.tls.hsts"), Some(5))
    );

    // `self_signed = false` beside cert and key is fine.
    let c = load(&format!(
        "{base}cert = \"c.pem\"\nkey = \"k.pem\"\nself_signed = false\n"
    ))
    .unwrap();
    assert!(matches!(
        c.server.tls.unwrap().source,
        TlsSource::Files { .. }
    ));
}

#[test]
fn admin_off_loopback_needs_a_token() {
    let src = "[server]\nhttp = \"127.0.0.1:8080\"\nadmin = \"0.0.0.0:9090\"\n";
    let err = load_err(src);
    assert_eq!(
        (err.key.as_deref(), err.line),
        (Some("server.admin"), Some(3))
    );
    assert!(err.message.contains("admin_token"), "{err}");

    assert!(load("[server]\nhttp = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:9090\"\n").is_ok());
    assert!(load("[server]\nhttp = \"127.0.0.1:8080\"\nadmin = \"[::1]:9090\"\n").is_ok());
    let with_token = format!("{src}admin_token = \"${{env:PALISADE_ADMIN_TOKEN}}\"\n");
    assert!(load(&with_token).is_ok());
}

#[test]
fn server_needs_a_listener() {
    let err = load_err("[server]\nadmin = \"127.0.0.1:9090\"\n");
    assert_eq!((err.key.as_deref(), err.line), (Some("server"), Some(1)));

    let err = load_err("[limits]\nmax_body = 1\n");
    assert_eq!(err.key.as_deref(), Some("server"));
    assert_eq!(err.message, "missing field `server`");
    assert_eq!(
        err.to_string(),
        format!("{FILE}: key `server`: missing field `server`")
    );
}

#[test]
fn missing_required_key_reports_its_table() {
    let src = MINIMAL.replace("upstream = \"orders\"\nauth = \"public\"\n", "");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[0].upstream"));
    assert_eq!(err.line, Some(line(&src, "[[route]]")));
    assert_eq!(err.message, "missing field `upstream`");
}

#[test]
fn syntax_error_has_a_line() {
    let src = "[server]\nhttp = 127.0.0.1:8080\n";
    let err = load_err(src);
    assert_eq!(err.line, Some(2), "{err}");
    assert!(!err.message.contains('\n'), "{err}");
}

#[test]
fn invalid_values_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "http = \"127.0.0.1:8080\"",
            "http = \"localhost:8080\"",
            "server.http",
        ),
        (
            "http = \"127.0.0.1:8080\"",
            "http = \"127.0.0.1:8080\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.1.2.3/8\"]",
            "server.trusted_proxies[1]",
        ),
        (
            "url = \"http://127.0.0.1:3000\"",
            "url = \"ftp://127.0.0.1\"",
            "upstream[0].url",
        ),
        (
            "url = \"http://127.0.0.1:3000\"",
            "url = \"http://127.0.0.1:3000\"\nca = \"ca.pem\"",
            "upstream[0].ca",
        ),
        (
            "path = \"/api/orders\"",
            "path = \"api/orders\"",
            "route[0].path",
        ),
        ("methods = [\"GET\"]", "methods = []", "route[0].methods"),
        (
            "methods = [\"GET\"]",
            "methods = [\"GET\", \"get\"]",
            "route[0].methods[1]",
        ),
        (
            "methods = [\"GET\"]",
            "methods = [\"GE T\"]",
            "route[0].methods[0]",
        ),
        (
            "upstream = \"orders\"",
            "upstream = \"orders\"\nhost = \"a.com:443\"",
            "route[0].host",
        ),
        (
            "name = \"orders\"\npath",
            "name = \"my route\"\npath",
            "route[0].name",
        ),
    ];
    for (from, to, key) in cases {
        let src = MINIMAL.replacen(from, to, 1);
        assert_ne!(src, MINIMAL, "{from}");
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(*key), "{err}");
        // The changed line: the one naming the key's last field.
        let field = key.rsplit('.').next().unwrap().split('[').next().unwrap();
        let needle = to.lines().find(|l| l.starts_with(field)).unwrap();
        assert_eq!(err.line, Some(line(&src, needle)), "{err}");
    }
}

#[test]
fn header_limit_is_bounded() {
    for bad in ["0", "\"2MiB\"", "18446744073709551615"] {
        let err = load_err(&format!("{MINIMAL}\n[limits]\nmax_header_bytes = {bad}\n"));
        assert_eq!(err.key.as_deref(), Some("limits.max_header_bytes"), "{err}");
    }
    let c = load(&format!(
        "{MINIMAL}\n[limits]\nmax_header_bytes = \"1MiB\"\n"
    ))
    .unwrap();
    assert_eq!(c.limits.max_header_bytes, 1 << 20);
}

#[test]
fn two_listeners_on_one_address() {
    let err = load_err("[server]\nhttp = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:8080\"\n");
    assert_eq!(err.key.as_deref(), Some("server.admin"));
    // Port 0 asks for any free port: no clash.
    assert!(load("[server]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n").is_ok());
}

#[test]
fn references_work_in_any_string() {
    let src = MINIMAL.replace("/api/orders", "/$${literal}/${env:ORDERS_HOST}");
    let c = load(&src).unwrap();
    assert_eq!(c.routes[0].path, "/${literal}/orders.internal");
}

#[test]
fn error_display_omits_missing_parts() {
    let e = ConfigError::new(Path::new("p.toml"), "cannot read");
    assert_eq!(e.to_string(), "p.toml: cannot read");
    let e = ConfigError::at(Path::new("p.toml"), None, "server", "bad");
    assert_eq!(e.to_string(), "p.toml: key `server`: bad");
    let e = ConfigError::at(Path::new("p.toml"), Some(12), "route[1].upstream", "bad");
    assert_eq!(e.to_string(), "p.toml:12: key `route[1].upstream`: bad");
}

#[test]
fn load_reports_an_unreadable_file() {
    let err = Config::load(Path::new("/nonexistent/palisade.toml")).unwrap_err();
    assert_eq!(err.line, None);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/palisade.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn schema_describes_the_raw_config() {
    let schema = Config::json_schema();
    assert_eq!(schema["title"], "palisade.toml");
    assert_eq!(schema["additionalProperties"], false);
    let server = &schema["properties"]["server"];
    assert!(server.is_object(), "{schema:#}");
    let text = schema.to_string();
    for key in [
        "trusted_proxies",
        "self_signed",
        "max_header_bytes",
        "drain_timeout",
        "ca",
        "host",
    ] {
        assert!(
            text.contains(&format!("\"{key}\"")),
            "{key} missing from the schema"
        );
    }
    // Defaults and unit patterns are in it.
    assert!(text.contains("\"max-age=31536000\""), "{schema:#}");
    assert!(text.contains("\"1MiB\""), "{schema:#}");
    assert!(text.contains("\"pattern\""), "{schema:#}");
}

/// MINIMAL with its one route made private (the default `auth = "any"`).
fn private_minimal(extra: &str) -> String {
    format!("{}\n{extra}", MINIMAL.replace("auth = \"public\"\n", ""))
}

const JWT: &str = r#"
[auth.jwt]
issuer = "https://id.example.com/"
audiences = ["orders-api"]
algorithms = ["RS256", "ES256"]
jwks_url = "https://id.example.com/jwks.json"
roles_claim = "realm_access.roles"
"#;

#[test]
fn private_routes_need_a_way_to_authenticate() {
    let src = private_minimal("");
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("route[0].auth"));
    assert!(err.message.contains("auth = \"public\""), "{err}");
    assert!(load(&private_minimal(JWT)).is_ok());
    // A route that takes only API keys needs a store even when JWT is configured.
    let api_key_only = private_minimal(JWT).replace(
        "upstream = \"orders\"\n",
        "upstream = \"orders\"\nauth = \"api_key\"\n",
    );
    let err = load_err(&api_key_only);
    assert_eq!(err.key.as_deref(), Some("route[0].auth"));
    assert!(err.message.contains("[store]"), "{err}");
}

#[test]
fn jwt_section_is_validated_and_defaulted() {
    let c = load(&private_minimal(JWT)).unwrap();
    let jwt = c.auth.jwt.as_ref().unwrap();
    assert_eq!(jwt.issuer, "https://id.example.com/");
    assert_eq!(jwt.algorithms, [JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
    assert!(matches!(jwt.keys, JwtKeySource::JwksUrl(_)));
    assert_eq!(jwt.roles_claim, "realm_access.roles");
    assert_eq!(jwt.leeway, Duration::from_secs(30));
    assert_eq!(jwt.max_token_bytes, 8192);
    assert_eq!(c.routes[0].auth, RouteAuth::Any);

    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "\"RS256\", \"ES256\"",
            "\"none\"",
            "auth.jwt.algorithms[0]",
            "never allowed",
        ),
        (
            "\"RS256\", \"ES256\"",
            "\"RS256\", \"HS256\"",
            "auth.jwt.algorithms[1]",
            "key confusion",
        ),
        (
            "jwks_url = \"https://id.example.com/jwks.json\"",
            "secret = \"${env:JWT_SECRET}\"",
            "auth.jwt.algorithms[0]",
            "only HS256",
        ),
        (
            "jwks_url = \"https://id.example.com/jwks.json\"",
            "jwks_url = \"http://id.example.com/jwks.json\"",
            "auth.jwt.jwks_url",
            "https",
        ),
        (
            "jwks_url = \"https://id.example.com/jwks.json\"",
            "jwks_url = \"https://id.example.com/jwks.json\"\njwks_file = \"jwks.json\"",
            "auth.jwt",
            "exactly one",
        ),
        (
            "audiences = [\"orders-api\"]",
            "audiences = []",
            "auth.jwt.audiences",
            "audience",
        ),
    ];
    for (from, to, key, fragment) in cases {
        let src = private_minimal(&JWT.replace(from, to));
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(fragment), "{err}");
    }
    // User info in a key URL is refused, and the error does not echo it (nor would later
    // fetch errors and log lines, which quote the URL).
    for (to, key) in [
        (
            "jwks_url = \"https://svc:Hunter2LiteralPw@id.example.com/jwks.json\"",
            "auth.jwt.jwks_url",
        ),
        (
            "discovery_url = \"https://Hunter2LiteralPw@id.example.com/.well-known/openid-configuration\"",
            "auth.jwt.discovery_url",
        ),
    ] {
        let src =
            private_minimal(&JWT.replace("jwks_url = \"https://id.example.com/jwks.json\"", to));
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains("credentials"), "{err}");
        assert!(!err.to_string().contains("Hunter2"), "{err}");
    }
    // An HMAC secret shorter than the hash is refused, and never quoted.
    let short = JWT.replace("\"RS256\", \"ES256\"", "\"HS256\"").replace(
        "jwks_url = \"https://id.example.com/jwks.json\"",
        "secret = \"${env:SHORT_SECRET}\"",
    );
    let err = load_err(&private_minimal(&short));
    assert_eq!(err.key.as_deref(), Some("auth.jwt.secret"));
    assert!(!err.to_string().contains("tooshort"), "{err}");
}

#[test]
fn store_section_is_validated() {
    let store = |url: &str, pepper: &str| {
        private_minimal(&format!(
            "[store]\nurl = \"{url}\"\nkey_pepper = \"{pepper}\"\n"
        ))
    };
    let pepper = "0123456789abcdef0123456789abcdef";
    let c = load(&store("sqlite://keys.db", "${env:KEY_PEPPER}")).unwrap();
    let s = c.store.as_ref().unwrap();
    // Relative database files sit beside the config file.
    assert_eq!(s.url.expose_secret(), "sqlite:///etc/palisade/keys.db");
    assert_eq!(s.rotation_overlap, Duration::from_secs(24 * 3600));
    assert_eq!(s.key_peppers.len(), 1);
    assert_eq!(s.key_peppers[0].expose_secret(), pepper);
    assert!(
        load(&store(
            "postgres://palisade@db/palisade",
            "${env:KEY_PEPPER}"
        ))
        .is_ok()
    );

    let err = load_err(&store("mysql://u:hunter2@db/x", "${env:KEY_PEPPER}"));
    assert_eq!(err.key.as_deref(), Some("store.url"));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = load_err(&store("sqlite://keys.db", "${env:SHORT_PEPPER}"));
    assert_eq!(err.key.as_deref(), Some("store.key_pepper"));
    assert!(!err.to_string().contains("short-pepper"), "{err}");
}

#[test]
fn owner_rules_are_validated() {
    let with = |rule: &str| {
        private_minimal(JWT).replace(
            "path = \"/api/orders\"",
            &format!("path = \"/api/users/{{user_id}}/orders/{{id}}\"\n{rule}"),
        )
    };
    let c = load(&with("owner = { field = \"/ownerId\", bypass_roles = [\"admin\"], object = \"/api/users/{user_id}/orders/{id}\" }")).unwrap();
    let rule = c.routes[0].owner.as_ref().unwrap();
    assert_eq!(rule.source, OwnerSource::Field("/ownerId".into()));
    assert_eq!(rule.claim, "sub");
    assert_eq!(rule.mode, OwnerMode::Enforce);
    assert_eq!(rule.collection_mode, CollectionMode::Filter);
    assert!(
        load(&with(
            "owner = { param = \"user_id\", claim = \"tenant_id\" }"
        ))
        .is_ok()
    );

    let cases = [
        (
            "owner = { param = \"nope\" }",
            "route[0].owner.param",
            "no `{nope}`",
        ),
        (
            "owner = { field = \"ownerId\" }",
            "route[0].owner.field",
            "starts with `/`",
        ),
        (
            "owner = { param = \"id\", field = \"/o\" }",
            "route[0].owner",
            "exactly one",
        ),
        (
            "owner = { param = \"id\", on_create = \"set\" }",
            "route[0].owner",
            "need `field`",
        ),
        (
            "owner = { field = \"/o\", object = \"/x/{other}\" }",
            "route[0].owner.object",
            "{other}",
        ),
        ("roles = [\"a,b\"]", "route[0].roles[0]", "commas"),
        (
            "response_fields = { deny = [\"passwordHash\"] }",
            "route[0].response_fields.deny[0]",
            "pointer",
        ),
    ];
    for (rule, key, fragment) in cases {
        let err = load_err(&with(rule));
        assert_eq!(err.key.as_deref(), Some(key), "{rule}: {err}");
        assert!(err.message.contains(fragment), "{rule}: {err}");
    }
    // Ownership needs an identity: a public route cannot carry an owner rule.
    let public = MINIMAL.replace(
        "path = \"/api/orders\"",
        "path = \"/api/orders/{id}\"\nowner = { param = \"id\" }",
    );
    assert_eq!(load_err(&public).key.as_deref(), Some("route[0].owner"));
}

/// MINIMAL with `route` added to its route and `extra` (top-level tables) at the end.
fn with(extra: &str, route: &str) -> String {
    format!(
        "{}\n{extra}",
        MINIMAL.replace(
            "auth = \"public\"\n",
            &format!("auth = \"public\"\n{route}")
        )
    )
}

#[test]
fn rate_limit_policies_are_validated_and_named() {
    let c = load(&with(
        "[rate_limit]\ndefault = { limit = 100, window = \"15m\", per = \"client\" }\nheaders = \"always\"",
        "rate_limit = [{ limit = 5, window = \"15m\", per = \"ip\" }, { limit = 50, window = \"1h\", per = { header = \"X-Tenant\" }, burst = 10 }]\n",
    ))
    .unwrap();
    assert!(c.rate_limit.headers_always);
    assert_eq!(c.rate_limit.default[0].name, "default");
    assert_eq!(c.rate_limit.default[0].per, PerKey::Client);
    let route = &c.routes[0].rate_limit;
    assert_eq!(route[0].name, "route.orders");
    assert_eq!(route[0].burst, 5, "burst defaults to the limit");
    assert_eq!(route[1].name, "route.orders.2");
    assert_eq!(
        route[1].per,
        PerKey::Header(http::HeaderName::from_static("x-tenant"))
    );
    assert_eq!(route[1].burst, 10);

    for (route_rule, key, fragment) in [
        (
            "rate_limit = { limit = 0, window = \"1m\", per = \"ip\" }\n",
            "route[0].rate_limit.limit",
            "at least 1",
        ),
        (
            "rate_limit = { limit = 1, window = \"1m\", per = \"planet\" }\n",
            "route[0].rate_limit.per",
            "unknown `planet`",
        ),
        (
            "rate_limit = { limit = 1, window = \"1m\", per = \"ip\", burst = 0 }\n",
            "route[0].rate_limit.burst",
            "at least 1",
        ),
    ] {
        let err = load_err(&with("", route_rule));
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(fragment), "{err}");
    }
}

#[test]
fn rate_limit_per_key_subject_and_named_policies() {
    let c = load(&with(
        "[rate_limit]\ndefault = [{ limit = 100, window = \"15m\", per = \"key\", name = \"overall.key\" }, { limit = 500, window = \"1h\", per = \"subject\" }]",
        "rate_limit = { limit = 5, window = \"1m\", per = \"subject\", name = \"orders_per-subject\" }\n",
    ))
    .unwrap();
    let default = &c.rate_limit.default;
    assert_eq!(default[0].name, "overall.key");
    assert_eq!(default[0].per, PerKey::Key);
    assert_eq!(default[1].name, "default.2");
    assert_eq!(default[1].per, PerKey::Subject);
    assert_eq!(c.routes[0].rate_limit[0].name, "orders_per-subject");
    assert_eq!(c.routes[0].rate_limit[0].per, PerKey::Subject);

    // Names go into the quoted `RateLimit` headers: a quote or backslash would break them.
    for bad in [r#"a\"b"#, r#"a\\b"#, "a b", "a,b", ""] {
        let rule = format!(
            "rate_limit = {{ limit = 1, window = \"1m\", per = \"ip\", name = {} }}\n",
            toml::Value::String(bad.to_owned())
        );
        let err = load_err(&with("", &rule));
        assert_eq!(
            err.key.as_deref(),
            Some("route[0].rate_limit.name"),
            "{bad}: {err}"
        );
    }
    let long = format!(
        "[rate_limit]\ndefault = [{{ limit = 1, window = \"1m\", per = \"ip\" }}, {{ limit = 1, window = \"1m\", per = \"ip\", name = \"{}\" }}]",
        "n".repeat(65)
    );
    let err = load_err(&with(&long, ""));
    assert_eq!(
        err.key.as_deref(),
        Some("rate_limit.default[1].name"),
        "{err}"
    );
    assert!(err.message.contains("at most 64"), "{err}");
}

#[test]
fn rate_limit_stores_and_the_lockout_are_validated() {
    let defaults = load(MINIMAL).unwrap().rate_limit;
    assert_eq!(defaults.store, RateStoreKind::Memory);
    assert_eq!(defaults.on_store_error, OnStoreError::Local);
    assert_eq!(defaults.store_timeout, Duration::from_millis(50));
    assert!(defaults.auth_failures.is_none());

    let c = load(&with(
        "[rate_limit]\nstore = \"redis://:${env:REDIS_PASSWORD}@cache:6379/2\"\non_store_error = \"deny\"\nstore_timeout = \"20ms\"\nauth_failures = { limit = 10, window = \"15m\" }",
        "login = { account = \"/user/name\" }\nrate_limit = { limit = 3, window = \"1h\", per = { body = \"/email\" } }\n",
    ))
    .unwrap();
    let limits = &c.rate_limit;
    assert_eq!(
        limits.store,
        RateStoreKind::Redis(SecretUrl::new("redis://:s3cret@cache:6379/2")),
        "references resolve inside the URL"
    );
    assert_eq!(limits.on_store_error, OnStoreError::Deny);
    assert_eq!(limits.store_timeout, Duration::from_millis(20));
    let lockout = limits.auth_failures.as_ref().unwrap();
    assert_eq!(
        (lockout.limit, lockout.window),
        (10, Duration::from_secs(900))
    );
    assert!(lockout.per_ip && lockout.per_account, "both by default");
    assert_eq!(c.routes[0].login.as_ref().unwrap().account, "/user/name");
    assert_eq!(
        c.routes[0].rate_limit[0].per,
        PerKey::Body("/email".to_owned())
    );

    for (extra, route_rule, key, fragment) in [
        (
            "[rate_limit]\nstore = \"rediss://cache:6379\"",
            "",
            "rate_limit.store",
            "not supported",
        ),
        (
            "[rate_limit]\nstore = \"memcached://cache\"",
            "",
            "rate_limit.store",
            "expected `memory` or `redis://",
        ),
        (
            "[rate_limit]\nstore_timeout = \"10s\"",
            "",
            "rate_limit.store_timeout",
            "between 1ms and 5s",
        ),
        (
            "[rate_limit]\nauth_failures = { limit = 5, window = \"1m\", per = [\"planet\"] }",
            "",
            "rate_limit.auth_failures.per[0]",
            "unknown `planet`",
        ),
        (
            "[rate_limit]\nauth_failures = { limit = 0, window = \"1m\" }",
            "",
            "rate_limit.auth_failures.limit",
            "at least 1",
        ),
        (
            "",
            "login = { account = \"username\" }\n",
            "route[0].login.account",
            "starts with `/`",
        ),
        (
            "",
            "rate_limit = { limit = 1, window = \"1m\", per = { body = \"email\" } }\n",
            "route[0].rate_limit.per",
            "starts with `/`",
        ),
    ] {
        let err = load_err(&with(extra, route_rule));
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(fragment), "{err}");
    }
    let err = load_err(&with("[rate_limit]\nstore = \"redis//:hunter2@cache\"", ""));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// `key_pepper` and `auth.jwt.secret` take a list during a rotation, current first: each a
/// reference, each long enough, none twice, at most four; errors name the element and never
/// quote a value.
#[test]
fn secret_lists_for_rotation() {
    let store = |pepper: &str| {
        private_minimal(&format!(
            "[store]\nurl = \"sqlite://keys.db\"\nkey_pepper = {pepper}\n"
        ))
    };
    let c = load(&store(r#"["${env:KEY_PEPPER}", "${env:OLD_KEY_PEPPER}"]"#)).unwrap();
    let peppers = &c.store.as_ref().unwrap().key_peppers;
    let values: Vec<&str> = peppers.iter().map(|p| p.expose_secret()).collect();
    assert_eq!(
        values,
        [
            "0123456789abcdef0123456789abcdef",
            "old-pepper-0123456789abcdef0123456789"
        ]
    );
    let literal = "literal-pepper-0123456789abcdef0123456789";
    let five = ["${env:KEY_PEPPER}"; 5]
        .map(|p| format!("\"{p}\""))
        .join(", ");
    let cases = [
        ("[]".to_owned(), "store.key_pepper", "empty"),
        (
            r#"["${env:KEY_PEPPER}", "${env:SHORT_PEPPER}"]"#.to_owned(),
            "store.key_pepper[1]",
            "at least 32",
        ),
        (
            format!(r#"["${{env:KEY_PEPPER}}", "{literal}"]"#),
            "store.key_pepper[1]",
            "write it as a reference",
        ),
        (
            r#"["${env:KEY_PEPPER}", "${env:SAME_AS_KEY_PEPPER}"]"#.to_owned(),
            "store.key_pepper[1]",
            "store.key_pepper[0]",
        ),
        (format!("[{five}]"), "store.key_pepper", "at most 4"),
        ("42".to_owned(), "store.key_pepper", "list of strings"),
    ];
    for (value, key, fragment) in cases {
        let err = load_err(&store(&value));
        assert_eq!(err.key.as_deref(), Some(key), "{value}: {err}");
        assert!(err.to_string().contains(fragment), "{value}: {err}");
        for secret in [literal, "0123456789abcdef0123456789abcdef", "short-pepper"] {
            assert!(!err.to_string().contains(secret), "{err}");
        }
    }

    let jwt = |secret: &str| {
        private_minimal(&JWT.replace("\"RS256\", \"ES256\"", "\"HS256\"").replace(
            "jwks_url = \"https://id.example.com/jwks.json\"",
            &format!("secret = {secret}"),
        ))
    };
    let c = load(&jwt(r#"["${env:JWT_SECRET}", "${env:OLD_JWT_SECRET}"]"#)).unwrap();
    let JwtKeySource::Secret(secrets) = &c.auth.jwt.as_ref().unwrap().keys else {
        panic!("HS secrets expected");
    };
    assert_eq!(secrets.len(), 2);
    assert_eq!(
        secrets[1].expose_secret(),
        "old-jwt-secret-0123456789abcdef012345"
    );
    let err = load_err(&jwt(r#"["${env:JWT_SECRET}", "${env:SHORT_SECRET}"]"#));
    assert_eq!(err.key.as_deref(), Some("auth.jwt.secret[1]"), "{err}");
    assert!(!err.to_string().contains("tooshort"), "{err}");
    let err = load_err(&jwt(r#"["${env:JWT_SECRET}", "${env:JWT_SECRET}"]"#));
    assert_eq!(err.key.as_deref(), Some("auth.jwt.secret[1]"), "{err}");
    assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
}

#[test]
fn secrets_written_literally_are_refused_unless_allowed() {
    let pepper = "0123456789abcdef0123456789abcdef-literal";
    let cases = [
        (
            "store.key_pepper",
            format!("[store]\nurl = \"sqlite://k.db\"\nkey_pepper = \"{pepper}\"\n"),
        ),
        (
            "store.url",
            "[store]\nurl = \"postgres://palisade:hunter2-password@db/p\"\nkey_pepper = \"${env:KEY_PEPPER}\"\n".to_owned(),
        ),
        (
            "rate_limit.store",
            "[rate_limit]\nstore = \"redis://:hunter2-password@cache:6379/0\"\n".to_owned(),
        ),
    ];
    for (key, extra) in cases {
        let src = format!("{MINIMAL}\n{extra}");
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains("write it as a reference"), "{err}");
        assert!(
            !err.to_string().contains("hunter2") && !err.to_string().contains(pepper),
            "{err}"
        );
        let allowed = format!("allow_literal_secrets = true\n{src}");
        assert!(load(&allowed).is_ok(), "{key} with allow_literal_secrets");
    }
    let literal_token = MINIMAL.replace(
        "http = \"127.0.0.1:8080\"",
        "http = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:9090\"\nadmin_token = \"literal-admin-token-0123456789\"",
    );
    assert_ne!(literal_token, MINIMAL);
    let err = load_err(&literal_token);
    assert_eq!(err.key.as_deref(), Some("server.admin_token"), "{err}");
    // A URL without a password is not a secret.
    let no_password = format!("{MINIMAL}\n[rate_limit]\nstore = \"redis://cache:6379/0\"\n");
    assert!(load(&no_password).is_ok());
}

#[test]
fn a_secret_partly_written_as_a_reference_is_still_refused() {
    let pepper = "key_pepper = \"${env:KEY_PEPPER}\"";
    let cases = [
        // A reference elsewhere in the URL does not make its password one.
        (
            "store.url",
            format!("[store]\nurl = \"postgres://palisade:Hunter2LiteralPw@${{env:ORDERS_HOST}}/palisade\"\n{pepper}\n"),
        ),
        (
            "store.url",
            format!("[store]\nurl = \"postgres://u@db/p?password=Hunter2LiteralPw\"\n{pepper}\n"),
        ),
        (
            "store.url",
            format!("[store]\nurl = \"postgres://u@db/p?sslmode=require&sslpassword=Hunter2LiteralPw\"\n{pepper}\n"),
        ),
        (
            "store.url",
            format!("[store]\nurl = \"postgres://u:Hunter2LiteralPw${{env:REDIS_PASSWORD}}@db/p\"\n{pepper}\n"),
        ),
        (
            "rate_limit.store",
            "[rate_limit]\nstore = \"redis://:Hunter2LiteralPw@${env:ORDERS_HOST}:6379/0\"\n".to_owned(),
        ),
        (
            "alerts.webhook",
            "[alerts]\nwebhook = \"https://hooks.example.com/Hunter2LiteralPw${env:ORDERS_HOST}\"\n"
                .to_owned(),
        ),
        (
            "store.key_pepper",
            "[store]\nurl = \"sqlite://k.db\"\nkey_pepper = \"Hunter2LiteralPw-0123456789abcdef${env:KEY_PEPPER}\"\n".to_owned(),
        ),
    ];
    for (key, extra) in cases {
        let src = format!("{MINIMAL}\n{extra}");
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(key), "{src}\n{err}");
        assert!(err.message.contains("write it as a reference"), "{err}");
        assert!(!err.to_string().contains("Hunter2"), "{err}");
        // Accepted for development, and listed for `palisade check` (control 9 fails).
        let allowed = format!("allow_literal_secrets = true\n{src}");
        let config = load(&allowed).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(config.literal_secrets, [key], "{src}");
    }
    let admin = |value: &str| {
        MINIMAL.replace(
            "http = \"127.0.0.1:8080\"",
            &format!(
                "http = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:9090\"\nadmin_token = \"{value}\""
            ),
        )
    };
    let err = load_err(&admin("Hunter2LiteralPw${env:PALISADE_ADMIN_TOKEN}"));
    assert_eq!(err.key.as_deref(), Some("server.admin_token"), "{err}");

    // The password (or the whole URL) as one reference, or no password at all, is fine.
    for extra in [
        "[store]\nurl = \"postgres://palisade:${env:REDIS_PASSWORD}@${env:ORDERS_HOST}/palisade\"",
        "[store]\nurl = \"postgres://u@db/p?sslmode=require&password=${env:REDIS_PASSWORD}\"",
        "[store]\nurl = \"postgres://u@${env:ORDERS_HOST}/p?sslmode=require\"",
        "[store]\nurl = \"${env:PG_URL}\"",
    ] {
        let src = format!("{MINIMAL}\n{extra}\n{pepper}\n");
        let config = load(&src).unwrap_or_else(|e| panic!("{src}\n{e}"));
        assert!(config.literal_secrets.is_empty(), "{src}");
    }
    let src = format!(
        "{MINIMAL}\n[rate_limit]\nstore = \"redis://:${{file:/dev/null-nope}}@cache:6379/0\"\n"
    );
    assert!(
        load_err(&src).message.contains("cannot be read"),
        "a password reference is resolved, not refused"
    );
}

#[test]
fn store_url_passwords_never_print() {
    let c = load(&format!(
        "{MINIMAL}\n[rate_limit]\nstore = \"redis://:${{env:REDIS_PASSWORD}}@cache:6379/2\"\n\
         [store]\nurl = \"postgres://palisade:${{env:REDIS_PASSWORD}}@db/p?sslmode=require&sslpassword=${{env:REDIS_PASSWORD}}\"\n\
         key_pepper = \"${{env:KEY_PEPPER}}\"\n"
    ))
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("redis://***@cache:6379/2"), "{debug}");
    let store = c.store.as_ref().unwrap();
    assert_eq!(
        store.url.to_string(),
        "postgres://***@db/p?sslmode=require&sslpassword=***"
    );
    assert!(
        store.url.expose_secret().contains("s3cret"),
        "still there to connect with"
    );
    assert_eq!(
        SecretUrl::new("postgres://u@db/p?password=x#frag").redacted(),
        "postgres://***@db/p?password=***"
    );
    assert_eq!(
        SecretUrl::new("redis://cache:6379/0").to_string(),
        "redis://cache:6379/0"
    );
}

#[test]
fn a_password_parameter_spelled_as_the_driver_decodes_it_is_refused_and_masked() {
    let pepper = "key_pepper = \"${env:KEY_PEPPER}\"";
    // TOML `\t` is a tab: the URL parser drops it, so the driver reads `password`.
    for url in [
        r"postgres://u@db/app?pass%77ord=hunter2",
        r"postgres://u@db/app?pass\tword=hunter2",
        r"postgres://u@db/app?PASS%57ORD=hunter2&sslmode=require",
        r"postgres://u@db/app?ssl%70assword=hunter2",
    ] {
        let src = format!("{MINIMAL}\n[store]\nurl = \"{url}\"\n{pepper}\n");
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some("store.url"), "{url}\n{err}");
        assert!(err.message.contains("write it as a reference"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let allowed = format!("allow_literal_secrets = true\n{src}");
        let config = load(&allowed).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(config.literal_secrets, ["store.url"], "{url}");
        let store = config.store.as_ref().unwrap();
        assert!(store.url.expose_secret().contains("hunter2"), "{url}");
        for shown in [
            format!("{config:?}"),
            format!("{:?}", store.url),
            store.url.to_string(),
        ] {
            assert!(!shown.contains("hunter2"), "{url}: {shown}");
        }
    }
    let config = load(&format!(
        "allow_literal_secrets = true\n{MINIMAL}\n[store]\nurl = \"postgres://u@db/app?pass%77ord=hunter2&sslmode=require#x\"\n{pepper}\n"
    ))
    .unwrap();
    assert_eq!(
        config.store.as_ref().unwrap().url.to_string(),
        "postgres://***@db/app?password=***&sslmode=require"
    );
    // The same spellings as one reference each are references.
    let src = format!(
        "{MINIMAL}\n[store]\nurl = \"postgres://u@db:${{env:PG_PORT}}/app?pass%77ord=${{env:REDIS_PASSWORD}}\"\n{pepper}\n"
    );
    let config = load(&src).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.literal_secrets.is_empty());
}

#[test]
fn a_store_url_that_does_not_parse_is_refused_without_echoing_it() {
    let src = format!(
        "allow_literal_secrets = true\n{MINIMAL}\n[store]\nurl = \"postgres://u:hunter2@db:99999/app\"\nkey_pepper = \"${{env:KEY_PEPPER}}\"\n"
    );
    let err = load_err(&src);
    assert_eq!(err.key.as_deref(), Some("store.url"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(
        SecretUrl::new("postgres://u:hunter2@db:99999/").redacted(),
        "***"
    );
}

#[test]
fn alert_rules_builtins_overrides_and_defaults() {
    let c = load(MINIMAL).unwrap();
    let names: Vec<&str> = c.alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "auth_failed_spike",
            "rate_limited_spike",
            "upstream_error_spike"
        ]
    );
    assert!(c.alerts.iter().all(|a| a.builtin && a.webhook.is_none()));
    assert_eq!(c.alerts[0].threshold, 100);
    assert_eq!(c.alerts[0].window, Duration::from_secs(300));
    assert_eq!(c.alerts[0].cooldown, Duration::from_secs(900));

    let src = format!(
        r#"{MINIMAL}
[alerts]
webhook = "${{env:ALERT_WEBHOOK}}"

[[alert]]
name = "rate_limited_spike"
event = "rate_limited"
threshold = 20
window = "1m"

[[alert]]
event = "auth_failed"
route = "orders"
reason = "bad_signature"
threshold = 3
window = "30s"
cooldown = "1h"
"#
    );
    let c = load(&src).unwrap();
    let names: Vec<&str> = c.alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "auth_failed_spike",
            "rate_limited_spike",
            "upstream_error_spike",
            "auth_failed_orders_bad_signature_spike"
        ]
    );
    let replaced = &c.alerts[1];
    assert!(!replaced.builtin);
    assert_eq!(
        (replaced.threshold, replaced.window),
        (20, Duration::from_secs(60))
    );
    // The cooldown defaults to the window.
    assert_eq!(replaced.cooldown, Duration::from_secs(60));
    let filtered = &c.alerts[3];
    assert_eq!(filtered.route.as_deref(), Some("orders"));
    assert_eq!(filtered.reason.as_deref(), Some("bad_signature"));
    assert_eq!(filtered.cooldown, Duration::from_secs(3600));
    for rule in &c.alerts {
        let url = rule
            .webhook
            .as_ref()
            .expect("every rule gets [alerts] webhook");
        assert_eq!(
            url.expose_secret(),
            "https://hooks.example.com/T0/hunter2-token"
        );
    }

    let off = format!(
        "{MINIMAL}
[alerts]
builtin = false
"
    );
    assert!(load(&off).unwrap().alerts.is_empty());
}

#[test]
fn alert_rules_are_checked_where_written() {
    let rule = |body: &str| {
        format!(
            "{MINIMAL}
[[alert]]
{body}
"
        )
    };
    let cases = [
        (
            "event = \"alert\"\nthreshold = 1\nwindow = \"1m\"",
            "alert[0].event",
            "unknown event `alert`",
        ),
        (
            "event = \"auth_failed\"\nroute = \"ordrs\"\nthreshold = 1\nwindow = \"1m\"",
            "alert[0].route",
            "no route named `ordrs`",
        ),
        (
            "event = \"auth_failed\"\nthreshold = 0\nwindow = \"1m\"",
            "alert[0].threshold",
            "between 1 and 100000",
        ),
        (
            "event = \"auth_failed\"\nthreshold = 1\nwindow = \"500ms\"",
            "alert[0].window",
            "between 1s and 1d",
        ),
        (
            "event = \"auth_failed\"\nthreshold = 1\nwindow = \"1m\"\ncooldown = \"8d\"",
            "alert[0].cooldown",
            "between 1s and 7d",
        ),
        (
            "event = \"auth_failed\"\nthreshold = 1\nwindow = \"1m\"\n[[alert]]\nevent = \"auth_failed\"\nthreshold = 2\nwindow = \"1m\"",
            "alert[1].name",
            "duplicate alert name `auth_failed_spike`",
        ),
    ];
    for (body, key, fragment) in cases {
        let src = rule(body);
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains(fragment), "{err}");
        let at = src.lines().nth(err.line.unwrap() - 1).unwrap();
        let field = key.rsplit('.').next().unwrap();
        assert!(at.starts_with(field) || at == "[[alert]]", "{err}: {at:?}");
    }
}

#[test]
fn a_webhook_is_a_secret_reference_to_an_https_or_loopback_url() {
    let literal = "https://hooks.example.com/T0/hunter2-token";
    for key in ["alerts.webhook", "alert[0].webhook"] {
        let src = match key {
            "alerts.webhook" => format!("{MINIMAL}\n[alerts]\nwebhook = \"{literal}\"\n"),
            _ => format!(
                "{MINIMAL}\n[[alert]]\nevent = \"forbidden\"\nthreshold = 1\nwindow = \"1m\"\nwebhook = \"{literal}\"\n"
            ),
        };
        let err = load_err(&src);
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
        assert!(err.message.contains("write it as a reference"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let allowed = format!("allow_literal_secrets = true\n{src}");
        assert!(load(&allowed).is_ok(), "{key} with allow_literal_secrets");
    }
    // Plain http leaves the host only for a loopback relay; the URL is never quoted.
    let err = load_err(&format!(
        "{MINIMAL}\n[alerts]\nwebhook = \"${{env:PLAIN_WEBHOOK}}\"\n"
    ));
    assert_eq!(err.key.as_deref(), Some("alerts.webhook"), "{err}");
    assert!(err.message.contains("must be https"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let local = format!(
        "allow_literal_secrets = true\n{MINIMAL}\n[alerts]\nwebhook = \"http://127.0.0.1:9/hook\"\n"
    );
    assert!(load(&local).is_ok());
}
