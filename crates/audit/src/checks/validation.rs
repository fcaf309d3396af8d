//! Control 5, input validation.
//!
//! Input: the spec's operations with a JSON body (acting as the first identity on private
//! ones; PUT, PATCH, DELETE and POSTs on an object only at objects the audit created, see
//! [`probe_path`]). Output: FAIL when a body with a wrong type, a missing required member, a
//! value outside the schema's bounds, an unknown member where the schema forbids them, more
//! than 1 MiB, or nesting 5000 deep gets a 2xx; FAIL when any probe, classic injection
//! strings included, gets a 5xx or database error text. 401, 403, 404, 405, 429 and
//! redirects prove nothing and leave a probe inconclusive; only another 4xx is a refusal,
//! and without one the control is NOT_TESTED.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Context, authz::Objects, probe_path};
use crate::client::{Probe, ProbeError};
use crate::model::{ControlResult, Finding, Severity};
use crate::patterns;
use crate::spec::{Operation, Spec, schema_type};

const ID: u8 = 5;
/// Bodies above this are oversized (the gateway's default `max_body`).
pub const OVERSIZED: usize = 1024 * 1024 + 1024;
const NESTING: usize = 5000;
/// Classic SQL, NoSQL, template and shell injection strings.
pub const INJECTIONS: [&str; 4] = [
    "' OR '1'='1' --",
    "\"; DROP TABLE users; --",
    "{\"$gt\": \"\"}",
    "${7*7}{{7*7}}$(id)",
];

/// (what is wrong, the body) for each invalid body the schema allows to build.
fn invalid_bodies(spec: &Spec, schema: &Value) -> Vec<(String, Vec<u8>)> {
    let schema = spec.resolve(schema);
    let valid = spec.object_example(schema);
    let mut out = Vec::new();
    let props = schema.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !required.is_empty() {
        out.push(("missing required members".to_owned(), b"{}".to_vec()));
    }
    if let Some(props) = props {
        // A wrong type for the first typed member.
        if let Some((name, wrong)) = props.iter().find_map(|(name, p)| {
            let wrong = match schema_type(spec.resolve(p)).as_deref() {
                Some("string") => json!(12345),
                Some("integer" | "number") => json!("not-a-number"),
                Some("boolean") => json!("yes"),
                Some("array") => json!("not-an-array"),
                Some("object") => json!(7),
                _ => return None,
            };
            Some((name.clone(), wrong))
        }) {
            let mut body = valid.clone();
            body[&name] = wrong;
            out.push((
                format!("a wrong type for `{name}`"),
                body.to_string().into_bytes(),
            ));
        }
        // A value outside the first stated bound.
        if let Some((name, bad, rule)) = props.iter().find_map(|(name, p)| {
            let p = spec.resolve(p);
            if let Some(min) = p.get("minimum").and_then(Value::as_f64) {
                return Some((
                    name.clone(),
                    json!(min as i64 - 1_000_000),
                    "below `minimum`",
                ));
            }
            if let Some(max) = p.get("maximum").and_then(Value::as_f64) {
                return Some((
                    name.clone(),
                    json!(max as i64 + 1_000_000),
                    "above `maximum`",
                ));
            }
            if let Some(max) = p.get("maxLength").and_then(Value::as_u64) {
                return Some((
                    name.clone(),
                    json!("x".repeat(max as usize + 1)),
                    "longer than `maxLength`",
                ));
            }
            if p.get("pattern").is_some() || p.get("format").and_then(Value::as_str) == Some("date")
            {
                return Some((
                    name.clone(),
                    json!("not//a valid\u{0}value"),
                    "not matching its pattern or format",
                ));
            }
            if p.get("enum").is_some() {
                return Some((
                    name.clone(),
                    json!("palisade-audit-not-in-enum"),
                    "outside its `enum`",
                ));
            }
            None
        }) {
            let mut body = valid.clone();
            body[&name] = bad;
            out.push((format!("`{name}` {rule}"), body.to_string().into_bytes()));
        }
    }
    if schema.get("additionalProperties") == Some(&json!(false)) {
        let mut body = valid.clone();
        body["paliSadeAuditUnknown"] = json!(1);
        out.push((
            "an unknown member (`additionalProperties: false`)".to_owned(),
            body.to_string().into_bytes(),
        ));
    }
    // The padding goes in an unknown member, so an API that takes it does not store 1 MiB.
    let mut big = valid.to_string();
    if big.ends_with('}') && big.len() > 2 {
        big.pop();
        big.push_str(&format!(
            ",\"paliSadeAuditPadding\":\"{}\"}}",
            "x".repeat(OVERSIZED)
        ));
    } else {
        big = format!("{{\"paliSadeAuditPadding\":\"{}\"}}", "x".repeat(OVERSIZED));
    }
    out.push((
        format!("an oversized body ({} bytes)", big.len()),
        big.into_bytes(),
    ));
    let nested = format!(
        "{{\"paliSadeAuditNested\":{}{}}}",
        "[".repeat(NESTING),
        "]".repeat(NESTING)
    );
    out.push((format!("a body nested {NESTING} deep"), nested.into_bytes()));
    out
}

