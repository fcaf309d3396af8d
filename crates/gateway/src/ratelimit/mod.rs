//! Rate limiting (checklist #4): GCRA decisions (`gcra`), their in-memory store
//! (`memory`) and the pipeline phase that applies the configured policies (`limiter`).

pub mod gcra;
pub mod limiter;
pub mod memory;

pub use limiter::{RateLimitState, RateLimiter, header_values};
