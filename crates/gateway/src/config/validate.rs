//! Raw config → validated config.
//!
//! Input: the `RawConfig` serde produced, the config file's path, its `KeyIndex` and an
//! environment for `${env:…}`. Output: a `model::Config`: every string's references
//! resolved, addresses, URLs, networks and methods parsed, paths resolved against the config
//! file's directory, defaults applied. Failure: the first problem, as a `ConfigError` naming
//! the file, the line and the key. Sections are checked in file order (server, limits,
//! upstreams, routes), so the first error reported is near the top of the file.
//!
//! Each key is one line here: `ctx.parse(key, raw, parser)` resolves references, runs a
//! plain `fn(&str) -> Result<T, String>` and locates any error at `key`.

use std::env::VarError;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Uri};
use secrecy::SecretString;

use super::locate::KeyIndex;
use super::model::{
    AlertRule, AuthConfig, AuthFailures, BodySpec, CollectionMode, Config, IpNet, JwtAlgorithm,
    JwtConfig, JwtKeySource, LimitsConfig, LogOutput, LoginRule, OnCreate, OnStoreError, OwnerMode,
    OwnerRule, OwnerSource, PerKey, Policy, RateLimitConfig, RateStoreKind, ResponseMode,
    RouteAuth, RouteConfig, RouteValidation, SECURITY_EVENTS, SecretUrl, ServerConfig, StoreConfig,
    TelemetryConfig, TlsConfig, TlsSource, UpstreamConfig, builtin_rules,
};
use super::raw::{
    RawAlert, RawAlerts, RawAuthFailures, RawCollectionMode, RawConfig, RawFieldRule, RawJwt,
    RawLimits, RawLog, RawOnCreate, RawOnStoreError, RawOwner, RawOwnerMode, RawPer, RawPolicies,
    RawPolicy, RawRateLimitHeaders, RawRoute, RawRouteAuth, RawSecrets, RawServer, RawStore,
    RawTelemetry, RawTls, RawUpstream,
};
use super::{ConfigError, LoadCtx, refs};

pub(super) fn validate(
    raw: &RawConfig,
    file: &Path,
    keys: KeyIndex,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<Config, ConfigError> {
    let dir = config_dir(file);
    let ctx = LoadCtx {
        file,
        dir: &dir,
        keys: &keys,
        env,
        allow_literal_secrets: raw.allow_literal_secrets,
        literal_secrets: Default::default(),
    };

    let server = server(&raw.server, &ctx)?;
    let limits = limits(&raw.limits, &ctx)?;
    let log = log(&raw.log, &ctx)?;
    let mut upstreams: Vec<UpstreamConfig> = Vec::with_capacity(raw.upstreams.len());
    for (i, u) in raw.upstreams.iter().enumerate() {
        let u = upstream(i, u, &ctx)?;
        if let Some(first) = upstreams.iter().position(|other| other.name == u.name) {
            return Err(duplicate(&ctx, "upstream", &u.name, i, first));
        }
        upstreams.push(u);
    }
    let rate_limit = RateLimitConfig {
        default: policies(
            "rate_limit.default",
            raw.rate_limit.default.as_ref(),
            "default",
            &ctx,
        )?,
        headers_always: raw.rate_limit.headers == RawRateLimitHeaders::Always,
        max_keys: usize::try_from(raw.rate_limit.max_keys)
            .ok()
            .filter(|n| (1_000..=100_000_000).contains(n))
            .ok_or_else(|| {
                ctx.error("rate_limit.max_keys", "must be between 1000 and 100000000")
            })?,
        store: {
            let store = ctx.parse("rate_limit.store", &raw.rate_limit.store, rate_store)?;
            if let RateStoreKind::Redis(url) = &store {
                ctx.url_password_written_as_reference(
                    "rate_limit.store",
                    &raw.rate_limit.store,
                    url.expose_secret(),
                    false,
                )?;
            }
            store
        },
        on_store_error: match raw.rate_limit.on_store_error {
            RawOnStoreError::Local => OnStoreError::Local,
            RawOnStoreError::Deny => OnStoreError::Deny,
            RawOnStoreError::Allow => OnStoreError::Allow,
        },
        store_timeout: {
            let timeout = raw.rate_limit.store_timeout.0;
            if timeout.is_zero() || timeout > Duration::from_secs(5) {
                return Err(ctx.error(
                    "rate_limit.store_timeout",
                    "must be between 1ms and 5s: a request never waits long on the store",
                ));
            }
            timeout
        },
        auth_failures: raw
            .rate_limit
            .auth_failures
            .as_ref()
            .map(|a| auth_failures(a, &ctx))
            .transpose()?,
    };
    let store = raw.store.as_ref().map(|s| store(s, &ctx)).transpose()?;
    let auth = AuthConfig {
        jwt: raw.auth.jwt.as_ref().map(|j| jwt(j, &ctx)).transpose()?,
    };
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("route[{i}]");
        let r = route(&key, r, &upstreams, &ctx)?;
        check_route_auth(&key, &r, store.is_some(), auth.jwt.is_some(), &ctx)?;
        if let Some(first) = routes.iter().position(|other| other.name == r.name) {
            return Err(duplicate(&ctx, "route", &r.name, i, first));
        }
        routes.push(r);
    }
    if let Some(o) = &raw.openapi {
        let has_store = store.is_some();
        let has_jwt = auth.jwt.is_some();
        let build = |key: &str, r: &RawRoute| -> Result<RouteConfig, ConfigError> {
            let r = route(key, r, &upstreams, &ctx)?;
            check_route_auth(key, &r, has_store, has_jwt, &ctx)?;
            Ok(r)
        };
        routes = super::openapi_routes::merge(o, routes, &upstreams, &ctx, &build)?;
        for (i, r) in routes.iter().enumerate().skip(raw.routes.len()) {
            if let Some(first) = routes[..i].iter().position(|other| other.name == r.name) {
                return Err(ctx.error(
                    "openapi.spec",
                    format!("two routes are named `{}` (the operation's id clashes with route {first}): rename one", r.name),
                ));
            }
        }
    }

    let alerts = alerts(&raw.alerts, &raw.alert_rules, &routes, &ctx)?;
    let telemetry = telemetry(&raw.telemetry, &ctx)?;

    Ok(Config {
        source: file.to_path_buf(),
        server,
        limits,
        upstreams,
        routes,
        store,
        auth,
        rate_limit,
        log,
        alerts,
        literal_secrets: ctx.literal_secrets.take(),
        telemetry,
        keys,
        env_file: None,
    })
}

