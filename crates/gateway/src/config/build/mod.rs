//! Raw config → validated config.
//!
//! Input: the `RawConfig` serde produced, the config file's path, its `KeyIndex` and an
//! environment for `${env:…}`. Output: a `model::Config`: every string's references
//! resolved, addresses, URLs, networks and methods parsed, paths resolved against the config
//! file's directory, defaults applied. Failure: the first problem, as a `ConfigError` naming
//! the file, the line and the key. Sections are checked in file order (server, limits,
//! upstreams, routes), so the first error reported is near the top of the file.
//!
//! Each key is one line in its section's builder (`server`, `rate_limit`, `auth`,
//! `routes`, `observability`): `ctx.parse(key, raw, parser)` resolves references, runs a
//! plain `fn(&str) -> Result<T, String>` from `parse` and locates any error at `key`.

mod auth;
mod observability;
mod parse;
mod rate_limit;
mod routes;
mod server;

use std::env::VarError;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Uri};
use secrecy::SecretString;

use crate::config::locate::KeyIndex;
use crate::config::model::{
    AlertRule, AuthConfig, AuthFailures, BodySpec, CollectionMode, Config, IpNet, JwtAlgorithm,
    JwtConfig, JwtKeySource, LimitsConfig, LogOutput, LoginRule, OnCreate, OnStoreError, OwnerMode,
    OwnerRule, OwnerSource, PerKey, Policy, RateLimitConfig, RateStoreKind, ResponseMode,
    RouteAuth, RouteConfig, RouteValidation, SECURITY_EVENTS, SecretUrl, ServerConfig, StoreConfig,
    TelemetryConfig, TlsConfig, TlsSource, UpstreamConfig, builtin_rules,
};
use crate::config::raw::{
    RawAlert, RawAlerts, RawAuthFailures, RawCollectionMode, RawConfig, RawFieldRule, RawJwt,
    RawLimits, RawLog, RawOnCreate, RawOnStoreError, RawOwner, RawOwnerMode, RawPer, RawPolicies,
    RawPolicy, RawRateLimit, RawRateLimitHeaders, RawRoute, RawRouteAuth, RawSecrets, RawServer,
    RawStore, RawTelemetry, RawTls, RawUpstream,
};
use crate::config::{ConfigError, LoadCtx, refs};

use auth::*;
use observability::*;
use parse::*;
use rate_limit::*;
use routes::*;
use server::*;

pub(super) fn build(
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
    let rate_limit = rate_limit(&raw.rate_limit, &ctx)?;
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
        routes = crate::config::openapi_routes::merge(o, routes, &upstreams, &ctx, &build)?;
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
