//! Control 9, secrets never in git: [`crate::secrets_scan`] over `--repo`.
//!
//! Output: FAIL for each secret found (masked preview, fingerprint, where) and for a `.env`
//! file that was committed or is not ignored; NOT_TESTED without `--repo` (a repository
//! cannot be seen from outside); ERROR when git cannot read it.

use super::Context;
use crate::model::{ControlResult, Finding, Severity};
use crate::secrets_scan;

const ID: u8 = 9;

pub fn run(ctx: &Context<'_>) -> ControlResult {
    let Some(repo) = &ctx.options.repo else {
        return ControlResult::not_tested(
            ID,
            "a repository cannot be seen from outside; pass --repo PATH",
        );
    };
    match secrets_scan::scan(repo) {
        Ok(result) => ControlResult::conclude(ID, findings(&result), true, ""),
        Err(e) => ControlResult::error(ID, e),
    }
}

pub fn findings(result: &secrets_scan::ScanResult) -> Vec<Finding> {
    let mut out = Vec::new();
    for hit in &result.secrets {
        let more = if hit.more > 0 {
            format!(" (and {} more places)", hit.more)
        } else {
            String::new()
        };
        let mut finding = Finding::new(
            ID,
            Severity::High,
            hit.kind.clone(),
            Some(hit.location.clone()),
            format!("{} fingerprint {}{more}", hit.preview, hit.fingerprint),
        );
        // The secret's own fingerprint identifies it wherever it moves.
        finding.fingerprint = hit.fingerprint.clone();
        out.push(finding);
    }
    if result.ignored > 0 {
        out.push(Finding::new(
            ID,
            Severity::Info,
            "known non-secrets left out",
            Some(secrets_scan::IGNORE_FILE.to_owned()),
            format!(
                "{} values listed by fingerprint in {}",
                result.ignored,
                secrets_scan::IGNORE_FILE
            ),
        ));
    }
    for env in &result.env_files {
        out.push(Finding::new(
            ID,
            Severity::High,
            ".env file in the repository",
            Some(env.clone()),
            env.clone(),
        ));
    }
    out
}