/// One policy or a list, at `key`; `prefix` names unnamed policies (`default`,
/// `route.login`, with `.2` … for the later ones of a list).
fn policies(
    key: &str,
    raw: Option<&RawPolicies>,
    prefix: &str,
    ctx: &LoadCtx<'_>,
) -> Result<Vec<Policy>, ConfigError> {
    let list: Vec<(String, &RawPolicy)> = match raw {
        None => return Ok(Vec::new()),
        Some(RawPolicies::One(p)) => vec![(key.to_owned(), p)],
        Some(RawPolicies::Many(ps)) => ps
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("{key}[{i}]"), p))
            .collect(),
    };
    let mut out: Vec<Policy> = Vec::with_capacity(list.len());
    for (i, (at, p)) in list.into_iter().enumerate() {
        let field = |f: &str| format!("{at}.{f}");
        if p.limit == 0 {
            return Err(ctx.error(&field("limit"), "must be at least 1"));
        }
        let burst = p.burst.unwrap_or(p.limit);
        if burst == 0 {
            return Err(ctx.error(&field("burst"), "must be at least 1"));
        }
        let per = match &p.per {
            RawPer::Kind(kind) => match kind.as_str() {
                "ip" => PerKey::Ip,
                "client" => PerKey::Client,
                "subject" => PerKey::Subject,
                "key" => PerKey::Key,
                "route" => PerKey::Route,
                other => {
                    return Err(ctx.error(
                        &field("per"),
                        format!("unknown `{other}`: expected ip, client, subject, key, route, {{ header = \"…\" }} or {{ body = \"/…\" }}"),
                    ));
                }
            },
            RawPer::Body { body } => PerKey::Body(ctx.parse(&field("per"), body, json_pointer)?),
            RawPer::Header { header } => PerKey::Header(
                http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    ctx.error(&field("per"), format!("invalid header name `{header}`"))
                })?,
            ),
        };
        let name = match &p.name {
            Some(name) => ctx.parse(&field("name"), name, policy_name)?,
            None if i == 0 => prefix.to_owned(),
            None => format!("{prefix}.{}", i + 1),
        };
        if out.iter().any(|o| o.name == name) {
            return Err(ctx.error(&field("name"), format!("two policies are named `{name}`")));
        }
        out.push(Policy {
            name,
            limit: p.limit,
            window: p.window.0,
            burst,
            per,
        });
    }
    Ok(out)
}

/// `memory`, or a `redis://` URL (checked here so a typo fails at load, not at traffic).
fn rate_store(s: &str) -> Result<RateStoreKind, String> {
    if s == "memory" {
        return Ok(RateStoreKind::Memory);
    }
    if s.starts_with("rediss://") {
        return Err("`rediss://` (Redis over TLS) is not supported yet: use `redis://` on a private network".to_owned());
    }
    if !s.starts_with("redis://") {
        // Not quoted: the URL may carry a password.
        return Err("expected `memory` or `redis://HOST:PORT/DB`".to_owned());
    }
    redis::Client::open(s)
        .map_err(|_| "invalid Redis URL: expected `redis://[:PASSWORD@]HOST:PORT/DB`".to_owned())?;
    Ok(RateStoreKind::Redis(SecretUrl::new(s)))
}

fn auth_failures(a: &RawAuthFailures, ctx: &LoadCtx<'_>) -> Result<AuthFailures, ConfigError> {
    let at = |f: &str| format!("rate_limit.auth_failures.{f}");
    if a.limit == 0 {
        return Err(ctx.error(&at("limit"), "must be at least 1"));
    }
    if a.window.0.is_zero() {
        return Err(ctx.error(&at("window"), "must be longer than zero"));
    }
    let (mut per_ip, mut per_account) = (false, false);
    for (i, per) in a.per.iter().enumerate() {
        match per.as_str() {
            "ip" => per_ip = true,
            "account" => per_account = true,
            other => {
                return Err(ctx.error(
                    &format!("rate_limit.auth_failures.per[{i}]"),
                    format!("unknown `{other}`: expected `ip` or `account`"),
                ));
            }
        }
    }
    if !per_ip && !per_account {
        return Err(ctx.error(&at("per"), "name `ip`, `account` or both"));
    }
    Ok(AuthFailures {
        limit: a.limit,
        window: a.window.0,
        per_ip,
        per_account,
    })
}

fn store(s: &RawStore, ctx: &LoadCtx<'_>) -> Result<StoreConfig, ConfigError> {
    let url = ctx.parse("store.url", &s.url, |url| {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("`sqlite://` needs a file name, e.g. `sqlite://palisade.db`".to_owned());
            }
            // Relative database files live beside the config, like every other path.
            Ok(format!("sqlite://{}", ctx.dir.join(path).display()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(url.to_owned())
        } else {
            // Not quoted: a database URL may carry a password.
            Err("expected `sqlite://FILE` or `postgres://…`".to_owned())
        }
    })?;
    if !url.starts_with("sqlite://") {
        ctx.url_password_written_as_reference("store.url", &s.url, &url, false)?;
    }
    let key_peppers = secrets("store.key_pepper", &s.key_pepper, ctx, |p| {
        if p.len() < 32 {
            return Err(
                "the pepper must be at least 32 characters (e.g. `openssl rand -base64 48`)"
                    .to_owned(),
            );
        }
        Ok(())
    })?;
    Ok(StoreConfig {
        url: SecretUrl::new(url),
        key_peppers,
        rotation_overlap: s.rotation_overlap.0,
    })
}

