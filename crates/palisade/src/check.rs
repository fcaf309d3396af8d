//! `palisade check`: the checklist read from a gateway config, without sending a request.
//!
//! Input: a config that loads (one that does not is exit 2 before any of this). Output: the
//! same ten-row report as `palisade audit` (table, JSON, SARIF or JUnit), each row judged
//! from what the config makes the gateway do. Exit status: 0 when no control fails, 1 when
//! one does.
//!
//! What a config cannot show is NOT TESTED, never PASS: a config says nothing about the
//! repository's history or its dependencies (controls 9's history half and 10), which
//! `palisade audit --repo --advisories` covers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use http::Method;
use palisade_audit::model::{ControlResult, Finding, Report, Severity};
use palisade_audit::report::{self, Format};
use palisade_gateway::Config;
use palisade_gateway::config::{RouteAuth, RouteConfig, TlsSource};

use crate::EXIT_BAD_CONFIG;

/// Exit status when a control fails (as `audit`).
const EXIT_CONTROL_FAILED: u8 = 1;

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The config file.
    #[arg(short, long, default_value = "palisade.toml")]
    config: PathBuf,
    /// Also resolve `${env:NAME}` from this file (NAME=value lines; the process
    /// environment wins).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// table, json, sarif or junit.
    #[arg(long, default_value = "table")]
    format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Instead of the report, write Prometheus alerting rules equivalent to the config's
    /// alert rules to PATH (`-` or no PATH: stdout), for teams that alert through
    /// Alertmanager.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "-")]
    emit_prometheus_rules: Option<PathBuf>,
}

