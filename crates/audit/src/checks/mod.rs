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

    /// Why a control stopped early, when the budget ran out.
    pub fn budget_reason(&self) -> String {
        format!(
            "the request budget ({}) was spent before this control finished; raise --max-requests",
            self.prober.budget().max()
        )
    }
}

/// A value for a path parameter: the id of an object the audit created on that path when
/// there is one, otherwise `1`.
pub fn path_value(objects: &authz::Objects, op: &Operation, _param: &str) -> String {
    objects
        .created
        .iter()
        .find(|o| o.object_path == op.path && !o.id.is_empty())
        .map_or_else(|| "1".to_owned(), |o| o.id.clone())
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