fn jwt(j: &RawJwt, ctx: &LoadCtx<'_>) -> Result<JwtConfig, ConfigError> {
    let issuer = ctx.parse("auth.jwt.issuer", &j.issuer, |s| {
        if s.is_empty() {
            Err("the issuer is empty".to_owned())
        } else {
            Ok(s.to_owned())
        }
    })?;
    if j.audiences.is_empty() {
        return Err(ctx.error("auth.jwt.audiences", "at least one audience is required"));
    }
    let audiences = (j.audiences.iter().enumerate())
        .map(|(i, a)| ctx.string(&format!("auth.jwt.audiences[{i}]"), a))
        .collect::<Result<Vec<_>, _>>()?;
    if j.algorithms.is_empty() {
        return Err(ctx.error(
            "auth.jwt.algorithms",
            "at least one algorithm is required, e.g. `[\"RS256\"]`",
        ));
    }
    let algorithms = (j.algorithms.iter().enumerate())
        .map(|(i, a)| ctx.parse(&format!("auth.jwt.algorithms[{i}]"), a, jwt_algorithm))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = [
        j.jwks_url.is_some(),
        j.jwks_file.is_some(),
        j.discovery_url.is_some(),
        j.secret.is_some(),
    ];
    if sources.iter().filter(|set| **set).count() != 1 {
        return Err(ctx.error(
            "auth.jwt",
            "set exactly one of `jwks_url`, `jwks_file`, `discovery_url` or `secret`",
        ));
    }
    let keys = if let Some(url) = &j.jwks_url {
        JwtKeySource::JwksUrl(ctx.parse("auth.jwt.jwks_url", url, key_url)?)
    } else if let Some(url) = &j.discovery_url {
        JwtKeySource::Discovery(ctx.parse("auth.jwt.discovery_url", url, key_url)?)
    } else if let Some(file) = &j.jwks_file {
        JwtKeySource::JwksFile(ctx.path("auth.jwt.jwks_file", file)?)
    } else {
        let none = RawSecrets::Many(Vec::new());
        let secret = j.secret.as_ref().unwrap_or(&none);
        JwtKeySource::Secret(secrets("auth.jwt.secret", secret, ctx, |s| {
            // RFC 7518 §3.2: an HMAC key at least as long as the hash output.
            if s.len() < 32 {
                return Err("an HMAC secret must be at least 32 bytes".to_owned());
            }
            Ok(())
        })?)
    };
    // HMAC and public-key algorithms never mix: a verifier holding public keys that also
    // accepted HS256 could be fed a token "signed" with the public key (key confusion).
    let hmac = matches!(keys, JwtKeySource::Secret(_));
    if let Some(i) = algorithms.iter().position(|a| a.is_hmac() != hmac) {
        let message = if hmac {
            "with `secret`, only HS256, HS384 and HS512 are allowed"
        } else {
            "HS256/384/512 need `secret`; with public keys they would allow key confusion"
        };
        return Err(ctx.error(&format!("auth.jwt.algorithms[{i}]"), message));
    }
    let roles_claim = ctx.string("auth.jwt.roles_claim", &j.roles_claim)?;
    // Bounds that keep a typo from turning the issuer into a target or tokens immortal.
    if j.jwks_cooldown.0 < Duration::from_secs(1) {
        return Err(ctx.error("auth.jwt.jwks_cooldown", "must be at least 1s"));
    }
    if j.jwks_refresh.0 < Duration::from_secs(60) {
        return Err(ctx.error("auth.jwt.jwks_refresh", "must be at least 1m"));
    }
    if j.leeway.0 > Duration::from_secs(300) {
        return Err(ctx.error("auth.jwt.leeway", "must be at most 5m"));
    }
    let max_token_bytes = usize::try_from(j.max_token_bytes.0)
        .ok()
        .filter(|n| (64..=(64 << 10)).contains(n))
        .ok_or_else(|| ctx.error("auth.jwt.max_token_bytes", "must be between 64B and 64KiB"))?;
    Ok(JwtConfig {
        issuer,
        audiences,
        algorithms,
        keys,
        roles_claim,
        leeway: j.leeway.0,
        max_token_bytes,
        jwks_refresh: j.jwks_refresh.0,
        jwks_cooldown: j.jwks_cooldown.0,
    })
}

/// The effective alert rules: the built-ins (unless `builtin = false`), each replaced by an
/// `[[alert]]` of its name, then the other `[[alert]]`s in file order.
fn alerts(
    a: &RawAlerts,
    rules: &[RawAlert],
    routes: &[RouteConfig],
    ctx: &LoadCtx<'_>,
) -> Result<Vec<AlertRule>, ConfigError> {
    let webhook = |key: &str, raw: Option<&str>| -> Result<Option<SecretString>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        ctx.secret_written_as_reference(key, raw)?;
        ctx.parse(key, raw, webhook_url).map(Some)
    };
    let default_webhook = webhook("alerts.webhook", a.webhook.as_deref())?;
    let mut out: Vec<AlertRule> = Vec::new();
    if a.builtin {
        out.extend(builtin_rules(default_webhook.clone()));
    }
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let at = |f: &str| format!("alert[{i}].{f}");
        let event = ctx.parse(&at("event"), &r.event, |e| {
            match SECURITY_EVENTS.contains(&e) {
                true => Ok(e.to_owned()),
                false => Err(format!(
                    "unknown event `{e}`: expected one of {}",
                    SECURITY_EVENTS.join(", ")
                )),
            }
        })?;
        let route = ctx.parse_opt(&at("route"), r.route.as_deref(), |name| {
            match routes.iter().any(|route| route.name == name) {
                true => Ok(name.to_owned()),
                false => Err(format!("no route named `{name}`")),
            }
        })?;
        let reason = ctx.parse_opt(&at("reason"), r.reason.as_deref(), name)?;
        let name = match &r.name {
            Some(n) => ctx.parse(&at("name"), n, name)?,
            None => {
                let parts = [Some(&event), route.as_ref(), reason.as_ref()];
                let mut name = parts
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("_");
                name.push_str("_spike");
                name
            }
        };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            let message = format!(
                "duplicate alert name `{name}` (first used by `alert[{first}]`); name the rules apart"
            );
            return Err(ctx.error(&at("name"), message));
        }
        seen.push((name.clone(), i));
        if !(1..=100_000).contains(&r.threshold) {
            return Err(ctx.error(&at("threshold"), "must be between 1 and 100000"));
        }
        let window = r.window.0;
        if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
            return Err(ctx.error(&at("window"), "must be between 1s and 1d"));
        }
        let cooldown = r.cooldown.map_or(window, |c| c.0);
        if cooldown < Duration::from_secs(1) || cooldown > Duration::from_secs(7 * 86_400) {
            return Err(ctx.error(&at("cooldown"), "must be between 1s and 7d"));
        }
        let rule = AlertRule {
            name,
            event,
            route,
            reason,
            threshold: r.threshold,
            window,
            cooldown,
            webhook: webhook(&at("webhook"), r.webhook.as_deref())?.or(default_webhook.clone()),
            builtin: false,
        };
        match out.iter_mut().find(|b| b.builtin && b.name == rule.name) {
            Some(builtin) => *builtin = rule,
            None => out.push(rule),
        }
    }
    Ok(out)
}

