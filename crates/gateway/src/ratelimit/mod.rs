//! Rate limiting (checklist #4), on the quota arithmetic of `crate::quota`: the in-memory store (`memory`),
//! the shared Redis store (`redis`), the choice between them when Redis fails (`store`),
//! the body fields some limits key on (`body`) and the pipeline phase that applies the
//! configured policies and the failed-authentication lockout (`limiter`).

pub(crate) mod body;
pub(crate) mod limiter;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod store;

pub(crate) use limiter::{BodyFields, RateLimiter};
