//! Control 8, one gateway: the same security headers and error shape everywhere.
//!
//! Input: every response the audit received from the target. Output: FAIL when a baseline
//! security header (`X-Content-Type-Options: nosniff`; on https also
//! `Strict-Transport-Security`) is on some responses and missing from others, which is what
//! an operation that bypasses the enforcement point looks like; WARN when it is missing
//! everywhere, or when error responses come in more than one shape (content type and JSON
//! members).

use std::collections::BTreeMap;

use super::Context;
use crate::model::{ControlResult, Finding, Severity};

const ID: u8 = 8;

pub fn run(ctx: &Context<'_>) -> ControlResult {
    let base = ctx.prober.base();
    let record: Vec<_> = ctx
        .prober
        .record()
        .into_iter()
        .filter(|x| x.url.starts_with(&format!("{}://", base.scheme())))
        .collect();
    if record.len() < 2 {
        return ControlResult::not_tested(ID, "too few responses to compare");
    }
    let mut findings = Vec::new();
    let mut headers = vec!["x-content-type-options"];
    if base.scheme() == "https" {
        headers.push("strict-transport-security");
    }
    for name in headers {
        let (with, without): (Vec<_>, Vec<_>) =
            record.iter().partition(|x| x.header(name).is_some());
        if with.is_empty() {
            findings.push(Finding::new(
                ID,
                Severity::Low,
                format!("{name} is never sent"),
                Some(name.to_owned()),
                format!("missing on all {} responses", record.len()),
            ));
        } else if !without.is_empty() {
            let examples: Vec<String> = without.iter().take(3).map(|x| x.request_line()).collect();
            findings.push(Finding::new(
                ID,
                Severity::Medium,
                format!("{name} is missing on some operations"),
                Some(name.to_owned()),
                format!(
                    "present on {}, missing on {}: {}",
                    with.len(),
                    without.len(),
                    examples.join("; ")
                ),
            ));
        }
    }
    let mut shapes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for x in record.iter().filter(|x| x.status >= 400) {
        let content_type = x
            .header("content-type")
            .unwrap_or("none")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let members = match x.json() {
            Some(serde_json::Value::Object(map)) => {
                let mut keys: Vec<&str> = map
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !matches!(*k, "detail" | "errors"))
                    .collect();
                keys.sort_unstable();
                format!("{{{}}}", keys.join(","))
            }
            Some(_) => "json".to_owned(),
            None if x.body.is_empty() => "empty".to_owned(),
            None => "text".to_owned(),
        };
        shapes
            .entry(format!("{content_type} {members}"))
            .or_default()
            .push(x.request_line());
    }
    if shapes.len() > 1 {
        let evidence: Vec<String> = shapes
            .iter()
            .map(|(shape, xs)| format!("{shape} ×{} (e.g. {})", xs.len(), xs[0]))
            .collect();
        findings.push(Finding::new(
            ID,
            Severity::Low,
            "errors come in more than one shape",
            None,
            evidence.join("; "),
        ));
    }
    ControlResult::conclude(ID, findings, true, "")
}