/// `[telemetry]`: `None` unless `otlp_endpoint` is set. A palisade built without the
/// `otel` feature refuses the endpoint rather than run without the traces it asks for.
fn telemetry(t: &RawTelemetry, ctx: &LoadCtx<'_>) -> Result<Option<TelemetryConfig>, ConfigError> {
    let Some(endpoint) = &t.otlp_endpoint else {
        return Ok(None);
    };
    if !cfg!(feature = "otel") {
        return Err(ctx.error(
            "telemetry.otlp_endpoint",
            "this palisade was built without the `otel` feature, so it cannot export traces: \
             build it with `cargo build --release --features otel`, or remove the key",
        ));
    }
    let traces_url = ctx.parse("telemetry.otlp_endpoint", endpoint, otlp_traces_url)?;
    ctx.url_password_written_as_reference(
        "telemetry.otlp_endpoint",
        endpoint,
        traces_url.0.as_str(),
        true,
    )?;
    let mut headers = Vec::with_capacity(t.otlp_headers.len());
    for (name, raw) in &t.otlp_headers {
        let key = format!("telemetry.otlp_headers.{name}");
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ctx.error(&key, "not a valid header name"))?;
        ctx.secret_written_as_reference(&key, raw)?;
        let value = ctx.parse(&key, raw, |v| match http::HeaderValue::from_str(v) {
            Ok(_) => Ok(SecretString::from(v)),
            Err(_) => Err("not a valid header value".to_owned()),
        })?;
        headers.push((name, value));
    }
    let service_name = ctx.parse("telemetry.service_name", &t.service_name, |s| {
        match !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control) {
            true => Ok(s.to_owned()),
            false => Err("must be 1 to 255 characters, none a control character".to_owned()),
        }
    })?;
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        return Err(ctx.error("telemetry.sample_ratio", "must be between 0.0 and 1.0"));
    }
    Ok(Some(TelemetryConfig {
        traces_url: SecretString::from(traces_url.0.to_string()),
        headers,
        service_name,
        sample_ratio: t.sample_ratio,
    }))
}

/// A parsed URL, wrapped so that its `Debug` never prints credentials.
struct OtlpUrl(reqwest::Url);

/// The OTLP/HTTP traces URL for an endpoint: https, or http to a loopback host (a local
/// collector or agent), like every outbound URL of the config; `/v1/traces` is appended
/// to the base path unless it is already there (the `OTEL_EXPORTER_OTLP_ENDPOINT` rule).
/// Never quoted: it may carry credentials.
fn otlp_traces_url(s: &str) -> Result<OtlpUrl, String> {
    let mut url = super::outbound::parse(s, "OTLP endpoint")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the OTLP endpoint takes no query or fragment".to_owned());
    }
    if !url.path().ends_with("/v1/traces") {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(OtlpUrl(url))
}

/// At most this many secrets in one list: a rotation needs two, and each one may cost a MAC
/// per verification.
const MAX_SECRETS: usize = palisade_store::MAX_PEPPERS;

/// A secret or a list of them at `key`, current first: each written as a reference (unless
/// `allow_literal_secrets`) and accepted by `check`, at least one, at most [`MAX_SECRETS`],
/// none twice. Errors name `key` or `key[i]` and never quote a value.
fn secrets(
    key: &str,
    raw: &RawSecrets,
    ctx: &LoadCtx<'_>,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<SecretString>, ConfigError> {
    use secrecy::ExposeSecret;
    let items = raw.items(key);
    if items.is_empty() {
        return Err(ctx.error(key, "the list is empty: name at least the current secret"));
    }
    if items.len() > MAX_SECRETS {
        return Err(ctx.error(
            key,
            format!("at most {MAX_SECRETS} secrets at once (a rotation needs two: new, old)"),
        ));
    }
    let mut out: Vec<SecretString> = Vec::with_capacity(items.len());
    for (at, raw) in items {
        ctx.secret_written_as_reference(&at, raw)?;
        let value = ctx.parse(&at, raw, |s| check(s).map(|()| SecretString::from(s)))?;
        let twice = out.iter().position(|seen| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                seen.expose_secret().as_bytes(),
                value.expose_secret().as_bytes(),
            ))
        });
        if let Some(first) = twice {
            return Err(ctx.error(
                &at,
                format!("the same secret as {key}[{first}]: list each secret once"),
            ));
        }
        out.push(value);
    }
    Ok(out)
}

/// A webhook URL: https, or http to a loopback host (a local relay), like every outbound
/// URL of the config. Never quoted: it usually carries a token.
fn webhook_url(s: &str) -> Result<SecretString, String> {
    super::outbound::parse(s, "webhook")?;
    Ok(SecretString::from(s))
}

/// A private route needs a way to authenticate; without one it could only ever answer 401,
/// which is a config mistake worth stopping at load.
fn check_route_auth(
    key: &str,
    r: &RouteConfig,
    store: bool,
    jwt: bool,
    ctx: &LoadCtx<'_>,
) -> Result<(), ConfigError> {
    let missing = match r.auth {
        RouteAuth::Public => None,
        RouteAuth::Any if !store && !jwt => Some("API keys ([store]) or JWT ([auth.jwt])"),
        RouteAuth::Jwt if !jwt => Some("[auth.jwt]"),
        RouteAuth::ApiKey if !store => Some("[store] (API keys)"),
        _ => None,
    };
    match missing {
        Some(what) => Err(ctx.error(
            &format!("{key}.auth"),
            format!("route `{}` requires authentication but {what} is not configured; configure it, or mark the route `auth = \"public\"`", r.name),
        )),
        None => Ok(()),
    }
}

