//! `[alerts]`, `[[alert]]` and `[telemetry]`: where events and traces go.

use super::*;

/// The effective alert rules: the built-ins (unless `builtin = false`), each replaced by an
/// `[[alert]]` of its name, then the other `[[alert]]`s in file order.
pub(super) fn alerts(
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
pub(super) fn telemetry(
    t: &RawTelemetry,
    ctx: &LoadCtx<'_>,
) -> Result<Option<TelemetryConfig>, ConfigError> {
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
pub(super) struct OtlpUrl(reqwest::Url);

/// The OTLP/HTTP traces URL for an endpoint: https, or http to a loopback host (a local
/// collector or agent), like every outbound URL of the config; `/v1/traces` is appended
/// to the base path unless it is already there (the `OTEL_EXPORTER_OTLP_ENDPOINT` rule).
/// Never quoted: it may carry credentials.
pub(super) fn otlp_traces_url(s: &str) -> Result<OtlpUrl, String> {
    let mut url = crate::config::outbound::parse(s, "OTLP endpoint")?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the OTLP endpoint takes no query or fragment".to_owned());
    }
    if !url.path().ends_with("/v1/traces") {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(OtlpUrl(url))
}

/// A webhook URL: https, or http to a loopback host (a local relay), like every outbound
/// URL of the config. Never quoted: it usually carries a token.
pub(super) fn webhook_url(s: &str) -> Result<SecretString, String> {
    crate::config::outbound::parse(s, "webhook")?;
    Ok(SecretString::from(s))
}
