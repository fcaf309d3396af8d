//! `[store]` (API keys) and `[auth.jwt]`, with their secrets.

use super::*;

pub(super) fn store(s: &RawStore, ctx: &LoadCtx<'_>) -> Result<StoreConfig, ConfigError> {
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

pub(super) fn jwt(j: &RawJwt, ctx: &LoadCtx<'_>) -> Result<JwtConfig, ConfigError> {
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

/// At most this many secrets in one list: a rotation needs two, and each one may cost a MAC
/// per verification.
pub(super) const MAX_SECRETS: usize = palisade_store::MAX_PEPPERS;

/// A secret or a list of them at `key`, current first: each written as a reference (unless
/// `allow_literal_secrets`) and accepted by `check`, at least one, at most [`MAX_SECRETS`],
/// none twice. Errors name `key` or `key[i]` and never quote a value.
pub(super) fn secrets(
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
