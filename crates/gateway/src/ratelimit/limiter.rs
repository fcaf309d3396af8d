//! Rate limiting (checklist #4): the phase that applies `[rate_limit]` and route policies.
//!
//! Input: the route's policies (or `[rate_limit] default`), the request's client address,
//! headers and, after authentication, its principal. Output: nothing, or the state of the
//! tightest policy for the `RateLimit` headers. Failure: `Rejection::RateLimited` (429 with
//! `Retry-After`, `RateLimit-Policy` and `RateLimit`) and a `rate_limited` event.
//!
//! Two passes, in pipeline order: `before_auth` counts what is known without credentials
//! (`ip`, `route`, a header), so floods and brute force are stopped before any crypto or
//! store lookup, and a caller without credentials can only spend quotas keyed on its own
//! address; `after_auth` counts by `client`, `subject` or `key`. Within a pass, a request is
//! admitted only if every policy admits it, and a refused request consumes nothing.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::gcra::{Decision, Quota};
use super::memory::MemoryStore;
use crate::authn::Principal;
use crate::config::{Config, PerKey, Policy};
use crate::ctx::RequestCtx;
use crate::errors::Rejection;

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

struct Prepared {
    policy: Policy,
    name: Arc<str>,
    quota: Quota,
    /// The bucket namespace: route policies count per route, default ones across routes.
    scope: Arc<str>,
}

/// The rate-limit phase of one pipeline build. The store is shared across reloads.
pub struct RateLimiter {
    store: Arc<MemoryStore>,
    default: Vec<Prepared>,
    routes: Vec<Vec<Prepared>>,
    headers_always: bool,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("default_policies", &self.default.len())
            .field("keys", &self.store.len())
            .finish()
    }
}

impl RateLimiter {
    pub fn new(config: &Config, store: Arc<MemoryStore>) -> Result<Self, String> {
        let prepare = |policy: &Policy, scope: &str| -> Result<Prepared, String> {
            Ok(Prepared {
                quota: Quota::new(policy.limit, policy.window, Some(policy.burst))?,
                name: policy.name.as_str().into(),
                policy: policy.clone(),
                scope: scope.into(),
            })
        };
        let default = (config.rate_limit.default.iter())
            .map(|p| prepare(p, "*"))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = (config.routes.iter())
            .map(|r| {
                r.rate_limit
                    .iter()
                    .map(|p| prepare(p, &r.name))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RateLimiter {
            store,
            default,
            routes,
            headers_always: config.rate_limit.headers_always,
        })
    }

    fn policies(&self, route: usize) -> &[Prepared] {
        match self.routes.get(route) {
            Some(own) if !own.is_empty() => own,
            _ => &self.default,
        }
    }

    /// Counts the policies keyed on what is known before authentication.
    pub fn before_auth(
        &self,
        ctx: &mut RequestCtx,
        route: usize,
        headers: &HeaderMap,
    ) -> Result<(), Rejection> {
        let client_ip = ctx.client_ip.to_string();
        self.check(ctx, route, true, |per| match per {
            PerKey::Ip => Some(client_ip.clone()),
            PerKey::Route => Some(String::new()),
            PerKey::Header(name) => Some(
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
            ),
            _ => None,
        })
    }

    /// Counts the policies keyed on the verified caller.
    pub fn after_auth(
        &self,
        ctx: &mut RequestCtx,
        route: usize,
        principal: &Principal,
    ) -> Result<(), Rejection> {
        let client_ip = ctx.client_ip.to_string();
        // Prefixes keep a subject named like a key id (or an address) in its own bucket.
        self.check(ctx, route, false, |per| match per {
            PerKey::Client => Some(match (principal.key_id(), principal.subject()) {
                (Some(key), _) => format!("key:{key}"),
                (None, Some(subject)) => format!("sub:{subject}"),
                (None, None) => format!("ip:{client_ip}"),
            }),
            // Nothing to count by on an anonymous request: the ip policies cover those.
            PerKey::Subject => principal.subject().map(str::to_owned),
            PerKey::Key => principal.key_id().map(str::to_owned),
            _ => None,
        })
    }

    fn check(
        &self,
        ctx: &mut RequestCtx,
        route: usize,
        before_auth: bool,
        value_of: impl Fn(&PerKey) -> Option<String>,
    ) -> Result<(), Rejection> {
        let mut keyed: Vec<(&Prepared, String)> = Vec::new();
        for prepared in self.policies(route) {
            if prepared.policy.per.before_auth() != before_auth {
                continue;
            }
            if let Some(value) = value_of(&prepared.policy.per) {
                let key = format!(
                    "{}|{}|{}|{value}",
                    prepared.scope,
                    prepared.name,
                    prepared.policy.per.kind()
                );
                keyed.push((prepared, key));
            }
        }
        if keyed.is_empty() {
            return Ok(());
        }
        let checks: Vec<(&str, Quota)> = keyed
            .iter()
            .map(|(p, key)| (key.as_str(), p.quota))
            .collect();
        let decisions = self.store.check_all(&checks);
        let state = |p: &Prepared, remaining: u32, reset: Duration| RateLimitState {
            policy: p.name.clone(),
            limit: p.policy.limit,
            window: p.policy.window,
            remaining,
            reset,
        };
        if let Some(((prepared, _), retry_after, reset)) =
            keyed.iter().zip(&decisions).find_map(|(k, d)| match d {
                Decision::Deny { retry_after, reset } => Some((k, *retry_after, *reset)),
                Decision::Allow { .. } => None,
            })
        {
            tracing::info!(
                event = "rate_limited",
                request_id = ctx.id.as_str(),
                client_ip = %ctx.client_ip,
                route = ctx.route.as_deref().unwrap_or("-"),
                policy = %prepared.name,
                per = prepared.policy.per.kind(),
                retry_after_ms = retry_after.as_millis() as u64,
            );
            return Err(Rejection::RateLimited {
                state: state(prepared, 0, reset),
                retry_after,
            });
        }
        if self.headers_always {
            let tightest = keyed
                .iter()
                .zip(&decisions)
                .filter_map(|((p, _), d)| match d {
                    Decision::Allow { remaining, reset } => Some(state(p, *remaining, *reset)),
                    Decision::Deny { .. } => None,
                })
                .min_by_key(|s| s.remaining);
            if let Some(tightest) = tightest
                && ctx
                    .rate_limit
                    .as_ref()
                    .is_none_or(|seen| tightest.remaining < seen.remaining)
            {
                ctx.rate_limit = Some(tightest);
            }
        }
        Ok(())
    }
}

/// The `RateLimit-Policy` and `RateLimit` values (draft-ietf-httpapi-ratelimit-headers-09,
/// structured fields): `"name";q=LIMIT;w=WINDOW` and `"name";r=REMAINING;t=RESET`.
pub fn header_values(state: &RateLimitState) -> (String, String) {
    let seconds_up = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    (
        format!(
            "\"{}\";q={};w={}",
            state.policy,
            state.limit,
            seconds_up(state.window)
        ),
        format!(
            "\"{}\";r={};t={}",
            state.policy,
            state.remaining,
            seconds_up(state.reset)
        ),
    )
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
}