pub(crate) fn run(args: CheckArgs) -> ExitCode {
    let config = match Config::load_with_env_file(&args.config, args.env_file.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("palisade: error: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    // Schemas are compiled when serve builds its pipeline, not when the config loads: the
    // same build here, so a config `check` passes is one `serve` starts with.
    if let Err(error) = palisade_gateway::Validation::build(&config) {
        eprintln!("palisade: error: {error}");
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    if let Some(rules) = &args.emit_prometheus_rules {
        let yaml = palisade_gateway::observe::alerts::prometheus_rules(&config.alerts);
        return write_out(
            Some(rules).filter(|p| p.as_os_str() != "-"),
            &yaml,
            ExitCode::SUCCESS,
        );
    }
    let report = report(&config, &args.config);
    let status = if report.failed() {
        ExitCode::from(EXIT_CONTROL_FAILED)
    } else {
        ExitCode::SUCCESS
    };
    write_out(
        args.out.as_ref(),
        &report::render(&report, args.format),
        status,
    )
}

/// `text` to `path` (stdout without one); `status` unless writing fails (exit 2).
fn write_out(path: Option<&PathBuf>, text: &str, status: ExitCode) -> ExitCode {
    let Some(path) = path else {
        print!("{text}");
        return status;
    };
    match std::fs::write(path, text) {
        Ok(()) => status,
        Err(error) => {
            eprintln!("palisade: error: cannot write {}: {error}", path.display());
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

/// HSTS shorter than this is not worth much (the common recommendation, and the audit's).
const MIN_HSTS_SECONDS: u64 = 180 * 24 * 3600;

/// The report for `config`, read from `path`.
pub(crate) fn report(config: &Config, path: &Path) -> Report {
    Report {
        command: "check",
        target: path.display().to_string(),
        requests: 0,
        max_requests: 0,
        controls: vec![
            tls(config),
            authentication(config),
            authorization(config),
            rate_limiting(config),
            validation(config),
            errors(),
            logging(config),
            gateway(config),
            secrets(config),
            ControlResult::not_tested(
                10,
                "a config does not list dependencies: run `palisade audit URL --repo . --advisories DB`",
            ),
        ],
    }
}

fn finding(control: u8, severity: Severity, title: &str, at: &str, evidence: String) -> Finding {
    Finding::new(control, severity, title, Some(at.to_owned()), evidence)
}

fn route_at(route: &RouteConfig) -> String {
    let methods: Vec<&str> = route.methods.iter().map(Method::as_str).collect();
    format!(
        "route `{}` ({} {})",
        route.name,
        methods.join(","),
        route.path
    )
}

fn tls(config: &Config) -> ControlResult {
    let mut found = Vec::new();
    match &config.server.tls {
        None => found.push(finding(
            1,
            Severity::High,
            "no TLS listener",
            "server.tls",
            "without [server.tls] every credential and token crosses the network in clear; the http listener serves the API itself".to_owned(),
        )),
        Some(tls) => {
            if tls.source == TlsSource::SelfSigned {
                found.push(finding(
                    1,
                    Severity::Low,
                    "self-signed certificate",
                    "server.tls.self_signed",
                    "clients cannot verify the gateway; use a certificate from a CA outside development".to_owned(),
                ));
            }
            let max_age = hsts_max_age(&tls.hsts);
            if max_age < MIN_HSTS_SECONDS {
                found.push(finding(
                    1,
                    Severity::Medium,
                    "HSTS max-age under 180 days",
                    "server.tls.hsts",
                    format!("max-age={max_age}: browsers forget to insist on https too soon"),
                ));
            }
            if config.server.http.is_some() {
                found.push(finding(
                    1,
                    Severity::Info,
                    "plain http only redirects",
                    "server.http",
                    "with TLS configured, the http listener answers every request with 308 to https".to_owned(),
                ));
            }
        }
    }
    ControlResult::conclude(1, found, true, "")
}

fn hsts_max_age(hsts: &str) -> u64 {
    hsts.to_ascii_lowercase()
        .split(';')
        .find_map(|part| part.trim().strip_prefix("max-age=").map(str::to_owned))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn writes(route: &RouteConfig) -> bool {
    route.methods.iter().any(|m| {
        matches!(
            *m,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
    })
}

/// A route whose purpose is to check a password or mint a credential.
fn login_like(route: &RouteConfig) -> bool {
    if route.login.is_some() {
        return true;
    }
    let text = format!("{} {}", route.name, route.path).to_ascii_lowercase();
    [
        "login", "signin", "sign-in", "sign_in", "token", "password", "session", "auth",
    ]
    .iter()
    .any(|word| text.contains(word))
}

fn authentication(config: &Config) -> ControlResult {
    let mut found = Vec::new();
    for route in &config.routes {
        if route.auth != RouteAuth::Public {
            continue;
        }
        let (severity, title, evidence) = if writes(route) && !login_like(route) {
            (
                Severity::Low,
                "public route that changes data",
                "anyone can call it without credentials; mark it public only if that is its purpose (sign-up, a webhook with its own signature)",
            )
        } else {
            (
                Severity::Info,
                "public on purpose",
                "`auth = \"public\"`: no credentials needed",
            )
        };
        let at = route_at(route);
        found.push(finding(
            2,
            severity,
            title,
            &at,
            format!("{at}: {evidence}"),
        ));
    }
    found.push(finding(
        2,
        Severity::Info,
        "private by default",
        "route.auth",
        format!(
            "{} of {} routes need an API key or a JWT; forged, expired and `alg: none` tokens get 401",
            config.routes.iter().filter(|r| r.auth != RouteAuth::Public).count(),
            config.routes.len()
        ),
    ));
    ControlResult::conclude(2, found, true, "")
}

/// Path parameters that name one object (`{id}`, `{orderId}`, `{user_id}`, `{uuid}`).
fn id_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| p.trim_start_matches('*'))
        .filter(|p| id_like(p))
        .collect()
}

/// `id`, `uuid`, `guid`; `*_id`, `*-id`, `*_uuid`; camelCase `orderId`, `userID`,
/// `fileUuid`. Not every name that merely ends in the letters (`{grid}`, `{paid}`).
fn id_like(param: &str) -> bool {
    let lower = param.to_ascii_lowercase();
    if matches!(lower.as_str(), "id" | "uuid" | "guid") {
        return true;
    }
    let separated = ["_id", "-id", "_uuid", "-uuid", "_guid", "-guid"]
        .iter()
        .any(|s| lower.ends_with(s));
    // camelCase: the suffix starts with a capital after a lower-case letter or a digit.
    let camel = ["Id", "ID", "Uuid", "UUID", "Guid", "GUID"]
        .iter()
        .any(|s| {
            param.strip_suffix(s).is_some_and(|head| {
                head.chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            })
        });
    separated || camel
}

fn authorization(config: &Config) -> ControlResult {
    let mut found = Vec::new();
    for route in &config.routes {
        if route.auth == RouteAuth::Public || route.owner.is_some() {
            continue;
        }
        let ids = id_params(&route.path);
        if ids.is_empty() {
            continue;
        }
        found.push(finding(
            3,
            Severity::Low,
            "object route without an owner rule",
            &route_at(route),
            format!(
                "`{{{}}}` names an object, and nothing checks that it belongs to the caller (BOLA/IDOR); add `owner = {{ … }}` (or `mode = \"report\"` first)",
                ids.join("}, {")
            ),
        ));
    }
    let owned = config.routes.iter().filter(|r| r.owner.is_some()).count();
    found.push(finding(
        3,
        Severity::Info,
        "owner rules",
        "route.owner",
        format!("{owned} routes check object ownership"),
    ));
    ControlResult::conclude(3, found, true, "")
}

/// Requests per second a set of policies allows at most (the tightest one).
fn tightest_rate(policies: &[palisade_gateway::config::Policy]) -> Option<f64> {
    policies
        .iter()
        .map(|p| f64::from(p.limit) / p.window.as_secs_f64().max(1e-9))
        .min_by(f64::total_cmp)
}

fn rate_limiting(config: &Config) -> ControlResult {
    let rl = &config.rate_limit;
    let mut found = Vec::new();
    let default_rate = tightest_rate(&rl.default);
    for route in config.routes.iter().filter(|r| login_like(r)) {
        let own = tightest_rate(&route.rate_limit);
        let stricter = match (own, default_rate) {
            (Some(own), Some(default)) => own < default,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !stricter {
            found.push(finding(
                4,
                Severity::Medium,
                "login-like route without a stricter limit",
                &route_at(route),
                match own {
                    None => "only the default limit applies (or none): passwords can be guessed at the API's full rate".to_owned(),
                    Some(_) => "its own limit is no stricter than the default".to_owned(),
                },
            ));
        }
    }
    let unlimited: Vec<&str> = (config.routes.iter())
        .filter(|r| r.rate_limit.is_empty() && rl.default.is_empty())
        .map(|r| r.name.as_str())
        .collect();
    if !unlimited.is_empty() {
        found.push(finding(
            4,
            Severity::Low,
            "routes without any rate limit",
            "rate_limit.default",
            format!(
                "no `[rate_limit] default` and no own policy: {}",
                unlimited.join(", ")
            ),
        ));
    }
    if rl.auth_failures.is_none() {
        found.push(finding(
            4,
            Severity::Low,
            "no lockout after failed authentication",
            "rate_limit.auth_failures",
            "without `auth_failures`, a password or key can be guessed slowly from many addresses"
                .to_owned(),
        ));
    }
    ControlResult::conclude(4, found, true, "")
}

fn validation(config: &Config) -> ControlResult {
    let mut found = Vec::new();
    let validated = config
        .routes
        .iter()
        .filter(|r| r.validation.is_some())
        .count();
    let bodies: Vec<&RouteConfig> = (config.routes.iter())
        .filter(|r| {
            r.methods
                .iter()
                .any(|m| matches!(*m, Method::POST | Method::PUT | Method::PATCH))
        })
        .collect();
    for route in &bodies {
        let has_body_schema = route.validation.as_ref().is_some_and(|v| v.body.is_some());
        if !has_body_schema {
            found.push(finding(
                5,
                Severity::Low,
                "body accepted without a schema",
                &route_at(route),
                "only size, depth and duplicate-member limits apply: add `validate = { body = … }` or an OpenAPI operation".to_owned(),
            ));
        }
    }
    if validated == 0 && !config.routes.is_empty() {
        found.push(finding(
            5,
            Severity::Medium,
            "no schema validation",
            "openapi.spec",
            "no route validates its input: set `[openapi] spec` or `validate = { … }` per route"
                .to_owned(),
        ));
    }
    ControlResult::conclude(5, found, true, "")
}

fn errors() -> ControlResult {
    ControlResult::conclude(
        6,
        vec![finding(
            6,
            Severity::Info,
            "one rescue point",
            "gateway",
            "every error is problem+json with a request id; upstream 5xx bodies, `Server` and `X-Powered-By` never reach clients; a panic becomes a generic 500 (built in, not configurable)".to_owned(),
        )],
        true,
        "",
    )
}

fn logging(config: &Config) -> ControlResult {
    let mut found = Vec::new();
    if config.alerts.is_empty() {
        found.push(finding(
            7,
            Severity::Low,
            "no alert rules",
            "alerts.builtin",
            "`builtin = false` and no `[[alert]]`: a spike of failed logins goes unnoticed unless Prometheus rules cover it (`check --emit-prometheus-rules`)".to_owned(),
        ));
    } else if config.alerts.iter().all(|a| a.webhook.is_none()) {
        found.push(finding(
            7,
            Severity::Low,
            "alerts are only logged",
            "alerts.webhook",
            format!(
                "{} rules and no webhook: nobody is told when one fires",
                config.alerts.len()
            ),
        ));
    }
    found.push(finding(
        7,
        Severity::Info,
        "security events",
        "log",
        "JSON lines with one schema; keys, JWTs and card numbers masked in every line; query values redacted".to_owned(),
    ));
    ControlResult::conclude(7, found, true, "")
}

fn gateway(config: &Config) -> ControlResult {
    let mut found = Vec::new();
    if let Some(admin) = config.server.admin
        && !admin.ip().is_loopback()
    {
        found.push(finding(
            8,
            Severity::Medium,
            "admin listener on a non-loopback address",
            "server.admin",
            format!("{admin}: keys, reloads and metrics are reachable from the network (behind the admin token); bind it to 127.0.0.1 or a private interface"),
        ));
    }
    for (i, net) in config.server.trusted_proxies.iter().enumerate() {
        if net.prefix == 0 {
            found.push(finding(
                8,
                Severity::High,
                "every address is a trusted proxy",
                &format!("server.trusted_proxies[{i}]"),
                "any client can write X-Forwarded-For and choose its own address, defeating per-ip limits and lockouts".to_owned(),
            ));
        }
    }
    for upstream in &config.upstreams {
        let plain = upstream.url.scheme_str() == Some("http");
        let local = upstream.url.host().is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if plain && !local {
            found.push(finding(
                8,
                Severity::Low,
                "plain http to a remote upstream",
                &format!("upstream `{}`", upstream.name),
                "the verified identity headers and the bodies cross the network unencrypted; use https (with `ca` for a private CA)".to_owned(),
            ));
        }
    }
    ControlResult::conclude(8, found, true, "")
}

fn secrets(config: &Config) -> ControlResult {
    let found = config
        .literal_secrets
        .iter()
        .map(|key| {
            finding(
                9,
                Severity::High,
                "secret written in the config file",
                key,
                "accepted only because `allow_literal_secrets = true`: the file gets copied, committed and pasted; write `${env:NAME}` or `${file:PATH}`".to_owned(),
            )
        })
        .collect();
    ControlResult::conclude(9, found, true, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_like_parameters_are_told_apart() {
        assert_eq!(id_params("/api/orders/{id}"), ["id"]);
        assert_eq!(
            id_params("/users/{userId}/files/{file_id}"),
            ["userId", "file_id"]
        );
        assert_eq!(id_params("/a/{uuid}"), ["uuid"]);
        assert!(id_params("/files/{*rest}").is_empty());
        assert!(id_params("/search/{term}").is_empty());
        assert_eq!(
            id_params("/a/{ID}/{order-id}/{fileUUID}/{guid}/{item_uuid}"),
            ["ID", "order-id", "fileUUID", "guid", "item_uuid"]
        );
        // Names that only end in the letters are not ids.
        assert!(id_params("/maps/{grid}/{paid}/{valid}/{squid}").is_empty());
    }

    #[test]
    fn hsts_max_age_is_read_in_any_case_and_order() {
        assert_eq!(
            hsts_max_age("max-age=31536000; includeSubDomains"),
            31_536_000
        );
        assert_eq!(hsts_max_age("includeSubDomains; Max-Age=600"), 600);
        assert_eq!(hsts_max_age("preload"), 0);
    }
}