/// The directory relative paths start from, made absolute so that they stay right if the
/// process changes directory later.
fn config_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn server(s: &RawServer, ctx: &LoadCtx<'_>) -> Result<ServerConfig, ConfigError> {
    let http = ctx.parse_opt("server.http", s.http.as_deref(), socket_addr)?;
    let https = ctx.parse_opt("server.https", s.https.as_deref(), socket_addr)?;
    let admin = ctx.parse_opt("server.admin", s.admin.as_deref(), socket_addr)?;
    if let Some(raw) = &s.admin_token {
        ctx.secret_written_as_reference("server.admin_token", raw)?;
    }
    let admin_token = ctx.parse_opt("server.admin_token", s.admin_token.as_deref(), token)?;
    let trusted_proxies = (s.trusted_proxies.iter().enumerate())
        .map(|(i, p)| ctx.parse(&format!("server.trusted_proxies[{i}]"), p, ip_net))
        .collect::<Result<_, _>>()?;
    let tls = s.tls.as_ref().map(|t| tls(t, ctx)).transpose()?;

    if http.is_none() && https.is_none() {
        return Err(ctx.error("server", "no listener: set `http`, `https` or both"));
    }
    match (&tls, https) {
        (Some(_), None) => {
            return Err(ctx.error(
                "server.tls",
                "TLS needs an https listener: set `https` in [server], e.g. `https = \"127.0.0.1:8443\"`",
            ));
        }
        (None, Some(_)) => {
            return Err(ctx.error(
                "server.https",
                "an https listener needs [server.tls]: `cert` and `key`, or `self_signed = true`",
            ));
        }
        _ => {}
    }
    // Two listeners on one address would fail at bind time, far from the cause.
    let listeners = [
        ("server.http", http),
        ("server.https", https),
        ("server.admin", admin),
    ];
    for (i, &(key, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr.filter(|a| a.port() != 0) else {
            continue;
        };
        if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| *a == Some(addr)) {
            return Err(ctx.error(key, format!("`{addr}` is already the address of `{other}`")));
        }
    }
    // The admin API can reload config and manage keys: off loopback, it needs a token.
    if let Some(admin) = admin
        && !admin.ip().to_canonical().is_loopback()
        && admin_token.is_none()
    {
        return Err(ctx.error(
            "server.admin",
            format!(
                "the admin listener `{admin}` is not on a loopback address, so `admin_token` \
                 is required (e.g. `admin_token = \"${{env:PALISADE_ADMIN_TOKEN}}\"`)"
            ),
        ));
    }
    Ok(ServerConfig {
        http,
        https,
        admin,
        admin_token,
        tls,
        trusted_proxies,
    })
}

fn tls(t: &RawTls, ctx: &LoadCtx<'_>) -> Result<TlsConfig, ConfigError> {
    let source = match (&t.cert, &t.key, t.self_signed) {
        (None, None, true) => TlsSource::SelfSigned,
        (Some(cert), Some(key), false) => TlsSource::Files {
            cert: ctx.path("server.tls.cert", cert)?,
            key: ctx.path("server.tls.key", key)?,
        },
        (Some(_), _, true) | (_, Some(_), true) => {
            return Err(ctx.error(
                "server.tls.self_signed",
                "`self_signed = true` and `cert`/`key` exclude each other: keep one",
            ));
        }
        (Some(_), None, false) => {
            return Err(ctx.error("server.tls.key", "`cert` is set, so `key` is required"));
        }
        (None, Some(_), false) => {
            return Err(ctx.error("server.tls.cert", "`key` is set, so `cert` is required"));
        }
        (None, None, false) => {
            return Err(ctx.error(
                "server.tls",
                "set `cert` and `key`, or `self_signed = true`",
            ));
        }
    };
    let hsts = ctx.parse("server.tls.hsts", &t.hsts, hsts)?;
    Ok(TlsConfig { source, hsts })
}

/// The largest `limits.max_header_bytes` accepted.
const MAX_HEADER_BYTES: usize = 1 << 20;

fn log(l: &RawLog, ctx: &LoadCtx<'_>) -> Result<LogOutput, ConfigError> {
    let Some(file) = &l.file else {
        return Ok(LogOutput::Stdout);
    };
    if l.max_size.0 < 4 << 10 {
        return Err(ctx.error("log.max_size", "must be at least 4KiB"));
    }
    if l.keep > 1000 {
        return Err(ctx.error("log.keep", "must be at most 1000"));
    }
    Ok(LogOutput::File {
        path: ctx.path("log.file", file)?,
        max_bytes: l.max_size.0,
        keep: l.keep,
    })
}

fn limits(l: &RawLimits, ctx: &LoadCtx<'_>) -> Result<LimitsConfig, ConfigError> {
    // A head is a request line and headers: past 1 MiB it is abuse, not an API. The bound
    // also keeps arithmetic on the limit (buffer sizes derived from it) far from overflow.
    let max_header_bytes = usize::try_from(l.max_header_bytes.0)
        .ok()
        .filter(|n| (1..=MAX_HEADER_BYTES).contains(n))
        .ok_or_else(|| ctx.error("limits.max_header_bytes", "must be between 1B and 1MiB"))?;
    Ok(LimitsConfig {
        max_body: l.max_body.0,
        request_timeout: l.request_timeout.0,
        header_timeout: l.header_timeout.0,
        max_header_bytes,
        drain_timeout: l.drain_timeout.0,
        max_inspect_body: l.max_inspect_body.0,
        max_json_depth: match l.max_json_depth as usize {
            depth @ 1..=crate::json::depth::MAX_SUPPORTED => depth,
            _ => {
                return Err(ctx.error(
                    "limits.max_json_depth",
                    format!(
                        "must be between 1 and {} (the JSON parser reads no deeper)",
                        crate::json::depth::MAX_SUPPORTED
                    ),
                ));
            }
        },
    })
}

fn upstream(i: usize, u: &RawUpstream, ctx: &LoadCtx<'_>) -> Result<UpstreamConfig, ConfigError> {
    let at = |field: &str| format!("upstream[{i}].{field}");
    let name = ctx.parse(&at("name"), &u.name, name)?;
    let url = ctx.parse(&at("url"), &u.url, upstream_url)?;
    let ca = ctx.path_opt(&at("ca"), u.ca.as_deref())?;
    if ca.is_some() && url.scheme_str() != Some("https") {
        return Err(ctx.error(
            &at("ca"),
            "`ca` is only for https upstreams, and `url` is not https",
        ));
    }
    Ok(UpstreamConfig {
        name,
        url,
        timeout: u.timeout.map(|t| t.0),
        ca,
    })
}

