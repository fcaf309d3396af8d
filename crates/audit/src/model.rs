//! The report's data: statuses, findings, one result per control.
//!
//! A control's status is derived from its findings and from whether it was tested at all
//! ([`ControlResult::conclude`]), so no check can forget the rule that what was not tested
//! is never reported as passing.

use serde::Serialize;

/// A control's outcome. Serialized as `PASS`, `FAIL`, `WARN`, `NOT_TESTED`, `ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    NotTested,
    Error,
}

impl Status {
    /// The label in the table (`NOT TESTED` with a space).
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Warn => "WARN",
            Status::NotTested => "NOT TESTED",
            Status::Error => "ERROR",
        }
    }
}

/// How bad a finding is: `high` and `medium` fail the control, `low` warns, `info` only
/// explains (what was tested, what was not and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
    Info,
}

/// One observation with its evidence (requests and answers, secrets masked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub title: String,
    pub severity: Severity,
    pub evidence: String,
    /// Where: an operation (`GET /api/orders/{id}`), a file and line, a header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Stable across runs for the same problem at the same place (SARIF's fingerprint).
    pub fingerprint: String,
}

impl Finding {
    pub fn new(
        control: u8,
        severity: Severity,
        title: impl Into<String>,
        location: Option<String>,
        evidence: impl Into<String>,
    ) -> Self {
        let title = title.into();
        let fingerprint = crate::fingerprint(&[
            &control.to_string(),
            &title,
            location.as_deref().unwrap_or(""),
        ]);
        Finding {
            title,
            severity,
            evidence: evidence.into(),
            location,
            fingerprint,
        }
    }
}

impl Finding {
    /// The finding with its fingerprint made from `kind` and its location only, for
    /// findings whose title varies between runs of the same problem (the list of forged
    /// credentials that got through, the request a 429 came at).
    pub fn keyed(mut self, control: u8, kind: &str) -> Self {
        self.fingerprint = crate::fingerprint(&[
            &control.to_string(),
            kind,
            self.location.as_deref().unwrap_or(""),
        ]);
        self
    }
}

/// One row of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlResult {
    pub id: u8,
    pub control: &'static str,
    /// What the control guards against (the table's middle column).
    pub guards: &'static str,
    pub status: Status,
    /// Why a control is NOT_TESTED or ERROR; for a PASS, which part did not run
    /// (`partly tested: …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub findings: Vec<Finding>,
}

/// The ten controls: (id, name, what it guards against).
pub const CONTROLS: [(u8, &str, &str); 10] = [
    (
        1,
        "HTTPS/TLS + HSTS",
        "eavesdropping, downgrade, cookie/token theft on the wire",
    ),
    (
        2,
        "Authentication",
        "anonymous or forged-token access to private operations",
    ),
    (
        3,
        "Authorization",
        "reading or changing other users' objects (BOLA), privilege escalation",
    ),
    (
        4,
        "Rate limiting",
        "brute force, credential stuffing, resource exhaustion",
    ),
    (
        5,
        "Input validation",
        "injection, mass assignment, parser abuse",
    ),
    (
        6,
        "Safe errors",
        "stack traces, SQL errors, paths and versions handed to attackers",
    ),
    (7, "Logging", "secrets and card numbers leaking into logs"),
    (
        8,
        "Gateway consistency",
        "operations that miss the shared security headers or error shape",
    ),
    (
        9,
        "Secrets",
        "keys and passwords committed to the repository",
    ),
    (10, "Dependencies", "known-vulnerable library versions"),
];

impl ControlResult {
    /// A result for control `id` from its findings: FAIL when one is high or medium, WARN
    /// when one is low, PASS only when `tested`, otherwise NOT_TESTED with `untested`.
    pub fn conclude(id: u8, findings: Vec<Finding>, tested: bool, untested: &str) -> Self {
        let (_, control, guards) = CONTROLS[usize::from(id) - 1];
        let worst = findings.iter().map(|f| f.severity).min();
        let (status, reason) = match worst {
            Some(Severity::High | Severity::Medium) => (Status::Fail, None),
            Some(Severity::Low) => (Status::Warn, None),
            _ if tested => (Status::Pass, None),
            _ => (Status::NotTested, Some(untested.to_owned())),
        };
        ControlResult {
            id,
            control,
            guards,
            status,
            reason,
            findings,
        }
    }

    /// A control that could not be tested at all, with the reason.
    pub fn not_tested(id: u8, reason: impl Into<String>) -> Self {
        let mut result = Self::conclude(id, Vec::new(), false, "");
        result.reason = Some(reason.into());
        result
    }

    /// A control whose test broke (a missing tool, an unreadable file).
    pub fn error(id: u8, reason: impl Into<String>) -> Self {
        let mut result = Self::not_tested(id, reason);
        result.status = Status::Error;
        result
    }
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `audit` (probed a live API) or `check` (read a gateway config).
    pub command: &'static str,
    pub target: String,
    /// Requests actually sent (never more than `max_requests`).
    pub requests: u32,
    pub max_requests: u32,
    pub controls: Vec<ControlResult>,
}

impl Report {
    /// True when a control failed: the CLI's exit status 1.
    /// True when a control failed, or broke (ERROR): the CLI's exit status 1. An ERROR
    /// counts because an unreachable target or an unreadable `--log` must not pass a CI
    /// job.
    pub fn failed(&self) -> bool {
        self.controls
            .iter()
            .any(|c| matches!(c.status, Status::Fail | Status::Error))
    }

    pub fn control(&self, id: u8) -> Option<&ControlResult> {
        self.controls.iter().find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_that_broke_fails_the_report_and_one_not_tested_does_not() {
        let report = |controls| Report {
            command: "audit",
            target: "t".into(),
            requests: 0,
            max_requests: 0,
            controls,
        };
        assert!(!report(vec![ControlResult::not_tested(7, "needs --log")]).failed());
        assert!(report(vec![ControlResult::error(7, "cannot read the log")]).failed());
    }

    #[test]
    fn status_follows_the_worst_finding_and_untested_never_passes() {
        let f = |s| Finding::new(2, s, "t", None, "e");
        assert_eq!(
            ControlResult::conclude(2, vec![], true, "").status,
            Status::Pass
        );
        let untested = ControlResult::conclude(2, vec![f(Severity::Info)], false, "why");
        assert_eq!(untested.status, Status::NotTested);
        assert_eq!(untested.reason.as_deref(), Some("why"));
        let warn = ControlResult::conclude(2, vec![f(Severity::Low), f(Severity::Info)], true, "");
        assert_eq!(warn.status, Status::Warn);
        let fail =
            ControlResult::conclude(2, vec![f(Severity::Low), f(Severity::Medium)], false, "");
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(
            serde_json::to_value(Status::NotTested).unwrap(),
            "NOT_TESTED"
        );
    }
}
