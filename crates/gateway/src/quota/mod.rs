//! Rate-limit quota as plain data, below every control: the GCRA arithmetic (`gcra`) and
//! what one request's limits took and told (`state`). The rate-limit control
//! (`crate::ratelimit`) applies them; the per-request context and the rescue point only
//! carry and print them.

pub(crate) mod gcra;
pub(crate) mod state;
