//! Control 2, authentication on every private operation.
//!
//! Input: the spec's non-public operations (path parameters filled; PUT, PATCH, DELETE and
//! POSTs on an object only at objects the audit created, see [`probe_path`]), and the first identity's header, so forged values go where a
//! real credential would. Output: FAIL when a private operation answers 2xx or 3xx with no
//! credentials, a malformed token, an `alg: none` token, an expired token or a token signed
//! with a well-known weak HS256 secret. 401 and 403 are refusals; 429 (a lockout, rightly
//! provoked by these very probes) and 404 prove nothing either way and are reported as such.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Context, authz::Objects, probe_path};
use crate::client::{Probe, ProbeError};
use crate::model::{ControlResult, Finding, Severity};

const ID: u8 = 2;

/// Secrets that tutorials, defaults and jwt.io put in production (the weak-secret probe).
pub const WEAK_HS256_SECRET: &str = "secret";

/// The claims of the first identity's token when it is a JWT (so forgeries carry the right
/// issuer and audience), otherwise a generic admin-looking subject.
fn claims(ctx: &Context<'_>) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let from_identity = ctx.identity(0).and_then(|id| {
        let token = id.value.strip_prefix("Bearer ").unwrap_or(&id.value);
        let payload = token.split('.').nth(1)?;
        serde_json::from_slice::<Value>(&B64.decode(payload).ok()?).ok()
    });
    let mut claims = from_identity.unwrap_or_else(|| json!({"sub": "admin", "roles": ["admin"]}));
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now.saturating_sub(60));
    claims["exp"] = json!(now + 3600);
    claims
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(tag.as_ref()))
}

/// (name, header, value) of each forged credential.
fn forgeries(ctx: &Context<'_>) -> Vec<(&'static str, String, String)> {
    let claims = claims(ctx);
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    let mut expired_claims = claims.clone();
    expired_claims["iat"] = json!(1_000_000_000);
    expired_claims["nbf"] = json!(1_000_000_000);
    expired_claims["exp"] = json!(1_000_003_600);
    let mut random = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut random);
    let hs = json!({"alg": "HS256", "typ": "JWT"});
    let expired = hs256(&hs, &expired_claims, &random);
    let weak = hs256(&hs, &claims, WEAK_HS256_SECRET.as_bytes());
    let (header, prefix) = match ctx.identity(0) {
        Some(id) if !id.header.eq_ignore_ascii_case("authorization") => (id.header.clone(), ""),
        _ => ("Authorization".to_owned(), "Bearer "),
    };
    let bearer = |t: &str| format!("Bearer {t}");
    vec![
        (
            "a malformed credential",
            header,
            format!("{prefix}palisade-audit.malformed!"),
        ),
        (
            "an alg:none token",
            "Authorization".to_owned(),
            bearer(&none),
        ),
        (
            "an expired token",
            "Authorization".to_owned(),
            bearer(&expired),
        ),
        (
            "a token signed with the weak HS256 secret \"secret\"",
            "Authorization".to_owned(),
            bearer(&weak),
        ),
    ]
}

pub async fn run(ctx: &Context<'_>, objects: &Objects) -> ControlResult {
    let Some(spec) = ctx.spec else {
        return ControlResult::not_tested(ID, "needs --openapi (which operations are private)");
    };
    let private: Vec<_> = spec.operations.iter().filter(|op| !op.public).collect();
    if private.is_empty() {
        return ControlResult::not_tested(ID, "the spec has no private operation");
    }
    let mut findings = Vec::new();
    let mut refused = 0;
    let mut inconclusive: Vec<String> = Vec::new();
    let mut budget_out = false;
    let mut variants = vec![("no credentials", None)];
    for (name, header, value) in forgeries(ctx) {
        variants.push((name, Some((header, value))));
    }
    'ops: for op in &private {
        let path = match probe_path(objects, op) {
            Ok(path) => path,
            Err(skipped) => {
                inconclusive.push(skipped);
                continue;
            }
        };
        let method = Method::from_bytes(op.method.as_bytes()).unwrap_or(Method::GET);
        let body = op.body_schema.as_ref().map(|s| spec.example(s));
        let mut accepted: Vec<(&str, std::sync::Arc<crate::client::Exchange>)> = Vec::new();
        let mut failed: Vec<(&str, std::sync::Arc<crate::client::Exchange>)> = Vec::new();
        for (variant, credential) in &variants {
            let mut probe = Probe::new(method.clone(), path.clone());
            if let Some((header, value)) = credential {
                probe = probe.credential(header, value, "forged");
            }
            if let Some(body) = &body {
                probe = probe.json(body);
            }
            let exchange = match ctx.prober.send(probe).await {
                Ok(x) => x,
                Err(ProbeError::Budget) => {
                    budget_out = true;
                    break 'ops;
                }
                Err(e) => {
                    inconclusive.push(format!("{} with {variant}: {e}", op.label()));
                    continue;
                }
            };
            match exchange.status {
                200..=399 => accepted.push((variant, exchange)),
                401 | 403 => refused += 1,
                500..=599 => failed.push((variant, exchange)),
                status => inconclusive.push(format!("{} with {variant}: {status}", op.label())),
            }
        }
        if let Some((_, first)) = failed.first() {
            let names: Vec<&str> = failed.iter().map(|(v, _)| *v).collect();
            findings.push(
                Finding::new(
                    ID,
                    Severity::Low,
                    format!("server error (5xx) for {}", names.join(", ")),
                    Some(op.label()),
                    first.request_line(),
                )
                .keyed(ID, "server error"),
            );
        }
        // One finding per operation, naming every credential it accepted.
        if let Some((_, first)) = accepted.first() {
            let names: Vec<&str> = accepted.iter().map(|(v, _)| *v).collect();
            findings.push(
                Finding::new(
                    ID,
                    Severity::High,
                    format!("private operation accepts {}", names.join(", ")),
                    Some(op.label()),
                    first.evidence(),
                )
                .keyed(ID, "accepts forged or missing credentials"),
            );
        }
    }
    if !inconclusive.is_empty() {
        findings.push(Finding::new(
            ID,
            Severity::Info,
            "probes that proved nothing (429 lockout, 404, skipped)",
            None,
            inconclusive.join("; "),
        ));
    }
    let reason = if budget_out {
        ctx.budget_reason()
    } else {
        "no probe was refused or accepted".to_owned()
    };
    ControlResult::conclude(ID, findings, refused > 0 && !budget_out, &reason)
}
