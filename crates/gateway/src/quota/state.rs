//! What one request's rate limits took and told, as plain data: the per-request context
//! carries it between the rate-limit passes, and the rescue point turns it into headers.

use std::sync::Arc;
use std::time::Duration;

use super::gcra::Quota;

/// The state of one policy for one request, for the `RateLimit` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitState {
    pub policy: Arc<str>,
    pub limit: u32,
    pub window: Duration,
    pub remaining: u32,
    /// Time until the full quota is available again.
    pub reset: Duration,
}

/// What a login attempt was charged in advance, to refund if it does not fail, with the
/// store that took each charge: the refund goes back to that store, whichever answers at
/// settle time (Redis may have failed or recovered in between).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    pub ip: Option<ChargedIn>,
    pub account: Option<(String, ChargedIn)>,
}

/// The store that took a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargedIn {
    /// This instance's memory (the memory store, or the `local` fallback).
    Local,
    /// Redis.
    Shared,
}

/// What the phases of one request took so far, per store, to give back if a later phase
/// cannot decide (503 under `on_store_error = "deny"`); a 429 refunds nothing.
#[derive(Debug, Default)]
pub struct Taken {
    /// Bucket keys taken in this instance's memory (the memory store, or the `local`
    /// fallback), and in Redis.
    pub(crate) local: Vec<(String, Quota)>,
    pub(crate) shared: Vec<(String, Quota)>,
}

/// The `RateLimit-Policy` and `RateLimit` values (draft-ietf-httpapi-ratelimit-headers-09,
/// structured fields): `"name";q=LIMIT;w=WINDOW` and `"name";r=REMAINING;t=RESET`.
pub(crate) fn header_values(state: &RateLimitState) -> (String, String) {
    let seconds_up = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let name = sf_string(&state.policy);
    (
        format!("{name};q={};w={}", state.limit, seconds_up(state.window)),
        format!("{name};r={};t={}", state.remaining, seconds_up(state.reset)),
    )
}

/// An RFC 8941 sf-string: quoted, `"` and `\` escaped. Config load keeps policy names
/// plain; this keeps the header well-formed whatever a name holds (bytes outside printable
/// ASCII, which an sf-string cannot carry, become `?`).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_use_whole_seconds_rounded_up() {
        let (policy, now) = header_values(&RateLimitState {
            policy: "login".into(),
            limit: 5,
            window: Duration::from_secs(900),
            remaining: 0,
            reset: Duration::from_millis(179_001),
        });
        assert_eq!(policy, "\"login\";q=5;w=900");
        assert_eq!(now, "\"login\";r=0;t=180");
    }

    #[test]
    fn policy_names_are_escaped_as_structured_field_strings() {
        let (policy, now) = header_values(&RateLimitState {
            policy: "a\"b\\c\u{e9}".into(),
            limit: 1,
            window: Duration::from_secs(1),
            remaining: 0,
            reset: Duration::ZERO,
        });
        assert_eq!(policy, r#""a\"b\\c?";q=1;w=1"#);
        assert_eq!(now, r#""a\"b\\c?";r=0;t=0"#);
        assert!(http::HeaderValue::from_str(&policy).is_ok());
    }
}
