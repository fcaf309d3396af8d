//! Authorization (checklist #3): `Principal` → `Permit`.
//!
//! Input: the route and the principal from authentication. Output: a `Permit`, the only
//! value the proxy accepts. Failure: `Rejection` (403 for a missing role or scope, 404 for
//! an object the caller does not own, once those rules exist). A `Permit` has private
//! fields and only `Authorizer::authorize` builds one, so a request that skipped
//! authentication or authorization cannot be forwarded: it does not type-check.

use crate::authn::Principal;
use crate::errors::Rejection;

/// Proof that a principal may call a route. Consumed by `proxy::Upstreams::forward`.
#[derive(Debug)]
pub struct Permit {
    route: usize,
    principal: Principal,
}

impl Permit {
    /// Index of the route this permit is for.
    pub fn route(&self) -> usize {
        self.route
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

/// The authorization phase, built from the config on every (re)load.
#[derive(Debug, Default)]
pub struct Authorizer {}

impl Authorizer {
    pub fn new() -> Self {
        Authorizer {}
    }

    /// Decides whether `principal` may call `route`. Routes carry no role, scope or
    /// owner rules in this version, so every authenticated principal is permitted.
    pub fn authorize(&self, route: usize, principal: Principal) -> Result<Permit, Rejection> {
        Ok(Permit { route, principal })
    }
}