fn injected_bodies(spec: &Spec, schema: &Value) -> Vec<(String, Vec<u8>)> {
    let schema = spec.resolve(schema);
    let valid = spec.object_example(schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let strings: Vec<&String> = props
        .iter()
        .filter(|(_, p)| schema_type(spec.resolve(p)).as_deref() == Some("string"))
        .map(|(n, _)| n)
        .collect();
    INJECTIONS
        .iter()
        .filter(|_| !strings.is_empty())
        .map(|inj| {
            let mut body = valid.clone();
            for name in &strings {
                body[name.as_str()] = json!(inj);
            }
            (
                format!("injection string {inj:?}"),
                body.to_string().into_bytes(),
            )
        })
        .collect()
}

enum Outcome {
    Refused,
    Inconclusive,
    Accepted,
}

/// What a status says about validation. 401, 403, 404, 405, 429 and redirects are answered
/// before (or without) looking at the input, and a 5xx is reported on its own: none of them
/// shows that the input was checked. Used for body and path-parameter probes alike, so a
/// server that answers 401 to everything cannot make the control pass.
fn classify(status: u16) -> Outcome {
    match status {
        300..=399 | 401 | 403 | 404 | 405 | 429 | 500..=599 => Outcome::Inconclusive,
        400..=499 => Outcome::Refused,
        _ => Outcome::Accepted,
    }
}

pub async fn run(ctx: &Context<'_>, objects: &Objects) -> ControlResult {
    let Some(spec) = ctx.spec else {
        return ControlResult::not_tested(
            ID,
            "needs --openapi (which operations take which bodies)",
        );
    };
    let first = ctx.identity(0);
    let mut findings = Vec::new();
    let mut refused = 0;
    let mut inconclusive = Vec::new();
    let mut budget_out = false;
    let mut targets: Vec<(&Operation, String)> = Vec::new();
    for op in spec
        .operations
        .iter()
        .filter(|op| op.body_schema.is_some())
        .filter(|op| op.public || first.is_some())
    {
        match probe_path(objects, op) {
            Ok(path) => targets.push((op, path)),
            Err(skipped) => inconclusive.push(skipped),
        }
    }
    if targets.is_empty() {
        return ControlResult::not_tested(
            ID,
            "no operation with a JSON body could be reached (private ones need --identity)",
        );
    }
    'ops: for (op, path) in &targets {
        let Some(schema) = op.body_schema.as_ref() else {
            continue;
        };
        let method = Method::from_bytes(op.method.as_bytes()).unwrap_or(Method::POST);
        let probes = invalid_bodies(spec, schema).into_iter().map(|p| (true, p));
        let injections = injected_bodies(spec, schema)
            .into_iter()
            .map(|p| (false, p));
        for (must_refuse, (what, body)) in probes.chain(injections) {
            let mut probe =
                Probe::new(method.clone(), path.clone()).raw_body("application/json", body);
            if let (false, Some(id)) = (op.public, first) {
                probe = probe.as_identity(id);
            }
            let x = match ctx.prober.send(probe).await {
                Ok(x) => x,
                Err(ProbeError::Budget) => {
                    budget_out = true;
                    break 'ops;
                }
                Err(e) => {
                    inconclusive.push(format!("{} with {what}: {e}", op.label()));
                    continue;
                }
            };
            if x.status >= 500 {
                findings.push(Finding::new(
                    ID,
                    Severity::High,
                    format!("server error for {what}"),
                    Some(op.label()),
                    x.evidence(),
                ));
            }
            let outcome = classify(x.status);
            if let Some(hit) = patterns::sql_errors(&x.body) {
                findings.push(Finding::new(
                    ID,
                    Severity::High,
                    format!("database error text for {what}"),
                    Some(op.label()),
                    format!("{} … {}", x.request_line(), hit.text),
                ));
            }
            match outcome {
                Outcome::Refused => refused += 1,
                Outcome::Inconclusive => {
                    inconclusive.push(format!("{} with {what}: {}", op.label(), x.status))
                }
                Outcome::Accepted if must_refuse => findings.push(Finding::new(
                    ID,
                    Severity::Medium,
                    format!("accepts {what}"),
                    Some(op.label()),
                    x.evidence(),
                )),
                Outcome::Accepted => {}
            }
        }
    }
    // Injection strings in path parameters of reads.
    for op in spec
        .operations
        .iter()
        .filter(|op| op.method == "GET" && !op.path_params.is_empty())
        .take(3)
    {
        if budget_out || (!op.public && first.is_none()) {
            break;
        }
        let path = op.fill(|_| INJECTIONS[0].to_owned());
        let mut probe = Probe::new(Method::GET, path);
        if let (false, Some(id)) = (op.public, first) {
            probe = probe.as_identity(id);
        }
        match ctx.prober.send(probe).await {
            Ok(x) => {
                if x.status >= 500 || patterns::sql_errors(&x.body).is_some() {
                    findings.push(Finding::new(
                        ID,
                        Severity::High,
                        "injection string in a path parameter breaks the API",
                        Some(op.label()),
                        x.evidence(),
                    ));
                } else {
                    match classify(x.status) {
                        Outcome::Refused => refused += 1,
                        // A read that answers 2xx for an injection string is not a finding:
                        // it may simply be a search that found nothing.
                        Outcome::Accepted => {}
                        Outcome::Inconclusive => inconclusive.push(format!(
                            "{} with {:?} in a path parameter: {}",
                            op.label(),
                            INJECTIONS[0],
                            x.status
                        )),
                    }
                }
            }
            Err(ProbeError::Budget) => budget_out = true,
            Err(e) => inconclusive.push(format!(
                "{} with an injection string in a path parameter: {e}",
                op.label()
            )),
        }
    }
    if !inconclusive.is_empty() {
        findings.push(Finding::new(
            ID,
            Severity::Info,
            "probes that proved nothing",
            None,
            inconclusive.join("; "),
        ));
    }
    let reason = if budget_out {
        ctx.budget_reason()
    } else {
        "no probe was refused with a 4xx that shows validation (401, 403, 404, 405 and 429 prove nothing)".to_owned()
    };
    ControlResult::conclude(ID, findings, refused > 0 && !budget_out, &reason)
}
