//! Control 4, rate limiting.
//!
//! Input: the login operation (an operationId or path naming login, sign-in or token), or
//! the one `--rate-limit-op` names, and `--burst` (default 30). Output: PASS when a 429 with
//! `Retry-After` arrives within the burst; FAIL for a 429 without `Retry-After`, and when the
//! whole burst is answered without a 429. NOT_TESTED when the budget left cannot hold the
//! whole burst (a shorter one proves nothing), when every answer was 404 or 405 (no such
//! operation), or when the operation changes something the audit did not create (see
//! [`probe_path`]); ERROR when the target cannot be reached. The burst is paced and counted
//! by the same budget as everything else, and stops at the first 429.

use reqwest::Method;

use super::{Context, authz::Objects, probe_path};
use crate::client::{Probe, ProbeError};
use crate::model::{ControlResult, Finding, Severity};
use crate::spec::Operation;

const ID: u8 = 4;

fn target<'a>(ctx: &'a Context<'_>) -> Result<&'a Operation, String> {
    let ops = ctx.operations();
    if let Some(chosen) = &ctx.options.rate_limit_operation {
        return ops
            .iter()
            .find(|op| {
                op.operation_id.as_deref() == Some(chosen.as_str())
                    || op.label().eq_ignore_ascii_case(chosen)
            })
            .ok_or_else(|| format!("--rate-limit-op {chosen}: no such operation in the spec"));
    }
    let looks_like_login = |op: &&Operation| {
        let text = format!("{} {}", op.operation_id.as_deref().unwrap_or(""), op.path)
            .to_ascii_lowercase();
        op.method == "POST"
            && ["login", "signin", "sign-in", "/token", "authenticate"]
                .iter()
                .any(|w| text.contains(w))
    };
    ops.iter()
        .find(looks_like_login)
        .ok_or_else(|| "no login operation in the spec; name one with --rate-limit-op".to_owned())
}

pub async fn run(ctx: &Context<'_>, objects: &Objects) -> ControlResult {
    let Some(spec) = ctx.spec else {
        return ControlResult::not_tested(ID, "needs --openapi (which operation is the login)");
    };
    let op = match target(ctx) {
        Ok(op) => op,
        Err(reason) => return ControlResult::not_tested(ID, reason),
    };
    let burst = ctx.options.burst;
    if burst == 0 {
        return ControlResult::not_tested(ID, "--burst is 0");
    }
    if ctx.prober.budget().remaining() < burst {
        return ControlResult::not_tested(
            ID,
            format!(
                "the request budget left ({}) cannot hold a burst of {burst}; raise --max-requests",
                ctx.prober.budget().remaining()
            ),
        );
    }
    let path = match probe_path(objects, op) {
        Ok(path) => path,
        Err(skipped) => return ControlResult::not_tested(ID, skipped),
    };
    let mut body = op.body_schema.as_ref().map(|s| spec.example(s));
    // Wrong credentials: a burst must never log anyone in.
    if let Some(serde_json::Value::Object(map)) = body.as_mut() {
        for (name, value) in map.iter_mut() {
            if name.to_ascii_lowercase().contains("pass") {
                *value = serde_json::json!("palisade-audit-wrong-password");
            }
        }
    }
    let method = Method::from_bytes(op.method.as_bytes()).unwrap_or(Method::POST);
    let mut statuses: Vec<u16> = Vec::new();
    let started = std::time::Instant::now();
    for _ in 0..burst {
        let mut probe = Probe::new(method.clone(), path.clone());
        if let (false, Some(id)) = (op.public, ctx.identity(0)) {
            probe = probe.as_identity(id);
        }
        if let Some(body) = &body {
            probe = probe.json(body);
        }
        let x = match ctx.prober.send(probe).await {
            Ok(x) => x,
            Err(ProbeError::Budget) => break,
            Err(e) => {
                return ControlResult::error(ID, format!("{}: {e}", op.label()));
            }
        };
        statuses.push(x.status);
        if x.status == 429 {
            let findings = match x.header("retry-after") {
                Some(_) => vec![
                    Finding::new(
                        ID,
                        Severity::Info,
                        format!("429 at request {} of the burst", statuses.len()),
                        Some(op.label()),
                        x.evidence(),
                    )
                    .keyed(ID, "429 within the burst"),
                ],
                // The control asks for a 429 *with* Retry-After: without it, clients
                // (and retrying libraries) have no back-off to honour and hammer on.
                None => vec![Finding::new(
                    ID,
                    Severity::Medium,
                    "429 without Retry-After",
                    Some(op.label()),
                    x.evidence(),
                )],
            };
            return ControlResult::conclude(ID, findings, true, "");
        }
    }
    let summary = summarize(&statuses);
    if (statuses.len() as u32) < burst {
        return ControlResult::not_tested(ID, ctx.budget_reason());
    }
    if statuses.iter().all(|s| matches!(s, 404 | 405)) {
        return ControlResult::not_tested(
            ID,
            format!("{} answered {summary}: no such operation", op.label()),
        );
    }
    ControlResult::conclude(
        ID,
        vec![Finding::new(
            ID,
            Severity::Medium,
            format!("no 429 after {} requests", statuses.len()),
            Some(op.label()),
            format!(
                "{} requests in {:.1}s answered {summary}",
                statuses.len(),
                started.elapsed().as_secs_f64()
            ),
        )],
        true,
        "",
    )
}

/// `401×29, 400×1`.
fn summarize(statuses: &[u16]) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for &s in statuses {
        match counts.iter_mut().find(|(c, _)| *c == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
