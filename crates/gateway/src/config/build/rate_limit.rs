//! `[rate_limit]`: policies, the store and the failed-authentication lockout.

use super::*;

/// `[rate_limit]`.
pub(super) fn rate_limit(
    r: &RawRateLimit,
    ctx: &LoadCtx<'_>,
) -> Result<RateLimitConfig, ConfigError> {
    Ok(RateLimitConfig {
        default: policies("rate_limit.default", r.default.as_ref(), "default", ctx)?,
        headers_always: r.headers == RawRateLimitHeaders::Always,
        max_keys: usize::try_from(r.max_keys)
            .ok()
            .filter(|n| (1_000..=100_000_000).contains(n))
            .ok_or_else(|| {
                ctx.error("rate_limit.max_keys", "must be between 1000 and 100000000")
            })?,
        store: {
            let store = ctx.parse("rate_limit.store", &r.store, rate_store)?;
            if let RateStoreKind::Redis(url) = &store {
                ctx.url_password_written_as_reference(
                    "rate_limit.store",
                    &r.store,
                    url.expose_secret(),
                    false,
                )?;
            }
            store
        },
        on_store_error: match r.on_store_error {
            RawOnStoreError::Local => OnStoreError::Local,
            RawOnStoreError::Deny => OnStoreError::Deny,
            RawOnStoreError::Allow => OnStoreError::Allow,
        },
        store_timeout: {
            let timeout = r.store_timeout.0;
            if timeout.is_zero() || timeout > Duration::from_secs(5) {
                return Err(ctx.error(
                    "rate_limit.store_timeout",
                    "must be between 1ms and 5s: a request never waits long on the store",
                ));
            }
            timeout
        },
        auth_failures: r
            .auth_failures
            .as_ref()
            .map(|a| auth_failures(a, ctx))
            .transpose()?,
    })
}

/// One policy or a list, at `key`; `prefix` names unnamed policies (`default`,
/// `route.login`, with `.2` … for the later ones of a list).
pub(super) fn policies(
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
pub(super) fn rate_store(s: &str) -> Result<RateStoreKind, String> {
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

pub(super) fn auth_failures(
    a: &RawAuthFailures,
    ctx: &LoadCtx<'_>,
) -> Result<AuthFailures, ConfigError> {
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
