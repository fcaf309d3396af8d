//! Palisade's gateway: every request passes the API-security checklist in order.
//!
//! The request path reads like the checklist; `pipeline::handle` is the one function
//! that strings the phases together, and `docs/pipeline.md` draws it. Each control is a
//! module of its own whose doc comment states its input, output, default and failure mode.
//! The modules sit in layers that only point down (`layers`, `docs/architecture.md`).
//!
//! Public are what the binary uses (`config`, `observe`, `Server`, `Validation`) and, for
//! the benchmarks alone, `bench`; the rest is the crate's own, so the compiler finds what
//! nothing uses (`unreachable_pub` keeps `pub` honest).

pub(crate) mod admin;
pub(crate) mod authn;
pub(crate) mod authz;
pub(crate) mod body;
pub mod config;
pub(crate) mod ctx;
pub(crate) mod headers;
pub(crate) mod json;
#[cfg(test)]
mod layers;
pub(crate) mod limits;
pub mod observe;
pub(crate) mod park;
pub(crate) mod path;
pub(crate) mod pipeline;
pub(crate) mod proxy;
pub(crate) mod quota;
pub(crate) mod ratelimit;
pub(crate) mod rejection;
pub(crate) mod rescue;
pub(crate) mod routes;
pub(crate) mod running;
pub mod server;
pub(crate) mod tls;
pub(crate) mod validate;
pub(crate) mod workers;

pub use config::{Config, ConfigError};
pub use server::{Server, ServerHandle};
pub use validate::Validation;

/// The pieces of the hot path the benchmarks (`benches/`) measure one by one. Reachable
/// from outside for them alone: nothing else may depend on these paths.
#[doc(hidden)]
pub mod bench {
    pub use crate::authn::jwt::JwtVerifier;
    pub use crate::ctx::{ConnInfo, RequestCtx};
    pub use crate::json::{depth, parse_strict};
    pub use crate::path::canonicalize;
    pub use crate::quota::gcra::Quota;
    pub use crate::ratelimit::memory::{Check, MemoryStore};
    pub use crate::rejection::Rejection;
    pub use crate::rescue::respond;
    pub use crate::routes::Router;
    pub use crate::validate::schema::{Dialect, Schema};
}