/// One route at `key` (`route[3]`, or where an OpenAPI operation's policy was written).
fn route(
    key: &str,
    r: &RawRoute,
    upstreams: &[UpstreamConfig],
    ctx: &LoadCtx<'_>,
) -> Result<RouteConfig, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    let name = ctx.parse(&at("name"), &r.name, name)?;
    let path = ctx.parse(&at("path"), &r.path, route_path)?;
    if r.methods.is_empty() {
        return Err(ctx.error(
            &at("methods"),
            "at least one method is required, e.g. `[\"GET\"]`",
        ));
    }
    let mut methods = Vec::with_capacity(r.methods.len());
    for (j, m) in r.methods.iter().enumerate() {
        let method_key = format!("{key}.methods[{j}]");
        let m = ctx.parse(&method_key, m, method)?;
        if methods.contains(&m) {
            return Err(ctx.error(&method_key, format!("`{m}` is listed twice")));
        }
        methods.push(m);
    }
    let upstream_name = ctx.string(&at("upstream"), &r.upstream)?;
    let upstream = upstreams
        .iter()
        .position(|u| u.name == upstream_name)
        .ok_or_else(|| {
            let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
            let known = if known.is_empty() {
                "no [[upstream]] is defined".to_owned()
            } else {
                format!("known: {}", known.join(", "))
            };
            ctx.error(
                &at("upstream"),
                format!("no upstream named `{upstream_name}` ({known})"),
            )
        })?;
    let host = ctx.parse_opt(&at("host"), r.host.as_deref(), host)?;
    let auth = match r.auth {
        RawRouteAuth::Public => RouteAuth::Public,
        RawRouteAuth::Any => RouteAuth::Any,
        RawRouteAuth::Jwt => RouteAuth::Jwt,
        RawRouteAuth::ApiKey => RouteAuth::ApiKey,
    };
    let names = |key: &str, list: &[String]| {
        (list.iter().enumerate())
            .map(|(j, v)| ctx.parse(&format!("{key}[{j}]"), v, label))
            .collect::<Result<Vec<_>, _>>()
    };
    let roles = names(&at("roles"), &r.roles)?;
    let scopes = names(&at("scopes"), &r.scopes)?;
    let pointers = |key: String, rule: Option<&RawFieldRule>| match rule {
        None => Ok(Vec::new()),
        Some(rule) => (rule.deny.iter().enumerate())
            .map(|(j, p)| ctx.parse(&format!("{key}.deny[{j}]"), p, json_pointer))
            .collect::<Result<Vec<_>, _>>(),
    };
    let response_deny = pointers(at("response_fields"), r.response_fields.as_ref())?;
    let request_deny = pointers(at("request_fields"), r.request_fields.as_ref())?;
    let rate_limit = policies(
        &at("rate_limit"),
        r.rate_limit.as_ref(),
        &format!("route.{name}"),
        ctx,
    )?;
    let owner = r
        .owner
        .as_ref()
        .map(|o| owner(&at("owner"), o, &path, ctx))
        .transpose()?;
    let validation = match &r.validate {
        None => None,
        Some(v) => {
            let schema = |field: &str,
                          file: &Option<String>|
             -> Result<Option<serde_json::Value>, ConfigError> {
                let Some(file) = file else { return Ok(None) };
                let key = at(&format!("validate.{field}"));
                let path = ctx.path(&key, file)?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ctx.error(&key, format!("cannot read {}: {e}", path.display())))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| ctx.error(&key, format!("{} is not JSON: {e}", path.display())))?;
                if let Some(remote) = first_remote_ref(&value) {
                    return Err(ctx.error(
                        &key,
                        format!("{}: remote $ref `{remote}` is refused: only local references (#/…) are followed", path.display()),
                    ));
                }
                Ok(Some(value))
            };
            Some(from_files(
                format!("route `{name}`"),
                schema("body", &v.body)?,
                schema("query", &v.query)?,
                schema("headers", &v.headers)?,
                r.strict,
            ))
        }
    };
    let login = r
        .login
        .as_ref()
        .map(|l| {
            ctx.parse(&at("login.account"), &l.account, json_pointer)
                .map(|account| LoginRule { account })
        })
        .transpose()?;
    if owner.is_some() && auth == RouteAuth::Public {
        return Err(ctx.error(
            &at("owner"),
            "an owner rule needs to know who is calling: the route cannot be `auth = \"public\"`",
        ));
    }
    Ok(RouteConfig {
        name,
        path,
        methods,
        upstream,
        host,
        auth,
        forward_credentials: r.forward_credentials,
        roles,
        scopes,
        owner,
        response_deny,
        request_deny,
        rate_limit,
        login,
        validation,
        strict: r.strict,
    })
}

