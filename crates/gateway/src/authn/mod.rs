//! Authentication (checklist #2): request → `Principal`.
//!
//! Input: the matched route and the request's credentials. Output: a `Principal`, the
//! verified identity every later phase reads. Failure: `Rejection` (401 once credential
//! checks exist). A `Principal` has private fields, so nothing outside this module can
//! build one: an identity exists only because this phase produced it.
//!
//! This version has no credential store or token verifier yet, so every caller is
//! anonymous; the API-key and JWT verifiers slot in here without changing callers.

use std::sync::Arc;

use crate::ctx::RequestCtx;
use crate::errors::Rejection;

/// How a principal was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// No credentials were checked.
    Anonymous,
}

/// A verified identity. Only `Authenticator::authenticate` can construct one.
#[derive(Debug, Clone)]
pub struct Principal {
    method: AuthMethod,
    subject: Option<Arc<str>>,
    roles: Arc<[String]>,
    key_id: Option<Arc<str>>,
}

impl Principal {
    fn anonymous() -> Self {
        Principal {
            method: AuthMethod::Anonymous,
            subject: None,
            roles: Arc::from(Vec::new()),
            key_id: None,
        }
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// The subject (user or application) the caller acts for.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The public id of the API key used, never the key itself.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
}

/// The authentication phase, built from the config on every (re)load.
#[derive(Debug, Default)]
pub struct Authenticator {}

impl Authenticator {
    pub fn new() -> Self {
        Authenticator {}
    }

    /// Establishes who is calling. Contract: never reads the body; never forwards.
    pub fn authenticate(
        &self,
        _ctx: &RequestCtx,
        _route: usize,
        _request: &http::request::Parts,
    ) -> Result<Principal, Rejection> {
        Ok(Principal::anonymous())
    }
}
