//! Control 7, logging: what the API writes must not carry secrets.
//!
//! Input: `--log FILE` (from outside, logs cannot be seen: without it the control is
//! NOT_TESTED). Output: FAIL when the file holds an identity's credential (the audit knows
//! what it sent), a token, a provider key, a password value or a card number. Findings show
//! a masked preview and a fingerprint, never the value.

use super::Context;
use crate::model::{ControlResult, Finding, Severity};
use crate::{fingerprint, mask, patterns};

const ID: u8 = 7;

pub fn run(ctx: &Context<'_>) -> ControlResult {
    let Some(path) = &ctx.options.log else {
        return ControlResult::not_tested(
            ID,
            "logs are not visible from outside; pass --log FILE to scan one",
        );
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return ControlResult::error(ID, format!("cannot read {}: {e}", path.display())),
    };
    ControlResult::conclude(
        ID,
        scan_log(ctx, &text, &path.display().to_string()),
        true,
        "",
    )
}

/// The findings for a log's text.
pub fn scan_log(ctx: &Context<'_>, text: &str, name: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut push = |kind: &str, line_no: usize, value: &str| {
        findings.push(Finding::new(
            ID,
            Severity::High,
            format!("{kind} in the log"),
            Some(format!("{name}:{line_no}")),
            format!("{} fingerprint {}", mask(value), fingerprint(&[value])),
        ));
    };
    let credentials: Vec<(&str, &str)> = ctx
        .options
        .identities
        .iter()
        .chain(&ctx.options.admin_identity)
        .map(|id| {
            (
                id.name.as_str(),
                id.value.strip_prefix("Bearer ").unwrap_or(&id.value),
            )
        })
        .filter(|(_, v)| v.chars().count() >= crate::MIN_CREDENTIAL_LEN)
        .collect();
    for (i, line) in text.lines().enumerate() {
        for (name, value) in &credentials {
            if line.contains(value) {
                push(&format!("{name}'s credential"), i + 1, value);
            }
        }
        for hit in patterns::secrets(line)
            .into_iter()
            .chain(patterns::card_numbers(line))
        {
            if !credentials.iter().any(|(_, v)| hit.text.contains(v)) {
                push(hit.kind, i + 1, &hit.text);
            }
        }
    }
    findings
}
