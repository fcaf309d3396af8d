//! One module per checklist control. Each `run` takes the shared [`Context`] and returns
//! that control's [`ControlResult`](crate::ControlResult); a probe the budget refused makes
//! the control NOT_TESTED (or FAIL if it already failed), never PASS.

pub mod authn;
pub mod authz;
pub mod deps;
pub mod errors;
pub mod gateway;
pub mod logging;
pub mod ratelimit;
pub mod secrets;
pub mod tls;
pub mod validation;

use crate::client::Prober;
use crate::spec::{Operation, Spec};
use crate::{Identity, Options};

pub struct Context<'a> {
    pub options: &'a Options,
    pub spec: Option<&'a Spec>,
    pub prober: &'a Prober,
}

impl Context<'_> {
    pub fn identity(&self, index: usize) -> Option<&Identity> {
        self.options.identities.get(index)
    }

    /// The spec's operations, or none without a spec.
    pub fn operations(&self) -> &[Operation] {
        self.spec.map_or(&[], |s| s.operations.as_slice())
    }

    /// Why a control stopped early, when the budget or the audit's time ran out.
    pub fn budget_reason(&self) -> String {
        if self.prober.budget().out_of_time() {
            return format!(
                "the audit's time limit ({} s) was reached before this control finished; raise --deadline",
                self.options.deadline.as_secs()
            );
        }
        format!(
            "the request budget ({}) was spent before this control finished; raise --max-requests",
            self.prober.budget().max()
        )
    }
}

/// Where a probe for `op` may be sent, or why it may not. Safe methods go anywhere (path
/// parameters filled by [`path_value`]); a POST without path parameters creates; but PUT,
/// PATCH and DELETE, and a POST on an object (`/things/{id}/cancel`), are only aimed at an
/// object the audit created itself, so no probe changes or deletes anyone else's data.
pub fn probe_path(objects: &authz::Objects, op: &Operation) -> Result<String, String> {
    if !unsafe_method(&op.method) {
        return Ok(op.fill(|p| path_value(objects, op, p)));
    }
    if op.path_params.is_empty() {
        return if op.method == "POST" {
            Ok(op.path.clone())
        } else {
            Err(format!(
                "{}: skipped (it changes a resource the audit did not create)",
                op.label()
            ))
        };
    }
    own_object(objects, op)
        .map(|id| op.fill(|_| id.clone()))
        .ok_or_else(|| {
            format!(
                "{}: skipped (no object of the audit's own to aim it at)",
                op.label()
            )
        })
}

/// A value for a path parameter of a safe (read-only) probe: the id of an object the audit
/// created on that path when there is one, otherwise `1`.
pub fn path_value(objects: &authz::Objects, op: &Operation, _param: &str) -> String {
    own_object(objects, op).unwrap_or_else(|| "1".to_owned())
}

/// The id of a live object the audit created at `op`'s path, if any: the only objects an
/// unsafe method (PUT, PATCH, DELETE) may be aimed at.
pub fn own_object(objects: &authz::Objects, op: &Operation) -> Option<String> {
    objects
        .created
        .iter()
        .find(|o| o.object_path == op.path && !o.id.is_empty())
        .map(|o| o.id.clone())
}

/// Whether a method changes state.
pub fn unsafe_method(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// A short random hex marker, so the audit recognises its own objects in any response.
pub fn marker() -> String {
    let mut bytes = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("palisade-audit-{hex}")
}