fn owner(key: &str, o: &RawOwner, path: &str, ctx: &LoadCtx<'_>) -> Result<OwnerRule, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    let params_of = |pattern: &str| -> Vec<String> {
        pattern
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|p| p.trim_start_matches('*').to_owned())
            .collect()
    };
    let route_params = params_of(path);
    let source = match (&o.param, &o.field) {
        (Some(param), None) => {
            let param = ctx.string(&at("param"), param)?;
            if !route_params.contains(&param) {
                return Err(ctx.error(
                    &at("param"),
                    format!("the route's path `{path}` has no `{{{param}}}` parameter"),
                ));
            }
            OwnerSource::Param(param)
        }
        (None, Some(field)) => OwnerSource::Field(ctx.parse(&at("field"), field, json_pointer)?),
        _ => return Err(ctx.error(key, "set exactly one of `param` and `field`")),
    };
    let claim = ctx.parse(&at("claim"), &o.claim, label)?;
    let bypass_roles = (o.bypass_roles.iter().enumerate())
        .map(|(j, r)| ctx.parse(&format!("{key}.bypass_roles[{j}]"), r, label))
        .collect::<Result<Vec<_>, _>>()?;
    let collection = o
        .collection
        .as_deref()
        .map(|c| {
            ctx.parse(&at("collection"), c, |c| {
                if c.is_empty() {
                    Ok(String::new())
                } else {
                    json_pointer(c)
                }
            })
        })
        .transpose()?;
    let object = o
        .object
        .as_deref()
        .map(|obj| ctx.parse(&at("object"), obj, route_path))
        .transpose()?;
    if let Some(object) = &object
        && let Some(missing) = params_of(object)
            .into_iter()
            .find(|p| !route_params.contains(p))
    {
        return Err(ctx.error(
            &at("object"),
            format!("`{{{missing}}}` is not a parameter of the route's path `{path}`"),
        ));
    }
    let is_field = matches!(source, OwnerSource::Field(_));
    if !is_field && (collection.is_some() || o.on_create.is_some() || object.is_some()) {
        return Err(ctx.error(key, "`collection`, `on_create` and `object` need `field`"));
    }
    // `object` names another object to check before a write; a collection route's POST
    // creates instead of writing, so the two together would leave that POST unchecked.
    if object.is_some() && (collection.is_some() || o.on_create.is_some()) {
        return Err(ctx.error(
            &at("object"),
            "`object` cannot be combined with `collection` or `on_create`",
        ));
    }
    Ok(OwnerRule {
        source,
        claim,
        bypass_roles,
        collection,
        collection_mode: match o.collection_mode {
            RawCollectionMode::Filter => CollectionMode::Filter,
            RawCollectionMode::Deny => CollectionMode::Deny,
        },
        on_create: o.on_create.map(|c| match c {
            RawOnCreate::Enforce => OnCreate::Enforce,
            RawOnCreate::Set => OnCreate::Set,
        }),
        mode: match o.mode {
            RawOwnerMode::Enforce => OwnerMode::Enforce,
            RawOwnerMode::Report => OwnerMode::Report,
        },
        object,
    })
}

/// A role, scope or claim name: it travels in headers, so printable ASCII without
/// separators.
fn label(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
        return Err(format!(
            "invalid name `{s}`: 1 to 64 printable characters, no spaces or commas"
        ));
    }
    Ok(s.to_owned())
}

/// A JSON pointer (RFC 6901) whose segments may be `*` (every item or member).
fn json_pointer(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!(
            "invalid JSON pointer `{s}`: it starts with `/`, e.g. `/ownerId`"
        ));
    }
    let mut escapes = s.split('~').skip(1);
    if escapes.any(|rest| !(rest.starts_with('0') || rest.starts_with('1'))) {
        return Err(format!(
            "invalid JSON pointer `{s}`: `~` must be followed by 0 or 1"
        ));
    }
    Ok(s.to_owned())
}

fn duplicate(ctx: &LoadCtx<'_>, kind: &str, name: &str, i: usize, first: usize) -> ConfigError {
    let first_key = format!("{kind}[{first}].name");
    let line = ctx
        .keys
        .line_of(&first_key)
        .map(|l| format!(", line {l}"))
        .unwrap_or_default();
    ctx.error(
        &format!("{kind}[{i}].name"),
        format!("duplicate {kind} name `{name}` (first used by `{kind}[{first}]`{line})"),
    )
}

/// One key = one call: resolve references, parse, locate the error.
impl LoadCtx<'_> {
    /// `raw`, written at `key`, with its references resolved.
    fn string(&self, key: &str, raw: &str) -> Result<String, ConfigError> {
        refs::resolve(raw, key, self)
    }

    /// `raw`, written at `key`, resolved and then parsed by `parse`.
    fn parse<T>(
        &self,
        key: &str,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(&self.string(key, raw)?).map_err(|message| self.error(key, message))
    }

    fn parse_opt<T>(
        &self,
        key: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        raw.map(|raw| self.parse(key, raw, parse)).transpose()
    }

    /// A file path, relative to the config file's directory.
    pub(super) fn path(&self, key: &str, raw: &str) -> Result<PathBuf, ConfigError> {
        self.parse(key, raw, |s| match s {
            "" => Err("the path is empty".to_owned()),
            s => Ok(self.dir.join(s)),
        })
    }

    fn path_opt(&self, key: &str, raw: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
        raw.map(|raw| self.path(key, raw)).transpose()
    }
}

// Parsers: plain functions from the resolved string to the value, or a message. A message
// quotes the value, except where it may be a secret.

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("invalid address `{s}`: expected IP:port such as `127.0.0.1:8080` or `[::1]:8443`")
    })
}

fn token(s: &str) -> Result<SecretString, String> {
    // Never quote the value: it is the secret.
    if s.len() < 16 {
        return Err(
            "the token must be at least 16 characters (e.g. `openssl rand -hex 32`)".to_owned(),
        );
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token contains whitespace or control characters".to_owned());
    }
    Ok(SecretString::from(s))
}

/// A CIDR network or a bare address (a /32 or /128). Host bits must be clear: `10.0.0.1/8`
/// most likely means a typo, and trusting a wider network than meant is the unsafe way to
/// guess.
fn ip_net(s: &str) -> Result<IpNet, String> {
    let usage = "expected an address (`10.1.2.3`, `::1`) or a network (`10.0.0.0/8`, `fd00::/8`)";
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid network `{s}`: {usage}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= max && p.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("invalid network `{s}`: the prefix length must be 0 to {max}")
            })?,
    };
    let masked = mask(addr, prefix);
    if masked != addr {
        return Err(format!(
            "invalid network `{s}`: host bits are set (did you mean `{masked}/{prefix}`?)"
        ));
    }
    Ok(IpNet { addr, prefix })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn hsts(s: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid HSTS value `{s}`: expected `max-age=<seconds>[; includeSubDomains][; preload]`"
        )
    };
    http::HeaderValue::from_str(s).map_err(|_| bad())?;
    let lower = s.to_ascii_lowercase();
    let seconds = lower.strip_prefix("max-age=").ok_or_else(bad)?;
    if !seconds.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// A rate-limit policy's name goes into the `RateLimit` headers as a quoted string, and
/// into logs and metric labels: the plain charset of `name`, at most 64 bytes.
fn policy_name(s: &str) -> Result<String, String> {
    if s.len() > 64 {
        return Err(format!("invalid name `{s}`: at most 64 characters"));
    }
    name(s)
}

/// Upstream and route names show up in logs and metric labels: keep them plain.
fn name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "invalid name `{s}`: use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(s.to_owned())
}

