//! `[server]`, `[server.tls]`, `[limits]` and `[log]`.

use super::*;

pub(super) fn server(s: &RawServer, ctx: &LoadCtx<'_>) -> Result<ServerConfig, ConfigError> {
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

pub(super) fn tls(t: &RawTls, ctx: &LoadCtx<'_>) -> Result<TlsConfig, ConfigError> {
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
pub(super) const MAX_HEADER_BYTES: usize = 1 << 20;

pub(super) fn log(l: &RawLog, ctx: &LoadCtx<'_>) -> Result<LogOutput, ConfigError> {
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

pub(super) fn limits(l: &RawLimits, ctx: &LoadCtx<'_>) -> Result<LimitsConfig, ConfigError> {
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
