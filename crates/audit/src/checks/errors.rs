//! Control 6, safe errors.
//!
//! Input: a few provoking requests (each GET operation, an unknown path, a malformed JSON
//! body to a create), then every response the audit received so far; the control is
//! tested only when some response was not a 429. Output: FAIL when a body carries a
//! stack trace, SQL error text, a server file path, a framework debug page or credentials in
//! a URL; WARN for version banners (`Server` with a version, `X-Powered-By`,
//! `X-AspNet-Version`). Each kind is reported once per operation (the spec's template, or
//! "unknown path"), with the first request and how many more had it.

use std::collections::HashSet;

use reqwest::Method;

use super::{Context, authz::Objects, marker, path_value};
use crate::client::{Probe, ProbeError};
use crate::model::{ControlResult, Finding, Severity};
use crate::patterns;

const ID: u8 = 6;

pub async fn run(ctx: &Context<'_>, objects: &Objects) -> ControlResult {
    let first = ctx.identity(0);
    let mut probes = vec![Probe::new(Method::GET, format!("/{}", marker()))];
    for op in ctx.operations().iter().filter(|op| op.method == "GET") {
        let mut probe = Probe::new(Method::GET, op.fill(|p| path_value(objects, op, p)));
        if let (false, Some(id)) = (op.public, first) {
            probe = probe.as_identity(id);
        }
        probes.push(probe);
    }
    if let Some(op) = ctx
        .operations()
        .iter()
        .find(|op| op.method == "POST" && op.body_schema.is_some() && op.path_params.is_empty())
    {
        let mut probe = Probe::new(
            Method::from_bytes(op.method.as_bytes()).unwrap_or(Method::POST),
            op.path.clone(),
        )
        .raw_body("application/json", b"{\"unterminated\": [1, 2".to_vec());
        if let (false, Some(id)) = (op.public, first) {
            probe = probe.as_identity(id);
        }
        probes.push(probe);
    }
    let mut budget_out = false;
    for probe in probes {
        if let Err(ProbeError::Budget) = ctx.prober.send(probe).await {
            budget_out = true;
            break;
        }
    }
    let record = ctx.prober.record();
    let mut findings = Vec::new();
    let mut seen = HashSet::new();
    // (kind, operation) → (the first leak's evidence, how many responses had it). Leaks
    // are grouped by the operation's template, not the concrete path: that holds the
    // random unknown-path probe and the ids of objects the audit created, and would make
    // one leak a new finding (and SARIF fingerprint) in every run.
    let mut leaks: Vec<((&str, String), String, usize)> = Vec::new();
    for x in &record {
        let path = x.path.split('?').next().unwrap_or("");
        let place = match ctx.spec.map(|spec| spec.operation_for(&x.method, &x.path)) {
            Some(Some(op)) => op.label(),
            // Without a spec only the audit's own random path varies between runs.
            None if !path.starts_with("/palisade-audit-") => format!("{} {path}", x.method),
            _ => format!("{} (unknown path)", x.method),
        };
        for hit in patterns::leaks(&x.body) {
            let key = (hit.kind, place.clone());
            if let Some(entry) = leaks.iter_mut().find(|(k, ..)| *k == key) {
                entry.2 += 1;
            } else {
                let excerpt: String = hit.text.chars().take(120).collect();
                let evidence = patterns::redact(&format!("{} … {excerpt}", x.request_line()));
                leaks.push((key, evidence, 1));
            }
        }
        let banners = [
            (
                "server",
                x.header("server")
                    .filter(|v| v.chars().any(|c| c.is_ascii_digit())),
            ),
            ("x-powered-by", x.header("x-powered-by")),
            ("x-aspnet-version", x.header("x-aspnet-version")),
        ];
        for (name, value) in banners {
            if let Some(value) = value
                && seen.insert(("banner", name.to_owned()))
            {
                findings.push(Finding::new(
                    ID,
                    Severity::Low,
                    format!("version banner: {name}"),
                    Some(name.to_owned()),
                    format!("{name}: {value} (first seen on {})", x.request_line()),
                ));
            }
        }
    }
    for ((kind, place), evidence, count) in leaks {
        let more = match count {
            1 => String::new(),
            n => format!(" (and {} more responses of this operation)", n - 1),
        };
        findings.push(Finding::new(
            ID,
            Severity::High,
            format!("{kind} in a response"),
            Some(place),
            format!("{evidence}{more}"),
        ));
    }
    let answered = record.iter().any(|x| x.status != 429);
    let tested = answered && !budget_out;
    let reason = if !answered {
        "no response was received but 429s".to_owned()
    } else {
        ctx.budget_reason()
    };
    ControlResult::conclude(ID, findings, tested, &reason)
}