fn upstream_url(s: &str) -> Result<Uri, String> {
    // Don't quote a URL with credentials or a query: either may carry a secret.
    if s.contains('@') {
        return Err("credentials in an upstream URL are not supported".to_owned());
    }
    if s.contains('?') || s.contains('#') {
        return Err("an upstream URL has no query or fragment".to_owned());
    }
    let uri: Uri = s.parse().map_err(|e| format!("invalid URL `{s}`: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "invalid URL `{s}`: expected `http://` or `https://`"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid URL `{s}`: it has no host"));
    }
    Ok(uri)
}

fn route_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("invalid path `{s}`: it must start with `/`"));
    }
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid path `{s}`: a path has no query, fragment, whitespace or control characters"
        ));
    }
    Ok(s.to_owned())
}

fn jwt_algorithm(s: &str) -> Result<JwtAlgorithm, String> {
    use JwtAlgorithm::*;
    Ok(match s {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        other if other.eq_ignore_ascii_case("none") => {
            return Err("`none` is never allowed: unsigned tokens prove nothing".to_owned());
        }
        other => {
            return Err(format!(
                "unknown algorithm `{other}`: expected RS256/384/512, PS256/384/512, ES256/384, EdDSA or HS256/384/512"
            ));
        }
    })
}

/// A key-material URL: https, or http to a loopback host (a test or sidecar issuer). Keys
/// fetched over plain http from elsewhere could be swapped by anyone on the path. The
/// policy is the fetcher's own, so config and runtime can never disagree.
fn key_url(s: &str) -> Result<Uri, String> {
    super::outbound::key_url(s)?;
    s.parse().map_err(|e| format!("invalid URL `{s}`: {e}"))
}

fn method(s: &str) -> Result<http::Method, String> {
    http::Method::from_bytes(s.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method `{s}`: expected a method such as `GET` or `POST`"))
}

fn host(s: &str) -> Result<String, String> {
    if s.contains("://") {
        return Err(format!(
            "invalid host `{s}`: write the host name alone, without a scheme"
        ));
    }
    let authority: Authority = s.parse().map_err(|_| format!("invalid host `{s}`"))?;
    if authority.port().is_some() {
        return Err(format!(
            "invalid host `{s}`: write the host name alone, without a port"
        ));
    }
    if s.contains('@') || authority.host().is_empty() {
        return Err(format!("invalid host `{s}`"));
    }
    Ok(s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net = |s: &str| ip_net(s).map(|n| (n.addr.to_string(), n.prefix));
        assert_eq!(net("10.0.0.0/8"), Ok(("10.0.0.0".into(), 8)));
        assert_eq!(net("10.1.2.3"), Ok(("10.1.2.3".into(), 32)));
        assert_eq!(net("::1"), Ok(("::1".into(), 128)));
        assert_eq!(net("fd00::/8"), Ok(("fd00::".into(), 8)));
        assert_eq!(net("0.0.0.0/0"), Ok(("0.0.0.0".into(), 0)));
        assert!(net("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(net("::/129").unwrap_err().contains("0 to 128"));
        assert!(net("10.0.0.0/+8").is_err());
        assert!(net("10.0.0.0/").is_err());
        assert!(net("example.com").is_err());
        assert!(
            net("10.1.2.3/8")
                .unwrap_err()
                .contains("did you mean `10.0.0.0/8`")
        );
    }

    #[test]
    fn upstream_urls() {
        assert!(upstream_url("http://127.0.0.1:3000").is_ok());
        assert!(upstream_url("https://api.internal/v1").is_ok());
        for bad in [
            "ftp://x",
            "127.0.0.1:3000",
            "/just/a/path",
            "http://",
            "http://u:p@host",
            "http://h/?q=1",
            "http://h/#f",
            "",
        ] {
            assert!(upstream_url(bad).is_err(), "{bad}");
        }
        assert!(
            !upstream_url("http://u:secret@h")
                .unwrap_err()
                .contains("secret")
        );
    }

    #[test]
    fn methods_and_hosts() {
        assert_eq!(method("get"), Ok(http::Method::GET));
        assert_eq!(method("PURGE").unwrap().as_str(), "PURGE");
        assert!(method("GE T").is_err());
        assert!(method("").is_err());
        assert_eq!(host("API.Example.com").as_deref(), Ok("api.example.com"));
        assert!(host("api.example.com:443").unwrap_err().contains("port"));
        assert!(
            host("https://api.example.com")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(host("a/b").is_err());
        assert!(host("").is_err());
    }

    #[test]
    fn hsts_values() {
        assert!(hsts("max-age=31536000; includeSubDomains").is_ok());
        assert!(hsts("Max-Age=0").is_ok());
        assert!(hsts("includeSubDomains").is_err());
        assert!(hsts("max-age=").is_err());
        assert!(hsts("max-age=1\n").is_err());
    }

    #[test]
    fn tokens_are_never_quoted() {
        assert!(token("0123456789abcdef").is_ok());
        let err = token("has space 0123456789").err().unwrap();
        assert!(!err.contains("has space"), "{err}");
        let err = token("short").err().unwrap();
        assert!(err.contains("16") && !err.contains("short"), "{err}");
    }
}

/// Route-level validation from `validate = { … }` files.
fn from_files(
    source: String,
    body: Option<serde_json::Value>,
    query: Option<serde_json::Value>,
    headers: Option<serde_json::Value>,
    strict: bool,
) -> std::sync::Arc<RouteValidation> {
    std::sync::Arc::new(RouteValidation {
        source,
        document: None,
        params: Vec::new(),
        query,
        headers,
        body: body.map(|schema| BodySpec {
            required: true,
            writes_only: true,
            content: vec![
                ("application/json".to_owned(), Some(schema.clone())),
                ("application/*+json".to_owned(), Some(schema)),
            ],
        }),
        responses: Vec::new(),
        response_mode: ResponseMode::Off,
        strict,
    })
}

/// The first `$ref` (or `$dynamicRef`) in `value` that is not local (`#…`): nothing is
/// ever fetched, so such a schema is refused at load rather than half-checked.
fn first_remote_ref(value: &serde_json::Value) -> Option<String> {
    let mut stack = vec![value];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    if let ("$ref" | "$dynamicRef", serde_json::Value::String(target)) =
                        (key.as_str(), child)
                        && !target.starts_with('#')
                    {
                        return Some(target.clone());
                    }
                    stack.push(child);
                }
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    None
}
