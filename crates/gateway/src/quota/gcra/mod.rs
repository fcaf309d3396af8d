//! The generic cell rate algorithm (GCRA), as a pure function of one key's state.
//!
//! A key's whole state is one number, its theoretical arrival time (TAT): when the next
//! request would be due if the client sent at exactly the allowed rate. With emission
//! interval `T = window / limit` and burst tolerance `tau = T × burst`, a request at `now`
//! is admitted when `max(TAT, now) + T − now ≤ tau`, and the TAT moves to that sum. Unlike
//! fixed windows this never admits a double burst across a window edge, and a refused
//! request leaves the TAT alone: refusals cost the client nothing, so it is admitted again
//! as soon as its rate drops.

use std::time::Duration;

/// `limit` requests per `window`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
    pub burst: u32,
}

impl Quota {
    pub fn new(limit: u32, window: Duration, burst: Option<u32>) -> Result<Quota, String> {
        let burst = burst.unwrap_or(limit);
        if limit == 0 || burst == 0 {
            return Err("limit and burst must be at least 1".to_owned());
        }
        if window.is_zero() {
            return Err("the window must be longer than zero".to_owned());
        }
        Ok(Quota {
            limit,
            window,
            burst,
        })
    }

    /// `T`: the time one request "costs", in nanoseconds: `window / limit`, computed in
    /// u128, saturated to `u64::MAX` (windows past ~584 years) and at least 1 (a window
    /// shorter than `limit` nanoseconds is rounded up to one request per nanosecond).
    fn interval_ns(&self) -> u64 {
        // `max(1)`: the fields are public, so a `Quota` built without `new` must not divide by 0.
        let t = self.window.as_nanos() / u128::from(self.limit.max(1));
        u64::try_from(t).unwrap_or(u64::MAX).max(1)
    }

    /// `T` in nanoseconds.
    pub fn emission_interval_ns(&self) -> u64 {
        self.interval_ns()
    }

    /// `T = window / limit` (at least one nanosecond).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns())
    }
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted. `remaining`: requests still admissible at once; `reset`: time until the
    /// full burst is available again.
    Allow { remaining: u32, reset: Duration },
    /// Refused. `retry_after`: time until one request would be admitted.
    Deny {
        retry_after: Duration,
        reset: Duration,
    },
}

/// Decides one request at `now` (nanoseconds on the caller's monotonic clock) for a key
/// whose TAT is `tat` (`None`: never seen, or forgotten). Returns the decision and the TAT
/// to store: `None` when refused, because a refusal consumes nothing.
pub(crate) fn decide(tat: Option<u64>, now: u64, quota: &Quota) -> (Decision, Option<u64>) {
    // In u128: `T × burst` and `TAT + T` cannot overflow there (both operands are < 2^64),
    // so nothing near the ends of the clock's range can wrap or saturate into a wrong answer.
    let t = u128::from(quota.interval_ns());
    let tau = t * u128::from(quota.burst);
    let now = u128::from(now);
    let start = tat.map_or(now, |tat| u128::from(tat).max(now));
    let new_tat = start + t;
    let ahead = new_tat - now;
    let nanos = |n: u128| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX));
    if ahead <= tau {
        let decision = Decision::Allow {
            remaining: u32::try_from((tau - ahead) / t).unwrap_or(u32::MAX),
            reset: nanos(ahead),
        };
        // Saturates only for windows of centuries, where "never again" is the right answer.
        (decision, Some(u64::try_from(new_tat).unwrap_or(u64::MAX)))
    } else {
        let decision = Decision::Deny {
            retry_after: nanos(ahead - tau),
            reset: nanos(start - now),
        };
        (decision, None)
    }
}

#[cfg(test)]
mod tests;
