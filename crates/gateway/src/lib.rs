//! Palisade's gateway: every request passes the API-security checklist in order.
//!
//! The request path reads like the checklist; `pipeline::handle` is the one function
//! that strings the phases together, and `docs/pipeline.md` draws it. Each control is a
//! module of its own whose doc comment states its input, output, default and failure mode.

pub mod admin;
pub mod authn;
pub mod authz;
pub mod body;
pub mod config;
pub mod ctx;
pub mod headers;
pub mod json;
#[cfg(test)]
mod layers;
pub mod limits;
pub mod observe;
pub mod park;
pub mod path;
pub mod pipeline;
pub mod proxy;
pub mod quota;
pub mod ratelimit;
pub mod rejection;
pub mod rescue;
pub mod routes;
pub mod running;
pub mod server;
pub mod tls;
pub mod validate;
pub mod workers;

pub use config::{Config, ConfigError};
pub use server::{Server, ServerHandle};
